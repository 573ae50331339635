"""RandomLabels baseline: train on the forget set with its labels replaced by random ones.

Data: the forget set only (no retain set). Labels are re-drawn at every step. CR: uniformly among the
*remaining* classes (a forgotten class is never a target); HR: uniformly among the classes other than the
sample's own.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_train_mode


def random_other_labels(labels: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Random wrong labels for ``labels`` (CR: among remaining classes; HR: any class but the own one),
    drawn with ``ctx.generator``; returned on ``labels``' device."""
    n, k = len(labels), ctx.num_classes
    if ctx.scenario == "CR":
        keep = torch.ones(k, dtype=torch.bool)
        keep[ctx.forget_classes] = False
        allowed = keep.nonzero().flatten()
        out = allowed[torch.randint(len(allowed), (n,), generator=ctx.generator)]
    else:
        r = torch.randint(k - 1, (n,), generator=ctx.generator)
        own = labels.cpu()
        out = r + (r >= own).long()  # skip the own class
    return out.to(labels.device)


@dataclass
class RandomLabelsParams(OptimParams):
    """RandomLabels hyper-parameters (SGD with momentum, cross-entropy against random labels)."""

    epochs: int = 5
    """passes over the forget set."""
    lr: float = 1e-3
    """SGD learning rate.
    At 1e-2 the 8-epoch cifar10-mini smallcnn (frozen batch norm) collapses: retain-test .111
    after forgetting class 0, .440 at 1e-3 (bench/NOTES.md)."""
    batch_size: int = 128
    """forget samples per step."""

    # ~134 forget images: batch 32; Adam, as SGD diverges on digits' tinycnn with frozen batch norm.
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 5e-4, "batch_size": 32}}


@register_method("random_labels", RandomLabelsParams, needs=("forget",))
def random_labels_method(ctx: Context, p: RandomLabelsParams):
    """RandomLabels: cross-entropy on the forget set relabelled at random (CR: among remaining classes)."""
    model, forget = ctx.model, ctx.forget
    opt = make_optimizer(model.parameters(), p)
    cycler = BatchCycler(len(forget), p.batch_size, ctx.generator)

    def step(epoch: int, i: int) -> dict:
        set_train_mode(model, p.bn_train)
        x, y = batch_on(ctx, forget, cycler.next())
        logits = model(x)
        loss = F.cross_entropy(logits, random_other_labels(y, ctx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss/forget": loss.detach(), "loss/total": loss.detach(),
                "acc/forget_batch": (logits.detach().argmax(1) == y).float().mean()}

    return run_loop(ctx, p, step, cycler.steps_per_pass())
