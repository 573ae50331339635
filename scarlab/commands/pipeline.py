"""`scarlab pipeline`: run the stage notebooks (train, split, retrain, unlearn, evaluate, compare) with papermill."""
from __future__ import annotations

import argparse
import dataclasses

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


def run(args) -> int:
    from ..pipeline import plan, run_pipeline, stage_state

    cfg = config_from_args(args)
    if args.dry_run:
        specs = plan(cfg)
        for s in specs:
            deps = f"  after {len(s.deps + s.after)}" if s.deps or s.after else ""
            print(f"{stage_state(s):8s} {s.label:38s} {s.run_dir}{deps}")
        print(f"{len(specs)} stage(s); nothing was run (--dry-run)")
        return 0
    result = run_pipeline(cfg, progress=not args.quiet, force=args.force)
    _common.report(result, "pipeline", ("method", "forget_classes", "seed", "acc/forget_test", "acc/retain_test",
                                         "acc/forget_train", "acc/test", "mia/svc/acc", "mia/svc/chance", "aus",
                                         "time/unlearn_s"))
    if result.interrupted:
        print("pipeline: interrupted; completed stages are kept and a rerun resumes from them")
        return 130
    return 0 if result.ok else 1
