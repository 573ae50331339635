"""The interface every unlearning method shares, its registry, and the step loop most methods reuse.

A method is a function ``fn(ctx: Context, params: <its Params dataclass>) -> model``. It declares which
data it reads (``needs``: forget / retain / surrogate); the stage gives it nothing else (``ctx.retain`` is
None unless the method needs it). It also declares, at registration, the class statistics it reads
(``stats``: how its parameters ask for them), how its parameters change when the retain set is withheld
(``without_retain``) and whether it records a target class per forget sample (``targets``): the generic stage
reads these declarations and never probes a method's parameters. The frozen original (``ctx.teacher``) is
passed in explicitly and no state survives between calls. Progress goes to ``ctx.tracer`` (history rows,
feature snapshots and, for ``targets`` methods, :meth:`Tracer.record_targets`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Callable

import torch
import torch.nn as nn

from ..config import bounded
from ..data import Dataset, ImageSet
from ..errors import ScarlabError, choose
from ..features import predict
from ..schema import check_bounds
from ..stats import MahalanobisDistance
from ..trace import Tracer

NEEDS = ("forget", "retain", "surrogate")


@dataclass
class Params:
    """Options every method has (each method's Params subclasses this)."""

    epochs: int = 10
    """maximum passes over the method's main data."""
    lr: float = 1e-3
    """learning rate."""
    batch_size: int = 128
    """mini-batch size."""
    stop: bool = True
    """apply the paper's stopping rule (from the third epoch on, 0-based epoch index ≥ 2: CR stops once forget
    accuracy < 1 %; HR once it is below the original test accuracy − 0.015)."""
    stop_check: str = "epoch"
    """when forget accuracy is measured for the stopping rule: 'step' (the whole forget set after every optimiser
    step, the SCAR authors' way) or 'epoch' (once per epoch; cheaper)."""

    def validate(self) -> None:
        """Refuse values that would silently run nothing or something else (called before any run directory exists)."""
        check_bounds(self)
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ScarlabError(f"{name} must be a whole number ≥ 1 (got {v!r})")
        if not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and self.lr > 0
                and math.isfinite(self.lr)):
            raise ScarlabError(f"lr must be a positive number (got {self.lr!r})")
        if not isinstance(self.stop, bool):
            raise ScarlabError(f"stop must be true or false (got {self.stop!r})")
        choose("stop_check", self.stop_check, ("step", "epoch"))


@dataclass
class Context:
    """Everything a method may read. Images are uint8 [N, C, H, W]; normalise with ``ds.normalize``."""

    model: nn.Module
    teacher: nn.Module
    ds: Dataset
    forget: ImageSet | None
    scenario: str
    forget_classes: list[int]
    tracer: Tracer
    device: str = "cpu"
    generator: torch.Generator = dataclasses.field(default_factory=torch.Generator)
    retain: ImageSet | None = None
    surrogate: torch.Tensor | None = None
    metric: MahalanobisDistance | None = None
    original_test_acc: float = float("nan")
    model_name: str = "the model"

    @property
    def num_classes(self) -> int:
        return self.ds.num_classes


@dataclass(frozen=True)
class StatsRequest:
    """The class statistics a method reads as ``ctx.metric``, as its parameters ask for them."""

    source: str = "training"
    """'training': the original run's stats.npz (every training sample, stored at training time); 'retain': the
    stage computes them from the retain set's features (CR: one augmented view each) once, before unlearning, and
    saves them as the run's stats.npz."""
    signed: bool = False
    """sign-preserving Tukey transform (features may be negative)."""
    gamma1: float = 3.0
    """covariance shrinkage of the diagonal."""
    gamma2: float = 3.0
    """covariance shrinkage of the off-diagonal."""
    shrink_times: int = 2
    """how often the shrinkage is applied."""


