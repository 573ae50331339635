"""Which embedded surrogate makes SCAR work on digits? AUS of SCAR per surrogate, CR, several classes.

    python bench/bench_surrogate_digits.py --classes 0 3 7 --out bench/out/surrogate_digits

Trains one original and, per forget class, one retrained oracle on digits (seconds each), then runs
SCAR with every generated surrogate and reports retain-test, forget-test and AUS (mean ± std).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.metrics import aus_cr, mean_std  # noqa: E402
from scarlab.train import run_train  # noqa: E402
from scarlab.unlearn.stage import run_unlearn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 3, 7])
    ap.add_argument("--surrogates", nargs="+", default=["sample_edges", "sample_images", "gaussian_noise"])
    ap.add_argument("--out", default="bench/out/surrogate_digits")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    original = run_train(TrainConfig(device="cpu"), out / "original", overwrite=True, progress=False)
    a_or = original.metrics["acc/test"]
    results = {s: [] for s in args.surrogates}
    for c in args.classes:
        split = out / f"retrained_c{c}"
        run_train(TrainConfig(role="retrained", forget_classes=[c], device="cpu"), split, overwrite=True,
                  progress=False)
        for s in args.surrogates:
            m = run_unlearn(UnlearnConfig(original=str(original.path), split=str(split), method="scar", surrogate=s,
                                          device="cpu"), out / f"scar_{s}_c{c}", overwrite=True, progress=False).metrics
            results[s].append((m["acc/retain_test"], m["acc/forget_test"],
                               aus_cr(a_or, m["acc/retain_test"], m["acc/forget_test"]), m["time/unlearn_s"]))
    lines = [f"# SCAR on digits by surrogate (CR, classes {args.classes}; original test acc {a_or:.4f})", "",
             f"Command: `python bench/bench_surrogate_digits.py --classes {' '.join(map(str, args.classes))}`", "",
             "| surrogate | retain-test | forget-test | AUS | SCAR time (s) |", "|---|---|---|---|---|"]
    for s, rows in results.items():
        cols = [mean_std([r[i] for r in rows]) for i in range(4)]
        lines.append(f"| {s} | " + " | ".join(f"{c.n:.3f} ± {c.s:.3f}" for c in cols) + " |")
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "surrogate_digits.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
