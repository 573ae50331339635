"""One training loop for the original model and the retrained oracle, and the `train` stage around it."""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import RECIPE_KEYS, TrainConfig
from .data import Dataset, Split, batches, check_hr_classes, check_split, load_dataset, make_split
from .device import native_bf16, resolve_device, seed_everything
from .errors import ScarlabError, choose
from .features import accuracy_on, extract
from .models import create_model, save_checkpoint, whiten_first_conv
from .runs import HOLDS_SPLIT, RunDir
from .stats import class_stats


def resolve_recipe(cfg: TrainConfig, dataset: str, device: str) -> TrainConfig:
    """Every recipe option filled as a run on ``device`` trains with it: ``cfg``'s own, the recipe's for the rest
    (``TrainConfig.resolved``), and bf16 where the recipe leaves it to the device (lab: :func:`native_bf16`)."""
    cfg = cfg.resolved(dataset)
    return cfg if cfg.bf16 is not None else dataclasses.replace(cfg, bf16=native_bf16(device))


def train_variant(config: dict, dataset: str, device: str) -> dict:
    """The training options of an original/retrained run that differ from the data set's defaults on ``device``:
    recorded in the run's config.json as ``variant`` (``scarlab.results.describe`` only reads it)."""
    recipe = config.get("recipe", TrainConfig.recipe)
    defaults = resolve_recipe(TrainConfig(dataset=dataset, recipe=recipe), dataset, device)  # the recipe's: no variant
    variant = {k: config[k] for k in RECIPE_KEYS if k in config and config[k] != getattr(defaults, k)}
    if recipe != TrainConfig.recipe and dataset != "digits":  # digits has one recipe
        variant["recipe"] = recipe
    return variant


def _autocast(bf16: bool, device: str):
    """The forward pass's bfloat16 autocast (off: a context that does nothing); CPU and CUDA only."""
    kind = torch.device(device).type
    if bf16 and kind not in ("cpu", "cuda"):
        raise ScarlabError(f"bf16 autocast runs on cpu or cuda, not {kind}; train with --bf16 false")
    return torch.autocast(kind if kind in ("cpu", "cuda") else "cpu", dtype=torch.bfloat16, enabled=bool(bf16))


