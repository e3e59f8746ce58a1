"""Metrics: log-likelihood pieces and unit conversions for likelihood-based models, and sample-quality
measures (Fréchet distance on a reference classifier's features, mode coverage, Parzen windows, nearest
neighbours) for models without a likelihood."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
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


@torch.no_grad()
def average_bound(bound, data: torch.Tensor, *, samples: int = 1, batch_size: int = 500,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The mean over ``data`` and over ``samples`` draws of each per-example term that ``bound(batch)``
    returns (for example an ELBO, its reconstruction term and its KL): one mean per term."""
    from .data import TensorBatches

    totals = None
    for batch in TensorBatches(data, batch_size=batch_size):
        batch = batch.to(device) if device is not None else batch
        for _ in range(samples):
            terms = torch.stack([term.sum().cpu() for term in bound(batch)])
            totals = terms if totals is None else totals + terms
    return totals / (samples * len(data))


@torch.no_grad()
def average_importance_weighted_bound(log_weights, data: torch.Tensor, k: int, *, chunk: int = 250,
                                      batch_size: int = 50,
                                      device: torch.device | str | None = None) -> float:
    """The mean k-sample importance-weighted bound over ``data``. ``log_weights(batch, n)`` returns
    log w of shape (n, batch) for n fresh samples; the k samples are drawn ``chunk`` at a time."""
    from .data import TensorBatches

    per_example = []
    for batch in TensorBatches(data, batch_size=batch_size):
        batch = batch.to(device) if device is not None else batch
        log_w = torch.cat([log_weights(batch, min(chunk, k - i)) for i in range(0, k, chunk)])
        per_example.append(importance_weighted_bound(log_w).cpu())
    return torch.cat(per_example).mean().item()


def nats_to_bits_per_dim(nats: float | torch.Tensor, dimensions: int) -> float | torch.Tensor:
    """A negative log-likelihood in nats per example → bits per dimension."""
    return nats / (dimensions * math.log(2))


def bits_per_dim_to_nats(bits_per_dim: float | torch.Tensor, dimensions: int) -> float | torch.Tensor:
    """Bits per dimension → nats per example."""
    return bits_per_dim * dimensions * math.log(2)


# --- sample-quality metrics for models without a likelihood ------------------------------------------

def frechet_distance_gaussians(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
                               ) -> float:
    """Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b):
    ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():  # singular product (e.g. near-identical samples): regularise
            offset = 1e-6 * np.eye(len(cov_a))
            root = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real  # rounding can leave a tiny imaginary part
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (rows are examples).

    On Inception features this is the FID; on another network's features, name the network
    ("FID (MNIST-classifier features)"), since values on different features are not comparable.
    """
    a = features_a.detach().double().cpu().numpy()
    b = features_b.detach().double().cpu().numpy()
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@dataclass(frozen=True)
class ModeCoverage:
    """How generated samples spread over the classes a reference classifier knows."""
    histogram: np.ndarray    # share of samples assigned to each class
    classes_covered: int     # classes with at least ``min_share`` of the samples
    entropy: float           # of the histogram, in nats (log C when uniform, 0 when collapsed)
    mean_confidence: float   # mean of the classifier's top probability

    def __str__(self) -> str:
        return (f"{self.classes_covered}/{len(self.histogram)} classes covered, class entropy {self.entropy:.3f} "
                f"nats (uniform: {math.log(len(self.histogram)):.3f}), mean confidence {self.mean_confidence:.3f}")


def mode_coverage(probabilities: torch.Tensor, min_share: float = 0.02) -> ModeCoverage:
    """Mode coverage from a classifier's class probabilities (rows: samples)."""
    probabilities = probabilities.detach().cpu()
    counts = torch.bincount(probabilities.argmax(-1), minlength=probabilities.shape[1]).double()
    histogram = (counts / counts.sum()).numpy()
    nonzero = histogram[histogram > 0]
    return ModeCoverage(histogram=histogram, classes_covered=int((histogram >= min_share).sum()),
                        entropy=float(-(nonzero * np.log(nonzero)).sum()) + 0.0,
                        mean_confidence=probabilities.max(-1).values.mean().item())


