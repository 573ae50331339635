"""Runs: every run directory under the root, with status, what it did (method · variant) and its key metrics."""
import json

import streamlit as st

from scarlab import results as R
from scarlab_dashboard import common
from scarlab_dashboard import data as D

common.header("Runs", "Every run directory under the runs root: originals, retrained oracles, unlearning runs and "
                      "evaluations. Failed and running runs are listed too.")
with st.sidebar:  # before the runs are loaded: the choice applies to every page (session key _show_shadows)
    shadows = st.toggle("show shadow models", value=common.show_shadows(), key="runs_shadows",
                        help="members of U-LiRA shadow populations (shadows__*/ folders, made by `scarlab audit`)")
    st.session_state[common.SHOW_SHADOWS] = shadows
runs = common.load_runs(unusable=True)
table = D.runs_table(runs)

with st.sidebar:
    st.subheader("Filters")
    status = st.multiselect("Status", sorted(table["status"].unique()), key="runs_status")
    methods = st.multiselect("Method", sorted(table["method"].unique()), key="runs_method")
    labels = st.multiselect("Method · variant", sorted(table["label"].unique()), key="runs_label")
    datasets = st.multiselect("Dataset", sorted(table["dataset"].unique()), key="runs_dataset")
    text = st.text_input("Run name contains", key="runs_text")
shown = table
if status:
    shown = shown[shown["status"].isin(status)]
if methods:
    shown = shown[shown["method"].isin(methods)]
if labels:
    shown = shown[shown["label"].isin(labels)]
if datasets:
    shown = shown[shown["dataset"].isin(datasets)]
if text:
    shown = shown[shown["run"].str.contains(text, case=False, regex=False)]

counts = table["status"].value_counts()
cols = st.columns(6)
cols[0].metric("runs", len(table))
for col, s in zip(cols[1:], ("complete", "not evaluated", "running", "failed")):
    col.metric(s, int(counts.get(s, 0)))
cols[5].metric("embedded", int(table["embedded"].sum()))

ICON = {"complete": "✓ complete", "not evaluated": "○ not evaluated", "running": "… running",
        "failed": "✗ failed"}  # symbols every font has
view = shown.assign(status=shown["status"].map(lambda s: ICON.get(s, "⚠ " + s)))
common.table(view, "runs", "runs_table", hide_index=True, width="stretch",
             height=min(38 * (len(view) + 1) + 4, 560),
             column_config={"created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
                            "label": st.column_config.TextColumn("method · variant"),
                            "embedded": st.column_config.CheckboxColumn("embedded"),
                            **{k: common.metric_column(k) for k in R.SUMMARY_KEYS},
                            "problem": st.column_config.TextColumn("problem", width="large")})
n_shadow = sum(r.shadow for r in runs)
st.caption(f"{len(view)} of {len(table)} runs shown"
           + (f" ({n_shadow} of them shadow models)" if n_shadow else " (shadow models hidden)"
              if not shadows else "") + ". Key metrics come from each run's metrics.json "
           "(`scarlab evaluate` adds AUS and the attacks; the CSV holds them as fractions, as summary.csv does).")

problems = [r for r in runs if r.problems or r.status not in ("complete", "running", "not evaluated")]
if problems:
    common.warn(*[f"{r.id}: {r.status}{' — ' + r.error if r.error else ''}"
                  f"{' — ' + '; '.join(r.problems) if r.problems else ''}" for r in problems])

st.subheader("Run details")
ids = list(view["run"]) or [r.id for r in runs]
pick = st.selectbox("Run", ids, key="runs_detail")
run = D.by_id(runs)[pick]
c1, c2 = st.columns(2)
with c1:  # run-supplied strings as plain text (st.text / st.code), never Markdown
    st.text(f"{run.label} · {run.stage} · status {run.status} · {run.dataset or '?'} / {run.model or '?'}"
            f"{' · ' + run.scenario + ' ' + run.forget if run.forget else ''}"
            f"{' · seed ' + str(run.seed) if run.seed is not None else ''}")
    st.text(f"{run.n_snapshots} feature snapshots · embedding {'yes' if run.has_embedding else '—'}"
            + "".join(f" · {role}: {pid or 'outside the root'}" for role, pid in run.parents.items()))
    if run.error:
        st.caption("error recorded in manifest.json")
        st.code(run.error[:6000], language=None, wrap_lines=True)
    if run.problems:
        st.caption("problems reading this run")
        st.code("\n".join(run.problems), language=None, wrap_lines=True)
    if run.metrics:
        st.json(run.metrics, expanded=False)
with c2:
    manifest = D.manifest(run)
    if manifest.value is not None:
        with st.expander("manifest.json"):
            st.code(json.dumps(manifest.value, indent=1)[:6000], language="json")
    if run.config:
        with st.expander("config.json"):
            st.code(json.dumps(run.config, indent=1)[:6000], language="json")
    err = D.error_text(run)
    if err.value:
        with st.expander("error.txt", expanded=run.status == "failed"):
            st.code(err.value, language=None)
    elif err.error:
        common.warn(err.error)
