"""Shared fixtures: toy-scale real runs on digits, trained once per test session, and the offline data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before torch loads OpenMP: on a shared 2-core machine, busy-waiting OpenMP threads make small-model steps
# 5-15x slower whenever another process is running; passive waiting costs little when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCARLAB_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(int(os.environ.get("SCARLAB_THREADS", "2")))


def _require_shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        msg = (f"{path} not found: these tests need the offline CIFAR-10/OOD images of the project's shared/data "
               "(set SCARLAB_SHARED_DATA to their folder)")
        if os.environ.get("CI") or os.environ.get("SCARLAB_REQUIRE_SHARED_DATA"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def cifar10_mini() -> Path:
    return _require_shared("cifar10-mini")


@pytest.fixture(scope="session")
def ood_mini() -> Path:
    return _require_shared("ood-mini")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def digits_original(runs_root) -> Path:
    """An original tinycnn trained on digits (8 epochs, ~5 s): a completed run directory with stats.npz."""
    from scarlab.config import TrainConfig
    from scarlab.train import run_train

    return run_train(TrainConfig(dataset="digits", epochs=8, device="cpu"), runs_root / "digits_original",
                     progress=False).path


@pytest.fixture(scope="session")
def digits_retrained(runs_root) -> Path:
    """The retrained oracle for CR class 0 on digits (8 epochs)."""
    from scarlab.config import TrainConfig
    from scarlab.train import run_train

    return run_train(TrainConfig(dataset="digits", role="retrained", scenario="CR", forget_classes=[0], epochs=8,
                                 device="cpu"), runs_root / "digits_retrained_cr0", progress=False).path


@pytest.fixture(scope="session")
def digits_scar(runs_root, digits_original, digits_retrained) -> Path:
    """SCAR on digits, CR class 0, default settings."""
    from scarlab.config import UnlearnConfig
    from scarlab.unlearn.stage import run_unlearn

    cfg = UnlearnConfig(original=str(digits_original), retrained=str(digits_retrained), split=str(digits_retrained),
                        method="scar", device="cpu")
    return run_unlearn(cfg, runs_root / "digits_scar_cr0", progress=False).path
