"""SCAR and SCAR-self (Bonato et al., ECCV 2024): unlearning with no retain set.

Loss = λ1·L_M + λ2·L_TD. L_M pulls each forget sample's features, by Mahalanobis distance, to the closest
other class's distribution (its *target*, fixed before the first step). L_TD distils the frozen original
(teacher) on out-of-distribution surrogate images. See ../shared/SCAR.md for every detail implemented here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ScarlabError
from ..features import extract
from .base import Context, Params, forget_accuracy, register_method, run_loop, set_train_mode


@dataclass
class ScarParams(Params):
    """SCAR hyper-parameters; defaults are the paper's (batch 1024, Adam 5e-4, 30 epochs, T=1, λ1=1, λ2=5)."""

    epochs: int = 30
    """maximum passes over the forget set."""
    lr: float = 5e-4
    """Adam learning rate."""
    batch_size: int = 1024
    """forget samples per optimiser step."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    temperature: float = 1.0
    """distillation temperature T (teacher and student logits are divided by T)."""
    lambda_1: float = 1.0
    """weight of the Mahalanobis forget loss L_M."""
    lambda_2: float = 5.0
    """weight of the distillation retain loss L_TD."""
    gamma1: float = 3.0
    """covariance shrinkage of the diagonal (applied twice)."""
    gamma2: float = 3.0
    """covariance shrinkage of the off-diagonal (applied twice)."""
    surrogate_per_forget: int = 5
    """surrogate batches per forget batch: each step distils on this many batch_size surrogate images."""
    hr_threshold: float = 0.8
    """HR: a class's forget loss switches off once its forget accuracy falls below this (0.4 on Tiny-ImageNet)."""
    bn_train: bool = False
    """update batch-norm running statistics during unlearning (off: keep the original's statistics)."""
    signed_tukey: bool = False
    """allow negative features with a sign-preserving Tukey transform sign(x)|x|^δ."""

    # Small data sets fit in one 1024 batch: smaller batches give the optimiser enough steps.
    DATASET_DEFAULTS = {"digits": {"batch_size": 32, "lr": 1e-3}}


def _teacher_logits(ctx: Context, images: torch.Tensor) -> torch.Tensor:
    """Teacher logits of every surrogate image, computed once (no teacher forward inside the loop)."""
    return extract(ctx.teacher, ctx.ds, images, ctx.device, features=False)[1]


def filter_surrogate_cr(images: torch.Tensor, t_logits: torch.Tensor, forget_classes: list[int]):
    """CR filter: drop surrogate images the teacher predicts as a forgotten class and set the teacher's
    forgotten-class logits to its minimum logit. Returns (images, logits) kept."""
    keep = ~torch.isin(t_logits.argmax(1), torch.tensor(forget_classes))
    t = t_logits[keep].clone()
    if len(t):
        t[:, forget_classes] = t.min(1, keepdim=True).values
    return images[keep], t


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of the tempered soft outputs, averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits / temperature, 1), F.log_softmax(teacher_logits / temperature, 1),
                    log_target=True, reduction="batchmean")


class _SurrogateSampler:
    """Surrogate indices per step: a cycling permutation (CR) or class-balanced by the teacher's label (HR)."""

    def __init__(self, t_logits: torch.Tensor, balanced: bool, generator: torch.Generator):
        self.n, self.g, self.pos = len(t_logits), generator, 0
        self.order = torch.randperm(self.n, generator=generator)
        self.weights = None
        if balanced:
            pred = t_logits.argmax(1)
            self.weights = 1.0 / torch.bincount(pred).float()[pred]

    def take(self, k: int) -> torch.Tensor:
        k = min(k, self.n)
        if self.weights is not None:
            return torch.multinomial(self.weights, k, replacement=True, generator=self.g)
        if self.pos + k > self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.g), 0
        self.pos += k
        return self.order[self.pos - k:self.pos]


