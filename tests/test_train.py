"""Original and retrained training on digits, and the run directories they leave: real toy-scale runs."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from scarlab.config import TrainConfig
from scarlab.schema import build
from scarlab.data import Split
from scarlab.errors import ScarlabError
from scarlab.models import load_checkpoint
from scarlab.runs import RunDir
from scarlab.stats import ClassStats
from scarlab.train import run_train


def test_original_beats_chance(digits_original):
    metrics = RunDir(digits_original).metrics
    assert metrics["acc/test"] >= 0.9  # chance is 0.1
    assert metrics["acc/train"] >= 0.9
    assert metrics["time/train_s"] > 0


def test_original_run_directory(digits_original):
    run = RunDir(digits_original)
    manifest = run.manifest
    assert manifest["status"] == "complete" and manifest["stage"] == "train_original"
    assert "error" not in manifest and manifest["versions"]["torch"] == torch.__version__
    for name in ("config.json", "history.csv", "metrics.json", "stats.npz", "checkpoints/model.pt"):
        assert run.file(name).is_file(), name
        assert name in manifest["files"]
    assert not run.file("split.npz").exists()  # the original model has no forget set
    saved = json.loads(run.file("config.json").read_text())
    assert saved.pop("variant") == {"epochs": 8}  # the training options that differ from the data set's defaults
    cfg = build(TrainConfig, saved)  # config.json is the resolved configuration
    assert (cfg.dataset, cfg.model, cfg.role, cfg.epochs) == ("digits", "tinycnn", "original", 8)
    history = pd.read_csv(run.file("history.csv"))
    assert list(history["epoch"]) == list(range(1, 9))
    assert {"loss/train", "acc/test", "lr", "time/epoch_s"} <= set(history.columns)
    assert history["loss/train"].iloc[-1] < history["loss/train"].iloc[0]
    model = load_checkpoint(run.file("checkpoints/model.pt"), expect={"num_classes": 10, "in_channels": 1})
    stats = ClassStats.load(run.file("stats.npz"))
    assert stats.means.shape == (10, model.feature_dim) and stats.covs.shape == (10, model.feature_dim,
                                                                                  model.feature_dim)
    assert stats.counts.sum() == 1347


def test_retrained_oracle_forgets(digits_retrained):
    run = RunDir(digits_retrained)
    assert run.status == "complete" and run.manifest["stage"] == "train_retrained"
    split = Split.load(run.file("split.npz"))
    assert split.scenario == "CR" and split.forget_classes == [0]
    m = run.metrics
    assert m["acc/forget_test"] <= 0.02 and m["acc/forget_train"] <= 0.02  # never saw class 0
    assert m["acc/retain_test"] >= 0.85


def test_same_seed_same_weights(tmp_path):
    """Two short retrained HR runs with the same seed: identical split and identical weights on the CPU."""
    def train(name):
        cfg = TrainConfig(dataset="digits", role="retrained", scenario="HR", forget_size=100, seed=3, epochs=1,
                          device="cpu")
        return run_train(cfg, tmp_path / name, progress=False)

    a, b = train("a"), train("b")
    sa, sb = Split.load(a.file("split.npz")), Split.load(b.file("split.npz"))
    assert np.array_equal(sa.forget_idx, sb.forget_idx) and len(sa.forget_idx) == 100
    wa = load_checkpoint(a.file("checkpoints/model.pt")).state_dict()
    wb = load_checkpoint(b.file("checkpoints/model.pt")).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics["acc/forget_test"] is None  # HR has no forget-test set: NaN is stored as null
    assert not a.file("stats.npz").exists()  # only the original model stores class statistics


def test_failed_stage_is_marked(tmp_path):
    run = RunDir.create(tmp_path / "r", stage="test", config={"x": 1})
    assert run.status == "running"
    with pytest.raises(RuntimeError):
        with run.running():
            run.append_history({"step": 1, "loss": 0.5})
            raise RuntimeError("boom")
    assert run.status == "failed" and run.manifest["error"] == "RuntimeError: boom"
    assert "history.csv" in run.manifest["files"] and run.file("error.txt").is_file()


def test_history_widens_columns(tmp_path):
    run = RunDir.create(tmp_path / "r", stage="test")
    run.append_history({"step": 1, "loss/forget": 1.0})
    run.append_history({"step": 2, "loss/forget": 0.5, "acc/forget_train": 0.3})
    h = run.history()
    assert list(h.columns) == ["step", "loss/forget", "acc/forget_train"] and len(h) == 2
    assert np.isnan(h["acc/forget_train"].iloc[0]) and h["acc/forget_train"].iloc[1] == 0.3


def test_existing_runs_are_kept(tmp_path):
    run = RunDir.create(tmp_path / "r", stage="test")
    with pytest.raises(ScarlabError, match="already exists.*--overwrite"):
        RunDir.create(tmp_path / "r", stage="test")
    assert run.status == "running"
    RunDir.create(tmp_path / "r", stage="again", overwrite=True)
    assert RunDir(tmp_path / "r").manifest["stage"] == "again"
    # --overwrite never deletes a folder that is not a run directory (e.g. --out . by mistake)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "thesis.tex").write_text("precious")
    with pytest.raises(ScarlabError, match="not a scarlab run directory"):
        RunDir.create(tmp_path / "project", stage="test", overwrite=True)
    assert (tmp_path / "project" / "thesis.tex").read_text() == "precious"


def test_split_from_another_dataset_is_refused(tmp_path):
    bad = Split("HR", 0, [], np.array([0, 5000]), np.arange(1, 1347), np.zeros(0, np.int64), np.arange(450))
    bad.save(tmp_path / "split.npz")
    cfg = TrainConfig(role="retrained", split=str(tmp_path / "split.npz"), epochs=1, device="cpu")
    with pytest.raises(ScarlabError, match="does not fit digits"):
        run_train(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # validated before any run directory exists


def test_whitened_first_convolution_decorrelates_its_patches():
    """whiten_first_conv: the first half of the filters answer the patches' leading principal directions with
    unit variance and no correlation (up to eps); the second half are their negatives."""
    import torch

    from scarlab.models import create_model, whiten_first_conv

    g = torch.Generator().manual_seed(0)
    images = torch.randn(200, 3, 16, 16, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    images[:, 1] += 0.8 * images[:, 0]  # correlated channels
    model = create_model("smallcnn", num_classes=10, in_channels=3, image_size=16)
    w = whiten_first_conv(model, images, eps=1e-6)
    out = torch.nn.functional.conv2d(images, w[:16]).permute(0, 2, 3, 1).reshape(-1, 16).double()
    cov = torch.cov(out.T)
    assert torch.allclose(cov, torch.eye(16, dtype=cov.dtype), atol=0.05), cov.diagonal()
    assert torch.equal(w[16:], -w[:16])


def test_fast_recipe_keeps_the_whitened_layer_fixed(tmp_path, cifar10_mini):
    """The fast recipe on real images: label smoothing, channels-last, a whitened first convolution that does not
    change while training (and trains again afterwards, for unlearning); recorded in config.json as a variant."""
    import torch

    from scarlab.config import TrainConfig
    from scarlab.data import load_dataset
    from scarlab.models import create_model, load_checkpoint, whiten_first_conv
    from scarlab.train import run_train

    cfg = TrainConfig(dataset=f"imagefolder:{cifar10_mini}", recipe="fast", epochs=1, device="cpu")
    run = run_train(cfg, tmp_path / "fast", progress=False)
    assert run.config["variant"] == {"epochs": 1, "recipe": "fast"}
    assert run.config["whiten"] is True and run.config["label_smoothing"] == 0.2 and run.config["batch_size"] == 256
    ds = load_dataset(cfg.dataset)
    fresh = create_model("smallcnn", num_classes=10)
    want = whiten_first_conv(fresh, ds.normalize(ds.train.images[:5000]))
    got = load_checkpoint(run.file("checkpoints/model.pt")).body[0].weight
    assert torch.equal(got, want)  # the first 5,000 training images in order, and never trained
    assert run.metrics["acc/test"] > 0.2  # one epoch: well above chance (0.1)


def test_bf16_autocasts_the_forward_pass_and_keeps_float32_weights(tmp_path, cifar10_mini):
    """--bf16: the convolutions run in bfloat16 while training (seen by a hook), the test evaluation, the weights and
    the checkpoint stay float32, and one epoch of a digits run learns (well above chance); recorded in config.json."""
    import numpy as np
    import torch

    from scarlab.config import TrainConfig
    from scarlab.data import load_dataset
    from scarlab.models import create_model
    from scarlab.train import fit, run_train

    ds = load_dataset(f"imagefolder:{cifar10_mini}")
    model = create_model("smallcnn", num_classes=10)
    seen = []
    hook = model.body[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    cfg = TrainConfig(dataset="x", recipe="fast", epochs=1, bf16=True).resolved("cifar10-mini")
    fit(model, ds, np.arange(512), cfg, "cpu", torch.Generator().manual_seed(0), progress=False)
    hook.remove()
    # 512 images in batches of 256: two training forwards in bfloat16, then the test evaluation in float32
    assert seen[:2] == [torch.bfloat16] * 2 and set(seen[2:]) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    run = run_train(TrainConfig(dataset="digits", recipe="fast", epochs=1, bf16=True, device="cpu"),
                    tmp_path / "bf16", progress=False)  # the run's record and checkpoint: digits is enough
    assert run.config["bf16"] is True and run.config["variant"]["bf16"] is True
    state = torch.load(run.file("checkpoints/model.pt"), weights_only=False)
    weights = state.get("state_dict", state) if isinstance(state, dict) else state.state_dict()
    assert all(v.dtype == torch.float32 for v in weights.values() if torch.is_floating_point(v))
    assert run.metrics["acc/test"] > 0.2


def test_the_lab_recipe_uses_bf16_where_the_device_has_it_and_records_what_it_used(tmp_path, monkeypatch):
    """The default recipe (lab) leaves bf16 to the device: on with native bfloat16 kernels, float32 without; the run
    records what it used, and neither is a variant of its label. bf16 set against the device's choice is one."""
    from PIL import Image

    from scarlab import train as T
    from scarlab.device import native_bf16

    root = tmp_path / "imgs"  # 32-px RGB images: not digits, so the recipe applies
    for part in ("train", "test"):
        for c in range(3):
            (root / part / f"c{c}").mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((32, 32, 3), 60 * c + i, np.uint8)).save(root / part / f"c{c}" / f"{i}.png")
    cfg = TrainConfig(dataset=f"imagefolder:{root}", model="tinycnn", epochs=1, device="cpu")
    assert cfg.recipe == "lab" and cfg.resolved("x").bf16 is None  # decided when the run starts
    run = T.run_train(cfg, tmp_path / "native", progress=False)
    assert run.config["bf16"] is native_bf16("cpu") and run.config["variant"] == {"epochs": 1}
    for native in (True, False):
        monkeypatch.setattr(T, "native_bf16", lambda device, native=native: native)
        run = T.run_train(cfg, tmp_path / f"n{native}", progress=False)
        assert run.config["bf16"] is native and run.config["variant"] == {"epochs": 1}
        run = T.run_train(dataclasses.replace(cfg, bf16=not native), tmp_path / f"x{native}", progress=False)
        assert run.config["bf16"] is (not native) and run.config["variant"] == {"epochs": 1, "bf16": not native}


def test_bf16_on_a_device_autocast_cannot_take_is_one_line():
    from scarlab.errors import ScarlabError
    from scarlab.train import _autocast

    with pytest.raises(ScarlabError, match="bf16 autocast runs on cpu or cuda, not mps; train with --bf16 false"):
        _autocast(True, "mps")
    with _autocast(False, "mps"):  # off: nothing to refuse
        pass
