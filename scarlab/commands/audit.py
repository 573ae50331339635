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
                                       "evaluated against a split (scarlab evaluate ORIG --split S --out DIR). "
                                       "--mode offline: only the K retrained shadows (shared by every run of the "
                                       "split), offline LiRA and RMIA of the run's own model, forget vs control "
                                       "(audit_offline.json, audit_offline.parquet); --mode auto: online when the "
                                       "run's online shadows exist, else offline.")
    p.set_defaults(func=run)


def _interval(m: dict, key: str, digits: int = 3) -> str:
    """value [low, high]; a saturated statistic as its one-sided bound; an unresolvable TPR says what K it needs."""
    from ..metrics.ulira import one_sided  # numpy and scipy: loaded when an audit prints, not for --help

    v, lo, hi = m.get(key), m.get(f"{key}_low"), m.get(f"{key}_high")
    if "eps" in key and "competition" not in key and m.get("ulira/eps_ceiling") == 0:
        return f"not measurable with K={m.get('ulira/k')}: the estimate's ceiling is 0 (K ≥ 6 needed)"
    ceiling = m.get("ulira/eps_ceiling")
    if key in ("ulira/eps_mean", "ulira/eps_median") and v is not None and ceiling and v >= ceiling - 1e-9:
        return f"{v:.{digits}f}: at its ceiling for K={m.get('ulira/k')} (saturated: more K could show more)"
    if v is None or v != v:
        need = m.get(f"{key}_k_needed")
        return f"not resolvable with K={m.get('ulira/k')} (needs K ≥ {need:.0f})" if need is not None else "n/a"
    if m.get(f"{key}_masked"):
        return f"{v:.{digits}f}: not measurable, the control is already at 1 (the models differ on every example)"
    if m.get(f"{key}_saturated"):
        side, bound = one_sided(v, lo, hi)
        return f"{v:.{digits}f}: every shadow pair agrees, so {side} {bound:.{digits}f} (one-sided)"
    bounds = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
    return f"{v:.{digits}f}{bounds}"


def print_audit(doc: dict) -> None:
    """The main numbers of one audit (audit.json's contents): model-level on the forget examples, the same on the
    control examples, and the membership signal (forget − control)."""
    m, sh = doc["metrics"], doc["shadows"]
    level = round(100 * (1 - doc["alpha"]))
    print(f"audited {doc['run']} ({doc['label']}, {doc['kind']}) ONLINE: K={sh['k']} shadows in {sh['folder']} "
          f"({len(sh['built'])} made, {sh['reused']} reused), {doc['time']['audit_s']:.1f}s")
    ctl = doc.get("control", {})
    print(f"  {doc['populations']['a']} vs {doc['populations']['b']}, {doc['n_examples']} forget examples, "
          f"{ctl.get('n_examples', '?')} control examples ({ctl.get('what', '?')}), {level} % intervals")
    rows = [("model-level, forget examples:", ""),
            ("  U-LiRA AUC", _interval(m, "ulira/auc")),
            ("  TPR @ 1 % FPR", _interval(m, "ulira/tpr@0.01")),
            ("  TPR @ 0.1 % FPR", _interval(m, "ulira/tpr@0.001")),
            ("  ε mean (CP estimate)", _interval(m, "ulira/eps_mean")),
            ("  ε median (CP estimate)", _interval(m, "ulira/eps_median")),
            ("  ε ceiling at this K", f"{m['ulira/eps_ceiling']:.3f}  (δ = {doc['delta']:g}; chance "
                                      f"{m.get('ulira/eps_chance', float('nan')):.3f})"),
            ("model-level, control examples:", ""),
            ("  U-LiRA AUC", _interval(m, "ulira/control/auc")),
            ("  TPR @ 1 % FPR", _interval(m, "ulira/control/tpr@0.01")),
            ("membership signal (forget − control; none: 0):", ""),
            ("  AUC", _interval(m, "ulira/membership/auc")),
            ("  TPR @ 1 % FPR", _interval(m, "ulira/membership/tpr@0.01")),
            ("  ε mean", _interval(m, "ulira/membership/eps_mean")),
            ("  members @ 1 %", f"{m.get('ulira/member@0.01', float('nan')):.3f} of the forget examples above the "
                                "control's 99th percentile (≈ 0.01 without membership)"),
            ("NeurIPS 2023 competition's scoring (same shadows):", ""),
            ("  forget score F", f"{m.get('competition/F', float('nan')):.3f} (control "
                                 f"{m.get('competition/F_control', float('nan')):.3f}; identical populations at this "
                                 f"K read {m.get('competition/F_chance', float('nan')):.3f}, not 1)"),
            ("  ε mean", f"{m.get('competition/eps_mean', float('nan')):.3f} ({m.get('competition/eps_capped', 0):.0%} "
                         f"at the cap of 50 = perfectly separated; the largest finite ε {m.get('ulira/k')} models "
                         f"can show: {m.get('competition/eps_max_finite', float('nan')):.2f})"),
            ("  final score", f"{m.get('competition/score', float('nan')):.3f} (F · retain-acc ratio · test-acc "
                              "ratio)")]
    for name, text in rows:
        print(f"  {name:32s} {text}" if text else f"  {name}")


