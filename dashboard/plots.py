"""Pure plotly figure builders for the dashboard: DataFrames in, ``go.Figure`` out, no Streamlit calls.

Arrays go into figures as numpy arrays, which plotly (>= 6) ships to the browser as base64 typed arrays, so a
20-frame × 3,000-point animation stays a few MB of JSON and serialises in milliseconds.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

GROUP_FORGET, GROUP_RETAIN, GROUP_FORGET_TEST = 0, 1, 2
CLASS_PALETTE = qualitative.D3 + qualitative.Pastel + qualitative.Dark24  # distinct first ten, then more
METHOD_FIXED = {"original": "#7f7f7f", "retrained": "#222222", "scar": "#d62728", "scar_self": "#ff7f0e"}
METHOD_PALETTE = qualitative.Bold + qualitative.Safe + qualitative.Vivid
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=14)
MAX_CLASS_TRACES = 20  # above this (CIFAR-100, Tiny-ImageNet) retain points share one trace and a colour scale


def class_colors(k: int) -> list[str]:
    return [CLASS_PALETTE[i % len(CLASS_PALETTE)] for i in range(max(k, 1))]


def method_colors(methods) -> dict[str, str]:
    out, i = {}, 0
    for m in methods:
        if m in out:
            continue
        if m in METHOD_FIXED:
            out[m] = METHOD_FIXED[m]
        else:
            out[m] = METHOD_PALETTE[i % len(METHOD_PALETTE)]
            i += 1
    return out


def _discrete_scale(colors: list[str]) -> list[list]:
    """A colour scale mapping integer i (with cmin=-0.5, cmax=k-0.5) to colors[i]."""
    k = len(colors)
    scale = []
    for i, c in enumerate(colors):
        scale += [[i / k, c], [(i + 1) / k, c]]
    return scale


def _base_layout(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(template="plotly_white", font=FONT, height=height, margin=dict(l=10, r=10, t=60, b=10),
                      title=dict(text=title, x=0.01, font=dict(size=18)) if title else None,
                      legend=dict(itemsizing="constant"), hoverlabel=dict(font_size=14))
    return fig


def empty_figure(message: str, height: int = 300) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=16, color="#666"), x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    return _base_layout(fig, height)


# ----------------------------------------------------------------------------- feature migration
_HOVER = {
    GROUP_RETAIN: "retain test #%{customdata[4]}<br>label %{customdata[1]} · pred %{customdata[2]}<extra></extra>",
    GROUP_FORGET: ("<b>forget</b> train #%{customdata[4]}<br>label %{customdata[1]} · pred %{customdata[2]}"
                   " · target %{customdata[3]}<extra></extra>"),
    GROUP_FORGET_TEST: ("forget test #%{customdata[4]}<br>label %{customdata[1]} · pred %{customdata[2]}"
                        " · target %{customdata[3]}<extra></extra>"),
}


def _custom(d: pd.DataFrame) -> np.ndarray:
    """customdata [n, 5] int32: point, label, pred, target, source index (the dashboard reads column 0)."""
    return np.column_stack([d["point"].to_numpy(np.int32), d["label"].to_numpy(np.int32),
                            d["pred"].to_numpy(np.int32), d["target"].to_numpy(np.int32),
                            d["index"].to_numpy(np.int64).astype(np.int32)])


def _panel_traces(d: pd.DataFrame, k: int, names: list[str], colors: list[str], legend: bool, panel: str,
                  show_forget_test: bool, gl: bool) -> list[dict]:
    """Traces of one panel as dicts: retain classes (one per class), forget train, forget test.

    The list has the same length and order for every step of a run (an animation frame replaces them 1:1).
    """
    Scatter = go.Scattergl if gl else go.Scatter
    scale = _discrete_scale(colors[:k])
    out = []
    retain = d[d["group"] == GROUP_RETAIN]
    if k <= MAX_CLASS_TRACES:
        for c in range(k):
            r = retain[retain["label"] == c]
            out.append(Scatter(
                x=r["x"].to_numpy(np.float32), y=r["y"].to_numpy(np.float32), mode="markers",
                name=f"{names[c]}" if names[c] == str(c) else f"{c} · {names[c]}", legendgroup=f"class{c}",
                showlegend=legend, marker=dict(size=6, color=colors[c], opacity=0.55, line=dict(width=0)),
                customdata=_custom(r), hovertemplate=_HOVER[GROUP_RETAIN], meta=f"{panel}:retain:{c}"))
    else:
        out.append(Scatter(
            x=retain["x"].to_numpy(np.float32), y=retain["y"].to_numpy(np.float32), mode="markers", name="retain",
            showlegend=legend, marker=dict(size=5, color=retain["label"].to_numpy(np.int32), colorscale="Turbo",
                                           cmin=0, cmax=k - 1, opacity=0.5),
            customdata=_custom(retain), hovertemplate=_HOVER[GROUP_RETAIN], meta=f"{panel}:retain:all"))
    for g, name, symbol, size in ((GROUP_FORGET, "forget (train)", "diamond", 10),
                                  (GROUP_FORGET_TEST, "forget (test)", "triangle-up", 9)):
        f = d[d["group"] == g]
        if g == GROUP_FORGET_TEST and not show_forget_test:
            f = f.iloc[:0]
        pred = f["pred"].to_numpy(np.int32)
        marker = dict(size=size, symbol=symbol, line=dict(width=1.5, color="#111" if g == GROUP_FORGET else "#555"),
                      opacity=0.95)
        if k <= MAX_CLASS_TRACES:
            marker.update(color=pred, colorscale=scale, cmin=-0.5, cmax=k - 0.5)
        else:
            marker.update(color=pred, colorscale="Turbo", cmin=0, cmax=k - 1)
        out.append(Scatter(x=f["x"].to_numpy(np.float32), y=f["y"].to_numpy(np.float32), mode="markers", name=name,
                           legendgroup=name, showlegend=legend, marker=marker, customdata=_custom(f),
                           hovertemplate=_HOVER[g], meta=f"{panel}:{name}"))
    return out


def _range(values: np.ndarray, pad: float = 0.06) -> list[float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return [-1.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 1e-6)
    return [lo - pad * span, hi + pad * span]


def migration_figure(emb: pd.DataFrame, step: int | None = None, oracle: pd.DataFrame | None = None,
                     class_names: list[str] | None = None, method: str = "unlearned", show_forget_test: bool = True,
                     height: int = 560, gl: bool | None = None) -> go.Figure:
    """Side-by-side UMAP panels: original (step 0) | unlearned (animated over steps) | retrained oracle.

    emb: embedding rows of every step (step, point, group, label, pred, target, index, x, y).
    step: the step the middle panel starts at (default: the last); the figure's frames hold every step and a
    play button and slider animate the middle panel only. oracle: the retrained run's single-step rows (or None).
    Retain-test points are coloured by class; forget points are outlined diamonds (train) and triangles
    (test) filled with the colour of the class the model predicts at that step.
    """
    steps = sorted(int(s) for s in emb["step"].unique())
    if not steps:
        return empty_figure("no snapshots in this embedding")
    step = steps[-1] if step is None or step not in steps else int(step)
    k = int(max(emb["label"].max(), emb["pred"].max(), 0 if oracle is None else oracle["pred"].max())) + 1
    names = list(class_names or [])[:k]
    names += [str(i) for i in range(len(names), k)]
    colors = class_colors(k)
    n_points = len(emb[emb["step"] == steps[0]])
    gl = (n_points * (3 + len(steps)) > 120_000) if gl is None else gl
    by_step = {s: d for s, d in emb.groupby("step", sort=True)}
    panels = [(f"Original · step {steps[0]}", by_step[steps[0]]), (f"Unlearned · {method}", by_step[step])]
    if oracle is not None and len(oracle):
        panels.append(("Retrained oracle", oracle))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.03)
    trace_idx: list[list[int]] = []
    for col, (title, d) in enumerate(panels, start=1):
        traces = _panel_traces(d, k, names, colors, legend=col == 1, panel=f"p{col}",
                               show_forget_test=show_forget_test, gl=gl)
        start = len(fig.data)
        for t in traces:
            fig.add_trace(t, row=1, col=col)
        trace_idx.append(list(range(start, len(fig.data))))
    shared = emb[["x", "y"]].to_numpy(np.float32)
    xr, yr = _range(shared[:, 0]), _range(shared[:, 1])
    for col in (1, 2):
        fig.update_xaxes(range=xr, row=1, col=col)
        fig.update_yaxes(range=yr, row=1, col=col)
    if len(panels) == 3:
        fig.update_xaxes(range=_range(oracle["x"].to_numpy(np.float32)), row=1, col=3)
        fig.update_yaxes(range=_range(oracle["y"].to_numpy(np.float32)), row=1, col=3)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, showline=True, linecolor="#ddd",
                     mirror=True)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, showline=True, linecolor="#ddd",
                     mirror=True)
    # frames: the middle panel at every step (same traces, same order)
    frames = []
    for s in steps:
        traces = _panel_traces(by_step[s], k, names, colors, legend=False, panel="p2",
                               show_forget_test=show_forget_test, gl=gl)
        Scatter = go.Scattergl if gl else go.Scatter
        frames.append(go.Frame(name=str(s), traces=trace_idx[1],
                               data=[Scatter(x=t.x, y=t.y, customdata=t.customdata, marker=dict(color=t.marker.color))
                                     for t in traces]))
    fig.frames = frames
    active = steps.index(step)
    play = dict(label="▶ Play", method="animate",
                args=[None, dict(frame=dict(duration=600, redraw=gl), transition=dict(duration=400,
                                                                                       easing="cubic-in-out"),
                                 fromcurrent=True, mode="immediate")])
    pause = dict(label="❚❚ Pause", method="animate",
                 args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate",
                                    transition=dict(duration=0))])
    fig.update_layout(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.03, xanchor="left", yanchor="top",
                          pad=dict(t=22, r=10), buttons=[play, pause], showactive=False, font=dict(size=14))],
        sliders=[dict(active=active, x=0.2, y=-0.03, len=0.8, xanchor="left", yanchor="top", pad=dict(t=10, b=0),
                      currentvalue=dict(prefix="unlearning step ", font=dict(size=15), xanchor="left"),
                      transition=dict(duration=300),
                      steps=[dict(label=str(s), method="animate",
                                  args=[[str(s)], dict(mode="immediate", frame=dict(duration=300, redraw=gl),
                                                       transition=dict(duration=300))]) for s in steps])])
    _base_layout(fig, height)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=90), legend=dict(orientation="v", x=1.01, xanchor="left",
                                                                        title=dict(text="class")))
    fig.update_annotations(font=dict(size=16))
    return fig


def figure_points(fig: go.Figure) -> int:
    """Number of markers drawn by a figure's data (not counting frames)."""
    return int(sum(len(t.x) if getattr(t, "x", None) is not None else 0 for t in fig.data))


