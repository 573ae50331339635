"""scarlab.metrics on constructed cases whose answers are known by hand or by construction."""
import math
import time

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from uncertainties import UFloat, ufloat

from scarlab.metrics import (accuracy, attack_chance, aus_cr, aus_from_metrics, aus_hr, aus_with_uncertainty,
                             cheap_mia, confusion_matrix, mean_std, mia_loss_lr, mia_svc, paper_mia_draw,
                             paper_mia_sets, per_class_accuracy, per_sample_loss, privacy_score, split_accuracies)
from scarlab.metrics import mia as mia_module
from scarlab.metrics.mia import SVC_GRID, _svc_grid_predict

K = 10
CHANCE_TOL = 0.08  # attack accuracy on identically distributed sets of ~600 must lie in 0.5 ± 0.08 (≈ 5 sigma)
# The paper's SVC attack on identically distributed pools (HR: 600 forget rows, 1000 test rows -> 500:500 per
# repeat, 5 repeats). Measured over 40 seeds (data seeds 100-139, attack seeds 0-39): accuracy 0.4999 ± 0.0171,
# |ΔF1| mean 1.3, max 4.8. A tolerance of 6 points is ≈ 3.5 sigma.
HR_DELTA_F1_TOL = 6.0
# CR 3:1 (500 forget-class train rows capped at 300, 100 test rows): the SVC learns the majority class; over the
# same 40 seeds accuracy was 0.745-0.750 against chance 0.75.
CR_CHANCE_TOL = 0.03


def softmax_rows(rng, n, strength):
    """[n, K] softmax of Gaussian logits with the true class boosted by `strength`, and the [n] labels."""
    labels = rng.integers(0, K, n)
    z = rng.normal(size=(n, K))
    z[np.arange(n), labels] += strength
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), labels


def separable_sets(rng, n):
    """Members: ~one-hot on the true class; non-members: near-uniform rows. Any attack should nail these."""
    return softmax_rows(rng, n, 12.0), softmax_rows(rng, n, 0.0)


# ------------------------------------------------------------------------------------------ accuracy

def test_accuracy_basic_and_empty():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


def test_confusion_and_per_class_match_hand_count():
    preds = [0, 1, 1, 2, 2, 2, 0]
    labels = [0, 1, 2, 2, 2, 0, 0]
    # (true, pred) pairs: (0,0) (1,1) (2,1) (2,2) (2,2) (0,2) (0,0); class 3 never occurs
    expected = np.array([[2, 0, 1, 0],
                         [0, 1, 0, 0],
                         [0, 1, 2, 0],
                         [0, 0, 0, 0]])
    cm = confusion_matrix(preds, labels, 4)
    np.testing.assert_array_equal(cm, expected)
    assert np.issubdtype(cm.dtype, np.integer)
    pca = per_class_accuracy(preds, labels, 4)
    np.testing.assert_allclose(pca[:3], [2 / 3, 1.0, 2 / 3])
    assert math.isnan(pca[3])
    with pytest.raises(ValueError):
        confusion_matrix([0, 4], [0, 1], 4)


def test_split_accuracies_cr():
    # train: 4 forget samples (2 right), 6 retain samples (6 right)
    labels_train = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3])
    preds_train = np.array([0, 1, 0, 2, 1, 1, 2, 2, 3, 3])
    forget_train = labels_train == 0
    # test: 2 forget-class samples (0 right), 4 others (3 right)
    labels_test = np.array([0, 0, 1, 2, 3, 3])
    preds_test = np.array([1, 2, 1, 2, 3, 0])
    out = split_accuracies(preds_train, labels_train, forget_train, preds_test, labels_test, labels_test == 0, "CR")
    assert out == pytest.approx({"acc/forget_train": 0.5, "acc/retain_train": 1.0, "acc/forget_test": 0.0,
                                 "acc/retain_test": 0.75, "acc/test": 0.5})


