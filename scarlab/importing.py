"""The `import` stage: a trained checkpoint made into an *original* run, like one `scarlab train` writes.

Three kinds of file are recognised (``format`` in the run's records):

- ``scarlab``: a scarlab checkpoint (``checkpoints/model.pt`` of a run: ``{"spec", "state_dict"}``);
- ``state_dict``: a bare state dict of a registered model, named with ``--model`` (keys ``body.*``, ``fc.*``);
- ``torchvision_resnet``: a state dict of ``torchvision.models.resnet18/34/50(num_classes=K)`` with torchvision's
  own key names (``conv1``, ``bn1``, ``layer1`` ... ``fc``), mapped onto scarlab's ``resnet18/34/50``, whose body is
  that torchvision net: ``X`` becomes ``body.X`` and ``fc.X`` stays. A 7x7 ``conv1`` is torchvision's ImageNet stem
  (stride 2 and a max-pool, kept as the model's ``stem="imagenet"``); a 3x3 one is the CIFAR stem (stride 1, no
  max-pool), which is what scarlab trains — the state dict cannot say which strides were used, the kernel can.

A training script's wrapper (``{"state_dict": ...}``, ``{"model": ...}``, ``{"model_state_dict": ...}``) is opened
and a DataParallel ``module.`` prefix dropped. Files are read with ``torch.load(weights_only=True)``: a pickled
Python object (``torch.save(model)``) is refused, since unpickling it could run any code. The model is fed the data
set's own normalisation (:meth:`scarlab.data.Dataset.normalize`), as in scarlab's training. Everything is checked
before the run directory exists, so a refused file leaves no folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .config import ImportConfig
from .data import Dataset, load_dataset
from .device import resolve_device
from .errors import ScarlabError, choose
from .features import extract
from .models import MODELS, Classifier, create_model, save_checkpoint
from .runs import RunDir
from .stats import class_stats
from .train import model_accuracies

TORCHVISION_RESNETS = {("basic", (2, 2, 2, 2)): "resnet18", ("basic", (3, 4, 6, 3)): "resnet34",
                       ("bottleneck", (3, 4, 6, 3)): "resnet50"}
"""torchvision ResNets by (block kind, blocks per stage) -> the registered scarlab model they map onto."""
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
"""keys under which training scripts commonly store the state dict beside optimiser state, epoch, ..."""


@dataclasses.dataclass
class Weights:
    """What a checkpoint file holds, once recognised: a model to build and the state dict to load into it."""

    format: str
    """scarlab, state_dict or torchvision_resnet."""
    model: str
    spec: dict
    """create_model's keyword arguments (name excluded)."""
    state_dict: dict
    """keys as the scarlab model names them."""
    source_key: dict
    """scarlab key -> the key as the file names it (for messages)."""
    wrapper: str | None = None


def read_file(path: Path) -> tuple[object, str, int]:
    """(the object a checkpoint file holds, the file's sha256, its size in bytes); one line for any unusable file."""
    if not path.is_file():
        raise ScarlabError(f"checkpoint {path} does not exist (or is not a file)")
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if not found and not zipfile.is_zipfile(io.BytesIO(raw)):  # no torch.save archive: another kind of file
            raise ScarlabError(f"{path} is not a PyTorch checkpoint (torch.load cannot read it); give a file written "
                               "by torch.save") from None
        what = f"a pickled {found.group(1)}" if found else "a pickled Python object"
        raise ScarlabError(f"{path} holds {what}, which scarlab refuses to unpickle (it could run any code): save "
                           "the weights instead, torch.save(model.state_dict(), FILE), and import that") from None
    except Exception as exc:  # noqa: BLE001 - not a torch file at all (truncated, another format)
        raise ScarlabError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0][:160]})") from None
    return obj, sha, len(raw)


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items())


def _torchvision_resnet(keys) -> str | None:
    """The scarlab model a torchvision ResNet state dict maps onto; None when the keys are not torchvision's."""
    if not {"conv1.weight", "bn1.weight", "fc.weight"} <= set(keys):
        return None
    blocks = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for k in keys if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(found) + 1 if found else 0)
    kind = "bottleneck" if "layer1.0.conv3.weight" in keys else "basic"
    return TORCHVISION_RESNETS.get((kind, tuple(blocks)), f"an unknown ResNet ({kind} blocks {tuple(blocks)})")


