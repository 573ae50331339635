"""Device selection and seeding."""
from __future__ import annotations

import random

import numpy as np
import torch

from .errors import ScarlabError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(name: str = "auto") -> str:
    """``auto`` picks CUDA when present; an unavailable device is a clear error, not a torch traceback."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ScarlabError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu or auto")
        return name
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ScarlabError("device 'mps' requested but it is not available; use --device cpu or auto")
        return name
    if name != "cpu":
        raise ScarlabError(f"unknown device {name!r}; valid choices: {', '.join(DEVICES)}")
    return name


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator for shuffling and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
