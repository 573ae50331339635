"""Per-class Gaussian feature statistics and the Mahalanobis distance SCAR minimises (the SCAR paper, ECCV 2024, and its authors' code).

Features are Tukey-transformed (x -> x^delta), each class gets a mean and a covariance that is shrunk
twice, normalised to a correlation matrix and pseudo-inverted. Distances compare L2-normalised vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ScarlabError

_EPS = 1e-6  # floor inside x^delta: the gradient of sqrt at exactly 0 is infinite


def _power(x: torch.Tensor, delta: float) -> torch.Tensor:
    """|x|^delta with exact zeros kept at 0 (the authors' transform) and a finite (zero) gradient there."""
    a = x.abs()
    return torch.where(a > 0, a.clamp_min(_EPS).pow(delta), torch.zeros_like(a))


def tukey(x: torch.Tensor, delta: float = 0.5, signed: bool = False, model_name: str = "the model") -> torch.Tensor:
    """x -> x^delta for non-negative features (exact zeros stay 0); ``signed=True`` uses sign(x)|x|^delta instead
    of failing on negative features."""
    if signed:
        return torch.sign(x) * _power(x, delta)
    if (x < -1e-5).any():
        raise ScarlabError(f"{model_name} produced negative features (min {float(x.detach().min()):.3g}); SCAR's Tukey "
                           "transform needs post-ReLU features: add a ReLU before pooling, or pass signed_tukey=True")
    return _power(x.clamp_min(0), delta)


def shrink(cov: torch.Tensor, gamma1: float = 3.0, gamma2: float = 3.0) -> torch.Tensor:
    """Σ + γ1·mean(diag Σ)·I + γ2·mean(offdiag Σ)·(1 − I), batched over leading dimensions. [..., D, D].

    mean(offdiag Σ) averages the *non-zero* off-diagonal entries (as the authors do: a feature that is always 0
    contributes exact-zero covariances, which would otherwise dilute the mean)."""
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    v1 = cov.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
    off = cov * (1 - eye)
    nonzero = (off != 0).sum((-2, -1)).clamp_min(1)
    v2 = (off.sum((-2, -1)) / nonzero)[..., None, None]
    return cov + gamma1 * v1 * eye + gamma2 * v2 * (1 - eye)


def correlation(cov: torch.Tensor) -> torch.Tensor:
    """Normalise a covariance to a correlation matrix: Σ_ij / (σ_i σ_j). [..., D, D]."""
    sd = cov.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).sqrt()
    return cov / (sd[..., :, None] * sd[..., None, :])


def precision_from_cov(cov: torch.Tensor, gamma1: float = 3.0, gamma2: float = 3.0, times: int = 2) -> torch.Tensor:
    """Shrink ``times`` times (SCAR: twice, SCAR-self: once, as the authors do), normalise to correlation,
    pseudo-invert. [K, D, D] -> [K, D, D]."""
    for _ in range(times):
        cov = shrink(cov, gamma1, gamma2)
    return torch.linalg.pinv(correlation(cov), hermitian=True)


@dataclass
class ClassStats:
    """Tukey-space class means [K, D], raw covariances [K, D, D], sample counts [K] and the transform used."""

    means: torch.Tensor
    covs: torch.Tensor
    counts: torch.Tensor
    delta: float = 0.5
    signed: bool = False

    def save(self, path) -> None:
        np.savez_compressed(path, means=self.means.numpy(), covs=self.covs.numpy(), counts=self.counts.numpy(),
                            delta=self.delta, signed=self.signed)

    @classmethod
    def load(cls, path) -> "ClassStats":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(torch.from_numpy(z["means"]), torch.from_numpy(z["covs"]), torch.from_numpy(z["counts"]),
                           float(z["delta"]), bool(z["signed"]))
        except Exception as exc:  # truncated, not an npz, missing arrays
            raise ScarlabError(f"{path} is not readable class statistics ({type(exc).__name__}); recompute them with "
                               "`scarlab stats RUN` (RUN: the original's run directory)") from None

    def metric(self, gamma1: float = 3.0, gamma2: float = 3.0, device="cpu", shrink_times: int = 2) -> "MahalanobisDistance":
        return MahalanobisDistance(F.normalize(self.means, dim=1).to(device),
                      precision_from_cov(self.covs.double(), gamma1, gamma2, shrink_times).float().to(device),
                      self.delta, self.signed)


def class_stats(features: torch.Tensor, labels: torch.Tensor, num_classes: int, delta: float = 0.5,
                signed: bool = False, model_name: str = "the model") -> ClassStats:
    """Statistics of [N, D] features per class (labels [N]); classes with < 2 samples get identity covariance."""
    z = tukey(features.double(), delta, signed, model_name)
    d = z.shape[1]
    means = torch.zeros(num_classes, d, dtype=torch.float64)
    covs = torch.eye(d, dtype=torch.float64).repeat(num_classes, 1, 1)
    counts = torch.bincount(labels, minlength=num_classes)
    for c in range(num_classes):  # once per original model, not in any hot path
        zc = z[labels == c]
        if len(zc):
            means[c] = zc.mean(0)
        if len(zc) > 1:
            covs[c] = torch.cov(zc.T)
    return ClassStats(means.float(), covs.float(), counts, delta, signed)


@dataclass
class MahalanobisDistance:
    """Ready-to-use distance: L2-normalised class means ``mu`` [K, D] and precision matrices ``prec`` [K, D, D]."""

    mu: torch.Tensor
    prec: torch.Tensor
    delta: float = 0.5
    signed: bool = False

    def distances(self, features: torch.Tensor, model_name: str = "the model") -> torch.Tensor:
        """Mahalanobis distance of each feature to each class: [B, D] -> [B, K] (differentiable)."""
        x = F.normalize(tukey(features, self.delta, self.signed, model_name), dim=1)
        diff = x[:, None, :] - self.mu[None]                       # [B, K, D]
        return torch.einsum("bkd,kde,bke->bk", diff, self.prec, diff)

    def targets(self, dist: torch.Tensor, labels: torch.Tensor, excluded: list[int] | None = None) -> torch.Tensor:
        """Closest class other than the sample's own label and any ``excluded`` (forgotten) class. [B]."""
        d = dist.detach().clone()
        d[torch.arange(len(labels)), labels] = float("inf")
        if excluded:
            d[:, excluded] = float("inf")
        return d.argmin(1)
