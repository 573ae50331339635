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
# # 03 · Train the retrained oracle
# The gold standard every unlearning method imitates: the same model trained from scratch on the
# **retain set only** (the split's forget images removed). Too expensive in practice; here it is the reference.

# %% tags=["parameters"]
dataset = "digits"  # scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH
data_root = None  # folder holding torchvision / Tiny-ImageNet data; None means ~/.cache/scarlab/data
model = None  # registered model; None means tinycnn for digits, smallcnn otherwise
split = None  # split run directory or split.npz (02_split); it decides the forget set. None means a new split
scenario = "CR"  # without split: CR (forget whole classes) or HR (forget random samples)
forget_classes = [0]  # without split, CR: the forgotten class indices
forget_size = None  # without split, HR: how many random training images are forgotten
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
seed = 0  # seeds weights, shuffling, augmentation and (HR, without split) the forget sample
device = "auto"  # auto, cpu, cuda, cuda:N or mps
out_dir = "runs/notebooks/retrained"  # run directory to create
overwrite = False  # replace an existing run directory at out_dir

# %%
import pandas as pd
import plotly.express as px

from scarlab.config import TrainConfig
from scarlab.notebook import FIG, setup_notebook
from scarlab.train import run_train

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## Train on the retain set

# %%
cfg = TrainConfig(dataset=dataset, data_root=data_root, model=model, role="retrained", split=split,
                  scenario=scenario, forget_classes=list(forget_classes), forget_size=forget_size, epochs=epochs,
                  batch_size=batch_size, lr=lr, optimizer=optimizer, augment=augment, recipe=recipe,
                  label_smoothing=label_smoothing, whiten=whiten, channels_last=channels_last, bf16=bf16, seed=seed,
                  device=device)
run = run_train(cfg, out_dir, overwrite=overwrite, progress=False)
pd.Series(run.metrics, name="value").to_frame()

# %% [markdown]
# ## Accuracy on forget and retain data
# CR: the oracle never saw the forgotten classes, so it cannot recognise them (≈ 0). HR: forget accuracy ≈ test
# accuracy (unseen, not unknown).

# %%
acc = {k.split("/")[1]: v for k, v in run.metrics.items() if k.startswith("acc/") and v is not None}
fig = px.bar(x=list(acc), y=list(acc.values()), range_y=[0, 1], labels={"x": "", "y": "accuracy"},
             title="retrained oracle")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## Learning curves

# %%
hist = run.history()
fig = px.line(hist, x="epoch", y=["acc/train_running", "acc/test"], markers=True, title="training")
fig.update_layout(**FIG).show()
