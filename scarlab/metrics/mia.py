"""Membership-inference attacks and an ε-style privacy score (the SCAR paper's metrics).

Three families, each returning a flat dict with namespaced keys:
  * ``mia_svc``       — the SCAR/DUCK paper protocol: RBF-SVC on softmax vectors, grid-searched, 5 repeats, the
                        paper's member / non-member sets re-drawn every repeat (``paper_mia_draw``).
  * ``mia_loss_lr``   — NeurIPS-2023 unlearning challenge: logistic regression on per-sample loss, 10-fold CV.
  * ``privacy_score`` — Unlearning-Comparator style: threshold attacks on entropy / confidence separating the
                        unlearned model from the retrained oracle on the forget set, turned into ε and a [0, 1] score.
``cheap_mia`` bundles the two fast attacks for MIA-over-steps curves. Member = positive class throughout.
Too few samples to run an attack gives NaN values, never an exception (as ``accuracy`` does for empty input).

Chance level — what an attack with no signal scores — differs between attacks (``attack_chance``):
  * ``mia/svc/acc``: the majority fraction of its evaluation set, recorded as ``mia/svc/chance`` (CR sets are
    up to 3:1, chance 0.75; HR sets are 1:1, chance 0.5). The paper's "F1" is this accuracy (micro-F1);
    ``mia/svc/delta_f1`` = |acc·100 − 50| is its HR ΔF1, ≈ 0 without signal.
  * ``mia/loss_lr/acc``: balanced (the larger set is subsampled), chance 0.5.
  * ``mia/conf_thr/acc``: a balanced accuracy, chance 0.5 (in-sample, so slightly above 0.5 without signal).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.stats import beta
from sklearn import config_context
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score, roc_curve
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.svm import SVC

from ..errors import choose
from .accuracy import SCENARIOS

PROB_CLIP = 1e-12  # floor for probabilities inside logs: a sure-and-wrong prediction costs −log(1e-12) ≈ 27.6, not inf
SVC_GRID = {"C": (1, 5, 10, 100), "gamma": (1, 0.1, 0.01)}  # the paper's grid
PRIVACY_ALPHA = 0.05  # one-sided level of the Clopper–Pearson bounds in privacy_score
BALANCED_CHANCE = 0.5  # chance accuracy of the balanced attacks (loss LR, confidence threshold)
# each attack accuracy -> its chance level: a metric key to read it from, or a constant
CHANCE = {"mia/svc/acc": "mia/svc/chance", "mia/loss_lr/acc": BALANCED_CHANCE, "mia/conf_thr/acc": BALANCED_CHANCE}


def attack_chance(metrics: dict) -> dict:
    """{attack accuracy key: its chance level} for the attacks in ``metrics`` (NaN where it is not recorded)."""
    out = {}
    for key, chance in CHANCE.items():
        if key in metrics:
            v = metrics.get(chance) if isinstance(chance, str) else chance
            out[key] = float(v) if v is not None else float("nan")
    return out


def per_sample_loss(probs, labels) -> np.ndarray:
    """Cross-entropy −log p[y]. probs: [N, K] softmax rows, labels: [N] ints -> [N] float (p clipped at PROB_CLIP)."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, np.int64)
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], PROB_CLIP, 1.0))


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most n rows of x, drawn without replacement (x itself when it is already small enough)."""
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def _nan_dict(keys) -> dict:
    return {k: float("nan") for k in keys}


def _std(v) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


# ------------------------------------------------------------------------------------------ paper protocol (SVC)

def paper_mia_draw(n_member_pool: int, n_nonmember_pool: int, scenario: str,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One draw of the paper's member / non-member sets, as sorted indices into the two pools.

    CR: members = at most 3× as many forget-class train samples as there are non-members (random subset);
        non-members = every forget-class test sample. Sets up to 3:1, chance = the majority fraction (0.75).
    HR: non-members = a random half (⌊N/2⌋) of the test set; members = as many forget samples (random subset),
        so the sets are 1:1 and chance = 0.5. A forget set smaller than that half keeps every forget sample and
        takes as many of the half's test samples.
    ``mia_svc`` calls this once per repeat with one generator, so every repeat sees a fresh draw.
    """
    choose("scenario", scenario, SCENARIOS)
    if scenario == "CR":
        nm = np.arange(n_nonmember_pool)
        n_m = min(n_member_pool, 3 * n_nonmember_pool)
    else:
        half = rng.choice(n_nonmember_pool, n_nonmember_pool // 2, replace=False)
        n_m = min(n_member_pool, len(half))
        nm = np.sort(half[:n_m])  # a random subset of the half (the whole half unless the forget set is smaller)
    m = np.arange(n_member_pool) if n_m == n_member_pool else np.sort(rng.choice(n_member_pool, n_m, replace=False))
    return m, nm


def paper_mia_sets(probs_forget_train, probs_forget_test_or_test, scenario: str, seed=0):
    """One draw of the paper's sets -> (members [M, K], non_members [N, K]) (see ``paper_mia_draw``).

    probs_forget_train: softmax rows of the forget samples (CR: the forget-class train samples);
    probs_forget_test_or_test: CR: the forget-class test samples, HR: the whole test set.
    seed: an int or a ``np.random.Generator``. ``mia_svc(..., scenario=...)`` re-draws these every repeat.
    """
    members, non_members = np.asarray(probs_forget_train, float), np.asarray(probs_forget_test_or_test, float)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    m, nm = paper_mia_draw(len(members), len(non_members), scenario, rng)
    return members[m], non_members[nm]


def _svc_grid_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    """Same as ``GridSearchCV(SVC(kernel='rbf'), SVC_GRID, cv=3).fit(x_tr, y_tr).predict(x_te)``, ~2-3× faster.

    Why not GridSearchCV itself: with 1000+1000 samples it takes 12-16 s, because libsvm re-evaluates the
    RBF kernel for every fit. Here squared distances are computed once with BLAS and every (C, γ) fit uses
    the precomputed kernel exp(−γ·d²) (sklearn's rbf_kernel formula). Folds (StratifiedKFold(3), unshuffled),
    selection by mean fold accuracy with ties going to the first grid point (C outer, γ inner), and the refit
    on all of x_tr match GridSearchCV; tests/test_metrics.py checks the agreement.
    """
    with config_context(assume_finite=True):  # skips a finiteness scan of every kernel matrix (~20 % of the time)
        return _svc_grid_predict_unchecked(x_tr, y_tr, x_te)


def _svc_grid_predict_unchecked(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    d2 = euclidean_distances(x_tr, squared=True)
    grid = [(c, g) for c in SVC_GRID["C"] for g in SVC_GRID["gamma"]]
    fold_acc = {p: [] for p in grid}
    for tr, va in StratifiedKFold(3).split(x_tr, y_tr):
        d_tr, d_va = d2[np.ix_(tr, tr)], d2[np.ix_(va, tr)]
        for g in SVC_GRID["gamma"]:
            k_tr, k_va = np.exp(-g * d_tr), np.exp(-g * d_va)
            for c in SVC_GRID["C"]:
                pred = SVC(kernel="precomputed", C=c).fit(k_tr, y_tr[tr]).predict(k_va)
                fold_acc[(c, g)].append(np.mean(pred == y_tr[va]))
    c, g = max(grid, key=lambda p: np.mean(fold_acc[p]))  # max keeps the first of equal scores
    model = SVC(kernel="precomputed", C=c).fit(np.exp(-g * d2), y_tr)
    return model.predict(np.exp(-g * euclidean_distances(x_te, x_tr, squared=True)))


SVC_KEYS = ("acc", "acc_std", "chance", "delta_f1", "member_f1", "precision", "recall", "n_members", "n_non_members")


def mia_svc(member_probs, nonmember_probs, *, scenario: str | None = None, n_repeats: int = 5, seed: int = 0,
            n_jobs: int | None = None) -> dict:
    """Paper MIA: RBF-SVC on full softmax vectors, member pool [M, K] vs non-member pool [N, K].

    scenario: "CR" or "HR" draws the paper's sets from the pools afresh in every repeat (``paper_mia_draw``:
        CR members capped at 3× the non-members; HR a random half of the test set against as many forget
        samples, 1:1). None: the two sets are used as given in every repeat (only the split changes).
    Each repeat: stratified 80/20 split, 3-fold grid search over SVC_GRID on the 80 %, scored on the held-out
    20 %. Sets and splits are drawn up front from ``seed``; the repeats then run in up to ``n_jobs`` threads
    (default: one per CPU; libsvm releases the GIL), so results do not depend on n_jobs.
    Returns means over repeats:
      mia/svc/acc        attack accuracy on the held-out 20 % = the paper's "F1" (micro-F1 equals accuracy);
      mia/svc/acc_std    sample std of the accuracy over repeats;
      mia/svc/chance     majority fraction of the held-out set: what always guessing the larger set scores
                         (0.75 for a 3:1 CR set, 0.5 for HR). Read acc against this, never against 0.5 alone;
      mia/svc/delta_f1   |acc·100 − 50|, the paper's HR ΔF1 (on micro-F1 = accuracy): ≈ 0 for an attack with
                         no signal at chance 0.5. In CR (chance 0.75) it is not a leakage measure;
      mia/svc/member_f1, mia/svc/precision, mia/svc/recall   binary scores with member = positive (not the
                         paper's F1; an attack guessing "member" on a 3:1 set has member-F1 0.86);
      mia/svc/n_members, mia/svc/n_non_members   sizes of the attack's sets (mean over repeats).
    Needs ≥ 5 of each set (after drawing), else NaNs.
    """
    rng = np.random.default_rng(seed)
    m_pool, nm_pool = np.asarray(member_probs, float), np.asarray(nonmember_probs, float)
    if scenario is None:
        draws = [(np.arange(len(m_pool)), np.arange(len(nm_pool)))] * n_repeats
    else:
        draws = [paper_mia_draw(len(m_pool), len(nm_pool), scenario, rng) for _ in range(n_repeats)]
    if not draws or min(len(draws[0][0]), len(draws[0][1])) < 5:
        return _nan_dict(f"mia/svc/{k}" for k in SVC_KEYS)
    # sets and splits are drawn up front, so the thread schedule cannot change which samples a repeat sees
    splits = []
    for m, nm in draws:
        x, y = np.vstack([m_pool[m], nm_pool[nm]]), np.r_[np.ones(len(m), int), np.zeros(len(nm), int)]
        splits.append(train_test_split(x, y, test_size=0.2, stratify=y, random_state=int(rng.integers(2**31))))

    def one_repeat(split):
        x_tr, x_te, y_tr, y_te = split
        pred = _svc_grid_predict(x_tr, y_tr, x_te)
        share = y_te.mean()
        return (accuracy_score(y_te, pred), max(share, 1 - share), f1_score(y_te, pred, zero_division=0),
                precision_score(y_te, pred, zero_division=0), recall_score(y_te, pred, zero_division=0))

    with ThreadPoolExecutor(max_workers=max(1, min(n_repeats, n_jobs or os.cpu_count() or 1))) as pool:
        acc, chance, f1, prec, rec = np.array(list(pool.map(one_repeat, splits))).T
    vals = (acc.mean(), _std(acc), chance.mean(), abs(acc.mean() * 100 - 50), f1.mean(), prec.mean(), rec.mean(),
            np.mean([len(m) for m, _ in draws]), np.mean([len(nm) for _, nm in draws]))
    return {f"mia/svc/{k}": float(v) for k, v in zip(SVC_KEYS, vals)}


# ------------------------------------------------------------------------------------------ loss / confidence

def mia_loss_lr(member_losses, nonmember_losses, *, n_splits: int = 10, seed: int = 0, auc: bool = True) -> dict:
    """Logistic regression on the per-sample loss ([M] vs [N] floats), NeurIPS-2023-challenge style.

    The larger set is first subsampled to the smaller one's size (balanced: chance = 0.5), then
    StratifiedKFold(n_splits) (shuffled; fewer splits if a class has fewer samples). Returns mia/loss_lr/acc (mean
    held-out accuracy), mia/loss_lr/acc_std (sample std over folds), mia/loss_lr/auc (mean held-out ROC-AUC; NaN
    with ``auc=False``, for callers that read only the accuracy). NaNs below 2 per set.
    """
    keys = ("mia/loss_lr/acc", "mia/loss_lr/acc_std", "mia/loss_lr/auc")
    rng = np.random.default_rng(seed)
    m, nm = np.asarray(member_losses, float).ravel(), np.asarray(nonmember_losses, float).ravel()
    n = min(len(m), len(nm))
    if n < 2:
        return _nan_dict(keys)
    x = np.r_[_subsample(m, n, rng), _subsample(nm, n, rng)][:, None]
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    accs, aucs = [], []
    # scikit-learn's per-call checks of our own constant arguments (and, when x is finite, of finiteness) took about
    # half of an MIA-over-steps curve's time; the numbers are the same without them
    with config_context(assume_finite=bool(np.isfinite(x).all()), skip_parameter_validation=True):
        for tr, te in StratifiedKFold(min(n_splits, n), shuffle=True, random_state=seed).split(x, y):
            lr = LogisticRegression().fit(x[tr], y[tr])
            accs.append(lr.score(x[te], y[te]))
            if auc:
                aucs.append(roc_auc_score(y[te], lr.decision_function(x[te])))
    return dict(zip(keys, (float(np.mean(accs)), _std(accs), float(np.mean(aucs)) if auc else float("nan"))))


def _best_threshold_bacc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """Best balanced accuracy of "member iff score ≥ t" or "member iff score < t" over all t.

    In-sample (the threshold is fitted and scored on the same data), so it is optimistic: identical
    distributions give about 0.5 + 1/√n rather than exactly 0.5.
    """
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    fpr, tpr, _ = roc_curve(y, np.r_[member_scores, nonmember_scores], drop_intermediate=False)
    bacc = (tpr + 1 - fpr) / 2
    return float(max(bacc.max(), 1 - bacc.min()))  # the reversed test has balanced accuracy 1 − bacc


def cheap_mia(member_probs, nonmember_probs, member_labels, nonmember_labels, seed: int = 0) -> dict:
    """Fast attacks for every snapshot of an MIA-over-steps curve. probs: [M, K] / [N, K], labels: [M] / [N].

    mia/loss_lr/acc: ``mia_loss_lr`` on per-sample losses (balanced, 10-fold CV; chance 0.5).
    mia/conf_thr/acc: best balanced accuracy of a threshold on the true-class probability (in-sample; chance
    0.5 whatever the set sizes, read ≈ 0.5 + 1/√n without signal).
    """
    loss_m, loss_n = per_sample_loss(member_probs, member_labels), per_sample_loss(nonmember_probs, nonmember_labels)
    # a threshold on p[y] is a threshold on −log p[y] (monotone), so the losses serve both attacks
    thr = _best_threshold_bacc(-loss_m, -loss_n) if len(loss_m) and len(loss_n) else float("nan")
    return {"mia/loss_lr/acc": mia_loss_lr(loss_m, loss_n, seed=seed, auc=False)["mia/loss_lr/acc"],
            "mia/conf_thr/acc": thr}


# ------------------------------------------------------------------------------------------ privacy score

def _upper_rates(n: int, alpha: float) -> np.ndarray:
    """[n+1]: one-sided (1 − alpha) Clopper–Pearson upper bound of an error rate, indexed by the error count."""
    k = np.arange(n + 1)
    return np.where(k < n, beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1)), 1.0)