def _scar(ctx: Context, p: ScarParams, forget_images: torch.Tensor, forget_labels: torch.Tensor,
          surrogate: torch.Tensor, t_logits: torch.Tensor, evaluate=None):
    """The SCAR loop shared by SCAR and SCAR-self."""
    if ctx.metric is None:
        raise ScarlabError("SCAR needs the original model's class statistics (stats.npz); they are written by "
                           "`scarlab train` for the original model, or recomputed with `scarlab stats RUN`")
    model, dev = ctx.model, ctx.device
    metric = ctx.metric
    excluded = ctx.forget_classes if ctx.scenario == "CR" else []
    # Targets: the closest other (retained) class of each forget sample, computed once with the original.
    with torch.no_grad():
        feats, _ = extract(ctx.teacher, ctx.ds, forget_images, dev)
        targets = metric.targets(metric.distances(feats.to(dev), ctx.model_name), forget_labels.to(dev),
                                 excluded).cpu()
    ctx.tracer.targets_all = targets.numpy()
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sampler = _SurrogateSampler(t_logits, balanced=ctx.scenario == "HR", generator=ctx.generator)
    active = torch.ones(ctx.num_classes, dtype=torch.bool)  # HR per-class switch-off
    n = len(forget_labels)
    order = {"perm": None}

    def evaluate_forget():
        acc, per_class = forget_accuracy(ctx, forget_images, forget_labels, per_class=True)
        if ctx.scenario == "HR":
            for c, a in per_class.items():
                if a < p.hr_threshold:
                    active[c] = False
        return acc

    def step(epoch: int, i: int) -> dict:
        if i == 0:
            order["perm"] = torch.randperm(n, generator=ctx.generator)
        b = order["perm"][i * p.batch_size:(i + 1) * p.batch_size]
        set_train_mode(model, p.bn_train)
        x, y = ctx.ds.normalize(forget_images[b], dev), forget_labels[b].to(dev)
        z = model.features(x)
        on = active[forget_labels[b]].to(dev)
        if on.any():
            dist = metric.distances(z[on], ctx.model_name)
            loss_m = dist.gather(1, targets[b].to(dev)[on][:, None]).mean()
        else:
            loss_m = z.sum() * 0.0
        s = sampler.take(p.batch_size * p.surrogate_per_forget)
        loss_td = distill_loss(model(ctx.ds.normalize(surrogate[s], dev)), t_logits[s].to(dev), p.temperature)
        loss = p.lambda_1 * loss_m + p.lambda_2 * loss_td
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc_batch = (model.head(z).argmax(1) == y).float().mean()
        return {"loss/forget": loss_m.detach(), "loss/retain": loss_td.detach(), "loss/total": loss.detach(),
                "acc/forget_batch": acc_batch}

    return run_loop(ctx, p, step, math.ceil(n / p.batch_size), evaluate or evaluate_forget)


def _surrogate_or_fail(ctx: Context) -> torch.Tensor:
    if ctx.surrogate is None or len(ctx.surrogate) == 0:
        raise ScarlabError("SCAR needs surrogate (out-of-distribution) images: pass --surrogate "
                           "(imagefolder:PATH, sample_images, sample_edges, gaussian_noise or auto)")
    return ctx.surrogate


@register_method("scar", ScarParams, needs=("forget", "surrogate"))
def scar(ctx: Context, p: ScarParams):
    """SCAR: Mahalanobis feature migration of the forget set + distillation on surrogate images; no retain set."""
    surrogate = _surrogate_or_fail(ctx)
    t_logits = _teacher_logits(ctx, surrogate)
    if ctx.scenario == "CR":
        surrogate, t_logits = filter_surrogate_cr(surrogate, t_logits, ctx.forget_classes)
        if len(surrogate) == 0:
            raise ScarlabError("every surrogate image is predicted as a forgotten class, so none is left to "
                               "distil on; use a larger or different surrogate set")
    return _scar(ctx, p, ctx.forget.images, ctx.forget.labels, surrogate, t_logits)


@register_method("scar_self", ScarParams, needs=("surrogate",))
def scar_self(ctx: Context, p: ScarParams):
    """SCAR-self (CR): no retain and no forget data; surrogate images the original predicts as a forgotten
    class play the forget set, the rest are distilled."""
    if ctx.scenario != "CR":
        raise ScarlabError("scar_self is defined for class removal only (--scenario CR)")
    surrogate = _surrogate_or_fail(ctx)
    t_logits = _teacher_logits(ctx, surrogate)
    pred = t_logits.argmax(1)
    is_forget = torch.isin(pred, torch.tensor(ctx.forget_classes))
    if not is_forget.any():
        raise ScarlabError("no surrogate image is predicted as a forgotten class, so SCAR-self has nothing to "
                           "forget; use a larger or different surrogate set")
    forget_images, forget_labels = surrogate[is_forget], pred[is_forget]
    retain_images, t_keep = filter_surrogate_cr(surrogate, t_logits, ctx.forget_classes)
    if len(retain_images) == 0:
        raise ScarlabError("every surrogate image is predicted as a forgotten class, so none is left to "
                           "distil on; use a larger or different surrogate set")
    evaluate = lambda: forget_accuracy(ctx, forget_images, forget_labels)  # noqa: E731 — watched by the stop rule
    return _scar(ctx, p, forget_images, forget_labels, retain_images, t_keep, evaluate)
