"""SalUn (Fan et al., ICLR 2024): saliency-masked random-label unlearning.

1. Saliency: the gradient of the forget set's cross-entropy (true labels, whole forget set, eval mode) with
   respect to every weight; the ``mask_fraction`` of weights with the largest gradient magnitude (one
   threshold over the whole network) are *salient*, the rest are frozen.
2. Training, as the reference runs CIFAR-10: each epoch is a pass over the forget set, relabelled at random
   over *all* classes (the true and, in CR, the forgotten ones included), minimising CE(forget, random
   labels), then a separate pass over the retain set minimising ``retain_weight``·CE(retain, true labels).
   Gradients (and weight decay) reach only the salient weights, so every other weight keeps the original's
   value exactly; the student is in train mode (batch-norm statistics update, as in the reference).

Data: forget and retain sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ScarlabError
from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_lr, set_train_mode
from .random_labels import random_labels


@dataclass
class SalunParams(OptimParams):
    """SalUn hyper-parameters (SGD with momentum on the salient weights only)."""

    epochs: int = 10
    """epochs, each a forget pass then a retain pass."""
    lr: float = 0.013
    """SGD learning rate (the reference's CIFAR-10 value)."""
    batch_size: int = 128
    """forget samples per forget step."""
    retain_batch_size: int = 128
    """retain samples per retain step."""
    mask_fraction: float = 0.5
    """fraction of weights (largest forget-gradient magnitude) that may change."""
    retain_weight: float = 1.0
    """weight of the retain cross-entropy."""

    # digits: smaller batches over ~134 forget / 1,212 retain images (the reference rate works: CR class 0,
    # retain-test .990, forget-test .044).
    DATASET_DEFAULTS = {"digits": {"batch_size": 32, "retain_batch_size": 64}}


def saliency_mask(ctx: Context, fraction: float, batch_size: int = 512) -> list[torch.Tensor]:
    """Boolean masks (one per parameter, its shape) of the top ``fraction`` of weights by |∇ forget CE|."""
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
    """SalUn: a random-label pass on forget, then a retain pass, updating only the most salient weights."""
    model, forget, retain = ctx.model, ctx.forget, ctx.retain
    masks = saliency_mask(ctx, p.mask_fraction)
    params = list(model.parameters())
    opt = make_optimizer(params, p, weight_decay=0.0)  # decay is added to the masked gradient below
    fcycle = BatchCycler(len(forget), p.batch_size, ctx.generator)
    rcycle = BatchCycler(len(retain), p.retain_batch_size, ctx.generator)
    n_f, n_r = fcycle.steps_per_pass(), rcycle.steps_per_pass()
    salient = float(sum(int(m.sum()) for m in masks)) / sum(m.numel() for m in masks)

    def step(epoch: int, i: int) -> dict:
        set_lr(opt, p, epoch, i / (n_f + n_r))
        set_train_mode(model, p.bn_train)
        forget_step = i < n_f  # the forget pass first, then the retain pass
        if forget_step:
            x, y = batch_on(ctx, forget, fcycle.next())  # x [B, C, H, W], y [B]
            logits = model(x)
            loss = F.cross_entropy(logits, random_labels(y, ctx, exclude_forgotten=False))
        else:
            x, y = batch_on(ctx, retain, rcycle.next())
            logits = model(x)
            loss = p.retain_weight * F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for q, m in zip(params, masks):
                if q.grad is not None:
                    if p.weight_decay:
                        q.grad.add_(q, alpha=p.weight_decay)
                    q.grad.mul_(m)
        opt.step()
        acc = (logits.detach().argmax(1) == y).float().mean()
        if forget_step:
            return {"loss/forget": loss.detach(), "loss/total": loss.detach(), "mask/salient": salient,
                    "acc/forget_batch": acc}
        return {"loss/retain": loss.detach(), "loss/total": loss.detach(), "mask/salient": salient,
                "acc/retain_batch": acc}

    return run_loop(ctx, p, step, n_f + n_r)
