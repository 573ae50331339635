"""More mistakes that must be one `scarlab: error:` line, exit status 2, before any work and before any folder is
made: overlapping surrogate folders, runs used in the wrong role, out-of-range or non-finite values, images too
small for the model, shadow and summary folders that cannot be made. In-process CLI calls on digits."""
from __future__ import annotations

import pytest

from scarlab.cli import main


def _err(capsys, argv) -> str:
    """The one error line of a refused command (exit status 2, nothing on stderr besides it)."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scarlab: error: "), err
    return err[0]


def _tree(root) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("dst", ["src/chunks", "src", "."])  # inside the source, the source, around it
def test_surrogate_folder_overlapping_its_source_is_refused(capsys, tmp_path, dst):
    from PIL import Image

    (tmp_path / "src" / "cats").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (4, 4), (40 * i, 0, 0)).save(tmp_path / "src" / "cats" / f"{i}.png")
    before = _tree(tmp_path)
    msg = _err(capsys, ["surrogate", "organize", tmp_path / "src", tmp_path / dst, "--overwrite"])
    assert "overlap" in msg and _tree(tmp_path) == before


@pytest.mark.parametrize("argv,what,role,expected", [
    (["unlearn", "--from", "{retrained}", "--forget-classes", "0", "--out", "{out}"],
     "original run", "retrained oracle", "'original'"),
    (["unlearn", "--from", "{original}", "--retrained", "{original}", "--forget-classes", "0", "--out", "{out}"],
     "retrained run", "original", "'retrained oracle'"),
    (["unlearn", "--from", "{original}", "--split", "{original}", "--out", "{out}"], "split run", "original",
     "'split' or 'retrained oracle'"),
    (["evaluate", "{scar}", "--original", "{retrained}"], "original run", "retrained oracle", "'original'"),
    (["evaluate", "{scar}", "--retrained", "{original}"], "retrained run", "original", "'retrained oracle'"),
    (["evaluate", "{original}", "--split", "{retrained}", "--retrained", "{scar}", "--out", "{out}"],
     "retrained run", "unlearned model", "'retrained oracle'"),
    (["embed", "{scar}", "--original", "{retrained}"], "original run", "retrained oracle", "'original'"),
    (["stats", "{retrained}"], "original run", "retrained oracle", "'original'"),
])
def test_a_run_in_the_wrong_role_is_refused(capsys, tmp_path, digits_original, digits_retrained, digits_scar,
                                             argv, what, role, expected):
    import shutil

    scar = tmp_path / "scar"  # a copy: a refused in-place evaluation must leave the session's run as it was
    shutil.copytree(digits_scar, scar)
    before = {p: p.read_bytes() for p in scar.rglob("*") if p.is_file()}
    paths = dict(original=digits_original, retrained=digits_retrained, scar=scar, out=tmp_path / "out")
    msg = _err(capsys, [a.format(**paths) for a in argv])
    assert f"{what} " in msg and f"has role {role!r}" in msg and f"expected {expected}" in msg, msg
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in scar.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("command", ["evaluate", "audit"])
def test_a_recorded_original_that_is_a_retrained_run_is_refused(capsys, tmp_path, digits_retrained, digits_scar,
                                                                command):
    """A run unlearned from a retrained model (before unlearn checked roles) must not be evaluated or audited with
    that model as its original (AUS 1.108 instead of 0.981, without a word)."""
    import shutil

    from scarlab.runs import RunDir

    run = tmp_path / "scar"
    shutil.copytree(digits_scar, run)
    RunDir(run).update_manifest(parents={"original": str(digits_retrained), "retrained": str(digits_retrained)})
    before = (run / "manifest.json").read_bytes()
    msg = _err(capsys, [command, run, "--shadow-dir", tmp_path / "sh"] if command == "audit" else [command, run])
    assert "has role 'retrained oracle' (stage train_retrained); expected 'original'" in msg
    assert not (tmp_path / "sh").exists() and (run / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("argv,match", [
    (["train", "--weight-decay", "-1"], "weight_decay must be ≥ 0, got -1.0"),
    (["train", "--seed", "99999999999999999999"], "seed must be from 0 to 4294967295, got 99999999999999999999"),
    (["train", "--retrained", "--scenario", "HR", "--forget-size", "50", "--seed", "-5"],
     "seed must be from 0 to 4294967295, got -5"),
    (["split", "--scenario", "HR", "--forget-size", "50", "--seed", "-5"], "seed must be from 0 to 4294967295"),
    (["train", "--lr", "inf"], "lr must be a finite number, got inf"),
    (["train", "--lr", "nan"], "lr must be a finite number, got nan"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--lr", "inf"], "lr must be a finite number"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--surrogate", "gaussian_noise",
      "--surrogate-size", "0"], "surrogate_size must be ≥ 1, got 0"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--surrogate-size", "-3"],
     "surrogate_size must be ≥ 1, got -3"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--seed", "4294967296"],
     "seed must be from 0 to 4294967295, got 4294967296"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--snapshot-every", "0"],
     "snapshot_every must be ≥ 1, got 0"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--probe-retain", "-5"],
     "probe_retain must be ≥ 0, got -5"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--weight-decay", "-1"],
     "weight_decay must be ≥ 0, got -1.0"),
    (["unlearn", "--from", "{original}", "--forget-classes", "0", "--method", "finetune", "--momentum", "-1"],
     "momentum must be ≥ 0, got -1.0"),
    (["audit", "{scar}", "--seed", "4294967290", "--shadows", "8"], "shadow seeds 4294967290..4294967297"),
    (["evaluate", "{scar}", "--mia-repeats", "0"], "mia_repeats must be ≥ 1, got 0"),
    (["train", "--stats-delta", "0"], "stats_delta must be > 0, got 0.0"),
    (["stats", "{original}", "--delta", "-1"], "delta must be > 0, got -1.0"),
    (["pipeline", "--forget-classes", "0", "--seeds", "0", "-1", "--dry-run"], "seeds must be from 0 to 4294967295"),
    (["pipeline", "--forget-classes", "0", "--set", "train.lr=inf", "--dry-run"], "train.lr must be a finite"),
    (["pipeline", "--forget-classes", "0", "--methods", "finetune", "--set", "finetune.weight_decay=-1", "--dry-run"],
     "finetune: weight_decay must be ≥ 0"),
    (["pipeline", "--forget-classes", "0", "--shadows", "4", "--audit-seed", "4294967294", "--dry-run"],
     "shadow seeds 4294967294..4294967297"),
])
def test_out_of_range_and_non_finite_values_are_refused_before_any_work(capsys, tmp_path, digits_original,
                                                                       digits_scar, argv, match):
    paths = dict(original=digits_original, scar=digits_scar)
    out = tmp_path / "out"
    argv = [a.format(**paths) for a in argv] + (["--out", out] if argv[0] in ("train", "split", "unlearn",
                                                                               "pipeline") else [])
    assert match in _err(capsys, argv)
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "pipeline"])
def test_images_too_small_for_the_model_are_one_line(capsys, tmp_path, command):
    from PIL import Image

    for part in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "tiny" / part / c).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (1, 1), (100 * i, 50, 0)).save(tmp_path / "tiny" / part / c / f"{i}.png")
    extra = ["--forget-classes", "0"] if command == "pipeline" else []
    msg = _err(capsys, [command, "--dataset", f"imagefolder:{tmp_path / 'tiny'}", "--epochs", "1", *extra,
                        "--out", tmp_path / "out"])
    assert "1x1 pixels are too small for smallcnn, which needs at least 8x8" in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["afile", "afile/below", "/proc/x"])
@pytest.mark.parametrize("argv,what", [
    (["audit", "{scar}", "--shadows", "3", "--shadow-dir", "{folder}"], "shadow folder"),
    (["evaluate", "{scar}", "--mia-repeats", "1", "--summary", "{folder}"], "--summary"),
    (["train", "--epochs", "1", "--out", "{folder}"], "run directory"),
])
def test_a_folder_that_cannot_be_made_is_one_line_before_any_work(capsys, tmp_path, digits_scar, where, argv, what):
    import shutil
    import sys

    if where.startswith("/proc") and not sys.platform.startswith("linux"):
        pytest.skip("/proc is Linux's")
    scar = tmp_path / "scar"
    shutil.copytree(digits_scar, scar)
    (tmp_path / "afile").write_text("not a folder")
    before = _tree(tmp_path)
    folder = where if where.startswith("/") else tmp_path / where
    msg = _err(capsys, [a.format(scar=scar, folder=folder) for a in argv])
    assert f"{what} {folder} cannot be made" in msg or (where == "afile" and f"{folder} exists and is a file" in msg)
    assert _tree(tmp_path) == before  # nothing evaluated, audited or created
