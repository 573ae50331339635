"""SCAR on cifar10-mini: wall time vs retraining the oracle, AUS of both, and fast vs faithful steps/s.

    python bench/bench_scar.py --out bench/out/scar            # ~10 min on a 2-core CPU
    python bench/bench_scar.py --out bench/out/scar --reuse    # keep the trained models, rerun SCAR and the speed part
    python bench/bench_scar.py --recipe classic --epochs 30 --reuse   # BENCHMARKS' numbers before 2026-12-05

Trains an original smallcnn on cifar10-mini (5,000 images) and the retrained oracle for CR class 0
(same recipe, 4,500 images), runs SCAR with ood-mini as surrogate, and times everything in one process.
Then runs SCAR for a fixed number of steps with per-epoch (fast) and per-step (faithful) forget-set
evaluation and reports optimiser steps per second of each, on the CR forget class (500 images) and on an HR
forget set of --speed-hr-size images (the faithful path's extra cost grows with the forget set). Writes
OUT/scar.md and prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_recipe import options, trained  # noqa: E402  (a sibling script: bench/ is this script's folder)
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.metrics import aus_cr  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402
from scarlab.unlearn.stage import run_unlearn  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/scar")
    ap.add_argument("--model", default="smallcnn")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs of original and retrained (the "
                    "recipe's)")
    ap.add_argument("--recipe", default="lab", help="their training recipe, as bench_recipe.py spells it (BENCHMARKS "
                    "before 2026-12-05: classic, 30 epochs)")
    ap.add_argument("--forget-class", type=int, default=0)
    ap.add_argument("--speed-steps", type=int, default=20, help="steps for the fast-vs-faithful comparison")
    ap.add_argument("--lrs", type=float, nargs="+", default=[5e-4, 2.5e-4],
                    help="SCAR learning rates to run (the paper's 5e-4, and half of it)")
    ap.add_argument("--batch-size", type=int, default=1024, help="SCAR batch of the comparison (the paper's 1,024)")
    ap.add_argument("--speed-hr-size", type=int, default=2500, help="HR forget set of the second speed comparison")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse trained original/retrained runs in OUT")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset = f"imagefolder:{SHARED / 'cifar10-mini'}"
    surrogate = f"imagefolder:{SHARED / 'ood-mini'}"
    fc = [args.forget_class]

    def train(role: str) -> RunDir:  # reused (--reuse) only if trained with these options
        cfg = TrainConfig(dataset=dataset, model=args.model, role=role, forget_classes=fc if role == "retrained" else [],
                          epochs=args.epochs, device="cpu", **options(args.recipe))
        return trained(cfg, out / role, reuse=args.reuse)

    original, retrained = train("original"), train("retrained")
    a_or = original.metrics["acc/test"]

    def unlearn(name: str, where: dict | None = None, **params) -> RunDir:
        # the CR split of the retrained oracle, or (where) an HR split made on the fly, without an oracle
        where = where or {"split": str(retrained.path), "retrained": str(retrained.path)}
        cfg = UnlearnConfig(original=str(original.path), method="scar", surrogate=surrogate, device="cpu",
                            params=params, **where)
        return run_unlearn(cfg, out / name, overwrite=True, progress=False)

    scars = {lr: unlearn(f"scar_lr{lr:g}", lr=lr, batch_size=args.batch_size) for lr in args.lrs}
    rows = []
    for name, run, t in (("original", original, float("nan")), ("retrained", retrained, retrained.metrics["time/train_s"]),
                         *((f"scar (lr {lr:g}, batch {args.batch_size})", r, r.metrics["time/unlearn_s"])
                           for lr, r in scars.items())):
        m = run.metrics
        ft = m.get("acc/forget_test", 1.0 if name == "original" else float("nan"))
        if name == "original":  # the original run has no split: evaluate on the same split as the others
            from scarlab.data import load_dataset
            from scarlab.models import load_checkpoint
            from scarlab.train import load_split, model_accuracies
            m = model_accuracies(load_checkpoint(original.file("checkpoints/model.pt")), load_dataset(dataset),
                                 load_split(retrained.path), "cpu")
            ft = m["acc/forget_test"]
        rows.append((name, m["acc/retain_test"], ft, aus_cr(a_or, m["acc/retain_test"], ft), t))

    # the faithful path re-evaluates the whole forget set after every step: its cost grows with that set
    speed = {}
    sets = {f"CR class {args.forget_class} (500 images)": None,
            f"HR, {args.speed_hr_size} random images": {"scenario": "HR", "forget_size": args.speed_hr_size}}
    for label, where in sets.items():
        for faithful in (False, True):
            run = unlearn(f"speed_{'hr_' if where else ''}{'faithful' if faithful else 'fast'}", where,
                          stop_check="step" if faithful else "epoch", stop=False, batch_size=128,
                          epochs=max(1, args.speed_steps // 4) if where is None else 1)
            speed[label, faithful] = run.metrics["steps"] / run.metrics["time/unlearn_s"]

    t_retrain, aus_retrain = rows[1][4], rows[1][3]
    lines = [f"# SCAR on cifar10-mini, CR class {args.forget_class}, {args.model}, recipe {args.recipe}, "
             f"{original.config['epochs']} training epochs",
             "", f"Command: `python {' '.join(sys.argv)}`",
             f"Machine: {os.cpu_count()} CPU cores, torch threads {args.threads}, no GPU. Original test accuracy {a_or:.4f}.",
             "", "| model | retain-test | forget-test | AUS | wall time (s) |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {rt:.4f} | {ft:.4f} | {a:.3f} | {t:.1f} |" for n, rt, ft, a, t in rows]
    lines += [""] + [f"SCAR at lr {lr:g} vs retraining: **{t_retrain / t:.1f}x faster**, AUS gap {aus_retrain - a:+.3f} "
                     f"(retrained − SCAR); stopped after {scars[lr].metrics['steps']} steps."
                     for (_, _, _, a, t), lr in zip(rows[2:], scars)]
    lines += ["", "| forget set | fast: steps / s (forget set evaluated once per epoch) | faithful: steps / s "
              "(whole forget set evaluated after every step) | fast / faithful |", "|---|---|---|---|"]
    lines += [f"| {label} | {speed[label, False]:.2f} | {speed[label, True]:.2f} | "
              f"**{speed[label, False] / speed[label, True]:.2f}x** |" for label in sets]
    lines += ["", "Batch 128 forget + 128 surrogate images per step (6 steps per forget batch), stop rule off."]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scar.md").write_text(text)
    (out / "scar.json").write_text(json.dumps({"rows": rows, "steps_per_s": [
        {"forget_set": label, "fast": speed[label, False], "faithful": speed[label, True]} for label in sets]}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
