"""`scarlab train`: the original model, or the retrained oracle (``--role retrained``)."""
from __future__ import annotations

import argparse

from ..config import TrainConfig
from . import _common


def _resolved(dataset: str) -> TrainConfig:
    return TrainConfig(dataset=dataset).resolved(dataset)


def register(sub) -> None:
    from ..schema import effective_defaults

    p = _common.add_parser(sub, "train", TrainConfig, "train the original model or the retrained oracle",
                           run_options=True, defaults=effective_defaults(TrainConfig, _resolved))
    p.add_argument("--retrained", dest="role", action="store_const", const="retrained", default=argparse.SUPPRESS,
                   help="the same as --role retrained")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ScarlabError
    from ..train import run_train

    cfg, opts = _common.options(args)
    if cfg.role != "retrained" and (cfg.forget_classes or cfg.forget_size is not None or cfg.split):
        # an original model silently trained on all data would look like an oracle: say so instead
        raise ScarlabError("--forget-classes / --forget-size / --split only apply to the retrained oracle: "
                           "add --retrained, or drop them to train the original model")
    run_dir = run_train(cfg, opts.out, overwrite=opts.overwrite, progress=not opts.quiet)
    print(f"{cfg.role} model trained: {run_dir.path}")
    _common.print_metrics(run_dir.metrics)
    return 0
