"""Nothing lost, nothing left running: stage locks, interrupts (Ctrl-C, SIGTERM, a killed process), and what
``--overwrite`` may delete. Real processes and real signals, on digits with tiny epochs."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scarlab.errors import ScarlabError
from scarlab.interrupts import stage_lock
from scarlab.runs import RunDir, read_json, write_json

SCARLAB = [sys.executable, "-m", "scarlab"]


def _wait_for(predicate, timeout=120.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------------- run directories
def test_a_running_run_whose_process_is_gone_reads_failed_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = RunDir.create(tmp_path / "r", stage="unlearn")
    write_json(run.file("manifest.json"), {**run.manifest, "pid": dead.pid})
    assert run.status == "failed" and "interrupted" in run.error
    write_json(run.file("manifest.json"), {**run.manifest, "host": socket.gethostname() + "-elsewhere"})
    assert run.status == "running"  # another machine's process: we cannot tell, so we do not guess


def test_overwrite_deletes_only_scarlab_runs_nobody_is_writing(tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    for name in ("a.png", "table.csv", "notes.txt"):
        (mine / name).write_text("precious")
    with pytest.raises(ScarlabError, match="not a scarlab run directory"):
        RunDir.create(mine, stage="unlearn", overwrite=True)
    assert sorted(p.name for p in mine.iterdir()) == ["a.png", "notes.txt", "table.csv"]
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ScarlabError, match="not written by scarlab"):
        RunDir.create(fake, stage="unlearn", overwrite=True)
    # a run being written by a live process (this test's parent) is not deleted
    busy = RunDir.create(tmp_path / "busy", stage="unlearn")
    write_json(busy.file("manifest.json"), {**busy.manifest, "pid": os.getppid()})
    with pytest.raises(ScarlabError, match=f"being written by process {os.getppid()}"):
        RunDir.create(busy.path, stage="unlearn", overwrite=True)
    done = RunDir.create(tmp_path / "done", stage="unlearn")
    done.finish("complete")
    RunDir.create(done.path, stage="unlearn", overwrite=True)  # a finished scarlab run may be replaced


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_corrupt_json_is_one_line_naming_the_file(tmp_path, content):
    f = tmp_path / "manifest.json"
    f.write_bytes(content)
    with pytest.raises(ScarlabError, match="manifest.json"):
        read_json(f)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    f = tmp_path / "manifest.json"
    os.mkfifo(f)
    with pytest.raises(ScarlabError, match="not a regular file"):
        read_json(f)


# ----------------------------------------------------------------------------------- locks
def _holder(lock: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the stage lock for ``seconds`` (it prints "held" once it has it)."""
    p = subprocess.Popen([sys.executable, "-c", f"""
import time
from scarlab.interrupts import stage_lock
with stage_lock({str(lock)!r}, "x"):
    print("held", flush=True)
    time.sleep({seconds})
"""], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_process_waits_for_the_stage_lock(tmp_path):
    lock = tmp_path / ".stage.lock"
    holder = _holder(lock, 3)
    said = []
    t0 = time.monotonic()
    with stage_lock(lock, "train original", say=said.append):
        waited = time.monotonic() - t0
    holder.wait()
    assert waited > 0.3 and len(said) == 1 and f"PID {holder.pid}" in said[0]
    assert not lock.exists()  # removed by its last holder


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / ".stage.lock"
    holder = _holder(lock, 60)
    holder.kill()
    holder.wait()
    t0 = time.monotonic()
    with stage_lock(lock, "x", say=lambda m: None):
        pass
    assert time.monotonic() - t0 < 1.0


# ----------------------------------------------------------------------------------- signals
def test_sigterm_on_train_marks_the_run_failed_interrupted(tmp_path):
    out = tmp_path / "orig"
    p = subprocess.Popen(SCARLAB + ["train", "--dataset", "digits", "--epochs", "200", "--device", "cpu",
                                    "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / "history.csv").is_file(), what="training to start")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    m = read_json(out / "manifest.json")
    assert m["status"] == "failed" and m["error"].startswith("interrupted")


def _pipeline(out, *extra):
    return subprocess.Popen(SCARLAB + ["pipeline", "--dataset", "digits", "--forget-classes", "0", "--methods", "scar",
                                       "--epochs", "40", "--no-evaluate", "--device", "cpu", "--out", str(out),
                                       "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _original_dir(out: Path) -> Path | None:
    found = [p.parent for p in out.glob("*/original__*/manifest.json")]
    return found[0] if found else None


def test_ctrl_c_stops_after_the_current_stage_and_twice_aborts_it(tmp_path):
    out = tmp_path / "pipe"
    p = _pipeline(out, "--epochs", "12")  # finished after the first Ctrl-C: whether or not it was still training then,
    _wait_for(lambda: _original_dir(out) is not None, what="the original stage to start")  # no unlearning may start
    p.send_signal(signal.SIGINT)
    text, _ = p.communicate(timeout=300)
    assert p.returncode == 130, text
    assert "stopping after the current stage (Ctrl-C again to abort)" in text
    orig = _original_dir(out)
    assert read_json(orig / "manifest.json")["status"] == "complete"  # the running stage was allowed to finish
    assert not [p for p in out.rglob("*") if "unlearn" in p.name or p.name.startswith("scar__")]

    out2 = tmp_path / "pipe2"
    p = _pipeline(out2, "--train-seed", "1")
    _wait_for(lambda: _original_dir(out2) is not None and (_original_dir(out2) / "history.csv").is_file(),
              what="the original stage to train")
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    text, _ = p.communicate(timeout=120)
    assert p.returncode == 130, text
    m = read_json(_original_dir(out2) / "manifest.json")
    assert m["status"] == "failed" and "interrupted" in m["error"], m
    hidden = [q.name for q in out2.rglob(".*") if q.suffix in (".ipynb", ".log")]
    assert hidden == [], hidden


def test_two_pipelines_on_one_out_share_a_stage_instead_of_deleting_it(tmp_path):
    out = tmp_path / "pipe"
    a = _pipeline(out, "--epochs", "15")
    _wait_for(lambda: _original_dir(out) is not None, what="the first pipeline's original stage")
    b = _pipeline(out, "--epochs", "15")
    text_a, _ = a.communicate(timeout=400)
    text_b, _ = b.communicate(timeout=400)
    assert a.returncode == 0, text_a
    assert b.returncode == 0, text_b
    assert "is running this stage; waiting for it" in text_b
    m = read_json(_original_dir(out) / "manifest.json")
    assert m["status"] == "complete" and m["pid"] != b.pid


def test_sweep_stops_after_the_current_stage_on_ctrl_c(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("datasets: [digits]\nmethods: [scar]\nforget_classes: [[0]]\nseeds: [0]\nepochs: 12\n"
                    f"evaluate: false\ndevice: cpu\nout: {tmp_path / 'sweep'}\n")
    p = subprocess.Popen(SCARLAB + ["sweep", str(grid), "--sequential"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for(lambda: _original_dir(tmp_path / "sweep") is not None, what="the sweep's original stage")
    p.send_signal(signal.SIGINT)
    text, _ = p.communicate(timeout=300)
    assert p.returncode == 130, text
    assert "stopping after the current stage (Ctrl-C again to abort)" in text
    assert read_json(_original_dir(tmp_path / "sweep") / "manifest.json")["status"] == "complete"
