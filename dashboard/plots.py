"""Pure plotly figure builders for the dashboard: DataFrames in, ``go.Figure`` out, no Streamlit calls.

Arrays go into figures as numpy arrays, which plotly (>= 6) ships to the browser as base64 typed arrays, so a
20-frame × 3,000-point animation stays a few MB of JSON and serialises in milliseconds.
"""
from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from scarlab import results as R
from scarlab.runs import GROUPS

GROUP_FORGET, GROUP_RETAIN, GROUP_FORGET_TEST = map(GROUPS.index, ("forget_train", "retain_test", "forget_test"))
CLASS_PALETTE = qualitative.D3 + qualitative.Pastel + qualitative.Dark24  # distinct first ten, then more
METHOD_FIXED = {"original": "#7f7f7f", "retrained": "#222222", "scar": "#d62728", "scar_self": "#ff7f0e"}
METHOD_PALETTE = qualitative.Bold + qualitative.Safe + qualitative.Vivid
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=14)
MAX_CLASS_TRACES = 20  # above this (CIFAR-100, Tiny-ImageNet) retain points share one trace and a colour scale
CHANCE_LINE = dict(color="#555", width=1.5, dash="dash")
CHANCE_LABEL = "dashed"  # how a figure's axis title names its reference line (CHANCE_LINE)


def class_colors(k: int) -> list[str]:
    return [CLASS_PALETTE[i % len(CLASS_PALETTE)] for i in range(max(k, 1))]


def method_colors(names, methods=None) -> dict[str, str]:
    """A colour per name (a method, or a label such as ``scar · lr=2.5e-4`` with its method in ``methods``): the
    first name of a method with a fixed colour gets it, every other name the next palette colour."""
    out, used, i = {}, set(), 0
    for name, method in zip(names, methods if methods is not None else names):
        if name in out:
            continue
        if method in METHOD_FIXED and method not in used:
            out[name] = METHOD_FIXED[method]
            used.add(method)
        else:
            out[name] = METHOD_PALETTE[i % len(METHOD_PALETTE)]
            i += 1
    return out


def _discrete_scale(colors: list[str]) -> list[list]:
    """A colour scale mapping integer i (with cmin=-0.5, cmax=k-0.5) to colors[i]."""
    k = len(colors)
    scale = []
    for i, c in enumerate(colors):
        scale += [[i / k, c], [(i + 1) / k, c]]
    return scale


# Styled by hand rather than with template="plotly_white": assigning a named template copies and validates
# the whole template, ~0.1-0.2 s per figure on this CPU, more than building the figure.
LIGHT = dict(paper_bgcolor="white", plot_bgcolor="white", font=FONT, hoverlabel=dict(font_size=14))
AXIS = dict(gridcolor="#ececec", zerolinecolor="#d0d0d0", linecolor="#c8c8c8", automargin=True)
BOTTOM_LEGEND = dict(orientation="h", x=0, xanchor="left", y=-0.32, yanchor="top")