def test_split_accuracies_hr():
    labels_train = np.array([0, 1, 2, 3, 0, 1])
    preds_train = np.array([0, 1, 0, 3, 1, 0])
    forget_train = np.array([True, True, True, False, False, False])  # forget: 2/3 right, retain: 1/3 right
    labels_test = np.array([0, 1, 2, 3])
    preds_test = np.array([0, 1, 2, 0])
    out = split_accuracies(preds_train, labels_train, forget_train, preds_test, labels_test,
                           np.zeros(4, bool), "HR")
    assert out["acc/forget_train"] == pytest.approx(2 / 3)
    assert out["acc/retain_train"] == pytest.approx(1 / 3)
    assert math.isnan(out["acc/forget_test"])
    assert out["acc/retain_test"] == out["acc/test"] == 0.75
    with pytest.raises(ValueError):
        split_accuracies(preds_train, labels_train, forget_train, preds_test, labels_test,
                         np.array([True, False, False, False]), "HR")


# ------------------------------------------------------------------------------------------ AUS

def test_aus_hand_values():
    assert aus_cr(0.9, 0.85, 0.1) == pytest.approx((1 - 0.05) / 1.1)  # 0.863636...
    assert aus_hr(0.9, 0.85, 0.7) == pytest.approx((1 - 0.05) / 1.15)  # |0.7 − 0.85| = 0.15 -> 0.826087...
    assert aus_hr(0.9, 0.85, 0.95) == pytest.approx((1 - 0.05) / 1.1)  # |a_f − a_t| is symmetric
    # the paper's CIFAR-100 CR table (a_or = 77.55 %): Retrained 1.004, SCAR 0.935
    assert aus_cr(0.7755, 0.7797, 0.0) == pytest.approx(1.0042)
    assert aus_cr(0.7755, 0.7293, 0.02) == pytest.approx(0.9538 / 1.02)
    assert round(aus_cr(0.7755, 0.7293, 0.02), 3) == 0.935


def test_aus_from_metrics_picks_scenario_keys():
    m = {"acc/retain_test": 0.85, "acc/forget_test": 0.1, "acc/test": 0.85, "acc/forget_train": 0.7}
    assert aus_from_metrics(m, 0.9, "CR") == pytest.approx(0.95 / 1.1)
    assert aus_from_metrics(m, 0.9, "HR") == pytest.approx(0.95 / 1.15)


def test_mean_std():
    u = mean_std([0.84, 0.85, 0.86])
    assert u.nominal_value == pytest.approx(0.85) and u.std_dev == pytest.approx(0.01)  # ddof=1
    one = mean_std([0.7])
    assert one.nominal_value == 0.7 and one.std_dev == 0.0


def test_aus_type_follows_input():
    assert isinstance(aus_cr(0.9, 0.85, 0.1), float)
    assert isinstance(aus_cr(ufloat(0.9, 0.01), 0.85, 0.1), UFloat)


def test_aus_uncertainty_matches_hand_propagation_cr():
    a_or, a_t, a_f = [0.88, 0.90], [0.84, 0.85, 0.86], [0.08, 0.12]
    # means 0.89, 0.85, 0.10; sample stds 0.02/√2, 0.01, 0.04/√2
    s_or, s_t, s_f = 0.02 / math.sqrt(2), 0.01, 0.04 / math.sqrt(2)
    num, den = 1 - 0.89 + 0.85, 1 + 0.10  # AUS = num / den, a_f > 0 so |a_f| = a_f
    d_or, d_t, d_f = -1 / den, 1 / den, -num / den**2  # ∂AUS/∂a_or, ∂a_t, ∂a_f
    sigma = math.sqrt((d_or * s_or) ** 2 + (d_t * s_t) ** 2 + (d_f * s_f) ** 2)
    got = aus_with_uncertainty(a_or, a_t, a_f, "CR")
    assert got.nominal_value == pytest.approx(0.96 / 1.1)
    assert got.std_dev == pytest.approx(sigma)
    assert got.std_dev == pytest.approx(0.027414, abs=1e-6)  # the same, evaluated by hand


