"""Offline privacy audit of a run: offline LiRA and offline RMIA of the audited model against the K retrained shadows
only, so auditing one more run of a split trains nothing once its retrained shadows exist.

The estimators and what every number means are :mod:`scarlab.metrics.offline` (read its docstring); the shadow folder,
its fingerprint, reuse and refusal rules are :mod:`scarlab.audit.shadows`, unchanged: this module asks
:func:`scarlab.audit.shadow_population` for the retrained population alone (``retrained__s<seed>/`` in
``shadows__<fingerprint8>/``, shared by every method, variant and seed audited on that split and training
configuration; a folder or member of another split, data set or training option is refused naming the keys that
differ).

Online or offline. The online U-LiRA (:func:`scarlab.audit.audit_run`) compares K unlearned shadows made by the
audited run's method with K retrained ones: it needs K unlearnings per method and variant, and answers "do this
method's models look unlearned or retrained?". The offline audit scores the audited model itself against the
retrained shadows and answers "does THIS model treat its forget examples as trained on, more than test images of the
same kind?" (the membership signal forget vs control of one model). ``mode="auto"`` runs the online audit when the
run's online population already exists complete in the folder (unlearn run: its method's unlearned shadows; original:
the shadow originals; retrained run: the retrained shadows), else the offline one.

What is scored (φ = scaled true-class logit): the audited model and the K retrained shadows on the forget examples
(members), the control examples (:func:`scarlab.audit.control_indices`: CR the forget classes' test images, HR as many
test images) and, for RMIA, a sample of ``population`` test images (seeded by ``seed``; all of them when fewer; control
examples among them are scored against the others). RMIA's a: given (``rmia_a``), or chosen by the paper's grid search
with the split's original model as the temporary target (``metrics.offline``, item 3): the unlearn run's original, or
the audited original itself (then the choice has seen the target: ``a_source`` says so); a retrained run has no
original to tune on and uses a = 1 (the authors' "when unknown").

Files written into the audited run, beside (never over) the online audit's, and listed in its manifest (its
``audit_offline`` entry holds the status, seconds and folder):

* ``audit_offline.json``: ``mode`` = "offline", ``metrics`` (OFFLINE_METRIC_KEYS), ``rmia`` (a, where it came from, the
  AUC of every a tried, γ, population size), ``control``, ``shadows`` (folder, fingerprint, seeds, made, reused),
  ``formulas``, ``time``;
* ``audit_offline.parquet``: one row per forget and control example: ``index`` (into the training set for forget, the
  test set for control), ``part`` ("forget" / "control"), ``label``, ``target_score`` (φ), ``ref_mean`` (mean φ of the
  retrained shadows), ``lira_z``, ``rmia_score``;
* ``metrics.json``: OFFLINE_METRIC_KEYS merged in (``ulira/offline/<lira|rmia>/...``), beside the online ``ulira/*``.

All files are written to temporary names first and moved into place only when every one is ready; bad options (a
outside [0, 1], a population size < 1, an unknown mode) are refused before anything is made or written.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import MIN_SHADOWS, AuditConfig
from ..errors import ScarlabError
from ..metrics import offline, ulira
from ..runs import RunDir, write_json
from .online import audit_run
from .scoring import control_indices, control_scores, forget_scores
from .shadows import shadow_folder, shadow_population
from .targets import DEFAULT_SEED, DEFAULT_SHADOWS, Audited, audited, mark_failed, method_key

MODES = ("online", "offline", "auto")
A_UNKNOWN = 1.0  # RMIA's a when no model that trained on the forget examples is at hand (the authors' default)
OFFLINE_FILES = ("audit_offline.json", "audit_offline.parquet")
OFFLINE_METRIC_KEYS = tuple(
    f"ulira/offline/{attack}/{stat}{end}" for attack in offline.ATTACKS for stat in offline.STATS
    for end in (("", "_low", "_high") if stat in ("auc", "tpr@0.01") else ("",))) + (
    "ulira/offline/rmia/a", "ulira/offline/k", "ulira/offline/n_population")
"""the audit_offline.json scalars also merged into the run's metrics.json."""
FORMULAS = {
    "reference": "the K retrained shadows: none trained on a forget example or a test image",
    "lira_z": "offline LiRA: (φ_target − μ_out) / σ_out, μ_out per example over the references, one pooled σ_out "
              "(fixed variance); Φ(z) is LiRA's one-sided offline score",
    "rmia_score": "offline RMIA: share of population z (test images; never x itself) with LR(x, z) > γ, LR = "
                  "(p(x|θ)/Pr(x)) / (p(z|θ)/Pr(z)), Pr = ½((1 + a)·Pr_OUT + 1 − a), p = sigmoid(φ)",
    "auc": "membership of ONE model: P(score of a forget example > score of a control example) (0.5: none)",
    "tpr@0.01": "share of forget examples above the control scores' 99th percentile (≈ 0.01: none; NaN below 100 "
                "control examples)",
    "flagged@0.01": "share of a side's examples with LiRA one-sided p < 0.01, or RMIA score > 0.99: model-level",
    "intervals": "t(K−1) with a delete-one-reference jackknife + example bootstrap (scarlab.metrics.offline, item 4)",
}


