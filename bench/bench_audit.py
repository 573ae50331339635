"""The privacy audit (U-LiRA, scarlab.audit) of original, retrained and methods on one split: forget, control and
the membership signal per run, and the cold time.

    python bench/bench_audit.py --shadows 16 --out bench/out/audit                 # issue 17's measurement
    python bench/bench_audit.py --shadows 8 --out bench/out/audit_digits_cr8       # digits CR, K = 8
    python bench/bench_audit.py --scenario HR --forget-size 150 --shadows 8 --out bench/out/audit_digits_hr8
    python bench/bench_audit.py --data cifar10-mini --shadows 8 --jobs 2 --out bench/out/audit_cifar
    python bench/bench_audit.py --shadows 4 --methods scar --out /tmp/audit_smoke  # a quick smoke run
    python bench/bench_audit.py --data cifar10-mini --shadows 8 --jobs 2 --mode offline \
        --recipe fast:bf16=true,epochs=18 --out bench/out/audit_cifar_cr8_fastbf16   # issue 27: shadows, new recipe
    python bench/bench_audit.py --shadows 8 --methods scar,finetune,negative_gradient --mode both \
        --out bench/out/audit_offline_digits_cr8                                   # issue 24: offline vs online

--mode online (default): the U-LiRA audit as above. --mode offline: scarlab.audit's offline LiRA and RMIA
of each run's model against the K retrained shadows only (the first audit makes them, every later one reuses them;
OUT/offline.md). --mode both: online first, then offline over the same (reused) retrained shadows, and OUT/offline.md
compares the two per method (AUC, ranking and Kendall τ between them); OUT/both.md holds both tables.

--data digits: tinycnn at the digits defaults. --data cifar10-mini: $SCARLAB_SHARED_DATA/cifar10-mini (smallcnn, the
data set's default 30 training epochs; --epochs E for a quick timing run), surrogate $SCARLAB_SHARED_DATA/ood-mini.
--jobs J: shadow members made in J worker processes (scarlab.audit.shadow_population), torch's threads shared out
among them.

Makes the audited runs first (not timed): an original tinycnn at the digits defaults (seed 0), the retrained
oracle for --forget-class, the original evaluated against that split, and one unlearn run per method at its
default hyper-parameters. Then removes any shadow folder next to them (cold start) and audits, in this order,
the original, the retrained run and each method with ``scarlab.audit.audit_run`` in this process, one member at a
time. The first audit makes the K shadow originals and K retrained oracles, which every later audit of the split
reuses; each method's audit makes its K unlearned models. Writes OUT/audit.json (per run: the numbers, seconds
per population) and OUT/audit.md (a table), and prints the total and the machine's load average before and after.

Threads: SCARLAB_THREADS (default: torch's). On a 2-core machine that others share, use SCARLAB_THREADS=1: while
other processes held about two cores, 4 digits originals took 17 s with one torch thread and 114-140 s with two
(with an idle machine two threads were 1.4x faster than one).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the tests: a shared 2-core machine

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scarlab.audit import audit_run  # noqa: E402
from scarlab.audit import audit_offline  # noqa: E402
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.metrics.ulira import one_sided  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402

METHODS = ("scar", "scar_self", "finetune", "negative_gradient")
METHODS_HR = ("scar", "finetune", "negative_gradient")  # scar_self is defined for class removal only
SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA = {"digits": ("digits", "auto"),
        "cifar10-mini": (f"imagefolder:{SHARED / 'cifar10-mini'}", f"imagefolder:{SHARED / 'ood-mini'}")}
PAPER = ("aus", "mia/svc/acc", "mia/svc/chance")  # the paper's numbers, from each run's evaluation


def run_paths(out: Path, methods, forget_class: int, scenario: str, forget_size: int) -> dict[str, Path]:
    """Where make_runs puts the audited runs (by name: original, retrained, original_eval and each method)."""
    tag = f"c{forget_class}" if scenario == "CR" else f"hr{forget_size}"
    return {"original": out / "original", "retrained": out / f"retrained_{tag}",
            "original_eval": out / f"original_eval_{tag}", **{m: out / f"{m}_{tag}" for m in methods}}


def make_runs(out: Path, methods, forget_class: int, device: str, data: str = "digits", scenario: str = "CR",
              forget_size: int = 150, epochs: int | None = None, recipe: str | None = None) -> dict[str, Path]:
    """The audited runs, reused when complete (and, past the original and the oracle, made from those two): CR
    forgets ``forget_class``, HR a random ``forget_size`` images; the original and the oracle trained with ``recipe``
    (a bench_recipe spec, e.g. ``fast:bf16=true,epochs=18``; None: the data set's default), which the audit's shadows
    copy."""
    from bench_recipe import made_from, options, trained  # noqa: PLC0415 - a sibling script (bench/ is its folder)

    from scarlab.evaluate import evaluate_run
    from scarlab.unlearn.stage import run_unlearn

    dataset, surrogate = DATA[data]
    forget = ({"forget_classes": [forget_class]} if scenario == "CR" else
              {"scenario": "HR", "forget_size": forget_size})
    runs = run_paths(out, [], forget_class, scenario, forget_size)
    train = {"epochs": epochs, **(options(recipe) if recipe else {})}
    # reused only if trained with these options (a run another recipe made is trained again)
    trained(TrainConfig(dataset=dataset, device=device, **train), runs["original"])
    trained(TrainConfig(dataset=dataset, role="retrained", device=device, **train, **forget), runs["retrained"])

    def current(path: Path) -> bool:  # complete, and made from these two runs (not from ones trained before them)
        return made_from(path, runs["original"], runs["retrained"])

    if not current(runs["original_eval"]):
        evaluate_run(runs["original"], retrained=runs["retrained"], split=runs["retrained"],
                     out=runs["original_eval"], overwrite=True, mia_repeats=1)
    for m in methods:
        runs[m] = run_paths(out, [m], forget_class, scenario, forget_size)[m]
        if not current(runs[m]):
            run_unlearn(UnlearnConfig(original=str(runs["original"]), retrained=str(runs["retrained"]),
                                      split=str(runs["retrained"]), method=m, device=device, surrogate=surrogate),
                        runs[m],
                        overwrite=True, progress=False)
    for name in ["retrained", *methods]:  # the paper's attack and AUS beside the audit (evaluated in place)
        if "aus" not in RunDir(runs[name]).metrics:
            evaluate_run(runs[name], original=runs["original"], retrained=runs["retrained"])
    return runs


def data_label(args) -> str:
    """The data set as the tables name it, with the audited original's recipe when one was given."""
    return args.data + (f" (recipe {args.recipe})" if args.recipe else "")


def _measured(r: dict, key: str) -> bool:
    """A number (not None, not NaN) that is not marked not measurable (``_masked``: the control already at 1)."""
    v = r.get(key)
    return isinstance(v, (int, float)) and v == v and not r.get(f"{key}_masked")


def a_or_line(runs: dict, methods: list) -> str:
    """CR: AUS with a_or = the original's retain-test accuracy (the authors', what evaluate writes) against a_or =
    its full test accuracy (scarlab before issue 24), per method."""
    from scarlab.metrics.aus import aus_cr

    full = RunDir(runs["original"]).metrics["acc/test"]
    cells = []
    for m in ["retrained", *methods]:
        met = RunDir(runs[m]).metrics
        old = aus_cr(full, met["acc/retain_test"], met["acc/forget_test"])
        cells.append(f"{m} {met['aus']:.4f} (full-test a_or: {old:.4f}, Δ {met['aus'] - old:+.4f})")
    a_or = RunDir(runs["retrained"]).metrics["aus/a_or"]
    return (f"AUS's a_or: the original's retain-test accuracy {a_or:.4f} (used) vs its full test accuracy {full:.4f}; "
            "AUS per run: " + "; ".join(cells) + ".")


def _fmt(m: dict, key: str) -> str:
    """value [low, high]; a one-sided bound where every shadow pair agrees; what K cannot resolve or measure."""
    if m.get(key + "_masked"):
        return "n/m (control at 1)"
    v = m.get(key)
    if v is None or v != v:
        return "n/r" if m.get(key + "_k_needed") else "–"
    if m.get(key + "_saturated"):
        side, bound = one_sided(v, m[key + "_low"], m[key + "_high"])
        return f"{v:.3f} ({side} {bound:.3f})"
    return f"{v:.3f} [{m[key + '_low']:.3f}, {m[key + '_high']:.3f}]"


def online_md(info: dict, args, runs: dict, methods: list) -> str:
    """audit.md from audit.json's contents (a table per run, rankings, AUS's a_or in CR)."""
    split = f"CR class {args.forget_class}" if args.scenario == "CR" else f"HR {args.forget_size} random images"
    lines = [f"{info['data']}, {split}, K = {info['shadows']}, {info['threads']} torch thread(s), "
             f"shadow members in {info['jobs']} process(es), "
             f"cold: {info['cold']}; total audit time {info['audit_total_s']:.1f} s (setup of the audited runs "
             f"{info['setup_s']:.1f} s, not counted); {info['load']} ({os.cpu_count()} cores)", "",
             "Forget = the forget examples (model-level distinguishability); control = examples no model trained on "
             "(CR: the forget class's test images; HR: test images); membership = forget − control (none: 0). "
             "n/r: not resolvable with this K; n/m: not measurable (control at 1); (≥ x): one-sided bound.", "",
             "| run | seconds | shadows made | AUS | SVC MIA acc. (chance) | AUC forget | AUC control | AUC membership "
             "| TPR@1 % forget | TPR@1 % control | TPR@1 % membership | TPR@0.1 % forget | ε mean forget (CP) "
             "| ε ceiling | member @ 1 % | competition ε mean (share at the cap 50; largest finite at K) "
             "| competition F forget / control (chance) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in info['rows']:
        svc = (f"{r['mia/svc/acc']:.3f} ({r['mia/svc/chance']:.2f})" if r.get("mia/svc/acc") is not None else "–")
        aus = f"{r['aus']:.3f}" if r.get("aus") is not None else "–"
        lines.append(f"| {r['label']} | {r['wall_s']:.1f} | {r['built']} | {aus} | {svc} | {_fmt(r, 'ulira/auc')} | "
                     f"{_fmt(r, 'ulira/control/auc')} | {_fmt(r, 'ulira/membership/auc')} | "
                     f"{_fmt(r, 'ulira/tpr@0.01')} | {_fmt(r, 'ulira/control/tpr@0.01')} | "
                     f"{_fmt(r, 'ulira/membership/tpr@0.01')} | {_fmt(r, 'ulira/tpr@0.001')} | "
                     f"{_fmt(r, 'ulira/eps_mean')} | {r['ulira/eps_ceiling']:.3f} | "
                     f"{r.get('ulira/member@0.01', float('nan')):.3f} | "
                     f"{r.get('competition/eps_mean', float('nan')):.2f} "
                     f"({r.get('competition/eps_capped', float('nan')):.0%}; "
                     f"{r.get('competition/eps_max_finite', float('nan')):.2f}) | "
                     f"{r.get('competition/F', float('nan')):.3f} / {r.get('competition/F_control', float('nan')):.3f} "
                     f"({r.get('competition/F_chance', float('nan')):.3f}) |")
    ranked = [r for r in info['rows'] if r["run"] in methods]
    if len(ranked) > 1:
        by_aus = sorted(ranked, key=lambda r: -(r.get("aus") or float("-inf")))
        by_auc = sorted(ranked, key=lambda r: r["ulira/auc"])
        measurable = [r for r in ranked if _measured(r, "ulira/membership/auc")]
        by_mem = sorted(measurable, key=lambda r: r["ulira/membership/auc"])
        left_out = [r["label"] for r in ranked if r not in measurable]
        lines += ["", "Ranking of the methods (best first): by AUS " + " > ".join(r["label"] for r in by_aus)
                  + "; by model-level U-LiRA AUC (closest to the retrained oracle's 0.5 first) "
                  + " > ".join(r["label"] for r in by_auc) + "; by membership signal (smallest first) "
                  + (" < ".join(r["label"] for r in by_mem) or "none measurable")
                  + (f" ({', '.join(left_out)}: not measurable, control at 1)" if left_out else "") + "."]
    if args.scenario == "CR":
        lines += ["", a_or_line(runs, methods)]
    return "\n".join(lines) + "\n"


def render(out: Path, args, methods: list) -> None:
    """audit.md, offline.md and both.md again from the JSON files a run of this bench left in OUT."""
    runs = run_paths(out, methods, args.forget_class, args.scenario, args.forget_size)
    if (out / "audit.json").is_file():
        (out / "audit.md").write_text(online_md(json.loads((out / "audit.json").read_text()), args, runs, methods))
    if (out / "offline.json").is_file():
        (out / "offline.md").write_text(offline_md(json.loads((out / "offline.json").read_text()), methods))
    if (out / "audit.md").is_file() and (out / "offline.md").is_file():
        write_both(out)


def write_both(out: Path) -> None:
    """both.md: the online and the offline table, one result block (bench/report.py)."""
    (out / "both.md").write_text("**Online (U-LiRA)**\n\n" + (out / "audit.md").read_text()
                                 + "\n**Offline (the run's own model against the retrained shadows)**\n\n"
                                 + (out / "offline.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/audit")
    ap.add_argument("--shadows", type=int, default=16, help="K")
    ap.add_argument("--methods", default=None, help="comma-separated methods to audit (default: "
                    f"{','.join(METHODS)}; HR: {','.join(METHODS_HR)})")
    ap.add_argument("--forget-class", type=int, default=0)
    ap.add_argument("--scenario", choices=("CR", "HR"), default="CR")
    ap.add_argument("--forget-size", type=int, default=150, help="HR: random forget images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", choices=sorted(DATA), default="digits")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes making shadow members")
    ap.add_argument("--reuse", action="store_true", help="keep existing shadow folders (a warm audit)")
    ap.add_argument("--mode", choices=("online", "offline", "both"), default="online")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the data set's)")
    ap.add_argument("--recipe", default=None, help="the audited original's training recipe, as bench_recipe.py "
                    "takes it: fast:bf16=true,epochs=18 (default: the data set's)")
    ap.add_argument("--render", action="store_true", help="only write OUT's tables again from its audit.json and "
                    "offline.json (no audit run)")
    args = ap.parse_args()
    if os.environ.get("SCARLAB_THREADS"):
        torch.set_num_threads(int(os.environ["SCARLAB_THREADS"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = [m for m in (args.methods or ",".join(METHODS if args.scenario == "CR" else METHODS_HR)).split(",") if m]
    if args.render:
        render(out, args, methods)
        return
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    runs = make_runs(out, methods, args.forget_class, args.device, args.data, args.scenario, args.forget_size,
                     args.epochs, args.recipe)
    setup_s = time.perf_counter() - t0
    if not args.reuse:
        for p in out.glob("shadows__*"):
            shutil.rmtree(p)

    if args.mode == "offline":  # offline_cold.md / offline_warm.md: kept when a later --mode both rewrites offline.md
        offline_rows(out, runs, methods, args, {}, load_before)
        shutil.copyfile(out / "offline.md", out / f"offline_{'warm' if args.reuse else 'cold'}.md")
        return
    rows, t_audit = [], time.perf_counter()
    for name in ["original_eval", "retrained", *methods]:
        t = time.perf_counter()
        doc = audit_run(runs[name], args.shadows, device=args.device, progress=False, jobs=args.jobs)
        wall = time.perf_counter() - t
        m = doc["metrics"]
        paper = RunDir(runs[name]).metrics
        row = {"run": name, "label": doc["label"], "k": doc["k"], "wall_s": round(wall, 1),
               "built": len(doc["shadows"]["built"]), "reused": doc["shadows"]["reused"],
               "time": doc["time"], **{k: v for k, v in m.items() if isinstance(v, (int, float))},
               **{k: paper.get(k) for k in PAPER}}
        rows.append(row)
        pops = ", ".join(f"{k.split('/')[1][:-2]} {v:.1f}s" for k, v in doc["time"].items()
                         if k.startswith("shadows/") and v > 0.5)
        print(f"{name:18s} {wall:6.1f}s  (built {row['built']:2d}, reused {row['reused']:2d}; {pops or 'all reused'}; "
              f"scores {doc['time']['scores_s']:.1f}s)  AUC {_fmt(m, 'ulira/auc')}  TPR@1% {m['ulira/tpr@0.01']:.3f}  "
              f"ε mean {m['ulira/eps_mean']:.3f}  flagged {m['ulira/target_flagged@0.01']:.3f}  control AUC "
              f"{_fmt(m, 'ulira/control/auc')}  membership {_fmt(m, 'ulira/membership/auc')}", flush=True)
    total = time.perf_counter() - t_audit
    load = f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    info = {"load": load, "data": data_label(args), "jobs": args.jobs, "shadows": args.shadows, "methods": methods,
            "forget_class": args.forget_class,
            "threads": torch.get_num_threads(), "setup_s": round(setup_s, 1), "audit_total_s": round(total, 1),
            "cold": not args.reuse, "rows": rows}
    (out / "audit.json").write_text(json.dumps(info, indent=2))
    (out / "audit.md").write_text(online_md(info, args, runs, methods))
    print(f"total audit time {total:.1f}s for {len(rows)} runs (K={args.shadows}); {load}; {out / 'audit.md'}")
    if args.mode == "both":  # both.md: the two tables, one result block (bench/report.py)
        offline_rows(out, runs, methods, args, {r["run"]: r for r in rows}, os.getloadavg())
        write_both(out)


def offline_md(doc: dict, methods: list) -> str:
    """offline.md from offline.json's contents (beside the online numbers where the rows carry them)."""
    head = ("| run | seconds | shadows made | offline LiRA AUC forget vs control | LiRA TPR @ 1 % FPR | LiRA flagged "
            "forget / control | offline RMIA AUC forget vs control (a) | RMIA TPR @ 1 % FPR | RMIA flagged forget / "
            "control | online AUC forget | online AUC control | online membership AUC |")
    lines = [f"{doc['data']}, K = {doc['shadows']} retrained shadows; offline = the run's own model, forget vs "
             "control; online = U-LiRA over K unlearned vs K retrained shadows", "",
             f"offline audits of {len(doc['rows'])} runs: {doc['total_s']:.1f} s in all, cold: {doc['cold']} (the "
             f"first makes the K retrained shadows); {doc['threads']} torch thread(s), shadow members in "
             f"{doc['jobs']} process(es); {doc['load']}", "", head, "|---" * (head.count("|") - 1) + "|"]
    for r in doc['rows']:
        def flag(att):
            key = f"ulira/offline/{att}"
            return f"{r[f'{key}/forget/flagged@0.01']:.3f} / {r[f'{key}/control/flagged@0.01']:.3f}"

        def tpr(att):  # NaN: fewer than 100 control examples
            return _fmt(r, f"ulira/offline/{att}/tpr@0.01") if _measured(r, f"ulira/offline/{att}/tpr@0.01") else \
                "n/r (< 100 control)"

        on = {k[7:]: v for k, v in r.items() if k.startswith("online:")}
        lines.append(f"| {r['label']} | {r['wall_s']:.1f} | {r['built']} | {_fmt(r, 'ulira/offline/lira/auc')} | "
                     f"{tpr('lira')} | {flag('lira')} | "
                     f"{_fmt(r, 'ulira/offline/rmia/auc')} ({r['a']:g}) | {tpr('rmia')} | "
                     f"{flag('rmia')} | "
                     f"{_fmt(on, 'ulira/auc') if on else '–'} | {_fmt(on, 'ulira/control/auc') if on else '–'} | "
                     f"{_fmt(on, 'ulira/membership/auc') if on else '–'} |")
    ranked = [r for r in doc['rows'] if r["run"] in methods]
    if len(ranked) > 1:
        order = {key: " < ".join(r["label"] for r in sorted(ranked, key=lambda r: r[key]))
                 for key in ("ulira/offline/lira/auc", "ulira/offline/rmia/auc", "online:ulira/auc",
                             "online:ulira/membership/auc") if all(_measured(r, key) for r in ranked)}
        lines += ["", "Ranking (smallest first): " + "; ".join(f"{k}: {v}" for k, v in order.items())]
        if any(k.startswith('online:') for r in ranked for k in r):
            lines += ["", "Ranking agreement, online vs offline, over the methods (Kendall τ; +1 the same order, "
                      "−1 reversed; rows not measured left out): " + "; ".join(_agreement(ranked))]
    return "\n".join(lines) + "\n"


def offline_rows(out: Path, runs: dict, methods: list, args, online: dict, load_before) -> None:
    """Offline audits of the original, the oracle and each method (retrained shadows made by the first, reused after),
    timed one by one; OUT/offline.json and OUT/offline.md, beside the online numbers when ``online`` has them."""
    rows, t_all = [], time.perf_counter()
    for name in ["original_eval", "retrained", *methods]:
        t = time.perf_counter()
        doc = audit_offline(runs[name], args.shadows, device=args.device, progress=False, jobs=args.jobs)
        wall = time.perf_counter() - t
        m = doc["metrics"]
        row = {"run": name, "label": doc["label"], "wall_s": round(wall, 1), "built": len(doc["shadows"]["built"]),
               "reused": doc["shadows"]["reused"], "a": doc["rmia"]["a"], "a_source": doc["rmia"]["a_source"],
               "time": doc["time"], **m, **{f"online:{k}": v for k, v in online.get(name, {}).items()
                                            if k.startswith("ulira/") and isinstance(v, (int, float))}}
        rows.append(row)
        print(f"offline {name:18s} {wall:6.1f}s (built {row['built']}, reused {row['reused']}, scores "
              f"{doc['time']['scores_s']:.1f}s)  LiRA AUC {_fmt(m, 'ulira/offline/lira/auc')}  RMIA AUC "
              f"{_fmt(m, 'ulira/offline/rmia/auc')} (a = {row['a']:g})", flush=True)
    total = time.perf_counter() - t_all
    load = f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores)"
    (out / "offline.json").write_text(json.dumps({"shadows": args.shadows, "data": data_label(args), "rows": rows,
                                                  "total_s": round(total, 1), "load": load, "jobs": args.jobs,
                                                  "threads": torch.get_num_threads(), "cold": not args.reuse},
                                                 indent=2, default=float))
    (out / "offline.md").write_text(offline_md(json.loads((out / "offline.json").read_text()), methods))
    print(f"offline audits: {total:.1f}s; {load}; {out / 'offline.md'}")


AGREEMENT = (("model-level", "online:ulira/auc", "ulira/offline/lira/forget/flagged@0.01"),
             ("model-level", "online:ulira/auc", "ulira/offline/rmia/forget/flagged@0.01"),
             ("membership", "online:ulira/membership/auc", "ulira/offline/lira/auc"),
             ("membership", "online:ulira/membership/auc", "ulira/offline/rmia/auc"))


def _agreement(ranked: list[dict]) -> list[str]:
    """Kendall τ between an online and an offline reading of the same question over the methods."""
    from scipy.stats import kendalltau

    out = []
    for what, on, off in AGREEMENT:
        pairs = [(r[on], r[off]) for r in ranked if _measured(r, on) and _measured(r, off)]
        tau = kendalltau(*zip(*pairs)).statistic if len(pairs) > 2 else float("nan")
        out.append(f"{what}: {on[7:]} vs {off} τ = {tau:.2f} over {len(pairs)} methods")
    return out


if __name__ == "__main__":
    main()
