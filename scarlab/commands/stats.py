"""`scarlab stats`: (re)compute the per-class feature statistics of an original run."""
from __future__ import annotations

from . import _common


def register(sub) -> None:
    p = sub.add_parser("stats", help="recompute an original run's class statistics (stats.npz) for SCAR",
                       description="Features of every training image through the original model, Tukey "
                                   "transform, per-class mean and covariance. `scarlab train` already does this.")
    p.add_argument("run", help="run directory of the original model")
    p.add_argument("--delta", type=float, default=0.5, help="Tukey exponent")
    p.add_argument("--signed", action="store_true", help="sign-preserving Tukey for backbones with negative features")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_dataset
    from ..device import resolve_device
    from ..features import extract
    from ..models import load_checkpoint
    from ..runs import RunDir
    from ..stats import class_stats

    run_dir = RunDir(args.run).require_complete("original run")
    cfg = run_dir.config
    device = resolve_device(args.device)
    ds = load_dataset(cfg["dataset"], cfg.get("data_root"))
    model = load_checkpoint(run_dir.file("checkpoints/model.pt"), device,
                            expect={"num_classes": ds.num_classes, "in_channels": ds.shape[0]})
    feats, _ = extract(model, ds, ds.train.images, device)
    class_stats(feats, ds.train.labels, ds.num_classes, args.delta, args.signed,
                model_name=cfg.get("model", "the model")).save(run_dir.file("stats.npz"))
    print(f"class statistics (delta={args.delta}) written to {run_dir.file('stats.npz')}")
    return 0
