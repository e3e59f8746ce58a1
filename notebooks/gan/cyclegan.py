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
# # CycleGAN: unpaired image-to-image translation
#
# | **Paper** | *Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks* — Jun-Yan Zhu, Taesung Park, Phillip Isola, Alexei A. Efros, 2017 ([arXiv 1703.10593](https://arxiv.org/abs/1703.10593)) {cite}`zhu2017cyclegan` |
# | --- | --- |
# | **Family** | [GAN family](../../book/gan-family.md) |
# | **Trains here** | two generators and two discriminators that turn filled shapes into outlined shapes and back, learned from unpaired images, then scored against the exact ground truth; ablations without the cycle loss, without the identity loss and with the paper's instance normalization; CPU minutes |
#
# **The idea in three sentences.** To translate images from a domain $X$ (horses) to a domain $Y$ (zebras)
# without a single example pair, train a generator $G: X \to Y$ against a discriminator that tells its
# outputs from real $Y$ images, and a second generator $F: Y \to X$ the same way. Adversarial losses alone
# only ask that $G(x)$ look like *some* zebra, not like *this* horse, so CycleGAN adds a *{term}`cycle-consistency <cycle consistency>`*
# loss: translating there and back must return the input, $F(G(x)) \approx x$ and $G(F(y)) \approx y$. That
# one constraint makes the two maps near-inverses of each other, which forces them to keep the content of
# the image and change only what differs between the domains.

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
import os
import random
import textwrap
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(resolution=16, train_images=400, test_images=200, steps=100, batch_size=8,
               generator_width=8, downsamplings=1, residual_blocks=2, discriminator_width=8,
               dataset="shapes"),
    book=dict(resolution=32, train_images=5000, test_images=1000, steps=3000, batch_size=8,
              generator_width=16, downsamplings=1, residual_blocks=4, discriminator_width=16,
              dataset="shapes"),
    full=dict(resolution=256, train_images=10_000, test_images=1000, steps=266_800, batch_size=1,
              generator_width=64, downsamplings=2, residual_blocks=9, discriminator_width=64,
              dataset=os.environ.get("ITEMCHEST_CYCLEGAN_DATASET", "horse2zebra")),
    # Each gate compares the full model with models that learned nothing (the quality-gate section).
    gates=dict(
        smoke=dict(mse_fraction=dict(ab=0.9, ba=2.0), changed_fraction=dict(ab=0.7, ba=None),
                   cycle_fraction=0.5, style_margin=dict(ab=0.5, ba=None), shape_margin=None,
                   colour_margin=None, background_margin=0.3),
        book=dict(mse_fraction=0.8, changed_fraction=0.8, cycle_fraction=0.25, style_margin=0.5,
                  shape_margin=0.05, colour_margin=0.5, background_margin=0.3),
        full=dict(mse_fraction=0.7, changed_fraction=0.7, cycle_fraction=0.25, style_margin=0.6,
                  shape_margin=0.2, colour_margin=0.6, background_margin=0.4)),
)
# The paper's settings, the same in every profile.
CYCLE_WEIGHT = 10.0                       # λ
IDENTITY_WEIGHT = 0.5 * CYCLE_WEIGHT      # 0.5 λ
LEARNING_RATE, BETAS = 2e-4, (0.5, 0.999)
POOL_SIZE = 50                            # the history of generated images the discriminators see
DECAY_FROM = 0.5                          # constant for half the run, then linear to 0
SEED = 0

device = icu.pick_device()
icu.seed_everything(SEED)
print(f"device: {icu.describe_device(device)}")
config

# %% [markdown]
# ## The idea in math
#
# Two domains $X$ and $Y$, samples $x \sim p_X$ and $y \sim p_Y$, never paired. Two generators
# $G: X \to Y$ and $F: Y \to X$, two discriminators: $D_Y$ tells real $y$ from $G(x)$, $D_X$ tells
# real $x$ from $F(y)$.
#
# **Adversarial loss, {term}`least-squares <least-squares GAN>` form.** The paper replaces the
# log-likelihood GAN loss by the least-squares one of LSGAN {cite}`mao2017lsgan`, which trains more stably
# and gives higher-quality results:
#
# $$\mathcal L_{\text{GAN}}(G, D_Y) = \mathbb E_{y}\big[(D_Y(y) - 1)^2\big] + \mathbb E_{x}\big[D_Y(G(x))^2\big],$$
#
# which $D_Y$ minimises; $G$ minimises $\mathbb E_x\big[(D_Y(G(x)) - 1)^2\big]$ instead (the
# non-saturating form). The discriminator's loss is halved in the paper's code, which slows $D$ relative
# to $G$. Likewise for $F$ and $D_X$.
#
# **Cycle consistency.** With the $L_1$ norm,
#
# $$\mathcal L_{\text{cyc}}(G, F) = \mathbb E_x\big[\lVert F(G(x)) - x\rVert_1\big]
#   + \mathbb E_y\big[\lVert G(F(y)) - y\rVert_1\big].$$
#
# **Identity loss.** For tasks where colours must be kept, the paper adds (Section 5.2)
# $\mathcal L_{\text{id}} = \mathbb E_y\big[\lVert G(y) - y\rVert_1\big] + \mathbb E_x\big[\lVert F(x) - x\rVert_1\big]$:
# a generator given an image that is already in its target domain should leave it alone. Without it the
# generators are free to swap colours around consistently (the cycle would still close).
#
# **The full objective**, minimised by $G, F$ and maximised by $D_X, D_Y$:
#
# $$\begin{aligned}
# \mathcal L ={}& \mathcal L_{\text{GAN}}(G, D_Y) + \mathcal L_{\text{GAN}}(F, D_X) \\
#   &+ \lambda\,\mathcal L_{\text{cyc}}(G, F) + 0.5\,\lambda\,\mathcal L_{\text{id}}(G, F),
#   \qquad \lambda = 10.
# \end{aligned}$$
#
# **Two training details** from the paper's Section 4: the discriminators are updated on a *history* of
# generated images rather than only the latest ones (a buffer of 50, after Shrivastava et al.
# {cite}`shrivastava2017simgan`), which stops $G$ and $D$ from chasing each other around; and Adam's
# learning rate (2e-4, $\beta_1 = 0.5$) is constant for the first half of training and decays linearly to
# zero over the second half.
#
# Here $X$ is called domain A and $Y$ domain B, as in the paper's code: `G_AB` is $G$, `G_BA` is $F$.

