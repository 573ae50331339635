"""Model registry. Every model splits into ``features(x) -> [B, D]`` (penultimate, non-negative: post-ReLU
pooling, as SCAR's Tukey transform needs) and ``head(z) -> [B, K]`` logits.

Add a model with ``@register_model("name")`` on a builder ``(num_classes, in_channels, image_size, **kw)``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ScarlabError, choose

MODELS: dict[str, Callable[..., "Classifier"]] = {}
MIN_IMAGE_SIZE: dict[str, int] = {}
"""{model: the smallest image side, in pixels, its layers accept} (each 2x2 pooling halves the side)."""


def register_model(name: str, min_image_size: int = 1):
    def wrap(builder):
        MODELS[name] = builder
        MIN_IMAGE_SIZE[name] = min_image_size
        return builder
    return wrap


class Classifier(nn.Module):
    """A backbone (``body``: images -> [B, D] non-negative features) and a linear ``fc`` head."""

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.body, self.feature_dim = body, feature_dim
        self.fc = nn.Linear(feature_dim, num_classes)
        self.spec: dict = {}  # name + kwargs, filled by create_model, saved with checkpoints

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, D] penultimate features (>= 0)."""
        return self.body(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, K] logits."""
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def create_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32, **kwargs) -> Classifier:
    """Build a registered model; ``name`` is one of ``MODELS``."""
    check_image_size(name, image_size)
    model = MODELS[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
    model.spec = dict(name=name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
    return model


def check_image_size(name: str, image_size: int) -> None:
    """Refuse a registered model ``name`` for images whose side is below its :data:`MIN_IMAGE_SIZE`."""
    choose("model", name, MODELS)
    if image_size < MIN_IMAGE_SIZE[name]:
        fits = ", ".join(m for m, low in MIN_IMAGE_SIZE.items() if low <= image_size)
        raise ScarlabError(f"images of {image_size}x{image_size} pixels are too small for {name}, which needs at "
                           f"least {MIN_IMAGE_SIZE[name]}x{MIN_IMAGE_SIZE[name]}; use larger images or a model "
                           f"that takes them ({fits})")


def default_model(dataset_name: str) -> str:
    """The CPU-friendly default: ``tinycnn`` for 8-px digits, ``smallcnn`` for everything else."""
    return "tinycnn" if dataset_name == "digits" else "smallcnn"


def save_checkpoint(model: Classifier, path: str | os.PathLike) -> None:
    # serialised in memory, written by Python: a full or read-only disk is then an OSError naming the file (torch's
    # own file writer reports it as a RuntimeError without the cause)
    buf = io.BytesIO()
    torch.save({"spec": model.spec, "state_dict": model.state_dict()}, buf)
    Path(path).write_bytes(buf.getbuffer())


def load_checkpoint(path: str | os.PathLike, device="cpu", expect: dict | None = None) -> Classifier:
    """Rebuild a model from a scarlab checkpoint (tensors and plain types only: ``weights_only=True``).

    ``expect`` (e.g. ``{"num_classes": 10, "in_channels": 1}``) names spec entries the data needs; a checkpoint
    made for other data is a clear error here instead of a shape error deep inside a forward pass.
    """
    path = Path(path)
    if not path.is_file():
        raise ScarlabError(f"checkpoint {path} does not exist; train one first with `scarlab train`")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        spec = dict(ckpt["spec"])
        name = spec.pop("name")
    except Exception as exc:
        raise ScarlabError(f"{path} is not a scarlab checkpoint ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0][:200]}); point to a checkpoints/model.pt "
                           "written by scarlab") from None
    for key, want in (expect or {}).items():
        if key in spec and spec[key] != want:
            raise ScarlabError(f"checkpoint {path} does not match the data: its model has {key}={spec[key]}, "
                               f"the data needs {key}={want}; use a checkpoint trained on this data set")
    try:
        model = create_model(name, **spec)
        model.load_state_dict(ckpt["state_dict"])
    except ScarlabError:
        raise
    except Exception as exc:
        raise ScarlabError(f"checkpoint {path} does not match its model {name!r} ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0][:200]}); retrain it or point to the right file") from None
    return model.to(device)


def whiten_first_conv(model: nn.Module, images: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Set the first convolution's filters to the whitening of the patches it sees in ``images`` (normalised
    [N, C, H, W]): half the filters are the leading eigenvectors of the patch covariance scaled by
    1 / sqrt(eigenvalue + eps), the other half their negatives (so a ReLU keeps both signs) — the initialisation of
    the fast CIFAR-10 training recipes (e.g. Keller Jordan's airbench). Returns that weight; the caller decides
    whether it trains. Filters beyond twice the patch dimension keep their random initialisation."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.groups != 1:
        raise ScarlabError(f"{type(model).__name__}: whitening needs a first convolution without groups; "
                           "train with --whiten false")
    kh, kw = conv.kernel_size
    with torch.no_grad():
        patches = F.unfold(images.float(), (kh, kw)).transpose(1, 2).reshape(-1, conv.in_channels * kh * kw)
        patches = (patches - patches.mean(0)).double()
        eigval, eigvec = torch.linalg.eigh(patches.T @ patches / len(patches))
        h = min(conv.out_channels // 2, len(eigval))
        top = eigvec[:, -h:].flip(1) / (eigval[-h:].flip(0).clamp_min(0) + eps).sqrt()
        filters = top.T.reshape(h, conv.in_channels, kh, kw).to(conv.weight.dtype)
        conv.weight[:2 * h] = torch.cat([filters, -filters])
    return conv.weight


# ----------------------------------------------------------------------------- small CNNs
def _conv(cin: int, cout: int, bn: bool = True, stride: int = 1, k: int = 3) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=not bn)]
    return layers + ([nn.BatchNorm2d(cout)] if bn else []) + [nn.ReLU(inplace=True)]


@register_model("tinycnn", min_image_size=2)
def tinycnn(num_classes, in_channels=1, image_size=8, width=32):
    """~60k parameters; the default for 8x8 digits (trains to 97 % in seconds on a CPU)."""
    w = width
    body = nn.Sequential(*_conv(in_channels, w), *_conv(w, 2 * w), nn.MaxPool2d(2), *_conv(2 * w, 4 * w),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(body, 4 * w, num_classes)


@register_model("smallcnn", min_image_size=8)
def smallcnn(num_classes, in_channels=3, image_size=32, width=32):
    """Four conv blocks, each but the last followed by 2x2 pooling (~0.4M parameters at width 32); the CPU
    default for 32-px images. Pooling after every block keeps each conv at ~5M multiply-adds per 32-px image
    (~15M in all, 4x fewer than pooling after the second block), which is what makes CPU epochs short."""
    w = width
    body = nn.Sequential(*_conv(in_channels, w), nn.MaxPool2d(2), *_conv(w, 2 * w), nn.MaxPool2d(2),
                         *_conv(2 * w, 4 * w), nn.MaxPool2d(2), *_conv(4 * w, 8 * w), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())
    return Classifier(body, 8 * w, num_classes)


@register_model("allcnn")
def allcnn(num_classes, in_channels=3, image_size=32, width=96):
    """All-CNN-C (Springenberg et al. 2015) with batch norm; features after the last 1x1 conv + pooling."""
    w, w2 = width, 2 * width
    body = nn.Sequential(*_conv(in_channels, w), *_conv(w, w), *_conv(w, w, stride=2), nn.Dropout(0.2),
                         *_conv(w, w2), *_conv(w2, w2), *_conv(w2, w2, stride=2), nn.Dropout(0.2),
                         *_conv(w2, w2), *_conv(w2, w2, k=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(body, w2, num_classes)


# ----------------------------------------------------------------------------- ResNets (CIFAR stem)
RESNET_STEMS = ("cifar", "imagenet")
"""``cifar``: 3x3 stride-1 first conv, no max-pool (scarlab's default); ``imagenet``: torchvision's own 7x7 stride-2
conv and 3x3 max-pool (kept for checkpoints trained that way, see :mod:`scarlab.importing`)."""


def _resnet(builder, num_classes, in_channels, stem="cifar"):
    choose("ResNet stem", stem, RESNET_STEMS)
    net = builder(num_classes=num_classes)
    if stem == "cifar":  # 32-px images keep spatial detail
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    dim = net.fc.in_features
    net.fc = nn.Identity()  # the torchvision net now ends at its (post-ReLU) average pool: our body
    return Classifier(net, dim, num_classes)


class _BasicBlock(nn.Module):
    """two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut; ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_conv(cin, cout, stride=stride), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def _cifar_resnet(num_classes, in_channels, blocks: int, width: int = 16):
    """He et al.'s CIFAR ResNet (6n+2 layers): a 3x3 stem, three stages of ``blocks`` basic blocks at widths
    w, 2w, 4w (stride 2 between stages), global average pooling."""
    layers, cin = _conv(in_channels, width), width
    for stage, cout in enumerate((width, 2 * width, 4 * width)):
        for b in range(blocks):
            layers.append(_BasicBlock(cin, cout, stride=2 if stage and not b else 1))
            cin = cout
    return Classifier(nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), cin, num_classes)


