"""scarlab.metrics.ulira on cases whose answers are known by hand (Clopper–Pearson, ε on 4 model pairs) or
analytically (ROC of the likelihood-ratio attack on Gaussian populations, computed with scipy.stats.norm)."""
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import beta, norm
from sklearn.metrics import roc_auc_score

from scarlab.errors import ScarlabError
from scarlab.metrics import ulira
from scarlab.metrics.ulira import (attack_roc, audit_scores, clopper_pearson, epsilon, epsilon_ceiling,
                                   epsilon_from_counts, example_auc, fit_populations, held_out_scores,
                                   likelihood_ratio, scaled_logit, tpr_at_fpr)

# Estimator vs the analytic ROC (K = 64 pairs, N = 500 examples, global variance, per-example separations
# d ~ U(0.5, 2.5)σ): estimator − analytic measured over 20 seeds (0-19):
#   AUC        mean −0.0015, sd 0.0014, max |.| 0.0040
#   TPR@1 %    mean −0.0061, sd 0.0074, max |.| 0.0226
#   TPR@0.1 %  mean −0.0052, sd 0.0065, max |.| 0.0212
# (slightly below the analytic values: the shadows only estimate the means). Tolerance = |mean| + 4 sd.
TOL = {"auc": 0.0015 + 4 * 0.0014, "tpr@0.01": 0.0061 + 4 * 0.0074, "tpr@0.001": 0.0052 + 4 * 0.0065}


def populations(rng, k, n, sep, sigma=1.0):
    """A = μ + sep + σ·noise, B = μ + σ·noise, [K, N] each; μ per example ~ N(0, 3²); sep scalar or [N]."""
    mu = rng.normal(0, 3, n)
    return mu + sep + sigma * rng.normal(size=(k, n)), mu + sigma * rng.normal(size=(k, n))


def analytic_roc(sep, sigma=1.0):
    """AUC and TPR at 1 % / 0.1 % FPR of the pooled attack with the true Gaussians (means, equal std σ).

    For an example with separation Δ, the log-LR Λ = Δ(x − midpoint)/σ² is N(+Δ²/2σ², Δ²/σ²) under A and
    N(−Δ²/2σ², Δ²/σ²) under B. Pooled over examples: TPR(t) = mean_n Φ̄((t − m_n)/s_n), FPR(t) = mean_n
    Φ̄((t + m_n)/s_n) with s = |Δ|/σ, m = s²/2; AUC = P(Λ_A > Λ_B) = mean_{n,n'} Φ((m_n + m_n')/√(s_n² + s_n'²))."""
    s = np.abs(np.asarray(sep, float)) / sigma
    m = s ** 2 / 2
    out = {"auc": float(norm.cdf((m[:, None] + m[None, :]) / np.sqrt(s[:, None] ** 2 + s[None, :] ** 2)).mean())}
    for f in (0.01, 0.001):
        t = brentq(lambda t: norm.sf((t + m) / s).mean() - f, -200, 200)
        out[f"tpr@{f:g}"] = float(norm.sf((t - m) / s).mean())
    return out


# ------------------------------------------------------------------------------------------ scaled logit

def test_scaled_logit_matches_the_definition_from_logits_and_probs():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (2, 50, 10))  # [K, N, C]
    y = rng.integers(0, 10, 50)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    py = p[:, np.arange(50), y]
    want = np.log(py / (1 - py))
    np.testing.assert_allclose(scaled_logit(z, y), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scaled_logit(p, y, kind="probs"), want, rtol=1e-7, atol=1e-7)
    assert scaled_logit(z[0], y).shape == (50,)


def test_scaled_logit_is_stable_for_extreme_logits():
    z = np.array([[1000.0, 0.0, 0.0], [-1000.0, 0.0, 0.0], [40.0, 0.0, 0.0]])
    phi = scaled_logit(z, [0, 0, 0])
    np.testing.assert_allclose(phi, [1000 - math.log(2), -1000 - math.log(2), 40 - math.log(2)], rtol=1e-12)
    # probabilities that saturate: the other classes are summed directly, so φ stays finite and right
    p = np.array([[1.0 - 2e-30, 1e-30, 1e-30]])
    assert scaled_logit(p, [0], kind="probs")[0] == pytest.approx(-math.log(2e-30), rel=1e-9)
    assert np.isfinite(scaled_logit(np.array([[1.0, 0.0]]), [0], kind="probs")).all()


