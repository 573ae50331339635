"""scarlab.metrics.competition on cases worked out by hand (ε, bins, F, final score), an independent brute
force over thresholds, and its input errors. U = unlearned models, R = retrained models; one column = one
forget example. "miss U" = unlearned models the rule calls retrained, "miss R" the reverse; FNR = miss U / K_U,
FPR = miss R / K_R (the formula is symmetric, so the naming does not matter); δ = 1e-5 throughout."""
import itertools
import math

import numpy as np
import pytest

from scarlab.errors import ScarlabError
from scarlab.metrics.competition import (DELTA, EPSILON_CAP, competition_epsilon, epsilon_max_finite,
                                         epsilon_points, final_score, forget_score, rule_epsilon_table)

D = DELTA


def eps1(u, r, **kw) -> float:
    """ε of one example from two score lists."""
    return float(competition_epsilon(np.array(u, float)[:, None], np.array(r, float)[:, None], **kw)[0])


# ------------------------------------------------------------------------------------------ ε by hand

def test_perfect_separation_is_infinite_and_reported_at_the_cap():
    # U = 0, 0.5, 1.0; R = 3, 3.6, 4.2 (ranges 1.0 and 1.2: no peakiness shortcut). R's median is larger, so
    # the single cut predicts R above t; t = 2 misses no U and no R: FPR = FNR = 0 -> ε = ∞, clipped to 50.
    u, r = [0, 0.5, 1.0], [3, 3.6, 4.2]
    assert eps1(u, r, cap=np.inf) == np.inf
    assert eps1(u, r) == EPSILON_CAP == 50.0
    assert eps1(u, r, cap=7.0) == 7.0


def test_a_rule_with_exactly_one_zero_rate_is_discarded():
    # U = 0, 1, 2; R = 1.5, 2.5, 3.6. Medians 1 < 2.5: single cuts predict R above t. Sorted: 0U 1U 1.5R 2U 2.5R 3.6R.
    #   t = 1.5: above = 1.5R 2U 2.5R 3.6R: miss R 0, miss U 1/3 -> exactly one rate 0 -> DISCARDED
    #            (kept, it would give log((1 − δ)/(1/3)) = log 3 = 1.10; and interval {0, 1} with FPR = 0 would give ∞)
    #   t = 2:   above = 2U 2.5R 3.6R: miss R 1/3 (1.5), miss U 1/3 (2) -> log((1 − δ − 1/3)/(1/3)) = log(2 − 3δ)
    #   t = 2.5, 1, 0, 3.6, +∞: one rate 0 (discarded)
    # Intervals (U has the smaller range, 2 < 2.1: U inside; window t2 ∈ [0, 4], width ∈ [0, 4]):
    #   {0, 1, 1.5} or {1, 1.5, 2}: in U 2, in R 1: miss U 1/3, miss R 1/3 -> log(2 − 3δ); {0, 1}, {2}: R-free,
    #   miss U > 0 -> discarded; {0 .. 2}: miss U 0, miss R 1/3 -> discarded; the rest give 0.
    assert eps1([0, 1, 2], [1.5, 2.5, 3.6]) == pytest.approx(math.log(2 - 3 * D), rel=1e-12)


