"""`scarlab import`: checkpoints made elsewhere become original runs every later stage reads (toy scale, digits)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from scarlab.cli import main
from scarlab.data import load_dataset
from scarlab.models import load_checkpoint
from scarlab.runs import RunDir


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(capsys, out_dir, *argv_and_needles) -> str:
    """`scarlab import ...` fails with one `scarlab: error:` line holding every needle, and leaves no folder."""
    *argv, needles = argv_and_needles
    code, out, err = run_cli(capsys, "import", *argv, "--dataset", "digits", "--device", "cpu", "--out", out_dir)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in out + err, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("scarlab: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out_dir.exists()
    return lines[0]


def torchvision_resnet18(stem: str, in_channels: int = 1, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """torchvision's ResNet-18 as a user builds it (weights=None: no download); the CIFAR recipe swaps in a 3x3
    stride-1 first conv and drops the max-pool."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


def plain_accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std) -> float:
    """Test accuracy with plain torch: uint8 images scaled to [0, 1] and standardised per channel."""
    net.eval()
    x = (images.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        return float((net(x).argmax(1) == labels).float().mean())


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained_resnet18(digits):
    """A torchvision ResNet-18 (CIFAR stem, 1 channel) trained a few steps on digits with a plain torch loop."""
    net = torchvision_resnet18("cifar")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = (digits.train.images.float() / 255 - torch.tensor(digits.mean).view(1, -1, 1, 1)) \
        / torch.tensor(digits.std).view(1, -1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(8):
        b = torch.randint(0, len(x), (128,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[b]), digits.train.labels[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@pytest.fixture(scope="module")
def imported_resnet18(tmp_path_factory, trained_resnet18):
    folder = tmp_path_factory.mktemp("import")
    source = folder / "resnet18_digits.pth"
    torch.save(trained_resnet18.state_dict(), source)
    assert main(["import", str(source), "--dataset", "digits", "--device", "cpu", "--quiet",
                 "--out", str(folder / "orig")]) == 0
    return source, folder / "orig"


@pytest.fixture(scope="module")
def imported_tiny(tmp_path_factory, digits_original):
    """The conftest's digits original (tinycnn), imported from its checkpoint file (the run path)."""
    out = tmp_path_factory.mktemp("import_tiny") / "imp"
    code = main(["import", str(digits_original / "checkpoints" / "model.pt"), "--dataset", "digits", "--device", "cpu",
                 "--out", str(out)])
    assert code == 0
    return out


def test_scarlab_checkpoint_round_trips(digits_original, imported_tiny):
    source = digits_original / "checkpoints" / "model.pt"
    src, run = RunDir(digits_original), RunDir(imported_tiny)
    assert run.status == "complete" and run.manifest["stage"] == "train_original"
    assert run.metrics["acc/test"] == src.metrics["acc/test"]
    assert run.metrics["acc/train"] == pytest.approx(src.metrics["acc/train"], abs=1e-12)
    # the class statistics are the ones `scarlab train` stored for the same weights
    with np.load(src.file("stats.npz")) as a, np.load(run.file("stats.npz")) as b:
        assert set(a.files) == set(b.files)
        for k in a.files:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
    imported = run.config["imported"]
    assert imported["format"] == "scarlab" and imported["source"] == str(source.resolve())
    assert imported["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert run.manifest["imported"] == imported
    assert run.config["model"] == "tinycnn"
    assert run.config["variant"] == {"imported": f"model.pt@{imported['sha256'][:8]}"}


def test_bare_state_dict_needs_and_takes_model(digits_original, tmp_path, capsys):
    ckpt = torch.load(digits_original / "checkpoints" / "model.pt", weights_only=True)
    source = tmp_path / "tiny.pt"
    torch.save({"epoch": 8, "model_state_dict": {f"module.{k}": v for k, v in ckpt["state_dict"].items()}}, source)
    assert_refused(capsys, tmp_path / "a", source, ["does not name", "--model"])
    code, out, err = run_cli(capsys, "import", source, "--model", "tinycnn", "--dataset", "digits", "--device", "cpu",
                             "--out", tmp_path / "b")
    assert code == 0, err
    assert "imported state_dict weights as an original tinycnn for digits" in out
    run = RunDir(tmp_path / "b")
    assert run.config["imported"]["format"] == "state_dict"
    assert run.config["imported"]["wrapper"] == "model_state_dict"
    assert run.metrics["acc/test"] == RunDir(digits_original).metrics["acc/test"]


def test_torchvision_resnet18_round_trips(imported_resnet18, trained_resnet18, digits):
    source, path = imported_resnet18
    run = RunDir(path)
    want = plain_accuracy(trained_resnet18, digits.test.images, digits.test.labels, digits.mean, digits.std)
    assert want > 0.3  # trained a little: chance is 0.1, so an unmapped key would show
    assert run.metrics["acc/test"] == pytest.approx(want, abs=1e-9)
    assert run.config["imported"]["format"] == "torchvision_resnet" and run.config["model"] == "resnet18"
    model = load_checkpoint(run.file("checkpoints/model.pt"))
    assert model.spec["stem"] == "cifar" and run.file("stats.npz").is_file()


def test_torchvision_imagenet_stem(digits, tmp_path, capsys):
    """torchvision's own 7x7 stride-2 stem with its max-pool is kept (spec stem='imagenet'), not squeezed into a
    CIFAR stem: the imported run predicts what the source model predicts."""
    net = torchvision_resnet18("imagenet", seed=1)
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    code, _, err = run_cli(capsys, "import", tmp_path / "r18.pt", "--dataset", "digits", "--device", "cpu",
                           "--out", tmp_path / "imp")
    assert code == 0, err
    run = RunDir(tmp_path / "imp")
    assert load_checkpoint(run.file("checkpoints/model.pt")).spec["stem"] == "imagenet"
    want = plain_accuracy(net, digits.test.images, digits.test.labels, digits.mean, digits.std)
    assert run.metrics["acc/test"] == pytest.approx(want, abs=1e-9)


def test_mismatching_key_and_shapes_are_one_line(digits_original, tmp_path, capsys):
    sd = dict(torch.load(digits_original / "checkpoints" / "model.pt", weights_only=True)["state_dict"])
    sd["body.9.weight"] = sd.pop("body.0.weight")
    torch.save(sd, tmp_path / "renamed.pt")
    assert_refused(capsys, tmp_path / "o1", tmp_path / "renamed.pt", "--model", "tinycnn", ["'body.9.weight'"])
    # torchvision's 3-channel first conv for 1-channel digits
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), tmp_path / "rgb.pt")
    line = assert_refused(capsys, tmp_path / "o2", tmp_path / "rgb.pt",
                          ["'conv1.weight'", "[64, 3, 7, 7]", "[64, 1, 7, 7]", "3-channel"])
    assert "body." not in line  # keys named as the file names them
    # ImageNet's 1000 classes for digits' 10
    torch.save(torchvision_resnet18("cifar", num_classes=1000).state_dict(), tmp_path / "k1000.pt")
    assert_refused(capsys, tmp_path / "o3", tmp_path / "k1000.pt", ["'fc.weight'", "[1000, 512]", "[10, 512]"])
    # a torchvision key the model lacks
    sd = torchvision_resnet18("cifar").state_dict()
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.pt")
    assert_refused(capsys, tmp_path / "o4", tmp_path / "extra.pt", ["'layer5.0.conv1.weight'"])


def test_pickled_module_is_refused(tmp_path, capsys):
    torch.save(torchvision_resnet18("cifar"), tmp_path / "whole_model.pt")  # the module itself, pickled
    assert_refused(capsys, tmp_path / "out", tmp_path / "whole_model.pt",
                   ["pickled", "refuses to unpickle", "state_dict()"])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert_refused(capsys, tmp_path / "out", tmp_path / "junk.pt", ["not a PyTorch checkpoint"])
    assert_refused(capsys, tmp_path / "out", tmp_path / "missing.pt", ["does not exist"])


@pytest.fixture(scope="module")
def imported_root(imported_tiny):
    """The imported original's folder plus SCAR run from it (CR class 0, 1 epoch) and the original evaluated
    against that split, all through the CLI: (exit codes, root)."""
    root = imported_tiny.parent
    codes = [main(["unlearn", "--method", "scar", "--from", str(imported_tiny), "--forget-classes", "0",
                   "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(root / "scar")]),
             main(["evaluate", str(root / "scar"), "--mia-repeats", "1", "--quiet"]),
             main(["evaluate", str(imported_tiny), "--split", str(root / "scar"), "--mia-repeats", "1", "--quiet",
                   "--out", str(root / "orig_eval")])]
    return codes, root


def test_unlearn_and_evaluate_from_imported(imported_root, imported_tiny):
    codes, root = imported_root
    assert codes == [0, 0, 0]
    run = RunDir(root / "scar")
    assert run.status == "complete" and run.manifest["parents"]["original"] == str(imported_tiny.resolve())
    assert "aus" in run.metrics
    # the imported original evaluated against that split, as the pipeline's original_eval does
    assert RunDir(root / "orig_eval").metrics["acc/forget_test"] > 0.5  # the original still knows class 0


def test_dashboard_lists_imported_original(imported_root, imported_tiny, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCARLAB_RUNS", str(imported_root[1]))
    at = AppTest.from_file(str(Path(__file__).parents[1] / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["imp", "label"].startswith("original · imported=model.pt@")
    assert "complete" in table.loc["imp", "status"] and "complete" in table.loc["scar", "status"]
    for page in ("compare", "curves", "distances", "migration", "privacy"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])


# ----------------------------------------------------------------------------- the pipeline from an existing original
def test_pipeline_starts_from_an_imported_original(imported_tiny, digits_original, tmp_path, capsys):
    """`scarlab pipeline --original RUN`: no original is trained; split, retrained oracle and unlearning use RUN, and
    a rerun reuses every stage. Another original (the trained one the import came from) plans other folders, and
    its recorded recipe (8 epochs) is the retrained oracle's."""
    from scarlab.pipeline import PipelineConfig, plan, stage_state

    out = tmp_path / "p"
    argv = ["pipeline", "--original", imported_tiny, "--forget-classes", "3", "--methods", "scar", "--epochs", "2",
            "--unlearn-epochs", "1", "--no-evaluate", "--device", "cpu", "--quiet", "--out", out]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert not list(out.rglob("original__*"))  # nothing trained
    unl = RunDir(next(out.rglob("scar__s0__*")))
    assert unl.status == "complete" and unl.manifest["parents"]["original"] == str(imported_tiny.resolve())
    assert RunDir(next(out.rglob("retrained"))).config["epochs"] == 2  # an import records no recipe: the pipeline's
    specs = plan(PipelineConfig(original=str(imported_tiny), forget_classes=[3], methods=["scar"], epochs=2,
                                unlearn_epochs=1, evaluate=False, device="cpu", out=str(out)))
    assert [stage_state(s) for s in specs] == ["current"] * len(specs) and specs[0].given
    other = plan(PipelineConfig(original=str(digits_original), forget_classes=[3], methods=["scar"],
                                unlearn_epochs=1, evaluate=False, device="cpu", out=str(out)))
    assert {s.run_dir for s in other[1:]}.isdisjoint(s.run_dir for s in specs[1:])  # never the stale stages
    retr = next(s for s in other if s.kind == "train_retrained")
    assert retr.params["epochs"] == 8 and retr.params["seed"] == 0  # as digits_original was trained
    assert retr.params["batch_size"] == 64 and retr.params["label_smoothing"] == 0.0  # its resolved recipe


def test_bad_original_is_one_line_before_any_work(imported_tiny, digits_retrained, tmp_path, capsys):
    other = tmp_path / "c10"  # an original of another data set: the import's folder, relabelled
    shutil.copytree(imported_tiny, other)
    conf = RunDir(other).config
    (other / "config.json").write_text(json.dumps({**conf, "dataset": "cifar10"}))
    cases = [(tmp_path / "missing", ["does not exist"]),
             (digits_retrained, ["has role 'retrained oracle'", "expected 'original'"]),
             (other, ["'cifar10'", "'digits'"])]
    for path, needles in cases:
        out = tmp_path / "p"
        code, stdout, err = run_cli(capsys, "pipeline", "--original", path, "--forget-classes", "3", "--device", "cpu",
                                    "--out", out)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("scarlab: error: original "), err
        assert all(n in lines[0] for n in needles), (needles, lines[0])
        assert not out.exists()  # before any work
    code, _, err = run_cli(capsys, "pipeline", "--original", imported_tiny, "--shadows", "4", "--forget-classes", "3",
                           "--device", "cpu", "--dry-run", "--out", tmp_path / "p")
    assert code == 2 and "shadows 0" in err  # an import records no training the shadow models could copy
