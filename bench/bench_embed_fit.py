"""CPU of one UMAP reducer fit in a fresh process, with and without numba's disk cache for the umap-learn functions
that umap-learn leaves uncached (scarlab.embed.UMAP_JIT_CACHED).

    python bench/bench_embed_fit.py [--repeats 3] [--points 1797]

Each measurement is a new Python process that fits scarlab's reducer (scarlab.embed._fit_umap, the settings of
scarlab.embed.UMAP_SETTINGS) on the scikit-learn digits pixels (1,797 × 64, the size of a digits reference sample),
with caching "off" (as before: every process compiles) or "on"; the two alternate, ``--repeats`` times each, after
one "on" process that fills an empty cache (a fresh machine's first fit). All of them share a temporary
NUMBA_CACHE_DIR, so the numba cache of the installed packages is neither read nor written. Reported: the fit's
process CPU seconds (median, min–max) and whether every process computed the same coordinates.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
from sklearn.datasets import load_digits
import scarlab.embed as E
if sys.argv[1] == "off":
    E._UMAP_CACHING.append(False)  # as if already decided: caching is never turned on in this process
x = load_digits().data[: int(sys.argv[2])].astype(np.float32)
c, w = time.process_time(), time.perf_counter()
xy = E._fit_umap(x)
print(json.dumps({"cpu": time.process_time() - c, "wall": time.perf_counter() - w,
                  "xy": xy.astype(float).round(6).tolist()}))
"""


def fit(mode: str, points: int, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(points)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--points", type=int, default=1797)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        first = fit("on", args.points, env)
        runs = {"off": [], "on": []}
        for _ in range(args.repeats):
            for mode in ("off", "on"):
                runs[mode].append(fit(mode, args.points, env))
    same = all(r["xy"] == first["xy"] for rs in runs.values() for r in rs)
    print(f"UMAP fit of {args.points} digits images, process CPU seconds, {args.repeats} processes per mode "
          f"(alternating):")
    print(f"  first process, empty cache (compiles and writes it): {first['cpu']:.2f} s")
    for mode, rs in runs.items():
        cpu = [r["cpu"] for r in rs]
        print(f"  caching {mode:3s}: median {statistics.median(cpu):.2f} s (min {min(cpu):.2f}, max {max(cpu):.2f}); "
              f"wall median {statistics.median(r['wall'] for r in rs):.2f} s")
    off, on = (statistics.median(r["cpu"] for r in runs[m]) for m in ("off", "on"))
    print(f"  off / on: {off / on:.2f}×; the same coordinates in every process: {same}")
    if not same:
        sys.exit("the coordinates differ between processes")


if __name__ == "__main__":
    main()
