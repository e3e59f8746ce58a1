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
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(resolution=8, fmap_base=128, fmap_max=32, batch_sizes={4: 16, 8: 16}, images_per_phase=4096,
               baseline_images=4096,
               train_images=2000, eval_samples=1000, frames_per_phase=2, ema_half_life_images=800,
               gate_fid_fraction=0.9, gate_mean_total_variation=0.6),
    book=dict(resolution=32, fmap_base=256, fmap_max=64, batch_sizes={4: 16, 8: 16, 16: 16, 32: 16},
              images_per_phase=16_000, baseline_images=60_000,
              train_images=20_000, eval_samples=4000, frames_per_phase=8, ema_half_life_images=1600,
              gate_fid_fraction=0.2, gate_mean_total_variation=0.2),
    full=dict(resolution=64, fmap_base=1024, fmap_max=256, batch_sizes={4: 128, 8: 128, 16: 128, 32: 64, 64: 32},
              images_per_phase=600_000, baseline_images=2_000_000,
              train_images=50_000, eval_samples=10_000, frames_per_phase=8,
              ema_half_life_images=10_000,
              gate_fid_fraction=0.05, gate_mean_total_variation=0.1),
)
# The paper's settings, the same in every profile.
LATENT_DIM = 128                 # the paper's CIFAR-10 configuration (512 for faces)
LEARNING_RATE, BETAS, EPSILON = 1e-3, (0.0, 0.99), 1e-8
GP_WEIGHT, DRIFT_WEIGHT = 10.0, 1e-3
LEAK = 0.2                       # LeakyReLU slope in both networks
STDDEV_GROUP = 4                 # minibatch standard deviation over groups of 4
SEED = 0

