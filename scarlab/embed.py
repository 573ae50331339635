"""UMAP coordinates of feature snapshots, computed once in the pipeline so the dashboard only reads them.

One reducer per trained model, fitted once on that model's penultimate features of a fixed reference
sample of the data set (train ∪ test, split-independent) and kept in the model's run directory::

    <original run>/umap_reference.npz   the fitted reducer as plain arrays (no pickle): reference features
                                        [R, D] f16, their UMAP coordinates [R, 2], the reference images' positions
    <original run>/umap.json            its key (data set, checkpoint hash, reference sample, UMAP settings)

Every snapshot of every unlearning run that descends from an original is *transformed* (never refitted)
with the original's reducer, so all frames of all methods share axes. A retrained oracle has a different
feature space, so it gets its own reducer (same reference images) and a single-step embedding of the
same probe points; its coordinates are then Procrustes-aligned to the original's map through the shared
reference images, so class clouds sit in roughly the same places in every panel.

Outputs written into the run being embedded::

    embedding.parquet   one row per (snapshot step, probe point): step, point, group, index, label, pred,
                        target, conf, dist_own, dist_target, x, y  (+ JSON in the schema metadata)
    thumbs.parquet      point, group, index, png (base64 PNG of the probe image) — the dashboard shows
                        thumbnails without the data set
"""
from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .errors import ScarlabError
from .runs import ORIGINAL, RETRAINED, RunDir, replacing, write_json

EMBED_VERSION = 1
REFERENCE_POINTS = 2000
"""reference images the reducer is fitted on (fewer if the data set is smaller)."""
UMAP_SETTINGS = dict(n_neighbors=15, min_dist=0.1, n_epochs=200, metric="euclidean", random_state=0)
"""fixed settings: a modest n_epochs keeps a fit to a few seconds; a fixed random_state makes it repeatable."""
THUMB_MIN_SIDE = 64
"""thumbnails smaller than this are upscaled (nearest neighbour) so 8-px digits stay crisp in the browser."""



# ----------------------------------------------------------------------------- helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reference(ds, n: int = REFERENCE_POINTS, seed: int = 0):
    """A fixed sample of train ∪ test images: (images uint8 [R, C, H, W], positions [R] into train ++ test)."""
    import torch

    total = len(ds.train) + len(ds.test)
    pos = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    ntr = len(ds.train)
    tr, te = pos[pos < ntr], pos[pos >= ntr] - ntr
    images = torch.cat([ds.train.images[torch.as_tensor(tr)], ds.test.images[torch.as_tensor(te)]])
    return images, pos


