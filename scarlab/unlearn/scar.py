"""SCAR and SCAR-self (Bonato et al., ECCV 2024): unlearning with no retain set during unlearning.

Loss = λ1·L_M + λ2·L_TD. L_M pulls each forget sample's features, by Mahalanobis distance, to the closest
other class's distribution (its *target*). L_TD distils the frozen original (teacher) on out-of-distribution
surrogate images. The defaults follow the authors' training loop (README §Methods): every forget batch gets
``steps_per_forget_batch`` Adam steps, each with the next surrogate batch; the student's batch-norm is in train
mode; targets are chosen at the first step on each forget batch of the first epoch; the stopping rule is checked
after every step. Each place where scarlab can differ is a named parameter; ``preset='scarlab-fast'`` selects
the cheaper loop scarlab used before (one step per forget batch on a 5× surrogate batch, frozen batch-norm,
targets from the original, one check per epoch).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import bounded
from ..errors import ScarlabError, choose
from ..features import extract
from .base import Context, Params, StatsRequest, forget_accuracy, register_method, run_loop, set_train_mode

_FAST = {"bn_mode": "frozen", "stop_check": "epoch", "stats_source": "training", "min_logit": "image",
         "surrogate_augment": False, "surrogate_norm": "dataset"}


@dataclass
class _ScarCommon(Params):
    """Options SCAR and SCAR-self share; defaults are the paper's and the authors' code's."""

    epochs: int = 30
    """maximum passes over the forget set (SCAR-self: over the surrogate set)."""
    lr: float = 5e-4
    """Adam learning rate."""
    batch_size: int = 1024
    """forget samples per batch; also the surrogate batch size (SCAR-self: surrogate images per step)."""
    stop_check: str = "step"
    """when the stopping rule's forget accuracy is measured: 'step' (after every optimiser step, the authors') or
    'epoch' (once per epoch)."""
    stop_probe: int | None = None
    """measure that accuracy on a fixed random sample of this many forget images (None: the whole forget set,
    the authors'); a cheaper check for large forget sets."""
    weight_decay: float = bounded(0.0, low=0)
    """Adam weight decay."""
    temperature: float = 1.0
    """distillation temperature T; only the teacher's logits are divided by T (the authors' form)."""
    lambda_1: float = 1.0
    """weight of the Mahalanobis forget loss L_M."""
    lambda_2: float = 5.0
    """weight of the distillation retain loss L_TD."""
    gamma1: float = 3.0
    """covariance shrinkage of the diagonal."""
    gamma2: float = 3.0
    """covariance shrinkage of the off-diagonal (mean of the non-zero off-diagonal entries)."""
    shrink_times: int = 2
    """how often the shrinkage is applied (the authors: twice for SCAR, once for SCAR-self)."""
    bn_mode: str = "train"
    """student batch-norm during unlearning: 'train' (batch statistics, running statistics updated; the
    authors') or 'frozen' (the original's running statistics, never updated)."""
    stats_source: str = "retain"
    """class statistics: 'retain' (features of the retain set, CR: one augmented view each, computed once before
    unlearning; the authors') or 'training' (stats.npz stored with the original at training time, every training
    sample: no retain data is read at all). With the retain set marked unavailable, 'training' is used."""
    min_logit: str = "batch"
    """CR: the teacher's forgotten-class logits are lowered to the minimum logit of the whole distilled batch
    ('batch', the authors') or of each image ('image')."""
    surrogate_augment: bool = True
    """CR: random crop and flip each surrogate image every time it is drawn, and run the teacher on that view
    (the authors'); HR surrogates are never augmented (the balanced sampler needs fixed teacher labels)."""
    surrogate_norm: str = "own"
    """CR: normalise surrogate images with their own per-channel mean / std ('own', the authors') or with the
    data set's ('dataset'); HR uses the data set's."""
    signed_tukey: bool = False
    """allow negative features with a sign-preserving Tukey transform sign(x)|x|^δ (not in the paper)."""
    preset: str = "authors"
    """a named set of the options above: 'authors' (the defaults) or 'scarlab-fast' (scarlab's earlier, cheaper
    loop); options given explicitly win over the preset."""

    def validate(self) -> None:
        super().validate()
        choose("bn_mode", self.bn_mode, ("train", "frozen"))
        choose("stats_source", self.stats_source, ("retain", "training"))
        choose("min_logit", self.min_logit, ("batch", "image"))
        choose("surrogate_norm", self.surrogate_norm, ("own", "dataset"))
        for name in ("shrink_times",) + (("stop_probe",) if self.stop_probe is not None else ()):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "shrink_times" else 1):
                raise ScarlabError(f"{name} must be a whole number ≥ {0 if name == 'shrink_times' else 1} (got {v!r})")
        if not self.temperature > 0:
            raise ScarlabError(f"temperature must be positive (got {self.temperature!r})")


