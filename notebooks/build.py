"""Generate the stage notebooks (and the teaching notebook) from one place, so they stay consistent.

    python notebooks/build.py           # (re)write every notebook, without outputs
    python notebooks/build.py --check   # exit 1 if a committed notebook differs from what this script makes

Every stage notebook has the same shape: a title, a cell tagged ``parameters`` holding flat typed literals
with one trailing comment each (``papermill --help-notebook notebooks/04_unlearn.ipynb`` lists them),
a setup cell, then a few cells that are each one scarlab call followed by a table or a small plotly figure.
`scarlab pipeline` executes them with papermill; a person can open and run them in JupyterLab as they are.
Edit the notebooks here, not in Lab: this script overwrites them.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
    "language_info": {"name": "python"},
}

# Shared by every notebook: plotly JSON outputs (small; JupyterLab renders them) and the thread count the
# pipeline asks for (SCARLAB_THREADS), so parallel stages do not oversubscribe the CPU.
SETUP = """\
import json
import os
import warnings

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.io as pio
import torch

pio.renderers.default = "plotly_mimetype"
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets
torch.set_num_threads(int(os.environ.get("SCARLAB_THREADS") or torch.get_num_threads()))
FIG = dict(width=640, height=340, margin=dict(l=40, r=20, t=50, b=40))  # small figures keep notebooks light"""


