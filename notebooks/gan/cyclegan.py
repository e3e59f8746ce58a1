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

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(resolution=16, train_images=400, test_images=200, steps=100, batch_size=8, generator_width=8,
               downsamplings=1, residual_blocks=2, discriminator_width=8, dataset="shapes",
               gate_identity_fraction=5.0, gate_changed_fraction=5.0, gate_erased_fraction=20.0, gate_shape_margin=-1.0,
               gate_style_accuracy=0.0, gate_content_accuracy=0.0),
    book=dict(resolution=32, train_images=5000, test_images=1000, steps=3000, batch_size=8, generator_width=16,
              downsamplings=1, residual_blocks=4, discriminator_width=16, dataset="shapes",
              gate_identity_fraction=0.75, gate_changed_fraction=0.7, gate_erased_fraction=1.3, gate_shape_margin=0.1,
              gate_style_accuracy=0.7, gate_content_accuracy=0.7),
    full=dict(resolution=64, train_images=10_000, test_images=1000, steps=100_000, batch_size=1,
              generator_width=64, downsamplings=2, residual_blocks=6, discriminator_width=64,
              dataset=os.environ.get("ITEMCHEST_CYCLEGAN_DATASET", "shapes"),
              gate_identity_fraction=0.5, gate_changed_fraction=0.5, gate_erased_fraction=1.0, gate_shape_margin=0.4,
              gate_style_accuracy=0.9, gate_content_accuracy=0.8),
)
# The paper's settings, the same in every profile.
CYCLE_WEIGHT = 10.0                       # λ
IDENTITY_WEIGHT = 0.5 * CYCLE_WEIGHT      # 0.5 λ
LEARNING_RATE, BETAS = 2e-4, (0.5, 0.999)
POOL_SIZE = 50                            # the history of generated images the discriminators see
DECAY_FROM = 0.5                          # constant learning rate for the first half, then linear decay to 0
SEED = 0

device = icu.pick_device()
icu.seed_everything(SEED)
print(config)
print(f"device: {icu.describe_device(device)}")

# %% [markdown]
# ## The idea in math
#
# Two domains $X$ and $Y$, samples $x \sim p_X$ and $y \sim p_Y$, never paired. Two generators
# $G: X \to Y$ and $F: Y \to X$, two discriminators: $D_Y$ tells real $y$ from $G(x)$, $D_X$ tells real $x$
# from $F(y)$.
#
# **Adversarial loss, {term}`least-squares <least-squares GAN>` form.** The paper replaces the log-likelihood GAN loss by the
# least-squares one of LSGAN {cite}`mao2017lsgan`, which trains more stably and gives higher-quality results:
#
# $$\mathcal L_{\text{GAN}}(G, D_Y) = \mathbb E_{y}\big[(D_Y(y) - 1)^2\big] + \mathbb E_{x}\big[D_Y(G(x))^2\big],$$
#
# which $D_Y$ minimises; $G$ minimises $\mathbb E_x\big[(D_Y(G(x)) - 1)^2\big]$ instead (the non-saturating
# form). The discriminator's loss is halved in the paper's code, which slows $D$ relative to $G$. Likewise for
# $F$ and $D_X$.
#
# **Cycle consistency.** With the $L_1$ norm,
#
# $$\mathcal L_{\text{cyc}}(G, F) = \mathbb E_x\big[\lVert F(G(x)) - x\rVert_1\big] + \mathbb E_y\big[\lVert G(F(y)) - y\rVert_1\big].$$
#
# **Identity loss.** For tasks where colours must be kept, the paper adds (Section 5.2)
# $\mathcal L_{\text{id}} = \mathbb E_y\big[\lVert G(y) - y\rVert_1\big] + \mathbb E_x\big[\lVert F(x) - x\rVert_1\big]$:
# a generator given an image that is already in its target domain should leave it alone. Without it the
# generators are free to swap colours around consistently (the cycle would still close).
#
# **The full objective**, minimised by $G, F$ and maximised by $D_X, D_Y$:
#
# $$\mathcal L = \mathcal L_{\text{GAN}}(G, D_Y) + \mathcal L_{\text{GAN}}(F, D_X) + \lambda\,\mathcal L_{\text{cyc}}(G, F) + 0.5\,\lambda\,\mathcal L_{\text{id}}(G, F),\qquad \lambda = 10.$$
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
# triangle), colour (six), background (three), size, angle and position — is random. The two training sets
# are drawn from *different* seeds, so no image in A has its counterpart in B: the model sees only two
# unrelated piles of images, as with horses and zebras.
#
# Unlike horses and zebras, every held-out test scene is rendered in *both* styles, so each translation
# can be compared with the exact image it should be. That is what makes the numbers below possible: the
# error of a translation against its ground truth, and a shape classifier's verdict on what it kept.
#
# **Real photographs (`full` only).** Set `ITEMCHEST_CYCLEGAN_DATASET=horse2zebra` (or another of the
# official CycleGAN datasets) and unpack the dataset's zip from
# `https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip` into the data folder
# (`ITEMCHEST_DATA`), so that `horse2zebra/trainA` holds the horse photographs. Without it the loader
# stops with an error that says exactly this. Real datasets have no ground truth, so then only the pictures
# and the cycle error are reported.