# %% [markdown]
# ## Data: two unpaired domains with a hidden ground truth
#
# Domain A holds filled shapes, domain B outlined shapes; everything else — shape (circle, square,
# triangle), colour (six), background (three), size, angle and position — is random. The two training
# sets are drawn from *different* seeds, so no image in A has its counterpart in B: the model sees only two
# unrelated piles of images, as with horses and zebras.
#
# Unlike horses and zebras, every held-out test scene is rendered in *both* styles, so each translation
# can be compared with the exact image it should be. That is what makes the numbers below possible: the
# error of a translation against its ground truth, and a shape classifier's verdict on what it kept.
#
# **Real photographs (`full`).** The `full` profile trains on horse2zebra at the paper's 256×256, with its
# generator (9 residual blocks), instance normalization, 200 epochs of 1,334 steps at batch size 1, and its
# augmentation: each photograph resized to 286×286, then a random 256×256 crop and a random horizontal flip
# per step. Unpack the dataset's zip from `https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip`
# into the data folder (`ITEMCHEST_DATA`), so that `horse2zebra/trainA` holds the horse photographs; without
# it the loader stops with an error that says exactly this. `ITEMCHEST_CYCLEGAN_DATASET` names another of the
# official datasets, or `shapes` for this page's shapes at `full` size. Real datasets have no ground truth, so
# then only the pictures and the cycle error are reported. The discriminator stays this page's three-layer
# PatchGAN (below), where the paper's has four layers and a 70×70 receptive field.
#
# **Batches.** `icu.UnpairedBatches` draws one batch from each domain per step, each from its own
# shuffled order, so the $i$-th image of an A batch has nothing to do with the $i$-th of the B batch.
# The batch holds 8 images in `smoke` and `book`, not the paper's 1: 3,000 steps of one image would show
# the model 3,000 images, fewer than one pass over domain A, while batches of 8 show it each training
# image about five times in CPU minutes. The `full` profile uses the paper's batch of 1. With per-image
# normalization (below), the batch size changes no statistic inside the networks, only how many images
# each gradient averages over; its effect on the result is not measured on this page.

# %%
if config.dataset == "shapes":
    domains = icu.unpaired_domains(config.train_images, config.resolution, "style", "filled",
                                   "outline", seed=0)
    test = icu.paired_test_set(config.test_images, config.resolution, "style", "filled", "outline",
                               seed=1000)
    train_a, train_b = domains.images_a, domains.images_b
    test_a, test_b = test.images_a, test.images_b
    has_truth = True
else:
    real = icu.load_unpaired_folders(config.dataset, round(config.resolution * 286 / 256))
    print(real)
    train_a, train_b = real.train_a, real.train_b
    count = min(len(real.test_a), len(real.test_b), config.test_images)
    test_a, test_b = real.test_a[:count], real.test_b[:count]
    has_truth = False


def to_model(images):   # both domains on [-1, 1], the range of the generators' tanh output
    return images * 2 - 1


def to_unit(images):
    return ((images + 1) / 2).clamp(0, 1)


class RandomCropFlip:
    """The paper's augmentation of photographs: a random crop to `size` (one per batch: per image
    at the paper's batch of 1) and a random horizontal flip per image, drawn from a generator seeded
    by the step, so a resumed run sees the batches an uninterrupted one saw."""

    def __init__(self, batches, size: int, seed: int):
        self.batches, self.size, self.seed = batches, size, seed
        self.batch_size = batches.batch_size

    def augment(self, images, generator):
        room = images.shape[-1] - self.size + 1
        top, left = torch.randint(0, room, (2,), generator=generator).tolist()
        images = images[..., top:top + self.size, left:left + self.size]
        flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
        return torch.where(flip[:, None, None, None], images.flip(-1), images)

    def batch(self, step: int):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return tuple(self.augment(images, generator) for images in self.batches.batch(step))


batches = icu.UnpairedBatches(to_model(train_a), to_model(train_b), batch_size=config.batch_size,
                              seed=SEED, device=device)
if not has_truth:
    batches = RandomCropFlip(batches, config.resolution, seed=SEED)
    test_a, test_b = (nn.functional.interpolate(images, size=config.resolution, mode="bicubic",
                                                align_corners=False).clamp(0, 1)
                      for images in (test_a, test_b))
print(f"{len(train_a):,} training images in A and {len(train_b):,} in B, {len(test_a):,} held-out "
      f"test images per domain, 3×{config.resolution}×{config.resolution}; "
      f"ground truth for the test images: {has_truth}")

# %%
fig, axes = plt.subplots(1, 3 if has_truth else 2, figsize=(10 if has_truth else 7, 3.8))
icu.show_images(train_a[:16], nrow=4, ax=axes[0], padding=1, title="training images, A")
icu.show_images(train_b[:16], nrow=4, ax=axes[1], padding=1,
                title="training images, B\n(unrelated)")
if has_truth:
    icu.show_images(torch.stack([test_a[:8], test_b[:8]], 1).flatten(0, 1), nrow=4, ax=axes[2],
                    padding=1, title="test scenes:\nA and its true B")
plt.tight_layout()
plt.show()

# %% [markdown]
# The translation is not a pixel-local change: going from filled to outlined, the interior of the shape
# must become background; going back, the interior must be filled with the colour of the outline — up to
# ten pixels away from it on a $32\times32$ image. A generator needs a receptive field that spans the
# shape, and has to keep the shape, its colour, the background, size, angle and position.
#
# ## The networks
#
# **Generator** (the paper's appendix, after Johnson et al. {cite}`johnson2016perceptual`): a $7\times7$
# convolution, stride-2 convolutions that halve the resolution, a stack of residual blocks at the lowest
# resolution, as many stride-2 transposed convolutions back up, and a $7\times7$ convolution to RGB with
# tanh. In the paper's notation, `c7s1-64, d128, d256, R256 ×9, u128, u64, c7s1-3` for $256\times256$
# images: two halvings, so the residual blocks work at $64\times64$. Ours keeps the layout with fewer
# channels and blocks (the configuration cell) and, at $32\times32$, **one** halving, so the residual
# blocks work at $16\times16$ (the checks below print it). With the paper's two, the blocks would work at
# $8\times8$, where a one-pixel outline falls between grid points; we expect that to blur the outlines,
# but that run is not shown on this page (the first exercise at the end is to try it). Reflection padding
# avoids border artefacts; every convolution but the last is followed by a normalization layer and ReLU.
#
# **Discriminator**: a *{term}`PatchGAN`* (from pix2pix {cite}`isola2017pix2pix`): a fully convolutional
# network whose output is a grid of scores, each judging one patch of the image, averaged in the loss. The
# paper's `C64-C128-C256-C512` ($4\times4$ kernels, three of them with stride 2) judges $70\times70$
# patches of a $256\times256$ image. Ours has two stride-2 layers and widths `C16-C32-C64` in `book`: a
# $6\times6$ grid of scores on a $32\times32$ image, each from a $34\times34$ window of convolutions
# (computed below) — at this size every score sees most of the image, so the "patches" are large; what
# stays is a dense grid of overlapping judgements rather than one score per image. LeakyReLU 0.2, no
# normalization on the first layer.
#
# **Weights** start from $\mathcal N(0, 0.02)$, as in the paper's code.
#
# **Normalization.** The paper uses instance normalization {cite}`ulyanov2016instance` (each feature map
# of each image normalized to zero mean and unit variance over its pixels). On photographs that works
# well. On our flat-coloured images it removes the very information the translation must keep: adding a
# constant colour to an image adds a constant to each feature map of the first convolution, and
# normalizing each map over its own pixels removes exactly that constant. A generator with instance
# normalization therefore returns the *same* output for an image and for the image with any constant
# colour added; it can tell where the edges are, not which colours meet there. The checks below confirm
# this on this page's generator. We therefore use **layer normalization** {cite}`ba2016layer`
# (`nn.GroupNorm(1, C)`): also per image and with no batch statistics, but one mean and variance over all
# channels and pixels together, so the differences between channels — the colours — survive. `NORM`
# below selects it for the shapes; `"instance"` gives the paper's choice, which photographs get, and one of
# the runs below trains with it, so the two can be compared on the same budget.