# ----------------------------------------------------------------------------- distances
def _forget_rows(pts: pd.DataFrame, group: int = GROUP_FORGET) -> pd.DataFrame:
    d = pts[(pts["group"] == group) & np.isfinite(pts["dist_own"]) & np.isfinite(pts["dist_target"])]
    return d


def distance_mean_figure(pts: pd.DataFrame, height: int = 380) -> go.Figure:
    """Mean (line) and interquartile band (shade) of the Mahalanobis distance of forget samples to their own
    class and to their target class, over unlearning steps; forget-test samples dashed (CR)."""
    fig = go.Figure()
    styles = {"own": ("#1f77b4", "distance to own class"), "target": ("#d62728", "distance to target class")}
    any_rows = False
    for group, dash, suffix in ((GROUP_FORGET, "solid", "forget train"), (GROUP_FORGET_TEST, "dot", "forget test")):
        d = _forget_rows(pts, group)
        if not len(d):
            continue
        any_rows = True
        for kind, (color, label) in styles.items():
            g = d.groupby("step")[f"dist_{kind}"]
            stats = pd.DataFrame({"mean": g.mean(), "q1": g.quantile(0.25), "q3": g.quantile(0.75)}).sort_index()
            x = stats.index.to_numpy()
            if group == GROUP_FORGET:
                fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]),
                                         y=np.concatenate([stats["q3"].to_numpy(), stats["q1"].to_numpy()[::-1]]),
                                         fill="toself", fillcolor=color, opacity=0.15, line=dict(width=0),
                                         hoverinfo="skip", showlegend=False, name=f"{label} IQR"))
            fig.add_trace(go.Scatter(x=x, y=stats["mean"].to_numpy(), mode="lines+markers",
                                     line=dict(color=color, width=3, dash=dash), name=f"{label} ({suffix})",
                                     hovertemplate="step %{x}<br>mean %{y:.3f}<extra>" + f"{label} ({suffix})</extra>"))
    if not any_rows:
        return empty_figure("no Mahalanobis distances in these snapshots (the original run had no stats.npz)", height)
    _base_layout(fig, height, "Forget samples: Mahalanobis distance, mean and interquartile range")
    fig.update_xaxes(title="unlearning step")
    fig.update_yaxes(title="Mahalanobis distance")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return fig


