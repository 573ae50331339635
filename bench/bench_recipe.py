"""Training recipes side by side: test accuracy against training seconds, per seed, in one run (issue 27).

    python bench/bench_recipe.py                                   # cifar10-mini, classic vs lab, seeds 0-4
    python bench/bench_recipe.py --seeds 0 1 --threads 1 --name recipe_t1
    python bench/bench_recipe.py --recipes classic fast fast:bf16=true fast:bf16=true,epochs=16 --name recipe_bf16
    python bench/bench_recipe.py --data digits --baseline lab --recipes lab lab:epochs=8 --target 0.97 --name r_digits

Each seed trains one original per recipe with the real `train` stage (`run_train`, smallcnn), the recipes
interleaved (their order alternates from seed to seed) so that both see the same machine load. From each run's
history: the test accuracy after every epoch against the cumulative training seconds (the history's per-epoch
times: the training loop only, not the per-epoch test evaluation). Reports per recipe the final test accuracy
(mean, min, max over seeds), the training seconds, and the seconds to reach a target accuracy — the baseline
recipe's (`--baseline`, default classic) mean final accuracy in this same run, and `--target` — with the ratio of
the medians to the baseline's
full training time, and each run's wall time as a stage (evaluations included). A run already complete in OUT is
reused with the seconds it took then: delete its folder to time it again. Writes OUT/curves.csv (seed, recipe,
epoch, seconds, acc/test, run_wall_s) and OUT/recipe.md.

What it cannot say: seconds depend on the machine and its load (ratios of interleaved runs are what carry
over); 1,000 test images give each accuracy a binomial standard error of about 1.5 points, so a difference between
the recipes smaller than that over five seeds is not a difference.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import typing  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scarlab.config import LEGACY_RECIPE, RECIPE_KEYS, RECIPES, TrainConfig  # noqa: E402
from scarlab.device import resolve_device  # noqa: E402
from scarlab.runs import RunDir  # noqa: E402
from scarlab.train import resolve_recipe, run_train  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def options(spec: str) -> dict:
    """A recipe spec: a recipe's name, optionally with TrainConfig options over it: ``fast:bf16=true,epochs=16``."""
    name, _, rest = spec.partition(":")
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r} in {spec!r}; valid: {', '.join(RECIPES)}")
    types = typing.get_type_hints(TrainConfig)
    opts = {"recipe": name}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in RECIPE_KEYS or key == "recipe":
            raise SystemExit(f"{spec!r}: {key!r} is not a recipe option ({', '.join(RECIPE_KEYS[1:])})")
        kind = next(t for t in (bool, int, float, str) if t in (types[key], *typing.get_args(types[key])))
        opts[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return opts


def resolved(cfg: TrainConfig) -> TrainConfig:
    """The training options ``cfg`` runs with on this machine, as `run_train` resolves them."""
    return resolve_recipe(cfg, "digits" if cfg.dataset == "digits" else cfg.dataset, resolve_device(cfg.device))


MATCH = tuple(k for k in RECIPE_KEYS if k != "recipe") + ("model", "role", "seed")
"""What a reused run must have been trained with: every resolved recipe option, the model, role and seed."""


def complete(path: Path) -> bool:
    return (path / "manifest.json").is_file() and RunDir(path).status == "complete"


def made_from(path: Path, *parents: Path) -> bool:
    """``path`` is a complete run made after each of ``parents`` (not from runs trained again since)."""
    return complete(path) and RunDir(path).manifest.get("created", 0) >= max(
        RunDir(p).manifest["created"] for p in parents)


def trained(cfg: TrainConfig, path: Path, reuse: bool = True) -> RunDir:
    """The run at ``path`` when it is complete and was trained with ``cfg``'s options (:data:`MATCH`), else ``cfg``
    trained there now: a run another recipe made (the default recipe changed on 2026-12-05) is never reused."""
    run, want = RunDir(path), resolved(cfg)
    if reuse and complete(path):
        got = {**LEGACY_RECIPE, **run.config}
        if all(got.get(k) == getattr(want, k) for k in MATCH):
            return run
        print(f"{path}: trained with other options than asked; training it again", flush=True)
    return run_train(cfg, path, overwrite=True, progress=False)


def train(recipe: str, seed: int, data: str, out: Path) -> pd.DataFrame:
    path = out / f"{recipe.replace(':', '__').replace(',', '_').replace('=', '-')}__s{seed}"
    run = trained(TrainConfig(dataset=data, seed=seed, device="cpu", **options(recipe)), path)
    h, m = run.history(), run.manifest
    return pd.DataFrame({"seed": seed, "recipe": recipe, "epoch": h["epoch"], "seconds": h["time/epoch_s"].cumsum(),
                         "acc/test": h["acc/test"], "run_wall_s": m["finished"] - m["created"]})


def time_to(curve: pd.DataFrame, target: float) -> float | None:
    hit = curve[curve["acc/test"] >= target]
    return float(hit["seconds"].iloc[0]) if len(hit) else None


def report(curves: pd.DataFrame, targets: list[float], args, wall: float) -> list[str]:
    finals = curves.groupby(["recipe", "seed"]).tail(1).set_index(["recipe", "seed"])
    full = finals["seconds"].groupby(level=0).median()
    lines = [f"_{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()} CPU, {os.cpu_count()} cores, "
             f"torch {torch.__version__}, {args.threads} torch thread(s); load average at the end "
             f"{os.getloadavg()[0]:.1f}; this run's wall time {wall:.0f} s_", "",
             "| recipe | seeds | final test acc: mean [min, max] | training s: median [min, max] | "
             "run wall s (the stage, evaluations included): median [min, max] | "
             + " | ".join(f"s to {t:.1%}: median (reached) | ratio to {args.baseline}'s full time" for t in targets)
             + " |",
             "|---|---:|---|---|---|" + "---|---|" * len(targets)]
    for recipe in args.recipes:
        f = finals.loc[recipe]
        cells = [recipe, str(len(f)), f"{f['acc/test'].mean():.3f} [{f['acc/test'].min():.3f}, "
                 f"{f['acc/test'].max():.3f}]",
                 f"{f['seconds'].median():.1f} [{f['seconds'].min():.1f}, {f['seconds'].max():.1f}]",
                 f"{f['run_wall_s'].median():.1f} [{f['run_wall_s'].min():.1f}, {f['run_wall_s'].max():.1f}]"]
        for t in targets:
            hits = [time_to(c, t) for _, c in curves[curves.recipe == recipe].groupby("seed")]
            got = pd.Series([h for h in hits if h is not None], dtype=float)
            med = f"{got.median():.1f} ({len(got)}/{len(hits)})" if len(got) else f"not reached (0/{len(hits)})"
            ratio = f"{got.median() / full[args.baseline]:.2f}" if len(got) and args.baseline in full else "-"
            cells += [med, ratio]
        lines.append("| " + " | ".join(cells) + " |")
    shown = {r: {k: getattr(resolved(TrainConfig(dataset=args.data, **options(r))), k) for k in RECIPE_KEYS[1:]}
             for r in args.recipes}
    lines += ["", "Recipes: " + "; ".join(f"**{r}** {o}" for r, o in shown.items()) + ". Seconds: the training "
              "loop only (per-epoch test evaluation excluded); a target counts as reached at the end of the first "
              "epoch whose test accuracy is at or above it; 'ratio' divides that median by the baseline recipe's "
              "median full training time.", ""]
    return lines


CURVE_AT = (10, 20, 30, 45, 60, 90, 120)
"""Training seconds at which :func:`curves_table` reads each recipe's accuracy curve."""


def curves_table(curves: pd.DataFrame, recipes: list[str], at=CURVE_AT) -> list[str]:
    """The accuracy-against-seconds curves, sampled: per recipe and time t, the test accuracy of the last epoch each
    seed finished by t (mean [min, max] over the seeds that finished one; '–' before any did)."""
    lines = ["**Test accuracy against training seconds** (per seed: the last epoch finished by then; mean [min, max] "
             "over seeds, their count when not all)", "",
             "| recipe | " + " | ".join(f"{t} s" for t in at) + " |", "|---|" + "---|" * len(at)]
    for recipe in recipes:
        cells = []
        for t in at:
            got = [g[g["seconds"] <= t]["acc/test"].iloc[-1] for _, g in curves[curves.recipe == recipe].groupby("seed")
                   if (g["seconds"] <= t).any()]
            n = curves[curves.recipe == recipe]["seed"].nunique()
            cells.append("–" if not got else f"{np.mean(got):.3f} [{min(got):.3f}, {max(got):.3f}]"
                         + ("" if len(got) == n else f" ({len(got)}/{n})"))
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=f"imagefolder:{SHARED / 'cifar10-mini'}")
    ap.add_argument("--baseline", default="classic", help="the recipe the others are compared with (its mean final "
                    "accuracy is a target; its full training time divides the times to a target)")
    ap.add_argument("--recipes", nargs="+", default=["classic", "lab"],
                    help="recipe names, each optionally with options over it: fast:bf16=true,epochs=16")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", type=float, default=0.689, help="a fixed target accuracy (BENCHMARKS §5: 68.9 %%)")
    ap.add_argument("--name", default="recipe")
    ap.add_argument("--curves-only", action="store_true", help="no training: add the curves table of OUT/curves.csv "
                    "(an earlier run's) to OUT/recipe.md, or replace the one it has")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path("bench/out") / args.name
    if args.curves_only:
        curves = pd.read_csv(out / "curves.csv")
        text = (out / "recipe.md").read_text().split("**Test accuracy against training seconds**")[0].rstrip()
        (out / "recipe.md").write_text(text + "\n\n" + "\n".join(curves_table(curves, args.recipes)))
        print((out / "recipe.md").read_text())
        return
    out.mkdir(parents=True, exist_ok=True)
    t0, parts = time.perf_counter(), []
    for i, seed in enumerate(args.seeds):
        for recipe in (args.recipes if i % 2 == 0 else args.recipes[::-1]):
            parts.append(train(recipe, seed, args.data, out))
            last = parts[-1].iloc[-1]
            print(f"seed {seed} {recipe}: {last['acc/test']:.3f} in {last['seconds']:.1f} s", flush=True)
    curves = pd.concat(parts, ignore_index=True)
    curves.to_csv(out / "curves.csv", index=False)
    targets = [args.target]
    if args.baseline in args.recipes:
        base = curves[curves.recipe == args.baseline].groupby("seed").tail(1)["acc/test"].mean()
        targets.insert(0, round(float(base), 4))
    lines = ["## Training recipes on " + args.data.split("/")[-1], "", "`python bench/bench_recipe.py "
             + " ".join(sys.argv[1:]) + "`", ""] + report(curves, targets, args, time.perf_counter() - t0)
    lines += curves_table(curves, args.recipes)
    (out / "recipe.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
