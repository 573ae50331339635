"""Time the same small sweep in-process (`--sequential`) and on a local Ray instance with N CPUs (default 2).

    python bench/bench_sweep.py                       # 2 methods x 2 forget classes x 1 seed on digits, evaluated
    python bench/bench_sweep.py --epochs 4 --workers 4

Each run is a separate `scarlab sweep` process into a fresh root, as a user would type it; the Ray time includes
starting Ray. The load average is printed because on a shared machine other processes slow everything down
(compare the ratio within one invocation). Results: bench/out/bench_sweep.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance (one stage per CPU)")
    ap.add_argument("--epochs", type=int, default=1, help="original / retrained training epochs")
    ap.add_argument("--unlearn-epochs", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the sweep roots")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="scarlab_bench_sweep_"))
    grid = dict(datasets=["digits"], models=["tinycnn"], methods=["scar", "finetune"], forget_classes=[[0], [1]],
                seeds=[0], epochs=args.epochs, unlearn_epochs=args.unlearn_epochs, device="cpu")
    cfg = tmp / "grid.yaml"
    cfg.write_text(yaml.safe_dump(grid))
    runs = {"sequential": ["--sequential"], f"ray ({args.workers} CPUs)": ["--num-cpus", str(args.workers)]}
    rows, cmds = [], []
    for i, (label, extra) in enumerate(runs.items()):
        cmd = [sys.executable, "-m", "scarlab", "sweep", str(cfg), "--out", str(tmp / f"root{i}"), "--quiet", *extra]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        stages = json.loads((tmp / f"root{i}" / "sweep.json").read_text())["stages"] if proc.returncode == 0 else []
        busy = sum(s["finished"] - s["started"] for s in stages if s.get("started"))
        rows.append({"run": label, "seconds": round(seconds, 1), "rc": proc.returncode, "stages": len(stages),
                     "stage_seconds_sum": round(busy, 1), "load_1min_before": round(load, 2)})
        cmds.append(" ".join(cmd))
        print(f"{label:16s} {seconds:7.1f}s  rc={proc.returncode}  {len(stages)} stages, {busy:.0f}s of stage time "
              f"(load average before: {load:.2f})", flush=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:] + proc.stderr[-3000:])
            break
    if len(rows) == 2 and all(r["rc"] == 0 for r in rows):
        ratio = rows[0]["seconds"] / rows[1]["seconds"]
        print(f"sequential / ray = {ratio:.2f}x  ({os.cpu_count()} CPU cores on this machine)")
        rows.append({"run": "ratio sequential/ray", "seconds": round(ratio, 2)})
    print("commands:\n  " + "\n  ".join(cmds))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "bench_sweep.json").write_text(json.dumps({"rows": rows, "grid": grid, "commands": cmds,
                                                       "cpus": os.cpu_count()}, indent=2))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.get("rc", 0) == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
