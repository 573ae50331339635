"""`scarlab embed`: UMAP coordinates of runs' feature snapshots (embedding.parquet) for the dashboard."""
from __future__ import annotations

from ..config import EmbedConfig
from . import _common


def register(sub) -> None:
    p = _common.add_parser(sub, "embed", EmbedConfig, "UMAP embeddings of feature snapshots (embedding.parquet)",
                           positional=("runs",),
                           description="Unlearning runs: every snapshot is transformed by ONE reducer fitted on the "
                                       "original model's features, so all frames and methods share axes; the "
                                       "retrained parent gets its own reducer and a single-step embedding of the "
                                       "same probe points. Original runs: fit the reducer.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..device import resolve_device
    from ..embed import run_embed

    cfg, _ = _common.options(args)
    _common.require_runs(cfg.runs, "embed RUN [RUN ...]")
    device = resolve_device(cfg.device)
    for r in cfg.runs:
        out = run_embed(r, original=cfg.original, force=cfg.force, device=device, progress=not cfg.quiet)
        print(f"embedded {r}: {out}")
    return 0
