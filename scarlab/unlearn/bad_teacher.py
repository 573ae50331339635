"""Bad Teacher (Chundawat et al., AAAI 2023, "Can bad teaching induce forgetting?"): distil a competent and
an incompetent teacher into the student at once.

The competent ("good") teacher is the frozen original; the incompetent ("bad") one is a randomly-initialised
copy of the same architecture. The unlearning set is the whole forget set plus a random fraction of the
retain set (drawn once), each sample tagged u = 1 (forget) or 0 (retain) and shuffled together, so a batch
mixes both. For every sample the target distribution is softmax(bad/T) if u = 1 else softmax(good/T), and
the student minimises KL(target ‖ softmax(student/T)), averaged over the batch *and divided by the number
of classes K* (the reference takes the element-wise mean of the [B, K] KL terms), in train mode (batch-norm
statistics update). Data: forget and retain sets.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import ImageSet
from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_lr, set_train_mode


@dataclass
class BadTeacherParams(OptimParams):
    """Bad Teacher hyper-parameters (Adam, mixed forget + retain-subset batches)."""

    optimizer: str = "adam"
    """'adam' or 'sgd'."""
    epochs: int = 1
    """passes over the unlearning set (forget + retain subset)."""
    lr: float = 1e-4
    """learning rate."""
    batch_size: int = 256
    """samples per mixed batch."""
    retain_fraction: float = 0.3
    """fraction of the retain set drawn (once) into the unlearning set."""
    temperature: float = 1.0
    """distillation temperature T (teachers and student)."""

    # one pass with lr 1e-4 moves a 1,347-image model too little; more passes at a larger lr
    DATASET_DEFAULTS = {"digits": {"epochs": 6, "batch_size": 64, "lr": 1e-3}}


def bad_teacher_loss(logits: torch.Tensor, target_log_probs: torch.Tensor, t: float):
    """(loss, per-sample KL [B]) for student ``logits`` [B, K] and target log-probabilities [B, K]: the loss is
    the mean of the [B, K] element-wise KL terms, i.e. the batch-mean KL divided by K (as the reference)."""
    kl = F.kl_div(F.log_softmax(logits / t, 1), target_log_probs, log_target=True, reduction="none")  # [B, K]
    return kl.mean(), kl.detach().sum(1)


def random_copy(model: nn.Module) -> nn.Module:
    """The same architecture with fresh random weights (the global RNG, seeded by the stage), eval mode."""
    spec = dict(getattr(model, "spec", {}) or {})
    device = next(model.parameters()).device
    if spec.get("name"):
        from ..models import create_model
        bad = create_model(spec.pop("name"), **spec).to(device)
    else:  # not a registry model: re-initialise every layer that knows how
        bad = copy.deepcopy(model)
        for m in bad.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()
    return bad.eval().requires_grad_(False)


@register_method("bad_teacher", BadTeacherParams, needs=("forget", "retain"))
def bad_teacher(ctx: Context, p: BadTeacherParams):
    """Bad Teacher: distil the original on a retain subset and a random-weights copy on the forget set."""
    model, good, forget, retain = ctx.model, ctx.teacher, ctx.forget, ctx.retain
    bad = random_copy(good)
    n_sub = min(len(retain), max(1, round(p.retain_fraction * len(retain)))) if p.retain_fraction > 0 else 0
    sub = torch.randperm(len(retain), generator=ctx.generator)[:n_sub]
    mixed = ImageSet(torch.cat([forget.images, retain.images[sub]]), torch.cat([forget.labels, retain.labels[sub]]))
    is_forget = torch.cat([torch.ones(len(forget), dtype=torch.bool), torch.zeros(n_sub, dtype=torch.bool)])
    opt = make_optimizer(model.parameters(), p)
    cycler = BatchCycler(len(mixed), p.batch_size, ctx.generator)
    n = cycler.steps_per_pass()
    t = p.temperature

    def step(epoch: int, i: int) -> dict:
        set_lr(opt, p, epoch, i / n)
        set_train_mode(model, p.bn_train)
        b = cycler.next()
        x, y = batch_on(ctx, mixed, b)
        uc = is_forget[b]
        u = uc.to(ctx.device)
        with torch.no_grad():
            target = torch.where(u[:, None], F.log_softmax(bad(x) / t, 1), F.log_softmax(good(x) / t, 1))
        logits = model(x)
        loss, kl = bad_teacher_loss(logits, target, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out = {"loss/total": loss.detach()}  # loss/forget, loss/retain: per-sample KL, not divided by K
        if uc.any():  # tested on the CPU copy: no device sync
            out["loss/forget"] = kl[u].mean()
            out["acc/forget_batch"] = (logits.detach()[u].argmax(1) == y[u]).float().mean()
        if not uc.all():
            out["loss/retain"] = kl[~u].mean()
        return out

    return run_loop(ctx, p, step, n)
