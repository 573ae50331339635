"""The evaluation stage: every metric SCAR reports (and the attacks users of other benchmarks expect) for one
run, written into run directories, and a summary table over many runs.

``evaluate_run`` predicts each data part once (train, test; the retrained oracle on the forget set), then
derives from those softmax vectors and per-sample losses:

* accuracies ``acc/forget_train``, ``acc/retain_train``, ``acc/forget_test``, ``acc/retain_test``, ``acc/test``,
  per-class accuracies and the test confusion matrix (``perclass.json``);
* the paper's MIA (``mia/svc/*``: RBF-SVC on softmax vectors, the paper's sets re-drawn every repeat by
  ``paper_mia_draw``: CR forget-class train vs forget-class test samples, up to 3:1; HR forget samples vs a random
  half of the test set, 1:1). ``mia/svc/acc`` is the paper's "F1" (micro-F1 = accuracy), ``mia/svc/chance`` the
  majority fraction of its evaluation set (CR 0.75, HR 0.5), ``mia/svc/delta_f1`` = |acc·100 − 50| (the paper's
  HR ΔF1), ``mia/svc/member_f1`` the binary F1 of the member class (not the paper's number);
* the loss-based MIA (``mia/loss_lr/*``) and a confidence-threshold MIA (``mia/conf_thr/acc``), both balanced
  (chance 0.5): members = forget-train samples, non-members = forget-class test samples (CR) or the test set (HR);
* the privacy score against the retrained oracle (``privacy/*``; NaN without one);
* AUS in its CR / HR form (``aus``, with ``aus/a_or`` the original's retain-test accuracy in CR, as the authors
  compute it, and its test accuracy in HR);
* ``time/unlearn_s`` as the unlearning run recorded it (never mixed with evaluation: ``time/evaluate_s``);
* ``mia_steps.csv``: the cheap attacks and probe accuracies on every feature snapshot of the run.

``scarlab.results.summarize`` turns evaluated runs into ``summary.csv``, ``summary_agg.csv`` and ``summary.md``.
"""
from __future__ import annotations

import csv
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Dataset, Split, check_split, load_dataset
from .device import resolve_device
from .errors import ScarlabError
from .features import extract
from .metrics import (aus_from_metrics, cheap_mia, confusion_matrix, mia_loss_lr, mia_svc, per_class_accuracy,
                      per_sample_loss, privacy_score, split_accuracies)
from .metrics.mia import _best_threshold_bacc  # cheap_mia's threshold attack, without refitting its loss-LR
from .models import load_checkpoint
from .results import describe
from .runs import GROUPS, ORIGINAL, RETRAINED, RunDir, replacing, write_json
from .train import load_split

STEP_COLUMNS = ("step", "mia/loss_lr/acc", "mia/conf_thr/acc", "probe/acc/forget_train", "probe/acc/retain_test",
                "probe/acc/forget_test")


# ============================================================================================ helpers
def _run_dir(path, what: str, stages: tuple[str, ...] = ()) -> RunDir:
    if isinstance(path, RunDir):
        path = path.path
    return RunDir(path).require_complete(what, stages)


def _parent(run: RunDir, role: str) -> Path | None:
    p = run.manifest.get("parents", {}).get(role)
    return Path(p) if p else None


def _softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), 1).numpy()


def _predict(model, ds: Dataset, images: torch.Tensor, device: str) -> np.ndarray:
    """Softmax [N, K] (float64, CPU) of ``images`` in one batched pass.

    Conv weights go channels-last (in place: only this evaluation's copy of the model), which makes the CPU
    convolutions ~1.3-1.5x faster on 32-px images; the outputs are the same up to float rounding.
    """
    model.to(memory_format=torch.channels_last)
    return _softmax(extract(model, ds, images, device, features=False)[1])


def _same_split(a: Split, b: Split) -> bool:
    return (a.scenario == b.scenario and np.array_equal(np.sort(a.forget_idx), np.sort(b.forget_idx))
            and np.array_equal(np.sort(a.forget_test_idx), np.sort(b.forget_test_idx)))


