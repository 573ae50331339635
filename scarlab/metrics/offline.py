"""Offline membership scores of ONE model against reference models that never trained on the examples: offline LiRA
and offline RMIA, and the membership signal forget vs control they give.

Pure functions: numpy arrays in, numbers / numpy arrays / flat dicts out. Scores are scaled true-class logits φ
(:func:`scarlab.metrics.ulira.scaled_logit`); p = sigmoid(φ) is the true-class softmax probability exactly.

Sources (written from the papers' descriptions and the RMIA authors' reference code, facts only):
  * offline LiRA — Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022, the offline
    variant: only OUT models; per example a Gaussian N(μ_out, σ_out²) of φ over them, and a one-sided test
    Λ = Pr[Z < φ_target], Z ~ N(μ_out, σ_out²) (large: the target is more confident than OUT models would be); with
    few shadow models one fixed (global) σ_out works better than per-example variances.
  * offline RMIA — Zarifzadeh, Liu, Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML 2024:
    LR(x, z) = (Pr(x|θ) / Pr(x)) / (Pr(z|θ) / Pr(z)), score(x) = Pr_{z ~ population}[LR(x, z) > γ] (γ = 1 by default
    in the authors' privacy-meter documentation); Pr(x) = ½ (Pr_IN(x) + Pr_OUT(x)) over reference models, and
    offline (OUT models only) Pr_IN(x) ≈ a·Pr_OUT(x) + (1 − a), 0 ≤ a ≤ 1, so Pr(x) = ½ ((1 + a)·Pr_OUT(x) + 1 − a).
    a is chosen by a grid search: a reference model is set as a temporary target and attacked with the others, and
    the a with the highest AUC is kept (the authors' code: a in 0, 0.1, ..., 1; "when unknown, a = 1").

The unlearning question (how scarlab.audit.offline applies them)
-----------------------------------------------------------------
Target θ = the audited model (unlearned, retrained or original). Reference models = the K retrained shadows: they
never trained on the forget examples nor on any test image, so every example scored here is OUT for every reference
model. Members = the audited model's forget examples (its original trained on them); non-members = the *control*
examples (test images: class removal, the forget classes' test images; random removal, as many test images), OUT
for the target and for every reference. RMIA's population z = a seeded sample of ``n_population`` test images (all of
them when fewer): OUT for the target and for every reference model, as the paper's z are (retain images are IN for
every model and cannot serve as z). The sample may hold control examples: those are then scored against the other
M − 1 (never against themselves). Including them matters in class removal: there the forget class's test images are
the only z of the forget examples' own class, and without them a model-wide shift of the class would push every
forget and control score to 0 or 1 together (ties, no resolution).

1. Offline LiRA (``lira_offline``): z[n] = (φ_target[n] − μ_out[n]) / σ_out, μ_out[n] the mean of the K reference φ,
   σ_out = sqrt(mean over the forget and control examples together of the per-example variance (ddof 1)), floored
   at ulira.STD_FLOOR; one σ for both sides so forget and control read on one scale. Φ(z) is the paper's Λ; z ranks
   the same and keeps its resolution. ``flagged@0.01`` = share with z > Φ⁻¹(0.99) (one-sided p < 0.01).
2. Offline RMIA (``rmia_offline``): p = sigmoid(φ); Pr_OUT(x) = mean over references of p; Pr(x) as above; the
   score of x is the share of the population z with ratio_x / ratio_z > γ, ratio = p_target / Pr (in log space).
   Given a fixed z sample, the score is a non-decreasing function of ratio_x. ``flagged@0.01`` = share with
   score > 0.99 (x above 99 % of the population).
3. Choosing a (``choose_rmia_a``): the paper's procedure needs a model that trained on the examples it attacks and
   references that did not. No retrained shadow trained on a forget example, so the temporary target is the split's
   *original* model (trained on the forget examples; shared by every method and variant on the split, and not the
   audited model): a = argmax over A_GRID of the AUC of its RMIA scores, forget (members) vs control (non-members),
   with the K retrained shadows as references; ties go to the smallest a. In class removal the references never saw
   the forgotten class, so Pr_OUT ≈ 0 on every forget and control example and any a < 1 makes Pr(x) ≈ (1 − a)/2, a
   constant (RMIA then ranks by the target's own probability); only a = 1 calibrates each example by its
   references, and the search picks it there (BENCHMARKS.md §8).
4. Membership signal of one model (``membership``): the scores of its forget examples against those of its control
   examples. ``auc`` = P(s_forget > s_control) + ½ P(tie) (0.5: the forget examples look no more trained-on, relative
   to retrained models, than test images of the same kind; 1: every forget example does); ``tpr@0.01`` = share of
   forget scores above the control scores' 99th percentile (NaN when fewer than 100 control examples: the FPR cannot
   be resolved). A model-wide change (say, a forgotten class's logits all lower) moves forget and control alike and
   cancels here, as in the online membership signal. Interval (level 1 − alpha): estimate ± t(K−1, 1 − alpha/2)·SE,
   SE² = delete-one-reference jackknife variance (every fit and, for RMIA, Pr_OUT re-made without reference k; a
   kept fixed) + example-bootstrap variance (forget and control resampled independently), clipped to [0, 1].
   ``forget/mean``, ``control/mean`` (mean score) and ``forget/flagged@0.01``, ``control/flagged@0.01`` are the
   model-level readings of each side; the control's flagged share is not ≈ 0.01 when the target differs from the
   retrained models model-wide, which is why the membership signal compares the two sides.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import log_expit, logsumexp
from scipy.stats import norm, rankdata

from ..errors import ScarlabError
from .ulira import DEFAULT_ALPHA, N_BOOT, STD_FLOOR, _jack_var, _t_half

ATTACKS = ("lira", "rmia")
A_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # RMIA's a searched as in the authors' code
GAMMA = 1.0  # RMIA's γ: x beats z when LR(x, z) > γ (the privacy-meter documentation's default)
FLAG_FPR = 0.01
MIN_RESOLVED = 100  # control examples needed to resolve TPR at 1 % FPR


def check_a(a) -> float:
    """a as a float in [0, 1], or a ScarlabError."""
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0 or a != a:
        raise ScarlabError(f"RMIA's a must be a number in [0, 1] (Pr_IN ≈ a·Pr_OUT + 1 − a), got {a!r}")
    return float(a)


def check_population(n) -> int:
    """n, the population sample size, as an int ≥ 1, or a ScarlabError."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ScarlabError(f"RMIA's population sample size must be a whole number ≥ 1 (test images compared with "
                           f"each forget example), got {n!r}")
    return n


