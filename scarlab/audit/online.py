"""The online U-LiRA audit of one run (:func:`audit_run`): its shadows, the held-out attack on the forget and the
control examples, the membership signal, the competition's numbers and the audit over steps, written into the run
(the package docstring lists the files)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ScarlabError
from ..metrics import ulira
from ..runs import make_folder, write_json
from .scoring import FLAG_FPR, competition_scores, control_indices, control_scores, forget_scores
from .shadows import ShadowPopulation, check_k, shadow_population
from .steps import STEP_COLUMNS, steps_audit
from .targets import DEFAULT_SEED, DEFAULT_SHADOWS, Audited, audited, mark_failed

METRIC_KEYS = tuple(f"ulira/{name}{end}" for name in ("auc", "tpr@0.01", "tpr@0.001", "bacc", "eps_mean",
                                                      "eps_median") for end in ("", "_low", "_high")) + tuple(
    f"ulira/{side}/{name}{end}" for side in ("control", "membership") for name in ulira.MEMBERSHIP_STATS
    for end in ("", "_low", "_high")) + ("competition/F", "competition/F_control", "competition/F_chance",
                                          "competition/score") + (
    "ulira/eps_chance", "ulira/eps_ceiling", "ulira/k", f"ulira/member@{FLAG_FPR:g}")
"""the audit.json scalars audit_run also merges into the run's metrics.json."""
FILES = ("audit.json", "audit.parquet", "audit_scores.npz", "audit_steps.csv", "audit_steps.npz")
FORMULAS = {
    "score": "scaled logit φ = z_y − logsumexp_{j≠y} z_j of the true class y (LiRA), on each forget example",
    "fit": "per-example Gaussians of φ under A and B; one pooled (global) std per population below 64 models "
           "(LiRA's fixed variance), floored at 0.01",
    "log_lr": "Λ = log N(φ; μ_A, σ_A) − log N(φ; μ_B, σ_B) (> 0: looks like A)",
    "attack": "U-LiRA, leave-one-pair-out: fit on K − 1 pairs, score the held-out A- and B-model; pooled ROC over "
              "models × examples",
    "tpr@f": "largest TPR among ROC points with FPR ≤ f (no interpolation upward)",
    "intervals": "estimate ± t(K−1, 1−alpha/2)·SE, SE² = refitted delete-one-pair jackknife variance + example "
                 "bootstrap variance (scarlab.metrics.ulira, item 4); ε aggregates over examples",
    "eps": "per example, scarlab's Clopper–Pearson-bounded ε estimate (not the competition's, not a certified "
           "bound): max over threshold rules of max(log((1−δ−FPR⁺)/FNR⁺), log((1−δ−FNR⁺)/FPR⁺)), rates at their "
           "upper Clopper–Pearson bound, ≥ 0",
    "control": "the same shadows and fits on examples no model of either population trained on (CR: the forget "
               "classes' test images; HR: test images): what the attack finds without membership",
    "membership": "forget − control for AUC, TPR @ 1 % FPR and mean ε, interval: t(K−1) with the delete-one-pair "
                  "jackknife of the difference + both example bootstraps (ulira, item 8); ≈ 0 when the models "
                  "differ only model-wide",
    f"member@{FLAG_FPR:g}": "share of forget examples whose audited-model Λ exceeds the 99th percentile of the "
                            "control examples' Λ (≈ 0.01 when forget examples look like never-seen ones)",
    "competition": "NeurIPS 2023 unlearning competition (scarlab.metrics.competition): per-example ε of the raw "
                   "scaled logits of A's against B's models, empirical rates, single-cut and interval rules, δ 1e-5, "
                   "cap 50; F = mean 2^−bin (0.5-wide bins); score = F · retain-acc ratio · test-acc ratio (A / B); "
                   "F_chance = F of two identical populations of K models (a perfect unlearner reads about that)",
    "resolution": "ROC drawn from FPR 1/(K·N); TPR at a lower FPR is not resolvable (NaN); a statistic at 0 or 1 "
                  "in every replicate is a one-sided bound (ulira, item 9)",
    "eps_ceiling": "ε of a rule with no errors on K pairs: the largest ε K shadows can show",
    "eps_chance": "mean ε of K pairs of indistinguishable (same Gaussian) populations through the same held-out "
                  "attack: the level a mean ε is read against (ulira.epsilon_chance)",
    "flagged@0.01": "share of forget examples whose audited-model Λ (fit on all K) exceeds the held-out B threshold "
                    "of FPR ≤ 1 %",
}



