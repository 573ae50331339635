"""The NeurIPS 2023 Machine Unlearning competition's score: per-example ε, forget score F, final score.

Pure numpy functions: score arrays in, numbers / arrays out. No models, no files. Written from the description
below; no code was taken from the sources.

Sources
  [code]  google-deepmind/unlearning_evaluation (Apache-2.0), "the code used to score submissions during the
          NeurIPS 2023 Machine Unlearning competition" (its README), commit ffae0fff4c3e: metric.py (ε, F),
          main.py (final score, number of models), surf.py (accuracies).
  [paper] Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS
          unlearning competition", arXiv:2406.09073, 2024; and the organisers' note "Evaluation for the NeurIPS
          Machine Unlearning Competition" (August 2023). Only their opening parts were at hand: they give the
          (ε, δ)-unlearning notion, the attack-based per-example estimate aggregated into a forget score, and a
          final score that "aside from forgetting quality, also takes into account model utility and
          efficiency" — not the constants below, which all come from [code]. Efficiency does not enter the
          code's formula (12.); how the competition accounted for it is not settled here.

The competition's procedure (facts, each from [code] unless said otherwise)
  1. Scores.  Per model and forget example, the logit-scaled confidence of the true class,
     log(p_y + 1e-45) − log(Σ_{j≠y} p_j + 1e-45) (metric.compute_logit_scaled_confidence) — the scaled logit φ
     of scarlab.metrics.ulira.scaled_logit (which floors at 1e-45 instead of adding it). The attack works on
     these raw per-model scores: no Gaussian fit, no likelihood ratio, no held-out models. K = 512 unlearned
     and 512 retrained models (main.py, --num_models).
  2. δ = 1e-5 (metric.DELTA); cap = 50 (metric.EPSILON_CAP).
  3. Rates are empirical: a rule's FPR and FNR are the fractions of each population's models it misclassifies
     (means over models; no confidence bounds).
  4. ε of one rule: ∞ when FPR = FNR = 0 (perfect separation); the rule is DISCARDED when exactly one of FPR,
     FNR is 0 (the code's comment: "an indication of insufficient samples"); otherwise
     max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR), a log of a negative number being NaN and
     skipped (NaN in both terms, i.e. FPR = FNR = 1, drops the rule). The formula is symmetric in FPR ↔ FNR,
     so which population is called "positive" does not matter; only the orientation of a rule does.
  5. Orientation, per example: the population with the larger median score is the one a single cut predicts
     above the cut (the retrained models if their median is strictly larger, else the unlearned ones).
  6. Rule family "single cut": predict that population iff s ≥ t. The code scans t on a grid,
     linspace(min, max, ceil(100·(max − min))) over both populations' scores: about 100 thresholds per score
     unit. One orientation only (5.).
  7. Rule family "interval": predict the *peakier* population iff t1 ≤ s ≤ t2 (both ends inclusive); peakier =
     the population whose scores have the smaller range max − min (on a tie, the one with the smaller median, or
     the retrained one if the medians tie too). One orientation only: inside → peakier, never "outside". The
     code scans t2 on a grid of 100 per unit over [max_P − 2, max_P + 2] and, for each t2, 400 values of t1 with
     t2 − t1 ∈ [w − 2, w + 2] (P = the peakier population, w = its range, 2 = the code's "buffer").
  8. Peakiness shortcut, before any rule: if min(range_U, range_R) / max(range_U, range_R) < 0.01, ε = 50
     ("the unlearned distribution is very peaky … epsilon should be really bad"). Both ranges 0 is 0/0 = NaN,
     which does not trigger it.
  9. Per-example ε = the maximum over the surviving rules of both families; then clipped to [0, 50] over all
     examples — so a perfect separation (∞) is reported as 50, like the peakiness shortcut.
 10. Bins: with K the number of unlearned models, e_max = ceil(ln(K − 1)) (the code's "back-of-the-envelope
     calculation for the max value of epsilon"). Bins of width 0.5 start at 0: bin b = 0, 1, …, 2·e_max − 1
     holds b·0.5 ≤ ε < (b + 1)·0.5 and is worth 2^−b points (= 2 / 2^n with n = b + 1 counted from 1). ε ≥ e_max
     (every capped or ∞ example) is worth 0. E.g. K = 512: e_max = 7, 14 bins; ε = 0.5 exactly is in the second
     bin (0.5 points); ε = 1.0 exactly in the third (0.25). K = 2: e_max = 0, no bins, every example 0.
 11. F = (Σ over forget examples of their points) / N, in [0, 1].
 12. Final score = F · (mean_k RA_U / mean_k RA_R) · (mean_k TA_U / mean_k TA_R): RA, TA = plain accuracy
     (correct / total, surf.compute_accuracy_surf) on the retain and test sets, each averaged over the models of
     its population (unlearned U, retrained R) before the ratio is taken; no clipping, so a ratio > 1 raises
     the score (main.py).

What this module does, and where it differs
  * competition_epsilon implements 2–9 exactly but for the grid: instead of scanning thresholds every ~0.01
    it takes every split the two rule families can make on the example's scores — a cut between any two
    *distinct* sorted scores (ties are never split), and every run of sorted scores that some interval
    [t1, t2] inside the code's window (t2 within ±window of the peakier population's max, t2 − t1 within
    ±window of its range; window = 2) holds. Every rule the code scans is one of these, so this ε is ≥ the
    code's, and equal whenever its grid reaches the best split. Checked against a grid scan written from the
    description above (Gaussian scores, K = 8–32, 240 examples): equal on 232; the 8 others had neighbouring
    scores 0.0015–0.008 apart, and a grid 20× finer matched all 8. Rates are float64 (the code: float32).
  * If no rule survives (e.g. both populations constant and equal), ε = 0 here; the code stops on an
    assertion there. (The released metric.py also asserts on a NumPy array of kept values, which raises for
    more than one kept rule; the evident intent, the max over the kept rules, is what is implemented.)
  * cap: clip(ε, 0, cap) as in 9.; the peakiness shortcut returns cap. cap=np.inf keeps ∞ visible.
  * epsilon_max_finite(K_U, K_R): the largest ε below ∞ a rule can reach with these K — one error on each side,
    max(ln(K_U (1 − δ − 1/K_R)), ln(K_R (1 − δ − 1/K_U))) (≈ ln(K − 1) for K_U = K_R = K: 6.236 at K = 512,
    1.946 at K = 8). A finite rule needs an error on both sides (4.), so an ε above it is the cap (∞ or the
    peakiness shortcut): read it as "at least the ceiling", and show the ceiling beside every ε.
  * Chance level (measured here; not in the sources): the best rule is chosen on the same scores, and a cut in
    a tail that passes a few models of one population and one of the other (TPR/FPR = a few; FPR = 0 would be
    discarded) already gives ε = ln(a few). Two identical Gaussian populations read median ε ≈ ln 5 = 1.61 and
    F ≈ 0.18 at every K from 8 to 512 (3 seeds, 1,000 examples; 100 at K = 512). So F ≈ 0.18, not 1, is what
    a method indistinguishable from retraining scores on such data; compare methods with that, not with 1.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ScarlabError

DELTA = 1e-5
EPSILON_CAP = 50.0
BIN_WIDTH = 0.5
PEAKY_RATIO = 0.01  # range ratio below which ε = cap without testing any rule (8.)
WINDOW = 2.0  # the code's "buffer": how far an interval's ends may stray from the peakier population's (7.)
_DISCARDED = -1.0  # a rule with exactly one error rate 0 (below any kept ε, which is ≥ 0)
_CHUNK = 1024  # examples per block (bounds memory to a few (K_U + K_R + 1) × _CHUNK arrays)


# ------------------------------------------------------------------------------------------ inputs

def _population(scores, name: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ScarlabError(f"competition ε: {name} scores must have shape [K models, N examples], got {s.shape}")
    if s.shape[0] < 2:
        raise ScarlabError(f"competition ε: {name} has K={s.shape[0]} model(s); at least 2 are needed")
    if not np.isfinite(s).all():
        raise ScarlabError(f"competition ε: {name} scores hold {int((~np.isfinite(s)).sum())} non-finite value(s)")
    return s


# ------------------------------------------------------------------------------------------ ε

def rule_epsilon_table(k_u: int, k_r: int, delta: float = DELTA) -> np.ndarray:
    """ε of a rule that misclassifies x_u of K_U unlearned and x_r of K_R retrained models: [K_U + 1, K_R + 1].

    ∞ at (0, 0); _DISCARDED (−1) where exactly one count is 0; else max(0, ln(1−δ−FPR) − ln FNR,
    ln(1−δ−FNR) − ln FPR) with FNR = x_u / K_U, FPR = x_r / K_R (symmetric, so the naming is immaterial) and a
    log of a number ≤ 0 counting as −∞ (item 4; the code's NaN-dropped FPR = FNR = 1 rule gives 0 here, which
    changes no maximum)."""
    fnr = np.arange(k_u + 1)[:, None] / k_u
    fpr = np.arange(k_r + 1)[None, :] / k_r
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.maximum(1 - delta - fpr, 0.0)) - np.log(fnr)
        b = np.log(np.maximum(1 - delta - fnr, 0.0)) - np.log(fpr)
    e = np.maximum(np.maximum(a, b), 0.0)
    e[(fnr == 0) != (fpr == 0)] = _DISCARDED
    e[0, 0] = np.inf
    return e


def epsilon_max_finite(k_u: int, k_r: int, delta: float = DELTA) -> float:
    """The largest finite ε K_U unlearned and K_R retrained models can show (one error on each side)."""
    if k_u < 2 or k_r < 2:
        raise ScarlabError(f"epsilon_max_finite needs K ≥ 2 models per population (K_U={k_u}, K_R={k_r})")
    return float(rule_epsilon_table(k_u, k_r, delta)[1:, 1:].max())


def _cuts(u: np.ndarray, r: np.ndarray, k_r: int):
    """Both populations sorted together per example. For each cut c = 0..M (the sorted scores v[:c] below it):
    A[c] = (unlearned below)·(K_R + 1) − (retrained below); whether a threshold can fall there (not between two
    equal scores); and the scores either side of it, v[c − 1] (−∞ at c = 0) and v[c] (+∞ at c = M). [M + 1, N]."""
    k_u, n = u.shape
    m = k_u + len(r)
    both = np.concatenate([u, r])
    order = np.argsort(both, axis=0, kind="stable")
    v = np.take_along_axis(both, order, 0)
    below_u = np.zeros((m + 1, n), dtype=np.int64)
    np.cumsum(order < k_u, axis=0, out=below_u[1:])
    below_r = np.arange(m + 1)[:, None] - below_u
    ok = np.ones((m + 1, n), dtype=bool)
    ok[1:m] = v[1:] > v[:-1]
    inf = np.full((1, n), np.inf)
    return below_u * (k_r + 1) - below_r, ok, np.concatenate([-inf, v]), np.concatenate([v, inf])


def competition_epsilon(scores_unlearned, scores_retrained, *, delta: float = DELTA, cap: float = EPSILON_CAP,
                        window: float = WINDOW) -> np.ndarray:
    """Per-example ε of the NeurIPS 2023 unlearning competition: [K_U, N] and [K_R, N] scores -> [N] in [0, cap].

    Max over every single cut (the larger-median population above) and every interval within the window (the
    peakier population inside) of the rule's ε (rule_epsilon_table); ∞ (perfect separation) and the peakiness
    shortcut give cap; 0 if no rule survives. window=np.inf drops the code's window (more intervals: ε ≥).
    Module docstring: items 4–9 and the one difference from the code (no grid). ≈ 0.25 s at K = 64, N = 3,000."""
    u = _population(scores_unlearned, "unlearned")
    r = _population(scores_retrained, "retrained")
    if u.shape[1] != r.shape[1]:
        raise ScarlabError(f"competition ε: the populations score different examples "
                           f"(unlearned N={u.shape[1]}, retrained N={r.shape[1]})")
    k_u, k_r, n = len(u), len(r), u.shape[1]
    table = rule_epsilon_table(k_u, k_r, delta).ravel()
    # A rule that misclassifies x_u unlearned and x_r retrained models is table[x_u·(K_R + 1) + x_r]. With
    # A[c] from _cuts (below_u, below_r = the counts below cut c):
    #   single cut, unlearned above:  (below_u, K_R − below_r)               -> K_R + A[c]
    #   single cut, retrained above:  (K_U − below_u, below_r)               -> K_U·(K_R + 1) − A[c]
    #   interval c1 < c2, U inside:   (K_U − in_u, in_r), in = below[c2] − below[c1]
    #                                                                         -> K_U·(K_R + 1) − A[c2] + A[c1]
    #   interval, retrained inside:   (in_u, K_R − in_r)                     -> K_R + A[c2] − A[c1]
    base_u, base_r = k_u * (k_r + 1), k_r

    med_u, med_r = np.median(u, 0), np.median(r, 0)
    rng_u, rng_r = np.ptp(u, 0), np.ptp(r, 0)
    above_u = ~(med_r > med_u)  # item 5
    inside_u = (rng_u < rng_r) | ((rng_u == rng_r) & ~above_u)  # item 7
    lo, hi = np.minimum(rng_u, rng_r), np.maximum(rng_u, rng_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        peaky = (hi > 0) & (lo / hi < PEAKY_RATIO)  # item 8

    # the interval window (item 7): t2 within `window` of the peakier population's max, t2 − t1 within `window`
    # of its range w
    top = np.where(inside_u, u.max(0), r.max(0))
    t2_lo, t2_hi, w = top - window, top + window, lo

    m = k_u + k_r
    eps = np.empty(n)
    for s in range(0, n, _CHUNK):
        sl = slice(s, s + _CHUNK)
        a, ok, below, above = _cuts(u[:, sl], r[:, sl], k_r)
        single = np.where(above_u[sl], base_r + a, base_u - a)
        best = np.where(ok, table[single], _DISCARDED).max(0)
        # Intervals v[c1:c2]: can the code's window realise one? t1 ∈ (below[c1], above[c1]], t2 ∈ [below[c2],
        # above[c2]) ∩ [t2_lo, t2_hi] =: [l2, h2] (h2 excluded when it is above[c2]), t2 − t1 ∈ w ± window.
        l2 = np.maximum(below, t2_lo[sl])
        h2 = np.minimum(above, t2_hi[sl])
        t2_ok = ok & ((l2 < h2) | ((l2 == h2) & (t2_hi[sl] < above)))
        sign = np.where(inside_u[sl], -1, 1)  # index = base + sign·(A[c2] − A[c1])
        base = np.where(inside_u[sl], base_u, base_r)
        w_lo, w_hi = w[sl] - window, w[sl] + window
        for c1 in range(m):  # c2 = c1 + 1 .. M, as slices
            c2 = slice(c1 + 1, None)
            fits = (ok[c1] & t2_ok[c2] & (l2[c2] - above[c1] <= w_hi) & (h2[c2] - below[c1] > w_lo))
            x = table[base + sign * (a[c2] - a[c1])]
            best = np.maximum(best, np.where(fits, x, _DISCARDED).max(0))
        eps[sl] = best
    eps[peaky] = cap
    return np.clip(eps, 0.0, cap)  # _DISCARDED (no rule survived) -> 0; ∞ -> cap


# ------------------------------------------------------------------------------------------ F, final score

def epsilon_points(eps, k_unlearned: int, *, bin_width: float = BIN_WIDTH) -> np.ndarray:
    """Points of each example (item 10): 2^−b for ε in bin b = floor(ε / bin_width) < floor(e_max / bin_width),
    e_max = ceil(ln(K_U − 1)); 0 beyond (cap, ∞)."""
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim != 1 or np.isnan(e).any() or (e < 0).any():
        raise ScarlabError(f"forget score: ε must be a 1-D array of values ≥ 0 (shape {e.shape})")
    if k_unlearned < 2:
        raise ScarlabError(f"forget score: K_U={k_unlearned} unlearned models; at least 2 are needed")
    if not bin_width > 0:
        raise ScarlabError(f"forget score: bin_width must be > 0, got {bin_width}")
    n_bins = math.floor(math.ceil(math.log(k_unlearned - 1)) / bin_width)
    b = np.floor(np.where(np.isfinite(e), e, 0.0) / bin_width)
    inside = np.isfinite(e) & (b < n_bins)
    return np.where(inside, 2.0 ** -np.where(inside, b, 0.0), 0.0)


def forget_score(eps, k_unlearned: int, *, bin_width: float = BIN_WIDTH) -> float:
    """F = mean over forget examples of their points (item 11): 1 when every ε < bin_width, 0 when all capped."""
    p = epsilon_points(eps, k_unlearned, bin_width=bin_width)
    if p.size == 0:
        raise ScarlabError("forget score: no forget examples")
    return float(p.mean())


@functools.lru_cache(maxsize=32)
def forget_score_chance(k: int, *, n: int = 2000, seed: int = 0) -> float:
    """F of two *identical* populations of K models each (one Gaussian per example, unit variance, n examples): the
    level a perfect unlearner reads with K models, not 1. The best rule is picked on the same 2K scores, so a cut with
    one error on each side already gives ε ≈ ln(K/…) > 0 (module docstring: median ε ≈ 1.6 at every K from 8 to
    512, F ≈ 0.18 at K = 512)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, n)
    eps = competition_epsilon(mu + rng.standard_normal((k, n)), mu + rng.standard_normal((k, n)))
    return forget_score(eps, k)


def final_score(forget, retain_acc_unlearned, retain_acc_retrained, test_acc_unlearned,
                test_acc_retrained) -> float:
    """F · (mean RA_U / mean RA_R) · (mean TA_U / mean TA_R) (item 12); accuracies per model or already means."""
    means = []
    for name, acc in (("retain accuracy (unlearned)", retain_acc_unlearned),
                      ("retain accuracy (retrained)", retain_acc_retrained),
                      ("test accuracy (unlearned)", test_acc_unlearned),
                      ("test accuracy (retrained)", test_acc_retrained)):
        a = np.asarray(acc, dtype=np.float64).ravel()
        if a.size == 0 or not np.isfinite(a).all() or (a < 0).any():
            raise ScarlabError(f"final score: {name} must be finite values ≥ 0, got {a.tolist()}")
        means.append(float(a.mean()))
    if means[1] <= 0 or means[3] <= 0:
        raise ScarlabError("final score: the retrained models' mean accuracy is 0; the ratio is undefined")
    if not (np.isfinite(forget) and 0 <= forget <= 1):
        raise ScarlabError(f"final score: F must lie in [0, 1], got {forget}")
    return float(forget * (means[0] / means[1]) * (means[2] / means[3]))