# %%
if config.dataset == "shapes":
    domains = icu.unpaired_domains(config.train_images, config.resolution, "style", "filled", "outline", seed=0)
    test = icu.paired_test_set(config.test_images, config.resolution, "style", "filled", "outline", seed=1000)
    train_a, train_b = domains.images_a, domains.images_b
    test_a, test_b = test.images_a, test.images_b
    has_truth = True
else:
    real = icu.load_unpaired_folders(config.dataset, config.resolution)
    print(real)
    train_a, train_b = real.train_a, real.train_b
    count = min(len(real.test_a), len(real.test_b), config.test_images)
    test_a, test_b = real.test_a[:count], real.test_b[:count]
    has_truth = False

# Both domains on [-1, 1], the range of the generators' tanh output.
to_model = lambda images: images * 2 - 1
to_unit = lambda images: ((images + 1) / 2).clamp(0, 1)
# Two independent batch streams: the i-th image of an A batch has nothing to do with the i-th of a B batch.
batches_a = icu.TensorBatches(to_model(train_a), batch_size=config.batch_size, seed=SEED, device=device)
batches_b = icu.TensorBatches(to_model(train_b), batch_size=config.batch_size, seed=SEED + 1, device=device)


class UnpairedBatches:
    """One batch from each domain per step, each from its own shuffled order."""
    batch_size = config.batch_size

    def batch(self, step):
        return batches_a.batch(step), batches_b.batch(step)


print(f"{len(train_a):,} training images in A and {len(train_b):,} in B, {len(test_a):,} held-out test images "
      f"per domain, 3×{config.resolution}×{config.resolution}; ground truth for the test images: {has_truth}")
fig, axes = plt.subplots(1, 3 if has_truth else 2, figsize=(12 if has_truth else 8, 3.6))
icu.show_images(train_a[:16], nrow=4, ax=axes[0], padding=1, title="training images, domain A")
icu.show_images(train_b[:16], nrow=4, ax=axes[1], padding=1, title="training images, domain B (unrelated)")
if has_truth:
    icu.show_images(torch.stack([test_a[:8], test_b[:8]], 1).flatten(0, 1), nrow=4, ax=axes[2], padding=1,
                    title="test scenes: A and its true B")
plt.tight_layout()
plt.show()

# %% [markdown]
# The translation is not a pixel-local change: going from filled to outlined, the interior of the shape must
# become background; going back, the interior must be filled with the colour of the outline — up to ten
# pixels away from it on a $32\times32$ image. A generator needs a receptive field that spans the shape, and
# has to keep the shape, its colour, the background, size, angle and position.
#
# ## The networks
#
# **Generator** (the paper's appendix, after Johnson et al. {cite}`johnson2016perceptual`): a $7\times7$
# convolution, stride-2 convolutions that halve the resolution, a stack of residual blocks at the lowest
# resolution, as many stride-2 transposed convolutions back up, and a $7\times7$ convolution to RGB with
# tanh. In the paper's notation, `c7s1-64, d128, d256, R256 ×9, u128, u64, c7s1-3` for $256\times256$
# images: two halvings, so the residual blocks work at $64\times64$. Ours keeps the layout with fewer
# channels and blocks (the configuration cell) and, at $32\times32$, **one** halving, so the residual blocks
# work at $16\times16$. With the paper's two, the blocks would work at $8\times8$, where a one-pixel outline
# falls between grid points: in a trial run of that version (1,500 steps, otherwise this page's `book`
# settings), both directions returned blurred blobs and even the cycles $F(G(x))$ lost the shapes. Reflection padding avoids border artefacts; every
# convolution but the last is followed by a normalization layer and ReLU.
#
# **Discriminator**: a *{term}`PatchGAN`* (from pix2pix {cite}`isola2017pix2pix`): a fully convolutional network
# whose output is a grid of scores, each judging one patch of the image, averaged in the loss. The paper's
# `C64-C128-C256-C512` ($4\times4$ kernels, three of them with stride 2) judges $70\times70$ patches of a
# $256\times256$ image. Ours has two stride-2 layers and widths `C16-C32-C64` in `book`: a $6\times6$ grid of
# scores on a $32\times32$ image, each from a $34\times34$ window of convolutions (computed below) — at this size
# every score sees most of the image, so the "patches" are large; what stays is a dense grid of overlapping
# judgements rather than one score per image. LeakyReLU 0.2, no normalization on the first layer.
#
# **Weights** start from $\mathcal N(0, 0.02)$, as in the paper's code.
#
# **Normalization.** The paper uses instance normalization {cite}`ulyanov2016instance` (each feature map
# of each image normalized to zero mean and unit variance over its pixels). On photographs that works well.
# On our flat-coloured images it removes the very information the translation must keep: an image made of
# two colours gives, after any convolution, feature maps with essentially two values, and normalizing each
# map over the image leaves only *which side* of the edge a pixel is on, not the colours. The sanity checks
# below show this exactly: adding any constant colour to the image leaves the instance-normalized
# features unchanged. We therefore use **layer normalization** {cite}`ba2016layer` (`nn.GroupNorm(1, C)`): also per image and with no batch
# statistics, but one mean and variance over all channels and pixels together, so the differences between
# channels — the colours — survive. `NORM` below selects it; `"instance"` gives the paper's choice, and
# one of the runs below trains with it, so the two can be compared on the same budget.

