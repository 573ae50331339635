"""SalUn (Fan et al., ICLR 2024): saliency-masked random-label unlearning.

1. Saliency: the gradient of the forget set's cross-entropy (true labels, whole forget set, eval mode) with
   respect to every weight; the ``mask_fraction`` of weights with the largest gradient magnitude (one
   threshold over the whole network) are *salient*, the rest are frozen.
2. Training: each step takes a forget batch relabelled at random (CR: among the remaining classes; HR: any
   class but the own one) and a retain batch with its true labels and minimises
   CE(forget, random labels) + ``retain_weight``·CE(retain); gradients (and weight decay) reach only the
   salient weights, so every other weight keeps the original's value exactly.

Data: forget and retain sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ScarlabError
from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_train_mode
from .random_labels import random_other_labels


@dataclass
class SalunParams(OptimParams):
    """SalUn hyper-parameters (SGD with momentum on the salient weights only)."""

    epochs: int = 10
    """passes over the forget set."""
    lr: float = 1e-3
    """SGD learning rate.
    At 1e-2 the 8-epoch cifar10-mini smallcnn (frozen batch norm) collapses: retain-test .149
    after forgetting class 0, .563 at 1e-3 (bench/NOTES.md)."""
    batch_size: int = 128
    """forget samples per step."""
    retain_batch_size: int = 128
    """retain samples per step (drawn cyclically from the retain set)."""
    mask_fraction: float = 0.5
    """fraction of weights (largest forget-gradient magnitude) that may change."""
    retain_weight: float = 1.0
    """weight of the retain cross-entropy."""

    # Adam (SGD diverges on digits' tinycnn with frozen batch norm); batch 32 over ~134 forget images.
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 5e-4, "batch_size": 32, "retain_batch_size": 64}}


def saliency_mask(ctx: Context, fraction: float, batch_size: int = 512) -> list[torch.Tensor]:
    """Boolean masks (one per parameter) of the top ``fraction`` of weights by |∇ forget cross-entropy|."""
    if not 0 < fraction <= 1:
        raise ScarlabError(f"mask_fraction must be in (0, 1], got {fraction}")
    model, forget = ctx.model, ctx.forget
    params = list(model.parameters())
    model.eval()
    model.zero_grad(set_to_none=True)
    n = len(forget)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        x, y = batch_on(ctx, forget, idx)
        (F.cross_entropy(model(x), y, reduction="sum") / n).backward()  # gradient of the full-set mean
    mags = [q.grad.abs() if q.grad is not None else torch.zeros_like(q) for q in params]
    model.zero_grad(set_to_none=True)
    flat = torch.cat([m.flatten() for m in mags])
    k = max(1, round(fraction * flat.numel()))
    threshold = torch.topk(flat, k, sorted=False).values.min()
    return [m >= threshold for m in mags]


@register_method("salun", SalunParams, needs=("forget", "retain"))
def salun(ctx: Context, p: SalunParams):
    """SalUn: random-label training on forget + retain cross-entropy, updating only the most salient weights."""
    model, forget, retain = ctx.model, ctx.forget, ctx.retain
    masks = saliency_mask(ctx, p.mask_fraction)
    params = list(model.parameters())
    opt = make_optimizer(params, p, weight_decay=0.0)  # decay is added to the masked gradient below
    fcycle = BatchCycler(len(forget), p.batch_size, ctx.generator)
    rcycle = BatchCycler(len(retain), p.retain_batch_size, ctx.generator)
    salient = float(sum(int(m.sum()) for m in masks)) / sum(m.numel() for m in masks)

    def step(epoch: int, i: int) -> dict:
        set_train_mode(model, p.bn_train)
        xf, yf = batch_on(ctx, forget, fcycle.next())
        xr, yr = batch_on(ctx, retain, rcycle.next())
        logits_f = model(xf)
        loss_f = F.cross_entropy(logits_f, random_other_labels(yf, ctx))
        loss_r = F.cross_entropy(model(xr), yr)
        loss = loss_f + p.retain_weight * loss_r
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for q, m in zip(params, masks):
                if q.grad is not None:
                    if p.weight_decay:
                        q.grad.add_(q, alpha=p.weight_decay)
                    q.grad.mul_(m)
        opt.step()
        return {"loss/forget": loss_f.detach(), "loss/retain": loss_r.detach(), "loss/total": loss.detach(),
                "mask/salient": salient, "acc/forget_batch": (logits_f.detach().argmax(1) == yf).float().mean()}

    return run_loop(ctx, p, step, fcycle.steps_per_pass())
