"""NegativeGradient baseline: gradient *ascent* on the forget set's cross-entropy.

Data: the forget set only (no retain set). As the reference implementations run it: plain ascent (no loss
cap, no gradient clipping), student in train mode (batch-norm statistics update). Unbounded ascent diverges
if run long enough; the paper's stopping rule (CR: forget accuracy < 1 %) ends it early. Two optional
bounds, off by default, keep it tame when wanted: a per-sample loss cap and gradient-norm clipping.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_lr, set_train_mode


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
    model, forget = ctx.model, ctx.forget
    opt = make_optimizer(model.parameters(), p)
    cycler = BatchCycler(len(forget), p.batch_size, ctx.generator)
    n = cycler.steps_per_pass()

    def step(epoch: int, i: int) -> dict:
        set_lr(opt, p, epoch, i / n)
        set_train_mode(model, p.bn_train)
        x, y = batch_on(ctx, forget, cycler.next())  # x [B, C, H, W], y [B]
        logits = model(x)
        ce = F.cross_entropy(logits, y, reduction="none")  # [B]
        # a capped sample has zero gradient (it is already confidently misclassified)
        loss = -(ce if p.loss_cap is None else ce.clamp(max=p.loss_cap)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if p.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.max_grad_norm)
        opt.step()
        out = {"loss/forget": ce.detach().mean(), "loss/total": loss.detach(),
               "acc/forget_batch": (logits.detach().argmax(1) == y).float().mean()}
        if p.loss_cap is not None:
            out["frac/capped"] = (ce.detach() >= p.loss_cap).float().mean()
        return out

    return run_loop(ctx, p, step, n)
