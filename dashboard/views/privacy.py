"""Privacy: the per-example U-LiRA audit (scarlab audit) of the picked run and of the runs comparable to it (same data
set, model and forget set): ROC, TPR at low FPR, ε, and every forget example with its score distributions."""
import numpy as np
import pandas as pd
import streamlit as st

from scarlab import results as R
from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

TABLE_KEYS = ("ulira/auc", "ulira/tpr@0.01", "ulira/tpr@0.001", "ulira/bacc", "ulira/eps_mean", "ulira/eps_median")
NUMERIC = tuple(k + end for k in TABLE_KEYS for end in ("", "_low", "_high")) + ("ulira/eps_ceiling", "ulira/eps_chance",
                                                                             "ulira/k")
HOW = ("`scarlab audit RUN --shadows K` (or `scarlab pipeline --shadows K`) audits a run against K shadow models "
       "and writes audit.json, audit.parquet and audit_scores.npz into it; use K ≥ 16.")

common.header("Privacy (U-LiRA audit)",
              "A held-out likelihood-ratio attack per forget example: K shadow models of population A (made like the "
              "audited model, e.g. unlearned) against K of population B (retrained without the forget set). An attack "
              "that cannot tell A from B reads chance: AUC 0.5, TPR = FPR, ε near 0.")
runs = common.load_runs()
run = common.pick_run(runs, "privacy", lambda r: r.stage in ("unlearn", "train_retrained", "evaluate",
                                                             "train_original"), "a model to audit")
if run is None:
    st.stop()

peers = [r for r in runs if r.has_audit and (r.dataset, r.model, r.scenario, r.forget) ==
         (run.dataset, run.model, run.scenario, run.forget)]
if not run.has_audit:
    st.info(f"This run has no audit.json yet. {HOW}")
if not peers:
    st.stop()

# ----------------------------------------------------------------------------- every audited result of this set
names = common.legend_names(peers)
sig = tuple(D.run_sig(r) for r in peers)


def peer_table():
    """(numeric table indexed by name, ROC curves, problems) of the audited peers."""
    rows, curves, problems = [], {}, []
    for r in peers:
        got = D.audit(r)
        if got.error:
            problems.append(got.error)
        if got.value is None:
            continue
        m = got.value["metrics"]
        rows.append({"name": names[r.id], "label": r.label, "method": r.method, "run": r.id,
                     "K": got.value["k"], **{k: m.get(k, np.nan) for k in NUMERIC}})
        if got.value["roc"] is not None:
            curves[names[r.id]] = got.value["roc"]
    df = pd.DataFrame(rows, columns=["name", "label", "method", "run", "K", *NUMERIC]).set_index("name", drop=False)
    return df, curves, problems


table, curves, problems = common.figure("privacy_peers", sig, peer_table)
common.warn(*problems)
if not len(table):
    st.stop()
colors = P.method_colors(table.index, table["method"])
shown = pd.DataFrame({"result": table["label"], "run": table["run"], "K": table["K"].astype("Int64")})
for key in TABLE_KEYS:
    shown[R.METRIC[key].label] = [R.pm(key, v, None, lo, hi) for v, lo, hi in
                                  zip(table[key], table[f"{key}_low"], table[f"{key}_high"])]
st.subheader("Audited results on this data set, model and forget set")
common.table(shown, f"privacy_{run.dataset}_{run.forget}", "privacy_table", hide_index=True, width="stretch")
st.caption("value [low, high]: the audit's own interval (level 1 − alpha; the attack's: t interval from a "
           "delete-one-pair jackknife plus an example bootstrap; ε's: bootstrap over examples). Chance: AUC 0.5, "
           "TPR at 1 % FPR 1 %, at 0.1 % FPR 0.1 %, mean ε the dotted level of the ε chart (it grows with K).")

c1, c2 = st.columns(2)
with c1:
    common.chart(common.figure("privacy_roc", sig, lambda: P.roc_figure(curves, colors)), "privacy_roc",
                 "privacy_roc")
    st.caption("ROC of the held-out attack, both axes logarithmic: the low-FPR corner is where a confident "
               "attack shows. The dashed diagonal (TPR = FPR) is chance.")
with c2:
    common.chart(common.figure("privacy_tpr", sig, lambda: P.tpr_figure(table, colors)), "privacy_tpr",
                 "privacy_tpr")
    st.caption("TPR at 1 % and 0.1 % FPR with their intervals; the dashed line is chance (TPR = FPR).")
common.chart(common.figure("privacy_eps", sig, lambda: P.eps_figure(table, colors)), "privacy_eps", "privacy_eps")
st.caption("ε per forget example (a lower bound on the privacy loss, δ fixed), mean and median over examples with "
           "intervals. The dotted level is chance: the mean ε the same estimator reads on K pairs of identical "
           "populations (it picks each example's best rule on few scores, so it is above 0 and grows with K); "
           "perfect unlearning reads about that. The dashed ε ceiling is the largest ε that K shadow pairs can show "
           "at all: a value near it means the audit is saturated, not that leakage is bounded by it.")

