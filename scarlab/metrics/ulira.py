"""Per-example privacy audit: U-LiRA over shadow populations, TPR at low FPR, and a per-example ε estimate.

Pure functions: numpy arrays in, numbers / numpy arrays / flat dicts out. No models, no files.

Sources (written from the papers' descriptions):
  * LiRA — Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022: per example,
    fit a Gaussian to the *scaled logit* of the true class under each hypothesis, over shadow models, and score
    a model by the likelihood ratio; report TPR at low FPR with the ROC on log axes; with few shadow models a
    *fixed (global) variance* works better than per-example variances.
  * U-LiRA — Hayes et al., "Inexact unlearning needs more careful evaluations to avoid a false sense of
    privacy", 2024: the two hypotheses are "the model was *unlearned* (the example was trained on, then
    forgotten)" and "the model was *retrained* without the example"; the attack is per example.
  * ε — a Clopper–Pearson-bounded ε estimate (scarlab's, conservative; not a certified bound; not the
    competition's), built on the idea of the NeurIPS 2023 Machine Unlearning competition's per-example ε
    (Triantafillou et al., "Are we making progress in unlearning?", 2024): ε = max over decision rules of the
    (ε, δ)-DP bound an attack's false-positive and false-negative rates imply — here with the rates at their
    upper Clopper–Pearson bounds, on held-out likelihood ratios. The competition's own estimator (empirical
    rates, its rule families and discards, F and the final score) is scarlab.metrics.competition.

Notation. Population A ("target population": K unlearned models of one method, or K originals) is the positive
class; population B (K retrained oracles) the negative class. A score array has shape [K, N]: K shadow models ×
N examples (the forget examples), one scaled logit per (model, example).

What is implemented, exactly
----------------------------
1. Scaled logit (``scaled_logit``).  φ = log(p_y / (1 − p_y)) of the true class y. From logits z it is computed
   without ever forming p: φ = z_y − logsumexp_{j≠y} z_j (exact, stable for any magnitude). From probabilities:
   φ = log p_y − log Σ_{j≠y} p_j, the sum taken over the other classes directly (not as 1 − p_y, which cancels
   to 0 when p_y ≈ 1), each term floored at PROB_FLOOR = 1e-45 (|φ| ≤ 103.6). Prefer logits.
2. Gaussian fits (``fit_populations``).  Per example n and population P ∈ {A, B}: μ_P[n] = mean over the K
   models, σ_P[n] = sample std (ddof = 1). ``variance="global"`` replaces σ_P[n] by one σ_P for all examples,
   σ_P = sqrt(mean_n σ_P[n]²) (LiRA's fixed variance, pooled per population); ``"auto"`` (default) uses the
   global std when a fit sees fewer than AUTO_GLOBAL_BELOW = 64 models per population (LiRA's finding; for the
   held-out attack that is K − 1) — so always in this lab's K range. Every std is floored at ``std_floor`` (default STD_FLOOR = 0.01 in φ units, i.e. a 1 %
   change of the odds): identical shadow models (deterministic training) would otherwise give σ = 0 and an
   infinite ratio.
3. Likelihood ratio (``likelihood_ratio``).  Λ(x)[n] = log N(x; μ_A[n], σ_A[n]) − log N(x; μ_B[n], σ_B[n]);
   Λ > 0 means "looks like population A".
4. Held-out attack (``held_out_scores``, ``attack_roc``).  Leave one *pair* out: for i = 1..K, fit on the other
   K − 1 models of each population (requires K ≥ 3: one std needs two models) and score the held-out A-model
   and B-model on every example. The i-th A- and B-models share a seed/original, so holding the pair out keeps
   either from informing the fit that scores it. The resulting 2·K·N scores (labels A = 1, B = 0) are pooled
   over examples, as in LiRA, into one ROC (sklearn ``roc_curve``), and:
     AUC (sklearn ``roc_auc_score``);
     TPR at FPR f = max {TPR_t : FPR_t ≤ f} over the ROC's thresholds (conservative: no interpolation upward;
       with K·N negatives, FPRs below 1/(K·N) cannot be resolved and read as the zero-false-positive TPR);
     balanced accuracy = max_t (TPR_t + 1 − FPR_t) / 2 (threshold chosen on the same scores: slightly above
       0.5 at chance);
     intervals (level 1 − alpha): estimate ± t_{K−1, 1−alpha/2} · SE, clipped to [0, 1], with
       SE² = (refitted delete-one-pair jackknife variance) + (example-bootstrap variance). Jackknife: for each
       pair k, the whole held-out attack is re-run on the other K − 1 pairs (every fit made without k too, on
       K − 2 pairs; at K = 3 the means are refitted and the held-out fit's std is kept, one model having no
       std), giving θ₍₋ₖ₎; var = (K − 1)/K · Σ_k (θ₍₋ₖ₎ − mean θ₍₋·₎)². Example bootstrap: n_boot resamples of
       the N examples with the held-out scores fixed (fits are per example, so no refit is needed).
       Why: real shadow models differ by model-wide offsets, so the K pairs, not the K·N scores, are the units.
       Under identical populations the held-out statistic is then a *degenerate* (second-order) function of
       the pairs: pair i's contribution is ≈ d_i · mean_{j≠i} d_j (d = the pair's A-minus-B offset), zero in
       expectation given d_i, so its spread comes from products of pairs and enters every other pair's fit.
       A bootstrap that reweights the held-out scores without refitting misses that, and a percentile
       interval from K resampled pairs is too narrow at small K: the old two-way percentile bootstrap held
       0.5 in 23/40, 27/40, 25/40, 29/40 null runs at K = 3, 6, 8, 16 with offsets of std 1 (N = 500, seeds
       0–39). The jackknife re-runs the leave-one-out, so it sees each pair's effect through the fits; it
       is conservative here (for a degenerate statistic its variance is ≈ 2× the true one; in general, by
       the Efron–Stein inequality, its expectation is not below the variance of the statistic on K − 1
       pairs), and the t quantile on K − 1 degrees of freedom accounts for estimating the spread from K units. A refitting pair bootstrap was not used: at
       K = 3 almost no resample has three distinct pairs (a duplicated pair cannot be held out of its own
       fit), and its percentile interval has the same small-K problem. Measured (identical populations,
       offsets of std 1, N = 500, seeds 0–39): the AUC interval holds 0.5 in 37/40, 39/40, 40/40 at K = 3, 6,
       16 (width ≈ 0.59, 0.61, 0.35 vs the AUC's spread over seeds sd 0.107, 0.090, 0.058), and at N = 200,
       n_boot = 50, seeds 0–199 in 194, 195, 199 of 200 (old bootstrap: 113, 131, 129); without offsets
       40/40 (width ≈ 0.13, 0.09, 0.05, sd 0.013, 0.009, 0.006: ≈ 1.7–2× wider than needed, the price of the
       null's degeneracy). With a real effect (K = 6, offsets std 1, separations U(0, 2)) the AUC interval
       held the mean estimate in 97 % of 60 runs, TPR@1 % in 85 % (skewed near 0; read it as rougher).
       Cost: K re-runs of the leave-one-out (K (K − 1) fits, K ROC sorts) on top of the example bootstrap:
       audit_scores at K = 16, N = 2000 takes ≈ 1.5× the old two-way bootstrap's time (≈ 0.6 s vs 0.4 s).
5. Clopper–Pearson (``clopper_pearson``).  Two-sided exact binomial interval at level 1 − alpha for k successes
   out of n: low = Beta⁻¹(alpha/2; k, n − k + 1) (0 when k = 0), high = Beta⁻¹(1 − alpha/2; k + 1, n − k)
   (1 when k = n). E.g. k = 0, n = 10, alpha = 0.05: high = 1 − 0.025^(1/10) = 0.3085.
6. ε per example (``epsilon``, ``epsilon_from_counts``): a Clopper–Pearson-bounded ε estimate (scarlab's,
   conservative; not a certified bound; not the competition's — that one, with empirical rates, discarded
   one-sided rules and single-cut and interval rules on the raw scores, is scarlab.metrics.competition).
   For example n, the K held-out scores of the A-models (positives) and the K of the B-models (negatives) are
   split by every threshold t of the form "A iff s ≥ t" (t over all observed values and +∞) and by the
   reversed rule "A iff s < t". Each rule has FP false positives of K_B negatives and FN false negatives of
   K_A positives; its rates are replaced by the *upper* end of their Clopper–Pearson interval (item 5, level
   1 − alpha, so each bound holds with probability ≥ 1 − alpha/2):
        FPR⁺ = CP_high(FP, K_B),   FNR⁺ = CP_high(FN, K_A),
        ε[n] = max(0, max over rules of max( log((1 − δ − FPR⁺) / FNR⁺), log((1 − δ − FNR⁺) / FPR⁺) )),
   a log of a non-positive number counting as −∞. Upper bounds on the error rates make ε smaller, so the
   estimate is conservative: identical populations give ε ≈ 0, and no rate is ever 0 in a denominator. It is an
   estimate, not a certified lower bound: the best rule is chosen on the same scores it is evaluated on (the
   competition does the same). With K pairs ε cannot exceed the *ceiling* ε of perfect separation,
   log((1 − δ − u) / u) with u = CP_high(0, K) = 1 − (alpha/2)^(1/K) (≈ 1.35 at K = 16, alpha = 0.05): report
   it next to ε. An *upper* confidence bound on ε is not reported: with zero observed errors the lower CP
   bound of a rate is 0 and the bound is infinite at any finite K.
   Chance level: choosing the best of 2·(2K + 1) rules on the same 2K scores finds a small ε > 0 even between
   identical populations: at K = 16, alpha = 0.05 about 8–15 % of examples, mean ε ≈ 0.035 (max 0.054 over
   40 seeds), median 0 — compare a method's mean ε with that, not with 0. :func:`epsilon_chance` simulates it
   for a given K, δ, alpha through the same held-out attack; audit_scores reports it as ulira/eps_chance.
   Aggregates over examples (mean, median, max) carry a percentile bootstrap interval over examples (level
   1 − alpha) — the spread due to which examples are in the forget set, not the per-example uncertainty.
   δ: DEFAULT_DELTA = 1e-5, the usual "≪ 1/n" DP choice and the competition's value (its evaluation code,
   metric.DELTA; see scarlab.metrics.competition); δ is a parameter. δ enters only through 1 − δ − rate⁺,
   which moves a rule's term by log(1 − δ/(1 − rate⁺)): < 0.005 whenever 1 − rate⁺ ≥ 0.2 and δ ≤ 1e-3. The
   rates can never be small enough for a small δ to matter: rate⁺ ≥ CP_high(0, K) ≈ 0.056 even at K = 64.
7. Target model (``audit_scores(target=...)``).  The main run's model is scored with the fit on all K models:
   per-example Λ, and the fraction of examples with Λ above the held-out threshold of FPR ≤ 1 % ("flagged at
   1 % FPR": ≈ 0.01 for a model indistinguishable from B; near the TPR for one like A).
8. Membership signal (``membership_signal``).  The attack above asks "does this model look like an unlearned
   one or a retrained one, judged on these examples?". A model-wide difference (all of a class's logits
   lower, say) answers yes on *any* example of that class, trained on or not: that is model-level
   distinguishability, not membership. So the same shadow pairs are also scored on *control* examples that no
   model of either population trained on (class removal: the forget classes' test images; random removal:
   test images), and the membership signal is forget − control for AUC, TPR at 1 % FPR and mean ε. Its
   interval (level 1 − alpha, t on K − 1 df) adds the delete-one-pair jackknife variance of the *difference*
   (pair k dropped from both attacks, every fit refitted, so a model-wide offset of pair k cancels) to the
   example-bootstrap variances of both sides. Measured (K = 8, 150 + 150 examples, n_boot 100, seeds 0–39):
   shadows that differ only by a model-wide shift (forget AUC ≥ 0.83) give an AUC difference whose interval
   holds 0 in 39/40; a per-example trace of +3σ on the forget examples gives a lower end ≥ 0.13 in 40/40.
   When the control side is already at 1 (AUC or TPR: the models are told apart on every control example) the
   forget side has no room above it, so the difference is 0 whatever the models remember:
   ``membership/<s>_masked`` = 1 says so, and it must be read as "not measurable here", not as "no membership".
9. Resolution.  With K·N held-out negatives the smallest FPR the ROC resolves is 1/(K·N) (one false positive):
   ``ulira/min_fpr``. The reported ROC (``roc_fpr``) starts there, and TPR at an FPR below it is NaN ("not
   resolvable"), with ``ulira/tpr@<f>_k_needed`` = ⌈1/(f·N)⌉ the K that would resolve it. A statistic whose every
   jackknife and bootstrap replicate sits at 0 or 1 has a zero-width interval that K pairs cannot support: it is
   reported as a one-sided (1 − alpha) bound instead, ≥ alpha^(1/K) (all K pairs agree; 0.69 at K = 8) for 1,
   ≤ 1 − alpha^(1/K) for 0, with ``<key>_saturated`` = 1; "at a bound" means within SATURATION = 0.001 in the
   estimate and every jackknife replicate (an AUC of 0.99998 printed as 1.000 [1.000, 1.000] is the same claim).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import beta
from scipy.stats import t as student_t
from sklearn.metrics import roc_auc_score, roc_curve

from ..errors import ScarlabError

PROB_FLOOR = 1e-45  # floor of probabilities inside logs in scaled_logit (≈ float32's smallest subnormal)
STD_FLOOR = 1e-2  # floor of every fitted std, in φ units
AUTO_GLOBAL_BELOW = 64  # variance="auto": a global std per population below this many models (LiRA)
VARIANCES = ("auto", "global", "per_example")
DEFAULT_DELTA = 1e-5
DEFAULT_ALPHA = 0.05  # level of every interval: 1 − alpha
LOW_FPRS = (0.01, 0.001)  # TPR is reported at these FPRs
N_BOOT = 200  # bootstrap resamples for the intervals
ROC_GRID = np.logspace(-5, 0, 101)  # FPR grid of the reported (log-axis) ROC curve

SATURATION = 1e-3  # a statistic this close to 0 or 1 in the estimate and every jackknife replicate is saturated
_MIN_FIT = 2  # models per population for one std
_MIN_HELD_OUT = _MIN_FIT + 1  # leave-one-pair-out fits on K − 1


def one_sided(value: float, low: float, high: float) -> tuple[str, float]:
    """A saturated statistic's one-sided bound: ("≥", low) at the top, ("≤", high) at the bottom (a value within
    SATURATION of 1 may read 0.9995: the side is the nearer bound, not ``value >= 1``)."""
    return ("≥", low) if value >= 0.5 else ("≤", high)


# ------------------------------------------------------------------------------------------ inputs

def scaled_logit(values, labels, *, kind: str = "logits") -> np.ndarray:
    """φ = log(p_y / (1 − p_y)) of the true class: values [..., N, C] (logits or probabilities), labels [N] -> [..., N].

    kind="logits": φ = z_y − logsumexp_{j≠y} z_j (exact, stable). kind="probs": φ = log p_y − log Σ_{j≠y} p_j,
    each floored at PROB_FLOOR. A leading shadow-model axis is allowed: [K, N, C] -> [K, N].
    """
    if kind not in ("logits", "probs"):
        raise ScarlabError(f"scaled_logit: kind must be 'logits' or 'probs', not {kind!r}")
    v = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64, copy=False).ravel()
    if v.ndim < 2 or v.shape[-2] != len(y):
        raise ScarlabError(f"scaled_logit: values of shape {v.shape} do not hold {len(y)} examples × classes "
                           "([..., N, C] with N = len(labels))")
    n_classes = v.shape[-1]
    if n_classes < 2:
        raise ScarlabError(f"scaled_logit needs at least 2 classes, got {n_classes}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ScarlabError(f"scaled_logit: labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
    is_true = np.arange(n_classes) == y[:, None]  # [N, C], broadcasts over leading axes
    true = np.take_along_axis(v, np.broadcast_to(y[:, None], v.shape[:-1] + (1,)), axis=-1)[..., 0]
    if kind == "logits":
        return true - logsumexp(np.where(is_true, -np.inf, v), axis=-1)
    others = np.where(is_true, 0.0, v).sum(-1)
    return np.log(np.maximum(true, PROB_FLOOR)) - np.log(np.maximum(others, PROB_FLOOR))


def _population(scores, name: str, need: int, what: str) -> np.ndarray:
    """scores as a finite [K, N] float array with K ≥ need, or a ScarlabError naming the problem."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2:
        raise ScarlabError(f"{name}: expected scores of shape [K shadow models, N examples], got shape {s.shape}")
    if s.shape[0] < need:
        raise ScarlabError(f"{name} has K={s.shape[0]} shadow model(s); {what} needs K ≥ {need} "
                           f"(train more shadow models; K ≥ 8 is advisable for a useful audit)")
    bad = ~np.isfinite(s)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise ScarlabError(f"{name}: shadow model(s) {rows.tolist()} gave non-finite scores "
                           f"({int(bad.sum())} values); rerun those shadow runs")
    return s