def recognise(obj, path: Path, model: str | None, ds: Dataset) -> Weights:
    """Which of the three formats ``obj`` (from :func:`read_file`) is, and the model it fits on ``ds``."""
    data_spec = dict(num_classes=ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1])
    if isinstance(obj, dict) and "spec" in obj and "state_dict" in obj:
        spec = dict(obj["spec"]) if isinstance(obj["spec"], dict) else {}
        name = spec.pop("name", None)
        if not isinstance(name, str) or not _is_state_dict(obj["state_dict"]):
            raise ScarlabError(f"{path} looks like a scarlab checkpoint but its spec or state_dict is unusable")
        choose("model (in the checkpoint's spec)", name, MODELS)
        if model and model != name:
            raise ScarlabError(f"{path} is a scarlab checkpoint of {name}, not {model}: drop --model or pass "
                               f"--model {name}")
        for key, want in data_spec.items():
            if key in spec and spec[key] != want:
                raise ScarlabError(f"{path} does not fit {ds.name}: its {name} has {key}={spec[key]}, the data set "
                                   f"needs {key}={want}; import it for the data set it was trained on")
        sd = obj["state_dict"]
        return Weights("scarlab", name, spec, sd, {k: k for k in sd})
    wrapper = None
    if isinstance(obj, dict) and not _is_state_dict(obj):
        wrapper = next((k for k in WRAPPER_KEYS if _is_state_dict(obj.get(k))), None)
        if wrapper is None:
            raise ScarlabError(f"{path} holds no state dict (a dict of tensors by parameter name, at the top or "
                               f"under {', '.join(WRAPPER_KEYS)}); save one with torch.save(model.state_dict(), FILE)")
        obj = obj[wrapper]
    if not _is_state_dict(obj):
        raise ScarlabError(f"{path} holds a {type(obj).__name__}, not a state dict; save one with "
                           "torch.save(model.state_dict(), FILE)")
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DistributedDataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    tv = _torchvision_resnet(obj)
    if tv is not None:
        if tv not in MODELS:
            raise ScarlabError(f"{path} holds torchvision weights of {tv}; scarlab maps torchvision's ResNet-18, 34 "
                               "and 50 only")
        if model and model != tv:
            raise ScarlabError(f"{path} holds torchvision {tv} weights, which do not fit {model}: drop --model or "
                               f"pass --model {tv}")
        kernel = obj["conv1.weight"].shape[-1] if obj["conv1.weight"].dim() == 4 else 0
        spec = {**data_spec, "stem": "imagenet" if kernel == 7 else "cifar"}
        ours = {("" if k.startswith("fc.") else "body.") + k: k for k in obj}
        return Weights("torchvision_resnet", tv, spec, {m: obj[s] for m, s in ours.items()}, ours, wrapper)
    if not model:
        shown = ", ".join(list(obj)[:3])
        raise ScarlabError(f"{path} is a state dict (keys {shown}, ...) of a model it does not name: pass --model "
                           f"(one of {', '.join(MODELS)})")
    choose("model", model, MODELS)
    return Weights("state_dict", model, data_spec, obj, {k: k for k in obj}, wrapper)


def _hint(key: str, got: tuple, want: tuple, first: bool, ds: Dataset) -> str:
    if key == "fc.weight" or key == "fc.bias":
        return f" (the checkpoint classifies {got[0]} classes, {ds.name} has {want[0]})"
    if first and len(got) == 4 and len(want) == 4 and got[1] != want[1]:
        return f" (made for {got[1]}-channel images, {ds.name} has {want[1]})"
    return ""


def build(w: Weights, path: Path, ds: Dataset) -> Classifier:
    """The model ``w`` describes with its weights loaded; the first key that is missing, unexpected or of another
    shape is one line naming it (as the file names it)."""
    try:
        model = create_model(w.model, **w.spec)
    except ScarlabError:
        raise
    except TypeError as exc:  # a scarlab spec with keyword arguments this version's builder does not take
        raise ScarlabError(f"{path}: cannot build {w.model} from its spec {w.spec} ({exc})") from None
    expected = model.state_dict()
    desc = f"{w.model} for {ds.name}" + (f" ({w.spec['stem']} stem)" if "stem" in w.spec else "")
    name = dict(w.source_key)
    if w.format == "torchvision_resnet":  # name the model's own keys as torchvision does, too
        name.update({k: k[len("body."):] if k.startswith("body.") else k for k in expected if k not in name})
    first = next(iter(expected), None)
    for key, tensor in w.state_dict.items():
        if key not in expected:
            raise ScarlabError(f"{path}: key {name[key]!r} of the checkpoint is not in {desc}; the weights are of "
                               "another model (choose it with --model) or were saved with other key names")
        got, want = tuple(tensor.shape), tuple(expected[key].shape)
        if got != want:
            raise ScarlabError(f"{path}: key {name[key]!r} has shape {list(got)} in the checkpoint but {desc} needs "
                               f"{list(want)}{_hint(name[key], got, want, key == first, ds)}")
    missing = next((k for k in expected if k not in w.state_dict), None)
    if missing is not None:
        raise ScarlabError(f"{path}: key {name.get(missing, missing)!r} of {desc} is missing from the checkpoint; the "
                           "weights are of another model (choose it with --model) or incomplete")
    model.load_state_dict(w.state_dict)
    return model


def run_import(cfg: ImportConfig, out: str | Path, overwrite: bool = False) -> RunDir:
    """The `import` stage: an original run (stage ``train_original``, as `scarlab train` writes it: checkpoint,
    accuracies, class statistics) from ``cfg.source``, with where the weights came from in ``config.json`` and
    ``manifest.json`` (``imported``: source path, sha256, size, format)."""
    if not cfg.source:
        raise ScarlabError("give the checkpoint to import: scarlab import FILE --dataset NAME --out DIR")
    path = Path(cfg.source).expanduser()
    obj, sha, size = read_file(path)
    device = resolve_device(cfg.device)
    ds = load_dataset(cfg.dataset, cfg.data_root)
    weights = recognise(obj, path, cfg.model, ds)
    model = build(weights, path, ds)
    imported = {"source": str(path.resolve()), "sha256": sha, "bytes": size, "format": weights.format,
                "wrapper": weights.wrapper, "spec": {"name": weights.model, **weights.spec}}
    config = {**dataclasses.asdict(dataclasses.replace(cfg, model=weights.model)), "role": "original",
              # an imported original is its own variant: it never averages with a trained one of the same model
              "variant": {"imported": f"{path.name}@{sha[:8]}"}, "imported": imported}
    run = RunDir.create(out, stage="train_original", config=config, overwrite=overwrite, device=device)
    run.update_manifest(imported=imported)
    with run.running():
        model = model.to(device)
        run.file("checkpoints").mkdir(exist_ok=True)
        save_checkpoint(model, run.file("checkpoints/model.pt"))
        metrics = model_accuracies(model, ds, None, device)
        feats, _ = extract(model, ds, ds.train.images, device)
        class_stats(feats, ds.train.labels, ds.num_classes, cfg.stats_delta,
                    model_name=weights.model).save(run.file("stats.npz"))
        run.write_metrics(metrics)
    return run
