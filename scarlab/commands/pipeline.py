"""`scarlab pipeline`: run the stage notebooks (train, split, retrain, unlearn, evaluate, compare) with papermill."""
from __future__ import annotations

import argparse

from . import _common

EPILOG = """\
layout of --out DIR (see scarlab/pipeline/__init__.py):
  DIR/<dataset>__<model>/original__<h>/               original model (01_train_original)
  DIR/<dataset>__<model>/<split-id>/split/            forget split (02_split), e.g. split-id CR-f0__<h>
  DIR/<dataset>__<model>/<split-id>/retrained/        retrained oracle (03), evaluated in place (05)
  DIR/<dataset>__<model>/<split-id>/original_eval/    the original model evaluated on this split (05)
  DIR/<dataset>__<model>/<split-id>/<method>__s<seed>__<h>/   unlearning run (04), evaluated in place (05)
  DIR/summary.csv, summary.md, compare.ipynb          one row per run (06_compare)
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


def register(sub) -> None:
    S = argparse.SUPPRESS  # unset options fall back to the YAML file, then to PipelineConfig's defaults
    p = sub.add_parser("pipeline", help="run every stage (train, split, retrain, unlearn, evaluate, compare) "
                                        "by executing the stage notebooks with papermill",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description="Plan the stages, check every name and value, then execute the notebooks in "
                                   "notebooks/ through papermill (reusing completed stages) and write DIR/summary.csv.")
    p.add_argument("--config", default=None, help="YAML file with the same keys (dataset, methods, params, ...); "
                                                   "command-line options override it")
    p.add_argument("--dataset", default=S, help="digits (default), cifar10, cifar100, tinyimagenet or imagefolder:PATH")
    p.add_argument("--data-root", default=S, help="where torchvision / Tiny-ImageNet data live")
    p.add_argument("--model", default=S, help="registered model (default: tinycnn for digits, else smallcnn)")
    p.add_argument("--scenario", default=S, choices=["CR", "HR"], help="CR (class removal, default) or HR")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--forget-classes", nargs="+", action="append", default=S, metavar="C",
                   help="CR: classes forgotten together (0 3 or 0,3); repeat the option for several splits")
    g.add_argument("--forget-size", type=int, default=S, metavar="N", help="HR: number of random training images")
    p.add_argument("--split-seed", type=int, default=S, help="HR: seed of the random forget sample (default 0)")
    p.add_argument("--methods", nargs="+", default=S, help="registered methods, comma- or space-separated "
                                                           "(default scar)")
    p.add_argument("--set", dest="set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                   help="a method hyper-parameter, e.g. scar.lambda_2=5 (repeatable); train.lr=... for training")
    p.add_argument("--seeds", nargs="+", type=int, default=S, help="unlearning seeds (default 0)")
    p.add_argument("--surrogate", default=S, help="imagefolder:PATH, sample_edges, sample_images, gaussian_noise "
                                                  "or auto (default)")
    p.add_argument("--surrogate-chunks", type=int, default=S, help="imagefolder surrogate: first k chunk folders")
    p.add_argument("--surrogate-size", type=int, default=S, help="generated surrogates: number of images")
    p.add_argument("--epochs", type=int, default=S, help="original / retrained training epochs "
                                                         "(default: digits 12, else 30)")
    p.add_argument("--unlearn-epochs", type=int, default=S, help="every method's epochs (default: its own)")
    p.add_argument("--train-seed", type=int, default=S, help="seed of the original / retrained training")
    p.add_argument("--snapshot-every", type=int, default=S, help="feature snapshot every k unlearning steps")
    p.add_argument("--no-retain", dest="retain_available", action="store_false", default=S,
                   help="withhold the retain set: methods that need it are refused before anything runs")
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false", default=S,
                   help="skip evaluation and the summary")
    p.add_argument("--embed", action="store_true", default=S,
                   help="compute embedding.parquet (UMAP) of every run for the dashboard")
    p.add_argument("--device", default=S, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--out", default=S, help="pipeline root DIR (default runs/pipeline)")
    p.add_argument("--jobs", type=int, default=S, help="stages executed at once (default 1)")
    p.add_argument("--threads", type=int, default=S, help="torch threads per stage kernel")
    p.add_argument("--notebooks", default=S, help="folder of the stage notebooks (default: this checkout's notebooks/)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and each stage's state; run nothing")
    p.add_argument("--force", action="store_true", help="execute every stage, even the reusable ones")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


OPTION_KEYS = ("dataset", "data_root", "model", "scenario", "forget_classes", "forget_size", "split_seed", "methods",
               "seeds", "surrogate", "surrogate_chunks", "surrogate_size", "epochs", "unlearn_epochs", "train_seed",
               "snapshot_every", "retain_available", "evaluate", "embed", "device", "out", "jobs", "threads",
               "notebooks")


def config_from_args(args):
    """PipelineConfig from defaults < YAML file < command-line options (and --set)."""
    from ..pipeline import config_from_dict, load_config, parse_sets

    data = load_config(args.config) if getattr(args, "config", None) else {}
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    for key in OPTION_KEYS:
        if hasattr(args, key):
            data[key] = getattr(args, key)
    if "methods" in data and isinstance(data["methods"], list):
        data["methods"] = [m for item in data["methods"] for m in str(item).split(",") if m.strip()]
    if "forget_classes" in data and hasattr(args, "forget_classes"):  # [["0", "3"], ["5"]] from argparse
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