def test_the_interval_rule_beats_every_single_cut():
    # U = −0.2, 0, 0.2, 2.0 (K_U = 4, range 2.2); R = −3, −1.5, 0.1, 1.5, 3 (K_R = 5, range 6): U inside.
    # Medians 0.1 = 0.1 (tie -> U above t). Sorted: −3R −1.5R −0.2U 0U 0.1R 0.2U 1.5R 2.0U 3R.
    # Single cuts (U above t):
    #   t = 0:   miss U 1/4, R above 3/5 -> max(log((1 − δ − 3/5)/(1/4)), log((1 − δ − 1/4)/(3/5)))
    #                                     = log(1.6 − 4δ) = 0.47
    #   t = 0.2: miss U 2/4, R above 2/5 -> log((1 − δ − 1/2)/(2/5)) = 0.22;  t = 2.0: miss U 3/4, R 1/5 -> 0.22
    #   t = 0.1, 1.5, 3: 0; t = −3, −1.5, −0.2: miss U 0 -> discarded.       best single cut: 0.47
    # Interval [−0.2, 0.2] (t2 ∈ [0, 4] and width 0.4 ∈ [0.2, 4.2]: inside the window): in U 3, in R 1 (0.1):
    #   miss U 1/4, miss R 1/5 -> max(log((1 − δ − 1/5)/(1/4)), log((1 − δ − 1/4)/(1/5))) = log(3.75 − 5δ) = 1.32
    # (the largest any rule here can reach with an error on each side: epsilon_max_finite(4, 5))
    e = eps1([-0.2, 0, 0.2, 2.0], [-3, -1.5, 0.1, 1.5, 3])
    assert e == pytest.approx(math.log(3.75 - 5 * D), rel=1e-12)
    assert e == pytest.approx(epsilon_max_finite(4, 5), rel=1e-12)
    assert e > math.log(1.6 - 4 * D) + 0.8


def test_identical_populations_give_zero():
    # U = R = 1, 2, 3. Medians tie -> U above t; ranges tie -> the other population (R) inside an interval.
    # Tied scores cannot be split, so thresholds fall only between 1|2 and 2|3 (and outside everything):
    #   t between 1|2: miss U 1/3, R above 2/3 -> log((1 − δ − 2/3)/(1/3)) = log(1 − 3δ) < 0 and
    #                  log((1 − δ − 1/3)/(2/3)) < 0 -> 0;  t between 2|3: the mirror image -> 0
    #   intervals {1,1}, {2,2}, {3,3}, {1,1,2,2}, {2,2,3,3}: rates 1/3 and 2/3 -> 0; all six: one rate 0 -> discarded
    assert eps1([1, 2, 3], [1, 2, 3]) == 0.0
    assert eps1([1, 2, 3], [3, 1, 2]) == 0.0  # the order of the models does not matter


def test_peakiness_shortcut():
    # U = 1.0, 1.0, 1.005 (range 0.005), R = 0, 1, 2 (range 2): 0.005 / 2 < 0.01 -> ε = cap without any rule.
    assert eps1([1.0, 1.0, 1.005], [0, 1.0, 2.0]) == 50.0
    assert eps1([1.0, 1.0, 1.005], [0, 1.0, 2.0], cap=np.inf) == np.inf
    # U = 1.0, 1.0, 1.03 (ratio 0.015: no shortcut). Medians tie -> U above; U inside. Sorted 0R [1.0U 1.0U 1.0R]
    # 1.03U 2.0R (the three 1.0 cannot be split). Interval {1.0, 1.0, 1.0}: in U 2, in R 1 -> miss U 1/3,
    # miss R 1/3 -> log(2 − 3δ); adding 1.03 misses no U -> discarded; single cuts: 0 or discarded.
    assert eps1([1.0, 1.0, 1.03], [0, 1.0, 2.0]) == pytest.approx(math.log(2 - 3 * D), rel=1e-12)


def test_the_interval_window_of_the_evaluation_code():
    # U = 0, 0.1, 0.2, 5.0 (range w = 5, max 5: U inside); R = −4.5, 0.15, 1.0 (range 5.5). Medians tie -> U above.
    # Sorted: −4.5R 0U 0.1U 0.15R 0.2U 1.0R 5U. Window: t2 ∈ [5 − 2, 5 + 2] = [3, 7], t2 − t1 ∈ [3, 7].
    # Without the window the best rule is the interval {0, 0.1, 0.15, 0.2}: in U 3, in R 1 -> miss U 1/4,
    #   miss R 1/3 -> log((1 − δ − 1/4)/(1/3)) vs log((1 − δ − 1/3)/(1/4)) = log(8/3 − 4δ) = 0.98.
    # With it, t2 ≥ 3 > 1.0, so every interval holding a U score ≤ 0.2 also holds 1.0R. The best are
    #   {0.2, 1.0, 5} (t1 ∈ (0.15, 0.2], t2 ∈ [5, 7]): in U 2, in R 1 -> miss U 1/2, miss R 1/3
    #   -> log((1 − δ − 1/2)/(1/3)) = log(1.5 − 3δ) = 0.41; the single cut t = 0.2 gives the same;
    #   {0 .. 1.0}: miss U 1/4, miss R 2/3 -> log(4/3 − 4δ) = 0.29; the rest 0 or discarded.
    u, r = [0, 0.1, 0.2, 5.0], [-4.5, 0.15, 1.0]
    assert eps1(u, r) == pytest.approx(math.log(1.5 - 3 * D), rel=1e-12)
    assert eps1(u, r, window=np.inf) == pytest.approx(math.log(8 / 3 - 4 * D), rel=1e-12)