def distance_samples_figure(pts: pd.DataFrame, highlight: int | None = None, max_lines: int = 80,
                            height: int = 380) -> go.Figure:
    """One faint line per forget sample (own class blue, target class red; first ``max_lines`` samples), the
    ``highlight`` point (probe row) drawn bold."""
    d = _forget_rows(pts)
    if not len(d):
        return empty_figure("no forget samples with distances", height)
    fig = go.Figure()
    keep = np.sort(d["point"].unique())[:max_lines]
    if highlight is not None and highlight not in keep:
        keep = np.append(keep, highlight)
    d = d[d["point"].isin(keep)].sort_values(["point", "step"])
    for kind, color, label in (("own", "#1f77b4", "own class"), ("target", "#d62728", "target class")):
        xs, ys = [], []
        for _, g in d.groupby("point"):
            xs += [g["step"].to_numpy(float), [np.nan]]
            ys += [g[f"dist_{kind}"].to_numpy(float), [np.nan]]
        fig.add_trace(go.Scatter(x=np.concatenate(xs), y=np.concatenate(ys), mode="lines",
                                 line=dict(color=color, width=1), opacity=0.25, name=f"to {label} (each sample)",
                                 hoverinfo="skip"))
    if highlight is not None:
        h = d[d["point"] == highlight]
        for kind, color, label in (("own", "#1f77b4", "own class"), ("target", "#d62728", "target class")):
            fig.add_trace(go.Scatter(x=h["step"].to_numpy(), y=h[f"dist_{kind}"].to_numpy(), mode="lines+markers",
                                     line=dict(color=color, width=4), name=f"#{highlight} to {label}"))
    _base_layout(fig, height, f"Per forget sample ({len(keep)} shown)")
    fig.update_xaxes(title="unlearning step")
    fig.update_yaxes(title="Mahalanobis distance")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return fig


