"""Image-to-image translation on procedural shapes, scored against ground truth.

Unpaired training domains are drawn from *different* seeds, so no image of one domain has its counterpart in the
other. Held-out test images come with their exact counterparts: the same scenes re-rendered with the changed
attribute (``ShapeAttributes.replace``), which real unpaired datasets cannot give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .classifiers import AttributeClassifier, attribute_accuracy
from .shapes import ATTRIBUTE_VALUES, BACKGROUNDS, ShapeAttributes, render_shapes, sample_shape_attributes


def attribute_index(attribute: str, value: str | int) -> int:
    """Class index of ``value`` (a name such as ``"outline"``, or an index) for a categorical attribute."""
    if attribute not in ATTRIBUTE_VALUES:
        raise ValueError(f"unknown attribute {attribute!r}; categorical attributes: {list(ATTRIBUTE_VALUES)}")
    values = ATTRIBUTE_VALUES[attribute]
    if isinstance(value, int):
        if not 0 <= value < len(values):
            raise ValueError(f"{attribute} index {value} out of range 0..{len(values) - 1}")
        return value
    if value not in values:
        raise ValueError(f"unknown {attribute} {value!r}; known: {list(values)}")
    return values.index(value)


def _render(attributes: ShapeAttributes, resolution: int) -> torch.Tensor:
    return torch.cat([render_shapes(attributes[i:i + 1024], resolution) for i in range(0, len(attributes), 1024)])


def _fixed(fixed: dict) -> dict:
    return {name: attribute_index(name, value) if name in ATTRIBUTE_VALUES else value for name, value in fixed.items()}


@dataclass
class UnpairedDomains:
    """Training images of two domains, drawn independently (no pairing), and their attributes."""

    images_a: torch.Tensor
    images_b: torch.Tensor
    attributes_a: ShapeAttributes
    attributes_b: ShapeAttributes


def unpaired_domains(n: int, resolution: int, attribute: str, value_a, value_b, *, seed: int = 0,
                     **fixed) -> UnpairedDomains:
    """``n`` images per domain: every attribute random except ``attribute`` (``value_a`` in A, ``value_b`` in B)
    and those in ``fixed``. The two domains use seeds ``seed`` and ``seed + 1``, so their scenes are unrelated."""
    a, b = attribute_index(attribute, value_a), attribute_index(attribute, value_b)
    if a == b:
        raise ValueError(f"the two domains must differ in {attribute}; both are {ATTRIBUTE_VALUES[attribute][a]!r}")
    attributes_a = sample_shape_attributes(n, seed=seed, **_fixed(fixed), **{attribute: a})
    attributes_b = sample_shape_attributes(n, seed=seed + 1, **_fixed(fixed), **{attribute: b})
    return UnpairedDomains(_render(attributes_a, resolution), _render(attributes_b, resolution),
                           attributes_a, attributes_b)


@dataclass
class PairedTest:
    """Held-out scenes rendered in both domains: ``images_b[i]`` is the exact translation of ``images_a[i]``."""

    images_a: torch.Tensor
    images_b: torch.Tensor
    attributes_a: ShapeAttributes
    attributes_b: ShapeAttributes


def paired_test_set(n: int, resolution: int, attribute: str, value_a, value_b, *, seed: int = 1000,
                    **fixed) -> PairedTest:
    a, b = attribute_index(attribute, value_a), attribute_index(attribute, value_b)
    attributes_a = sample_shape_attributes(n, seed=seed, **_fixed(fixed), **{attribute: a})
    attributes_b = attributes_a.replace(**{attribute: b})
    return PairedTest(_render(attributes_a, resolution), _render(attributes_b, resolution), attributes_a, attributes_b)


class UnpairedBatches:
    """One training batch from each of two unpaired image sets per step: ``batch(step)`` returns ``(a, b)``.

    Each domain has its own shuffled order (seeds ``seed`` and ``seed + 1``, one permutation per epoch of that
    domain, as :class:`~itemchest_utils.TensorBatches`), so the i-th image of an A batch has nothing to do with the
    i-th of the B batch, and the two sets may differ in size. A batch is a pure function of the step: a run resumed
    at step ``s`` sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, images_a: torch.Tensor, images_b: torch.Tensor, *, batch_size: int, seed: int = 0,
                 device: torch.device | str | None = None):
        from .data import TensorBatches

        self.a = TensorBatches(images_a, batch_size=batch_size, seed=seed, device=device)
        self.b = TensorBatches(images_b, batch_size=batch_size, seed=seed + 1, device=device)
        self.batch_size = batch_size

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a.batch(step), self.b.batch(step)