@register_model("resnet8")
def resnet8(num_classes, in_channels=3, image_size=32, width=16):
    """CIFAR ResNet-8 (one block per stage, ~80k parameters at width 16): a ResNet that trains in minutes on
    a CPU."""
    return _cifar_resnet(num_classes, in_channels, 1, width)


@register_model("resnet20")
def resnet20(num_classes, in_channels=3, image_size=32, width=16):
    """CIFAR ResNet-20 (three blocks per stage, ~0.27M parameters at width 16)."""
    return _cifar_resnet(num_classes, in_channels, 3, width)


@register_model("resnet18")
def resnet18(num_classes, in_channels=3, image_size=32, stem="cifar"):
    import torchvision
    return _resnet(torchvision.models.resnet18, num_classes, in_channels, stem)


@register_model("resnet34")
def resnet34(num_classes, in_channels=3, image_size=32, stem="cifar"):
    import torchvision
    return _resnet(torchvision.models.resnet34, num_classes, in_channels, stem)


@register_model("resnet50")
def resnet50(num_classes, in_channels=3, image_size=32, stem="cifar"):
    import torchvision
    return _resnet(torchvision.models.resnet50, num_classes, in_channels, stem)


# ----------------------------------------------------------------------------- Vision transformers
class _ViTBody(nn.Module):
    """torchvision ViT encoder -> class token -> Linear + ReLU pre-logits (keeps features >= 0 for SCAR)."""

    def __init__(self, vit: nn.Module, dim: int, resize: int | None = None):
        super().__init__()
        self.vit, self.resize = vit, resize
        self.pre_logits = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.resize and x.shape[-1] != self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if x.shape[1] == 1 and self.vit.conv_proj.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        tokens = self.vit._process_input(x)
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)
        return self.pre_logits(self.vit.encoder(torch.cat([cls, tokens], dim=1))[:, 0])


