"""`scarlab import`: a trained checkpoint made into an original run (the file is named after the command; the CLI
loads it with importlib, as every command)."""
from __future__ import annotations

from ..config import ImportConfig
from . import _common


def register(sub) -> None:
    p = _common.add_parser(sub, "import", ImportConfig, "make an original run from a trained checkpoint",
                           positional=("source",), run_options=True,
                           description="A scarlab checkpoint, a state dict of a registered model (--model NAME) or "
                                       "of torchvision's ResNet-18/34/50 becomes an original run, as `scarlab train` "
                                       "writes one: checkpoint, accuracies and class statistics, plus where the "
                                       "weights came from (config.json `imported`). The file is read with "
                                       "weights_only=True: a pickled model is refused. Inputs are normalised as "
                                       "scarlab normalises the data set.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..importing import run_import

    cfg, opts = _common.options(args)
    run_dir = run_import(cfg, opts.out, overwrite=opts.overwrite)
    imported = run_dir.config["imported"]
    print(f"imported {imported['format']} weights as an original {run_dir.config['model']} for {cfg.dataset}: "
          f"{run_dir.path}")
    _common.print_metrics(run_dir.metrics)
    return 0