def _populations(a: Audited, pop: ShadowPopulation) -> tuple[list[Path], list[Path], str, str]:
    """(A members, B members, what A is, what B is) for the audited run's kind (package docstring)."""
    if a.kind == "unlearn":
        return pop.unlearned, pop.retrained, f"unlearned ({a.unlearn['method']})", "retrained"
    if a.kind == "original":
        return pop.originals, pop.retrained, "original", "retrained"
    h = len(pop.retrained) // 2
    return (pop.retrained[:h], pop.retrained[h:2 * h], "retrained (first half of the seeds)",
            "retrained (second half of the seeds)")


@dataclass
class _Scores:
    """Everything an online audit computes before it writes: the members of A and B, the scores φ of the forget and
    the control examples, the three results of ``ulira.audit_with_control``, the per-example flags, the competition's
    numbers and the audit over steps."""

    members_a: list[Path]
    members_b: list[Path]
    scores_a: np.ndarray
    scores_b: np.ndarray
    target: np.ndarray
    ctl: np.ndarray
    ctl_a: np.ndarray
    ctl_b: np.ndarray
    ctl_target: np.ndarray
    res: dict
    res_c: dict
    membership: dict
    flagged: np.ndarray
    member: np.ndarray
    member_thr: float
    comp: dict
    comp_eps: np.ndarray
    steps: list
    per_example: dict


def _score(a: Audited, pop: ShadowPopulation, ds, seed: int, device: str, delta: float, alpha: float) -> _Scores:
    """Score the populations and the audited model on the forget and the control examples, and attack."""
    members_a, members_b, _, _ = _populations(a, pop)
    scores_a = np.stack([forget_scores(p / "checkpoints" / "model.pt", ds, a.split, device) for p in members_a])
    scores_b = np.stack([forget_scores(p / "checkpoints" / "model.pt", ds, a.split, device) for p in members_b])
    target = forget_scores(a.checkpoint, ds, a.split, device)
    # the control: the same models on examples none of them trained on (package docstring, "Control")
    ctl = control_indices(a.split, ds, seed)
    ctl_a = np.stack([control_scores(p / "checkpoints" / "model.pt", ds, ctl, device) for p in members_a])
    ctl_b = np.stack([control_scores(p / "checkpoints" / "model.pt", ds, ctl, device) for p in members_b])
    ctl_target = control_scores(a.checkpoint, ds, ctl, device)
    # forget, control and their difference from one held-out attack per side (fits, jackknife, bootstraps)
    res, res_c, membership = ulira.audit_with_control(scores_a, scores_b, ctl_a, ctl_b, target=target,
                                                      control_target=ctl_target, delta=delta, alpha=alpha)
    flagged = res["ulira/target_log_lr"] > ulira.flag_threshold(res["ulira/log_lr_b"], FLAG_FPR)
    # a forget example is a member at FLAG_FPR when its Λ tops that share of the control examples' Λ
    member_thr = float(np.quantile(res_c["ulira/target_log_lr"], 1 - FLAG_FPR))
    member = res["ulira/target_log_lr"] > member_thr
    comp, comp_eps = competition_scores(scores_a, scores_b, ctl_a, ctl_b, members_a, members_b, ds, a.split, device)
    steps, per_example = steps_audit(a, pop, ds, device, delta=delta, alpha=alpha)
    return _Scores(members_a, members_b, scores_a, scores_b, target, ctl, ctl_a, ctl_b, ctl_target, res, res_c,
                   membership, flagged, member, member_thr, comp, comp_eps, steps, per_example)


