import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from itemchest_utils import (frechet_distance, frechet_distance_gaussians, mode_coverage, nearest_neighbours,
                             parzen_log_likelihood, select_parzen_sigma)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0)) @ torch.randn(16, 16)
    assert abs(frechet_distance(features, features)) < 1e-6


def test_frechet_distance_gaussians_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mean_a, mean_b = rng.normal(size=5), rng.normal(size=5)
    std_a, std_b = rng.uniform(0.5, 2, size=5), rng.uniform(0.5, 2, size=5)
    expected = ((mean_a - mean_b) ** 2).sum() + ((std_a - std_b) ** 2).sum()
    got = frechet_distance_gaussians(mean_a, np.diag(std_a ** 2), mean_b, np.diag(std_b ** 2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_two_gaussian_samples_approaches_the_closed_form():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(200_000, 3, generator=generator) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([0.0, 1.0, 0.0])
    b = torch.randn(200_000, 3, generator=generator) * torch.tensor([1.5, 1.0, 0.5]) + torch.tensor([1.0, 1.0, 2.0])
    expected = (1 + 0 + 4) + (0.5 ** 2 + 1.0 ** 2 + 0)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_mode_coverage_sees_uniform_and_collapsed_samples():
    uniform = torch.eye(10).repeat(50, 1)
    coverage = mode_coverage(uniform)
    assert coverage.classes_covered == 10
    assert coverage.entropy == pytest.approx(math.log(10))
    assert coverage.mean_confidence == pytest.approx(1.0)
    collapsed = torch.full((500, 10), 0.02)
    collapsed[:, 3] = 0.82
    coverage = mode_coverage(collapsed)
    assert coverage.classes_covered == 1 and coverage.entropy == 0.0
    assert coverage.histogram[3] == 1.0 and coverage.mean_confidence == pytest.approx(0.82)
    assert "1/10 classes" in str(coverage)


def test_parzen_log_likelihood_matches_a_mixture_of_gaussians():
    generator = torch.Generator().manual_seed(2)
    centers, points, sigma = torch.randn(7, 4, generator=generator), torch.randn(5, 4, generator=generator), 0.8
    expected = [math.log(np.mean([multivariate_normal(c.numpy(), sigma ** 2 * np.eye(4)).pdf(x.numpy())
                                  for c in centers])) for x in points]
    got = parzen_log_likelihood(centers, points, sigma, batch_size=2)
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-9)


def test_select_parzen_sigma_returns_the_best_scoring_width():
    generator = torch.Generator().manual_seed(3)
    centers, validation = torch.randn(500, 2, generator=generator), torch.randn(200, 2, generator=generator)
    best, scores = select_parzen_sigma(centers, validation, [0.01, 0.3, 10.0])
    assert best == 0.3 and scores[0.3] == max(scores.values())


def test_nearest_neighbours_finds_exact_copies():
    references = torch.rand(50, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    distances, indices = nearest_neighbours(references[[7, 3, 41]], references, batch_size=2)
    assert indices.tolist() == [7, 3, 41]
    assert torch.allclose(distances, torch.zeros(3), atol=1e-3)
