"""Datasets, surrogate (out-of-distribution) sets and forget/retain splits.

Every dataset is held in memory as uint8 tensors ``[N, C, H, W]``; normalisation and augmentation are
applied per batch (vectorised), which keeps small-model CPU runs fast and needs no DataLoader workers.
Names: ``digits`` (embedded default), ``cifar10``, ``cifar100``, ``tinyimagenet``, ``imagefolder:PATH``.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ScarlabError, choose

DATASETS = ("digits", "cifar10", "cifar100", "tinyimagenet", "imagefolder:PATH")
SURROGATES = ("auto", "sample_edges", "sample_images", "gaussian_noise", "imagefolder:PATH")
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
SCENARIOS = ("CR", "HR")

_STATS = {  # per-channel mean / std of the training images, in [0, 1] units
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
}


@dataclass
class ImageSet:
    """Images and labels in memory: ``images`` uint8 [N, C, H, W], ``labels`` int64 [N] (-1 = unlabelled)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    """A train/test pair plus what is needed to feed a model: class names, normalisation, augmentation."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool = True  # horizontal flips are label-preserving (not for digits)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    def normalize(self, images: torch.Tensor, device="cpu") -> torch.Tensor:
        """uint8 [B, C, H, W] -> float32 normalised [B, C, H, W] on `device`."""
        x = images.to(device, non_blocking=True).float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop with zero padding (1/8 of the side) and, where valid, horizontal flip. uint8 in/out."""
        b, c, h, w = images.shape
        pad = max(1, h // 8)
        padded = F.pad(images, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
        out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
        if self.flip:
            flip = torch.rand(b, generator=generator) < 0.5
            out[flip] = out[flip].flip(-1)
        return out


def batches(n: int, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
    """Yield index tensors covering range(n) in batches (a fresh permutation per call when shuffling)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


# ----------------------------------------------------------------------------- datasets
def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load a dataset by scarlab name (see ``DATASETS``). ``data_root`` is where torchvision sets live."""
    if name == "digits":
        return _digits()
    if name.startswith("imagefolder:"):
        return _imagefolder(_spec_path(name, "dataset"), name)
    choose("dataset", name, DATASETS)
    root = Path(data_root or Path.home() / ".cache" / "scarlab" / "data").expanduser()
    if name in ("cifar10", "cifar100"):
        return _cifar(name, root, download)
    return _tinyimagenet(root)


def _spec_path(spec: str, kind: str) -> Path:
    """The PATH of an ``imagefolder:PATH`` spec; an empty PATH is an error (it would silently mean the cwd)."""
    text = spec.split(":", 1)[1].strip()
    if not text:
        raise ScarlabError(f"{kind} {spec!r} needs a folder: imagefolder:PATH")
    return Path(text).expanduser()


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [1797, 1, 8, 8]
    idx_tr, idx_te = train_test_split(np.arange(len(d.target)), test_size=0.25, random_state=0,
                                      stratify=d.target)
    train = ImageSet(torch.from_numpy(images[idx_tr]), torch.from_numpy(d.target[idx_tr]).long())
    test = ImageSet(torch.from_numpy(images[idx_te]), torch.from_numpy(d.target[idx_te]).long())
    mean, std = _channel_stats(train.images)
    return Dataset("digits", train, test, [str(i) for i in range(10)], mean, std, flip=False)


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float().div(255.0).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist())


def _cifar(name: str, root: Path, download: bool) -> Dataset:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        sets = [cls(str(root), train=t, download=download) for t in (True, False)]
    except Exception as exc:  # torchvision raises RuntimeError / URLError on missing data or no network
        raise ScarlabError(f"cannot load {name} from {root} ({exc}); pass --data-root to a folder holding it, "
                           "or allow the download (needs internet)") from None
    train, test = (ImageSet(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(),
                            torch.tensor(s.targets, dtype=torch.long)) for s in sets)
    return Dataset(name, train, test, list(sets[0].classes), *_STATS[name])


def _tinyimagenet(root: Path) -> Dataset:
    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    train_dir, val_dir = base / "train", base / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise ScarlabError(f"no Tiny-ImageNet at {base}: expected train/ and val/ (download tiny-imagenet-200.zip "
                           "from the CS231n site, unzip it and pass --data-root to the folder holding it)")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    train_files = [(f, index[c]) for c in classes for f in _image_files(train_dir / c)]
    ann = val_dir / "val_annotations.txt"
    if ann.exists():  # the layout as distributed: val/images/*.JPEG + an annotation table
        rows = [line.split("\t")[:2] for line in ann.read_text().splitlines() if line.strip()]
        test_files = [(val_dir / "images" / f, index[c]) for f, c in rows]
    else:  # pre-sorted val/<wnid>/*
        test_files = [(f, index[c]) for c in classes for f in _image_files(val_dir / c)]
    return Dataset("tinyimagenet", _read_files(train_files, None), _read_files(test_files, None), classes,
                   *_STATS["tinyimagenet"])


def _imagefolder(path: Path, name: str) -> Dataset:
    if not path.is_dir():
        raise ScarlabError(f"{name}: data root {path} does not exist (or is not a folder); an image folder data "
                           "set needs PATH/train/<class>/* and PATH/test/<class>/*")
    sets = {}
    for split in ("train", "test"):
        d = path / split
        if not d.is_dir():
            raise ScarlabError(f"{name}: no folder {d}; an image folder data set needs PATH/train/<class>/* "
                               "and PATH/test/<class>/*")
        sets[split] = sorted(p.name for p in d.iterdir() if p.is_dir())
    classes = sets["train"]
    if not classes:
        raise ScarlabError(f"{name}: {path / 'train'} has no class sub-folders")
    if sets["test"] != classes:
        raise ScarlabError(f"{name}: train/ and test/ must hold the same class folders "
                           f"(train: {classes}, test: {sets['test']})")
    index = {c: i for i, c in enumerate(classes)}
    parts = {}
    for split in ("train", "test"):
        files = [(f, index[c]) for c in classes for f in _image_files(path / split / c)]
        if not files:
            raise ScarlabError(f"{name}: no images under {path / split}")
        parts[split] = _read_files(files, None)
    mean, std = _channel_stats(parts["train"].images)
    return Dataset(name, parts["train"], parts["test"], classes, mean, std)


def image_folder_side(path: Path) -> int | None:
    """The image height of an image-folder data set (its first training image's, which every image is resized to),
    read without loading the set; None when it holds no image."""
    from PIL import Image

    first = next((f for c in sorted(p for p in (path / "train").iterdir() if p.is_dir()) for f in _image_files(c)),
                 None)
    if first is None:
        return None
    try:
        with Image.open(first) as im:
            return im.size[1]
    except (OSError, ValueError) as exc:
        raise ScarlabError(f"cannot read image {first} ({type(exc).__name__}: {exc}); remove or replace it") from None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _read_files(files: list[tuple[Path, int]], size: tuple[int, int, int] | None) -> ImageSet:
    """Decode image files into an ImageSet (cached on disk, keyed by the file list and mtimes).

    ``size`` = (C, H, W) to convert and resize every image to; None keeps the first image's size.
    """
    key = hashlib.sha1(repr((size, [(str(f), f.stat().st_mtime_ns, y) for f, y in files])).encode()).hexdigest()
    cache = Path(os.environ.get("SCARLAB_CACHE", Path.home() / ".cache" / "scarlab")) / f"images-{key[:20]}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return ImageSet(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]))
        except (OSError, ValueError, KeyError):
            pass  # a truncated cache file: decode again and rewrite it
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                c, h, w = size or (3, *im.size[::-1])
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    im = im.resize((w, h), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ScarlabError(f"cannot read image {f} ({type(exc).__name__}: {exc}); remove or replace it") from None
        arrays.append(a[None] if c == 1 else a.transpose(2, 0, 1))
        if size is None:
            size = arrays[0].shape
    images = np.stack(arrays)
    labels = np.array([y for _, y in files], dtype=np.int64)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")  # per process: concurrent writers never mix
        np.savez(tmp, images=images, labels=labels)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home only costs speed
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels))


# ----------------------------------------------------------------------------- surrogates
def load_surrogate(spec: str, like: Dataset, chunks: int | None = None, size: int | None = None,
                   seed: int = 0) -> torch.Tensor:
    """Out-of-distribution images shaped like ``like``'s images: uint8 [M, C, H, W], no labels.

    spec: ``imagefolder:PATH`` (each sub-folder is a chunk; ``chunks`` keeps the first k), ``gaussian_noise``
    (``size`` images), ``sample_images`` (patches of the photos that ship with scikit-learn),
    ``sample_edges`` (stroke-like edge maps of those patches: the default for digits) or ``auto``.
    ``size`` is required for the generated ones (its default is the option's, ``UnlearnConfig.surrogate_size``).
    A surrogate is never the retain set.
    """
    if spec == "auto":
        spec = "sample_edges" if like.name == "digits" else "sample_images"
    if spec.startswith("imagefolder:"):
        return _surrogate_folder(_spec_path(spec, "surrogate"), like.shape, chunks)
    choose("surrogate", spec, SURROGATES)
    if size is None:
        raise ScarlabError(f"surrogate {spec!r} is generated: say how many images (size=, --surrogate-size)")
    g = torch.Generator().manual_seed(seed)
    c, h, w = like.shape
    if spec == "gaussian_noise":
        return (torch.randn(size, c, h, w, generator=g) * 64 + 127).clamp(0, 255).to(torch.uint8)
    patches = _photo_patches(size, (h, w), g)  # float [size, 3, h, w] in [0, 1]
    if spec == "sample_edges":
        return _edges(patches.mean(1, keepdim=True)).expand(-1, c, -1, -1).contiguous()
    if c == 1:
        patches = patches.mean(1, keepdim=True)
    return (patches * 255).round().to(torch.uint8)


def _surrogate_folder(path: Path, shape: tuple[int, int, int], chunks: int | None) -> torch.Tensor:
    if not path.is_dir():
        raise ScarlabError(f"surrogate folder {path} does not exist")
    # numeric chunk names sort as numbers (0, 1, ..., 10), so "the first k chunks" means what it says
    parts = sorted((p for p in path.iterdir() if p.is_dir()),
                   key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)) or [path]
    if chunks is not None:
        if not 1 <= chunks <= len(parts):
            raise ScarlabError(f"surrogate {path} has {len(parts)} chunk folder(s); --surrogate-chunks must be "
                               f"between 1 and {len(parts)}")
        parts = parts[:chunks]
    files = [(f, -1) for p in parts for f in _image_files(p)]
    if not files:
        raise ScarlabError(f"surrogate folder {path} holds no images ({', '.join(sorted(IMAGE_EXTS))}); "
                           "use `scarlab surrogate organize SRC DST` to build one from any image folder")
    return _read_files(files, shape).images


