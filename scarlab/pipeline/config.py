"""What a pipeline takes: :class:`PipelineConfig`, read from a dict or a YAML file, and :func:`validate`, which
checks every name and value of one grid point before anything runs."""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..config import (MIN_SHADOWS, RECIPE_KEYS, SEED, SURROGATE_SIZE, ModelOptions, TrainConfig, bounded,
                      shadow_seeds)
from ..errors import ScarlabError, choose
from ..runs import replacing
from ..schema import check_bounds, coerce, nearest

# The checkout's notebooks/ (editable install), else the copy a wheel ships as scarlab/notebooks.
_HERE = Path(__file__).resolve().parent
NOTEBOOKS = next((p for p in (_HERE.parents[1] / "notebooks", _HERE.parent / "notebooks")
                  if any(p.glob("01_train_original.*"))), _HERE.parents[1] / "notebooks")
STAGE_NOTEBOOKS = {"train_original": "01_train_original.ipynb", "split": "02_split.ipynb",
                   "train_retrained": "03_train_retrained.ipynb", "unlearn": "04_unlearn.ipynb",
                   "evaluate": "05_evaluate.ipynb", "compare": "08_compare.ipynb", "shadows": "06_shadows.ipynb",
                   "audit": "07_audit.ipynb", "audit_offline": "07_audit_offline.ipynb"}
AUDIT_STAGES = {"online": "audit", "offline": "audit_offline"}
"""audit_mode → the kind of the stage that audits each evaluated run (07_audit or 07_audit_offline)."""
AUDIT_KINDS = ("shadows", *AUDIT_STAGES.values())  # planned only with shadows > 0
KINDS = tuple(STAGE_NOTEBOOKS)

# `--set train.NAME=VALUE`: the training recipe's options (TrainConfig's), shared by the original and the retrained
# model and passed to their notebooks (epochs: --epochs; weight_decay: the stage notebooks keep TrainConfig's).
TRAIN_OPTIONS = {k: typing.get_type_hints(TrainConfig)[k] for k in RECIPE_KEYS if k not in ("epochs", "weight_decay")}
CLASS_COUNTS = {"digits": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200}
# Options that say where things are or how they run: one value each, never a grid axis.
NEVER_AXES = frozenset({"out", "notebooks", "data_root", "threads", "jobs"})