@dataclass
class MethodSpec:
    name: str
    fn: Callable
    params: type
    needs: frozenset
    summary: str
    stats: Callable[[Params], StatsRequest] | None = None
    """how the method's parameters ask for class statistics; None: it reads none (the stage still traces the
    distances with the original's stored statistics when there are any)."""
    without_retain: Callable[[Params], Params] | None = None
    """the parameters a run gets when the retain set is withheld (e.g. SCAR: statistics from training time);
    None: unchanged."""
    targets: bool = False
    """the method records its target class per forget sample with ``ctx.tracer.record_targets`` (the stage saves
    them as trace/targets.npz)."""

    def make_params(self, overrides: dict | None = None, dataset: str | None = None):
        """Params from, in order: the class's defaults, the data set's (``DATASET_DEFAULTS``), a named preset
        (``PRESETS``, chosen by the ``preset`` override) and the user's overrides; validated."""
        valid = {f.name for f in fields(self.params)}
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ScarlabError(f"unknown parameter(s) {', '.join(unknown)} for method {self.name!r}; "
                               f"valid: {', '.join(sorted(valid))}")
        base = dict(self.dataset_defaults(dataset))
        presets = getattr(self.params, "PRESETS", {})
        preset = overrides.get("preset")
        if preset is not None:
            choose(f"preset for {self.name}", preset, presets)
            base.update(presets[preset])
        try:
            params = self.params(**{**base, **overrides})
        except TypeError as e:
            raise ScarlabError(f"method {self.name!r}: {e}") from None
        params.validate()
        return params

    def variant(self, params: dict, dataset: str | None) -> dict:
        """The parameters of a run that differ from this method's effective defaults on ``dataset``: recorded in
        the run's config.json as ``variant``, which names it (``scarlab.results.describe`` only reads it)."""
        defaults = self.make_params({}, dataset)
        return {f.name: params[f.name] for f in fields(defaults)  # in declaration order: one label per variant
                if f.name in params and params[f.name] != getattr(defaults, f.name)}

    def dataset_defaults(self, dataset: str | None) -> dict:
        """The per-data-set defaults that apply to ``dataset`` ({} = the generic defaults)."""
        return getattr(self.params, "DATASET_DEFAULTS", {}).get(dataset, {})

    def defaults_source(self, dataset: str | None) -> str:
        """Which defaults a run on ``dataset`` starts from: the data set's name, or 'generic'."""
        return dataset if dataset in getattr(self.params, "DATASET_DEFAULTS", {}) else "generic"


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, params: type, needs: tuple[str, ...], *,
                    stats: Callable[[Params], StatsRequest] | None = None,
                    without_retain: Callable[[Params], Params] | None = None, targets: bool = False):
    """Register ``fn`` as unlearning method ``name``; its docstring's first line is its summary. ``needs``, ``stats``,
    ``without_retain`` and ``targets`` declare what the stage gives it and keeps from it (see :class:`MethodSpec`)."""
    bad = set(needs) - set(NEEDS)
    assert not bad, f"unknown needs {bad}"

    def wrap(fn):
        METHODS[name] = MethodSpec(name, fn, params, frozenset(needs), (fn.__doc__ or "").strip().split("\n")[0],
                                   stats, without_retain, bool(targets))
        return fn
    return wrap


# ----------------------------------------------------------------------------- shared helpers
def set_train_mode(model: nn.Module, bn_train: bool = False) -> None:
    """Train mode, but keep batch-norm statistics frozen unless asked: unlearning batches (forget-only or
    out-of-distribution images) would otherwise overwrite the running statistics of the original model."""
    model.train()
    if not bn_train:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def forget_accuracy(ctx: Context, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                    per_class: bool = False):
    """Accuracy on the forget set (or given images); with ``per_class`` also {class: accuracy}."""
    images = ctx.forget.images if images is None else images
    labels = ctx.forget.labels if labels is None else labels
    preds = predict(ctx.model, ctx.ds, images, ctx.device)
    correct = preds == labels
    acc = float(correct.float().mean()) if len(labels) else float("nan")
    if not per_class:
        return acc
    return acc, {int(c): float(correct[labels == c].float().mean()) for c in labels.unique()}


def should_stop(ctx: Context, forget_acc: float, epoch: int) -> bool:
    """The paper's stopping rules (the SCAR paper's stopping rule); ``epoch`` is the 0-based index of the epoch in which the
    accuracy was measured, and no stop is allowed before the third epoch (index 2)."""
    if epoch < 2:
        return False
    if ctx.scenario == "CR":
        return forget_acc < 0.01
    return not math.isnan(ctx.original_test_acc) and forget_acc < ctx.original_test_acc - 0.015