def test_aus_uncertainty_matches_hand_propagation_hr():
    a_or, a_t, a_f = 0.9, [0.84, 0.86], [0.68, 0.72]  # a_or a single value: std 0
    s_t, s_f = 0.02 / math.sqrt(2), 0.04 / math.sqrt(2)
    # a_f < a_t, so AUS = (1 − a_or + a_t) / (1 + a_t − a_f) = num / den
    num, den = 1 - 0.9 + 0.85, 1 + 0.85 - 0.70
    d_t = 1 / den - num / den**2  # a_t sits in both numerator and denominator
    d_f = num / den**2
    got = aus_with_uncertainty(a_or, a_t, a_f, "HR")
    assert got.nominal_value == pytest.approx(0.95 / 1.15)
    assert got.std_dev == pytest.approx(math.sqrt((d_t * s_t) ** 2 + (d_f * s_f) ** 2))


# ------------------------------------------------------------------------------------------ MIA

def test_per_sample_loss_clips():
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(per_sample_loss(probs, [0, 1]), [math.log(2), -math.log(1e-12)])


def test_paper_mia_sets_caps():
    rng = np.random.default_rng(0)
    train, test = rng.random((500, K)), rng.random((100, K))
    m, nm = paper_mia_sets(train, test, "CR", seed=1)  # CR: members capped at 3× the non-members, all non-members
    assert m.shape == (300, K) and len(nm) == 100
    np.testing.assert_array_equal(nm, test)
    m2, _ = paper_mia_sets(train, test, "CR", seed=1)
    np.testing.assert_array_equal(m, m2)
    m, nm = paper_mia_sets(train, test, "HR", seed=1)  # HR: half of the test set, as many members (1:1)
    assert len(m) == len(nm) == 50
    assert len(np.unique(nm, axis=0)) == 50 and all(any((r == test).all(1)) for r in nm)
    m, nm = paper_mia_sets(train[:30], test, "HR")  # forget set smaller than the half: kept whole, still 1:1
    assert len(m) == len(nm) == 30
    np.testing.assert_array_equal(m, train[:30])
    with pytest.raises(Exception, match="scenario"):
        paper_mia_sets(train, test, "XX")


def test_paper_mia_draw_is_one_to_one_and_redrawn_each_repeat():
    rng = np.random.default_rng(0)
    draws = [paper_mia_draw(400, 1000, "HR", rng) for _ in range(5)]
    for m, nm in draws:
        assert len(m) == len(nm) == 400  # 1:1: the half (500 test samples) cut to the 400 forget samples
        assert len(np.unique(m)) == 400 and len(np.unique(nm)) == 400 and nm.max() < 1000
    draws = [paper_mia_draw(1200, 1000, "HR", rng) for _ in range(5)]
    for m, nm in draws:
        assert len(m) == len(nm) == 500 and m.max() < 1200  # half the test set; members subsampled to it
    members = [frozenset(m) for m, _ in draws]
    halves = [frozenset(nm) for _, nm in draws]
    assert len(set(members)) == 5 and len(set(halves)) == 5  # every repeat sees other members and another half
    assert len(frozenset().union(*members)) > 900 and len(frozenset().union(*halves)) > 900  # not one fixed subset
    cr = [paper_mia_draw(500, 100, "CR", rng) for _ in range(5)]
    assert all(len(m) == 300 and len(nm) == 100 for m, nm in cr)  # 3:1
    assert len({frozenset(m) for m, _ in cr}) == 5  # CR members re-drawn too; non-members are all of them
    m, nm = paper_mia_draw(200, 100, "CR", rng)
    assert len(m) == 200  # below the cap: every forget-class train sample


def test_mia_svc_redraws_sets_every_repeat(monkeypatch):
    """An instrumented run: the attack asks for a fresh draw per repeat and trains on 1:1 HR sets."""
    seen = []

    def spy(*args):
        m, nm = paper_mia_draw(*args)
        seen.append((m, nm))
        return m, nm

    monkeypatch.setattr(mia_module, "paper_mia_draw", spy)
    rng = np.random.default_rng(4)
    (m, _), (nm, _) = softmax_rows(rng, 80, 3.0), softmax_rows(rng, 120, 3.0)
    out = mia_svc(m, nm, scenario="HR", n_repeats=4, seed=0, n_jobs=1)
    assert len(seen) == 4
    assert all(len(a) == len(b) == 60 for a, b in seen)  # half of 120 test rows, as many of the 80 members
    assert len({frozenset(a) for a, _ in seen}) == 4 and len({frozenset(b) for _, b in seen}) == 4
    assert out["mia/svc/n_members"] == out["mia/svc/n_non_members"] == 60 and out["mia/svc/chance"] == 0.5