@dataclass
class PipelineConfig(ModelOptions):
    """Everything `scarlab pipeline` takes (CLI options, or the same keys in a YAML file)."""

    scenario: str = "CR"
    """CR (forget whole classes) or HR (forget random samples)."""
    forget_classes: list = field(default_factory=list)
    """CR: one set of forgotten classes ([0] or [0, 3]) or several sets ([[0], [3]]: one split each)."""
    forget_size: int | None = None
    """HR: how many random training images are forgotten."""
    split_seed: int = bounded(0, **SEED)
    """HR: seeds the random forget sample (one split, one retrained oracle)."""
    original: str | None = None
    """an existing original run directory to start from (one `scarlab import` or `scarlab train` made) instead of
    training one: complete, of the pipeline's data set (its model is the pipeline's); the retrained oracle is trained
    with the recipe its config.json records (epochs, train.*, train_seed; an imported one records none: the
    pipeline's are used). None = train the original."""
    methods: list = field(default_factory=lambda: ["scar"])
    """registered unlearning methods (scarlab.unlearn.METHODS) to run on each split."""
    params: dict = field(default_factory=dict)
    """method hyper-parameters: {method: {name: value}}; `--set scar.lambda_2=5`. Key "train" holds training
    options shared by the original and the retrained model (batch_size, lr, optimizer, augment). A list is a grid
    axis ({scar: {lr: [0.0005, 0.00025]}}: one run per value); a parameter that is itself a list takes a list of
    lists."""
    seeds: list = bounded(factory=lambda: [0], **SEED)
    """unlearning seeds: every method runs once per seed (the original and retrained models are trained once)."""
    surrogate: str = "auto"
    """OOD images for methods that read them: imagefolder:PATH, sample_edges, sample_images, gaussian_noise, auto."""
    surrogate_chunks: int | None = None
    """imagefolder surrogate: use only the first k chunk folders; None = all."""
    surrogate_size: int = bounded(SURROGATE_SIZE, low=1)
    """generated surrogates: how many images."""
    epochs: int | None = None
    """training epochs of the original and retrained models; None = the training recipe's (digits 12; lab 18,
    fast 12: --set train.recipe=fast, classic 30)."""
    unlearn_epochs: int | None = None
    """every method's `epochs` (unless set per method with --set); None = each method's default."""
    train_seed: int = bounded(0, **SEED)
    """seeds the original and the retrained model's training."""
    snapshot_every: int = bounded(5, low=1)
    """feature snapshot every k unlearning steps."""
    retain_available: bool = True
    """False (--no-retain): refuse methods that need the retain set, before anything runs."""
    evaluate: bool = True
    """evaluate every run (05_evaluate) and write DIR/summary.csv (08_compare)."""
    embed: bool = False
    """also compute embedding.parquet (UMAP of the feature snapshots) of every retrained and unlearn run."""
    shadows: int = 0
    """K shadow models per population for the U-LiRA privacy audit of every evaluated run (audit.json, and the
    ulira/* metrics in metrics.json); 0 = no audit. At least 3; the retrained oracle, whose K shadows are split in
    halves, is audited only from K = 6 (K = 8 or more for usable intervals)."""
    audit_seed: int = bounded(1000, **SEED)
    """first shadow seed: shadow i trains and unlearns with audit_seed + i (must not include train_seed)."""
    audit_mode: str = "online"
    """with shadows K: online = U-LiRA against K shadow originals, K retrained oracles and K unlearned shadows per
    method variant (07_audit: forget, control, membership signal); offline = offline LiRA and RMIA of each run's own
    model against the K retrained shadows alone, made once per split and shared by every method, variant and seed
    (07_audit_offline: no training per method)."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    out: str = "runs/pipeline"
    """pipeline root DIR (layout in scarlab.pipeline's docstring)."""
    jobs: int = bounded(1, low=1)
    """stages executed at once (each in its own kernel); independent branches only."""
    threads: int | None = None
    """torch threads per stage kernel (SCARLAB_THREADS); None = all cores, or cores / jobs when jobs > 1."""
    notebooks: str | None = None
    """folder holding the stage notebooks (NN_name.ipynb and/or its jupytext pair NN_name.py); None = the
    notebooks/ folder of this checkout."""

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
        raise ScarlabError(f"unknown pipeline option(s) {', '.join(unknown)}{nearest(unknown[0], names)}; valid: "
                           f"{', '.join(sorted(names))}")
    if isinstance(data.get("methods"), str):
        data["methods"] = [m for m in data["methods"].split(",") if m.strip()]
    if isinstance(data.get("seeds"), (int, str)):
        data["seeds"] = [data["seeds"]]
    return PipelineConfig(**data)


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


def param_types(owner: str, names) -> dict:
    """The declared types of the parameters of ``owner`` (a registered method, or "train": the training options);
    an unknown owner or a name in ``names`` it does not have is an error listing the valid ones."""
    from ..unlearn import METHODS

    if owner == "train":
        bad = sorted(set(names) - set(TRAIN_OPTIONS))
        if bad:
            raise ScarlabError(f"unknown training option(s) train.{', train.'.join(bad)}; valid: "
                               + ", ".join(f"train.{k}" for k in TRAIN_OPTIONS) + " (epochs: --epochs)")
        return TRAIN_OPTIONS
    if owner not in METHODS:
        raise ScarlabError(f"--set {owner}.*: unknown method {owner!r}; registered methods: {', '.join(METHODS)}"
                           " (or train.* for the original/retrained training)")
    hints = typing.get_type_hints(METHODS[owner].params)
    valid = sorted(f.name for f in dataclasses.fields(METHODS[owner].params))
    bad = sorted(set(names) - set(valid))
    if bad:
        raise ScarlabError(f"unknown parameter(s) {', '.join(bad)} for method {owner!r}; valid: {', '.join(valid)}")
    return {k: hints.get(k, str) for k in valid}


def validate(cfg: PipelineConfig, check_device: bool = True) -> PipelineConfig:
    """Check every name and value of one grid point before anything runs; returns a copy with typed, resolved
    parameters. ``check_device=False``: the stages run on other machines, which check the device themselves.
    The steps run in this order, so the first error a user sees does not depend on the grid point's size."""
    from ..device import resolve_device

    cfg = dataclasses.replace(cfg)
    _check_types(cfg)
    n_classes = _resolve_dataset(cfg)
    _check_forget(cfg, n_classes)
    given = _resolve_original(cfg)
    _resolve_model(cfg)
    _check_methods(cfg)
    _check_params(cfg)
    if given is not None:
        _copy_recipe(cfg, given)
    _check_seeds_and_sizes(cfg)
    _resolve_surrogate(cfg)
    _check_shadows(cfg)
    if check_device:
        resolve_device(cfg.device)
    _resolve_locations(cfg)
    return cfg


def _resolve_dataset(cfg: PipelineConfig) -> int:
    """The data set's name (an image folder made absolute, so that `../data/x` and `/home/me/data/x` are one data
    set: one fingerprint, reused stages) and its number of classes, known without loading it."""
    from ..data import DATASETS

    if not cfg.dataset.startswith("imagefolder:"):
        choose("dataset", cfg.dataset, DATASETS)
        return CLASS_COUNTS[cfg.dataset]
    path = Path(cfg.dataset.split(":", 1)[1]).expanduser()
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        raise ScarlabError(f"--dataset {cfg.dataset}: expected {path}/train/<class>/ and {path}/test/<class>/")
    cfg.dataset = f"imagefolder:{path.resolve()}"
    return sum(1 for p in (path / "train").iterdir() if p.is_dir())


def given_original(path: str) -> dict:
    """The config.json of ``path``, checked as the pipeline's ``original``: an existing, complete run whose role is
    original (RunDir's role checks); one line otherwise."""
    from ..runs import ORIGINAL, RunDir

    run = RunDir(Path(path).expanduser())
    if not run.path.exists():
        raise ScarlabError(f"original {run.path} does not exist; give a run directory made by `scarlab import` or "
                           "`scarlab train`")
    run.require_complete("original", ORIGINAL)
    return run.config


def _same_dataset(recorded, dataset: str) -> bool:
    """Whether an original's recorded data set is ``dataset`` (an image folder compared by its resolved path)."""
    if not isinstance(recorded, str):
        return False
    if recorded.startswith("imagefolder:") and dataset.startswith("imagefolder:"):
        return Path(recorded.split(":", 1)[1]).expanduser().resolve() == Path(dataset.split(":", 1)[1])
    return recorded == dataset


def _resolve_original(cfg: PipelineConfig) -> dict | None:
    """``original`` (made absolute) checked: a complete original run of the pipeline's data set, whose model
    becomes the pipeline's (a different --model is refused); returns its config, or None when none is given."""
    if cfg.original in (None, ""):
        cfg.original = None
        return None
    conf = given_original(cfg.original)
    cfg.original = str(Path(cfg.original).expanduser().resolve())
    where, model = cfg.original, conf.get("model")
    if not _same_dataset(conf.get("dataset"), cfg.dataset):
        raise ScarlabError(f"original {where} was made on data set {conf.get('dataset')!r}, the pipeline's is "
                           f"{cfg.dataset!r}: give --dataset {conf.get('dataset')} or another original")
    if not isinstance(model, str):
        raise ScarlabError(f"original {where}/config.json records no model; make it again with `scarlab import`")
    if cfg.model and cfg.model != model:
        raise ScarlabError(f"original {where} is a {model}, the pipeline's --model is {cfg.model}: drop --model or "
                           f"pass --model {model}")
    cfg.model = model
    return conf


def _copy_recipe(cfg: PipelineConfig, conf: dict) -> None:
    """The retrained oracle copies the given original's recorded training recipe (RECIPE_KEYS and the seed): those
    values become the pipeline's (epochs, train_seed, train.*), and one given differently is refused. An original
    trained before some options existed was trained with their legacy values; an imported one records no training
    at all, and nothing changes."""
    from ..config import LEGACY_RECIPE

    trained = conf.get("epochs") is not None
    recorded = {**(LEGACY_RECIPE if trained else {}), **conf}
    train = dict(cfg.params.get("train", {}))
    where = cfg.original
    for key in (*RECIPE_KEYS, "seed"):
        value = recorded.get(key)
        if value is None:
            continue
        if key == "weight_decay":  # the stage notebooks train with TrainConfig's: one recorded otherwise is refused
            if value != TrainConfig.weight_decay:
                raise ScarlabError(f"original {where} was trained with weight_decay={value}, which the pipeline's "
                                   f"retrained oracle cannot copy (it trains with {TrainConfig.weight_decay}); train "
                                   "the oracle yourself (scarlab train --retrained) or start from another original")
            continue
        name = {"epochs": "epochs", "seed": "train_seed"}.get(key, f"train.{key}")
        given = cfg.epochs if key == "epochs" else cfg.train_seed if key == "seed" else train.get(key)
        # train_seed always has a value: its default (0) gives way to the recorded seed, another value must agree
        if given is not None and given != value and not (key == "seed" and given == PipelineConfig.train_seed):
            raise ScarlabError(f"original {where} was trained with {name}={value!r}, the pipeline asks for "
                               f"{name}={given!r}: the retrained oracle copies the original's recipe; drop {name} "
                               "or give that value")
        if key == "epochs":
            cfg.epochs = value
        elif key == "seed":
            cfg.train_seed = value
        else:
            train[key] = value
    if train:
        cfg.params = {**cfg.params, "train": train}
    if cfg.shadows:
        from ..audit.targets import TRAIN_KEYS

        missing = [k for k in TRAIN_KEYS if recorded.get(k) is None]
        if missing:
            raise ScarlabError(f"original {where} records no {', '.join(missing)} (an imported model's training is "
                               "unknown), which the audit's shadow models copy: set shadows 0, or start from an "
                               "original scarlab trained")


def _check_forget(cfg: PipelineConfig, n_classes: int) -> None:
    """The forget sets (CR; a set listed twice runs once) or the forget size (HR), as the split stage checks them."""
    from ..data import SCENARIOS, check_forget_classes, check_forget_size, check_hr_classes

    choose("scenario", cfg.scenario, SCENARIOS)
    if cfg.scenario == "CR":
        sets = cfg.forget_sets() or [[]]
        for s in sets:
            check_forget_classes(s, n_classes, cfg.dataset)
        cfg.forget_classes = [list(s) for s in dict.fromkeys(tuple(s) for s in sets)]
    else:
        check_hr_classes(cfg.scenario, cfg.forget_sets())
        check_forget_size(cfg.forget_size or None, _train_size(cfg.dataset))
        cfg.forget_classes = []


def _resolve_model(cfg: PipelineConfig) -> None:
    """The model (the data set's default when none is named); an image folder's images must be large enough for it,
    else the train stages would fail on them."""
    from ..data import image_folder_side
    from ..models import MODELS, check_image_size, default_model

    cfg.model = cfg.model or default_model(cfg.dataset)
    choose("model", cfg.model, MODELS)
    side = image_folder_side(Path(cfg.dataset.split(":", 1)[1])) if cfg.dataset.startswith("imagefolder:") else None
    if side is not None:
        check_image_size(cfg.model, side)


def _check_methods(cfg: PipelineConfig) -> None:
    """At least one method, each registered (listed once) and able to run with or without the retain set."""
    from ..unlearn import METHODS
    from ..unlearn.base import check_retain

    if isinstance(cfg.methods, str):
        cfg.methods = [m for m in cfg.methods.split(",") if m.strip()]
    cfg.methods = list(dict.fromkeys(m.strip() for m in cfg.methods))
    if not cfg.methods:
        raise ScarlabError(f"no method given; registered methods: {', '.join(METHODS)}")
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise ScarlabError(f"unknown method(s) {', '.join(unknown)}; registered methods: {', '.join(METHODS)}")
    for m in cfg.methods:
        check_retain(m, cfg.retain_available, "which --no-retain withholds")


def _check_params(cfg: PipelineConfig) -> None:
    """``params`` typed by their owners' declarations, then every method's ranges and choices as the unlearn stage
    will see them (``unlearn_epochs`` included)."""
    from ..unlearn import METHODS

    params = {}
    for owner, values in (cfg.params or {}).items():
        if not isinstance(values, dict):
            raise ScarlabError(f"params.{owner} must map parameter names to values, got {values!r}")
        types = param_types(owner, values)
        if owner != "train" and owner not in cfg.methods:
            raise ScarlabError(f"--set {owner}.*: {owner} is not among the methods to run ({', '.join(cfg.methods)})")
        params[owner] = {k: coerce(v, types[k], f"{owner}.{k}") for k, v in values.items()}
    for k in ("batch_size", "lr"):
        v = params.get("train", {}).get(k)
        if v is not None and not v > 0:
            raise ScarlabError(f"train.{k} must be positive, got {v!r}")
    check_bounds(TrainConfig(**params.get("train", {}))).resolved(cfg.dataset)  # ranges, the recipe's name
    cfg.params = params
    for m in cfg.methods:
        given = {**({"epochs": cfg.unlearn_epochs} if cfg.unlearn_epochs else {}), **params.get(m, {})}
        try:
            METHODS[m].make_params(given, "digits" if cfg.dataset == "digits" else None)
        except ScarlabError as exc:
            raise ScarlabError(f"{m}: {exc}") from None


def _check_seeds_and_sizes(cfg: PipelineConfig) -> None:
    """Seeds (whole numbers, each once), the declared ranges, the optional counts and the switches that go together."""
    if isinstance(cfg.seeds, (int, str)):
        cfg.seeds = [cfg.seeds]
    cfg.seeds = list(dict.fromkeys(coerce(s, int, "seeds") for s in cfg.seeds))
    if not cfg.seeds:
        raise ScarlabError("--seeds needs at least one seed")
    check_bounds(cfg)
    for name in ("epochs", "unlearn_epochs", "surrogate_chunks", "forget_size", "threads"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ScarlabError(f"{name} must be a positive integer, got {v!r}")
    if cfg.embed and not cfg.evaluate:
        raise ScarlabError("--embed runs inside the evaluation stage: drop --no-evaluate")


def _resolve_surrogate(cfg: PipelineConfig) -> None:
    """A named surrogate, or an existing image folder (made absolute, like the data set)."""
    from ..data import SURROGATES

    if not cfg.surrogate.startswith("imagefolder:"):
        choose("surrogate", cfg.surrogate, SURROGATES)
        return
    folder = Path(cfg.surrogate.split(":", 1)[1]).expanduser()
    if not folder.is_dir():
        raise ScarlabError(f"surrogate folder {folder} does not exist")
    cfg.surrogate = f"imagefolder:{folder.resolve()}"


def _resolve_locations(cfg: PipelineConfig) -> None:
    """--out must not be a file; every stage notebook planned (the audit's only with shadows) must be there."""
    if Path(cfg.out).expanduser().exists() and not Path(cfg.out).expanduser().is_dir():
        raise ScarlabError(f"--out {cfg.out} is a file, not a folder; choose another --out")
    nb = Path(cfg.notebooks).expanduser() if cfg.notebooks else NOTEBOOKS
    planned = [k for k in STAGE_NOTEBOOKS if k not in AUDIT_KINDS
               or (cfg.shadows and k in ("shadows", AUDIT_STAGES.get(cfg.audit_mode)))]
    missing = [STAGE_NOTEBOOKS[k] for k in planned if not any(
        (nb / STAGE_NOTEBOOKS[k]).with_suffix(suffix).is_file() for suffix in (".ipynb", ".py"))]
    if missing:
        raise ScarlabError(f"stage notebook(s) {', '.join(missing)} (or their .py pairs) not found in {nb}; pass "
                           "--notebooks DIR (a scarlab checkout's notebooks/ folder)")
    cfg.notebooks = str(nb.resolve())


def _check_shadows(cfg: PipelineConfig) -> None:
    """shadows = 0 (no audit) or K ≥ MIN_SHADOWS; the audit needs the evaluation; no shadow seed is the models'."""
    k = cfg.shadows
    choose("audit_mode", cfg.audit_mode, AUDIT_STAGES)
    if k == 0:
        return
    if k < MIN_SHADOWS:
        raise ScarlabError(f"shadows K={k} is too small: the U-LiRA audit needs at least {MIN_SHADOWS} shadow models "
                           f"per population (6 to audit the retrained oracle, 8 or more for usable intervals); "
                           "0 = no audit")
    if not cfg.evaluate:
        raise ScarlabError(f"shadows K={k} audits every evaluated run, but evaluate is off (--no-evaluate): turn "
                           "evaluation on or set shadows 0")
    shadow_seeds(cfg.audit_seed, k)
    if cfg.audit_seed <= cfg.train_seed < cfg.audit_seed + k:
        raise ScarlabError(f"the shadow seeds {cfg.audit_seed}..{cfg.audit_seed + k - 1} include train_seed "
                           f"{cfg.train_seed}: a shadow would be the audited model's twin; choose another audit_seed")


def _scalar_options() -> dict[str, tuple[type, bool]]:
    """The options that take one str, int or bool, read from PipelineConfig's annotations: name -> (type, may be
    None). A new option is checked the day it is declared."""
    hints = typing.get_type_hints(PipelineConfig)
    out = {}
    for f in dataclasses.fields(PipelineConfig):
        args = typing.get_args(hints[f.name])
        base = next((a for a in args if a is not type(None)), None) if args else hints[f.name]
        if base in (str, int, bool):
            out[f.name] = (base, type(None) in args)
    return out


def _check_types(cfg: PipelineConfig) -> None:
    """Each scalar option has its type (YAML ``jobs: two`` or ``retain_available: "false"`` is an error, not a
    silent truthy string); a list where a scalar belongs is named."""
    for name, (typ, optional) in _scalar_options().items():
        v = getattr(cfg, name)
        if v is None and optional:
            continue
        if isinstance(v, (list, dict)):
            hint = "" if name in NEVER_AXES else "; lists of such values are grid axes of `scarlab sweep`"
            raise ScarlabError(f"{name} takes one value, got a {type(v).__name__} ({v!r}){hint}")
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        if not ok:
            kind = {str: "a text value", int: "a whole number", bool: "true or false"}[typ]
            raise ScarlabError(f"{name} must be {kind}, got {v!r}" + (" (a string)" if isinstance(v, str) else ""))
    if not isinstance(cfg.seeds, (list, tuple, int, str)):
        raise ScarlabError(f"seeds must be a list of whole numbers, got {cfg.seeds!r}")
    if not isinstance(cfg.params, dict):
        raise ScarlabError(f"params must map method names to parameters, got {cfg.params!r}")


def write_yaml(path: Path, data: dict, header: str) -> None:
    """``data`` as YAML below a ``# header`` line, written to a temp file and renamed into place."""
    import yaml

    text = f"# {header}\n" + yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)
    with replacing(path) as tmp:
        tmp.write_text(text)


def _train_size(dataset: str) -> int | None:
    """Training images of a data set, known without loading it (imagefolder: files under train/)."""
    sizes = {"digits": 1347, "cifar10": 50000, "cifar100": 50000, "tinyimagenet": 100000}
    if dataset in sizes:
        return sizes[dataset]
    if dataset.startswith("imagefolder:"):
        from ..data import IMAGE_EXTS
        root = Path(dataset.split(":", 1)[1]) / "train"
        return sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    return None

