"""Shared fixtures: toy-scale real runs on digits, trained once per test session, and the offline data."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Before torch loads OpenMP: on a shared 2-core machine, busy-waiting OpenMP threads make small-model steps
# 5-15x slower whenever another process is running; passive waiting costs little when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCARLAB_SHARED_DATA", REPO.parent / "shared" / "data"))

# torch threads: SCARLAB_THREADS, else 2 — or 1 per worker when pytest-xdist runs the suite in parallel (`make test`
# runs one worker per core), so the workers do not oversubscribe the cores
_THREADS = os.environ.get("SCARLAB_THREADS") or ("1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")
os.environ["SCARLAB_THREADS"] = _THREADS  # the stage kernels and subprocesses the tests start inherit it
torch.set_num_threads(int(_THREADS))


# The longest modules first (seconds per module, `pytest -n 2 --dist loadscope --durations=40`, 2026-12-05 14:42:
# browser 140, reliability 51, audit 50, audit_pipeline 49, identity 47, live 38, notebooks 37, sweep 33, pipeline 31;
# every other module under 25). `make test` keeps each module on one worker and hands modules out in this order
# (--no-loadscope-reorder), so no core idles behind the last long module. Only the order changes; a module not
# listed keeps its place after these.
LONGEST_FIRST = ("test_browser", "test_reliability", "test_audit", "test_audit_pipeline", "test_identity", "test_live",
                 "test_notebooks", "test_sweep", "test_pipeline")


def _dashboard_pages() -> list[str]:
    """Every page of the app, as dashboard/app.py declares them: views/<name>.py, served at /<name>. AppTest runs
    the app in the test's process, bound nowhere: it is said to be served as `scarlab dashboard` serves it, on
    loopback, where the Run page is part of the navigation (beyond loopback it is not: tests/test_live.py)."""
    import streamlit.config
    from scarlab_dashboard import app

    streamlit.config.set_option("server.address", "127.0.0.1")
    return [name for name, _title, _icon in app.PAGES]


PAGES = _dashboard_pages()


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: tests keep their order in a module


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
def warm_kernels():
    """Kernels forked from this worker's zygote (as the pipeline runs its stages): a test that executes a notebook
    itself takes one per notebook (:func:`run_nb`) instead of starting a cold kernel (~2.5 s of imports each)."""
    from scarlab.pipeline.warm import WarmKernels

    with WarmKernels() as warm:
        yield warm


def run_nb(warm, name: str, out: Path, **params) -> Path:
    """Execute notebooks/<name> with papermill into ``out`` in a kernel of this interpreter forked from ``warm``
    (:func:`scarlab.pipeline.run_notebook`, what every pipeline stage runs); returns ``out``."""
    from scarlab.pipeline import NOTEBOOKS, run_notebook

    run_notebook(NOTEBOOKS / name, out, params, warm.take())
    return out


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _made_once(tmp_path_factory, name: str, make) -> Path:
    """``make(path)`` run once per test session: under pytest-xdist the first worker to ask makes the run in the
    folder the workers share, the others wait for it (a file lock) and read the same run. Each worker uses the same
    torch threads, so the run is the one any of them would have made."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-of-<user>/pytest-<n>/: every worker's folder is in it
    path = root / "session_runs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "manifest.json").is_file():
            make(path)
    status = json.loads((path / "manifest.json").read_text()).get("status")
    if status != "complete":
        pytest.fail(f"the session's {name} run is {status}: see {path}")
    return path


@pytest.fixture(scope="session")
def digits_original(tmp_path_factory) -> Path:
    """An original tinycnn trained on digits (8 epochs, ~5 s): a completed run directory with stats.npz."""
    from scarlab.config import TrainConfig
    from scarlab.train import run_train

    return _made_once(tmp_path_factory, "digits_original", lambda out: run_train(
        TrainConfig(dataset="digits", epochs=8, device="cpu"), out, progress=False))


@pytest.fixture(scope="session")
def digits_retrained(tmp_path_factory) -> Path:
    """The retrained oracle for CR class 0 on digits (8 epochs)."""
    from scarlab.config import TrainConfig
    from scarlab.train import run_train

    return _made_once(tmp_path_factory, "digits_retrained_cr0", lambda out: run_train(
        TrainConfig(dataset="digits", role="retrained", scenario="CR", forget_classes=[0], epochs=8, device="cpu"),
        out, progress=False))


