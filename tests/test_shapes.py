import math

import pytest
import torch

from itemchest_utils.shapes import (BACKGROUNDS, COLOURS, SHAPES, render_shapes, sample_shape_attributes,
                                    shapes_dataset)


def test_same_seed_same_images_and_other_seed_other_images():
    images_a, attributes_a = shapes_dataset(64, resolution=32, seed=3)
    images_b, attributes_b = shapes_dataset(64, resolution=32, seed=3)
    images_c, _ = shapes_dataset(64, resolution=32, seed=4)
    assert torch.equal(images_a, images_b) and torch.equal(attributes_a.size, attributes_b.size)
    assert not torch.equal(images_a, images_c)


def test_centre_pixel_has_the_shape_colour_and_the_corner_the_background():
    attributes = sample_shape_attributes(200, seed=0, style=0, x=0.0, y=0.0)
    images = render_shapes(attributes, resolution=64)
    colours = torch.tensor(list(COLOURS.values()))
    backgrounds = torch.tensor(list(BACKGROUNDS.values()))
    centre = images[:, :, 31:33, 31:33].mean(dim=(2, 3))
    corner = images[:, :, 0, 0]
    assert torch.allclose(centre, colours[attributes.colour], atol=1e-5)
    assert torch.allclose(corner, backgrounds[attributes.background], atol=1e-5)


def test_filled_areas_match_the_geometry_of_each_shape():
    size, resolution = 0.5, 128
    attributes = sample_shape_attributes(3, seed=0, shape=[0, 1, 2], style=0, size=size, angle=0.3,
                                         x=0.0, y=0.0, colour=0, background=0)
    coverage = (render_shapes(attributes, resolution)[:, 0] - BACKGROUNDS["black"][0]) / (
        COLOURS["red"][0] - BACKGROUNDS["black"][0])
    area = coverage.sum(dim=(1, 2)) * (2 / resolution) ** 2
    side = size * math.sqrt(3)  # equilateral triangle with circumradius `size`
    expected = torch.tensor([math.pi * size ** 2, (2 * size) ** 2, math.sqrt(3) / 4 * side ** 2])
    assert torch.allclose(area, expected, rtol=0.01), (area, expected)


def test_outline_style_draws_less_ink_than_filled():
    filled = sample_shape_attributes(50, seed=1, style=0)
    outline = filled.replace(style=1)
    ink_filled = (render_shapes(filled, 64) - render_shapes(filled.replace(size=0.0), 64)).abs().sum(dim=(1, 2, 3))
    ink_outline = (render_shapes(outline, 64) - render_shapes(filled.replace(size=0.0), 64)).abs().sum(dim=(1, 2, 3))
    assert (ink_outline < ink_filled).all()


def test_rerendering_with_one_attribute_changed_changes_only_that():
    attributes = sample_shape_attributes(100, seed=2, style=0)
    recoloured = attributes.replace(colour=(attributes.colour + 1) % len(COLOURS))
    before, after = render_shapes(attributes, 64), render_shapes(recoloured, 64)
    backgrounds = torch.tensor(list(BACKGROUNDS.values()))[attributes.background].view(-1, 3, 1, 1)
    shape_pixels = (before != backgrounds).any(dim=1)
    changed_pixels = (before != after).any(dim=1)
    assert changed_pixels.any(dim=(1, 2)).all()             # every image changed ...
    assert not (changed_pixels & ~shape_pixels).any()        # ... but only where its shape is
    for name in ("shape", "background", "style", "size", "angle", "x", "y"):
        assert torch.equal(getattr(recoloured, name), getattr(attributes, name))


def test_unknown_attribute_and_tiny_resolution_are_refused():
    with pytest.raises(ValueError, match="unknown attribute"):
        sample_shape_attributes(4, seed=0, hue=1)
    with pytest.raises(ValueError, match="too small"):
        render_shapes(sample_shape_attributes(4), resolution=4)


def test_rendering_speed_relative_to_a_reference_workload(speed_ratio):
    attributes = sample_shape_attributes(2000, seed=0)
    images = render_shapes(attributes, 64)
    assert images.shape == (2000, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    # 2,000 images cost 2-6 reference workloads (one element-wise pass over as many pixels) on the 2-core test
    # machine, busy or not; a renderer several times slower than today fails.
    ratio = speed_ratio(lambda: render_shapes(attributes, 64))
    assert ratio < 10, f"rendering 2,000 images took {ratio:.1f} times the reference workload"


def test_labels_cover_every_class():
    attributes = sample_shape_attributes(3000, seed=0)
    labels = attributes.labels()
    assert set(labels["shape"].tolist()) == set(range(len(SHAPES)))
    assert set(labels["colour"].tolist()) == set(range(len(COLOURS)))
