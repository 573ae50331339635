"""Nothing mixed, nothing lost (issue 28): a run folder has one creator, ``--overwrite`` deletes only scarlab's
files, a full or read-only disk is one line, and a reused stage's files must parse. Full and read-only disks are
simulated in-process (the tests run as root, where chmod does not stop writes, and cannot mount a tiny tmpfs)."""
from __future__ import annotations

import builtins
import errno
import io
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest

from scarlab.cli import main
from scarlab.errors import ScarlabError
from scarlab.runs import files_intact
from scarlab.runs import RunDir, read_json, write_json

REPO = Path(__file__).resolve().parents[1]
SPLIT = ["split", "--dataset", "digits", "--forget-classes", "0"]


def _cli(capsys, argv) -> tuple[int, list[str]]:
    """The exit status and the lines on stderr, progress bars left out."""
    code = main([str(a) for a in argv])
    lines = capsys.readouterr().err.splitlines()
    return code, [line for line in lines if line.strip() and "it/s" not in line]


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock"))


# ----------------------------------------------------------------------------------- one creator per run folder
def _racer(path, barrier, who, results):
    barrier.wait()
    try:
        run = RunDir.create(path, stage="unlearn", config={"who": who})
        run.append_history({"who": who})
        time.sleep(0.3)  # the other process arrives while this run is being written
        run.write_metrics({"who": float(ord(who))})  # metrics are numbers (runs.record_problem)
        run.finish("complete")
        results.put((who, os.getpid(), None))
    except ScarlabError as exc:
        results.put((who, os.getpid(), str(exc)))


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_creating_one_run_folder_one_wins_and_the_other_names_it(tmp_path, round_):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    out = tmp_path / "X"
    procs = [ctx.Process(target=_racer, args=(out, barrier, who, results)) for who in ("a", "b")]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    winners = [(who, pid) for who, pid, err in got if err is None]
    losers = [err for _, _, err in got if err is not None]
    assert len(winners) == 1 and len(losers) == 1, got
    who, pid = winners[0]
    assert f"being written by process {pid}" in losers[0]
    run = RunDir(out)
    assert run.config["who"] == who and run.metrics["who"] == ord(who) and list(run.history()["who"]) == [who]
    assert run.manifest["pid"] == pid and run.status == "complete"
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------- what --overwrite deletes
def _finished_run(path: Path) -> RunDir:
    run = RunDir.create(path, stage="unlearn", config={"lr": 1})
    run.append_history({"step": 0})
    run.file("checkpoints").mkdir()
    run.file("checkpoints/model.pt").write_bytes(b"weights")
    run.finish("complete")
    return run


def test_overwrite_refuses_a_run_holding_the_users_files_and_then_deletes_only_scarlabs(tmp_path):
    run = _finished_run(tmp_path / "r")
    (run.path / "notes.txt").write_text("mine")
    (run.path / "checkpoints" / "plot.png").write_bytes(b"mine too")
    before = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*"))
    with pytest.raises(ScarlabError, match=r"did not write \(checkpoints/plot.png, notes.txt\)"):
        RunDir.create(run.path, stage="unlearn", overwrite=True)
    assert sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*")) == before
    (run.path / "notes.txt").unlink()
    (run.path / "checkpoints" / "plot.png").unlink()
    RunDir.create(run.path, stage="unlearn", overwrite=True, config={"lr": 2})
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "manifest.json"]
    # a run killed mid-stage lists no files yet: its own files (by scarlab's names) may still be replaced
    killed = RunDir.create(tmp_path / "k", stage="train_original")
    killed.append_history({"epoch": 1})
    write_json(killed.file("manifest.json"), {**killed.manifest, "pid": 2 ** 22 + 7})  # no such process
    RunDir.create(killed.path, stage="train_original", overwrite=True)
    assert not killed.file("history.csv").exists()


@pytest.mark.parametrize("manifest", [{"stage": "unlearn", "status": "complete"},
                                      {"id": "r", "stage": "unlearn", "status": "done", "files": []},
                                      {"id": "r", "stage": "unlearn", "status": "complete", "files": "all"}])
