"""Compare: AUS, accuracies, MIA and time per result (method · variant), mean ± std over seeds and forget sets."""
import pandas as pd
import streamlit as st

from scarlab import results as R
from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

common.header("Compare methods",
              "Final metrics of every evaluated run (metrics.json), mean ± std over seeds and forget sets per result: "
              "a method with its variant (the parameters that differ from its defaults), so two learning rates are "
              "two rows, never one average — as in summary.csv. AUS (Adaptive Unlearning Score) rewards forgetting "
              "while keeping test accuracy; higher is better.")
runs = common.load_runs()
df = D.metrics_frame([r for r in runs if r.stage in ("unlearn", "train_retrained", "evaluate")])
done = df[df["status"] == "complete"] if len(df) else df
left_out = df[df["status"] != "complete"] if len(df) else df
if len(left_out):
    counts = ", ".join(f"{n} {s}" for s, n in left_out["status"].value_counts().items())
    st.caption(f"Left out, as in summary.csv: {common.md(counts)} (`scarlab evaluate RUN` adds AUS and the attacks).")
if not len(done):
    st.info("No evaluated run yet: run `scarlab evaluate` (or the pipeline) first.")
    st.stop()

combos = done.groupby(["dataset", "model", "scenario"], dropna=False).size().sort_values(ascending=False)
options = [f"{d} · {m} · {s or '—'}" for d, m, s in combos.index]
c1, c2 = st.columns([2, 1])
which = c1.selectbox("Data set · model · scenario (runs are only averaged within one)", options, key="compare_combo")
d, m, s = combos.index[options.index(which)]
sub = done[(done["dataset"] == d) & (done["model"] == m) & (done["scenario"] == s)]
by_forget = c2.toggle("separate forget sets", value=False, key="compare_by_forget")
keys = R.GROUP_KEYS + (("forget",) if by_forget else ())
sub = sub.assign(name=[lbl + (f" · {f}" if by_forget and f else "") for lbl, f in zip(sub["label"], sub["forget"])])
names = dict(zip(sub["run"], sub["name"]))  # run id -> the row it counts in
metrics = [k for k in R.METRIC_KEYS if k in sub.columns and sub[k].notna().any()]
extra = sorted(c for c in sub.columns if "/" in c and c not in R.METRIC and c not in R.INTERVAL_KEYS
               and not c.endswith(("_low", "_high")) and sub[c].notna().any())  # bounds go with their metric
agg = R.aggregate(sub, keys + ("name",), tuple(metrics + extra)).set_index("name", drop=False)
shown = ("label",) + (("forget",) if by_forget else ("forget_classes",)) + ("runs", "seeds")
main = [k for k in R.SUMMARY_KEYS if k in metrics]
common.table(R.pm_table(agg, tuple(main), shown), f"compare_{d}_{m}_{s}", "compare_table", hide_index=True,
             width="stretch")
with st.expander("all recorded metrics"):
    common.table(R.pm_table(agg, tuple(metrics + extra), shown), f"compare_all_{d}_{m}_{s}", "compare_all",
                 hide_index=True, width="stretch")
st.caption("mean ± std over runs (seeds × forget sets), in each metric's unit; '–' = not recorded; value [low, high] "
           "where one run stands for its row and recorded its own interval (the U-LiRA audit). Original and "
           "retrained rows are the reference points: the retrained oracle is what perfect unlearning looks like. Read "
           "each attack accuracy against its chance level: the SVC attack's chance is the majority fraction of its "
           "evaluation set (75 % for the 3:1 CR sets, 50 % in HR; its accuracy is the paper's micro-F1), the "
           "loss-LR and confidence-threshold attacks are balanced (50 %). Attack bar plots draw chance dashed.")

colors = P.method_colors(agg.index, agg["method"])
lookup = D.by_id(runs)
sig = (tuple(D.run_sig(lookup[r]) for r in sub["run"]), keys)
a, b = st.columns(2)
with a:
    metric = st.selectbox("Metric", metrics + extra, index=0, key="compare_metric",
                          format_func=lambda k: R.METRIC[k].label if k in R.METRIC else k)
    common.chart(common.figure("compare_bar", (sig, metric), lambda: P.metric_bar_figure(agg, metric, colors)),
                 f"compare_{metric}", "compare_bar")
with b:
    timed = agg[~agg["method"].isin(["original", "retrained"])]
    common.chart(common.figure("compare_scatter", sig, lambda: P.aus_time_figure(timed, colors)), "compare_aus_time",
                 "compare_scatter")

st.subheader("Per-class test accuracy")


def per_class_view():
    """(figure, caption): perclass.json of each run (evaluation), else the probe's test points at the last
    snapshot (cheap, always there for unlearning runs); averaged per result (and forget set, when separated)."""
    rows, sources = {}, set()
    for rid in sub["run"]:
        pc = D.per_class(lookup[rid])
        if pc.value is None:
            continue
        acc, classes, source = pc.value
        sources.add(source)
        rows.setdefault(names[rid], []).append(pd.Series(acc, index=classes[:len(acc)] if len(classes) >= len(acc)
                                                         else None))
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
        rows.setdefault(names[rid], []).append(acc)
    if rows:
        matrix = pd.DataFrame({k: pd.concat(v, axis=1).mean(axis=1) for k, v in rows.items()}).T
        return (P.per_class_heatmap(matrix, "Per-class accuracy of the probe's test points, last snapshot"),
                "No perclass.json found (written by `scarlab evaluate`); shown instead: the probe's retain- and "
                "forget-test points at each run's last snapshot.")
    return None, "No per-class accuracies recorded (perclass.json is written by `scarlab evaluate`)."


fig, caption = common.figure("compare_perclass", sig, per_class_view)
if fig is not None:
    common.chart(fig, "compare_per_class", "compare_perclass")
    st.caption(caption)
else:
    st.info(caption)
