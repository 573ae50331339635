"""DUCK (Cotogni, Bonato et al.): cosine metric learning on the forget set + cross-entropy on the retain set.

Before the first step, the frozen original (eval mode) embeds ``centroid_batches`` augmented retain batches
and a centroid (mean penultimate feature) is computed for every class present in them (CR: the remaining
classes). Each forget batch's features are compared, by cosine similarity, with every centroid except the
sample's own class; the loss pulls each forget feature toward its closest such centroid, while retain
batches keep the classifier working:

    loss = λ_f · mean(1 − cos(z_f, c_target)) + λ_r · CE(retain batch, label smoothing)

As the SCAR authors' code base runs it: like SCAR, each forget batch (1,024) is used for
``retain_batches + 1`` consecutive steps, each drawing the next retain batch; the target centroid of a forget
sample is re-chosen at every step of the first epoch from the current features and kept fixed afterwards;
the student is in train mode (batch-norm statistics update). Data: forget and retain sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ScarlabError
from ..features import extract
from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_lr, set_train_mode


@dataclass
class DuckParams(OptimParams):
    """DUCK hyper-parameters (Adam; ``retain_batches + 1`` steps per forget batch)."""

    optimizer: str = "adam"
    """'adam' or 'sgd'."""
    epochs: int = 10
    """passes over the forget set."""
    lr: float = 5e-4
    """learning rate."""
    batch_size: int = 1024
    """forget samples per forget batch (as SCAR)."""
    retain_batches: int = 5
    """retain batches per forget batch: each forget batch gets ``retain_batches + 1`` optimiser steps (SCAR's
    loop with retain batches in place of surrogate batches)."""
    retain_batch_size: int = 1024
    """retain samples per step (the forget batch size, as SCAR draws its surrogate batches)."""
    centroid_batches: int = 10
    """augmented retain batches (of ``retain_batch_size``) the class centroids are computed from."""
    lambda_forget: float = 1.0
    """weight of the cosine metric-learning forget loss."""
    lambda_retain: float = 5.0
    """weight of the retain cross-entropy: 5 in the SCAR code base (DUCK's own repository uses 1.4)."""
    label_smoothing: float = 0.0
    """label smoothing of the retain cross-entropy (0.2 on TinyImageNet, as the reference)."""

    # digits runs at the generic defaults (CR class 0: retain-test .995, forget-test .200 after 10 epochs).
    DATASET_DEFAULTS = {"tinyimagenet": {"label_smoothing": 0.2}}

    def validate(self) -> None:
        super().validate()
        for name, low in (("retain_batches", 0), ("retain_batch_size", 1), ("centroid_batches", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ScarlabError(f"{name} must be a whole number ≥ {low} (got {v!r})")


def class_centroids(feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean features [K, D] of ``feats`` [N, D] / ``labels`` [N], and a [K] mask of classes present."""
    counts = torch.bincount(labels, minlength=num_classes).to(feats.dtype)
    sums = torch.zeros(num_classes, feats.shape[1], dtype=feats.dtype).index_add_(0, labels, feats)
    return sums / counts.clamp_min(1)[:, None], counts > 0


def augmented_centroids(ctx: Context, p: DuckParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids [K, D] and presence mask [K] from ``p.centroid_batches`` augmented retain batches."""
    cycle = BatchCycler(len(ctx.retain), p.retain_batch_size, ctx.generator)
    idx = torch.cat([cycle.next() for _ in range(max(1, p.centroid_batches))])
    images = ctx.ds.augment(ctx.retain.images[idx], ctx.generator)  # uint8 [M, C, H, W]
    feats, _ = extract(ctx.teacher, ctx.ds, images, ctx.device)
    return class_centroids(feats, ctx.retain.labels[idx], ctx.num_classes)


@register_method("duck", DuckParams, needs=("forget", "retain"), targets=True)
def duck(ctx: Context, p: DuckParams):
    """DUCK: pull forget features to the closest other-class centroid (cosine) + retain cross-entropy."""
    model, forget, retain, dev = ctx.model, ctx.forget, ctx.retain, ctx.device
    centroids, present = augmented_centroids(ctx, p)
    centroids_n, present = F.normalize(centroids, dim=1).to(dev), present.to(dev)
    opt = make_optimizer(model.parameters(), p)
    fcycle = BatchCycler(len(forget), p.batch_size, ctx.generator)
    rcycle = BatchCycler(len(retain), p.retain_batch_size, ctx.generator)
    per_batch = p.retain_batches + 1
    n = fcycle.steps_per_pass() * per_batch
    targets = torch.full((len(forget),), -1, dtype=torch.long)  # per forget sample, fixed after epoch 0
    cur = {}  # the indices of the current forget batch (kept across its steps)

    def step(epoch: int, i: int) -> dict:
        set_lr(opt, p, epoch, i / n)
        set_train_mode(model, p.bn_train)
        if i % per_batch == 0:  # a new forget batch, reused for the next retain_batches steps
            cur["idx"] = fcycle.next()
        fi = cur["idx"]
        xf, yf = batch_on(ctx, forget, fi)  # [B, C, H, W], [B]
        xr, yr = batch_on(ctx, retain, rcycle.next())
        zf = model.features(xf)  # [B, D]
        cos = F.normalize(zf, dim=1) @ centroids_n.T  # [B, K]
        if epoch == 0:  # re-chosen from the current features during the first epoch only
            allowed = present[None, :].expand_as(cos).clone()
            allowed[torch.arange(len(yf), device=dev), yf] = False  # never the sample's own class
            with torch.no_grad():
                targets[fi] = cos.masked_fill(~allowed, -2.0).argmax(1).cpu()
        target = targets[fi].to(dev)
        loss_f = (1 - cos.gather(1, target[:, None])).mean()
        logits_r = model(xr)
        loss_r = F.cross_entropy(logits_r, yr, label_smoothing=p.label_smoothing)
        loss = p.lambda_forget * loss_f + p.lambda_retain * loss_r
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc_f = (model.head(zf).argmax(1) == yf).float().mean()
        return {"loss/forget": loss_f.detach(), "loss/retain": loss_r.detach(), "loss/total": loss.detach(),
                "acc/forget_batch": acc_f}

    run_loop(ctx, p, step, n)
    ctx.tracer.record_targets(targets.numpy())
    return model
