"""Stage configurations: typed dataclasses, one documented field each; ``None`` means "the data set's default".

Each stage resolves its defaults and saves the resolved configuration in its run directory
(``config.json``), so a run always says exactly what it did.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from .errors import ScarlabError


@dataclass
class TrainConfig:
    """Train the *original* model (no forget options) or the *retrained oracle* (forget data removed)."""

    dataset: str = "digits"
    """scarlab dataset name: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH."""
    data_root: str | None = None
    """where torchvision / Tiny-ImageNet data live (downloads go there); None = ~/.cache/scarlab/data."""
    model: str | None = None
    """registered model name; None = tinycnn for digits, smallcnn otherwise."""
    role: str = "original"
    """'original' trains on all training data; 'retrained' trains on the retain set only."""
    scenario: str = "CR"
    """retrained only: CR (forget whole classes) or HR (forget random samples)."""
    forget_classes: list[int] = field(default_factory=list)
    """retrained, CR: the forgotten class indices."""
    forget_size: int | None = None
    """retrained, HR: how many random training samples are forgotten."""
    split: str | None = None
    """retrained: a split.npz (or a run directory holding one) to reuse instead of making a new split."""
    seed: int = 0
    """seeds weights, shuffling, augmentation and (HR) the forget sample."""
    epochs: int | None = None
    """training epochs; None = data set default (digits 12, otherwise 30)."""
    batch_size: int | None = None
    """mini-batch size; None = 64 for digits, 128 otherwise."""
    lr: float | None = None
    """peak learning rate; None = 0.003 (Adam, digits) or 0.05 (SGD, otherwise)."""
    optimizer: str | None = None
    """'sgd' (momentum 0.9, Nesterov) or 'adam'; None = adam for digits, sgd otherwise."""
    weight_decay: float = 5e-4
    """L2 penalty."""
    augment: bool = True
    """random crop (and horizontal flip, except digits) on training batches."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    stats_delta: float = 0.5
    """original only: Tukey exponent of the stored per-class feature statistics SCAR uses."""

    def resolved(self, dataset_name: str) -> "TrainConfig":
        digits = dataset_name == "digits"
        from .models import default_model
        return dataclasses.replace(
            self, model=self.model or default_model(dataset_name),
            epochs=self.epochs if self.epochs is not None else (12 if digits else 30),
            batch_size=self.batch_size if self.batch_size is not None else (64 if digits else 128),
            optimizer=self.optimizer or ("adam" if digits else "sgd"),
            lr=self.lr if self.lr is not None else (0.003 if digits else 0.05))


@dataclass
class UnlearnConfig:
    """Unlearn a trained original model with one registered method."""

    original: str = ""
    """run directory of the original model (holds its checkpoint and class statistics)."""
    method: str = "scar"
    """registered unlearning method (scarlab.unlearn.METHODS)."""
    retrained: str | None = None
    """optional run directory of the retrained oracle (recorded as a parent for evaluation)."""
    split: str | None = None
    """split.npz or a run directory holding one (e.g. the retrained run); None = make one from the options below."""
    scenario: str = "CR"
    """CR or HR (when no split is given)."""
    forget_classes: list[int] = field(default_factory=list)
    """CR forget classes (when no split is given)."""
    forget_size: int | None = None
    """HR forget size (when no split is given)."""
    seed: int = 0
    """seeds the method's randomness (and a new HR split)."""
    surrogate: str = "auto"
    """out-of-distribution images: imagefolder:PATH, gaussian_noise, sample_images, sample_edges or auto."""
    surrogate_chunks: int | None = None
    """imagefolder surrogates: use only the first k chunk folders; None = all."""
    surrogate_size: int = 2000
    """generated surrogates (noise, sample photos): how many images."""
    params: dict = field(default_factory=dict)
    """method hyper-parameters by name (see each method's Params dataclass); unknown names are an error."""
    snapshot_every: int = 5
    """save a feature snapshot every k optimiser steps (plus the first and the last)."""
    probe_forget: int = 500
    """forget-train points in each snapshot (and forget-test points, CR)."""
    probe_retain: int = 1000
    """retain-test points (HR: test points) in each snapshot."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    retain_available: bool = True
    """whether the retain set may be read during unlearning; False refuses, before any run directory is created,
    every method that needs it (finetune, duck, scrub, ...) and leaves those that do not (scar, scar_self, ...)."""


def from_dict(cls, data: dict):
    """Build a config dataclass from a dict, refusing unknown keys with the list of valid ones."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ScarlabError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return cls(**data)
