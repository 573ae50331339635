"""`scarlab evaluate`: accuracies, three membership-inference attacks, privacy score and AUS of runs, and a summary."""
from __future__ import annotations

import sys

KEY_METRICS = ("acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "acc/test",
               "mia/svc/acc", "mia/svc/chance", "mia/loss_lr/acc", "mia/conf_thr/acc", "privacy/score", "aus",
               "time/unlearn_s", "time/evaluate_s")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate runs (metrics.json, perclass.json, mia_steps.csv) and summarise",
                       description="Evaluate unlearning and retrained runs in place (their metrics.json is merged), "
                                   "or an original model against a split into a new run directory (--out). "
                                   "With --summary, also write summary.csv, summary_agg.csv and summary.md there.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories to evaluate")
    p.add_argument("--original", default=None, metavar="RUN",
                   help="original run (default: each run's manifest parent)")
    p.add_argument("--retrained", default=None, metavar="RUN",
                   help="retrained oracle, for the privacy score (default: the manifest parent)")
    p.add_argument("--split", default=None, metavar="PATH",
                   help="split.npz or a run directory holding one (default: the run's own)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="evaluate an original model into this new run directory (one RUN only, with --split)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    p.add_argument("--summary", default=None, metavar="DIR", help="write summary.csv / summary_agg.csv / summary.md")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--mia-repeats", type=int, default=5, metavar="N", help="repetitions of the paper's SVC attack")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ScarlabError
    from ..evaluate import evaluate_run, summarize

    if args.out and len(args.runs) != 1:
        raise ScarlabError("--out evaluates one run (an original model against --split); pass a single RUN")
    if args.mia_repeats < 1:
        raise ScarlabError("--mia-repeats must be at least 1")
    evaluated, failed = [], 0
    for path in args.runs:
        try:
            metrics = evaluate_run(path, original=args.original, retrained=args.retrained, split=args.split,
                                   out=args.out, device=args.device, mia_repeats=args.mia_repeats,
                                   overwrite=args.overwrite)
        except ScarlabError as exc:
            if len(args.runs) == 1 and not args.summary:
                raise
            print(f"scarlab: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            evaluated.append(args.out or path)
            continue
        where = args.out or path
        evaluated.append(where)
        print(f"evaluated {path}" + (f" -> {args.out}" if args.out else ""))
        for k in KEY_METRICS:
            v = metrics.get(k)
            if v is not None:
                print(f"  {k:28s} {v:.4f}" if isinstance(v, float) else f"  {k:28s} {v}")
    if args.summary:
        df = summarize(evaluated, args.summary)
        print(f"summary of {len(df)} run(s): {args.summary}/summary.csv, summary_agg.csv, summary.md")
    return 2 if failed else 0
