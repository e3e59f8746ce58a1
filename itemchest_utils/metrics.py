"""Log-likelihood pieces and unit conversions shared by the likelihood-based models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over every dimension but the first (one value per example).

    Computed from logits (never from sigmoid probabilities) so that saturated pixels stay finite.
    """
    per_pixel = -F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return per_pixel.flatten(1).sum(1)


def diagonal_gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(log_variance))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_variance + (z - mean) ** 2 / log_variance.exp()).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z ** 2).sum(-1)


def log_mean_exp(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(values))) along ``dim``, stable for values of any size (log-sum-exp minus log n)."""
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])


def importance_weighted_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The k-sample importance-weighted bound log (1/k) Σ_i w_i from log w_i of shape (k, batch).

    With k = 1 it is the ELBO estimator; it rises towards log p(x) as k grows (Burda et al., 2016).
    """
    if log_weights.ndim != 2:
        raise ValueError(f"log_weights must have shape (k, batch); got {tuple(log_weights.shape)}.")
    return log_mean_exp(log_weights, dim=0)


def nats_to_bits_per_dim(nats: float | torch.Tensor, dimensions: int) -> float | torch.Tensor:
    """A negative log-likelihood in nats per example → bits per dimension."""
    return nats / (dimensions * math.log(2))


def bits_per_dim_to_nats(bits_per_dim: float | torch.Tensor, dimensions: int) -> float | torch.Tensor:
    """Bits per dimension → nats per example."""
    return bits_per_dim * dimensions * math.log(2)
