"""`scarlab embed`: UMAP coordinates of runs' feature snapshots (embedding.parquet) for the dashboard."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("embed", help="UMAP embeddings of feature snapshots (embedding.parquet) for the dashboard",
                       description="Unlearning runs: every snapshot is transformed by ONE reducer fitted on the "
                                   "original model's features (kept in the original run as umap.joblib), so all "
                                   "frames and methods share axes; the retrained parent gets its own reducer and a "
                                   "single-step embedding of the same probe points. Original runs: fit the reducer.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (unlearn, retrained or original)")
    p.add_argument("--original", default=None, help="original run to use instead of the one in the manifest")
    p.add_argument("--force", action="store_true", help="refit reducers and rewrite existing embeddings")
    p.add_argument("--device", default="cpu", help="device for feature extraction (auto, cpu, cuda, ...)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..device import resolve_device
    from ..embed import run_embed

    device = resolve_device(args.device)
    for r in args.runs:
        out = run_embed(r, original=args.original, force=args.force, device=device)
        print(f"embedded {r}: {out}")
    return 0