def _metrics(sc: _Scores) -> dict:
    """audit.json's ``metrics``: the forget attack's scalars, the control's, the membership signal, member@ and the
    competition's numbers."""
    res, res_c = sc.res, sc.res_c
    metrics = {key: v for key, v in res.items() if np.isscalar(v)}
    metrics["ulira/target_log_lr_mean"] = float(np.mean(res["ulira/target_log_lr"]))
    metrics["ulira/target_log_lr_median"] = float(np.median(res["ulira/target_log_lr"]))
    metrics.update({f"ulira/control/{key[6:]}": v for key, v in res_c.items()
                    if np.isscalar(v) and key.startswith(("ulira/auc", "ulira/tpr@", "ulira/eps_mean",
                                                          "ulira/bacc", "ulira/target_flagged"))})
    metrics["ulira/control/n_examples"] = int(len(sc.ctl))
    metrics.update({f"ulira/membership/{key[11:]}": v for key, v in sc.membership.items()
                    if key.startswith("membership/")})
    metrics[f"ulira/member@{FLAG_FPR:g}"] = float(sc.member.mean())
    metrics.update(sc.comp)
    return metrics


def _document(a: Audited, pop: ShadowPopulation, sc: _Scores, metrics: dict, *, shadows: int, delta: float,
              alpha: float, n_examples: int, times: dict) -> dict:
    """audit.json's contents (package docstring)."""
    _, _, what_a, what_b = _populations(a, pop)
    res, res_c = sc.res, sc.res_c
    return {"mode": "online", "run": str(a.run.path), "kind": a.kind, "label": a.label, "k": int(res["ulira/k"]),
            "delta": float(delta), "alpha": float(alpha), "flag_fpr": FLAG_FPR, "n_examples": n_examples,
            "metrics": metrics,
            "populations": {"a": what_a, "b": what_b, "a_members": [p.name for p in sc.members_a],
                            "b_members": [p.name for p in sc.members_b]},
            "control": {"what": ("test images of the forget classes" if a.split.scenario == "CR" else
                                 "test images (a sample as large as the forget set)"),
                        "n_examples": int(len(sc.ctl)), "member_threshold": sc.member_thr,
                        "roc": {"fpr": res_c["ulira/roc_fpr"].tolist(), "tpr": res_c["ulira/roc_tpr"].tolist()}},
            "shadows": {"k": shadows, "folder": str(pop.folder), "fingerprint": pop.fingerprint,
                        "seeds": pop.seeds, "built": pop.built, "reused": len(pop.reused)},
            "roc": {"fpr": res["ulira/roc_fpr"].tolist(), "tpr": res["ulira/roc_tpr"].tolist()},
            "formulas": FORMULAS, "time": times, "created": time.time()}


