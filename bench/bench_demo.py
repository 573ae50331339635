"""Time `scarlab demo --no-serve` end to end (goal: <= 3 minutes on a 2-core CPU after installation).

    python bench/bench_demo.py                 # fresh run into a temporary folder, then a second (reuse) run
    python bench/bench_demo.py --out runs/demo --keep

Each run is a separate `scarlab` process, as a user would type it; the load average is printed because on a
shared machine other processes slow everything down (compare ratios within one invocation).
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


def timed(cmd: list[str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="demo folder (default: a fresh temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the demo folder")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="scarlab_demo_")) / "demo"
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "scarlab", "demo", "--no-serve", "--quiet", "--out", str(out), "--jobs", str(args.jobs)]
    rows = []
    for label in ("fresh", "reuse"):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        seconds, rc, text = timed(cmd)
        rows.append({"run": label, "seconds": round(seconds, 1), "rc": rc, "load_1min_before": round(load, 2)})
        print(f"{label:6s} {seconds:7.1f}s  rc={rc}  (load average before: {load:.2f})", flush=True)
        if rc != 0:
            print(text[-4000:])
            break
    stages = {}
    for rec in [*out.rglob("manifest.json"), *out.rglob("pipeline.json")]:  # each run's (and compare's) record
        for kind, r in (json.loads(rec.read_text()).get("stages") or {}).items():
            stages.setdefault(kind, []).append(r["seconds"])
    print("\nseconds per stage kind (first run): " + ", ".join(
        f"{k} {sum(v):.1f}s/{len(v)}" for k, v in sorted(stages.items())))
    print("command: " + " ".join(cmd))
    report = {"rows": rows, "stage_seconds": stages, "command": cmd, "cpus": os.cpu_count()}
    bench_out = Path(__file__).parent / "out"
    bench_out.mkdir(exist_ok=True)
    (bench_out / "bench_demo.json").write_text(json.dumps(report, indent=2))
    if not args.keep and not args.out:
        shutil.rmtree(out.parent, ignore_errors=True)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
