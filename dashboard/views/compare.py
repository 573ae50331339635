"""Compare: AUS, accuracies, MIA and time across methods, mean ± std over seeds and forget classes."""
import pandas as pd
import streamlit as st

from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

common.header("Compare methods",
              "Final metrics of every evaluated run (metrics.json), averaged over seeds and forget sets. AUS "
              "(Adaptive Unlearning Score) rewards forgetting while keeping test accuracy; higher is better.")
runs = common.load_runs()
df = D.metrics_frame([r for r in runs if r.stage in ("unlearn", "train_retrained", "evaluate")])
if not len(df):
    st.info("No run has metrics yet: run `scarlab evaluate` (or the pipeline) first.")
    st.stop()

combos = df.groupby(["dataset", "model", "scenario"], dropna=False).size().sort_values(ascending=False)
labels = [f"{d} · {m} · {s or '—'}" for d, m, s in combos.index]
c1, c2 = st.columns([2, 1])
which = c1.selectbox("Data set · model · scenario (runs are only averaged within one)", labels, key="compare_combo")
d, m, s = combos.index[labels.index(which)]
sub = df[(df["dataset"] == d) & (df["model"] == m) & ((df["scenario"] == s) | (df["scenario"].isna() & pd.isna(s)))]
by_forget = c2.toggle("separate forget sets", value=False, key="compare_by_forget")
by = ["method", "forget"] if by_forget else ["method"]
order = {mth: i for i, mth in enumerate(("original", "retrained"))}
sub = sub.assign(_o=sub["method"].map(lambda x: order.get(x, 2))).sort_values(["_o", "method", "forget", "seed"])
metrics = [x for x in D.COMPARE_METRICS if x in sub.columns and sub[x].notna().any()]
extra = sorted(c for c in sub.columns if "/" in c and c not in metrics and sub[c].notna().any()
               and not c.startswith("time/evaluate"))
agg = D.aggregate(sub, by, metrics + extra)
if not len(agg):
    st.info("These runs record no comparable metrics.")
    st.stop()
st.dataframe(D.mean_std_table(agg[[c for c in agg.columns if c[0] in metrics]]), width="stretch")
with st.expander("all recorded metrics"):
    st.dataframe(D.mean_std_table(agg), width="stretch")
st.caption("mean ± std over runs (seeds × forget sets); '—' = not recorded. Original and retrained rows are the "
           "reference points: the retrained oracle is what perfect unlearning looks like. Read each attack "
           "accuracy against its chance level: mia/svc/chance for the paper's SVC attack (the majority fraction "
           "of its evaluation set: 0.75 for the 3:1 CR sets, 0.5 in HR; its accuracy is the paper's micro-F1), "
           "0.5 for mia/loss_lr/acc and mia/conf_thr/acc (balanced). Attack bar plots draw chance dashed.")

colors = P.method_colors(sub["method"])
lookup = D.by_id(runs)
sig = (tuple(D.run_sig(lookup[r]) for r in sub["run"]), tuple(by))
a, b = st.columns(2)
with a:
    metric = st.selectbox("Metric", metrics + extra, index=0, key="compare_metric")
    st.plotly_chart(common.figure("compare_bar", (sig, metric), lambda: P.metric_bar_figure(agg, metric, colors)),
                    theme=None, key="compare_bar")
with b:
    timed = agg[~agg.index.str.startswith(("original", "retrained"))] if "time/unlearn_s" in metrics else agg
    st.plotly_chart(common.figure("compare_scatter", sig, lambda: P.aus_time_figure(timed, colors)), theme=None,
                    key="compare_scatter")

st.subheader("Per-class test accuracy")


def per_class_view():
    """(figure, caption): perclass.json of each run (evaluation), else the probe's test points at the last
    snapshot (cheap, always there for unlearning runs); averaged per method (or method × forget set)."""
    rows, sources = {}, set()
    for rid in sub["run"]:
        r = lookup[rid]
        pc = D.per_class(r)
        if pc.value is None:
            continue
        acc, names, source = pc.value
        sources.add(source)
        key = r.method if not by_forget else f"{r.method} · {r.forget}"
        rows.setdefault(key, []).append(pd.Series(acc, index=names[:len(acc)] if len(names) >= len(acc) else None))
    if rows:
        matrix = pd.DataFrame({k: pd.concat(v, axis=1).mean(axis=1) for k, v in rows.items()}).T
        return (P.per_class_heatmap(matrix, "Per-class test accuracy, mean over runs"),
                f"source: {', '.join(sorted(sources))}")
    for rid in sub["run"]:
        r = lookup[rid]
        if r.stage != "unlearn":
            continue
        got = D.points_table(r)
        if got.value is None:
            continue
        p = got.value
        last = p[(p["step"] == p["step"].max()) & (p["group"] != P.GROUP_FORGET)]
        if not len(last):
            continue
        k = int(max(last["label"].max(), last["pred"].max())) + 1
        acc = last.assign(ok=last["pred"] == last["label"]).groupby("label")["ok"].mean().reindex(range(k))
        key = r.method if not by_forget else f"{r.method} · {r.forget}"
        rows.setdefault(key, []).append(acc)
    if rows:
        matrix = pd.DataFrame({k: pd.concat(v, axis=1).mean(axis=1) for k, v in rows.items()}).T
        return (P.per_class_heatmap(matrix, "Per-class accuracy of the probe's test points, last snapshot"),
                "No perclass.json found (written by `scarlab evaluate`); shown instead: the probe's retain- and "
                "forget-test points at each run's last snapshot.")
    return None, "No per-class accuracies recorded (perclass.json is written by `scarlab evaluate`)."


fig, caption = common.figure("compare_perclass", sig, per_class_view)
if fig is not None:
    st.plotly_chart(fig, theme=None, key="compare_perclass")
    st.caption(caption)
else:
    st.info(caption)