@dataclass
class ScarParams(_ScarCommon):
    """SCAR hyper-parameters (the paper's defaults: batch 1024, Adam 5e-4, up to 30 epochs, T=1, λ1=1, λ2=5)."""

    steps_per_forget_batch: int = 6
    """optimiser steps on each forget batch, each with the same forget batch and the next surrogate batch (the
    authors: surrogate batches + 1, i.e. 6 on CIFAR and 91 on Tiny-ImageNet)."""
    surrogate_batch_factor: int = 1
    """surrogate images per step, in multiples of batch_size (the authors: 1)."""
    target_timing: str = "first_step"
    """when each forget sample's target class is chosen: 'first_step' (at the first step on its forget batch in
    the first epoch, from the student's train-mode features; the authors') or 'before' (once, from the original
    model in eval mode); fixed afterwards either way."""
    hr_threshold: float = 0.8
    """HR: L_M of a sample is weighted by its class's current forget accuracy, and by 0 while that accuracy is
    below this threshold (0.4 on Tiny-ImageNet); the weights are recomputed whenever the accuracy is measured."""

    PRESETS = {"authors": {}, "scarlab-fast": {**_FAST, "steps_per_forget_batch": 1, "surrogate_batch_factor": 5,
                                               "target_timing": "before"}}
    # digits (not in the paper): 8×8 images, ~145 forget images per class; chosen by measurement (README §Methods).
    DATASET_DEFAULTS = {"digits": {"batch_size": 32, "lr": 1e-3},
                        "tinyimagenet": {"steps_per_forget_batch": 91, "hr_threshold": 0.4}}

    def validate(self) -> None:
        super().validate()
        choose("target_timing", self.target_timing, ("first_step", "before"))
        for name in ("steps_per_forget_batch", "surrogate_batch_factor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ScarlabError(f"{name} must be a whole number ≥ 1 (got {v!r})")


@dataclass
class ScarSelfParams(_ScarCommon):
    """SCAR-self hyper-parameters: one step per surrogate batch; covariance shrunk once (the authors')."""

    shrink_times: int = 1
    """how often the covariance shrinkage is applied (the authors: once for SCAR-self)."""
    self_stop: str = "forget_set"
    """what the stopping rule watches: 'forget_set' (the real forget set's accuracy, read for evaluation only;
    the authors') or 'surrogate' (the surrogate images the original predicts as a forgotten class: no forget
    data is read at all)."""

    PRESETS = {"authors": {}, "scarlab-fast": _FAST}
    DATASET_DEFAULTS = {"digits": {"batch_size": 32, "lr": 1e-3}}

    def validate(self) -> None:
        super().validate()
        choose("self_stop", self.self_stop, ("forget_set", "surrogate"))


# ----------------------------------------------------------------------------- pieces (pure, tested one by one)
def set_bn_mode(model: nn.Module, bn_mode: str) -> None:
    """Train mode; with ``bn_mode='frozen'`` the batch-norm layers stay in eval mode (running statistics kept)."""
    set_train_mode(model, bn_train=bn_mode == "train")


def filter_surrogate_cr(images: torch.Tensor, t_logits: torch.Tensor, forget_classes: list[int],
                        min_logit: str = "image"):
    """CR filter: drop surrogate images [B, ...] the teacher predicts as a forgotten class and lower the teacher's
    forgotten-class logits [B, K] to the minimum logit (of each image, or of the whole kept batch). Returns
    (images, logits) kept."""
    keep = ~torch.isin(t_logits.argmax(1), torch.tensor(forget_classes, device=t_logits.device))
    t = t_logits[keep].clone()
    if len(t):
        t[:, forget_classes] = t.min() if min_logit == "batch" else t.min(1, keepdim=True).values
    return images[keep], t


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) on log-softmax outputs, averaged over the batch; only the teacher's logits are
    divided by T (the authors' form, so T ≠ 1 also changes what the student is pulled to)."""
    return F.kl_div(F.log_softmax(student_logits, 1), F.log_softmax(teacher_logits / temperature, 1),
                    log_target=True, reduction="batchmean")


def hr_weights(per_class_acc: dict[int, float], threshold: float, num_classes: int) -> torch.Tensor:
    """HR weights of L_M per class [K]: the class's forget accuracy, or 0 while it is below ``threshold``."""
    w = torch.zeros(num_classes)
    for c, a in per_class_acc.items():
        w[c] = a if a >= threshold else 0.0
    return w


def balanced_weights(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sampling weight of each surrogate image [N] from the teacher's predicted labels [N]: 1 / (images predicted as
    its class), where a class with fewer than 3 predicted images counts as if it had 5."""
    counts = torch.bincount(pred, minlength=num_classes).float()
    counts = torch.where(counts < 3, torch.full_like(counts, 5.0), counts)
    return 1.0 / counts[pred]


class Surrogates:
    """The surrogate stream: ``draw(k)`` gives the next k images, normalised [k, C, H, W] on the device, and the
    teacher's logits on exactly those views [k, K]. CR: a reshuffled cycle, each image augmented per draw;
    HR: class-balanced by the teacher's label (fixed logits, no augmentation)."""

    def __init__(self, ctx: Context, p: _ScarCommon, images: torch.Tensor):
        self.ctx, self.images, self.g = ctx, images, ctx.generator
        cr = ctx.scenario == "CR"
        self.augment = cr and p.surrogate_augment
        if cr and p.surrogate_norm == "own":
            x = images.float().div_(255.0)
            self.mean, self.std = x.mean((0, 2, 3)), x.std((0, 2, 3)).clamp_min(1e-3)
        else:
            self.mean, self.std = torch.tensor(ctx.ds.mean), torch.tensor(ctx.ds.std)
        # the teacher on every unaugmented image: the logits used when not augmenting, the HR sampler's labels,
        # and the CR check that something is left to distil
        self.base_logits = self.teacher(self.normalize(images, "cpu")).cpu()
        if cr and torch.isin(self.base_logits.argmax(1), torch.tensor(ctx.forget_classes)).all():
            raise ScarlabError("every surrogate image is predicted as a forgotten class, so none is left to "
                               "distil on; use a larger or different surrogate set")
        self.weights = (balanced_weights(self.base_logits.argmax(1), ctx.num_classes)
                        if ctx.scenario == "HR" else None)
        self.order, self.pos = torch.randperm(len(images), generator=self.g), 0

    def normalize(self, images: torch.Tensor, device) -> torch.Tensor:
        x = images.to(device).float().div_(255.0)
        return (x - self.mean.to(x.device).view(1, -1, 1, 1)) / self.std.to(x.device).view(1, -1, 1, 1)

    @torch.no_grad()
    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, K] of normalised images [N, C, H, W], in batches of 512, on the device."""
        dev = self.ctx.device
        if not len(x):
            return torch.zeros(0, self.ctx.num_classes, device=dev)
        return torch.cat([model(x[i:i + 512].to(dev)) for i in range(0, len(x), 512)])

    def teacher(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.ctx.teacher, x)

    def indices(self, k: int) -> torch.Tensor:
        k = min(k, len(self.images))
        if self.weights is not None:
            return torch.multinomial(self.weights, k, replacement=True, generator=self.g)
        if self.pos + k > len(self.images):
            self.order, self.pos = torch.randperm(len(self.images), generator=self.g), 0
        self.pos += k
        return self.order[self.pos - k:self.pos]

    def draw(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices(k)
        imgs = self.images[idx]
        if self.augment:
            imgs = self.ctx.ds.augment(imgs, self.g)
        x = self.normalize(imgs, self.ctx.device)
        t = self.teacher(x) if self.augment else self.base_logits[idx].to(self.ctx.device)
        return x, t


def _require(ctx: Context, surrogate: bool = True) -> torch.Tensor | None:
    if ctx.metric is None:
        raise ScarlabError("SCAR needs class statistics; with stats_source=training they come from the original's "
                           "stats.npz (written by `scarlab train`, or recomputed with `scarlab stats RUN`)")
    if surrogate and (ctx.surrogate is None or len(ctx.surrogate) == 0):
        raise ScarlabError("SCAR needs surrogate (out-of-distribution) images: pass --surrogate "
                           "(imagefolder:PATH, sample_images, sample_edges, gaussian_noise or auto)")
    return ctx.surrogate


def _stats(p: _ScarCommon) -> StatsRequest:
    """The class statistics SCAR's parameters ask for (its L_M distance)."""
    return StatsRequest(p.stats_source, p.signed_tukey, p.gamma1, p.gamma2, p.shrink_times)