# %%
NORM = "layer" if config.dataset == "shapes" else "instance"


def normalization(channels: int, kind: str) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"unknown normalization {kind!r}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), normalization(channels, norm),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), normalization(channels, norm))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, width: int, blocks: int, downsamplings: int, norm: str = NORM):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), normalization(width, norm),
                  nn.ReLU(True)]                                                  # c7s1-w
        channels = width
        for _ in range(downsamplings):                                           # d2w, d4w, ...
            layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
                       normalization(2 * channels, norm), nn.ReLU(True)]
            channels *= 2
        layers += [ResidualBlock(channels, norm) for _ in range(blocks)]        # R × blocks
        for _ in range(downsamplings):                                           # ..., u2w, uw
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1,
                                          output_padding=1),
                       normalization(channels // 2, norm), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7), nn.Tanh()]     # c7s1-3
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


# %%
class PatchDiscriminator(nn.Module):
    """C(w)-C(2w) with stride 2, then C(4w) and a 1-channel score map with stride 1; 4×4 kernels."""

    def __init__(self, width: int, norm: str = NORM):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), normalization(2 * w, norm),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, stride=1, padding=1), normalization(4 * w, norm),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 1, 4, stride=1, padding=1))

    def forward(self, x):
        return self.net(x)


def initialize(module: nn.Module) -> nn.Module:
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.GroupNorm):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
    return module


# %% [markdown]
# ## Losses, the {term}`history buffer` and the learning-rate schedule
#
# The losses are the equations above, term by term. The image pool follows the paper's code: until it
# holds 50 images it stores every generated image and returns it unchanged; afterwards each new image is,
# with probability ½, swapped with a random stored one (the stored one goes to the discriminator, the new
# one stays in the pool), else returned as it is. So about half of what the discriminator sees as "fake"
# comes from earlier generators.

# %%
def lsgan_loss(scores: torch.Tensor, target: float) -> torch.Tensor:
    return (scores - target).pow(2).mean()


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


class ImagePool:
    def __init__(self, size: int = POOL_SIZE, seed: int = SEED):
        self.size, self.images = size, []
        self.random = random.Random(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif self.random.random() < 0.5:
                index = self.random.randrange(self.size)
                returned.append(self.images[index])
                self.images[index] = image
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self):
        return {"images": torch.stack(self.images) if self.images else torch.zeros(0),
                "random": torch.tensor(self.random.getstate()[1], dtype=torch.int64)}

    def load_state_dict(self, state):
        self.images = list(state["images"].to(device))
        self.random.setstate((3, tuple(int(v) for v in state["random"].tolist()), None))


def learning_rate_factor(step: int, steps: int) -> float:
    """1 for the first DECAY_FROM of training, then linearly down to 0 at the last step."""
    start = int(DECAY_FROM * steps)
    return 1.0 if step < start else 1.0 - (step - start) / (steps - start)


# %% [markdown]
# ## Sanity checks that training cannot change
#
# Checked on untrained networks and on the helpers, with fixed sizes so that every profile prints the
# same (pass/fail only, compared with the stored output by the test suite):
# - the generator maps a $32\times32$ image to a $32\times32$ image in $[-1, 1]$, and its residual blocks
#   (read from the first block's input) work at $16\times16$; the discriminator returns a grid of patch
#   scores, and its convolutions give each score a window of the input (the normalization layers add
#   image-wide statistics on top);
# - the LSGAN losses are zero exactly at their targets;
# - the image pool returns its first 50 images unchanged, then swaps about half of the rest for stored
#   ones, and only ever returns images it was given;
# - the learning rate is constant for the first half and reaches zero at the end;
# - this page's generator built with instance normalization returns the same output when a constant
#   colour is added to its input; built with layer normalization, it does not (the reason for the change
#   above).

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
check_g, check_d = initialize(ResnetGenerator(8, 2, 1)), initialize(PatchDiscriminator(8))
x_check = torch.rand(4, 3, 32, 32) * 2 - 1
seen = []
first_block = next(m for m in check_g.modules() if isinstance(m, ResidualBlock))
hook = first_block.register_forward_hook(lambda block, inputs, out: seen.append(inputs[0].shape))
with torch.no_grad():
    out = check_g(x_check)
hook.remove()
print(f"generator: {tuple(x_check.shape)} → {tuple(out.shape)}, in [-1, 1]: "
      f"{'pass' if out.abs().max() <= 1 else 'FAIL'}; residual blocks at {tuple(seen[0][-2:])}")
window, jump = 1, 1   # the receptive field of one score through the convolutions, layer by layer
for layer in check_d.net:
    if isinstance(layer, nn.Conv2d):
        window, jump = window + (layer.kernel_size[0] - 1) * jump, jump * layer.stride[0]
print(f"discriminator: {tuple(x_check.shape)} → {tuple(check_d(x_check).shape)} patch scores; "
      f"each score's convolutional window: {window}×{window} pixels")
