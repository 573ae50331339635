"""Nothing mixed, nothing lost (issue 28): a run folder has one creator, and ``--overwrite`` deletes only scarlab's
files."""
from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from scarlab.cli import main
from scarlab.errors import ScarlabError
from scarlab.runs import RunDir, write_json

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
        run.write_metrics({"who": who})
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
    assert run.config["who"] == who and run.metrics["who"] == who and list(run.history()["who"]) == [who]
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