def _base_layout(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(**LIGHT, height=height, margin=dict(l=20, r=20, t=60, b=20),
                      title=dict(text=title, x=0.01, font=dict(size=18)) if title else None,
                      legend=dict(itemsizing="constant"))
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
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
_TA_DTYPES = {np.dtype("float32"): "f4", np.dtype("float64"): "f8", np.dtype("int32"): "i4", np.dtype("int16"): "i2",
              np.dtype("int8"): "i1", np.dtype("uint8"): "u1"}


def typed_array(a: np.ndarray) -> dict:
    """A numpy array as plotly's base64 typed-array spec ({dtype, bdata[, shape]}): copying and validating a
    figure then costs nothing per element, which keeps a 20-frame × 3,000-point figure fast to build."""
    a = np.ascontiguousarray(a)
    if a.dtype not in _TA_DTYPES:
        a = a.astype(np.float64 if a.dtype.kind == "f" else np.int32)
    out = {"dtype": _TA_DTYPES[a.dtype], "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.ndim > 1:
        out["shape"] = ", ".join(map(str, a.shape))
    return out


def decode_array(v) -> np.ndarray:
    """Inverse of ``typed_array`` (also accepts plain lists): for tests and point counts."""
    if isinstance(v, dict) and "bdata" in v:
        dt = np.dtype({"f4": "<f4", "f8": "<f8", "i1": "i1", "i2": "<i2", "i4": "<i4", "u1": "u1", "u1c": "u1",
                       "u2": "<u2", "u4": "<u4"}[v["dtype"]])
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=dt)
        if v.get("shape"):
            a = a.reshape([int(n) for n in str(v["shape"]).split(",")])
        return a
    return np.asarray(v if v is not None else [])


class _Steps:
    """The embedding as dense per-step arrays over a fixed point order (points present at every step)."""

    def __init__(self, emb: pd.DataFrame):
        self.steps = sorted(int(s) for s in emb["step"].unique())
        counts = emb.groupby("point")["step"].nunique()
        keep = counts.index[counts.to_numpy() == len(self.steps)]
        d = emb[emb["point"].isin(keep)].sort_values(["step", "point"])
        n = len(keep)
        first = d.iloc[:n]
        self.group = first["group"].to_numpy(np.int32)
        self.label = first["label"].to_numpy(np.int32)
        self.target = first["target"].to_numpy(np.int32)
        self.point = first["point"].to_numpy(np.int32)
        self.index = first["index"].to_numpy(np.int64).astype(np.int32)
        shape = (len(self.steps), n)
        self.x = d["x"].to_numpy(np.float32).reshape(shape)
        self.y = d["y"].to_numpy(np.float32).reshape(shape)
        self.pred = d["pred"].to_numpy(np.int32).reshape(shape)

    def at(self, step: int) -> int:
        return self.steps.index(step)


def _slices(group: np.ndarray, label: np.ndarray, k: int, show_forget_test: bool) -> list[tuple]:
    """Which points go to which trace, the same for every step: [(kind, class or None, indices)]."""
    out = []
    retain = group == GROUP_RETAIN
    if k <= MAX_CLASS_TRACES:
        out += [("retain", c, np.flatnonzero(retain & (label == c))) for c in range(k)]
    else:
        out.append(("retain", None, np.flatnonzero(retain)))
    out.append(("forget", GROUP_FORGET, np.flatnonzero(group == GROUP_FORGET)))
    ft = np.flatnonzero(group == GROUP_FORGET_TEST) if show_forget_test else np.zeros(0, int)
    out.append(("forget", GROUP_FORGET_TEST, ft))
    return out


def _panel(xs, ys, preds, base, slices, k, names, colors, axis: int, legend: bool, gl: bool) -> tuple[list, list]:
    """(full traces, animation updates) of one panel; ``base`` = (group, label, target, point, index)."""
    group, label, target, point, index = base
    kind_type = "scattergl" if gl else "scatter"
    scale = _discrete_scale(colors[:k])
    full, update = [], []
    for kind, c, idx in slices:
        custom = typed_array(np.column_stack([point[idx], label[idx], preds[idx], target[idx], index[idx]])
                             .astype(np.int32)) if len(idx) else []
        xy = dict(x=typed_array(xs[idx]), y=typed_array(ys[idx]), customdata=custom)
        ax = dict(xaxis=f"x{axis}" if axis > 1 else "x", yaxis=f"y{axis}" if axis > 1 else "y")
        if kind == "retain" and c is not None:
            name = names[c] if names[c] == str(c) else f"{c} · {names[c]}"
            full.append(dict(type=kind_type, mode="markers", name=name, legendgroup=f"class{c}", showlegend=legend,
                             marker=dict(size=6, color=colors[c], opacity=0.55, line=dict(width=0)),
                             hovertemplate=_HOVER[GROUP_RETAIN], **xy, **ax))
            update.append(dict(type=kind_type, **xy))
        elif kind == "retain":
            color = typed_array(label[idx])
            full.append(dict(type=kind_type, mode="markers", name="retain", showlegend=legend,
                             marker=dict(size=5, color=color, colorscale="Turbo", cmin=0, cmax=k - 1, opacity=0.5),
                             hovertemplate=_HOVER[GROUP_RETAIN], **xy, **ax))
            update.append(dict(type=kind_type, **xy))
        else:
            g = c
            name, symbol, size = (("forget", "diamond", 10) if g == GROUP_FORGET
                                  else ("forget, test set", "triangle-up", 9))
            color = typed_array(preds[idx])
            marker = dict(size=size, symbol=symbol, opacity=0.95, color=color,
                          line=dict(width=1.5, color="#111" if g == GROUP_FORGET else "#555"))
            marker.update(dict(colorscale=scale, cmin=-0.5, cmax=k - 0.5) if k <= MAX_CLASS_TRACES
                          else dict(colorscale="Turbo", cmin=0, cmax=k - 1))
            full.append(dict(type=kind_type, mode="markers", name=name, legendgroup=name, showlegend=legend,
                             marker=marker, hovertemplate=_HOVER[g], **xy, **ax))
            update.append(dict(type=kind_type, marker=dict(color=color), **xy))
    return full, update


def _range(values: np.ndarray, pad: float = 0.06) -> list[float]:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return [-1.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 1e-6)
    return [lo - pad * span, hi + pad * span]


def migration_figure(emb: pd.DataFrame, step: int | None = None, oracle: pd.DataFrame | None = None,
                     class_names: list[str] | None = None, method: str = "unlearned", show_forget_test: bool = True,
                     height: int = 640, gl: bool | None = None) -> go.Figure:
    """Side-by-side UMAP panels: original (first step) | unlearned (animated over steps) | retrained oracle.

    emb: embedding rows of every step (step, point, group, label, pred, target, index, x, y).
    step: the step the middle panel shows first (default: the last); the figure's frames hold every step, and
    its play button and slider animate the middle panel only. oracle: the retrained run's rows (or None).
    Retain-test points are coloured by class (one legend entry each); forget points are outlined diamonds
    (train) and triangles (test) filled with the colour of the class the model predicts at that step.
    Frame names are the step numbers as strings.
    """
    if emb is None or not len(emb):
        return empty_figure("no snapshots in this embedding")
    S = _Steps(emb)
    if not len(S.point):
        return empty_figure("no probe point is present at every snapshot")
    steps = S.steps
    step = steps[-1] if step is None or int(step) not in steps else int(step)
    k = int(max(S.label.max(), S.pred.max(), S.target.max(), -1 if oracle is None or not len(oracle)
                else oracle["pred"].max())) + 1
    names = [str(n) for n in (class_names or [])][:k]
    names += [str(i) for i in range(len(names), k)]
    colors = class_colors(k)
    gl = (len(S.point) * (3 + len(steps)) > 150_000) if gl is None else gl
    base = (S.group, S.label, S.target, S.point, S.index)
    slices = _slices(S.group, S.label, k, show_forget_test)
    panels = [(f"Original · step {steps[0]}", S.x[0], S.y[0], S.pred[0], base, slices),
              (f"Unlearned · {method}", S.x[S.at(step)], S.y[S.at(step)], S.pred[S.at(step)], base, slices)]
    if oracle is not None and len(oracle):
        o = _Steps(oracle[oracle["step"] == oracle["step"].max()])
        obase = (o.group, o.label, o.target, o.point, o.index)
        panels.append(("Retrained oracle", o.x[0], o.y[0], o.pred[0], obase,
                       _slices(o.group, o.label, k, show_forget_test)))
    n, gap = len(panels), 0.025
    width = (1 - gap * (n - 1)) / n
    data, layout, mid = [], {}, []
    axis_style = dict(showticklabels=False, showgrid=False, zeroline=False, showline=True, linecolor="#ddd",
                      mirror=True)
    annotations = []
    for i, (title, xs, ys, preds, b, sl) in enumerate(panels, start=1):
        full, _ = _panel(xs, ys, preds, b, sl, k, names, colors, i, legend=i == 1, gl=gl)
        if i == 2:
            mid = list(range(len(data), len(data) + len(full)))
        data += full
        lo = (i - 1) * (width + gap)
        if i < 3:
            xr, yr = _range(S.x), _range(S.y)
        else:
            xr, yr = _range(xs), _range(ys)
        suffix = "" if i == 1 else str(i)
        layout[f"xaxis{suffix}"] = dict(domain=[lo, lo + width], range=xr, anchor=f"y{suffix}", **axis_style)
        layout[f"yaxis{suffix}"] = dict(domain=[0, 1], range=yr, anchor=f"x{suffix}", **axis_style)
        annotations.append(dict(text=title, x=lo + width / 2, y=1.0, xref="paper", yref="paper", xanchor="center",
                                yanchor="bottom", showarrow=False, font=dict(size=16)))
    # Frames list every trace, unchanged ones as an empty placeholder: plotly.js (2.x/3.x) drops the points of
    # the other subplots when a redraw-free animation names only a subset of traces.
    frames = []
    for j, s in enumerate(steps):
        _, upd = _panel(S.x[j], S.y[j], S.pred[j], base, slices, k, names, colors, 2, legend=False, gl=gl)
        fdata = [dict(type=t["type"]) for t in data]
        for i, u in zip(mid, upd):
            fdata[i] = u
        frames.append(dict(name=str(s), data=fdata, traces=list(range(len(data)))))
    redraw = bool(gl)
    play = dict(label="▶ Play", method="animate",
                args=[None, dict(frame=dict(duration=700, redraw=redraw),
                                 transition=dict(duration=450, easing="cubic-in-out"), fromcurrent=True,
                                 mode="immediate")])
    pause = dict(label="❚❚ Pause", method="animate",
                 args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate",
                                    transition=dict(duration=0))])
    layout.update(
        **LIGHT, height=height, annotations=annotations,
        margin=dict(l=10, r=10, t=70, b=90), showlegend=True,
        legend=dict(orientation="h", x=0.0, xanchor="left", y=1.06, yanchor="bottom", itemsizing="constant",
                    font=dict(size=14)),
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.03, xanchor="left", yanchor="top",
                          pad=dict(t=22, r=10), buttons=[play, pause], showactive=False, font=dict(size=14))],
        sliders=[dict(active=steps.index(step), x=0.2, y=-0.03, len=0.8, xanchor="left", yanchor="top",
                      pad=dict(t=10, b=0), currentvalue=dict(prefix="unlearning step ", font=dict(size=15),
                                                             xanchor="left"),
                      transition=dict(duration=300),
                      steps=[dict(label=str(s), method="animate",
                                  args=[[str(s)], dict(mode="immediate", frame=dict(duration=300, redraw=redraw),
                                                       transition=dict(duration=300))]) for s in steps])])
    return go.Figure(dict(data=data, layout=layout, frames=frames))


