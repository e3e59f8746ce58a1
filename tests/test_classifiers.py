import pytest
import torch

import itemchest_utils.classifiers as classifiers
from itemchest_utils import (classify, classify_attributes, embedded_mnist, mnist_classifier, shapes_classifier,
                            train_attribute_classifier, train_reference_classifier)
from itemchest_utils.shapes import SHAPE_ATTRIBUTE_SIZES, shapes_dataset


def _small_task():
    data = embedded_mnist()
    return data.train_images[:300], data.train_labels[:300]


def test_training_is_deterministic_for_a_seed():
    images, labels = _small_task()
    first = train_reference_classifier(images, labels, 10, steps=5, batch_size=20, seed=3)
    second = train_reference_classifier(images, labels, 10, steps=5, batch_size=20, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_classify_returns_features_and_probabilities():
    images, labels = _small_task()
    classifier = train_reference_classifier(images, labels, 10, steps=2, batch_size=10)
    features, probabilities = classify(classifier, images[:25], batch_size=10)
    assert features.shape == (25, 128) and probabilities.shape == (25, 10)
    assert torch.allclose(probabilities.sum(-1), torch.ones(25), atol=1e-5)


def test_mnist_classifier_is_accurate():
    # Built in the test run's own cache (conftest), so a changed recipe is measured; later notebooks reuse it.
    assert mnist_classifier().test_accuracy > 0.97


def test_mnist_classifier_is_cached_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
    monkeypatch.delenv("ITEMCHEST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    real_train = classifiers.train_reference_classifier

    def short_training(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **{**kwargs, "steps": 3})

    monkeypatch.setattr(classifiers, "train_reference_classifier", short_training)
    classifier = mnist_classifier()
    again = mnist_classifier()
    assert len(calls) == 1 and again.test_accuracy == classifier.test_accuracy
    for a, b in zip(classifier.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    (cached,) = (tmp_path / "itemchest" / "classifiers").glob("*.pt")
    cached.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = mnist_classifier()
    assert len(calls) == 2 and rebuilt.test_accuracy == classifier.test_accuracy


def _small_shapes(n=200, resolution=16):
    images, attributes = shapes_dataset(n, resolution, seed=5)
    return images, attributes.labels()


def test_attribute_classifier_training_is_deterministic_and_checks_its_heads():
    images, labels = _small_shapes()
    first = train_attribute_classifier(images, labels, SHAPE_ATTRIBUTE_SIZES, steps=3, batch_size=20, seed=1)
    second = train_attribute_classifier(images, labels, SHAPE_ATTRIBUTE_SIZES, steps=3, batch_size=20, seed=1)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="heads"):
        train_attribute_classifier(images, {"shape": labels["shape"]}, SHAPE_ATTRIBUTE_SIZES, steps=1)


def test_classify_attributes_gives_one_distribution_per_attribute():
    images, labels = _small_shapes(30)
    classifier = train_attribute_classifier(images, labels, SHAPE_ATTRIBUTE_SIZES, steps=2, batch_size=10)
    features, probabilities = classify_attributes(classifier, images, batch_size=7)
    assert features.shape == (30, 128)
    assert {name: p.shape for name, p in probabilities.items()} == {
        name: (30, size) for name, size in SHAPE_ATTRIBUTE_SIZES.items()}
    for p in probabilities.values():
        assert torch.allclose(p.sum(-1), torch.ones(30), atol=1e-5)


def test_shapes_classifier_is_accurate_on_every_attribute():
    # Built in the test run's own cache (conftest), so a changed recipe is measured; later notebooks reuse it.
    accuracy = shapes_classifier(32).test_accuracy
    assert set(accuracy) == set(SHAPE_ATTRIBUTE_SIZES)
    assert min(accuracy.values()) > 0.98, accuracy


def test_shapes_classifier_is_cached_per_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("ITEMCHEST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(classifiers, "SHAPES_TRAIN_SIZE", 300)
    calls = []
    real_train = classifiers.train_attribute_classifier

    def short_training(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **{**kwargs, "steps": 2})

    monkeypatch.setattr(classifiers, "train_attribute_classifier", short_training)
    at_16 = shapes_classifier(16)
    again = shapes_classifier(16)
    shapes_classifier(24)
    assert len(calls) == 2 and again.test_accuracy == at_16.test_accuracy
    assert len(list((tmp_path / "itemchest" / "classifiers").glob("shapes*.pt"))) == 2
