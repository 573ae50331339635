"""torch.compile on the CPU training loop (issue 27): the lab recipe's training with the model's forward compiled
against the same loop in eager mode, side by side in one run.

    python bench/bench_compile.py                       # cifar10-mini, smallcnn, lab recipe, seeds 0 1
    python bench/bench_compile.py --seeds 0 --epochs 4

Each seed trains twice with `scarlab.train.fit` (the training stage's loop, the recipe resolved as `run_train`
resolves it on this machine): eager, and with ``model.forward = torch.compile(model.forward)`` (inductor, the
default backend); the two alternate, their order flipping from seed to seed. From each run's history: the first
epoch's loop seconds (compilation included), the median loop seconds of the later epochs, the whole loop and the
final test accuracy. The break-even: how many epochs the steady saving needs to repay the first epoch's extra.
Writes OUT/compile.md.

What it cannot say: another CPU's or compiler's numbers. The first epoch depends on inductor's caches: in this
process the second seed's compiled run reuses the first's graphs, and inductor's on-disk cache (under /tmp) lets a
later process skip most of the compilation (2026-12-05: 37.8 s for the first compiled epoch with an empty cache,
3.4 s in the next process).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_recipe import SHARED, resolved  # noqa: E402  (a sibling script: bench/ is this script's folder)
from scarlab.config import TrainConfig  # noqa: E402
from scarlab.data import load_dataset  # noqa: E402
from scarlab.device import seed_everything  # noqa: E402
from scarlab.models import create_model  # noqa: E402
from scarlab.train import fit  # noqa: E402


def train(ds, cfg: TrainConfig, compiled: bool) -> dict:
    gen = seed_everything(cfg.seed)
    model = create_model(cfg.model, num_classes=ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1])
    if compiled:
        model.forward = torch.compile(model.forward)
    t0 = time.perf_counter()
    hist = fit(model, ds, np.arange(len(ds.train)), cfg, "cpu", gen, progress=False)
    secs = [h["time/epoch_s"] for h in hist]
    return {"first": secs[0], "later": statistics.median(secs[1:]) if len(secs) > 1 else float("nan"),
            "loop": sum(secs), "wall": time.perf_counter() - t0, "acc": hist[-1]["acc/test"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=f"imagefolder:{SHARED / 'cifar10-mini'}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/out/compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    base = resolved(TrainConfig(dataset=args.data, epochs=args.epochs, device="cpu"))
    t0, rows = time.perf_counter(), []
    for i, seed in enumerate(args.seeds):
        for compiled in ((False, True) if i % 2 == 0 else (True, False)):
            r = train(ds, dataclasses.replace(base, seed=seed), compiled)
            rows.append({"seed": seed, "mode": "compiled" if compiled else "eager", **r})
            print(f"seed {seed} {rows[-1]['mode']}: first epoch {r['first']:.1f} s, later {r['later']:.2f} s/epoch, "
                  f"loop {r['loop']:.1f} s, test {r['acc']:.3f}", flush=True)
    lines = [f"`python bench/bench_compile.py {' '.join(sys.argv[1:])}`", "",
             f"_{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()} CPU, {os.cpu_count()} cores, torch "
             f"{torch.__version__}, {args.threads} torch thread(s); recipe {base.recipe}: {base.epochs} epochs, batch "
             f"{base.batch_size}, bf16 {base.bf16}, channels-last {base.channels_last}; load average at the end "
             f"{os.getloadavg()[0]:.1f}; this run's wall time {time.perf_counter() - t0:.0f} s_", "",
             "| seed | mode | first epoch s (compilation included) | later epochs: median s | training loop s | "
             "final test acc |", "|---:|---|---:|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r['mode']} | {r['first']:.1f} | {r['later']:.2f} | {r['loop']:.1f} | {r['acc']:.3f} |"
              for r in rows]
    eager = [r for r in rows if r["mode"] == "eager"]
    comp = [r for r in rows if r["mode"] == "compiled"]
    extra = statistics.median(c["first"] - e["first"] for c, e in zip(comp, eager))
    saving = statistics.median(e["later"] - c["later"] for c, e in zip(comp, eager))
    lines += ["", f"Medians over seeds: first epoch compiled − eager {extra:+.1f} s; each later epoch compiled − eager "
              f"{-saving:+.2f} s (compiled / eager: "
              f"{statistics.median(c['later'] / e['later'] for c, e in zip(comp, eager)):.2f}×); the whole loop "
              f"compiled / eager {statistics.median(c['loop'] / e['loop'] for c, e in zip(comp, eager)):.2f}×. "
              + (f"Break-even after {extra / saving:.0f} epochs." if saving > 0 else "No break-even: later epochs "
                 "are not faster compiled.")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