def figure_points(fig) -> int:
    """Number of markers drawn by a figure's data, not counting frames (a go.Figure or its dict/JSON form)."""
    d = fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig
    return int(sum(len(decode_array(t.get("x"))) for t in d.get("data", [])))


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
    fig.update_layout(legend=BOTTOM_LEGEND, margin=dict(b=130))
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
    fig.update_layout(legend=BOTTOM_LEGEND, margin=dict(b=130))
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
    fig.update_layout(legend=BOTTOM_LEGEND, margin=dict(b=130))
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
def _translucent(color: str | None, alpha: float = 0.15) -> str:
    """A plotly colour (hex or rgb) at ``alpha`` opacity, for interval bands (grey without one)."""
    from plotly.colors import hex_to_rgb, unlabel_rgb

    if not color:
        return f"rgba(128,128,128,{alpha})"
    rgb = hex_to_rgb(color) if color.startswith("#") else unlabel_rgb(color)
    return f"rgba({int(rgb[0])},{int(rgb[1])},{int(rgb[2])},{alpha})"


CURVE_TITLES = {
    "probe/acc/forget_train": "forget accuracy (train, probe)", "probe/acc/retain_test": "retain accuracy (test, probe)",
    "probe/acc/forget_test": "forget-class test accuracy (probe)", "acc/forget_train": "forget accuracy (train, all)",
    "mia/loss_lr/acc": "MIA: loss-based LR attack accuracy (chance 0.5)",
    "mia/conf_thr/acc": "MIA: confidence threshold accuracy (chance 0.5)",
    "dist/own": "mean distance to own class", "dist/target": "mean distance to target class",
    "ulira/auc": "U-LiRA: attack AUC, unlearned vs retrained shadows (chance 0.5)",
    "ulira/tpr@0.01": "U-LiRA: TPR at 1 % FPR (chance 0.01)",
    "ulira/eps_mean": "U-LiRA: mean per-example ε (0: indistinguishable)",
    "ulira/log_lr_mean": "U-LiRA: mean log-LR of the forget examples (0: A and B alike)",
    "ulira/flagged@0.01": "U-LiRA: fraction flagged at 1 % FPR (chance 0.01)",
}


