"""Scaled reproduction of the paper on cifar10-mini (ood-mini as surrogate), through `scarlab pipeline`.

    python bench/bench_repro.py cr --classes 0 1 2 --seeds 0 1 2          # class removal, every method
    python bench/bench_repro.py cr --classes 0 1 --seeds 0 1 2 --seeded scar,scar_self --epochs 8   # CPU-sized
    python bench/bench_repro.py hr --seeds 0 1 2                           # homogeneous removal, 500 images
    python bench/bench_repro.py surrogate --classes 0 --seeds 0 1 2        # ood-mini 1/2/4 chunks vs noise
    python bench/bench_repro.py cr --methods scar --set scar.lr=0.00025 --name cr_scar_lr   # a parameter variant
    python bench/bench_repro.py cr --model resnet18 --device cuda --jobs 4 --out bench/out/repro_gpu  # GPU (issue 8.5)

Each part runs the real pipeline (stage notebooks through papermill, smallcnn original and retrained models
trained with the default recipe — lab, 18 epochs; `--set train.recipe=classic` for the 30-epoch recipe of the
tables before 2026-12-05 — every stage evaluated) into one pipeline root OUT/runs/ (default OUT: bench/out/repro), so the original
model is trained once for all parts and completed stages are reused when a command is repeated, and writes
OUT/<part>.md: the paper-style table (mean ± std over forget classes and seeds)
and the goals of issue 8 checked against it. Data: $SCARLAB_SHARED_DATA (default ../shared/data next to the
repo) / cifar10-mini and ood-mini. Peak memory is the largest resident set of one stage kernel.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scarlab.config import RECIPES, TrainConfig  # noqa: E402
from scarlab.errors import ScarlabError  # noqa: E402
from scarlab.pipeline import PipelineConfig, parse_sets, run_pipeline  # noqa: E402
from scarlab.unlearn import METHODS  # noqa: E402

SHARED = Path(os.environ.get("SCARLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA, OOD = f"imagefolder:{SHARED / 'cifar10-mini'}", f"imagefolder:{SHARED / 'ood-mini'}"
COLS = {"acc/retain_test": "retain-test", "acc/forget_test": "forget-test", "acc/test": "test",
        "acc/forget_train": "forget-train", "mia/svc/acc": "MIA (SVC, paper's F1)", "mia/svc/chance": "SVC chance",
        "mia/loss_lr/acc": "MIA (loss LR)",
        "aus": "AUS", "time/unlearn_s": "time (s)"}  # time: unlearning, or training for original / retrained


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, load {os.getloadavg()[0]:.1f}"


STAGE_SECONDS: dict[str, float] = {}
"""every stage record this process planned -> its seconds (reused stages included: what the part costs from scratch)."""


def run(cfg: PipelineConfig) -> tuple[pd.DataFrame, float]:
    """the summary and this invocation's wall time; records the stages' own seconds in STAGE_SECONDS."""
    t0 = time.perf_counter()
    res = run_pipeline(cfg, progress=True)
    for s in res.failed:
        print(f"FAILED {s.label}: {s.error}", file=sys.stderr)
    for s in res.stages:
        STAGE_SECONDS[f"{Path(s.run_dir).resolve()}:{s.kind}"] = stage_seconds(Path(s.run_dir), s.kind)
    df = res.summary()
    if df is None:
        return pd.DataFrame(), time.perf_counter() - t0
    # the original and the retrained oracle have no unlearning time: their training time (manifest) instead
    df["time/unlearn_s"] = [t if t == t else train_seconds(r) for t, r in zip(df["time/unlearn_s"], df["run"])]
    return df, time.perf_counter() - t0


def stage_seconds(run_dir: Path, kind: str) -> float:
    """The stage's own seconds from its record: the run's manifest.json (the compare stage: pipeline.json)."""
    record = run_dir / ("pipeline.json" if kind == "compare" else "manifest.json")
    try:
        return float(json.loads(record.read_text())["stages"][kind]["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def train_seconds(run: str) -> float:
    try:
        m = json.loads((Path(run) / "manifest.json").read_text())
        return float(m["finished"] - m["created"]) if m.get("stage", "").startswith("train") else float("nan")
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")


def table(df: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """mean ± std per group of the COLS metrics (accuracies and MIA in %), groups in order of appearance."""
    df = df[df["status"] == "complete"] if "status" in df else df  # failed runs are listed, not averaged
    rows = []
    for key, g in df.groupby(by, sort=False):
        row = {by: key, "runs": len(g)}
        for col, name in COLS.items():
            v = pd.to_numeric(g[col], errors="coerce").dropna() if col in g else pd.Series(dtype=float)
            scale = 1 if col in ("aus", "time/unlearn_s") else 100
            fmt = "{:.3f}" if col == "aus" else "{:.1f}"
            row[name] = "—" if v.empty else fmt.format(v.mean() * scale) + (
                f" ± {fmt.format(v.std(ddof=1) * scale)}" if len(v) > 1 else "")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    cells = [list(map(str, df.columns))] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in cells[:1] + [["---"] * len(df.columns)] + cells[1:])


def mean(df: pd.DataFrame, method: str, col: str) -> float:
    v = pd.to_numeric(df.loc[df["method"] == method, col], errors="coerce").dropna()
    return float(v.mean()) if len(v) else float("nan")


def spent(wall: float) -> str:
    return (f"this invocation's wall time {wall:.0f} s; stage compute {sum(STAGE_SECONDS.values()):.0f} s (the sum "
            f"of its {len(STAGE_SECONDS)} stages' own seconds, stages reused from earlier invocations included)")


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def part_cr(a) -> str:
    methods = a.methods or list(METHODS)
    # every seed for the methods in --seeded (SCAR's own numbers), the first seed only for the rest (CPU time)
    seeded = [m for m in methods if a.seeded is None or m in a.seeded]
    frames, wall = [], 0.0
    for ms, seeds in ((methods, a.seeds[:1]), (seeded, a.seeds[1:])):
        if ms and seeds:
            cfg = PipelineConfig(dataset=DATA, surrogate=OOD, scenario="CR", forget_classes=[[c] for c in a.classes],
                                 methods=ms, seeds=seeds, epochs=a.epochs, out=str(a.out / "runs"), device=a.device,
                                 model=a.model, jobs=a.jobs, params=a.params)
            df, w = run(cfg)
            frames.append(df)
            wall += w
    df = pd.concat(frames, ignore_index=True).drop_duplicates("run")
    df.to_csv(a.out / f"{a.name}.csv", index=False)
    aus = {m: mean(df, m, "aus") for m in ["retrained", *methods]}
    lines = [f"Classes {a.classes}; seeds {a.seeds} for {', '.join(seeded)}, seed {a.seeds[0]} for the other methods; "
             f"{training(a)} on {a.device}; "
             f"{spent(wall)}.", "", markdown(table(df)), "",
             "Goals and the paper's ordering (CIFAR-100 table: SCAR above NegativeGradient and RandomLabels, "
             "close to DUCK; retrained ≈ 1):", ""]
    if "scar" in aus:
        lines.append(f"- SCAR mean AUS {aus['scar']:.3f} ≥ 0.93: {verdict(aus['scar'] >= 0.93)}")
        lines.append(f"- SCAR within 0.05 of the retrained oracle ({aus['retrained']:.3f}): "
                     f"{verdict(aus['retrained'] - aus['scar'] <= 0.05)}")
        for other in ("negative_gradient", "random_labels"):
            if other in aus:
                lines.append(f"- SCAR {aus['scar']:.3f} above {other} {aus[other]:.3f}: "
                             f"{verdict(aus['scar'] > aus[other])}")
        if "duck" in aus:
            lines.append(f"- SCAR {aus['scar']:.3f} close to DUCK {aus['duck']:.3f} (|Δ| ≤ 0.03): "
                         f"{verdict(abs(aus['scar'] - aus['duck']) <= 0.03)}")
    lines.append(f"- retrained AUS {aus['retrained']:.3f} ≈ 1: {verdict(aus['retrained'] >= 0.97)}")
    ranking = sorted(((v, m) for m, v in aus.items() if m != "retrained" and v == v), reverse=True)
    lines.append("- AUS ranking: " + " > ".join(f"{m} {v:.3f}" for v, m in ranking))
    one = df[(df["forget_classes"].astype(str) == str(a.classes[0])) & (df["seed"] == a.seeds[0])]
    lines += ["", f"One class, one seed (class {a.classes[0]}, seed {a.seeds[0]}): every method", "",
              markdown(table(one))]
    return "\n".join(lines)


def part_hr(a) -> str:
    cfg = PipelineConfig(dataset=DATA, surrogate=OOD, scenario="HR", forget_size=a.forget_size, split_seed=0,
                         methods=a.methods or ["scar", "scar_self", "finetune"], seeds=a.seeds, epochs=a.epochs,
                         out=str(a.out / "runs"), device=a.device, model=a.model, jobs=a.jobs, params=a.params)
    df, wall = run(cfg)
    df.to_csv(a.out / f"{a.name}.csv", index=False)
    test0 = mean(df, "original", "acc/test")
    lines = [f"Forget {a.forget_size} random training images (split seed 0, one retrained oracle), unlearning "
             f"seeds {a.seeds}; "
             f"{spent(wall)}.", "", markdown(table(df)), ""]
    for m in [m for m in df["method"].unique() if m not in ("original",)]:
        g = df[df["method"] == m]
        gap = (pd.to_numeric(g["acc/forget_train"]) - pd.to_numeric(g["acc/test"])).abs().mean() * 100
        drop = (test0 - mean(df, m, "acc/test")) * 100
        lines.append(f"- {m}: |forget − test| = {gap:.1f} points (goal ≤ 3: {verdict(gap <= 3)}); test accuracy "
                     f"{drop:+.1f} points below the original (goal ≤ 3: {verdict(drop <= 3)})")
    return "\n".join(lines)


def part_surrogate(a) -> str:
    frames, wall = [], 0.0
    for label, surrogate, chunks in [("ood-mini, 1 chunk (500 images)", OOD, 1), ("ood-mini, 2 chunks", OOD, 2),
                                     ("ood-mini, 4 chunks", OOD, 4), ("gaussian noise (2,000)", "gaussian_noise", None)]:
        cfg = PipelineConfig(dataset=DATA, surrogate=surrogate, surrogate_chunks=chunks, scenario="CR",
                             forget_classes=[[c] for c in a.classes], methods=["scar"], seeds=a.seeds,
                             epochs=a.epochs, out=str(a.out / "runs"), device=a.device, model=a.model, jobs=a.jobs,
                             params=a.params)
        df, w = run(cfg)
        if not frames:
            frames.append(df[df["method"] == "retrained"].assign(surrogate="(retrained oracle)"))
        frames.append(df[df["method"] == "scar"].assign(surrogate=label))
        wall += w
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(a.out / f"{a.name}.csv", index=False)
    return "\n".join([f"SCAR, classes {a.classes}, seeds {a.seeds}; {spent(wall)}.", "",
                      markdown(table(df, by="surrogate"))])


def training(a) -> str:
    """The original and retrained models as the tables name them: epochs, model, recipe."""
    t = a.params.get("train", {})
    recipe = t.get("recipe", TrainConfig.recipe)
    extra = "".join(f", {k}={v}" for k, v in t.items() if k not in ("recipe", "epochs"))
    return (f"{a.epochs or t.get('epochs') or RECIPES[recipe]['epochs']}-epoch {a.model or 'smallcnn'} "
            f"original/retrained ({recipe} recipe{extra})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["cr", "hr", "surrogate"])
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", type=lambda s: s.split(","), default=None, help="comma-separated; default: all")
    ap.add_argument("--seeded", type=lambda s: s.split(","), default=None,
                    help="cr: methods run with every seed (default: all); the others run with the first seed only")
    ap.add_argument("--epochs", type=int, default=None, help="original/retrained epochs (default: the recipe's)")
    ap.add_argument("--forget-size", type=int, default=500)
    ap.add_argument("--model", default=None, help="registered model (default: smallcnn)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    ap.add_argument("--jobs", type=int, default=1, help="stages run at once (a GPU fits several small ones)")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                    help="a method parameter for every run of this part, e.g. scar.lr=0.00025 (repeatable)")
    ap.add_argument("--name", default=None, help="result files OUT/NAME.md and .csv (default: the part)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/repro"))
    a = ap.parse_args()
    a.name = a.name or a.part
    try:
        a.params = parse_sets(a.set)
    except ScarlabError as exc:
        sys.exit(f"bench_repro: {exc}")
    for p in (SHARED / "cifar10-mini", SHARED / "ood-mini"):
        if not p.is_dir():
            sys.exit(f"bench_repro: {p} not found; set SCARLAB_SHARED_DATA to the folder holding cifar10-mini and ood-mini")
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    body = {"cr": part_cr, "hr": part_hr, "surrogate": part_surrogate}[a.part](a)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    text = (f"`python bench/bench_repro.py {' '.join(sys.argv[1:])}` — {machine()}; "
            f"{time.perf_counter() - t0:.0f} s, peak stage memory {peak:.0f} MiB\n\n{body}\n")
    (a.out / f"{a.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