at_targets = lsgan_loss(torch.ones(5), 1) == 0 == lsgan_loss(torch.zeros(5), 0)
print(f"LSGAN loss at its targets: {'pass' if at_targets else 'FAIL'}; "
      f"(0.5 - 1)² = {lsgan_loss(torch.full((5,), 0.5), 1).item():.2f}")

# %%
# NBVAL_CHECK_OUTPUT
pool = ImagePool(seed=3)
given = torch.arange(200.0).view(200, 1, 1, 1)
first = pool(given[:50])
later = torch.cat([pool(given[i:i + 10]) for i in range(50, 200, 10)])
swapped = (later.flatten() != given[50:].flatten()).float().mean().item()
unchanged = torch.equal(first, given[:50])
print(f"image pool: first 50 returned unchanged: {'pass' if unchanged else 'FAIL'};"
      f" later ones swapped for stored ones about half the time: "
      f"{'pass' if 0.35 < swapped < 0.65 else 'FAIL'}")
print("image pool returns only images it was given: "
      f"{'pass' if set(later.flatten().tolist()) <= set(range(200)) else 'FAIL'}")
factors = [learning_rate_factor(step, 1000) for step in range(1000)]
linear = np.allclose(np.diff(factors[500:]), -1 / 500) and learning_rate_factor(1000, 1000) == 0
constant = all(f == 1 for f in factors[:500])
print(f"learning rate: constant for the first half: {'pass' if constant else 'FAIL'}"
      f"; then linear, reaching 0 after the last step: {'pass' if linear else 'FAIL'}")

shift = torch.tensor([0.1, 0.4, -0.5]).view(1, 3, 1, 1)     # the same colour added to every pixel
responses = {}
for kind in ("instance", "layer"):
    torch.manual_seed(2)
    generator = initialize(ResnetGenerator(8, 2, 1, norm=kind)).eval()
    with torch.no_grad():
        responses[kind] = (generator(x_check + shift) - generator(x_check)).abs().max().item()
print(f"generator with instance norm blind to a constant colour: "
      f"{'pass' if responses['instance'] < 1e-4 else 'FAIL'}; "
      f"with layer norm it sees it: {'pass' if responses['layer'] > 1e-2 else 'FAIL'}")

# %%
def make_generator(norm: str = NORM) -> nn.Module:
    return initialize(ResnetGenerator(config.generator_width, config.residual_blocks,
                                      config.downsamplings, norm))


generator_parameters = sum(p.numel() for p in make_generator().parameters())
discriminator = PatchDiscriminator(config.discriminator_width)
discriminator_parameters = sum(p.numel() for p in discriminator.parameters())
print(f"each generator: {generator_parameters:,} parameters (width {config.generator_width}, "
      f"{config.downsamplings} stride-2 halving(s), {config.residual_blocks} residual blocks)")
print(f"each discriminator: {discriminator_parameters:,} parameters; normalization: {NORM}")

# %% [markdown]
# ## Training
#
# One step: update both generators on a batch from each domain (the discriminators' weights frozen, as
# in the paper's code), then update both discriminators on the same real images and on generated images
# drawn through the pools. `make_training` takes the two loss weights and the normalization, so the
# ablations below are the same code with one setting changed. Generators and discriminators have their
# own Adam optimizers, and a scheduler applies the constant-then-linear learning rate. The step returns
# the terms of the objective as the paper names them — the generators' adversarial loss, the cycle and
# identity losses (unweighted), each discriminator's loss — and the learning rate; there is no single
# "loss", because the generators and the discriminators minimise different things.

# %%
def make_training(cycle_weight: float, identity_weight: float, norm: str = NORM, seed: int = SEED):
    torch.manual_seed(seed)
    G_AB, G_BA = make_generator(norm).to(device), make_generator(norm).to(device)
    D_A = initialize(PatchDiscriminator(config.discriminator_width, norm)).to(device)
    D_B = initialize(PatchDiscriminator(config.discriminator_width, norm)).to(device)
    optimizer_g = torch.optim.Adam([*G_AB.parameters(), *G_BA.parameters()], lr=LEARNING_RATE,
                                   betas=BETAS)
    optimizer_d = torch.optim.Adam([*D_A.parameters(), *D_B.parameters()], lr=LEARNING_RATE,
                                   betas=BETAS)
    schedule_g, schedule_d = (torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config.steps))
        for optimizer in (optimizer_g, optimizer_d))
    pool_a, pool_b = ImagePool(seed=seed), ImagePool(seed=seed + 1)

    def train_step(batch):
        real_a, real_b = batch
        # Generators: fool the discriminators, close both cycles, leave target-domain images alone.
        D_A.requires_grad_(False)
        D_B.requires_grad_(False)
        fake_b, fake_a = G_AB(real_a), G_BA(real_b)
        adversarial = lsgan_loss(D_B(fake_b), 1.0) + lsgan_loss(D_A(fake_a), 1.0)
        cycle = l1(G_BA(fake_b), real_a) + l1(G_AB(fake_a), real_b)
        terms = {"adversarial": adversarial, "cycle": cycle}
        if identity_weight > 0:
            terms["identity"] = l1(G_AB(real_b), real_b) + l1(G_BA(real_a), real_a)
        optimizer_g.zero_grad(set_to_none=True)
        (adversarial + cycle_weight * cycle + identity_weight * terms.get("identity", 0)).backward()
        optimizer_g.step()
        # Discriminators: real → 1, generated (through the history pool) → 0; the loss halved.
        D_A.requires_grad_(True)
        D_B.requires_grad_(True)
        pooled_b, pooled_a = pool_b(fake_b), pool_a(fake_a)
        d_b = 0.5 * (lsgan_loss(D_B(real_b), 1.0) + lsgan_loss(D_B(pooled_b), 0.0))
        d_a = 0.5 * (lsgan_loss(D_A(real_a), 1.0) + lsgan_loss(D_A(pooled_a), 0.0))
        optimizer_d.zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        optimizer_d.step()
        schedule_g.step()
        schedule_d.step()
        return {**terms, "d_a": d_a, "d_b": d_b, "lr": schedule_g.get_last_lr()[0]}

    state = {"G_AB": G_AB, "G_BA": G_BA, "D_A": D_A, "D_B": D_B, "optimizer_g": optimizer_g,
             "optimizer_d": optimizer_d, "schedule_g": schedule_g, "schedule_d": schedule_d,
             "pool_a": pool_a, "pool_b": pool_b}
    return SimpleNamespace(G_AB=G_AB, G_BA=G_BA, D_A=D_A, D_B=D_B, train_step=train_step,
                           state=state)


