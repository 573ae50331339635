"""`scarlab unlearn`: run one registered method on an original model."""
from __future__ import annotations

import dataclasses

from . import _common


def _methods_help() -> str:
    from ..unlearn import METHODS

    lines = ["methods and their parameters (pass as --name value, e.g. --lambda-2 5 --batch-size 256):"]
    for name, spec in METHODS.items():
        params = ", ".join(f"--{f.name.replace('_', '-')} ({f.default})" for f in dataclasses.fields(spec.params))
        lines.append(f"  {name} [needs {'+'.join(sorted(spec.needs))}]: {spec.summary}\n      {params}")
    return "\n".join(lines)


def register(sub) -> None:
    import argparse

    p = sub.add_parser("unlearn", help="unlearn with a registered method (scar, scar_self, baselines)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_methods_help())
    p.add_argument("--method", default="scar")
    p.add_argument("--from", dest="original", required=True, help="run directory of the original model")
    p.add_argument("--retrained", default=None, help="run directory of the retrained oracle (for evaluation)")
    p.add_argument("--split", default=None, help="split.npz or a run directory holding one")
    _common.add_split(p)
    p.add_argument("--surrogate", default="auto",
                   help="imagefolder:PATH, sample_edges, sample_images, gaussian_noise or auto")
    p.add_argument("--surrogate-chunks", type=int, default=None, help="imagefolder surrogate: first k chunks")
    p.add_argument("--surrogate-size", type=int, default=2000, help="generated surrogates: number of images")
    p.add_argument("--snapshot-every", type=int, default=5, help="feature snapshot every k steps")
    p.add_argument("--no-retain", dest="retain_available", action="store_false",
                   help="withhold the retain set (SCAR's setting): a method that needs it is refused")
    _common.add_run(p)
    p.set_defaults(func=run, accepts_extra=True)


def run(args) -> int:
    from ..config import UnlearnConfig
    from ..errors import choose
    from ..unlearn import METHODS
    from ..unlearn.stage import run_unlearn

    choose("method", args.method, METHODS)
    params = _common.extra_params(args.extra, METHODS[args.method].params)
    cfg = UnlearnConfig(original=args.original, method=args.method, retrained=args.retrained, split=args.split,
                        scenario=args.scenario, forget_classes=_common.forget_classes(args.forget_classes),
                        forget_size=args.forget_size, seed=args.seed, surrogate=args.surrogate,
                        surrogate_chunks=args.surrogate_chunks, surrogate_size=args.surrogate_size,
                        params=params, snapshot_every=args.snapshot_every, device=args.device,
                        retain_available=args.retain_available)
    run_dir = run_unlearn(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"{args.method} finished: {run_dir.path}")
    _common.print_metrics(run_dir.metrics)
    return 0
