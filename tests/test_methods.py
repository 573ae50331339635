"""Every registered unlearning method, run for real on digits (CR, class 0) through the `unlearn` stage.

Each must lower the forget-test accuracy of the original by at least ``MARGIN`` (absolute) and write the
common trace: history.csv with step and loss columns, snapshots at step 0 and at the last step, a complete
manifest. Methods that need the retain set are refused up front when it is marked unavailable; the others
are run with ``retain_available=False`` to show they never need it.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from scarlab.config import UnlearnConfig
from scarlab.errors import ScarlabError
from scarlab.runs import RunDir
from scarlab.unlearn import METHODS
from scarlab.unlearn.base import BatchCycler, Context, methods_without_retain, requires_retain
from scarlab.unlearn.stage import run_unlearn

ALL_METHODS = sorted(METHODS)
FORGET_CLASS = 0
# Thresholds from `python bench/bench_digits.py --classes 0 --epochs 8 --original-seed 0 --seeds 0 1 2 3 4
# --threads 1 2 --methods <all ten> --name methods_c0_e8_o0` (this file's setting: the 8-epoch seed-0 original, CR
# class 0; BENCHMARKS §4 "Every method on digits, seeds × threads"). Original forget-test 0.98.
MARGIN = 0.3  # forget-test must fall at least this far below the original's (limit ≈ 0.68)
# Worst forget-test over those 10 runs per method: scar, scar_self, bad_teacher, scrub 0.00, random_labels 0.02,
# negative_gradient 0.20, duck 0.27, finetune 0.33: the limit is ≥ 0.35 away. Worst retain-test: random_labels 0.867
# (limit 0.5).
CHAOTIC = ("salun", "ssd")
"""Methods whose single-run outcome on digits at their reference defaults is decided by float summation order:
SalUn forget-test 0.00-0.87 and SSD 0.00-0.89 across seeds 0-4 × 1 and 2 threads (seed 3 flips for both, SalUn's
seed 1 half-way; on another machine SalUn at seed 0 gave 0.867 where this one gives 0.04). For them the stable statement is over seeds: see
test_chaotic_methods_forget_on_average_over_seeds."""
CHAOTIC_SEEDS = (0, 1, 2, 3, 4)
CHAOTIC_MARGIN = 0.15  # mean forget-test over CHAOTIC_SEEDS at least this far below the original's (limit ≈ 0.83)
_RUNS: dict[tuple[str, int], RunDir] = {}


def _run(method: str, root, original, retrained, seed: int = 0, **params) -> RunDir:
    """Run ``method`` once per session and seed (cached); retain-free methods run with the retain set unavailable."""
    if (method, seed) not in _RUNS:
        cfg = UnlearnConfig(original=str(original), retrained=str(retrained), split=str(retrained), method=method,
                            device="cpu", params=params, snapshot_every=1000, seed=seed)  # snapshots: first + last
        _RUNS[method, seed] = run_unlearn(cfg, root / f"m_{method}_s{seed}", progress=False,
                                          retain_available=requires_retain(method))
    return _RUNS[method, seed]


@pytest.fixture(scope="session")
def original_forget_test_acc(digits_original) -> float:
    from scarlab.data import load_dataset
    from scarlab.features import accuracy_on
    from scarlab.models import load_checkpoint

    ds = load_dataset("digits")
    model = load_checkpoint(RunDir(digits_original).file("checkpoints/model.pt"))
    m = ds.test.labels == FORGET_CLASS
    return accuracy_on(model, ds, ds.test.images[m], ds.test.labels[m])


def test_every_baseline_is_registered():
    expected = {"scar", "scar_self", "finetune", "negative_gradient", "random_labels", "duck", "scrub",
                "bad_teacher", "ssd", "salun"}
    assert expected <= set(METHODS)
    assert {"scar", "scar_self", "negative_gradient", "random_labels"} <= set(methods_without_retain())
    for name in ("finetune", "duck", "scrub", "bad_teacher", "ssd", "salun"):
        assert requires_retain(name), name
    for name, spec in METHODS.items():
        assert spec.summary, f"{name} has no docstring summary"
        assert spec.params.__doc__, f"{name}'s Params has no docstring"


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_forgets_and_writes_trace(method, request, runs_root, digits_original, digits_retrained,
                                         original_forget_test_acc):
    if method == "scar":  # the shared session fixture (default settings, snapshot every 5 steps)
        run = RunDir(request.getfixturevalue("digits_scar"))
    else:
        run = _run(method, runs_root, digits_original, digits_retrained)
    assert run.status == "complete"
    metrics = run.metrics
    assert original_forget_test_acc > 0.9
    if method not in CHAOTIC:  # one run of a chaotic method proves nothing either way (CHAOTIC)
        assert metrics["acc/forget_test"] <= original_forget_test_acc - MARGIN, metrics
        assert metrics["acc/retain_test"] > 0.5, metrics  # not a collapsed model (the loosest keeps 0.87)

    # history.csv: a step column, namespaced losses, finite, steps never going back
    with run.file("history.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "step" in rows[0]
    loss_cols = [c for c in rows[0] if c.startswith("loss/")]
    assert loss_cols, f"no loss/ column in {list(rows[0])}"
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == metrics["steps"] >= 1
    losses = [float(r[c]) for r in rows for c in loss_cols if r[c] not in ("", None)]
    assert losses and all(math.isfinite(v) for v in losses)
    assert any(r.get("acc/forget_train") not in ("", None) for r in rows)

    # snapshots at step 0 and at the last step, with the probe arrays
    first = run.load_arrays("features/step_000000.npz")
    last = run.load_arrays(f"features/step_{metrics['steps']:06d}.npz")
    for snap in (first, last):
        p = len(snap["labels"])
        assert p > 0
        assert snap["features"].shape == (p, 128)  # tinycnn: 4 x width 32
        assert snap["logits"].shape == (p, 10)
        for key in ("preds", "group", "index", "targets", "dist_own", "dist_target"):
            assert snap[key].shape == (p,), key
        assert set(np.unique(snap["group"])) == {0, 1, 2}
    assert np.array_equal(first["index"], last["index"])


@pytest.mark.parametrize("method", CHAOTIC)
def test_chaotic_methods_forget_on_average_over_seeds(method, runs_root, digits_original, digits_retrained,
                                                      original_forget_test_acc):
    """SalUn and SSD at their reference defaults (CHAOTIC): over seeds 0-4 the mean forget-test falls well below the
    original's, and the models do not collapse. Measured (bench command at the top): mean forget-test 0.227 / 0.271
    (SalUn, 1 / 2 threads) and 0.178 / 0.160 (SSD) against the limit ≈ 0.83; it fails only if nearly every seed
    flips. Retain-test ≥ 0.978 in every run."""
    runs = [_run(method, runs_root, digits_original, digits_retrained, seed=s) for s in CHAOTIC_SEEDS]
    forget = [r.metrics["acc/forget_test"] for r in runs]
    retain = [r.metrics["acc/retain_test"] for r in runs]
    assert np.mean(forget) <= original_forget_test_acc - CHAOTIC_MARGIN, forget
    assert np.mean(retain) > 0.8 and min(retain) > 0.5, retain  # measured ≥ 0.978 per run


def test_retain_methods_refused_without_retain(tmp_path, digits_original, digits_retrained):
    needing = [m for m in ALL_METHODS if requires_retain(m)]
    assert needing
    for method in needing:
        for via_cfg in (False, True):
            out = tmp_path / f"{method}_{via_cfg}"
            cfg = UnlearnConfig(original=str(digits_original), split=str(digits_retrained), method=method,
                                device="cpu", retain_available=not via_cfg)
            with pytest.raises(ScarlabError) as err:
                run_unlearn(cfg, out, progress=False, retain_available=via_cfg)
            msg = str(err.value)
            assert "\n" not in msg and repr(method) in msg and "scar, scar_self" in msg
            assert not out.exists()


def test_ssd_logs_one_step_and_salun_changes_only_salient_weights(runs_root, digits_original, digits_retrained):
    ssd = _run("ssd", runs_root, digits_original, digits_retrained)
    hist = ssd.history()
    assert ssd.metrics["steps"] == 1 and 0 < hist["ssd/selected"].dropna().iloc[0] < 0.5

    salun = _run("salun", runs_root, digits_original, digits_retrained)
    before = torch.load(RunDir(digits_original).file("checkpoints/model.pt"), weights_only=True)["state_dict"]
    after = torch.load(salun.file("checkpoints/model.pt"), weights_only=True)["state_dict"]
    params = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    changed = sum(int((before[k] != after[k]).sum()) for k in params)
    total = sum(before[k].numel() for k in params)
    assert 0 < changed <= 0.5 * total + 1  # mask_fraction 0.5: at most half of the weights may move


def test_random_labels_and_batch_cycler():
    from scarlab.unlearn.random_labels import random_labels

    class _DS:
        num_classes = 10

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(10, (4000,), generator=g)
    cr = Context(model=None, teacher=None, ds=_DS(), forget=None, scenario="CR", forget_classes=[0, 3],
                 tracer=None, generator=g)
    out = random_labels(labels, cr)
    assert not torch.isin(out, torch.tensor([0, 3])).any() and len(out.unique()) == 8
    out = random_labels(labels, cr, exclude_forgotten=False)  # SalUn: every class, the forgotten ones too
    assert len(out.unique()) == 10
    hr = Context(model=None, teacher=None, ds=_DS(), forget=None, scenario="HR", forget_classes=[], tracer=None,
                 generator=g)
    out = random_labels(labels, hr)
    # HR, as the reference: uniform over all classes, the true one included (~1/K of the draws)
    assert len(out.unique()) == 10 and 0.07 < float((out == labels).float().mean()) < 0.13

    cyc = BatchCycler(10, 4, g)
    one_pass = torch.cat([cyc.next() for _ in range(cyc.steps_per_pass())])
    assert cyc.steps_per_pass() == 3 and sorted(one_pass.tolist()) == list(range(10))
    assert len(cyc.next()) == 4  # the next pass starts with a fresh permutation


# ----------------------------------------------------------------------------- reference defaults (issue 14)
def test_baseline_defaults_follow_the_references():
    """SCAR.md "Baselines as their reference implementations run them", at the generic (cifar10) defaults."""
    p = {m: METHODS[m].make_params({}, "cifar10") for m in ALL_METHODS}
    for m in ("finetune", "negative_gradient", "random_labels", "duck", "scrub", "bad_teacher", "salun"):
        assert p[m].bn_train is True, m  # every reference updates batch-norm statistics
    assert not hasattr(p["ssd"], "bn_train")  # SSD: eval mode only
    assert p["finetune"].stop is False and p["finetune"].schedule == "cosine"
    assert p["negative_gradient"].loss_cap is None and p["negative_gradient"].max_grad_norm == 0
    s = p["scrub"]
    assert (s.kl_weight, s.ce_weight, s.lr, s.weight_decay, s.epochs, s.msteps, s.batch_size, s.schedule,
            s.max_grad_norm, s.lr_decay_epochs) == (0.001, 0.99, 5e-4, 5e-4, 3, 2, 32, "step", 0, "2")
    d = p["duck"]
    assert (d.lambda_retain, d.batch_size, d.centroid_batches, d.label_smoothing) == (5.0, 1024, 10, 0.0)
    assert METHODS["duck"].make_params({}, "tinyimagenet").label_smoothing == 0.2
    assert METHODS["duck"].make_params({}, "imagefolder:x").label_smoothing == 0.0  # generic defaults
    assert (p["ssd"].alpha, p["ssd"].dampening, p["ssd"].batch_size) == (10.0, 1.0, 64)
    assert p["salun"].lr == 0.013


def test_scheduled_lr():
    from scarlab.unlearn.base import OptimParams, scheduled_lr

    cos = OptimParams(lr=0.1, epochs=4, schedule="cosine")
    assert scheduled_lr(cos, 0) == pytest.approx(0.1) and scheduled_lr(cos, 2) == pytest.approx(0.05)
    assert scheduled_lr(cos, 3, 0.999) < 1e-4
    step = OptimParams(lr=0.1, schedule="step", lr_decay_epochs="2, 4", lr_decay=0.1)
    assert [scheduled_lr(step, e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    with pytest.raises(ScarlabError):
        scheduled_lr(OptimParams(schedule="linear"), 0)
    for bad in ({"schedule": "linear"}, {"lr_decay_epochs": "two"}, {"optimizer": "rmsprop"}):
        with pytest.raises(ScarlabError):  # refused up front, before any run directory
            METHODS["scrub"].make_params(bad, "cifar10")


def _bn_stats(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def test_bn_statistics_update_except_ssd(runs_root, digits_original, digits_retrained):
    original = RunDir(digits_original).file("checkpoints/model.pt")
    before = _bn_stats(torch.load(original, weights_only=True)["state_dict"])
    assert before
    for method in ("finetune", "ssd"):
        run = _run(method, runs_root, digits_original, digits_retrained)
        after = _bn_stats(torch.load(run.file("checkpoints/model.pt"), weights_only=True)["state_dict"])
        same = all(torch.equal(before[k], after[k]) for k in before)
        assert same == (method == "ssd"), method  # SSD runs in eval mode; the others in train mode


def test_reference_schedules_in_the_trace(runs_root, digits_original, digits_retrained):
    """FineTune runs every epoch on a cosine; SCRUB has max-steps in epochs 1-2 and a decayed rate in 3;
    SalUn makes a forget pass, then a separate retain pass, each epoch."""
    ft = _run("finetune", runs_root, digits_original, digits_retrained).history()
    steps = ft.dropna(subset=["opt/lr"])
    assert steps["epoch"].max() == METHODS["finetune"].make_params({}, "digits").epochs  # no early stop
    assert steps["opt/lr"].is_monotonic_decreasing and steps["opt/lr"].iloc[-1] < 0.05 * steps["opt/lr"].iloc[0]

    sc = _run("scrub", runs_root, digits_original, digits_retrained).history().dropna(subset=["phase/max"])
    assert set(sc.loc[sc["phase/max"] == 1, "epoch"]) == {1, 2}
    lr = sc.groupby("epoch")["opt/lr"].first()
    if 3 in lr.index:  # not stopped before the third epoch
        assert lr[3] == pytest.approx(0.1 * lr[1])

    sa = _run("salun", runs_root, digits_original, digits_retrained).history()
    ep1 = sa[(sa["epoch"] == 1) & (sa["loss/forget"].notna() | sa["loss/retain"].notna())]
    is_forget = ep1["loss/forget"].notna().tolist()
    assert is_forget[0] and not is_forget[-1] and is_forget == sorted(is_forget, reverse=True)
    assert not (ep1["loss/forget"].notna() & ep1["loss/retain"].notna()).any()


def _digits_ctx(scenario="CR", seed=0) -> Context:
    """A library-level Context on digits (forget class 0): random-init tinycnn student and teacher, no run dir."""
    from scarlab.data import ImageSet, load_dataset
    from scarlab.models import create_model
    from scarlab.trace import Tracer

    ds = load_dataset("digits")
    torch.manual_seed(seed)
    model = create_model("tinycnn", num_classes=10, in_channels=1, image_size=8)
    f = ds.train.labels == FORGET_CLASS
    ctx = Context(model=model, teacher=create_model("tinycnn", num_classes=10, in_channels=1, image_size=8).eval(),
                  ds=ds, forget=ImageSet(ds.train.images[f], ds.train.labels[f]), scenario=scenario,
                  forget_classes=[FORGET_CLASS], tracer=Tracer(ds), generator=torch.Generator().manual_seed(seed),
                  retain=ImageSet(ds.train.images[~f], ds.train.labels[~f]))
    return ctx


def test_negative_gradient_is_plain_ascent_by_default():
    """One full-batch step equals θ + lr·∇CE (train mode); the optional cap and clipping change it."""
    import torch.nn.functional as F

    def one_step(**kw):
        ctx = _digits_ctx()
        with torch.no_grad():
            ctx.model.fc.weight.mul_(50)  # confident, often wrong: large losses and gradients
        start = {k: v.clone() for k, v in ctx.model.state_dict().items()}
        p = METHODS["negative_gradient"].params(epochs=1, batch_size=10_000, optimizer="sgd", lr=0.01, stop=False,
                                                **kw)
        METHODS["negative_gradient"].fn(ctx, p)
        return ctx, start, ctx.model.state_dict()

    ctx, start, got = one_step()
    ref = _digits_ctx().model
    ref.load_state_dict(start)
    ref.train()
    ce = F.cross_entropy(ref(ctx.ds.normalize(ctx.forget.images)), ctx.forget.labels)
    assert ce > 2 * math.log(10)  # the old default cap would have bitten
    grads = torch.autograd.grad(ce, list(ref.parameters()))
    assert torch.cat([g.flatten() for g in grads]).norm() > 1.0  # and so would the old clipping
    for (name, q), g in zip(ref.named_parameters(), grads):
        assert torch.allclose(got[name], q.detach() + 0.01 * g, atol=1e-6), name
    _, _, bounded = one_step(loss_cap=2 * math.log(10), max_grad_norm=1.0)
    assert not all(torch.allclose(bounded[n], got[n], atol=1e-6) for n, _ in ref.named_parameters())


def test_bad_teacher_kl_is_divided_by_the_number_of_classes():
    import torch.nn.functional as F
    from scarlab.unlearn.bad_teacher import bad_teacher_loss

    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(8, 10, generator=g), F.log_softmax(torch.randn(8, 10, generator=g), 1)
    loss, per_sample = bad_teacher_loss(logits, target, 2.0)
    kl = F.kl_div(F.log_softmax(logits / 2.0, 1), target, log_target=True, reduction="batchmean")
    assert loss == pytest.approx(float(kl) / 10) and per_sample.mean() == pytest.approx(float(kl))


def test_duck_targets_are_fixed_after_the_first_epoch():
    targets = {}
    for epochs in (1, 3):
        ctx = _digits_ctx(seed=1)
        ctx.teacher.load_state_dict(ctx.model.state_dict())
        p = METHODS["duck"].params(epochs=epochs, stop=False, lr=5e-3, retain_batch_size=128, centroid_batches=2)
        METHODS["duck"].fn(ctx, p)
        targets[epochs] = torch.as_tensor(ctx.tracer.recorded_targets)
        n = len(ctx.forget)
        steps = [r for r in ctx.tracer.rows if "loss/total" in r]
        assert len(steps) == epochs * (p.retain_batches + 1)  # one forget batch (all 0s) per epoch
    assert len(targets[1]) == n and (targets[1] >= 0).all() and (targets[1] != FORGET_CLASS).all()
    assert torch.equal(targets[1], targets[3])  # chosen in epoch 1, then kept