TOP_LEVEL = int(math.log2(config.resolution // 4))   # level 0 is 4×4, level TOP_LEVEL the final resolution
device = icu.pick_device()
icu.seed_everything(SEED)
print(config)
print(f"levels: {[4 * 2 ** level for level in range(TOP_LEVEL + 1)]}; device: {icu.describe_device(device)}")

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
# $$L_D = \mathbb E_{z}[D(G(z))] - \mathbb E_x[D(x)] + \lambda\,\mathbb E_{\hat x}\big[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2\big] + \epsilon_{\text{drift}}\,\mathbb E_x[D(x)^2],\qquad L_G = -\mathbb E_z[D(G(z))],$$
#
# where $\hat x = x + u\,(G(z) - x)$ with $u \sim U(0, 1)$ per image, $\lambda = 10$ and
# $\epsilon_{\text{drift}} = 10^{-3}$; one critic step per generator step.
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
# `ema_half_life_images`; the paper's value in `full`).

# %% [markdown]
# ## The layers
#
# Everything the paper changes inside a layer: equalized-learning-rate convolutions and dense layers,
# pixel normalization, minibatch standard deviation, and the resampling operators.

# %%
class EqualizedConv2d(nn.Module):
    """A convolution whose weights are stored as N(0, 1) and scaled by gain/sqrt(fan_in) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2)):
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
    """Append one feature map: the features' standard deviation over a group, averaged to one number.

    As in the official code, image i belongs to group i mod (N / group_size), and the variance is the
    population variance over the group.
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
# $\min(\text{fmap\_base}/2^{\ell+1}, \text{fmap\_max})$, the paper's rule with smaller constants. The
# generator starts with a dense layer from $z$ to a $4\times4$ feature map (gain $\sqrt2/4$, as in the
# official code), the critic ends with minibatch stddev, a $3\times3$ convolution and two dense layers. The
# images have no output nonlinearity: $G$ produces values near $[-1, 1]$, the range of the real images.

# %%
def channels(level: int) -> int:
    return min(config.fmap_base // 2 ** (level + 1), config.fmap_max)


class Generator(nn.Module):
    def __init__(self, top_level: int = TOP_LEVEL, latent_dim: int = LATENT_DIM):
        super().__init__()
        width = [channels(level) for level in range(top_level + 1)]
        self.width = width
        self.dense = EqualizedLinear(latent_dim, width[0] * 16, gain=math.sqrt(2) / 4)
        self.conv = EqualizedConv2d(width[0], width[0], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(width[level - 1], width[level], 3), EqualizedConv2d(width[level], width[level], 3)])
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
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(width[level], width[level], 3), EqualizedConv2d(width[level], width[level - 1], 3)])
            for level in range(1, top_level + 1))
        self.conv = EqualizedConv2d(width[0] + 1, width[0], 3)   # + 1: the minibatch-stddev map
        self.dense = EqualizedLinear(width[0] * 16, width[0])
        self.score = EqualizedLinear(width[0], 1, gain=1)

    def forward(self, image, level: int, alpha: float = 1.0):
        h = leaky(self.from_rgb[level](image))
        for block_level in range(level, 0, -1):
            first, second = self.blocks[block_level - 1]
            h = downsample(leaky(second(leaky(first(h)))))
            if block_level == level and alpha < 1:   # fade-in: blend with the coarser image's features
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
# - equalized-learning-rate weights are stored as $\mathcal N(0, 1)$ and scaled by $\sqrt{2/\text{fan-in}}$,
#   so a layer's output has the variance of a He-initialised one;
# - pixel normalization gives every pixel a feature vector of unit mean square.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
CHECK_TOP_LEVEL = 3   # networks up to 32×32 in every profile, so this cell prints the same everywhere
check_g, check_d = Generator(CHECK_TOP_LEVEL).to(device), Critic(CHECK_TOP_LEVEL).to(device)
z_check = sample_latents(8)
with torch.no_grad():
    for level in range(1, CHECK_TOP_LEVEL + 1):
        size = 4 * 2 ** level
        same_g = torch.equal(check_g(z_check, level, 0.0), upsample(check_g(z_check, level - 1, 1.0)))
        x_check = torch.randn(8, 3, size, size, device=device)
        same_d = torch.equal(check_d(x_check, level, 0.0), check_d(downsample(x_check), level - 1, 1.0))
        moved_g = not torch.equal(check_g(z_check, level, 0.5), check_g(z_check, level, 0.0))
        print(f"{size}×{size}: at alpha = 0 the new G block changes nothing: {'pass' if same_g else 'FAIL'}; "
              f"new D block changes nothing: {'pass' if same_d else 'FAIL'}; at alpha = 0.5 it does: "
              f"{'pass' if moved_g else 'FAIL'}")

    features = torch.randn(8, 5, 4, 4, device=device)
    with_stddev = minibatch_stddev(features)
    by_hand = torch.stack([features[[i, i + 2, i + 4, i + 6]].std(dim=0, unbiased=False).mean() for i in (0, 1)])
    print(f"minibatch stddev: {tuple(features.shape)} → {tuple(with_stddev.shape)}, one channel added: "
          f"{'pass' if with_stddev.shape[1] == features.shape[1] + 1 else 'FAIL'}; equals the group statistic: "
          f"{'pass' if torch.allclose(with_stddev[:2, -1, 0, 0], by_hand, atol=1e-5) else 'FAIL'}")

    layer = EqualizedConv2d(256, 256, 3)
    stored = layer.weight
    output = layer(torch.randn(64, 256, 8, 8))[..., 1:-1, 1:-1]   # interior pixels: no zero padding
    print(f"equalized lr: stored weights ~ N(0, 1): "
          f"{'pass' if abs(stored.mean()) < 0.01 and abs(stored.std() - 1) < 0.01 else 'FAIL'}; run-time scale "
          f"sqrt(2 / fan_in): {'pass' if math.isclose(layer.scale, math.sqrt(2 / (256 * 9))) else 'FAIL'}; "
          f"output variance 2 × input variance (He): {'pass' if abs(output.var().item() - 2) < 0.1 else 'FAIL'}")
    normalized = pixel_norm(torch.randn(4, 16, 5, 5) * 7)
    print(f"pixel norm: unit mean square per pixel: "
          f"{'pass' if torch.allclose(normalized.pow(2).mean(dim=1), torch.ones(4, 5, 5), atol=1e-4) else 'FAIL'}")

