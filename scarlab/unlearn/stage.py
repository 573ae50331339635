"""The `unlearn` stage: load the original run, build the method's inputs, run it, write its run directory."""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ..config import UnlearnConfig
from ..data import ImageSet, check_hr_classes, load_dataset, load_surrogate
from ..device import resolve_device, seed_everything
from ..errors import ScarlabError, choose
from ..models import load_checkpoint, save_checkpoint
from ..runs import ORIGINAL, RETRAINED, RunDir
from ..features import extract
from ..stats import ClassStats, class_stats
from ..trace import Probe, Tracer
from ..train import model_accuracies, resolve_split
from .base import METHODS, Context, StatsRequest, check_retain


def _subset(part, idx) -> ImageSet:
    t = torch.as_tensor(idx, dtype=torch.long)
    return ImageSet(part.images[t], part.labels[t])


def _class_metric(request: StatsRequest, original: RunDir, teacher, ds, split, device: str, gen: torch.Generator,
                  run: RunDir):
    """The Mahalanobis distance of ``request``: class statistics from the retain set's features (source 'retain':
    computed here, once, before unlearning, CR on one augmented view of each image, and saved as the run's
    stats.npz) or from the original's stored training features (stats.npz of the original run). None when neither
    applies."""
    stored = original.file("stats.npz")
    if request.source == "retain":
        retain = _subset(ds.train, split.retain_idx)
        images = ds.augment(retain.images, gen) if split.scenario == "CR" else retain.images
        feats, _ = extract(teacher, ds, images, device)
        delta = ClassStats.load(stored).delta if stored.is_file() else 0.5
        stats = class_stats(feats, retain.labels, ds.num_classes, delta, request.signed,
                            model_name=original.config.get("model", "the model"))
        stats.save(run.file("stats.npz"))
    elif stored.is_file():
        stats = ClassStats.load(stored)
    else:
        return None
    metric = stats.metric(request.gamma1, request.gamma2, device, request.shrink_times)
    metric.signed = metric.signed or request.signed
    return metric


def run_unlearn(cfg: UnlearnConfig, out: str | Path, overwrite: bool = False, progress: bool = True,
                retain_available: bool = True) -> RunDir:
    """Unlearn ``cfg.original`` with ``cfg.method``; everything is validated before the run directory exists.

    ``retain_available=False`` (or ``cfg.retain_available=False``) refuses a method that needs the retain set.
    """
    choose("method", cfg.method, METHODS)
    if not isinstance(cfg.retain_available, bool) or not isinstance(retain_available, bool):
        raise ScarlabError(f"retain_available must be true or false, got {cfg.retain_available!r}")
    if not cfg.split:
        check_hr_classes(cfg.scenario, cfg.forget_classes)
    spec = METHODS[cfg.method]
    check_retain(cfg.method, retain_available and cfg.retain_available)
    original = RunDir(cfg.original).require_complete("original run", ORIGINAL)
    if cfg.retrained:  # recorded as a parent only (a shadow audit makes it alongside): its role, not its status
        RunDir(cfg.retrained).require_role("retrained run", RETRAINED)
    ocfg = original.config
    ds = load_dataset(ocfg["dataset"], ocfg.get("data_root"))
    params = spec.make_params(cfg.params, ds.name)
    retain_ok = bool(retain_available and cfg.retain_available)
    if not retain_ok and spec.without_retain is not None:
        params = spec.without_retain(params)  # the retain set may not be read: the method says what it does instead
    # a method that reads no statistics still gets the stored ones (the trace's distances), when there are any
    stats = spec.stats(params) if spec.stats is not None else StatsRequest()
    if spec.stats is not None and stats.source == "training" and not original.file("stats.npz").is_file():
        raise ScarlabError(f"{cfg.method} reads the class statistics of the original's training time "
                           f"({original.file('stats.npz')}), which are missing; recompute them with "
                           f"`scarlab stats {cfg.original}`")
    split = resolve_split(ds, cfg.split, cfg.scenario, cfg.forget_classes, cfg.forget_size, cfg.seed)
    device = resolve_device(cfg.device)
    teacher = load_checkpoint(original.file("checkpoints/model.pt"), device)
    surrogate = None
    if "surrogate" in spec.needs:
        surrogate = load_surrogate(cfg.surrogate, ds, cfg.surrogate_chunks, cfg.surrogate_size, cfg.seed)
    config = {**dataclasses.asdict(cfg), "retain_available": retain_ok, "params": dataclasses.asdict(params),
              "variant": spec.variant({k: getattr(params, k) for k in cfg.params}, ds.name),
              "param_defaults": spec.defaults_source(ds.name), "dataset": ds.name,
              "model": ocfg.get("model"), "scenario": split.scenario, "forget_classes": split.forget_classes,
              "forget_size": len(split.forget_idx)}
    parents = {"original": Path(cfg.original).resolve()}
    if cfg.retrained:
        parents["retrained"] = Path(cfg.retrained).resolve()
    run = RunDir.create(out, stage="unlearn", config=config, parents=parents, overwrite=overwrite, device=device)
    with run.running():
        split.save(run.file("split.npz"))
        gen = seed_everything(cfg.seed)
        teacher.eval().requires_grad_(False)
        model = copy.deepcopy(teacher).requires_grad_(True)
        t_stats = time.perf_counter()
        metric = _class_metric(stats, original, teacher, ds, split, device, torch.Generator().manual_seed(cfg.seed),
                               run)
        stats_s = time.perf_counter() - t_stats  # once per original in practice; reported apart from unlearning
        excluded = split.forget_classes if split.scenario == "CR" else []
        probe = Probe.from_split(ds, split, cfg.probe_forget, cfg.probe_retain, seed=cfg.seed)
        tracer = Tracer(ds, probe, metric, excluded, run, cfg.snapshot_every, device, ocfg.get("model", "the model"))
        tracer.progress = f"unlearn {cfg.method}" if progress else None
        ctx = Context(model=model, teacher=teacher, ds=ds,
                      forget=_subset(ds.train, split.forget_idx) if "forget" in spec.needs else None,
                      scenario=split.scenario, forget_classes=split.forget_classes, tracer=tracer, device=device,
                      generator=gen, retain=_subset(ds.train, split.retain_idx) if "retain" in spec.needs else None,
                      surrogate=surrogate, metric=metric,
                      original_test_acc=original.metrics.get("acc/test", float("nan")),
                      model_name=ocfg.get("model", "the model"))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            model = spec.fn(ctx, params)
        finally:
            tracer.close()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        unlearn_s = time.perf_counter() - t0
        run.file("checkpoints").mkdir(exist_ok=True)
        save_checkpoint(model, run.file("checkpoints/model.pt"))
        if spec.targets:
            t = tracer.recorded_targets
            if t is None:
                raise ScarlabError(f"{cfg.method} declares targets but recorded none (ctx.tracer.record_targets)")
            idx = split.forget_idx if len(t) == len(split.forget_idx) else np.full(len(t), -1)
            run.save_arrays("trace/targets.npz", forget_idx=idx, targets=t)
        run.write_metrics({"time/unlearn_s": unlearn_s, "time/stats_s": stats_s, "steps": tracer.last_step,
                           **model_accuracies(model, ds, split, device)})
    return run
