"""SCAR and SCAR-self: hand-checked maths, the no-retain guarantee, bad input, and real digits runs."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from scarlab.config import UnlearnConfig
from scarlab.data import ImageSet, load_dataset
from scarlab.errors import ScarlabError
from scarlab.models import load_checkpoint
from scarlab.runs import RunDir
from scarlab.stats import ClassStats, Metric, class_stats, correlation, shrink, tukey
from scarlab.trace import Tracer
from scarlab.unlearn import METHODS, Context
from scarlab.unlearn.scar import ScarParams, filter_surrogate_cr
from scarlab.unlearn.stage import run_unlearn


# ----------------------------------------------------------------------------- maths against hand computations
def test_shrinkage_matches_hand_computation():
    cov = torch.tensor([[4.0, 1.0, 0.0], [1.0, 2.0, -1.0], [0.0, -1.0, 3.0]], dtype=torch.float64)
    # mean(diag) = 3, mean(offdiag) = (1 + 0 + 1 - 1 + 0 - 1) / 6 = 0
    assert torch.allclose(shrink(cov, 3, 3), cov + 9 * torch.eye(3, dtype=torch.float64))
    cov2 = torch.tensor([[2.0, 1.0], [1.0, 4.0]], dtype=torch.float64)
    # mean(diag) = 3, mean(offdiag) = 1 -> + 2*3 on the diagonal, + 5*1 off it
    expected = torch.tensor([[8.0, 6.0], [6.0, 10.0]], dtype=torch.float64)
    assert torch.allclose(shrink(cov2, 2, 5), expected)
    corr = correlation(expected)
    assert torch.allclose(corr, torch.tensor([[1.0, 6 / np.sqrt(80)], [6 / np.sqrt(80), 1.0]], dtype=torch.float64))


def test_distance_matches_explicit_formula():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(40, 6, generator=g)
    labels = torch.arange(40) % 3
    stats = class_stats(feats, labels, 3, delta=0.5)
    metric = stats.metric(3.0, 3.0)
    x = torch.rand(5, 6, generator=g)
    got = metric.distances(x)
    for b in range(5):
        xh = np.sqrt(x[b].double().numpy())
        xh /= np.linalg.norm(xh)
        for c in range(3):
            z = np.sqrt(feats[labels == c].double().numpy())
            cov = np.cov(z.T)
            for _ in range(2):  # shrink twice, by hand
                d = cov.shape[0]
                v1, v2 = np.mean(np.diag(cov)), (cov.sum() - np.trace(cov)) / (d * d - d)
                cov = cov + 3 * v1 * np.eye(d) + 3 * v2 * (1 - np.eye(d))
            sd = np.sqrt(np.diag(cov))
            prec = np.linalg.pinv(cov / np.outer(sd, sd))
            mu = z.mean(0) / np.linalg.norm(z.mean(0))
            expected = (xh - mu) @ prec @ (xh - mu)
            assert got[b, c].item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_target_is_never_own_class_nor_a_forgotten_one():
    g = torch.Generator().manual_seed(1)
    feats = torch.rand(200, 8, generator=g)
    labels = torch.arange(200) % 5
    metric = class_stats(feats, labels, 5).metric()
    dist = metric.distances(feats)
    targets = metric.targets(dist, labels, excluded=[2])
    assert (targets != labels).all()
    assert (targets != 2).all()
    # and it is the closest allowed class
    d = dist.clone()
    d[torch.arange(200), labels] = float("inf")
    d[:, 2] = float("inf")
    assert torch.equal(targets, d.argmin(1))


def test_cr_filter_drops_forget_predictions_and_floors_their_logit():
    images = torch.arange(4).view(4, 1, 1, 1).to(torch.uint8)
    logits = torch.tensor([[5.0, 1.0, 0.0], [0.0, 4.0, -2.0], [1.0, 0.5, 3.0], [2.0, 9.0, 1.0]])
    kept_images, kept = filter_surrogate_cr(images, logits, [1])
    assert kept_images.flatten().tolist() == [0, 2]  # images 1 and 3 are predicted as class 1
    assert torch.equal(kept, torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.5, 3.0]]))


def test_tukey_refuses_negative_features_unless_signed():
    with pytest.raises(ScarlabError, match="negative features"):
        tukey(torch.tensor([[1.0, -0.5]]), model_name="mynet")
    assert torch.allclose(tukey(torch.tensor([[4.0, -4.0]]), signed=True), torch.tensor([[2.0, -2.0]]))


# ----------------------------------------------------------------------------- the no-retain guarantee
class _Untouchable:
    """A retain source that fails the moment anything reads it."""

    def __getattr__(self, name):
        raise AssertionError(f"retain data was read ({name})")

    def __len__(self):
        raise AssertionError("retain data was read (len)")


def _context(run_path, method="scar", surrogate=None, **kw):
    run = RunDir(run_path)
    ds = load_dataset("digits")
    teacher = load_checkpoint(run.file("checkpoints/model.pt")).eval().requires_grad_(False)
    forget = ds.train.labels == 0
    from scarlab.data import load_surrogate
    return Context(model=copy.deepcopy(teacher).requires_grad_(True), teacher=teacher, ds=ds,
                   forget=ImageSet(ds.train.images[forget], ds.train.labels[forget]), scenario="CR",
                   forget_classes=[0], tracer=Tracer(ds), retain=_Untouchable(),
                   surrogate=load_surrogate("auto", ds, size=500) if surrogate is None else surrogate,
                   metric=ClassStats.load(run.file("stats.npz")).metric(), original_test_acc=0.98, **kw)


@pytest.mark.parametrize("method", ["scar", "scar_self"])
def test_scar_never_reads_the_retain_set(digits_original, method):
    ctx = _context(digits_original)
    METHODS[method].fn(ctx, ScarParams(epochs=2, batch_size=64, lr=1e-3, stop=False))
    assert ctx.tracer.rows, "the method logged no step"
    assert "retain" not in METHODS[method].needs


# ----------------------------------------------------------------------------- bad input
def test_missing_class_statistics_is_a_clear_error(digits_original):
    ctx = _context(digits_original)
    ctx.metric = None
    with pytest.raises(ScarlabError, match="scarlab stats"):
        METHODS["scar"].fn(ctx, ScarParams(epochs=1))


def test_surrogate_empty_after_cr_filter_is_a_clear_error(digits_original):
    ds = load_dataset("digits")
    zeros = ds.train.images[ds.train.labels == 0][:50]  # real digits of the forgotten class: all filtered out
    ctx = _context(digits_original, surrogate=zeros)
    with pytest.raises(ScarlabError, match="larger or different surrogate"):
        METHODS["scar"].fn(ctx, ScarParams(epochs=1))


def test_nan_loss_marks_the_run_failed_and_keeps_the_trace(digits_original, tmp_path):
    cfg = UnlearnConfig(original=str(digits_original), method="scar", forget_classes=[0], device="cpu",
                        params={"lambda_2": float("nan"), "epochs": 2, "batch_size": 32})
    with pytest.raises(ScarlabError, match="became nan"):
        run_unlearn(cfg, tmp_path / "nan", progress=False)
    manifest = json.loads((tmp_path / "nan" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "nan" in manifest["error"]
    assert (tmp_path / "nan" / "history.csv").read_text().count("\n") >= 2  # header + the failing step
    assert (tmp_path / "nan" / "features" / "step_000000.npz").is_file()


def test_negative_features_name_the_model(digits_original):
    ctx = _context(digits_original)
    ctx.model_name = "negnet"
    body = ctx.model.body
    ctx.model.body = torch.nn.Sequential(body, torch.nn.Identity())
    ctx.model.body.append(_Shift())
    with pytest.raises(ScarlabError, match="negnet produced negative features"):
        METHODS["scar"].fn(ctx, ScarParams(epochs=1))


class _Shift(torch.nn.Module):
    def forward(self, x):
        return x - 10.0


# ----------------------------------------------------------------------------- real runs on digits
def test_scar_forgets_a_digit_and_keeps_the_rest(digits_scar, digits_original):
    m, orig = RunDir(digits_scar).metrics, RunDir(digits_original).metrics
    assert RunDir(digits_scar).status == "complete"
    assert m["acc/forget_test"] <= 0.05
    assert m["acc/retain_test"] >= orig["acc/test"] - 0.05
    hist = RunDir(digits_scar).history()
    assert {"loss/forget", "loss/retain", "acc/forget_train", "dist/own", "dist/target"} <= set(hist.columns)
    snaps = sorted((digits_scar / "features").glob("step_*.npz"))
    assert len(snaps) >= 2
    with np.load(snaps[0]) as first, np.load(snaps[-1]) as last:
        forget = first["group"] == 0
        assert (first["targets"][forget] != first["labels"][forget]).all()
        # the mechanism: forget features end closer to their target class than they started
        assert last["dist_target"][forget].mean() < first["dist_target"][forget].mean()
    targets = np.load(digits_scar / "trace" / "targets.npz")
    assert len(targets["targets"]) == len(targets["forget_idx"]) and (targets["targets"] != 0).all()


def test_scar_self_lowers_forget_accuracy(digits_original, digits_retrained, runs_root):
    cfg = UnlearnConfig(original=str(digits_original), split=str(digits_retrained), method="scar_self",
                        device="cpu")
    run = run_unlearn(cfg, runs_root / "digits_scar_self_cr0", progress=False)
    m, orig = run.metrics, RunDir(digits_retrained).metrics
    assert m["acc/forget_test"] <= 0.5
    assert m["acc/retain_test"] >= orig["acc/retain_test"] - 0.15


def test_faithful_and_fast_paths_agree_on_the_outcome(digits_original, tmp_path):
    out = {}
    for faithful in (False, True):
        cfg = UnlearnConfig(original=str(digits_original), method="scar", forget_classes=[0], device="cpu",
                            params={"eval_every_step": faithful})
        out[faithful] = run_unlearn(cfg, tmp_path / str(faithful), progress=False).metrics
    assert out[True]["acc/forget_test"] <= 0.05 and out[False]["acc/forget_test"] <= 0.05
    assert out[True]["steps"] <= out[False]["steps"]  # per-step checks stop at the first step that qualifies
