"""Selective Synaptic Dampening (Foster et al., AAAI 2024): a one-shot, retrain-free edit of the weights.

Two diagonal (empirical) Fisher importances are estimated — the mean over mini-batches of the squared
gradient of the cross-entropy with the true labels — one on the forget set (F_f) and one on the whole
training data D (F_D; optionally on a uniform random subsample of D). As the reference: the model in eval
mode, batches of 64, D ordered retain first, then forget, not shuffled. Every parameter θ_i with
F_f,i > α·F_D,i is specialised
to the forget data and is dampened: θ_i ← β_i·θ_i, β_i = min(λ·F_D,i / F_f,i, 1). No gradient step is
taken. The trace has one step: a history row (forget / retain loss after dampening, fraction of
parameters dampened) and snapshots at step 0 and 1. Data: forget and retain sets.

The importances are per batch (squared gradient of a batch-mean loss) averaged over the batches (a smaller
last batch counts as much as the others), as in the reference, so they depend on ``batch_size`` and on the
order of D; forget and global importances use the same batch size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import ImageSet
from .base import Context, Params, batch_on, register_method, run_loop


@dataclass
class SsdParams(Params):
    """SSD hyper-parameters (no optimiser: ``epochs``, ``lr`` and ``stop`` are unused)."""

    epochs: int = 1
    """unused: SSD is a single edit (always one step)."""
    batch_size: int = 64
    """samples per mini-batch when estimating the importances (the reference's 64)."""
    alpha: float = 10.0
    """selection threshold α: a parameter is dampened when its forget importance exceeds α × its global one
    (the reference's 10). D holds the forget batches too, so F_D ≳ (forget batches / all batches)·F_f: when one
    class is 1/10 of the data, as on cifar10-mini, α = 10 selects (almost) nothing. Measured, 8-epoch smallcnn,
    CR class 0 (`scarlab unlearn --method ssd --from ORIG --split RETR [--alpha A]`): retain-test / forget-test
    .574 / .490 at α = 10 (0 parameters selected: the original), .114 / .000 at α = 5 (40 % selected)."""
    dampening: float = 1.0
    """dampening constant λ: a selected parameter is scaled by min(λ·F_D / F_f, 1)."""
    global_samples: int | None = None
    """training images (a uniform random sample of retain + forget, kept in that order) for the global
    importance; None = all (the reference)."""
    storage_order: bool = False
    """True: retain and forget images in the data set's storage order. False: each permuted once (seeded)
    first — the reference reads CIFAR's files, whose order mixes classes, while imagefolder (and our
    Tiny-ImageNet) data are stored class by class, which would make every unshuffled batch single-class.
    Either way D is all retain batches, then all forget batches (cifar10-mini, class 0, α = 10: both orders
    select nothing)."""

    # digits (not a reference data set; 10 classes, so α = 10 is a no-op as on cifar10-mini): α = 4. CR class 0,
    # 8-epoch tinycnn (`scarlab train --dataset digits --epochs 8`; `scarlab unlearn --method ssd --alpha A`),
    # retain-test / forget-test: .985 / 1.000 at α = 10 (nothing selected), .980 / .289 at 5, .980 / .000 at 4,
    # .879 / .000 at 3.
    DATASET_DEFAULTS = {"digits": {"alpha": 4.0}}


def fisher_diagonal(ctx: Context, part: ImageSet, batch_size: int) -> list[torch.Tensor]:
    """Mean over consecutive mini-batches of ``part`` (in order) of the squared gradient of the batch-mean
    cross-entropy: one tensor per parameter, its shape.

    The model is in eval mode (batch-norm statistics and dropout fixed, as the reference): the estimate is
    deterministic and the running statistics are never touched.
    """
    model = ctx.model
    model.eval()
    params = [q for q in model.parameters() if q.requires_grad]
    imp = [torch.zeros_like(q) for q in params]
    n = len(part)
    n_batches = max(1, -(-n // batch_size))
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        x, y = batch_on(ctx, part, idx)
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for acc, g in zip(imp, grads):
            if g is not None:
                acc.add_(g.detach().square(), alpha=1.0 / n_batches)
    return imp


def _permuted(part: ImageSet, generator: torch.Generator) -> ImageSet:
    order = torch.randperm(len(part), generator=generator)
    return ImageSet(part.images[order], part.labels[order])


@torch.no_grad()
def _mean_ce(ctx: Context, part: ImageSet, batch_size: int) -> float:
    ctx.model.eval()
    total = 0.0
    for start in range(0, len(part), 4 * batch_size):
        idx = torch.arange(start, min(start + 4 * batch_size, len(part)))
        x, y = batch_on(ctx, part, idx)
        total += float(F.cross_entropy(ctx.model(x), y, reduction="sum"))
    return total / max(1, len(part))


@register_method("ssd", SsdParams, needs=("forget", "retain"))
def ssd(ctx: Context, p: SsdParams):
    """SSD: dampen weights whose forget Fisher importance exceeds α × their global importance; no training."""
    forget, retain = ctx.forget, ctx.retain
    n = len(forget) + len(retain)
    k = n if p.global_samples is None else max(1, min(n, p.global_samples))
    if not p.storage_order:  # a class-mixed order within each part, like CIFAR's files (see storage_order)
        forget, retain = _permuted(forget, ctx.generator), _permuted(retain, ctx.generator)
    # retain first, then forget, not shuffled (the reference's order); a subsample keeps that order
    pick = torch.arange(n) if k == n else torch.randperm(n, generator=ctx.generator)[:k].sort().values
    every = ImageSet(torch.cat([retain.images, forget.images])[pick], torch.cat([retain.labels, forget.labels])[pick])
    retain_used = ImageSet(every.images[pick < len(retain)], every.labels[pick < len(retain)])

    def step(epoch: int, i: int) -> dict:
        imp_f = fisher_diagonal(ctx, forget, p.batch_size)
        imp_d = fisher_diagonal(ctx, every, p.batch_size)
        selected = total = 0
        factor_sum = 0.0
        params = [q for q in ctx.model.parameters() if q.requires_grad]
        with torch.no_grad():
            for q, f, g in zip(params, imp_f, imp_d):
                sel = f > p.alpha * g
                beta = torch.where(sel, (p.dampening * g / f.clamp_min(1e-30)).clamp(max=1.0), torch.ones_like(f))
                q.mul_(beta)
                selected += int(sel.sum())
                total += sel.numel()
                factor_sum += float(beta[sel].sum()) if sel.any() else 0.0
        loss_f, loss_r = _mean_ce(ctx, forget, p.batch_size), _mean_ce(ctx, retain_used, p.batch_size)
        return {"loss/forget": loss_f, "loss/retain": loss_r, "ssd/selected": selected / max(1, total),
                "ssd/mean_factor": factor_sum / selected if selected else 1.0}

    # one "epoch" of one step; the stopping rule is meaningless for a one-shot edit
    return run_loop(ctx, dataclasses.replace(p, epochs=1, stop=False), step, 1)
