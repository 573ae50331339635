"""Privacy: the audits (scarlab audit) of the picked run and of the runs comparable to it (same data set, model and
forget set), each labelled online or offline. Online (U-LiRA, audit.json): forget and control side by side: on the
forget examples the attack measures whether the *model* can be told from retrained ones (model-level); the
membership signal (forget − control) and the per-example map speak of remembered examples. Offline
(audit_offline.json): the run's own model against the retrained shadows alone, forget vs control."""
import numpy as np
import pandas as pd
import streamlit as st

from scarlab import results as R
from scarlab.metrics.ulira import one_sided
from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

TABLE_KEYS = ("ulira/auc", "ulira/control/auc", "ulira/membership/auc", "ulira/tpr@0.01", "ulira/control/tpr@0.01",
              "ulira/membership/tpr@0.01", "ulira/tpr@0.001", "ulira/eps_mean", "ulira/membership/eps_mean")
FLAGS = ("_saturated", "_masked", "_k_needed")
NUMERIC = tuple(k + end for k in TABLE_KEYS for end in ("", "_low", "_high", *FLAGS)) + (
    "ulira/eps_ceiling", "ulira/eps_chance", "ulira/k", "ulira/member@0.01", "ulira/control/n_examples",
    "competition/F", "competition/F_chance", "competition/F_control", "competition/score")
HOW = ("`scarlab audit RUN --shadows K` (or `scarlab pipeline --shadows K`) audits a run against K shadow models "
       "and writes audit.json, audit.parquet and audit_scores.npz into it; `--mode offline` (`scarlab pipeline "
       "--audit-mode offline`) audits the run's own model against the split's K retrained shadows alone "
       "(audit_offline.json).")
OFFLINE_KEYS = tuple(f"ulira/offline/{att}/{stat}{end}" for att in ("lira", "rmia")
                     for stat, ends in (("auc", ("", "_low", "_high")), ("tpr@0.01", ("", "_low", "_high")),
                                        ("forget/flagged@0.01", ("",)), ("control/flagged@0.01", ("",)))
                     for end in ends)


def cell(m, key: str) -> str:
    """A table cell that says only what K shadow pairs can show: a value with its interval; a one-sided bound
    where every pair agrees; "not resolvable" below one false positive; "not measurable" where the control is
    already at the top."""
    v, lo, hi = (m.get(key + end, np.nan) for end in ("", "_low", "_high"))
    metric = R.METRIC[key]
    if m.get(f"{key}_masked", 0) == 1:
        return "not measurable: control at 1"
    if "eps" in key and m.get("ulira/eps_ceiling") == 0:
        return f"not measurable with K = {m.get('ulira/k', '?'):.0f} (ε ceiling 0; K ≥ 6 needed)"
    if key == "ulira/eps_mean" and pd.notna(v) and v >= m.get("ulira/eps_ceiling", np.inf) - 1e-9:
        return f"{v:.2f}: at its ceiling for K (saturated)"
    if pd.isna(v):
        need = m.get(f"{key}_k_needed", np.nan)
        return f"not resolvable with K = {m.get('ulira/k', '?'):.0f} (needs K ≥ {need:.0f})" if pd.notna(need) else ""
    if m.get(f"{key}_saturated", 0) == 1:
        f = lambda x: f"{x * metric.scale:.{metric.digits}f}"  # noqa: E731
        side, bound = one_sided(v, lo, hi)
        return f"{f(v)} ({side} {f(bound)}, one-sided)"
    return R.pm(key, v, None, lo, hi)


common.header("Privacy (U-LiRA audit, online and offline)",
              "**Online audit** (U-LiRA): K shadow models made like the audited one (population A: e.g. unlearned "
              "by the same method) against K "
              "retrained without the forget set (B); a held-out likelihood-ratio attack asks of each example which "
              "population a model comes from. **What it can conclude:** on the forget examples, whether the audited "
              "*kind of model* can be told from a retrained one (model-level). The same attack on control examples, "
              "which no model of either population trained on, shows how much of that needs no memory of the "
              "examples at all (in class removal a model that still scores the class differently is told apart on "
              "any image of it). Only the **membership signal**, forget − control, speaks of remembered forget "
              "examples. **What it cannot conclude:** that a model with no signal is private (K pairs bound what "
              "can be seen), or anything at an FPR its K·N negatives cannot resolve. **Offline audit** (offline "
              "LiRA and "
              "RMIA): the run's own model against the split's K retrained shadows alone, shared by every method (no "
              "training per run); it asks whether *this model* scores its forget examples above control examples of "
              "the same kind (membership of one model), not whether the method's models look retrained.")
runs = common.load_runs()
run = common.pick_run(runs, "privacy", lambda r: r.stage in ("unlearn", "train_retrained", "evaluate",
                                                             "train_original"), "a model to audit")
if run is None:
    st.stop()

same = lambda r: (r.dataset, r.model, r.scenario, r.forget) == (run.dataset, run.model, run.scenario,  # noqa: E731
                                                                 run.forget)
