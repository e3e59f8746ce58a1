"""The time-conditioned U-Net that the diffusion and flow-matching pages share (Ho et al. 2020, Appendix B).

It predicts a tensor of the input's shape (noise, velocity, a clean image: the pages decide) from a noisy image
and a time. Its ingredients are the DDPM paper's: a sinusoidal embedding of the time followed by a two-layer MLP;
residual blocks of GroupNorm → SiLU → 3×3 convolution with the time embedding added in between and dropout
before the second convolution; single-head self-attention at chosen resolutions; strided-convolution
downsampling, nearest-neighbour upsampling, and skip connections that concatenate each down-path activation into
the up path. As in the official code, the last convolution of every residual block, the attention's output
projection and the network's output layer start at zero, so each block starts as the identity and the
untrained network predicts 0. The DDPM page explains it line by line; what differs between papers (objective,
schedule, parameterisation, sampler) stays on each page.

``num_classes`` adds a learned label embedding to the time embedding, with one extra "no label" index
(``num_classes``) for classifier-free guidance.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style embedding of (possibly fractional) times: ``[sin(t·f_k), cos(t·f_k)]`` with
    ``f_k = max_period^(−k/(dim/2 − 1))``, k = 0 … dim/2 − 1, as in the DDPM code (``get_timestep_embedding``)."""
    if dim % 2 or dim < 4:
        raise ValueError(f"the time embedding needs an even size of at least 4, not {dim}")
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32)
                            / (half - 1))
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def group_norm(channels: int) -> nn.GroupNorm:
    """32 groups as in the paper; for narrow layers fewer, so that every group has at least 4 channels."""
    groups = math.gcd(32, channels)
    while groups > 1 and channels // groups < 4:
        groups //= 2
    return nn.GroupNorm(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int, dropout: float):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(embedding_dim, out_channels)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(embedding))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head attention over the H·W positions, with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # (batch, HW, C) each
        attended = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(attended.transpose(1, 2).reshape(batch, channels, height, width))


class UNet(nn.Module):
    """``UNet(...)(x, t, labels=None)`` → a tensor shaped like ``x``.

    ``channel_multipliers`` gives each resolution's width as a multiple of ``channels`` (the DDPM CIFAR-10 model:
    128 and (1, 2, 2, 2)); ``attention_resolutions`` the feature-map sizes with self-attention (16 in the paper).
    ``image_size`` must be divisible by 2^(levels − 1)."""

    def __init__(self, in_channels: int = 1, channels: int = 128, channel_multipliers: Sequence[int] = (1, 2, 2, 2),
                 blocks_per_level: int = 2, attention_resolutions: Sequence[int] = (16,), dropout: float = 0.1,
                 image_size: int = 32, num_classes: int | None = None, out_channels: int | None = None):
        super().__init__()
        levels = len(channel_multipliers)
        if image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {image_size} is not divisible by 2^{levels - 1}: pad the images "
                             f"(e.g. 28 → 32) or use fewer levels than {levels}")
        unknown = sorted(set(attention_resolutions) - {image_size // 2 ** i for i in range(levels)})
        if unknown:
            raise ValueError(f"attention_resolutions {unknown} are not among the U-Net's feature-map sizes "
                             f"{[image_size // 2 ** i for i in range(levels)]}")
        self.channels, self.image_size, self.in_channels = channels, image_size, in_channels
        self.num_classes = num_classes
        embedding_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, embedding_dim), nn.SiLU(),
                                      nn.Linear(embedding_dim, embedding_dim))
        self.label_embedding = nn.Embedding(num_classes + 1, embedding_dim) if num_classes else None
        self.input = nn.Conv2d(in_channels, channels, 3, padding=1)

        def stage(in_ch, out_ch, resolution):
            layers = [ResidualBlock(in_ch, out_ch, embedding_dim, dropout)]
            if resolution in attention_resolutions:
                layers.append(SelfAttention(out_ch))
            return nn.ModuleList(layers)

        self.down, skips, width, resolution = nn.ModuleList(), [channels], channels, image_size
        for level, multiplier in enumerate(channel_multipliers):
            for _ in range(blocks_per_level):
                self.down.append(stage(width, channels * multiplier, resolution))
                width = channels * multiplier
                skips.append(width)
            if level < levels - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(width, width, 3, stride=2, padding=1)]))
                skips.append(width)
                resolution //= 2
        self.middle = nn.ModuleList([ResidualBlock(width, width, embedding_dim, dropout), SelfAttention(width),
                                     ResidualBlock(width, width, embedding_dim, dropout)])
        self.up = nn.ModuleList()
        for level, multiplier in reversed(list(enumerate(channel_multipliers))):
            for _ in range(blocks_per_level + 1):
                self.up.append(stage(width + skips.pop(), channels * multiplier, resolution))
                width = channels * multiplier
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(width, width, 3, padding=1)]))
                resolution *= 2
        self.output = nn.Sequential(group_norm(width), nn.SiLU(),
                                    _zero(nn.Conv2d(width, out_channels or in_channels, 3, padding=1)))

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        embedding = self.time_mlp(sinusoidal_embedding(t, self.channels))
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("this U-Net is class-conditional: give labels (num_classes means 'no label')")
            if labels.min() < 0 or labels.max() > self.num_classes:
                raise ValueError(f"labels must lie in 0 … {self.num_classes} ({self.num_classes} = no label)")
            embedding = embedding + self.label_embedding(labels)
        elif labels is not None:
            raise ValueError("labels were given to a U-Net built without num_classes")
        return embedding

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (batch, {self.in_channels}, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")
        t = t.expand(len(x)) if t.dim() == 0 else t
        embedding = self.embed(t, labels)
        h = self.input(x)
        skips = [h]
        for layers in self.down:
            for layer in layers:
                h = layer(h, embedding) if isinstance(layer, (ResidualBlock, SelfAttention)) else layer(h)
            skips.append(h)
        for layer in self.middle:
            h = layer(h, embedding)
        for layers in self.up:
            if isinstance(layers[0], ResidualBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            for layer in layers:
                h = layer(h, embedding) if isinstance(layer, (ResidualBlock, SelfAttention)) else layer(h)
        return self.output(h)