# %%
print(f"at {config.resolution}×{config.resolution}: G {sum(p.numel() for p in Generator().parameters()):,} parameters, "
      f"D {sum(p.numel() for p in Critic().parameters()):,} parameters; channels per level: "
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
train_images, train_attributes = icu.shapes_dataset(config.train_images, config.resolution, seed=SEED)
train_images = train_images * 2 - 1
test_images, test_attributes = icu.shapes_dataset(config.eval_samples, config.resolution, seed=SEED + 1)
# Batches of the largest size; a level with a smaller batch size uses the first rows.
train_batches = icu.TensorBatches(train_images, batch_size=max(config.batch_sizes.values()), seed=SEED, device=device)
print(f"{len(train_images):,} training and {len(test_images):,} held-out images, "
      f"3×{config.resolution}×{config.resolution}")


def real_images_at(images, level: int, alpha: float = 1.0):
    """Full-resolution real images as the critic sees them at (level, alpha): pooled, and blended while fading."""
    x = F.avg_pool2d(images, 2 ** (TOP_LEVEL - level)) if level < TOP_LEVEL else images
    if level > 0 and alpha < 1:
        x = torch.lerp(upsample(downsample(x)), x, alpha)
    return x


def to_unit_range(images):
    return ((images + 1) / 2).clamp(0, 1)


fig, axes = plt.subplots(1, TOP_LEVEL + 1, figsize=(3 * (TOP_LEVEL + 1), 3.3))
for level, ax in enumerate(axes):
    icu.show_images(to_unit_range(real_images_at(train_images[:16], level)), nrow=4, ax=ax, padding=1,
                    title=f"level {level}: {4 * 2 ** level}×{4 * 2 ** level}")
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
# the paper's minibatch up to $128\times128$; `full` uses the official code's one-GPU preset (128 up to $16\times16$, then 64
# and 32), where low-resolution phases take few, large, cheap steps. When a new level starts, Adam's moment
# estimates are reset, as in the official code: the new layers' gradients have a different scale.

# %%
def growth_schedule(images_shown: int) -> tuple[int, float]:
    """(level, alpha) after `images_shown` training images: stabilize 4×4, then fade in and stabilize each new level."""
    phase = config.images_per_phase
    if images_shown < phase:
        return 0, 1.0
    level = min(1 + (images_shown - phase) // (2 * phase), TOP_LEVEL)
    into_level = images_shown - phase - 2 * phase * (level - 1)
    return level, min(into_level / phase, 1.0)


def fixed_top_level(images_shown: int) -> tuple[int, float]:
    """The baseline without growing: the final resolution from the first step."""
    return TOP_LEVEL, 1.0


def batch_size(level: int) -> int:
    return config.batch_sizes[4 * 2 ** level]


def planned_steps(schedule, total_images: int) -> list[tuple[int, int, float]]:
    """(images shown before the step, level, alpha) for every training step of a run."""
    plan, images = [], 0
    while images < total_images:
        level, alpha = schedule(images)
        plan.append((images, level, alpha))
        images += batch_size(level)
    return plan


GROWING_IMAGES = config.images_per_phase * (1 + 2 * TOP_LEVEL)
growing_plan = planned_steps(growth_schedule, GROWING_IMAGES)
plan_images, plan_levels, plan_alphas = np.array(growing_plan).T
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(plan_images, np.where(plan_levels == 0, 0, plan_levels - 1 + plan_alphas))   # level − 1 + α while fading in
ax.set_xlabel("training images shown")
ax.set_yticks(range(TOP_LEVEL + 1), [f"{4 * 2 ** level}×{4 * 2 ** level}" for level in range(TOP_LEVEL + 1)])
ax.grid(alpha=0.3)
ax.set_title(f"effective resolution over training: {config.images_per_phase:,} images per phase, "
             f"{len(growing_plan):,} steps")
plt.show()

# %% [markdown]
# ## Training
#
# One critic step and one generator step per batch, both at the schedule's current `(level, alpha)`. In the
# gradient penalty the interpolation weight is called `mix`: a common bug in reimplementations is to call it
# `alpha` and overwrite the fade-in weight. After every generator step the averaged generator moves towards the
# current one. `Progress` counts the images shown (so a resumed run continues the schedule), resets the optimizers
# when a new level starts, and keeps sample grids from fixed latents for the growth animation; it is part of
# the checkpoint.

# %%
def adam(module):
    return torch.optim.Adam(module.parameters(), lr=LEARNING_RATE, betas=BETAS, eps=EPSILON)


class Progress:
    """Images shown (hence level and alpha), optimizer resets and sample frames; checkpointed."""

    def __init__(self, schedule, average, optimizers, frame_every_images: int, n_frames: int = 32):
        self.schedule, self.average, self.optimizers = schedule, average, optimizers
        self.frame_every_images = frame_every_images
        self.latents = sample_latents(n_frames)
        self.images, self.frames, self.frame_info = 0, [], []

    def current(self) -> tuple[int, float]:
        level, alpha = self.schedule(self.images)
        if self.images > 0 and level != self.schedule(self.images - 1)[0]:
            for optimizer in self.optimizers:   # a new level: forget Adam's moment estimates
                optimizer.state.clear()
        return level, alpha

    def after_step(self, level: int, alpha: float, shown: int):
        before, self.images = self.images, self.images + shown
        if before // self.frame_every_images != self.images // self.frame_every_images:
            with torch.no_grad():
                images = to_unit_range(self.average(self.latents, level, alpha))
            self.frames.append(F.interpolate(images, size=config.resolution, mode="nearest").cpu())
            self.frame_info.append((self.images, level, alpha))

    def state_dict(self):
        return {"latents": self.latents, "images": torch.tensor(self.images),
                "frame_info": torch.tensor(self.frame_info),
                "frames": torch.stack(self.frames) if self.frames else torch.zeros(0)}

    def load_state_dict(self, state):
        self.latents, self.images = state["latents"].to(device), int(state["images"])
        self.frame_info = [(int(n), int(level), float(a)) for n, level, a in state["frame_info"].tolist()]
        self.frames = list(state["frames"])


def make_training(schedule, frame_every_images: int, seed: int = SEED):
    torch.manual_seed(seed)
    generator, critic = Generator().to(device), Critic().to(device)
    average = copy.deepcopy(generator).requires_grad_(False)
    optimizer_g, optimizer_c = adam(generator), adam(critic)
    progress = Progress(schedule, average, [optimizer_g, optimizer_c], frame_every_images)

    def train_step(batch):
        level, alpha = progress.current()
        real = real_images_at(batch[:batch_size(level)], level, alpha)
        fake = generator(sample_latents(len(real)), level, alpha).detach()
        real_scores, fake_scores = critic(real, level, alpha), critic(fake, level, alpha)
        mix = torch.rand(len(real), 1, 1, 1, device=device)
        between = torch.lerp(real, fake, mix).requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(between, level, alpha).sum(), between, create_graph=True)
        penalty = (gradient.flatten(1).norm(dim=1) - 1).pow(2).mean()
        drift = real_scores.pow(2).mean()
        wasserstein = real_scores.mean() - fake_scores.mean()
        loss_c = -wasserstein + GP_WEIGHT * penalty + DRIFT_WEIGHT * drift
        optimizer_c.zero_grad(set_to_none=True)
        loss_c.backward()
        optimizer_c.step()

        loss_g = -critic(generator(sample_latents(len(real)), level, alpha), level, alpha).mean()
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        ema_decay = 0.5 ** (len(real) / config.ema_half_life_images)
        with torch.no_grad():
            for averaged, current in zip(average.parameters(), generator.parameters()):
                averaged.lerp_(current, 1 - ema_decay)
        progress.after_step(level, alpha, len(real))
        return {"loss": loss_c + loss_g, "wasserstein": wasserstein, "penalty": penalty, "level": level,
                "alpha": alpha}

    state = {"generator": generator, "critic": critic, "average": average, "optimizer_g": optimizer_g,
             "optimizer_c": optimizer_c, "progress": progress}
    return train_step, state


def train(name: str, schedule, total_images: int):
    train_step, state = make_training(schedule, config.images_per_phase // config.frames_per_phase)
    steps = len(planned_steps(schedule, total_images))
    settings = dict(run=name, resolution=config.resolution, fmap_base=config.fmap_base, fmap_max=config.fmap_max,
                    images_per_phase=config.images_per_phase, batch_sizes=str(config.batch_sizes),
                    train_images=config.train_images,
                    lr=LEARNING_RATE, ema_half_life_images=config.ema_half_life_images, seed=SEED)
    history = icu.fit(train_step, train_batches, steps=steps, state=state,
                      checkpoint=icu.checkpoint_dir() / "pggan" / f"{config.profile}-{name}.pt",
                      config=settings, description=name)
    return history, state


growing_history, growing = train("growing", growth_schedule, GROWING_IMAGES)

# %%
def level_starts(history):
    """Steps at which a new level started (fade-ins begin there)."""
    level = np.asarray(history["level"])
    return [history.steps[i] for i in np.flatnonzero(np.diff(level)) + 1]


fig, axes = plt.subplots(1, 2, figsize=(13, 3.5))
icu.plot_history(growing_history, keys=["wasserstein"], window=50, ax=axes[0], ylabel="E D(x) − E D(G(z))",
                 title="the critic's Wasserstein estimate (training batches)")
icu.plot_history(growing_history, keys=["penalty"], window=50, ax=axes[1], ylabel="E (‖∇D‖ − 1)²",
                 title="gradient penalty")
for ax in axes:
    for step in level_starts(growing_history):
        ax.axvline(step, color="0.5", lw=0.8, ls=":")
plt.tight_layout()
plt.show()
print(f"growing: {len(growing_history.steps):,} steps, {growing['progress'].images:,} images in "
      f"{growing_history.wall_time:.0f} s on {icu.describe_device(device)}")

# %% [markdown]
# The dotted lines mark the start of each new level. The Wasserstein estimate — how far apart the critic
# finds real and generated images — jumps when a level starts (the critic can suddenly see finer detail that
# the generator does not yet produce) and shrinks again as the generator catches up. The estimates at
# different levels are not comparable with each other: the critic is judging different images.
#
# ## The baseline: the same networks without growing
#
# The paper's Table 1 compares configurations that share everything but one ingredient. Here the baseline is
# the same generator, critic, loss, tricks, optimizer and data, trained at the final resolution from the first
# step — `fixed_top_level` instead of `growth_schedule`. Growing is cheap: most of its steps run at low
# resolutions. We give the baseline the **same wall-clock budget** rather than the same number of images,
# the comparison of the paper's Figure 4 (quality against training time). Its number of images is fixed in
# the configuration cell — chosen from throughputs measured on the 2-core CPU so that the two runs take about
# the same time — and both wall times are printed, so the budget can be checked on any machine.

# %%
baseline_history, baseline = train("no-growing", fixed_top_level, config.baseline_images)
print(f"no growing: {len(baseline_history.steps):,} steps, {baseline['progress'].images:,} images in "
      f"{baseline_history.wall_time:.0f} s on {icu.describe_device(device)}")

# %% [markdown]
# ## Results
#
# ### Growing, as it happened
# The same 32 latent vectors, rendered by the averaged generator several times per phase (lower resolutions
# shown enlarged, pixel for pixel). The first frames are coloured blobs at $4\times4$; each fade-in then
# sharpens them, and the samples keep their colours and layout from one level to the next — the coarse
# structure is settled early and only refined later.

# %%
progress = growing["progress"]
icu.show_animation([icu.image_grid(frame, nrow=8) for frame in progress.frames],
                   icu.output_dir("pggan") / "growing.gif", fps=4, scale=2)

# %% [markdown]
# ### Samples at every resolution
# The last frame of each level's stabilization phase (and, between them, the middle of each fade-in):

# %%
def last_frame(level: int, alpha_below: float = 1.01):
    """Index of the last frame recorded at `level` with alpha below `alpha_below`."""
    found = [i for i, (_, l, a) in enumerate(progress.frame_info) if l == level and a < alpha_below]
    return found[-1]


shown = []
for level in range(TOP_LEVEL + 1):
    if level > 0:
        shown.append((last_frame(level, 0.51), f"fading in {4 * 2 ** level}×{4 * 2 ** level}"))
    shown.append((last_frame(level), f"{4 * 2 ** level}×{4 * 2 ** level}"))
fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3.0))
for ax, (index, title) in zip(axes, shown):
    shown_images, level, alpha = progress.frame_info[index]
    size = 4 * 2 ** level
    native = F.interpolate(progress.frames[index][:16], size=size, mode="area")   # the resolution it was made at
    icu.show_images(native, nrow=4, ax=ax, padding=1,
                    title=f"{title}\n{shown_images:,} images, α = {alpha:.2f}")
    ax.title.set_fontsize(9)
