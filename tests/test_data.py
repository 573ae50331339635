"""Datasets, splits and surrogate sets: real data, toy scale."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scarlab.data import (Dataset, ImageSet, Split, load_dataset, load_surrogate, make_split,
                          organize_surrogate)
from scarlab.errors import ScarlabError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cifar_like() -> Dataset:
    """A stand-in with CIFAR's shape (3x32x32) for surrogate shapes, so those tests need no shared data."""
    part = ImageSet(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(4))
    return Dataset("fake32", part, part, ["a", "b", "c", "d"], (0.5,) * 3, (0.25,) * 3)


# ----------------------------------------------------------------------------- datasets
def test_digits_fixed_stratified_split(digits):
    assert digits.num_classes == 10 and digits.classes == [str(i) for i in range(10)]
    assert digits.shape == (1, 8, 8)
    assert digits.train.images.dtype == torch.uint8 and digits.train.labels.dtype == torch.int64
    assert (len(digits.train), len(digits.test)) == (1347, 450)  # 1,797 digits, 25 % test
    # stratified: every class keeps its share of the data in both parts (within one image)
    n_tr = torch.bincount(digits.train.labels, minlength=10).double()
    n_te = torch.bincount(digits.test.labels, minlength=10).double()
    expected_te = (n_tr + n_te) * 450 / 1797
    assert torch.all((n_te - expected_te).abs() <= 1.0)
    # fixed: a second load gives exactly the same images in the same order
    again = load_dataset("digits")
    assert torch.equal(again.train.images, digits.train.images) and torch.equal(again.test.labels, digits.test.labels)
    assert not digits.flip  # a mirrored digit is not the same digit


def test_digits_normalize_and_augment(digits):
    x = digits.normalize(digits.train.images[:256])
    assert x.dtype == torch.float32 and x.shape == (256, 1, 8, 8)
    assert abs(float(x.mean())) < 0.2
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = digits.augment(digits.train.images[:16], g1), digits.augment(digits.train.images[:16], g2)
    assert a.dtype == torch.uint8 and a.shape == (16, 1, 8, 8) and torch.equal(a, b)


@pytest.mark.shared_data
def test_imagefolder_reads_cifar10_mini(cifar10_mini):
    ds = load_dataset(f"imagefolder:{cifar10_mini}")
    assert ds.classes == CIFAR10_CLASSES and ds.num_classes == 10
    assert (len(ds.train), len(ds.test)) == (5000, 1000)
    assert ds.shape == (3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert torch.bincount(ds.train.labels).tolist() == [500] * 10
    assert torch.bincount(ds.test.labels).tolist() == [100] * 10
    # files are read class by class in sorted order: compare pixels and labels with the files themselves
    rng = np.random.default_rng(0)
    for part, per_class in (("train", 500), ("test", 100)):
        images, labels = getattr(ds, part).images, getattr(ds, part).labels
        for idx in rng.choice(len(labels), 6, replace=False):
            cls = CIFAR10_CLASSES[idx // per_class]
            f = cifar10_mini / part / cls / f"{idx % per_class:04d}.png"
            pixels = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
            assert torch.equal(images[idx], pixels), f
            assert int(labels[idx]) == CIFAR10_CLASSES.index(cls) == int(idx // per_class)


# ----------------------------------------------------------------------------- splits
def _check_partition(split: Split, ds: Dataset) -> None:
    n = len(ds.train)
    assert len(np.intersect1d(split.forget_idx, split.retain_idx)) == 0
    assert np.array_equal(np.sort(np.concatenate([split.forget_idx, split.retain_idx])), np.arange(n))
    assert len(split.forget_idx) > 0


def _assert_same(a: Split, b: Split) -> None:
    assert (a.scenario, a.seed, a.forget_classes) == (b.scenario, b.seed, b.forget_classes)
    for name in ("forget_idx", "retain_idx", "forget_test_idx", "retain_test_idx"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def test_cr_split_invariants(digits, tmp_path):
    split = make_split(digits, "CR", forget_classes=[3, 0])
    _check_partition(split, digits)
    y_tr, y_te = digits.train.labels.numpy(), digits.test.labels.numpy()
    assert split.forget_classes == [0, 3]
    assert set(y_tr[split.forget_idx]) == {0, 3} and not set(y_tr[split.retain_idx]) & {0, 3}
    assert set(y_te[split.forget_test_idx]) == {0, 3} and not set(y_te[split.retain_test_idx]) & {0, 3}
    assert np.array_equal(np.sort(np.concatenate([split.forget_test_idx, split.retain_test_idx])),
                          np.arange(len(y_te)))
    split.save(tmp_path / "split.npz")
    _assert_same(Split.load(tmp_path / "split.npz"), split)


def test_hr_split_invariants_and_seed(digits, tmp_path):
    split = make_split(digits, "HR", forget_size=100, seed=7)
    _check_partition(split, digits)
    assert len(split.forget_idx) == 100 and split.forget_classes == []
    assert np.array_equal(split.retain_test_idx, np.arange(len(digits.test))) and len(split.forget_test_idx) == 0
    _assert_same(make_split(digits, "HR", forget_size=100, seed=7), split)  # reproducible
    assert not np.array_equal(make_split(digits, "HR", forget_size=100, seed=8).forget_idx, split.forget_idx)
    split.save(tmp_path / "hr.npz")
    _assert_same(Split.load(tmp_path / "hr.npz"), split)


@pytest.mark.parametrize("kwargs, message", [
    (dict(scenario="XR", forget_classes=[0]), "unknown scenario 'XR'"),
    (dict(scenario="CR", forget_classes=[]), "at least one forget class"),
    (dict(scenario="CR", forget_classes=[10]), "out of range"),
    (dict(scenario="CR", forget_classes=list(range(10))), "cannot forget every class"),
    (dict(scenario="HR", forget_size=0), "at least 1"),
    (dict(scenario="HR", forget_size=1347), "smaller than the training set"),
])
def test_bad_splits(digits, kwargs, message):
    with pytest.raises(ScarlabError, match=message):
        make_split(digits, **kwargs)


# ----------------------------------------------------------------------------- surrogates
@pytest.mark.shared_data
@pytest.mark.parametrize("chunks, count", [(1, 500), (4, 2000), (None, 2000)])
def test_imagefolder_surrogate_chunks(ood_mini, cifar_like, digits, chunks, count):
    for like in (cifar_like, digits):
        images = load_surrogate(f"imagefolder:{ood_mini}", like, chunks=chunks)
        assert images.dtype == torch.uint8 and tuple(images.shape) == (count, *like.shape)


@pytest.mark.shared_data
def test_imagefolder_surrogate_bad_chunks(ood_mini, cifar_like):
    with pytest.raises(ScarlabError, match="between 1 and 4"):
        load_surrogate(f"imagefolder:{ood_mini}", cifar_like, chunks=5)


@pytest.mark.parametrize("spec", ["sample_edges", "sample_images", "gaussian_noise", "auto"])
@pytest.mark.parametrize("like_name", ["digits", "cifar_like"])
def test_generated_surrogates(spec, like_name, request):
    like = request.getfixturevalue(like_name)
    images = load_surrogate(spec, like, size=24, seed=1)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (24, *like.shape)
    assert float(images.float().std()) > 1.0  # not a constant image
    assert torch.equal(images, load_surrogate(spec, like, size=24, seed=1))


def test_unknown_surrogate(digits):
    with pytest.raises(ScarlabError, match="unknown surrogate 'nope'; valid choices"):
        load_surrogate("nope", digits)
    with pytest.raises(ScarlabError, match="needs a folder"):
        load_surrogate("imagefolder:", digits)


def _write_images(folder, n: int) -> None:
    """n distinct small PNGs (constant value 10*i) spread over nested folders, plus a file that is no image."""
    for i in range(n):
        sub = folder / f"sub{i % 3}" / "deeper"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 10, 3), 10 * i, np.uint8)).save(sub / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")


def test_organize_surrogate(tmp_path, digits):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write_images(src, 7)
    chunks = organize_surrogate(src, dst, chunk_size=3, seed=0)
    assert [c.name for c in chunks] == ["0", "1", "2"]
    assert [len(list(c.iterdir())) for c in chunks] == [3, 3, 1]
    images = load_surrogate(f"imagefolder:{dst}", digits)
    assert tuple(images.shape) == (7, 1, 8, 8)
    assert len(load_surrogate(f"imagefolder:{dst}", digits, chunks=2)) == 6
    # a non-empty destination is never replaced silently
    before = sorted(p.relative_to(dst) for p in dst.rglob("*"))
    with pytest.raises(ScarlabError, match="not empty.*--overwrite"):
        organize_surrogate(src, dst, chunk_size=2)
    assert sorted(p.relative_to(dst) for p in dst.rglob("*")) == before
    assert len(organize_surrogate(src, dst, chunk_size=2, overwrite=True)) == 4


def test_organize_surrogate_refuses_to_delete_other_folders(tmp_path):
    src, other = tmp_path / "src", tmp_path / "other"
    _write_images(src, 2)
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(ScarlabError, match="not a chunked surrogate folder"):
        organize_surrogate(src, other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    with pytest.raises(ScarlabError, match="overlap"):
        organize_surrogate(src, tmp_path, overwrite=True)
    assert len(list(src.rglob("*.png"))) == 2
    with pytest.raises(ScarlabError, match="no images under"):
        organize_surrogate(other, tmp_path / "new")


def test_surrogate_chunks_sort_numerically(tmp_path, digits):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write_images(src, 12)
    organize_surrogate(src, dst, chunk_size=1, seed=3)  # chunks 0..11: "10" and "11" must come last
    first11 = load_surrogate(f"imagefolder:{dst}", digits, chunks=11)
    expected = sorted(int(np.asarray(Image.open(next((dst / str(k)).iterdir())))[0, 0, 0]) for k in range(11))
    assert sorted(first11[:, 0, 0, 0].tolist()) == expected


def test_empty_surrogate_folder(tmp_path, digits):
    (tmp_path / "0").mkdir()
    with pytest.raises(ScarlabError, match="holds no images"):
        load_surrogate(f"imagefolder:{tmp_path}", digits)
    with pytest.raises(ScarlabError, match="does not exist"):
        load_surrogate(f"imagefolder:{tmp_path / 'missing'}", digits)


def test_unreadable_image_is_a_clear_error(tmp_path, digits):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ScarlabError, match="cannot read image .*broken.png"):
        load_surrogate(f"imagefolder:{tmp_path}", digits)