peers = [r for r in runs if r.has_audit and same(r)]
offline_peers = [r for r in runs if r.has_offline_audit and same(r)]
if not run.has_audit and not run.has_offline_audit:
    st.info(f"This run has no audit yet. {HOW}")
if not peers and not offline_peers:
    st.stop()


# ----------------------------------------------------------------------------- the offline audits of this set
def offline_section() -> None:
    """The offline audits of this data set, model and forget set: a table, the AUC forget vs control of both
    attacks, and the picked run's LiRA z of forget and control examples."""
    st.subheader("Offline audit: each model against the retrained shadows")
    onames = common.legend_names(offline_peers)
    osig = tuple(D.run_sig(r) for r in offline_peers)

    def offline_table():
        rows, problems = [], []
        for r in offline_peers:
            got = D.audit_offline(r)
            if got.error:
                problems.append(got.error)
            if got.value is not None:
                v = got.value
                rows.append({"name": onames[r.id], "label": r.label, "method": r.method, "run": r.id, "K": v["k"],
                             "a": v["a"], "control": v["control"], "n_control": v["n_control"],
                             **{k: v["metrics"].get(k, np.nan) for k in OFFLINE_KEYS}})
        cols = ["name", "label", "method", "run", "K", "a", "control", "n_control", *OFFLINE_KEYS]
        return pd.DataFrame(rows, columns=cols).set_index("name", drop=False), problems

    otable, problems = common.figure("privacy_offline", osig, offline_table)
    common.warn(*problems)
    if not len(otable):
        return
    shown = pd.DataFrame({"result": otable["label"], "run": otable["run"], "K": otable["K"].astype("Int64")})
    for att, name in (("lira", "offline LiRA"), ("rmia", "offline RMIA")):
        key = f"ulira/offline/{att}"
        shown[f"{name} AUC forget vs control (none: 0.5)"] = [R.pm(f"{key}/auc", m[f"{key}/auc"], None,
                                                                  m[f"{key}/auc_low"], m[f"{key}/auc_high"])
                                                             for _, m in otable.iterrows()]
        shown[f"{name} TPR @ 1 % FPR (none: 1 %)"] = [
            "not resolvable (< 100 control examples)" if pd.isna(m[f"{key}/tpr@0.01"]) else
            f"{100 * m[f'{key}/tpr@0.01']:.1f} % [{100 * m[f'{key}/tpr@0.01_low']:.1f}, "
            f"{100 * m[f'{key}/tpr@0.01_high']:.1f}]" for _, m in otable.iterrows()]
        shown[f"{name} flagged forget / control (model-level)"] = [
            f"{m[f'{key}/forget/flagged@0.01']:.3f} / {m[f'{key}/control/flagged@0.01']:.3f}"
            for _, m in otable.iterrows()]
    shown["RMIA a"] = otable["a"].round(2)
    shown["control examples"] = [f"{n} ({what})" if n is not None and n == n else what
                                 for n, what in zip(otable["n_control"], otable["control"])]
    common.table(shown, f"privacy_offline_{run.dataset}_{run.forget}", "privacy_offline_table", hide_index=True,
                 width="stretch")
    st.caption("Offline: the run's own model scored against the K retrained shadows (none trained on a forget "
               "example or a test image). AUC forget vs control = P(a forget example scores above a control "
               "example) for that one model: 0.5 is no membership; TPR at 1 % FPR of the control, 1 % by chance. "
               "Flagged = the share of a side scored more confident than a retrained model would be at 1 %: "
               "model-level (in class removal forget and control move together). Intervals at level 1 − alpha "
               "over the shadows and the examples. It cannot tell whether the method's models as a population look "
               "retrained (the online audit above), and says nothing of other examples.")
    colors = P.method_colors(otable.index, otable["method"])
    common.chart(common.figure("privacy_offline_auc", osig, lambda: P.offline_figure(otable, colors)),
                 "privacy_offline_auc", "privacy_offline_auc")
    if run.has_offline_audit:
        got = D.audit_offline_table(run)
        common.warn(got.error)
        if got.value is not None:
            common.chart(common.figure("privacy_offline_hist", D.run_sig(run),
                                       lambda: P.offline_hist_figure(got.value)),
                         f"privacy_offline_hist_{run.id}", "privacy_offline_hist")
            st.caption(f"{run.label}: offline LiRA z of every forget (red) and control (grey) example. Membership "
                       "shows as the forget histogram lying to the right of the control's; both far right of 0 is "
                       "the model-level difference from retraining.")


if not peers:
    offline_section()
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
        if got.value["control_roc"] is not None:
            control[names[r.id]] = got.value["control_roc"]
    df = pd.DataFrame(rows, columns=["name", "label", "method", "run", "K", *NUMERIC]).set_index("name", drop=False)
    return df, curves, control, problems


control: dict = {}
table, curves, control, problems = common.figure("privacy_peers", sig, peer_table)
common.warn(*problems)
if not len(table):
    if offline_peers:
        offline_section()
    st.stop()