def test_svc_grid_matches_gridsearchcv():
    rng = np.random.default_rng(3)
    (a, _), (b, _) = softmax_rows(rng, 150, 4.0), softmax_rows(rng, 150, 2.5)
    x, y = np.vstack([a, b]), np.r_[np.ones(150, int), np.zeros(150, int)]
    perm = rng.permutation(300)
    tr, te = perm[:240], perm[240:]
    ref = GridSearchCV(SVC(kernel="rbf"), SVC_GRID, cv=3).fit(x[tr], y[tr]).predict(x[te])
    assert np.mean(_svc_grid_predict(x[tr], y[tr], x[te]) == ref) >= 0.98  # equal up to rounding at the margin


def test_mia_svc_separable():
    rng = np.random.default_rng(0)
    (m, _), (nm, _) = separable_sets(rng, 200)
    out = mia_svc(m, nm)  # sets as given (balanced)
    assert out["mia/svc/acc"] >= 0.95 and out["mia/svc/member_f1"] >= 0.95 and out["mia/svc/chance"] == 0.5
    assert out["mia/svc/delta_f1"] == pytest.approx(abs(out["mia/svc/acc"] * 100 - 50))  # on micro-F1 = accuracy
    assert out["mia/svc/delta_f1"] >= 45
    assert set(out) == {f"mia/svc/{k}" for k in ("acc", "acc_std", "chance", "delta_f1", "member_f1", "precision",
                                                 "recall", "n_members", "n_non_members")}
    for scenario, (n_m, n_nm) in (("HR", (300, 400)), ("CR", (400, 100))):
        (m, _), (nm, _) = separable_sets(rng, max(n_m, n_nm))
        out = mia_svc(m[:n_m], nm[:n_nm], scenario=scenario)
        assert out["mia/svc/acc"] >= 0.95, scenario  # a clearly separable pair reads ≈ 1 in both protocols


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mia_svc_same_distribution_hr_is_chance(seed):
    """HR: forget and test rows from one distribution: accuracy ≈ chance 0.5 and the paper's ΔF1 ≈ 0."""
    rng = np.random.default_rng(100 + seed)
    m, nm = softmax_rows(rng, 600, 3.0)[0], softmax_rows(rng, 1000, 3.0)[0]
    out = mia_svc(m, nm, scenario="HR", seed=seed)
    assert out["mia/svc/n_members"] == out["mia/svc/n_non_members"] == 500 and out["mia/svc/chance"] == 0.5
    assert abs(out["mia/svc/delta_f1"]) < HR_DELTA_F1_TOL, out
    assert out["mia/svc/delta_f1"] == pytest.approx(abs(out["mia/svc/acc"] * 100 - 50))


@pytest.mark.parametrize("seed", [0, 1])
def test_mia_svc_same_distribution_cr_is_majority_chance(seed):
    """CR 3:1 from one distribution: accuracy ≈ chance = 0.75 (the majority fraction), not leakage."""
    rng = np.random.default_rng(100 + seed)
    m, nm = softmax_rows(rng, 500, 3.0)[0], softmax_rows(rng, 100, 3.0)[0]
    out = mia_svc(m, nm, scenario="CR", seed=seed)
    assert (out["mia/svc/n_members"], out["mia/svc/n_non_members"]) == (300, 100)
    assert out["mia/svc/chance"] == pytest.approx(0.75)
    assert abs(out["mia/svc/acc"] - out["mia/svc/chance"]) <= CR_CHANCE_TOL, out


