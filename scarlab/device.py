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


def native_bf16(device: str) -> bool:
    """Whether ``device`` has bfloat16 kernels of its own: a CUDA GPU that supports bfloat16, or a CPU for which
    oneDNN has them (AVX-512 or newer x86, Arm with BF16). Elsewhere bfloat16 autocast is emulated or refused: the
    ``lab`` recipe trains in float32 there."""
    kind = torch.device(device).type
    if kind == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if kind == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch build without the probe: assume emulation
            return False
    return False


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator for shuffling and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
