# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Progressive growing of GANs (PG-GAN)
#
# | **Paper** | *Progressive Growing of GANs for Improved Quality, Stability, and Variation* — Tero Karras, Timo Aila, Samuli Laine, Jaakko Lehtinen, 2017 ([arXiv 1710.10196](https://arxiv.org/abs/1710.10196)) {cite}`karras2018progressive` |
# | --- | --- |
# | **Family** | [GAN family](../../book/gan-family.md) |
# | **Trains here** | a PG-GAN growing from 4×4 to 32×32 on procedural shape images, and the same networks trained at 32×32 from the start, CPU minutes |
#
# **The idea in three sentences.** Instead of training a generator and a discriminator at the final
# resolution from the first step, start both at $4\times4$ and add layers, one resolution at a time, that are
# {term}`faded in <fade-in>` smoothly while training continues. The networks first learn the large-scale structure of the
# images — where things are, which colours — on a task that is small and fast, and each new layer then only
# has to add detail to an already good coarser image. With it come four tricks that the paper found just as
# necessary: a {term}`minibatch standard-deviation <minibatch standard deviation>` feature against {term}`mode collapse`,
# {term}`equalized learning rates <equalized learning rate>`, {term}`pixelwise feature normalization <pixel normalization>`
# in the generator, and an {term}`exponential moving average` of the generator's weights.

# %% [markdown]
# ## Setup
#
# On Colab, the first cell installs this project's helper package `itemchest_utils` (with the procedural
# image generator); elsewhere it does nothing — install locally with `pip install -e .` from the repository
# root. The profile (`ITEMCHEST_PROFILE` = `smoke`, `book` or `full`) picks the scale; this page shows a
# `book` run.

# %%
import subprocess
import sys

REPOSITORY = "https://github.com/item-chest/item-chest"
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{REPOSITORY}"], check=True)


# %%
import copy
import io
import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import itemchest_utils as icu

SETTINGS = dict(
    smoke=dict(resolution=8, fmap_base=128, fmap_max=32, batch_sizes={4: 16, 8: 16},
               images_per_phase=4096, baseline_images=4096, train_images=2000, eval_samples=1000,
               frames_per_phase=2, ema_half_life_images=800),
    book=dict(resolution=32, fmap_base=256, fmap_max=64, batch_sizes={4: 16, 8: 16, 16: 16, 32: 16},
              images_per_phase=16_000, baseline_images=60_000, train_images=20_000,
              eval_samples=4000, frames_per_phase=4, ema_half_life_images=1600),
    full=dict(resolution=64, fmap_base=8192, fmap_max=512,
              batch_sizes={4: 128, 8: 128, 16: 128, 32: 64, 64: 32}, images_per_phase=600_000,
              baseline_images=2_000_000, train_images=50_000, eval_samples=10_000,
              frames_per_phase=4, ema_half_life_images=10_000),
)
# Quality gates: the growing run's averaged G must score below these fractions of the untrained G's.
GATES = dict(smoke=dict(fid_fraction=0.5, total_variation_fraction=1.2),
             book=dict(fid_fraction=0.2, total_variation_fraction=0.5),
             full=dict(fid_fraction=0.05, total_variation_fraction=0.25))
config = icu.pick_config(**SETTINGS, gates=GATES)
config

# %%
# The paper's settings, the same in every profile.
LATENT_DIM = 128                 # the paper's CIFAR-10 configuration (512 for faces)
LEARNING_RATE, BETAS, EPSILON = 1e-3, (0.0, 0.99), 1e-8
GP_WEIGHT, DRIFT_WEIGHT = 10.0, 1e-3
LEAK = 0.2                       # LeakyReLU slope in both networks
STDDEV_GROUP = 4                 # minibatch standard deviation over groups of 4
SEED = 0