def _squared_distances(centers: torch.Tensor, points: torch.Tensor, batch_size: int) -> torch.Tensor:
    centers = centers.flatten(1).double()
    return torch.cat([torch.cdist(points[start:start + batch_size].flatten(1).double().to(centers.device),
                                  centers).pow(2)
                      for start in range(0, len(points), batch_size)])


def _parzen_from_squared(squared: torch.Tensor, dims: int, sigma: float) -> torch.Tensor:
    normalizer = math.log(squared.shape[1]) + 0.5 * dims * math.log(2 * math.pi * sigma ** 2)
    return (torch.logsumexp(-squared / (2 * sigma ** 2), dim=1) - normalizer).cpu()


def parzen_log_likelihood(centers: torch.Tensor, points: torch.Tensor, sigma: float,
                          batch_size: int = 100) -> torch.Tensor:
    """log p(x) of each point under an isotropic Gaussian kernel density placed on ``centers``.

    log p(x) = logsumexp_i(−‖x − c_i‖² / 2σ²) − log n − (d/2) log(2πσ²), in nats, with x and c flattened.
    This is the estimate the GAN paper reports (centres = generated samples); in high dimensions it is
    a poor likelihood estimate (Theis et al., 2016), so compare it only between models on the same data.
    """
    squared = _squared_distances(centers, points, batch_size)
    return _parzen_from_squared(squared, centers[0].numel(), sigma)


def select_parzen_sigma(centers: torch.Tensor, validation: torch.Tensor, sigmas,
                        batch_size: int = 100) -> tuple[float, dict]:
    """The σ from ``sigmas`` with the highest mean Parzen log-likelihood on a validation set."""
    squared = _squared_distances(centers, validation, batch_size)
    scores = {float(s): _parzen_from_squared(squared, centers[0].numel(), float(s)).mean().item() for s in sigmas}
    return max(scores, key=scores.get), scores


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, batch_size: int = 500
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Euclidean distance, index) of each query's nearest reference, on flattened values."""
    references = references.flatten(1).float()
    distances, indices = [], []
    for start in range(0, len(queries), batch_size):
        d = torch.cdist(queries[start:start + batch_size].flatten(1).float().to(references.device), references,
                        compute_mode="donot_use_mm_for_euclid_dist")  # exact: a copy is at distance 0
        best = d.min(dim=1)
        distances.append(best.values.cpu())
        indices.append(best.indices.cpu())
    return torch.cat(distances), torch.cat(indices)


# --- image similarity ----------------------------------------------------------------------------------

SSIM_K1, SSIM_K2 = 0.01, 0.03   # Wang et al. (2004)'s stabilising constants, as fractions of the data range


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) of two batches of images (B, C, H, W): one value per image.

    Local means, variances and the covariance are taken under a Gaussian window (``window_size`` pixels, standard
    deviation ``sigma``; the paper's 11 and 1.5) at every position where the window fits inside the image, and

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),  C1 = (K1 L)², C2 = (K2 L)²,

    with L the data range, is averaged over positions and channels. It is 1 for identical images and, unlike the
    squared error, it is low for a blurred image: a blur removes the local variance that the structure term needs.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two batches of images of one shape (B, C, H, W); got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images of {tuple(x.shape[-2:])} pixels are smaller than the {window_size}-pixel window")
    x, y = x.double(), y.double()
    offsets = torch.arange(window_size, dtype=torch.float64, device=x.device) - (window_size - 1) / 2
    weights = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    weights = weights / weights.sum()
    channels = x.shape[1]
    rows = weights.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    columns = weights.view(1, 1, -1, 1).expand(channels, 1, -1, 1)

    def local_mean(images):
        return F.conv2d(F.conv2d(images, rows, groups=channels), columns, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x ** 2
    var_y = local_mean(y * y) - mu_y ** 2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(1).float()
