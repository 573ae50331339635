"""The per-step trace every unlearning method writes: scalars to ``history.csv`` and feature snapshots.

A *probe* is a fixed sample of forget-train, retain-test and (CR) forget-test points. At snapshot steps
(the first, every k-th, the last) the tracer stores their penultimate features, logits, predictions and
the Mahalanobis distances of every probe point to its own class and to its target class, so the dashboard
can animate feature migration and draw MIA and distance curves for any method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Dataset, Split
from .features import extract
from .runs import GROUPS, RunDir
from .stats import MahalanobisDistance


@dataclass
class Probe:
    """Fixed probe points: images uint8 [P, C, H, W], labels [P], group codes [P], source indices [P]."""

    images: torch.Tensor
    labels: torch.Tensor
    group: np.ndarray
    index: np.ndarray

    @classmethod
    def from_split(cls, ds: Dataset, split: Split, n_forget: int = 500, n_retain: int = 1000,
                   seed: int = 0) -> "Probe":
        rng = np.random.default_rng(seed)
        # HR: the retain-test group is the whole test set (no test sample is "forgotten").
        parts = [(0, ds.train, split.forget_idx, n_forget), (1, ds.test, split.retain_test_idx, n_retain),
                 (2, ds.test, split.forget_test_idx, n_forget)]
        images, labels, group, index = [], [], [], []
        for code, part, idx, n in parts:
            pick = np.sort(rng.choice(idx, min(n, len(idx)), replace=False)) if len(idx) else idx
            t = torch.as_tensor(pick, dtype=torch.long)
            images.append(part.images[t])
            labels.append(part.labels[t])
            group.append(np.full(len(pick), code, np.int8))
            index.append(pick.astype(np.int64))
        return cls(torch.cat(images), torch.cat(labels), np.concatenate(group), np.concatenate(index))


class Tracer:
    """Records a method's progress. ``log`` adds a history row; ``snapshot`` saves probe features.

    With ``run=None`` (library use, tests) rows and snapshots are kept in memory only.
    """

    def __init__(self, ds: Dataset, probe: Probe | None = None, metric: MahalanobisDistance | None = None,
                 forget_classes: list[int] | None = None, run: RunDir | None = None, every: int = 5,
                 device="cpu", model_name: str = "the model"):
        self.ds, self.probe, self.metric, self.run = ds, probe, metric, run
        self.forget_classes, self.every, self.device = forget_classes or [], max(1, every), device
        self.model_name = model_name
        self.rows: list[dict] = []
        self.snapshots: dict[int, dict] = {}
        self.targets: np.ndarray | None = None
        """the probe points' targets (closest other class at the first snapshot), stored in every snapshot."""
        self.recorded_targets: np.ndarray | None = None
        """the method's own target class per forget sample (:meth:`record_targets`)."""
        self.last_step = -1
        self.progress: str | None = None
        """set to a description to show a progress bar of the steps (made at the first step) with the epoch and the
        latest forget accuracy; :meth:`close` ends it."""
        self.bar = None

    def log(self, step: int, **scalars) -> dict:
        """Record scalars for an optimiser step (NaN stops the run: the caller raises after logging)."""
        row = {"step": step, **{k: float(v) for k, v in scalars.items()}}
        self.rows.append(row)
        if self.run is not None:
            self.run.append_history(row)
        if self.progress and self.bar is None:
            self.bar = tqdm(desc=self.progress, unit="step", leave=False)
        if self.bar is not None:
            self.bar.update(max(0, step + 1 - self.bar.n))
            shown = {k.split("/")[-1]: f"{row[k]:.3g}" for k in ("epoch", "acc/forget_train") if k in row}
            if shown:
                self.bar.set_postfix(shown, refresh=False)
        return row

    def close(self) -> None:
        """End the progress bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def record_targets(self, targets) -> None:
        """A method that declares ``targets`` hands over its final target class per forget sample here ([N_forget]
        ints, -1 = none chosen); the stage saves them as ``trace/targets.npz``."""
        self.recorded_targets = np.asarray(targets)

    def due(self, step: int) -> bool:
        return step == 0 or step % self.every == 0

    @torch.no_grad()
    def snapshot(self, step: int, model, force: bool = False) -> dict | None:
        """Save probe features at ``step`` if it is a snapshot step (or ``force``); returns the arrays."""
        if self.probe is None or step in self.snapshots or not (force or self.due(step)):
            return None
        feats, logits = extract(model, self.ds, self.probe.images, self.device)
        labels = self.probe.labels
        snap = {"step": np.int64(step), "features": feats.numpy().astype(np.float16),
                "logits": logits.numpy().astype(np.float16), "labels": labels.numpy(),
                "preds": logits.argmax(1).numpy(), "group": self.probe.group, "index": self.probe.index}
        if self.metric is not None:
            dist = self.metric.distances(feats.to(self.metric.mu.device), self.model_name).cpu()
            if self.targets is None:  # fixed at the first snapshot, as SCAR fixes its targets
                self.targets = self.metric.targets(dist, labels, self.forget_classes).numpy()
            t = torch.as_tensor(self.targets)
            ar = torch.arange(len(labels))
            snap.update(targets=self.targets, dist_own=dist[ar, labels].numpy().astype(np.float32),
                        dist_target=dist[ar, t].numpy().astype(np.float32))
        self.snapshots[step] = snap
        if self.run is not None:
            self.run.save_arrays(f"features/step_{step:06d}.npz", **snap)
        # accuracy of each probe group: cheap curves for every method, every snapshot
        row = {}
        for code, name in enumerate(GROUPS):
            m = self.probe.group == code
            if m.any():
                row[f"probe/acc/{name}"] = float((snap["preds"][m] == snap["labels"][m]).mean())
        if self.metric is not None:
            fm = self.probe.group == 0
            row["dist/own"] = float(np.mean(snap["dist_own"][fm])) if fm.any() else math.nan
            row["dist/target"] = float(np.mean(snap["dist_target"][fm])) if fm.any() else math.nan
        self.log(step, snapshot=1, **row)
        return snap
