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
# # 04 · Unlearn with any registered method
# Starts from the original model and forgets the split's forget set with one method of
# `scarlab.unlearn.METHODS` (SCAR, SCAR-self, the baselines). Method hyper-parameters are a dict, `params`,
# e.g. `-y 'params: {lambda_2: 5, epochs: 10}'` with papermill; unknown names are an error listing the valid ones.
# Every method writes the same trace: losses and accuracies per step, feature snapshots.

# %% tags=["parameters"]
original = None  # run directory of the original model (01_train_original); required
retrained = None  # run directory of the retrained oracle (03); recorded as a parent for evaluation
split = None  # split run directory or split.npz (02_split), or the retrained run (it holds a copy); required
method = "scar"  # registered method: scar, scar_self, finetune, negative_gradient, ...
params = {}  # method hyper-parameters by name, e.g. {"lr": 0.00025, "lambda_2": 5}; {} means all defaults
seed = 0  # seeds the method's randomness
surrogate = "auto"  # OOD images: imagefolder:PATH, sample_edges, sample_images, gaussian_noise or auto
surrogate_chunks = None  # imagefolder surrogate: use only the first k chunk folders; None means all
surrogate_size = 2000  # generated surrogates (noise, sample photos): how many images
snapshot_every = 5  # feature snapshot every k optimiser steps (plus the first and the last)
retain_available = True  # False: refuse methods that need the retain set (finetune, ...), before any run starts
device = "auto"  # auto, cpu, cuda, cuda:N or mps
out_dir = "runs/notebooks/unlearn"  # run directory to create
overwrite = False  # replace an existing run directory at out_dir

# %%
import pandas as pd
import plotly.express as px

from scarlab.config import UnlearnConfig
from scarlab.errors import ScarlabError, choose
from scarlab.notebook import FIG, setup_notebook
from scarlab.unlearn import METHODS
from scarlab.unlearn.stage import run_unlearn

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## The method

# %%
if original is None:
    raise ScarlabError("set original: the run directory of the original model (01_train_original)")
choose("method", method, METHODS)  # an unknown method is an error listing the registered ones
spec = METHODS[method]
print(f"{method}: {spec.summary}\nreads: {', '.join(sorted(spec.needs))}")

# %% [markdown]
# ## Unlearn

# %%
cfg = UnlearnConfig(original=original, method=method, retrained=retrained, split=split, seed=seed,
                    surrogate=surrogate, surrogate_chunks=surrogate_chunks, surrogate_size=surrogate_size,
                    params=params, snapshot_every=snapshot_every, retain_available=retain_available, device=device)
run = run_unlearn(cfg, out_dir, overwrite=overwrite, progress=False)  # refuses a method needing a withheld retain set
pd.Series(run.metrics, name="value").to_frame()

# %% [markdown]
# The hyper-parameters the run used: `params` resolved by the unlearn stage (the data set's defaults filled in,
# the retain set's absence applied), as recorded in its `config.json`.

# %%
pd.Series(run.config["params"], name=method).astype(str).to_frame()

# %% [markdown]
# ## Losses per step

# %%
hist = run.history()
losses = [c for c in hist.columns if c.startswith("loss/")]
steps = hist.dropna(subset=losses, how="all") if losses else hist
if losses:
    fig = px.line(steps, x="step", y=losses, title=f"{method}: losses")
    fig.update_layout(**FIG).show()
else:
    print(f"{method} logs no losses")

# %% [markdown]
# ## Forgetting over steps
# Accuracy of the fixed probe points (forget-train, retain-test, forget-test) at every feature snapshot, and the
# forget-set accuracy the stopping rule watches.

# %%
accs = [c for c in hist.columns if c.startswith("probe/acc/") or c == "acc/forget_train"]
acc = hist.melt(id_vars="step", value_vars=accs).dropna()
fig = px.line(acc, x="step", y="value", color="variable", markers=True, range_y=[-0.02, 1.02],
              title=f"{method}: accuracy while unlearning")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## Feature migration, in distances
# Mean Mahalanobis distance of the forget probe points to their own class and to their target class (the closest
# other class). SCAR pulls the second down.

# %%
if {"dist/own", "dist/target"} <= set(hist.columns):
    d = hist.dropna(subset=["dist/own"]).melt(id_vars="step", value_vars=["dist/own", "dist/target"])
    fig = px.line(d, x="step", y="value", color="variable", markers=True, title="forget samples: distances")
    fig.update_layout(**FIG).show()
else:
    print("no class statistics for this original model: distances were not traced")
