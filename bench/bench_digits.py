"""Unlearning methods (default: SCAR and SCAR-self) on every digits class: forget-test and retain-test against the
original, per seed and torch thread count (the margins the digits tests and the demo rely on).

    python bench/bench_digits.py                                    # classes 0-9, seed 0, 2 threads
    python bench/bench_digits.py --seeds 0 1 2 --threads 1 2 --classes 0 3 7
    python bench/bench_digits.py --set lr=0.0005 --set batch_size=64 --name lr5e-4_b64   # a candidate default
    python bench/bench_digits.py --classes 0 --epochs 8 --original-seed 0 --seeds 0 1 2 3 4 --threads 1 2 \
        --methods scar scar_self finetune negative_gradient random_labels duck scrub bad_teacher ssd salun \
        --name methods_c0_e8_o0     # the setting of tests/test_methods.py (its thresholds cite this)

One original per (seed, threads) is trained with the digits defaults (``--epochs``, 12 as in the demo); every
class is forgotten from it. Writes OUT/<name>.csv (one row per run) and OUT/<name>.md (per method: worst and
mean forget-test, worst retain-test drop against the original's test accuracy, failures).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.errors import ScarlabError  # noqa: E402
from scarlab.train import run_train  # noqa: E402
from scarlab.unlearn.stage import run_unlearn  # noqa: E402


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--methods", nargs="+", default=["scar", "scar_self"])
    ap.add_argument("--epochs", type=int, default=12, help="epochs of the original (tests use 8, the demo 12)")
    ap.add_argument("--original-seed", type=int, default=None,
                    help="one original of this seed for every method seed (as tests/test_methods.py: 0); default: "
                         "each seed trains its own original")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method parameter override")
    ap.add_argument("--name", default="digits")
    ap.add_argument("--out", default="bench/out/digits")
    args = ap.parse_args()
    params = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    out = Path(args.out)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for seed in args.seeds:
            o_seed = seed if args.original_seed is None else args.original_seed
            orig = run_train(TrainConfig(dataset="digits", epochs=args.epochs, seed=o_seed, device="cpu"),
                             out / "runs" / f"original_s{o_seed}_t{threads}_e{args.epochs}", overwrite=True,
                             progress=False)
            a_or = orig.metrics["acc/test"]
            for c in args.classes:
                for method in args.methods:
                    cfg = UnlearnConfig(original=str(orig.path), method=method, forget_classes=[c], seed=seed,
                                        params=params, device="cpu")
                    t0 = time.perf_counter()
                    try:
                        m = run_unlearn(cfg, out / "runs" / f"{args.name}_{method}_c{c}_s{seed}_t{threads}",
                                        overwrite=True, progress=False).metrics
                        err = ""
                    except ScarlabError as e:
                        m, err = {}, str(e)
                    rows.append({"method": method, "class": c, "seed": seed, "original_seed": o_seed,
                                 "threads": threads,
                                 "original_test": a_or, "forget_test": m.get("acc/forget_test"),
                                 "retain_test": m.get("acc/retain_test"), "steps": m.get("steps"),
                                 "seconds": time.perf_counter() - t0, "error": err})
                    print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{args.name}.csv", index=False)
    df["drop"] = df["original_test"] - df["retain_test"]
    lines = [f"# digits, every class: {args.name} ({params or 'defaults'})", "",
             f"Command: `python bench/bench_digits.py {' '.join(sys.argv[1:])}`", "",
             "| method | runs | failed | forget-test mean | forget-test worst | retain drop mean | retain drop worst "
             "| steps mean | s/run |", "|---|---|---|---|---|---|---|---|---|"]
    for method, g in df.groupby("method"):
        ok = g[g["error"] == ""]
        lines.append(f"| {method} | {len(g)} | {len(g) - len(ok)} | {ok['forget_test'].mean():.3f} | "
                     f"{ok['forget_test'].max():.3f} | {ok['drop'].mean():.3f} | {ok['drop'].max():.3f} | "
                     f"{ok['steps'].mean():.1f} | {ok['seconds'].mean():.1f} |")
    text = "\n".join(lines) + "\n"
    (out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
