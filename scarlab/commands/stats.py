"""`scarlab stats`: (re)compute the per-class feature statistics of an original run."""
from __future__ import annotations

from ..config import StatsConfig
from . import _common


def register(sub) -> None:
    p = _common.add_parser(sub, "stats", StatsConfig, "recompute an original run's class statistics (stats.npz)",
                           positional=("run",),
                           description="Features of every training image through the original model, Tukey "
                                       "transform, per-class mean and covariance. `scarlab train` already does this.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_dataset
    from ..device import resolve_device
    from ..features import extract
    from ..models import load_checkpoint
    from ..runs import ORIGINAL, RunDir
    from ..stats import class_stats

    cfg, _ = _common.options(args)
    _common.require_runs(cfg.run, "stats RUN", "the original run directory")
    run_dir = RunDir(cfg.run).require_complete("original run", ORIGINAL)
    rcfg = run_dir.config
    device = resolve_device(cfg.device)
    ds = load_dataset(rcfg["dataset"], rcfg.get("data_root"))
    model = load_checkpoint(run_dir.file("checkpoints/model.pt"), device,
                            expect={"num_classes": ds.num_classes, "in_channels": ds.shape[0]})
    feats, _ = extract(model, ds, ds.train.images, device)
    class_stats(feats, ds.train.labels, ds.num_classes, cfg.delta, cfg.signed,
                model_name=rcfg.get("model", "the model")).save(run_dir.file("stats.npz"))
    print(f"class statistics (delta={cfg.delta}) written to {run_dir.file('stats.npz')}")
    return 0
