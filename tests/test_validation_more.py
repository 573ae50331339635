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
