"""The `unlearn` stage: load the original run, build the method's inputs, run it, write its run directory."""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ..config import UnlearnConfig
from ..data import ImageSet, load_dataset, load_surrogate
from ..device import resolve_device, seed_everything
from ..errors import ScarlabError, choose
from ..models import load_checkpoint, save_checkpoint
from ..runs import RunDir
from ..stats import ClassStats
from ..trace import Probe, Tracer
from ..train import resolve_split, split_accuracies
from .base import METHODS, Context, methods_without_retain, requires_retain


def _subset(part, idx) -> ImageSet:
    t = torch.as_tensor(idx, dtype=torch.long)
    return ImageSet(part.images[t], part.labels[t])


def run_unlearn(cfg: UnlearnConfig, out: str | Path, overwrite: bool = False, progress: bool = True,
                retain_available: bool = True) -> RunDir:
    """Unlearn ``cfg.original`` with ``cfg.method``; everything is validated before the run directory exists.

    ``retain_available=False`` (or ``cfg.retain_available=False``) refuses a method that needs the retain set.
    """
    choose("method", cfg.method, METHODS)
    spec = METHODS[cfg.method]
    if requires_retain(spec) and not (retain_available and cfg.retain_available):
        raise ScarlabError(f"method {cfg.method!r} needs the retain set, which is marked unavailable "
                           f"(retain_available=False); methods that work without it: "
                           f"{', '.join(methods_without_retain())}")
    original = RunDir(cfg.original).require_complete("original run")
    ocfg = original.config
    ds = load_dataset(ocfg["dataset"], ocfg.get("data_root"))
    params = spec.make_params(cfg.params, ds.name)
    split = resolve_split(ds, cfg.split, cfg.scenario, cfg.forget_classes, cfg.forget_size, cfg.seed)
    device = resolve_device(cfg.device)
    teacher = load_checkpoint(original.file("checkpoints/model.pt"), device)
    surrogate = None
    if "surrogate" in spec.needs:
        surrogate = load_surrogate(cfg.surrogate, ds, cfg.surrogate_chunks, cfg.surrogate_size, cfg.seed)
    config = {**dataclasses.asdict(cfg), "retain_available": bool(retain_available and cfg.retain_available),
              "params": dataclasses.asdict(params), "dataset": ds.name,
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
        metric = None
        if original.file("stats.npz").is_file():
            metric = ClassStats.load(original.file("stats.npz")).metric(
                getattr(params, "gamma1", 3.0), getattr(params, "gamma2", 3.0), device)
            metric.signed = metric.signed or getattr(params, "signed_tukey", False)
        excluded = split.forget_classes if split.scenario == "CR" else []
        probe = Probe.from_split(ds, split, cfg.probe_forget, cfg.probe_retain, seed=cfg.seed)
        tracer = Tracer(ds, probe, metric, excluded, run, cfg.snapshot_every, device, ocfg.get("model", "the model"))
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
        model = spec.fn(ctx, params)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        unlearn_s = time.perf_counter() - t0
        run.file("checkpoints").mkdir(exist_ok=True)
        save_checkpoint(model, run.file("checkpoints/model.pt"))
        if getattr(tracer, "targets_all", None) is not None:
            t = tracer.targets_all  # SCAR: one target per forget sample; SCAR-self: per self-forget surrogate
            idx = split.forget_idx if len(t) == len(split.forget_idx) else np.full(len(t), -1)
            run.save_arrays("trace/targets.npz", forget_idx=idx, targets=t)
        run.write_metrics({"time/unlearn_s": unlearn_s, "steps": tracer.last_step,
                           **split_accuracies(model, ds, split, device)})
    return run