# ----------------------------------------------------------------------------- the picked run, per example
st.subheader("Forget examples of this run")
if not run.has_audit:
    st.info(f"Per-example results need this run's own audit. {HOW}")
    st.stop()
ex = D.audit_table(run)
scores = D.audit_scores(run)
doc = D.audit(run)
common.warn(ex.error, scores.error)
if ex.value is None:
    st.stop()
df = ex.value
if doc.value is not None:
    pops = doc.value["populations"]
    st.text(f"A: {pops['a'] or '?'}\nB: {pops['b'] or '?'}")
rsig = D.run_sig(run)
event = common.chart(common.figure("privacy_map", rsig, lambda: P.example_map_figure(df)), f"privacy_map_{run.id}",
                     "privacy_map", on_select="rerun", selection_mode=("points",))
st.caption("Each point is a forget example; y is the audited model's log-likelihood ratio (above 0: its score looks "
           "more like population A's than B's). Red: flagged, above the threshold at which 1 % of B's held-out "
           "scores are (so about 1 % of examples are flagged by chance). Click a point, or pick it below.")

pick_key = f"privacy_example_{run.id}"
points = (event.selection.get("points") if event is not None and hasattr(event, "selection") else None) or []
clicked = next((int(p["x"]) for p in points if isinstance(p.get("x"), (int, float))), None)
if clicked is not None and 0 <= clicked < len(df) and st.session_state.get("_privacy_clicked") != (run.id, clicked):
    st.session_state["_privacy_clicked"] = (run.id, clicked)
    st.session_state[pick_key] = clicked
idx_col, lab_col = df["index"].to_numpy(), df["label"].to_numpy()
default = int(np.nanargmax(df["target_log_lr"].to_numpy(float))) if df["target_log_lr"].notna().any() else 0
i = st.selectbox("Example", range(len(df)), index=default, key=pick_key,
                 format_func=lambda j: f"#{idx_col[j]} (label {lab_col[j]}, position {j})")
row = df.iloc[i]
left, right = st.columns([1, 3])
with left:
    thumbs = D.thumbs_by_index(run)
    img = common.thumb_bytes(thumbs.value.get(int(row["index"]))) if thumbs.value else None
    if img is not None:
        st.image(img, width=120)
    st.text(f"training index {int(row['index'])} · label {row['label']}\n"
            f"log-LR {float(row['target_log_lr']):.3g} · {'flagged' if bool(row['flagged@0.01']) else 'not flagged'}"
            f"\nε {float(row['eps']):.3g} · example AUC {float(row['example_auc']):.3g}")
    if img is None:
        st.caption("No thumbnail (thumbs.parquet is written by `scarlab embed`).")
with right:
    if scores.value is not None and i < scores.value["scores_a"].shape[1]:
        z = scores.value
        common.chart(common.figure("privacy_scores", (rsig, i), lambda: P.score_dist_figure(
            z["scores_a"][:, i], z["scores_b"][:, i], float(z["target"][i]), "A", "B")),
            f"privacy_scores_{run.id}_{int(row['index'])}", "privacy_scores")
        st.caption("This example's score φ under each shadow model of A (red) and B (black), and the audited "
                   "model's score (blue line): the nearer it sits to B's cloud, the more it looks retrained.")
    over = D.audit_steps_examples(run)
    common.warn(over.error)
    z = over.value
    hit = np.flatnonzero(z["index"] == int(row["index"])) if z is not None else []
    if len(hit):
        j = int(hit[0])
        common.chart(common.figure("privacy_example_steps", (rsig, j), lambda: P.example_steps_figure(
            z["step"], z["log_lr"][:, j], z["threshold"])), f"privacy_steps_{run.id}_{int(row['index'])}",
            "privacy_example_steps")
        below = np.flatnonzero(z["log_lr"][:, j] <= z["threshold"])
        st.caption("The audited run's snapshot of this example at every step, scored against the unlearned shadows "
                   "at the same step and the retrained ones. " +
                   (f"It first drops under the threshold at step {int(z['step'][below[0]])}"
                    + ("." if z["log_lr"][-1, j] <= z["threshold"][-1] else ", but ends above it (still flagged).")
                    if len(below) else "It stays above the threshold: distinguishable at every step."))
    elif z is not None:
        st.caption("This example is not among the run's snapshot (probe) points: no curve over steps.")
with st.expander("every forget example (audit.parquet)"):
    common.table(df, f"privacy_examples_{run.id}", "privacy_examples", hide_index=True, width="stretch")
