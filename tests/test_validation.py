"""Every user mistake is one line and exit status 2, found before any run directory exists; a batch evaluation
reports a bad run and carries on. In-process CLI calls on digits (the fixtures' tiny runs)."""
from __future__ import annotations

import shutil

import pytest

from scarlab.cli import main
from scarlab.runs import RunDir


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scarlab: error: "), err
    return err[0]


@pytest.mark.parametrize("extra,match", [
    (["--epochs", "0"], "epochs must be a whole number ≥ 1"),
    (["--epochs", "-3"], "epochs must be a whole number ≥ 1"),
    (["--batch-size", "-5"], "batch_size must be a whole number ≥ 1"),
    (["--batch-size", "0"], "batch_size must be a whole number ≥ 1"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--steps-per-forget-batch", "0"], "steps_per_forget_batch must be a whole number ≥ 1"),
    (["--preset", "turbo"], "valid choices: authors, scarlab-fast"),
])
def test_unlearn_refuses_values_that_would_run_nothing(capsys, tmp_path, digits_original, extra, match):
    out = tmp_path / "u"
    msg = _err(capsys, ["unlearn", "--from", str(digits_original), "--forget-classes", "0", "--device", "cpu",
                        "--out", str(out), *extra])
    assert match in msg and not out.exists()


def test_train_batch_size_zero_is_an_error_not_a_default(capsys, tmp_path):
    assert "batch size must be at least 1" in _err(capsys, ["train", "--batch-size", "0", "--out", str(tmp_path / "t")])
    assert not (tmp_path / "t").exists()


def test_hr_with_forget_classes_is_a_conflict(capsys, tmp_path, digits_original):
    msg = _err(capsys, ["unlearn", "--from", str(digits_original), "--scenario", "HR", "--forget-size", "50",
                        "--forget-classes", "3", "--out", str(tmp_path / "u")])
    assert "HR forgets random samples, not classes" in msg


def test_unfinished_runs_are_not_accepted_as_splits(capsys, tmp_path, digits_original, digits_retrained):
    failed = tmp_path / "failed_split"
    shutil.copytree(digits_retrained, failed)
    RunDir(failed).update_manifest(status="failed", error="boom")
    msg = _err(capsys, ["unlearn", "--from", str(digits_original), "--split", str(failed), "--out", str(tmp_path / "u")])
    assert "has status 'failed'" in msg


@pytest.mark.parametrize("name,content", [("manifest.json", b"{oops"), ("config.json", b"\xff"),
                                          ("metrics.json", b"[]")])
def test_corrupt_run_files_are_one_line(capsys, tmp_path, digits_original, name, content):
    broken = tmp_path / "orig"
    shutil.copytree(digits_original, broken)
    (broken / name).write_bytes(content)
    msg = _err(capsys, ["unlearn", "--from", str(broken), "--forget-classes", "0", "--out", str(tmp_path / "u")])
    assert name in msg


def test_truncated_stats_name_their_path(capsys, tmp_path, digits_original):
    broken = tmp_path / "orig"
    shutil.copytree(digits_original, broken)
    data = (broken / "stats.npz").read_bytes()
    (broken / "stats.npz").write_bytes(data[: len(data) // 2])
    msg = _err(capsys, ["unlearn", "--from", str(broken), "--forget-classes", "0", "--stats-source", "training",
                        "--out", str(tmp_path / "u")])
    assert "stats.npz" in msg and "scarlab stats" in msg


def test_batch_evaluation_reports_a_bad_run_and_carries_on(capsys, tmp_path, digits_scar):
    good = tmp_path / "good"
    shutil.copytree(digits_scar, good)
    bad = tmp_path / "bad"
    shutil.copytree(digits_scar, bad)
    (bad / "manifest.json").write_text("{corrupt")
    code = main(["evaluate", str(bad), str(good), "--summary", str(tmp_path / "sum"), "--mia-repeats", "1"])
    out = capsys.readouterr()
    assert code == 2 and "bad" in out.err and f"evaluated {good}" in out.out
    assert (tmp_path / "sum" / "summary.csv").is_file()
