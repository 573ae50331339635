"""RandomLabels baseline: train on the forget set with its labels replaced by random ones.

Data: the forget set only (no retain set). Labels are re-drawn at every step, uniformly — as the reference
implementations do — CR: among the *remaining* classes (a forgotten class is never a target); HR: among all
classes, the sample's own one included (so about 1/K of the targets are the true label). Student in train
mode (batch-norm statistics update).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Context, OptimParams, forget_set_loop, register_method


def random_labels(labels: torch.Tensor, ctx: Context, exclude_forgotten: bool = True) -> torch.Tensor:
    """Uniform random labels [N] for ``labels`` [N], drawn with ``ctx.generator`` on the CPU and returned on
    ``labels``' device: over all classes, except (``exclude_forgotten``, CR only) the forgotten ones. The
    true label is never excluded (HR: it is one of the K equally likely draws)."""
    keep = torch.ones(ctx.num_classes, dtype=torch.bool)
    if exclude_forgotten and ctx.scenario == "CR":
        keep[ctx.forget_classes] = False
    allowed = keep.nonzero().flatten()
    out = allowed[torch.randint(len(allowed), (len(labels),), generator=ctx.generator)]
    return out.to(labels.device)


@dataclass
class RandomLabelsParams(OptimParams):
    """RandomLabels hyper-parameters (SGD with momentum, cross-entropy against random labels)."""

    epochs: int = 5
    """passes over the forget set."""
    lr: float = 1e-3
    """SGD learning rate (the reference implementations give no rate; 1e-2 collapsed the cifar10-mini smallcnn in an
    earlier measurement, bench/NOTES.md)."""
    batch_size: int = 128
    """forget samples per step."""

    # ~134 forget images: batch 32; Adam at a small rate (tinycnn was trained with Adam). CR class 0:
    # retain-test / forget-test .867 / .022 with these, .783 / .578 at the generic SGD 1e-3 / batch 128.
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 5e-4, "batch_size": 32}}


@register_method("random_labels", RandomLabelsParams, needs=("forget",))
def random_labels_method(ctx: Context, p: RandomLabelsParams):
    """RandomLabels: cross-entropy on the forget set relabelled at random (CR: among remaining classes)."""
    def loss_fn(logits, y):
        loss = F.cross_entropy(logits, random_labels(y, ctx))
        return loss, {"loss/forget": loss.detach()}

    return forget_set_loop(ctx, p, loss_fn)