def curves_figure(series: dict[str, pd.DataFrame], metrics: list[str], colors: dict[str, str] | None = None,
                  dashes: dict[str, str] | None = None, height_per_row: int = 300,
                  chance: dict[str, float] | None = None) -> go.Figure:
    """One panel per metric (two per row), one line per run; ``series`` maps a run label to a frame with a
    ``step`` column and metric columns (NaN rows are dropped per metric). Panels of a metric with a chance
    level (``chance``, default the constant ones of ``scarlab.results.METRICS``) get a dashed horizontal line."""
    if chance is None:
        chance = {m: R.chance_of(m, {}) for m in metrics}
    metrics = [m for m in metrics if any(m in df.columns and df[m].notna().any() for df in series.values())]
    if not metrics:
        return empty_figure("none of the chosen metrics is recorded by these runs")
    ncols = 2 if len(metrics) > 1 else 1
    nrows = math.ceil(len(metrics) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[CURVE_TITLES.get(m, m) for m in metrics],
                        vertical_spacing=min(0.12, 0.3 / max(nrows - 1, 1)), horizontal_spacing=0.08)
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
            if f"{m}_low" in df.columns and f"{m}_high" in df.columns:  # its interval (the audit's), as a band
                band = df[["step", f"{m}_low", f"{m}_high"]].dropna().sort_values("step")
                fig.add_trace(go.Scatter(
                    x=np.r_[band["step"].to_numpy(), band["step"].to_numpy()[::-1]],
                    y=np.r_[band[f"{m}_high"].to_numpy(float), band[f"{m}_low"].to_numpy(float)[::-1]],
                    fill="toself", fillcolor=_translucent(colors.get(label)), line=dict(width=0),
                    hoverinfo="skip", showlegend=False, legendgroup=label, name=f"{label} interval"), row=r, col=c)
            fig.add_trace(go.Scatter(x=d["step"].to_numpy(), y=d[m].to_numpy(float), mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=label not in shown,
                                     line=dict(color=colors.get(label), width=2.5,
                                               dash=(dashes or {}).get(label, "solid")),
                                     marker=dict(size=5),
                                     hovertemplate=f"{label}<br>step %{{x}}<br>{m} %{{y:.3f}}<extra></extra>"),
                          row=r, col=c)
            shown.add(label)
        if m.startswith(("acc/", "probe/acc/", "mia/", "ulira/flagged", "ulira/auc", "ulira/tpr")):
            fig.update_yaxes(range=[-0.03, 1.03], row=r, col=c)
        level = chance.get(m)
        if level is not None and math.isfinite(level):
            fig.add_hline(y=level, line=CHANCE_LINE, row=r, col=c, annotation_text=f"chance {level:.2f}",
                          annotation_position="bottom right", annotation_font=dict(size=12, color="#555"))
        if i + ncols >= len(metrics):  # bottom panel of its column
            fig.update_xaxes(title="unlearning step", row=r, col=c)
    _base_layout(fig, max(340, height_per_row * nrows + 120))
    fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=1.0 + 40 / (height_per_row * nrows),
                                  yanchor="bottom"), margin=dict(t=80))
    return fig


# ----------------------------------------------------------------------------- compare
def _unit(metric: str) -> tuple[float, str]:
    """(scale, axis title) of a metric: ``scarlab.results.METRICS`` says how it is shown."""
    m = R.METRIC.get(metric)
    return (m.scale, m.label) if m is not None else (1.0, metric)


def chance_levels(agg: pd.DataFrame, metric: str) -> pd.Series | None:
    """The chance level of attack ``metric`` for each row of ``agg`` (None for metrics that are no attack, or
    when the aggregate lacks the column that holds it), by :func:`scarlab.results.chance_of`."""
    if R.METRIC.get(metric) is None or R.METRIC[metric].chance is None:
        return None
    levels = pd.Series([R.chance_of(metric, row) for row in agg.to_dict("records")], index=agg.index, dtype=float)
    return levels if levels.notna().any() else None


