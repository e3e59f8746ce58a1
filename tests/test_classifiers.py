import pytest
import torch

import itemchest_utils.classifiers as classifiers
from itemchest_utils import classify, embedded_mnist, mnist_classifier, train_reference_classifier


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
    # Uses the real cache, so the notebooks later in the suite reuse this classifier.
    assert mnist_classifier().test_accuracy > 0.97


def test_mnist_classifier_is_cached_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
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
