"""Small reference classifiers, trained here in seconds, whose features the sample-quality metrics use.

A metric such as "FID (MNIST-classifier features)" is only comparable between runs if the classifier is
the same, so each one is trained deterministically from a fixed seed on a fixed dataset and cached.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import embedded_mnist
from .runtime import cache_root

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
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    classifier.train()
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        dx, dy = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
        batch = torch.roll(images[index], shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(classifier(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return classifier.eval().requires_grad_(False)


@torch.no_grad()
def classify(classifier: ReferenceClassifier, images: torch.Tensor, batch_size: int = 500
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, class probabilities) of images in [0, 1], on the classifier's device."""
    device = next(classifier.parameters()).device
    features, probabilities = [], []
    for start in range(0, len(images), batch_size):
        feature = classifier.features(images[start:start + batch_size].to(device).float())
        features.append(feature.cpu())
        probabilities.append(classifier.head(feature).softmax(-1).cpu())
    return torch.cat(features), torch.cat(probabilities)


def accuracy(classifier: ReferenceClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    _, probabilities = classify(classifier, images)
    return (probabilities.argmax(-1) == labels.cpu()).float().mean().item()


def _cached(path: Path, build, in_channels: int, num_classes: int) -> ReferenceClassifier:
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            classifier = ReferenceClassifier(in_channels, num_classes)
            classifier.load_state_dict(state["weights"])
            classifier.test_accuracy = float(state["test_accuracy"])
            return classifier.eval().requires_grad_(False)
        except Exception as error:  # an unreadable cache is rebuilt: training takes seconds
            warnings.warn(f"Cached classifier {path} is unreadable ({error}); training it again.", stacklevel=3)
    classifier = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
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
    classifier = _cached(path, build, 1, 10)
    return classifier.to(device) if device is not None else classifier