def metric_bar_figure(agg: pd.DataFrame, metric: str, colors: dict[str, str] | None = None,
                      height: int = 360) -> go.Figure:
    """Mean ± std of ``metric`` per row of ``agg`` (``scarlab.results.aggregate``'s columns ``metric`` and
    ``metric/std``; the index names the bars, ``colors`` maps those names to colours), in the metric's unit.

    Attack accuracies get their chance level as a dashed line across each bar (trace "chance"), so 75 % on a 3:1
    attack set is not read as leakage."""
    if metric not in agg.columns or agg[metric].isna().all():
        return empty_figure(f"no run records {metric}", height)
    scale, title = _unit(metric)
    labels = [str(i) for i in agg.index]
    std = agg.get(f"{metric}/std", pd.Series(0.0, index=agg.index)).fillna(0)
    fig = go.Figure(go.Bar(x=labels, y=agg[metric].to_numpy(float) * scale,
                           error_y=dict(type="data", array=std.to_numpy(float) * scale),
                           marker_color=[(colors or {}).get(lbl, "#1f77b4") for lbl in labels],
                           hovertemplate="%{x}<br>%{y:.4g}<extra></extra>", name=metric, showlegend=False))
    chance = chance_levels(agg, metric)
    if chance is not None:
        _bar_levels(fig, chance.to_numpy(float) * scale, "chance", CHANCE_LINE, "chance %{y:.4g}")
        fig.update_layout(showlegend=True, legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"))
    _base_layout(fig, height, f"{title}: mean ± std" + (" (dashed: chance)" if chance is not None else ""))
    fig.update_yaxes(title=title)
    if scale == 100 or metric == "aus":  # accuracies and AUS live in [0, 1]
        fig.update_yaxes(range=[0, 1.05 * scale])
    return fig


def aus_time_figure(agg: pd.DataFrame, colors: dict[str, str] | None = None, x: str = "time/unlearn_s",
                    y: str = "aus", height: int = 420) -> go.Figure:
    """Each row of ``agg`` at (mean time, mean AUS) with ± std error bars both ways; time on a log axis."""
    if x not in agg.columns or y not in agg.columns or (agg[x].isna() | agg[y].isna()).all():
        return empty_figure(f"needs both {y} and {x} (run `scarlab evaluate` on the runs)", height)
    (sx, tx), (sy, ty) = _unit(x), _unit(y)
    fig = go.Figure()
    for label, row in agg.iterrows():
        if not (np.isfinite(row[x]) and np.isfinite(row[y])):
            continue
        ex, ey = (0.0 if pd.isna(row.get(f"{k}/std")) else float(row[f"{k}/std"]) for k in (x, y))
        fig.add_trace(go.Scatter(x=[row[x] * sx], y=[row[y] * sy], mode="markers+text", text=[str(label)],
                                 textposition="top center", name=str(label), cliponaxis=False,
                                 error_x=dict(type="data", array=[ex * sx]), error_y=dict(type="data", array=[ey * sy]),
                                 marker=dict(size=14, color=(colors or {}).get(str(label), "#1f77b4"),
                                             line=dict(width=1, color="#222")),
                                 hovertemplate=f"{label}<br>{tx} %{{x:.3g}}<br>{ty} %{{y:.3f}}<extra></extra>"))
    _base_layout(fig, height, f"{ty} vs {tx} (better: up and left)")
    fig.update_xaxes(title=tx, type="log")
    fig.update_yaxes(title=ty)
    fig.update_layout(showlegend=False, margin=dict(l=20, r=90, t=60, b=20))  # room for labels at the edges
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


# ----------------------------------------------------------------------------- export
def figure_html(fig: go.Figure) -> str:
    """The figure as one self-contained HTML page: plotly.js inlined (opens offline, e.g. in slides), every
    animation frame included, nothing played until its play button is pressed."""
    return fig.to_html(include_plotlyjs=True, full_html=True, auto_play=False,
                       config={"displaylogo": False, "responsive": True})


_LINK_TAG = re.compile(r"<(?=\s*/?\s*a\b)", re.IGNORECASE)


def without_links(fig: go.Figure) -> go.Figure:
    """``fig`` with every plotly link tag (``<a href=…>``) in its text — names, ticks, titles, hover text and
    customdata — escaped so that it shows as characters. These builders make no links, so one in a figure came
    from run text (a method, run or class name), which plotly would otherwise render as a clickable link. Returns
    ``fig`` itself when it holds none."""
    found = []

    def text(v):
        if isinstance(v, str) and _LINK_TAG.search(v):
            found.append(v)
            return _LINK_TAG.sub("&lt;", v)
        return v

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.ndarray) and v.dtype.kind in "OU":
            return np.frompyfunc(text, 1, 1)(v)
        return text(v)

    cleaned = clean(fig.to_dict())
    return go.Figure(cleaned) if found else fig


