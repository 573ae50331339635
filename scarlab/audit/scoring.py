"""What the audit scores: the scaled true-class logits φ of a model on the forget examples and on the control
examples (cached per checkpoint in this process), the control set, and the NeurIPS 2023 competition's numbers on
the same shadows."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ScarlabError
from ..metrics import competition, ulira
from .targets import DEFAULT_SEED

FLAG_FPR = 0.01
MIN_CONTROL = 10  # control examples the membership signal's example bootstrap needs at the least


# ============================================================================================ scores
# (checkpoint, its mtime_ns, forget set) -> logits [N, C]: the audits of one process share their shadows' logits
_LOGITS: dict[tuple, np.ndarray] = {}


def _scores(checkpoint: Path, ds, part: str, idx: np.ndarray, device: str, half: bool) -> np.ndarray:
    """Scaled true-class logits φ [N] of a model on images ``idx`` of ``ds.<part>`` ("train" or "test")."""
    import torch

    from ..features import extract
    from ..models import load_checkpoint

    checkpoint = Path(checkpoint)
    idx = np.asarray(idx, np.int64)
    key = (str(checkpoint.resolve()), checkpoint.stat().st_mtime_ns, part, hashlib.sha256(idx.tobytes()).hexdigest())
    data = getattr(ds, part)
    if key not in _LOGITS:
        model = load_checkpoint(checkpoint, device, expect={"num_classes": ds.num_classes})
        logits = extract(model, ds, data.images[torch.as_tensor(idx)], device, features=False)[1].numpy()
        if len(_LOGITS) > 1024:
            _LOGITS.clear()
        _LOGITS[key] = logits
    logits = _LOGITS[key].astype(np.float16) if half else _LOGITS[key]
    return ulira.scaled_logit(logits.astype(np.float64), data.labels[torch.as_tensor(idx)].numpy())


def forget_scores(checkpoint: Path, ds, split, device: str = "cpu", *, half: bool = False) -> np.ndarray:
    """Scaled true-class logits φ [N] of a model on the forget examples ``split.forget_idx`` (training images).

    ``half``: from the logits rounded to float16, as feature snapshots store them, so a checkpoint's scores and
    snapshot scores compared in the audit over steps differ by the models and not by the rounding."""
    return _scores(checkpoint, ds, "train", split.forget_idx, device, half)


def control_indices(split, ds, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Test-set indices of the control examples, which no model of either population trained on: class removal,
    every test image of the forget classes (``split.forget_test_idx``); random removal, a sample of test images
    (seeded by ``seed``) as large as the forget set, or the whole test set if smaller. Raises a one-line error when
    fewer than MIN_CONTROL are available."""
    if split.scenario == "CR":
        idx = np.sort(np.asarray(split.forget_test_idx, np.int64))
        what = f"the test images of forget class(es) {list(split.forget_classes)}"
    else:
        n_test = len(ds.test.labels)
        size = min(len(split.forget_idx), n_test)
        idx = np.sort(np.random.default_rng(seed).choice(n_test, size, replace=False)).astype(np.int64)
        what = "test images"
    if len(idx) < MIN_CONTROL:
        raise ScarlabError(f"the audit's control set ({what}) has {len(idx)} examples, fewer than the "
                           f"{MIN_CONTROL} its intervals need (forget set: {len(split.forget_idx)}); audit a split "
                           "whose forget classes have more test images")
    return idx


def control_scores(checkpoint: Path, ds, idx: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Scaled true-class logits φ [N_c] of a model on the control examples (test images ``idx``)."""
    return _scores(checkpoint, ds, "test", idx, device, False)


def _accuracies(paths: list[Path], ds, split, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(retain-train accuracy, test accuracy) [K] of the models in ``paths``, for the competition's final score."""
    import torch

    from ..features import accuracy_on
    from ..models import load_checkpoint

    retain = torch.as_tensor(np.asarray(split.retain_idx, np.int64))
    out = []
    for p in paths:
        model = load_checkpoint(p / "checkpoints" / "model.pt", device, expect={"num_classes": ds.num_classes})
        out.append((accuracy_on(model, ds, ds.train.images[retain], ds.train.labels[retain], device),
                    accuracy_on(model, ds, ds.test.images, ds.test.labels, device)))
    return np.array([r for r, _ in out]), np.array([t for _, t in out])


def competition_scores(scores_a, scores_b, ctl_a, ctl_b, members_a, members_b, ds, split, device) -> tuple[dict, np.ndarray]:
    """The NeurIPS 2023 competition's numbers on the same shadows (scarlab.metrics.competition): its per-example ε of
    the raw scaled logits (no fit, no held-out models: population A against B as it scored 512 + 512 models), F on
    the forget and on the control examples, F's chance level at K, and the final score F · retain-accuracy ratio ·
    test-accuracy ratio of A's models against B's. Returns (metrics, per-example ε [N])."""
    k = len(scores_a)
    eps = competition.competition_epsilon(scores_a, scores_b)
    eps_c = competition.competition_epsilon(ctl_a, ctl_b)
    forget_f = competition.forget_score(eps, k)
    ra_a, ta_a = _accuracies(members_a, ds, split, device)
    ra_b, ta_b = _accuracies(members_b, ds, split, device)
    return {"competition/F": forget_f, "competition/F_control": competition.forget_score(eps_c, k),
            "competition/F_chance": competition.forget_score_chance(k),
            "competition/score": competition.final_score(forget_f, ra_a, ra_b, ta_a, ta_b),
            "competition/eps_mean": float(np.mean(eps)),
            "competition/eps_capped": float(np.mean(eps >= competition.EPSILON_CAP)),
            "competition/eps_max_finite": competition.epsilon_max_finite(k, len(scores_b)),
            "competition/retain_acc_ratio": float(ra_a.mean() / ra_b.mean()),
            "competition/test_acc_ratio": float(ta_a.mean() / ta_b.mean())}, eps


