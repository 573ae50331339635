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
# # 02 · Make the forget split
# Which training images are forgotten: whole classes (**CR**, class removal) or a random sample (**HR**,
# homogeneous removal). Written once (`split.npz`) and reused by the retrained oracle, every unlearning
# run and the evaluation.

# %% tags=["parameters"]
dataset = "digits"  # scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH
data_root = None  # folder holding torchvision / Tiny-ImageNet data; None means ~/.cache/scarlab/data
scenario = "CR"  # CR (forget whole classes) or HR (forget random samples)
forget_classes = [0]  # CR: the forgotten class indices
forget_size = None  # HR: how many random training images are forgotten
seed = 0  # HR: seeds the random forget sample
out_dir = "runs/notebooks/split"  # run directory to create
overwrite = False  # replace an existing run directory at out_dir

# %%
import numpy as np
import pandas as pd
import plotly.express as px

from scarlab.data import load_dataset, make_split
from scarlab.notebook import FIG, setup_notebook
from scarlab.runs import RunDir

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## Split

# %%
ds = load_dataset(dataset, data_root)
split = make_split(ds, scenario, forget_classes, forget_size, seed)
config = {"dataset": dataset, "data_root": data_root, "scenario": split.scenario,
          "forget_classes": split.forget_classes, "forget_size": len(split.forget_idx), "seed": seed}
run = RunDir.create(out_dir, stage="split", config=config, overwrite=overwrite)
with run.running():
    split.save(run.file("split.npz"))
pd.DataFrame({"images": [len(split.forget_idx), len(split.retain_idx), len(split.forget_test_idx),
                         len(split.retain_test_idx)]},
             index=["forget (train)", "retain (train)", "forget (test)", "retain (test)"])

# %% [markdown]
# ## What is forgotten, per class

# %%
labels = ds.train.labels.numpy()
part = np.where(np.isin(np.arange(len(labels)), split.forget_idx), "forget", "retain")
counts = pd.DataFrame({"class": [ds.classes[c] for c in labels], "part": part}).value_counts().reset_index()
fig = px.bar(counts, x="class", y="count", color="part", title=split.describe(),
             color_discrete_map={"forget": "crimson", "retain": "lightgray"})
fig.update_layout(**FIG).show()

# %% [markdown]
# ## A few forget images

# %%
pick = split.forget_idx[np.linspace(0, len(split.forget_idx) - 1, 8).astype(int)]
imgs = ds.train.images[pick].permute(0, 2, 3, 1).numpy()
fig = px.imshow(imgs[..., 0] if imgs.shape[-1] == 1 else imgs, facet_col=0, facet_col_wrap=8,
                binary_string=True, title="forget set samples")
fig.for_each_annotation(lambda a: a.update(text=ds.classes[labels[pick[int(a.text.split('=')[1])]]]))
fig.update_layout(width=640, height=160, margin=dict(l=10, r=10, t=50, b=10))
fig.update_xaxes(visible=False).update_yaxes(visible=False).show()