def test_mia_svc_is_reproducible_and_thread_independent():
    rng = np.random.default_rng(2)
    (m, _), (nm, _) = softmax_rows(rng, 60, 4.0), softmax_rows(rng, 80, 2.0)
    assert mia_svc(m, nm, seed=5, n_jobs=1) == mia_svc(m, nm, seed=5, n_jobs=4)
    assert mia_svc(m, nm, scenario="HR", seed=5, n_jobs=1) == mia_svc(m, nm, scenario="HR", seed=5, n_jobs=4)
    assert math.isnan(mia_svc(m[:3], nm)["mia/svc/acc"])  # too few members
    assert math.isnan(mia_svc(m, nm[:8], scenario="HR")["mia/svc/chance"])  # half of 8 test rows: too few


def test_attack_chance():
    got = attack_chance({"mia/svc/acc": 0.8, "mia/svc/chance": 0.75, "mia/loss_lr/acc": 0.6, "aus": 0.9})
    assert got == {"mia/svc/acc": 0.75, "mia/loss_lr/acc": 0.5}
    assert math.isnan(attack_chance({"mia/svc/acc": 0.5})["mia/svc/acc"])


def test_mia_loss_lr_separable_and_identical():
    rng = np.random.default_rng(0)
    sep = mia_loss_lr(rng.uniform(0, 0.1, 1000), rng.uniform(1, 3, 300))  # unequal sizes: balanced first
    assert sep["mia/loss_lr/acc"] >= 0.95 and sep["mia/loss_lr/auc"] >= 0.95
    same = mia_loss_lr(rng.exponential(0.5, 600), rng.exponential(0.5, 600))
    assert abs(same["mia/loss_lr/acc"] - 0.5) <= CHANCE_TOL
    assert set(same) == {"mia/loss_lr/acc", "mia/loss_lr/acc_std", "mia/loss_lr/auc"}


def test_cheap_mia_values_and_speed():
    rng = np.random.default_rng(0)
    (m, ym), (nm, yn) = separable_sets(rng, 500)
    sep = cheap_mia(m, nm, ym, yn)
    assert sep["mia/loss_lr/acc"] >= 0.95 and sep["mia/conf_thr/acc"] >= 0.95
    (m, ym), (nm, yn) = softmax_rows(rng, 500, 3.0), softmax_rows(rng, 500, 3.0)
    t = time.perf_counter()
    same = cheap_mia(m, nm, ym, yn)
    # cheap enough to run on every snapshot (~0.05 s idle); loose bound: CI machines are shared and noisy
    assert time.perf_counter() - t < 2.0
    assert abs(same["mia/loss_lr/acc"] - 0.5) <= CHANCE_TOL
    assert abs(same["mia/conf_thr/acc"] - 0.5) <= CHANCE_TOL  # in-sample best threshold: a little above 0.5


# ------------------------------------------------------------------------------------------ privacy score

def test_privacy_score_same_distribution_is_near_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 1000)

    def model_probs():  # a "model" whose outputs on the forget samples come from one fixed distribution
        z = rng.normal(size=(1000, K))
        z[np.arange(1000), labels] += 2.0
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    out = privacy_score(model_probs(), model_probs(), labels)
    assert out["privacy/score"] >= 0.85  # tolerance for sampling noise; exactly 1 needs ε = 0
    assert out["privacy/eps"] == max(out["privacy/eps_entropy"], out["privacy/eps_confidence"])


def test_privacy_score_separable_is_low():
    rng = np.random.default_rng(0)
    unlearned, labels = softmax_rows(rng, 1000, 12.0)
    retrained = np.full((1000, K), 1 / K)  # confidence 0.1 everywhere vs ~1 for the unlearned model
    out = privacy_score(unlearned, retrained, labels)
    assert out["privacy/score"] < 0.3
    # ε_max by hand: zero errors have Clopper–Pearson upper bound u = 1 − 0.05^(1/n); ε = log((1 − u) / u)
    u = 1 - 0.05 ** (1 / 1000)
    assert out["privacy/eps_max"] == pytest.approx(math.log((1 - u) / u))
    assert out["privacy/eps_confidence"] == pytest.approx(out["privacy/eps_max"])
