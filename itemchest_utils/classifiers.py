"""Small reference classifiers, trained here in seconds, whose features the sample-quality metrics use.

A metric such as "FID (MNIST-classifier features)" is only comparable between runs if the classifier is
the same, so each one is trained deterministically from a fixed seed on a fixed dataset and cached.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import embedded_mnist
from .runtime import cache_root
from .shapes import SHAPE_ATTRIBUTE_SIZES, shapes_dataset

# Bump when the architecture or the training recipe changes, so stale cached weights are not reused.
CLASSIFIER_VERSION = 1


class ReferenceClassifier(nn.Module):
    """A small convolutional classifier for images in [0, 1]; ``features`` is its penultimate layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(2 * width * 49, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.test_accuracy = float("nan")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def _train(classifier: ReferenceClassifier, images: torch.Tensor, loss_of, *, steps: int, batch_size: int,
           lr: float, generator: torch.Generator, max_shift: int) -> ReferenceClassifier:
    """Adam with cosine decay; ``loss_of(logits, index)`` compares logits with the labels of ``images[index]``."""
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    classifier.train()
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        dx, dy = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
        batch = torch.roll(images[index], shifts=(dy, dx), dims=(2, 3))
        loss = loss_of(classifier(batch), index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return classifier.eval().requires_grad_(False)


def train_reference_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                               steps: int = 800, batch_size: int = 100, lr: float = 2e-3, seed: int = 0,
                               max_shift: int = 2) -> ReferenceClassifier:
    """Train a :class:`ReferenceClassifier` on CPU, deterministically for a seed.

    Each batch is shifted by up to ``max_shift`` pixels (one random shift per batch), which is enough
    augmentation for a few thousand digits to reach about 98% test accuracy.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = ReferenceClassifier(images.shape[1], num_classes)
    return _train(classifier, images, lambda logits, index: F.cross_entropy(logits, labels[index]),
                  steps=steps, batch_size=batch_size, lr=lr, generator=generator, max_shift=max_shift)


class AttributeClassifier(ReferenceClassifier):
    """One shared body and one softmax head per attribute (e.g. shape, colour, background, style).

    The heads are slices of one linear layer; ``features`` (the shared penultimate layer) serve for
    Fréchet distances. ``test_accuracy`` is a dict: one held-out accuracy per attribute. The body is deeper
    than the digit classifier's and batch-normalised: telling a small rotated square from a circle, whatever
    its colour, took the digit body 3,000 steps to reach 98.7%; this one passes 99% in a few hundred.
    """

    def __init__(self, attributes: dict[str, int], in_channels: int = 3, width: int = 32, feature_dim: int = 128):
        super().__init__(in_channels, sum(attributes.values()), width, feature_dim)

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(in_channels, width), *block(width, width), nn.MaxPool2d(2),
            *block(width, 2 * width), nn.MaxPool2d(2), *block(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(2 * width * 16, feature_dim), nn.ReLU())
        self.attributes = dict(attributes)
        self.test_accuracy: dict[str, float] = {}

    def split(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.attributes, logits.split(list(self.attributes.values()), dim=-1)))


def train_attribute_classifier(images: torch.Tensor, labels: dict[str, torch.Tensor],
                               attributes: dict[str, int], *, steps: int = 500, batch_size: int = 100,
                               lr: float = 2e-3, seed: int = 0) -> AttributeClassifier:
    """Train an :class:`AttributeClassifier` (summed cross-entropies), deterministically for a seed."""
    if set(labels) != set(attributes):
        raise ValueError(f"labels are given for {sorted(labels)} but the heads are {sorted(attributes)}")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = AttributeClassifier(attributes, images.shape[1])

    def loss_of(logits, index):
        return sum(F.cross_entropy(head, labels[name][index]) for name, head in classifier.split(logits).items())

    return _train(classifier, images, loss_of, steps=steps, batch_size=batch_size, lr=lr, generator=generator,
                  max_shift=0)


@torch.no_grad()
def _features_and_logits(classifier: ReferenceClassifier, images: torch.Tensor, batch_size: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    device = next(classifier.parameters()).device
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        feature = classifier.features(images[start:start + batch_size].to(device).float())
        features.append(feature.cpu())
        logits.append(classifier.head(feature).cpu())
    return torch.cat(features), torch.cat(logits)


def classify(classifier: ReferenceClassifier, images: torch.Tensor, batch_size: int = 500
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, class probabilities) of images in [0, 1], computed on the classifier's device."""
    features, logits = _features_and_logits(classifier, images, batch_size)
    return features, logits.softmax(-1)


def accuracy(classifier: ReferenceClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    _, probabilities = classify(classifier, images)
    return (probabilities.argmax(-1) == labels.cpu()).float().mean().item()


def classify_attributes(classifier: AttributeClassifier, images: torch.Tensor, batch_size: int = 500
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(shared features, {attribute: class probabilities}) of images in [0, 1]."""
    features, logits = _features_and_logits(classifier, images, batch_size)
    return features, {name: head.softmax(-1) for name, head in classifier.split(logits).items()}


def attribute_accuracy(classifier: AttributeClassifier, images: torch.Tensor,
                       labels: dict[str, torch.Tensor]) -> dict[str, float]:
    _, probabilities = classify_attributes(classifier, images)
    return {name: (probabilities[name].argmax(-1) == labels[name].cpu()).float().mean().item()
            for name in classifier.attributes}


def _cached(path: Path, build, make_empty):
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            classifier = make_empty()
            classifier.load_state_dict(state["weights"])
            classifier.test_accuracy = state["test_accuracy"]
            return classifier.eval().requires_grad_(False)
        except Exception as error:  # an unreadable cache is rebuilt: training takes seconds
            warnings.warn(f"Cached classifier {path} is unreadable ({error}); training it again.", stacklevel=3)
    classifier = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")  # two test workers may build it at once
    torch.save({"weights": classifier.state_dict(), "test_accuracy": classifier.test_accuracy}, partial)
    partial.replace(path)
    return classifier


def mnist_classifier(device: torch.device | str | None = None, seed: int = 0) -> ReferenceClassifier:
    """The MNIST reference classifier: trained on the 4,000 embedded training digits, cached.

    The same classifier serves every profile (also runs on full MNIST), so "FID (MNIST-classifier
    features)" means the same thing on every page. ``test_accuracy`` is measured on the 1,000 embedded
    test digits.
    """
    def build():
        data = embedded_mnist()
        classifier = train_reference_classifier(data.train_images, data.train_labels, 10, seed=seed)
        classifier.test_accuracy = accuracy(classifier, data.test_images, data.test_labels)
        return classifier

    path = cache_root() / "classifiers" / f"mnist_embedded-v{CLASSIFIER_VERSION}-seed{seed}.pt"
    classifier = _cached(path, build, lambda: ReferenceClassifier(1, 10))
    return classifier.to(device) if device is not None else classifier


# The shapes classifier's data: fixed seeds, never reused by a notebook's training images.
SHAPES_TRAIN_SEED, SHAPES_TEST_SEED = 7_000_001, 7_000_002
SHAPES_TRAIN_SIZE, SHAPES_TEST_SIZE = 20_000, 2_000


def shapes_classifier(resolution: int = 32, device: torch.device | str | None = None,
                      seed: int = 0) -> AttributeClassifier:
    """The reference classifier of procedural shapes: one head per attribute (shape, colour, background, style).

    Trained on 20,000 images rendered at ``resolution`` (fresh seeds, independent of any notebook's data)
    and cached per resolution, so "FID (shapes-classifier features)" at one resolution means the same thing
    on every page. ``test_accuracy`` holds per-attribute accuracy on 2,000 other rendered images.
    """
    def build():
        images, attributes = shapes_dataset(SHAPES_TRAIN_SIZE, resolution, seed=SHAPES_TRAIN_SEED)
        classifier = train_attribute_classifier(images, attributes.labels(), SHAPE_ATTRIBUTE_SIZES, seed=seed)
        test_images, test_attributes = shapes_dataset(SHAPES_TEST_SIZE, resolution, seed=SHAPES_TEST_SEED)
        classifier.test_accuracy = attribute_accuracy(classifier, test_images, test_attributes.labels())
        return classifier

    path = cache_root() / "classifiers" / f"shapes{resolution}-v{CLASSIFIER_VERSION}-seed{seed}.pt"
    classifier = _cached(path, build, lambda: AttributeClassifier(SHAPE_ATTRIBUTE_SIZES))
    return classifier.to(device) if device is not None else classifier
