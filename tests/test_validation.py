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


def test_batch_evaluation_reports_each_malformed_run_in_one_line(capsys, tmp_path, malformed_runs):
    """Fields of the wrong type, a manifest nested 200,000 levels, an oversized metrics.json: one line each, the
    batch carries on to the summary, which lists every run with its problem."""
    import pandas as pd
    from conftest import MALFORMED

    runs = [str(malformed_runs / name) for name in MALFORMED]
    assert main(["evaluate", *runs, "--summary", str(tmp_path / "sum"), "--mia-repeats", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(MALFORMED), err
    for line, (name, (_, problem)) in zip(err, MALFORMED.items()):
        assert line.startswith(f"scarlab: error: {malformed_runs / name}: ") and problem in line, line
    summary = pd.read_csv(tmp_path / "sum" / "summary.csv").set_index("run")
    for name, (_, problem) in MALFORMED.items():
        row = summary.loc[str(malformed_runs / name)]
        assert row["status"] in ("invalid", "unreadable") and problem in row["error"], (name, row["error"])


@pytest.mark.parametrize("yaml_text,match", [
    ("dataset: 5\nforget_classes: [0]\n", "dataset must be a text value, got 5"),
    ("dataset: digits\nforget_classes: [0]\nsurrogate: null\n", "surrogate must be a text value, got None"),
    ("dataset: digits\nforget_classes: [0]\njobs: two\n", "jobs must be a whole number, got 'two'"),
    ("dataset: digits\nforget_classes: [0]\nretain_available: \"false\"\n", "retain_available must be true or false"),
    ("dataset: digits\n  bad: [\n", "not valid YAML at line 2, column"),
    ("dataset: digits\nforget_classes: [0]\nparams: {train: {lr: 0}}\n", "train.lr must be positive"),
    ("dataset: digits\nscenario: HR\nforget_size: 50\nforget_classes: [3]\n", "HR forgets random samples"),
    ("dataset: digits\nscenario: HR\nforget_size: 5000\n", "must be smaller than the training set"),
])
def test_pipeline_config_mistakes_are_one_line(capsys, tmp_path, yaml_text, match):
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml_text)
    assert match in _err(capsys, ["pipeline", "--config", str(cfg), "--out", str(tmp_path / "p"), "--dry-run"])
    assert not (tmp_path / "p").exists()


def test_non_utf8_config_and_out_that_is_a_file(capsys, tmp_path):
    cfg = tmp_path / "grid.yaml"
    cfg.write_bytes(b"dataset: \xff\n")
    assert "is not UTF-8 text" in _err(capsys, ["pipeline", "--config", str(cfg), "--dry-run"])
    (tmp_path / "afile").write_text("x")
    assert "is a file, not a folder" in _err(capsys, ["pipeline", "--forget-classes", "0", "--out",
                                                      str(tmp_path / "afile"), "--dry-run"])


def test_a_forget_set_listed_twice_is_planned_once(tmp_path):
    from scarlab.pipeline import PipelineConfig, plan

    once = plan(PipelineConfig(forget_classes=[[0]], out=str(tmp_path)))
    twice = plan(PipelineConfig(forget_classes=[[0], [0]], out=str(tmp_path)))
    assert [s.id for s in twice] == [s.id for s in once]