def test_the_single_cut_is_oriented_by_the_medians():
    # U = −1, −0.5, 3, 3 (median 1.25, range 4); R = −2, −1, 1.5 (median −1, range 3.5): U above t; R inside.
    # Sorted: −2R [−1U −1R] −0.5U 1.5R [3U 3U] (bracketed ties cannot be split).
    # Single cuts, U above t:
    #   t ∈ (−1, −0.5]: U above 3 -> miss U 1/4; R above 1 (1.5) -> miss R 1/3
    #                   -> max(log((1 − δ − 1/3)/(1/4)), log((1 − δ − 1/4)/(1/3))) = log(8/3 − 4δ) = 0.98
    #   t ∈ (−0.5, 1.5]: miss U 2/4, miss R 1/3 -> log(1.5 − 3δ) = 0.41; the other cuts: discarded
    # Intervals, R inside, window t2 ∈ [1.5 − 2, 1.5 + 2], t2 − t1 ∈ [3.5 − 2, 3.5 + 2]: best log(1.5 − 3δ)
    #   (e.g. {−2, −1, −1, −0.5}: in R 2, in U 2 -> rates 1/3, 1/2); the rest 0 or discarded.
    # The reversed cut (R above t) would give only 0 here, so ε would be 0.41 with the wrong orientation.
    assert eps1([-1, -0.5, 3, 3], [-2, -1, 1.5]) == pytest.approx(math.log(8 / 3 - 4 * D), rel=1e-12)


def test_examples_are_independent_columns():
    cols = [([0, 0.5, 1.0], [3, 3.6, 4.2]), ([0, 1, 2], [1.5, 2.5, 3.6]), ([1, 2, 3], [1, 2, 3])]
    u = np.array([c[0] for c in cols], float).T
    r = np.array([c[1] for c in cols], float).T
    np.testing.assert_allclose(competition_epsilon(u, r), [50.0, math.log(2 - 3 * D), 0.0], rtol=1e-12)
    # and in the other role: swapping which population is "unlearned" changes nothing here (symmetric cases)
    np.testing.assert_allclose(competition_epsilon(r, u), [50.0, math.log(2 - 3 * D), 0.0], rtol=1e-12)


# ------------------------------------------------------------------------------------------ against brute force

def brute_force(u, r):
    """Every threshold at a midpoint between distinct scores (and beyond both ends), rules and discards written
    out directly, no window; the peakiness shortcut and the cap left out."""
    vals = np.unique(np.concatenate([u, r]))
    ts = np.concatenate([[vals[0] - 1], (vals[1:] + vals[:-1]) / 2, [vals[-1] + 1]])
    above_u = not np.median(r) > np.median(u)
    inside_u = np.ptp(u) < np.ptp(r) or (np.ptp(u) == np.ptp(r) and not above_u)

    def eps(says_u_for_u, says_u_for_r):  # ε of a rule from what it says for each model, or None (discarded)
        fnr, fpr = np.mean(~says_u_for_u), np.mean(says_u_for_r)
        if fnr == 0 and fpr == 0:
            return math.inf
        if fnr == 0 or fpr == 0:
            return None
        terms = [math.log(1 - D - fpr) - math.log(fnr) if 1 - D - fpr > 0 else -math.inf,
                 math.log(1 - D - fnr) - math.log(fpr) if 1 - D - fnr > 0 else -math.inf]
        return max(0.0, *terms)

    found = [eps(u >= t, r >= t) if above_u else eps(u < t, r < t) for t in ts]
    for t1, t2 in itertools.combinations(ts, 2):
        iu, ir = (u > t1) & (u < t2), (r > t1) & (r < t2)
        found.append(eps(iu, ir) if inside_u else eps(~iu, ~ir))
    found = [f for f in found if f is not None]
    return max(found) if found else 0.0


