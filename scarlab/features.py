"""Batched inference: penultimate features and logits of a set of images (eval mode, no gradients)."""
from __future__ import annotations

import torch

from .data import Dataset, batches


@torch.no_grad()
def extract(model, ds: Dataset, images: torch.Tensor, device="cpu", batch_size: int = 512,
            features: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """uint8 images [N, C, H, W] -> (features [N, D] float32 or None, logits [N, K] float32), on the CPU."""
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for idx in batches(len(images), batch_size):
        z = model.features(ds.normalize(images[idx], device))
        logits.append(model.head(z).float().cpu())
        if features:
            feats.append(z.float().cpu())
    model.train(was_training)
    k = model.fc.out_features
    out_logits = torch.cat(logits) if logits else torch.zeros(0, k)
    if not features:
        return None, out_logits
    return (torch.cat(feats) if feats else torch.zeros(0, model.feature_dim)), out_logits


def predict(model, ds: Dataset, images: torch.Tensor, device="cpu", batch_size: int = 512) -> torch.Tensor:
    """Predicted labels [N] (int64, CPU)."""
    return extract(model, ds, images, device, batch_size, features=False)[1].argmax(1)


def accuracy_on(model, ds: Dataset, images: torch.Tensor, labels: torch.Tensor, device="cpu") -> float:
    """Fraction of correct predictions; NaN on an empty set."""
    if len(labels) == 0:
        return float("nan")
    return float((predict(model, ds, images, device) == labels).float().mean())
