"""DUCK (Cotogni, Bonato et al.): cosine metric learning on the forget set + cross-entropy on the retain set.

Before the first step, the frozen original embeds the retain set and a centroid (mean penultimate feature)
is computed for every class present in it (CR: the remaining classes). At each step a forget batch's
features are compared, by cosine similarity, with every centroid except the sample's own class; the loss
pulls each forget feature toward its closest such centroid (target re-chosen per step from the current
features), while a retain batch keeps the classifier working:

    loss = λ_f · mean(1 − cos(z_f, c_target)) + λ_r · CE(retain batch)

Data: forget and retain sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..features import extract
from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_train_mode


@dataclass
class DuckParams(OptimParams):
    """DUCK hyper-parameters (Adam; one retain batch per forget batch)."""

    optimizer: str = "adam"
    """'adam' or 'sgd'."""
    epochs: int = 10
    """passes over the forget set."""
    lr: float = 5e-4
    """learning rate."""
    batch_size: int = 128
    """forget samples per step."""
    retain_batch_size: int = 128
    """retain samples per step (drawn cyclically from the retain set)."""
    lambda_forget: float = 1.0
    """weight of the cosine metric-learning forget loss."""
    lambda_retain: float = 1.0
    """weight of the retain cross-entropy."""

    DATASET_DEFAULTS = {"digits": {"batch_size": 32, "retain_batch_size": 64, "lr": 1e-3}}


def class_centroids(feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean features [K, D] and a [K] mask of the classes that have samples."""
    counts = torch.bincount(labels, minlength=num_classes).to(feats.dtype)
    sums = torch.zeros(num_classes, feats.shape[1], dtype=feats.dtype).index_add_(0, labels, feats)
    return sums / counts.clamp_min(1)[:, None], counts > 0


@register_method("duck", DuckParams, needs=("forget", "retain"))
def duck(ctx: Context, p: DuckParams):
    """DUCK: pull forget features to the closest other-class centroid (cosine) + retain cross-entropy."""
    model, forget, retain, dev = ctx.model, ctx.forget, ctx.retain, ctx.device
    with torch.no_grad():
        feats, _ = extract(ctx.teacher, ctx.ds, retain.images, dev)
        centroids, present = class_centroids(feats, retain.labels, ctx.num_classes)
    centroids_n = F.normalize(centroids, dim=1).to(dev)
    present = present.to(dev)
    opt = make_optimizer(model.parameters(), p)
    fcycle = BatchCycler(len(forget), p.batch_size, ctx.generator)
    rcycle = BatchCycler(len(retain), p.retain_batch_size, ctx.generator)

    def step(epoch: int, i: int) -> dict:
        set_train_mode(model, p.bn_train)
        xf, yf = batch_on(ctx, forget, fcycle.next())
        xr, yr = batch_on(ctx, retain, rcycle.next())
        zf = model.features(xf)
        cos = F.normalize(zf, dim=1) @ centroids_n.T  # [B, K]
        allowed = present[None, :].expand_as(cos).clone()
        allowed[torch.arange(len(yf), device=dev), yf] = False  # never the sample's own class
        with torch.no_grad():
            target = cos.masked_fill(~allowed, -2.0).argmax(1)
        loss_f = (1 - cos.gather(1, target[:, None])).mean()
        logits_r = model(xr)
        loss_r = F.cross_entropy(logits_r, yr)
        loss = p.lambda_forget * loss_f + p.lambda_retain * loss_r
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc_f = (model.head(zf).argmax(1) == yf).float().mean()
        return {"loss/forget": loss_f.detach(), "loss/retain": loss_r.detach(), "loss/total": loss.detach(),
                "acc/forget_batch": acc_f}

    return run_loop(ctx, p, step, fcycle.steps_per_pass())