plt.tight_layout()
plt.show()

# %% [markdown]
# What the stored `book` run shows, level by level: at $4\times4$ the generator has the palette but no
# layout yet; at $8\times8$ most samples have settled on one of the three background colours, often with a
# darker or coloured centre; at $16\times16$ a coloured blob sits on the background; at $32\times32$ some
# blobs become rings — the outline style — and each sample keeps the background and rough colour it had at
# the coarser level. That persistence is the point of growing: decisions made at low resolution are refined,
# not redone.
#
# ### Final samples
# Left, held-out real images; then the averaged generator of the growing run, its latest weights, and the
# averaged generator of the baseline. All from the same latent vectors where the networks share them.

# %% tags=["landing-figure"]
torch.manual_seed(3)
final_latents = sample_latents(36)
with torch.no_grad():
    panels = [("held-out real images", test_images[:36]),
              ("growing, averaged G", to_unit_range(growing["average"](final_latents, TOP_LEVEL)).cpu()),
              ("growing, latest G", to_unit_range(growing["generator"](final_latents, TOP_LEVEL)).cpu()),
              ("no growing, averaged G", to_unit_range(baseline["average"](final_latents, TOP_LEVEL)).cpu())]
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for ax, (title, images) in zip(axes, panels):
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
#   attribute; the truth is uniform. We report the total variation distance from uniform (0: the right
#   proportions; near 1: one class only), the number of the 108 attribute combinations that appear at least
#   a quarter as often as they should, and the classifier's mean confidence (low on images it cannot read).

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
    total_variation = {name: 0.5 * (torch.bincount(predicted[name], minlength=size) / len(images) - 1 / size
                                    ).abs().sum().item() for name, size in attribute_sizes.items()}
    combination_index = torch.zeros(len(images), dtype=torch.long)
    for name, size in attribute_sizes.items():
        combination_index = combination_index * size + predicted[name]
    counts = torch.bincount(combination_index, minlength=combinations)
    covered = int((counts >= 0.25 * len(images) / combinations).sum())
    confidence = np.mean([p.max(-1).values.mean().item() for p in probabilities.values()])
    histograms = {name: (torch.bincount(predicted[name], minlength=size) / len(images)).numpy()
                  for name, size in attribute_sizes.items()}
    return dict(fid=icu.frechet_distance(features, test_features), total_variation=total_variation,
                covered=covered, confidence=confidence, histograms=histograms)


