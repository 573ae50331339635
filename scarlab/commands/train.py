"""`scarlab train`: the original model, or the retrained oracle when forget options are given."""
from __future__ import annotations

from ..config import TrainConfig
from . import _common


def register(sub) -> None:
    p = sub.add_parser("train", help="train the original model or the retrained oracle",
                       description="Train the original model on all training data, or, with --retrained "
                                   "(plus --forget-classes / --forget-size / --split), the oracle on the retain set.")
    _common.add_data(p)
    p.add_argument("--model", default=None, help="registered model (default: tinycnn for digits, else smallcnn)")
    p.add_argument("--retrained", action="store_true", help="train the retrained oracle (forget data removed)")
    _common.add_split(p)
    p.add_argument("--split", default=None, help="retrained: reuse this split.npz or run directory's split")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--optimizer", default=None, choices=["sgd", "adam"])
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    _common.add_run(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ScarlabError
    from ..train import run_train

    if not args.retrained and (args.forget_classes or args.forget_size is not None or args.split):
        # an original model silently trained on all data would look like an oracle: say so instead
        raise ScarlabError("--forget-classes / --forget-size / --split only apply to the retrained oracle: "
                           "add --retrained, or drop them to train the original model")
    cfg = TrainConfig(dataset=args.dataset, data_root=args.data_root, model=args.model,
                      role="retrained" if args.retrained else "original", scenario=args.scenario,
                      forget_classes=_common.forget_classes(args.forget_classes), forget_size=args.forget_size,
                      split=args.split, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      optimizer=args.optimizer, augment=not args.no_augment, device=args.device)
    run_dir = run_train(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"{cfg.role} model trained: {run_dir.path}")
    _common.print_metrics(run_dir.metrics)
    return 0
