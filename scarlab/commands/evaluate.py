"""`scarlab evaluate`: accuracies, three membership-inference attacks, privacy score and AUS of runs, and a summary."""
from __future__ import annotations

import sys

from ..config import EvaluateConfig
from . import _common

SHOWN = ("acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "acc/test", "mia/svc/acc",
         "mia/svc/chance", "mia/loss_lr/acc", "mia/conf_thr/acc", "privacy/score", "aus", "time/unlearn_s",
         "time/evaluate_s")


def register(sub) -> None:
    p = _common.add_parser(sub, "evaluate", EvaluateConfig,
                           "evaluate runs (metrics.json, perclass.json, mia_steps.csv) and summarise",
                           positional=("runs",),
                           description="Evaluate unlearning and retrained runs in place (their metrics.json is "
                                       "merged), or an original model against a split into a new run directory "
                                       "(--out). With --summary DIR, also write summary.csv, summary_agg.csv and "
                                       "summary.md there.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ScarlabError
    from ..evaluate import evaluate_run
    from ..results import summarize
    from ..runs import make_folder

    cfg, _ = _common.options(args)
    _common.require_runs(cfg.runs, "evaluate RUN [RUN ...]")
    if cfg.out and len(cfg.runs) != 1:
        raise ScarlabError("--out evaluates one run (an original model against --split); pass a single RUN")
    if cfg.summary:  # made first: a summary folder that cannot be made is found before any run is evaluated
        make_folder(cfg.summary, "--summary")
    evaluated, failed = [], 0
    for path in cfg.runs:
        try:
            metrics = evaluate_run(path, original=cfg.original, retrained=cfg.retrained, split=cfg.split,
                                   out=cfg.out, device=cfg.device, mia_repeats=cfg.mia_repeats,
                                   overwrite=cfg.overwrite, progress=not cfg.quiet)
        except ScarlabError as exc:
            if len(cfg.runs) == 1 and not cfg.summary:
                raise
            print(f"scarlab: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            evaluated.append(cfg.out or path)
            continue
        evaluated.append(cfg.out or path)
        print(f"evaluated {path}" + (f" -> {cfg.out}" if cfg.out else ""))
        _common.print_metrics({k: metrics[k] for k in SHOWN if metrics.get(k) is not None})
    if cfg.summary:
        df = summarize(evaluated, cfg.summary)
        print(f"summary of {len(df)} run(s): {cfg.summary}/summary.csv, summary_agg.csv, summary.md")
    return 2 if failed else 0
