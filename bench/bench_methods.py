"""Every registered unlearning method on cifar10-mini, CR class 0: forgetting, retained accuracy, MIA, AUS, time.

    python bench/bench_methods.py --out bench/out/methods                       # all methods, 30-epoch models
    python bench/bench_methods.py --epochs-original 2 --methods scar,finetune   # a quick smoke run

Trains an original smallcnn on cifar10-mini (5,000 images) and the retrained oracle for the forget class
(4,500 images) once (``--reuse`` keeps them between invocations), runs each method with its default
hyper-parameters (``--method-params`` overrides them) and ood-mini as the surrogate set for the methods
that read one, evaluates every run with ``scarlab.evaluate.evaluate_run`` when that module exists (MIA,
AUS; otherwise AUS from ``scarlab.metrics.aus_cr`` and no MIA) and writes OUT/methods.md (a markdown table)
and OUT/methods.json. Data paths come from SCARLAB_SHARED_DATA (default: ../shared/data next to the repo).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.data import load_dataset  # noqa: E402
from scarlab.errors import ScarlabError  # noqa: E402
from scarlab.models import load_checkpoint  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402
from scarlab.train import load_split, model_accuracies, run_train  # noqa: E402
from scarlab.unlearn import METHODS  # noqa: E402
from scarlab.unlearn.base import requires_retain  # noqa: E402
from scarlab.unlearn.stage import run_unlearn  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _fmt(v, digits=3) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/methods")
    ap.add_argument("--epochs-original", type=int, default=30, help="training epochs of original and retrained")
    ap.add_argument("--methods", default="all", help="comma-separated registered methods, or 'all'")
    ap.add_argument("--method-params", default="{}",
                    help='JSON overrides per method, e.g. \'{"scrub": {"epochs": 3}}\'')
    ap.add_argument("--model", default="smallcnn")
    ap.add_argument("--forget-class", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto, ...")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--mia-repeats", type=int, default=5, help="repetitions of the paper's SVC attack")
    ap.add_argument("--reuse", action="store_true", help="reuse completed original/retrained runs in OUT")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; registered: {', '.join(METHODS)}")
    overrides = json.loads(args.method_params)
    out = Path(args.out)
    dataset = f"imagefolder:{SHARED / 'cifar10-mini'}"
    surrogate = f"imagefolder:{SHARED / 'ood-mini'}"
    fc = [args.forget_class]
    evaluate = _optional("scarlab.evaluate")
    aus_cr = getattr(_optional("scarlab.metrics"), "aus_cr", None)

    def train(role: str) -> RunDir:
        path = out / role
        if args.reuse and (path / "manifest.json").exists() and RunDir(path).status == "complete":
            return RunDir(path)
        cfg = TrainConfig(dataset=dataset, model=args.model, role=role, forget_classes=fc if role == "retrained" else [],
                          epochs=args.epochs_original, seed=args.seed, device=args.device)
        t0 = time.perf_counter()
        run = run_train(cfg, path, overwrite=True, progress=False)
        print(f"trained {role} in {time.perf_counter() - t0:.0f} s: test acc {run.metrics['acc/test']:.3f}", flush=True)
        return run

    original, retrained = train("original"), train("retrained")
    a_or = original.metrics["acc/test"]

    rows = []

    def add_row(name: str, run: RunDir, metrics: dict, seconds: float | None, steps=None, evaluated: dict | None = None):
        ev = evaluated or {}
        aus = ev.get("aus")
        if aus is None and aus_cr is not None:
            aus = float(aus_cr(a_or, metrics["acc/retain_test"], metrics["acc/forget_test"]))
        rows.append({"method": name, "run": str(run.path), "forget_test": metrics["acc/forget_test"],
                     "retain_test": metrics["acc/retain_test"], "forget_train": metrics.get("acc/forget_train"),
                     "mia_svc_acc": ev.get("mia/svc/acc"), "mia_loss_lr_acc": ev.get("mia/loss_lr/acc"),
                     "aus": aus, "time_s": seconds, "steps": steps})
        r = rows[-1]
        print(f"{name:18s} forget-test {_fmt(r['forget_test'])} retain-test {_fmt(r['retain_test'])} "
              f"MIA {_fmt(r['mia_svc_acc'])} AUS {_fmt(r['aus'])} time {_fmt(seconds, 1)} s", flush=True)

    # reference rows: the original (evaluated on the split) and the retrained oracle
    ds = load_dataset(dataset)
    split = load_split(retrained.path)
    orig_metrics = model_accuracies(load_checkpoint(original.file("checkpoints/model.pt"), "cpu"), ds, split, "cpu")
    ev_orig = ev_retr = None
    if evaluate is not None:
        ev_orig = evaluate.evaluate_run(str(original.path), retrained=str(retrained.path), split=str(retrained.path),
                                        out=str(out / "eval_original"), device=args.device,
                                        mia_repeats=args.mia_repeats, overwrite=True)
        ev_retr = evaluate.evaluate_run(str(retrained.path), original=str(original.path), device=args.device,
                                        mia_repeats=args.mia_repeats)
    add_row("original", original, orig_metrics, None, evaluated=ev_orig)
    add_row("retrained", retrained, retrained.metrics, retrained.metrics.get("time/train_s"), evaluated=ev_retr)

    for m in methods:
        cfg = UnlearnConfig(original=str(original.path), retrained=str(retrained.path), split=str(retrained.path),
                            method=m, seed=args.seed, surrogate=surrogate, device=args.device,
                            params=overrides.get(m, {}))
        try:
            run = run_unlearn(cfg, out / "runs" / m, overwrite=True, progress=False)
        except ScarlabError as exc:
            print(f"{m}: FAILED: {exc}", flush=True)
            rows.append({"method": m, "error": str(exc)})
            continue
        ev = evaluate.evaluate_run(str(run.path), device=args.device,
                                                           mia_repeats=args.mia_repeats) if evaluate is not None else None
        add_row(m, run, run.metrics, run.metrics["time/unlearn_s"], run.metrics.get("steps"), ev)

    header = ("| method | uses retain | forget-test | retain-test | forget-train | MIA (SVC acc) | AUS | time (s) | steps |\n"
              "|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | | failed: {r['error']} | | | | | | |")
            continue
        uses = "" if r["method"] in ("original", "retrained") else ("yes" if requires_retain(r["method"]) else "no")
        lines.append(f"| {r['method']} | {uses} | {_fmt(r['forget_test'])} | {_fmt(r['retain_test'])} | "
                     f"{_fmt(r['forget_train'])} | {_fmt(r['mia_svc_acc'])} | {_fmt(r['aus'])} | "
                     f"{_fmt(r['time_s'], 1)} | {r['steps'] if r['steps'] is not None else ''} |")
    mia_note = ("MIA: the paper's RBF-SVC attack on softmax vectors (members: forget-class train images, non-members: "
                "forget-class test images; 0.5 = no membership signal)." if evaluate is not None else
                "MIA: n/a (scarlab.evaluate not available); AUS from scarlab.metrics.aus_cr.")
    text = (f"# Unlearning methods on cifar10-mini, CR class {args.forget_class}, seed {args.seed}\n\n"
            f"{args.model}, original and retrained trained {args.epochs_original} epochs (original test accuracy "
            f"{a_or:.3f} = a_or of AUS); surrogate ood-mini; device {args.device}, {args.threads} CPU threads. "
            "Time: the unlearning run itself (retrained: its training time). Accuracies are fractions.\n"
            f"{mia_note}\n\n" + "\n".join(lines) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "methods.md").write_text(text)
    (out / "methods.json").write_text(json.dumps({"args": vars(args), "a_or": a_or, "rows": rows}, indent=2))
    print("\n" + text)


if __name__ == "__main__":
    main()