def _eps(fp, fn, n_neg: int, n_pos: int, alpha: float) -> float:
    """max over tests of max(log((1 − FPR)/FNR), log((1 − FNR)/FPR)) with δ = 0, floored at 0.

    The clip: FPR and FNR are replaced by their Clopper–Pearson upper bounds, which are > 0 even at zero
    errors, so the logs never see 0 and ε is a lower confidence bound rather than a noisy point estimate
    (raw rates make identically distributed samples look distinguishable through the few extreme thresholds).
    1 − bound can reach 0 (all samples wrong); it is floored at PROB_CLIP, giving a large negative, ignored, log.
    """
    fpr, fnr = _upper_rates(n_neg, alpha)[fp], _upper_rates(n_pos, alpha)[fn]
    e1 = np.log(np.maximum(1 - fpr, PROB_CLIP)) - np.log(fnr)
    e2 = np.log(np.maximum(1 - fnr, PROB_CLIP)) - np.log(fpr)
    return max(0.0, float(np.max(np.maximum(e1, e2))))


def _threshold_eps(pos: np.ndarray, neg: np.ndarray, alpha: float) -> float:
    """ε of the best threshold test on one signal: pos [P] (unlearned model) vs neg [Q] (retrained model)."""
    pos, neg = np.sort(pos), np.sort(neg)
    t = np.r_[np.unique(np.r_[pos, neg]), np.inf]  # every distinct cut, plus "nothing is positive"
    fn = np.searchsorted(pos, t, "left")  # test "positive iff s ≥ t": positives below t are missed
    fp = len(neg) - np.searchsorted(neg, t, "left")  # negatives at or above t are false alarms
    # the reversed test "positive iff s < t" swaps every outcome
    return _eps(np.r_[fp, len(neg) - fp], np.r_[fn, len(pos) - fn], len(neg), len(pos), alpha)