torch.manual_seed(SEED)
untrained_generator = Generator().to(device).eval()
rows = {
    "training images (floor)": (to_unit_range(train_images[:config.eval_samples]), None),
    "growing, averaged G": (generate(growing["average"], config.eval_samples), growing_history),
    "growing, latest G": (generate(growing["generator"], config.eval_samples), growing_history),
    "no growing, averaged G": (generate(baseline["average"], config.eval_samples), baseline_history),
    "no growing, latest G": (generate(baseline["generator"], config.eval_samples), baseline_history),
    "untrained G": (generate(untrained_generator, config.eval_samples), None),
}
results = {name: evaluate(images) for name, (images, _) in rows.items()}
header = f"{'':<26}{'FID (shapes-clf)':>17}" + "".join(f"{'TV ' + n:>14}" for n in attribute_sizes)
print(header + f"{'combinations':>14}{'confidence':>12}{'steps':>8}{'wall s':>8}")
for name, result in results.items():
    history = rows[name][1]
    print(f"{name:<26}{result['fid']:>17.2f}" + "".join(f"{result['total_variation'][n]:>14.3f}" for n in attribute_sizes)
          + f"{result['covered']:>10}/{combinations}{result['confidence']:>12.3f}"
          + (f"{len(history.steps):>8,}{history.wall_time:>8.0f}" if history else f"{'':>8}{'':>8}"))
