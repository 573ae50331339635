"""`scarlab audit`: per-example privacy audit (U-LiRA) of runs against K shadow models each."""
from __future__ import annotations

import sys

from ..config import AuditConfig
from . import _common


def register(sub) -> None:
    p = _common.add_parser(sub, "audit", AuditConfig, "per-example privacy audit (U-LiRA) against shadow models",
                           positional=("runs",),
                           description="Make (or reuse) K shadow originals, their K retrained oracles on the run's "
                                       "split and K models unlearned by the run's method, next to the run "
                                       "(shadows__<fingerprint>/); score every forget example with the U-LiRA "
                                       "likelihood ratio; write audit.json, audit.parquet (and audit_steps.csv "
                                       "for runs with snapshots) into each run. Runs: unlearn runs, retrained "
                                       "runs (their K shadows are split in halves: K ≥ 6), or an original "
                                       "evaluated against a split (scarlab evaluate ORIG --split S --out DIR).")
    p.set_defaults(func=run)


def _interval(m: dict, key: str, digits: int = 3) -> str:
    lo, hi = m.get(f"{key}_low"), m.get(f"{key}_high")
    v = m.get(key)
    if v is None:
        return "n/a"
    bounds = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
    return f"{v:.{digits}f}{bounds}"


def print_audit(doc: dict) -> None:
    """The main numbers of one audit (audit.json's contents)."""
    m, sh = doc["metrics"], doc["shadows"]
    level = round(100 * (1 - doc["alpha"]))
    print(f"audited {doc['run']} ({doc['label']}, {doc['kind']}): K={sh['k']} shadows in {sh['folder']} "
          f"({len(sh['built'])} made, {sh['reused']} reused), {doc['time']['audit_s']:.1f}s")
    print(f"  {doc['populations']['a']} vs {doc['populations']['b']}, {doc['n_examples']} forget examples, "
          f"{level} % intervals")
    rows = [("U-LiRA AUC", _interval(m, "ulira/auc")),
            ("TPR @ 1 % FPR", _interval(m, "ulira/tpr@0.01")),
            ("TPR @ 0.1 % FPR", _interval(m, "ulira/tpr@0.001")),
            ("balanced accuracy", _interval(m, "ulira/bacc")),
            ("ε mean", _interval(m, "ulira/eps_mean")),
            ("ε median", _interval(m, "ulira/eps_median")),
            ("ε ceiling at this K", f"{m['ulira/eps_ceiling']:.3f}  (δ = {doc['delta']:g})"),
            ("this model flagged @ 1 % FPR", f"{m['ulira/target_flagged@0.01']:.3f} of the forget examples "
                                             "(≈ 0.01 for a model like the retrained ones)")]
    for name, text in rows:
        print(f"  {name:30s} {text}")


def run(args) -> int:
    from ..audit import audit_run
    from ..errors import ScarlabError

    cfg, _ = _common.options(args)
    if not cfg.runs:
        raise ScarlabError("give at least one run directory: scarlab audit RUN [RUN ...] --shadows K")
    failed = 0
    for path in cfg.runs:
        try:
            doc = audit_run(path, cfg.shadows, seed=cfg.seed, shadow_dir=cfg.shadow_dir, delta=cfg.delta,
                            alpha=cfg.alpha, device=cfg.device, progress=not cfg.quiet, jobs=cfg.jobs)
        except ScarlabError as exc:
            if len(cfg.runs) == 1:
                raise
            print(f"scarlab: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print_audit(doc)
    return 2 if failed else 0