def _check(mode: str, rmia_a, population) -> None:
    if mode not in MODES:
        raise ScarlabError(f"unknown audit mode {mode!r}; valid choices: {', '.join(MODES)}")
    if rmia_a is not None:
        offline.check_a(rmia_a)
    offline.check_population(population)


def online_ready(a: Audited, shadows: int, seed: int = DEFAULT_SEED, shadow_dir=None) -> bool:
    """Whether the online audit's population A of this run exists complete in its shadow folder (module docstring)."""
    if a.kind == "retrained" and shadows < 2 * MIN_SHADOWS:
        return False  # the online audit of a retrained run splits its K in halves of at least MIN_SHADOWS
    folder, _ = shadow_folder(a, shadow_dir)
    name = {"unlearn": lambda: method_key(a.unlearn), "original": lambda: "original",
            "retrained": lambda: "retrained"}[a.kind]()
    paths = [folder / f"{name}__s{seed + i}" for i in range(shadows)]
    return all((p / "manifest.json").is_file() and RunDir(p).status == "complete" for p in paths)


def _tuning_model(a: Audited) -> tuple[Path | None, str]:
    """The split's original model, which trained on the forget examples, for choosing RMIA's a."""
    if a.kind == "original":
        return a.checkpoint, "tuned on the audited original itself (the split's original)"
    orig = (a.run.manifest.get("parents") or {}).get("original") or a.run.config.get("original")
    f = Path(str(orig)) / "checkpoints" / "model.pt" if orig else None
    if f is not None and f.is_file():
        return f, f"tuned on the split's original model ({Path(str(orig)).name})"
    return None, f"no original model at hand: a = {A_UNKNOWN:g} (the authors' default when unknown)"


def audit(run, shadows: int = DEFAULT_SHADOWS, *, mode: str = "online", seed: int = DEFAULT_SEED, shadow_dir=None,
          delta: float = ulira.DEFAULT_DELTA, alpha: float = ulira.DEFAULT_ALPHA, device: str = "auto",
          progress: bool = True, jobs: int = 1, rmia_a: float | None = None,
          population: int = AuditConfig.population) -> dict:
    """Audit one run in ``mode`` (online, offline or auto; module docstring): audit.json's or audit_offline.json's
    contents, each with its ``mode``."""
    _check(mode, rmia_a, population)
    a = run if isinstance(run, Audited) else audited(run)
    if mode == "auto":
        mode = "online" if online_ready(a, shadows, seed, shadow_dir) else "offline"
    if mode == "online":
        return audit_run(a, shadows, seed=seed, shadow_dir=shadow_dir, delta=delta, alpha=alpha, device=device,
                         progress=progress, jobs=jobs)
    return audit_offline(a, shadows, seed=seed, shadow_dir=shadow_dir, alpha=alpha, device=device,
                         progress=progress, jobs=jobs, rmia_a=rmia_a, population=population)


