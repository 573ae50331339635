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
