"""The audited run (:class:`Audited`: its kind, checkpoint, split and the training configuration the shadows copy),
the fingerprints that name shadow folders and unlearned populations, and the record of a failed audit."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import LEGACY_RECIPE, RECIPE_KEYS, AuditConfig
from ..errors import ScarlabError
from ..runs import ORIGINAL, RunDir

DEFAULT_SHADOWS, DEFAULT_SEED = AuditConfig.shadows, AuditConfig.seed
TRAIN_KEYS = ("dataset", "model", *(k for k in RECIPE_KEYS if k != "recipe"), "stats_delta")
"""the training options every shadow copies from the audited run (its identity; device and data_root are not)."""
UNLEARN_KEYS = ("method", "params", "surrogate", "surrogate_chunks", "surrogate_size", "retain_available",
                "snapshot_every")
"""the unlearning options every unlearned shadow copies from the audited run (snapshot_every: its snapshots fall
on the audited run's steps, for the audit over steps)."""


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
    from ..results import describe
    from ..train import load_split

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
    from ..train import load_split

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
    cfg = {**LEGACY_RECIPE, **cfg}  # a run from before the recipe options was trained with their legacy values
    missing = [k for k in TRAIN_KEYS if cfg.get(k) is None]
    if missing:
        raise ScarlabError(f"{where}/config.json lacks the training option(s) {', '.join(missing)} the shadows "
                           "copy; retrain that run with this version of scarlab")
    return {**{k: cfg[k] for k in TRAIN_KEYS}, "data_root": cfg.get("data_root")}


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def split_identity(split) -> dict:
    forget = np.sort(np.asarray(split.forget_idx, np.int64))
    return {"scenario": split.scenario, "n_forget": int(len(forget)),
            "forget_sha256": hashlib.sha256(forget.tobytes()).hexdigest()}


def train_key(train: dict) -> dict:
    """The identity of a training configuration (a run's config or an audited run's ``train``); an option at its
    legacy value is left out, so the shadow folders made before it existed keep their names."""
    out = {}
    for k in TRAIN_KEYS:
        v = train.get(k, LEGACY_RECIPE.get(k))
        if not (k in LEGACY_RECIPE and v == LEGACY_RECIPE[k]):
            out[k] = v
    return out


def folder_identity(a: Audited) -> dict:
    """What every member of a shadow folder shares: the training configuration and the forget set."""
    return {"train": train_key(a.train), "split": split_identity(a.split)}


def method_key(unlearn: dict) -> str:
    """``<method>__<hash8>``: the unlearned population of one method and its resolved options."""
    return f"{unlearn['method']}__{digest(unlearn)[:8]}"


def differences(got: dict, want: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(got) | set(want)):
        g, w = got.get(k, "<absent>"), want.get(k, "<absent>")
        if isinstance(g, dict) and isinstance(w, dict):
            out += differences(g, w, f"{prefix}{k}.")
        elif g != w:
            out.append(f"{prefix}{k} = {g!r} there, {w!r} here")
    return out


def mark_failed(run: RunDir, entry: str, exc: BaseException) -> None:
    """Record a failed audit in the run's manifest under ``entry`` (its one-line error), as far as the disk allows."""
    msg = str(exc) if isinstance(exc, ScarlabError) else f"{type(exc).__name__}: {exc}"
    try:
        run.update_manifest(**{entry: {"status": "failed", "error": msg, "finished": time.time()}})
    except (OSError, ScarlabError):
        pass