def test_scaled_logit_rejects_bad_labels_and_shapes():
    with pytest.raises(ScarlabError, match="labels must lie in"):
        scaled_logit(np.zeros((3, 4)), [0, 1, 4])
    with pytest.raises(ScarlabError, match="3 examples"):
        scaled_logit(np.zeros((2, 4)), [0, 1, 2])
    with pytest.raises(ScarlabError, match="kind"):
        scaled_logit(np.zeros((2, 4)), [0, 1], kind="softmax")


# ------------------------------------------------------------------------------------------ fits and LR

def test_fit_and_likelihood_ratio_by_hand():
    a = np.array([[1.0, 10.0], [3.0, 10.0]])  # example 0: mean 2, std √2; example 1: identical -> floor
    b = np.array([[0.0, 5.0], [0.0, 7.0], [3.0, 9.0]])  # means 1, 7; stds √3, 2
    fit = fit_populations(a, b, variance="per_example")
    np.testing.assert_allclose(fit.mean_a, [2, 10])
    np.testing.assert_allclose(fit.std_a, [math.sqrt(2), ulira.STD_FLOOR])
    np.testing.assert_allclose(fit.mean_b, [1, 7])
    np.testing.assert_allclose(fit.std_b, [math.sqrt(3), 2])
    x = np.array([2.5, 9.0])
    want = norm.logpdf(x, fit.mean_a, fit.std_a) - norm.logpdf(x, fit.mean_b, fit.std_b)
    np.testing.assert_allclose(likelihood_ratio(x, fit), want, rtol=1e-12)
    np.testing.assert_allclose(likelihood_ratio(np.stack([x, x]), fit), np.stack([want, want]))
    # global variance (LiRA's fixed variance): one std per population, sqrt of the mean per-example variance
    g = fit_populations(a, b, variance="global")
    np.testing.assert_allclose(g.std_a, [1.0, 1.0])  # sqrt((2 + 0) / 2)
    np.testing.assert_allclose(g.std_b, [math.sqrt(3.5)] * 2)
    assert fit_populations(a, b).variance == "global"  # "auto" with K < 64
    big = np.random.default_rng(0).normal(size=(64, 3))
    assert fit_populations(big, big).variance == "per_example"
    # the held-out fits see K − 1 models: "auto" is decided there, and the audit reports that choice
    assert ulira.resolve_variance("auto", 63) == "global" and ulira.resolve_variance("per_example", 3) == "per_example"
    assert audit_scores(big, big + 1, n_boot=0)["ulira/variance"] == "global"


def test_identical_shadow_models_give_finite_scores():
    same = np.tile(np.arange(5.0), (4, 1))  # deterministic training: every shadow model scores alike
    r = audit_scores(same + 1, same, n_boot=0, variance="per_example")
    assert np.isfinite(r["ulira/log_lr_a"]).all() and r["ulira/auc"] == 1.0


def test_held_out_scores_leave_the_pair_out():
    rng = np.random.default_rng(1)
    a, b = populations(rng, 5, 7, 1.0)
    lr_a, lr_b = held_out_scores(a, b, variance="per_example")
    keep = np.arange(5) != 2
    fit = fit_populations(a[keep], b[keep], variance="per_example")
    np.testing.assert_allclose(lr_a[2], likelihood_ratio(a[2], fit))
    np.testing.assert_allclose(lr_b[2], likelihood_ratio(b[2], fit))


# ------------------------------------------------------------------------------------------ ROC