# %%
NORM = "layer"


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
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), normalization(channels, norm), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), normalization(channels, norm))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, width: int, blocks: int, downsamplings: int, norm: str = NORM):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), normalization(width, norm), nn.ReLU(True)]   # c7s1-w
        channels = width
        for _ in range(downsamplings):                                                                 # d2w, d4w, ...
            layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), normalization(2 * channels, norm),
                       nn.ReLU(True)]
            channels *= 2
        layers += [ResidualBlock(channels, norm) for _ in range(blocks)]                                     # R × blocks
        for _ in range(downsamplings):                                                                 # ..., u2w, uw
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
                       normalization(channels // 2, norm), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7), nn.Tanh()]                            # c7s1-3
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """C(w)-C(2w) with stride 2, then C(4w) and a 1-channel score map with stride 1; 4×4 kernels."""

    def __init__(self, width: int, norm: str = NORM):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), normalization(2 * w, norm), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, stride=1, padding=1), normalization(4 * w, norm), nn.LeakyReLU(0.2, True),
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
# Checked on untrained networks and on the helpers, with fixed sizes so that every profile prints the same
# (pass/fail only, compared with the stored output by the test suite):
# - the generator maps a $32\times32$ image to a $32\times32$ image in $[-1, 1]$ and works at $8\times8$ in
#   its residual blocks; the discriminator returns a grid of patch scores, and its convolutions give each
#   score a window of the input (the normalization layers add image-wide statistics on top);
# - the LSGAN losses are zero exactly at their targets;
# - the image pool returns its first 50 images unchanged, then swaps about half of the rest for stored ones,
#   and only ever returns images it was given;
# - the learning rate is constant for the first half and reaches zero at the end;
# - instance normalization cannot see a constant colour added to a two-colour image; layer normalization
#   can (the reason for the change above).

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
check_g, check_d = initialize(ResnetGenerator(8, 2, 1)), initialize(PatchDiscriminator(8))
x_check = torch.rand(4, 3, 32, 32) * 2 - 1
with torch.no_grad():
    out = check_g(x_check)
    bottleneck = check_g.net[:7](x_check)
print(f"generator: {tuple(x_check.shape)} → {tuple(out.shape)}, in [-1, 1]: "
      f"{'pass' if out.abs().max() <= 1 else 'FAIL'}; residual blocks at {tuple(bottleneck.shape[-2:])}")
window, jump = 1, 1   # the receptive field of one score through the convolutions, layer by layer
for layer in check_d.net:
    if isinstance(layer, nn.Conv2d):
        window, jump = window + (layer.kernel_size[0] - 1) * jump, jump * layer.stride[0]
print(f"discriminator: {tuple(x_check.shape)} → {tuple(check_d(x_check).shape)} patch scores; "
      f"each score's convolutional window: {window}×{window} pixels")
print(f"LSGAN loss at its targets: {'pass' if lsgan_loss(torch.ones(5), 1) == 0 == lsgan_loss(torch.zeros(5), 0) else 'FAIL'}; "
      f"(0.5 - 1)² = {lsgan_loss(torch.full((5,), 0.5), 1).item():.2f}")