def mia_over_steps(run: RunDir | str, scenario: str, seed: int = 0) -> list[dict]:
    """Cheap MIAs and probe accuracies on every ``features/step_*.npz`` snapshot of ``run`` (one row each).

    Members = probe group 0 (forget-train); non-members = group 2 (forget-test, CR) or group 1 (test, HR).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    rows = []
    for f in sorted(run.file("features").glob("step_*.npz")):
        with np.load(f, allow_pickle=False) as z:
            logits, labels, group = z["logits"], z["labels"].astype(np.int64), z["group"]
            step = int(z["step"]) if "step" in z.files else int(f.stem.split("_")[1])
            preds = z["preds"] if "preds" in z.files else logits.argmax(1)
        probs = _softmax(torch.from_numpy(logits.astype(np.float32)))
        m, n = group == 0, group == (2 if scenario == "CR" else 1)
        row = {"step": step, **cheap_mia(probs[m], probs[n], labels[m], labels[n], seed=seed)}
        for code, name in enumerate(GROUPS):
            g = group == code
            row[f"probe/acc/{name}"] = float((preds[g] == labels[g]).mean()) if g.any() else float("nan")
        rows.append(row)
    return sorted(rows, key=lambda r: r["step"])


def _write_csv(path: Path, rows: list[dict], columns) -> None:
    with replacing(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()})


# ============================================================================================ evaluate one run
def evaluate_run(run, original=None, retrained=None, split=None, out=None, device="cpu", mia_repeats=5, *,
                 overwrite: bool = False, progress: bool = False) -> dict:
    """Evaluate one run; returns its metrics (the merged ``metrics.json`` contents, flat, namespaced).

    run: an unlearning run or a retrained run (evaluated in place: ``metrics.json`` is merged, ``perclass.json``
        and ``mia_steps.csv`` written next to it), or an original run together with ``out``.
    original: the original run (default: the run's manifest parent); a_or of AUS is its retain-test accuracy on
        this split (CR) or its ``acc/test`` (HR). Without one AUS is NaN.
    retrained: the retrained oracle (default: the manifest parent; a retrained run is its own oracle); only the
        privacy score needs it, NaN without one. Its split must be the evaluated split.
    split: a split.npz or a run directory holding one; default the run's own ``split.npz``.
    out: create an evaluation run directory here (stage ``evaluate``, method "original" for an original run,
        parents original [and retrained], a copy of the split, metrics.json, perclass.json) instead of writing
        into ``run``: one original run serves many splits. Required for original runs.
    device: auto, cpu, cuda, cuda:N or mps. mia_repeats: repetitions of the paper's SVC attack.
    overwrite: replace an existing ``out`` directory. progress: a progress bar over the evaluation's parts.
    """
    t_start = time.perf_counter()
    run = _run_dir(run, "run")
    stage = run.manifest.get("stage")
    if out is None and stage == "train_original":
        raise ScarlabError(f"{run.path} is an original model, which serves many splits: evaluate it against a split "
                           "into a new run directory (out=..., --out DIR, with --split)")
    orig, retr = _references(run, stage, original, retrained)
    sp = _evaluated_split(run, split)
    ds = _dataset(run, orig, retr, sp)
    device = resolve_device(device)
    model = load_checkpoint(run.file("checkpoints/model.pt"), device)
    if model.fc.out_features != ds.num_classes:
        raise ScarlabError(f"{run.path}'s model has {model.fc.out_features} outputs but {ds.name} has "
                           f"{ds.num_classes} classes")
    seed = int(run.config.get("seed") or 0)
    a_or = _a_or(orig, run, model, ds, sp, device)
    target = run if out is None else _evaluation_run(run, orig, retr, sp, ds, split, out, mia_repeats, seed,
                                                      overwrite, device)
    try:
        bar = tqdm(total=4, desc=f"evaluate {run.path.name}", unit="part", disable=not progress, leave=False)
        with bar:
            metrics, perclass, steps, timing = _compute(model, ds, sp, retr, run, device, mia_repeats, seed, a_or, bar)
        metrics["time/evaluate_s"] = time.perf_counter() - t_start
        metrics.update(timing)
        if out is None and run.metrics.get("time/unlearn_s") is not None:
            metrics["time/unlearn_s"] = float(run.metrics["time/unlearn_s"])
        if out is not None:
            sp.save(target.file("split.npz"))
        written = _write_results(target, metrics, perclass, steps)
    except BaseException as exc:
        msg = str(exc) if isinstance(exc, ScarlabError) else f"{type(exc).__name__}: {exc}"
        if out is not None:
            target.finish("failed", error=msg)
        else:
            target.update_manifest(evaluation={"status": "failed", "error": msg, "finished": time.time()})
        raise
    if out is not None:
        target.finish("complete")
    else:
        files = sorted(set(target.manifest.get("files", [])) | set(written))
        target.update_manifest(files=files, evaluation={"status": "complete", "finished": time.time(),
                                                        "evaluate_s": round(metrics["time/evaluate_s"], 3)})
    return {**target.metrics, **metrics}


def _references(run: RunDir, stage: str | None, original, retrained) -> tuple[RunDir | None, RunDir | None]:
    """The original (given, the run itself, or its manifest parent) and the retrained oracle (given, the run itself,
    or its manifest parent when complete: else None, with a warning when one was recorded)."""
    orig_path = Path(original) if original else (run.path if stage == "train_original" else _parent(run, "original"))
    orig = _run_dir(orig_path, "original run", ORIGINAL) if orig_path else None
    if retrained:
        return orig, _run_dir(retrained, "retrained run", RETRAINED)
    if stage == "train_retrained":
        return orig, run
    p = _parent(run, "retrained")
    retr = RunDir(p) if p and (p / "manifest.json").is_file() and RunDir(p).status == "complete" else None
    if retr is not None:
        retr.require_role("retrained run", RETRAINED)
    if p and retr is None:
        warnings.warn(f"retrained parent {p} is missing or incomplete: privacy score skipped (NaN)")
    return orig, retr


def _evaluated_split(run: RunDir, split) -> Split:
    """The split given (which must be the run's own when it has one), else the run's split.npz."""
    own_split = run.file("split.npz")
    if split is not None:
        sp = load_split(split)
        if own_split.is_file() and not _same_split(sp, Split.load(own_split)):
            raise ScarlabError(f"{run.path} was made with another split than {split}; leave out the split to use "
                               "the run's own split.npz")
        return sp
    if own_split.is_file():
        return Split.load(own_split)
    raise ScarlabError(f"{run.path} has no split.npz: pass the split to evaluate against (split=..., --split)")


def _dataset(run: RunDir, orig: RunDir | None, retr: RunDir | None, sp: Split) -> Dataset:
    """The data set the run (or its original) was made on; the split must fit it and be the oracle's too."""
    cfg, ocfg = run.config, orig.config if orig is not None else {}
    dataset = cfg.get("dataset") or ocfg.get("dataset")
    if not dataset:
        raise ScarlabError(f"{run.path}: its config names no dataset and no original run is known; pass --original")
    ds = load_dataset(dataset, cfg.get("data_root") or ocfg.get("data_root"))
    check_split(sp, ds)
    if retr is not None and retr is not run and retr.file("split.npz").is_file() \
            and not _same_split(sp, Split.load(retr.file("split.npz"))):
        raise ScarlabError(f"retrained run {retr.path} forgot another split than the one evaluated; pass the oracle "
                           "trained on this split")
    return ds


def _evaluation_run(run: RunDir, orig: RunDir | None, retr: RunDir | None, sp: Split, ds: Dataset, split, out,
                    mia_repeats: int, seed: int, overwrite: bool, device: str) -> RunDir:
    """A new run directory (stage ``evaluate``) for the evaluation of ``run`` (an original) against a split."""
    cfg, ocfg = run.config, orig.config if orig is not None else {}
    config = {"method": describe(run.path, run.manifest, cfg).method, "variant": cfg.get("variant") or {},
              "dataset": ds.name, "model": cfg.get("model") or ocfg.get("model"), "scenario": sp.scenario,
              "forget_classes": list(sp.forget_classes), "forget_size": len(sp.forget_idx), "seed": seed,
              "run": str(run.path.resolve()), "split": str(split) if split else None,
              "data_root": cfg.get("data_root") or ocfg.get("data_root"), "mia_repeats": mia_repeats}
    parents = {"original": (orig.path if orig is not None else run.path).resolve()}
    if retr is not None:
        parents["retrained"] = retr.path.resolve()
    if split is not None:
        parents["split"] = Path(split).resolve()
    return RunDir.create(out, stage="evaluate", config=config, parents=parents, overwrite=overwrite, device=device)


def _write_results(target: RunDir, metrics: dict, perclass: dict, steps: list[dict]) -> list[str]:
    """perclass.json, mia_steps.csv (with snapshots) and metrics.json (merged, last); returns the files written."""
    write_json(target.file("perclass.json"), perclass)
    written = ["metrics.json", "perclass.json"]
    if steps:
        _write_csv(target.file("mia_steps.csv"), steps, STEP_COLUMNS)
        written.append("mia_steps.csv")
    target.write_metrics(metrics)
    return written


def _a_or(orig: RunDir | None, run: RunDir, model, ds: Dataset, sp: Split, device: str) -> float:
    """AUS's a_or, as the authors compute it: CR the original's accuracy on the retain-test images (the test images
    of the classes kept, measured like a_t), HR the original's test accuracy. NaN (with a warning) without one."""
    if orig is None or orig.metrics.get("acc/test") is None:
        warnings.warn(f"no original run (or its acc/test) known for {run.path}: AUS is NaN; pass original=")
        return float("nan")
    if sp.scenario != "CR":
        return float(orig.metrics["acc/test"])
    keep = np.ones(len(ds.test.labels), bool)
    keep[sp.forget_test_idx] = False
    original = model if orig.path.resolve() == run.path.resolve() else \
        load_checkpoint(orig.file("checkpoints/model.pt"), device)
    pred = _predict(original, ds, ds.test.images[torch.as_tensor(np.flatnonzero(keep))], device).argmax(1)
    return float((pred == ds.test.labels.numpy()[keep]).mean())


def _compute(model, ds: Dataset, sp: Split, retr: RunDir | None, run: RunDir, device: str, mia_repeats: int,
             seed: int, a_or: float, bar) -> tuple[dict, dict, list[dict], dict]:
    timing = {}
    bar.set_postfix_str("predictions")
    t0 = time.perf_counter()
    y_tr, y_te = ds.train.labels.numpy(), ds.test.labels.numpy()
    p_tr = _predict(model, ds, ds.train.images, device)  # one pass per data part
    p_te = _predict(model, ds, ds.test.images, device)
    ftr, fte = sp.forget_masks(len(y_tr), len(y_te))
    pred_tr, pred_te = p_tr.argmax(1), p_te.argmax(1)
    metrics = split_accuracies(pred_tr, y_tr, ftr, pred_te, y_te, fte if sp.scenario == "CR" else None, sp.scenario)
    k = ds.num_classes
    perclass = {"class_names": list(ds.classes), "per_class_test": per_class_accuracy(pred_te, y_te, k).tolist(),
                "per_class_train": per_class_accuracy(pred_tr, y_tr, k).tolist(),
                "confusion_test": confusion_matrix(pred_te, y_te, k).tolist()}
    loss_tr, loss_te = per_sample_loss(p_tr, y_tr), per_sample_loss(p_te, y_te)
    non = fte if sp.scenario == "CR" else np.ones(len(y_te), bool)  # non-members: forget-class test | test
    timing["time/evaluate/predict_s"] = time.perf_counter() - t0
    bar.update(1)
    bar.set_postfix_str("SVC attack")

    t0 = time.perf_counter()
    # the paper's sets, re-drawn from these pools in every repeat (CR: ≤ 3:1; HR: half the test set, 1:1)
    metrics.update(mia_svc(p_tr[ftr], p_te[non], scenario=sp.scenario, n_repeats=mia_repeats, seed=seed))
    timing["time/evaluate/mia_svc_s"] = time.perf_counter() - t0
    bar.update(1)
    bar.set_postfix_str("loss attack, privacy score")

    t0 = time.perf_counter()
    metrics.update(mia_loss_lr(loss_tr[ftr], loss_te[non], seed=seed))
    # as in cheap_mia: best threshold on the true-class probability, i.e. on −loss
    metrics["mia/conf_thr/acc"] = (_best_threshold_bacc(-loss_tr[ftr], -loss_te[non])
                                   if ftr.any() and non.any() else float("nan"))
    if retr is None:
        r_forget = np.zeros((0, k))
    elif retr is run:
        r_forget = p_tr[sp.forget_idx]  # the oracle against itself: indistinguishable by construction
    else:
        r_model = load_checkpoint(retr.file("checkpoints/model.pt"), device)
        r_forget = _predict(r_model, ds, ds.train.images[torch.as_tensor(sp.forget_idx)], device)
    if len(r_forget):
        metrics.update(privacy_score(p_tr[sp.forget_idx], r_forget, y_tr[sp.forget_idx]))
    else:
        metrics.update(privacy_score(np.zeros((0, k)), np.zeros((0, k)), np.zeros(0, np.int64)))  # NaNs
    timing["time/evaluate/loss_privacy_s"] = time.perf_counter() - t0
    bar.update(1)
    bar.set_postfix_str("attacks over the snapshots")

    metrics["aus/a_or"] = a_or
    metrics["aus"] = float(aus_from_metrics(metrics, a_or, sp.scenario)) if math.isfinite(a_or) else float("nan")

    t0 = time.perf_counter()
    steps = mia_over_steps(run, sp.scenario, seed=seed) if run.file("features").is_dir() else []
    timing["time/evaluate/mia_steps_s"] = time.perf_counter() - t0
    bar.update(1)
    return metrics, perclass, steps, timing


__all__ = ["evaluate_run", "mia_over_steps"]
