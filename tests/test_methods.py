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
MARGIN = 0.3  # forget-test accuracy must fall at least this far below the original's (every method reaches ~0)
FORGET_CLASS = 0
_RUNS: dict[str, RunDir] = {}


def _run(method: str, root, original, retrained, **params) -> RunDir:
    """Run ``method`` once per session (cached); retain-free methods run with the retain set unavailable."""
    if method not in _RUNS:
        cfg = UnlearnConfig(original=str(original), retrained=str(retrained), split=str(retrained), method=method,
                            device="cpu", params=params, snapshot_every=1000)  # snapshots: first + last only
        _RUNS[method] = run_unlearn(cfg, root / f"m_{method}", progress=False,
                                    retain_available=requires_retain(method))
    return _RUNS[method]


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
    assert metrics["acc/forget_test"] <= original_forget_test_acc - MARGIN, metrics
    assert metrics["acc/retain_test"] > 0.5, metrics  # not a collapsed model (the loosest baseline keeps ~0.8)

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
    from scarlab.unlearn.random_labels import random_other_labels

    class _DS:
        num_classes = 10

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(10, (4000,), generator=g)
    cr = Context(model=None, teacher=None, ds=_DS(), forget=None, scenario="CR", forget_classes=[0, 3],
                 tracer=None, generator=g)
    out = random_other_labels(labels, cr)
    assert not torch.isin(out, torch.tensor([0, 3])).any() and len(out.unique()) == 8
    hr = Context(model=None, teacher=None, ds=_DS(), forget=None, scenario="HR", forget_classes=[], tracer=None,
                 generator=g)
    out = random_other_labels(labels, hr)
    assert (out != labels).all() and out.min() >= 0 and out.max() <= 9

    cyc = BatchCycler(10, 4, g)
    one_pass = torch.cat([cyc.next() for _ in range(cyc.steps_per_pass())])
    assert cyc.steps_per_pass() == 3 and sorted(one_pass.tolist()) == list(range(10))
    assert len(cyc.next()) == 4  # the next pass starts with a fresh permutation