def _photo_patches(n: int, hw: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """Random square crops (side 12-96 px) of scikit-learn's two sample photos, resized: float [n, 3, h, w]."""
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 for im in load_sample_images().images]
    out = torch.empty(n, 3, *hw)
    for i in range(n):
        img = photos[int(torch.randint(len(photos), (1,), generator=g))]
        side = int(torch.randint(12, 97, (1,), generator=g))
        y = int(torch.randint(img.shape[1] - side, (1,), generator=g))
        x = int(torch.randint(img.shape[2] - side, (1,), generator=g))
        crop = img[:, y:y + side, x:x + side][None]
        if torch.rand(1, generator=g) < 0.5:
            crop = crop.flip(-1)
        out[i] = F.interpolate(crop, size=hw, mode="bilinear", antialias=True, align_corners=False)[0]
    return out


def _edges(gray: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude, each image stretched to [0, 255]: bright strokes on black, like digits."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    mag = torch.sqrt(F.conv2d(padded, kx) ** 2 + F.conv2d(padded, kx.transpose(2, 3)) ** 2)
    top = mag.flatten(1).quantile(0.98, dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    return (mag / top).clamp(0, 1).mul(255).round().to(torch.uint8)


def organize_surrogate(src: str | os.PathLike, dst: str | os.PathLike, chunk_size: int = 1000, seed: int = 0,
                       overwrite: bool = False) -> list[Path]:
    """Copy every image under ``src`` (shuffled with ``seed``) into ``dst/0``, ``dst/1``, ... of ``chunk_size``."""
    src, dst = Path(src), Path(dst)
    if chunk_size < 1:
        raise ScarlabError("--chunk-size must be at least 1")
    if not src.is_dir():
        raise ScarlabError(f"source folder {src} does not exist")
    s, d = src.resolve(), dst.resolve()
    if s == d or d in s.parents or s in d.parents:
        # inside the source, the chunks would join the images they were copied from (a new class folder of an
        # image-folder data set, copies of copies on a rerun); around it, --overwrite would delete the source
        raise ScarlabError(f"the surrogate folder {dst} and the image folder {src} overlap (one is, holds or lies "
                           "inside the other); choose a destination outside the source")
    files = _image_files(src)
    if not files:
        raise ScarlabError(f"no images under {src} (looked for {', '.join(sorted(IMAGE_EXTS))})")
    if dst.exists() and not dst.is_dir():
        raise ScarlabError(f"{dst} is a file; choose a folder for the chunks")
    if dst.exists() and any(dst.iterdir()):
        if not overwrite:
            raise ScarlabError(f"{dst} is not empty; choose another folder or pass --overwrite")
        # --overwrite deletes dst: never when it is not an earlier chunk folder
        foreign = [p.name for p in dst.iterdir() if not (p.is_dir() and p.name.isdigit())]
        if foreign:
            raise ScarlabError(f"{dst} is not a chunked surrogate folder (it holds {foreign[0]!r}); refusing to "
                               "delete it with --overwrite: choose another destination")
        shutil.rmtree(dst)
    random.Random(seed).shuffle(files)
    width = max(4, len(str(len(files) - 1)))
    chunks = []
    for i, f in enumerate(files):
        chunk = dst / str(i // chunk_size)
        if i % chunk_size == 0:
            chunk.mkdir(parents=True, exist_ok=True)
            chunks.append(chunk)
        shutil.copy2(f, chunk / f"{i:0{width}d}{f.suffix.lower()}")
    return chunks


# ----------------------------------------------------------------------------- splits
@dataclass
class Split:
    """Which training and test samples are forgotten. Indices index ``Dataset.train`` / ``Dataset.test``."""

    scenario: str
    seed: int
    forget_classes: list[int] = field(default_factory=list)
    forget_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    retain_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    forget_test_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # CR: forget-class test
    retain_test_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # HR: the whole test set

    def save(self, path: str | os.PathLike) -> None:
        np.savez(path, scenario=self.scenario, seed=self.seed, forget_classes=np.array(self.forget_classes, np.int64),
                 forget_idx=self.forget_idx, retain_idx=self.retain_idx, forget_test_idx=self.forget_test_idx,
                 retain_test_idx=self.retain_test_idx)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Split":
        with np.load(path, allow_pickle=False) as z:
            return cls(str(z["scenario"]), int(z["seed"]), z["forget_classes"].tolist(), z["forget_idx"],
                       z["retain_idx"], z["forget_test_idx"], z["retain_test_idx"])

    def forget_masks(self, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks [n_train], [n_test] of the forgotten training images and (CR) forget-class test images."""
        ftr, fte = np.zeros(n_train, bool), np.zeros(n_test, bool)
        ftr[self.forget_idx] = True
        fte[self.forget_test_idx] = True
        return ftr, fte

    def describe(self) -> str:
        what = f"classes {self.forget_classes}" if self.scenario == "CR" else f"{len(self.forget_idx)} random samples"
        return f"{self.scenario}: forget {what} (seed {self.seed})"


def check_forget_classes(classes: list[int], num_classes: int, dataset: str) -> None:
    """CR: at least one forget class, each a class of ``dataset``, and at least one class left to retain."""
    if not classes:
        raise ScarlabError("CR needs at least one forget class: pass --forget-classes, e.g. --forget-classes 0")
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ScarlabError(f"forget class {bad[0]} is out of range: {dataset} has classes 0..{num_classes - 1}")
    if len(classes) >= num_classes:
        raise ScarlabError("CR cannot forget every class: leave at least one class to retain")


def check_forget_size(forget_size: int | None, n_train: int | None) -> None:
    """HR: a forget size of at least 1 and below the training set's ``n_train`` images (None: not known yet)."""
    if forget_size is None or forget_size < 1:
        raise ScarlabError("HR needs a forget size of at least 1: pass --forget-size N")
    if n_train is not None and forget_size >= n_train:
        raise ScarlabError(f"HR forget size {forget_size} must be smaller than the training set ({n_train} images)")


def check_hr_classes(scenario: str, forget_classes) -> None:
    """HR forgets random samples: forget classes given with it are a conflict, not something to ignore."""
    if scenario == "HR" and forget_classes:
        raise ScarlabError("HR forgets random samples, not classes: drop --forget-classes (or use --scenario CR)")


def make_split(ds: Dataset, scenario: str, forget_classes=None, forget_size: int | None = None,
               seed: int = 0) -> Split:
    """CR: forget every training sample of ``forget_classes``. HR: forget ``forget_size`` random samples."""
    choose("scenario", scenario, SCENARIOS)
    y_tr, y_te = ds.train.labels.numpy(), ds.test.labels.numpy()
    n = len(y_tr)
    if scenario == "CR":
        classes = sorted({int(c) for c in (forget_classes or [])})
        check_forget_classes(classes, ds.num_classes, ds.name)
        fmask, tmask = np.isin(y_tr, classes), np.isin(y_te, classes)
        if not fmask.any():
            raise ScarlabError(f"the forget set is empty: no training sample has class {classes}")
        return Split("CR", seed, classes, np.flatnonzero(fmask), np.flatnonzero(~fmask),
                     np.flatnonzero(tmask), np.flatnonzero(~tmask))
    check_forget_size(forget_size, n)
    forget = np.sort(np.random.default_rng(seed).choice(n, forget_size, replace=False))
    mask = np.zeros(n, bool)
    mask[forget] = True
    return Split("HR", seed, [], forget, np.flatnonzero(~mask), np.zeros(0, np.int64), np.arange(len(y_te)))


def check_split(split: Split, ds: Dataset, where: str = "the split") -> Split:
    """A split made for another data set would index the wrong images (or past the end): refuse it."""
    n_tr, n_te = len(ds.train), len(ds.test)
    for name, idx, n in (("forget", split.forget_idx, n_tr), ("retain", split.retain_idx, n_tr),
                         ("forget_test", split.forget_test_idx, n_te), ("retain_test", split.retain_test_idx, n_te)):
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ScarlabError(f"{where} does not fit {ds.name}: its {name} indices reach {int(idx.max())} but the "
                               f"set has {n} images; make the split from this data set")
    if len(split.forget_idx) + len(split.retain_idx) != n_tr:
        raise ScarlabError(f"{where} does not fit {ds.name}: forget + retain = "
                           f"{len(split.forget_idx) + len(split.retain_idx)} images, the training set has {n_tr}")
    if len(split.forget_idx) == 0:
        raise ScarlabError(f"{where} has an empty forget set")
    return split