def audit_offline(run, shadows: int = DEFAULT_SHADOWS, *, seed: int = DEFAULT_SEED, shadow_dir=None,
                  alpha: float = ulira.DEFAULT_ALPHA, device: str = "auto", progress: bool = True, jobs: int = 1,
                  rmia_a: float | None = None, population: int = AuditConfig.population) -> dict:
    """The offline audit of one run (module docstring): make or reuse the K retrained shadows, score, write
    audit_offline.json / .parquet and metrics. Returns audit_offline.json's contents."""
    from ..data import load_dataset
    from ..device import resolve_device

    _check("offline", rmia_a, population)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ScarlabError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    t_start = time.perf_counter()
    a = run if isinstance(run, Audited) else audited(run)
    device = resolve_device(device)
    target_run = a.run
    tmps: list[Path] = []
    try:
        pop = shadow_population(a, shadows, seed=seed, shadow_dir=shadow_dir, device=device, progress=progress,
                                populations=("retrained",), jobs=jobs)
        t_scores = time.perf_counter()
        ds = load_dataset(a.train["dataset"], a.train.get("data_root"))
        sc = _offline_scores(a, pop, ds, seed, device, rmia_a, population, alpha)
        scores_s = time.perf_counter() - t_scores

        metrics = _offline_metrics(sc)
        idx = np.asarray(a.split.forget_idx, np.int64)
        table = _offline_table(sc, idx, ds)
        times = {**{f"shadows/{key}_s": round(v, 3) for key, v in pop.seconds.items()},
                 "scores_s": round(scores_s, 3), "audit_s": round(time.perf_counter() - t_start, 3)}
        doc = _offline_document(a, pop, sc, metrics, shadows=shadows, alpha=alpha, n_examples=int(len(idx)),
                                times=times)
        # every file to a temporary name first: a failure leaves the run's earlier offline audit as it was
        tmps = [target_run.file("audit_offline.parquet.tmp"), target_run.file("audit_offline.json.tmp")]
        table.to_parquet(tmps[0], index=False)
        write_json(tmps[1], doc)
        for tmp in tmps:
            tmp.replace(target_run.file(tmp.name[:-4]))
        target_run.write_metrics({key: metrics[key] for key in OFFLINE_METRIC_KEYS if key in metrics}, merge=True)
    except BaseException as exc:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        mark_failed(target_run, "audit_offline", exc)
        raise
    files = sorted(set(target_run.manifest.get("files", [])) | set(OFFLINE_FILES) | {"metrics.json"})
    target_run.update_manifest(files=files, audit_offline={"status": "complete", "finished": time.time(),
                                                           "k": doc["k"], "shadows": str(pop.folder),
                                                           "audit_s": doc["time"]["audit_s"]})
    return doc