def fit(model, ds: Dataset, train_idx: np.ndarray, cfg: TrainConfig, device: str, generator: torch.Generator,
        on_epoch=None, progress: bool = True) -> list[dict]:
    """Train ``model`` on ``ds.train[train_idx]`` with cross-entropy as ``cfg`` (a resolved recipe) says; returns
    one history row per epoch.

    ``on_epoch(row)`` is called after each epoch (to append history as we go).
    """
    choose("optimizer", cfg.optimizer, ("sgd", "adam"))
    idx = torch.as_tensor(train_idx)
    images, labels = ds.train.images[idx], ds.train.labels[idx]
    # the first convolution whitened from (up to) 5,000 training images' patches, and kept fixed while training
    fixed = [whiten_first_conv(model, ds.normalize(images[:5000], device))] if cfg.whiten else []
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    autocast = _autocast(cfg.bf16, device)
    for f in fixed:
        f.requires_grad_(False)  # no gradient computed for it at all (restored after training)
    trained = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(trained, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch),
                                                pct_start=0.15)
    history = []
    bar = tqdm(range(cfg.epochs), desc=f"train {cfg.role}", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for b in batches(len(idx), cfg.batch_size, shuffle=True, generator=generator):
            xb = images[b]
            if cfg.augment:
                xb = ds.augment(xb, generator)
            x, y = ds.normalize(xb, device).contiguous(memory_format=layout), labels[b].to(device)
            with autocast:
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise ScarlabError(f"training loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(b)
            loss_sum += loss.item() * len(b)
            correct += int((logits.argmax(1) == y).sum())
        seconds = time.perf_counter() - t0  # the training loop only: the test evaluation below is not training
        row = {"epoch": epoch + 1, "loss/train": loss_sum / seen, "acc/train_running": correct / seen,
               "acc/test": accuracy_on(model, ds, ds.test.images, ds.test.labels, device),
               "lr": sched.get_last_lr()[0], "time/epoch_s": seconds}
        history.append(row)
        bar.set_postfix(loss=f"{row['loss/train']:.3f}", test=f"{row['acc/test']:.3f}")
        if on_epoch:
            on_epoch(row)
    model.to(memory_format=torch.contiguous_format)
    for f in fixed:
        f.requires_grad_(True)
    return history


def model_accuracies(model, ds: Dataset, split: Split | None, device: str) -> dict:
    """Final accuracies of ``model`` on forget/retain x train/test (just train/test without a split): the keys of
    :func:`scarlab.metrics.split_accuracies` (which works on predictions) plus ``acc/train``."""
    out = {"acc/train": accuracy_on(model, ds, ds.train.images, ds.train.labels, device),
           "acc/test": accuracy_on(model, ds, ds.test.images, ds.test.labels, device)}
    if split is not None:
        for name, part, idx in (("forget_train", ds.train, split.forget_idx), ("retain_train", ds.train, split.retain_idx),
                                ("forget_test", ds.test, split.forget_test_idx),
                                ("retain_test", ds.test, split.retain_test_idx)):
            t = torch.as_tensor(idx)
            out[f"acc/{name}"] = accuracy_on(model, ds, part.images[t], part.labels[t], device)
    return out


def load_split(path: str | Path) -> Split:
    """A split from ``split.npz`` or from a run directory holding one."""
    p = Path(path)
    if p.is_dir():
        if (p / "manifest.json").is_file():  # a run directory: only a finished one's split is trusted
            RunDir(p).require_complete("split run", HOLDS_SPLIT)
        p = p / "split.npz"
    if not p.is_file():
        raise ScarlabError(f"no split at {path}; make one with `scarlab split` or pass --scenario/--forget-classes")
    try:
        return Split.load(p)
    except Exception as exc:
        raise ScarlabError(f"{p} is not a scarlab split ({type(exc).__name__}: {exc}); make one with "
                           "`scarlab split`") from None


def resolve_split(ds: Dataset, split: str | None, scenario: str, forget_classes, forget_size, seed) -> Split:
    if split:
        return check_split(load_split(split), ds, f"split {split}")
    return make_split(ds, scenario, forget_classes, forget_size, seed)


def run_train(cfg: TrainConfig, out: str | Path, overwrite: bool = False, progress: bool = True) -> RunDir:
    """The `train` stage: one run directory holding the checkpoint, history, accuracies and (original) stats."""
    choose("role", cfg.role, ("original", "retrained"))
    if cfg.role == "retrained" and not cfg.split:
        check_hr_classes(cfg.scenario, cfg.forget_classes)
    device = resolve_device(cfg.device)
    ds = load_dataset(cfg.dataset, cfg.data_root)
    cfg = resolve_recipe(cfg, ds.name, device)  # what the device decided (lab's bf16) is recorded
    for name, value in (("epochs", cfg.epochs), ("batch size", cfg.batch_size)):
        if value < 1:
            raise ScarlabError(f"{name} must be at least 1, got {value}")
    if not cfg.lr > 0:
        raise ScarlabError(f"learning rate must be positive, got {cfg.lr}")
    _autocast(cfg.bf16, device)  # a device autocast cannot take: refused before a run directory exists
    split = None
    if cfg.role == "retrained":
        split = resolve_split(ds, cfg.split, cfg.scenario, cfg.forget_classes, cfg.forget_size, cfg.seed)
        # the split decides what was forgotten: a reused split overrides the forget options given beside it
        cfg = dataclasses.replace(cfg, scenario=split.scenario, forget_classes=list(split.forget_classes),
                                  forget_size=len(split.forget_idx))
    model_kwargs = dict(num_classes=ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1])
    model = create_model(cfg.model, **model_kwargs)  # validates the name before a run directory exists
    config = {**dataclasses.asdict(cfg), "variant": train_variant(dataclasses.asdict(cfg), ds.name, device)}
    run = RunDir.create(out, stage=f"train_{cfg.role}", config=config, overwrite=overwrite, device=device)
    with run.running():
        if split is not None:
            split.save(run.file("split.npz"))
        gen = seed_everything(cfg.seed)
        model = create_model(cfg.model, **model_kwargs).to(device)  # re-created after seeding: same seed, same weights
        train_idx = split.retain_idx if split is not None else np.arange(len(ds.train))
        t0 = time.perf_counter()
        fit(model, ds, train_idx, cfg, device, gen, on_epoch=run.append_history, progress=progress)
        train_s = time.perf_counter() - t0
        run.file("checkpoints").mkdir(exist_ok=True)
        save_checkpoint(model, run.file("checkpoints/model.pt"))
        metrics = {**model_accuracies(model, ds, split, device), "time/train_s": train_s}
        if cfg.role == "original":
            feats, _ = extract(model, ds, ds.train.images, device)
            class_stats(feats, ds.train.labels, ds.num_classes, cfg.stats_delta,
                        model_name=cfg.model).save(run.file("stats.npz"))
        run.write_metrics(metrics)
    return run