colors = P.method_colors(table.index, table["method"])
shown = pd.DataFrame({"result": table["label"], "run": table["run"], "K": table["K"].astype("Int64")})
for key in TABLE_KEYS:
    shown[R.METRIC[key].label] = [cell(m, key) for _, m in table.iterrows()]
shown["ε ceiling at K (CP)"] = table["ulira/eps_ceiling"].round(3)
shown[R.METRIC["ulira/member@0.01"].label] = (table["ulira/member@0.01"] * 100).round(1)
shown["competition F forget / control (identical: chance)"] = [
    f"{f:.3f} / {c:.3f} ({z:.3f})" if pd.notna(f) else "" for f, c, z in
    zip(table["competition/F"], table["competition/F_control"], table["competition/F_chance"])]
shown[R.METRIC["competition/score"].label] = table["competition/score"].round(3)
st.subheader("Online audit (U-LiRA): audited results on this data set, model and forget set")
common.table(shown, f"privacy_{run.dataset}_{run.forget}", "privacy_table", hide_index=True, width="stretch")
st.caption("value [low, high]: the audit's own interval (level 1 − alpha: t interval from a delete-one-pair "
           "jackknife plus an example bootstrap; for the membership signal the jackknife of the difference). "
           "Chance: AUC 0.5, TPR at 1 % FPR 1 %, membership 0, members 1 %. \"one-sided\": every shadow pair agrees, "
           "so only a bound follows from K pairs. \"not resolvable\": the FPR is below one false positive among "
           "the K·N negatives. ε here is scarlab's Clopper–Pearson-bounded estimate, not the NeurIPS 2023 "
           "competition's, and not a certified bound; it cannot exceed its ceiling for K (0 means: not measurable "
           "with this K). The competition's F (1 best) and final score are computed exactly as its evaluation "
           "code does, on these K shadows instead of its 512: with few models even identical populations read the "
           "F in brackets, not 1.")

common.chart(common.figure("privacy_membership", sig, lambda: P.membership_figure(table, colors)),
             "privacy_membership", "privacy_membership")
st.caption("Left: the attack's AUC on the forget examples and on the control examples with the same shadow models. "
           "Equal bars mean the models differ as a whole (model-level), not by remembering forget examples. "
           "Right: their difference, the membership signal, with its interval; 0 (dashed) is no membership signal. "
           "With the control at AUC 1 the difference cannot show anything (not measurable).")
c1, c2 = st.columns(2)
with c1:
    common.chart(common.figure("privacy_roc", sig, lambda: P.roc_figure(curves, colors, control=control)),
                 "privacy_roc", "privacy_roc")
    st.caption("ROC of the held-out attack on log axes, forget solid and control dotted, each drawn only down to "
               "the smallest FPR its negatives resolve (one false positive among K·N). Dashed: chance.")
with c2:
    common.chart(common.figure("privacy_tpr", sig, lambda: P.tpr_figure(table, colors)), "privacy_tpr",
                 "privacy_tpr")
    st.caption("TPR at 1 % and 0.1 % FPR on the forget examples (model-level) with their intervals; the dashed "
               "line is chance (TPR = FPR). A missing bar: not resolvable with that K (see the table).")
common.chart(common.figure("privacy_eps", sig, lambda: P.eps_figure(table, colors)), "privacy_eps", "privacy_eps")
st.caption("ε per forget example (scarlab's Clopper–Pearson-bounded estimate, δ fixed; model-level like the "
           "AUC), mean and median over examples with intervals. Dotted: chance, the mean ε the estimator reads "
           "on K pairs of identical populations (above 0, it grows with K). Dashed: the ε ceiling, the largest ε K "
           "pairs can show at all; a value at it means the audit is saturated, not that leakage is bounded.")

if offline_peers:
    offline_section()

# ----------------------------------------------------------------------------- the picked run, per example
st.subheader("Forget examples of this run (online audit)")
if not run.has_audit:
    st.info(f"Per-example results need this run's own online audit. {HOW}")
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
           "more like population A's than B's). Red: a membership flag, its log-LR above the 99th percentile of the "
           "control examples' (images no model trained on), so about 1 % are red by chance; a high log-LR shared "
           "by the control examples is the model-level difference, not memory. Click a point, or pick it below.")

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
            f"log-LR {float(row['target_log_lr']):.3g} · "
            f"{'member-like' if bool(row.get('member@0.01', False)) else 'like never-seen examples'}"
            f" · model-level {'flagged' if bool(row['flagged@0.01']) else 'not flagged'}"
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
                   "at the same step and the retrained ones (model-level: no control over steps). " +
                   (f"It first drops under the threshold at step {int(z['step'][below[0]])}"
                    + ("." if z["log_lr"][-1, j] <= z["threshold"][-1] else ", but ends above it (still flagged).")
                    if len(below) else "It stays above the threshold: distinguishable at every step."))
    elif z is not None:
        st.caption("This example is not among the run's snapshot (probe) points: no curve over steps.")
with st.expander("every forget example (audit.parquet)"):
    common.table(df, f"privacy_examples_{run.id}", "privacy_examples", hide_index=True, width="stretch")
