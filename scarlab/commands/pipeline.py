"""`scarlab pipeline`: run the stage notebooks (train, split, retrain, unlearn, evaluate, compare) with papermill."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from . import _common

EPILOG = """\
layout of --out DIR (see scarlab/pipeline/__init__.py):
  DIR/<dataset>__<model>/original__<h>/               original model (01_train_original)
  DIR/<dataset>__<model>/<split-id>/split/            forget split (02_split), e.g. split-id CR-f0__<h>
  DIR/<dataset>__<model>/<split-id>/retrained/        retrained oracle (03), evaluated in place (05)
  DIR/<dataset>__<model>/<split-id>/original_eval/    the original model evaluated on this split (05)
  DIR/<dataset>__<model>/<split-id>/<method>__s<seed>__<h>/   unlearning run (04), evaluated in place (05)
  DIR/summary.csv, summary.md, compare.ipynb          one row per run (08_compare)
every run directory keeps its executed notebook (notebook.ipynb, evaluate.ipynb); its manifest.json records
the run's status and, under "stages", each stage that wrote to it (DIR/pipeline.json: the compare stage).

reuse: a stage is skipped when its run directory is complete and its recorded fingerprint (of the notebook
parameters, the notebook's code and everything upstream) equals the requested one; <h> changes with the
configuration, so a changed configuration or an edited notebook runs into new folders. A stage notebook may
be a jupytext pair (NN_name.ipynb + NN_name.py): the file saved last runs. A failed stage is marked failed
with the notebook cell's error; the stages depending on it are skipped and every other branch continues.

grid axes: in a --config file, a list for a method parameter or a training option runs one point per value,
e.g. params: {scar: {lr: [0.0005, 0.00025]}, train: {lr: [0.05, 0.1]}}.

examples:
  scarlab pipeline --forget-classes 0 --methods scar,scar_self,finetune --out runs/digits
  scarlab pipeline --dataset imagefolder:data/cifar10-mini --surrogate imagefolder:data/ood-mini \\
      --forget-classes 0 --methods scar,finetune --seeds 0 1 2 --set scar.lambda_2=5 --out runs/c10
  scarlab pipeline --config sweep.yaml --jobs 2
  scarlab import model.pth --dataset digits --out runs/mine && \
      scarlab pipeline --original runs/mine --forget-classes 3 --out runs/digits
"""


def _effective(dataset: str):
    """PipelineConfig's defaults as a run on ``dataset`` resolves them (model, training epochs)."""
    import types

    from ..config import TrainConfig
    from ..pipeline import PipelineConfig

    train = TrainConfig(dataset=dataset).resolved(dataset)
    return types.SimpleNamespace(**{**dataclasses.asdict(PipelineConfig()), "model": train.model,
                                    "epochs": train.epochs})


def register(sub) -> None:
    from .. import schema
    from ..pipeline import PipelineConfig

    p = sub.add_parser("pipeline", help="run every stage (train, split, retrain, unlearn, evaluate, compare) "
                                        "by executing the stage notebooks with papermill",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description="Plan the stages, check every name and value, then execute the notebooks in "
                                   "notebooks/ through papermill (reusing completed stages) and write DIR/summary.csv.")
    schema.add_options(p, PipelineConfig, skip=("forget_classes", "params"),
                       defaults=schema.effective_defaults(PipelineConfig, _effective),
                       aliases={"retain_available": ["--no-retain"]})
    p.add_argument("--forget-classes", nargs="+", action="append", default=argparse.SUPPRESS, metavar="C",
                   help=schema.field_docs(PipelineConfig)["forget_classes"] + " On the command line: classes "
                        "forgotten together (0 3 or 0,3); repeat the option for several splits.")
    p.add_argument("--set", dest="set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                   help="one value of params: a method hyper-parameter, e.g. scar.lambda_2=5 (repeatable); "
                        "train.lr=... for training (lists, i.e. grid axes, go in a --config file)")
    schema.add_config(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan and each stage's state; run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as one JSON document (each stage's "
                                                       "id, kind, label, state, run directory, dependencies, info)")
    p.add_argument("--events", metavar="FILE", default=None,
                   help="append one JSON line per stage start and end to FILE (what `scarlab jobs` and the "
                        "dashboard's Run page follow)")
    p.add_argument("--describe", action="store_true",
                   help="print, as JSON, every option of this command and every method's parameters with their "
                        "help and per-data-set defaults (what the dashboard's Run page builds its form from); "
                        "run nothing")
    p.add_argument("--force", action="store_true", help="execute every stage, even the reusable ones")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def config_from_args(args):
    """PipelineConfig from defaults < YAML file < command-line options (and --set)."""
    from .. import schema
    from ..pipeline import PipelineConfig, config_from_dict, parse_sets

    data = schema.load_file(args.config) if getattr(args, "config", None) else {}
    given = {k: v for k, v in schema.given(args, PipelineConfig).items() if k != "forget_classes"}  # below
    data.update(schema.typed(PipelineConfig, given))
    if isinstance(data.get("methods"), list):
        data["methods"] = [m for item in data["methods"] for m in str(item).split(",") if m.strip()]
    if hasattr(args, "forget_classes"):  # [["0", "3"], ["5"]] from argparse
        data["forget_classes"] = [_common.forget_classes(group) for group in args.forget_classes]
    sets = parse_sets(getattr(args, "set", []))
    if sets:
        params = {k: dict(v) for k, v in (data.get("params") or {}).items()}
        for owner, values in sets.items():
            params.setdefault(owner, {}).update(values)
        data["params"] = params
    return config_from_dict(data)


def describe() -> dict:
    """Every pipeline option (type, help, effective default per data set) and every registered method's parameters
    (type, help, default per data set: ``digits`` and ``generic``), the data sets, models and surrogates by name: the
    declarations the CLI is generated from, as JSON for a form (the dashboard's Run page)."""
    import typing

    from .. import schema
    from ..data import DATASETS, SCENARIOS, SURROGATES
    from ..models import MODELS, default_model
    from ..pipeline import PipelineConfig
    from ..pipeline.config import CLASS_COUNTS
    from ..unlearn import METHODS

    def fields(cls, defaults: dict, raw) -> dict:
        docs, types = schema.field_docs(cls), schema.hints(cls)
        out = {}
        for f in dataclasses.fields(cls):
            base, is_list = schema.kind(types[f.name])
            out[f.name] = {"type": "list" if is_list else base.__name__, "item": base.__name__ if is_list else None,
                           "optional": type(None) in typing.get_args(types[f.name]),
                           "help": docs.get(f.name, ""), "shown": defaults.get(f.name, "none"),
                           "default": raw(f.name)}
        return out

    base = PipelineConfig()
    pipeline = fields(PipelineConfig, schema.effective_defaults(PipelineConfig, _effective),
                      lambda n: getattr(base, n))
    per_dataset = {ds: {"model": default_model(ds), "epochs": _effective(ds).epochs} for ds in schema.DATASETS}
    methods = {}
    for name, spec in METHODS.items():
        shown = schema.effective_defaults(spec.params, lambda ds: spec.make_params({}, ds))
        by = {"digits": spec.make_params({}, "digits"), "generic": spec.make_params({}, None)}
        params = fields(spec.params, shown, lambda n: getattr(by["generic"], n))
        for pname, entry in params.items():
            entry["defaults"] = {k: getattr(v, pname) for k, v in by.items()}
        methods[name] = {"summary": spec.summary, "needs": sorted(spec.needs), "params": params}
    return {"pipeline": pipeline, "per_dataset": per_dataset, "methods": methods, "datasets": list(DATASETS),
            "class_counts": CLASS_COUNTS, "models": list(MODELS), "surrogates": list(SURROGATES),
            "scenarios": list(SCENARIOS)}


def plan_json(specs) -> list[dict]:
    """The plan as data: each stage's id, kind, label, state (current = reused), run directory, deps, info, and
    given (the pipeline's ``original``: used as it is, never run)."""
    from ..pipeline import stage_state

    return [{"id": s.id, "kind": s.kind, "label": s.label, "state": stage_state(s), "run_dir": s.run_dir,
             "deps": s.deps + s.after, "info": s.info, "given": s.given} for s in specs]


def run(args) -> int:
    import json

    from ..pipeline import plan, run_pipeline, stage_state

    if args.describe:
        print(json.dumps(describe(), default=str))
        return 0
    cfg = config_from_args(args)
    if args.dry_run:
        specs = plan(cfg)
        if args.json:
            print(json.dumps({"stages": plan_json(specs), "root": str(Path(cfg.out).expanduser().resolve()),
                              "dataset": next((s.params["dataset"] for s in specs if "dataset" in s.params), None)},
                             default=str))
            return 0
        for s in specs:
            deps = f"  after {len(s.deps + s.after)}" if s.deps or s.after else ""
            state = stage_state(s)
            print(f"{'given' if s.given and state == 'current' else state:8s} {s.label:38s} {s.run_dir}{deps}")
        print(f"{len(specs)} stage(s); nothing was run (--dry-run)")
        return 0
    result = run_pipeline(cfg, progress=not args.quiet, force=args.force, events=args.events)
    _common.report(result, "pipeline", ("method", "forget_classes", "seed", "acc/forget_test", "acc/retain_test",
                                         "acc/forget_train", "acc/test", "mia/svc/acc", "mia/svc/chance", "aus",
                                         "time/unlearn_s"))
    if result.interrupted:
        print("pipeline: interrupted; completed stages are kept and a rerun resumes from them")
        return 130
    return 0 if result.ok else 1
