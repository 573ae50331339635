"""Loop ablation: SCAR with the authors' loop against each single deviation scarlab offers, on one original.

    python bench/bench_loop.py                       # cifar10-mini, lab-recipe smallcnn, classes 0-3, every variant
    python bench/bench_loop.py --recipe classic --epochs 30   # §2's tables before 2026-12-05
    python bench/bench_loop.py --classes 0 --variants authors scarlab-fast

Trains (or, with the same OUT, reuses) one original smallcnn on cifar10-mini and the retrained oracle for the first
class (timed: the SCAR vs retraining ratio of the same run), then unlearns every class with every variant on
the same original, class statistics and ood-mini surrogates. Each variant changes one option of the authors'
loop (``--set scar.KEY=VALUE`` in the pipeline). Reports AUS (CR, a_or = the original's retain-test accuracy
for that class), retain-test, forget-test, optimiser steps, seconds and steps/s, per class and as means.
Writes OUT/loop.csv and OUT/loop.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_recipe import options, trained  # noqa: E402  (a sibling script: bench/ is this script's folder)
from scarlab.config import TrainConfig, UnlearnConfig  # noqa: E402
from scarlab.data import load_dataset, make_split  # noqa: E402
from scarlab.metrics import aus_cr  # noqa: E402
from scarlab.models import load_checkpoint  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402
from scarlab.train import model_accuracies  # noqa: E402
from scarlab.unlearn.stage import run_unlearn  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA, OOD = f"imagefolder:{SHARED / 'cifar10-mini'}", f"imagefolder:{SHARED / 'ood-mini'}"
VARIANTS = {  # name -> what differs from the authors' loop
    "authors": {},
    "bn frozen": {"bn_mode": "frozen"},
    "1 step per forget batch (5x surrogate batch)": {"steps_per_forget_batch": 1, "surrogate_batch_factor": 5},
    "stop checked per epoch": {"stop_check": "epoch"},
    "targets before unlearning": {"target_timing": "before"},
    "statistics from training time": {"stats_source": "training"},
    "per-image minimum logit": {"min_logit": "image"},
    "no surrogate augmentation": {"surrogate_augment": False},
    "stop probe of 100 forget images": {"stop_probe": 100},
    "scarlab-fast preset": {"preset": "scarlab-fast"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help="names from VARIANTS (quote them)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the original and the oracle (the recipe's)")
    ap.add_argument("--recipe", default="lab", help="their training recipe, as bench_recipe.py spells it "
                    "(§2's tables before 2026-12-05: classic)")
    ap.add_argument("--out", default="bench/out/loop")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    ds = load_dataset(DATA)
    train = dict(dataset=DATA, model="smallcnn", epochs=args.epochs, device="cpu", **options(args.recipe))
    original = trained(TrainConfig(**train), out / "original")  # reused only if trained with these options
    oracle = trained(TrainConfig(**train, role="retrained", forget_classes=[args.classes[0]]),
                     out / f"retrained_c{args.classes[0]}")
    retrain_s = oracle.metrics["time/train_s"]
    model = load_checkpoint(original.file("checkpoints/model.pt"))
    rows = []
    for c in args.classes:
        split = make_split(ds, "CR", [c])
        a_or = model_accuracies(model, ds, split, "cpu")["acc/retain_test"]
        split_path = out / f"split_c{c}.npz"
        split.save(split_path)
        for name in args.variants:
            cfg = UnlearnConfig(original=str(original.path), split=str(split_path), method="scar", surrogate=OOD,
                                params=VARIANTS[name], device="cpu")
            m = run_unlearn(cfg, out / "runs" / f"c{c}_{name.replace(' ', '_')}", overwrite=True,
                            progress=False).metrics
            rows.append({"class": c, "variant": name, "a_or": a_or, "retain_test": m["acc/retain_test"],
                         "forget_test": m["acc/forget_test"],
                         "aus": aus_cr(a_or, m["acc/retain_test"], m["acc/forget_test"]), "steps": m["steps"],
                         "seconds": m["time/unlearn_s"], "stats_s": m["time/stats_s"],
                         "steps_per_s": m["steps"] / m["time/unlearn_s"]})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "loop.csv", index=False)
    mean = df.groupby("variant", sort=False).agg(["mean", "std"])
    authors_s = df[(df["variant"] == "authors") & (df["class"] == args.classes[0])]
    lines = [f"Command: `python bench/bench_loop.py {' '.join(sys.argv[1:])}` — original: smallcnn, recipe "
             f"{args.recipe}, {original.config['epochs']} epochs, test accuracy {original.metrics['acc/test']:.4f}; classes {args.classes}; SCAR at the paper's "
             "defaults (Adam 5e-4, batch 1,024, λ2 = 5) on ood-mini; one row changes one option.", "",
             "| variant | AUS | retain-test | forget-test | steps | seconds | steps/s |", "|---|---|---|---|---|---|---|"]
    for name, r in mean.iterrows():
        lines.append(f"| {name} | {r[('aus', 'mean')]:.3f} ± {r[('aus', 'std')]:.3f} | "
                     f"{r[('retain_test', 'mean')]:.3f} | {r[('forget_test', 'mean')]:.3f} | "
                     f"{r[('steps', 'mean')]:.1f} | {r[('seconds', 'mean')]:.1f} | {r[('steps_per_s', 'mean')]:.2f} |")
    if len(authors_s):
        s = float(authors_s["seconds"].iloc[0])
        st = float(authors_s["stats_s"].iloc[0])
        lines += ["", f"Speed, class {args.classes[0]}, same process: retraining the oracle {retrain_s:.1f} s "
                  f"(the original: {original.metrics['time/train_s']:.1f} s); SCAR (authors' loop) {s:.1f} s of "
                  f"unlearning + {st:.1f} s of class statistics → **{retrain_s / s:.1f}×** faster "
                  f"({retrain_s / (s + st):.1f}× counting the statistics)."]
    per = df.pivot(index="variant", columns="class", values="aus").reindex(list(dict.fromkeys(df["variant"])))
    lines += ["", "AUS per class:", "", "| variant | " + " | ".join(f"class {c}" for c in per.columns) + " |",
              "|---|" + "---|" * len(per.columns)]
    lines += [f"| {v} | " + " | ".join(f"{a:.3f}" for a in r) + " |" for v, r in per.iterrows()]
    text = "\n".join(lines) + "\n"
    (out / "loop.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
