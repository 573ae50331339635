"""Curves: forget / retain / test accuracy and MIA over unlearning steps, several runs overlaid (named by their
label, method · variant)."""
import pandas as pd
import streamlit as st

from scarlab import results as R
from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

common.header("Curves",
              "Accuracies of the probe points at every feature snapshot (history.csv) and the cheap membership "
              "attacks on every snapshot (mia_steps.csv, written by `scarlab evaluate`). Both attacks are balanced, so "
              "their chance level is 0.5 (dashed line): an MIA accuracy near it means the attacker cannot tell "
              "forget samples from unseen ones. Audited runs add the U-LiRA audit over steps (audit_steps.csv): at "
              "each step the per-example attack on the unlearned shadows at that step against the retrained ones "
              "(AUC, chance 0.5, and TPR at 1 % FPR, chance 0.01, with their intervals as bands; step 0 is the "
              "original), the mean log-LR of this run's forget examples and the fraction flagged at 1 % FPR.")
runs = common.load_runs()
cands = [r for r in runs if r.stage == "unlearn"]
if not cands:
    st.info("No unlearning runs yet.")
    st.stop()
lookup = D.by_id(runs)
prev = lookup.get(st.session_state.get("_run"))
if prev is None or prev.stage != "unlearn":
    prev = cands[0]
default = [r.id for r in cands if r.group_key == prev.group_key and r.seed == prev.seed] or [prev.id]
titles = {r.id: r.title for r in cands}
chosen = st.multiselect("Runs (default: every method on the selected run's original model and forget set)",
                        list(titles), default=default, format_func=lambda i: titles[i], key="curves_runs")
if not chosen:
    st.info("Choose at least one run.")
    st.stop()

names = common.legend_names([lookup[rid] for rid in chosen])
series, problems, labels, methods = {}, [], {}, {}
for rid in chosen:
    r = lookup[rid]
    h = D.history(r)
    if h.error:
        problems.append(h.error)
    frames = []
    hist = h.value if h.value is not None else pd.DataFrame()
    if len(hist) and "step" in hist.columns:
        frames.append(hist)
    ms = D.mia_steps(r)
    if ms.error:
        problems.append(ms.error)
    if ms.value is not None and len(ms.value):
        frames.append(ms.value)
    au = D.audit_steps(r)  # the U-LiRA audit over steps (scarlab audit), next to the cheap attacks
    if au.error:
        problems.append(au.error)
    if au.value is not None and len(au.value):
        frames.append(au.value.drop(columns=["n_examples"], errors="ignore"))
    if not frames:
        problems.append(f"{rid}: no history.csv or mia_steps.csv with a step column")
        continue
    df = pd.concat(frames, ignore_index=True, sort=False)
    df = df.apply(pd.to_numeric, errors="coerce")
    df = df.groupby("step", as_index=False).mean(numeric_only=True)  # merge rows of one step
    series[names[rid]] = df
    labels[names[rid]] = r.label
    methods[r.label] = r.method
common.warn(*problems)
if not series:
    st.stop()

available = sorted({c for df in series.values() for c in df.columns  # an interval's ends go with its metric
                    if c not in ("step", "snapshot", "k") and not c.endswith(("_low", "_high")) and df[c].notna().any()})
preferred = ["probe/acc/forget_train", "probe/acc/retain_test", "probe/acc/forget_test", "mia/loss_lr/acc",
             "mia/conf_thr/acc", "ulira/auc", "ulira/tpr@0.01", "acc/forget_train"]
default_m = [m for m in preferred if m in available][:8] or available[:4]
metrics = st.multiselect("Metrics", available, default=default_m, key="curves_metrics")
if not any(c.startswith("mia/") for df in series.values() for c in df.columns):
    st.info("No MIA-over-steps values yet: `scarlab evaluate RUN` writes mia_steps.csv next to each run.")
colors = P.method_colors(methods, methods.values())  # one colour per label; runs sharing one get dashes
dashes = ({name: ("solid", "dash", "dot", "dashdot")[i % 4] for i, name in enumerate(sorted(series))}
          if len(set(labels.values())) < len(series) else None)
key = (tuple(D.run_sig(lookup[r]) for r in chosen), tuple(metrics))
chance = {**{m: R.chance_of(m, {}) for m in metrics}, "ulira/flagged@0.01": 0.01}  # flagged at 1 % FPR
fig = common.figure("curves", key, lambda: P.curves_figure(series, metrics, colors={n: colors[lbl] for n, lbl in
                                                                                   labels.items()}, dashes=dashes,
                                                           chance=chance))
common.chart(fig, "curves", "curves_chart")