def run_loop(ctx: Context, params: Params, step_fn: Callable[[int, int], dict],
             steps_per_epoch: int | Callable[[int], int],
             evaluate: Callable[[], float] | None = None) -> nn.Module:
    """Drive ``step_fn(epoch, i) -> scalars`` (it performs one optimiser step) for up to ``params.epochs``.

    ``steps_per_epoch`` is an int or a function ``epoch -> int`` (0-based epoch).

    Handles step counting, history rows, snapshots, NaN detection, forget-accuracy evaluation (after every step
    with ``stop_check='step'``, else once per epoch) and the stopping rule. ``evaluate`` returns the accuracy the
    stopping rule watches (default: the forget set).
    """
    evaluate = evaluate or (lambda: forget_accuracy(ctx))
    every_step = params.stop_check == "step"
    tracer, step = ctx.tracer, 0
    tracer.snapshot(0, ctx.model, force=True)
    stopped = False
    for epoch in range(params.epochs):
        # an int, or a function of the epoch for schedules whose epochs differ in length (SCRUB's max-steps)
        n_steps = steps_per_epoch(epoch) if callable(steps_per_epoch) else steps_per_epoch
        for i in range(n_steps):
            scalars = step_fn(epoch, i)
            step += 1
            scalars = {k: float(v) for k, v in scalars.items()}
            row = {"epoch": epoch + 1, **scalars}
            if every_step:
                row["acc/forget_train"] = evaluate()
            tracer.log(step, **row)
            bad = [k for k, v in scalars.items() if not math.isfinite(v)]
            if bad:
                raise ScarlabError(f"{bad[0]} became {scalars[bad[0]]} at step {step} (epoch {epoch + 1}); "
                                   "the trace so far is kept — lower --lr or the loss weights")
            tracer.snapshot(step, ctx.model)
            if every_step and params.stop and should_stop(ctx, row["acc/forget_train"], epoch):
                stopped = True
                break
        if stopped:
            break
        if not every_step:
            acc = evaluate()
            tracer.log(step, epoch=epoch + 1, **{"acc/forget_train": acc})
            if params.stop and should_stop(ctx, acc, epoch):
                break
    tracer.snapshot(step, ctx.model, force=True)
    tracer.last_step = step
    return ctx.model


# ----------------------------------------------------------------------------- helpers shared by the baselines
def requires_retain(spec: "MethodSpec | str") -> bool:
    """Whether a method (spec or registered name) reads the retain set during unlearning."""
    spec = METHODS[spec] if isinstance(spec, str) else spec
    return "retain" in spec.needs


def methods_without_retain() -> list[str]:
    """Registered methods that never touch the retain set (usable when it is unavailable), in registry order."""
    return [name for name, spec in METHODS.items() if not requires_retain(spec)]


def check_retain(method: str, retain_available: bool = True,
                 withheld: str = "which is marked unavailable (retain_available=False)") -> None:
    """Raise a clear error when ``method`` is unknown, or needs the retain set and it is withheld (``withheld``
    says by what, in the caller's words)."""
    choose("method", method, METHODS)
    if not retain_available and requires_retain(method):
        raise ScarlabError(f"method {method!r} needs the retain set, {withheld}; methods that work without it: "
                           f"{', '.join(methods_without_retain())}")


@dataclass
class OptimParams(Params):
    """Options of the gradient-based baselines, on top of :class:`Params`."""

    optimizer: str = "sgd"
    """'sgd' (with the momentum below) or 'adam'."""
    momentum: float = bounded(0.9, low=0)
    """SGD momentum (Adam ignores it)."""
    weight_decay: float = bounded(0.0, low=0)
    """L2 penalty."""
    bn_train: bool = True
    """update batch-norm running statistics during unlearning, as every reference implementation does (the
    student runs in train mode); off: keep the original's statistics."""
    schedule: str = "constant"
    """learning-rate schedule over the epochs: 'constant', 'step' (× ``lr_decay`` at the start of each epoch in
    ``lr_decay_epochs``) or 'cosine' (from ``lr`` to 0 over ``epochs``, updated every step)."""
    lr_decay_epochs: str = ""
    """comma-separated 0-based epochs (e.g. "2" or "3,5") at whose start 'step' multiplies the rate by
    ``lr_decay`` (a string, so it passes through ``--set`` and the manifest unchanged)."""
    lr_decay: float = 0.1
    """factor of each 'step' decay."""

    def validate(self) -> None:
        super().validate()
        choose("optimizer", self.optimizer, ("sgd", "adam"))
        choose("schedule", self.schedule, ("constant", "step", "cosine"))
        decay_milestones(self.lr_decay_epochs)