def test_tpr_at_fpr_is_conservative():
    fpr = np.array([0.0, 0.005, 0.02, 1.0])
    tpr = np.array([0.0, 0.30, 0.60, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.01) == 0.30  # not interpolated towards 0.60
    assert tpr_at_fpr(fpr, tpr, 0.001) == 0.0
    assert tpr_at_fpr(fpr, tpr, 0.02) == 0.60


def test_bootstrap_roc_agrees_with_sklearn_with_ties():
    rng = np.random.default_rng(2)
    lr_a = np.round(rng.normal(0.5, 1, (6, 40)), 1)  # rounding makes ties, within and across classes
    lr_b = np.round(rng.normal(0.0, 1, (6, 40)), 1)
    pooled = ulira._PooledROC(lr_a, lr_b)
    fpr, tpr = pooled.curve(np.ones(6), np.ones(40))
    labels = np.r_[np.ones(lr_a.size), np.zeros(lr_b.size)]
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(labels, np.r_[lr_a.ravel(), lr_b.ravel()]))
    w_pair, w_ex = rng.integers(0, 3, 6), rng.integers(0, 3, 40)
    w = np.r_[np.repeat(w_pair, 40) * np.tile(w_ex, 6), np.repeat(w_pair, 40) * np.tile(w_ex, 6)]
    fpr, tpr = pooled.curve(w_pair, w_ex)
    assert np.trapezoid(tpr, fpr) == pytest.approx(
        roc_auc_score(labels, np.r_[lr_a.ravel(), lr_b.ravel()], sample_weight=w))


