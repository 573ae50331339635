"""The audit over steps (``audit_steps.csv`` / ``.npz``): the held-out attack at every feature snapshot of an
unlearn run, against its unlearned shadows' snapshots of the same step."""
from __future__ import annotations

import numpy as np

from ..errors import ScarlabError
from ..metrics import ulira
from ..runs import RunDir
from .scoring import FLAG_FPR, forget_scores
from .shadows import ShadowPopulation
from .targets import Audited

STEP_BOOT = 50  # bootstrap resamples per step of the audit over steps (the final audit uses ulira.N_BOOT)
STEP_COLUMNS = ("step", "ulira/auc", "ulira/auc_low", "ulira/auc_high", "ulira/tpr@0.01", "ulira/tpr@0.01_low",
                "ulira/tpr@0.01_high", "ulira/eps_mean", "ulira/log_lr_mean", f"ulira/flagged@{FLAG_FPR:g}",
                "n_examples", "k")


def _forget_snapshots(run: RunDir, pos: dict[int, int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """step -> (positions in the forget set, φ) of the forget examples (group 0) in a run's feature snapshots."""
    out = {}
    for f in sorted(run.file("features").glob("step_*.npz")):
        try:
            with np.load(f, allow_pickle=False) as z:
                logits, labels, group, index = z["logits"], z["labels"], z["group"], z["index"]
                step = int(z["step"]) if "step" in z.files else int(f.stem.split("_")[1])
        except Exception as exc:  # noqa: BLE001
            raise ScarlabError(f"{f} cannot be read ({type(exc).__name__}: {exc}); rerun the unlearn stage for "
                               f"{run.path}") from None
        keep = np.array([g == 0 and int(i) in pos for g, i in zip(group, index)], bool)
        cols = np.array([pos[int(i)] for i in index[keep]], np.int64)
        out[step] = (cols, ulira.scaled_logit(logits[keep].astype(np.float64), labels[keep]))
    return out


def _shadow_snapshots(member, pos: dict[int, int], n_forget: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted steps [S], φ [S, N] of the forget examples with NaN where a snapshot lacks one) of an unlearned
    shadow member; one without a snapshot of step 0 is refused."""
    snaps = _forget_snapshots(RunDir(member), pos)
    if not snaps or 0 not in snaps:
        raise ScarlabError(f"shadow member {member} has no feature snapshot of step 0, so the audit over steps cannot "
                           "use it: delete that folder and rerun the audit (it is made again)")
    steps = np.array(sorted(snaps))
    dense = np.full((len(steps), n_forget), np.nan)
    for n, st in enumerate(steps):
        cols, phi = snaps[int(st)]
        dense[n, cols] = phi
    return steps, dense


def steps_audit(a: Audited, pop: ShadowPopulation, ds, device: str = "cpu", *, delta: float = ulira.DEFAULT_DELTA,
                alpha: float = ulira.DEFAULT_ALPHA) -> tuple[list[dict], dict]:
    """The audit at every feature snapshot of an unlearn run: (one row per step (STEP_COLUMNS), per-example arrays
    for ``audit_steps.npz``: ``step`` [S], ``index`` [P] (training indices of the forget probe points), ``log_lr``
    [S, P] (the audited snapshot's Λ per example), ``threshold`` [S] (that step's flag threshold)); ([], {})
    for runs without snapshots.

    At step s the population A is the K unlearned shadows at their snapshot of step s (the shadows snapshot at the
    audited run's steps; a shadow that stopped earlier counts with its last one), B the K retrained shadows (they
    do not move), both over the audited run's forget probe points; the held-out attack (AUC, TPR at 1 % FPR with
    intervals from STEP_BOOT resamples, mean ε) and the audited model's snapshot against the fit on all K. Step 0
    is the original (every unlearned shadow starts as its original). Scores come from float16 logits on every
    side, as the snapshots keep them."""
    if a.kind != "unlearn" or not a.run.file("features").is_dir():
        return [], {}
    forget = np.asarray(a.split.forget_idx, np.int64)
    pos = {int(i): n for n, i in enumerate(forget)}
    target = {s: v for s, v in _forget_snapshots(a.run, pos).items() if len(v[0])}
    if not target:
        return [], {}
    shadows = [_shadow_snapshots(p, pos, len(forget)) for p in pop.unlearned]  # (steps, φ [steps, N])
    scores_b = np.stack([forget_scores(p / "checkpoints" / "model.pt", ds, a.split, device, half=True)
                         for p in pop.retrained])
    rows, lams, thresholds = [], [], []
    probe = target[min(target)][0]  # the probe points are fixed: the same forget examples at every step
    for step in sorted(target):
        cols, phi = target[step]
        if not np.array_equal(cols, probe):
            raise ScarlabError(f"{a.run.path}: its snapshots hold different forget examples at steps {min(target)} and "
                               f"{step}; rerun the unlearn stage for {a.run.path}")
        scores_a = np.stack([dense[np.searchsorted(steps, step, side="right") - 1, cols] for steps, dense in shadows])
        if np.isnan(scores_a).any():
            raise ScarlabError(f"the unlearned shadows in {pop.folder} lack snapshots of some forget examples at step "
                               f"{step}: delete their folders ({pop.method_key}__s*) and rerun the audit")
        res = ulira.audit_scores(scores_a, scores_b[:, cols], target=phi, delta=delta, alpha=alpha,
                                 n_boot=STEP_BOOT)
        lam = res["ulira/target_log_lr"]
        lams.append(lam.astype(np.float32))
        thresholds.append(ulira.flag_threshold(res["ulira/log_lr_b"], FLAG_FPR))
        rows.append({"step": int(step), **{key: float(res[key]) for key in STEP_COLUMNS[1:8]},
                     "ulira/log_lr_mean": float(lam.mean()),
                     f"ulira/flagged@{FLAG_FPR:g}": float(res[f"ulira/target_flagged@{FLAG_FPR:g}"]),
                     "n_examples": int(len(cols)), "k": int(res["ulira/k"])})
    return rows, {"step": np.array([r["step"] for r in rows], np.int64), "index": forget[probe],
                  "log_lr": np.stack(lams), "threshold": np.array(thresholds, np.float64)}


