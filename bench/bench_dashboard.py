"""Dashboard page render times with Streamlit's AppTest on synthetic-but-valid run directories.

The main unlearning run has 20 feature snapshots × 3,000 probe points (the issue's size); around it: its
original and retrained runs, more methods × seeds with metrics, histories and MIA curves, plus a failed, a
running and a malformed run. Every page is rendered cold (empty caches) and warm, and the main widgets are
moved (step slider, method switch). Goal: every page ≤ 2 s.

    python bench/bench_dashboard.py                   # table of seconds per page
    python bench/bench_dashboard.py --keep /tmp/runs  # also keep the run folders (e.g. for `scarlab dashboard`)
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
K = 10
METHODS = ("scar", "scar_self", "finetune", "scrub")


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1))


def _manifest(path: Path, stage: str, status: str = "complete", parents: dict | None = None, error=None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    m = {"id": path.name, "stage": stage, "status": status, "created": time.time(), "parents": parents or {},
         "files": []}
    if error:
        m["error"] = error
    _write_json(path / "manifest.json", m)


def _parquet(df: pd.DataFrame, path: Path, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(df, preserve_index=False)
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), b"scarlab": json.dumps(meta).encode()})
    pq.write_table(t, path, compression="zstd")


def _probe(n_points: int, rng) -> pd.DataFrame:
    """Probe layout like scarlab.trace.Probe: forget train (class 0), retain test (1..9), forget test (class 0)."""
    n_f = n_points // 6
    n_ft = n_points // 12
    n_r = n_points - n_f - n_ft
    group = np.r_[np.zeros(n_f), np.ones(n_r), np.full(n_ft, 2)].astype(np.int8)
    label = np.r_[np.zeros(n_f), rng.integers(1, K, n_r), np.zeros(n_ft)].astype(np.int16)
    target = np.where(label == 0, rng.integers(1, K, len(label)), rng.integers(0, K, len(label))).astype(np.int16)
    return pd.DataFrame({"point": np.arange(len(group), dtype=np.int32), "group": group,
                         "index": rng.integers(0, 50_000, len(group)), "label": label, "target": target})


def _centres() -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, K, endpoint=False)
    return np.c_[6 * np.cos(a), 6 * np.sin(a)].astype(np.float32)


def _embedding(probe: pd.DataFrame, steps: list[int], rng, speed: float = 1.0) -> pd.DataFrame:
    """Forget points travel from the class-0 cloud to their target's cloud over the steps."""
    c = _centres()
    noise = rng.normal(0, 0.6, (len(probe), 2)).astype(np.float32)
    start = c[probe["label"].to_numpy()] + noise
    end = c[probe["target"].to_numpy()] + noise
    moving = (probe["group"] != 1).to_numpy()
    frames = []
    for i, s in enumerate(steps):
        t = min(1.0, speed * i / max(len(steps) - 1, 1))
        xy = np.where(moving[:, None], start * (1 - t) + end * t, start + rng.normal(0, 0.05, start.shape))
        pred = np.where(moving & (t > 0.5), probe["target"], probe["label"])
        d_own = np.where(moving, 0.1 + 0.5 * t, 0.1) + rng.random(len(probe)) * 0.05
        d_tgt = np.where(moving, 0.6 - 0.5 * t, 0.6) + rng.random(len(probe)) * 0.05
        frames.append(probe.assign(step=np.int32(s), pred=pred.astype(np.int16), conf=np.float32(0.9),
                                   dist_own=d_own.astype(np.float32), dist_target=d_tgt.astype(np.float32),
                                   x=xy[:, 0].astype(np.float32), y=xy[:, 1].astype(np.float32)))
    cols = ["step", "point", "group", "index", "label", "pred", "target", "conf", "dist_own", "dist_target", "x", "y"]
    return pd.concat(frames, ignore_index=True)[cols]


def _thumbs(probe: pd.DataFrame, rng) -> pd.DataFrame:
    from PIL import Image

    pngs = []
    for lbl in probe["label"]:
        img = (rng.random((32, 32, 3)) * 80 + np.array([20 * lbl, 120, 200 - 15 * lbl])).clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        pngs.append(base64.b64encode(buf.getvalue()).decode())
    return pd.DataFrame({"point": probe["point"], "group": probe["group"], "index": probe["index"], "png": pngs})