# ----------------------------------------------------------------------------- privacy (U-LiRA audit)
def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], colors: dict[str, str] | None = None,
               height: int = 420, control: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> go.Figure:
    """ROC of the held-out U-LiRA attack per name (``name -> (fpr, tpr)`` on audit.json's grid, which starts at
    the smallest FPR the K·N negatives resolve), both axes logarithmic, with the chance diagonal TPR = FPR dashed;
    ``control``: the same attack on the control examples, dotted in the same colour."""
    curves = {n: (f, t) for n, (f, t) in curves.items() if len(f)}
    if not curves:
        return empty_figure("no audited run has a ROC", height)
    fig = go.Figure()
    lo = 1.0
    for name, (fpr, tpr), dash, suffix in [(n, c, "solid", "") for n, c in curves.items()] + \
            [(n, c, "dot", " · control") for n, c in (control or {}).items() if len(c[0])]:
        ok = (fpr > 0) & (tpr > 0)
        if not ok.any():
            continue
        lo = min(lo, float(fpr[ok].min()))
        fig.add_trace(go.Scatter(x=fpr[ok], y=tpr[ok], mode="lines", name=name + suffix,
                                 line=dict(color=(colors or {}).get(name), width=2.5, dash=dash),
                                 hovertemplate=f"{name}{suffix}<br>FPR %{{x:.2g}}<br>TPR %{{y:.3g}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[lo, 1.0], y=[lo, 1.0], mode="lines", line=CHANCE_LINE, name="chance (TPR = FPR)",
                             hoverinfo="skip"))
    _base_layout(fig, height, "ROC: forget (solid), control (dotted), chance (dashed)")
    fig.update_xaxes(type="log", title="false positive rate", range=[math.log10(lo), 0])
    fig.update_yaxes(type="log", title="true positive rate", range=[math.log10(lo), 0])
    fig.update_layout(legend=BOTTOM_LEGEND, margin=dict(b=40))
    return fig


def _interval_bars(names: list[str], values, lows, highs, color, label: str, **bar) -> go.Bar:
    v = np.asarray(values, float)
    lo, hi = np.asarray(lows, float), np.asarray(highs, float)
    return go.Bar(x=names, y=v, name=label, marker_color=color,
                  error_y=dict(type="data", symmetric=False, array=np.nan_to_num(hi - v, nan=0.0).clip(0),
                               arrayminus=np.nan_to_num(v - lo, nan=0.0).clip(0)),
                  customdata=np.c_[lo, hi],
                  hovertemplate="%{x}<br>%{y:.4g} [%{customdata[0]:.4g}, %{customdata[1]:.4g}]<extra>" + label
                  + "</extra>", **bar)


def _bar_levels(fig: go.Figure, levels, name: str, line: dict, hover: str) -> None:
    """One segment across each categorical bar at its level (a bar spans its category ± 0.4; None breaks the
    line between bars), drawn on an overlaid numeric x axis: chance levels, ceilings."""
    xs, ys = [], []
    for i, c in enumerate(levels):
        xs += [i - 0.45, i + 0.45, None]
        ys += [c, c, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=line, name=name, xaxis="x2",
                             hovertemplate=f"{hover}<extra></extra>"))
    fig.update_layout(xaxis2=dict(overlaying="x", range=[-0.5, len(levels) - 0.5], visible=False))


def tpr_figure(table: pd.DataFrame, colors: dict[str, str] | None = None, height: int = 380) -> go.Figure:
    """TPR at 1 % and at 0.1 % FPR per row of ``table`` (index: names; columns ``ulira/tpr@0.01`` and
    ``ulira/tpr@0.001`` with ``_low`` / ``_high``), in %, with the chance level (the FPR itself) dashed."""
    keys = [k for k in ("ulira/tpr@0.01", "ulira/tpr@0.001") if k in table.columns and table[k].notna().any()]
    if not keys:  # an unresolvable TPR is NaN (ulira, item 9)
        return empty_figure("no audited run resolves TPR at these FPRs with its K", height)
    # short panel titles: the metrics' full labels overlapped each other in a half-width column (Chromium, 1500 px)
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[f"TPR @ {float(k.split('@')[1]) * 100:g} % FPR"
                                                                for k in keys],
                        horizontal_spacing=0.1)
    names = [str(i) for i in table.index]
    for c, key in enumerate(keys, start=1):
        scale, chance = R.METRIC[key].scale, R.METRIC[key].chance
        col = lambda k: table.get(k, pd.Series(np.nan, index=table.index)).to_numpy(float) * scale  # noqa: E731
        fig.add_trace(_interval_bars(names, col(key), col(f"{key}_low"), col(f"{key}_high"),
                                     [(colors or {}).get(n, "#1f77b4") for n in names], key, showlegend=False),
                      row=1, col=c)
        fig.add_hline(y=chance * scale, line=CHANCE_LINE, row=1, col=c, annotation_text=f"chance {chance * scale:g} %",
                      annotation_position="top right", annotation_font=dict(size=12, color="#555"))
        fig.update_yaxes(title="TPR %", rangemode="tozero", row=1, col=c)
    _base_layout(fig, height)  # the subplot titles name each panel; a figure title above them overlapped
    fig.update_layout(margin=dict(t=50))
    return fig