def test_matches_a_brute_force_over_thresholds():
    rng = np.random.default_rng(0)
    for _ in range(40):
        k_u, k_r = rng.integers(2, 7, size=2)
        # scores on a 0.1 grid: many ties, between and within populations
        u = np.round(rng.normal(0, rng.uniform(0.2, 2), (k_u, 6)), 1)
        r = np.round(rng.normal(rng.uniform(0, 2), 1, (k_r, 6)), 1)
        got = competition_epsilon(u, r, cap=np.inf, window=np.inf)
        for j in range(6):
            lo, hi = sorted([np.ptp(u[:, j]), np.ptp(r[:, j])])
            want = math.inf if hi > 0 and lo / hi < 0.01 else brute_force(u[:, j], r[:, j])
            assert got[j] == pytest.approx(want, rel=1e-12), (u[:, j], r[:, j])


def test_finite_values_never_exceed_the_ceiling():
    rng = np.random.default_rng(1)
    for k_u, k_r in [(3, 5), (8, 8), (16, 12)]:
        e = competition_epsilon(rng.normal(0, 1, (k_u, 400)), rng.normal(0.8, 1, (k_r, 400)))
        ceiling = epsilon_max_finite(k_u, k_r)
        assert np.all((e <= ceiling + 1e-12) | (e == EPSILON_CAP))
        assert np.isclose(e, ceiling).any()  # and it is reached


def test_epsilon_max_finite_by_hand():
    # one error on each side: max(log(K_U (1 − δ − 1/K_R)), log(K_R (1 − δ − 1/K_U)))
    assert epsilon_max_finite(4, 5) == pytest.approx(math.log(3.75 - 5 * D), rel=1e-12)
    assert epsilon_max_finite(3, 3) == pytest.approx(math.log(2 - 3 * D), rel=1e-12)
    assert epsilon_max_finite(512, 512) == pytest.approx(math.log(511 - 512 * D), rel=1e-12)  # 6.236
    t = rule_epsilon_table(4, 5)
    assert t[0, 0] == np.inf and t[0, 1] < 0 and t[1, 0] < 0  # ∞; discarded (marked below any kept ε)
    assert t[4, 5] == 0.0  # every model misclassified: both logs of a negative number -> 0


def test_identical_gaussian_populations_read_the_chance_level():
    # Not a hand case: the estimator's chance level quoted in the module docstring (median ε ≈ log 5, F ≈ 0.18).
    rng = np.random.default_rng(2)
    e = competition_epsilon(rng.normal(size=(16, 1000)), rng.normal(size=(16, 1000)))
    assert 1.3 < np.median(e) < 1.9
    assert 0.12 < forget_score(e, 16) < 0.24


def test_speed():
    import time
    rng = np.random.default_rng(3)
    u, r = rng.normal(size=(64, 3000)), rng.normal(0.5, 1, size=(64, 3000))
    t = time.perf_counter()
    competition_epsilon(u, r)
    assert time.perf_counter() - t < 3.0  # ≈ 0.25 s here; generous for a loaded CI machine


# ------------------------------------------------------------------------------------------ bins, F, final score