def _without_retain(p: _ScarCommon) -> _ScarCommon:
    """With the retain set withheld, SCAR's statistics come from the original's training time."""
    return dataclasses.replace(p, stats_source="training")


def _stop_set(ctx: Context, p: _ScarCommon, images: torch.Tensor, labels: torch.Tensor):
    """The images whose accuracy the stopping rule watches: all of them, or a fixed sample of ``stop_probe``."""
    if p.stop_probe is None or p.stop_probe >= len(labels):
        return images, labels
    pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:p.stop_probe].sort().values
    return images[pick], labels[pick]


# ----------------------------------------------------------------------------- SCAR
@register_method("scar", ScarParams, needs=("forget", "surrogate"), stats=_stats, without_retain=_without_retain,
                 targets=True)
def scar(ctx: Context, p: ScarParams):
    """SCAR: Mahalanobis feature migration of the forget set + distillation on surrogate images; no retain set."""
    surr = Surrogates(ctx, p, _require(ctx))
    model, dev, metric = ctx.model, ctx.device, ctx.metric
    images, labels = ctx.forget.images, ctx.forget.labels
    n, k, cr = len(labels), p.steps_per_forget_batch, ctx.scenario == "CR"
    excluded = ctx.forget_classes if cr else []
    n_batches = math.ceil(n / p.batch_size)
    targets = torch.full((n,), -1, dtype=torch.long)
    if p.target_timing == "before":
        with torch.no_grad():
            feats, _ = extract(ctx.teacher, ctx.ds, images, dev)
            targets = metric.targets(metric.distances(feats.to(dev), ctx.model_name), labels.to(dev), excluded).cpu()
    stop_images, stop_labels = _stop_set(ctx, p, images, labels)
    weights = torch.ones(ctx.num_classes)

    def evaluate() -> float:
        acc, per_class = forget_accuracy(ctx, stop_images, stop_labels, per_class=True)
        if not cr:
            weights.copy_(hr_weights(per_class, p.hr_threshold, ctx.num_classes))
        return acc

    if not cr:
        evaluate()  # the original's per-class forget accuracy weighs the first step
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    perm = {"order": None}

    def step(epoch: int, i: int) -> dict:
        b_i, j = divmod(i, k)
        if i == 0:
            perm["order"] = torch.randperm(n, generator=ctx.generator)
        b = perm["order"][b_i * p.batch_size:(b_i + 1) * p.batch_size]
        set_bn_mode(model, p.bn_mode)
        y = labels[b].to(dev)
        z = model.features(ctx.ds.normalize(images[b], dev))
        dist = metric.distances(z, ctx.model_name)
        if p.target_timing == "first_step" and epoch == 0 and j == 0:
            targets[b] = metric.targets(dist, y, excluded).cpu()
        d_target = dist.gather(1, targets[b].to(dev)[:, None]).squeeze(1)
        # HR: mean over the whole batch, switched-off classes included as zeros
        loss_m = d_target.mean() if cr else (weights.to(dev)[y] * d_target).mean()
        xs, ts = surr.draw(p.batch_size * p.surrogate_batch_factor)
        if cr:
            xs, ts = filter_surrogate_cr(xs, ts, ctx.forget_classes, p.min_logit)
        loss_td = distill_loss(model(xs), ts, p.temperature) if len(xs) else z.sum() * 0.0
        loss = p.lambda_1 * loss_m + p.lambda_2 * loss_td
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc_batch = (model.head(z).argmax(1) == y).float().mean()
        row = {"loss/forget": loss_m.detach(), "loss/retain": loss_td.detach(), "loss/total": loss.detach(),
               "acc/forget_batch": acc_batch, "forget_batch": epoch * n_batches + b_i + 1,
               "surrogate/distilled": len(xs)}
        if not cr:
            row["hr/classes_on"] = int((weights[labels.unique()] > 0).sum())
        return row

    model = run_loop(ctx, p, step, n_batches * k, evaluate)
    ctx.tracer.record_targets(targets.numpy())
    return model


