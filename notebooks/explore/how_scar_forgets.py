# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How SCAR forgets — step by step, on digits
# SCAR (Bonato, Cotogni, Sabetta, ECCV 2024) removes a class from a trained classifier **without the retain
# set**. Two losses work together:
#
# 1. **Feature migration** — each forget sample's penultimate feature is pulled, by Mahalanobis distance,
#    toward the closest *other* class's feature distribution (its *target*).
# 2. **Distillation on surrogate images** — out-of-distribution images go through the frozen original model
#    (teacher) and the model being unlearned (student); the student keeps matching the teacher's outputs,
#    which preserves everything else the model knows.
#
# This notebook trains a tiny CNN on scikit-learn's 8×8 digits, forgets the digit **0**, and shows each
# ingredient. It runs in about half a minute on a laptop CPU.

# %% tags=["parameters"]
forget_class = 0  # the digit to forget
epochs = 6  # training epochs of the original model
seed = 0  # seeds training and unlearning

# %%
import numpy as np
import pandas as pd
import plotly.express as px
import torch

from scarlab.notebook import FIG, setup_notebook

import tempfile
from pathlib import Path

from sklearn.decomposition import PCA

from scarlab.config import TrainConfig, UnlearnConfig
from scarlab.data import load_dataset, load_surrogate, make_split
from scarlab.features import extract, predict
from scarlab.models import load_checkpoint
from scarlab.stats import ClassStats
from scarlab.train import model_accuracies as split_accuracies, run_train
from scarlab.unlearn.stage import run_unlearn

work = Path(tempfile.mkdtemp(prefix="how_scar_forgets_"))
ds = load_dataset("digits")

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## 1 · The data and the original model
# 1,347 training digits, 450 test digits, 10 classes. A 2-layer CNN learns them in seconds.

# %%
original = run_train(TrainConfig(dataset="digits", epochs=epochs, seed=seed, device="cpu"), work / "original",
                     progress=False)
teacher = load_checkpoint(original.file("checkpoints/model.pt"))
imgs = ds.train.images[:10, 0].numpy()
fig = px.imshow(imgs, facet_col=0, binary_string=True,
                title=f"training digits · original test accuracy {original.metrics['acc/test']:.3f}")
fig.for_each_annotation(lambda a: a.update(text=str(int(ds.train.labels[int(a.text.split('=')[1])]))))
fig.update_layout(width=640, height=150, margin=dict(l=5, r=5, t=50, b=5))
fig.update_xaxes(visible=False).update_yaxes(visible=False).show()

# %% [markdown]
# ## 2 · Surrogate images: what SCAR distils on instead of the retain set
# SCAR never touches the retain set. It needs *some* natural-looking images to keep the rest of the model's
# behaviour: for digits, `sample_edges` — Sobel edge maps of random crops of two photos that ship with
# scikit-learn, stroke-like like digits but not digits. The teacher still assigns them classes: those it
# calls a **0** are dropped from distillation (the CR filter), and the teacher's 0-logit is lowered to its minimum.

# %%
surrogate = load_surrogate("sample_edges", ds, size=2000, seed=seed)
_, t_logits = extract(teacher, ds, surrogate, features=False)
t_pred = t_logits.argmax(1).numpy()
fig = px.imshow(surrogate[:10, 0].numpy(), facet_col=0, binary_string=True, title="surrogate images (sample_edges)")
fig.for_each_annotation(lambda a: a.update(text=f"teacher: {t_pred[int(a.text.split('=')[1])]}"))
fig.update_layout(width=640, height=150, margin=dict(l=5, r=5, t=50, b=5))
fig.update_xaxes(visible=False).update_yaxes(visible=False).show()
counts = pd.Series(t_pred).value_counts().reindex(range(10), fill_value=0)
fig = px.bar(x=[str(c) for c in counts.index], y=counts.values, color=counts.index == forget_class,
             labels={"x": "teacher's class", "y": "surrogate images", "color": "dropped (forget class)"},
             title="what the original model thinks the surrogates are")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## 3 · Class statistics: a Gaussian per class in feature space
# Stored when the original model was trained: the features of each class, Tukey-transformed (x ↦ √x),
# give a mean μ_c and a covariance Σ_c (shrunk twice, normalised to a correlation matrix, pseudo-inverted).
# The distance of a feature x to class c is d_c(x) = (x̂ − μ̂_c)ᵀ Σ_c⁻¹ (x̂ − μ̂_c), hats meaning L2-normalised.

# %%
stats = ClassStats.load(original.file("stats.npz"))
metric = stats.metric()
fig = px.imshow(stats.means.numpy(), aspect="auto", color_continuous_scale="Viridis",
                labels={"x": "feature", "y": "class", "color": "mean √feature"},
                title="class means μ_c (Tukey space), one row per digit")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## 4 · Distances and targets: where each forgotten 0 will be sent
# Distances of every training **0** to every class's distribution. Its own class is closest; the closest
# *other* class becomes its target, fixed before the first step.

