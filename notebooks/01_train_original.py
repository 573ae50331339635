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
# # 01 · Train the original model
# The model every unlearning method starts from. Trains on **all** training data and stores the per-class
# feature statistics SCAR reads (`stats.npz`). Run it from `scarlab pipeline`, or with papermill:
# `papermill 01_train_original.ipynb out.ipynb -p dataset digits -p out_dir runs/nb/original`.

# %% tags=["parameters"]
dataset = "digits"  # scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH
data_root = None  # folder holding torchvision / Tiny-ImageNet data; None means ~/.cache/scarlab/data
model = None  # registered model; None means tinycnn for digits, smallcnn otherwise
recipe = "lab"  # training recipe of 32-px images and larger: "lab", "fast" or "classic" (digits: one recipe)
epochs = None  # training epochs; None means the recipe's (digits 12; lab 18, fast 12, classic 30)
batch_size = None  # mini-batch size; None means the recipe's (digits 64; lab and fast 256, classic 128)
lr = None  # peak learning rate; None means the recipe's (digits 0.003 Adam; lab and fast 0.2, classic 0.05 SGD)
optimizer = None  # "sgd" (momentum 0.9, Nesterov) or "adam"; None means the recipe's
augment = True  # random crop (and horizontal flip, except digits) on training batches
label_smoothing = None  # cross-entropy label smoothing; None means the recipe's (lab and fast 0.2, else 0)
whiten = None  # first convolution whitened from the data and kept fixed; None means the recipe's
channels_last = None  # channels-last memory layout while training; None means the recipe's
bf16 = None  # bfloat16 autocast of the forward pass while training; None means the recipe's (lab: where native)
seed = 0  # seeds weights, shuffling and augmentation
device = "auto"  # auto, cpu, cuda, cuda:N or mps
out_dir = "runs/notebooks/original"  # run directory to create
overwrite = False  # replace an existing run directory at out_dir

# %%
import pandas as pd
import plotly.express as px

from scarlab.config import TrainConfig
from scarlab.notebook import FIG, setup_notebook
from scarlab.runs import RunDir
from scarlab.train import run_train

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## Train
# One run directory: checkpoint, `history.csv`, accuracies, class statistics.

# %%
cfg = TrainConfig(dataset=dataset, data_root=data_root, model=model, role="original", epochs=epochs,
                  batch_size=batch_size, lr=lr, optimizer=optimizer, augment=augment, recipe=recipe,
                  label_smoothing=label_smoothing, whiten=whiten, channels_last=channels_last, bf16=bf16, seed=seed,
                  device=device)
run = run_train(cfg, out_dir, overwrite=overwrite, progress=False)
pd.Series(run.metrics, name="value").to_frame()

# %% [markdown]
# ## Learning curves

# %%
hist = run.history()
curves = hist.melt(id_vars="epoch", value_vars=["acc/train_running", "acc/test", "loss/train"])
fig = px.line(curves, x="epoch", y="value", facet_col="variable", markers=True,
              title=f"{run.config['model']} on {run.config['dataset']}")
fig.update_yaxes(matches=None, showticklabels=True)
fig.update_layout(**FIG).show()

# %% [markdown]
# ## Per-class test accuracy
# The original model should know every class, including the ones that will be forgotten.

# %%
from scarlab.data import load_dataset
from scarlab.features import predict
from scarlab.metrics import per_class_accuracy
from scarlab.models import load_checkpoint

ds = load_dataset(run.config["dataset"], run.config.get("data_root"))
model = load_checkpoint(run.file("checkpoints/model.pt"))
per_class = per_class_accuracy(predict(model, ds, ds.test.images).numpy(), ds.test.labels.numpy(), ds.num_classes)
fig = px.bar(x=ds.classes, y=per_class, labels={"x": "class", "y": "test accuracy"}, range_y=[0, 1],
             title="original model: test accuracy per class")
fig.update_layout(**FIG).show()