def _entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, PROB_CLIP, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def privacy_score(unlearned_probs_forget, retrained_probs_forget, labels_forget, *,
                  alpha: float = PRIVACY_ALPHA) -> dict:
    """How well thresholds on entropy / true-class confidence tell the unlearned model from the retrained oracle.

    unlearned_probs_forget, retrained_probs_forget: [N, K] softmax of the two models on the same forget samples;
    labels_forget: [N]. For each signal every threshold (both directions) is tried and turned into
    ε = max(log((1−FPR)/FNR), log((1−FNR)/FPR)) (δ = 0; rates at their Clopper–Pearson upper bound, see ``_eps``).
    ε_max is the ε of a perfectly separated pair of the same sizes (≈ log(N/3) at alpha = 0.05): the most
    an attack can show with N samples. Returns privacy/eps_entropy, privacy/eps_confidence,
    privacy/eps (the larger), privacy/eps_max and privacy/score = 1 − eps/eps_max in [0, 1]
    (1: indistinguishable from the retrained model; 0: perfectly separable). Scores are comparable only at
    similar N, since ε_max grows with N. NaNs for empty input.
    """
    keys = ("privacy/eps_entropy", "privacy/eps_confidence", "privacy/eps", "privacy/eps_max", "privacy/score")
    u, r = np.asarray(unlearned_probs_forget, float), np.asarray(retrained_probs_forget, float)
    y = np.asarray(labels_forget, np.int64).ravel()
    if not (len(u) == len(r) == len(y)):
        raise ValueError(f"unlearned ({len(u)}), retrained ({len(r)}) and labels ({len(y)}) must cover the same samples")
    if len(y) == 0:
        return _nan_dict(keys)
    idx = np.arange(len(y))
    eps_ent = _threshold_eps(_entropy(u), _entropy(r), alpha)
    eps_conf = _threshold_eps(u[idx, y], r[idx, y], alpha)
    eps = max(eps_ent, eps_conf)
    eps_max = _eps(np.array([0]), np.array([0]), len(r), len(u), alpha)
    score = float(np.clip(1 - eps / eps_max, 0.0, 1.0)) if eps_max > 0 else float("nan")
    return dict(zip(keys, (eps_ent, eps_conf, eps, eps_max, score)))
