"""NegativeGradient baseline: gradient *ascent* on the forget set's cross-entropy.

Data: the forget set only (no retain set). As the reference implementations run it: plain ascent (no loss
cap, no gradient clipping), student in train mode (batch-norm statistics update). Unbounded ascent diverges
if run long enough; the paper's stopping rule (CR: forget accuracy < 1 %) ends it early. Two optional
bounds, off by default, keep it tame when wanted: a per-sample loss cap and gradient-norm clipping.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from .base import Context, OptimParams, forget_set_loop, register_method


@dataclass
class NegativeGradientParams(OptimParams):
    """NegativeGradient hyper-parameters (SGD with momentum ascending the forget cross-entropy)."""

    epochs: int = 5
    """passes over the forget set."""
    lr: float = 1e-3
    """SGD learning rate (the reference implementations give no rate; 1e-2 collapsed the cifar10-mini smallcnn in an
    earlier measurement, bench/NOTES.md)."""
    batch_size: int = 128
    """forget samples per step."""
    loss_cap: float | None = None
    """optional: per-sample cross-entropy (nats) above which a sample stops contributing gradient (e.g.
    2·ln K: its own class then has probability below 1/K²). None = no cap (the reference)."""
    max_grad_norm: float = 0.0
    """optional: clip the gradient's global L2 norm to this. 0 = no clipping (the reference)."""

    # ~134 forget images: small batches give several steps per pass; Adam at a small rate (tinycnn was
    # trained with Adam). CR class 0: retain-test / forget-test .951 / .178 with these, .975 / .578 at the
    # generic SGD 1e-3 / batch 128 (2 steps an epoch).
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 1e-4, "batch_size": 32}}


@register_method("negative_gradient", NegativeGradientParams, needs=("forget",))
def negative_gradient(ctx: Context, p: NegativeGradientParams):
    """NegativeGradient: plain gradient ascent on the forget set's cross-entropy."""
    def loss_fn(logits, y):
        ce = F.cross_entropy(logits, y, reduction="none")  # [B]
        # a capped sample has zero gradient (it is already confidently misclassified)
        loss = -(ce if p.loss_cap is None else ce.clamp(max=p.loss_cap)).mean()
        extra = {"loss/forget": ce.detach().mean()}
        if p.loss_cap is not None:
            extra["frac/capped"] = (ce.detach() >= p.loss_cap).float().mean()
        return loss, extra

    return forget_set_loop(ctx, p, loss_fn, p.max_grad_norm)