# ----------------------------------------------------------------------------- SCAR-self
@register_method("scar_self", ScarSelfParams, needs=("forget", "surrogate"), stats=_stats,
                 without_retain=_without_retain)
def scar_self(ctx: Context, p: ScarSelfParams):
    """SCAR-self (CR): no retain data and no forget data to learn from; in each surrogate batch the images the
    original predicts as a forgotten class are forgotten and the rest distilled (the forget set is read only to
    evaluate the stopping rule, and not at all with self_stop='surrogate')."""
    if ctx.scenario != "CR":
        raise ScarlabError("scar_self is defined for class removal only (--scenario CR)")
    surr = Surrogates(ctx, p, _require(ctx))
    model, metric = ctx.model, ctx.metric
    forgotten = torch.tensor(ctx.forget_classes)
    base_logits = surr.base_logits
    self_forget = torch.isin(base_logits.argmax(1), forgotten)
    if not self_forget.any():
        raise ScarlabError(f"no surrogate image is predicted as a forgotten class ({ctx.forget_classes}), so "
                           "SCAR-self has nothing to forget; use a larger or different surrogate set")
    if p.self_stop == "surrogate":
        stop_images, stop_labels = surr.images[self_forget], base_logits.argmax(1)[self_forget]
    else:
        stop_images, stop_labels = _stop_set(ctx, p, ctx.forget.images, ctx.forget.labels)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)

    def evaluate() -> float:
        if p.self_stop == "surrogate":  # these images are normalised like the surrogates, not like the data set
            model.eval()
            pred = surr.logits(model, surr.normalize(stop_images, "cpu")).argmax(1).cpu()
            return float((pred == stop_labels).float().mean())
        return forget_accuracy(ctx, stop_images, stop_labels)

    def step(epoch: int, i: int) -> dict:
        set_bn_mode(model, p.bn_mode)
        x, t = surr.draw(p.batch_size)
        is_forget = torch.isin(t.argmax(1), forgotten.to(t.device))
        z = model.features(x)  # one forward: this batch's forget and distilled images together
        loss_m = z.sum() * 0.0
        if is_forget.any():
            yf = t[is_forget].argmax(1)
            dist = metric.distances(z[is_forget], ctx.model_name)
            loss_m = dist.gather(1, metric.targets(dist, yf, ctx.forget_classes)[:, None]).mean()
        _, t_keep = filter_surrogate_cr(x, t, ctx.forget_classes, p.min_logit)
        logits = model.head(z[~is_forget])
        loss_td = distill_loss(logits, t_keep, p.temperature) if len(t_keep) else z.sum() * 0.0
        loss = p.lambda_1 * loss_m + p.lambda_2 * loss_td
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss/forget": loss_m.detach(), "loss/retain": loss_td.detach(), "loss/total": loss.detach(),
                "self/forget_images": int(is_forget.sum()), "surrogate/distilled": len(t_keep)}

    return run_loop(ctx, p, step, math.ceil(len(surr.images) / p.batch_size), evaluate)
