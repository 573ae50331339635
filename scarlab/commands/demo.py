"""`scarlab demo`: the whole lab on digits in one command — pipeline, evaluation, embeddings, dashboard."""
from __future__ import annotations

from dataclasses import dataclass

from . import _common, dashboard

DEFAULT_OUT = "runs/demo"
DEMO_METHODS = ["scar", "scar_self", "finetune", "negative_gradient"]  # SCAR, SCAR-self and two baselines


@dataclass
class DemoConfig(dashboard.ServeOptions):
    """Train the original and the retrained oracle on scikit-learn's digits, forget class 0 with SCAR, SCAR-self and
    two baselines, evaluate everything, compute the embeddings, then serve the dashboard (on 127.0.0.1 unless
    --address or $STREAMLIT_SERVER_ADDRESS says otherwise). A second run reuses every completed stage."""

    out: str = DEFAULT_OUT
    """pipeline root."""
    serve: bool = True
    """serve the dashboard after the pipeline (--no-serve: run the pipeline only)."""
    jobs: int = 2
    """stages executed at once."""
    device: str = "cpu"
    """cpu, auto, cuda, cuda:N or mps."""
    quiet: bool = False
    """no progress display."""


def register(sub) -> None:
    p = _common.add_parser(sub, "demo", DemoConfig, "run the pipeline on digits (original, retrained, SCAR, "
                           "SCAR-self, baselines) and open the dashboard")
    p.set_defaults(func=run)


def demo_config(out: str = DEFAULT_OUT, jobs: int = 2, device: str = "cpu"):
    from ..pipeline import PipelineConfig

    return PipelineConfig(dataset="digits", scenario="CR", forget_classes=[[0]], methods=DEMO_METHODS, seeds=[0],
                          embed=True, out=out, jobs=jobs, device=device)


def run(args) -> int:
    from ..pipeline import run_pipeline

    opts, _ = _common.options(args)
    address, port = dashboard.server_settings(opts.address, opts.port)  # a bad port fails before the pipeline
    cfg = demo_config(opts.out, opts.jobs, opts.device)
    print(f"demo: digits, forget class 0, methods {', '.join(cfg.methods)} -> {opts.out}")
    result = run_pipeline(cfg, progress=not opts.quiet)
    _common.report(result, "demo pipeline", ("method", "acc/forget_test", "acc/retain_test", "mia/svc/acc", "mia/svc/chance", "aus",
                                              "time/unlearn_s"), digits=3)
    if not opts.serve:
        return 0 if result.ok else 1
    return dashboard.serve(opts.out, port, address, block=True) or 0  # prints the address it listens on