def distance_scatter_figure(pts: pd.DataFrame, step: int, height: int = 380) -> go.Figure:
    """Each forget sample at ``step``: distance to its own class (x) vs to its target class (y). Below the
    diagonal a sample is closer to its target than to its own class."""
    d = _forget_rows(pts)
    d = d[d["step"] == step]
    if not len(d):
        return empty_figure(f"no forget samples with distances at step {step}", height)
    hit = (d["pred"] == d["target"]).to_numpy()
    fig = go.Figure()
    for mask, name, color in ((hit, "predicted = target", "#d62728"), (~hit, "other prediction", "#1f77b4")):
        s = d[mask]
        fig.add_trace(go.Scatter(x=s["dist_own"].to_numpy(), y=s["dist_target"].to_numpy(), mode="markers", name=name,
                                 marker=dict(size=8, color=color, opacity=0.7, line=dict(width=0.5, color="#fff")),
                                 customdata=np.column_stack([s["point"].to_numpy(), s["label"].to_numpy(),
                                                             s["target"].to_numpy(), s["pred"].to_numpy()]),
                                 hovertemplate="#%{customdata[0]} label %{customdata[1]} → target %{customdata[2]}"
                                               "<br>pred %{customdata[3]}<br>own %{x:.3f} · target %{y:.3f}"
                                               "<extra></extra>"))
    hi = float(np.nanmax(d[["dist_own", "dist_target"]].to_numpy())) * 1.05
    fig.add_trace(go.Scatter(x=[0, hi], y=[0, hi], mode="lines", line=dict(color="#999", dash="dash"),
                             name="equal distance", hoverinfo="skip"))
    _base_layout(fig, height, f"Own vs target class at step {step}")
    fig.update_xaxes(title="distance to own class", range=[0, hi])
    fig.update_yaxes(title="distance to target class", range=[0, hi])
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return fig


