"""Distances: the SCAR mechanism made visible — Mahalanobis distance of forget samples to their own class vs
to their target class over unlearning steps, and which class each sample was sent to."""
import streamlit as st

from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

common.header("Distances",
              "For each forget sample the tracer records its Mahalanobis distance (in the original model's class "
              "statistics) to its own class and to its target class — the closest other class, fixed before the "
              "first step. SCAR pulls samples to their target: the red curve falls, the blue one rises.")
_, run = common.pick_snapshot_run("distances")
got = D.points_table(run)
if got.value is None:
    common.warn(got.error or "no snapshot data")
    st.stop()
if got.error:
    common.warn(got.error)
pts = got.value
meta = {}
emb = D.embedding(run)
if emb.value is not None:
    meta = emb.value[1]
k = int(max(pts["label"].max(), pts["pred"].max(), pts["target"].max())) + 1
names = D.class_names(run, meta, k)
steps = sorted(int(s) for s in pts["step"].unique())
forget = pts[pts["group"] == P.GROUP_FORGET]
has_dist = bool(forget["dist_own"].notna().any())

if not has_dist:
    st.info("These snapshots carry no distances: the original run had no class statistics (stats.npz), so the "
            "tracer could not compute them. The assignment matrices below still use predictions.")
else:
    sig = D.run_sig(run)
    common.chart(common.figure("dist_mean", sig, lambda: P.distance_mean_figure(pts)), f"distances_{run.id}",
                 "dist_mean")
    points = sorted(int(p) for p in forget["point"].unique())
    f0 = forget[forget["step"] == steps[0]]
    fmt = {p: f"#{p} · train {i} · {common.class_name(names, lbl)} → target {common.class_name(names, t)}"
           for p, i, lbl, t in zip(f0["point"].tolist(), f0["index"].tolist(), f0["label"].tolist(),
                                  f0["target"].tolist())}
    c1, c2 = st.columns([3, 1])
    highlight = c1.selectbox("Highlight a forget sample", points, format_func=lambda p: fmt.get(p, str(p)),
                             key=f"dist_sample_{run.id}")
    thumbs = D.thumbs(run).value or {}
    with c2:
        img = common.thumb_bytes(thumbs.get(int(highlight)))
        if img is not None:
            st.image(img, width=96, caption=common.md(fmt.get(highlight, "")))
    a, b = st.columns(2)
    with a:
        common.chart(common.figure("dist_samples", (sig, highlight), lambda: P.distance_samples_figure(pts, highlight)),
                     f"distances_{run.id}_sample_{highlight}", "dist_samples")
    with b:
        step = st.select_slider("Step", options=steps, value=steps[-1], key=f"dist_step_{run.id}") \
            if len(steps) > 1 else steps[0]
        common.chart(common.figure("dist_scatter", (sig, step), lambda: P.distance_scatter_figure(pts, step)),
                     f"distances_{run.id}_step_{step}", "dist_scatter")

st.subheader("Target-class assignment")
first = forget[forget["step"] == steps[0]]
last = forget[forget["step"] == steps[-1]]
a, b = st.columns(2)
with a:
    if (first["target"] >= 0).any():
        common.chart(common.figure("dist_assign", (D.run_sig(run), tuple(names)), lambda: P.assignment_matrix_figure(
            first["label"].to_numpy(), first["target"].to_numpy(), names, "own class", "target class",
            "Own class × target class")), f"distances_{run.id}_targets", "dist_assign")
    else:
        st.info("No target classes recorded in these snapshots.")
with b:
    common.chart(common.figure("dist_final", (D.run_sig(run), tuple(names)), lambda: P.assignment_matrix_figure(
        last["label"].to_numpy(), last["pred"].to_numpy(), names, "own class", f"prediction at step {steps[-1]}",
        "Own class × final prediction")), f"distances_{run.id}_predictions", "dist_final")
if (first["target"] >= 0).any() and len(last):
    tgt = first.set_index("point")["target"]
    agree = (last.set_index("point")["pred"] == tgt.reindex(last["point"]).to_numpy()).mean()
    st.caption(f"{agree:.1%} of the {len(last)} forget samples in the probe end up predicted as their target class.")