def make_runs(root: Path, snapshots: int = 20, points: int = 3000, seeds=(0, 1, 2)) -> Path:
    """Write the synthetic run folders under ``root``; returns the main unlearning run."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    cfg = {"dataset": "cifar10", "model": "smallcnn"}
    orig = root / "cifar10__smallcnn__original"
    _manifest(orig, "train_original")
    _write_json(orig / "config.json", {**cfg, "role": "original", "seed": 0})
    _write_json(orig / "metrics.json", {"acc/train": 0.99, "acc/test": 0.9})
    retr = root / "cifar10__smallcnn__retrained__CR-f0"
    _manifest(retr, "train_retrained")
    _write_json(retr / "config.json", {**cfg, "role": "retrained", "scenario": "CR", "forget_classes": [0], "seed": 0})
    _write_json(retr / "metrics.json", {"acc/forget_test": 0.0, "acc/retain_test": 0.9, "aus": 1.0,
                                        "mia/svc/acc": 0.5, "acc/forget_train": 0.0})
    probe = _probe(points, rng)
    oracle = _embedding(probe, [0], rng)
    oracle["pred"] = np.where(oracle["label"] == 0, oracle["target"], oracle["label"]).astype(np.int16)
    classes = [f"class{i}" for i in range(K)]
    _parquet(oracle, retr / "embedding.parquet", {"role": "retrained", "axes": "aligned to original",
                                                 "classes": classes})
    thumbs = _thumbs(probe, rng)
    _parquet(thumbs, retr / "thumbs.parquet", {})
    steps = [int(round(s)) for s in np.linspace(0, 5 * (snapshots - 1), snapshots)]
    main = None
    for mi, method in enumerate(METHODS):
        for seed in seeds:
            run = root / f"cifar10__smallcnn__{method}__CR-f0__s{seed}"
            _manifest(run, "unlearn", parents={"original": str(orig), "retrained": str(retr)})
            _write_json(run / "config.json", {**cfg, "method": method, "scenario": "CR", "forget_classes": [0],
                                              "seed": seed, "original": str(orig), "probe_forget": 500,
                                              "probe_retain": 1000})
            emb = _embedding(probe, steps, rng, speed=1.0 / (1 + mi))
            _parquet(emb, run / "embedding.parquet", {"role": "unlearn", "axes": "original", "classes": classes,
                                                      "reducer_run": str(orig)})
            _parquet(thumbs, run / "thumbs.parquet", {})
            feats = run / "features"
            feats.mkdir()
            if main is None:  # the big one also carries real-format snapshots (small feature dim)
                for s in steps:
                    e = emb[emb["step"] == s]
                    np.savez(feats / f"step_{s:06d}.npz", step=np.int64(s),
                             features=rng.random((len(e), 16)).astype(np.float16),
                             logits=rng.random((len(e), K)).astype(np.float16), labels=e["label"].to_numpy(np.int64),
                             preds=e["pred"].to_numpy(np.int64), group=e["group"].to_numpy(np.int8),
                             index=e["index"].to_numpy(np.int64), targets=e["target"].to_numpy(np.int64),
                             dist_own=e["dist_own"].to_numpy(np.float32),
                             dist_target=e["dist_target"].to_numpy(np.float32))
                main = run
            hist = []
            for i in range(steps[-1] + 1):
                row = {"step": i, "epoch": i // 10 + 1, "loss/forget": math.exp(-i / 30), "loss/retain": 0.1}
                if i in steps:
                    t = steps.index(i) / (len(steps) - 1)
                    row.update({"snapshot": 1, "probe/acc/forget_train": max(0.0, 1 - t * (1 + mi) ** -0.5),
                                "probe/acc/retain_test": 0.9 - 0.05 * t * mi, "probe/acc/forget_test": 1 - t})
                hist.append(row)
            pd.DataFrame(hist).to_csv(run / "history.csv", index=False)
            pd.DataFrame({"step": steps, "mia/loss_lr/acc": np.linspace(0.8, 0.5 + 0.05 * mi, len(steps)),
                          "mia/conf_thr/acc": np.linspace(0.75, 0.52, len(steps))}).to_csv(run / "mia_steps.csv",
                                                                                        index=False)
            r = np.random.default_rng(mi * 10 + seed)
            _write_json(run / "metrics.json", {
                "acc/forget_train": 0.01 * r.random(), "acc/forget_test": 0.02 * r.random() + 0.01 * mi,
                "acc/retain_test": 0.88 - 0.03 * mi + 0.01 * r.random(), "acc/test": 0.8,
                "aus": 0.95 - 0.1 * mi + 0.02 * r.random(), "mia/svc/acc": 0.5 + 0.05 * mi * r.random(),
                "time/unlearn_s": (1 + mi) * (3 + r.random())})
            _write_json(run / "perclass.json", {"class_names": classes,
                                                "per_class_test": [0.01] + list(0.85 + 0.1 * r.random(K - 1))})
    # the awkward ones
    failed = root / "cifar10__smallcnn__scrub__CR-f0__s9_failed"
    _manifest(failed, "unlearn", "failed", error="ScarlabError: loss/forget became nan at step 3")
    _write_json(failed / "config.json", {**cfg, "method": "scrub", "scenario": "CR", "forget_classes": [0], "seed": 9})
    (failed / "error.txt").write_text("Traceback ...\nScarlabError: loss/forget became nan at step 3\n")
    running = root / "cifar10__smallcnn__scar__CR-f0__s7_running"
    _manifest(running, "unlearn", "running")
    (running / "history.csv").write_text("step,loss/forget\n0,1.0\n1,0.9\n")
    bad = root / "broken_run"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    (bad / "features").mkdir()
    (bad / "features" / "step_000000.npz").write_bytes(b"PK\x03\x04 truncated")
    return main


def _timed(at, action=None) -> float:
    t0 = time.perf_counter()
    if action is not None:
        action(at)
    at.run()
    dt = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(f"page raised: {at.exception[0].value}")
    return dt


def bench(root: Path, repeats: int = 3) -> pd.DataFrame:
    from streamlit.testing.v1 import AppTest

    os.environ["SCARLAB_RUNS"] = str(root)
    rows = []
    # imports (streamlit, plotly, pyarrow) happen once per process: measured and reported on their own
    at = AppTest.from_file(str(APP), default_timeout=300)
    rows.append(("(process warm-up: first run, imports)", "runs", _timed(at)))
    from scarlab_dashboard.app import PAGES

    for page, _title, _icon in PAGES:
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.run()  # the default page, then switch (caches are process-wide: clear them for the cold number)
        import streamlit as st
        st.cache_data.clear()
        st.cache_resource.clear()
        at.switch_page(f"views/{page}.py")
        rows.append(("cold (empty caches)", page, _timed(at)))
        for _ in range(repeats):
            rows.append(("warm rerun", page, _timed(at)))
        if page == "migration":
            slider = at.select_slider[0]
            opts = list(slider.options)
            for v in (opts[len(opts) // 2], opts[0]):
                rows.append(("move step slider", page, _timed(at, lambda a, v=v: a.select_slider[0].set_value(v))))
            methods = at.selectbox(key="migration_method").options
            rows.append(("switch method", page, _timed(at, lambda a: a.selectbox(key="migration_method")
                                                       .set_value(methods[1]))))
        if page == "distances":
            rows.append(("move step slider", page, _timed(at, lambda a: a.select_slider[0].set_value(
                a.select_slider[0].options[0]))))
    return pd.DataFrame(rows, columns=["what", "page", "seconds"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snapshots", type=int, default=20)
    ap.add_argument("--points", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", default=None, help="write the runs here (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp).resolve()
        t0 = time.perf_counter()
        main_run = make_runs(root, args.snapshots, args.points)
        print(f"synthetic runs in {root} ({time.perf_counter() - t0:.1f} s); main run {main_run.name}: "
              f"{args.snapshots} snapshots x {args.points} points")
        df = bench(root, args.repeats)
    summary = df.groupby(["page", "what"], sort=False)["seconds"].agg(["median", "max", "count"])
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    worst = df[~df["what"].str.startswith("(")].groupby("page")["seconds"].max()
    print("\nworst render per page (s): " + ", ".join(f"{p} {v:.2f}" for p, v in worst.items()))
    ok = bool((worst <= 2.0).all())
    print("goal <= 2 s per page:", "met" if ok else "NOT met (this CPU is shared: rerun when idle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