def _offline_value(m: dict, key: str) -> str:
    v, lo, hi = m.get(key), m.get(f"{key}_low"), m.get(f"{key}_high")
    if v is None or v != v:
        return "not resolvable (fewer than 100 control examples)"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def print_offline(doc: dict) -> None:
    """The main numbers of one offline audit (audit_offline.json's contents)."""
    m, sh, r = doc["metrics"], doc["shadows"], doc["rmia"]
    print(f"audited {doc['run']} ({doc['label']}, {doc['kind']}) OFFLINE: the model itself against K={doc['k']} "
          f"retrained shadows in {sh['folder']} ({len(sh['built'])} made, {sh['reused']} reused), "
          f"{doc['time']['audit_s']:.1f}s")
    print(f"  {doc['n_examples']} forget examples (members) vs {doc['control']['n_examples']} control examples "
          f"({doc['control']['what']}); RMIA a = {r['a']:g} ({r['a_source']}), {r['n_population']} population "
          f"images, {round(100 * (1 - doc['alpha']))} % intervals")
    for attack, name in (("lira", "offline LiRA"), ("rmia", "offline RMIA")):
        k = f"ulira/offline/{attack}"
        print(f"  {name}: membership of this model (forget vs control; none: 0.5, 0.01)")
        print(f"    {'AUC forget vs control':32s} {_offline_value(m, f'{k}/auc')}")
        print(f"    {'TPR @ 1 % FPR (control)':32s} {_offline_value(m, f'{k}/tpr@0.01')}")
        print(f"    {'flagged @ 1 %, forget / control':32s} {m[f'{k}/forget/flagged@0.01']:.3f} / "
              f"{m[f'{k}/control/flagged@0.01']:.3f}  (model-level: ≈ 0.01 when like a retrained model)")


def run(args) -> int:
    from ..audit import audit
    from ..errors import ScarlabError

    cfg, _ = _common.options(args)
    _common.require_runs(cfg.runs, "audit RUN [RUN ...] --shadows K")
    failed = 0
    for path in cfg.runs:
        try:
            doc = audit(path, cfg.shadows, mode=cfg.mode, seed=cfg.seed, shadow_dir=cfg.shadow_dir, delta=cfg.delta,
                        alpha=cfg.alpha, device=cfg.device, progress=not cfg.quiet, jobs=cfg.jobs, rmia_a=cfg.rmia_a,
                        population=cfg.population)
        except ScarlabError as exc:
            if len(cfg.runs) == 1:
                raise
            print(f"scarlab: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        (print_offline if doc["mode"] == "offline" else print_audit)(doc)
    return 2 if failed else 0