def test_analytic_roc_reduces_to_the_binormal_formulas():
    d = np.full(10, 1.7)
    an = analytic_roc(d)
    assert an["auc"] == pytest.approx(norm.cdf(1.7 / math.sqrt(2)))
    for f in (0.01, 0.001):
        assert an[f"tpr@{f:g}"] == pytest.approx(norm.cdf(1.7 - norm.ppf(1 - f)), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimator_matches_the_analytic_roc_on_gaussians(seed):
    rng = np.random.default_rng(seed)
    sep = rng.uniform(0.5, 2.5, 500)
    a, b = populations(rng, 64, 500, sep)
    r = attack_roc(a, b, variance="global", n_boot=0)
    an = analytic_roc(sep)
    for key, tol in TOL.items():
        assert abs(r[key] - an[key]) <= tol, (key, r[key], an[key])
    assert r["n_pos"] == r["n_neg"] == 64 * 500


def offset_populations(rng, k, n, offset_sd=1.0):
    """Identical populations whose shadow models differ by model-wide offsets: every model adds one
    N(0, offset_sd²) shift to all its examples (as real shadow models read higher or lower as a whole)."""
    mu = rng.normal(0, 3, n)
    return (mu + rng.normal(0, offset_sd, (k, 1)) + rng.normal(size=(k, n)),
            mu + rng.normal(0, offset_sd, (k, 1)) + rng.normal(size=(k, n)))


@pytest.mark.parametrize("k", [3, 6, 16])
def test_auc_interval_covers_chance_under_model_offsets(k):
    """Identical populations, offsets of std 1, N = 200, n_boot = 50. Measured over seeds 0–199 (AUC interval
    holds 0.5): K = 3: 194/200, K = 6: 195/200, K = 16: 199/200, worst block of 40 seeds 38/40 at each K. The
    previous two-way percentile bootstrap: 113/200, 131/200, 129/200 (worst blocks 21, 21, 23 of 40)."""
    hits = 0
    for seed in range(40):
        a, b = offset_populations(np.random.default_rng(seed), k, 200)
        r = attack_roc(a, b, n_boot=50, seed=seed)
        hits += r["auc_low"] <= 0.5 <= r["auc_high"]
    assert hits >= 36, hits


def test_jackknife_replicates_refit_without_the_deleted_pair():
    rng = np.random.default_rng(9)
    a, b = offset_populations(rng, 5, 30)
    reps = list(ulira._jackknife_scores(a, b, "global", ulira.STD_FLOOR))
    assert len(reps) == 5
    keep = np.arange(5) != 3
    want_a, want_b = held_out_scores(a[keep], b[keep], variance="global")
    np.testing.assert_allclose(reps[3][0], want_a)
    np.testing.assert_allclose(reps[3][1], want_b)
    # K = 3: the means are refitted on the one remaining pair, the held-out fit's std is kept
    a3, b3 = a[:3], b[:3]
    lr_a, lr_b = next(ulira._jackknife_scores(a3, b3, "global", ulira.STD_FLOOR))  # pair 0 deleted
    std = fit_populations(a3[[0, 2]], b3[[0, 2]], variance="global")  # pair 1's held-out fit
    fit = ulira.GaussianFit(a3[2], std.std_a, b3[2], std.std_b, "global", 1, 1)
    np.testing.assert_allclose(lr_a[0], likelihood_ratio(a3[1], fit))
    np.testing.assert_allclose(lr_b[0], likelihood_ratio(b3[1], fit))


def test_identical_populations_read_chance():
    a, b = populations(np.random.default_rng(3), 16, 500, 0.0)
    target = b[0] + np.random.default_rng(4).normal(size=500)  # another model like B ("the retrained oracle")
    r = audit_scores(a, b, target=target)
    assert r["ulira/auc_low"] <= 0.5 <= r["ulira/auc_high"]
    assert abs(r["ulira/auc"] - 0.5) < 0.03
    assert r["ulira/tpr@0.01"] < 0.03 and r["ulira/tpr@0.01_low"] <= 0.01 <= r["ulira/tpr@0.01_high"]
    assert r["ulira/bacc"] < 0.53
    assert r["ulira/eps_median"] == 0.0
    assert r["ulira/eps_mean_high"] < 0.1  # chance level ≈ 0.035 (module docstring), ceiling 1.35
    assert r["ulira/target_flagged@0.01"] < 0.03
    assert r["ulira/eps"].shape == r["ulira/example_auc"].shape == r["ulira/target_log_lr"].shape == (500,)
    assert r["ulira/log_lr_a"].shape == (16, 500)
    assert r["ulira/roc_fpr"].shape == r["ulira/roc_tpr"].shape
    assert np.all(np.diff(r["ulira/roc_tpr"]) >= 0)
    assert all(isinstance(v, (float, int, str)) for v in r.values() if not isinstance(v, np.ndarray))


def test_well_separated_populations_are_caught():
    a, b = populations(np.random.default_rng(5), 16, 500, 4.0)
    rng = np.random.default_rng(6)
    mu_a = a.mean(0)  # a fresh model from A: the true mean plus noise, approximately
    r = audit_scores(a, b, target=mu_a + rng.normal(size=500))
    # analytic (known Gaussians): AUC 0.9977, TPR@1 % 0.953, TPR@0.1 % 0.813
    assert r["ulira/auc"] > 0.99
    assert r["ulira/tpr@0.01"] > 0.85 and r["ulira/tpr@0.01_low"] > 0.5
    assert r["ulira/tpr@0.001"] > 0.6
    assert r["ulira/bacc"] > 0.95
    ceiling = epsilon_ceiling(16, 16)
    assert r["ulira/eps_ceiling"] == pytest.approx(ceiling)
    assert r["ulira/eps_median"] == pytest.approx(ceiling)
    assert r["ulira/target_flagged@0.01"] > 0.85
    assert r["ulira/example_auc"].mean() > 0.95


# ------------------------------------------------------------------------------------------ Clopper–Pearson and ε

def _binom_cdf(k, n, p):
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def _cp_high_by_hand(k, n, alpha):
    """Upper Clopper–Pearson end by bisection on the binomial tail: the p with P(X ≤ k | p) = alpha/2."""
    if k == n:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _binom_cdf(k, n, mid) > alpha / 2 else (lo, mid)
    return (lo + hi) / 2


def test_clopper_pearson_by_hand():
    low, high = clopper_pearson(0, 10, 0.05)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)
    assert round(high, 4) == 0.3085
    low, high = clopper_pearson(10, 10, 0.05)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 10))
    low, high = clopper_pearson(3, 10, 0.05)
    assert low == pytest.approx(beta.ppf(0.025, 3, 8)) and high == pytest.approx(beta.ppf(0.975, 4, 7))
    assert high == pytest.approx(_cp_high_by_hand(3, 10, 0.05), abs=1e-9)
    lows, highs = clopper_pearson(np.arange(5), 4, 0.5)
    np.testing.assert_allclose(highs, [_cp_high_by_hand(k, 4, 0.5) for k in range(5)], atol=1e-9)
    assert np.all(lows <= np.arange(5) / 4) and np.all(np.arange(5) / 4 <= highs)
    with pytest.raises(ScarlabError, match="0 ≤ k ≤ n"):
        clopper_pearson(5, 4)