TOP_LEVEL = int(math.log2(config.resolution // 4))   # level 0: 4×4; TOP_LEVEL: the final resolution
device = icu.pick_device()
icu.seed_everything(SEED)
print(f"levels: {[4 * 2 ** level for level in range(TOP_LEVEL + 1)]}; "
      f"device: {icu.describe_device(device)}")

# %% [markdown]
# ## The idea in math
#
# **Growing.** Resolutions are indexed by a *level* $\ell$: level 0 is $4\times4$, level $\ell$ is
# $4\cdot2^\ell$ pixels square. The generator $G$ is a stack of blocks; block $\ell$ doubles the resolution
# (nearest-neighbour upsampling, then two $3\times3$ convolutions), and a $1\times1$ convolution
# $\mathrm{toRGB}_\ell$ turns its features into an image. While block $\ell$ is new, its output is blended with
# the upsampled image of the level below,
#
# $$G_{\ell,\alpha}(z) = (1-\alpha)\,\mathrm{up}\big(\mathrm{toRGB}_{\ell-1}(h_{\ell-1})\big) + \alpha\,\mathrm{toRGB}_\ell(h_\ell),$$
#
# with $\alpha$ rising linearly from 0 to 1 over one *fade-in phase*; then the level trains with $\alpha = 1$
# for one *stabilization phase*. The discriminator $D$ mirrors this: $\mathrm{fromRGB}_\ell$ and a block that halves
# the resolution (two convolutions, then $2\times2$ average pooling), blended with
# $\mathrm{fromRGB}_{\ell-1}(\mathrm{down}(x))$. At $\alpha = 0$ the new block has no effect at all, so adding
# it does not disturb what the networks have learned. The real images are blended the same way — at level
# $\ell$ a real image is $(1-\alpha)\,\mathrm{up}(\mathrm{down}(x_\ell)) + \alpha\,x_\ell$ — so that real and
# generated images always have the same effective resolution.
#
# **Loss.** The paper uses WGAN-GP {cite}`gulrajani2017wgangp`: $D$ is a critic that outputs a score, not a
# probability, and a {term}`gradient penalty` keeps it close to 1-Lipschitz. The paper adds a small *drift* term that
# keeps the real scores from wandering away from zero:
#
# $$
# \begin{aligned}
# L_D &= \mathbb E_{z}[D(G(z))] - \mathbb E_x[D(x)]
#        + \lambda\,\mathbb E_{\hat x}\big[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2\big]
#        + \epsilon_{\text{drift}}\,\mathbb E_x[D(x)^2],\\
# L_G &= -\mathbb E_z[D(G(z))],
# \end{aligned}
# $$
#
# where $\hat x = x + u\,(G(z) - x)$ with $u \sim U(0, 1)$ per image, $\lambda = 10$ and
# $\epsilon_{\text{drift}} = 10^{-3}$; one critic step per generator step. The difference of the first two terms,
# $\mathbb E_x[D(x)] - \mathbb E_z[D(G(z))]$, is the critic's estimate of the Wasserstein distance between real
# and generated images; training records it with the penalty, $L_D$ and $L_G$.
#
# **Equalized learning rate.** Every weight is stored as $\hat w \sim \mathcal N(0, 1)$ and multiplied at run
# time by He's constant $c = \sqrt{2/\text{fan-in}}$: $w = c\,\hat w$. The forward pass is that of a He-initialised
# layer, but Adam's update of $\hat w$ is scale-free (it divides by the gradient's running RMS), so every layer
# effectively learns at the same speed, whatever its fan-in.
#
# **Pixelwise feature normalization.** After every convolution in $G$, each pixel's feature vector
# $a \in \mathbb R^C$ is rescaled to unit average square, $b = a / \sqrt{\tfrac1C \sum_j a_j^2 + 10^{-8}}$ —
# no learned parameters, and no batch statistics. It stops the generator's and critic's magnitudes from
# escalating against each other. The latent $z$ is normalized the same way (it then lies on a sphere).
#
# **Minibatch standard deviation.** In $D$'s last block, the batch is split into groups of 4; for every
# feature and pixel the standard deviation over the group is computed, averaged to one number per group, and
# appended as one extra constant feature map. A critic that sees how varied a group is can penalize a
# generator whose samples all look alike — a parameter-free cure for mode collapse.
#
# **Generator averaging.** Samples are drawn from an exponential moving average of $G$'s weights (0.999 per
# step at batch 16 in the paper), not from the latest weights, which oscillate. The paper's decay is a
# half-life of about 11k images, under 2% of one of its 600k-image phases. Our phases are only a few thousand
# images long, and an average that slow would still be mostly made of the previous level's weights when a
# phase ends, so we keep the average's half-life a small fraction of a phase instead (the configuration cell's
# `ema_half_life_images`; the paper's value in `full`). This is reasoning, not a measurement; the exercises at
# the end of the page say how to try the paper's value.

# %% [markdown]
# ## The layers
#
# Everything the paper changes inside a layer: equalized-learning-rate convolutions and dense layers,
# pixel normalization, minibatch standard deviation, and the resampling operators.

# %%
class EqualizedConv2d(nn.Module):
    """A convolution with weights stored as N(0, 1), scaled by gain / sqrt(fan_in) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


class EqualizedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x, epsilon=1e-8):
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + epsilon)


def minibatch_stddev(x, group_size=STDDEV_GROUP):
    """Append one feature map: the features' standard deviation over a group, averaged to a number.

    As in the official code, image i belongs to group i mod (N / group_size), and the variance is
    the population variance over the group.
    """
    n, c, h, w = x.shape
    group = min(group_size, n)
    if n % group:
        raise ValueError(f"batch size {n} must be a multiple of the group size {group}")
    y = x.view(group, -1, c, h, w)
    y = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(1e-8).sqrt()   # (N / group, C, H, W)
    y = y.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(group, 1, h, w)
    return torch.cat([x, y], dim=1)


def leaky(x):
    return F.leaky_relu(x, LEAK)


def upsample(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x):
    return F.avg_pool2d(x, 2)


# %% [markdown]
# ## The networks
#
# Both networks are built for the final resolution from the start; `level` and `alpha` only choose how
# much of them a forward pass uses. Channel counts halve with each doubling of the resolution, capped:
# $\min(\text{fmap\_base}/2^{\ell+1}, \text{fmap\_max})$, the paper's rule with smaller constants (`full` uses
# the official code's, 8192 and 512: 512 channels up to $32\times32$, 256 at $64\times64$). The
# generator starts with a dense layer from $z$ to a $4\times4$ feature map (gain $\sqrt2/4$, as in the
# official code), the critic ends with minibatch stddev, a $3\times3$ convolution and two dense layers.
# The images have no output nonlinearity: $G$ produces values near $[-1, 1]$, the range of the real images.

# %%
def channels(level: int) -> int:
    return min(config.fmap_base // 2 ** (level + 1), config.fmap_max)


def conv_pair(first_in: int, first_out: int, second_out: int) -> nn.ModuleList:
    """Two 3×3 equalized convolutions: one block of G or D."""
    return nn.ModuleList([EqualizedConv2d(first_in, first_out, 3),
                          EqualizedConv2d(first_out, second_out, 3)])


class Generator(nn.Module):
    def __init__(self, top_level: int = TOP_LEVEL, latent_dim: int = LATENT_DIM):
        super().__init__()
        width = [channels(level) for level in range(top_level + 1)]
        self.width = width
        self.dense = EqualizedLinear(latent_dim, width[0] * 16, gain=math.sqrt(2) / 4)
        self.conv = EqualizedConv2d(width[0], width[0], 3)
        self.blocks = nn.ModuleList(conv_pair(width[level - 1], width[level], width[level])
                                    for level in range(1, top_level + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(w, 3, 1, gain=1) for w in width)

    def forward(self, z, level: int, alpha: float = 1.0):
        h = pixel_norm(leaky(self.dense(pixel_norm(z)).view(-1, self.width[0], 4, 4)))
        h = pixel_norm(leaky(self.conv(h)))
        previous = h
        for first, second in self.blocks[:level]:
            previous = h
            h = pixel_norm(leaky(first(upsample(h))))
            h = pixel_norm(leaky(second(h)))
        image = self.to_rgb[level](h)
        if level > 0 and alpha < 1:   # fade-in: blend with the upsampled image of the level below
            image = torch.lerp(upsample(self.to_rgb[level - 1](previous)), image, alpha)
        return image


class Critic(nn.Module):
    def __init__(self, top_level: int = TOP_LEVEL):
        super().__init__()
        width = [channels(level) for level in range(top_level + 1)]
        self.from_rgb = nn.ModuleList(EqualizedConv2d(3, w, 1) for w in width)
        self.blocks = nn.ModuleList(conv_pair(width[level], width[level], width[level - 1])
                                    for level in range(1, top_level + 1))
        self.conv = EqualizedConv2d(width[0] + 1, width[0], 3)   # + 1: the minibatch-stddev map
        self.dense = EqualizedLinear(width[0] * 16, width[0])
        self.score = EqualizedLinear(width[0], 1, gain=1)

    def forward(self, image, level: int, alpha: float = 1.0):
        h = leaky(self.from_rgb[level](image))
        for block_level in range(level, 0, -1):
            first, second = self.blocks[block_level - 1]
            h = downsample(leaky(second(leaky(first(h)))))
            if block_level == level and alpha < 1:   # fade-in: blend with the coarser image's
                h = torch.lerp(leaky(self.from_rgb[level - 1](downsample(image))), h, alpha)
        h = leaky(self.conv(minibatch_stddev(h)))
        return self.score(leaky(self.dense(h.flatten(1))))


def sample_latents(n: int) -> torch.Tensor:
    return torch.randn(n, LATENT_DIM, device=device)

# %% [markdown]
# ## Sanity checks that training cannot change
#
# The claims above, checked on untrained networks (pass/fail only, so the test suite compares them with the
# stored outputs):
# - at $\alpha = 0$ a new level changes nothing: $G_{\ell,0}(z) = \mathrm{up}(G_{\ell-1,1}(z))$ and
#   $D_{\ell,0}(x) = D_{\ell-1,1}(\mathrm{down}(x))$, exactly;
# - minibatch stddev adds exactly one channel, and it equals the group statistic computed by hand;
# - equalized-learning-rate weights are stored as $\mathcal N(0, 1)$ and scaled by
#   $\sqrt{2/\text{fan-in}}$, so a layer's output has the variance of a He-initialised one;
# - pixel normalization gives every pixel a feature vector of unit mean square.

# %%
# NBVAL_CHECK_OUTPUT
def verdict(ok) -> str:
    return "pass" if ok else "FAIL"


torch.manual_seed(1)
CHECK_TOP_LEVEL = 3   # networks up to 32×32 in every profile: this cell prints the same everywhere
check_g, check_d = Generator(CHECK_TOP_LEVEL).to(device), Critic(CHECK_TOP_LEVEL).to(device)
z_check = sample_latents(8)
with torch.no_grad():
    for level in range(1, CHECK_TOP_LEVEL + 1):
        size = 4 * 2 ** level
        same_g = torch.equal(check_g(z_check, level, 0.0),
                             upsample(check_g(z_check, level - 1, 1.0)))
        x_check = torch.randn(8, 3, size, size, device=device)
        same_d = torch.equal(check_d(x_check, level, 0.0),
                             check_d(downsample(x_check), level - 1, 1.0))
        moved_g = not torch.equal(check_g(z_check, level, 0.5), check_g(z_check, level, 0.0))
        print(f"{size}×{size}: α = 0 leaves G unchanged: {verdict(same_g)}; leaves D unchanged: "
              f"{verdict(same_d)}; α = 0.5 changes G: {verdict(moved_g)}")

    features = torch.randn(8, 5, 4, 4, device=device)
    with_stddev = minibatch_stddev(features)
    by_hand = torch.stack([features[[i, i + 2, i + 4, i + 6]].std(dim=0, unbiased=False).mean()
                           for i in (0, 1)])
    print(f"minibatch stddev: {tuple(features.shape)} → {tuple(with_stddev.shape)}, "
          f"one channel added: "
          f"{verdict(with_stddev.shape[1] == features.shape[1] + 1)}")
    print(f"minibatch stddev equals the group statistic computed by hand: "
          f"{verdict(torch.allclose(with_stddev[:2, -1, 0, 0], by_hand, atol=1e-5))}")

    layer = EqualizedConv2d(256, 256, 3)
    stored = layer.weight
    output = layer(torch.randn(64, 256, 8, 8))[..., 1:-1, 1:-1]   # interior pixels: no zero padding
    print(f"equalized lr: stored weights ~ N(0, 1): "
          f"{verdict(abs(stored.mean()) < 0.01 and abs(stored.std() - 1) < 0.01)}; run-time scale "
          f"sqrt(2 / fan_in): {verdict(math.isclose(layer.scale, math.sqrt(2 / (256 * 9))))}")
    print(f"equalized lr: output variance 2 × input variance (He): "
          f"{verdict(abs(output.var().item() - 2) < 0.1)}")
    normalized = pixel_norm(torch.randn(4, 16, 5, 5) * 7)
    unit = torch.allclose(normalized.pow(2).mean(dim=1), torch.ones(4, 5, 5), atol=1e-4)
    print(f"pixel norm: unit mean square per pixel: {verdict(unit)}")

# %%
def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


print(f"at {config.resolution}×{config.resolution}: G {count(Generator()):,} parameters, "
      f"D {count(Critic()):,} parameters; channels per level: "
      f"{[channels(level) for level in range(TOP_LEVEL + 1)]}")

# %% [markdown]
# ## Data: procedural shapes with known attributes
#
# Real attribute datasets (CelebA and the like) cannot be downloaded here, so the page trains on images from
# this project's procedural generator: one shape (circle, square, triangle) in one of six colours, filled or
# outlined, at a random size, angle and position, on one of three backgrounds — 108 combinations of the four
# categorical attributes, all equally likely. Because the generator knows every image's attributes, a small
# classifier trained on fresh renders (`icu.shapes_classifier`) can tell us what a GAN generates: its features
# serve for a Fréchet distance, its predictions for the generated attribute distribution.
#
# The training images are rendered once at the final resolution and scaled to $[-1, 1]$. Lower levels see
# them average-pooled, as the paper's training loop does. Here is one batch at every level:

# %%
train_images, _ = icu.shapes_dataset(config.train_images, config.resolution, seed=SEED)
train_images = train_images * 2 - 1
test_images, _ = icu.shapes_dataset(config.eval_samples, config.resolution, seed=SEED + 1)
# Batches of the largest size; a level with a smaller batch size uses the first rows.
train_batches = icu.TensorBatches(train_images, batch_size=max(config.batch_sizes.values()),
                                  seed=SEED, device=device)
print(f"{len(train_images):,} training and {len(test_images):,} held-out images, "
      f"3×{config.resolution}×{config.resolution}")


def real_images_at(images, level: int, alpha: float = 1.0):
    """Real images as the critic sees them at (level, alpha): pooled, and blended in a fade-in."""
    x = F.avg_pool2d(images, 2 ** (TOP_LEVEL - level)) if level < TOP_LEVEL else images
    if level > 0 and alpha < 1:
        x = torch.lerp(upsample(downsample(x)), x, alpha)
    return x


def to_unit_range(images):
    return ((images + 1) / 2).clamp(0, 1)


# %%
rows = math.ceil((TOP_LEVEL + 1) / 2)
fig, axes = plt.subplots(rows, 2, figsize=(6.4, 3.2 * rows), squeeze=False)
for level, ax in enumerate(axes.flat):
    if level > TOP_LEVEL:
        ax.set_axis_off()
        continue
    images = to_unit_range(real_images_at(train_images[:16], level))
    size = 4 * 2 ** level
    icu.show_images(images, nrow=4, ax=ax, padding=1, title=f"level {level}: {size}×{size}")
plt.tight_layout()
plt.show()

# %% [markdown]
# At $4\times4$ a shape is a coloured smudge on a background colour — which is exactly what the first phase
# should learn: the joint distribution of colours and rough positions. Outlines and corners only become
# visible from $16\times16$ up.
#
# ## The growth schedule
#
# Training shows the networks the same number of images in every phase: a stabilization phase at $4\times4$,
# then for every new level a fade-in phase ($\alpha$ from 0 to 1) and a stabilization phase. The paper used
# 600k–800k images per phase; we use far fewer (the configuration cell says how many), so ours is the same
# schedule on a much shorter clock. The batch size may depend on the resolution: `book` uses 16 throughout,
# the paper's minibatch up to $128\times128$; `full` uses the official code's one-GPU preset (128 up to
# $16\times16$, then 64 and 32), where low-resolution phases take few, large, cheap steps.
#
# When a new level starts, Adam's moment estimates are reset, as in the official code: the new layers'
# gradients have a different scale. A run therefore has to know when a level is *new*. `Schedule` keeps the
# images shown and the level of the last step, and is saved in the checkpoint with the networks, so a resumed
# run continues the schedule where it stopped and still resets Adam at the next new level.

# %%
def growth_schedule(images_shown: int, images_per_phase: int, top_level: int) -> tuple[int, float]:
    """(level, alpha) after `images_shown` images: stabilize 4×4, then fade in, stabilize, ..."""
    if images_shown < images_per_phase:
        return 0, 1.0
    level = min(1 + (images_shown - images_per_phase) // (2 * images_per_phase), top_level)
    into_level = images_shown - images_per_phase - 2 * images_per_phase * (level - 1)
    return level, min(into_level / images_per_phase, 1.0)


def fixed_top_level(images_shown: int, images_per_phase: int, top_level: int) -> tuple[int, float]:
    """The baseline without growing: the final resolution from the first step."""
    return top_level, 1.0


class Schedule:
    """Where a run stands: images shown, and the level of the last step (-1 before the first)."""

    def __init__(self, levels, settings):
        self.levels, self.batch_sizes = levels, settings.batch_sizes
        self.images_per_phase = settings.images_per_phase
        self.top_level = int(math.log2(settings.resolution // 4))
        self.images, self.level = 0, -1

    def now(self) -> tuple[int, float]:
        return self.levels(self.images, self.images_per_phase, self.top_level)

    def advance(self) -> tuple[int, float, int, bool]:
        """The next step's level, alpha and batch size, and whether it starts a new level."""
        level, alpha = self.now()
        new_level = self.level >= 0 and level != self.level
        self.level = level
        size = self.batch_sizes[4 * 2 ** level]
        self.images += size
        return level, alpha, size, new_level

    def state_dict(self):
        return {"images": self.images, "level": self.level}

    def load_state_dict(self, state):
        self.images, self.level = int(state["images"]), int(state["level"])


def plan(levels, settings, total_images: int, stop_after: int | None = None) -> list[tuple]:
    """Every step of a run: (images shown before it, level, alpha, batch size, new level).
    With `stop_after`, the run stops after that many steps and goes on from its schedule saved and
    loaded as a checkpoint does."""
    schedule, steps = Schedule(levels, settings), []
    while schedule.images < total_images:
        if len(steps) == stop_after:
            buffer = io.BytesIO()
            torch.save(schedule.state_dict(), buffer)
            buffer.seek(0)
            schedule = Schedule(levels, settings)
            schedule.load_state_dict(torch.load(buffer))
        before = schedule.images
        steps.append((before, *schedule.advance()))
    return steps

# %% [markdown]
# The schedule is checked on the plans of all three profiles, `full` included: every new level must reset
# Adam exactly once, at its first step. The reference is computed independently of `Schedule`: level
# $\ell \ge 1$ starts at the first step taken after $(2\ell - 1)$ phases of images. The last number shows that
# the check can tell a wrong rule: a stateless rule that compares the level after $n$ images with the level
# after $n - 1$ misses every level that does not start on a batch boundary — in `full`, where 600,000 is not a
# multiple of the batch size 128, most of them. The last line stops this profile's run just before each new level,
# saves the schedule as a checkpoint does and goes on from the loaded copy: unless the level survives the
# checkpoint, the resumed run skips that reset.

# %%
# NBVAL_CHECK_OUTPUT
for profile in icu.PROFILES:
    settings = icu.pick_config(**SETTINGS, profile=profile)
    phase, top = settings.images_per_phase, int(math.log2(settings.resolution // 4))
    steps = plan(growth_schedule, settings, phase * (1 + 2 * top))
    resets = [i for i, (_, _, _, _, new_level) in enumerate(steps) if new_level]
    expected = [next(i for i, step in enumerate(steps) if step[0] >= (2 * level - 1) * phase)
                for level in range(1, top + 1)]
    level_of = [growth_schedule(images, phase, top)[0] for images, *_ in steps]
    stateless = [i for i, (images, *_) in enumerate(steps)
                 if images > 0 and level_of[i] != growth_schedule(images - 1, phase, top)[0]]
    print(f"{profile}: {len(steps):,} steps, levels 1 to {top} are new; "
          f"one Adam reset at the first step of each: {verdict(resets == expected)}")
    print(f"    the stateless rule level(n) ≠ level(n − 1) resets at "
          f"{len(set(stateless) & set(expected))} of the {top}")

# A run resumed from a checkpoint just before a new level must still reset Adam there.
growing_images = config.images_per_phase * (1 + 2 * TOP_LEVEL)
this_plan = plan(growth_schedule, config, growing_images)
starts = [i for i, step in enumerate(this_plan) if step[4]]
resumed_same = all(plan(growth_schedule, config, growing_images, stop_after=i) == this_plan
                   for i in starts)
print(f"stopped before each new level and resumed from a checkpoint: the same plan, resets "
      f"included: {verdict(resumed_same)}")

# %% [markdown]
# The effective resolution over the growing run of this profile (level $-1 + \alpha$ while a level fades in):

# %%
GROWING_IMAGES = config.images_per_phase * (1 + 2 * TOP_LEVEL)
growing_plan = plan(growth_schedule, config, GROWING_IMAGES)
plan_images, plan_levels, plan_alphas = (np.array([s[i] for s in growing_plan]) for i in range(3))
level_starts = [i for i, step in enumerate(growing_plan) if step[4]]   # steps starting a level
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(plan_images, np.where(plan_levels == 0, 0, plan_levels - 1 + plan_alphas))
ax.set_xlabel("training images shown")
ax.set_yticks(range(TOP_LEVEL + 1), [f"{4 * 2 ** lv}×{4 * 2 ** lv}" for lv in range(TOP_LEVEL + 1)])
ax.grid(alpha=0.3)
ax.set_title(f"effective resolution over training: {config.images_per_phase:,} images per phase, "
             f"{len(growing_plan):,} steps")
plt.show()

# %% [markdown]
# ## Training
#
# The losses first, as in the equations above. In the gradient penalty the interpolation weight is called
# `mix`: a common bug in reimplementations is to call it `alpha` and overwrite the fade-in weight. After every
# generator step the averaged generator moves towards the current one, with a decay per step chosen so that
# old weights halve every `ema_half_life_images` images, whatever the batch size.

# %%
def critic_loss(critic, real, fake, level: int, alpha: float):
    """L_D of WGAN-GP with the drift term, and the Wasserstein estimate and penalty it contains."""
    real_scores, fake_scores = critic(real, level, alpha), critic(fake, level, alpha)
    mix = torch.rand(len(real), 1, 1, 1, device=real.device)   # not `alpha`: the fade-in weight
    between = torch.lerp(real, fake, mix).requires_grad_(True)
    scores = critic(between, level, alpha).sum()
    (gradient,) = torch.autograd.grad(scores, between, create_graph=True)
    penalty = (gradient.flatten(1).norm(dim=1) - 1).pow(2).mean()
    wasserstein = real_scores.mean() - fake_scores.mean()
    loss = -wasserstein + GP_WEIGHT * penalty + DRIFT_WEIGHT * real_scores.pow(2).mean()
    return loss, wasserstein, penalty


def generator_loss(critic, fake, level: int, alpha: float):
    return -critic(fake, level, alpha).mean()


def adam(module):
    return torch.optim.Adam(module.parameters(), lr=LEARNING_RATE, betas=BETAS, eps=EPSILON)


def update_average(average, generator, images: int):
    decay = 0.5 ** (images / config.ema_half_life_images)
    with torch.no_grad():
        for averaged, current in zip(average.parameters(), generator.parameters()):
            averaged.lerp_(current, 1 - decay)

# %% [markdown]
# One critic step and one generator step per batch, both at the schedule's current `(level, alpha)`, with
# Adam's moments reset at the first step of a new level. `make_training` builds everything a run needs; its
# `state` (networks, averaged generator, optimizers and the schedule) is what the checkpoint holds.

# %%
def make_training(levels, seed: int = SEED):
    """G, D, the averaged G, their optimizers, a `levels` schedule, and the step training them."""
    torch.manual_seed(seed)
    generator, critic = Generator().to(device), Critic().to(device)
    average = copy.deepcopy(generator).requires_grad_(False)
    optimizer_g, optimizer_c = adam(generator), adam(critic)
    schedule = Schedule(levels, config)
    frame_latents = sample_latents(32)   # fixed latents for the growth animation

    def train_step(batch):
        level, alpha, size, new_level = schedule.advance()
        if new_level:   # the new layers' gradients have another scale: forget Adam's moments
            optimizer_g.state.clear()
            optimizer_c.state.clear()
        real = real_images_at(batch[:size], level, alpha)
        fake = generator(sample_latents(size), level, alpha).detach()
        loss_c, wasserstein, penalty = critic_loss(critic, real, fake, level, alpha)
        optimizer_c.zero_grad(set_to_none=True)
        loss_c.backward()
        optimizer_c.step()
        loss_g = generator_loss(critic, generator(sample_latents(size), level, alpha), level, alpha)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        update_average(average, generator, size)
        return {"wasserstein": wasserstein, "penalty": penalty, "L_D": loss_c, "L_G": loss_g}

    state = dict(generator=generator, critic=critic, average=average, optimizer_g=optimizer_g,
                 optimizer_c=optimizer_c, schedule=schedule)
    return SimpleNamespace(generator=generator, critic=critic, average=average, schedule=schedule,
                           frame_latents=frame_latents, train_step=train_step, state=state)


TRAINING_CODE = [EqualizedConv2d, EqualizedLinear, pixel_norm, minibatch_stddev, leaky, upsample,
                 downsample, channels, conv_pair, Generator, Critic, sample_latents, real_images_at,
                 Schedule, critic_loss, generator_loss, adam, update_average, make_training]

# %% [markdown]
# The growing run. Every `FRAME_EVERY` steps (a few times per phase), `icu.fit` calls `growth_frame`, which
# renders the averaged generator on fixed latents at the schedule's current level and $\alpha$; the frames are
# kept with the run's history and checkpoint, for the animation and the figures below.

# %%
FRAME_EVERY = max(1, config.images_per_phase
                    // (config.frames_per_phase * max(config.batch_sizes.values())))


def growth_frame(step):
    """The averaged G on the fixed latents where the schedule stands (8-bit, its level's size)."""
    level, alpha = growing.schedule.now()
    with torch.no_grad():
        images = to_unit_range(growing.average(growing.frame_latents, level, alpha))
    return {"images": growing.schedule.images, "level": level, "alpha": alpha,
            "frame": (images * 255).round().to(torch.uint8).cpu()}


growing = make_training(growth_schedule)
growing_history = icu.fit(growing.train_step, train_batches, steps=len(growing_plan),
                          state=growing.state, run="pggan/growing", config=config,
                          code=[*TRAINING_CODE, growth_schedule, growth_frame],
                          every={FRAME_EVERY: growth_frame}, description="PG-GAN, growing")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
icu.plot_history(growing_history, keys=["wasserstein"], window=50, ax=axes[0],
                 ylabel="E D(x) − E D(G(z))", title="Wasserstein estimate (training batches)")
icu.plot_history(growing_history, keys=["penalty"], window=50, ax=axes[1],
                 ylabel="E (‖∇D‖ − 1)²", title="gradient penalty")
for ax in axes:
    for step in level_starts:
        ax.axvline(step, color="0.5", lw=0.8, ls=":")
plt.tight_layout()
plt.show()

# %% [markdown]
# The dotted lines mark the start of each new level. The Wasserstein estimate — how far apart the critic
# finds real and generated images — is expected to jump when a level starts (the critic can suddenly see finer
# detail that the generator does not yet produce) and to shrink again as the generator catches up; in the
# stored run it swings sharply at every dotted line. The estimates at different levels are not comparable
# with each other: the critic is judging different images.
#
# ## The baseline: the same networks without growing
#
# The paper's Table 1 compares configurations that share everything but one ingredient. Here the baseline is
# the same generator, critic, loss, tricks, optimizer and data, trained at the final resolution from the first
# step — `fixed_top_level` instead of `growth_schedule`. Growing is cheap: most of its steps run at low
# resolutions. We give the baseline the **same wall-clock budget** rather than the same number of images,
# the comparison of the paper's Figure 4 (quality against training time). Its number of images is fixed in
# the configuration cell — chosen from throughputs measured on the 2-core CPU so that the two runs take about
# the same time — and both runs' summaries print their wall time, so the budget can be checked on any machine.

# %%
baseline_plan = plan(fixed_top_level, config, config.baseline_images)
baseline = make_training(fixed_top_level)
baseline_history = icu.fit(baseline.train_step, train_batches, steps=len(baseline_plan),
                           state=baseline.state, run="pggan/no-growing", config=config,
                           code=[*TRAINING_CODE, fixed_top_level],
                           description=f"no growing, {config.resolution}×{config.resolution}")

# %% [markdown]
# ## Results
#
# ### Growing, as it happened
# The same 16 latent vectors, rendered by the averaged generator a few times per phase (lower resolutions
# shown enlarged, pixel for pixel). Watch the colours and layout of each sample from one level to the next:
# growing is meant to settle the coarse structure early and only refine it later.

# %%
frame_steps, frames = growing_history.recorded("growth_frame")


def enlarged(frame, count: int = 16):
    """The first `count` images of a recorded frame in [0, 1], enlarged to the final resolution."""
    images = frame["frame"][:count].float() / 255
    return F.interpolate(images, size=config.resolution, mode="nearest")


icu.show_animation([icu.image_grid(enlarged(frame), nrow=8) for frame in frames],
                   icu.output_dir("pggan") / "growing.gif", fps=3, scale=2)

# %% [markdown]
# ### Samples at every resolution
# One row per level: the last frame recorded while the level was fading in with $\alpha \le 0.5$ (left), and
# the last frame recorded at that level (right), each shown at the resolution it was generated at.

# %%
def last_frame(level: int, alpha_at_most: float = 1.0):
    """The last recorded frame at `level` with alpha at most `alpha_at_most` (None if none)."""
    found = [f for f in frames if f["level"] == level and f["alpha"] <= alpha_at_most]
    return found[-1] if found else None


fig, axes = plt.subplots(TOP_LEVEL + 1, 2, figsize=(6.4, 3.3 * (TOP_LEVEL + 1)), squeeze=False)
for level, row in enumerate(axes):
    size = 4 * 2 ** level
    for ax, alpha_at_most, what in zip(row, (0.5, 1.0), ("fading in", "last frame")):
        frame = last_frame(level, alpha_at_most) if level > 0 or alpha_at_most == 1.0 else None
        if frame is None:
            ax.set_axis_off()
            continue
        title = f"{size}×{size}, {what}\n{frame['images']:,} images, α = {frame['alpha']:.2f}"
        icu.show_images(frame["frame"][:16].float() / 255, nrow=4, ax=ax, padding=1, title=title)
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for, level by level: at $4\times4$ the generator can only have the palette and a rough
# layout; at $8\times8$ the backgrounds settle and a darker or coloured centre appears; from $16\times16$ on a
# coloured shape should sit on the background, and at $32\times32$ outlines (the outline style) become
# possible. Whether a sample keeps the background and rough colour it had at the coarser level is the point
# of growing: decisions made at low resolution are refined, not redone.
#
# ### Final samples
# Top left, held-out real images; then the averaged generator of the growing run, its latest weights, and the
# averaged generator of the baseline. All from the same latent vectors.

# %% tags=["landing-figure"] landing_crop=[0.51, 0.036, 0.986, 0.336]
torch.manual_seed(3)
final_latents = sample_latents(36)
generators = {"growing, averaged G": growing.average, "growing, latest G": growing.generator,
              "no growing, averaged G": baseline.average}
with torch.no_grad():
    panels = {"held-out real images": test_images[:36]}
    for title, generator in generators.items():
        panels[title] = to_unit_range(generator(final_latents, TOP_LEVEL)).cpu()
fig, axes = plt.subplots(2, 2, figsize=(8.4, 9))
for ax, (title, images) in zip(axes.flat, panels.items()):
    icu.show_images(images, nrow=6, ax=ax, padding=1, title=title)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Measured: Fréchet distance and attribute distribution
#
# The reference classifier of shapes (`icu.shapes_classifier`, trained on its own 20,000 renders at this
# resolution; its held-out accuracy is printed below) gives two measurements of a set of generated images:
#
# - **FID (shapes-classifier features)**: the Fréchet distance between Gaussians fitted to the classifier's
#   128-d features of generated and of held-out real images. Like FID, lower is better and 0 means identical
#   statistics; unlike FID it uses our classifier's features, not Inception's, so its values are not
#   comparable with published FIDs.
# - **Attribute distribution**: the classifier's verdict on every generated image gives a histogram per
#   attribute; the truth is uniform. We report the total variation distance (TV) from uniform (0: the right
#   proportions; near 1: one class only), its mean over the four attributes, the number of the 108 attribute
#   combinations that appear at least a quarter as often as they should, and the classifier's mean
#   confidence (low on images it cannot read).

# %%
classifier = icu.shapes_classifier(config.resolution, device)
print("reference classifier, held-out accuracy: "
      + ", ".join(f"{name} {accuracy:.1%}" for name, accuracy in classifier.test_accuracy.items()))
test_features, _ = icu.classify_attributes(classifier, test_images)
attribute_sizes = {name: len(values) for name, values in icu.ATTRIBUTE_VALUES.items()}
combinations = math.prod(attribute_sizes.values())


@torch.no_grad()
def generate(generator, n: int, seed: int = 4):
    torch.manual_seed(seed)
    return torch.cat([to_unit_range(generator(sample_latents(min(500, n - start)), TOP_LEVEL)).cpu()
                      for start in range(0, n, 500)])


def evaluate(images):
    features, probabilities = icu.classify_attributes(classifier, images)
    predicted = {name: p.argmax(-1) for name, p in probabilities.items()}
    histograms = {name: torch.bincount(predicted[name], minlength=size) / len(images)
                  for name, size in attribute_sizes.items()}
    total_variation = {name: 0.5 * (histograms[name] - 1 / size).abs().sum().item()
                       for name, size in attribute_sizes.items()}
    combination_index = torch.zeros(len(images), dtype=torch.long)
    for name, size in attribute_sizes.items():
        combination_index = combination_index * size + predicted[name]
    counts = torch.bincount(combination_index, minlength=combinations)
    confidence = np.mean([p.max(-1).values.mean().item() for p in probabilities.values()])
    return dict(fid=icu.frechet_distance(features, test_features), total_variation=total_variation,
                mean_total_variation=float(np.mean(list(total_variation.values()))),
                covered=int((counts >= 0.25 * len(images) / combinations).sum()),
                confidence=float(confidence),
                histograms={name: h.numpy() for name, h in histograms.items()})

# %%
torch.manual_seed(SEED)
untrained_generator = Generator().to(device).eval()
samples = {
    "training images (floor)": to_unit_range(train_images[:config.eval_samples]).cpu(),
    "growing, averaged G": generate(growing.average, config.eval_samples),
    "growing, latest G": generate(growing.generator, config.eval_samples),
    "no growing, averaged G": generate(baseline.average, config.eval_samples),
    "no growing, latest G": generate(baseline.generator, config.eval_samples),
    "untrained G": generate(untrained_generator, config.eval_samples),
}
results = {name: evaluate(images) for name, images in samples.items()}
icu.show_table(
    ["images", "FID (shapes-clf)", "mean TV", "TV shape / colour / background / style",
     "combinations", "confidence"],
    [[name, round(r["fid"], 2), f"{r['mean_total_variation']:.3f}",
      " / ".join(f"{value:.2f}" for value in r["total_variation"].values()),
      f"{r['covered']}/{combinations}", f"{r['confidence']:.3f}"] for name, r in results.items()])
print(f"{config.eval_samples:,} images per row, each set against {config.eval_samples:,} held-out "
      f"real images; {config.train_images:,} training images")

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
shown_rows = ["growing, averaged G", "no growing, averaged G"]
for ax, (name, size) in zip(axes.flat, attribute_sizes.items()):
    positions = np.arange(size)
    ax.axhline(1 / size, color="k", lw=1, ls="--", label="truth (uniform)")
    for offset, row in zip((-0.2, 0.2), shown_rows):
        ax.bar(positions + offset, results[row]["histograms"][name], width=0.4, label=row)
    ax.set_xticks(positions, icu.ATTRIBUTE_VALUES[name], rotation=30, fontsize=9)
    ax.set_title(name)
    ax.set_ylabel("share of generated images")
fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9)
plt.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# How to read the table. The first row is the floor: real training images measured against other real
# images — what a perfect generator would score with this many samples. The untrained generator is the
# ceiling. Between them, compare the growing run with the baseline at the same wall-clock budget, and the
# averaged generator with the latest weights. The attribute columns are the classifier's verdict on every
# image, also on images it was never trained to read: a multicoloured blob has to be called *some* shape and
# colour, so part of the skew in the bar chart measures how unlike a real shape the samples still are, not
# only which attributes the generator prefers.
#
# The same wall-clock budget, read from the two runs:

# %%
def images_at_top(steps) -> int:
    return sum(size for _, level, _, size, _ in steps if level == TOP_LEVEL)


fid_growing = results["growing, averaged G"]["fid"]
fid_fixed = results["no growing, averaged G"]["fid"]
top = f"{config.resolution}×{config.resolution}"
print(f"growing: {growing_history.wall_time:,.0f} s, {growing.schedule.images:,} images, of which "
      f"{images_at_top(growing_plan):,} at {top} (fade-in included)")
print(f"no growing: {baseline_history.wall_time:,.0f} s, {baseline.schedule.images:,} images, "
      f"all at {top}")
print(f"FID (shapes-classifier features) of the averaged G: growing {fid_growing:.1f}, "
      f"no growing {fid_fixed:.1f}")
print(f"lower: {'growing' if fid_growing < fid_fixed else 'the baseline without growing'}")

# %% [markdown]
# **What the stored `book` run says.** Neither run draws clean shapes with corners: the backgrounds and the
# proportions of backgrounds and styles come out close to right, the shapes are blobs and rings with coloured
# fringes, and both runs stay far from the floor. The lines above say which of the two reached the lower FID
# (shapes-classifier features) at the same wall-clock budget; in the stored run it is the baseline, trained at
# $32\times32$ from the start, and we report that as measured. Two reasons, both about scale. First, growing
# buys speed by spending most images at low resolution — it sees more images in the same time — but only its
# last two phases (a fade-in and one stabilization) run at the top level, fewer images there than the
# baseline spends at $32\times32$: at this budget the top level is simply under-trained. Second, the problem
# growing solves is that a high-resolution GAN trained from scratch is unstable and slow to find the
# large-scale structure; at $32\times32$, on images with plain backgrounds, direct training is already
# stable. The paper's evidence is at $128\times128$ and above (its Table 1 and Figure 4), with 600k–800k
# images per phase, and its headline results — a record unsupervised CIFAR-10 inception score of 8.80 and
# $1024\times1024$ CelebA-HQ faces — come from days of GPU training. The `full` profile ($64\times64$, the
# paper's phase lengths) is the place to test the claim; what this page shows is the mechanism, and that at
# small scale it is not free.
#
# The headline numbers of this run, also written to `results/book/pggan.json` for the
# [results page](../../book/results.md):

# %%
floor, untrained = results["training images (floor)"], results["untrained G"]
result_rows = []
for key, name, history in [("fid_growing", "growing, averaged G", growing_history),
                           ("fid_no_growing", "no growing, averaged G", baseline_history)]:
    result = results[name]
    result_rows.append(dict(
        key=key, metric=f"FID (shapes-classifier features), {name}", value=round(result["fid"], 2),
        steps=len(history.steps), wall_time_s=round(history.wall_time),
        note=(f"{result['covered']}/{combinations} attribute combinations covered; training images "
              f"give {floor['fid']:.2f}, the untrained G {untrained['fid']:.0f}; "
              f"not comparable with Inception FIDs")))
result_rows[0]["paper"] = "none comparable (its CIFAR-10 result is an inception score, 8.80)"
icu.record_results(
    "pggan", result_rows,
    defaults=dict(device=icu.describe_device(device),
                  data=(f"{config.eval_samples:,} generated vs {config.eval_samples:,} held-out "
                        f"procedural shape images, {config.resolution}x{config.resolution}")))

# %% [markdown]
# ## Quality gates
# Each gate compares the growing run's averaged generator with what a generator that learned nothing scores:
# the untrained generator, measured above on the same latents and the same held-out images. Its FID
# (shapes-classifier features) must fall below a fraction of the untrained generator's, and its attribute
# proportions must be closer to uniform: mean total variation below a fraction of the untrained generator's
# (which, stuck on nearly one class per attribute, is close to the $2/3$ of a generator that always draws the
# same class). The fractions are in the configuration cell. In `smoke` (a few hundred steps at $8\times8$,
# too small for the classifier to read shapes well) the proportions are not yet better than the untrained
# generator's, so its attribute bound sits above the untrained value and only catches a collapse onto single
# classes; there the FID gate is the one an untrained generator fails. Whether growing beats the baseline is
# the experiment, reported above, not a gate.

# %%
gates, growing_result = config.gates, results["growing, averaged G"]
print(f"growing, averaged G vs the untrained G: FID (shapes-classifier features) "
      f"{growing_result['fid']:.2f} vs {untrained['fid']:.2f}")
print(f"mean total variation from uniform: {growing_result['mean_total_variation']:.3f} vs "
      f"{untrained['mean_total_variation']:.3f}")
assert growing_result["fid"] < gates.fid_fraction * untrained["fid"], (
    f"FID (shapes-classifier features) {growing_result['fid']:.2f} is not below "
    f"{gates.fid_fraction} × the untrained generator's {untrained['fid']:.2f}")
assert growing_result["mean_total_variation"] < (
    gates.total_variation_fraction * untrained["mean_total_variation"]), (
    f"the attribute proportions are {growing_result['mean_total_variation']:.3f} from uniform "
    f"(mean total variation), not below {gates.total_variation_fraction} × the untrained G's "
    f"{untrained['mean_total_variation']:.3f} (mode collapse?)")
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - Progressive growing trains the easy, coarse problem first and adds resolution one level at a time; a
#   linear fade-in ($\alpha$: 0 → 1) of every new layer, in $G$, in $D$ and in the real images, makes each
#   addition a smooth change rather than a shock. Most steps run at low resolution, so growing is also cheap.
# - The paper's other contributions are small and local: minibatch standard deviation (one extra feature
#   map that lets the critic see variety), equalized learning rate ($\mathcal N(0, 1)$ weights scaled at run
#   time), pixel normalization in $G$, and a moving average of $G$'s weights for sampling. The loss is
#   WGAN-GP with a drift term.
# - A schedule that changes what a run does (here: resetting Adam at a new level) is state: it belongs in the
#   checkpoint, and a rule recomputed from the image count alone can silently skip the change.
# - At $32\times32$ on plain-background shapes and a few CPU minutes, growing is not free: compare growing
#   with direct training at the same wall-clock budget, as above, before assuming it helps.
#
# **Common pitfalls** (each seen in public reimplementations)
# - A fade-in schedule that jumps, or that fades in the first level (there is nothing to fade from at
#   $4\times4$: it only stabilizes).
# - Naming the gradient penalty's interpolation weight `alpha` and overwriting the fade-in $\alpha$.
# - Equalized learning rate that is silently missing: initializing weights with He's constant instead of
#   scaling at run time gives the same first forward pass, but not the same training.
# - A minibatch-stddev feature computed over the whole batch or per feature map instead of the grouped,
#   averaged statistic; or blending real images at a different $\alpha$ than the networks.
# - Sampling from the latest generator instead of the averaged one, then blaming the model for noisy samples.
#
# ## Try it yourself
#
# Each exercise changes one or two lines and retrains (a changed setting or function is a new run: `icu.fit`
# refuses the old checkpoint and says which file to delete).
#
# 1. Make the fade-in a jump: end `growth_schedule` with `return level, 1.0`. The new, random layers then
#    enter at full weight: expect the growth animation to jolt to noisy, discoloured samples at the first
#    frame of every new level, and the Wasserstein estimate to jump higher at the dotted lines.
# 2. Use the paper's averaging speed: `ema_half_life_images=11_000` in `book` (0.999 per step at batch 16).
#    The average then lags most of a 16,000-image phase: expect the fading-in panels of "Samples at every
#    resolution" to look more like the level below, and the averaged G's FID to fall behind the latest G's.
# 3. Switch off minibatch standard deviation: in `Critic.forward`, replace `minibatch_stddev(h)` by
#    `torch.cat([h, torch.zeros_like(h[:, :1])], dim=1)`. Watch the "combinations" column and the bar chart:
#    a critic that cannot see a group's variety leaves the generator freer to drop attribute combinations.
# 4. Halve the clock: `images_per_phase=8_000` and `baseline_images=30_000` in `book`. Both runs take about
#    half the time; the growing run's top level gets half as many images, and its samples at
#    $32\times32$ get blurrier.
# 5. Remove the gradient penalty: `GP_WEIGHT = 0.0`. Nothing then keeps the critic near 1-Lipschitz: expect
#    the Wasserstein estimate to grow by orders of magnitude and the samples to degrade, or `icu.fit` to stop
#    with an error that names the value that became infinite.
#
# **Further reading**: StyleGAN {cite}`karras2019stylegan` keeps the growing schedule, equalized learning
# rate and the minibatch-stddev layer, and replaces pixel norm by a style-based generator; StyleGAN2 drops
# growing for skip and residual architectures that learn coarse-to-fine on their own.
