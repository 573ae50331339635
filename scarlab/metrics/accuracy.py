"""Accuracies on the forget/retain x train/test splits (the SCAR paper's metrics). Fractions, not percentages."""
from __future__ import annotations

import numpy as np

from ..errors import choose

SCENARIOS = ("CR", "HR")


def _pair(preds, labels) -> tuple[np.ndarray, np.ndarray]:
    preds, labels = np.asarray(preds).ravel(), np.asarray(labels).ravel()
    if preds.shape != labels.shape:
        raise ValueError(f"preds {preds.shape} and labels {labels.shape} differ in length")
    return preds, labels


def accuracy(preds, labels) -> float:
    """Fraction of ``preds == labels``; both [N] ints. NaN for N = 0 (an empty split is not an error)."""
    preds, labels = _pair(preds, labels)
    return float(np.mean(preds == labels)) if preds.size else float("nan")


def confusion_matrix(preds, labels, num_classes: int) -> np.ndarray:
    """[K, K] int64 counts; row = true label, column = prediction. preds, labels: [N] ints in [0, K)."""
    preds, labels = _pair(preds, labels)
    for name, a in (("preds", preds), ("labels", labels)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}); got range [{a.min()}, {a.max()}]")
    flat = labels.astype(np.int64) * num_classes + preds.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(preds, labels, num_classes: int) -> np.ndarray:
    """[K] float: recall of each true class; NaN where a class has no samples."""
    cm = confusion_matrix(preds, labels, num_classes)
    support = cm.sum(axis=1)
    out = np.full(num_classes, np.nan)
    np.divide(np.diag(cm), support, out=out, where=support > 0)
    return out


def split_accuracies(preds_train, labels_train, forget_mask_train, preds_test, labels_test, forget_mask_test,
                     scenario: str) -> dict:
    """The five accuracies SCAR reports, as a flat dict of floats.

    preds_*/labels_*: [N_train] / [N_test] ints; forget_mask_*: same-length bools.
    CR: ``forget_mask_test`` marks test images of the forgotten classes.
    HR: the test set has no forget part, so ``forget_mask_test`` must be all False (or None);
    then ``acc/forget_test`` is NaN and ``acc/retain_test`` equals ``acc/test``.
    Keys: acc/forget_train, acc/retain_train, acc/forget_test, acc/retain_test, acc/test.
    """
    choose("scenario", scenario, SCENARIOS)
    preds_train, labels_train = _pair(preds_train, labels_train)
    preds_test, labels_test = _pair(preds_test, labels_test)
    ftr = np.asarray(forget_mask_train, dtype=bool).ravel()
    fte = np.zeros(len(preds_test), bool) if forget_mask_test is None else np.asarray(forget_mask_test, bool).ravel()
    if len(ftr) != len(preds_train) or len(fte) != len(preds_test):
        raise ValueError("forget masks must have one entry per sample")
    if scenario == "HR" and fte.any():
        raise ValueError("HR has no forget part of the test set: forget_mask_test must be all False")
    return {
        "acc/forget_train": accuracy(preds_train[ftr], labels_train[ftr]),
        "acc/retain_train": accuracy(preds_train[~ftr], labels_train[~ftr]),
        "acc/forget_test": accuracy(preds_test[fte], labels_test[fte]),
        "acc/retain_test": accuracy(preds_test[~fte], labels_test[~fte]),
        "acc/test": accuracy(preds_test, labels_test),
    }
