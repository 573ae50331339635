"""The pipeline: the stage notebooks (``notebooks/0*.ipynb``) executed by papermill in dependency order.

A pipeline is *planned* first — a list of :class:`StageSpec` with explicit dependencies, everything validated
before anything runs — and then executed, each stage by :func:`execute_stage` (a plain function of one spec,
callable in another process: the Ray sweep runs it as a task). :func:`run_pipeline` runs a plan locally
with a progress bar, optionally several independent stages at once (``jobs``).

Layout of a pipeline root ``DIR`` (several pipelines may share one root)::

    DIR/
      pipeline.yaml                          the configuration of the last invocation
      summary.csv, summary.md, compare.ipynb 06_compare over that invocation's runs
      <dataset>__<model>/                    e.g. digits__tinycnn, cifar10-mini__smallcnn
        original__<h>/                       01_train_original          (notebook.ipynb inside)
        <split-id>/                          CR-f0__<h>, CR-f0-3__<h>, HR-n300-s0__<h>
          split/                             02_split: split.npz, reused by every stage below
          retrained/                         03_train_retrained         (+ evaluate.ipynb: 05 in place)
          original_eval/                     05_evaluate of the original model against this split ("original")
          <method>__s<seed>__<h>/            04_unlearn                 (+ evaluate.ipynb: 05 in place)

Each stage has a *fingerprint*: a hash of its kind, its notebook parameters (leaving out the ones that only
say where things are — paths, device) and the fingerprints of the stages it depends on. ``<h>`` is the start
of a fingerprint: the original's folder changes with its training configuration; the split id with the split,
the original and the retrained training configuration; a method's folder with its hyper-parameters, seed and
surrogate. Changing the configuration therefore makes new folders and never overwrites other runs.

**Reuse rule.** A stage is skipped when its record ``stage_<kind>.json`` (written last, next to the run's
``manifest.json``) says ``complete`` with the same fingerprint, its run directory's manifest says
``complete`` and its executed notebook is there. Anything else (missing, failed, interrupted, changed
upstream) is executed again, into a cleared run directory.

**Failure.** A stage whose notebook raises is recorded ``failed`` with the notebook cell's error message (in
the run's ``manifest.json`` — ``error`` — or, for an in-place evaluation, under ``evaluation``), its executed
notebook is kept, the stages that depend on it are reported ``blocked`` and every independent branch
carries on. The final compare stage (06_compare, ``scarlab.evaluate.summarize``) lists every run of the plan
that exists: evaluated ones with their metrics, failed ones with their status and error.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import time
import typing
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import interrupts
from .errors import ScarlabError, choose
from .runs import RunDir, read_json, write_json

# The checkout's notebooks/ (editable install), else the copy a wheel ships as scarlab/notebooks.
NOTEBOOKS = next((p for p in (Path(__file__).resolve().parents[1] / "notebooks", Path(__file__).resolve().parent / "notebooks")
                  if (p / "01_train_original.ipynb").is_file()), Path(__file__).resolve().parents[1] / "notebooks")
STAGE_NOTEBOOKS = {"train_original": "01_train_original.ipynb", "split": "02_split.ipynb",
                   "train_retrained": "03_train_retrained.ipynb", "unlearn": "04_unlearn.ipynb",
                   "evaluate": "05_evaluate.ipynb", "compare": "06_compare.ipynb"}
KINDS = tuple(STAGE_NOTEBOOKS)

# Parameters that say *where* things are or run, not *what* is computed: left out of fingerprints, so a
# moved runs folder or another device still reuses its completed stages.
LOCATION_PARAMS = frozenset({"out_dir", "original", "retrained", "split", "run", "runs", "data_root", "device",
                             "overwrite"})
# `--set train.NAME=VALUE`: training options shared by the original and the retrained model.
TRAIN_OPTIONS = {"batch_size": int, "lr": float, "optimizer": str, "augment": bool}
CLASS_COUNTS = {"digits": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200}


# ============================================================================================ configuration
@dataclass
class PipelineConfig:
    """Everything `scarlab pipeline` takes (CLI options, or the same keys in a YAML file)."""

    dataset: str = "digits"
    """scarlab dataset: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH."""
    data_root: str | None = None
    """where torchvision / Tiny-ImageNet data live; None = ~/.cache/scarlab/data."""
    model: str | None = None
    """registered model; None = tinycnn for digits, smallcnn otherwise."""
    scenario: str = "CR"
    """CR (forget whole classes) or HR (forget random samples)."""
    forget_classes: list = field(default_factory=list)
    """CR: one set of forgotten classes ([0] or [0, 3]) or several sets ([[0], [3]]: one split each)."""
    forget_size: int | None = None
    """HR: how many random training images are forgotten."""
    split_seed: int = 0
    """HR: seeds the random forget sample (one split, one retrained oracle)."""
    methods: list = field(default_factory=lambda: ["scar"])
    """registered unlearning methods (scarlab.unlearn.METHODS) to run on each split."""
    params: dict = field(default_factory=dict)
    """method hyper-parameters: {method: {name: value}}; `--set scar.lambda_2=5`. Key "train" holds training
    options shared by the original and the retrained model (batch_size, lr, optimizer, augment)."""
    seeds: list = field(default_factory=lambda: [0])
    """unlearning seeds: every method runs once per seed (the original and retrained models are trained once)."""
    surrogate: str = "auto"
    """OOD images for methods that read them: imagefolder:PATH, sample_edges, sample_images, gaussian_noise, auto."""
    surrogate_chunks: int | None = None
    """imagefolder surrogate: use only the first k chunk folders; None = all."""
    surrogate_size: int = 2000
    """generated surrogates: how many images."""
    epochs: int | None = None
    """training epochs of the original and retrained models; None = data set default (digits 12, else 30)."""
    unlearn_epochs: int | None = None
    """every method's `epochs` (unless set per method with --set); None = each method's default."""
    train_seed: int = 0
    """seeds the original and the retrained model's training."""
    snapshot_every: int = 5
    """feature snapshot every k unlearning steps."""
    retain_available: bool = True
    """False (--no-retain): refuse methods that need the retain set, before anything runs."""
    evaluate: bool = True
    """evaluate every run (05_evaluate) and write DIR/summary.csv (06_compare)."""
    embed: bool = False
    """also compute embedding.parquet (UMAP of the feature snapshots) of every retrained and unlearn run."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    out: str = "runs/pipeline"
    """pipeline root DIR (layout in scarlab.pipeline's docstring)."""
    jobs: int = 1
    """stages executed at once (each in its own kernel); independent branches only."""
    threads: int | None = None
    """torch threads per stage kernel (SCARLAB_THREADS); None = all cores, or cores / jobs when jobs > 1."""
    notebooks: str | None = None
    """folder holding the stage notebooks; None = the notebooks/ folder of this checkout."""

    def forget_sets(self) -> list[list[int]]:
        """forget_classes as a list of class sets: 0 / "0,3" / [0, 3] -> one set; [[0], [3]] -> two."""
        fc = self.forget_classes
        if fc is None or fc == "" or fc == []:
            return []
        if not isinstance(fc, (list, tuple)):
            fc = [fc]
        if all(isinstance(x, (list, tuple)) for x in fc):
            return [_class_list(x) for x in fc]
        if any(isinstance(x, (list, tuple)) for x in fc):
            raise ScarlabError("forget_classes mixes class indices and class sets; use [0, 3] (one split "
                               "forgetting both) or [[0], [3]] (one split each)")
        return [_class_list(fc)]


def _class_list(values) -> list[int]:
    out = []
    for v in values if isinstance(values, (list, tuple)) else [values]:
        for part in str(v).split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise ScarlabError(f"forget class {part.strip()!r} is not an integer class index") from None
    return sorted(set(out))


def config_from_dict(data: dict) -> PipelineConfig:
    """A PipelineConfig from a dict (YAML file, CLI); keys may use dashes; unknown keys list the valid ones."""
    names = {f.name for f in dataclasses.fields(PipelineConfig)}
    data = {str(k).replace("-", "_"): v for k, v in (data or {}).items()}
    aliases = {"no_retain": ("retain_available", lambda v: not v), "set": ("params", None)}
    for old, (new, fn) in aliases.items():
        if old in data:
            v = data.pop(old)
            data[new] = fn(v) if fn else v
    unknown = sorted(set(data) - names)
    if unknown:
        raise ScarlabError(f"unknown pipeline option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    if isinstance(data.get("methods"), str):
        data["methods"] = [m for m in data["methods"].split(",") if m.strip()]
    if isinstance(data.get("seeds"), (int, str)):
        data["seeds"] = [data["seeds"]]
    return PipelineConfig(**data)


def load_config(path: str | os.PathLike) -> dict:
    """The mapping in a YAML config file (keys = PipelineConfig fields)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ScarlabError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ScarlabError(f"config file {p} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScarlabError(f"config file {p} is not valid YAML{where}: {what}") from None
    if not isinstance(data, dict):
        raise ScarlabError(f"config file {p} must hold a mapping of options (dataset: digits, methods: [...])")
    return data


def parse_sets(items: list[str]) -> dict:
    """``["scar.lambda_2=5", "train.lr=0.01"]`` -> {"scar": {"lambda_2": "5"}, "train": {"lr": "0.01"}} (strings;
    typed by :func:`validate`)."""
    out: dict = {}
    for item in items or []:
        key, eq, value = str(item).partition("=")
        method, dot, name = key.strip().partition(".")
        if not eq or not dot or not method or not name:
            raise ScarlabError(f"--set {item!r}: expected METHOD.PARAM=VALUE, e.g. --set scar.lambda_2=5")
        out.setdefault(method, {})[name.replace("-", "_")] = value
    return out


def _coerce(value, typ, what: str):
    from .commands._common import parse_value

    if isinstance(typ, str):
        typ = {"int": int, "float": float, "bool": bool, "str": str}.get(typ.split(" |")[0].strip(), str)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    base = args[0] if args else typ
    if isinstance(value, str) and base is not str:
        if value.lower() in ("none", "null") and type(None) in typing.get_args(typ):
            return None
        try:
            return parse_value(value, typ)
        except ScarlabError as exc:
            raise ScarlabError(f"{what}: {exc}") from None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base in (int, float, bool, str) and value is not None and not isinstance(value, base):
        raise ScarlabError(f"{what}: expected a {base.__name__}, got {value!r}")
    return value


def validate(cfg: PipelineConfig) -> PipelineConfig:
    """Check every name and value before anything runs; returns a copy with typed, resolved parameters."""
    from .data import DATASETS, SURROGATES
    from .device import resolve_device
    from .models import MODELS, default_model
    from .unlearn import METHODS

    cfg = dataclasses.replace(cfg)
    _check_types(cfg)
    # data set and forget classes
    if cfg.dataset.startswith("imagefolder:"):
        path = Path(cfg.dataset.split(":", 1)[1]).expanduser()
        if not (path / "train").is_dir() or not (path / "test").is_dir():
            raise ScarlabError(f"--dataset {cfg.dataset}: expected {path}/train/<class>/ and {path}/test/<class>/")
        n_classes = sum(1 for p in (path / "train").iterdir() if p.is_dir())
        # absolute, so that `../data/x` and `/home/me/data/x` are one data set (one fingerprint, reused stages)
        cfg.dataset = f"imagefolder:{path.resolve()}"
    else:
        choose("dataset", cfg.dataset, DATASETS)
        n_classes = CLASS_COUNTS[cfg.dataset]
    choose("scenario", cfg.scenario, ("CR", "HR"))
    if cfg.scenario == "CR":
        sets = cfg.forget_sets()
        if not sets or any(not s for s in sets):
            raise ScarlabError("CR needs forget classes: pass --forget-classes, e.g. --forget-classes 0")
        for s in sets:
            bad = [c for c in s if not 0 <= c < n_classes]
            if bad:
                raise ScarlabError(f"forget class {bad[0]} is out of range: {cfg.dataset} has classes 0..{n_classes - 1}")
            if len(s) >= n_classes:
                raise ScarlabError("CR cannot forget every class: leave at least one class to retain")
        cfg.forget_classes = [list(s) for s in dict.fromkeys(tuple(s) for s in sets)]  # a set listed twice runs once
    else:
        if cfg.forget_sets():
            raise ScarlabError("HR forgets random samples, not classes: drop --forget-classes (or use --scenario CR)")
        if not cfg.forget_size or cfg.forget_size < 1:
            raise ScarlabError("HR needs a forget size: pass --forget-size N")
        n_train = _train_size(cfg.dataset)
        if n_train is not None and cfg.forget_size >= n_train:
            raise ScarlabError(f"HR forget size {cfg.forget_size} must be smaller than the training set of "
                               f"{cfg.dataset} ({n_train} images)")
        cfg.forget_classes = []
    cfg.model = cfg.model or default_model(cfg.dataset)
    choose("model", cfg.model, MODELS)
    # methods, their parameters, the retain set
    if isinstance(cfg.methods, str):
        cfg.methods = [m for m in cfg.methods.split(",") if m.strip()]
    cfg.methods = list(dict.fromkeys(m.strip() for m in cfg.methods))
    if not cfg.methods:
        raise ScarlabError(f"no method given; registered methods: {', '.join(METHODS)}")
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise ScarlabError(f"unknown method(s) {', '.join(unknown)}; registered methods: {', '.join(METHODS)}")
    for m in cfg.methods:
        check_retain(m, cfg.retain_available)
    params = {}
    for owner, values in (cfg.params or {}).items():
        if not isinstance(values, dict):
            raise ScarlabError(f"params.{owner} must map parameter names to values, got {values!r}")
        if owner == "train":
            bad = sorted(set(values) - set(TRAIN_OPTIONS))
            if bad:
                raise ScarlabError(f"unknown training option(s) train.{', train.'.join(bad)}; valid: "
                                   + ", ".join(f"train.{k}" for k in TRAIN_OPTIONS) + " (epochs: --epochs)")
            params["train"] = {k: _coerce(v, TRAIN_OPTIONS[k], f"train.{k}") for k, v in values.items()}
            for k in ("batch_size", "lr"):
                v = params["train"].get(k)
                if v is not None and not v > 0:
                    raise ScarlabError(f"train.{k} must be positive, got {v!r}")
            continue
        if owner not in METHODS:
            raise ScarlabError(f"--set {owner}.*: unknown method {owner!r}; registered methods: {', '.join(METHODS)}"
                               " (or train.* for the original/retrained training)")
        if owner not in cfg.methods:
            raise ScarlabError(f"--set {owner}.*: {owner} is not among the methods to run ({', '.join(cfg.methods)})")
        spec = METHODS[owner]
        valid = {f.name for f in dataclasses.fields(spec.params)}
        bad = sorted(set(values) - valid)
        if bad:
            raise ScarlabError(f"unknown parameter(s) {', '.join(bad)} for method {owner!r}; valid: "
                               f"{', '.join(sorted(valid))}")
        hints = typing.get_type_hints(spec.params)
        params[owner] = {k: _coerce(v, hints.get(k, str), f"{owner}.{k}") for k, v in values.items()}
    cfg.params = params
    for m in cfg.methods:  # ranges and choices of every method's parameters, as the unlearn stage will see them
        given = {**({"epochs": cfg.unlearn_epochs} if cfg.unlearn_epochs else {}), **params.get(m, {})}
        try:
            METHODS[m].make_params(given, "digits" if cfg.dataset == "digits" else None)
        except ScarlabError as exc:
            raise ScarlabError(f"{m}: {exc}") from None
    # seeds, sizes, switches
    if isinstance(cfg.seeds, (int, str)):
        cfg.seeds = [cfg.seeds]
    cfg.seeds = list(dict.fromkeys(_coerce(s, int, "seeds") for s in cfg.seeds))
    if not cfg.seeds:
        raise ScarlabError("--seeds needs at least one seed")
    for name in ("epochs", "unlearn_epochs", "surrogate_chunks", "forget_size", "threads"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ScarlabError(f"{name} must be a positive integer, got {v!r}")
    if cfg.jobs < 1:
        raise ScarlabError(f"jobs must be at least 1, got {cfg.jobs}")
    if cfg.embed and not cfg.evaluate:
        raise ScarlabError("--embed runs inside the evaluation stage: drop --no-evaluate")
    if cfg.surrogate.startswith("imagefolder:"):
        folder = Path(cfg.surrogate.split(":", 1)[1]).expanduser()
        if not folder.is_dir():
            raise ScarlabError(f"surrogate folder {folder} does not exist")
        cfg.surrogate = f"imagefolder:{folder.resolve()}"
    else:
        choose("surrogate", cfg.surrogate, SURROGATES)
    resolve_device(cfg.device)
    if Path(cfg.out).expanduser().exists() and not Path(cfg.out).expanduser().is_dir():
        raise ScarlabError(f"--out {cfg.out} is a file, not a folder; choose another --out")
    nb = Path(cfg.notebooks).expanduser() if cfg.notebooks else NOTEBOOKS
    missing = [n for n in STAGE_NOTEBOOKS.values() if not (nb / n).is_file()]
    if missing:
        raise ScarlabError(f"stage notebook(s) {', '.join(missing)} not found in {nb}; pass --notebooks DIR "
                           "(a scarlab checkout's notebooks/ folder)")
    cfg.notebooks = str(nb.resolve())
    return cfg


_SCALARS = {"dataset": str, "data_root": str, "model": str, "scenario": str, "forget_size": int, "split_seed": int,
            "surrogate": str, "surrogate_chunks": int, "surrogate_size": int, "epochs": int, "unlearn_epochs": int,
            "train_seed": int, "snapshot_every": int, "retain_available": bool, "evaluate": bool, "embed": bool,
            "device": str, "out": str, "jobs": int, "threads": int, "notebooks": str}
_OPTIONAL = {"data_root", "model", "forget_size", "surrogate_chunks", "epochs", "unlearn_epochs", "threads",
             "notebooks"}


def _check_types(cfg: PipelineConfig) -> None:
    """Each scalar option has its type (YAML ``jobs: two`` or ``retain_available: "false"`` is an error, not a
    silent truthy string); a list where a scalar belongs is named."""
    for name, typ in _SCALARS.items():
        v = getattr(cfg, name)
        if v is None and name in _OPTIONAL:
            continue
        if isinstance(v, (list, dict)):
            raise ScarlabError(f"{name} takes one value, got a {type(v).__name__} ({v!r}); lists are grid axes of "
                               "`scarlab sweep`")
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        if not ok:
            kind = {str: "a text value", int: "a whole number", bool: "true or false"}[typ]
            raise ScarlabError(f"{name} must be {kind}, got {v!r}" + (" (a string)" if isinstance(v, str) else ""))
    for name in ("snapshot_every", "surrogate_size", "jobs"):
        if getattr(cfg, name) < 1:
            raise ScarlabError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if not isinstance(cfg.seeds, (list, tuple, int, str)):
        raise ScarlabError(f"seeds must be a list of whole numbers, got {cfg.seeds!r}")
    if not isinstance(cfg.params, dict):
        raise ScarlabError(f"params must map method names to parameters, got {cfg.params!r}")


def _train_size(dataset: str) -> int | None:
    """Training images of a data set, known without loading it (imagefolder: files under train/)."""
    sizes = {"digits": 1347, "cifar10": 50000, "cifar100": 50000, "tinyimagenet": 100000}
    if dataset in sizes:
        return sizes[dataset]
    if dataset.startswith("imagefolder:"):
        from .data import IMAGE_EXTS
        root = Path(dataset.split(":", 1)[1]) / "train"
        return sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    return None


def check_retain(method: str, retain_available: bool = True) -> None:
    """Raise a clear error when ``method`` is unknown, or needs the retain set and it is withheld."""
    from .unlearn import METHODS

    choose("method", method, METHODS)
    if not retain_available and "retain" in METHODS[method].needs:
        free = [m for m, s in METHODS.items() if "retain" not in s.needs]
        raise ScarlabError(f"method {method!r} needs the retain set, which --no-retain withholds; methods that "
                           f"work without it: {', '.join(free)}")


# ============================================================================================ the plan
@dataclass
class StageSpec:
    """One stage: a notebook, its parameters, where it writes, and the stages it needs first.

    Plain data (``to_dict`` / ``from_dict``), so a spec can be shipped to another process or machine.
    """

    id: str
    """unique: the run directory relative to the pipeline root, ':' and the kind."""
    kind: str
    """train_original, split, train_retrained, unlearn, evaluate or compare."""
    notebook: str
    """absolute path of the stage notebook papermill executes."""
    params: dict
    """the notebook parameters (flat literals)."""
    run_dir: str
    """the run directory the stage writes (creates, or evaluates in place)."""
    output: str
    """where the executed notebook is kept (inside run_dir)."""
    record: str
    """the stage record (status, fingerprint, parameters), written last."""
    fingerprint: str
    """hash of kind + parameters (except locations) + the dependencies' fingerprints."""
    creates_run: bool = True
    """True: the stage creates run_dir (cleared before a re-run); False: it adds to an existing run."""
    deps: list = field(default_factory=list)
    """ids that must complete first; if one fails this stage is blocked."""
    after: list = field(default_factory=list)
    """ids that must have finished (whatever their outcome) first: the compare stage waits for every evaluation."""
    label: str = ""
    """short text for progress displays."""
    info: dict = field(default_factory=dict)
    """what the stage is about (method, seed, forget_classes, scenario): for sweeps and reports."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageSpec":
        return cls(**d)


def fingerprint(kind: str, params: dict, deps: list[str] = ()) -> str:
    """sha256 of the stage kind, its non-location parameters and its dependencies' fingerprints."""
    what = {k: v for k, v in params.items() if k not in LOCATION_PARAMS}
    blob = json.dumps({"kind": kind, "params": what, "deps": list(deps)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _slug(dataset: str) -> str:
    name = Path(dataset.split(":", 1)[1]).name if dataset.startswith("imagefolder:") else dataset
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "data"


def plan(cfg: PipelineConfig) -> list[StageSpec]:
    """Validate ``cfg`` and expand it into stage specs, in an order that respects every dependency."""
    from .unlearn import METHODS

    cfg = validate(cfg)
    root = Path(cfg.out).expanduser().resolve()
    nb = Path(cfg.notebooks)
    base = root / f"{_slug(cfg.dataset)}__{cfg.model}"
    train_opts = cfg.params.get("train", {})
    common = dict(dataset=cfg.dataset, data_root=cfg.data_root or "")
    train = dict(common, model=cfg.model, epochs=cfg.epochs or 0, batch_size=train_opts.get("batch_size", 0),
                 lr=float(train_opts.get("lr", 0.0)), optimizer=train_opts.get("optimizer", ""),
                 augment=bool(train_opts.get("augment", True)), seed=cfg.train_seed, device=cfg.device)
    specs: list[StageSpec] = []

    def add(kind, run_dir: Path, params: dict, deps: list[StageSpec] = (), creates_run=True, output="notebook.ipynb",
            label="", info=None, fp_extra=()) -> StageSpec:
        rel = run_dir.relative_to(root).as_posix() if run_dir != root else "."
        fp = fingerprint(kind, params, [d.fingerprint for d in deps] + list(fp_extra))
        spec = StageSpec(id=f"{rel}:{kind}", kind=kind, notebook=str(nb / STAGE_NOTEBOOKS[kind]), params=params,
                         run_dir=str(run_dir), output=str(run_dir / output), record=str(run_dir / f"stage_{kind}.json"),
                         fingerprint=fp, creates_run=creates_run, deps=[d.id for d in deps], label=label,
                         info=dict(info or {}))
        specs.append(spec)
        return spec

    orig_params = dict(train, out_dir="", overwrite=False)
    fp_orig = fingerprint("train_original", orig_params)
    orig_dir = base / f"original__{fp_orig[:8]}"
    original = add("train_original", orig_dir, {**orig_params, "out_dir": str(orig_dir)}, label="train original",
                   info={"method": "original"})
    evaluations: list[StageSpec] = []
    evaluated_runs: list[str] = []
    forget_sets = cfg.forget_sets() if cfg.scenario == "CR" else [[]]
    for fset in forget_sets:
        split_params = dict(common, scenario=cfg.scenario, forget_classes=list(fset), forget_size=cfg.forget_size or 0,
                            seed=cfg.split_seed, out_dir="", overwrite=False)
        retr_params = dict(train, split="", scenario=cfg.scenario, forget_classes=list(fset),
                           forget_size=cfg.forget_size or 0, out_dir="", overwrite=False)
        h = fingerprint("split-id", {}, [fp_orig, fingerprint("split", split_params), fingerprint("train_retrained", retr_params)])
        what = ("f" + "-".join(map(str, fset))) if cfg.scenario == "CR" else f"n{cfg.forget_size}-s{cfg.split_seed}"
        split_id = f"{cfg.scenario}-{what}__{h[:8]}"
        sdir = base / split_id
        info = {"scenario": cfg.scenario, "forget_classes": list(fset), "forget_size": cfg.forget_size,
                "split_id": split_id}
        tag = f"{cfg.scenario} {','.join(map(str, fset))}" if cfg.scenario == "CR" else f"HR {cfg.forget_size}"
        split = add("split", sdir / "split", {**split_params, "out_dir": str(sdir / "split")}, label=f"split {tag}",
                    info=info)
        retrained = add("train_retrained", sdir / "retrained",
                        {**retr_params, "split": split.run_dir, "out_dir": str(sdir / "retrained")}, [split],
                        label=f"train retrained {tag}", info={**info, "method": "retrained"})
        if cfg.evaluate:
            ev = dict(run=original.run_dir, original="", retrained=retrained.run_dir, split=split.run_dir,
                      out_dir=str(sdir / "original_eval"), embed=False, device=cfg.device)
            evaluations.append(add("evaluate", sdir / "original_eval", ev, [original, split, retrained],
                                   label=f"evaluate original {tag}", info={**info, "method": "original"}))
            ev = dict(run=retrained.run_dir, original=original.run_dir, retrained="", split="", out_dir="",
                      embed=cfg.embed, device=cfg.device)
            retrained_eval = add("evaluate", sdir / "retrained", ev, [retrained, original], creates_run=False,
                                 output="evaluate.ipynb", label=f"evaluate retrained {tag}",
                                 info={**info, "method": "retrained"})
            evaluations.append(retrained_eval)
            evaluated_runs += [str(sdir / "original_eval"), retrained.run_dir]
        for method in cfg.methods:
            spec = METHODS[method]
            mparams = dict(cfg.params.get(method, {}))
            names = {f.name for f in dataclasses.fields(spec.params)}
            if cfg.unlearn_epochs and "epochs" in names:
                mparams.setdefault("epochs", cfg.unlearn_epochs)
            uses_surrogate = "surrogate" in spec.needs  # other methods ignore it: keep it out of their fingerprint
            for seed in cfg.seeds:
                up = dict(original=original.run_dir, retrained=retrained.run_dir, split=split.run_dir, method=method,
                          params_json=json.dumps(mparams, sort_keys=True), seed=int(seed),
                          surrogate=cfg.surrogate if uses_surrogate else "auto",
                          surrogate_chunks=(cfg.surrogate_chunks or 0) if uses_surrogate else 0,
                          surrogate_size=cfg.surrogate_size if uses_surrogate else 2000,
                          snapshot_every=cfg.snapshot_every, retain_available=cfg.retain_available,
                          device=cfg.device, out_dir="", overwrite=False)
                fp = fingerprint("unlearn", up, [fp_orig, split.fingerprint])
                udir = sdir / f"{method}__s{seed}__{fp[:8]}"
                minfo = {**info, "method": method, "seed": int(seed), "params": mparams}
                unl = add("unlearn", udir, {**up, "out_dir": str(udir)}, [original, split],
                          label=f"unlearn {method} s{seed} {tag}", info=minfo)
                if cfg.evaluate:
                    ev = dict(run=unl.run_dir, original=original.run_dir, retrained=retrained.run_dir, split="",
                              out_dir="", embed=cfg.embed, device=cfg.device)
                    ue = add("evaluate", udir, ev, [unl, retrained], creates_run=False, output="evaluate.ipynb",
                             label=f"evaluate {method} s{seed} {tag}", info=minfo)
                    if cfg.embed:  # the retrained evaluation fits the UMAP reducers every embedding reuses: first
                        ue.after = [retrained_eval.id]
                    evaluations.append(ue)
                    evaluated_runs.append(unl.run_dir)
    if cfg.evaluate:
        cmp = add("compare", root, {"runs": evaluated_runs, "out_dir": str(root)}, evaluations, creates_run=False,
                  output="compare.ipynb", label="compare")
        cmp.after, cmp.deps = cmp.deps, []  # summarise whatever was evaluated, even if a branch failed
    return specs


# ============================================================================================ one stage
class StageFailed(ScarlabError):
    """A stage's notebook raised; ``message`` is the notebook cell's error (``ename: evalue``)."""

    def __init__(self, stage_id: str, message: str):
        super().__init__(f"{stage_id}: {message}")
        self.stage_id, self.message = stage_id, message


def _cache_dir() -> Path:
    return Path(os.environ.get("SCARLAB_CACHE", Path.home() / ".cache" / "scarlab"))


@functools.lru_cache(maxsize=None)
def ensure_kernel() -> str:
    """The name of a Jupyter kernel that runs *this* interpreter (the one scarlab is installed in).

    The ``python3`` kernelspec is used when it starts this interpreter (jupyter_client runs a spec whose
    command is plain ``python`` with ``sys.executable``); otherwise a ``python3`` spec pointing at
    ``sys.executable`` is written under the scarlab cache and put first on ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    plain = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    try:
        exe = KernelSpecManager().get_kernel_spec("python3").argv[0]
        if exe in plain or Path(exe).resolve() == Path(sys.executable).resolve():
            return "python3"
    except (NoSuchKernel, IndexError, OSError):
        pass
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    home = _cache_dir() / "jupyter" / key
    kdir = home / "kernels" / "python3"
    kdir.mkdir(parents=True, exist_ok=True)
    write_json(kdir / "kernel.json", {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                      "display_name": f"Python 3 ({sys.prefix})", "language": "python"})
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(home)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    return "python3"


def _kernel_manager(log_path: Path):
    """An AsyncKernelManager whose kernel writes its own stdout/stderr to ``log_path`` (not our terminal)."""
    from jupyter_client.manager import AsyncKernelManager

    class _LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            fh = open(log_path, "ab")
            kw.setdefault("stdout", fh)
            kw.setdefault("stderr", fh)
            try:
                out = await super().start_kernel(**kw)
            finally:
                fh.close()  # the kernel process holds its own copy of the descriptor
            process = getattr(self.provisioner, "process", None)
            if process is not None:  # so a second Ctrl-C can kill it
                interrupts.track_kernel(process)
            return out

    return _LoggedKernelManager


def _record(spec: StageSpec) -> dict | None:
    try:
        return read_json(Path(spec.record))
    except (OSError, ValueError):
        return None


def _run_state(run_dir: str) -> list:
    """What the compare stage's result depends on for one run: its evaluation record, or its status."""
    try:
        rec = read_json(Path(run_dir) / "stage_evaluate.json")
        return [rec.get("status"), rec.get("fingerprint")]
    except (OSError, ValueError):
        return [_manifest_status(run_dir), None]


def effective(spec: StageSpec) -> StageSpec:
    """The spec as it will run now. The compare stage summarises every run of the plan that exists — failed
    ones appear in the summary with their status and error — so its fingerprint covers each run's state."""
    if spec.kind != "compare":
        return spec
    runs = [r for r in spec.params["runs"] if (Path(r) / "manifest.json").is_file()]
    params = {**spec.params, "runs": runs}
    return dataclasses.replace(spec, params=params, fingerprint=fingerprint(
        "compare", {**params, "states": [_run_state(r) for r in runs]}))


def stage_state(spec: StageSpec) -> str:
    """``current`` (reusable), ``failed``, ``stale`` (done with another configuration) or ``missing``."""
    spec = effective(spec)
    rec = _record(spec)
    if rec is None:
        return "failed" if _manifest_status(spec.run_dir) == "failed" and spec.creates_run else "missing"
    if rec.get("status") != "complete":
        return "failed"
    if rec.get("fingerprint") != spec.fingerprint:
        return "stale"
    if spec.creates_run and (_manifest_status(spec.run_dir) != "complete" or not _files_intact(spec.run_dir)):
        return "failed"
    if not Path(spec.output).is_file():
        return "missing"
    return "current"


def _files_intact(run_dir: str) -> bool:
    """Every file the run's manifest lists is still there and readable: JSON parses, .npz/.pt archives pass their
    CRC check (a truncated split.npz or stats.npz is re-made, not trusted because the status says complete)."""
    import zipfile

    root = Path(run_dir)
    try:
        files = RunDir(root).manifest.get("files", [])
        for name in files:
            f = root / name
            if not f.is_file():
                return False
            if f.suffix == ".json":
                read_json(f)
            elif f.suffix in (".npz", ".pt"):
                with zipfile.ZipFile(f) as z:
                    if z.testzip() is not None:
                        return False
    except (OSError, ValueError, ScarlabError, zipfile.BadZipFile):
        return False
    return True


def _manifest_status(run_dir: str) -> str | None:
    """The run's status (a ``running`` run whose process is gone reads ``failed``); None without a manifest."""
    try:
        return RunDir(run_dir).status if (Path(run_dir) / "manifest.json").exists() else None
    except (OSError, ValueError):
        return None


def _clear(run_dir: Path) -> None:
    """Remove a previous attempt of a run directory — only one that is recognisably scarlab's and that no live
    process is writing."""
    if not run_dir.exists():
        return
    holder = RunDir(run_dir).live_holder() if run_dir.is_dir() else None
    if holder:
        raise ScarlabError(f"{run_dir} is being written by process {holder} on this machine; wait for it to finish "
                           "or stop it, then rerun")
    if not run_dir.is_dir() or not (any(run_dir.glob("stage_*.json")) or (run_dir / "manifest.json").is_file()
                                    or not any(run_dir.iterdir())):
        raise ScarlabError(f"{run_dir} exists and is not a scarlab run directory; refusing to replace it — "
                           "choose another --out")
    shutil.rmtree(run_dir)


def _lock_path(spec: StageSpec) -> Path:
    """Beside a run directory for the stage that creates it (it is deleted and remade under the lock), else
    inside it (evaluate, compare)."""
    run_dir = Path(spec.run_dir)
    return run_dir.parent / f".{run_dir.name}.lock" if spec.creates_run else run_dir / f".{spec.kind}.lock"


def execute_stage(spec: StageSpec | dict, kernel_name: str | None = None, force: bool = False,
                  say=print) -> RunDir:
    """Run one stage's notebook through papermill into its run directory; returns that ``RunDir``.

    A current stage (see :func:`stage_state`) is not run again unless ``force``. The executed notebook is
    kept in the run directory; the stage record is written last. On failure the run is marked failed with
    the notebook cell's error message and :class:`StageFailed` is raised. Safe to call in another process:
    the stage's lock makes a second caller wait for the first, then reuse its result (``say`` tells it waits).
    """

    spec = StageSpec.from_dict(spec) if isinstance(spec, dict) else spec
    if not force and stage_state(effective(spec)) == "current":
        return _reused(spec)
    with interrupts.stage_lock(_lock_path(spec), spec.label, say=say):
        # another process may have finished this very stage while we waited for its lock
        if not force and stage_state(effective(spec)) == "current":
            return _reused(spec)
        return _execute_locked(effective(spec), kernel_name)


def _reused(spec: StageSpec) -> RunDir:
    run = RunDir(spec.run_dir)
    run.reused = True  # the scheduler reports it as reused, and its dependants need not run again
    return run


def _execute_locked(spec: StageSpec, kernel_name: str | None) -> RunDir:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run_dir, record = Path(spec.run_dir), Path(spec.record)
    kernel = kernel_name or ensure_kernel()
    if spec.creates_run:
        _clear(run_dir)
    else:
        record.unlink(missing_ok=True)
        Path(spec.output).unlink(missing_ok=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = run_dir.parent / f".{run_dir.name}.{spec.kind}.{os.getpid()}.{time.time_ns()}.ipynb"
    kernel_log = tmp.with_suffix(".kernel.log")
    t0, error = time.perf_counter(), None
    try:
        papermill.execute_notebook(spec.notebook, str(tmp), parameters=spec.params, kernel_name=kernel,
                                   progress_bar=False, log_output=False, start_timeout=180,
                                   kernel_manager_class=_kernel_manager(kernel_log))
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
    except Exception as exc:  # kernel died, timeout, unreadable notebook: still a failed stage, not a crash
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
    if error is not None and interrupts.ABORT.is_set():
        error = "interrupted: stopped by the user (second Ctrl-C or SIGTERM)"
    seconds = time.perf_counter() - t0
    status = _manifest_status(spec.run_dir)
    if error is None and spec.creates_run and status != "complete":
        error = f"the notebook finished but {run_dir} has status {status!r}"
    # mark failure in the run itself (creating a manifest if the notebook failed before making the run)
    if error is not None:
        if spec.creates_run:
            if status is None:  # failed before the run existed (bad input, missing parent): make it visible
                try:
                    RunDir.create(run_dir, stage=spec.kind, config=spec.params, overwrite=True).finish("failed",
                                                                                                    error=error)
                except ScarlabError:  # a partial folder RunDir will not replace: record the failure beside it
                    run_dir.mkdir(parents=True, exist_ok=True)
                    write_json(run_dir / "manifest.json", {"id": run_dir.name, "stage": spec.kind, "status": "failed",
                                                           "error": error, "finished": time.time(), "files": []})
            else:
                RunDir(run_dir).finish("failed", error=error)
    run_dir.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        tmp.replace(spec.output)
    if kernel_log.exists():  # kept only when the stage failed: the kernel's own messages may explain why
        if error is not None and kernel_log.stat().st_size:
            kernel_log.replace(run_dir / f"kernel_{spec.kind}.log")
        else:
            kernel_log.unlink()
    if (run_dir / "manifest.json").is_file():
        run = RunDir(run_dir)
        files = sorted(set(run.manifest.get("files", [])) | {Path(spec.output).name})
        extra = {}
        if not spec.creates_run and spec.kind == "evaluate":  # keep what evaluate_run recorded there
            extra = {"evaluation": {**run.manifest.get("evaluation", {}), "status": "failed" if error else "complete",
                                    "notebook": Path(spec.output).name, **({"error": error} if error else {})}}
        run.update_manifest(files=files, **extra)
    write_json(record, {"id": spec.id, "kind": spec.kind, "status": "failed" if error else "complete",
                        "error": error, "fingerprint": spec.fingerprint, "params": spec.params,
                        "notebook": spec.notebook, "output": spec.output, "seconds": round(seconds, 3),
                        "finished": time.time(), "info": spec.info})
    if error is not None:
        raise StageFailed(spec.id, error)
    return RunDir(run_dir)


# ============================================================================================ the whole run
@dataclass
class StageResult:
    id: str
    kind: str
    label: str
    status: str
    """complete (executed now), skipped (reused), failed, or blocked (a dependency failed)."""
    run_dir: str
    seconds: float = 0.0
    error: str | None = None
    info: dict = field(default_factory=dict)


@dataclass
class PipelineResult:
    config: PipelineConfig
    stages: list[StageResult]
    summary_csv: Path | None
    wall_s: float
    interrupted: bool = False
    """a Ctrl-C / SIGTERM stopped it before every stage ran."""

    @property
    def ok(self) -> bool:
        return not any(s.status in ("failed", "blocked") for s in self.stages)

    def by_status(self, status: str) -> list[StageResult]:
        return [s for s in self.stages if s.status == status]

    @property
    def failed(self) -> list[StageResult]:
        return self.by_status("failed")

    def summary(self):
        """DIR/summary.csv as a DataFrame (None without evaluation)."""
        import pandas as pd
        if not (self.summary_csv and self.summary_csv.is_file()):
            return None
        return pd.read_csv(self.summary_csv, dtype={"forget_classes": str})

    def table(self):
        import pandas as pd
        return pd.DataFrame([dataclasses.asdict(s) for s in self.stages]).drop(columns=["info"])


@contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_pipeline(cfg: PipelineConfig, progress: bool = True, force: bool = False) -> PipelineResult:
    """Plan ``cfg`` (validating everything first), execute every stage that is not current, summarise.

    Stages run in dependency order, ``cfg.jobs`` at a time; a failed stage blocks only its dependants.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    specs = plan(cfg)
    cfg = validate(cfg)
    root = Path(cfg.out).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    _write_config(cfg, root / "pipeline.yaml")
    kernel = ensure_kernel()
    threads = cfg.threads or (max(1, (os.cpu_count() or 1) // cfg.jobs) if cfg.jobs > 1 else None)
    by_id = {s.id: s for s in specs}
    results: dict[str, StageResult] = {}
    bar = tqdm(total=len(specs), desc="pipeline", unit="stage", disable=not progress, dynamic_ncols=True)
    log = (lambda msg: bar.write(msg)) if progress else (lambda msg: None)
    notice = log if progress else print  # interrupts and waits are said even with --quiet

    def finish(spec: StageSpec, status: str, seconds=0.0, error=None):
        results[spec.id] = StageResult(spec.id, spec.kind, spec.label, status, spec.run_dir, round(seconds, 2),
                                       error, spec.info)
        mark = {"complete": "done", "skipped": "reuse", "failed": "FAIL", "blocked": "skip"}[status]
        tail = f"  {seconds:6.1f}s" if status == "complete" else ""
        log(f"[{mark:5s}] {spec.label:38s}{tail}  {Path(spec.run_dir).relative_to(root) if spec.run_dir != str(root) else '.'}"
            + (f"\n        {error}" if error else ""))
        bar.update(1)

    def ready(spec: StageSpec) -> bool:
        return all(d in results for d in spec.deps + spec.after)

    running: dict = {}
    pending = list(specs)
    # Kernels inherit the environment. OpenMP threads that spin while waiting make small models several times
    # slower as soon as another process shares the cores (measured: smallcnn training step 0.84 s -> 0.45 s on
    # a busy 2-core machine with PASSIVE); a user's own setting wins.
    omp = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    with _env(SCARLAB_THREADS=threads, OMP_WAIT_POLICY=omp), ThreadPoolExecutor(max_workers=cfg.jobs) as pool, \
            interrupts.graceful(notice):
        while pending or running:
            for spec in [s for s in pending if ready(s)]:
                if len(running) >= cfg.jobs:
                    break
                pending.remove(spec)
                if interrupts.STOP.is_set():
                    finish(spec, "blocked", error="not run: interrupted")
                    continue
                bad = [d for d in spec.deps if results[d].status in ("failed", "blocked")]
                if bad:
                    finish(spec, "blocked", error=f"not run: {by_id[bad[0]].label} did not complete")
                    continue
                # a stage whose input was just re-made runs again, even if its own record looks current
                upstream_ran = any(results[d].status == "complete" for d in spec.deps)
                if not force and not upstream_ran and stage_state(spec) == "current":
                    finish(spec, "skipped")
                    continue
                bar.set_postfix_str(spec.label)
                running[pool.submit(_timed, spec, kernel, force or upstream_ran, notice)] = spec
            if not running:
                if pending and not any(ready(s) for s in pending):
                    raise ScarlabError("pipeline plan has a dependency cycle or an unknown dependency")
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                spec = running.pop(fut)
                seconds, exc = fut.result()
                if exc == "reused":  # another process made it while we waited for its lock
                    finish(spec, "skipped")
                elif exc is None:
                    finish(spec, "complete", seconds)
                elif isinstance(exc, StageFailed):
                    finish(spec, "failed", seconds, exc.message)
                else:
                    finish(spec, "failed", seconds, f"{type(exc).__name__}: {exc}")
    bar.close()
    summary = root / "summary.csv"
    cmp = [s for s in specs if s.kind == "compare"]
    ok_summary = cmp and results[cmp[0].id].status in ("complete", "skipped") and summary.is_file()
    return PipelineResult(cfg, [results[s.id] for s in specs], summary if ok_summary else None,
                          time.perf_counter() - t_start, interrupted=interrupts.STOP.is_set())


def _timed(spec: StageSpec, kernel: str, force: bool, say=print):
    t0 = time.perf_counter()
    try:
        run = execute_stage(spec, kernel_name=kernel, force=force, say=say)
        return time.perf_counter() - t0, "reused" if getattr(run, "reused", False) else None
    except Exception as exc:  # reported by the scheduler; one stage never stops the others
        return time.perf_counter() - t0, exc


def _write_config(cfg: PipelineConfig, path: Path) -> None:
    import yaml

    data = dataclasses.asdict(cfg)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# the resolved configuration of the last `scarlab pipeline` run in this folder\n"
                   + yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
