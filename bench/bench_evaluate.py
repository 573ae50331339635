"""Evaluation time of one run on cifar10-mini, all three attacks (paper SVC MIA, loss-LR MIA, privacy score) plus
accuracies, per-class tables and the MIA-over-steps curve. Goal: ≤ 30 s on a 2-core CPU.

    python bench/bench_evaluate.py                       # trains what it needs (~2-4 min on 2 cores), then times
    python bench/bench_evaluate.py --run RUN [--original RUN] [--retrained RUN]   # time an existing run

Without ``--run`` it trains a smallcnn original and the CR class-0 retrained oracle on cifar10-mini for a few epochs
and runs a quick SCAR (ood-mini as surrogate), under OUT (reused with ``--reuse``). It then evaluates the SCAR run
``--repeats`` times in place (the first call is "cold": imports, the image cache, first BLAS calls) and the
original against the split once (``out=``), printing the per-phase times and writing OUT/evaluate.md.
Data: ``$SCARLAB_SHARED_DATA`` (default /work/shared/data) / cifar10-mini and ood-mini.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_recipe import made_from, options, trained  # noqa: E402  (a sibling script: bench/ is this script's folder)
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.evaluate import evaluate_run  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402
from scarlab.unlearn.stage import run_unlearn  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", "/work/shared/data"))
GOAL_S = 30.0
PHASES = ("time/evaluate/predict_s", "time/evaluate/mia_svc_s", "time/evaluate/loss_privacy_s",
          "time/evaluate/mia_steps_s")


def prepare(args, out: Path) -> tuple[Path, Path, Path]:
    """original, retrained, scar run directories (trained here unless reused)."""
    dataset = f"imagefolder:{SHARED / 'cifar10-mini'}"
    if not (SHARED / "cifar10-mini").is_dir():
        sys.exit(f"no cifar10-mini under {SHARED}: set SCARLAB_SHARED_DATA")

    def train(role: str) -> Path:  # reused (--reuse) only if trained with these options
        cfg = TrainConfig(dataset=dataset, model="smallcnn", role=role, forget_classes=[0] if role == "retrained"
                          else [], epochs=args.epochs, device="cpu", **options(args.recipe))
        t0 = time.perf_counter()
        run = trained(cfg, out / role, reuse=args.reuse)
        print(f"{role} ({args.recipe}, {args.epochs} epochs) ready in {time.perf_counter() - t0:.1f} s", flush=True)
        return run.path

    original, retrained = train("original"), train("retrained")
    scar = out / "scar"
    if not (args.reuse and made_from(scar, original, retrained)):  # a SCAR run of these two, not of earlier ones
        cfg = UnlearnConfig(original=str(original), retrained=str(retrained), split=str(retrained), method="scar",
                            surrogate=f"imagefolder:{SHARED / 'ood-mini'}", device="cpu",
                            params={"epochs": args.unlearn_epochs, "batch_size": 128})
        t0 = time.perf_counter()
        run_unlearn(cfg, scar, overwrite=True, progress=False)
        print(f"scar ({args.unlearn_epochs} epochs) in {time.perf_counter() - t0:.1f} s", flush=True)
    return original, retrained, scar


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/evaluate")
    ap.add_argument("--run", default=None, help="an unlearning (or retrained) run to time instead of training one")
    ap.add_argument("--original", default=None)
    ap.add_argument("--retrained", default=None)
    ap.add_argument("--epochs", type=int, default=3, help="training epochs of original and retrained")
    ap.add_argument("--recipe", default="lab", help="their training recipe, as bench_recipe.py spells it")
    ap.add_argument("--unlearn-epochs", type=int, default=5, help="SCAR epochs (batch 128)")
    ap.add_argument("--repeats", type=int, default=3, help="timed evaluations of the run")
    ap.add_argument("--mia-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse trained runs in OUT")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    if args.run:
        run, original, retrained = Path(args.run), args.original, args.retrained
        orig_for_eval = Path(original) if original else None
    else:
        orig_for_eval, retrained, run = prepare(args, out)
        original = None  # the scar run's manifest parents name them

    times, cpu, metrics = [], [], {}
    for i in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = evaluate_run(run, original=original, retrained=retrained, mia_repeats=args.mia_repeats)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        print(f"evaluation {i + 1}: {times[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU  (" +
              ", ".join(f"{p.split('/')[-1]} {metrics[p]:.2f}" for p in PHASES) + ")", flush=True)
    t_orig = c_orig = float("nan")
    if orig_for_eval is not None:
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate_run(orig_for_eval, retrained=retrained, split=run, out=out / "original_eval", overwrite=True,
                     mia_repeats=args.mia_repeats)
        t_orig, c_orig = time.perf_counter() - t0, time.process_time() - c0
    load0 = os.getloadavg()[0]

    steps = sum(1 for _ in (Path(run) / "features").glob("step_*.npz"))
    warm, warm_cpu = times[1:] or times, cpu[1:] or cpu
    sp = RunDir(run).load_arrays("split.npz")
    lines = [f"# Evaluation time, cifar10-mini ({RunDir(run).config.get('method', '?')} run, "
             f"{RunDir(run).config.get('model', '?')})", "",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
             f"Machine: {os.cpu_count()} CPU cores (shared), torch threads {args.threads}, no GPU; load average "
             f"(1 min) at the start {load_start:.1f}, at the end {load0:.1f}. CPU = process CPU time (all threads): "
             "on a busy shared machine wall time is mostly waiting for a core.",
             f"Data: {len(sp['forget_idx'])} forget / {len(sp['retain_idx'])} retain train images, "
             f"{len(sp['forget_test_idx']) + len(sp['retain_test_idx'])} test images; {steps} feature snapshots; "
             f"SVC MIA {args.mia_repeats} repeats.", "",
             "| evaluation | wall time (s) | CPU time (s) |", "|---|---|---|",
             f"| first (cold) | {times[0]:.2f} | {cpu[0]:.2f} |",
             f"| warm, median of {len(warm)} | {statistics.median(warm):.2f} | {statistics.median(warm_cpu):.2f} |",
             f"| warm, best | {min(warm):.2f} | {min(warm_cpu):.2f} |",
             f"| original against the split (`out=`) | {t_orig:.2f} | {c_orig:.2f} |", "",
             "| phase (last evaluation) | s |", "|---|---|"]
    lines += [f"| {p} | {metrics[p]:.2f} |" for p in PHASES]
    lines += ["", "Phases are wall time; predict = softmax of all train + test images (accuracies, per-class, "
              "confusion); mia_svc = the paper's SVC attack; loss_privacy = loss-LR MIA, threshold MIA and the "
              "privacy score (incl. the retrained model's forget-set pass); mia_steps = cheap attacks on every "
              "snapshot."]
    verdict = "meets" if statistics.median(times) <= GOAL_S else "misses"
    lines += ["", f"Goal ≤ {GOAL_S:.0f} s: median of all {len(times)} evaluations "
              f"{statistics.median(times):.2f} s wall — **{verdict}** it.", "",
              "Metrics: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in
                                     ("acc/forget_test", "acc/retain_test", "mia/svc/acc", "mia/svc/chance", "mia/loss_lr/acc",
                                      "privacy/score", "aus") if isinstance(metrics.get(k), float))]
    text = "\n".join(lines) + "\n"
    (out / "evaluate.md").write_text(text)
    (out / "evaluate.json").write_text(json.dumps({"times_s": times, "cpu_s": cpu, "original_eval_s": t_orig,
                                                   "phases": {p: metrics[p] for p in PHASES}}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
