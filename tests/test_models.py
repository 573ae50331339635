"""Every registered model: penultimate features and logits have the right shapes; checkpoints round-trip."""
from __future__ import annotations

import pytest
import torch

from scarlab.errors import ScarlabError
from scarlab.models import MODELS, create_model, default_model, load_checkpoint, save_checkpoint

# torchvision's ViT-B/16 works at 224 px (inputs are resized): build it untrained and run one image only.
HEAVY = {"vit_b16": dict(kwargs={"pretrained": False}, batch=1)}


def _check(model, x: torch.Tensor, num_classes: int) -> None:
    model.eval()
    with torch.no_grad():
        z = model.features(x)
        logits = model.head(z)
    assert z.shape == (len(x), model.feature_dim) and z.dtype == torch.float32
    assert (z >= 0).all(), "SCAR's Tukey transform needs non-negative (post-ReLU) features"
    assert logits.shape == (len(x), num_classes)
    assert torch.isfinite(logits).all()


def test_registry_has_the_issue_models():
    assert {"tinycnn", "smallcnn", "allcnn", "resnet8", "resnet20", "resnet18", "resnet34", "resnet50", "vit",
            "vit_b16"} <= set(MODELS)
    assert default_model("digits") == "tinycnn" and default_model("cifar10") == "smallcnn"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shapes_32px_rgb(name):
    torch.manual_seed(0)
    opts = HEAVY.get(name, {})
    model = create_model(name, num_classes=10, in_channels=3, image_size=32, **opts.get("kwargs", {}))
    _check(model, torch.randn(opts.get("batch", 2), 3, 32, 32), 10)


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(HEAVY)))
def test_shapes_8px_gray(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=1, image_size=8)
    _check(model, torch.randn(2, 1, 8, 8), 7)


def test_unknown_model():
    with pytest.raises(ScarlabError, match="unknown model 'nope'; valid choices: .*tinycnn"):
        create_model("nope", num_classes=10)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("smallcnn", num_classes=5, in_channels=1, image_size=8, width=8)
    save_checkpoint(model, tmp_path / "model.pt")
    again = load_checkpoint(tmp_path / "model.pt", expect={"num_classes": 5, "in_channels": 1})
    assert again.spec == model.spec
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(4, 1, 8, 8)
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ScarlabError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_mismatched_checkpoints(tmp_path):
    small = create_model("tinycnn", num_classes=10, in_channels=1, image_size=8)
    # weights of one model under the name of another
    torch.save({"spec": dict(small.spec, name="smallcnn"), "state_dict": small.state_dict()}, tmp_path / "a.pt")
    with pytest.raises(ScarlabError, match="does not match its model 'smallcnn'"):
        load_checkpoint(tmp_path / "a.pt")
    # the right model, but for data with another number of classes / channels
    save_checkpoint(small, tmp_path / "b.pt")
    with pytest.raises(ScarlabError, match="num_classes=10, the data needs num_classes=100"):
        load_checkpoint(tmp_path / "b.pt", expect={"num_classes": 100, "in_channels": 1})
    # not a scarlab checkpoint at all
    torch.save(small.state_dict(), tmp_path / "c.pt")
    (tmp_path / "d.pt").write_bytes(b"garbage")
    for name in ("c.pt", "d.pt"):
        with pytest.raises(ScarlabError, match="not a scarlab checkpoint"):
            load_checkpoint(tmp_path / name)
