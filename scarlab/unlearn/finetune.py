"""FineTuning baseline: keep training the original on the retain set only.

Nothing pushes the forget set away; the forgotten data is lost only through catastrophic forgetting
(CR: the forgotten classes never appear as targets, so their logits are pushed down). Data: retain set
for training; the forget set is read only to watch forget accuracy for the stopping rule and the trace.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_train_mode


@dataclass
class FinetuneParams(OptimParams):
    """FineTuning hyper-parameters (SGD with momentum on retain cross-entropy)."""

    epochs: int = 5
    """passes over the retain set."""
    lr: float = 0.02
    """SGD learning rate (a fairly large one: forgetting comes only from drifting away from the original)."""
    batch_size: int = 128
    """retain samples per step."""
    weight_decay: float = 5e-4
    """L2 penalty."""
    bn_train: bool = True
    """update batch-norm statistics on the retain batches, as ordinary training does. With them frozen, SGD at
    this rate diverges on cifar10-mini's smallcnn (measured: retain loss 1.0 -> 12 in 4 steps; retain-test
    accuracy 14 % after 5 epochs), while it trains stably with them on."""

    # digits' tinycnn (trained with Adam, batch norm frozen here) diverges under SGD at these rates; Adam is
    # scale-free. 1,212 retain images: batch 64 gives 19 steps per pass.
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 2e-3, "batch_size": 64}}


@register_method("finetune", FinetuneParams, needs=("forget", "retain"))
def finetune(ctx: Context, p: FinetuneParams):
    """FineTuning: cross-entropy training on the retain set only (forgetting by catastrophic forgetting)."""
    model, retain = ctx.model, ctx.retain
    opt = make_optimizer(model.parameters(), p)
    cycler = BatchCycler(len(retain), p.batch_size, ctx.generator)

    def step(epoch: int, i: int) -> dict:
        set_train_mode(model, p.bn_train)
        x, y = batch_on(ctx, retain, cycler.next())
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss/retain": loss.detach(), "loss/total": loss.detach(),
                "acc/retain_batch": (logits.detach().argmax(1) == y).float().mean()}

    return run_loop(ctx, p, step, cycler.steps_per_pass())