def test_epsilon_on_four_model_pairs_by_hand():
    """Example 0: A-models score 4, 3, 2.5, 0.5 and B-models 2, 1, 0, −1. Rules "A iff s ≥ t", by hand:
        t    −1   0   0.5  1   2   2.5  3   4   ∞
        FN    0   0   0    1   1   1    2   3   4
        FP    4   3   2    2   1   0    0   0   0
    (the reversed rules have 4 − FN, 4 − FP errors: all worse). At alpha = 0.5 the upper CP ends are
    u0 ≈ 0.2929 (= 1 − 0.25^¼), u1 ≈ 0.5437, …; the best rule is t = 2.5 (FP 0, FN 1), with δ = 0.01:
    ε = max(log((1 − δ − u0)/u1), log((1 − δ − u1)/u0)) = log((1 − 0.01 − 0.5437)/0.2929) ≈ 0.421.
    Example 1: both populations score 1, 2, 3, 4: no rule shows anything, ε = 0."""
    alpha, delta = 0.5, 0.01
    u = [_cp_high_by_hand(k, 4, alpha) for k in range(5)]
    assert u[0] == pytest.approx(1 - 0.25 ** 0.25)
    table_fn = [0, 0, 0, 1, 1, 1, 2, 3, 4]
    table_fp = [4, 3, 2, 2, 1, 0, 0, 0, 0]

    def eps_rule(fp, fn):
        terms = [(1 - delta - u[fp]) / u[fn], (1 - delta - u[fn]) / u[fp]]
        return max(math.log(x) if x > 0 else -math.inf for x in terms)

    rules = [(fp, fn) for fp, fn in zip(table_fp, table_fn)] + [(4 - fp, 4 - fn) for fp, fn in zip(table_fp, table_fn)]
    want = max(0.0, max(eps_rule(fp, fn) for fp, fn in rules))
    assert want == pytest.approx(math.log((1 - delta - u[1]) / u[0]))
    assert u[1] == pytest.approx(0.5437, abs=1e-4)
    assert want == pytest.approx(0.4212, abs=1e-4)
    a = np.array([[4.0, 1], [3, 2], [2.5, 3], [0.5, 4]])
    b = np.array([[2.0, 1], [1, 2], [0, 3], [-1, 4]])
    eps = epsilon(a, b, delta=delta, alpha=alpha)
    np.testing.assert_allclose(eps, [want, 0.0], atol=1e-9)
    assert float(epsilon_from_counts(0, 1, 4, 4, delta=delta, alpha=alpha)) == pytest.approx(want)
    # at the default alpha = 0.05, 4 pairs cannot show anything: the ceiling is 0
    assert epsilon_ceiling(4, 4) == 0.0
    assert epsilon(a, b).tolist() == [0.0, 0.0]
    # swapping the populations does not change ε (both error types and both directions are tried)
    np.testing.assert_allclose(epsilon(b, a, delta=delta, alpha=alpha), eps)


def test_epsilon_ceiling():
    u = 1 - 0.025 ** (1 / 16)
    assert epsilon_ceiling(16, 16, delta=0.0) == pytest.approx(math.log((1 - u) / u))
    assert epsilon_ceiling(16, 16) == pytest.approx(1.35, abs=0.01)
    assert epsilon_ceiling(16, 16, delta=0.01) < epsilon_ceiling(16, 16, delta=1e-5)