def test_overwrite_needs_a_manifest_scarlab_wrote_not_two_keys(tmp_path, manifest):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "manifest.json").write_text(__import__("json").dumps(manifest))
    (folder / "history.csv").write_text("precious")
    with pytest.raises(ScarlabError, match="not written by scarlab"):
        RunDir.create(folder, stage="unlearn", overwrite=True)
    assert (folder / "history.csv").read_text() == "precious"


def test_a_symlinked_out_is_refused_in_one_line(tmp_path, capsys):
    run = _finished_run(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(run.path)
    code, err = _cli(capsys, SPLIT + ["--out", link, "--overwrite"])
    assert code == 2 and len(err) == 1 and "is a symbolic link" in err[0], err
    assert run.status == "complete" and run.file("history.csv").exists()


def test_a_stage_made_again_keeps_the_users_files_in_its_folder(tmp_path):
    from scarlab.pipeline.stage import _clear

    run = _finished_run(tmp_path / "r")
    run.finish("failed", error="boom")
    (run.path / "notes.txt").write_text("mine")
    with pytest.raises(ScarlabError, match=r"did not write \(notes.txt\)"):
        _clear(run.path)
    (run.path / "notes.txt").unlink()
    _clear(run.path)
    assert list(run.path.iterdir()) == []


# ----------------------------------------------------------------------------------- full and read-only disks
@pytest.fixture
def broken_disk(monkeypatch):
    """``arm(folder, errno.ENOSPC | errno.EROFS)``: writing under ``folder`` then fails as on a full disk (a new file
    is created, empty, and its first write fails; a file that exists may still be rewritten in place, its blocks
    being allocated already) or a read-only one (nothing is created)."""
    real_open, real_mkdir, armed = io.open, os.mkdir, {}

    def hit(file) -> bool:
        if not armed or not isinstance(file, (str, os.PathLike)):
            return False
        p = Path(os.path.abspath(os.fspath(file)))
        return armed["folder"] == p or armed["folder"] in p.parents

    def fake_open(file, mode="r", *args, **kwargs):
        if hit(file) and any(c in mode for c in "wax"):
            if armed["errno"] == errno.ENOSPC:
                real_open(file, mode, *args, **kwargs).close()
            raise OSError(armed["errno"], os.strerror(armed["errno"]), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if hit(path) and armed["errno"] == errno.EROFS:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    return lambda folder, err: armed.update(folder=Path(os.path.abspath(folder)), errno=err)


def test_a_disk_filling_up_during_train_is_one_line_and_a_failed_run(tmp_path, capsys, monkeypatch, broken_disk):
    import scarlab.train

    out = tmp_path / "orig"
    real_fit = scarlab.train.fit

    def fit_then_fill(*args, **kwargs):  # the disk fills up once the run folder exists
        broken_disk(out, errno.ENOSPC)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(scarlab.train, "fit", fit_then_fill)
    code, err = _cli(capsys, ["train", "--dataset", "digits", "--epochs", "1", "--device", "cpu", "--out", out])
    assert code == 2 and len(err) == 1, err
    assert f"cannot write {out / 'history.csv'}: no space left" in err[0]
    m = read_json(out / "manifest.json")  # rewritten in place: there was no room for a new file
    assert m["status"] == "failed" and "no space left" in m["error"]
    assert _leftovers(tmp_path) == [] and not (out / "error.txt").exists()


def test_a_full_disk_before_the_run_starts_leaves_nothing(tmp_path, capsys, broken_disk):
    broken_disk(tmp_path / "split", errno.ENOSPC)
    code, err = _cli(capsys, SPLIT + ["--out", tmp_path / "split"])
    assert code == 2 and len(err) == 1 and "manifest.json.tmp: no space left" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_out_is_one_line(tmp_path, capsys, broken_disk):
    (tmp_path / "ro").mkdir()
    broken_disk(tmp_path / "ro", errno.EROFS)
    code, err = _cli(capsys, SPLIT + ["--out", tmp_path / "ro" / "split"])
    assert code == 2 and len(err) == 1 and "read-only file system; choose a folder you can write to" in err[0], err
    assert list((tmp_path / "ro").iterdir()) == []


def test_a_permission_error_does_not_claim_a_write_and_other_errors_are_not_disk_errors():
    from scarlab.errors import disk_error

    line = str(disk_error(PermissionError(errno.EACCES, "Permission denied", "/data/x.npz")))
    assert line == "/data/x.npz: permission denied; fix its permissions or choose another folder (--out, --summary)"
    assert disk_error(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
    assert disk_error(RuntimeError("boom")) is None


def test_a_read_only_summary_folder_is_one_line(tmp_path, capsys, broken_disk):
    (tmp_path / "ro").mkdir()
    broken_disk(tmp_path / "ro", errno.EROFS)
    missing = tmp_path / "no-run"  # never reached: the summary folder is made before any run is evaluated
    code, err = _cli(capsys, ["evaluate", missing, "--summary", tmp_path / "ro" / "summary"])
    assert code == 2 and err == [f"scarlab: error: cannot write {tmp_path / 'ro' / 'summary'}: read-only file system; "
                                 "choose a folder you can write to (--out, --summary)"], err
    assert list((tmp_path / "ro").iterdir()) == []


def test_a_disk_filling_up_as_a_stage_ends_leaves_it_failed_not_complete(tmp_path, monkeypatch, broken_disk):
    import papermill

    from scarlab.pipeline.plan import StageSpec
    from scarlab.pipeline.stage import StageFailed, execute_stage, stage_state

    run_dir = tmp_path / "split"
    spec = StageSpec(id="split:split", kind="split", notebook=str(REPO / "notebooks" / "02_split.ipynb"), params={},
                     run_dir=str(run_dir), output=str(run_dir / "notebook.ipynb"),
                     record=str(run_dir / "manifest.json"), fingerprint="f")

    def notebook(nb, out, **kwargs):  # the notebook completes its run; then the disk is full
        RunDir.create(run_dir, stage="split").finish("complete")
        Path(out).write_text("{}")
        broken_disk(run_dir, errno.ENOSPC)

    monkeypatch.setattr(papermill, "execute_notebook", notebook)
    with pytest.raises(StageFailed, match="manifest.json.tmp: no space left"):
        execute_stage(spec, kernel_name="python3", say=lambda _: None)
    assert read_json(run_dir / "manifest.json")["status"] == "failed"
    assert stage_state(spec) == "failed"
    assert _leftovers(tmp_path) == [] and not list(tmp_path.glob(".*.ipynb"))


# ----------------------------------------------------------------------------------- reuse re-verified
def test_a_stage_is_reused_only_if_its_csv_and_parquet_files_parse(tmp_path):
    import pandas as pd

    run = RunDir.create(tmp_path / "r", stage="unlearn")
    for step in range(3):
        run.append_history({"step": step, "loss/forget": 0.5 / (step + 1)})
    pd.DataFrame({"x": range(50), "y": [0.5] * 50}).to_parquet(run.file("embedding.parquet"))
    run.finish("complete")
    assert files_intact(run.path)
    good = {name: run.file(name).read_bytes() for name in ("history.csv", "embedding.parquet")}
    for name, data in good.items():
        run.file(name).write_bytes(data[: len(data) - 7])  # truncated mid-row / mid-footer
        assert not files_intact(run.path), name
        run.file(name).write_bytes(data)
    assert files_intact(run.path)


def test_a_run_folder_deleted_while_its_stage_runs_is_a_clear_line(tmp_path):
    run = RunDir.create(tmp_path / "r", stage="train_original")
    with pytest.raises(ScarlabError, match="was deleted while its stage was running; rerun the stage"):
        with run.running():
            shutil.rmtree(run.path)
            run.append_history({"epoch": 1})
