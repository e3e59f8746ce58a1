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
