import pytest
import torch

import itemchest_utils as icu
from itemchest_utils.shapes import ATTRIBUTE_VALUES


def test_unpaired_domains_differ_only_in_the_attribute_and_are_not_paired():
    domains = icu.unpaired_domains(64, 16, "style", "filled", "outline", seed=3)
    assert domains.images_a.shape == domains.images_b.shape == (64, 3, 16, 16)
    assert (domains.attributes_a.style == 0).all() and (domains.attributes_b.style == 1).all()
    assert not torch.equal(domains.attributes_a.x, domains.attributes_b.x)    # unrelated scenes


def test_fixed_attributes_take_names():
    domains = icu.unpaired_domains(8, 16, "colour", "red", "blue", background="black")
    assert (domains.attributes_a.background == ATTRIBUTE_VALUES["background"].index("black")).all()
    assert (domains.attributes_b.colour == ATTRIBUTE_VALUES["colour"].index("blue")).all()


def test_paired_test_set_is_the_same_scene_in_both_domains():
    test = icu.paired_test_set(16, 16, "style", "filled", "outline")
    assert torch.equal(test.attributes_a.x, test.attributes_b.x)
    assert torch.equal(test.images_b, icu.render_shapes(test.attributes_b, 16))
    assert not torch.equal(test.images_a, test.images_b)


def test_bad_domain_names_are_clear():
    with pytest.raises(ValueError, match="unknown style"):
        icu.unpaired_domains(4, 16, "style", "filled", "dotted")
    with pytest.raises(ValueError, match="must differ"):
        icu.unpaired_domains(4, 16, "style", "filled", 0)
    with pytest.raises(ValueError, match="unknown attribute"):
        icu.attribute_index("texture", "smooth")


def test_background_images_are_the_scene_without_its_shape():
    attributes = icu.sample_shape_attributes(6, seed=0)
    plain = icu.background_images(attributes, 16)
    rendered = icu.render_shapes(attributes, 16)
    most_common = rendered.flatten(2).median(-1).values          # the background covers most pixels
    assert torch.allclose(plain[:, :, 0, 0], most_common, atol=1e-6)
    assert (plain == plain[:, :, :1, :1]).all()


def test_translation_scores_rank_truth_identity_and_noise():
    classifier = icu.shapes_classifier(32)
    test = icu.paired_test_set(200, 32, "style", "filled", "outline")
    perfect = icu.translation_scores(classifier, test.images_b, test.images_a, test.images_b, test.attributes_b)
    identity = icu.translation_scores(classifier, test.images_a, test.images_a, test.images_b, test.attributes_b)
    assert perfect["mse"] == 0 and perfect["mse_changed_pixels"] == 0
    assert identity["mse"] == pytest.approx(identity["mse_identity"])
    assert perfect["accuracy_style"] > 0.97 and identity["accuracy_style"] < 0.03
    assert identity["accuracy_colour"] > 0.97      # the input keeps the content, it just does not translate
    assert perfect["mse_erased"] < perfect["mse_identity"]     # why the erased baseline is needed
