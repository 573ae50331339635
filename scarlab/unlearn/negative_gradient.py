"""NegativeGradient baseline: gradient *ascent* on the forget set's cross-entropy.

Data: the forget set only (no retain set). Unbounded ascent diverges (the loss grows without limit and
drags the whole network with it), so it is bounded twice: each sample's loss is capped (a sample whose
cross-entropy exceeds ``loss_cap`` gives no more gradient — it is already confidently misclassified) and
the gradient norm is clipped. The paper's stopping rule (CR: forget accuracy < 1 %) ends it early.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_train_mode


@dataclass
class NegativeGradientParams(OptimParams):
    """NegativeGradient hyper-parameters (SGD with momentum ascending the capped forget loss)."""

    epochs: int = 5
    """passes over the forget set."""
    lr: float = 1e-3
    """SGD learning rate.
    At 1e-2 the 8-epoch cifar10-mini smallcnn (frozen batch norm) collapses: retain-test .358
    after forgetting class 0, .501 at 1e-3 (bench/NOTES.md)."""
    batch_size: int = 128
    """forget samples per step."""
    loss_cap: float | None = None
    """per-sample cross-entropy (nats) above which a sample stops contributing gradient; None = 2·ln(K)
    (its own class then has probability below 1/K²)."""
    max_grad_norm: float = 1.0
    """clip the gradient's global L2 norm to this (0 = no clipping)."""

    # ~134 forget images: small batches give several steps per pass; Adam (see finetune) at a small rate,
    # since every ascent step also degrades the retained classes.
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 1e-4, "batch_size": 32}}


@register_method("negative_gradient", NegativeGradientParams, needs=("forget",))
def negative_gradient(ctx: Context, p: NegativeGradientParams):
    """NegativeGradient: gradient ascent on the forget set's (capped) cross-entropy, gradient-norm clipped."""
    model, forget = ctx.model, ctx.forget
    cap = p.loss_cap if p.loss_cap is not None else 2 * math.log(ctx.num_classes)
    opt = make_optimizer(model.parameters(), p)
    cycler = BatchCycler(len(forget), p.batch_size, ctx.generator)

    def step(epoch: int, i: int) -> dict:
        set_train_mode(model, p.bn_train)
        x, y = batch_on(ctx, forget, cycler.next())
        logits = model(x)
        ce = F.cross_entropy(logits, y, reduction="none")
        loss = -ce.clamp(max=cap).mean()  # samples past the cap have zero gradient
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if p.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.max_grad_norm)
        opt.step()
        return {"loss/forget": ce.detach().mean(), "loss/total": loss.detach(),
                "frac/capped": (ce.detach() >= cap).float().mean(),
                "acc/forget_batch": (logits.detach().argmax(1) == y).float().mean()}

    return run_loop(ctx, p, step, cycler.steps_per_pass())