TRAINING_CODE = [normalization, ResidualBlock, ResnetGenerator, PatchDiscriminator, initialize,
                 lsgan_loss, l1, ImagePool, learning_rate_factor, make_generator, make_training]

# %% [markdown]
# `train` runs one setting of `make_training` through `icu.fit`. The run's checkpoint is named by the
# run and identified by its settings and by the code above, so a changed setting or a changed line of the
# model retrains instead of reusing old weights.

# %%
def train(name: str, cycle_weight: float, identity_weight: float, norm: str = NORM):
    training = make_training(cycle_weight, identity_weight, norm)
    settings = dict(config.hyperparameters, cycle_weight=cycle_weight,
                    identity_weight=identity_weight, norm=norm, lr=LEARNING_RATE, betas=BETAS,
                    pool_size=POOL_SIZE, decay_from=DECAY_FROM, seed=SEED)
    training.history = icu.fit(training.train_step, batches, steps=config.steps,
                               state=training.state, run=f"cyclegan/{name}", config=settings,
                               code=TRAINING_CODE, description=name)
    return training


runs = {"CycleGAN": train("cyclegan", CYCLE_WEIGHT, IDENTITY_WEIGHT)}

# %%
history = runs["CycleGAN"].history
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
icu.plot_history(history, keys=["adversarial"], window=50, ax=axes[0], ylabel="LSGAN, G + F",
                 title="generators, adversarial")
icu.plot_history(history, keys=["cycle", "identity"], window=50, ax=axes[1], ylabel="L1 on [-1, 1]",
                 title="cycle, identity (unweighted)")
icu.plot_history(history, keys=["d_a", "d_b"], window=50, ax=axes[2], ylabel="LSGAN, halved",
                 title="discriminators")
plt.tight_layout()
plt.show()
if not history.skipped:
    window = min(300, len(history.steps))
    final = history.final(window=window)
    print(textwrap.fill(
        f"Mean of the last {window} steps: discriminators {final['d_a']:.3f} (D_A) and "
        f"{final['d_b']:.3f} (D_B) against 0.25 for a discriminator that cannot tell real from "
        f"fake; generators' adversarial loss {final['adversarial']:.3f} for the pair, against 0.5. "
        f"Cycle loss {final['cycle']:.4f}, "
        f"identity loss {final['identity']:.4f} (both unweighted, summed over the two directions).",
        width=100))

# %% [markdown]
# An LSGAN discriminator that cannot tell real from fake at all outputs 0.5 everywhere and has loss
# $\tfrac12(0.25 + 0.25) = 0.25$; the generators' adversarial loss is then $0.25$ per direction ($0.5$ in
# the left panel, which sums both). Numbers near these mean a balanced game, not a finished one; a
# discriminator below 0.25 is ahead of its generator. The cycle and identity losses are the ones to
# watch: in a run that learns they fall steadily and keep falling while the learning rate decays over the
# second half; a short spike in them together with one in the adversarial loss is the game jolting, and
# the run recovers from it.
#
# ## The ablations: without the cycle loss, without the identity loss, with instance normalization
#
# The paper's Table 4 and Figure 7 train the same model without parts of the objective. We train two
# ablations with the same networks, data, steps and seed: **no cycle loss** ($\lambda = 0$, the identity
# loss kept at weight 5, so the generators still see a reason to preserve images of their own domain) and
# **no identity loss** (the full cycle loss, identity weight 0). A third run checks our one change to the
# networks: the full model with the paper's **instance normalization** in place of layer normalization.

# %%
runs["no cycle loss"] = train("no-cycle", 0.0, IDENTITY_WEIGHT)
runs["no identity loss"] = train("no-identity", CYCLE_WEIGHT, 0.0)
runs["instance norm"] = train("instance-norm", CYCLE_WEIGHT, IDENTITY_WEIGHT, norm="instance")

# %% [markdown]
# ## Results
#
# ### Translations and their cycles
# Held-out test scenes the model never saw. For A → B: the filled input, its translation $G(x)$, the way
# back $F(G(x))$, and — the row no unpaired dataset can give — the true outlined image of the same scene.
# For B → A the same with the roles swapped. `icu.translate` runs a generator over the test images in
# batches, in eval mode and without gradients.