def _src(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def setup(imports: str) -> str:
    """The shared setup cell plus a stage's own imports."""
    return SETUP + "\n\n" + _src(imports)


class Book:
    """A notebook under construction with deterministic cell ids (rebuilding changes nothing)."""

    def __init__(self, stem: str):
        self.stem, self.cells = stem, []

    def _id(self) -> str:
        return f"{self.stem.replace('_', '-')[:40]}-{len(self.cells):02d}"

    def md(self, text: str) -> "Book":
        self.cells.append(new_markdown_cell(_src(text), id=self._id()))
        return self

    def code(self, text: str, tags: list[str] | None = None) -> "Book":
        cell = new_code_cell(_src(text), id=self._id())
        if tags:
            cell.metadata["tags"] = tags
        self.cells.append(cell)
        return self

    def params(self, text: str) -> "Book":
        return self.code(text, tags=["parameters"])

    def notebook(self):
        nb = new_notebook(cells=self.cells, metadata=METADATA)
        nb.nbformat, nb.nbformat_minor = 4, 5
        return nb


# ----------------------------------------------------------------------------------------------- stages
def train_original() -> Book:
    b = Book("01_train_original")
    b.md("""
    # 01 · Train the original model
    The model every unlearning method starts from. Trains on **all** training data and stores the per-class
    feature statistics SCAR reads (`stats.npz`). Run it from `scarlab pipeline`, or with papermill:
    `papermill 01_train_original.ipynb out.ipynb -p dataset digits -p out_dir runs/nb/original`.
    """)
    b.params("""
    dataset: str = "digits"  # scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH
    data_root: str = ""  # folder holding torchvision / Tiny-ImageNet data; empty means ~/.cache/scarlab/data
    model: str = ""  # registered model; empty means tinycnn for digits, smallcnn otherwise
    epochs: int = 0  # training epochs; 0 means the data set's default (digits 12, otherwise 30)
    batch_size: int = 0  # mini-batch size; 0 means default (64 digits, 128 otherwise)
    lr: float = 0.0  # peak learning rate; 0 means default (Adam 0.003 digits, SGD 0.05 otherwise)
    optimizer: str = ""  # sgd or adam; empty means adam for digits, sgd otherwise
    augment: bool = True  # random crop (and flip, except digits) on training batches
    seed: int = 0  # seeds weights, shuffling and augmentation
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    out_dir: str = "runs/notebooks/original"  # run directory to create
    overwrite: bool = False  # replace an existing run directory at out_dir
    """)
    b.code(setup("""

    from scarlab.config import TrainConfig
    from scarlab.runs import RunDir
    from scarlab.train import run_train"""))
    b.md("## Train\nOne run directory: checkpoint, `history.csv`, accuracies, class statistics.")
    b.code("""
    cfg = TrainConfig(dataset=dataset, data_root=data_root or None, model=model or None, role="original",
                      epochs=epochs or None, batch_size=batch_size or None, lr=lr or None,
                      optimizer=optimizer or None, augment=augment, seed=seed, device=device)
    run = run_train(cfg, out_dir, overwrite=overwrite, progress=False)
    pd.Series(run.metrics, name="value").to_frame()""")
    b.md("## Learning curves")
    b.code("""
    hist = run.history()
    curves = hist.melt(id_vars="epoch", value_vars=["acc/train_running", "acc/test", "loss/train"])
    fig = px.line(curves, x="epoch", y="value", facet_col="variable", markers=True,
                  title=f"{run.config['model']} on {run.config['dataset']}")
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.update_layout(**FIG).show()""")
    b.md("## Per-class test accuracy\nThe original model should know every class, including the ones that "
         "will be forgotten.")
    b.code("""
    from scarlab.data import load_dataset
    from scarlab.features import predict
    from scarlab.metrics import per_class_accuracy
    from scarlab.models import load_checkpoint

    ds = load_dataset(run.config["dataset"], run.config.get("data_root"))
    model = load_checkpoint(run.file("checkpoints/model.pt"))
    per_class = per_class_accuracy(predict(model, ds, ds.test.images).numpy(), ds.test.labels.numpy(), ds.num_classes)
    fig = px.bar(x=ds.classes, y=per_class, labels={"x": "class", "y": "test accuracy"}, range_y=[0, 1],
                 title="original model: test accuracy per class")
    fig.update_layout(**FIG).show()""")
    return b


def split() -> Book:
    b = Book("02_split")
    b.md("""
    # 02 · Make the forget split
    Which training images are forgotten: whole classes (**CR**, class removal) or a random sample (**HR**,
    homogeneous removal). Written once (`split.npz`) and reused by the retrained oracle, every unlearning
    run and the evaluation.
    """)
    b.params("""
    dataset: str = "digits"  # scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH
    data_root: str = ""  # folder holding torchvision / Tiny-ImageNet data; empty means ~/.cache/scarlab/data
    scenario: str = "CR"  # CR (forget whole classes) or HR (forget random samples)
    forget_classes: list = [0]  # CR: the forgotten class indices
    forget_size: int = 0  # HR: how many random training images are forgotten
    seed: int = 0  # HR: seeds the random forget sample
    out_dir: str = "runs/notebooks/split"  # run directory to create
    overwrite: bool = False  # replace an existing run directory at out_dir
    """)
    b.code(setup("""

    from scarlab.data import load_dataset, make_split
    from scarlab.runs import RunDir"""))
    b.md("## Split")
    b.code("""
    ds = load_dataset(dataset, data_root or None)
    split = make_split(ds, scenario, forget_classes, forget_size or None, seed)
    config = {"dataset": dataset, "data_root": data_root or None, "scenario": split.scenario,
              "forget_classes": split.forget_classes, "forget_size": len(split.forget_idx), "seed": seed}
    run = RunDir.create(out_dir, stage="split", config=config, overwrite=overwrite)
    with run.running():
        split.save(run.file("split.npz"))
    pd.DataFrame({"images": [len(split.forget_idx), len(split.retain_idx), len(split.forget_test_idx),
                             len(split.retain_test_idx)]},
                 index=["forget (train)", "retain (train)", "forget (test)", "retain (test)"])""")
    b.md("## What is forgotten, per class")
    b.code("""
    labels = ds.train.labels.numpy()
    part = np.where(np.isin(np.arange(len(labels)), split.forget_idx), "forget", "retain")
    counts = pd.DataFrame({"class": [ds.classes[c] for c in labels], "part": part}).value_counts().reset_index()
    fig = px.bar(counts, x="class", y="count", color="part", title=split.describe(),
                 color_discrete_map={"forget": "crimson", "retain": "lightgray"})
    fig.update_layout(**FIG).show()""")
    b.md("## A few forget images")
    b.code("""
    pick = split.forget_idx[np.linspace(0, len(split.forget_idx) - 1, 8).astype(int)]
    imgs = ds.train.images[pick].permute(0, 2, 3, 1).numpy()
    fig = px.imshow(imgs[..., 0] if imgs.shape[-1] == 1 else imgs, facet_col=0, facet_col_wrap=8,
                    binary_string=True, title="forget set samples")
    fig.for_each_annotation(lambda a: a.update(text=ds.classes[labels[pick[int(a.text.split('=')[1])]]]))
    fig.update_layout(width=640, height=160, margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(visible=False).update_yaxes(visible=False).show()""")
    return b


def train_retrained() -> Book:
    b = Book("03_train_retrained")
    b.md("""
    # 03 · Train the retrained oracle
    The gold standard every unlearning method imitates: the same model trained from scratch on the
    **retain set only** (the split's forget images removed). Too expensive in practice; here it is the reference.
    """)
    b.params("""
    dataset: str = "digits"  # scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH
    data_root: str = ""  # folder holding torchvision / Tiny-ImageNet data; empty means ~/.cache/scarlab/data
    model: str = ""  # registered model; empty means tinycnn for digits, smallcnn otherwise
    split: str = ""  # split run directory (or split.npz) from 02_split; empty means make one from the options below
    scenario: str = "CR"  # without split: CR or HR
    forget_classes: list = [0]  # without split, CR: the forgotten class indices
    forget_size: int = 0  # without split, HR: how many random training images are forgotten
    epochs: int = 0  # training epochs; 0 means the data set's default (digits 12, otherwise 30)
    batch_size: int = 0  # mini-batch size; 0 means default (64 digits, 128 otherwise)
    lr: float = 0.0  # peak learning rate; 0 means default (Adam 0.003 digits, SGD 0.05 otherwise)
    optimizer: str = ""  # sgd or adam; empty means adam for digits, sgd otherwise
    augment: bool = True  # random crop (and flip, except digits) on training batches
    seed: int = 0  # seeds weights, shuffling and augmentation
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    out_dir: str = "runs/notebooks/retrained"  # run directory to create
    overwrite: bool = False  # replace an existing run directory at out_dir
    """)
    b.code(setup("""

    from scarlab.config import TrainConfig
    from scarlab.train import run_train"""))
    b.md("## Train on the retain set")
    b.code("""
    cfg = TrainConfig(dataset=dataset, data_root=data_root or None, model=model or None, role="retrained",
                      scenario=scenario, forget_classes=list(forget_classes), forget_size=forget_size or None,
                      split=split or None, epochs=epochs or None, batch_size=batch_size or None, lr=lr or None,
                      optimizer=optimizer or None, augment=augment, seed=seed, device=device)
    run = run_train(cfg, out_dir, overwrite=overwrite, progress=False)
    pd.Series(run.metrics, name="value").to_frame()""")
    b.md("## Accuracy on forget and retain data\nCR: the oracle never saw the forgotten classes, so it cannot "
         "recognise them (≈ 0). HR: forget accuracy ≈ test accuracy (unseen, not unknown).")
    b.code("""
    acc = {k.split("/")[1]: v for k, v in run.metrics.items() if k.startswith("acc/") and v is not None}
    fig = px.bar(x=list(acc), y=list(acc.values()), range_y=[0, 1], labels={"x": "", "y": "accuracy"},
                 title="retrained oracle")
    fig.update_layout(**FIG).show()""")
    b.md("## Learning curves")
    b.code("""
    hist = run.history()
    fig = px.line(hist, x="epoch", y=["acc/train_running", "acc/test"], markers=True, title="training")
    fig.update_layout(**FIG).show()""")
    return b


def unlearn() -> Book:
    b = Book("04_unlearn")
    b.md("""
    # 04 · Unlearn with any registered method
    Starts from the original model and forgets the split's forget set with one method of
    `scarlab.unlearn.METHODS` (SCAR, SCAR-self, the baselines). Method hyper-parameters are a flat JSON object,
    e.g. `-p params_json '{"lambda_2": 5, "epochs": 10}'`; unknown names are an error listing the valid ones.
    Every method writes the same trace: losses and accuracies per step, feature snapshots.
    """)
    b.params("""
    original: str = ""  # run directory of the original model (01_train_original)
    retrained: str = ""  # run directory of the retrained oracle (03); recorded as a parent for evaluation
    split: str = ""  # split run directory (or split.npz) from 02_split
    method: str = "scar"  # registered method: scar, scar_self, finetune, negative_gradient, ...
    params_json: str = "{}"  # method hyper-parameters as a flat JSON object, e.g. {"lambda_2": 5}
    seed: int = 0  # seeds the method's randomness
    surrogate: str = "auto"  # OOD images: imagefolder:PATH, sample_edges, sample_images, gaussian_noise or auto
    surrogate_chunks: int = 0  # imagefolder surrogate: use only the first k chunk folders; 0 means all
    surrogate_size: int = 2000  # generated surrogates: how many images
    snapshot_every: int = 5  # feature snapshot every k optimiser steps (plus the first and the last)
    retain_available: bool = True  # false: refuse methods that need the retain set
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    out_dir: str = "runs/notebooks/unlearn"  # run directory to create
    overwrite: bool = False  # replace an existing run directory at out_dir
    """)
    b.code(setup("""

    from scarlab.config import UnlearnConfig
    from scarlab.pipeline import check_retain
    from scarlab.runs import RunDir
    from scarlab.unlearn import METHODS
    from scarlab.unlearn.stage import run_unlearn"""))
    b.md("## The method and its hyper-parameters")
    b.code("""
    from dataclasses import asdict

    check_retain(method, retain_available)  # also rejects an unknown method, listing the registered ones
    spec = METHODS[method]
    hyper = spec.make_params(json.loads(params_json), RunDir(original).require_complete("original run").config["dataset"])
    print(f"{method}: {spec.summary}\\nreads: {', '.join(sorted(spec.needs))}")
    pd.Series(asdict(hyper), name=method).astype(str).to_frame()""")
    b.md("## Unlearn")
    b.code("""
    cfg = UnlearnConfig(original=original, method=method, retrained=retrained or None, split=split or None,
                        seed=seed, surrogate=surrogate, surrogate_chunks=surrogate_chunks or None,
                        surrogate_size=surrogate_size, params=json.loads(params_json), snapshot_every=snapshot_every,
                        device=device)
    run = run_unlearn(cfg, out_dir, overwrite=overwrite, progress=False, retain_available=retain_available)
    pd.Series(run.metrics, name="value").to_frame()""")
    b.md("## Losses per step")
    b.code("""
    hist = run.history()
    losses = [c for c in hist.columns if c.startswith("loss/")]
    steps = hist.dropna(subset=losses, how="all") if losses else hist
    if losses:
        fig = px.line(steps, x="step", y=losses, title=f"{method}: losses")
        fig.update_layout(**FIG).show()
    else:
        print(f"{method} logs no losses")""")
    b.md("## Forgetting over steps\nAccuracy of the fixed probe points (forget-train, retain-test, forget-test) "
         "at every feature snapshot, and the forget-set accuracy the stopping rule watches.")
    b.code("""
    accs = [c for c in hist.columns if c.startswith("probe/acc/") or c == "acc/forget_train"]
    acc = hist.melt(id_vars="step", value_vars=accs).dropna()
    fig = px.line(acc, x="step", y="value", color="variable", markers=True, range_y=[-0.02, 1.02],
                  title=f"{method}: accuracy while unlearning")
    fig.update_layout(**FIG).show()""")
    b.md("## Feature migration, in distances\nMean Mahalanobis distance of the forget probe points to their own "
         "class and to their target class (the closest other class). SCAR pulls the second down.")
    b.code("""
    if {"dist/own", "dist/target"} <= set(hist.columns):
        d = hist.dropna(subset=["dist/own"]).melt(id_vars="step", value_vars=["dist/own", "dist/target"])
        fig = px.line(d, x="step", y="value", color="variable", markers=True, title="forget samples: distances")
        fig.update_layout(**FIG).show()
    else:
        print("no class statistics for this original model: distances were not traced")""")
    return b


def evaluate() -> Book:
    b = Book("05_evaluate")
    b.md("""
    # 05 · Evaluate a run
    Accuracies, the membership-inference attacks and AUS for an unlearning or retrained run (written into
    its `metrics.json`), or for the **original** model against a split (`out_dir` set: a new evaluation
    run directory, method "original"). Optionally computes the UMAP embedding of its feature snapshots
    for the dashboard.
    """)
    b.params("""
    run: str = ""  # run directory to evaluate (unlearn or retrained run; the original model with out_dir)
    original: str = ""  # run directory of the original model ("" when run is the original)
    retrained: str = ""  # run directory of the retrained oracle, for the privacy score (empty: none)
    split: str = ""  # split run directory or split.npz; empty means the run's own split.npz
    out_dir: str = ""  # set to evaluate the original model against split into a new run directory here
    embed: bool = False  # also compute embedding.parquet (UMAP of the feature snapshots) for the dashboard
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    """)
    b.code(setup("""

    from scarlab.evaluate import LABELS, evaluate_run, run_method
    from scarlab.metrics import attack_chance
    from scarlab.runs import RunDir"""))
    b.md("## Metrics")
    b.code("""
    metrics = evaluate_run(run, original=original or None, retrained=retrained or None, split=split or None,
                           out=out_dir or None, device=device)
    pd.Series(metrics, name="value").to_frame()""")
    b.md("## Accuracies and AUS")
    b.code("""
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None
             and (k.startswith("acc/") or k == "aus")}
    fig = px.bar(x=list(shown), y=list(shown.values()), labels={"x": "", "y": ""},
                 title=f"{run_method(RunDir(out_dir or run))}: evaluation")
    fig.update_layout(**FIG).show()""")
    b.md("""
    ## Attacks against their chance level
    An attack only shows leakage above its **chance** level (dashed), what guessing the larger set scores.
    The paper's SVC attack: its accuracy is the paper's F1 (micro-F1 = accuracy), its chance the majority
    fraction of its evaluation set — 0.75 in CR, where members are up to 3× the non-members, 0.5 in HR (1:1).
    ΔF1 = |F1·100 − 50| is the paper's HR number (≈ 0 without signal). The loss-LR and confidence-threshold
    attacks are balanced: chance 0.5.
    """)
    b.code("""
    chance = attack_chance(metrics)  # {attack accuracy key: its chance level}
    attacks = pd.DataFrame({"attack": [LABELS.get(k, k) for k in chance], "accuracy": [metrics[k] for k in chance],
                            "chance": list(chance.values())}, index=list(chance))
    fig = px.bar(attacks, x="attack", y="accuracy", range_y=[0, 1], title="membership attacks (dashed: chance)")
    for i, c in enumerate(attacks["chance"]):
        fig.add_shape(type="line", x0=i - 0.45, x1=i + 0.45, y0=c, y1=c, line=dict(color="#555", dash="dash"))
    fig.update_layout(**FIG).show()
    if abs(chance.get("mia/svc/acc", 1.0) - 0.5) < 0.05:  # balanced (HR) sets: the paper's ΔF1 applies
        attacks.loc["mia/svc/acc", "ΔF1 (paper, HR)"] = metrics["mia/svc/delta_f1"]
    attacks""")
    b.md("## Embedding (optional)\nOne UMAP reducer fitted on the original model's features; every snapshot "
         "is transformed with it, so frames share axes. The last snapshot is shown, coloured by label.")
    b.code("""
    if embed:
        from scarlab.embed import run_embed

        path = run_embed(run, original=original or None, progress=False)
        emb = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.DataFrame()
        xy = [c for c in emb.columns if c.lower() in ("x", "umap_x", "umap_0", "u0")][:1] + \\
             [c for c in emb.columns if c.lower() in ("y", "umap_y", "umap_1", "u1")][:1]
        if len(xy) == 2:
            last = emb[emb["step"] == emb["step"].max()] if "step" in emb.columns else emb
            color = next((c for c in ("label", "labels", "class") if c in emb.columns), None)
            fig = px.scatter(last, x=xy[0], y=xy[1], color=last[color].astype(str) if color else None,
                             title="features at the last snapshot (UMAP)", opacity=0.7)
            fig.update_traces(marker_size=4).update_layout(**FIG).show()
        else:
            print(f"embedding written to {path}: columns {list(emb.columns)}")
    else:
        print("embedding skipped (embed=False)")""")
    return b


def compare() -> Book:
    b = Book("06_compare")
    b.md("""
    # 06 · Compare runs
    One row per (method, forget classes, seed) — original, retrained oracle and every method — with
    accuracies, attacks, AUS and unlearning time; written to `summary.csv` and `summary.md` in `out_dir`.
    """)
    b.params("""
    runs: list = []  # evaluated run directories to compare (original_eval, retrained, unlearn runs)
    out_dir: str = "runs/notebooks"  # where summary.csv and summary.md are written
    """)
    b.code(setup("""

    from scarlab.evaluate import LABELS, summarize
    from scarlab.metrics.mia import CHANCE"""))
    b.md("## Summary table")
    b.code("""
    df = summarize(runs, out_dir)
    ok = df[df["status"] == "complete"] if "status" in df.columns else df  # failed runs are listed, not plotted
    df""")
    b.md("## AUS per method\nMean ± std over seeds and forget classes. The retrained oracle scores ≈ 1.")
    b.code("""
    if "aus" in ok.columns and len(ok):
        g = ok.groupby("method", sort=False)["aus"].agg(["mean", "std"]).reset_index()
        fig = px.bar(g, x="method", y="mean", error_y="std", labels={"mean": "AUS"}, title="AUS (higher is better)")
        fig.update_layout(**FIG).show()""")
    b.md("""
    ## Attacks against their chance level
    Mean attack accuracy per method, beside its **chance** level (dashed): the SVC attack's is the majority
    fraction of its evaluation set (`mia/svc/chance`: 0.75 for the 3:1 CR sets, 0.5 in HR), so 0.75 there is
    no leakage; the loss-LR and confidence-threshold attacks are balanced (0.5). The SVC accuracy is the
    paper's F1 (micro-F1 = accuracy).
    """)
    b.code("""
    parts = [pd.DataFrame({"method": ok["method"], "attack": LABELS.get(k, k), "accuracy": ok[k],
                           "chance": ok[c] if isinstance(c, str) else c})
             for k, c in CHANCE.items() if k in ok.columns and ok[k].notna().any()
             and (not isinstance(c, str) or c in ok.columns)]
    if parts:
        att = (pd.concat(parts).groupby(["attack", "method"], sort=False)
               .agg(accuracy=("accuracy", "mean"), std=("accuracy", "std"), chance=("chance", "mean")).reset_index())
        order = list(dict.fromkeys(att["attack"]))
        fig = px.bar(att, x="method", y="accuracy", error_y="std", facet_col="attack", range_y=[0, 1],
                     category_orders={"attack": order}, title="membership attacks (dashed: chance)")
        for i, a in enumerate(order, start=1):
            level = att.loc[att["attack"] == a, "chance"].mean()
            if pd.notna(level):
                fig.add_hline(y=level, line_dash="dash", line_color="#555", row=1, col=i,
                              annotation_text=f"chance {level:.2f}", annotation_position="bottom right")
        fig.for_each_annotation(lambda t: t.update(text=t.text.split("=", 1)[-1]))
        fig.update_layout(**FIG).show()
        display(att)""")
    b.md("## Forgetting vs keeping\nCR: forget-test accuracy (want ≈ 0) against retain-test accuracy (want ≈ the "
         "original's). HR: forget-train against test accuracy.")
    b.code("""
    x, y = ("acc/forget_test", "acc/retain_test") if ok.get("acc/forget_test", pd.Series(dtype=float)).notna().any() \\
        else ("acc/forget_train", "acc/test")
    if {x, y} <= set(ok.columns) and len(ok):
        fig = px.scatter(ok, x=x, y=y, color="method", symbol="method", hover_data=["seed", "forget_classes"],
                         title="each run")
        fig.update_traces(marker_size=11).update_layout(**FIG).show()""")
    b.md("## Unlearning time")
    b.code("""
    if "time/unlearn_s" in ok.columns and ok["time/unlearn_s"].notna().any():
        fig = px.box(ok.dropna(subset=["time/unlearn_s"]), x="method", y="time/unlearn_s", points="all",
                     title="wall-clock seconds of the unlearning run")
        fig.update_layout(**FIG).show()""")
    return b


# ----------------------------------------------------------------------------------------------- teaching
def how_scar_forgets() -> Book:
    b = Book("how_scar_forgets")
    b.md("""
    # How SCAR forgets — step by step, on digits
    SCAR (Bonato, Cotogni, Sabetta, ECCV 2024) removes a class from a trained classifier **without the retain
    set**. Two losses work together:

    1. **Feature migration** — each forget sample's penultimate feature is pulled, by Mahalanobis distance,
       toward the closest *other* class's feature distribution (its *target*).
    2. **Distillation on surrogate images** — out-of-distribution images go through the frozen original model
       (teacher) and the model being unlearned (student); the student keeps matching the teacher's outputs,
       which preserves everything else the model knows.

    This notebook trains a tiny CNN on scikit-learn's 8×8 digits, forgets the digit **0**, and shows each
    ingredient. It runs in about half a minute on a laptop CPU.
    """)
    b.params("""
    forget_class: int = 0  # the digit to forget
    epochs: int = 6  # training epochs of the original model
    seed: int = 0  # seeds training and unlearning
    """)
    b.code(setup("""
    import tempfile
    from pathlib import Path

    from sklearn.decomposition import PCA

    from scarlab.config import TrainConfig, UnlearnConfig
    from scarlab.data import load_dataset, load_surrogate, make_split
    from scarlab.features import extract, predict
    from scarlab.models import load_checkpoint
    from scarlab.stats import ClassStats
    from scarlab.train import run_train, split_accuracies
    from scarlab.unlearn.stage import run_unlearn

    work = Path(tempfile.mkdtemp(prefix="how_scar_forgets_"))
    ds = load_dataset("digits")"""))
    b.md("## 1 · The data and the original model\n1,347 training digits, 450 test digits, 10 classes. "
         "A 2-layer CNN learns them in seconds.")
    b.code("""
    original = run_train(TrainConfig(dataset="digits", epochs=epochs, seed=seed, device="cpu"), work / "original",
                         progress=False)
    teacher = load_checkpoint(original.file("checkpoints/model.pt"))
    imgs = ds.train.images[:10, 0].numpy()
    fig = px.imshow(imgs, facet_col=0, binary_string=True,
                    title=f"training digits · original test accuracy {original.metrics['acc/test']:.3f}")
    fig.for_each_annotation(lambda a: a.update(text=str(int(ds.train.labels[int(a.text.split('=')[1])]))))
    fig.update_layout(width=640, height=150, margin=dict(l=5, r=5, t=50, b=5))
    fig.update_xaxes(visible=False).update_yaxes(visible=False).show()""")
    b.md("""
    ## 2 · Surrogate images: what SCAR distils on instead of the retain set
    SCAR never touches the retain set. It needs *some* natural-looking images to keep the rest of the model's
    behaviour: for digits, `sample_edges` — Sobel edge maps of random crops of two photos that ship with
    scikit-learn, stroke-like like digits but not digits. The teacher still assigns them classes: those it
    calls a **0** are dropped from distillation (the CR filter), and the teacher's 0-logit is lowered to its minimum.
    """)
    b.code("""
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
    fig.update_layout(**FIG).show()""")
    b.md("""
    ## 3 · Class statistics: a Gaussian per class in feature space
    Stored when the original model was trained: the features of each class, Tukey-transformed (x ↦ √x),
    give a mean μ_c and a covariance Σ_c (shrunk twice, normalised to a correlation matrix, pseudo-inverted).
    The distance of a feature x to class c is d_c(x) = (x̂ − μ̂_c)ᵀ Σ_c⁻¹ (x̂ − μ̂_c), hats meaning L2-normalised.
    """)
    b.code("""
    stats = ClassStats.load(original.file("stats.npz"))
    metric = stats.metric()
    fig = px.imshow(stats.means.numpy(), aspect="auto", color_continuous_scale="Viridis",
                    labels={"x": "feature", "y": "class", "color": "mean √feature"},
                    title="class means μ_c (Tukey space), one row per digit")
    fig.update_layout(**FIG).show()""")
    b.md("""
    ## 4 · Distances and targets: where each forgotten 0 will be sent
    Distances of every training **0** to every class's distribution. Its own class is closest; the closest
    *other* class becomes its target, fixed before the first step.
    """)
    b.code("""
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
    fig.update_layout(**FIG).show()""")
    b.md("## 5 · Run SCAR\nThe whole method, with a feature snapshot after every optimiser step.")
    b.code("""
    split_dir = work / "split"
    split_dir.mkdir()
    split.save(split_dir / "split.npz")
    scar = run_unlearn(UnlearnConfig(original=str(original.path), method="scar", split=str(split_dir),
                                     surrogate="sample_edges", seed=seed, snapshot_every=1, device="cpu"),
                       work / "scar", progress=False)
    hist = scar.history()
    before = split_accuracies(teacher, ds, split, "cpu")                  # the original model on the same split
    pd.DataFrame({"original": before, "after SCAR": {k: scar.metrics[k] for k in before}})""")
    b.code("""
    fig = px.line(hist.dropna(subset=["loss/total"]), x="step", y=["loss/forget", "loss/retain"],
                  title="L_M (feature migration) and L_TD (distillation) per step")
    fig.update_layout(**FIG).show()""")
    b.md("## 6 · Distances before and after\nEach forget sample's distance to its own class grows while the "
         "distance to its target class shrinks: the features migrate.")
    b.code("""
    snaps = sorted((scar.path / "features").glob("step_*.npz"))
    first, last = (dict(np.load(s)) for s in (snaps[0], snaps[-1]))
    fm = first["group"] == 0                                             # forget-train probe points
    d = pd.concat([pd.DataFrame({"distance": s[k][fm], "to": k.replace("dist_", ""), "when": when})
                   for s, when in ((first, "before"), (last, "after")) for k in ("dist_own", "dist_target")])
    fig = px.box(d, x="to", y="distance", color="when", points=False, title="forget samples: distance to own vs target class")
    fig.update_layout(**FIG).show()
    curve = hist.dropna(subset=["dist/own"])
    fig = px.line(curve, x="step", y=["dist/own", "dist/target"], markers=True, title="mean distances over the steps")
    fig.update_layout(**FIG).show()""")
    b.md("## 7 · Features before and after (PCA)\nOne PCA fitted on the original features, applied to both "
         "snapshots so the axes are shared. Forget samples (large markers) leave the 0 cluster.")
    b.code("""
    pca = PCA(2, random_state=0).fit(first["features"].astype(np.float32))
    frames = []
    for s, when in ((first, "before"), (last, "after")):
        xy = pca.transform(s["features"].astype(np.float32))
        frames.append(pd.DataFrame({"pc1": xy[:, 0], "pc2": xy[:, 1], "label": s["labels"].astype(str),
                                    "forget": s["group"] == 0, "when": when, "prediction": s["preds"]}))
    f = pd.concat(frames)
    f = f[f["forget"] | (np.arange(len(f)) % 2 == 0)]                     # thin the retain points
    fig = px.scatter(f, x="pc1", y="pc2", color="label", facet_col="when", symbol="forget", size=np.where(f["forget"], 9, 4),
                     size_max=9, opacity=0.75, hover_data=["prediction"], category_orders={"when": ["before", "after"]},
                     title="penultimate features, PCA of the original's features")
    fig.update_layout(width=760, height=380, margin=dict(l=40, r=20, t=60, b=40)).show()""")
    b.md("## 8 · Where did the forgotten digits go?\nAfter unlearning, the forget samples are predicted as other "
         "digits. Rows: the target class SCAR pulled each one toward; columns: what the unlearned model now says.")
    b.code("""
    preds_after = predict(load_checkpoint(scar.file("checkpoints/model.pt")), ds, forget_images).numpy()
    agree = float((preds_after == targets).mean())
    ct = pd.crosstab(pd.Series(targets, name="target class"), pd.Series(preds_after, name="prediction after SCAR"))
    fig = px.imshow(ct, text_auto=True, color_continuous_scale="Blues",
                    title=f"forget samples: target vs prediction ({agree:.0%} predicted as their target)")
    fig.update_layout(width=520, height=420, margin=dict(l=40, r=20, t=60, b=40)).show()""")
    b.md("""
    ## What to try next
    - Set `forget_class` to another digit and rerun.
    - `scarlab pipeline --methods scar,scar_self,finetune,negative_gradient` compares SCAR with the baselines
      and the retrained oracle (accuracies, MIA, AUS); `scarlab dashboard --runs runs/` animates the migration.
    """)
    return b


STAGES = {"01_train_original": train_original, "02_split": split, "03_train_retrained": train_retrained,
          "04_unlearn": unlearn, "05_evaluate": evaluate, "06_compare": compare}
EXPLORE = {"explore/how_scar_forgets": how_scar_forgets}


def build_all() -> dict[Path, str]:
    """{path: notebook JSON text} for every generated notebook."""
    out = {}
    for name, fn in {**STAGES, **EXPLORE}.items():
        nb = fn().notebook()
        nbformat.validate(nb)
        out[HERE / f"{name}.ipynb"] = nbformat.writes(nb) + "\n"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = ap.parse_args(argv)
    stale = []
    for path, text in build_all().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("out of date (run python notebooks/build.py): " + ", ".join(str(p.relative_to(HERE.parent)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