@pytest.fixture(scope="session")
def digits_scar(tmp_path_factory, digits_original, digits_retrained) -> Path:
    """SCAR on digits, CR class 0, default settings."""
    from scarlab.config import UnlearnConfig
    from scarlab.unlearn.stage import run_unlearn

    cfg = UnlearnConfig(original=str(digits_original), retrained=str(digits_retrained), split=str(digits_retrained),
                        method="scar", device="cpu")
    return _made_once(tmp_path_factory, "digits_scar_cr0", lambda out: run_unlearn(cfg, out, progress=False))


def copy_run(src: Path, dst: Path, parents: dict | None = None) -> Path:
    """A copy of the run folder ``src`` at ``dst``; ``parents``: the copy's manifest names these parent runs."""
    import shutil

    shutil.copytree(src, dst)
    if parents is not None:
        m = json.loads((dst / "manifest.json").read_text())
        m["parents"] = {k: str(v) for k, v in parents.items()}
        (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.fixture(scope="session")
def digits_embedded(tmp_path_factory, digits_original, digits_retrained, digits_scar) -> dict[str, Path]:
    """Copies of the session's original, retrained and SCAR runs, SCAR embedded (``run_embed``): the UMAP reducers
    of the original and of the retrained oracle are fitted once per session (numba's compilation and the fits:
    ~10-25 s of CPU in each process that fits). A copy of these folders reuses them (a reducer's key is its
    checkpoint, not its folder): ``run_embed`` on a copy only transforms."""
    from scarlab.embed import run_embed

    def make(scar: Path) -> None:
        orig = copy_run(digits_original, scar.parent / "original")
        retr = copy_run(digits_retrained, scar.parent / "retrained")
        run_embed(copy_run(digits_scar, scar, {"original": orig, "retrained": retr}), progress=False)

    scar = _made_once(tmp_path_factory, "digits_embedded/scar", make)
    return {"original": scar.parent / "original", "retrained": scar.parent / "retrained", "scar": scar}


MALFORMED = {  # run folder -> (what makes it malformed, the one-line problem a reader reports)
    "parents_list": ("manifest.json parents [\"x\"]", "parents must be an object"),
    "parents_null": ("manifest.json parents null", "parents must be an object"),
    "forget_classes_null": ("config.json forget_classes [null]", "forget_classes must be a list of whole numbers"),
    "metric_text": ("metrics.json aus \"high\"", "aus must be a number"),
    "deep_manifest": ("manifest.json nested 200,000 levels", "nests lists or objects deeper than"),
    "huge_metrics": ("metrics.json over the size cap (sparse)", "larger than the"),
}


@pytest.fixture()
def malformed_runs(tmp_path) -> Path:
    """A folder of the runs in :data:`MALFORMED`: each an unlearning run ("scar" on digits, CR class 0, complete)
    but for the one field or file that makes it malformed."""
    import json

    root = tmp_path / "malformed"
    manifest = {"stage": "unlearn", "status": "complete", "created": 1.7e9, "files": []}
    config = {"method": "scar", "dataset": "digits", "model": "cnn", "scenario": "CR", "forget_classes": [0],
              "seed": 0}
    docs = {"parents_list": ({**manifest, "parents": ["x"]}, config, {}),
            "parents_null": ({**manifest, "parents": None}, config, {}),
            "forget_classes_null": (manifest, {**config, "forget_classes": [None]}, {}),
            "metric_text": (manifest, config, {"aus": "high"}),
            "deep_manifest": (None, config, {}),
            "huge_metrics": (manifest, config, None)}
    assert docs.keys() == MALFORMED.keys()
    for name, (m, c, metrics) in docs.items():
        run = root / name
        run.mkdir(parents=True)
        (run / "manifest.json").write_text(json.dumps(m) if m is not None else "[" * 200_000 + "]" * 200_000)
        (run / "config.json").write_text(json.dumps(c))
        if metrics is not None:
            (run / "metrics.json").write_text(json.dumps(metrics))
        else:
            with (run / "metrics.json").open("wb") as f:
                f.truncate((64 << 20) + 1)  # sparse: no disk space used
    return root
