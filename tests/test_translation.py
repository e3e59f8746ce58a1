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
    by_hand = sum(float((a - b) ** 2) for a, b in zip(test.images_a[:3].flatten().tolist(),
                                                         test.images_b[:3].flatten().tolist())) / (3 * 3 * 32 * 32)
    first_three = icu.translation_scores(classifier, test.images_a[:3], test.images_a[:3], test.images_b[:3],
                                         test.attributes_b[:3])
    assert first_three["mse"] == pytest.approx(by_hand, rel=1e-5)       # an independent sum over the pixels
    assert perfect["accuracy_style"] > 0.97 and identity["accuracy_style"] < 0.03
    assert identity["accuracy_colour"] > 0.97      # the input keeps the content, it just does not translate
    assert perfect["mse_erased"] < perfect["mse_identity"]     # why the erased baseline is needed


def test_unpaired_batches_are_a_pure_function_of_the_step_and_resume_exactly():
    a, b = torch.arange(40.0).view(40, 1), torch.arange(100.0, 130.0).view(30, 1)   # different sizes
    first = icu.UnpairedBatches(a, b, batch_size=4, seed=5)
    resumed = icu.UnpairedBatches(a, b, batch_size=4, seed=5)        # a fresh object, as after a restart
    later = [first.batch(step) for step in range(30)]
    for step in (27, 3, 12):                                         # any order, any step
        got_a, got_b = resumed.batch(step)
        assert torch.equal(got_a, later[step][0]) and torch.equal(got_b, later[step][1])
    assert first.batch_size == 4 and later[0][0].shape == (4, 1)
    assert not torch.equal(icu.UnpairedBatches(a, b, batch_size=4, seed=6).batch(0)[0], later[0][0])


def test_unpaired_batches_cover_each_domain_once_per_epoch_in_independent_orders():
    a, b = torch.arange(40.0), torch.arange(40.0)
    batches = icu.UnpairedBatches(a, b, batch_size=8, seed=0)
    epoch = [batches.batch(step) for step in range(5)]
    seen_a = torch.cat([x for x, _ in epoch]).sort().values
    seen_b = torch.cat([y for _, y in epoch]).sort().values
    assert torch.equal(seen_a, a) and torch.equal(seen_b, b)         # every image once per epoch
    order_a, order_b = torch.cat([x for x, _ in epoch]), torch.cat([y for _, y in epoch])
    assert not torch.equal(order_a, order_b)                         # no pairing between the domains
    assert not torch.equal(order_a, a)                               # shuffled
    next_epoch = torch.cat([batches.batch(step)[0] for step in range(5, 10)])
    assert not torch.equal(next_epoch, order_a)                      # a new order each epoch


def test_unpaired_batches_refuse_a_batch_larger_than_a_domain():
    with pytest.raises(ValueError, match="larger than"):
        icu.UnpairedBatches(torch.zeros(10, 1), torch.zeros(3, 1), batch_size=4).batch(0)


class _Scale(torch.nn.Module):
    """Output depends on the mode (dropout) and on an optional per-image condition."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(2.0))
        self.dropout = torch.nn.Dropout(0.5)
        self.calls = []

    def forward(self, x, condition=None):
        self.calls.append(len(x))
        out = self.dropout(x) * self.weight
        return out if condition is None else out + condition.view(-1, *([1] * (x.dim() - 1)))


def test_translate_batches_in_eval_mode_without_gradients_and_restores_the_mode():
    generator = _Scale().train()
    images = torch.rand(10, 3, 4, 4)
    out = icu.translate(generator, images, batch_size=4)
    assert generator.calls == [4, 4, 2]                               # batched
    assert torch.equal(out, images * 2)                               # eval mode: dropout off
    assert not out.requires_grad and out.device.type == "cpu"
    assert generator.training                                         # mode restored
    generator.eval()
    icu.translate(generator, images)
    assert not generator.training


def test_translate_slices_conditions_with_the_images():
    generator = _Scale()
    images, labels = torch.zeros(7, 1, 2, 2), torch.arange(7.0)
    out = icu.translate(generator, images, labels, batch_size=3)
    assert torch.equal(out[:, 0, 0, 0], labels)
    assert torch.equal(icu.translate(generator, images, None, batch_size=3), images)
    with pytest.raises(ValueError, match="rows"):
        icu.translate(generator, images, labels[:5])