def _write(target_run, sc: _Scores, idx: np.ndarray, labels: np.ndarray, doc: dict) -> list[str]:
    """Write audit.parquet, audit_scores.npz, the audit over steps (or remove an earlier one), audit.json and the
    main numbers into metrics.json, each file to a temporary name first. Returns the names written."""
    import pandas as pd

    res = sc.res
    table = pd.DataFrame({"index": idx, "label": labels, "target_score": sc.target,
                          "target_log_lr": res["ulira/target_log_lr"], "eps": res["ulira/eps"],
                          "example_auc": res["ulira/example_auc"], f"flagged@{FLAG_FPR:g}": sc.flagged,
                          f"member@{FLAG_FPR:g}": sc.member, "eps_competition": sc.comp_eps,
                          "mean_a": sc.scores_a.mean(0), "mean_b": sc.scores_b.mean(0)})
    tmp = target_run.file("audit.parquet.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(target_run.file("audit.parquet"))
    tmp = target_run.file("audit_scores.tmp.npz")
    np.savez_compressed(tmp, scores_a=sc.scores_a, scores_b=sc.scores_b, target=sc.target, index=idx, labels=labels,
                        log_lr_a=res["ulira/log_lr_a"], log_lr_b=res["ulira/log_lr_b"], control_a=sc.ctl_a,
                        control_b=sc.ctl_b, control_target=sc.ctl_target, control_index=sc.ctl,
                        control_log_lr=sc.res_c["ulira/target_log_lr"])
    tmp.replace(target_run.file("audit_scores.npz"))
    written = ["audit.json", "audit.parquet", "audit_scores.npz"]
    if sc.steps:
        tmp = target_run.file("audit_steps.csv.tmp")
        pd.DataFrame(sc.steps, columns=list(STEP_COLUMNS)).to_csv(tmp, index=False)
        tmp.replace(target_run.file("audit_steps.csv"))
        tmp = target_run.file("audit_steps.tmp.npz")
        np.savez_compressed(tmp, **sc.per_example)
        tmp.replace(target_run.file("audit_steps.npz"))
        written += ["audit_steps.csv", "audit_steps.npz"]
    else:
        for name in ("audit_steps.csv", "audit_steps.npz"):  # from an earlier audit; nothing to say now
            target_run.file(name).unlink(missing_ok=True)
    write_json(target_run.file("audit.json"), doc)
    # the main numbers beside the paper's in metrics.json: summary.csv and the dashboard read them there
    target_run.write_metrics({key: doc["metrics"][key] for key in METRIC_KEYS if key in doc["metrics"]}, merge=True)
    return written + ["metrics.json"]


def _check_levels(delta, alpha) -> None:
    for name, v, lo, hi in (("delta", delta, 0.0, 1.0), ("alpha", alpha, 0.0, 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v < hi:
            raise ScarlabError(f"{name} must lie strictly between {lo:g} and {hi:g}, got {v!r}")


def audit_run(run, shadows: int = DEFAULT_SHADOWS, *, seed: int = DEFAULT_SEED, shadow_dir=None,
              delta: float = ulira.DEFAULT_DELTA, alpha: float = ulira.DEFAULT_ALPHA, device: str = "auto",
              progress: bool = True, jobs: int = 1) -> dict:
    """Audit one run: make or reuse its shadows (``jobs`` worker processes, :func:`shadow_population`), score them
    and the run, write audit.json / audit.parquet / audit_scores.npz (/ audit_steps.csv / .npz) into the run, list
    them in its manifest. Returns audit.json's contents."""
    from ..data import load_dataset
    from ..device import resolve_device

    t_start = time.perf_counter()
    a = run if isinstance(run, Audited) else audited(run)
    check_k(shadows, a.kind)
    _check_levels(delta, alpha)
    device = resolve_device(device)
    if shadow_dir is not None:  # before the try: a folder that cannot be made is no failed audit of the run
        make_folder(shadow_dir, "shadow folder")
    target_run = a.run
    try:
        pop = shadow_population(a, shadows, seed=seed, shadow_dir=shadow_dir, device=device, progress=progress,
                                jobs=jobs)
        t_scores = time.perf_counter()
        ds = load_dataset(a.train["dataset"], a.train.get("data_root"))
        sc = _score(a, pop, ds, seed, device, delta, alpha)
        scores_s = time.perf_counter() - t_scores
        idx = np.asarray(a.split.forget_idx, np.int64)
        labels = ds.train.labels[idx].numpy().astype(np.int64)
        times = {**{f"shadows/{key}_s": round(v, 3) for key, v in pop.seconds.items()},
                 "scores_s": round(scores_s, 3), "audit_s": round(time.perf_counter() - t_start, 3)}
        doc = _document(a, pop, sc, _metrics(sc), shadows=shadows, delta=delta, alpha=alpha,
                        n_examples=int(len(idx)), times=times)
        written = _write(target_run, sc, idx, labels, doc)
    except BaseException as exc:
        mark_failed(target_run, "audit", exc)
        raise
    files = sorted((set(target_run.manifest.get("files", [])) - set(FILES)) | set(written))
    target_run.update_manifest(files=files, audit={"status": "complete", "finished": time.time(),
                                                   "k": doc["k"], "shadows": str(pop.folder),
                                                   "audit_s": doc["time"]["audit_s"]})
    return doc
