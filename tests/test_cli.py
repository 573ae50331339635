"""The `scarlab` command line: every bad input is one line naming the problem (exit 2, no traceback)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scarlab.cli import COMMANDS, main
from scarlab.models import create_model, save_checkpoint



def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scarlab: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """An image-folder data set whose class 'b' has test images but no training images."""
    root = tmp_path_factory.mktemp("tinyfolder")
    for split, per_class in (("train", {"a": 3, "b": 0}), ("test", {"a": 1, "b": 1})):
        for cls, n in per_class.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / split / cls / f"{i}.png")
    return root


@pytest.fixture()
def original_copy(tmp_path, digits_original) -> Path:
    """A private copy of the trained digits run, to break its checkpoint."""
    dst = tmp_path / "original"
    shutil.copytree(digits_original, dst)
    return dst


# ----------------------------------------------------------------------------- bad input
def test_unknown_dataset(capsys, tmp_path):
    res = run_cli(capsys, "split", "--dataset", "mnist", "--forget-classes", "0", "--out", tmp_path / "s")
    assert_one_line_error(*res, "unknown dataset 'mnist'", "digits, cifar10, cifar100, tinyimagenet, imagefolder:PATH")
    assert not (tmp_path / "s").exists()


def test_unknown_model(capsys, tmp_path):
    res = run_cli(capsys, "train", "--model", "resnet9000", "--epochs", "1", "--out", tmp_path / "t")
    assert_one_line_error(*res, "unknown model 'resnet9000'", "tinycnn", "resnet18")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("command", ["split", "train"])
def test_unknown_scenario(capsys, tmp_path, command):
    extra = ["--retrained"] if command == "train" else []
    res = run_cli(capsys, command, *extra, "--scenario", "XR", "--forget-classes", "0", "--out", tmp_path / "s")
    assert_one_line_error(*res, "unknown scenario 'XR'", "CR, HR")


@pytest.mark.parametrize("make_root, needle", [
    (lambda tmp: "/nonexistent/scarlab-data", "does not exist"),
    (lambda tmp: tmp, "no folder"),                    # an empty directory
    (lambda tmp: "", "needs a folder"),
])
def test_missing_or_empty_imagefolder(capsys, tmp_path, make_root, needle):
    res = run_cli(capsys, "train", "--dataset", f"imagefolder:{make_root(tmp_path)}", "--out", tmp_path / "t")
    assert_one_line_error(*res, needle)


def test_empty_tinyimagenet_root(capsys, tmp_path):
    res = run_cli(capsys, "split", "--dataset", "tinyimagenet", "--data-root", tmp_path, "--forget-classes", "0",
                  "--out", tmp_path / "s")
    assert_one_line_error(*res, "no Tiny-ImageNet at", "--data-root")


def test_forget_class_out_of_range(capsys, tmp_path):
    res = run_cli(capsys, "split", "--forget-classes", "3,10", "--out", tmp_path / "s")
    assert_one_line_error(*res, "forget class 10 is out of range", "0..9")
    res = run_cli(capsys, "split", "--forget-classes", "x", "--out", tmp_path / "s")
    assert_one_line_error(*res, "'x' is not an integer")


@pytest.mark.parametrize("args, needle", [
    (["--forget-classes", "1"], "the forget set is empty"),    # class 'b' has no training image
    ([], "at least one forget class"),
    (["--scenario", "HR", "--forget-size", "0"], "forget size of at least 1"),
])
def test_empty_forget_set(capsys, tmp_path, tiny_folder, args, needle):
    res = run_cli(capsys, "split", "--dataset", f"imagefolder:{tiny_folder}", *args, "--out", tmp_path / "s")
    assert_one_line_error(*res, needle)


def test_hr_forget_size_too_large(capsys, tmp_path):
    res = run_cli(capsys, "train", "--retrained", "--scenario", "HR", "--forget-size", "1347", "--out", tmp_path / "t")
    assert_one_line_error(*res, "HR forget size 1347 must be smaller than the training set (1347 images)")
    assert not (tmp_path / "t").exists()


def test_forget_options_need_retrained(capsys, tmp_path):
    res = run_cli(capsys, "train", "--forget-classes", "0", "--out", tmp_path / "t")
    assert_one_line_error(*res, "--retrained")


def test_missing_checkpoint(capsys, original_copy):
    (original_copy / "checkpoints" / "model.pt").unlink()
    res = run_cli(capsys, "stats", original_copy, "--device", "cpu")
    assert_one_line_error(*res, "model.pt does not exist")


def test_mismatched_checkpoints(capsys, original_copy):
    ckpt = original_copy / "checkpoints" / "model.pt"
    save_checkpoint(create_model("smallcnn", num_classes=10, in_channels=3, image_size=32, width=8), ckpt)
    assert_one_line_error(*run_cli(capsys, "stats", original_copy, "--device", "cpu"),
                          "does not match the data", "in_channels=3", "in_channels=1")
    spec = dict(create_model("tinycnn", 10, 1, 8).spec)
    torch.save({"spec": spec, "state_dict": create_model("tinycnn", 10, 1, 8, width=8).state_dict()}, ckpt)
    assert_one_line_error(*run_cli(capsys, "stats", original_copy, "--device", "cpu"),
                          "does not match its model 'tinycnn'")
    ckpt.write_bytes(b"not a checkpoint")
    assert_one_line_error(*run_cli(capsys, "stats", original_copy, "--device", "cpu"), "not a scarlab checkpoint")


def test_not_a_run_directory(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "stats", tmp_path), "not a scarlab run directory")


def test_surrogate_folder_without_images(capsys, tmp_path):
    empty = tmp_path / "empty"
    (empty / "0").mkdir(parents=True)
    (empty / "0" / "readme.txt").write_text("no images here")
    res = run_cli(capsys, "surrogate", "organize", empty, tmp_path / "dst")
    assert_one_line_error(*res, "no images under")
    assert not (tmp_path / "dst").exists()


def test_unlearn_surrogate_folder_without_images(capsys, tmp_path, digits_original):
    (tmp_path / "empty" / "0").mkdir(parents=True)
    res = run_cli(capsys, "unlearn", "--from", digits_original, "--forget-classes", "0", "--device", "cpu",
                  "--surrogate", f"imagefolder:{tmp_path / 'empty'}", "--out", tmp_path / "u")
    assert_one_line_error(*res, "holds no images")
    assert not (tmp_path / "u").exists()


def test_unlearn_no_retain_refuses_a_method_that_needs_it(capsys, tmp_path, digits_original):
    res = run_cli(capsys, "unlearn", "--method", "finetune", "--no-retain", "--from", digits_original,
                  "--forget-classes", "0", "--device", "cpu", "--out", tmp_path / "u")
    assert_one_line_error(*res, "needs the retain set", "scar")
    assert not (tmp_path / "u").exists()


def test_bad_split_file(capsys, tmp_path):
    (tmp_path / "split.npz").write_bytes(b"junk")
    res = run_cli(capsys, "train", "--retrained", "--split", tmp_path / "split.npz", "--out", tmp_path / "t")
    assert_one_line_error(*res, "is not a scarlab split")
    res = run_cli(capsys, "train", "--retrained", "--split", tmp_path / "nothing", "--out", tmp_path / "t")
    assert_one_line_error(*res, "no split at")


def test_bad_training_numbers(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "train", "--epochs", "0", "--out", tmp_path / "t"), "epochs must be at least 1")
    assert_one_line_error(*run_cli(capsys, "train", "--lr", "-1", "--out", tmp_path / "t"), "learning rate")


# ----------------------------------------------------------------------------- nothing is lost
def test_existing_run_is_not_overwritten(capsys, tmp_path):
    out = tmp_path / "split_cr0"
    code, stdout, _ = run_cli(capsys, "split", "--forget-classes", "0", "--out", out)
    assert code == 0 and "CR: forget classes [0]" in stdout
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = run_cli(capsys, "split", "--forget-classes", "1", "--out", out)
    assert_one_line_error(*res, "already exists", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, _, _ = run_cli(capsys, "split", "--forget-classes", "1", "--out", out, "--overwrite")
    assert code == 0 and (out / "split.npz").read_bytes() != before["split.npz"]


def test_overwrite_refuses_a_folder_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "notes.md").write_text("precious")
    (tmp_path / "code").mkdir()
    res = run_cli(capsys, "split", "--forget-classes", "0", "--out", tmp_path, "--overwrite")
    assert_one_line_error(*res, "not a scarlab run directory", "refusing to delete")
    assert (tmp_path / "notes.md").read_text() == "precious"


# ----------------------------------------------------------------------------- help
def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("argv", [[name, "--help"] for name in COMMANDS] + [["surrogate", "organize", "--help"]])
def test_subcommand_help(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: scarlab " + argv[0])


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_export_names_a_missing_notebook(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2 and "no executed notebook in" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "x.ipynb")]) == 2 and "no such notebook" in capsys.readouterr().err


def test_python_m_scarlab_help(tmp_path):
    """The one real process: `python -m scarlab --help` (imports, entry point, exit status)."""
    res = subprocess.run([sys.executable, "-m", "scarlab", "--help"], capture_output=True, text=True,
                         env={**os.environ, "SCARLAB_THREADS": "1"}, cwd=tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: scarlab") and all(name in res.stdout for name in COMMANDS)


def test_commands_that_compute_nothing_leave_torch_unloaded(tmp_path):
    """`scarlab jobs` (and dashboard, export, lab: cli.NO_TORCH) neither build the other commands' parsers nor set
    torch threads, so they start without importing torch even with SCARLAB_THREADS set."""
    code = ("import sys; from scarlab.cli import main; main(['jobs', '--runs', sys.argv[1]]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SCARLAB_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout
