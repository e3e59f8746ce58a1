import urllib.error
import urllib.request

import pytest
import torch

from itemchest_utils import (CorruptDatasetError, DatasetUnavailableError, TensorBatches, binarize,
                             embedded_mnist, load_images)
from itemchest_utils import data as data_module


def test_embedded_mnist_shapes_values_and_split():
    mnist = load_images()
    assert mnist.name == "mnist_embedded"
    assert mnist.train_images.shape == (4000, 1, 28, 28)
    assert mnist.test_images.shape == (1000, 1, 28, 28)
    assert mnist.train_images.dtype == torch.float32
    assert 0.0 <= float(mnist.train_images.min()) and float(mnist.train_images.max()) == 1.0
    assert torch.bincount(mnist.test_labels).tolist() == [100] * 10
    assert torch.bincount(mnist.train_labels).tolist() == [400] * 10
    assert len(mnist.test_labels[:20].unique()) >= 6  # stored shuffled, not sorted by class


def test_a_printed_dataset_names_its_size_and_source_in_short_lines():
    printed = str(load_images())
    assert printed.splitlines() == [
        "mnist_embedded: 4,000 training and 1,000 test images, 1×28×28, 10 classes",
        "source: " + load_images().source]
    assert all(len(line) <= 100 for line in printed.splitlines())


def test_embedded_split_is_fixed_and_disjoint():
    first = embedded_mnist()
    embedded_mnist.cache_clear()
    second = embedded_mnist()
    assert torch.equal(first.test_images, second.test_images)
    train_keys = {bytes(x.numpy().tobytes()) for x in first.train_images}
    test_keys = {bytes(x.numpy().tobytes()) for x in first.test_images}
    assert len(train_keys & test_keys) == 0


def test_binarize_stochastic_is_fixed_by_seed_and_keeps_the_mean():
    images = torch.rand(200, 1, 28, 28)
    a, b = binarize(images, seed=3), binarize(images, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, binarize(images, seed=4))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(a.mean()) - float(images.mean())) < 0.01


def test_binarize_threshold_and_bad_mode():
    images = torch.tensor([0.2, 0.5, 0.51, 0.9])
    assert binarize(images, "threshold").tolist() == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="stochastic, threshold"):
        binarize(images, "dither")


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ValueError, match="mnist_embedded"):
        load_images("mnist-full")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_DATA", str(tmp_path))
    return tmp_path


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_offline_full_dataset_is_a_clear_error_never_a_substitute(empty_cache, offline, name):
    with pytest.raises(DatasetUnavailableError) as caught:
        load_images(name)
    message = str(caught.value)
    assert "mnist_embedded" in message and str(empty_cache) in message


def test_download_false_without_cache_is_a_clear_error(empty_cache):
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_images("mnist", download=False)


def test_truncated_cached_file_fails_its_checksum(empty_cache):
    path, _ = data_module._expected_files("mnist", empty_cache)[0]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(CorruptDatasetError, match="checksum") as caught:
        load_images("mnist", download=False)
    assert path.name in str(caught.value)


def test_batches_are_a_function_of_the_step():
    x = torch.arange(10).float()
    batches = TensorBatches(x, batch_size=3, seed=7)
    again = TensorBatches(x, batch_size=3, seed=7)  # as after a resume
    assert all(torch.equal(batches.batch(s), again.batch(s)) for s in [5, 0, 4, 3])
    one_epoch = torch.cat([batches.batch(s) for s in range(batches.steps_per_epoch)])
    assert len(one_epoch.unique()) == 9  # 3 batches of 3, no repeats; the ragged tail is dropped
    assert not torch.equal(batches.batch(0), batches.batch(batches.steps_per_epoch))  # reshuffled


def test_batches_keep_tensors_aligned_and_iterate_in_order():
    x, y = torch.arange(10).float(), torch.arange(10) * 10
    batches = TensorBatches(x, y, batch_size=4)
    bx, by = batches.batch(2)
    assert torch.equal(by, (bx * 10).long())
    assert torch.equal(torch.cat([b for b, _ in batches]), x)  # evaluation pass keeps the tail


def test_batches_reject_bad_input():
    with pytest.raises(ValueError, match="same length"):
        TensorBatches(torch.zeros(3), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="at least 1"):
        TensorBatches(torch.zeros(3), batch_size=0)
    too_big = TensorBatches(torch.zeros(3), batch_size=5)
    assert [len(b) for b in too_big] == [3]  # evaluation still works
    with pytest.raises(ValueError, match="larger than"):
        too_big.batch(0)


def write_idx(path, array):
    """Write an IDX file (the MNIST format) and its .gz, as a torchvision download leaves them."""
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype("uint8").tobytes())
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))


def test_a_cached_full_dataset_is_verified_and_loaded(empty_cache, monkeypatch):
    import hashlib

    import numpy as np

    raw = empty_cache / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {"train": 30, "t10k": 12}
    for split, n in sizes.items():
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    checksums = [(path, hashlib.md5(path.read_bytes()).hexdigest())
                 for path, _ in data_module._expected_files("mnist", empty_cache)]
    monkeypatch.setattr(data_module, "_expected_files", lambda name, root: checksums)

    mnist = load_images("mnist", download=False)
    assert mnist.train_images.shape == (30, 1, 28, 28) and mnist.test_images.shape == (12, 1, 28, 28)
    assert 0.0 <= float(mnist.train_images.min()) and float(mnist.train_images.max()) <= 1.0
    assert mnist.train_labels.dtype == torch.int64 and len(mnist.classes) == 10

    # An extracted file cut short (its .gz still intact) cannot be read: a clear error, not garbage data.
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(CorruptDatasetError, match="Delete"):
        load_images("mnist", download=False)


# --- unpaired image folders ---------------------------------------------------------------------

def _write_images(folder, colours, size=(40, 24), suffix=".jpg"):
    from PIL import Image

    folder.mkdir(parents=True)
    for index, colour in enumerate(colours):
        Image.new("RGB", size, colour).save(folder / f"{index:03d}{suffix}")


def test_unpaired_folders_are_loaded_cropped_and_resized(empty_cache):
    from itemchest_utils import load_unpaired_folders

    root = empty_cache / "horse2zebra"
    _write_images(root / "trainA", [(255, 0, 0)] * 3)
    _write_images(root / "trainB", [(0, 0, 255)] * 2, suffix=".png")
    _write_images(root / "testA", [(0, 255, 0)])
    _write_images(root / "testB", [(255, 255, 255)], size=(16, 50))
    (root / "trainA" / "notes.txt").write_text("not an image")
    data = load_unpaired_folders("horse2zebra", 8)
    assert data.train_a.shape == (3, 3, 8, 8) and data.train_b.shape == (2, 3, 8, 8)
    assert data.test_a.shape == data.test_b.shape == (1, 3, 8, 8)
    assert data.train_a.dtype == torch.float32 and 0 <= data.train_a.min() and data.train_a.max() <= 1
    # JPEG is lossy, PNG is not: red stays mostly red, blue exactly blue.
    assert data.train_a[:, 0].mean() > 0.9 and data.train_a[:, 2].mean() < 0.1
    assert torch.equal(data.train_b, torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 8, 8))
    assert load_unpaired_folders("horse2zebra", 8, limit=2).train_a.shape[0] == 2
    assert "horse2zebra" in repr(data)


def test_missing_unpaired_folders_say_where_to_get_them(empty_cache):
    from itemchest_utils import load_unpaired_folders

    with pytest.raises(DatasetUnavailableError) as caught:
        load_unpaired_folders("horse2zebra", 32)
    message = str(caught.value)
    assert "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip" in message
    assert str(empty_cache) in message and "trainA" in message
    (empty_cache / "horse2zebra" / "trainA").mkdir(parents=True)
    with pytest.raises(DatasetUnavailableError, match="missing: trainB, testA, testB"):
        load_unpaired_folders("horse2zebra", 32)


def test_an_empty_unpaired_folder_is_a_clear_error(empty_cache):
    from itemchest_utils import load_unpaired_folders

    for part in ("trainA", "trainB", "testA", "testB"):
        (empty_cache / "mine" / part).mkdir(parents=True)
    with pytest.raises(DatasetUnavailableError, match="no .jpg or .png images"):
        load_unpaired_folders("mine", 32)