def assignment_matrix_figure(rows: np.ndarray, cols: np.ndarray, class_names: list[str], row_title: str,
                             col_title: str, title: str, height: int = 380) -> go.Figure:
    """Counts of (row class, column class) pairs as a heatmap with the counts written in the cells."""
    rows, cols = np.asarray(rows, int), np.asarray(cols, int)
    ok = (rows >= 0) & (cols >= 0)
    rows, cols = rows[ok], cols[ok]
    if not len(rows):
        return empty_figure("no assignments recorded", height)
    k = max(len(class_names), int(rows.max()) + 1, int(cols.max()) + 1)
    names = list(class_names) + [str(i) for i in range(len(class_names), k)]
    r_used, c_used = np.unique(rows), np.arange(k)
    m = np.zeros((len(r_used), k), int)
    for i, r in enumerate(r_used):
        m[i] = np.bincount(cols[rows == r], minlength=k)[:k]
    fig = go.Figure(go.Heatmap(z=m, x=[names[c] for c in c_used], y=[names[r] for r in r_used], colorscale="Blues",
                               text=m, texttemplate="%{text}", hovertemplate=f"{row_title} %{{y}}<br>{col_title} "
                                                                              "%{x}<br>%{z} samples<extra></extra>",
                               showscale=False, xgap=1, ygap=1))
    _base_layout(fig, max(220, min(height, 120 + 40 * len(r_used))), title)
    fig.update_xaxes(title=col_title, type="category")
    fig.update_yaxes(title=row_title, type="category", autorange="reversed")
    return fig


# ----------------------------------------------------------------------------- curves
CURVE_TITLES = {
    "probe/acc/forget_train": "forget accuracy (train, probe)", "probe/acc/retain_test": "retain accuracy (test, probe)",
    "probe/acc/forget_test": "forget-class test accuracy (probe)", "acc/forget_train": "forget accuracy (train, all)",
    "mia/loss_lr/acc": "MIA: loss-based LR attack accuracy", "mia/conf_thr/acc": "MIA: confidence threshold accuracy",
    "dist/own": "mean distance to own class", "dist/target": "mean distance to target class",
}


def curves_figure(series: dict[str, pd.DataFrame], metrics: list[str], colors: dict[str, str] | None = None,
                  dashes: dict[str, str] | None = None, height_per_row: int = 300) -> go.Figure:
    """One panel per metric (two per row), one line per run; ``series`` maps a run label to a frame with a
    ``step`` column and metric columns (NaN rows are dropped per metric)."""
    metrics = [m for m in metrics if any(m in df.columns and df[m].notna().any() for df in series.values())]
    if not metrics:
        return empty_figure("none of the chosen metrics is recorded by these runs")
    ncols = 2 if len(metrics) > 1 else 1
    nrows = math.ceil(len(metrics) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[CURVE_TITLES.get(m, m) for m in metrics],
                        vertical_spacing=0.16 / max(nrows - 1, 1) if nrows > 1 else 0.1, horizontal_spacing=0.08)
    colors = colors or {}
    shown = set()
    for i, m in enumerate(metrics):
        r, c = i // ncols + 1, i % ncols + 1
        for label, df in series.items():
            if m not in df.columns:
                continue
            d = df[["step", m]].dropna().sort_values("step")
            if not len(d):
                continue
            fig.add_trace(go.Scatter(x=d["step"].to_numpy(), y=d[m].to_numpy(float), mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=label not in shown,
                                     line=dict(color=colors.get(label), width=2.5,
                                               dash=(dashes or {}).get(label, "solid")),
                                     marker=dict(size=5),
                                     hovertemplate=f"{label}<br>step %{{x}}<br>{m} %{{y:.3f}}<extra></extra>"),
                          row=r, col=c)
            shown.add(label)
        if m.startswith(("acc/", "probe/acc/", "mia/")):
            fig.update_yaxes(range=[-0.03, 1.03], row=r, col=c)
        fig.update_xaxes(title="step", row=r, col=c)
    _base_layout(fig, max(320, height_per_row * nrows + 60))
    fig.update_layout(legend=dict(orientation="h", y=-0.08 if nrows > 1 else -0.2))
    return fig