def test_example_auc():
    a = np.array([[3.0, 1.0], [4.0, 1.0]])
    b = np.array([[1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(example_auc(a, b), [1.0, 0.5])


# ------------------------------------------------------------------------------------------ bad input

def test_too_few_shadow_models_is_a_clear_error():
    rng = np.random.default_rng(7)
    with pytest.raises(ScarlabError, match=r"K=1 .*K ≥ 2"):
        fit_populations(rng.normal(size=(1, 5)), rng.normal(size=(3, 5)))
    with pytest.raises(ScarlabError, match=r"K=2 .*leave-one-pair-out.*K ≥ 3"):
        audit_scores(rng.normal(size=(2, 5)), rng.normal(size=(2, 5)))
    with pytest.raises(ScarlabError, match=r"K=1 .*K ≥ 3"):
        attack_roc(rng.normal(size=(1, 5)), rng.normal(size=(1, 5)))


def test_mismatched_or_broken_populations_are_refused():
    rng = np.random.default_rng(8)
    with pytest.raises(ScarlabError, match="N=5.*N=6"):
        audit_scores(rng.normal(size=(4, 5)), rng.normal(size=(4, 6)))
    with pytest.raises(ScarlabError, match="K_A=4, K_B=5"):
        audit_scores(rng.normal(size=(4, 5)), rng.normal(size=(5, 5)))
    bad = rng.normal(size=(4, 5))
    bad[2, 1] = np.nan
    with pytest.raises(ScarlabError, match=r"shadow model\(s\) \[2\].*non-finite"):
        audit_scores(bad, rng.normal(size=(4, 5)))
    with pytest.raises(ScarlabError, match="target model gave 1 non-finite"):
        audit_scores(rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), target=[0, 1, np.inf, 2, 3])
    with pytest.raises(ScarlabError, match="unknown variance"):
        fit_populations(bad[:2], bad[:2], variance="pooled")


def test_epsilon_chance_is_the_null_level_of_the_audit():
    """eps_chance = the mean ε the same held-out attack reads on identical populations: it matches null audits
    (homogeneous variance; measured 0.039 at K = 16 over 5 seeds), grows with K and stays far below the ceiling."""
    from scarlab.metrics.ulira import epsilon_chance

    null = [audit_scores(*populations(np.random.default_rng(s), 16, 1000, 0.0), n_boot=0)["ulira/eps_mean"]
            for s in range(3)]
    chance = epsilon_chance(16)
    assert 0.02 < chance < 0.06
    assert abs(np.mean(null) - chance) < 0.012
    assert epsilon_chance(4) == 0.0 < epsilon_chance(8) < chance < epsilon_chance(32) < epsilon_ceiling(32, 32)
    assert audit_scores(*populations(np.random.default_rng(0), 16, 50, 0.0), n_boot=0)["ulira/eps_chance"] == chance



# ------------------------------------------------------------------------------------------ membership signal

def _offset_populations(rng, k, n, model_shift, memory):
    """A = μ + model_shift + memory + d_A + noise, B = μ + d_B + noise ([K, N] each): model_shift moves every example
    of every A-model alike (a model-level difference), memory only the examples it is added to, and d ~ N(0, 0.5²)
    is a per-model offset on both sides (real shadows differ model-wide)."""
    mu = rng.normal(0, 3, n)
    da, db = rng.normal(0, 0.5, (k, 1)), rng.normal(0, 0.5, (k, 1))
    return mu + model_shift + memory + da + rng.normal(size=(k, n)), mu + db + rng.normal(size=(k, n))


@pytest.mark.parametrize("seed", range(5))
def test_model_level_difference_is_no_membership_signal(seed):
    """Unlearned and retrained models that differ by a model-wide shift only: the attack separates them on the forget
    examples (AUC > 0.8) and equally on the control examples, and forget − control holds 0 in its interval.
    Measured (K = 8, 150 + 150 examples, n_boot 100, seeds 0-39): forget AUC ≥ 0.835; the AUC difference's interval
    held 0 for every statistic in 39 of 40 seeds (seeds 0-4 among them)."""
    rng = np.random.default_rng(seed)
    fa, fb = _offset_populations(rng, 8, 150, 2.0, 0.0)
    ca, cb = _offset_populations(rng, 8, 150, 2.0, 0.0)
    r = ulira.membership_signal(fa, fb, ca, cb, n_boot=100, seed=seed)
    assert r["forget/auc"] > 0.8 and r["control/auc"] > 0.8
    for s in ulira.MEMBERSHIP_STATS:
        assert r[f"membership/{s}_low"] <= 0 <= r[f"membership/{s}_high"], (s, r)
        assert r[f"membership/{s}"] == pytest.approx(r[f"forget/{s}"] - r[f"control/{s}"])


@pytest.mark.parametrize("seed", range(5))
def test_per_example_memory_is_a_positive_membership_signal(seed):
    """A-models that keep a per-example trace (+3σ) of the forget examples only, on top of a small model-wide shift:
    forget − control is positive with its whole interval. Measured (as above, seeds 0-39): the AUC difference's
    lower end ≥ 0.128 in all 40 seeds."""
    rng = np.random.default_rng(1000 + seed)
    fa, fb = _offset_populations(rng, 8, 150, 0.5, 3.0)
    ca, cb = _offset_populations(rng, 8, 150, 0.5, 0.0)
    r = ulira.membership_signal(fa, fb, ca, cb, n_boot=100, seed=seed)
    assert r["membership/auc_low"] > 0.05, r
    assert r["membership/auc"] > 0.2 and r["membership/eps_mean"] > 0


def test_membership_signal_refuses_different_shadow_pairs():
    rng = np.random.default_rng(0)
    a, b = _offset_populations(rng, 8, 20, 0.0, 0.0)
    with pytest.raises(ScarlabError, match="same models"):
        ulira.membership_signal(a, b, a[:6], b[:6], n_boot=0)


@pytest.mark.parametrize("k, n_boot", [(3, 50), (8, 50), (6, 0)])
def test_audit_with_control_equals_the_three_calls(k, n_boot):
    """The audit's one pass (each side's held-out attack, jackknife and bootstraps made once) gives exactly what
    audit_scores on forget, audit_scores on control and membership_signal give separately."""
    rng = np.random.default_rng(k)
    fa, fb = _offset_populations(rng, k, 60, 1.0, 0.5)
    ca, cb = _offset_populations(rng, k, 40, 1.0, 0.0)
    t, tc = fa.mean(0) + rng.normal(size=60), ca.mean(0)
    got = ulira.audit_with_control(fa, fb, ca, cb, target=t, control_target=tc, n_boot=n_boot, seed=3)
    want = (audit_scores(fa, fb, target=t, n_boot=n_boot, seed=3), audit_scores(ca, cb, target=tc, n_boot=n_boot,
            seed=3), ulira.membership_signal(fa, fb, ca, cb, n_boot=n_boot, seed=3))
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key in w:
            np.testing.assert_array_equal(g[key], w[key], err_msg=key)
    with pytest.raises(ScarlabError, match="same models"):
        ulira.audit_with_control(fa, fb, np.vstack([ca, ca[:1]]), np.vstack([cb, cb[:1]]), n_boot=0)


def test_saturated_statistics_are_one_sided_bounds_and_unresolvable_tprs_say_so():
    """Every pair separating perfectly gives AUC 1 with a one-sided bound alpha^(1/K), never [1, 1]; a moderate
    separation keeps its two-sided interval; TPR at an FPR below one false positive among K·N is NaN with the K that
    would resolve it."""
    rng = np.random.default_rng(0)
    a, b = populations(rng, 8, 100, 20.0)
    r = audit_scores(a, b, n_boot=50)
    assert r["ulira/auc"] == 1.0 and r["ulira/auc_saturated"] == 1
    assert r["ulira/auc_low"] == pytest.approx(0.05 ** (1 / 8)) and r["ulira/auc_high"] == 1.0
    a, b = populations(rng, 8, 100, 1.0)
    r = audit_scores(a, b, n_boot=50)
    assert r["ulira/auc_saturated"] == 0 and r["ulira/auc_low"] < r["ulira/auc"] < r["ulira/auc_high"]
    assert r["ulira/min_fpr"] == pytest.approx(1 / 800)  # 0.1 % < 1/800: not resolvable
    assert np.isnan(r["ulira/tpr@0.001"]) and r["ulira/tpr@0.001_k_needed"] == 10  # ⌈1 / (0.001 · 100)⌉
    assert r["ulira/roc_fpr"][0] == pytest.approx(1 / 800)


def test_a_saturated_value_just_under_one_reads_as_a_lower_bound():
    """Saturation is "within SATURATION of a bound": an AUC of 0.9995 on which every pair agrees is ≥ its low end
    (it once printed "≤ 1.000" because the side was chosen by value >= 1)."""
    from scarlab.metrics.ulira import SATURATION, one_sided

    assert one_sided(1 - SATURATION / 2, 0.688, 1.0) == ("≥", 0.688)
    assert one_sided(1.0, 0.688, 1.0) == ("≥", 0.688)
    assert one_sided(SATURATION / 2, 0.0, 0.312) == ("≤", 0.312)
