"""Selective Synaptic Dampening (Foster et al., AAAI 2024): a one-shot, retrain-free edit of the weights.

Two diagonal (empirical) Fisher importances are estimated — the mean over mini-batches of the squared
gradient of the cross-entropy with the true labels — one on the forget set (F_f) and one on the whole
training data D = forget ∪ retain, shuffled so batches mix both (F_D; optionally on a uniform random
subsample of D). Every parameter θ_i with F_f,i > α·F_D,i is specialised
to the forget data and is dampened: θ_i ← β_i·θ_i, β_i = min(λ·F_D,i / F_f,i, 1). No gradient step is
taken. The trace has one step: a history row (forget / retain loss after dampening, fraction of
parameters dampened) and snapshots at step 0 and 1. Data: forget and retain sets.

The importances are per batch (squared gradient of a batch-mean loss), as in the authors' description of
the method, so they depend on ``batch_size``; forget and global importances use the same batch size.
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
    batch_size: int = 128
    """samples per mini-batch when estimating the importances."""
    alpha: float = 10.0
    """selection threshold α: a parameter is dampened when its forget importance exceeds α × its global one."""
    dampening: float = 1.0
    """dampening constant λ: a selected parameter is scaled by min(λ·F_D / F_f, 1)."""
    global_samples: int | None = None
    """training images (a uniform random sample of forget ∪ retain) for the global importance; None = all."""

    DATASET_DEFAULTS = {"digits": {"batch_size": 32}}


def fisher_diagonal(ctx: Context, part: ImageSet, batch_size: int) -> list[torch.Tensor]:
    """Mean over mini-batches (weighted by batch size) of the squared gradient of the batch cross-entropy.

    The model is in eval mode (batch-norm statistics and dropout fixed) so the estimate is deterministic.
    """
    model = ctx.model
    model.eval()
    params = [q for q in model.parameters() if q.requires_grad]
    imp = [torch.zeros_like(q) for q in params]
    n = len(part)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        x, y = batch_on(ctx, part, idx)
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        w = len(idx) / n
        for acc, g in zip(imp, grads):
            if g is not None:
                acc.add_(g.detach().square(), alpha=w)
    return imp


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
    pick = torch.randperm(n, generator=ctx.generator)[:k]  # shuffled: global batches mix forget and retain
    every = ImageSet(torch.cat([forget.images, retain.images])[pick], torch.cat([forget.labels, retain.labels])[pick])
    retain_used = ImageSet(every.images[pick >= len(forget)], every.labels[pick >= len(forget)])

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
