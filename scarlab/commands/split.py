"""`scarlab split`: write a forget/retain split once, for every later stage to reuse."""
from __future__ import annotations

from ..config import SplitConfig
from . import _common


def register(sub) -> None:
    p = _common.add_parser(sub, "split", SplitConfig, "make a CR or HR forget split (split.npz in a run directory)",
                           run_options=True)
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    from ..data import load_dataset, make_split
    from ..runs import RunDir

    cfg, opts = _common.options(args)
    ds = load_dataset(cfg.dataset, cfg.data_root)
    split = make_split(ds, cfg.scenario, cfg.forget_classes, cfg.forget_size, cfg.seed)
    config = dataclasses.asdict(dataclasses.replace(cfg, scenario=split.scenario, forget_classes=split.forget_classes,
                                                    forget_size=len(split.forget_idx)))
    run = RunDir.create(opts.out, stage="split", config=config, overwrite=opts.overwrite)
    with run.running():
        split.save(run.file("split.npz"))
    print(f"{split.describe()}: {len(split.forget_idx)} forget / {len(split.retain_idx)} retain training "
          f"images -> {run.path / 'split.npz'}")
    return 0