pool = ImagePool(seed=3)
given = torch.arange(200.0).view(200, 1, 1, 1)
first = pool(given[:50])
later = torch.cat([pool(given[i:i + 10]) for i in range(50, 200, 10)])
swapped = (later.flatten() != given[50:].flatten()).float().mean().item()
print(f"image pool: first 50 returned unchanged: {'pass' if torch.equal(first, given[:50]) else 'FAIL'}; "
      f"later ones swapped for stored ones about half the time: {'pass' if 0.35 < swapped < 0.65 else 'FAIL'}; "
      f"returns only images it was given: {'pass' if set(later.flatten().tolist()) <= set(range(200)) else 'FAIL'}")
factors = [learning_rate_factor(step, 1000) for step in range(1000)]
linear = np.allclose(np.diff(factors[500:]), -1 / 500) and learning_rate_factor(1000, 1000) == 0
print(f"learning rate: constant for the first half: {'pass' if all(f == 1 for f in factors[:500]) else 'FAIL'}; "
      f"then linear, reaching 0 after the last step: {'pass' if linear else 'FAIL'}")

two_colours = torch.zeros(1, 3, 32, 32)
two_colours[..., 8:24, 8:24] = torch.tensor([0.8, 0.2, 0.1]).view(3, 1, 1)   # a red square on black
shifted = two_colours + torch.tensor([0.1, 0.4, 0.5]).view(1, 3, 1, 1)        # a grey square on teal
conv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, 16, 7))
with torch.no_grad():
    same_instance = torch.allclose(nn.InstanceNorm2d(16)(conv(two_colours)), nn.InstanceNorm2d(16)(conv(shifted)),
                                   atol=1e-4)
    same_layer = torch.allclose(nn.GroupNorm(1, 16)(conv(two_colours)), nn.GroupNorm(1, 16)(conv(shifted)),
                                atol=1e-4)
print(f"instance norm blind to a colour shift: {'pass' if same_instance else 'FAIL'}; "
      f"layer norm sees it: {'pass' if not same_layer else 'FAIL'}")

# %%
def make_generator(norm: str = NORM) -> nn.Module:
    return initialize(ResnetGenerator(config.generator_width, config.residual_blocks, config.downsamplings, norm))


generator_parameters = sum(p.numel() for p in make_generator().parameters())
discriminator_parameters = sum(p.numel() for p in PatchDiscriminator(config.discriminator_width).parameters())
print(f"each generator {generator_parameters:,} parameters (width {config.generator_width}, "
      f"{config.downsamplings} stride-2 halving(s), {config.residual_blocks} residual blocks), each discriminator {discriminator_parameters:,} parameters; "
      f"normalization: {NORM}")

# %% [markdown]
# ## Training
#
# One step: update both generators on a batch from each domain (the discriminators' weights frozen, as in
# the paper's code), then update both discriminators on the same real images and on generated images drawn
# through the pools. `make_training` takes the two loss weights, so the ablations below are the same code
# with one weight set to zero. Generators and discriminators have their own Adam optimizers, and a
# scheduler applies the constant-then-linear learning rate.

# %%
def make_training(cycle_weight: float, identity_weight: float, norm: str, seed: int = SEED):
    torch.manual_seed(seed)
    G_AB, G_BA = make_generator(norm).to(device), make_generator(norm).to(device)
    D_A = initialize(PatchDiscriminator(config.discriminator_width, norm)).to(device)
    D_B = initialize(PatchDiscriminator(config.discriminator_width, norm)).to(device)
    optimizer_g = torch.optim.Adam([*G_AB.parameters(), *G_BA.parameters()], lr=LEARNING_RATE, betas=BETAS)
    optimizer_d = torch.optim.Adam([*D_A.parameters(), *D_B.parameters()], lr=LEARNING_RATE, betas=BETAS)
    schedules = [torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config.steps))
                 for optimizer in (optimizer_g, optimizer_d)]
    pool_a, pool_b = ImagePool(seed=seed), ImagePool(seed=seed + 1)

    def train_step(batch):
        real_a, real_b = batch
        # Generators: fool the discriminators, close both cycles, leave target-domain images alone.
        D_A.requires_grad_(False)
        D_B.requires_grad_(False)
        fake_b, fake_a = G_AB(real_a), G_BA(real_b)
        adversarial = lsgan_loss(D_B(fake_b), 1.0) + lsgan_loss(D_A(fake_a), 1.0)
        cycle = l1(G_BA(fake_b), real_a) + l1(G_AB(fake_a), real_b)
        identity = l1(G_AB(real_b), real_b) + l1(G_BA(real_a), real_a) if identity_weight > 0 else torch.zeros(())
        loss_g = adversarial + cycle_weight * cycle + identity_weight * identity
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()

        # Discriminators: real → 1, generated (through the history pool) → 0; the loss halved, as in the paper.
        D_A.requires_grad_(True)
        D_B.requires_grad_(True)
        pooled_b, pooled_a = pool_b(fake_b), pool_a(fake_a)
        loss_d_b = 0.5 * (lsgan_loss(D_B(real_b), 1.0) + lsgan_loss(D_B(pooled_b), 0.0))
        loss_d_a = 0.5 * (lsgan_loss(D_A(real_a), 1.0) + lsgan_loss(D_A(pooled_a), 0.0))
        optimizer_d.zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        optimizer_d.step()
        for schedule in schedules:
            schedule.step()
        return {"loss": loss_g + loss_d_a + loss_d_b, "adversarial": adversarial, "cycle": cycle,
                "identity": identity, "d_a": loss_d_a, "d_b": loss_d_b, "lr": schedules[0].get_last_lr()[0]}

    state = {"G_AB": G_AB, "G_BA": G_BA, "D_A": D_A, "D_B": D_B, "optimizer_g": optimizer_g,
             "optimizer_d": optimizer_d, "schedule_g": schedules[0], "schedule_d": schedules[1],
             "pool_a": pool_a, "pool_b": pool_b}
    return train_step, state


