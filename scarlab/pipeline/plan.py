"""The plan: a configuration's grid points, each validated, expanded into :class:`StageSpec` s with explicit
dependencies and fingerprints; the stages that several points share are planned once."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import MIN_SHADOWS, SURROGATE_SIZE, AuditConfig, TrainConfig
from ..errors import ScarlabError
from ..schema import kind
from .config import (AUDIT_STAGES, NEVER_AXES, STAGE_NOTEBOOKS, TRAIN_OPTIONS, PipelineConfig, param_types,
                     validate)

# Parameters that say *where* things are or run, not *what* is computed: left out of fingerprints, so a
# moved runs folder or another device still reuses its completed stages.
LOCATION_PARAMS = frozenset({"out_dir", "original", "retrained", "split", "run", "runs", "data_root", "device",
                             "overwrite", "shadow_dir", "members_file", "jobs"})
# A retrained oracle's K shadows are split in two halves of at least MIN_SHADOWS each: audited online from K = 6.
RETRAINED_AUDIT_MIN = 2 * MIN_SHADOWS
# Options that hold lists by nature (the plan expands them itself): never grid axes.
LIST_OPTIONS = frozenset({"methods", "forget_classes", "seeds", "params"})


@dataclass
class StageSpec:
    """One stage: a notebook, its parameters, where it writes, and the stages it needs first.

    Plain data (``to_dict`` / ``from_dict``), so a spec can be shipped to another process or machine.
    """

    id: str
    """unique: the run directory relative to the pipeline root, ':' and the kind."""
    kind: str
    """train_original, split, train_retrained, unlearn, evaluate, compare, shadows or audit."""
    notebook: str
    """absolute path of the stage notebook (.ipynb); its jupytext pair (.py) runs instead when saved later."""
    params: dict
    """the notebook parameters (literals: None, lists and dicts included)."""
    run_dir: str
    """the run directory the stage writes (creates, or evaluates in place)."""
    output: str
    """where the executed notebook is kept (inside run_dir)."""
    record: str
    """the JSON file whose ``stages.<kind>`` entry records the stage, written last: the run's manifest.json (the
    pipeline root's pipeline.json for the compare stage)."""
    fingerprint: str
    """hash of kind + parameters (except locations) + notebook code + the dependencies' fingerprints."""
    creates_run: bool = True
    """True: the stage creates run_dir (cleared before a re-run); False: it adds to an existing run."""
    deps: list = field(default_factory=list)
    """ids that must complete first; if one fails this stage is blocked."""
    after: list = field(default_factory=list)
    """ids that must have finished (whatever their outcome) first: the compare stage waits for every evaluation."""
    label: str = ""
    """short text for progress displays."""
    info: dict = field(default_factory=dict)
    """what the stage is about (method and its params, seed, forget_classes, scenario): for sweeps and reports."""
    given: bool = False
    """an existing run the plan uses as it is (the pipeline's ``original``): never executed (not even with
    --force), reused while complete and intact, else failed (its dependants blocked)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageSpec":
        return cls(**d)


def fingerprint(kind: str, params: dict, deps: list[str] = (), code: str = "") -> str:
    """sha256 of the stage kind, its non-location parameters, its notebook's code (:func:`notebook_hash`) and its
    dependencies' fingerprints."""
    what = {k: v for k, v in params.items() if k not in LOCATION_PARAMS}
    blob = json.dumps({"kind": kind, "params": what, "deps": list(deps), "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ============================================================================================ notebooks
def notebook_source(path: str | Path) -> Path:
    """The file a stage executes: its notebook, or the notebook's jupytext pair (same name, ``.py``) when that was
    saved later — what the user last saved, whichever editor they used."""
    ipynb = Path(path)
    py = ipynb.with_suffix(".py")
    if py.is_file() and (not ipynb.is_file() or py.stat().st_mtime_ns > ipynb.stat().st_mtime_ns):
        return py
    return ipynb


def notebook_hash(path: str | Path) -> str:
    """sha256 of the code cells a stage executes, leaving out the parameters cell (papermill overrides it): an
    edited notebook makes its stages run again."""
    src = notebook_source(path)
    return _code_hash(str(src), src.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _code_hash(path: str, mtime_ns: int) -> str:
    import jupytext

    cells = [c.source.strip() for c in jupytext.read(path).cells
             if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def original_identity(run_dir: str | Path) -> dict:
    """What a given original is, whatever its folder: the sha256 of its checkpoint and of its class statistics
    (SCAR reads both), its data set and model."""
    from ..runs import RunDir

    run = RunDir(run_dir)
    files = {name: _file_hash(str(run.file(name)), *_sig(run.file(name))) for name in ("checkpoints/model.pt",
                                                                                        "stats.npz")}
    return {**files, "dataset": run.config.get("dataset"), "model": run.config.get("model")}


def _sig(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None, None


@functools.lru_cache(maxsize=32)
def _file_hash(path: str, mtime_ns, size) -> str | None:
    if mtime_ns is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ============================================================================================ the grid
def _is_axis(value, typ) -> bool:
    """A list given for a parameter is a grid axis; for a parameter that holds a list, a list of lists is."""
    if not isinstance(value, (list, tuple)):
        return False
    return not kind(typ)[1] or (bool(value) and all(isinstance(v, (list, tuple)) for v in value))


def grid(cfg: PipelineConfig, scalar_axes: bool = False, check_device: bool = True) -> list[tuple[str, PipelineConfig]]:
    """Every point of ``cfg``'s grid, validated: ``("scar.lr=0.0005", its PipelineConfig)``, ...

    A list given for a method parameter or a training option (``params: {scar: {lr: [0.0005, 0.00025]}}``,
    ``params: {train: {lr: [...]}}``) is a grid axis. With ``scalar_axes`` (a sweep) so is a list given for a
    single-valued option (``epochs: [4, 8]``). ``methods``, ``forget_classes`` and ``seeds`` are lists the plan
    expands itself. ``check_device``: see :func:`validate`.
    """
    axes: dict[str, list] = {}
    if scalar_axes:
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name in LIST_OPTIONS or not isinstance(value, (list, tuple)):
                continue
            if f.name in NEVER_AXES:
                raise ScarlabError(f"{f.name} takes one value, not a list ({value!r})")
            axes[f.name] = list(value)
    params = cfg.params if isinstance(cfg.params, dict) else {}
    for owner, values in params.items():
        if isinstance(values, dict):  # anything else: validate names the mistake
            types = param_types(owner, values)
            axes.update({f"{owner}.{k}": list(v) for k, v in values.items() if _is_axis(v, types[k])})
    empty = [k for k, v in axes.items() if not v]
    if empty:
        raise ScarlabError(f"{empty[0]} is an empty list: give at least one value")
    combos = list(itertools.product(*axes.values()))
    points = []
    for combo in combos:
        point = dict(zip(axes, combo))
        values = {o: dict(v) if isinstance(v, dict) else v for o, v in params.items()}
        for key, value in point.items():
            owner, _, name = key.partition(".")
            if name:
                values[owner][name] = value
        desc = ", ".join(f"{k}={v}" for k, v in point.items())
        one = dataclasses.replace(cfg, **{k: v for k, v in point.items() if "." not in k},
                                  **({"params": values} if params else {}))
        try:
            points.append((desc, validate(one, check_device)))
        except ScarlabError as exc:
            raise ScarlabError(f"grid point {desc}: {exc}" if len(combos) > 1 else str(exc)) from None
    return points


# ============================================================================================ the plan
def plan(cfg: PipelineConfig, scalar_axes: bool = False, check_device: bool = True) -> list[StageSpec]:
    """Validate every grid point of ``cfg`` (:func:`grid`) and expand them into stage specs, in an order that
    respects every dependency."""
    return plan_points(grid(cfg, scalar_axes, check_device))


def plan_points(points: list[tuple[str, PipelineConfig]]) -> list[StageSpec]:
    """The stages of validated grid points: a stage several points share (same run directory: one original per
    data set, model and training configuration) once, then one compare stage over every evaluated run."""
    merged: dict[str, StageSpec] = {}
    evaluated: list[str] = []
    for desc, cfg in points:
        specs, runs = _plan_point(cfg)
        evaluated += runs
        for spec in specs:
            if spec.id not in merged:
                merged[spec.id] = spec
            elif merged[spec.id].fingerprint != spec.fingerprint:
                raise ScarlabError(f"grid points define stage {spec.id} differently ({desc}): an axis changes what "
                                   "it computes without moving its folder (e.g. embed); split the grid in two")
    specs = list(merged.values())  # each point's stages are in dependency order, so the merged list is too
    if evaluated:
        cfg = points[0][1]
        root, nb = Path(cfg.out).expanduser().resolve(), Path(cfg.notebooks)
        params = {"runs": list(dict.fromkeys(evaluated)), "out_dir": str(root)}
        code = notebook_hash(nb / STAGE_NOTEBOOKS["compare"])
        # summarise whatever was evaluated, even if a branch failed: after, not deps
        specs.append(_spec("compare", root, root, params, fingerprint("compare", params, code=code), nb,
                           creates_run=False, output="compare.ipynb", label="compare",
                           after=[s.id for s in specs if s.kind in ("evaluate", *AUDIT_STAGES.values())]))
    return specs


def _spec(kind: str, root: Path, run_dir: Path, params: dict, fp: str, notebooks: Path, deps=(),
          output: str = "notebook.ipynb", record: str | None = None, **kw) -> StageSpec:
    rel = run_dir.relative_to(root).as_posix() if run_dir != root else "."
    record = record or run_dir / ("pipeline.json" if run_dir == root else "manifest.json")
    return StageSpec(id=f"{rel}:{kind}", kind=kind, notebook=str(notebooks / STAGE_NOTEBOOKS[kind]), params=params,
                     run_dir=str(run_dir), output=str(run_dir / output), record=str(record), fingerprint=fp,
                     deps=[d.id for d in deps], **kw)


def _slug(dataset: str) -> str:
    name = Path(dataset.split(":", 1)[1]).name if dataset.startswith("imagefolder:") else dataset
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "data"


def _plan_point(cfg: PipelineConfig) -> tuple[list[StageSpec], list[str]]:
    """The stages of one validated grid point except the compare stage, and the run directories it evaluates:
    the original, then per forget set its split and retrained oracle, their evaluations (and audits), and every
    method's unlearn runs, in dependency order."""
    point = _Point(cfg)
    original = point.original()
    for fset in cfg.forget_sets() if cfg.scenario == "CR" else [[]]:
        branch = point.split(original, fset)
        point.evaluate_references(original, branch)
        for method in cfg.methods:
            point.method(original, branch, method)
    return point.specs, point.evaluated


@dataclass
class _Branch:
    """One forget set's stages and names, as the stages below it need them."""

    sdir: Path
    tag: str
    info: dict
    split: StageSpec
    retrained: StageSpec
    shadow_train: StageSpec | None = None
    retrained_eval: StageSpec | None = None
    variants: dict = field(default_factory=dict)
    """the unlearned shadows of one method variant (they serve all its seeds)."""


class _Point:
    """Adds the stages of one grid point to ``specs`` (each with its fingerprint) and the runs it evaluates to
    ``evaluated``."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.root = Path(cfg.out).expanduser().resolve()
        self.nb = Path(cfg.notebooks)
        self.code = {kind: notebook_hash(self.nb / name) for kind, name in STAGE_NOTEBOOKS.items()}
        self.base = self.root / f"{_slug(cfg.dataset)}__{cfg.model}"
        opts = cfg.params.get("train", {})
        self.common = dict(dataset=cfg.dataset, data_root=cfg.data_root)
        recipe = {k: opts.get(k, getattr(TrainConfig, k)) for k in TRAIN_OPTIONS}  # --set train.*, else defaults
        self.train = dict(self.common, model=cfg.model, epochs=cfg.epochs, **recipe, seed=cfg.train_seed,
                          device=cfg.device, out_dir=None, overwrite=False)
        self.specs: list[StageSpec] = []
        self.evaluated: list[str] = []

    def fp(self, kind: str, params: dict, deps: list[StageSpec] = ()) -> str:
        return fingerprint(kind, params, [d.fingerprint for d in deps], self.code[kind])

    def add(self, kind: str, run_dir: Path, params: dict, deps: list[StageSpec] = (), **kw) -> StageSpec:
        self.specs.append(_spec(kind, self.root, run_dir, params, self.fp(kind, params, deps), self.nb, deps, **kw))
        return self.specs[-1]

    def add_shadows(self, sdir: Path, name: str, params: dict, deps: list[StageSpec], **kw) -> StageSpec:
        """A shadow stage (06_shadows): its members go to the audit module's folder, sdir/shadows__<fp8>/ (known
        only once the split exists); the stage's own record and executed notebook to sdir/shadow_stages/<name>/."""
        cfg, where = self.cfg, sdir / "shadow_stages" / name
        params = dict(params, shadows=cfg.shadows, seed=cfg.audit_seed, shadow_dir=None, device=cfg.device,
                      members_file=str(where / "members.json"), jobs=cfg.jobs)
        return self.add("shadows", where, params, deps, creates_run=False, record=str(where / "stage.json"), **kw)

    def add_audit(self, evaluation: StageSpec, shadows: list[StageSpec], label: str, info: dict) -> StageSpec:
        """The audit of one evaluated run (07_audit, or 07_audit_offline with audit_mode offline), into that run in
        place, after its evaluation."""
        cfg, kind = self.cfg, AUDIT_STAGES[self.cfg.audit_mode]
        params = dict(run=evaluation.run_dir, shadows=cfg.shadows, seed=cfg.audit_seed, shadow_dir=None,
                      alpha=AuditConfig.alpha, device=cfg.device)
        if kind == "audit":
            params.update(delta=AuditConfig.delta)
        else:  # the offline estimators' own options, at their defaults
            params.update(rmia_a=AuditConfig.rmia_a, population=AuditConfig.population)
        return self.add(kind, Path(evaluation.run_dir), params, [*shadows, evaluation], creates_run=False,
                        output=f"{kind}.ipynb", label=label if kind == "audit" else f"{label} (offline)", info=info)

    def original(self) -> StageSpec:
        """01_train_original: one per data set, model and training configuration; or the given original run, as
        it is (its fingerprint: :func:`original_identity`, so another original never reuses these stages)."""
        if self.cfg.original:
            path = Path(self.cfg.original)
            rel = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.as_posix()
            self.specs.append(StageSpec(
                id=f"{rel}:train_original", kind="train_original", notebook=str(self.nb / STAGE_NOTEBOOKS[
                    "train_original"]), params={"original": str(path)}, run_dir=str(path),
                output=str(path / "notebook.ipynb"), record=str(path / "manifest.json"), creates_run=False,
                fingerprint=fingerprint("given_original", original_identity(path)), given=True,
                label="original (given)", info={"method": "original", "given": str(path)}))
            return self.specs[-1]
        orig_dir = self.base / f"original__{self.fp('train_original', self.train)[:8]}"
        return self.add("train_original", orig_dir, {**self.train, "out_dir": str(orig_dir)}, label="train original",
                        info={"method": "original"})

    def split(self, original: StageSpec, fset: list[int]) -> _Branch:
        """02_split and 03_train_retrained of one forget set (and, with shadows, its shadow originals and oracles),
        in a folder named by the split and both trainings."""
        cfg = self.cfg
        split_params = dict(self.common, scenario=cfg.scenario, forget_classes=list(fset),
                            forget_size=cfg.forget_size, seed=cfg.split_seed, out_dir=None, overwrite=False)
        retr_params = dict(self.train, split=None, scenario=cfg.scenario, forget_classes=list(fset),
                           forget_size=cfg.forget_size)
        h = fingerprint("split-id", {}, [original.fingerprint, self.fp("split", split_params),
                                         self.fp("train_retrained", retr_params)])
        what = ("f" + "-".join(map(str, fset))) if cfg.scenario == "CR" else f"n{cfg.forget_size}-s{cfg.split_seed}"
        split_id = f"{cfg.scenario}-{what}__{h[:8]}"
        sdir = self.base / split_id
        info = {"scenario": cfg.scenario, "forget_classes": list(fset), "forget_size": cfg.forget_size,
                "split_id": split_id}
        tag = f"{cfg.scenario} {','.join(map(str, fset))}" if cfg.scenario == "CR" else f"HR {cfg.forget_size}"
        split = self.add("split", sdir / "split", {**split_params, "out_dir": str(sdir / "split")},
                         label=f"split {tag}", info=info)
        retrained = self.add("train_retrained", sdir / "retrained",
                             {**retr_params, "split": split.run_dir, "out_dir": str(sdir / "retrained")}, [split],
                             label=f"train retrained {tag}", info={**info, "method": "retrained"})
        branch = _Branch(sdir, tag, info, split, retrained)
        if cfg.shadows:  # validate: evaluate is on
            # online: the originals and oracles every method's audit shares; offline: the oracles alone
            pops = ["original", "retrained"] if cfg.audit_mode == "online" else ["retrained"]
            branch.shadow_train = self.add_shadows(
                sdir, "train", dict(run=None, original=original.run_dir, split=split.run_dir, populations=pops),
                [original, split], label=f"shadows {tag}", info=info)
        return branch

    def evaluate_references(self, original: StageSpec, b: _Branch) -> None:
        """05_evaluate of the original against the split (into original_eval) and of the retrained oracle in
        place; with shadows, their audits (the oracle's from RETRAINED_AUDIT_MIN shadows)."""
        cfg = self.cfg
        if not cfg.evaluate:
            return
        ev = dict(run=original.run_dir, original=None, retrained=b.retrained.run_dir, split=b.split.run_dir,
                  out_dir=str(b.sdir / "original_eval"), embed=False, device=cfg.device)
        original_eval = self.add("evaluate", b.sdir / "original_eval", ev, [original, b.split, b.retrained],
                                 label=f"evaluate original {b.tag}", info={**b.info, "method": "original"})
        ev = dict(run=b.retrained.run_dir, original=original.run_dir, retrained=None, split=None, out_dir=None,
                  embed=cfg.embed, device=cfg.device)
        b.retrained_eval = self.add("evaluate", b.sdir / "retrained", ev, [b.retrained, original], creates_run=False,
                                    output="evaluate.ipynb", label=f"evaluate retrained {b.tag}",
                                    info={**b.info, "method": "retrained"})
        self.evaluated += [str(b.sdir / "original_eval"), b.retrained.run_dir]
        if cfg.shadows:
            self.add_audit(original_eval, [b.shadow_train], f"audit original {b.tag}",
                           {**b.info, "method": "original"})
            # online, below RETRAINED_AUDIT_MIN: not planned (config docstring says so); offline needs no halves
            if cfg.shadows >= RETRAINED_AUDIT_MIN or cfg.audit_mode == "offline":
                self.add_audit(b.retrained_eval, [b.shadow_train], f"audit retrained {b.tag}",
                               {**b.info, "method": "retrained"})

    def method(self, original: StageSpec, b: _Branch, method: str) -> None:
        """04_unlearn of one method, once per seed, each evaluated in place; with shadows, the method variant's
        unlearned shadows (once for all seeds) and each run's audit."""
        from ..unlearn import METHODS

        cfg = self.cfg
        spec = METHODS[method]
        mparams = dict(cfg.params.get(method, {}))
        if cfg.unlearn_epochs and "epochs" in {f.name for f in dataclasses.fields(spec.params)}:
            mparams.setdefault("epochs", cfg.unlearn_epochs)
        uses_surrogate = "surrogate" in spec.needs  # other methods ignore it: keep it out of their fingerprint
        for seed in cfg.seeds:
            up = dict(original=original.run_dir, retrained=b.retrained.run_dir, split=b.split.run_dir, method=method,
                      params=mparams, seed=int(seed), surrogate=cfg.surrogate if uses_surrogate else "auto",
                      surrogate_chunks=cfg.surrogate_chunks if uses_surrogate else None,
                      surrogate_size=cfg.surrogate_size if uses_surrogate else SURROGATE_SIZE,
                      snapshot_every=cfg.snapshot_every, retain_available=cfg.retain_available,
                      device=cfg.device, out_dir=None, overwrite=False)
            udir = b.sdir / f"{method}__s{seed}__{self.fp('unlearn', up, [original, b.split])[:8]}"
            minfo = {**b.info, "method": method, "seed": int(seed), "params": mparams}
            unl = self.add("unlearn", udir, {**up, "out_dir": str(udir)}, [original, b.split],
                           label=f"unlearn {method} s{seed} {b.tag}", info=minfo)
            if cfg.evaluate:
                ev = dict(run=unl.run_dir, original=original.run_dir, retrained=b.retrained.run_dir, split=None,
                          out_dir=None, embed=cfg.embed, device=cfg.device)
                unl_eval = self.add("evaluate", udir, ev, [unl, b.retrained], creates_run=False,
                                    output="evaluate.ipynb", label=f"evaluate {method} s{seed} {b.tag}", info=minfo,
                                    # the retrained evaluation fits the UMAP reducers every embedding reuses: first
                                    after=[b.retrained_eval.id] if cfg.embed else [])
                self.evaluated.append(unl.run_dir)
            if cfg.shadows and cfg.audit_mode == "offline":  # the split's retrained shadows serve every run
                self.add_audit(unl_eval, [b.shadow_train], f"audit {method} s{seed} {b.tag}", minfo)
            elif cfg.shadows:
                # one variant = the unlearn parameters but the seed (and locations): its K unlearned shadows
                # are made from the first seed's run's resolved configuration and serve every seed
                variant = {k: v for k, v in up.items() if k != "seed"}
                vfp = fingerprint("shadow-variant", variant, [original.fingerprint, b.split.fingerprint])
                vkey = f"{method}__{vfp[:8]}"
                if vkey not in b.variants:
                    b.variants[vkey] = self.add_shadows(
                        b.sdir, vkey, dict(run=unl.run_dir, original=None, split=None, populations=["unlearned"]),
                        [b.shadow_train, unl], label=f"shadows {method} {b.tag}",
                        info={k: v for k, v in minfo.items() if k != "seed"})
                self.add_audit(unl_eval, [b.variants[vkey]], f"audit {method} s{seed} {b.tag}", minfo)
