"""`scarlab demo`: the whole lab on digits in one command — pipeline, evaluation, embeddings, dashboard."""
from __future__ import annotations

from . import _common, dashboard

DEFAULT_OUT = "runs/demo"
DEMO_METHODS = ["scar", "scar_self", "finetune", "negative_gradient"]  # SCAR, SCAR-self and two baselines


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the pipeline on digits (original, retrained, SCAR, SCAR-self, baselines) "
                                    "and open the dashboard",
                       description="Train the original and the retrained oracle on scikit-learn's digits, forget "
                                   "class 0 with SCAR, SCAR-self and two baselines, evaluate everything, compute "
                                   "the embeddings, then serve the dashboard (on 127.0.0.1 unless --address or "
                                   "$STREAMLIT_SERVER_ADDRESS says otherwise). A second run reuses every completed "
                                   "stage.")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"pipeline root (default {DEFAULT_OUT})")
    dashboard.add_server_options(p)
    p.add_argument("--no-serve", action="store_true", help="run the pipeline only; do not start the dashboard")
    p.add_argument("--jobs", type=int, default=2, help="stages executed at once (default 2)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N or mps")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def demo_config(out: str = DEFAULT_OUT, jobs: int = 2, device: str = "cpu"):
    from ..pipeline import PipelineConfig

    return PipelineConfig(dataset="digits", scenario="CR", forget_classes=[[0]], methods=DEMO_METHODS, seeds=[0],
                          embed=True, out=out, jobs=jobs, device=device)


def run(args) -> int:
    from ..pipeline import run_pipeline

    address, port = dashboard.server_settings(args.address, args.port)  # a bad port fails before the pipeline
    cfg = demo_config(args.out, args.jobs, args.device)
    print(f"demo: digits, forget class 0, methods {', '.join(cfg.methods)} -> {args.out}")
    result = run_pipeline(cfg, progress=not args.quiet)
    _common.report(result, "demo pipeline", ("method", "acc/forget_test", "acc/retain_test", "mia/svc/acc", "mia/svc/chance", "aus",
                                              "time/unlearn_s"), digits=3)
    if args.no_serve:
        return 0 if result.ok else 1
    return dashboard.serve(args.out, port, address, block=True) or 0  # prints the address it listens on