def decay_milestones(text: str) -> list[int]:
    """``"2, 4"`` -> [2, 4] (0-based epochs); a one-line error on anything else."""
    try:
        return [int(e) for e in str(text).replace(" ", "").split(",") if e]
    except ValueError:
        raise ScarlabError("lr_decay_epochs must be comma-separated whole numbers, e.g. 2 or 3,5 "
                           f"(got {text!r})") from None


def make_optimizer(parameters, p: OptimParams, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """SGD (momentum ``p.momentum``) or Adam at ``p.lr``; ``weight_decay`` overrides ``p.weight_decay``."""
    wd = p.weight_decay if weight_decay is None else weight_decay
    if p.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=p.lr, momentum=p.momentum, weight_decay=wd)
    if p.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=p.lr, weight_decay=wd)
    raise ScarlabError(f"unknown optimizer {p.optimizer!r}; valid choices: sgd, adam")


def scheduled_lr(p: OptimParams, epoch: int, frac: float = 0.0) -> float:
    """The learning rate of ``p.schedule`` at 0-based ``epoch`` plus ``frac`` (in [0, 1)) of it."""
    if p.schedule == "constant":
        return p.lr
    if p.schedule == "step":
        return p.lr * p.lr_decay ** sum(epoch >= e for e in decay_milestones(p.lr_decay_epochs))
    if p.schedule == "cosine":
        return 0.5 * p.lr * (1 + math.cos(math.pi * min(1.0, (epoch + frac) / max(1, p.epochs))))
    raise ScarlabError(f"unknown schedule {p.schedule!r}; valid choices: constant, step, cosine")


def set_lr(opt: torch.optim.Optimizer, p: OptimParams, epoch: int, frac: float = 0.0) -> float:
    """Set every parameter group's rate to ``scheduled_lr``; call before each step. Returns the rate."""
    lr = scheduled_lr(p, epoch, frac)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


class BatchCycler:
    """Endless mini-batches of indices into ``range(n)``: consecutive chunks of a permutation, reshuffled after
    each full pass (the last chunk of a pass may be smaller). ``ceil(n / batch_size)`` calls make one pass, so a
    method can draw its main batches per epoch, or a retain batch per forget step, from the same helper."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if n < 1:
            raise ScarlabError("cannot draw batches from an empty set")
        self.n, self.k, self.g = n, max(1, int(batch_size)), generator
        self.order, self.pos = torch.randperm(n, generator=generator), 0

    def steps_per_pass(self) -> int:
        return math.ceil(self.n / self.k)

    def next(self) -> torch.Tensor:
        if self.pos >= self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.g), 0
        b = self.order[self.pos:self.pos + self.k]
        self.pos += self.k
        return b

    __next__ = next

    def __iter__(self):
        return self


def batch_on(ctx: Context, part: ImageSet, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and labels of ``part[idx]`` on ``ctx.device``."""
    return ctx.ds.normalize(part.images[idx], ctx.device), part.labels[idx].to(ctx.device)


def forget_set_loop(ctx: Context, p: OptimParams, loss_fn: Callable[[torch.Tensor, torch.Tensor], tuple],
                    max_grad_norm: float = 0.0):
    """The loop of methods that step on forget batches alone (NegativeGradient, RandomLabels): each step draws
    the next forget batch, ``loss_fn(logits, y) -> (loss, extra history scalars)``, one optimiser step (the
    gradient's global norm clipped to ``max_grad_norm`` when > 0), under ``run_loop``'s stopping rule."""
    model, forget = ctx.model, ctx.forget
    opt = make_optimizer(model.parameters(), p)
    cycler = BatchCycler(len(forget), p.batch_size, ctx.generator)
    n = cycler.steps_per_pass()

    def step(epoch: int, i: int) -> dict:
        set_lr(opt, p, epoch, i / n)
        set_train_mode(model, p.bn_train)
        x, y = batch_on(ctx, forget, cycler.next())  # x [B, C, H, W], y [B]
        logits = model(x)
        loss, extra = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        opt.step()
        return {"loss/total": loss.detach(), "acc/forget_batch": (logits.detach().argmax(1) == y).float().mean(),
                **extra}

    return run_loop(ctx, p, step, n)
