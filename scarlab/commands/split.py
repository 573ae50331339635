"""`scarlab split`: write a forget/retain split once, for every later stage to reuse."""
from __future__ import annotations

from . import _common


def register(sub) -> None:
    p = sub.add_parser("split", help="make a CR or HR forget split (split.npz in a run directory)")
    _common.add_data(p)
    _common.add_split(p)
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_dataset, make_split
    from ..runs import RunDir

    ds = load_dataset(args.dataset, args.data_root)
    split = make_split(ds, args.scenario, _common.forget_classes(args.forget_classes), args.forget_size, args.seed)
    config = {"dataset": args.dataset, "data_root": args.data_root, "scenario": split.scenario,
              "forget_classes": split.forget_classes, "forget_size": len(split.forget_idx), "seed": args.seed}
    run = RunDir.create(args.out, stage="split", config=config, overwrite=args.overwrite)
    with run.running():
        split.save(run.file("split.npz"))
    print(f"{split.describe()}: {len(split.forget_idx)} forget / {len(split.retain_idx)} retain training "
          f"images -> {run.path / 'split.npz'}")
    return 0