def train(name: str, cycle_weight: float, identity_weight: float, norm: str = NORM):
    train_step, state = make_training(cycle_weight, identity_weight, norm)
    settings = dict(run=name, dataset=config.dataset, resolution=config.resolution,
                    train_images=config.train_images, steps=config.steps, batch_size=config.batch_size,
                    generator_width=config.generator_width, downsamplings=config.downsamplings,
                    residual_blocks=config.residual_blocks,
                    discriminator_width=config.discriminator_width, norm=norm, cycle_weight=cycle_weight,
                    identity_weight=identity_weight, lr=LEARNING_RATE, seed=SEED)
    history = icu.fit(train_step, UnpairedBatches(), steps=config.steps, state=state,
                      checkpoint=icu.checkpoint_dir() / "cyclegan" / f"{config.profile}-{name}.pt",
                      config=settings, description=name)
    for module in ("G_AB", "G_BA"):
        state[module].eval()
    print(f"{name}: {len(history.steps):,} steps at batch {config.batch_size} in {history.wall_time:.0f} s "
          f"on {icu.describe_device(device)}")
    return history, state


runs = {"CycleGAN": train("cyclegan", CYCLE_WEIGHT, IDENTITY_WEIGHT)}

# %%
history = runs["CycleGAN"][0]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
icu.plot_history(history, keys=["adversarial"], window=50, ax=axes[0], ylabel="LSGAN, both generators",
                 title="generators' adversarial loss")
icu.plot_history(history, keys=["cycle", "identity"], window=50, ax=axes[1], ylabel="L1 on [-1, 1]",
                 title="cycle and identity losses (unweighted)")
icu.plot_history(history, keys=["d_a", "d_b"], window=50, ax=axes[2], ylabel="LSGAN / 2",
                 title="discriminators' losses")
plt.tight_layout()
plt.show()

# %% [markdown]
# An LSGAN discriminator that cannot tell real from fake at all outputs 0.5 everywhere and has loss
# $\tfrac12(0.25 + 0.25) = 0.25$; the generators' adversarial loss is then $0.25$ per direction ($0.5$ in the
# left panel, which sums both). Numbers
# near these mean a balanced game, not a finished one. In the stored run the discriminators stay somewhat
# ahead (losses about 0.15–0.2, the generators' about 1.0 for the pair) from step 300 to the end. The cycle
# and identity losses are the ones to watch: they fall steadily, with one shared spike around step 1,750
# (where the adversarial loss jumps too), and keep falling while the learning rate decays.
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
# For B → A the same with the roles swapped.

