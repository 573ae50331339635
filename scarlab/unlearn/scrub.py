"""SCRUB (Kurmanji et al., NeurIPS 2023): a student (the model being unlearned) and a teacher (the frozen
original), trained by alternating max- and min-steps.

Each epoch: while ``epoch < msteps``, one pass of *max-steps* over the forget set, maximising
KL(teacher ‖ student) of the tempered outputs (the student moves away from the teacher on forget data);
then one pass of *min-steps* over the retain set, minimising ``kl_weight``·KL(teacher ‖ student) +
``ce_weight``·CE (it stays close to the teacher, and correct, on retained data). Every max-/min-step is one
optimiser step and one history row (``loss/forget`` on max-steps, ``loss/retain`` on min-steps).
Data: forget and retain sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import BatchCycler, Context, OptimParams, batch_on, make_optimizer, register_method, run_loop, \
    set_train_mode


def kl_teacher_student(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher ‖ student) of softmax(logits / t), batch mean, scaled by t² (the usual distillation scale)."""
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * (t * t)


@dataclass
class ScrubParams(OptimParams):
    """SCRUB hyper-parameters (SGD with momentum; max-steps in the first ``msteps`` epochs)."""

    epochs: int = 10
    """SCRUB epochs (each: a max pass over forget while epoch < msteps, then a min pass over retain)."""
    msteps: int = 3
    """number of leading epochs that include a max pass over the forget set."""
    lr: float = 1e-3
    """SGD learning rate (max- and min-steps share one optimiser).
    At 5e-3 the 8-epoch cifar10-mini smallcnn (frozen batch norm) collapses: retain-test .112
    after forgetting class 0, .627 at 1e-3 (bench/NOTES.md)."""
    batch_size: int = 128
    """forget samples per max-step."""
    retain_batch_size: int = 128
    """retain samples per min-step."""
    temperature: float = 4.0
    """distillation temperature T."""
    kl_weight: float = 1.0
    """weight of KL(teacher ‖ student) in the min-steps (α)."""
    ce_weight: float = 1.0
    """weight of the retain cross-entropy in the min-steps (γ)."""
    forget_weight: float = 1.0
    """weight of the forget KL that max-steps ascend."""
    max_grad_norm: float = 5.0
    """clip the gradient's global L2 norm on max-steps (0 = no clipping): the ascent is otherwise unbounded."""

    # Adam: SGD diverges on digits' tinycnn with frozen batch norm, and Adam's normalised first steps also
    # break the student = teacher tie (zero KL gradient) of the first max pass.
    DATASET_DEFAULTS = {"digits": {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "retain_batch_size": 64,
                                   "epochs": 5}}


@register_method("scrub", ScrubParams, needs=("forget", "retain"))
def scrub(ctx: Context, p: ScrubParams):
    """SCRUB: alternate max-steps (push away from the teacher on forget) and min-steps (match it + CE on retain)."""
    model, teacher, forget, retain = ctx.model, ctx.teacher, ctx.forget, ctx.retain
    opt = make_optimizer(model.parameters(), p)
    fcycle = BatchCycler(len(forget), p.batch_size, ctx.generator)
    rcycle = BatchCycler(len(retain), p.retain_batch_size, ctx.generator)
    n_max, n_min = fcycle.steps_per_pass(), rcycle.steps_per_pass()

    def steps(epoch: int) -> int:
        return (n_max if epoch < p.msteps else 0) + n_min

    def step(epoch: int, i: int) -> dict:
        set_train_mode(model, p.bn_train)
        if epoch < p.msteps and i < n_max:  # max-step on forget
            x, y = batch_on(ctx, forget, fcycle.next())
            with torch.no_grad():
                t_logits = teacher(x)
            logits = model(x)
            kl = kl_teacher_student(logits, t_logits, p.temperature)
            loss = -p.forget_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if p.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), p.max_grad_norm)
            opt.step()
            return {"loss/forget": kl.detach(), "loss/total": loss.detach(), "phase/max": 1.0,
                    "acc/forget_batch": (logits.detach().argmax(1) == y).float().mean()}
        x, y = batch_on(ctx, retain, rcycle.next())
        with torch.no_grad():
            t_logits = teacher(x)
        logits = model(x)
        kl = kl_teacher_student(logits, t_logits, p.temperature)
        ce = F.cross_entropy(logits, y)
        loss = p.kl_weight * kl + p.ce_weight * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss/retain": loss.detach(), "loss/retain_kl": kl.detach(), "loss/retain_ce": ce.detach(),
                "loss/total": loss.detach(), "phase/max": 0.0}

    return run_loop(ctx, p, step, steps)
