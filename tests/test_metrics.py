import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from itemchest_utils import (bernoulli_log_likelihood, bits_per_dim_to_nats, diagonal_gaussian_log_density,
                             importance_weighted_bound, log_mean_exp, nats_to_bits_per_dim,
                             standard_normal_log_density)


def test_bernoulli_log_likelihood_matches_torch_distributions():
    logits, x = torch.randn(5, 1, 4, 4), torch.randint(0, 2, (5, 1, 4, 4)).float()
    expected = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(bernoulli_log_likelihood(logits, x), expected, atol=1e-5)


def test_bernoulli_log_likelihood_stays_finite_when_saturated():
    logits = torch.tensor([[200.0, -200.0]])
    assert torch.isfinite(bernoulli_log_likelihood(logits, torch.tensor([[0.0, 1.0]]))).all()


def test_gaussian_log_densities_match_torch_distributions():
    z, mean, log_var = torch.randn(6, 3), torch.randn(6, 3), torch.randn(6, 3)
    expected = Normal(mean, (0.5 * log_var).exp()).log_prob(z).sum(-1)
    assert torch.allclose(diagonal_gaussian_log_density(z, mean, log_var), expected, atol=1e-5)
    assert torch.allclose(standard_normal_log_density(z), Normal(0.0, 1.0).log_prob(z).sum(-1), atol=1e-6)


def test_log_mean_exp_is_stable_for_huge_values():
    values = torch.tensor([[1000.0, -1000.0], [1000.0, -1001.0]])
    result = log_mean_exp(values, dim=0)
    assert torch.isfinite(result).all()
    assert result[0].item() == pytest.approx(1000.0)
    assert result[1].item() == pytest.approx(-1000.0 + math.log((1 + math.exp(-1)) / 2), abs=1e-4)


def test_importance_weighted_bound_k1_is_the_sample_and_grows_with_k():
    log_w = torch.randn(1, 7)
    assert torch.equal(importance_weighted_bound(log_w), log_w[0])
    many = torch.randn(1000, 4)
    # Jensen: log of the mean weight >= mean of the log weights
    assert (importance_weighted_bound(many) >= many.mean(0)).all()
    with pytest.raises(ValueError, match="shape"):
        importance_weighted_bound(torch.randn(5))


def test_bits_per_dim_round_trip():
    assert nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    assert bits_per_dim_to_nats(nats_to_bits_per_dim(123.4, 3072), 3072) == pytest.approx(123.4)


# --- ssim ------------------------------------------------------------------------------------------------

def _ssim_by_loops(x, y, window_size=11, sigma=1.5, data_range=1.0):
    """SSIM written out window by window with numpy (an independent reference for ``ssim``)."""
    import numpy as np

    offsets = np.arange(window_size) - (window_size - 1) / 2
    g = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for a, b in zip(x.double().numpy(), y.double().numpy()):
        per_window = []
        for channel in range(a.shape[0]):
            for i in range(a.shape[1] - window_size + 1):
                for j in range(a.shape[2] - window_size + 1):
                    pa = a[channel, i:i + window_size, j:j + window_size]
                    pb = b[channel, i:i + window_size, j:j + window_size]
                    ma, mb = (w * pa).sum(), (w * pb).sum()
                    va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                    cov = (w * (pa - ma) * (pb - mb)).sum()
                    per_window.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
        values.append(np.mean(per_window))
    return torch.tensor(values)


def test_ssim_matches_a_window_by_window_reference():
    from itemchest_utils.metrics import ssim

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 14, 15, generator=generator)
    y = (x + 0.2 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    assert torch.allclose(ssim(x, y), _ssim_by_loops(x, y).float(), atol=1e-5)
    assert torch.allclose(ssim(x, y, window_size=7, sigma=1.0), _ssim_by_loops(x, y, 7, 1.0).float(), atol=1e-5)


def test_ssim_of_identical_and_of_constant_images():
    from itemchest_utils.metrics import ssim

    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    a, b = torch.full((1, 1, 12, 12), 0.3), torch.full((1, 1, 12, 12), 0.7)
    c1 = 0.01 ** 2            # flat images: the structure term is 1, the luminance term is what is left
    assert ssim(a, b).item() == pytest.approx((2 * 0.3 * 0.7 + c1) / (0.3 ** 2 + 0.7 ** 2 + c1), rel=1e-5)


def test_ssim_is_symmetric_falls_with_noise_and_gives_a_flat_image_no_structure():
    from itemchest_utils.metrics import ssim

    generator = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    scores = [ssim(x, (x + level * noise).clamp(0, 1)).mean().item() for level in (0.05, 0.1, 0.2, 0.4)]
    assert scores == sorted(scores, reverse=True)
    y = (x + 0.1 * noise).clamp(0, 1)
    assert torch.allclose(ssim(x, y), ssim(y, x))
    # A flat grey image has a lower squared error than an unrelated image of the same statistics, but no structure
    flat = torch.full_like(x, 0.5)
    unrelated = torch.rand(x.shape, generator=generator)
    assert ((flat - x) ** 2).mean() < ((unrelated - x) ** 2).mean()
    assert ssim(flat, x).mean() < 0.05


def test_ssim_rejects_mismatched_or_tiny_images():
    from itemchest_utils.metrics import ssim

    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 15))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_average_bound_is_the_mean_of_each_term_over_data_and_draws():
    from itemchest_utils import average_bound

    data = torch.arange(12.0).view(6, 2)
    draws = iter(range(100))

    def bound(batch):   # two terms per example; the second changes from draw to draw
        offset = float(next(draws))
        return batch.sum(1), torch.full((len(batch),), offset)

    means = average_bound(bound, data, samples=3, batch_size=4)
    # batches of 4 and 2 examples, 3 draws each: offsets 0, 1, 2 then 3, 4, 5
    expected_offset = (4 * (0 + 1 + 2) + 2 * (3 + 4 + 5)) / (3 * 6)
    assert torch.allclose(means, torch.tensor([data.sum(1).mean().item(), expected_offset]))


def test_average_importance_weighted_bound_draws_k_samples_in_chunks():
    from itemchest_utils import average_importance_weighted_bound, importance_weighted_bound

    torch.manual_seed(0)
    table = torch.randn(10, 7)   # log weights: 10 samples for each of 7 examples
    data = torch.arange(7.0).view(7, 1)
    drawn = []

    def log_weights(batch, n):
        start = sum(drawn) % 10
        drawn.append(n)
        return table[start:start + n, batch[:, 0].long()]

    chunked = average_importance_weighted_bound(log_weights, data, 10, chunk=4, batch_size=7)
    assert drawn == [4, 4, 2]
    assert chunked == pytest.approx(importance_weighted_bound(table).mean().item(), abs=1e-6)