# %% tags=["landing-figure"]
@torch.no_grad()
def translate(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([to_unit(generator(to_model(images[i:i + 200]).to(device))).cpu()
                      for i in range(0, len(images), 200)])


outputs = {}
for name, (_, state) in runs.items():
    fake_b, fake_a = translate(state["G_AB"], test_a), translate(state["G_BA"], test_b)
    outputs[name] = dict(fake_b=fake_b, fake_a=fake_a, cycle_a=translate(state["G_BA"], fake_b),
                         cycle_b=translate(state["G_AB"], fake_a))


def show_direction(name: str, source, forward, backward, truth, labels, n: int = 10, ax=None):
    rows = [source[:n], forward[:n], backward[:n]] + ([truth[:n]] if truth is not None else [])
    icu.show_images(torch.cat(rows), nrow=n, ax=ax, padding=1, title=name)
    for row, label in enumerate(labels[:len(rows)]):
        ax.text(-2, (row + 0.5) * (config.resolution + 1), label, ha="right", va="center", fontsize=9)


shown = outputs["CycleGAN"]
fig, axes = plt.subplots(2, 1, figsize=(12, 10))
show_direction("A → B (filled → outlined)", test_a, shown["fake_b"], shown["cycle_a"], test_b if has_truth else None,
               ["input x", "G(x)", "F(G(x))", "truth"], ax=axes[0])
show_direction("B → A (outlined → filled)", test_b, shown["fake_a"], shown["cycle_b"], test_a if has_truth else None,
               ["input y", "F(y)", "G(F(y))", "truth"], ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# What the pictures show. **A → B** empties the shapes and keeps their outline, colour, size, angle and
# position; the strokes are dotted and often brighter at the corners, and on the grey background, where the
# contrast is lowest, some outlines come out faint or speckled in several colours. The way back, $F(G(x))$,
# returns filled shapes of the right colour with softened corners: the outline carried enough to rebuild
# the scene. **B → A** fills the outlines with their own colour; the corners are rounded, and a few light
# shapes on the cream background come out pale or striped. Neither direction is clean at this budget, but
# both change the domain and keep the scene.
#
# ### The ablations beside the full model
# The same test scenes translated by every model, with the truth at the bottom. Without the cycle loss, the
# outputs are rings or discs in the target style but often in another colour (green shapes become orange
# rings, red ones blue) and rounder than the input: they are plausible target images, not translations of
# *this* input. Without the identity loss, cream backgrounds become black and black ones cream (grey stays
# grey), in both directions — a colour permutation that the cycle undoes exactly. With instance
# normalization, the outputs are multicoloured speckles around the right place, in the wrong colours.

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 6))
for ax, (direction, source, key, truth) in zip(axes, [("A → B", test_a, "fake_b", test_b),
                                                      ("B → A", test_b, "fake_a", test_a)]):
    rows = [source[:8]] + [outputs[name][key][:8] for name in runs] + ([truth[:8]] if has_truth else [])
    labels = ["input", *runs, "truth"][:len(rows)]
    icu.show_images(torch.cat(rows), nrow=8, ax=ax, padding=1, title=direction)
    for row, label in enumerate(labels):
        ax.text(-2, (row + 0.5) * (config.resolution + 1), label, ha="right", va="center", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Measured against the ground truth
#
# For every test scene and both directions (`icu.translation_scores`):
# - **MSE vs truth**: mean squared error of the translation against the true image (pixels in $[0, 1]$),
#   beside two baselines a translation must beat: the **identity map** (return the input unchanged) and the
#   **erased** image (the background alone). The erased baseline matters: outlines cover few pixels, so a
#   plain background is already close to the true outline image, and a model that blurs the shape away can
#   beat the identity map without translating anything.
# - **MSE on changed pixels**: the error only where input and truth differ — where the translation happens.
# - **cycle L1**: $\lVert F(G(x)) - x\rVert_1$ per pixel in $[0, 1]$.
# - **the classifier's verdict**: the reference shape classifier (`icu.shapes_classifier`, trained on
#   separate renders; held-out accuracy printed below) reads each translation. *Style* accuracy is the share
#   it calls outlined in A → B (filled in B → A): did the domain change? *Shape, colour and background*
#   accuracy, against the scene's true attributes: was the content kept? It plays the role of the paper's
#   FCN score, a pretrained network's judgement of whether the output has the right content.

# %%
classifier = icu.shapes_classifier(config.resolution, device) if has_truth else None
if has_truth:
    print("reference classifier, held-out accuracy: "
          + ", ".join(f"{name} {accuracy:.1%}" for name, accuracy in classifier.test_accuracy.items()))

directions = {"A → B": dict(source=test_a, fake="fake_b", cycled="cycle_a", truth=test_b,
                            attributes=test.attributes_b if has_truth else None),
              "B → A": dict(source=test_b, fake="fake_a", cycled="cycle_b", truth=test_a,
                            attributes=test.attributes_a if has_truth else None)}
scores = {}
for direction, d in directions.items():
    for name, out in outputs.items():
        row = {"cycle_l1": (out[d["cycled"]] - d["source"]).abs().mean().item()}
        if has_truth:
            row.update(icu.translation_scores(classifier, out[d["fake"]], d["source"], d["truth"], d["attributes"]))
        scores[direction, name] = row
    if has_truth:   # the two free baselines, read by the same classifier
        erased = icu.background_images(d["attributes"], config.resolution)
        for name, images in [("baseline: identity map", d["source"]), ("baseline: erased shape", erased)]:
            scores[direction, name] = {"cycle_l1": float("nan"), **icu.translation_scores(
                classifier, images, d["source"], d["truth"], d["attributes"])}

columns = [("mse", "MSE vs truth"), ("mse_changed_pixels", "changed px"), ("cycle_l1", "cycle L1"),
           ("accuracy_style", "style"), ("accuracy_shape", "shape"), ("accuracy_colour", "colour"),
           ("accuracy_background", "background")]
columns = [(key, title) for key, title in columns if key in scores["A → B", "CycleGAN"]]
for direction in directions:
    print(f"{direction:<28}" + "".join(f"{title:>14}" for _, title in columns))
    for (row_direction, name), row in scores.items():
        if row_direction == direction:
            print(f"  {name:<26}" + "".join(
                f"{'—':>14}" if np.isnan(row[key]) else f"{row[key]:>14.4f}" if key.startswith(("mse", "cycle"))
                else f"{row[key]:>14.1%}" for key, _ in columns))
    print()
print(f"{len(test_a):,} held-out test scenes per direction; {len(train_a):,} training images per domain; "
      f"{config.steps:,} steps at batch {config.batch_size} per run; device {icu.describe_device(device)}; "
      "wall time per run: " + ", ".join(f"{name} {h.wall_time:.0f} s" for name, (h, _) in runs.items()))

# %% [markdown]
# **What the stored `book` run says** (3,000 steps at batch 8 per run, about 4–5 minutes each on two CPU
# threads; the table above has every number, the wall times are printed under it).
#
# - **The full model translates in both directions and keeps the content it can see.** The classifier puts
#   94% of the A → B outputs in the outlined style and 85% of the B → A outputs in the filled style, and it
#   reads the right colour (99% and 96%) and background (100%) almost everywhere. Against the truth, the
#   translations are far closer than the identity map (MSE 0.0100 and 0.0154 against 0.0242 for both).
# - **A → B does not beat the erased image in mean squared error** (0.0100 against 0.0087), and we report it
#   as measured. An outline is a stroke about one pixel wide: drawn half a pixel off, or dotted, it is
#   penalised twice (where it is and where it should be), while the erased image pays only once for the
#   missing stroke. That is why the erased baseline exists, and why the classifier is read beside it: the
#   erased image has no shape (the classifier guesses right in a third of them, chance), the translations
#   keep it in 69% of scenes. In B → A, where the interior must be filled, the translations beat both
#   baselines (0.0154 against 0.0242 and 0.0266).
# - **Shape is the weakest part of the content**, 69% in A → B and 45% in B → A: at $32\times32$ a
#   square, a circle and a triangle differ by a few pixels of corners, and the filled shapes come out with
#   rounded corners (the pictures above).
# - **Without the identity loss, the colours are permuted.** Both directions still change the style (89% and
#   90%) and close their cycles (cycle L1 0.024–0.025, the full model's 0.016–0.020), but the background is
#   right in only 36% of the scenes and the MSE against the truth is 0.39–0.41, about sixteen times the
#   identity map's. A cycle
#   closes just as well through a consistent swap of colours — $G$ paints cream backgrounds black, $F$ paints
#   them back — which is the failure the paper's identity loss (its Section 5.2) was added for.
# - **Without the cycle loss, the content is not tied to the input.** The style changes (97% and 95%), the
#   background survives (the identity loss keeps it), but the colour of the shape is right in only 13% of
#   A → B translations (chance is 17%) and 48% of B → A: nothing asks the output to be *this* input's
#   translation rather than any plausible image of the target domain, and the cycle error is three to five
#   times the full model's.
# - **With the paper's instance normalization, colour is lost**: 16% and 18%, chance level — the blindness
#   shown in the sanity checks, now in a trained model — and in B → A the style changes in only a third of
#   the scenes.
#
# How this compares with the paper: its evaluation is on photographs without ground truth (AMT perceptual
# studies, and FCN scores of Cityscapes labels → photos, a segmentation network's reading of the output —
# the analogue of our classifier). Its ablation (Table 4, Figure 7) reaches the same conclusions on the
# objective: without the cycle loss the outputs stop depending on the input, and the identity loss is what
# keeps colours on tasks where they should not change.


# %%
results_rows = []
data_text = (f"{len(test_a):,} held-out scene pairs at {config.resolution}², filled ↔ outlined shapes" if has_truth
             else f"{len(test_a):,} {config.dataset} test images per domain at {config.resolution}²")
paper_notes = {"accuracy_shape": "no comparable number: the paper's analogue is an FCN score, a segmentation "
                                 "network's accuracy on Cityscapes labels→photo translations"}
main_keys = ["mse", "mse_identity", "mse_erased", "mse_changed_pixels", "cycle_l1", "accuracy_style",
             "accuracy_shape", "accuracy_colour", "accuracy_background"]
other_keys = ["mse", "cycle_l1", "accuracy_style", "accuracy_shape", "accuracy_colour", "accuracy_background"]
for (direction, name), row in scores.items():
    if name not in runs:
        continue
    history = runs[name][0]
    for key in main_keys if name == "CycleGAN" else other_keys:
        if key not in row:
            continue
        extra = ({"paper": paper_notes[key]} if name == "CycleGAN" and direction == "A → B" and key in paper_notes
                 else {})
        results_rows.append(dict(metric=f"{name}, {direction}: {key}", value=row[key], data=data_text,
                                 steps=len(history.steps), wall_time_s=history.wall_time,
                                 device=icu.describe_device(device), **extra))
results_file = icu.record_results("cyclegan", results_rows)

# %% [markdown]
# ## Quality gates
#
# Thresholds that an untrained or failed model does not pass, for the full model in both directions:
# - the translation is closer to the truth than the identity map, by a margin (MSE below
#   `gate_identity_fraction` × the identity map's), also on the changed pixels alone
#   (`gate_changed_fraction`);
# - it is compared with the erased shape: its MSE must stay below `gate_erased_fraction` × the erased
#   image's, and the classifier must read the right shape more often than on the erased images (which
#   have none, so it guesses), by `gate_shape_margin`;
# - the classifier puts the translations in the target style (`gate_style_accuracy`) and reads the content
#   (mean of shape, colour and background accuracy above `gate_content_accuracy`).
#
# In `smoke` (100 steps at $16\times16$) the gates only catch a broken pipeline. On real data without
# ground truth only the cycle error is checked.

# %%
for direction in directions:
    row = scores[direction, "CycleGAN"]
    assert np.isfinite(row["cycle_l1"]) and row["cycle_l1"] < 0.25, f"{direction}: cycle L1 {row['cycle_l1']:.3f}"
    if not has_truth:
        continue
    erased = scores[direction, "baseline: erased shape"]
    assert row["mse"] < config.gate_identity_fraction * row["mse_identity"], (
        f"{direction}: MSE vs truth {row['mse']:.4f} is not below {config.gate_identity_fraction} × the identity "
        f"map's {row['mse_identity']:.4f}")
    assert row["mse_changed_pixels"] < config.gate_changed_fraction * row["mse_changed_pixels_identity"], (
        f"{direction}: on the changed pixels, MSE {row['mse_changed_pixels']:.4f} is not below "
        f"{config.gate_changed_fraction} × the identity map's {row['mse_changed_pixels_identity']:.4f}")
    assert row["mse"] < config.gate_erased_fraction * row["mse_erased"], (
        f"{direction}: MSE vs truth {row['mse']:.4f} is not below {config.gate_erased_fraction} × the erased "
        f"image's {row['mse_erased']:.4f}")
    assert row["accuracy_shape"] > erased["accuracy_shape"] + config.gate_shape_margin, (
        f"{direction}: shape read in {row['accuracy_shape']:.1%} of translations, {erased['accuracy_shape']:.1%} "
        f"of erased images")
    assert row["accuracy_style"] >= config.gate_style_accuracy, (
        f"{direction}: the classifier puts only {row['accuracy_style']:.1%} of translations in the target style")
    content = np.mean([row["accuracy_shape"], row["accuracy_colour"], row["accuracy_background"]])
    assert content >= config.gate_content_accuracy, (
        f"{direction}: content kept in only {content:.1%} of translations (mean of shape, colour, background)")
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - CycleGAN learns a translation between two domains from unpaired images: two generators, two
#   discriminators, a least-squares adversarial loss in each direction, and a cycle-consistency loss
#   ($\lambda = 10$) that makes the generators near-inverses, so that they change what tells the domains
#   apart and keep the rest. An identity loss ($0.5\lambda$) keeps colours where the target domain allows them.
# - Two training details are part of the method: the discriminators see generated images through a
#   50-image history, and the learning rate is constant for half the run, then decays linearly to zero.
# - Unpaired training does not mean the result is unmeasurable: procedural data gives every test image its
#   true counterpart, so the translation's error, the content it kept and the domain it reached can be read
#   off directly — and compared with baselines that cost nothing, such as erasing the shape.
#
# **Common pitfalls** (each seen in public reimplementations)
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
