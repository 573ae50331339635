"""Per-example privacy audit of a run (U-LiRA) against shadow populations, written into its run directory.

The estimator is :mod:`scarlab.metrics.ulira` (pure functions); this module makes the models it needs and reads
and writes run directories.

Shadow populations
------------------
For an audited run (an unlearn run, a retrained run, or an original evaluated against a split with
``scarlab evaluate ORIG --split S --out DIR``), :func:`shadow_population` makes or reuses, in one folder
``<run>/../shadows__<fingerprint8>/`` (or ``shadow_dir``):

* ``original__s<seed>/``  K originals, seeds ``seed .. seed+K-1``, with the audited run's training configuration
  (data set, model, epochs, batch size, lr, optimizer, weight decay, augmentation, stats δ, read from the
  original's ``config.json``);
* ``retrained__s<seed>/`` their K retrained oracles on the SAME split (a copy of the audited ``split.npz`` is kept
  in the folder as ``split.npz``; every member reads that one);
* ``<method>__<params8>__s<seed>/`` K unlearned models made by the audited run's method with its resolved
  ``params`` and surrogate options, each from the shadow original of the same seed, unlearning with that seed
  too (the population covers the method's own randomness, not only the training's).

Each member is an ordinary run directory written by ``run_train`` / ``run_unlearn`` (its manifest carries a
``shadow`` entry: role, seed, folder fingerprint). Unlearned members snapshot at the audited run's steps (its
``snapshot_every``) every forget example and no retain-test point (``_shadow_trace``). The folder's
fingerprint is a hash of the training configuration and the forget set, so every audited run of one split and
training configuration shares the originals and retrained oracles; only the unlearned population is per method
and parameters. ``shadows.json`` in the folder records that fingerprint and the configuration behind it.

Reuse rule, member by member: a complete member whose listed files are intact and whose configuration (compared
key by key with the expected one) is the same is reused; a failed, interrupted or damaged member is made again;
a complete member made with another configuration (another split, data set, training option or method parameter)
is refused with the keys that differ, as is a folder whose fingerprint differs. An unlearned member made from an
earlier version of its shadow original (re-made since) is made again. Members are made one at a time in this
process, or with ``jobs`` > 1 in that many worker processes (not threads: seeding is process-global,
``seed_everything``, so threads would race on the weight initialisation); the checks and records stay here.

What is compared
----------------
Scores are the scaled true-class logits φ (``ulira.scaled_logit``) of every forget example (``split.forget_idx``,
the training images), one per model. The target population A and reference population B:

* unlearn run: A = the K unlearned shadows, B = the K retrained shadows; pair i shares seed i;
* original: A = the K shadow originals, B = the K retrained shadows;
* retrained run: the K retrained shadows are split in halves, A = seeds ``seed .. seed+h-1``, B = the next h
  (h = K // 2; an odd last one is left out), so the audited oracle is compared with retrained models neither
  population's fit has seen, both sides alike: the attack reads chance by construction of the question
  ("unlearned like A or retrained like B?" where both are retrained). This needs h ≥ 3, i.e. K ≥ 6; use K ≥ 16:
  CR oracles differ by model-wide offsets of the forgotten class's logit, and with few pairs the held-out AUC
  scatters widely around 0.5 (digits, 2-epoch models: 0.18-0.59 at h = 3, 0.39-0.56 at h = 8) and its interval
  misses 0.5 more often than alpha says (4 of 8 seed ranges at h = 3, 1 of 9 at h = 8).

A fixed forget set. Every shadow pair forgets the audited run's own forget set (as the NeurIPS 2023 competition
did), so the audit speaks of this split and its examples. U-LiRA as Hayes et al. run it draws a *random* forget set
per shadow pair from a larger pool, so that each example is forgotten by some pairs and kept by others; that answers
"does this algorithm leave traces on the examples it forgets, over forget sets?" and lets the per-example fits see
examples the shadows kept, at the cost of a retrained model per pair and per forget set anyway. scarlab keeps the
fixed set (the audited run's question, and shadows shared by every method on the split); the randomised variant is
not implemented.

Control and membership. The attack asks whether a model looks unlearned or retrained *judged on the forget
examples*. In class removal a model-wide change of the forgotten class's logits answers that on any image of the
class, trained on or not (measured on digits, CR class 0, K = 8: SCAR's AUC 0.976 on the forget images and on the
class's test images alike). So every audit also scores a *control* set with the same shadows and fits
(:func:`control_indices`: CR the forget classes' test images, HR as many test images), and reports
``ulira/control/*`` beside the forget numbers and the *membership signal* ``ulira/membership/*`` = forget −
control (``ulira.membership_signal``). The forget numbers alone are **model-level distinguishability**; only the
membership signal, and per example ``member@0.01`` (Λ above the control examples' 99th percentile), speak of
remembered examples.

``ulira.audit_scores(A, B, target=φ of the audited model)`` gives the held-out attack (ROC, AUC, TPR at 1 % and
0.1 % FPR, balanced accuracy, intervals), per-example ε and the audited model's per-example log-LR.

Files written into the audited run (and added to its manifest's ``files``; the manifest's ``audit`` entry holds the
status, seconds and folder):

* ``audit.json``: ``metrics`` (the ``ulira/*`` scalars plus ``ulira/target_log_lr_mean`` / ``_median``), ``k``,
  ``delta``, ``alpha``, ``populations`` (what A and B are and their member folders), ``roc`` (FPR grid and TPR,
  log axes), ``formulas`` (what each number is), ``shadows`` (folder, fingerprint, seeds), ``time``;
* ``audit.parquet``: one row per forget example: ``index`` (into the training set), ``label``, ``target_score``
  (φ), ``target_log_lr``, ``eps``, ``example_auc``, ``flagged@0.01`` (the audited model's log-LR above the held-out
  threshold of FPR ≤ 1 %: model-level), ``member@0.01`` (its Λ above the control examples' 99th percentile: a
  per-example membership flag), ``eps_competition`` (the NeurIPS 2023 competition's ε), ``mean_a``, ``mean_b``
  (population means of φ);
* ``audit_scores.npz``: the raw arrays: ``scores_a``, ``scores_b`` [K, N], ``target`` [N], ``index``, ``labels``
  [N], ``log_lr_a``, ``log_lr_b`` [K, N] (held-out), and the control's ``control_a``, ``control_b`` [K, N_c],
  ``control_target``, ``control_index``, ``control_log_lr`` [N_c], for score-distribution plots;
* ``metrics.json``: the main scalars (``METRIC_KEYS``: ``ulira/auc``, ``ulira/tpr@0.01``, ``ulira/tpr@0.001``,
  ``ulira/bacc``, ``ulira/eps_mean``, ``ulira/eps_median``, ``ulira/control/*`` and ``ulira/membership/*``
  (AUC, TPR @ 1 % FPR, mean ε), each with ``_low`` / ``_high``, ``ulira/member@0.01``, ``ulira/k`` and the
  competition's ``competition/F``, ``F_control``, ``F_chance`` and ``score``) merged
  into the run's metrics, beside the evaluation's (summary.csv and the dashboard read them there);
* ``audit_steps.csv`` (unlearn runs with ``features/step_*.npz``): the same attack at every snapshot step
  (:func:`steps_audit`): A = the unlearned shadows at that step, B = the retrained shadows, over the run's forget
  probe points: ``step``, ``ulira/auc`` and ``ulira/tpr@0.01`` with ``_low`` / ``_high``, ``ulira/eps_mean``, the
  audited snapshot's ``ulira/log_lr_mean`` and ``ulira/flagged@0.01``, ``n_examples``, ``k``. Step 0 is the
  original; the curve shows when (or whether) the forget examples stop being distinguishable;
* ``audit_steps.npz``: the same per example: ``step`` [S], ``index`` [P] (training indices of the forget probe
  points), ``log_lr`` [S, P] (the audited snapshot's Λ), ``threshold`` [S] (Λ above it: flagged at 1 % FPR).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import MIN_SHADOWS, SEED_MAX, AuditConfig
from .errors import ScarlabError
from .metrics import competition, ulira
from .runs import ORIGINAL, RunDir, files_intact, make_folder, read_json, replacing, write_json

DEFAULT_SHADOWS, DEFAULT_SEED = AuditConfig.shadows, AuditConfig.seed
FLAG_FPR = 0.01
MIN_CONTROL = 10  # control examples the membership signal's example bootstrap needs at the least
TRAIN_KEYS = ("dataset", "model", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "augment",
              "stats_delta")
"""the training options every shadow copies from the audited run (its identity; device and data_root are not)."""
UNLEARN_KEYS = ("method", "params", "surrogate", "surrogate_chunks", "surrogate_size", "retain_available",
                "snapshot_every")
"""the unlearning options every unlearned shadow copies from the audited run (snapshot_every: its snapshots fall
on the audited run's steps, for the audit over steps)."""
STEP_BOOT = 50  # bootstrap resamples per step of the audit over steps (the final audit uses ulira.N_BOOT)
METRIC_KEYS = tuple(f"ulira/{name}{end}" for name in ("auc", "tpr@0.01", "tpr@0.001", "bacc", "eps_mean",
                                                      "eps_median") for end in ("", "_low", "_high")) + tuple(
    f"ulira/{side}/{name}{end}" for side in ("control", "membership") for name in ulira.MEMBERSHIP_STATS
    for end in ("", "_low", "_high")) + ("competition/F", "competition/F_control", "competition/F_chance",
                                          "competition/score") + (
    "ulira/eps_chance", "ulira/eps_ceiling", "ulira/k", f"ulira/member@{FLAG_FPR:g}")
"""the audit.json scalars audit_run also merges into the run's metrics.json."""
FILES = ("audit.json", "audit.parquet", "audit_scores.npz", "audit_steps.csv", "audit_steps.npz")
STEP_COLUMNS = ("step", "ulira/auc", "ulira/auc_low", "ulira/auc_high", "ulira/tpr@0.01", "ulira/tpr@0.01_low",
                "ulira/tpr@0.01_high", "ulira/eps_mean", "ulira/log_lr_mean", f"ulira/flagged@{FLAG_FPR:g}",
                "n_examples", "k")
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


# ============================================================================================ the audited run
@dataclass
class Audited:
    """What an audit needs to know about the audited run."""

    run: RunDir
    kind: str
    """'unlearn', 'original' or 'retrained'."""
    checkpoint: Path
    split: object  # scarlab.data.Split
    train: dict
    """the resolved training configuration every shadow copies (TRAIN_KEYS, plus data_root)."""
    model_seed: int
    """the seed of the audited model's own training (its original's, for an unlearn run)."""
    unlearn: dict | None = None
    """UNLEARN_KEYS of an unlearn run."""
    label: str = "?"


def _rerun_hint(run: RunDir, stage: str) -> str:
    return {"unlearn": f"rerun the unlearn stage for {run.path} (scarlab unlearn ... --out {run.path} --overwrite)",
            "train_retrained": f"rerun the retrained training for {run.path} (scarlab train --retrained ... --out "
                               f"{run.path} --overwrite)",
            "evaluate": f"rerun the evaluation of the original against its split (scarlab evaluate ORIG --split "
                        f"SPLIT --out {run.path} --overwrite)"}.get(stage, "rerun the stage that made it")


def audited(path) -> Audited:
    """Read an audited run: its kind, model checkpoint, split and the training configuration of its original."""
    from .results import describe
    from .train import load_split

    run = RunDir(path.path if isinstance(path, RunDir) else path)
    if not (run.path / "manifest.json").is_file():
        raise ScarlabError(f"{run.path} is not a scarlab run directory (no manifest.json)")
    run.require_complete("audited run")
    m, cfg = run.manifest, run.config
    stage = m.get("stage")
    label = describe(run.path, m, cfg).label
    if stage == "train_original":
        raise ScarlabError(f"{run.path} is an original model without a split: the audit asks whether the forget "
                           f"examples of a split look trained on. Evaluate it against the split first "
                           f"(scarlab evaluate {run.path} --split SPLIT --out DIR; the pipeline's original_eval) and "
                           "audit DIR")
    run.require_role("audited run", ("unlearn", "train_retrained", "evaluate"))
    split_file = run.file("split.npz")
    if not split_file.is_file():
        raise ScarlabError(f"{run.path} has no split.npz, so its forget set is unknown: {_rerun_hint(run, stage)}")
    split = load_split(split_file)
    if stage == "train_retrained":
        return Audited(run, "retrained", _checkpoint(run, _rerun_hint(run, stage)), split,
                       _train_identity(cfg, run.path), int(cfg.get("seed") or 0), label=label)
    orig_path = (m.get("parents") or {}).get("original") or cfg.get("run")
    if not orig_path:
        raise ScarlabError(f"{run.path} records no original run (manifest parents.original): "
                           f"{_rerun_hint(run, stage)}")
    original = RunDir(orig_path)
    if not (original.path / "manifest.json").is_file():
        raise ScarlabError(f"the original run {original.path} of {run.path} is missing; the shadows copy its "
                           "training configuration: restore it or audit runs whose original exists")
    original.require_complete(f"original run of {run.path}:", ORIGINAL)
    ocfg = original.config
    train = _train_identity(ocfg, original.path)
    if stage == "evaluate":
        hint = (f"retrain the original {original.path} (scarlab train ... --out {original.path} --overwrite), then "
                "evaluate it against the split and audit again")
        return Audited(run, "original", _checkpoint(original, hint), split, train, int(ocfg.get("seed") or 0),
                       label=label)
    missing = [k for k in UNLEARN_KEYS if k not in cfg]
    if missing:
        raise ScarlabError(f"{run.path}/config.json lacks {', '.join(missing)}: {_rerun_hint(run, stage)}")
    unlearn = {k: cfg[k] for k in UNLEARN_KEYS}
    return Audited(run, "unlearn", _checkpoint(run, _rerun_hint(run, stage)), split, train,
                   int(ocfg.get("seed") or 0), unlearn=unlearn, label=label)


def split_target(original, split) -> Audited:
    """The original model of ``original`` against the split ``split`` (a split run directory or split.npz), before
    any evaluation run exists: what the pipeline's per-split shadow stage builds the shadow originals and retrained
    oracles for. Its shadow folder is the one every audited run of that split shares: next to the split run,
    ``<split>/../shadows__<fingerprint8>`` (the audited runs of a pipeline split are its siblings)."""
    from .train import load_split

    original = RunDir(original)
    if not (original.path / "manifest.json").is_file():
        raise ScarlabError(f"{original.path} is not a scarlab run directory (no manifest.json)")
    original.require_complete("original run", ORIGINAL)
    split_path = Path(split)
    split_file = split_path / "split.npz" if split_path.is_dir() else split_path
    if not split_file.is_file():
        raise ScarlabError(f"{split_file} does not exist: make the split first (scarlab split ... --out DIR)")
    holder = RunDir(split_file.parent)
    hint = f"retrain the original {original.path} (scarlab train ... --out {original.path} --overwrite)"
    return Audited(holder, "original", _checkpoint(original, hint), load_split(split_file),
                   _train_identity(original.config, original.path), int(original.config.get("seed") or 0),
                   label="original")


def _checkpoint(holder: RunDir, hint: str) -> Path:
    f = holder.file("checkpoints/model.pt")
    if not f.is_file():
        raise ScarlabError(f"{f} is missing, so the forget examples' logits cannot be computed: {hint}")
    return f


def _train_identity(cfg: dict, where: Path) -> dict:
    missing = [k for k in TRAIN_KEYS if cfg.get(k) is None]
    if missing:
        raise ScarlabError(f"{where}/config.json lacks the training option(s) {', '.join(missing)} the shadows "
                           "copy; retrain that run with this version of scarlab")
    return {**{k: cfg[k] for k in TRAIN_KEYS}, "data_root": cfg.get("data_root")}


# ============================================================================================ fingerprints
def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _split_identity(split) -> dict:
    forget = np.sort(np.asarray(split.forget_idx, np.int64))
    return {"scenario": split.scenario, "n_forget": int(len(forget)),
            "forget_sha256": hashlib.sha256(forget.tobytes()).hexdigest()}


def _train_key(train: dict) -> dict:
    return {k: train[k] for k in TRAIN_KEYS}


def folder_identity(a: Audited) -> dict:
    """What every member of a shadow folder shares: the training configuration and the forget set."""
    return {"train": _train_key(a.train), "split": _split_identity(a.split)}


def method_key(unlearn: dict) -> str:
    """``<method>__<hash8>``: the unlearned population of one method and its resolved options."""
    return f"{unlearn['method']}__{_hash(unlearn)[:8]}"


def _differences(got: dict, want: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(got) | set(want)):
        g, w = got.get(k, "<absent>"), want.get(k, "<absent>")
        if isinstance(g, dict) and isinstance(w, dict):
            out += _differences(g, w, f"{prefix}{k}.")
        elif g != w:
            out.append(f"{prefix}{k} = {g!r} there, {w!r} here")
    return out


# ============================================================================================ shadow population
@dataclass
class ShadowPopulation:
    """The shadow members one audit uses (paths), and what making them cost."""

    folder: Path
    fingerprint: str
    seeds: list[int]
    originals: list[Path] = field(default_factory=list)
    retrained: list[Path] = field(default_factory=list)
    unlearned: list[Path] = field(default_factory=list)
    method_key: str | None = None
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    """seconds spent per population (original, retrained, the method key), building and checking."""


def shadow_seeds(seed: int, k: int) -> list[int]:
    """The K shadow seeds seed, seed + 1, ..., each a valid seed (0..SEED_MAX)."""
    if not 0 <= seed <= seed + k - 1 <= SEED_MAX:
        raise ScarlabError(f"the shadow seeds {seed}..{seed + k - 1} must lie from 0 to {SEED_MAX}; choose another "
                           "shadow seed")
    return [int(seed) + i for i in range(k)]


def _check_k(k, kind: str | None = None) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_SHADOWS:
        raise ScarlabError(f"--shadows K={k!r} is too small: the held-out U-LiRA attack fits each score on the other "
                           f"K − 1 shadow pairs and one std needs two models, so K must be at least {MIN_SHADOWS} "
                           "(8 or more for usable intervals; ε can exceed 0 only from K = 6)")
    if kind == "retrained" and k < 2 * MIN_SHADOWS:
        raise ScarlabError(f"--shadows K={k} is too small to audit a retrained run: its K retrained shadows are split "
                           f"into two halves of at least {MIN_SHADOWS} (one plays 'unlearned', one 'retrained'), so K "
                           f"must be at least {2 * MIN_SHADOWS}")


def _member_identity(role: str, path: Path) -> dict:
    """The identity of an existing member, read from its config.json and split.npz (as :func:`_expected` builds it)."""
    from .data import Split

    run = RunDir(path)
    cfg = run.config
    if role in ("original", "retrained"):
        ident = {"role": cfg.get("role"), "seed": cfg.get("seed"), "train": {k: cfg.get(k) for k in TRAIN_KEYS}}
    else:
        ident = {"seed": cfg.get("seed"), "original": Path(str(cfg.get("original") or "")).name,
                 "unlearn": {k: cfg.get(k) for k in UNLEARN_KEYS},
                 "trace": {k: cfg.get(k) for k in ("snapshot_every", "probe_forget", "probe_retain")}}
    if role != "original":
        f = run.file("split.npz")
        ident["split"] = _split_identity(Split.load(f)) if f.is_file() else None
    return ident


def _shadow_trace(a: Audited) -> dict:
    """How an unlearned shadow snapshots: at the audited run's steps, every forget example, no retain-test points
    (the audit over steps reads only the forget examples' logits)."""
    return {"snapshot_every": int(a.unlearn["snapshot_every"]), "probe_forget": int(len(a.split.forget_idx)),
            "probe_retain": 0}


def _expected(role: str, a: Audited, seed: int, original_name: str | None = None) -> dict:
    if role in ("original", "retrained"):
        ident = {"role": role, "seed": seed, "train": _train_key(a.train)}
    else:
        ident = {"seed": seed, "original": original_name, "unlearn": dict(a.unlearn), "trace": _shadow_trace(a)}
    if role != "original":
        ident["split"] = _split_identity(a.split)
    return ident


class _Builder:
    """Makes or reuses the members of one shadow folder."""

    def __init__(self, a: Audited, fingerprint: str):
        self.a, self.fp = a, fingerprint
        self.built: list[str] = []
        self.reused: list[str] = []

    def start(self, role: str, path: Path, seed: int, depends: Path | None = None) -> tuple[dict, bool] | None:
        """None when the member at ``path`` is reused; else (its expected identity, whether to overwrite)."""
        expect = _expected(role, self.a, seed, depends.name if depends is not None else None)
        if path.exists() and self._reusable(role, path, expect, depends):
            self.reused.append(path.name)
            return None
        overwrite = path.exists()
        if overwrite and not (path / "manifest.json").is_file():
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
                overwrite = False
            else:
                raise ScarlabError(f"{path} is in the way of shadow member {path.name} and is not a scarlab run "
                                   "directory; move it away, then rerun the audit")
        return expect, overwrite

    @staticmethod
    def failure(path: Path, exc: BaseException) -> ScarlabError:
        msg = str(exc) if isinstance(exc, ScarlabError) else f"{type(exc).__name__}: {exc}"
        return ScarlabError(f"shadow member {path} failed: {msg}. Rerunning the audit resumes: complete members "
                            "are reused and this one is made again")

    def done(self, role: str, path: Path, seed: int, expect: dict, depends: Path | None = None) -> None:
        """Mark a member just made as this folder's (its manifest's ``shadow`` entry)."""
        entry = {"role": role, "seed": seed, "folder_fingerprint": self.fp, "identity": _hash(expect)}
        if depends is not None:
            entry["original_created"] = RunDir(depends).manifest.get("created")
        RunDir(path).update_manifest(shadow=entry)
        self.built.append(path.name)

    def _reusable(self, role: str, path: Path, expect: dict, depends: Path | None) -> bool:
        run = RunDir(path)
        if not (path / "manifest.json").is_file():
            return False
        try:
            status = run.status
        except ScarlabError:
            return False  # an unreadable manifest: made again (overwrite checks it is scarlab's)
        if status == "running" and run.live_holder():
            holder = run.live_holder()
            raise ScarlabError(f"shadow member {path} is being written by process {holder}; wait for it (another "
                               "audit?) and rerun")
        if status != "complete" or not files_intact(path):
            return False
        got = _member_identity(role, path)
        if got != expect:
            diff = "; ".join(_differences(got, expect)) or "their configurations differ"
            raise ScarlabError(f"shadow member {path} was made with another configuration (fingerprint "
                               f"{_hash(got)[:8]} ≠ {_hash(expect)[:8]}: {diff}); it belongs to another split, data "
                               "set or method parameters. Remove it or audit with another --shadow-dir")
        if depends is not None:  # made from an earlier version of its shadow original?
            made_from = (run.manifest.get("shadow") or {}).get("original_created")
            if made_from is None or made_from != RunDir(depends).manifest.get("created"):
                return False
        return True


def _folder(a: Audited, shadow_dir) -> tuple[Path, str]:
    ident = folder_identity(a)
    fp = _hash(ident)
    folder = Path(shadow_dir) if shadow_dir else a.run.path.resolve().parent / f"shadows__{fp[:8]}"
    rec = folder / "shadows.json"
    if rec.is_file():
        old = read_json(rec)
        if old.get("fingerprint") != fp:
            diff = "; ".join(_differences(old.get("identity") or {}, ident)) or "unknown"
            raise ScarlabError(f"shadow folder {folder} holds shadows of another configuration (fingerprint "
                               f"{str(old.get('fingerprint'))[:8]} ≠ {fp[:8]}: {diff}); another split, data set or "
                               "training option. Audit with another --shadow-dir (or none: a folder per fingerprint)")
    elif folder.is_dir() and any(p.name != "split.npz" for p in folder.iterdir()):
        raise ScarlabError(f"{folder} exists and is not a scarlab shadow folder (no shadows.json); choose another "
                           "--shadow-dir")
    return folder, fp


def _record(folder: Path, fp: str, a: Audited, pop: ShadowPopulation) -> None:
    rec = folder / "shadows.json"
    old = read_json(rec) if rec.is_file() else {"created": time.time()}
    members = old.get("members") or {}
    there = set(pop.built) | set(pop.reused)  # complete now (a failed build leaves the rest unlisted)
    for key, paths in (("original", pop.originals), ("retrained", pop.retrained),
                       (pop.method_key or "", pop.unlearned)):
        names = {p.name for p in paths} & there
        if names:
            members[key] = sorted(set(members.get(key, [])) | names)
    if pop.method_key:
        methods = old.get("methods") or {}
        methods[pop.method_key] = a.unlearn
        old["methods"] = methods
    write_json(rec, {**old, "fingerprint": fp, "identity": folder_identity(a), "members": members,
                     "updated": time.time()})


POPULATIONS = ("original", "retrained", "unlearned")


@dataclass
class _Member:
    key: str
    """its population's key in ShadowPopulation.seconds (original, retrained or the method key)."""
    role: str
    path: Path
    seed: int
    kind: str
    """'train' or 'unlearn': what _make_member runs."""
    cfg: dict
    depends: Path | None = None
    """the shadow original an unlearned member starts from (made first)."""


def _make_member(kind: str, cfg: dict, path: str, overwrite: bool, threads: int | None = None) -> None:
    """Make one shadow member: ``run_train`` (kind 'train') or ``run_unlearn`` ('unlearn') with configuration
    ``cfg``. At module level so that a worker process runs it (``jobs`` > 1), with ``threads`` torch threads."""
    from .config import TrainConfig, UnlearnConfig
    from .train import run_train
    from .unlearn.stage import run_unlearn

    if threads:
        import torch

        torch.set_num_threads(threads)
    if kind == "train":
        run_train(TrainConfig(**cfg), path, overwrite=overwrite, progress=False)
    else:
        run_unlearn(UnlearnConfig(**cfg), path, overwrite=overwrite, progress=False)


def _build(b: _Builder, members: list[_Member], jobs: int, bar, seconds: dict) -> None:
    """Make or reuse ``members``: one at a time in this process (jobs = 1), or in ``jobs`` worker processes with
    torch's threads shared out among them, each member as soon as its shadow original is complete. After a failure
    no new member starts; those running finish (and are kept), then the first failure is raised."""
    spans: dict[str, list[float]] = {}

    def timed(m: _Member, t0: float) -> None:
        span = spans.setdefault(m.key, [t0, t0])
        span[0], span[1] = min(span[0], t0), time.perf_counter()
        bar.update(1)

    if jobs <= 1:
        for m in members:
            t0 = time.perf_counter()
            bar.set_postfix_str(m.path.name)
            started = b.start(m.role, m.path, m.seed, m.depends)
            if started is not None:
                try:
                    _make_member(m.kind, m.cfg, str(m.path), started[1])
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure of a member is reported with where to resume
                    raise b.failure(m.path, exc) from exc
                b.done(m.role, m.path, m.seed, started[0], m.depends)
            timed(m, t0)
    else:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        import torch

        threads = max(1, torch.get_num_threads() // jobs)
        waiting, complete, running, errors = list(members), set(), {}, []
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            try:
                while True:
                    progressed = True
                    while progressed and not errors:  # start what is ready (a reused original frees its dependant)
                        progressed = False
                        for m in [m for m in waiting if m.depends is None or m.depends in complete]:
                            waiting.remove(m)
                            progressed, t0 = True, time.perf_counter()
                            started = b.start(m.role, m.path, m.seed, m.depends)
                            if started is None:
                                complete.add(m.path)
                                timed(m, t0)
                            else:
                                running[pool.submit(_make_member, m.kind, m.cfg, str(m.path), started[1],
                                                    threads)] = (m, started[0], t0)
                    if not running:
                        break
                    bar.set_postfix_str(", ".join(m.path.name for m, *_ in running.values()))
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for f in finished:
                        m, expect, t0 = running.pop(f)
                        try:
                            f.result()
                        except Exception as exc:  # noqa: BLE001 - reported with where to resume
                            errors.append(b.failure(m.path, exc))
                            for queued in [q for q in running if q.cancel()]:  # not started yet: never will be
                                running.pop(queued)
                            continue
                        b.done(m.role, m.path, m.seed, expect, m.depends)
                        complete.add(m.path)
                        timed(m, t0)
            except BaseException as exc:
                pool.shutdown(wait=True, cancel_futures=True)
                if isinstance(exc, BrokenProcessPool):
                    raise ScarlabError(f"a worker process making shadow members died ({exc}; out of memory?). "
                                       "Rerunning the audit resumes: complete members are reused; try fewer "
                                       "--jobs") from None
                raise
        if errors:
            raise errors[0]
    seconds.update({key: end - begin for key, (begin, end) in spans.items()})


def shadow_population(run, shadows: int = DEFAULT_SHADOWS, *, seed: int = DEFAULT_SEED, shadow_dir=None,
                      device: str = "auto", progress: bool = True, populations=None,
                      jobs: int = 1) -> ShadowPopulation:
    """Make or reuse the K shadow members an audit of ``run`` needs (module docstring: layout and reuse rule).

    An unlearn run needs originals, retrained oracles and unlearned models; an original, the first two; a retrained
    run, only retrained oracles. ``run`` may also be an :class:`Audited` (e.g. :func:`split_target`).
    ``populations``: only these of the ones the run needs ("original", "retrained", "unlearned"; None = all of
    them) — the unlearned population is made from the originals, so it needs them complete (they are made or
    reused with it). ``jobs``: worker processes making members at once on the CPU (torch's threads shared out
    among them; on this project's 2-core machine two 1-thread workers made 1.3-1.5x the cifar10-mini trainings
    per minute of one 2-thread process, and the digits K = 16 audit ran 1.85x faster, BENCHMARKS.md §7); on an
    accelerator members are made one at a time. Returns the member paths (index i = seed + i in
    every population).
    """
    from tqdm.auto import tqdm

    from .device import resolve_device

    a = run if isinstance(run, Audited) else audited(run)
    _check_k(shadows)  # a retrained run's halves (K ≥ 6) are the online attack's need: audit_run checks them
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ScarlabError(f"jobs must be a whole number ≥ 1 (worker processes making shadow members), got {jobs!r}")
    needs = {"unlearn": POPULATIONS, "original": POPULATIONS[:2], "retrained": POPULATIONS[1:2]}[a.kind]
    if populations is None:
        wanted = set(needs)
    else:
        wanted = {populations} if isinstance(populations, str) else set(populations)
        bad = sorted(wanted - set(needs))
        if bad:
            raise ScarlabError(f"populations {', '.join(bad)}: an audit of a {a.kind} run uses only "
                               f"{', '.join(needs)}")
        if "unlearned" in wanted:
            wanted |= {"original", "retrained"}  # the unlearned shadows start from (and are compared with) these
    seeds = shadow_seeds(seed, shadows)
    if a.model_seed in seeds:
        raise ScarlabError(f"the shadow seeds {seeds[0]}..{seeds[-1]} include the audited model's own training seed "
                           f"{a.model_seed}: a shadow would be its twin. Pass --seed outside that range")
    device = resolve_device(device)
    folder, fp = _folder(a, shadow_dir)
    make_folder(folder, "shadow folder")
    split_file = folder / "split.npz"
    if not _split_ok(split_file, a.split):
        with replacing(split_file, folder / "split.tmp.npz") as tmp:
            a.split.save(tmp)
    pop = ShadowPopulation(folder, fp, seeds)
    b = _Builder(a, fp)
    _record(folder, fp, a, pop)  # first, so an interrupted build still leaves a recognisable shadow folder
    base = {**a.train, "device": device}
    u = a.unlearn or {}
    members: list[_Member] = []
    if "original" in wanted:
        pop.originals = [folder / f"original__s{s}" for s in seeds]
        members += [_Member("original", "original", p, s, "train", {**base, "role": "original", "seed": s})
                    for p, s in zip(pop.originals, seeds)]
    if "retrained" in wanted:
        pop.retrained = [folder / f"retrained__s{s}" for s in seeds]
        members += [_Member("retrained", "retrained", p, s, "train",
                            {**base, "role": "retrained", "seed": s, "split": str(split_file)})
                    for p, s in zip(pop.retrained, seeds)]
    if "unlearned" in wanted:
        pop.method_key = method_key(a.unlearn)
        pop.unlearned = [folder / f"{pop.method_key}__s{s}" for s in seeds]
        members += [_Member(pop.method_key, "unlearned", p, s, "unlearn",
                            {"original": str(o), "method": u["method"], "retrained": str(r), "split": str(split_file),
                             "seed": s, "surrogate": u["surrogate"], "surrogate_chunks": u["surrogate_chunks"],
                             "surrogate_size": u["surrogate_size"], "params": dict(u["params"]), "device": device,
                             "retain_available": u["retain_available"], **_shadow_trace(a)}, depends=o)
                    for p, s, o, r in zip(pop.unlearned, seeds, pop.originals, pop.retrained)]
    bar = tqdm(total=len(members), desc=f"shadows of {a.run.path.name}", unit="model", disable=not progress,
               leave=False)
    try:
        with bar:
            _build(b, members, min(jobs, len(members)) if device == "cpu" else 1, bar, pop.seconds)
    finally:
        pop.built, pop.reused = b.built, b.reused
        _record(folder, fp, a, pop)
    return pop


def _split_ok(path: Path, split) -> bool:
    from .data import Split

    if not path.is_file():
        return False
    try:
        return _split_identity(Split.load(path)) == _split_identity(split)
    except Exception:  # noqa: BLE001 - a damaged copy is rewritten
        return False


# ============================================================================================ scores
# (checkpoint, its mtime_ns, forget set) -> logits [N, C]: the audits of one process share their shadows' logits
_LOGITS: dict[tuple, np.ndarray] = {}


def _scores(checkpoint: Path, ds, part: str, idx: np.ndarray, device: str, half: bool) -> np.ndarray:
    """Scaled true-class logits φ [N] of a model on images ``idx`` of ``ds.<part>`` ("train" or "test")."""
    import torch

    from .features import extract
    from .models import load_checkpoint

    checkpoint = Path(checkpoint)
    idx = np.asarray(idx, np.int64)
    key = (str(checkpoint.resolve()), checkpoint.stat().st_mtime_ns, part, hashlib.sha256(idx.tobytes()).hexdigest())
    data = getattr(ds, part)
    if key not in _LOGITS:
        model = load_checkpoint(checkpoint, device, expect={"num_classes": ds.num_classes})
        logits = extract(model, ds, data.images[torch.as_tensor(idx)], device, features=False)[1].numpy()
        if len(_LOGITS) > 1024:
            _LOGITS.clear()
        _LOGITS[key] = logits
    logits = _LOGITS[key].astype(np.float16) if half else _LOGITS[key]
    return ulira.scaled_logit(logits.astype(np.float64), data.labels[torch.as_tensor(idx)].numpy())


def forget_scores(checkpoint: Path, ds, split, device: str = "cpu", *, half: bool = False) -> np.ndarray:
    """Scaled true-class logits φ [N] of a model on the forget examples ``split.forget_idx`` (training images).

    ``half``: from the logits rounded to float16, as feature snapshots store them, so a checkpoint's scores and
    snapshot scores compared in the audit over steps differ by the models and not by the rounding."""
    return _scores(checkpoint, ds, "train", split.forget_idx, device, half)


def control_indices(split, ds, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Test-set indices of the control examples, which no model of either population trained on: class removal,
    every test image of the forget classes (``split.forget_test_idx``); random removal, a sample of test images
    (seeded by ``seed``) as large as the forget set, or the whole test set if smaller. Raises a one-line error when
    fewer than MIN_CONTROL are available."""
    if split.scenario == "CR":
        idx = np.sort(np.asarray(split.forget_test_idx, np.int64))
        what = f"the test images of forget class(es) {list(split.forget_classes)}"
    else:
        n_test = len(ds.test.labels)
        size = min(len(split.forget_idx), n_test)
        idx = np.sort(np.random.default_rng(seed).choice(n_test, size, replace=False)).astype(np.int64)
        what = "test images"
    if len(idx) < MIN_CONTROL:
        raise ScarlabError(f"the audit's control set ({what}) has {len(idx)} examples, fewer than the "
                           f"{MIN_CONTROL} its intervals need (forget set: {len(split.forget_idx)}); audit a split "
                           "whose forget classes have more test images")
    return idx


def control_scores(checkpoint: Path, ds, idx: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Scaled true-class logits φ [N_c] of a model on the control examples (test images ``idx``)."""
    return _scores(checkpoint, ds, "test", idx, device, False)


def _accuracies(paths: list[Path], ds, split, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(retain-train accuracy, test accuracy) [K] of the models in ``paths``, for the competition's final score."""
    import torch

    from .features import accuracy_on
    from .models import load_checkpoint

    retain = torch.as_tensor(np.asarray(split.retain_idx, np.int64))
    out = []
    for p in paths:
        model = load_checkpoint(p / "checkpoints" / "model.pt", device, expect={"num_classes": ds.num_classes})
        out.append((accuracy_on(model, ds, ds.train.images[retain], ds.train.labels[retain], device),
                    accuracy_on(model, ds, ds.test.images, ds.test.labels, device)))
    return np.array([r for r, _ in out]), np.array([t for _, t in out])


def _competition(scores_a, scores_b, ctl_a, ctl_b, members_a, members_b, ds, split, device) -> tuple[dict, np.ndarray]:
    """The NeurIPS 2023 competition's numbers on the same shadows (scarlab.metrics.competition): its per-example ε of
    the raw scaled logits (no fit, no held-out models: population A against B as it scored 512 + 512 models), F on
    the forget and on the control examples, F's chance level at K, and the final score F · retain-accuracy ratio ·
    test-accuracy ratio of A's models against B's. Returns (metrics, per-example ε [N])."""
    k = len(scores_a)
    eps = competition.competition_epsilon(scores_a, scores_b)
    eps_c = competition.competition_epsilon(ctl_a, ctl_b)
    forget_f = competition.forget_score(eps, k)
    ra_a, ta_a = _accuracies(members_a, ds, split, device)
    ra_b, ta_b = _accuracies(members_b, ds, split, device)
    return {"competition/F": forget_f, "competition/F_control": competition.forget_score(eps_c, k),
            "competition/F_chance": competition.forget_score_chance(k),
            "competition/score": competition.final_score(forget_f, ra_a, ra_b, ta_a, ta_b),
            "competition/eps_mean": float(np.mean(eps)),
            "competition/eps_capped": float(np.mean(eps >= competition.EPSILON_CAP)),
            "competition/eps_max_finite": competition.epsilon_max_finite(k, len(scores_b)),
            "competition/retain_acc_ratio": float(ra_a.mean() / ra_b.mean()),
            "competition/test_acc_ratio": float(ta_a.mean() / ta_b.mean())}, eps


def _populations(a: Audited, pop: ShadowPopulation) -> tuple[list[Path], list[Path], str, str]:
    """(A members, B members, what A is, what B is) for the audited run's kind (module docstring)."""
    if a.kind == "unlearn":
        return pop.unlearned, pop.retrained, f"unlearned ({a.unlearn['method']})", "retrained"
    if a.kind == "original":
        return pop.originals, pop.retrained, "original", "retrained"
    h = len(pop.retrained) // 2
    return (pop.retrained[:h], pop.retrained[h:2 * h], "retrained (first half of the seeds)",
            "retrained (second half of the seeds)")


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
    shadows = []  # (sorted steps, φ [steps, N] with NaN where a snapshot lacks an example)
    for p in pop.unlearned:
        snaps = _forget_snapshots(RunDir(p), pos)
        if not snaps or 0 not in snaps:
            raise ScarlabError(f"shadow member {p} has no feature snapshot of step 0, so the audit over steps cannot "
                               "use it: delete that folder and rerun the audit (it is made again)")
        steps = np.array(sorted(snaps))
        dense = np.full((len(steps), len(forget)), np.nan)
        for n, st in enumerate(steps):
            cols, phi = snaps[int(st)]
            dense[n, cols] = phi
        shadows.append((steps, dense))
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


# ============================================================================================ the audit
def mark_failed(run: RunDir, entry: str, exc: BaseException) -> None:
    """Record a failed audit in the run's manifest under ``entry`` (its one-line error), as far as the disk allows."""
    msg = str(exc) if isinstance(exc, ScarlabError) else f"{type(exc).__name__}: {exc}"
    try:
        run.update_manifest(**{entry: {"status": "failed", "error": msg, "finished": time.time()}})
    except (OSError, ScarlabError):
        pass


def audit_run(run, shadows: int = DEFAULT_SHADOWS, *, seed: int = DEFAULT_SEED, shadow_dir=None,
              delta: float = ulira.DEFAULT_DELTA, alpha: float = ulira.DEFAULT_ALPHA, device: str = "auto",
              progress: bool = True, jobs: int = 1) -> dict:
    """Audit one run: make or reuse its shadows (``jobs`` worker processes, :func:`shadow_population`), score them
    and the run, write audit.json / audit.parquet /
    audit_scores.npz (/ audit_steps.csv) into the run, list them in its manifest. Returns audit.json's contents."""
    import pandas as pd

    from .data import load_dataset
    from .device import resolve_device

    t_start = time.perf_counter()
    a = run if isinstance(run, Audited) else audited(run)
    _check_k(shadows, a.kind)
    for name, v, lo, hi in (("delta", delta, 0.0, 1.0), ("alpha", alpha, 0.0, 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v < hi:
            raise ScarlabError(f"{name} must lie strictly between {lo:g} and {hi:g}, got {v!r}")
    device = resolve_device(device)
    if shadow_dir is not None:  # before the try: a folder that cannot be made is no failed audit of the run
        make_folder(shadow_dir, "shadow folder")
    target_run = a.run
    try:
        pop = shadow_population(a, shadows, seed=seed, shadow_dir=shadow_dir, device=device, progress=progress,
                                jobs=jobs)
        t_scores = time.perf_counter()
        ds = load_dataset(a.train["dataset"], a.train.get("data_root"))
        members_a, members_b, what_a, what_b = _populations(a, pop)
        scores_a = np.stack([forget_scores(p / "checkpoints" / "model.pt", ds, a.split, device) for p in members_a])
        scores_b = np.stack([forget_scores(p / "checkpoints" / "model.pt", ds, a.split, device) for p in members_b])
        target = forget_scores(a.checkpoint, ds, a.split, device)
        # the control: the same models on examples none of them trained on (module docstring, "Control")
        ctl = control_indices(a.split, ds, seed)
        ctl_a = np.stack([control_scores(p / "checkpoints" / "model.pt", ds, ctl, device) for p in members_a])
        ctl_b = np.stack([control_scores(p / "checkpoints" / "model.pt", ds, ctl, device) for p in members_b])
        ctl_target = control_scores(a.checkpoint, ds, ctl, device)
        # forget, control and their difference from one held-out attack per side (fits, jackknife, bootstraps)
        res, res_c, membership = ulira.audit_with_control(scores_a, scores_b, ctl_a, ctl_b, target=target,
                                                          control_target=ctl_target, delta=delta, alpha=alpha)
        k = int(res["ulira/k"])
        flagged = res["ulira/target_log_lr"] > ulira.flag_threshold(res["ulira/log_lr_b"], FLAG_FPR)
        # a forget example is a member at FLAG_FPR when its Λ tops that share of the control examples' Λ
        member_thr = float(np.quantile(res_c["ulira/target_log_lr"], 1 - FLAG_FPR))
        member = res["ulira/target_log_lr"] > member_thr
        comp, comp_eps = _competition(scores_a, scores_b, ctl_a, ctl_b, members_a, members_b, ds, a.split, device)
        steps, per_example = steps_audit(a, pop, ds, device, delta=delta, alpha=alpha)
        scores_s = time.perf_counter() - t_scores

        metrics = {key: v for key, v in res.items() if np.isscalar(v)}
        metrics["ulira/target_log_lr_mean"] = float(np.mean(res["ulira/target_log_lr"]))
        metrics["ulira/target_log_lr_median"] = float(np.median(res["ulira/target_log_lr"]))
        metrics.update({f"ulira/control/{key[6:]}": v for key, v in res_c.items()
                        if np.isscalar(v) and key.startswith(("ulira/auc", "ulira/tpr@", "ulira/eps_mean",
                                                              "ulira/bacc", "ulira/target_flagged"))})
        metrics["ulira/control/n_examples"] = int(len(ctl))
        metrics.update({f"ulira/membership/{key[11:]}": v for key, v in membership.items()
                        if key.startswith("membership/")})
        metrics[f"ulira/member@{FLAG_FPR:g}"] = float(member.mean())
        metrics.update(comp)
        idx = np.asarray(a.split.forget_idx, np.int64)
        labels = ds.train.labels[idx].numpy().astype(np.int64)
        doc = {"mode": "online", "run": str(target_run.path), "kind": a.kind, "label": a.label, "k": k, "delta": float(delta),
               "alpha": float(alpha), "flag_fpr": FLAG_FPR, "n_examples": int(len(idx)), "metrics": metrics,
               "populations": {"a": what_a, "b": what_b, "a_members": [p.name for p in members_a],
                               "b_members": [p.name for p in members_b]},
               "control": {"what": ("test images of the forget classes" if a.split.scenario == "CR" else
                                    "test images (a sample as large as the forget set)"),
                           "n_examples": int(len(ctl)), "member_threshold": member_thr,
                           "roc": {"fpr": res_c["ulira/roc_fpr"].tolist(), "tpr": res_c["ulira/roc_tpr"].tolist()}},
               "shadows": {"k": shadows, "folder": str(pop.folder), "fingerprint": pop.fingerprint,
                           "seeds": pop.seeds, "built": pop.built, "reused": len(pop.reused)},
               "roc": {"fpr": res["ulira/roc_fpr"].tolist(), "tpr": res["ulira/roc_tpr"].tolist()},
               "formulas": FORMULAS,
               "time": {**{f"shadows/{key}_s": round(v, 3) for key, v in pop.seconds.items()},
                        "scores_s": round(scores_s, 3), "audit_s": round(time.perf_counter() - t_start, 3)},
               "created": time.time()}
        table = pd.DataFrame({"index": idx, "label": labels, "target_score": target,
                              "target_log_lr": res["ulira/target_log_lr"], "eps": res["ulira/eps"],
                              "example_auc": res["ulira/example_auc"], f"flagged@{FLAG_FPR:g}": flagged,
                              f"member@{FLAG_FPR:g}": member, "eps_competition": comp_eps,
                              "mean_a": scores_a.mean(0), "mean_b": scores_b.mean(0)})
        tmp = target_run.file("audit.parquet.tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(target_run.file("audit.parquet"))
        tmp = target_run.file("audit_scores.tmp.npz")
        np.savez_compressed(tmp, scores_a=scores_a, scores_b=scores_b, target=target, index=idx, labels=labels,
                            log_lr_a=res["ulira/log_lr_a"], log_lr_b=res["ulira/log_lr_b"], control_a=ctl_a,
                            control_b=ctl_b, control_target=ctl_target, control_index=ctl,
                            control_log_lr=res_c["ulira/target_log_lr"])
        tmp.replace(target_run.file("audit_scores.npz"))
        written = ["audit.json", "audit.parquet", "audit_scores.npz"]
        if steps:
            tmp = target_run.file("audit_steps.csv.tmp")
            pd.DataFrame(steps, columns=list(STEP_COLUMNS)).to_csv(tmp, index=False)
            tmp.replace(target_run.file("audit_steps.csv"))
            tmp = target_run.file("audit_steps.tmp.npz")
            np.savez_compressed(tmp, **per_example)
            tmp.replace(target_run.file("audit_steps.npz"))
            written += ["audit_steps.csv", "audit_steps.npz"]
        else:
            for name in ("audit_steps.csv", "audit_steps.npz"):  # from an earlier audit; nothing to say now
                target_run.file(name).unlink(missing_ok=True)
        write_json(target_run.file("audit.json"), doc)
        # the main numbers beside the paper's in metrics.json: summary.csv and the dashboard read them there
        target_run.write_metrics({key: metrics[key] for key in METRIC_KEYS if key in metrics}, merge=True)
        written.append("metrics.json")
    except BaseException as exc:
        mark_failed(target_run, "audit", exc)
        raise
    files = sorted((set(target_run.manifest.get("files", [])) - set(FILES)) | set(written))
    target_run.update_manifest(files=files, audit={"status": "complete", "finished": time.time(), "k": k,
                                                   "shadows": str(pop.folder), "audit_s": doc["time"]["audit_s"]})
    return doc


__all__ = ["AuditConfig", "Audited", "METRIC_KEYS", "POPULATIONS", "ShadowPopulation", "audited", "audit_run",
           "forget_scores", "shadow_population", "split_target", "steps_audit", "MIN_SHADOWS"]