# ----------------------------------------------------------------------------- compare
def _mean_std(agg: pd.DataFrame, metric: str):
    mean = agg.get((metric, "mean"))
    std = agg.get((metric, "std"))
    return mean, std


def metric_bar_figure(agg: pd.DataFrame, metric: str, colors: dict[str, str] | None = None,
                      height: int = 360) -> go.Figure:
    """Mean ± std of ``metric`` per group (agg: index = group label, columns (metric, mean|std|n))."""
    mean, std = _mean_std(agg, metric)
    if mean is None or mean.isna().all():
        return empty_figure(f"no run records {metric}", height)
    labels = [str(i) for i in agg.index]
    fig = go.Figure(go.Bar(x=labels, y=mean.to_numpy(float), error_y=dict(type="data", array=std.fillna(0).to_numpy(float)),
                           marker_color=[(colors or {}).get(str(lbl).split(" · ")[0], "#1f77b4") for lbl in labels],
                           hovertemplate="%{x}<br>%{y:.4f}<extra></extra>"))
    _base_layout(fig, height, f"{metric}: mean ± std")
    if metric.startswith(("acc/", "mia/", "aus")):
        fig.update_yaxes(range=[0, 1.05])
    return fig


def aus_time_figure(agg: pd.DataFrame, colors: dict[str, str] | None = None, x: str = "time/unlearn_s",
                    y: str = "aus", height: int = 420) -> go.Figure:
    """Each group at (mean time, mean AUS) with ± std error bars both ways; time on a log axis."""
    mx, sx = _mean_std(agg, x)
    my, sy = _mean_std(agg, y)
    if mx is None or my is None or (mx.isna() | my.isna()).all():
        return empty_figure(f"needs both {y} and {x} (run `scarlab evaluate` on the runs)", height)
    fig = go.Figure()
    for label in agg.index:
        if not (np.isfinite(mx[label]) and np.isfinite(my[label])):
            continue
        color = (colors or {}).get(str(label).split(" · ")[0], "#1f77b4")
        fig.add_trace(go.Scatter(x=[mx[label]], y=[my[label]], mode="markers+text", text=[str(label)],
                                 textposition="top center", name=str(label),
                                 error_x=dict(type="data", array=[0 if pd.isna(sx[label]) else sx[label]]),
                                 error_y=dict(type="data", array=[0 if pd.isna(sy[label]) else sy[label]]),
                                 marker=dict(size=14, color=color, line=dict(width=1, color="#222")),
                                 hovertemplate=f"{label}<br>{x} %{{x:.3g}}<br>{y} %{{y:.3f}}<extra></extra>"))
    _base_layout(fig, height, f"{y} vs {x} (better: up and left)")
    fig.update_xaxes(title=x, type="log")
    fig.update_yaxes(title=y)
    fig.update_layout(showlegend=False)
    return fig


def per_class_heatmap(matrix: pd.DataFrame, title: str, height: int = 360) -> go.Figure:
    """Rows = methods (or runs), columns = classes, values = accuracy in [0, 1]."""
    if matrix is None or not matrix.size:
        return empty_figure("no per-class accuracies", height)
    z = matrix.to_numpy(float)
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in matrix.columns], y=[str(i) for i in matrix.index],
                               zmin=0, zmax=1, colorscale="RdYlGn", text=np.round(z, 2), texttemplate="%{text}",
                               hovertemplate="%{y}<br>class %{x}<br>accuracy %{z:.3f}<extra></extra>",
                               xgap=1, ygap=1, colorbar=dict(title="acc")))
    _base_layout(fig, max(240, min(height, 140 + 36 * len(matrix))), title)
    fig.update_xaxes(title="class", type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig
