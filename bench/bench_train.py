"""Training speed: (a) the default digits model to >= 97 % test accuracy, (b) seconds per epoch of every
registered model on cifar10-mini (5,000 training images, 32x32 RGB).

    python bench/bench_train.py                          # both parts; writes bench/out/train.md
    python bench/bench_train.py --max-batches 5          # cap the slow models harder
    python bench/bench_train.py --skip-models            # only part (a)

(a) runs the real `train` stage (`run_train`) with the default TrainConfig (digits: tinycnn, Adam, batch 64,
12 epochs, one-cycle LR), `--repeats` times with seeds 0, 1, ...; it reports the first epoch whose test
accuracy is >= 97 %, the training-loop seconds up to then (the history's per-epoch times: since 2026-12-05 without the
per-epoch test evaluation), the whole stage's seconds, and the final accuracy.

(b) times the training step of `scarlab.train.fit` (augment, normalise, forward, cross-entropy, backward, SGD)
at the data set's default batch size (128). A model whose first batch predicts a full epoch under
`--full-epoch-budget` seconds is timed over the whole epoch; a slower one over `--max-batches` batches after
one warm-up batch, and the epoch time is extrapolated (the table says which). ViT-B/16 resizes every image to
224 px; it is timed at `--vit-b16-batch` images per step and extrapolated per image. Test evaluation
(forward over the 1,000 test images, which `fit` also does once per epoch) is timed the same way.

Threads: torch.set_num_threads(--threads), and OMP_WAIT_POLICY=PASSIVE unless already set: on a shared
2-core machine, spinning OpenMP threads make small models 5-15x slower whenever another process runs.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scarlab.config import TrainConfig  # noqa: E402
from scarlab.data import batches, load_dataset  # noqa: E402
from scarlab.models import MODELS, create_model  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402
from scarlab.train import run_train  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def loadavg() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ----------------------------------------------------------------------------- (a) digits to 97 %
def bench_digits(repeats: int, target: float) -> tuple[list[str], list[dict]]:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="scarlab-bench-"))
    cpu_marks: list[float] = []
    append = RunDir.append_history

    def marked(self, row):  # process CPU seconds at the end of each epoch (history rows only hold wall time)
        cpu_marks.append(time.process_time())
        append(self, row)

    RunDir.append_history = marked
    try:
        load_dataset("digits")  # import scikit-learn once, outside the timings
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimiser imports torch._dynamo (seconds)
        for seed in range(repeats):
            cpu_marks.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            run = run_train(TrainConfig(dataset="digits", seed=seed, device="cpu"), tmp / f"s{seed}", progress=False)
            stage_s, stage_cpu = time.perf_counter() - t0, time.process_time() - c0
            h = run.history()
            cum = h["time/epoch_s"].cumsum()
            hit = h.index[h["acc/test"] >= target]
            rows.append({"seed": seed, "epochs": len(h),
                         "epoch_to_target": int(h["epoch"][hit[0]]) if len(hit) else None,
                         "s_to_target": float(cum[hit[0]]) if len(hit) else None,
                         "cpu_to_target": cpu_marks[hit[0]] - c0 if len(hit) else None,
                         "train_s": float(run.metrics["time/train_s"]), "stage_s": stage_s, "stage_cpu": stage_cpu,
                         "final_acc": float(run.metrics["acc/test"]),
                         "s_per_epoch": float(h["time/epoch_s"].mean())})
    finally:
        RunDir.append_history = append
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [f"## (a) default digits model (tinycnn, TrainConfig defaults) to >= {target:.0%} test accuracy", "",
             "| seed | first epoch >= target | wall s to target | CPU s to target | wall s/epoch | all epochs: "
             "train wall s | stage wall s | stage CPU s | final test acc |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ep = f"{r['epoch_to_target']} / {r['epochs']}" if r["epoch_to_target"] else f"not reached in {r['epochs']}"
        to = f"{r['s_to_target']:.1f}" if r["s_to_target"] is not None else "-"
        cto = f"{r['cpu_to_target']:.1f}" if r["cpu_to_target"] is not None else "-"
        lines.append(f"| {r['seed']} | {ep} | {to} | {cto} | {r['s_per_epoch']:.2f} | {r['train_s']:.1f} | "
                     f"{r['stage_s']:.1f} | {r['stage_cpu']:.1f} | {r['final_acc']:.3f} |")
    lines += ["", "wall s to target: training-loop seconds up to the end of the first epoch at >= target (per-epoch "
              "test evaluation excluded since 2026-12-05). CPU s: process CPU time (all threads) from the start of the stage. "
              "train wall s: all default epochs. stage: the whole `run_train` call (data, training, final "
              "accuracies, class statistics, run directory), without Python/torch import time.", ""]
    return lines, rows


# ----------------------------------------------------------------------------- (b) seconds per epoch
def _step_fn(model, ds, images, labels, opt, gen):
    def step(idx):
        x = ds.normalize(ds.augment(images[idx], gen))
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench_model(name: str, ds, batch_size: int, max_batches: int, full_budget: float, vit_batch: int) -> dict:
    torch.manual_seed(0)
    kwargs = {"pretrained": False} if name == "vit_b16" else {}
    model = create_model(name, num_classes=ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], **kwargs)
    n = len(ds.train)
    bs = vit_batch if name == "vit_b16" else batch_size
    steps = math.ceil(n / bs)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    step = _step_fn(model, ds, ds.train.images, ds.train.labels, opt, gen)
    order = list(batches(n, bs, shuffle=True, generator=gen))
    t = time.perf_counter()
    step(order[0])  # warm-up (allocations, oneDNN primitive creation); also predicts the epoch time
    warm = time.perf_counter() - t
    full = warm * steps <= full_budget
    k = steps if full else min(max_batches, steps)
    t, c = time.perf_counter(), time.process_time()
    for idx in order[1:k + 1] if not full else order:
        step(idx)
    train_s, train_cpu = time.perf_counter() - t, time.process_time() - c
    timed_images = sum(len(i) for i in (order if full else order[1:k + 1]))
    epoch_s = train_s if full else train_s / timed_images * n
    epoch_cpu = train_cpu if full else train_cpu / timed_images * n
    # test evaluation: forward only, batch 512 (scarlab.features.extract), 1,000 images
    model.eval()
    n_test = len(ds.test)
    ebs = bs if name == "vit_b16" else 512
    eval_batches = list(batches(n_test, ebs))
    ek = len(eval_batches) if full else 1
    t = time.perf_counter()
    with torch.no_grad():
        for idx in eval_batches[:ek]:
            model(ds.normalize(ds.test.images[idx]))
    eval_s = (time.perf_counter() - t) / sum(len(i) for i in eval_batches[:ek]) * n_test
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "params_M": params / 1e6, "batch": bs, "timed": f"{'all' if full else k}/{steps}",
            "extrapolated": not full, "s_per_step": train_s / (steps if full else k), "epoch_s": epoch_s,
            "epoch_cpu": epoch_cpu,
            "eval_s": eval_s, "first_batch_s": warm}


def bench_models(names, max_batches: int, full_budget: float, vit_batch: int) -> tuple[list[str], list[dict]]:
    root = SHARED / "cifar10-mini"
    if not root.is_dir():
        return [f"## (b) skipped: {root} not found (set SCARLAB_SHARED_DATA)", ""], []
    ds = load_dataset(f"imagefolder:{root}")
    rows = []
    for name in names:
        r = bench_model(name, ds, 128, max_batches, full_budget, vit_batch)
        rows.append(r)
        print(f"  {name:10s} {r['epoch_s']:9.1f} s/epoch, {r['epoch_cpu']:9.1f} CPU s ({r['timed']} batches timed"
              f"{', extrapolated' if r['extrapolated'] else ''}; load {loadavg()})", flush=True)
    lines = [f"## (b) seconds per training epoch on cifar10-mini ({len(ds.train):,} images, 3x32x32)", "",
             "| model | params (M) | batch | batches timed | wall s/step | wall s/epoch (train) | CPU s/epoch | "
             "wall s test eval (1,000) | how |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        how = "extrapolated from the timed batches" if r["extrapolated"] else "measured, full epoch"
        if r["model"] == "vit_b16":
            how += f"; batch {r['batch']} (images resized to 224 px)"
        lines.append(f"| {r['model']} | {r['params_M']:.2f} | {r['batch']} | {r['timed']} | {r['s_per_step']:.2f} | "
                     f"{r['epoch_s']:.1f} | {r['epoch_cpu']:.1f} | {r['eval_s']:.1f} | {how} |")
    lines += ["", "s/epoch (train): optimiser steps only (augment + normalise + forward + backward + SGD), as in "
              "`scarlab.train.fit`; `fit` also evaluates the test set once per epoch (last column). Extrapolated "
              "rows: one warm-up batch, then the timed batches, scaled to the 5,000 images. CPU s: process CPU "
              "time of all threads; on an otherwise idle machine the wall time would lie between CPU s / threads "
              "and CPU s, so it is the number to compare across runs made under different loads.", ""]
    return lines, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/train.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="(a): digits runs with seeds 0..N-1")
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--models", nargs="*", default=None, help="(b): models to time (default: every registered one)")
    ap.add_argument("--max-batches", type=int, default=5, help="(b): batches timed for models too slow for a full epoch")
    ap.add_argument("--full-epoch-budget", type=float, default=60.0,
                    help="(b): time a full epoch when the first batch predicts at most this many seconds")
    ap.add_argument("--vit-b16-batch", type=int, default=8, help="(b): ViT-B/16 images per step (224 px each)")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--skip-models", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    head = [f"# Training speed ({time.strftime('%Y-%m-%d %H:%M')})", "",
            f"Command: `python {' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}`  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, device cpu.  ",
            f"Load average at start (1/5/15 min): {loadavg()} — a shared machine: other processes slow everything.", ""]
    body = []
    if not args.skip_digits:
        print("(a) digits to target ...", flush=True)
        lines, _ = bench_digits(args.repeats, args.target)
        body += lines
        print("\n".join(lines), flush=True)
    if not args.skip_models:
        print("(b) seconds per epoch on cifar10-mini ...", flush=True)
        lines, _ = bench_models(args.models or list(MODELS), args.max_batches, args.full_epoch_budget,
                                args.vit_b16_batch)
        body += lines
    text = "\n".join(head + body + [f"Load average at end: {loadavg()}", ""])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
