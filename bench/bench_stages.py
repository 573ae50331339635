"""Where a stage's seconds go: the demo pipeline with cold kernels and with warm ones, interleaved (issue 27).

    python bench/bench_stages.py                      # 2 repeats of each mode, fresh temporary folders
    python bench/bench_stages.py --repeats 3 --jobs 2

Each repeat runs `scarlab demo --no-serve` (14 stages on digits) twice in fresh folders, as separate processes:
once with SCARLAB_WARM_KERNELS=0 (every stage starts its kernel and imports torch, pandas, plotly and scarlab
itself) and once with warm kernels (the default: `scarlab.pipeline.warm` forks each kernel from a process that
imported them once), the order alternating between
repeats so that both see the same machine load. Per stage, from the run folder: the stage's seconds as the
pipeline recorded them (kernel start to executed notebook written), the *work* inside it (the notebook's cell
durations that papermill records, without the imports-and-setup cell), and the *overhead* = seconds − work
(kernel start, imports, papermill). Reports the pipeline's wall time and the median overhead per mode, each
repeat listed (the spread).

What it cannot say: the seconds depend on the machine and its load (print the load; compare the modes within one
invocation); the work of a stage (its training) is not what warm kernels change.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETUP_MARK = "setup_notebook()"  # the imports-and-setup cell of every stage notebook calls it


def stage_times(root: Path) -> list[dict]:
    """One row per executed stage notebook under ``root``: kind, seconds (record), work (cells), overhead."""
    rows = []
    for record in [root / "pipeline.json", *root.rglob("manifest.json")]:
        try:
            stages = json.loads(record.read_text()).get("stages") or {}
        except (OSError, ValueError):
            continue
        for kind, entry in stages.items():
            if not isinstance(entry, dict) or entry.get("status") != "complete":
                continue
            nb = record.parent / str(entry.get("output"))
            try:
                cells = json.loads(nb.read_text())["cells"]
            except (OSError, ValueError, KeyError):
                continue
            work = sum(c["metadata"].get("papermill", {}).get("duration") or 0.0 for c in cells
                       if c.get("cell_type") == "code" and SETUP_MARK not in "".join(c.get("source", "")))
            rows.append({"kind": kind, "seconds": float(entry["seconds"]), "work": work,
                         "overhead": float(entry["seconds"]) - work})
    return rows


def run_demo(warm: bool, jobs: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="scarlab-stages-")) / "demo"
    env = {**os.environ, "SCARLAB_WARM_KERNELS": "1" if warm else "0"}
    t0, cpu0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, "-m", "scarlab", "demo", "--no-serve", "--quiet", "--out", str(out),
                           "--jobs", str(jobs)], capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"demo failed (warm={warm}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rows = stage_times(out)
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"warm": warm, "wall": wall, "cpu": cpu, "stages": rows, "load": os.getloadavg()[0]}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the processes this one waited for, and of theirs: the demo, its pipeline,
    its kernels (a forked kernel is reaped by the zygote, the zygote by the demo)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="stages at a time (the demo's default: 2)")
    args = ap.parse_args()
    runs = []
    for r in range(args.repeats):
        for warm in ((False, True) if r % 2 == 0 else (True, False)):
            runs.append(run_demo(warm, args.jobs))
            x = runs[-1]
            print(f"repeat {r} {'warm' if warm else 'cold'}: pipeline {x['wall']:.1f} s, CPU {x['cpu']:.1f} s, "
                  f"{len(x['stages'])} stages, "
                  f"median overhead {statistics.median(s['overhead'] for s in x['stages']):.2f} s, "
                  f"load {x['load']:.1f}", flush=True)
    lines = ["| kernels | pipeline wall s (each repeat) | median | CPU s (each repeat) | "
             "stage overhead s: median (each repeat) | stage work s: median | stages |",
             "|---|---|---:|---|---|---:|---:|"]
    for warm in (False, True):
        mine = [x for x in runs if x["warm"] == warm]
        over = [statistics.median(s["overhead"] for s in x["stages"]) for x in mine]
        work = statistics.median(s["work"] for x in mine for s in x["stages"])
        walls = ", ".join(f"{x['wall']:.1f}" for x in mine)
        cpus = ", ".join(f"{x['cpu']:.1f}" for x in mine)
        lines.append(f"| {'warm' if warm else 'cold'} | {walls} | "
                     f"{statistics.median(x['wall'] for x in mine):.1f} | {cpus} | "
                     f"{statistics.median(over):.2f} ({', '.join(f'{o:.2f}' for o in over)}) | {work:.2f} | "
                     f"{len(mine[0]['stages'])} |")
    cold = statistics.median(x["wall"] for x in runs if not x["warm"])
    warm = statistics.median(x["wall"] for x in runs if x["warm"])
    lines += ["", f"warm / cold pipeline wall time: {warm / cold:.2f} (medians); load average at the end "
              f"{os.getloadavg()[0]:.1f}; `python bench/bench_stages.py {' '.join(sys.argv[1:])}`"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