def eps_figure(table: pd.DataFrame, colors: dict[str, str] | None = None, height: int = 380) -> go.Figure:
    """ε mean and median per row of ``table`` (columns ``ulira/eps_mean``, ``ulira/eps_median`` with ``_low`` /
    ``_high``, ``ulira/eps_ceiling``, ``ulira/eps_chance``) with intervals; the ε ceiling of each row's K dashed
    across its bars (the largest ε that K shadow pairs can show), the mean ε by chance dotted."""
    keys = [k for k in ("ulira/eps_mean", "ulira/eps_median") if k in table.columns and table[k].notna().any()]
    if not keys:
        return empty_figure("no audited run records ε", height)
    names = [str(i) for i in table.index]
    fig = go.Figure()
    shades = {"ulira/eps_mean": 1.0, "ulira/eps_median": 0.55}
    for key in keys:
        col = lambda k: table.get(k, pd.Series(np.nan, index=table.index)).to_numpy(float)  # noqa: E731
        fig.add_trace(_interval_bars(names, col(key), col(f"{key}_low"), col(f"{key}_high"),
                                     [(colors or {}).get(n, "#1f77b4") for n in names], R.METRIC[key].label,
                                     opacity=shades[key], offsetgroup=key))
    for key, name, line, hover in (("ulira/eps_ceiling", "ε ceiling for K", CHANCE_LINE, "ε ceiling %{y:.3g}"),
                                   ("ulira/eps_chance", "chance (mean ε)", dict(color="#555", width=2, dash="dot"),
                                    "mean ε by chance %{y:.3g}")):
        if key in table.columns and table[key].notna().any():
            _bar_levels(fig, table[key].to_numpy(float), name, line, hover)
    _base_layout(fig, height, "ε per result: mean (dark) and median (light) with intervals; dotted: chance; "
                              "dashed: ε ceiling for K")
    fig.update_layout(barmode="group", legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"))
    fig.update_yaxes(title="ε", rangemode="tozero")
    return fig


def membership_figure(table: pd.DataFrame, colors: dict[str, str] | None = None, height: int = 380) -> go.Figure:
    """Left: the attack's AUC on the forget examples (dark) and on the control examples (light), with intervals
    and chance 0.5 dashed; right: the membership signal, AUC forget − control, with its interval and 0 dashed."""
    need = ("ulira/auc", "ulira/control/auc", "ulira/membership/auc")
    if not all(k in table.columns for k in need) or not table["ulira/membership/auc"].notna().any():
        return empty_figure("no audited run has a control set (audits made before it existed: rerun them)", height)
    names = [str(i) for i in table.index]
    fill = [(colors or {}).get(n, "#1f77b4") for n in names]
    col = lambda k: table.get(k, pd.Series(np.nan, index=table.index)).to_numpy(float)  # noqa: E731
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=[
        "AUC: forget (dark) vs control (light)", "membership signal: AUC forget − control"])
    for key, shade, label in (("ulira/auc", 1.0, "forget"), ("ulira/control/auc", 0.45, "control")):
        fig.add_trace(_interval_bars(names, col(key), col(f"{key}_low"), col(f"{key}_high"), fill, label,
                                     opacity=shade, offsetgroup=key, showlegend=False), row=1, col=1)
    key = "ulira/membership/auc"
    fig.add_trace(_interval_bars(names, col(key), col(f"{key}_low"), col(f"{key}_high"), fill, "membership",
                                 showlegend=False), row=1, col=2)
    # the dashed lines are named in the axis titles: a label inside the plot covered the bars near it
    fig.add_hline(y=0.5, line=CHANCE_LINE, row=1, col=1)
    fig.add_hline(y=0.0, line=CHANCE_LINE, row=1, col=2)
    fig.update_yaxes(title=f"AUC ({CHANCE_LABEL}: chance 0.5)", range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(title=f"Δ AUC ({CHANCE_LABEL}: no membership signal 0)", row=1, col=2)
    _base_layout(fig, height)
    fig.update_layout(barmode="group", margin=dict(t=50))
    return fig


FLAG_COLORS = {False: "#9ecae1", True: "#d62728"}


def example_map_figure(table: pd.DataFrame, height: int = 380) -> go.Figure:
    """Every forget example of an audit (audit.parquet): x = its position, y = the audited model's log-LR
    (above 0: more like population A than B), red where flagged at 1 % FPR. ``customdata`` = the row number."""
    if not len(table):
        return empty_figure("the audit has no examples", height)
    fig = go.Figure()
    by_member = "member@0.01" in table.columns
    flagged = table["member@0.01" if by_member else "flagged@0.01"].to_numpy().astype(bool)
    names = (("like never-seen examples", "above the control's 99th percentile") if by_member else
             ("not flagged", "flagged at 1 % FPR (model-level)"))
    lam = table["target_log_lr"].to_numpy(float)
    rows = np.arange(len(table))
    for flag in (False, True):
        m = flagged == flag
        if not m.any():
            continue
        fig.add_trace(go.Scattergl(
            x=rows[m], y=lam[m], mode="markers", name=names[flag],
            marker=dict(color=FLAG_COLORS[flag], size=6 if flag else 5, line=dict(width=0)),
            customdata=np.c_[rows[m], table["index"].to_numpy()[m], table["label"].to_numpy()[m],
                             table["eps"].to_numpy(float)[m]],
            hovertemplate="example #%{customdata[1]} (label %{customdata[2]})<br>log-LR %{y:.3g}"
                          "<br>ε %{customdata[3]:.3g}<extra></extra>"))
    fig.add_hline(y=0, line=CHANCE_LINE)
    _base_layout(fig, height, "Forget examples: the audited model's log-LR (click one)")
    fig.update_xaxes(title="forget example (position in audit.parquet)")
    fig.update_yaxes(title="log-LR  (> 0: like A)")
    fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"),
                      clickmode="event+select", dragmode="select")
    return fig