# %% tags=["landing-figure"] landing_crop=[0.071, 0.04, 0.527, 0.47]
def translated(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] → translations in [0, 1]."""
    return to_unit(icu.translate(generator, to_model(images), batch_size=200))


def translate_both(G_AB: nn.Module, G_BA: nn.Module) -> dict:
    fake_b, fake_a = translated(G_AB, test_a), translated(G_BA, test_b)
    return dict(fake_b=fake_b, fake_a=fake_a, cycle_a=translated(G_BA, fake_b),
                cycle_b=translated(G_AB, fake_a))


def show_direction(title, source, forward, backward, truth, labels, ax, n: int = 10):
    rows = [source[:n], forward[:n], backward[:n]] + ([truth[:n]] if truth is not None else [])
    icu.show_images(torch.cat(rows), nrow=n, ax=ax, padding=1, title=title)
    for row, label in enumerate(labels[:len(rows)]):
        ax.text(-2, (row + 0.5) * (config.resolution + 1), label, ha="right", va="center",
                fontsize=10)


outputs = {name: translate_both(run.G_AB, run.G_BA) for name, run in runs.items()}
shown = outputs["CycleGAN"]
fig, axes = plt.subplots(2, 1, figsize=(9, 8))
show_direction("A → B (filled → outlined)", test_a, shown["fake_b"], shown["cycle_a"],
               test_b if has_truth else None, ["input x", "G(x)", "F(G(x))", "truth"], axes[0])
show_direction("B → A (outlined → filled)", test_b, shown["fake_a"], shown["cycle_b"],
               test_a if has_truth else None, ["input y", "F(y)", "G(F(y))", "truth"], axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for. **A → B** should empty the shapes and keep their outline, colour, size, angle and
# position; at this budget the strokes tend to be dotted or uneven, and on the grey background, where the
# contrast is lowest, some outlines come out faint. The way back, $F(G(x))$, should return filled shapes
# of the right colour: the outline carries enough to rebuild the scene. **B → A** fills the outlines with
# their own colour; the corners tend to come out rounded. The numbers below say how often each of these
# holds over all the test scenes.
#
# ### The ablations beside the full model
# The same test scenes translated by every model, with the truth at the bottom. What the paper's
# ablations predict, and what to compare in the rows: without the cycle loss, nothing ties the output to
# *this* input, so the outputs are plausible target-domain images whose colour need not be the input's;
# without the identity loss, a consistent swap of colours (for instance of the backgrounds) closes the
# cycle just as well as keeping them; with instance normalization, the generators cannot see colours at
# all (the check above), so the colours of the outputs are guesses.

# %%
fig, axes = plt.subplots(2, 1, figsize=(8, 12))
for ax, (direction, source, key, truth) in zip(axes, [("A → B", test_a, "fake_b", test_b),
                                                      ("B → A", test_b, "fake_a", test_a)]):
    rows = [source[:8], *(outputs[name][key][:8] for name in runs)]
    rows += [truth[:8]] if has_truth else []
    labels = ["input", *runs, "truth"][:len(rows)]
    icu.show_images(torch.cat(rows), nrow=8, ax=ax, padding=1, title=direction)
    for row, label in enumerate(labels):
        ax.text(-2, (row + 0.5) * (config.resolution + 1), label, ha="right", va="center",
                fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Measured against the ground truth
#
# For every test scene and both directions (`icu.translation_scores`):
# - **MSE vs truth**: mean squared error of the translation against the true image (pixels in $[0, 1]$).
# - **MSE on changed pixels**: the error only where input and truth differ — where the translation happens.
# - **cycle L1**: $\lVert F(G(x)) - x\rVert_1$ per pixel in $[0, 1]$.
# - **the classifier's verdict**: the reference shape classifier (`icu.shapes_classifier`, trained on
#   separate renders; held-out accuracy printed below) reads each translation. *Style* accuracy is the
#   share it calls outlined in A → B (filled in B → A): did the domain change? *Shape, colour and
#   background* accuracy, against the scene's true attributes: was the content kept? It plays the role of
#   the paper's FCN score, a pretrained network's judgement of whether the output has the right content.
#
# Beside the trained models, three that learned nothing, scored the same way; every quality gate below
# is stated against them:
# - **copy the input** (the identity map as a generator): keeps all the content, changes no style, and
#   closes every cycle exactly;
# - **erased shape** (the background alone): outlines cover few pixels, so a plain background is already
#   close to the true outline image, and a model that blurs the shape away can beat the copy without
#   translating anything; it has no shape, so the classifier guesses its shape and colour (erasing
#   twice gives the background again: that is its cycle);
# - **untrained G**: the generators as `make_training` builds them, before the first step (same seed).

# %%
COPY, ERASED = "baseline: copy the input", "baseline: erased shape"
UNTRAINED = "baseline: untrained G"
classifier = icu.shapes_classifier(config.resolution, device) if has_truth else None
if has_truth:
    print("reference classifier, held-out accuracy: " + ", ".join(
        f"{name} {accuracy:.1%}" for name, accuracy in classifier.test_accuracy.items()))
untrained = make_training(CYCLE_WEIGHT, IDENTITY_WEIGHT)
outputs[UNTRAINED] = translate_both(untrained.G_AB, untrained.G_BA)
outputs[COPY] = translate_both(nn.Identity(), nn.Identity())
directions = {"A → B": dict(source=test_a, fake="fake_b", cycled="cycle_a", truth=test_b,
                            attributes=test.attributes_b if has_truth else None),
              "B → A": dict(source=test_b, fake="fake_a", cycled="cycle_b", truth=test_a,
                            attributes=test.attributes_a if has_truth else None)}
scores = {}
for direction, d in directions.items():
    for name, out in outputs.items():
        row = {"cycle_l1": (out[d["cycled"]] - d["source"]).abs().mean().item()}
        if has_truth:
            row.update(icu.translation_scores(classifier, out[d["fake"]], d["source"], d["truth"],
                                              d["attributes"]))
        scores[direction, name] = row
    if has_truth:
        erased = icu.background_images(d["attributes"], config.resolution)
        scores[direction, ERASED] = {"cycle_l1": (erased - d["source"]).abs().mean().item(),
                                     **icu.translation_scores(classifier, erased, d["source"],
                                                              d["truth"], d["attributes"])}

# %%
COLUMNS = [("mse", "MSE vs truth"), ("mse_changed_pixels", "changed px"), ("cycle_l1", "cycle L1"),
           ("accuracy_style", "style"), ("accuracy_shape", "shape"), ("accuracy_colour", "colour"),
           ("accuracy_background", "background")]
columns = [(key, title) for key, title in COLUMNS if key in scores["A → B", "CycleGAN"]]


def cell(key: str, value: float) -> str:
    if np.isnan(value):
        return "—"
    return f"{value:.4f}" if key.startswith(("mse", "cycle")) else f"{value:.1%}"


for direction in directions:
    icu.show_table([direction, *(title for _, title in columns)],
                   [[name, *(cell(key, row[key]) for key, _ in columns)]
                    for (where, name), row in scores.items() if where == direction])
print(textwrap.fill(
    f"{len(test_a):,} held-out test scenes per direction; {len(train_a):,} training images per "
    f"domain; {config.steps:,} steps at batch {config.batch_size} per run; "
    f"device {icu.describe_device(device)}; "
    "training wall time per run: " + ", ".join(f"{name} {run.history.wall_time:.0f} s"
                                                for name, run in runs.items()) + ".", width=100))

# %% [markdown]
# ### What the run says
#
# The next cell reads the tables above into sentences (so they always describe the run stored here). How
# to read them:
#
# - **The full model** should change the style in both directions and keep the content it can see:
#   colour and background, and the shape as far as a $32\times32$ rendering allows.
# - **Against the erased image**: an outline is a stroke about one pixel wide. Drawn half a pixel off, or
#   dotted, it is penalised twice in mean squared error (where it is and where it should be), while the
#   erased image pays only once for the missing stroke. So in A → B a translation can lose to the erased
#   image in MSE and still be the better translation; that is why the classifier is read beside it: the
#   erased image has no shape, so the classifier's shape reading on it is at chance.
# - **Shape is the hardest part of the content**: at $32\times32$ a square, a circle and a triangle
#   differ by a few pixels of corners, and rounded corners turn a square into something between the two.
# - **Without the identity loss**, a cycle closes just as well through a consistent swap of colours — $G$
#   paints cream backgrounds black, $F$ paints them back — which is the failure the paper's identity loss
#   (its Section 5.2) was added for; it shows as a low background accuracy and a large MSE against the
#   truth, with the cycle still closed.
# - **Without the cycle loss**, nothing asks the output to be *this* input's translation rather than any
#   plausible image of the target domain: the style changes, the background survives (the identity loss
#   keeps it), but the colour of the shape is not tied to the input, and the cycle error grows.
# - **With the paper's instance normalization**, the colour readings fall towards chance (one in six) —
#   the blindness shown in the checks, now in a trained model.

# %%
def both(name: str, key: str) -> list[float]:
    return [scores[direction, name][key] for direction in directions]


def read(name: str, key: str) -> str:
    return " and ".join(f"{value:.0%}" for value in both(name, key))


def ratio(name: str, key: str, reference: str) -> str:
    return " and ".join(f"{a / b:.1f}" for a, b in zip(both(name, key), both(reference, key)))


if has_truth:
    ab, ba = scores["A → B", "CycleGAN"], scores["B → A", "CycleGAN"]
    beats = {True: "beats", False: "does not beat"}
    reading = [
        f"Full model (A → B and B → A): style changed in {read('CycleGAN', 'accuracy_style')} of "
        f"the test scenes; colour kept in {read('CycleGAN', 'accuracy_colour')}, background in "
        f"{read('CycleGAN', 'accuracy_background')}, shape in {read('CycleGAN', 'accuracy_shape')} "
        f"(the erased image, which has no shape: {read(ERASED, 'accuracy_shape')}).",
        f"MSE against the truth: {ab['mse']:.4f} and {ba['mse']:.4f}; copying the input: "
        f"{ab['mse_identity']:.4f} and {ba['mse_identity']:.4f}; the erased image: "
        f"{ab['mse_erased']:.4f} and {ba['mse_erased']:.4f}. A → B "
        f"{beats[ab['mse'] < ab['mse_erased']]} the erased image in MSE; B → A "
        f"{beats[ba['mse'] < ba['mse_erased']]} it.",
        f"Without the identity loss: background right in "
        f"{read('no identity loss', 'accuracy_background')}, MSE against the truth "
        f"{ratio('no identity loss', 'mse', COPY)} times the copy's, cycle L1 "
        f"{ratio('no identity loss', 'cycle_l1', 'CycleGAN')} times the full model's.",
        f"Without the cycle loss: style changed in {read('no cycle loss', 'accuracy_style')}, "
        f"background kept in {read('no cycle loss', 'accuracy_background')}, colour kept in "
        f"{read('no cycle loss', 'accuracy_colour')} (chance: 17%); cycle L1 "
        f"{ratio('no cycle loss', 'cycle_l1', 'CycleGAN')} times the full model's.",
        f"With instance normalization: colour kept in {read('instance norm', 'accuracy_colour')}; "
        f"style changed in {read('instance norm', 'accuracy_style')}.",
    ]
    print("\n".join(textwrap.fill(sentence, width=100) for sentence in reading))

# %% [markdown]
# How this compares with the paper: its evaluation is on photographs without ground truth (AMT perceptual
# studies, and FCN scores of Cityscapes labels → photos, a segmentation network's reading of the output —
# the analogue of our classifier), so no number here is comparable with one of the paper's. Its ablation
# (Table 4, Figure 7) reaches the same kind of conclusions on the objective: without the cycle loss the
# outputs stop depending on the input, and the identity loss is what keeps colours on tasks where they
# should not change.

# %%
RUN_KEYS = {"CycleGAN": "cyclegan", "no cycle loss": "no_cycle", "no identity loss": "no_identity",
            "instance norm": "instance_norm"}
DIRECTION_KEYS = {"A → B": "ab", "B → A": "ba"}
MAIN_SCORES = ["mse", "content", "mse_identity", "mse_erased", "mse_changed_pixels", "cycle_l1",
               "accuracy_style", "accuracy_shape", "accuracy_colour", "accuracy_background"]
ABLATION_SCORES = ["mse", "cycle_l1", "accuracy_style", "accuracy_shape", "accuracy_colour",
                   "accuracy_background"]
CONTENT = ["accuracy_shape", "accuracy_colour", "accuracy_background"]
if has_truth:
    data_text = (f"{len(test_a):,} held-out scene pairs at {config.resolution}², "
                 "filled ↔ outlined shapes")
else:
    data_text = f"{len(test_a):,} {config.dataset} test images per domain at {config.resolution}²"
paper_notes = {"accuracy_shape": "no comparable number: the paper's analogue is an FCN score, a "
                "segmentation network's accuracy on Cityscapes labels→photo translations"}
results_rows = []
for name, run_key in RUN_KEYS.items():
    for direction, direction_key in DIRECTION_KEYS.items():
        row = dict(scores[direction, name])
        if has_truth:
            row["content"] = float(np.mean([row[key] for key in CONTENT]))
        for score in MAIN_SCORES if name == "CycleGAN" else ABLATION_SCORES:
            if score not in row:
                continue
            paper = paper_notes.get(score) if run_key == "cyclegan" else None
            results_rows.append(dict(
                key=f"{run_key}_{direction_key}_{score}", metric=f"{name}, {direction}: {score}",
                value=row[score], steps=len(runs[name].history.steps),
                wall_time_s=runs[name].history.wall_time,
                headline=(run_key == "cyclegan" and direction_key == "ab"
                          and score in ("accuracy_style", "content")) or None, paper=paper))
icu.record_results("cyclegan", [{k: v for k, v in row.items() if v is not None}
                                for row in results_rows],
                   defaults=dict(data=data_text, device=icu.describe_device(device)))

# %% [markdown]
# ## Quality gates
#
# Each gate compares the full model, in both directions, with the models above that learned nothing —
# copying the input, erasing the shape, the untrained generators — on the property that each of them
# lacks, and fails if the trained model is not clearly better than the best of them:
#
# | gate | the trained model must … | baselines it is compared with |
# | --- | --- | --- |
# | `mse_fraction` | have an MSE vs truth below this fraction of the better baseline's | copy, untrained G |
# | `changed_fraction` | the same on the changed pixels alone | copy, untrained G |
# | `style_margin` | change the style in more scenes, by this margin | copy |
# | `shape_margin` | keep the shape in more scenes, by this margin | erased, untrained G |
# | `colour_margin` | keep the colour in more scenes, by this margin | erased, untrained G |
# | `background_margin` | keep the background in more scenes, by this margin | untrained G |
# | `cycle_fraction` | have a cycle L1 below this fraction of the baseline's | untrained G |
#
# A translation must do what the copy does not (change the style, come closer to the truth) and keep
# what the untrained generators and the eraser lose (shape, colour, background, the way back). The copy
# keeps all the content and closes every cycle exactly, and erasing keeps the background, so they are not
# baselines for those. An image without a filled shape reads as "outlined" to the classifier, so garbage
# and erased images can score on style too: the style gate is stated against the copy alone, and the
# content gates catch the garbage. Nor is the erased image a baseline for the MSE gates: in A → B it is
# close to the truth in MSE (the text above says why); the shape and colour gates separate a translation
# from an erasure. The table applies the same gates to the three baselines; the copy and the untrained
# generators must each fail at least one — a check that the gates can fail.
#
# The thresholds are in the configuration cell. `smoke` (100 steps at $16\times16$, for the tests) is
# too short to learn shape and colour, or to fill shapes (B → A) better than a copy: there it gates what
# 100 steps do learn (A → B against the copy; the background and the cycle against the untrained
# generators; B → A's error within twice the copy's), leaves the rest ungated, and still fails for the
# copy and for the untrained generators — though not for an eraser, which only the shape and colour gates
# of `book` and `full` catch. On real data without ground truth only the cycle gate
# applies.

# %%
gates = config.gates
CHECKS = [  # gate, score, lower is better, the baselines it is measured against
    ("mse_fraction", "mse", True, [COPY, UNTRAINED]),
    ("changed_fraction", "mse_changed_pixels", True, [COPY, UNTRAINED]),
    ("style_margin", "accuracy_style", False, [COPY]),
    ("shape_margin", "accuracy_shape", False, [ERASED, UNTRAINED]),
    ("colour_margin", "accuracy_colour", False, [ERASED, UNTRAINED]),
    ("background_margin", "accuracy_background", False, [UNTRAINED]),
    ("cycle_fraction", "cycle_l1", True, [UNTRAINED]),
]


def gate_readings(model: str) -> list[list]:
    """Each gate that applies to `model`: direction, gate, value, baseline, threshold, passed."""
    rows = []
    for direction in directions:
        for gate, key, lower, names in CHECKS:
            setting = getattr(gates, gate)
            if isinstance(setting, dict):       # a threshold per direction
                setting = setting[DIRECTION_KEYS[direction]]
            if setting is None or key not in scores[direction, model]:
                continue                        # not gated in this profile, or no ground truth
            value = scores[direction, model][key]
            best = (min if lower else max)(scores[direction, name][key] for name in names)
            limit = setting * best if lower else best + setting
            rows.append([direction, gate, value, best, ("< " if lower else "> ") + cell(key, limit),
                         bool(value < limit if lower else value > limit), key])
    return rows


# %%
readings = gate_readings("CycleGAN")
others = {name: gate_readings(name) for name in (COPY, ERASED, UNTRAINED)}
verdict = {True: "pass", False: "FAIL"}
icu.show_table(
    ["direction", "gate", "value", "best baseline", "threshold", "CycleGAN", "copy", "erased",
     "untrained G"],
    [[direction, gate, cell(key, value), cell(key, best), limit, verdict[passed],
      *(verdict[others[name][i][5]] for name in others)]
     for i, (direction, gate, value, best, limit, passed, key) in enumerate(readings)])
for name in (COPY, UNTRAINED):     # the gates can fail: both fail some
    assert not all(row[5] for row in others[name]), f"{name} passes every gate: they are too lax"
failed = [f"{direction} {gate}: {cell(key, value)}, needs {limit}"
          for direction, gate, value, best, limit, passed, key in readings if not passed]
assert not failed, "quality gates failed: " + "; ".join(failed)
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - CycleGAN learns a translation between two domains from unpaired images: two generators, two
#   discriminators, a least-squares adversarial loss in each direction, and a cycle-consistency loss
#   ($\lambda = 10$) that makes the generators near-inverses, so that they change what tells the
#   domains apart and keep the rest. An identity loss ($0.5\lambda$) keeps colours where the target
#   domain allows them.
# - Two training details are part of the method: the discriminators see generated images through a
#   50-image history, and the learning rate is constant for half the run, then decays linearly to zero.
# - Unpaired training does not mean the result is unmeasurable: procedural data gives every test image
#   its true counterpart, so the translation's error, the content it kept and the domain it reached can
#   be read off directly — and compared with models that learned nothing: copying the input (keeps
#   everything, translates nothing, closes every cycle), erasing the shape (close in MSE, keeps nothing)
#   and the untrained generators. Each score means something only beside the baseline it beats.
#
# **Common pitfalls**
# - Forgetting to halve the discriminator's loss, or to feed it through the image pool.
# - Updating the discriminators with gradients from the generator step (freeze them, or detach the fakes).
# - Too much identity loss: the generators learn to return their input, and nothing is translated.
# - Colour inversions and swaps: without the identity loss, a cycle closes just as well through a consistent
#   colour permutation.
# - A normalization that removes what the task needs: instance normalization is blind to a constant colour
#   shift, harmless on photographs, fatal on flat-coloured images.
# - Judging a translation by eye or by its cycle error alone: a generator can hide the input in faint
#   patterns of its output and close the cycle without translating it well.
#
# **Further reading**: DiscoGAN {cite}`kim2017discogan`, published at the same time, uses the same two-way
# reconstruction idea with a different architecture and loss; StarGAN {cite}`choi2018stargan` replaces the
# pair of generators by one generator conditioned on the target domain, for many domains at once.
#
# ## Try it yourself
#
# Each exercise is a one- or two-line change; run the page in `book` (a few minutes per run on a CPU).
#
# 1. **The paper's two halvings.** Set `downsamplings=2` in the `book` configuration. The residual
#    blocks then work at $8\times8$ with twice the channels (the parameter line shows the new count).
#    Expect blurrier outlines in A → B and a lower shape accuracy than the
#    stored run: a one-pixel stroke falls between the points of an $8\times8$ grid.
# 2. **Too much identity loss.** Set `IDENTITY_WEIGHT = 4 * CYCLE_WEIGHT`. The generators are then
#    rewarded most for returning their input: expect the style accuracy to fall towards the copy
#    baseline's and the `style_margin` gate to fail, while colour and background stay right.
# 3. **No history pool.** In `make_training`, replace `pool_b(fake_b), pool_a(fake_a)` by
#    `fake_b.detach(), fake_a.detach()`. The discriminators then see only the newest fakes; watch the
#    discriminators' curves in the training figure for larger swings, and compare the style accuracy.
# 4. **Do not halve the discriminators' loss.** Remove the `0.5 *` in front of `d_b` and `d_a` in
#    `make_training`. The discriminators then learn twice as fast relative to the generators: expect
#    their curves to sit lower and the generators' adversarial loss higher, and compare the style and
#    shape accuracies with the stored run's.
# 5. **A weaker cycle.** Set `CYCLE_WEIGHT = 1.0` (the identity weight follows it). Expect results
#    between the full model and the "no cycle loss" ablation: colours drifting from the input's more
#    often, and a larger cycle L1.
