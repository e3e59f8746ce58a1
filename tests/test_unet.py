import math

import pytest
import torch

from itemchest_utils.unet import SelfAttention, UNet, group_norm, sinusoidal_embedding


def randomised(model):
    """Give the zero-initialised layers random weights, as training would, so every path carries signal."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(std=0.05)
    return model


def small(**changes):
    settings = dict(in_channels=1, channels=16, channel_multipliers=(1, 2, 2), blocks_per_level=1,
                    attention_resolutions=(8,), dropout=0.0, image_size=32)
    settings.update(changes)
    torch.manual_seed(0)
    return UNet(**settings)


def test_the_paper_cifar10_model_has_its_35_7_million_parameters():
    model = UNet(in_channels=3, channels=128, channel_multipliers=(1, 2, 2, 2), blocks_per_level=2,
                 attention_resolutions=(16,), dropout=0.1, image_size=32)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 35.7  # Ho et al. 2020, Appendix B


def test_sinusoidal_embedding_matches_its_formula():
    t = torch.tensor([0.0, 3.0, 999.0])
    embedding = sinusoidal_embedding(t, 8)
    k = 2
    frequency = 10_000 ** (-k / 3)
    assert embedding.shape == (3, 8)
    assert embedding[1, k].item() == pytest.approx(math.sin(3 * frequency), abs=1e-5)
    assert embedding[2, 4 + k].item() == pytest.approx(math.cos(999 * frequency), abs=1e-4)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


def test_output_has_the_input_shape_and_starts_at_zero():
    model = small()
    x = torch.randn(3, 1, 32, 32)
    out = model(x, torch.tensor([0, 500, 999]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # zero-initialised output layer


def test_only_the_output_layer_learns_on_the_first_step():
    model = small()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 1, 32, 32)
    (model(x, torch.full((4,), 10)) - x).pow(2).mean().backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"output.2.weight", "output.2.bias"}


def test_output_depends_on_time_and_on_every_pixel():
    model = randomised(small())
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    out = model(x, torch.tensor([10]))
    assert not torch.allclose(out, model(x, torch.tensor([900])))
    out[0, 0, 0, 0].backward()
    assert (x.grad.abs() > 0).float().mean() > 0.9  # attention at 8×8 sees the whole image


def test_class_labels_condition_the_output_and_are_checked():
    model = randomised(small(num_classes=10))
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([100, 100])
    assert not torch.allclose(model(x, t, torch.tensor([3, 3])), model(x, t, torch.tensor([10, 10])))
    with pytest.raises(ValueError, match="give labels"):
        model(x, t)
    with pytest.raises(ValueError, match="0 … 10"):
        model(x, t, torch.tensor([3, 11]))
    with pytest.raises(ValueError, match="without num_classes"):
        small()(x, t, torch.tensor([1, 2]))


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="pad the images"):
        small(image_size=28, channel_multipliers=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="feature-map sizes"):
        small(attention_resolutions=(5,))
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 1, 32, 32\)"):
        small()(torch.randn(2, 1, 28, 28), torch.tensor([1, 2]))


def test_group_norm_keeps_at_least_four_channels_per_group():
    assert group_norm(256).num_groups == 32
    assert group_norm(16).num_groups == 4
    assert group_norm(144).num_groups == 16


def test_attention_mixes_positions():
    attention = SelfAttention(8)
    torch.nn.init.normal_(attention.out.weight)
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    attention(x)[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, 3, 3].abs().sum() > 0