print(f"\n{config.eval_samples:,} images per row, each against {config.eval_samples:,} held-out real images; "
      f"{config.train_images:,} training images; device {icu.describe_device(device)}")

# %%
fig, axes = plt.subplots(1, len(attribute_sizes), figsize=(16, 3.2), gridspec_kw=dict(width_ratios=list(attribute_sizes.values())))
shown_rows = ["growing, averaged G", "no growing, averaged G"]
for ax, (name, size) in zip(axes, attribute_sizes.items()):
    positions = np.arange(size)
    ax.axhline(1 / size, color="k", lw=1, ls="--", label="truth (uniform)")
    for offset, row in zip((-0.2, 0.2), shown_rows):
        ax.bar(positions + offset, results[row]["histograms"][name], width=0.4, label=row)
    ax.set_xticks(positions, icu.ATTRIBUTE_VALUES[name], rotation=30, fontsize=8)
    ax.set_title(name)
axes[0].set_ylabel("share of generated images")
axes[-1].legend(fontsize=8, loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read the table. The first row is the floor: real training images measured against other real
# images — what a perfect generator would score with this many samples. The untrained generator is the
# ceiling. Between them, compare the growing run with the baseline at the same wall-clock budget, and the
# averaged generator with the latest weights. The attribute columns are the classifier's verdict on every
# image, also on images it was never trained to read: a multicoloured blob has to be called *some* shape and
# colour, so part of the skew in the bar chart (too many "triangles", too many "purple" shapes) measures how
# unlike a real shape the samples still are, not only which attributes the generator prefers.
#
# **What the stored `book` run says.** Both runs are far from the floor, and neither draws clean shapes with
# corners: the backgrounds and the proportions of backgrounds and styles are right, the shapes are blobs and
# rings with coloured fringes. At the same wall-clock budget, the baseline trained at $32\times32$ from the
# start reached the *lower* FID (shapes-classifier features). We report that as measured. Two reasons, both
# about scale. First, growing buys speed by spending most images at low resolution — here it saw nearly twice
# as many images in the same time — but its last level got only two phases (a fade-in and one stabilization
# of 16,000 images each), about half the steps the baseline spent at $32\times32$; at this budget the top
# level is simply under-trained. Second, the problem growing solves is that a high-resolution GAN trained
# from scratch is unstable and slow to find the large-scale structure; at $32\times32$, on images with plain
# backgrounds, direct training is already stable. The paper's evidence is at $128\times128$ and above
# (its Table 1 and Figure 4), with 600k–800k images per phase, and its headline results — a record
# unsupervised CIFAR-10 inception score of 8.80 and $1024\times1024$ CelebA-HQ faces — come from days of GPU
# training. The `full` profile ($64\times64$, the paper's phase lengths) is the place to test the claim; what
# this page shows is the mechanism, and that at small scale it is not free.

# %% [markdown]
# The headline numbers of this run, also written to `results/book/pggan.json` for the
# [results page](../../book/results.md):

# %%
run_device = icu.describe_device(device)
scored = (f"{config.eval_samples:,} generated vs {config.eval_samples:,} held-out procedural shape images, "
          f"{config.resolution}x{config.resolution}")
result_rows = []
for name, run_history in [("growing, averaged G", growing_history), ("no growing, averaged G", baseline_history)]:
    result = results[name]
    result_rows.append(dict(
        metric=f"FID (shapes-classifier features), {name}", value=round(result["fid"], 2), data=scored,
        steps=len(run_history.steps), wall_time_s=round(run_history.wall_time), device=run_device, paper=None,
        note=(f"{result['covered']}/{combinations} attribute combinations covered; training images give "
              f"{results['training images (floor)']['fid']:.2f}; not comparable with Inception FIDs")))
icu.record_results("pggan", result_rows)

# %% [markdown]
# ## Quality gates
# Thresholds an untrained or collapsed generator fails: the growing run's averaged generator must bring the
# FID (shapes-classifier features) below a fraction of the untrained generator's, and its attribute
# proportions must be near uniform (total variation from uniform, averaged over the four attributes, below
# the profile's bound; a generator stuck on one class per attribute scores 0.667 — in `smoke`, whose
# $8\times8$ images are too small to show a shape, the bound only catches such a collapse). Whether
# growing beats the baseline is the experiment, reported above, not a gate.

# %%
growing_result, untrained_result = results["growing, averaged G"], results["untrained G"]
assert math.isfinite(growing_result["fid"])
assert growing_result["fid"] < config.gate_fid_fraction * untrained_result["fid"], (
    f"FID (shapes-classifier features) {growing_result['fid']:.2f} is not below {config.gate_fid_fraction} × the "
    f"untrained generator's {untrained_result['fid']:.2f}")
mean_total_variation = np.mean(list(growing_result["total_variation"].values()))
assert mean_total_variation < config.gate_mean_total_variation, (
    f"the attribute distributions are {mean_total_variation:.3f} from uniform in total variation, on average "
    f"(mode collapse?); the gate is {config.gate_mean_total_variation} (one class per attribute would give "
    f"{np.mean([1 - 1 / n for n in attribute_sizes.values()]):.3f})")
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
# **Further reading**: StyleGAN {cite}`karras2019stylegan` keeps the growing schedule, equalized learning
# rate and the minibatch-stddev layer, and replaces pixel norm by a style-based generator; StyleGAN2 drops
# growing for skip and residual architectures that learn coarse-to-fine on their own.
