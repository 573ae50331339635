"""CPU of one UMAP reducer fit in a fresh process: umap-learn as scarlab called it before, with numba's disk cache on
for the umap-learn functions it leaves uncached (scarlab.embed.UMAP_JIT_CACHED), and as scarlab fits now (that cache
and the exact neighbours of scarlab.embed._exact_knn handed to umap-learn).

    python bench/bench_embed_fit.py [--repeats 3]

Each measurement is a new Python process that fits one reducer (scarlab.embed.UMAP_SETTINGS) on one input: the
scikit-learn digits pixels (1,797 × 64) or a 2,000 × 512 non-negative matrix shaped like resnet18 features (seeded
ReLU of Gaussians times per-column scales). The three modes alternate, ``--repeats`` times each, after one process
per input that fills an empty numba cache (a fresh machine's first fit). All processes share a temporary
NUMBA_CACHE_DIR (the installed packages' cache is neither read nor written) and run single-threaded. Reported per
input and mode: the fit's process CPU seconds (median, min–max) and whether every process computed the same
coordinates, to the bit.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODES = ("before", "cached", "now")
INPUTS = ("digits", "features512")
CHILD = r"""
import json, sys, time, warnings
import numpy as np
import scarlab.embed as E
mode, data = sys.argv[1], sys.argv[2]
if data == "digits":
    from sklearn.datasets import load_digits
    x = load_digits().data.astype(np.float32)
else:
    rs = np.random.RandomState(512)
    x = (np.maximum(rs.randn(2000, 512), 0) * rs.gamma(1, 1, 512)).astype(np.float32)
c = time.process_time()
if mode == "now":
    xy = E._fit_umap(x)
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap
        if mode == "cached":
            E._cache_umap_compiles()
        xy = umap.UMAP(n_components=2, n_jobs=1, low_memory=True, **E.UMAP_SETTINGS).fit_transform(x)
print(json.dumps({"cpu": time.process_time() - c, "xy": np.asarray(xy, np.float32).tobytes().hex()}))
"""


def fit(mode: str, data: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, data], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    same = True
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        print("| input | mode | fit CPU s: median (min–max) | processes |\n|---|---|---|---:|")
        for data in INPUTS:
            first = fit("now", data, env)
            print(f"| {data} | now, empty cache (the first process on a machine) | {first['cpu']:.2f} | 1 |")
            runs = {m: [] for m in MODES}
            for _ in range(args.repeats):
                for mode in MODES:
                    runs[mode].append(fit(mode, data, env))
            for mode, rs in runs.items():
                cpu = [r["cpu"] for r in rs]
                spread = f"{statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f})"
                print(f"| {data} | {mode} | {spread} | {len(rs)} |")
            same &= all(r["xy"] == first["xy"] for rs in runs.values() for r in rs)
    print(f"\nthe same coordinates, to the bit, in every process of each input: {same}")
    if not same:
        sys.exit("the coordinates differ between modes or processes")


if __name__ == "__main__":
    main()