def test_bins_at_their_edges():
    # K_U = 512: e_max = ceil(ln 511) = ceil(6.24) = 7 -> 14 bins [0, 0.5), [0.5, 1), ..., [6.5, 7): 2^0 .. 2^−13
    eps = [0.0, 0.4999, 0.5, 0.9999, 1.0, 6.9999, 7.0, 50.0, np.inf]
    want = [1.0, 1.0, 0.5, 0.5, 0.25, 2.0 ** -13, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(epsilon_points(eps, 512), want)
    # K_U = 3: e_max = ceil(ln 2) = 1 -> 2 bins; ε = 1.0 and the cap get nothing
    np.testing.assert_array_equal(epsilon_points([0.3, 0.7, 1.0, 50.0], 3), [1.0, 0.5, 0.0, 0.0])
    # K_U = 2: e_max = ceil(ln 1) = 0 -> no bins at all
    np.testing.assert_array_equal(epsilon_points([0.0, 0.2], 2), [0.0, 0.0])


def test_forget_score_by_hand():
    # K_U = 512: points 1 + 0.5 + 0.25 + 0 over 4 examples = 0.4375
    assert forget_score([0.0, 0.5, 1.0, 50.0], 512) == 0.4375
    assert forget_score([0.1, 0.2], 512) == 1.0
    # from ε: the four hand cases above at K = 3 (e_max = 1): 50 -> 0, log(2 − 3δ) = 0.693 -> 0.5, 0 -> 1
    u = np.array([[0, 0, 1], [0.5, 1, 2], [1.0, 2, 3]], float)
    r = np.array([[3, 1.5, 1], [3.6, 2.5, 2], [4.2, 3.6, 3]], float)
    assert forget_score(competition_epsilon(u, r), 3) == pytest.approx((0 + 0.5 + 1) / 3)


def test_final_score_by_hand():
    # F = 0.4375; retain acc U 90, 94 (mean 92), R 100, 92 (mean 96); test acc U 80, 84 (82), R 82, 82 (82):
    # 0.4375 · (92/96) · (82/82) = 0.4375 · 23/24 = 0.419270833...  (the mean of per-model ratios, 0.9609, is not used)
    assert final_score(0.4375, [90, 94], [100, 92], [80, 84], [82, 82]) == pytest.approx(0.4375 * 23 / 24, rel=1e-12)
    # accuracies above the retrained models' raise the score: no clipping at 1
    assert final_score(0.5, 0.9, 0.8, 0.7, 0.7) == pytest.approx(0.5 * 0.9 / 0.8, rel=1e-12)


# ------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("u, r, words", [
    (np.zeros((1, 4)), np.zeros((3, 4)), "K=1"),
    (np.zeros((3, 4)), np.zeros((1, 4)), "K=1"),
    (np.zeros((3, 4)), np.zeros((3, 5)), "different examples"),
    (np.zeros(4), np.zeros((3, 4)), "shape"),
    (np.array([[0.0, np.nan], [1, 2], [3, 4]]), np.zeros((3, 2)), "non-finite"),
    (np.zeros((3, 2)), np.array([[0.0, np.inf], [1, 2], [3, 4]]), "non-finite"),
])
def test_bad_scores(u, r, words):
    with pytest.raises(ScarlabError, match=words) as err:
        competition_epsilon(u, r)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("call, words", [
    (lambda: epsilon_max_finite(1, 5), "K ≥ 2"),
    (lambda: forget_score([0.1, -0.1], 8), "≥ 0"),
    (lambda: forget_score([0.1, np.nan], 8), "≥ 0"),
    (lambda: forget_score([0.1], 1), "at least 2"),
    (lambda: forget_score([], 8), "no forget examples"),
    (lambda: final_score(0.5, [0.9], [0.0], [0.9], [0.9]), "mean accuracy is 0"),
    (lambda: final_score(1.5, [0.9], [0.9], [0.9], [0.9]), r"F must lie in \[0, 1\]"),
    (lambda: final_score(0.5, [0.9, np.nan], [0.9], [0.9], [0.9]), "finite"),
])
def test_bad_inputs_elsewhere(call, words):
    with pytest.raises(ScarlabError, match=words) as err:
        call()
    assert "\n" not in str(err.value)