def _ref(ref, n: int, name: str) -> np.ndarray:
    r = np.asarray(ref, np.float64)
    if r.ndim != 2 or r.shape[1] != n or len(r) < 2:
        raise ScarlabError(f"{name}: expected reference scores [K ≥ 2 models, {n} examples], got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ScarlabError(f"{name}: {int((~np.isfinite(r)).sum())} non-finite reference scores; rerun those models")
    return r


def _target(x, name: str) -> np.ndarray:
    t = np.asarray(x, np.float64).ravel()
    if not np.isfinite(t).all():
        raise ScarlabError(f"{name}: the target model gave {int((~np.isfinite(t)).sum())} non-finite scores")
    return t


def lira_offline(targets, refs, *, std_floor: float = STD_FLOOR) -> list[np.ndarray]:
    """Offline LiRA z-scores of several example sets with one pooled σ_out: targets = [φ [N_i]], refs = [[K, N_i]]
    (the same K reference models on each set) -> [z [N_i]] (item 1)."""
    ts = [_target(t, "offline LiRA") for t in targets]
    rs = [_ref(r, len(t), "offline LiRA") for t, r in zip(ts, refs)]
    var = np.concatenate([r.var(0, ddof=1) for r in rs])
    sigma = max(math.sqrt(var.mean()), std_floor)
    return [(t - r.mean(0)) / sigma for t, r in zip(ts, rs)]


def _log_ratio(target: np.ndarray, ref: np.ndarray, a: float) -> np.ndarray:
    """log(p_target / Pr(x)), Pr(x) = ½((1 + a)·Pr_OUT(x) + 1 − a), Pr_OUT = mean of the references' p."""
    log_out = logsumexp(log_expit(ref), axis=0) - math.log(len(ref))
    parts = [math.log1p(a) + log_out]
    if a < 1:
        parts.append(np.full_like(log_out, math.log1p(-a)))
    return log_expit(target) - (np.logaddexp.reduce(parts, axis=0) + math.log(0.5))


def rmia_offline(targets, refs, pop_target, pop_ref, *, a: float, gamma: float = GAMMA,
                 in_pop=None) -> list[np.ndarray]:
    """Offline RMIA scores in [0, 1] of several example sets against one population sample: targets = [φ [N_i]],
    refs = [[K, N_i]], pop_target φ [M], pop_ref [K, M] -> [score [N_i]] (item 2). ``in_pop`` = [positions [N_i] in
    the population, −1 where not in it] (or None per set): an example that is itself a population sample is scored
    against the other M − 1 (its own ratio is read from the population, so it never counts against itself)."""
    a = check_a(a)
    zt = _target(pop_target, "RMIA population")
    if len(zt) == 0:
        raise ScarlabError("RMIA needs at least one population sample z; got 0")
    pop_lr = _log_ratio(zt, _ref(pop_ref, len(zt), "RMIA population"), a)
    pop = np.sort(pop_lr)
    out = []
    for i, (t, r) in enumerate(zip(targets, refs)):
        t = _target(t, "offline RMIA")
        lr = _log_ratio(t, _ref(r, len(t), "offline RMIA"), a)
        pos = np.full(len(t), -1) if in_pop is None or in_pop[i] is None else np.asarray(in_pop[i], np.int64)
        lr = np.where(pos >= 0, pop_lr[np.maximum(pos, 0)], lr)
        # share of z with ratio_z < ratio_x / γ (strict: x never counts against itself)
        out.append(np.searchsorted(pop, lr - math.log(gamma), side="left") / (len(pop) - (pos >= 0)))
    return out


def auc(pos, neg) -> float:
    """P(s_pos > s_neg) + ½ P(tie) (the Mann–Whitney AUC)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def choose_rmia_a(forget, control, ref_forget, ref_control, pop_target, pop_ref, grid=A_GRID, *,
                  control_in_pop=None) -> tuple[float, dict]:
    """The paper's choice of a (item 3): the a in ``grid`` whose RMIA scores of a model that trained on the forget
    examples (its φ: forget [N_f], control [N_c]) separate forget from control best, with the references' scores
    [K, N_f], [K, N_c] and the population's (``control_in_pop``: as rmia_offline's in_pop). Returns (a, {a: AUC})."""
    aucs = {}
    for a in grid:
        f, c = rmia_offline([forget, control], [ref_forget, ref_control], pop_target, pop_ref, a=a,
                            in_pop=[None, control_in_pop])
        aucs[float(a)] = auc(f, c)
    best = max(aucs.values())
    return min(a for a, v in aucs.items() if v == best), aucs


def _stats(f: np.ndarray, c: np.ndarray, flag_at: float) -> np.ndarray:
    """[auc, tpr@0.01, forget mean, control mean, forget flagged, control flagged] of one scoring."""
    thr = np.quantile(c, 1 - FLAG_FPR) if len(c) >= MIN_RESOLVED else np.nan
    return np.array([auc(f, c), float(np.mean(f > thr)) if thr == thr else np.nan, f.mean(), c.mean(),
                     np.mean(f > flag_at), np.mean(c > flag_at)])


STATS = ("auc", "tpr@0.01", "forget/mean", "control/mean", "forget/flagged@0.01", "control/flagged@0.01")


def membership(score, refs: list[np.ndarray], flag_at: float, *, alpha: float = DEFAULT_ALPHA,
               n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The membership signal of one target (item 4). ``score(refs)`` -> (forget scores [N_f], control scores [N_c])
    scores the target against reference arrays ``refs`` (each [K, ·], row k = reference model k); it is called once
    with all K and once per k with row k left out (the jackknife). ``flag_at``: the score above which an example
    counts as flagged at 1 %. Returns STATS as keys (auc and tpr@0.01 with _low/_high), n_forget, n_control, k,
    min_fpr, and the per-example arrays forget, control."""
    k = len(refs[0])
    if k < 3:
        raise ScarlabError(f"the offline audit's intervals need K ≥ 3 reference models (a jackknife over them, one std "
                           f"per fit), got {k}")
    f, c = score(refs)
    point = _stats(f, c, flag_at)
    jack = np.array([_stats(*score([np.delete(r, i, axis=0) for r in refs]), flag_at)[:2] for i in range(k)])
    rng = np.random.default_rng(seed)
    boots = np.array([_stats(f[rng.integers(0, len(f), len(f))], c[rng.integers(0, len(c), len(c))], flag_at)[:2]
                      for _ in range(n_boot)]) if n_boot else np.zeros((0, 2))
    var = _jack_var(jack) + (boots.var(0, ddof=1) if len(boots) > 1 else 0.0)
    half = _t_half(var, k, alpha)
    out = {key: float(v) for key, v in zip(STATS, point)}
    for j, key in enumerate(STATS[:2]):
        ok = point[j] == point[j] and n_boot
        out[f"{key}_low"] = float(np.clip(point[j] - half[j], 0, 1)) if ok else float("nan")
        out[f"{key}_high"] = float(np.clip(point[j] + half[j], 0, 1)) if ok else float("nan")
    return {**out, "n_forget": len(f), "n_control": len(c), "k": k, "min_fpr": 1.0 / len(c),
            "forget": f, "control": c}


