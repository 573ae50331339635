"""The live lab's latency: from the click (a job submitted, as the Run page's Launch button does) to the first feature
snapshot of SCAR (what the page's migration plot draws at its next 2 s refresh) and to the finished job, on digits,
CR class 3, with the original and the retrained oracle reused from a setup job. Cold: the first SCAR job after the
setup; warm: the same again with another seed (every job starts fresh worker, pipeline and kernel processes, so the
two differ by the operating system's caches only).

    python bench/bench_live.py --out bench/out/live                 # default: evaluation on, as the Run page launches
    python bench/bench_live.py --out bench/out/live_noeval --no-evaluate

Prints one JSON line per measurement and a table; targets (issue 26): first frame ≤ 10 s, finished ≤ 30 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from scarlab import jobs as J


def _first_snapshot(job: J.Job, timeout: float) -> float | None:
    """Wall time at which the job's unlearning run had its first features/step_*.npz (None: never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in job.stages():
            if s["kind"] == "unlearn" and s.get("run_dir"):
                feats = Path(s["run_dir"]) / "features"
                if feats.is_dir() and any(feats.glob("step_*.npz")):
                    return time.time()
        if not job.refresh().live:
            return None
        time.sleep(0.05)
    return None


def measure(root: Path, config: dict, label: str) -> dict:
    t0 = time.time()
    job = J.submit(config, root)
    first = _first_snapshot(job, 300)
    job.wait(timeout=600, poll=0.1)
    events = job.events()
    t_pipe = min((e["time"] for e in events), default=None)
    unl = [e for e in events if e["kind"] == "unlearn"]
    row = {"run": label, "state": job.state, "first_frame_s": round(first - t0, 2) if first else None,
           "finished_s": round(job.ended - t0, 2) if job.ended else None,
           "to_first_stage_event_s": round(t_pipe - t0, 2) if t_pipe else None,
           "unlearn_stage_s": next((e.get("seconds") for e in unl if e["status"] != "running"), None),
           "executed": sorted({e["kind"] for e in events if e["status"] == "complete"}),
           "reused": sorted({e["kind"] for e in events if e["status"] == "skipped"})}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/out/live", help="runs root (made afresh)")
    ap.add_argument("--no-evaluate", action="store_true", help="jobs without the evaluation and compare stages")
    args = ap.parse_args()
    root = Path(args.out).resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    base = {"dataset": "digits", "forget_classes": [3], "evaluate": not args.no_evaluate}
    t = time.time()
    setup = J.launch({**base, "methods": ["negative_gradient"], "params": {"negative_gradient": {"epochs": 1}}},
                     runs=root).wait()
    assert setup.state == "finished", setup.log_tail()
    print(f"setup (original, split, retrained oracle{', their evaluation' if not args.no_evaluate else ''}): "
          f"{time.time() - t:.1f}s", flush=True)
    rows = [measure(root, {**base, "methods": ["scar"], "seeds": [0]}, "cold"),
            measure(root, {**base, "methods": ["scar"], "seeds": [1]}, "warm")]
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'':6s} {'first frame':>12s} {'finished':>10s} {'pipeline up':>12s} {'unlearn stage':>14s}")
    for r in rows:
        print(f"{r['run']:6s} {r['first_frame_s']!s:>11s}s {r['finished_s']!s:>9s}s {r['to_first_stage_event_s']!s:>11s}s "
              f"{r['unlearn_stage_s']!s:>13s}s")
    (root / "bench_live.json").write_text(json.dumps({"rows": rows, "load": load}, indent=1))


if __name__ == "__main__":
    main()
