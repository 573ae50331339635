"""Feature migration: UMAP of the penultimate features, original | unlearned (animated) | retrained oracle."""
import shlex
from pathlib import Path

import streamlit as st

from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

common.header("Feature migration",
              "Penultimate features of the probe points, mapped to 2-D by one UMAP reducer fitted on the original "
              "model, so every step and every method shares the axes. Coloured clouds: retain-test classes. "
              "Outlined diamonds: forget samples, filled with the colour of the class the model predicts at that "
              "step — press ▶ Play to watch them travel. The oracle panel is the retrained model's own map, aligned "
              "to the original's.")
runs, run = common.pick_snapshot_run("migration")
got = D.embedding(run)
if got.value is None:
    common.warn(got.error)
    st.info("Compute the embedding with the command below (or `scarlab pipeline --embed`).")
    st.code(f"scarlab embed {shlex.quote(str(run.path))}", language="bash")
    st.stop()
emb, meta = got.value
steps = sorted(int(s) for s in emb["step"].unique())
names = D.class_names(run, meta, int(max(emb["label"].max(), emb["pred"].max())) + 1)

oracle_run = common.parent(runs, run, "retrained")
oracle = None
if oracle_run is not None:
    og = D.embedding(oracle_run)
    if og.value is not None:
        oracle = og.value[0]
        oracle = oracle[oracle["step"] == oracle["step"].max()]
    else:
        st.info(f"Retrained oracle {common.md(oracle_run.id)} has no embedding yet; compute it with:")
        st.code(f"scarlab embed {shlex.quote(str(oracle_run.path))}", language="bash")
elif run.parents.get("retrained") is None:
    st.caption("No retrained oracle recorded for this run (or it lies outside the runs root).")

c1, c2, c3 = st.columns([4, 1, 1])
if len(steps) > 1:
    step = c1.select_slider("Unlearning step (middle panel)", options=steps, value=steps[-1],
                            key=f"migration_step_{run.id}")
else:
    step = steps[0]
    c1.caption(f"One snapshot only (step {step}).")
has_ft = bool((emb["group"] == P.GROUP_FORGET_TEST).any())
show_ft = c2.checkbox("forget-test points", value=has_ft, disabled=not has_ft, key="migration_ft")
with_oracle = c3.checkbox("oracle panel", value=oracle is not None, disabled=oracle is None, key="migration_oracle")

fig = common.figure("migration", (D.run_sig(run), D.run_sig(oracle_run), step, show_ft, with_oracle, tuple(names)),
                    lambda: P.migration_figure(emb, step, oracle if with_oracle else None, names, method=run.label,
                                               show_forget_test=show_ft))
event = common.chart(fig, f"feature_migration_{run.label}_{run.forget}_{run.id}", "migration_chart",
                     download="HTML for slides (self-contained, offline)", on_select="rerun",
                     selection_mode=("points", "box", "lasso"), config={"displaylogo": False, "displayModeBar": "hover"})
st.caption(f"The HTML holds all {len(steps)} steps as animation frames and plotly.js itself: it opens without a "
           "network, and the animation waits for ▶ Play.")

now = emb[emb["step"] == step]
forget = now[now["group"] == P.GROUP_FORGET]
retain = now[now["group"] == P.GROUP_RETAIN]
m1, m2, m3, m4 = st.columns(4)
m1.metric("forget accuracy (probe)", f"{(forget['pred'] == forget['label']).mean():.1%}" if len(forget) else "—")
m2.metric("retain-test accuracy (probe)", f"{(retain['pred'] == retain['label']).mean():.1%}" if len(retain) else "—")
has_t = len(forget) and (forget["target"] >= 0).any()
m3.metric("forget → predicted as target", f"{(forget['pred'] == forget['target']).mean():.1%}" if has_t else "—")
m4.metric("points × snapshots", f"{len(now):,} × {len(steps)}")

# ---- inspect points: selection on the chart (click, box or lasso) or a pick list
thumbs = D.thumbs(run)
if thumbs.error:
    common.warn(thumbs.error)
selected = []
try:
    for p in (event.selection.points if event is not None else []) or []:
        cd = p.get("customdata")
        if cd is not None and len(cd):
            selected.append(int(cd[0]))
except (AttributeError, KeyError, TypeError, ValueError):
    selected = []
st.subheader("Inspect points")
if selected:
    st.caption(f"{len(selected)} point(s) selected on the chart (showing up to 16). Double-click the chart to clear.")
else:
    st.caption("Click a point (or draw a box / lasso) on the chart to see its image here, or pick forget samples. "
               "Captions read: true class → class predicted at the chosen step (the target SCAR pulls it to).")
    options = forget["point"].astype(int).tolist()
    fmt = {p: f"#{p} · train {i} · {common.class_name(names, lbl)}" for p, i, lbl in
           zip(forget["point"].tolist(), forget["index"].tolist(), forget["label"].tolist())}
    selected = st.multiselect("Forget samples", options, default=options[:8], format_func=lambda i: fmt.get(i, str(i)),
                              key=f"migration_pick_{run.id}", max_selections=16)
rows = now.set_index("point")
items = []
for pt in selected[:16]:
    if pt not in rows.index:
        continue
    r = rows.loc[pt]
    group = {0: "forget", 1: "retain", 2: "forget test"}.get(int(r["group"]), "?")
    target = f" (target {common.class_name(names, r['target'])})" if int(r["target"]) >= 0 and r["group"] != 1 else ""
    items.append((thumbs.value.get(int(pt)), f"{group} #{int(r['index'])}: {common.class_name(names, r['label'])} → "
                                             f"{common.class_name(names, r['pred'])}{target}"))
common.gallery(items, width=80)
if not thumbs.value:
    st.caption("No thumbnails stored for this run (thumbs.parquet is written by `scarlab embed`).")
st.caption(common.md(f"Embedding: {meta.get('axes', '?')} axes, reducer fitted in "
                     f"{Path(str(meta.get('reducer_run', '?'))).name}"
                     f"{'; oracle ' + str(oracle_run.id) if oracle is not None else ''}."))