def _offline_scores(a: Audited, pop, ds, seed: int, device: str, rmia_a, population: int, alpha: float) -> dict:
    """φ of the audited model and the K retrained shadows on the forget, control and population examples, RMIA's a
    (given, tuned on the split's original, or A_UNKNOWN) and ``offline.offline_audit``'s result, by name."""
    refs = [p / "checkpoints" / "model.pt" for p in pop.retrained]
    ctl = control_indices(a.split, ds, seed)
    n_test = len(ds.test.labels)
    z_idx = np.sort(np.random.default_rng(seed + 1).choice(n_test, min(population, n_test), replace=False))
    pos = np.searchsorted(z_idx, ctl)
    in_pop = np.where(z_idx[np.minimum(pos, len(z_idx) - 1)] == ctl, pos, -1)  # control examples among the z

    def phi(ckpt):
        return (forget_scores(ckpt, ds, a.split, device), control_scores(ckpt, ds, ctl, device),
                control_scores(ckpt, ds, z_idx, device))

    ref_f, ref_c, ref_z = (np.stack(s) for s in zip(*(phi(r) for r in refs)))
    t_f, t_c, t_z = phi(a.checkpoint)
    tuner, a_source = _tuning_model(a)
    aucs = {}
    if rmia_a is not None:
        a_value, a_source = float(rmia_a), "given"
    elif tuner is None:
        a_value = A_UNKNOWN
    else:
        o_f, o_c, o_z = phi(tuner)
        a_value, aucs = offline.choose_rmia_a(o_f, o_c, ref_f, ref_c, o_z, ref_z, control_in_pop=in_pop)
    res = offline.offline_audit(t_f, t_c, ref_f, ref_c, pop_target=t_z, pop_ref=ref_z, a=a_value,
                                control_in_pop=in_pop, alpha=alpha, seed=seed)
    return {"k": len(refs), "ctl": ctl, "z_idx": z_idx, "in_pop": in_pop, "t_f": t_f, "t_c": t_c, "ref_f": ref_f,
            "ref_c": ref_c, "a_value": a_value, "a_source": a_source, "aucs": aucs, "res": res}


def _offline_metrics(sc: dict) -> dict:
    metrics = {f"ulira/offline/{attack}/{key}": v for attack, r in sc["res"].items() for key, v in r.items()
               if isinstance(v, float)}
    metrics.update({"ulira/offline/rmia/a": sc["a_value"], "ulira/offline/k": sc["k"],
                    "ulira/offline/n_population": int(len(sc["z_idx"]))})
    return metrics


def _offline_table(sc: dict, idx: np.ndarray, ds):
    """audit_offline.parquet: one row per forget and control example."""
    import pandas as pd

    ctl, res = sc["ctl"], sc["res"]
    labels = np.concatenate([ds.train.labels[idx].numpy(), ds.test.labels[ctl].numpy()]).astype(np.int64)
    return pd.DataFrame({"index": np.concatenate([idx, ctl]), "part": ["forget"] * len(idx) + ["control"] * len(ctl),
                         "label": labels, "target_score": np.concatenate([sc["t_f"], sc["t_c"]]),
                         "ref_mean": np.concatenate([sc["ref_f"].mean(0), sc["ref_c"].mean(0)]),
                         "lira_z": np.concatenate([res["lira"]["forget"], res["lira"]["control"]]),
                         "rmia_score": np.concatenate([res["rmia"]["forget"], res["rmia"]["control"]])})


def _offline_document(a: Audited, pop, sc: dict, metrics: dict, *, shadows: int, alpha: float, n_examples: int,
                      times: dict) -> dict:
    """audit_offline.json's contents (module docstring)."""
    return {"mode": "offline", "run": str(a.run.path), "kind": a.kind, "label": a.label, "k": sc["k"],
            "alpha": float(alpha), "n_examples": n_examples, "metrics": metrics,
            "reference": "retrained shadows", "members": [p.name for p in pop.retrained],
            "rmia": {"a": sc["a_value"], "a_source": sc["a_source"],
                     "a_auc": {f"{k:g}": v for k, v in sc["aucs"].items()},
                     "gamma": offline.GAMMA, "n_population": int(len(sc["z_idx"])),
                     "population": "a seeded sample of test images (control examples among them scored against "
                                   "the others)", "n_control_in_population": int((sc["in_pop"] >= 0).sum())},
            "control": {"what": ("test images of the forget classes" if a.split.scenario == "CR" else
                                 "test images (a sample as large as the forget set)"),
                        "n_examples": int(len(sc["ctl"]))},
            "shadows": {"k": shadows, "folder": str(pop.folder), "fingerprint": pop.fingerprint,
                        "seeds": pop.seeds, "built": pop.built, "reused": len(pop.reused)},
            "formulas": FORMULAS, "time": times, "created": time.time()}