@register_model("vit", min_image_size=2)
def vit_small(num_classes, in_channels=3, image_size=32, depth=6, dim=192, heads=3):
    """A small ViT for 32-px input (patch 4; patch 2 below 16 px), ~2.7M parameters at the defaults."""
    from torchvision.models import VisionTransformer

    patch = 4 if image_size >= 16 else 2
    if image_size % patch:
        raise ScarlabError(f"vit cuts {image_size}x{image_size} images into {patch}x{patch} patches, so the side must "
                           f"be a multiple of {patch}; resize the images or choose another model")
    vit = VisionTransformer(image_size=image_size, patch_size=patch, num_layers=depth, num_heads=heads,
                            hidden_dim=dim, mlp_dim=2 * dim, num_classes=num_classes)
    if in_channels != 3:
        vit.conv_proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)
    vit.heads = nn.Identity()
    return Classifier(_ViTBody(vit, dim), dim, num_classes)


@register_model("vit_b16")
def vit_b16(num_classes, in_channels=3, image_size=32, pretrained=False):
    """torchvision's ViT-B/16 (inputs resized to 224); ``pretrained=True`` downloads ImageNet weights."""
    from torchvision.models import ViT_B_16_Weights, vit_b_16

    try:
        vit = vit_b_16(weights=ViT_B_16_Weights.IMAGENET1K_V1 if pretrained else None)
    except Exception as exc:  # no network or no cached weights
        raise ScarlabError(f"cannot load ViT-B/16 ImageNet weights ({exc}); needs internet once, or pretrained=False")
    vit.heads = nn.Identity()
    return Classifier(_ViTBody(vit, 768, resize=224), 768, num_classes)