LIRA_FLAG = float(norm.isf(FLAG_FPR))  # z above it: one-sided p < 0.01 under the OUT Gaussian
RMIA_FLAG = 1 - FLAG_FPR  # score above it: x beats 99 % of the population


def offline_audit(target_f, target_c, ref_f, ref_c, *, pop_target=None, pop_ref=None, a: float | None = None,
                  control_in_pop=None, alpha: float = DEFAULT_ALPHA, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Offline LiRA and (with a population and a) RMIA membership of one target: its φ on the forget [N_f] and control
    [N_c] examples, the K references' [K, N_f], [K, N_c], the population's φ [M] and [K, M] (``control_in_pop``: the
    control examples' positions in it, −1 where absent; rmia_offline). Returns
    {"lira": membership(...), "rmia": membership(...)} (rmia only when a is given)."""
    ref_f, ref_c = np.asarray(ref_f, float), np.asarray(ref_c, float)
    out = {"lira": membership(lambda r: tuple(lira_offline([target_f, target_c], r)), [ref_f, ref_c], LIRA_FLAG,
                              alpha=alpha, n_boot=n_boot, seed=seed)}
    if a is not None:
        pop_ref = np.asarray(pop_ref, float)
        out["rmia"] = membership(
            lambda r: tuple(rmia_offline([target_f, target_c], r[:2], pop_target, r[2], a=a,
                                         in_pop=[None, control_in_pop])),
            [ref_f, ref_c, pop_ref], RMIA_FLAG, alpha=alpha, n_boot=n_boot, seed=seed)
    return out