def _pair(scores_a, scores_b, need: int, what: str, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a = _population(scores_a, "population A (target)", need, what)
    b = _population(scores_b, "population B (retrained)", need, what)
    if a.shape[1] != b.shape[1]:
        raise ScarlabError(f"the populations score different examples: A has N={a.shape[1]}, B has N={b.shape[1]} "
                           "(were the shadows made with the same split?)")
    if paired and a.shape[0] != b.shape[0]:
        raise ScarlabError(f"leave-one-pair-out needs as many A-models as B-models (K_A={a.shape[0]}, "
                           f"K_B={b.shape[0]}): one unlearned and one retrained model per shadow seed")
    return a, b


# ------------------------------------------------------------------------------------------ Gaussians, LR

@dataclass(frozen=True)
class GaussianFit:
    """Per-example Gaussians of the two populations ([N] arrays; a global std is repeated over examples)."""
    mean_a: np.ndarray
    std_a: np.ndarray
    mean_b: np.ndarray
    std_b: np.ndarray
    variance: str  # "global" or "per_example": what was used
    k_a: int
    k_b: int


def _std(s: np.ndarray, use_global: bool, floor: float) -> np.ndarray:
    var = s.var(axis=0, ddof=1)
    if use_global:
        var = np.full_like(var, var.mean())
    return np.maximum(np.sqrt(var), floor)


def resolve_variance(variance: str, k_fit: int) -> str:
    """"global" or "per_example": what ``variance`` means for fits on k_fit models per population."""
    if variance not in VARIANCES:
        raise ScarlabError(f"unknown variance {variance!r}; valid choices: {', '.join(VARIANCES)}")
    if variance == "auto":
        return "global" if k_fit < AUTO_GLOBAL_BELOW else "per_example"
    return variance


def fit_populations(scores_a, scores_b, *, variance: str = "auto", std_floor: float = STD_FLOOR) -> GaussianFit:
    """Per-example Gaussian mean/std of population A and B: scores [K_A, N] and [K_B, N] -> GaussianFit.

    std: sample std (ddof 1) per example, or with variance="global" sqrt(mean over examples of the variance),
    per population; "auto" = global when K < AUTO_GLOBAL_BELOW. Every std is at least std_floor.
    Needs K ≥ 2 in each population.
    """
    a, b = _pair(scores_a, scores_b, _MIN_FIT, "a Gaussian fit (one std)", paired=False)
    use_global = resolve_variance(variance, min(len(a), len(b))) == "global"
    return GaussianFit(a.mean(0), _std(a, use_global, std_floor), b.mean(0), _std(b, use_global, std_floor),
                       "global" if use_global else "per_example", len(a), len(b))


def _log_normal(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log N(x; mean, std) up to the common −½ log 2π (it cancels in the ratio)."""
    return -np.log(std) - 0.5 * ((x - mean) / std) ** 2


def likelihood_ratio(target_scores, fit: GaussianFit) -> np.ndarray:
    """log N(x; μ_A, σ_A) − log N(x; μ_B, σ_B) per example: target_scores [N] or [M, N] -> same shape (> 0: A-like)."""
    x = np.asarray(target_scores, dtype=np.float64)
    if x.shape[-1:] != fit.mean_a.shape:
        raise ScarlabError(f"target scores of shape {x.shape} do not match the fit's {fit.mean_a.shape[0]} examples")
    return _log_normal(x, fit.mean_a, fit.std_a) - _log_normal(x, fit.mean_b, fit.std_b)


def held_out_scores(scores_a, scores_b, *, variance: str = "auto",
                    std_floor: float = STD_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-pair-out log-LR: for each shadow pair i, fit on the other K − 1 pairs and score A-model i and
    B-model i. [K, N], [K, N] -> (Λ of the A-models [K, N], Λ of the B-models [K, N]). Needs K ≥ 3."""
    a, b = _pair(scores_a, scores_b, _MIN_HELD_OUT, "the held-out (leave-one-pair-out) attack", paired=True)
    variance = resolve_variance(variance, len(a) - 1)  # "auto" decides on the K − 1 models each fit sees
    lr_a, lr_b = np.empty_like(a), np.empty_like(b)
    keep = np.ones(len(a), bool)
    for i in range(len(a)):
        keep[i] = False
        fit = fit_populations(a[keep], b[keep], variance=variance, std_floor=std_floor)
        lr_a[i], lr_b[i] = likelihood_ratio(a[i], fit), likelihood_ratio(b[i], fit)
        keep[i] = True
    return lr_a, lr_b


# ------------------------------------------------------------------------------------------ ROC

def tpr_at_fpr(fpr, tpr, target: float) -> float:
    """The largest TPR among ROC points with FPR ≤ target (no upward interpolation)."""
    fpr, tpr = np.asarray(fpr, float), np.asarray(tpr, float)
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _roc_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """tpr_at_fpr at every grid point (vectorised: running max of TPR over points sorted by FPR)."""
    order = np.argsort(fpr, kind="stable")
    f, best = fpr[order], np.maximum.accumulate(tpr[order])
    idx = np.searchsorted(f, grid + 1e-12, side="right") - 1
    return np.where(idx >= 0, best[np.maximum(idx, 0)], 0.0)


def _summary(fpr: np.ndarray, tpr: np.ndarray, low_fprs) -> dict:
    return {"auc": float(np.trapezoid(tpr, fpr)), "bacc": float(np.max((tpr + 1 - fpr) / 2)),
            **{f"tpr@{f:g}": tpr_at_fpr(fpr, tpr, f) for f in low_fprs}}


class _PooledROC:
    """Scores of all (model, example) pairs sorted once; ROC points for any weights in O(M).

    A bootstrap resample only reweights shadow pairs and examples, so each resample is a weighted cumulative
    sum over the same order (ties grouped, as sklearn's roc_curve does)."""

    def __init__(self, lr_a: np.ndarray, lr_b: np.ndarray):
        k, n = lr_a.shape
        s = np.concatenate([lr_a.ravel(), lr_b.ravel()])
        model = np.tile(np.repeat(np.arange(k), n), 2)
        example = np.tile(np.arange(n), 2 * k)
        pos = np.r_[np.ones(k * n, bool), np.zeros(k * n, bool)]
        order = np.argsort(-s, kind="stable")
        s, self.model, self.example, self.pos = s[order], model[order], example[order], pos[order]
        self.ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each distinct score

    def curve(self, pair_weights: np.ndarray, example_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = pair_weights[self.model] * example_weights[self.example].astype(float)
        tps = np.cumsum(np.where(self.pos, w, 0.0))[self.ends]
        fps = np.cumsum(np.where(self.pos, 0.0, w))[self.ends]
        return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def _jackknife_scores(a: np.ndarray, b: np.ndarray, variance: str, std_floor: float):
    """Delete-one-pair replicates of the held-out attack, refitted: for each pair k, the leave-one-pair-out
    scores of the other K − 1 pairs with every fit made *without pair k too* (on K − 2 pairs). Yields
    (lr_a, lr_b), each [K − 1, N]. At K = 3 a fit on K − 2 = 1 model has no std: the means are refitted and
    the std of the point estimate's held-out fit (on K − 1, pair k included) is kept."""
    k = len(a)
    fits = [fit_populations(np.delete(a, i, 0), np.delete(b, i, 0), variance=variance, std_floor=std_floor)
            for i in range(k)]  # the point estimate's held-out fits (only their stds are reused, at K = 3)
    for drop in range(k):
        lr_a, lr_b = [], []
        for i in range(k):
            if i == drop:
                continue
            rest = np.ones(k, bool)
            rest[[i, drop]] = False
            if k - 2 >= _MIN_FIT:
                fit = fit_populations(a[rest], b[rest], variance=variance, std_floor=std_floor)
            else:
                fit = GaussianFit(a[rest].mean(0), fits[i].std_a, b[rest].mean(0), fits[i].std_b,
                                  fits[i].variance, k - 2, k - 2)
            lr_a.append(likelihood_ratio(a[i], fit))
            lr_b.append(likelihood_ratio(b[i], fit))
        yield np.array(lr_a), np.array(lr_b)


def _roc_summary(lr_a: np.ndarray, lr_b: np.ndarray, low_fprs) -> tuple[dict, np.ndarray, np.ndarray]:
    labels = np.r_[np.ones(lr_a.size), np.zeros(lr_b.size)]
    scores = np.r_[lr_a.ravel(), lr_b.ravel()]
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {**_summary(fpr, tpr, low_fprs), "auc": float(roc_auc_score(labels, scores))}, fpr, tpr


def _t_half(var: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """Half-width of the t interval (K − 1 degrees of freedom) of an estimate with variance ``var``."""
    return student_t.ppf(1 - alpha / 2, k - 1) * np.sqrt(var)


def _attack(a: np.ndarray, b: np.ndarray, variance: str, std_floor: float, low_fprs, n_boot: int, seed: int,
            extra=None):
    """The held-out attack and its replicates: (point estimates {key: float}, keys, jackknife replicates [K, S]
    or None, example-bootstrap replicates [n_boot, S] or None, fpr, tpr, lr_a, lr_b). Replicates hold the
    statistics in ``keys`` order; a statistic's variance over shadow pairs is (K − 1)/K · Σ (θ₍₋ₖ₎ − mean)².
    ``extra(lr_a, lr_b) -> float``: one more statistic, its jackknife replicate appended as the last column (the
    refitted replicates are the costly part: made once)."""
    lr_a, lr_b = held_out_scores(a, b, variance=variance, std_floor=std_floor)
    k, n = lr_a.shape
    out, fpr, tpr = _roc_summary(lr_a, lr_b, low_fprs)
    keys = list(out)
    if not n_boot:
        return out, keys, None, None, fpr, tpr, lr_a, lr_b
    resolved = resolve_variance(variance, k - 1)
    jack = []
    for ja, jb in _jackknife_scores(a, b, resolved, std_floor):
        r = _summary(*_PooledROC(ja, jb).curve(np.ones(k - 1), np.ones(n)), low_fprs)
        jack.append([r[key] for key in keys] + ([extra(ja, jb)] if extra else []))
    jack = np.array(jack)
    pooled, rng = _PooledROC(lr_a, lr_b), np.random.default_rng(seed)
    ones = np.ones(k)
    boots = np.array([[r[key] for key in keys] for r in
                      (_summary(*pooled.curve(ones, np.bincount(rng.integers(0, n, n), minlength=n)), low_fprs)
                       for _ in range(n_boot))])
    return out, keys, jack, boots, fpr, tpr, lr_a, lr_b


def _jack_var(jack: np.ndarray) -> np.ndarray:
    k = len(jack)
    return (k - 1) / k * ((jack - jack.mean(0)) ** 2).sum(0)


def _boot_var(boots: np.ndarray) -> np.ndarray:
    return boots.var(0, ddof=1) if len(boots) > 1 else np.zeros(boots.shape[1])


def attack_roc(scores_a, scores_b, *, variance: str = "auto", std_floor: float = STD_FLOOR,
               low_fprs=LOW_FPRS, alpha: float = DEFAULT_ALPHA, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The held-out U-LiRA attack over all (model, example) pairs: scores [K, N] of A and of B (K ≥ 3).

    Returns fpr, tpr (the full ROC, sklearn), auc, bacc, tpr@<f> for f in low_fprs, each scalar with
    <key>_low / <key>_high (level 1 − alpha: refitted delete-one-pair jackknife with a t quantile on K − 1
    degrees of freedom, plus an example bootstrap of n_boot resamples; n_boot = 0 gives NaN intervals), n_pos,
    n_neg, and the held-out log-LRs lr_a, lr_b [K, N] (see the module docstring, item 4).
    """
    a, b = _pair(scores_a, scores_b, _MIN_HELD_OUT, "the held-out (leave-one-pair-out) attack", paired=True)
    return _attack_result(_attack(a, b, variance, std_floor, low_fprs, n_boot, seed), alpha, n_boot)


def _attack_result(attack: tuple, alpha: float, n_boot: int) -> dict:
    """attack_roc's result from an attack made by ``_attack`` (an ``extra`` column of its jackknife is ignored)."""
    out, keys, jack, boots, fpr, tpr, lr_a, lr_b = attack
    out, k = dict(out), len(lr_a)
    if n_boot:
        jack = jack[:, :len(keys)]
        half = _t_half(_jack_var(jack) + _boot_var(boots), k, alpha)
    for j, key in enumerate(keys):
        out[f"{key}_low"], out[f"{key}_high"] = (
            (float(max(out[key] - half[j], 0.0)), float(min(out[key] + half[j], 1.0))) if n_boot else
            (float("nan"), float("nan")))
        # the estimate and every jackknife replicate at (within SATURATION of) a bound: the interval would claim a
        # certainty K pairs cannot give, so a one-sided (1 − alpha) bound: all K pairs agreeing is ≥ alpha-likely
        # from p ≥ alpha^(1/K)
        top = n_boot and min(out[key], jack[:, j].min()) >= 1 - SATURATION
        bottom = n_boot and max(out[key], jack[:, j].max()) <= SATURATION
        out[f"{key}_saturated"] = float(bool(top or bottom))
        if top or bottom:
            bound = float(alpha ** (1 / k))
            out[f"{key}_low"], out[f"{key}_high"] = (bound, 1.0) if top else (0.0, 1.0 - bound)
    return {**out, "fpr": fpr, "tpr": tpr, "n_pos": int(lr_a.size), "n_neg": int(lr_b.size),
            "lr_a": lr_a, "lr_b": lr_b}


MEMBERSHIP_STATS = ("auc", "tpr@0.01", "eps_mean")  # forget − control is reported for these


def membership_signal(forget_a, forget_b, control_a, control_b, *, variance: str = "auto",
                      std_floor: float = STD_FLOOR, delta: float = DEFAULT_DELTA, alpha: float = DEFAULT_ALPHA,
                      n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Forget minus control: what the attack finds on the forget examples beyond what it finds on examples that
    no model of either population trained on (module docstring, item 8).

    forget_a, forget_b [K, N_f] and control_a, control_b [K, N_c]: the same K shadow pairs (row i of every
    array is pair i) scored on the forget examples and on the control examples. Returns, for s in
    MEMBERSHIP_STATS (AUC and TPR at 1 % FPR of the held-out attack, mean per-example ε): forget/<s>,
    control/<s> and membership/<s> = forget − control, each membership value with _low/_high (level 1 − alpha):
    t interval on K − 1 df, variance = delete-one-pair jackknife of the difference (pair k dropped from both
    attacks at once, every fit refitted) + the example-bootstrap variance of each side (forget and control
    examples resampled independently). Not clipped: the difference lies in [−1, 1] (ε: unbounded)."""
    fa, fb = _pair(forget_a, forget_b, _MIN_HELD_OUT, "the membership signal", paired=True)
    ca, cb = _pair(control_a, control_b, _MIN_HELD_OUT, "the membership signal", paired=True)
    _same_pairs(fa, ca)
    low = tuple(float(s.split("@")[1]) for s in MEMBERSHIP_STATS if s.startswith("tpr@"))
    sides = [_membership_side(_attack(a, b, variance, std_floor, low, n_boot, seed, extra=_mean_eps(delta, alpha)),
                              None, delta, alpha, n_boot, seed) for a, b in ((fa, fb), (ca, cb))]
    return _membership_result(*sides, len(fa), alpha, n_boot)


def _same_pairs(forget_a: np.ndarray, control_a: np.ndarray) -> None:
    if len(forget_a) != len(control_a):
        raise ScarlabError(f"forget and control are scored by different shadow pairs (K={len(forget_a)} and "
                           f"K={len(control_a)}): score both with the same models")


def _mean_eps(delta: float, alpha: float):
    """The ``extra`` statistic of the membership signal's attacks: mean per-example ε of held-out log-LRs."""
    def mean_eps(lr_a, lr_b):
        return float(epsilon(lr_a, lr_b, delta=delta, alpha=alpha).mean())
    return mean_eps


def _membership_side(attack: tuple, eps, delta: float, alpha: float, n_boot: int, seed: int) -> tuple:
    """(point [S], jackknife [K, S], bootstrap [n_boot, S]) of MEMBERSHIP_STATS on one side, from its attack made
    with ``extra=_mean_eps`` (ε's jackknife column); ``eps``: its per-example ε when already computed (else None)."""
    out, keys, jack, boots, _, _, lr_a, lr_b = attack
    if eps is None:
        eps = epsilon(lr_a, lr_b, delta=delta, alpha=alpha)
    point = np.array([out[s] for s in MEMBERSHIP_STATS[:-1]] + [eps.mean()])
    cols = [keys.index(s) for s in MEMBERSHIP_STATS[:-1]]
    if n_boot:
        jack = np.column_stack([jack[:, cols], jack[:, -1]])
        rng = np.random.default_rng(seed + 1)
        boot_eps = eps[rng.integers(0, len(eps), (n_boot, len(eps)))].mean(1)
        boots = np.column_stack([boots[:, cols], boot_eps])
    return point, jack, boots


def _membership_result(forget: tuple, control: tuple, k: int, alpha: float, n_boot: int) -> dict:
    """membership_signal's result from the two sides' (point, jackknife, bootstrap) (``_membership_side``)."""
    (pf, jf, bf), (pc, jc, bc) = forget, control
    diff = pf - pc
    res = {}
    if n_boot:
        half = _t_half(_jack_var(jf - jc) + _boot_var(bf) + _boot_var(bc), k, alpha)
    for j, s in enumerate(MEMBERSHIP_STATS):
        res[f"forget/{s}"], res[f"control/{s}"] = float(pf[j]), float(pc[j])
        res[f"membership/{s}"] = float(diff[j])
        res[f"membership/{s}_low"], res[f"membership/{s}_high"] = (
            (float(diff[j] - half[j]), float(diff[j] + half[j])) if n_boot else (float("nan"), float("nan")))
        # a control already at the top (AUC or TPR 1) leaves the forget side no room: the signal cannot show
        res[f"membership/{s}_masked"] = float(s != "eps_mean" and pc[j] >= 1.0)
    return res


def example_auc(scores_a, scores_b) -> np.ndarray:
    """Per-example AUC of A vs B over the models: P(s_A > s_B) + ½ P(tie), [K_A, N], [K_B, N] -> [N]."""
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    d = a[:, None, :] - b[None, :, :]
    return (d > 0).mean((0, 1)) + 0.5 * (d == 0).mean((0, 1))


# ------------------------------------------------------------------------------------------ ε

def clopper_pearson(k, n, alpha: float = DEFAULT_ALPHA):
    """Two-sided (1 − alpha) Clopper–Pearson interval of a binomial rate: k successes of n -> (low, high).

    low = Beta⁻¹(alpha/2; k, n − k + 1), 0 at k = 0; high = Beta⁻¹(1 − alpha/2; k + 1, n − k), 1 at k = n.
    Works elementwise on arrays (floats for scalar input)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ScarlabError(f"clopper_pearson needs 0 ≤ k ≤ n and n ≥ 1 (k={k}, n={n})")
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def epsilon_from_counts(fp, fn, n_neg: int, n_pos: int, *, delta: float = DEFAULT_DELTA,
                        alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """ε of each decision rule from its error counts: max(log((1−δ−FPR⁺)/FNR⁺), log((1−δ−FNR⁺)/FPR⁺)),
    the rates at their upper Clopper–Pearson bound (module docstring, item 6). Not floored at 0; −inf where
    both numerators are ≤ 0."""
    fpr = clopper_pearson(np.arange(n_neg + 1), n_neg, alpha)[1][np.asarray(fp)]
    fnr = clopper_pearson(np.arange(n_pos + 1), n_pos, alpha)[1][np.asarray(fn)]
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(np.maximum(1 - delta - fpr, 0.0)) - np.log(fnr)
        e2 = np.log(np.maximum(1 - delta - fnr, 0.0)) - np.log(fpr)
    return np.maximum(e1, e2)


def epsilon(scores_a, scores_b, *, delta: float = DEFAULT_DELTA, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Per-example Clopper–Pearson-bounded ε estimate (scarlab's, conservative; not a certified bound; not the
    competition's, which is scarlab.metrics.competition.competition_epsilon):
    [K_A, N] (A = positive), [K_B, N] -> [N].

    Every threshold rule "A iff s ≥ t" and its reverse on each example's K_A + K_B scores; ε ≥ 0."""
    a = _population(scores_a, "population A (target)", 1, "ε")
    b = _population(scores_b, "population B (retrained)", 1, "ε")
    if a.shape[1] != b.shape[1]:
        raise ScarlabError(f"the populations score different examples: A has N={a.shape[1]}, B has N={b.shape[1]}")
    n = a.shape[1]
    t = np.concatenate([a, b, np.full((1, n), np.inf)])[:, None, :]  # [T, 1, N] candidate thresholds
    fn = (a[None] < t).sum(1)  # [T, N] positives below t: missed by "A iff s ≥ t"
    fp = (b[None] >= t).sum(1)  # negatives at or above t: false alarms
    ka, kb = len(a), len(b)
    e = np.maximum(epsilon_from_counts(fp, fn, kb, ka, delta=delta, alpha=alpha),
                   epsilon_from_counts(kb - fp, ka - fn, kb, ka, delta=delta, alpha=alpha))  # the reversed rule
    return np.maximum(e.max(0), 0.0)


def epsilon_ceiling(k_a: int, k_b: int, *, delta: float = DEFAULT_DELTA, alpha: float = DEFAULT_ALPHA) -> float:
    """The largest ε K_A and K_B models can show: that of a rule with no errors at all."""
    return max(0.0, float(epsilon_from_counts(0, 0, k_b, k_a, delta=delta, alpha=alpha)))


@functools.lru_cache(maxsize=64)
def epsilon_chance(k: int, *, delta: float = DEFAULT_DELTA, alpha: float = DEFAULT_ALPHA, n: int = 2000,
                   seed: int = 0) -> float:
    """Mean ε the audit reads on K pairs of indistinguishable populations: the held-out attack (held_out_scores)
    and ε run on A and B drawn from one Gaussian per example (unit variance), n examples. The best rule is picked
    on the same few scores, and the held-out log-LRs of a pair share their fit, so this is well above 0 (item 6).
    Measured (5 seeds, 1,000 examples): K = 8: 0.005, K = 16: 0.039, K = 32: 0.11 with one variance for all
    examples; about half that (0.017 at K = 16) when the examples' variances differ (log-sd spread 1), which the
    pooled variance below 64 models misfits: read it as the level to compare a mean ε with, not as exact."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, n)
    lr_a, lr_b = held_out_scores(mu + rng.standard_normal((k, n)), mu + rng.standard_normal((k, n)))
    return float(epsilon(lr_a, lr_b, delta=delta, alpha=alpha).mean())


def _boot_interval(x: np.ndarray, stat, alpha: float, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap interval (level 1 − alpha) of stat(x) over resampled examples, in chunks."""
    if n_boot == 0 or len(x) == 0:
        return float("nan"), float("nan")
    vals = np.concatenate([stat(x[rng.integers(0, len(x), (m, len(x)))], axis=1)
                           for m in np.diff(np.r_[np.arange(0, n_boot, 64), n_boot])])
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))


# ------------------------------------------------------------------------------------------ the audit

def audit_scores(scores_target_pop, scores_retrained_pop, *, target=None, delta: float = DEFAULT_DELTA,
                 alpha: float = DEFAULT_ALPHA, variance: str = "auto", std_floor: float = STD_FLOOR,
                 low_fprs=LOW_FPRS, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """U-LiRA audit of one population against the retrained oracles: scores [K, N] each (scaled logits, K ≥ 3 pairs).

    Scalars (floats): ulira/auc, ulira/tpr@0.01, ulira/tpr@0.001, ulira/bacc, each with _low/_high (t interval:
    refitted delete-one-pair jackknife + example bootstrap, module docstring item 4); ulira/eps_mean,
    ulira/eps_median, ulira/eps_max with _low/_high (bootstrap over examples);
    ulira/eps_ceiling, ulira/eps_chance (mean ε of indistinguishable populations), ulira/frac_eps_pos (share
    of examples with ε > 0), ulira/k, ulira/n_examples, ulira/delta, ulira/alpha, ulira/variance
    ("global"/"per_example", as resolved for fits on K − 1).
    Arrays: ulira/roc_fpr, ulira/roc_tpr (ROC_GRID and the conservative TPR there, for log axes);
    ulira/log_lr_a, ulira/log_lr_b [K, N] (held-out Λ); ulira/eps [N]; ulira/example_auc [N].
    With target (its scaled logits [N]): ulira/target_log_lr [N] (fit on all K) and
    ulira/target_flagged@0.01 (share of examples above the held-out threshold of FPR ≤ 1 %).
    """
    roc = attack_roc(scores_target_pop, scores_retrained_pop, variance=variance, std_floor=std_floor,
                     low_fprs=low_fprs, alpha=alpha, n_boot=n_boot, seed=seed)
    return _audit_result(roc, scores_target_pop, scores_retrained_pop, target, delta=delta, alpha=alpha,
                         variance=variance, std_floor=std_floor, low_fprs=low_fprs, n_boot=n_boot, seed=seed)


def _audit_result(roc: dict, scores_target_pop, scores_retrained_pop, target, *, delta: float, alpha: float,
                  variance: str, std_floor: float, low_fprs, n_boot: int, seed: int) -> dict:
    """audit_scores' result from the attack's (attack_roc's) result on the same scores."""
    lr_a, lr_b = roc["lr_a"], roc["lr_b"]
    k, n = lr_a.shape
    eps = epsilon(lr_a, lr_b, delta=delta, alpha=alpha)
    rng = np.random.default_rng(seed + 1)
    out = {f"ulira/{key}": v for key, v in roc.items() if np.isscalar(v) and not key.startswith("n_")}
    for name, stat in (("mean", np.mean), ("median", np.median), ("max", np.max)):
        out[f"ulira/eps_{name}"] = float(stat(eps))
        out[f"ulira/eps_{name}_low"], out[f"ulira/eps_{name}_high"] = _boot_interval(eps, stat, alpha, n_boot, rng)
    variance = resolve_variance(variance, k - 1)  # the held-out fits' choice, kept for the fit on all K
    fit = fit_populations(scores_target_pop, scores_retrained_pop, variance=variance, std_floor=std_floor)
    min_fpr = 1.0 / lr_b.size  # one false positive among the K·N held-out negatives
    for f in low_fprs:  # below one false positive, "TPR at f" is the TPR at zero false positives: not f's
        out[f"ulira/tpr@{f:g}_k_needed"] = float(math.ceil(1 / (f * n)))
        if f < min_fpr:
            for end in ("", "_low", "_high"):
                out[f"ulira/tpr@{f:g}{end}"] = float("nan")
    grid = np.unique(np.r_[min_fpr, ROC_GRID[ROC_GRID >= min_fpr]])  # drawn only where the negatives resolve
    out.update({"ulira/min_fpr": min_fpr, "ulira/eps_ceiling": epsilon_ceiling(k, k, delta=delta, alpha=alpha),
                "ulira/eps_chance": epsilon_chance(k, delta=float(delta), alpha=float(alpha)),
                "ulira/frac_eps_pos": float(np.mean(eps > 0)), "ulira/k": k, "ulira/n_examples": n,
                "ulira/delta": float(delta), "ulira/alpha": float(alpha), "ulira/variance": fit.variance,
                "ulira/roc_fpr": grid, "ulira/roc_tpr": _roc_on_grid(roc["fpr"], roc["tpr"], grid),
                "ulira/log_lr_a": lr_a, "ulira/log_lr_b": lr_b, "ulira/eps": eps,
                "ulira/example_auc": example_auc(lr_a, lr_b)})
    if target is not None:
        x = np.asarray(target, float).ravel()
        if not np.isfinite(x).all():
            raise ScarlabError(f"the target model gave {int((~np.isfinite(x)).sum())} non-finite scores; rerun it")
        lam = likelihood_ratio(x, fit)
        out["ulira/target_log_lr"] = lam
        out["ulira/target_flagged@0.01"] = float(np.mean(lam > flag_threshold(lr_b, 0.01)))
    return out


def flag_threshold(lr_b, fpr: float = 0.01) -> float:
    """The held-out B log-LR Λ above which at most ``fpr`` of the B scores lie: a target's Λ above it is flagged
    (``ulira/target_flagged@<fpr>``)."""
    neg = np.sort(np.asarray(lr_b, float).ravel())[::-1]
    m = int(np.floor(fpr * len(neg) + 1e-9))
    return float(neg[m]) if m < len(neg) else -math.inf


def audit_with_control(forget_a, forget_b, control_a, control_b, *, target=None, control_target=None,
                       delta: float = DEFAULT_DELTA, alpha: float = DEFAULT_ALPHA, variance: str = "auto",
                       std_floor: float = STD_FLOOR, n_boot: int = N_BOOT, seed: int = 0) -> tuple[dict, dict, dict]:
    """(audit_scores of the forget examples, audit_scores of the control examples, membership_signal of the two),
    equal to those three calls with the same options, with each side's held-out attack (the leave-one-pair-out
    fits, the K refitted jackknife replicates, the example bootstrap, the per-example ε) made once instead of twice:
    the membership signal's statistics are columns of the attacks the audit reports (LOW_FPRS holds its 1 % FPR)."""
    fa, fb = _pair(forget_a, forget_b, _MIN_HELD_OUT, "the held-out (leave-one-pair-out) attack", paired=True)
    ca, cb = _pair(control_a, control_b, _MIN_HELD_OUT, "the held-out (leave-one-pair-out) attack", paired=True)
    _same_pairs(fa, ca)
    opts = {"delta": delta, "alpha": alpha, "variance": variance, "std_floor": std_floor, "low_fprs": LOW_FPRS,
            "n_boot": n_boot, "seed": seed}
    results, sides = [], []
    for (a, b), t in (((fa, fb), target), ((ca, cb), control_target)):
        attack = _attack(a, b, variance, std_floor, LOW_FPRS, n_boot, seed, extra=_mean_eps(delta, alpha))
        res = _audit_result(_attack_result(attack, alpha, n_boot), a, b, t, **opts)
        results.append(res)
        sides.append(_membership_side(attack, res["ulira/eps"], delta, alpha, n_boot, seed))
    return results[0], results[1], _membership_result(*sides, len(fa), alpha, n_boot)