@dataclass
class Reducer:
    """A fitted map from a model's feature space to 2-D: UMAP's embedding of the reference features.

    ``features`` float32 [R, D] (the model's reference features), ``xy`` float32 [R, 2] (their UMAP coordinates),
    ``positions`` [R] (the reference images, see ``_reference``), ``key`` (what it was fitted on).
    """

    features: np.ndarray
    xy: np.ndarray
    positions: np.ndarray
    key: dict
    n_neighbors: int = UMAP_SETTINGS["n_neighbors"]

    def transform(self, feats: np.ndarray, chunk: int = 4096, epochs: int | None = None) -> np.ndarray:
        """New points [N, D] -> [N, 2] against the fixed map, without refitting: UMAP's ``transform`` in numpy.

        As umap-learn does: fuzzy k-nearest-neighbour weights to the reference points (exact Euclidean
        neighbours; per-point σ with Σ_j exp(−d_j/σ) = log2 k), start at the weighted mean of the neighbours'
        coordinates, then ``epochs`` (default n_epochs / 3, as umap-learn) of its attraction / negative-sampling
        repulsion updates with the reference points held fixed — vectorised per epoch instead of umap-learn's
        per-edge loop, which costs ~2 ms per point on this CPU (minutes for 20 snapshots × 3,000 points) plus
        ~15-60 s of numba compilation per process. Deterministic: the same input gives the same output.
        """
        q = np.ascontiguousarray(feats, np.float32)
        ref = self.features
        k = min(self.n_neighbors, len(ref))
        epochs = int(UMAP_SETTINGS["n_epochs"] // 3) if epochs is None else int(epochs)
        rn = np.einsum("ij,ij->i", ref, ref)
        out = np.empty((len(q), 2), np.float32)
        for s in range(0, len(q), chunk):
            qc = q[s:s + chunk]
            d2 = np.einsum("ij,ij->i", qc, qc)[:, None] + rn[None, :] - 2.0 * (qc @ ref.T)
            idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
            d = np.sqrt(np.maximum(np.take_along_axis(d2, idx, 1), 0.0)).astype(np.float64)
            w = _fuzzy_weights(d, k)
            init = (w[:, :, None] * self.xy[idx]).sum(1) / np.maximum(w.sum(1), 1e-12)[:, None]
            out[s:s + chunk] = _refine(init, self.xy, idx, w, epochs, seed=s)
        return out


_AB = (1.5769434604, 0.8950608780)  # umap's find_ab_params(spread=1, min_dist=0.1): the curve 1 / (1 + a d^2b)


def _refine(y: np.ndarray, ref_xy: np.ndarray, idx: np.ndarray, w: np.ndarray, epochs: int, seed: int = 0,
            negative_rate: int = 5) -> np.ndarray:
    """umap-learn's transform optimisation, vectorised over points: each epoch every point is pulled towards
    its neighbours (edge weights relative to its strongest, as umap samples edges) and pushed from
    ``negative_rate`` random reference points; step size 1/4 decaying linearly, gradients clipped to ±4."""
    if epochs <= 0 or not len(y):
        return y.astype(np.float32)
    a, b = _AB
    y = y.astype(np.float32).copy()
    wn = (w / np.maximum(w.max(1, keepdims=True), 1e-12)).astype(np.float32)  # [n, k]
    scale = wn.sum(1, keepdims=True) / negative_rate  # positive samples per epoch, each with negative_rate negatives
    anchors = ref_xy[idx].astype(np.float32)  # [n, k, 2]
    ref_xy = ref_xy.astype(np.float32)
    rng = np.random.default_rng(UMAP_SETTINGS["random_state"] + seed)
    tiny = np.float32(1e-12)
    for e in range(epochs):
        alpha = np.float32(0.25 * (1.0 - e / epochs))
        diff = y[:, None, :] - anchors
        d2 = np.maximum((diff * diff).sum(-1), tiny)
        pb = np.exp(np.float32(b) * np.log(d2))  # d^2b
        coef = (-2 * a * b) * (pb / d2) / (a * pb + 1)  # attraction: -2ab d^(2b-2) / (1 + a d^2b)
        step = (np.clip(coef[..., None] * diff, -4, 4) * wn[..., None]).sum(1)
        diff = y[:, None, :] - ref_xy[rng.integers(0, len(ref_xy), (len(y), negative_rate))]
        d2 = np.maximum((diff * diff).sum(-1), tiny)
        pb = np.exp(np.float32(b) * np.log(d2))
        coef = (2 * b) / ((0.001 + d2) * (a * pb + 1))  # repulsion: 2b / ((0.001 + d^2)(1 + a d^2b))
        step += np.clip(coef[..., None] * diff, -4, 4).sum(1) * scale
        y += alpha * step
    return y.astype(np.float32)


def _fuzzy_weights(d: np.ndarray, k: int, iters: int = 64) -> np.ndarray:
    """exp(−d/σ) per row with σ found by bisection so that each row sums to log2(k) (umap's smooth_knn_dist
    with local_connectivity 0, as its transform uses). d: [N, k] distances >= 0."""
    target = np.log2(k)
    lo, hi = np.zeros(len(d)), np.full(len(d), np.inf)
    sigma = np.ones(len(d))
    for _ in range(iters):
        total = np.exp(-d / sigma[:, None]).sum(1)
        big = total > target  # sigma too large
        hi = np.where(big, sigma, hi)
        lo = np.where(big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    mean_d = d.mean()
    sigma = np.maximum(sigma, 1e-3 * (mean_d if mean_d > 0 else 1.0))
    return np.exp(-d / sigma[:, None])


_REFITTED: set[str] = set()  # runs whose reducer was refitted in this process (``force`` refits each once)


UMAP_JIT_CACHED = ("umap.utils:fast_knn_indices", "umap.umap_:smooth_knn_dist",
                   "umap.umap_:compute_membership_strengths")
"""umap-learn's numba functions that a fit under :data:`UMAP_EXACT_BELOW` points compiles and umap-learn does not
keep on disk. :func:`_fit_umap` turns numba's disk cache on for them (what ``cache=True`` does, keyed by their source),
so only the first process on a machine compiles them (a digits fit in a fresh process: 9.50 s of CPU before, 3.52 s
with this cache, 2.06 s with :func:`_exact_knn` too; ``python bench/bench_embed_fit.py``, BENCHMARKS.md)."""
UMAP_EXACT_BELOW = 4096
"""umap-learn's own threshold: below it a fit computes exact nearest neighbours, from it on approximate ones."""


@functools.cache
def _cache_umap_compiles() -> bool:
    """Numba's disk cache on for :data:`UMAP_JIT_CACHED` (once per process); False where a name is no longer a numba
    function in the installed umap-learn or numba finds no folder to write to (then those compile in every process,
    as before)."""
    done = True
    for name in UMAP_JIT_CACHED:
        module, attr = name.split(":")
        func = getattr(importlib.import_module(module), attr, None)
        try:
            func.enable_caching()
        except (AttributeError, RuntimeError):  # not a numba function now; no writable cache folder
            done = False
    return done


def _fit_umap(feats: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

        _cache_umap_compiles()
        x = np.ascontiguousarray(feats, np.float32)
        knn = _exact_knn(x) if len(x) < UMAP_EXACT_BELOW else (None, None, None)  # (None, ...): umap-learn's own
        reducer = umap.UMAP(n_components=2, n_jobs=1, low_memory=True, precomputed_knn=knn, **UMAP_SETTINGS)
        return np.asarray(reducer.fit_transform(x), np.float32)


def _exact_knn(x: np.ndarray, block_bytes: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The exact Euclidean nearest neighbours umap-learn finds for fewer than :data:`UMAP_EXACT_BELOW` points,
    computed the way it does (float32 differences squared, summed in float64, the root kept as float32; ties in index
    order), a few rows at a time (what fits in a cache). umap-learn itself asks scikit-learn for the distance matrix
    with its numba metric as a Python callable, one call per pair of points (~1.6 s of a digits fit). Handed to
    umap-learn as ``precomputed_knn``, the coordinates came out the same to the bit on every input tried
    (bench/bench_embed_fit.py, tests/test_dashboard.py)."""
    k = UMAP_SETTINGS["n_neighbors"]
    block = max(1, block_bytes // max(1, x.nbytes))  # rows whose differences to all points fit in ~1 MB
    idx = np.empty((len(x), k), np.int64)
    dist = np.empty((len(x), k), np.float32)
    for lo in range(0, len(x), block):
        diff = x[lo:lo + block, None, :] - x[None, :, :]
        d = np.sqrt(np.square(diff, out=diff).sum(-1, dtype=np.float64)).astype(np.float32)  # as scikit-learn keeps it
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        idx[lo:lo + block], dist[lo:lo + block] = nearest, np.take_along_axis(d, nearest, axis=1)
    return idx, dist


def reducer_for(model_run: str | Path, ds=None, device: str = "cpu", force: bool = False,
                progress: bool = False) -> Reducer:
    """The reducer of a trained model's run (original or retrained): loaded if its key matches, else fitted.

    Stored as ``umap_reference.npz`` (reference features, coordinates, positions; plain arrays, no pickle) and
    ``umap.json`` (key, what it was fitted on, timings) in that run directory.
    """
    run = RunDir(model_run).require_complete("model run")
    cfg = run.config
    ckpt = run.file("checkpoints/model.pt")
    if not ckpt.is_file():
        raise ScarlabError(f"{run.path} has no checkpoints/model.pt to compute features with")
    key = {"version": EMBED_VERSION, "dataset": cfg.get("dataset"), "checkpoint_sha256": _sha256(ckpt),
           "reference_points": REFERENCE_POINTS, "reference_seed": 0, "umap": UMAP_SETTINGS}
    info_f, ref_f = run.file("umap.json"), run.file("umap_reference.npz")
    refit = force and str(run.path.resolve()) not in _REFITTED
    if not refit and info_f.is_file() and ref_f.is_file():
        try:
            info = json.loads(info_f.read_text())
            if info.get("key") == key:
                with np.load(ref_f, allow_pickle=False) as z:
                    return Reducer(z["features"].astype(np.float32), z["xy"], z["positions"], key)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # unreadable: refit
    from .data import load_dataset
    from .features import extract
    from .models import load_checkpoint

    ds = ds or load_dataset(cfg["dataset"], cfg.get("data_root"))
    model = load_checkpoint(ckpt, device)
    images, pos = _reference(ds)
    t0 = time.perf_counter()
    feats = extract(model, ds, images, device)[0].numpy().astype(np.float32)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    xy = _fit_umap(feats)
    t_fit = time.perf_counter() - t0
    _REFITTED.add(str(run.path.resolve()))
    with replacing(ref_f, ref_f.with_suffix(".tmp.npz")) as tmp:
        np.savez(tmp, features=feats.astype(np.float16), xy=xy, positions=pos)
    write_json(info_f, {"key": key, "fitted_on": f"penultimate features of {len(pos)} reference images of "
                                                 f"{cfg.get('dataset')} (train ++ test positions in umap_reference.npz)",
                        "time/features_s": t_feat, "time/fit_s": t_fit, "created": time.time()})
    if progress:
        print(f"  UMAP fitted on {len(pos)} reference points of {run.path.name} in {t_fit:.1f} s")
    return Reducer(feats.astype(np.float16).astype(np.float32), xy, pos, key)


def _procrustes(src: np.ndarray, dst: np.ndarray):
    """Similarity transform (rotation/reflection, scale, shift) mapping src [R, 2] onto dst [R, 2]."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(a.T @ b)
    rot = u @ vt
    scale = s.sum() / max((a ** 2).sum(), 1e-12)
    return lambda xy: ((xy - ms) @ rot * scale + md).astype(np.float32)


def _thumb_png(img: np.ndarray) -> str:
    """uint8 [C, H, W] -> base64 PNG string (nearest-neighbour upscaled up to THUMB_MIN_SIDE)."""
    from PIL import Image

    a = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    k = max(1, THUMB_MIN_SIDE // max(a.shape[0], 1))
    if k > 1:
        a = a.repeat(k, 0).repeat(k, 1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_thumbs(path: Path, images, group: np.ndarray, index: np.ndarray) -> Path:
    """Write ``thumbs.parquet``: one base64 PNG per probe point (row order = probe order)."""
    import pandas as pd

    imgs = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    df = pd.DataFrame({"point": np.arange(len(imgs), dtype=np.int32), "group": np.asarray(group, np.int8),
                       "index": np.asarray(index, np.int64), "png": [_thumb_png(im) for im in imgs]})
    _write_parquet(df, path, {"version": EMBED_VERSION, "format": "png/base64"})
    return path


def _write_parquet(df, path: Path, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"scarlab": json.dumps(meta, default=str).encode()})
    with replacing(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _softmax_conf(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return (p.max(1) / p.sum(1)).astype(np.float32)


def _frame(snap: dict, xy: np.ndarray, step: int):
    import pandas as pd

    n = len(snap["labels"])
    nan = np.full(n, np.nan, np.float32)
    return pd.DataFrame({
        "step": np.full(n, step, np.int32), "point": np.arange(n, dtype=np.int32),
        "group": np.asarray(snap["group"], np.int8), "index": np.asarray(snap["index"], np.int64),
        "label": np.asarray(snap["labels"], np.int16), "pred": np.asarray(snap["preds"], np.int16),
        "target": np.asarray(snap.get("targets", np.full(n, -1)), np.int16),
        "conf": _softmax_conf(snap["logits"]) if "logits" in snap else nan,
        "dist_own": np.asarray(snap.get("dist_own", nan), np.float32),
        "dist_target": np.asarray(snap.get("dist_target", nan), np.float32),
        "x": xy[:, 0], "y": xy[:, 1]})


def _load_snapshots(run: RunDir) -> list[dict]:
    files = sorted(run.file("features").glob("step_*.npz"))
    snaps = []
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                snap = {k: z[k] for k in z.files}
        except Exception as exc:  # a truncated snapshot of a crashed run: skip it, keep the others
            print(f"  skipping unreadable snapshot {f.name} ({type(exc).__name__})")
            continue
        snap["step"] = int(snap.get("step", int(f.stem.split("_")[1])))
        snaps.append(snap)
    return sorted(snaps, key=lambda s: s["step"])


def _parent(run: RunDir, name: str, override=None) -> RunDir | None:
    p = override or run.manifest.get("parents", {}).get(name) or run.config.get(name)
    return RunDir(p) if p else None


def _probe(ds, split_file: Path, seed: int, n_forget: int, n_retain: int):
    from .data import Split
    from .trace import Probe

    return Probe.from_split(ds, Split.load(split_file), n_forget, n_retain, seed=seed)


# ----------------------------------------------------------------------------- entry points
def run_embed(run: str | Path, original: str | Path | None = None, *, force: bool = False, device: str = "cpu",
              progress: bool = True, retrained: bool = True) -> Path:
    """Compute and store the UMAP embedding of a run; returns the file written.

    - unlearn run: every ``features/step_*.npz`` transformed by the original's reducer -> ``embedding.parquet``
      and ``thumbs.parquet``; with ``retrained=True`` its retrained parent (if any and not yet embedded) too,
      on the same probe points.
    - retrained run: its own reducer, probe features (probe rebuilt from its ``split.npz`` and seed), one step.
    - original run: fits (or confirms) the reducer; returns ``umap_reference.npz``.
    ``original`` overrides the parent recorded in the manifest (e.g. after moving run folders).
    """
    rd = RunDir(run)
    stage = rd.manifest.get("stage", "")
    if stage == "train_original":
        reducer_for(rd.path, device=device, force=force, progress=progress)
        return rd.file("umap_reference.npz")
    if stage == "train_retrained":
        cfg = rd.config
        return embed_retrained(rd.path, original=original, seed=cfg.get("seed", 0), force=force, device=device,
                               progress=progress)
    if stage != "unlearn":
        raise ScarlabError(f"{rd.path}: cannot embed a run of stage {stage!r} (expected unlearn, train_original "
                           "or train_retrained)")
    return _embed_unlearn(rd, original, force=force, device=device, progress=progress, retrained=retrained)


def _embed_unlearn(rd: RunDir, original, *, force: bool, device: str, progress: bool, retrained: bool) -> Path:
    from .data import load_dataset

    snaps = _load_snapshots(rd)
    if not snaps:
        raise ScarlabError(f"{rd.path} has no readable feature snapshots (features/step_*.npz) to embed")
    orig = _parent(rd, "original", original)
    if orig is None:
        raise ScarlabError(f"{rd.path}: no original run recorded; pass --original DIR")
    orig.require_complete("original run", ORIGINAL)
    ocfg, cfg = orig.config, rd.config
    ds = load_dataset(ocfg["dataset"], ocfg.get("data_root"))
    reducer = reducer_for(orig.path, ds, device, force=force, progress=progress)
    import pandas as pd

    t0 = time.perf_counter()  # one transform per snapshot: identical features give identical coordinates
    frames = [_frame(s, reducer.transform(s["features"].astype(np.float32)), s["step"])
              for s in tqdm(snaps, desc=f"embed {rd.path.name}", unit="snapshot", disable=not progress, leave=False)]
    t_transform = time.perf_counter() - t0
    df = pd.concat(frames, ignore_index=True)
    seed = int(cfg.get("seed", 0))
    n_forget, n_retain = int(cfg.get("probe_forget", 500)), int(cfg.get("probe_retain", 1000))
    meta = {"version": EMBED_VERSION, "role": "unlearn", "reducer_run": str(orig.path.resolve()),
            "reducer_key": reducer.key, "axes": "original", "steps": [s["step"] for s in snaps],
            "probe": {"seed": seed, "n_forget": n_forget, "n_retain": n_retain}, "time/transform_s": t_transform,
            "classes": list(ds.classes), "dataset": ds.name}
    out = rd.file("embedding.parquet")
    _write_parquet(df, out, meta)
    # thumbnails: rebuild the probe exactly as the stage did (same split, seed and sizes), check it matches
    first = snaps[0]
    probe = _probe(ds, rd.file("split.npz"), seed, n_forget, n_retain)
    if np.array_equal(probe.index, first["index"]) and np.array_equal(probe.group, first["group"]):
        write_thumbs(rd.file("thumbs.parquet"), probe.images, probe.group, probe.index)
    else:
        print(f"  {rd.path.name}: the rebuilt probe differs from the snapshots; thumbnails taken by index")
        write_thumbs(rd.file("thumbs.parquet"), _images_by_index(ds, first["group"], first["index"]),
                     first["group"], first["index"])
    if progress:
        print(f"  {rd.path.name}: {len(snaps)} snapshots x {len(first['labels'])} points embedded "
              f"(transform {t_transform:.1f} s) -> {out}")
    if retrained:
        rt = _parent(rd, "retrained")
        if rt is not None and (rt.path / "manifest.json").is_file() and rt.status == "complete" \
                and (force or _embedding_meta(rt.file("embedding.parquet")).get("axes") != "aligned to original"):
            embed_retrained(rt.path, original=orig.path, seed=seed, n_forget=n_forget, n_retain=n_retain,
                            force=force, device=device, progress=progress, ds=ds)
    return out


def _embedding_meta(path: Path) -> dict:
    """The scarlab metadata of an existing embedding.parquet ({} if absent or unreadable)."""
    try:
        import pyarrow.parquet as pq

        return json.loads((pq.read_schema(path).metadata or {}).get(b"scarlab", b"{}"))
    except Exception:  # missing, truncated, foreign: treat as absent
        return {}


def _images_by_index(ds, group: np.ndarray, index: np.ndarray):
    import torch

    out = []
    for g, i in zip(group, index):
        part = ds.train if g == 0 else ds.test
        out.append(part.images[int(i)])
    return torch.stack(out) if out else torch.zeros((0, *ds.shape), dtype=torch.uint8)


def embed_retrained(run: str | Path, original: str | Path | None = None, seed: int = 0, n_forget: int = 500,
                    n_retain: int = 1000, *, force: bool = False, device: str = "cpu", progress: bool = True,
                    ds=None) -> Path:
    """Single-step embedding of a retrained oracle's probe features with its own reducer.

    The probe is rebuilt from the run's ``split.npz`` with ``seed`` and sizes (those of the unlearning runs,
    so the points match theirs). With ``original`` the coordinates are aligned to the original's map.
    """
    from .data import load_dataset
    from .features import extract
    from .models import load_checkpoint

    rd = RunDir(run).require_complete("retrained run", RETRAINED)
    cfg = rd.config
    if not rd.file("split.npz").is_file():
        raise ScarlabError(f"{rd.path} has no split.npz; is it a retrained run?")
    ds = ds or load_dataset(cfg["dataset"], cfg.get("data_root"))
    reducer = reducer_for(rd.path, ds, device, force=force, progress=progress)
    probe = _probe(ds, rd.file("split.npz"), seed, n_forget, n_retain)
    model = load_checkpoint(rd.file("checkpoints/model.pt"), device)
    feats, logits = extract(model, ds, probe.images, device)
    t0 = time.perf_counter()
    xy = reducer.transform(feats.numpy())
    t_transform = time.perf_counter() - t0
    axes = "own"
    if original is not None:  # same reference images in both maps: align the oracle's map onto the original's
        oref = reducer_for(original, ds, device, progress=progress)
        if np.array_equal(oref.positions, reducer.positions):
            xy = _procrustes(reducer.xy, oref.xy)(xy)
            axes = "aligned to original"
    snap = {"labels": probe.labels.numpy(), "preds": logits.argmax(1).numpy(), "group": probe.group,
            "index": probe.index, "logits": logits.numpy()}
    df = _frame(snap, xy, 0)
    meta = {"version": EMBED_VERSION, "role": "retrained", "reducer_run": str(rd.path.resolve()),
            "reducer_key": reducer.key, "axes": axes, "steps": [0],
            "probe": {"seed": seed, "n_forget": n_forget, "n_retain": n_retain}, "time/transform_s": t_transform,
            "classes": list(ds.classes), "dataset": ds.name,
            "aligned_to": str(Path(original).resolve()) if axes != "own" else None}
    out = rd.file("embedding.parquet")
    _write_parquet(df, out, meta)
    write_thumbs(rd.file("thumbs.parquet"), probe.images, probe.group, probe.index)
    if progress:
        print(f"  {rd.path.name}: retrained oracle, {len(df)} probe points embedded ({axes}) -> {out}")
    return out