# %%
split = make_split(ds, "CR", [forget_class])
forget_images = ds.train.images[torch.as_tensor(split.forget_idx)]
feats0, _ = extract(teacher, ds, forget_images)
dist0 = metric.distances(feats0)                                      # [forget samples, 10 classes]
targets = metric.targets(dist0, torch.full((len(feats0),), forget_class), [forget_class]).numpy()
d = pd.DataFrame(dist0.numpy()).melt(var_name="class", value_name="distance")
fig = px.box(d, x="class", y="distance", points=False, title=f"distances of the {len(feats0)} forget samples "
             "to each class (before)")
fig.update_layout(**FIG).show()
tc = pd.Series(targets).value_counts().sort_index()
fig = px.bar(x=[str(c) for c in tc.index], y=tc.values, labels={"x": "target class", "y": "forget samples"},
             title="target classes: the closest other class of each forget sample")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## 5 · Run SCAR
# The whole method, with a feature snapshot after every optimiser step.

# %%
split_dir = work / "split"
split_dir.mkdir()
split.save(split_dir / "split.npz")
scar = run_unlearn(UnlearnConfig(original=str(original.path), method="scar", split=str(split_dir),
                                 surrogate="sample_edges", seed=seed, snapshot_every=1, device="cpu"),
                   work / "scar", progress=False)
hist = scar.history()
before = split_accuracies(teacher, ds, split, "cpu")                  # the original model on the same split
pd.DataFrame({"original": before, "after SCAR": {k: scar.metrics[k] for k in before}})

# %%
fig = px.line(hist.dropna(subset=["loss/total"]), x="step", y=["loss/forget", "loss/retain"],
              title="L_M (feature migration) and L_TD (distillation) per step")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## 6 · Distances before and after
# Each forget sample's distance to its own class grows while the distance to its target class shrinks: the features
# migrate.

# %%
snaps = sorted((scar.path / "features").glob("step_*.npz"))
first, last = (dict(np.load(s)) for s in (snaps[0], snaps[-1]))
fm = first["group"] == 0                                             # forget-train probe points
d = pd.concat([pd.DataFrame({"distance": s[k][fm], "to": k.replace("dist_", ""), "when": when})
               for s, when in ((first, "before"), (last, "after")) for k in ("dist_own", "dist_target")])
fig = px.box(d, x="to", y="distance", color="when", points=False,
             title="forget samples: distance to own vs target class")
fig.update_layout(**FIG).show()
curve = hist.dropna(subset=["dist/own"])
fig = px.line(curve, x="step", y=["dist/own", "dist/target"], markers=True, title="mean distances over the steps")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## 7 · Features before and after (PCA)
# One PCA fitted on the original features, applied to both snapshots so the axes are shared. Forget samples (large
# markers) leave the 0 cluster.

# %%
pca = PCA(2, random_state=0).fit(first["features"].astype(np.float32))
frames = []
for s, when in ((first, "before"), (last, "after")):
    xy = pca.transform(s["features"].astype(np.float32))
    frames.append(pd.DataFrame({"pc1": xy[:, 0], "pc2": xy[:, 1], "label": s["labels"].astype(str),
                                "forget": s["group"] == 0, "when": when, "prediction": s["preds"]}))
f = pd.concat(frames)
f = f[f["forget"] | (np.arange(len(f)) % 2 == 0)]                     # thin the retain points
fig = px.scatter(f, x="pc1", y="pc2", color="label", facet_col="when", symbol="forget",
                 size=np.where(f["forget"], 9, 4), size_max=9, opacity=0.75, hover_data=["prediction"],
                 category_orders={"when": ["before", "after"]},
                 title="penultimate features, PCA of the original's features")
fig.update_layout(width=760, height=380, margin=dict(l=40, r=20, t=60, b=40)).show()

# %% [markdown]
# ## 8 · Where did the forgotten digits go?
# After unlearning, the forget samples are predicted as other digits. Rows: the target class SCAR pulled each one
# toward; columns: what the unlearned model now says.

# %%
preds_after = predict(load_checkpoint(scar.file("checkpoints/model.pt")), ds, forget_images).numpy()
agree = float((preds_after == targets).mean())
ct = pd.crosstab(pd.Series(targets, name="target class"), pd.Series(preds_after, name="prediction after SCAR"))
fig = px.imshow(ct, text_auto=True, color_continuous_scale="Blues",
                title=f"forget samples: target vs prediction ({agree:.0%} predicted as their target)")
fig.update_layout(width=520, height=420, margin=dict(l=40, r=20, t=60, b=40)).show()

# %% [markdown]
# ## What to try next
# - Set `forget_class` to another digit and rerun.
# - `scarlab pipeline --methods scar,scar_self,finetune,negative_gradient` compares SCAR with the baselines
#   and the retrained oracle (accuracies, MIA, AUS); `scarlab dashboard --runs runs/` animates the migration.