@torch.no_grad()
def translate(generator: Callable[..., torch.Tensor], images: torch.Tensor, *conditions: torch.Tensor | None,
              batch_size: int = 256, device: torch.device | str | None = None) -> torch.Tensor:
    """``generator(images)`` in batches of ``batch_size``, in eval mode and without gradients; the result is on
    the CPU. ``conditions`` (e.g. target labels, one row per image; ``None`` passes through) are sliced with the
    images and passed after them. The inputs go to ``device``, by default the generator's own. The generator's
    training mode is restored afterwards. Scaling (e.g. [0, 1] to a tanh range) is the caller's."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    for condition in conditions:
        if condition is not None and len(condition) != len(images):
            raise ValueError(f"a condition has {len(condition)} rows for {len(images)} images")
    if device is None:
        parameter = next(generator.parameters(), None) if isinstance(generator, torch.nn.Module) else None
        device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = getattr(generator, "training", False)
    if isinstance(generator, torch.nn.Module):
        generator.eval()
    try:
        parts = []
        for start in range(0, len(images), batch_size):
            window = slice(start, start + batch_size)
            extra = [c[window].to(device) if c is not None else None for c in conditions]
            parts.append(generator(images[window].to(device), *extra).cpu())
    finally:
        if isinstance(generator, torch.nn.Module):
            generator.train(was_training)
    if not parts:
        raise ValueError("translate needs at least one image")
    return torch.cat(parts)


def background_images(attributes: ShapeAttributes, resolution: int) -> torch.Tensor:
    """The scenes with the shape erased: a baseline that a translation must beat, because on small shapes a plain
    background is already close to any target image in mean squared error."""
    colours = torch.tensor(list(BACKGROUNDS.values()))[attributes.background]
    return colours.view(-1, 3, 1, 1).expand(-1, 3, resolution, resolution).clone()


def per_image_mse(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (images.float() - targets.float()).pow(2).flatten(1).mean(1)


def translation_scores(classifier: AttributeClassifier, outputs: torch.Tensor, inputs: torch.Tensor,
                       truth: torch.Tensor, truth_attributes: ShapeAttributes) -> dict[str, float]:
    """Score translations ``outputs`` of ``inputs`` against their ground truth ``truth``.

    Returns the mean squared error against the truth beside two baselines (``mse_identity``: the input returned
    unchanged; ``mse_erased``: the background alone), the error on the pixels where input and truth differ
    (``mse_changed_pixels``, where the translation happens), and the classifier's accuracy on the outputs for every
    attribute, measured against the truth's labels: for the changed attribute that is "did it translate",
    for the others "did it keep the content".
    """
    if not (outputs.shape == inputs.shape == truth.shape):
        raise ValueError(f"outputs {tuple(outputs.shape)}, inputs {tuple(inputs.shape)} and truth "
                         f"{tuple(truth.shape)} must have the same shape")
    outputs, inputs, truth = outputs.float().cpu(), inputs.float().cpu(), truth.float().cpu()
    changed = (inputs - truth).abs().amax(1, keepdim=True) > 0.05
    changed_count = changed.sum().clamp(min=1)
    scores = {
        "mse": per_image_mse(outputs, truth).mean().item(),
        "mse_identity": per_image_mse(inputs, truth).mean().item(),
        "mse_erased": per_image_mse(background_images(truth_attributes, truth.shape[-1]), truth).mean().item(),
        "mse_changed_pixels": (((outputs - truth) ** 2) * changed).sum().item() / (3 * changed_count.item()),
        "mse_changed_pixels_identity": (((inputs - truth) ** 2) * changed).sum().item() / (3 * changed_count.item()),
    }
    accuracy = attribute_accuracy(classifier, outputs.clamp(0, 1), truth_attributes.labels())
    scores.update({f"accuracy_{name}": value for name, value in accuracy.items()})
    return scores