def example_steps_figure(steps: np.ndarray, log_lr: np.ndarray, threshold: np.ndarray, height: int = 300) -> go.Figure:
    """One forget example over the unlearning steps (audit_steps.npz): the audited snapshot's log-LR against that
    step's fit, and the step's flag threshold (1 % FPR) dashed; above it the example still looks unlearned-like."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=log_lr, mode="lines+markers", name="log-LR", line=dict(width=2.5),
                             hovertemplate="step %{x}<br>log-LR %{y:.3g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=steps, y=threshold, mode="lines", name="flag threshold (1 % FPR)", line=CHANCE_LINE,
                             hovertemplate="step %{x}<br>threshold %{y:.3g}<extra></extra>"))
    _base_layout(fig, height, "this example over the steps: log-LR (above the dashed line: flagged)")
    fig.update_xaxes(title="unlearning step")
    fig.update_yaxes(title="log-LR")
    fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"))
    return fig


def score_dist_figure(a: np.ndarray, b: np.ndarray, target: float, what_a: str = "A", what_b: str = "B",
                      height: int = 300) -> go.Figure:
    """One example's scores (scaled logits φ) under population A and B as strips (one point per shadow model)
    with their histograms, and the audited model's score as a vertical line."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.55, 0.45], vertical_spacing=0.06)
    for y, (vals, name, color) in enumerate(((b, what_b, "#222222"), (a, what_a, "#d62728"))):
        fig.add_trace(go.Histogram(x=vals, name=name, marker_color=color, opacity=0.45, nbinsx=20,
                                   legendgroup=name, hovertemplate=f"{name}<br>φ %{{x}}<br>%{{y}} models<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=vals, y=np.full(len(vals), y), mode="markers", name=name, legendgroup=name,
                                 showlegend=False, marker=dict(color=color, size=9, opacity=0.8, symbol="line-ns-open",
                                                               line=dict(width=2, color=color)),
                                 hovertemplate=f"{name}<br>φ %{{x:.3g}}<extra></extra>"), row=2, col=1)
    if np.isfinite(target):
        for r in (1, 2):
            fig.add_vline(x=float(target), line=dict(color="#1f77b4", width=3), row=r, col=1)
        fig.add_trace(go.Scatter(x=[float(target)], y=[0.5], mode="markers", name="audited model",
                                 marker=dict(color="#1f77b4", size=12, symbol="diamond"),
                                 hovertemplate="audited model<br>φ %{x:.3g}<extra></extra>"), row=2, col=1)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(title="models", row=1, col=1)
    fig.update_yaxes(tickvals=[0, 1], ticktext=["B", "A"], range=[-0.6, 1.6], row=2, col=1)
    fig.update_xaxes(title="score φ (scaled true-class logit)", row=2, col=1)
    _base_layout(fig, height, None)
    fig.update_layout(margin=dict(t=30), legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"))
    return fig


def offline_figure(table: pd.DataFrame, colors: dict[str, str] | None = None, height: int = 380) -> go.Figure:
    """The offline audit of each run (its own model against the retrained shadows): offline LiRA's and offline
    RMIA's AUC forget vs control with intervals, chance 0.5 dashed (membership of that one model)."""
    keys = ("ulira/offline/lira/auc", "ulira/offline/rmia/auc")
    if not len(table) or not any(k in table.columns and table[k].notna().any() for k in keys):
        return empty_figure("no offline audit with an AUC", height)
    names = [str(i) for i in table.index]
    fill = [(colors or {}).get(n, "#1f77b4") for n in names]
    col = lambda k: table.get(k, pd.Series(np.nan, index=table.index)).to_numpy(float)  # noqa: E731
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, shared_yaxes=True, subplot_titles=[
        "offline LiRA: AUC forget vs control", "offline RMIA: AUC forget vs control"])
    for c, key in enumerate(keys, start=1):
        fig.add_trace(_interval_bars(names, col(key), col(f"{key}_low"), col(f"{key}_high"), fill, key.split("/")[2],
                                     showlegend=False), row=1, col=c)
        fig.add_hline(y=0.5, line=CHANCE_LINE, row=1, col=c)  # named in the axis title, clear of the bars
    fig.update_yaxes(title=f"AUC ({CHANCE_LABEL}: no membership 0.5)", range=[0, 1.05], row=1, col=1)
    _base_layout(fig, height)
    fig.update_layout(margin=dict(t=50))
    return fig


def offline_hist_figure(table: pd.DataFrame, height: int = 340) -> go.Figure:
    """One run's offline LiRA z (audit_offline.parquet) of its forget and control examples, overlaid densities:
    membership shows as the forget histogram to the right of the control's."""
    if not len(table):
        return empty_figure("the offline audit has no examples", height)
    fig = go.Figure()
    for part, color in (("control", "#9e9e9e"), ("forget", "#d62728")):
        z = table.loc[table["part"] == part, "lira_z"].to_numpy(float)
        fig.add_trace(go.Histogram(x=z[np.isfinite(z)], name=f"{part} ({len(z)})", histnorm="probability density",
                                   opacity=0.6, marker_color=color, nbinsx=50))
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="offline LiRA z (φ against the retrained shadows' mean, in pooled σ)")
    fig.update_yaxes(title="density")
    return _base_layout(fig, height)
