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
# # VQ-VAE: neural discrete representation learning
#
# | **Paper** | *Neural Discrete Representation Learning* — Aaron van den Oord, Oriol Vinyals, Koray Kavukcuoglu, 2017 ([arXiv 1711.00937](https://arxiv.org/abs/1711.00937)) {cite}`vandenoord2017neural` |
# | --- | --- |
# | **Family** | [Autoregressive models](../../book/autoregressive-family.md) |
# | **Trains here** | VQ-VAEs on 4,000 real MNIST digits (7×7 grids of 128 codes; four codebook recipes) and on procedural colour shapes, then a Gated PixelCNN prior over the digits' codes; about ten minutes on two CPU cores in `book` |
#
# **The idea in three sentences.** An autoencoder whose bottleneck is a grid of *discrete* symbols: the encoder's
# output vector at each position is replaced by the nearest of $K$ learned code vectors (a *codebook*), and the
# decoder sees only those codes. Because the nearest-neighbour lookup has no gradient, the decoder's gradient is
# copied straight through to the encoder, and two extra squared-error terms pull the codebook and the encoder
# towards each other. Generation is then a second, separate stage: an autoregressive model (here a Gated
# PixelCNN) is fitted to the grids of codes, sampled, and its samples are decoded into images.

# %% [markdown]
# ## Setup
#
# On Colab, the first cell installs this project's helper package `itemchest_utils`; elsewhere install it with
# `pip install -e .` from the repository root. `ITEMCHEST_PROFILE` (`smoke`, `book`, `full`) picks the scale; this
# page shows a `book` run.

# %%
import subprocess
import sys

REPOSITORY = "https://github.com/item-chest/item-chest"
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{REPOSITORY}"], check=True)

# %%
import copy
import hashlib
import math
import numbers
import textwrap
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(dataset="mnist_embedded", colour_dataset="shapes", colour_sizes=(1000, 200),
               hidden=32, codes=16, code_dim=8, batch_size=32, lr=2e-3, steps=100, colour_steps=80,
               restart_every=10, prior_channels=16, prior_layers=7, prior_steps=50, prior_lr=3e-3,
               samples=16, fid_samples=16),
    book=dict(dataset="mnist_embedded", colour_dataset="shapes", colour_sizes=(4000, 1000),
              hidden=64, codes=128, code_dim=32, batch_size=64, lr=1e-3, steps=1500,
              colour_steps=1500, restart_every=100, prior_channels=32, prior_layers=7,
              prior_steps=4000, prior_lr=1e-3, samples=64, fid_samples=200),
    full=dict(dataset="mnist", colour_dataset="cifar10", colour_sizes=None, hidden=256, codes=512,
              code_dim=64, batch_size=128, lr=2e-4, steps=100_000, colour_steps=250_000,
              restart_every=1000, prior_channels=128, prior_layers=15, prior_steps=100_000,
              prior_lr=3e-4, samples=64, fid_samples=10_000),
    gates=dict(
        smoke=dict(reconstruction_fraction=0.9, colour_fraction=0.5, perplexity_floor=2.0,
                   prior_fraction=0.9, context_check=False, restart_check=False, fid_fraction=1.5),
        book=dict(reconstruction_fraction=0.3, colour_fraction=0.3, perplexity_floor=40.0,
                  prior_fraction=0.8, context_check=True, restart_check=True, fid_fraction=0.5),
        full=dict(reconstruction_fraction=0.3, colour_fraction=0.3, perplexity_floor=100.0,
                  prior_fraction=0.8, context_check=True, restart_check=True, fid_fraction=0.3)),
)
BETA = 0.25         # commitment weight β (the paper: results robust for 0.1 … 2.0)
EMA_DECAY = 0.99    # γ of the EMA codebook variant (the paper's appendix)
SEED = 0

device = icu.pick_device()
icu.seed_everything(SEED)
print("device:", icu.describe_device(device))
config

# %% [markdown]
# ## The idea in math
#
# **Three pieces.** An encoder maps an image $x$ to a grid of vectors $z_e(x) \in \mathbb R^{H \times W \times D}$
# (here a 28×28 digit to a 7×7 grid of $D$-dimensional vectors). A *codebook* holds $K$ vectors
# $e_1, \dots, e_K \in \mathbb R^D$. Every grid position is replaced by its nearest code,
#
# $$
# k_{hw} = \arg\min_j \lVert z_e(x)_{hw} - e_j \rVert_2, \qquad z_q(x)_{hw} = e_{k_{hw}},
# $$
#
# and a decoder turns $z_q(x)$ into the parameters of $p(x \mid z_q)$ (Bernoulli logits for binarized digits).
# The *latent variable* is the grid of integers $k \in \{1, \dots, K\}^{H \times W}$; the posterior
# $q(k \mid x)$ is one-hot — deterministic.
#
# **The loss** (the paper's Eq. 3), with $\text{sg}[\cdot]$ the stop-gradient (identity forward, zero gradient):
#
# $$
# L = \underbrace{-\log p(x \mid z_q(x))}_{\text{reconstruction}}
#   + \underbrace{\lVert \text{sg}[z_e(x)] - e \rVert_2^2}_{\text{codebook loss}}
#   + \underbrace{\beta\,\lVert z_e(x) - \text{sg}[e] \rVert_2^2}_{\text{commitment loss}},
#   \qquad \beta = 0.25 .
# $$
#
# The codebook loss moves each chosen code towards the encoder outputs assigned to it (a gradient version of
# $k$-means); the commitment loss keeps the encoder's outputs close to their codes, so they do not grow without
# bound while the codebook chases them. Neither term reaches the decoder.
#
# **The straight-through estimator.** $\arg\min$ has no useful gradient, so the reconstruction term cannot be
# differentiated with respect to the encoder. The paper copies the decoder's gradient at its input $z_q$ to the
# encoder's output $z_e$: $\nabla_{z_e} L_\text{rec} := \nabla_{z_q} L_\text{rec}$. In code this is one line,
# $z_e + \text{sg}[z_q - z_e]$: its value is $z_q$, its derivative with respect to $z_e$ the identity.
#
# **The prior.** During training the prior over codes is uniform, so the {term}`KL divergence` term of the
# {term}`ELBO`, $\mathrm{KL}(q(k \mid x) \,\|\, p(k)) = HW \log K$, is a constant and is dropped. Afterwards an
# autoregressive model $p_\psi(k) = \prod_{i} p_\psi(k_i \mid k_{<i})$ is fitted to the codes of the training
# images (positions in raster order). Sampling $k \sim p_\psi$ and decoding gives new images.
#
# **A likelihood bound.** Because $q(k \mid x)$ is one-hot at $k(x)$, the ELBO of the two-stage model is
#
# $$
# \log p(x) \;\ge\; \log p(x \mid z_q(x)) + \log p_\psi(k(x))
# \quad\Longleftrightarrow\quad
# -\log p(x) \;\le\; \underbrace{-\log p(x \mid z_q(x))}_{\text{reconstruction nats}}
#   \;+\; \underbrace{-\log p_\psi(k(x))}_{\text{prior nats}},
# $$
#
# the number the paper reports in {term}`bits per dimension` for CIFAR-10, and this page for digits.

# %% [markdown]
# ## Data
#
# Two datasets. **Digits**: the embedded MNIST digits (4,000 for training, 1,000 held out), binarized afresh at
# every training step and, for evaluation, with *the same fixed binarization of the same held-out digits as the
# [VAE page](../vae/vae.ipynb)*, so our bound and the VAE's can be compared. **Colour shapes**: procedural 32×32
# images of one shape on a background (`icu.shapes_dataset`), which the encoder turns into 8×8 grids. The
# `full` profile uses all 70,000 MNIST digits and CIFAR-10, the paper's dataset (both downloaded once when
# online; offline `icu.load_images` stops with a message saying what to do). On CIFAR-10 the page measures
# reconstruction and codebook use only: the prior and the bits-per-dimension bound are trained and computed for
# the digits, so `full` gives no number to set beside the paper's 4.67 bits/dim on CIFAR-10.

# %%
mnist = icu.load_images(config.dataset)
# grey levels, (N, 1, 28, 28)
train_digits = mnist.train_images
# as on the VAE page
test_binary = icu.binarize(mnist.test_images.flatten(1), seed=1).view(-1, 1, 28, 28)
# for code statistics
train_fixed = icu.binarize(train_digits.flatten(1), seed=2).view(-1, 1, 28, 28)
digit_batches = icu.TensorBatches(train_digits, batch_size=config.batch_size, seed=SEED,
                                  device=device)


def load_colour_images():
    """(name, training images, held-out images) in [0, 1], 3×32×32."""
    if config.colour_dataset == "shapes":
        n_train, n_test = config.colour_sizes
        train, _ = icu.shapes_dataset(n_train, resolution=32, seed=1)
        test, _ = icu.shapes_dataset(n_test, resolution=32, seed=2)
        return "procedural shapes", train, test
    data = icu.load_images(config.colour_dataset)  # CIFAR-10 in `full`
    return data.name, data.train_images, data.test_images


colour_name, train_colour, test_colour = load_colour_images()
colour_batches = icu.TensorBatches(train_colour, batch_size=config.batch_size, seed=SEED,
                                   device=device)
print(f"{mnist.name}: {len(train_digits):,} training / {len(test_binary):,} held-out digits, "
      f"{tuple(train_digits.shape[1:])}")
print(f"{colour_name}: {len(train_colour):,} training / {len(test_colour):,} held-out images, "
      f"{tuple(train_colour.shape[1:])}")
fig, axes = plt.subplots(2, 1, figsize=(10, 2.4))
icu.show_images(test_binary[:16], nrow=16, ax=axes[0], title="held-out digits, fixed binarization")
icu.show_images(test_colour[:16], nrow=16, ax=axes[1], title=f"held-out {colour_name}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The model
#
# **Encoder and decoder.** The paper's convolutional design at a smaller width: two stride-2 4×4 convolutions
# (28×28 → 14×14 → 7×7; 32×32 → 8×8), two residual blocks (ReLU, 3×3 conv, ReLU, 1×1 conv), and a 1×1 convolution
# to $D$ channels, which is $z_e(x)$. The decoder mirrors it with transposed convolutions. The paper uses 256
# hidden units; `book` uses `hidden` = 64 (the `full` profile 256).

# %%
class ResidualBlock(nn.Module):
    """x + conv1×1(ReLU(conv3×3(ReLU(x)))): the paper's residual block."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels // 2, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(channels // 2, channels, 1))

    def forward(self, x):
        return x + self.body(x)


def make_encoder(channels: int, hidden: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),  # 28 → 14 (32 → 16)
        nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1), nn.ReLU(),    # 14 → 7  (16 → 8)
        nn.Conv2d(hidden, hidden, 3, padding=1),
        ResidualBlock(hidden), ResidualBlock(hidden), nn.ReLU(),
        nn.Conv2d(hidden, dim, 1))                                            # z_e: D channels


def make_decoder(channels: int, hidden: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(dim, hidden, 3, padding=1),
        ResidualBlock(hidden), ResidualBlock(hidden), nn.ReLU(),
        nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),  # 7 → 14
        nn.ConvTranspose2d(hidden // 2, channels, 4, stride=2, padding=1))          # 14 → 28


# %% [markdown]
# **The codebook and the quantiser.** $K$ vectors of dimension $D$, initialised uniformly in $\pm\sqrt{3/D}$ like
# the authors' Sonnet code. The nearest code is found from $\lVert z - e_j\rVert^2 = \lVert z\rVert^2 - 2 z\cdot
# e_j + \lVert e_j\rVert^2$, one matrix product for all positions. The buffers at the end serve the training
# recipes below: code-usage counts, and the running averages of the EMA variant.

# %%
def positive_integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"the {name} must be a positive integer, not {value!r}")
    return int(value)


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        self.num_codes = positive_integer(num_codes, "codebook size K")
        self.dim = positive_integer(dim, "code dimension D")
        limit = math.sqrt(3 / self.dim)
        self.codebook = nn.Parameter(torch.empty(self.num_codes, self.dim).uniform_(-limit, limit))
        self.register_buffer("usage", torch.zeros(self.num_codes))       # uses since the last check
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        # unused codes at the last check
        self.register_buffer("dead", torch.zeros(()))
        self.register_buffer("ema_count", torch.ones(self.num_codes))    # N_i (EMA variant)
        self.register_buffer("ema_sum", self.codebook.detach().clone())  # m_i (EMA variant)

    def nearest(self, flat):
        """Index of the nearest code for each row of flat (N, D)."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T
                     + self.codebook.pow(2).sum(1))
        return distances.argmin(1)

    def lookup(self, codes):
        """Code grids (B, H, W) of integers → z_q (B, D, H, W)."""
        if codes.dtype != torch.long or codes.min() < 0 or codes.max() >= self.num_codes:
            raise ValueError(f"codes must be integers in 0 … {self.num_codes - 1} (this codebook "
                             f"has K = {self.num_codes}); got {codes.dtype}, max "
                             f"{codes.max().item()}: codes from another codebook?")
        return self.codebook[codes].permute(0, 3, 1, 2)

    def forward(self, z_e):
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.dim)
        codes = self.nearest(flat).view(z_e.shape[0], *z_e.shape[2:])
        return self.lookup(codes), codes


# %% [markdown]
# **The losses and the straight-through estimator**, each under its equation:
#
# - codebook loss $\lVert \text{sg}[z_e(x)] - e\rVert_2^2$ and commitment loss $\lVert z_e(x) - \text{sg}[e]\rVert_2^2$
#   (`vq_losses`; β is applied in the training step), summed over the grid per image, as the reconstruction term
#   is summed over pixels;
# - the straight-through estimator $z_e + \text{sg}[z_q - z_e]$ (`straight_through`);
# - the reconstruction term $-\log p(x \mid z_q)$ (`reconstruction_nats`): Bernoulli for binarized digits; for
#   colour images a Gaussian with a fixed variance $\sigma^2$ (the training pixels' variance), i.e. a scaled
#   squared error, up to a constant.

# %%
def vq_losses(z_e, z_q):
    codebook = (z_e.detach() - z_q).pow(2).sum((1, 2, 3))    # ‖sg[z_e] − e‖²: moves the codes
    commitment = (z_e - z_q.detach()).pow(2).sum((1, 2, 3))  # ‖z_e − sg[e]‖²: moves the encoder
    return codebook, commitment


def straight_through(z_e, z_q):
    """Value z_q; gradient copied to z_e unchanged (z_e + sg[z_q − z_e])."""
    return z_e + (z_q - z_e).detach()


def reconstruction_nats(model, output, x):
    """−log p(x | z_q) per image: Bernoulli logits, or a Gaussian of fixed variance (without its
    constant)."""
    if model.likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(output, x, reduction="none").sum((1, 2, 3))
    return (model.to_image(output) - x).pow(2).sum((1, 2, 3)) / (2 * model.pixel_variance)


# %%
class VQVAE(nn.Module):
    def __init__(self, image_shape, hidden: int, num_codes: int, dim: int,
                 likelihood: str = "bernoulli", pixel_variance: float = 1.0):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', not {likelihood!r}")
        self.image_shape, self.likelihood = tuple(image_shape), likelihood
        self.pixel_variance = pixel_variance
        self.encoder = make_encoder(self.image_shape[0], hidden, dim)
        self.quantizer = VectorQuantizer(num_codes, dim)
        self.decoder = make_decoder(self.image_shape[0], hidden, dim)

    def encode(self, x):
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError("this model takes images of shape (N, "
                             f"{', '.join(map(str, self.image_shape))}); got {tuple(x.shape)}. "
                             "Resize them, or use a model built for that shape.")
        return self.encoder(x if self.likelihood == "bernoulli" else x - 0.5)

    def forward(self, x):
        z_e = self.encode(x)
        z_q, codes = self.quantizer(z_e)
        return self.decoder(straight_through(z_e, z_q)), z_e, z_q, codes

    def codes(self, x):
        return self.quantizer(self.encode(x))[1]

    def decode_codes(self, codes):
        return self.decoder(self.quantizer.lookup(codes))

    def to_image(self, output):
        return torch.sigmoid(output) if self.likelihood == "bernoulli" else output + 0.5


# %% [markdown]
# ## Checks that training cannot change
#
# On a small, randomly initialised model (the same classes, fixed sizes, so the printout is the same in every
# profile):
#
# 1. **Quantisation picks the nearest code**: `nearest` against a brute-force loop over all codes in double
#    precision.
# 2. **The straight-through gradient.** With the reconstruction loss alone, the gradient that reaches the encoder
#    output $z_e$ must equal the decoder's gradient at its input, computed independently by decoding $z_q$ as a
#    fresh leaf tensor. With the full loss, the encoder also gets the commitment gradient
#    $2\beta(z_e - e)$, and the codebook gets only the codebook-loss gradient $\sum_{i: k_i = j} 2(e_j - z_{e,i})$,
#    nothing from the reconstruction.
# 3. **Bad input** gets a clear error: a codebook size that is not a positive integer, images of the wrong
#    shape, codes from a larger codebook.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
check_model = VQVAE((1, 28, 28), hidden=16, num_codes=16, dim=8).to(device)
quantizer = check_model.quantizer
z_random = torch.randn(2000, 8, device=device) * 0.5
brute_force = torch.stack([((z_random.double() - code.double()) ** 2).sum(1)
                           for code in quantizer.codebook.detach()], dim=1).argmin(1)
print("nearest code equals the brute-force search (2,000 vectors, K = 16):",
      torch.equal(quantizer.nearest(z_random), brute_force))
x_check = test_binary[:8].to(device)
output, z_e, z_q, codes = check_model(x_check)
print("z_e, z_q:", tuple(z_e.shape), tuple(z_q.shape), "| codes:", tuple(codes.shape),
      "| decoder output:", tuple(output.shape))
print("z_q is the codebook row of each code:",
      torch.equal(z_q, quantizer.codebook[codes].permute(0, 3, 1, 2)))

# %%
# NBVAL_CHECK_OUTPUT
reconstruction = reconstruction_nats(check_model, output, x_check).sum()
(through,) = torch.autograd.grad(reconstruction, z_e, retain_graph=True)
z_q_leaf = quantizer.codebook.detach()[codes].permute(0, 3, 1, 2).requires_grad_()
(at_decoder,) = torch.autograd.grad(reconstruction_nats(check_model, check_model.decoder(z_q_leaf),
                                                        x_check).sum(), z_q_leaf)
print("straight-through gradient at z_e equals the decoder's gradient at z_q:",
      torch.allclose(through, at_decoder, rtol=1e-4, atol=1e-6))
codebook_loss, commitment_loss = vq_losses(z_e, z_q)
total = reconstruction + codebook_loss.sum() + BETA * commitment_loss.sum()
encoder_gradient, codebook_gradient = torch.autograd.grad(total, [z_e, quantizer.codebook])
print("encoder gets decoder gradient + 2β(z_e − e):",
      torch.allclose(encoder_gradient, at_decoder + 2 * BETA * (z_e - z_q).detach(),
                     rtol=1e-4, atol=1e-5))
flat_e, flat_codes = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 8), codes.flatten()
expected = torch.zeros_like(quantizer.codebook).index_add_(
    0, flat_codes, 2 * (quantizer.codebook.detach()[flat_codes] - flat_e))
print("codebook gets only Σ 2(e − z_e) over its assignments:",
      torch.allclose(codebook_gradient, expected, rtol=1e-4, atol=1e-5))


# %%
# NBVAL_CHECK_OUTPUT
def error_of(make):
    try:
        make()
    except ValueError as error:
        return textwrap.fill(f"ValueError: {error}", 100, subsequent_indent="    ")
    return "no error"


print(error_of(lambda: VectorQuantizer(num_codes=0, dim=8)))
print(error_of(lambda: VectorQuantizer(num_codes=12.5, dim=8)))
print(error_of(lambda: check_model.encode(torch.rand(4, 3, 32, 32, device=device))))
print(error_of(lambda: check_model.decode_codes(torch.full((1, 7, 7), 99, device=device))))

# %% [markdown]
# ## Training
#
# One training step is the paper's algorithm: binarize a batch (digits), encode, quantise, decode through the
# straight-through estimator, and take an Adam step on reconstruction + codebook + β·commitment. We compare four
# recipes for the codebook, at the same budget:
#
# - **the paper's**: the codebook is learned by its loss term, as above;
# - **+ restarts**: the same, and every `restart_every` steps each code that no encoder output chose in that
#   window (a *dead code*) is moved onto a random encoder output of the current batch — a simple form of the
#   "random restarts" of Jukebox {cite}`dhariwal2020jukebox`, which resets codes whose running usage falls below a
#   threshold. Not in the paper; a common fix;
# - **EMA**: the codebook is not trained by gradient but set to running averages of the encoder outputs assigned
#   to each code (an {term}`exponential moving average`; the paper's appendix A.1, and its loss is then
#   reconstruction + β·commitment only). The paper offers it as an alternative and did *not* use it for its
#   experiments;
# - **EMA + restarts**.
#
# Code usage is measured by the *perplexity* of the assignments, $\exp(-\sum_j p_j \log p_j)$ with $p_j$ the share
# of positions that chose code $j$: $K$ when all codes are used equally, 1 when one code takes everything.
#
# **The EMA update.** With $n_i$ the number of encoder outputs assigned to code $i$ in the batch and $z_{i,j}$
# those outputs:
# $N_i \leftarrow \gamma N_i + (1-\gamma)\,n_i$, $m_i \leftarrow \gamma m_i + (1-\gamma)\sum_j z_{i,j}$,
# $e_i = m_i / N_i$, with $\gamma = 0.99$ and the Laplace smoothing of $N_i$ of the authors' Sonnet code
# (it keeps an unused code from dividing by zero). Here $N_i$ starts at 1 and $m_i$ at $e_i$, so every code
# starts where it was initialised (Sonnet starts both at 0 and corrects the bias instead).

# %%
def perplexity(counts):
    p = counts.float() / counts.sum()
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum())


@torch.no_grad()
def ema_update(quantizer, flat, codes, epsilon=1e-5):
    one_hot = F.one_hot(codes, quantizer.num_codes).type_as(flat)                    # (N, K)
    quantizer.ema_count.mul_(EMA_DECAY).add_(one_hot.sum(0), alpha=1 - EMA_DECAY)      # N_i
    quantizer.ema_sum.mul_(EMA_DECAY).add_(one_hot.T @ flat, alpha=1 - EMA_DECAY)      # m_i
    n = quantizer.ema_count.sum()
    smoothed = (quantizer.ema_count + epsilon) / (n + quantizer.num_codes * epsilon) * n
    # e_i = m_i / N_i
    quantizer.codebook.copy_(quantizer.ema_sum / smoothed[:, None])


@torch.no_grad()
def track_usage(quantizer, counts, flat, restart: bool):
    """Count code use; every restart_every steps note the unused (dead) codes and, with restarts,
    move each onto a random encoder output of the current batch."""
    quantizer.usage += counts
    quantizer.steps += 1
    if quantizer.steps % config.restart_every == 0:
        dead = quantizer.usage == 0
        quantizer.dead.fill_(dead.sum())
        if restart and dead.any():
            chosen = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
            quantizer.codebook[dead] = chosen
            quantizer.ema_count[dead], quantizer.ema_sum[dead] = 1.0, chosen
        quantizer.usage.zero_()
    return quantizer.dead.clone()


# %%
def make_training(model, update: str, restart: bool, prepare):
    quantizer = model.quantizer
    quantizer.codebook.requires_grad_(update == "loss")  # EMA: set by averages, not by Adam
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)

    def train_step(batch):
        x = prepare(batch)
        output, z_e, z_q, codes = model(x)
        reconstruction = reconstruction_nats(model, output, x).mean()
        codebook, commitment = (term.mean() for term in vq_losses(z_e, z_q))  # per image
        loss = reconstruction + BETA * commitment + (codebook if update == "loss" else 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        flat, codes = z_e.detach().permute(0, 2, 3, 1).reshape(-1, quantizer.dim), codes.flatten()
        counts = torch.bincount(codes, minlength=quantizer.num_codes)
        if update == "ema":
            ema_update(quantizer, flat, codes)
        dead = track_usage(quantizer, counts, flat, restart)
        return dict(reconstruction=reconstruction, perplexity=perplexity(counts), dead_codes=dead)

    return optimizer, train_step


# %%
MODEL_SETTINGS = ("hidden", "codes", "code_dim", "batch_size", "lr", "restart_every")
TRAINING_CODE = [ResidualBlock, make_encoder, make_decoder, VectorQuantizer, VQVAE, vq_losses,
                 straight_through, reconstruction_nats, perplexity, ema_update, track_usage,
                 make_training]
RECIPES = {"paper": ("loss", False), "restarts": ("loss", True), "ema": ("ema", False),
           "ema_restarts": ("ema", True)}  # name: (codebook update, restart dead codes)
RECIPE_NAMES = {"paper": "the paper's (codebook loss)", "restarts": "codebook loss + restarts",
                "ema": "EMA codebook", "ema_restarts": "EMA + restarts"}


def train_vqvae(name, image_shape, batches, prepare, steps, dataset, **model_options):
    update, restart = RECIPES[name.split("/")[-1]]
    icu.seed_everything(SEED)
    model = VQVAE(image_shape, config.hidden, config.codes, config.code_dim,
                  **model_options).to(device)
    optimizer, train_step = make_training(model, update, restart, prepare)
    settings = {key: getattr(config, key) for key in MODEL_SETTINGS}
    history = icu.fit(train_step, batches, steps=steps,
                      state={"model": model, "optimizer": optimizer},
                      run=f"vqvae/{name.replace('/', '_')}", code=TRAINING_CODE,
                      config={**settings, "dataset": dataset, "steps": steps, "update": update,
                              "restart": restart, **model_options},
                      description=f"VQ-VAE {dataset}, {name.split('/')[-1]}")
    return model.eval(), history


# %% [markdown]
# ### Four recipes on the digits
#
# Each run: `steps` Adam steps (1,500 in `book`) on batches of 64 dynamically binarized digits, learning rate
# $10^{-3}$ — the paper uses $2 \cdot 10^{-4}$ for 250,000 steps of 128, a budget 300 times ours. From here on the
# page's digits model is the second recipe, the paper's objective with restarts; the comparison below is why.

# %%
digit_models, digit_histories = {}, {}
for recipe in RECIPES:
    digit_models[recipe], digit_histories[recipe] = train_vqvae(
        f"digits/{recipe}", (1, 28, 28), digit_batches, torch.bernoulli, config.steps,
        config.dataset)
model = digit_models["restarts"]  # the page's digits model from here on
print(f"VQ-VAE: {sum(p.numel() for p in model.parameters()):,} parameters; K = {config.codes} "
      f"codes of D = {config.code_dim}; grid "
      f"{tuple(model.encode(test_binary[:1].to(device)).shape[2:])}")

# %% [markdown]
# Below, the codebook usage over training: the perplexity of each training batch's code assignments (of
# `batch_size` × 49 positions) and the number of dead codes — codes that no encoder output chose during the last
# `restart_every` steps.

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for recipe, history in digit_histories.items():
    icu.plot_history(history, keys=["perplexity"], window=20, ax=axes[0], ylabel="perplexity")
    icu.plot_history(history, keys=["dead_codes"], window=1, ax=axes[1], ylabel="codes")
    icu.plot_history(history, keys=["reconstruction"], window=20, ax=axes[2],
                     ylabel="nats per digit")
for ax, title in zip(axes, ["code usage (batch perplexity)", "dead codes",
                            "reconstruction −log p(x | z_q)"]):
    lines = ax.get_lines()
    ax.legend(lines, [RECIPE_NAMES[r] for r in digit_histories][:len(lines)], fontsize=8)
    ax.set_title(title)
axes[0].axhline(config.codes, color="grey", ls=":", lw=1)
axes[2].set_ylim(0, 250)
plt.tight_layout()
plt.show()

# %% [markdown]
# What to look for: without restarts, most codes are never chosen — the encoder's first outputs land near a few
# codes, only those receive a codebook gradient (or, with EMA, an average), and the rest stay where they were
# initialised, out of reach. Restarts put dead codes where the encoder's outputs are, and usage rises towards
# $K$.
#
# The same on held-out digits: reconstruction nats under the fixed binarization, the perplexity of the 49,000 code
# assignments of the 1,000 held-out digits, and the codes that no training digit uses at all (4,000 digits, one
# fixed binarization). Beside them, two baselines that learned nothing: independent pixels with the training
# digits' mean grey levels, and the untrained autoencoder.

# %%
@torch.no_grad()
def evaluate(model, images, batch_size=500):
    """Per-image reconstruction nats and code grids."""
    nats, grids = [], []
    for batch in icu.TensorBatches(images, batch_size=batch_size):
        batch = batch.to(device)
        output, _, _, codes = model(batch)
        nats.append(reconstruction_nats(model, output, batch).cpu())
        grids.append(codes.cpu())
    return torch.cat(nats), torch.cat(grids)


def position_prior_nats(train_codes, codes):
    """−log p(codes) per grid under each position's code frequencies in train_codes (add-one
    smoothed)."""
    height, width = train_codes.shape[1:]
    # one bin per (position, code)
    offset = torch.arange(height * width).view(height, width) * config.codes
    counts = torch.bincount((train_codes + offset).flatten(),
                            minlength=height * width * config.codes)
    counts = counts.view(height, width, config.codes).float() + 1
    log_p = (counts / counts.sum(-1, keepdim=True)).log()
    return -log_p.gather(-1, codes.permute(1, 2, 0)).sum((0, 1))


def usage_summary(model, test_images, train_images):
    nats, codes = evaluate(model, test_images)
    _, train_codes = evaluate(model, train_images)
    used = torch.bincount(train_codes.flatten(), minlength=config.codes) > 0
    counts = torch.bincount(codes.flatten(), minlength=config.codes)
    return dict(nats=nats.mean().item(), perplexity=perplexity(counts).item(),
                dead=int((~used).sum()),
                position_nats=position_prior_nats(train_codes, codes).mean().item(),
                codes=codes, per_image=nats)


# %%
digit_summary = {recipe: usage_summary(m, test_binary, train_fixed)
                 for recipe, m in digit_models.items()}
icu.seed_everything(SEED)
untrained_digits = usage_summary(VQVAE((1, 28, 28), config.hidden, config.codes,
                                       config.code_dim).to(device),
                                 test_binary, train_fixed)
pixel_means = train_digits.mean(0).clamp(1e-3, 1 - 1e-3)
pixel_baseline = F.binary_cross_entropy(pixel_means.expand_as(test_binary), test_binary,
                                        reduction="none").sum((1, 2, 3)).mean().item()
rows = [["independent pixels (training means)", pixel_baseline, "—", "—", "—", "—"],
        ["untrained autoencoder", untrained_digits["nats"], untrained_digits["perplexity"],
         untrained_digits["dead"], "—", "—"]]
rows += [[RECIPE_NAMES[r], s["nats"], s["perplexity"], s["dead"], s["nats"] + s["position_nats"],
          f"{digit_histories[r].wall_time:.0f} s"] for r, s in digit_summary.items()]
icu.show_table(["digits model", "held-out reconstruction nats", "held-out perplexity",
                f"codes unused by training digits (of {config.codes})",
                "+ position-wise prior (nats)", "training time"], rows)

# %% [markdown]
# In the stored run the untrained autoencoder sends nearly every position to the same few codes (perplexity 1.26;
# 123 codes unused): at initialisation the encoder's outputs differ little compared with the spread of the
# codebook, so they share one nearest code. Without
# restarts the encoder then discovers codes only slowly — after 1,500 steps 109 (codebook loss) and 99 (EMA) of
# the 128 codes are still used by no training digit, and the held-out perplexity is about 16. With restarts, the
# first restart (step 100) revives over a hundred codes at once; from step 300 on at most 3 are dead at a check, and
# none at the end. The held-out perplexity is then 116 (codebook loss) and 101 (EMA), and the reconstruction
# improves from 45.6 to 34.0 nats (codebook loss) and from 47.1 to 31.1 nats (EMA). EMA against the codebook loss,
# at the same budget: about the same without restarts, 3 nats better with them — one seed each, so read small
# differences with care. The last column is a first look at the price of using more codes: with each
# position's code frequencies as the prior, the bound is 166 nats per digit for the paper's recipe and 247 with
# restarts. More codes in use means more nats to name them; the bound section returns to this.

# %% [markdown]
# ### The colour shapes
#
# The same architecture on 32×32 colour images, trained with the codebook loss and restarts, with the Gaussian
# likelihood: `colour_steps` steps; an 8×8 grid of codes.

# %%
colour_variance = train_colour.var().item()
colour_model, colour_history = train_vqvae("colour/restarts", (3, 32, 32), colour_batches,
                                           lambda x: x, config.colour_steps, config.colour_dataset,
                                           likelihood="gaussian",
                                           pixel_variance=round(colour_variance, 6))


@torch.no_grad()
def mean_squared_error(model, images):
    errors = [(model.to_image(model(b.to(device))[0]).clamp(0, 1) - b.to(device))
              .pow(2).mean((1, 2, 3)).cpu()
              for b in icu.TensorBatches(images, batch_size=500)]
    return torch.cat(errors).mean().item()


icu.seed_everything(SEED)
untrained_colour = VQVAE((3, 32, 32), config.hidden, config.codes, config.code_dim,
                         "gaussian").to(device)
colour_mse = mean_squared_error(colour_model, test_colour)
colour_baseline = (test_colour - train_colour.mean(0)).pow(2).mean().item()
_, colour_codes = evaluate(colour_model, test_colour)
colour_perplexity = perplexity(torch.bincount(colour_codes.flatten(),
                                              minlength=config.codes)).item()
icu.show_table(["colour model", "held-out MSE per pixel", "held-out perplexity"],
               [["mean training image", colour_baseline, "—"],
                ["untrained autoencoder", mean_squared_error(untrained_colour, test_colour), "—"],
                ["VQ-VAE, codebook loss + restarts", colour_mse, colour_perplexity]])

# %% [markdown]
# ## Reconstructions
#
# Held-out images (top row of each pair) and their reconstructions from the code grid alone (below): digits as the
# decoder's pixel probabilities, shapes as its mean colour.

# %%
with torch.no_grad():
    digit_recon = model.to_image(model(test_binary[:16].to(device))[0]).cpu()
    colour_recon = (colour_model.to_image(colour_model(test_colour[:16].to(device))[0])
                    .clamp(0, 1).cpu())
fig, axes = plt.subplots(2, 1, figsize=(10, 3.6))
icu.show_images(torch.cat([test_binary[:16], digit_recon]), nrow=16, ax=axes[0],
                title=f"digits: held-out / reconstruction from 7×7 codes (K = {config.codes})")
icu.show_images(torch.cat([test_colour[:16], colour_recon]), nrow=16, ax=axes[1],
                title=f"{colour_name}: held-out / reconstruction from 8×8 codes")
plt.tight_layout()
plt.show()

# %% [markdown]
# The digits come back with their stroke, thickness and slant; what is lost is the binarization noise of single
# pixels, which no code can predict. The shapes keep position, size, colour and background, and lose sharpness: thin
# outlines return blurred with colour fringes, and small triangles lose their corners — 64 codes of 7 bits for 3,072
# colour values is a strong compression, and a Gaussian likelihood prefers a blur to a misplaced edge. Held-out
# MSE per pixel: 0.0033, against 0.112 for the mean image.
#
# ### What the codes carry: swapping parts of two code grids
#
# The paper argues that discrete latents capture the features that span many dimensions (objects in images,
# phonemes in speech) and leave local noise and detail to the decoder. A direct test: take the code grids of two held-out digits, and decode a grid whose left four columns
# come from the first and right three columns from the second (and likewise top and bottom). If each code
# described only its own patch, we would see two half-digits glued together; the decoder may also blend them
# into one stroke.

# %%
def swap_codes(first, second, left=4, top=4):
    """Grids with the left columns (top rows) of `first` and the rest of `second`."""
    left_right, top_bottom = first.clone(), first.clone()
    left_right[:, :, left:], top_bottom[:, top:, :] = second[:, :, left:], second[:, top:, :]
    return left_right, top_bottom


first, second = digit_summary["restarts"]["codes"][:10], digit_summary["restarts"]["codes"][10:20]
left_right, top_bottom = swap_codes(first, second)
with torch.no_grad():
    decoded = {name: model.to_image(model.decode_codes(grid.to(device))).cpu()
               for name, grid in [("first", first), ("second", second),
                                  ("left of first | right of second", left_right),
                                  ("top of first / bottom of second", top_bottom)]}
fig, axes = plt.subplots(6, 1, figsize=(8, 6.4))
strips = [("first digit", test_binary[:10]), ("second digit", test_binary[10:20]), *decoded.items()]
for ax, (title, images) in zip(axes, strips):
    icu.show_images(images, nrow=10, ax=ax)
    ax.set_title(title if title.endswith("digit") else f"decoded: {title}", fontsize=9, loc="left")
plt.tight_layout()
plt.show()

# %% [markdown]
# In the stored figure the composites are not two half-digits with a seam: the decoder joins the strokes where the
# halves meet, and many composites read as a plausible character — the left of a 5 with the right of a 0 closes
# into a "D", the top of a 5 on the bottom of a 3 reads as a 5, the top of a 4 on the bottom of a 5 as a 4. Each code
# describes its patch of stroke (a 4×4 pixel region, seen through the decoder's receptive field), and the decoder
# makes neighbouring patches agree. At this scale the codes are local parts of the stroke; the paper's examples —
# 128×128 ImageNet images on a 32×32 grid, speech — are larger, and there a code covers a smaller share of the
# object.

# %% [markdown]
# ## A prior over the codes: a Gated PixelCNN
#
# The VQ-VAE was trained with a uniform prior; to generate, we fit $p_\psi(k) = \prod_i p_\psi(k_i \mid k_{<i})$
# to the 7×7 code grids of the training digits with a compact Gated PixelCNN {cite}`vandenoord2016conditional`. Notebooks
# here do not import each other (each page must run on its own, on Colab too), so the model is repeated compactly;
# the [PixelCNN page](pixelcnn.ipynb) explains it in full. In short:
#
# - masked convolutions make position $i$ see only $k_{<i}$ in raster order; the first layer also hides $k_i$;
# - two stacks avoid the *blind spot* of stacked masked 3×3 convolutions: a **vertical stack** sees all rows
#   above, a **horizontal stack** the pixels to the left in the current row, and the vertical stack feeds the
#   horizontal one through a 1×1 convolution (never the reverse);
# - gated units $y = \tanh(W_f * x) \odot \sigma(W_g * x)$, with a residual connection on the horizontal stack;
# - the output is a softmax over the $K$ codes at each position.

# %%
class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel is multiplied by a fixed 0/1 mask."""

    def __init__(self, in_channels, out_channels, mask):
        super().__init__(in_channels, out_channels, tuple(mask.shape),
                         padding=(mask.shape[0] // 2, mask.shape[1] // 2))
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def stack_masks(kernel: int, first: bool):
    """Vertical: rows above (and the current row after the first layer). Horizontal: pixels to the
    left (and the current one after the first layer)."""
    vertical, horizontal = torch.zeros(kernel, kernel), torch.zeros(1, kernel)
    vertical[: kernel // 2 + (0 if first else 1)] = 1
    horizontal[0, : kernel // 2 + (0 if first else 1)] = 1
    return vertical, horizontal


def gate(x):
    filters, gates = x.chunk(2, dim=1)
    return torch.tanh(filters) * torch.sigmoid(gates)


# %%
class GatedBlock(nn.Module):
    def __init__(self, channels: int, first: bool, kernel: int = 3):
        super().__init__()
        vertical, horizontal = stack_masks(kernel, first)
        self.vertical = MaskedConv2d(channels, 2 * channels, vertical)
        self.horizontal = MaskedConv2d(channels, 2 * channels, horizontal)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.first = first

    def forward(self, v, h):
        v_features = self.vertical(v)
        h_features = self.horizontal(h) + self.vertical_to_horizontal(v_features)  # before the gate
        h_out = self.out(gate(h_features))
        return gate(v_features), (h_out if self.first else h + h_out)  # no residual through layer 1


class GatedPixelCNN(nn.Module):
    def __init__(self, num_codes: int, channels: int, layers: int):
        super().__init__()
        self.num_codes = positive_integer(num_codes, "number of codes K")
        self.embed = nn.Embedding(self.num_codes, channels)
        self.blocks = nn.ModuleList(GatedBlock(channels, first=i == 0) for i in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, self.num_codes, 1))

    def network(self, x):
        v = h = x
        for block in self.blocks:
            v, h = block(v, h)
        return self.head(h)

    def forward(self, codes):
        """Logits (B, K, H, W) of p(k_i | k_<i) at every position."""
        if codes.dtype != torch.long or codes.min() < 0 or codes.max() >= self.num_codes:
            raise ValueError(f"this prior models codes 0 … {self.num_codes - 1}; got {codes.dtype} "
                             f"with max {codes.max().item()}: codes from another codebook?")
        return self.network(self.embed(codes).permute(0, 3, 1, 2))


# %% [markdown]
# **Sampling** runs the network once per position, in raster order: 49 passes for a 7×7 grid
# ({term}`ancestral sampling`). **Check**: position $i$'s output must depend on exactly the positions before it — no
# leak from $i$ or later, and no blind spot. On a random network with enough layers to see the whole grid, the gradient of the
# logits at each of the 49 positions with respect to the input map must be nonzero exactly at the earlier
# positions.

# %%
@torch.no_grad()
def sample_codes(prior, n, grid, seed):
    generator = torch.Generator(device=device).manual_seed(seed)
    codes = torch.zeros(n, *grid, dtype=torch.long, device=device)
    for row in range(grid[0]):
        for column in range(grid[1]):
            probabilities = prior(codes)[:, :, row, column].softmax(-1)
            codes[:, row, column] = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
    return codes


# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(2)
check_prior = GatedPixelCNN(num_codes=16, channels=8, layers=7)
x_embedded = torch.randn(1, 8, 7, 7, requires_grad=True)
logits = check_prior.network(x_embedded)
exact = True
for position in range(49):
    (gradient,) = torch.autograd.grad(logits[0, :, position // 7, position % 7].sum(), x_embedded,
                                      retain_graph=True)
    sees = gradient.abs().sum(1).flatten() > 0
    exact &= torch.equal(sees, torch.arange(49) < position)
print("each of the 49 positions sees exactly the positions before it (raster order):", exact)
print("logits:", tuple(check_prior(torch.randint(16, (2, 7, 7))).shape))
print(error_of(lambda: check_prior(torch.full((1, 7, 7), 16))))

# %% [markdown]
# ### Training the prior
#
# The prior is trained on the codes of dynamically binarized training digits (a fresh binarization every step,
# encoded by the frozen digits model), by maximum likelihood: cross-entropy summed over the 49 positions, in nats
# per digit. Its run configuration includes the identity of the codebook it models — the digits run's name and a
# hash of its codebook's values — so a prior trained on another codebook's codes is refused by `icu.fit` (and by
# anyone reading it with `icu.load_trained` and comparing `config`), instead of being silently reused.

# %%
def codebook_identity(run, vqvae):
    values = vqvae.quantizer.codebook.detach().cpu().numpy().tobytes()
    return {"codebook_run": run, "codebook_sha256": hashlib.sha256(values).hexdigest()[:16]}


PRIOR_SETTINGS = ("prior_channels", "prior_layers", "prior_steps", "prior_lr", "batch_size")
PRIOR_CODE = [MaskedConv2d, stack_masks, gate, GatedBlock, GatedPixelCNN]
prior_config = {**{key: getattr(config, key) for key in PRIOR_SETTINGS},
                **codebook_identity("vqvae/digits_restarts", model)}
icu.seed_everything(SEED)
prior = GatedPixelCNN(config.codes, config.prior_channels, config.prior_layers).to(device)
prior_optimizer = torch.optim.Adam(prior.parameters(), lr=config.prior_lr)


def prior_step(batch):
    with torch.no_grad():
        codes = model.codes(torch.bernoulli(batch))
    nats = F.cross_entropy(prior(codes), codes, reduction="none").sum((1, 2)).mean()
    prior_optimizer.zero_grad(set_to_none=True)
    nats.backward()
    prior_optimizer.step()
    return {"prior_nats": nats}


prior_history = icu.fit(prior_step, digit_batches, steps=config.prior_steps, run="vqvae/prior",
                        state={"prior": prior, "optimizer": prior_optimizer}, config=prior_config,
                        code=PRIOR_CODE, description="PixelCNN prior, digit codes")
prior.eval();
print(f"prior: {sum(p.numel() for p in prior.parameters()):,} parameters")

# %%
uniform_nats = 49 * math.log(config.codes)
fig, ax = plt.subplots(figsize=(7, 3.4))
icu.plot_history(prior_history, keys=["prior_nats"], window=50, ax=ax, ylabel="nats per digit",
                 title="prior: −log p(codes) on training batches")
ax.axhline(uniform_nats, color="grey", ls=":", label="uniform prior, 49 log K")
ax.axhline(digit_summary["restarts"]["position_nats"], color="grey", ls="--",
           label="position-wise frequencies (held-out)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **A mismatched checkpoint is refused.** Asking for this prior as if it had been trained on the EMA model's
# codebook (same $K$, different codes) stops with an error naming what differs:

# %%
prior_path = icu.run_checkpoint("vqvae/prior")
mismatched = {**prior_config, **codebook_identity("vqvae/digits_ema", digit_models["ema"])}
if prior_path.exists():
    try:
        icu.load_checkpoint(prior_path, {"prior": copy.deepcopy(prior)}, mismatched,
                            icu.code_fingerprint(PRIOR_CODE))
        print("loaded: the identities agree")
    except icu.CheckpointMismatchError as error:
        print(textwrap.fill(f"CheckpointMismatchError: {error}", 100, subsequent_indent="    "))
else:
    print("(no prior checkpoint on disk: training was skipped)")

# %% [markdown]
# ### Samples
#
# Code grids sampled from the prior, decoded to pixel probabilities (left); for contrast, grids of codes drawn
# uniformly and independently — the prior the VQ-VAE was trained with (right).

# %% tags=["landing-figure"] landing_crop=[0.079, 0.085, 0.447, 0.64]
sampling_start = time.perf_counter()
sampled_codes = sample_codes(prior, config.samples, (7, 7), seed=3)
sampling_seconds = time.perf_counter() - sampling_start
uniform_codes = torch.randint(config.codes, (32, 7, 7),
                              generator=torch.Generator().manual_seed(4)).to(device)
with torch.no_grad():
    prior_samples = model.to_image(model.decode_codes(sampled_codes)).cpu()
    uniform_samples = model.to_image(model.decode_codes(uniform_codes)).cpu()
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
icu.show_images(prior_samples, nrow=8 if config.samples > 16 else 4, ax=axes[0],
                title="codes from the PixelCNN prior, decoded "
                      f"({config.prior_steps:,} prior steps)")
icu.show_images(uniform_samples[:16], nrow=4, ax=axes[1], title="uniform random codes, decoded")
plt.tight_layout()
plt.show()
print(f"{config.samples} samples: {sampling_seconds:.1f} s (49 prior passes, one decoder pass) on "
      f"{icu.describe_device(device)}")

# %% [markdown]
# In the stored run many samples are recognisable digits — 0s, 2s, 3s, 5s, 6s, 8s and 9s among them, in the stroke
# style of the data — and the rest are digit-like strokes that do not settle into one class. Uniformly drawn codes
# decode to scattered fragments of stroke: the decoder draws well only the code grids that look like those of real
# digits, and putting codes together that way is the prior's job.
#
# **Measured.** The site's MNIST classifier (`icu.mnist_classifier`, the one every digit page uses) scores
# `fid_samples` decoded samples against the 1,000 held-out digits — FID on its features ("FID (MNIST-classifier
# features)", the protocol of the DDPM page) and how the samples spread over the ten classes — beside as many training
# digits (the floor) and as many decoded uniform code grids (a prior that learned nothing).

# %%
classifier = icu.mnist_classifier(device)
test_features, _ = icu.classify(classifier, mnist.test_images)


def decoded_samples(codes, batch_size=500):
    with torch.no_grad():
        return torch.cat([model.to_image(model.decode_codes(c)).cpu()
                          for c in codes.split(batch_size)])


def sample_scores(images):
    features, probabilities = icu.classify(classifier, images)
    return icu.frechet_distance(features, test_features), icu.mode_coverage(probabilities)


uniform_grids = torch.randint(config.codes, (config.fid_samples, 7, 7),
                              generator=torch.Generator().manual_seed(6))
sample_table = {
    "training digits (the floor)": sample_scores(train_digits[:config.fid_samples]),
    "PixelCNN prior, decoded":
        sample_scores(decoded_samples(sample_codes(prior, config.fid_samples, (7, 7), 5))),
    "uniform codes, decoded": sample_scores(decoded_samples(uniform_grids.to(device))),
}
icu.show_table(["samples", "FID (MNIST-clf)", "classes covered", "class entropy (nats)",
                "mean confidence"],
               [[name, fid, c.classes_covered, c.entropy, c.mean_confidence]
                for name, (fid, c) in sample_table.items()])
print(f"{config.fid_samples:,} images per row, against {len(mnist.test_images):,} held-out digits")
prior_fid, uniform_fid = (sample_table["PixelCNN prior, decoded"][0],
                          sample_table["uniform codes, decoded"][0])

# %% [markdown]
# In the stored run the prior's samples reach an FID (MNIST-classifier features) of 163.7, against 30.5 for as many
# training digits and 1,475 for decoded uniform codes. The classifier finds all ten classes among them, spread
# almost evenly (class entropy 2.20 nats; $\ln 10 \approx 2.30$ is uniform), and reads them with a mean confidence of 0.87 (training
# digits: 0.99). The [DDPM page](../diffusion/ddpm.ipynb), with the same protocol on the same digits, reaches 61.0
# with its 1,000-step sampler: diffusion does much better here. Two things weigh on this page's number: its samples
# are the pixel probabilities of a model of *binarized* digits rather than grey levels, and its prior is small and
# trained for about three minutes.

# %% [markdown]
# ## The likelihood bound, beside the VAE's
#
# On the 1,000 held-out digits under the VAE page's fixed binarization (10,000 in `full`): reconstruction nats
# $-\log p(x \mid z_q(x))$, prior nats $-\log p_\psi(k(x))$, and their sum, an upper bound on $-\log p(x)$, with its
# standard error over digits. Two other priors for the same codes show what the PixelCNN contributes: the uniform
# prior of training ($49 \log K$ for every digit), and a prior that knows each position's code frequencies but no
# context (counted on the training digits' codes, add-one smoothed).

# %%
@torch.no_grad()
def prior_nats_per_grid(prior, codes, batch_size=500):
    return torch.cat([F.cross_entropy(prior(c.to(device)), c.to(device),
                                      reduction="none").sum((1, 2)).cpu()
                      for c in codes.split(batch_size)])


held_out_codes = digit_summary["restarts"]["codes"]
reconstruction_per_digit = digit_summary["restarts"]["per_image"]
prior_per_digit = prior_nats_per_grid(prior, held_out_codes)
bound_per_digit = reconstruction_per_digit + prior_per_digit
position_nats = torch.tensor(digit_summary["restarts"]["position_nats"])
untrained_prior = GatedPixelCNN(config.codes, config.prior_channels, config.prior_layers).to(device)
untrained_prior_nats = prior_nats_per_grid(untrained_prior, held_out_codes).mean().item()


def mean_and_error(values):
    return values.mean().item(), values.std().item() / math.sqrt(len(values))


def bits_per_dim(nats):
    return icu.nats_to_bits_per_dim(nats, 784)


# %%
vae_elbo, vae_iwae = icu.read_result("vae", "test_elbo"), icu.read_result("vae", "test_iwae")
bound, bound_error = mean_and_error(bound_per_digit)
reconstruction_mean, prior_mean = (reconstruction_per_digit.mean().item(),
                                   prior_per_digit.mean().item())
table = [[f"VQ-VAE + PixelCNN prior (K = {config.codes})", -bound, bound_error, bits_per_dim(bound),
          reconstruction_mean, prior_mean],
         ["VQ-VAE + position-wise code frequencies",
          -(reconstruction_mean + position_nats.mean().item()), "—",
          bits_per_dim(reconstruction_mean + position_nats.mean().item()), reconstruction_mean,
          position_nats.mean().item()],
         ["VQ-VAE + uniform prior (as trained)", -(reconstruction_mean + uniform_nats), "—",
          bits_per_dim(reconstruction_mean + uniform_nats), reconstruction_mean, uniform_nats]]
for name, row in (("VAE page, z = 20: ELBO", vae_elbo),
                  ("VAE page, z = 20: IWAE estimate", vae_iwae)):
    table.append([name, row and row["value"], "—", row and bits_per_dim(-row["value"]), "—", "—"])
icu.show_table(["model", "log p(x) ≥ (nats per digit)", "± s.e.", "bits/dim (≥ −log p / 784 ln 2)",
                "reconstruction nats", "prior / KL nats"], table)
print(f"held-out digits: {len(bound_per_digit):,}; prior nats of the untrained PixelCNN: "
      f"{untrained_prior_nats:.1f} (uniform: {uniform_nats:.1f})")
if vae_elbo is None:
    print("the VAE rows show — until the VAE page has been run in this profile: run it first")

# %% [markdown]
# In the stored run the two-stage bound is −208.2 ± 0.7 nats per digit (0.383 bits/dim), against the [VAE
# page](../vae/vae.ipynb)'s ELBO of −108.7 and IWAE estimate of −103.8 on the same binarized digits: almost twice the
# VAE's negative log-likelihood bound. The two parts say why. The VQ-VAE's reconstruction term, 34.0 nats, is far
# better than the VAE's (81.5 nats on that page); its latent term is far worse: 174.2 nats to name a digit's code
# under the PixelCNN prior, against the VAE's KL of 27.2 nats. Nothing in VQ-VAE training makes the codes cheap to
# describe — the prior is uniform during training (237.7 nats, whatever the code), so the encoder uses the full
# capacity of $49 \log 128$ nats to improve the reconstruction, down to details that the prior then has to pay for.
# The PixelCNN saves tens of nats against both the uniform prior and the position-wise frequencies (the rows above).
# Its training curve is still falling, but slowly — about 2 nats over the last 1,000 steps — against a gap of about
# 100 nats to the VAE.
#
# The recipe table shows the same trade from the other side: the paper's recipe without restarts uses only 19 codes,
# reconstructs worse (45.6 nats), and with the position-wise frequencies alone reaches 166 nats — a better bound
# than this page's main model with its PixelCNN. A good bound and good samples are different goals: samples need a
# decoder that turns any likely code grid into a clean image, while the bound also charges for every nat the code
# carries.
#
# **Beside the paper.** On CIFAR-10 the paper reports lower bounds of **4.51 bits/dim** for a continuous VAE,
# **4.67** for the VQ-VAE and 5.14 for a VIMCO-trained discrete VAE — VQ-VAE is *worse* in likelihood than the
# continuous VAE there too ("all reported likelihoods are lower bounds"). Their models: 32×32×3 images of 8-bit
# colour, 8×8×10 latents, 256 hidden units, 250,000 steps of batch 128. Ours: 28×28 binary digits, 4,000 of them,
# 1,500 steps of batch 64 in `book`, a 7×7 grid of $K = 128$ codes. The bits/dim of the two are
# not comparable (different data, binary vs 8-bit pixels); the ordering is what carries over, and the two parts of
# the bound say why: a discrete code with no pressure to be cheap spends more nats in the prior term than a VAE's
# KL term, in exchange for a decoder that needs to explain less.

# %% [markdown]
# **Where this page departs from the paper, and why.**
#
# - Scale: 64 hidden units instead of 256, 1,500 steps of 64 images instead of 250,000 of 128, and a learning rate
#   of $10^{-3}$ instead of $2 \cdot 10^{-4}$ to make up for the 300 times smaller budget.
# - The page's main model restarts dead codes, which the paper does not: at this budget the paper's recipe leaves
#   109 of the 128 codes unused (the recipe table above, which shows both).
# - The codebook and commitment terms are summed over the grid per image, as the paper's equation is written for
#   one image; the authors' code averages them instead, which only rescales β against the reconstruction term.
# - Binarized digits with a Bernoulli decoder, so that the bound can stand beside the VAE page's; the colour model
#   uses a Gaussian of fixed variance (a scaled squared error), like the widely used PyTorch ports.
# - The prior is a compact Gated PixelCNN (7 gated layers of 32 channels) over 7×7 codes, trained after the
#   VQ-VAE, as in the paper's two stages.

# %% [markdown]
# ## Results
#
# The headline numbers, also written to `results/book/vqvae.json` for the [results page](../../book/results.md).

# %%
run_device = icu.describe_device(device)
digit_data = (f"{len(test_binary):,} held-out binarized {mnist.name} digits "
              "(the VAE page's binarization)")
main, main_time = digit_summary["restarts"], round(digit_histories["restarts"].wall_time)
rows = [
    dict(key="bound_nats",
         metric="two-stage bound on −log p(x), VQ-VAE + PixelCNN (nats per digit)",
         value=round(bound, 2), steps=config.steps + config.prior_steps,
         wall_time_s=main_time + round(prior_history.wall_time),
         paper="4.67 bits/dim (CIFAR-10; VAE 4.51)",
         note=f"± {bound_error:.2f} s.e.; {bits_per_dim(bound):.3f} bits/dim", headline=True),
    dict(key="reconstruction_nats", metric="reconstruction −log p(x | z_q) (nats per digit)",
         value=round(reconstruction_mean, 2)),
    dict(key="prior_nats", metric="prior −log p(codes), Gated PixelCNN (nats per digit)",
         value=round(prior_mean, 2), steps=config.prior_steps,
         wall_time_s=round(prior_history.wall_time), note=f"uniform prior: {uniform_nats:.1f}"),
    dict(key="perplexity", metric=f"code perplexity, held-out digits (K = {config.codes})",
         value=round(main["perplexity"], 1)),
    dict(key="dead_codes", metric=f"codes unused by the training digits (of {config.codes})",
         value=main["dead"], data=f"{len(train_fixed):,} training digits"),
]
rows += [dict(key=f"perplexity_{r}", metric=f"code perplexity, {RECIPE_NAMES[r]}",
              value=round(digit_summary[r]["perplexity"], 1),
              wall_time_s=round(digit_histories[r].wall_time),
              note=f"reconstruction {digit_summary[r]['nats']:.1f} nats; "
                   f"{digit_summary[r]['dead']} dead codes")
         for r in ("paper", "ema", "ema_restarts")]
rows.append(dict(key="fid",
                 metric="FID (MNIST-classifier features), PixelCNN prior samples decoded",
                 value=round(prior_fid, 2), steps=config.steps + config.prior_steps,
                 data=f"{config.fid_samples:,} samples vs {len(mnist.test_images):,} held-out "
                      f"{mnist.name} digits",
                 wall_time_s=main_time + round(prior_history.wall_time),
                 note=f"training digits: {sample_table['training digits (the floor)'][0]:.1f}; "
                      f"uniform codes: {uniform_fid:.1f}"))
rows.append(dict(key="colour_mse", metric=f"held-out MSE per pixel, {colour_name}",
                 value=round(colour_mse, 5), data=f"{len(test_colour):,} held-out {colour_name}",
                 steps=config.colour_steps, wall_time_s=round(colour_history.wall_time),
                 note=f"mean image: {colour_baseline:.4f}"))
icu.record_results("vqvae", rows, defaults=dict(device=run_device, paper=None, data=digit_data,
                                                steps=config.steps, wall_time_s=main_time))

# %% [markdown]
# ## Quality gates
#
# Each against what a model that learned nothing would reach:
#
# - digits: held-out reconstruction nats below `reconstruction_fraction` × the independent-pixels baseline (the
#   untrained autoencoder is far above that baseline); the same for the EMA variant;
# - colour: held-out MSE below `colour_fraction` × the mean-image baseline;
# - code usage: held-out perplexity above `perplexity_floor`, and (in `book` and `full`) restarts leave fewer
#   dead codes than the paper's recipe;
# - prior: held-out prior nats below `prior_fraction` × the uniform $49 \log K$ (an untrained PixelCNN scores
#   about the uniform), and (in `book` and `full`) below the position-wise frequencies — it must use context;
# - samples: FID of the prior's decoded samples below `fid_fraction` × that of decoded uniform codes (in `smoke`,
#   where neither model has learned digits, only a loose check that nothing is broken).

# %%
gates = config.gates
print(f"digits: reconstruction {main['nats']:.1f} nats (EMA {digit_summary['ema']['nats']:.1f}), "
      f"pixel baseline {pixel_baseline:.1f}, untrained {untrained_digits['nats']:.1f}")
print(f"colour: MSE {colour_mse:.4f}, mean-image baseline {colour_baseline:.4f}")
print(f"perplexity {main['perplexity']:.1f} (untrained {untrained_digits['perplexity']:.1f}); "
      f"dead codes {main['dead']} with restarts, {digit_summary['paper']['dead']} without")
print(f"prior nats {prior_mean:.1f}: uniform {uniform_nats:.1f}, position-wise "
      f"{position_nats.mean():.1f}, untrained {untrained_prior_nats:.1f}")
print(f"FID (MNIST-classifier features): prior samples {prior_fid:.1f}, "
      f"uniform codes {uniform_fid:.1f}")

# %%
assert main["nats"] < gates.reconstruction_fraction * pixel_baseline, (
    "the digits model did not learn")
assert digit_summary["ema"]["nats"] < gates.reconstruction_fraction * pixel_baseline, (
    "EMA variant did not learn")
assert colour_mse < gates.colour_fraction * colour_baseline, "the colour model did not learn"
assert main["perplexity"] > gates.perplexity_floor, "codebook collapse: too few codes in use"
if gates.restart_check:
    assert main["dead"] < digit_summary["paper"]["dead"], "restarts did not revive dead codes"
assert prior_mean < gates.prior_fraction * uniform_nats, "the prior is no better than uniform"
if gates.context_check:
    assert prior_mean < position_nats.mean().item(), (
        "the prior does not use the context of earlier codes")
assert prior_fid < gates.fid_fraction * uniform_fid, (
    "samples from the prior are no closer to digits")
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - A VQ-VAE is an autoencoder with a discrete bottleneck: nearest-code lookup, a decoder gradient copied straight
#   through to the encoder, a codebook loss that moves the codes and a commitment loss that holds the encoder.
# - Training and generation are separate: the VQ-VAE is trained with a uniform prior, and a PixelCNN over the code
#   grid supplies the prior afterwards. Sample quality comes from the decoder and the prior together.
# - Its likelihood bound is reconstruction + prior nats, and it is worse than a continuous VAE's on the same
#   digits, as in the paper on CIFAR-10; the discrete code is bought for its other uses (sampling with a
#   powerful prior, compression, tokens for later models).
# - Codebook usage is the quantity to watch: without help most codes die (109 of 128 here); restarts revive them
#   and improve reconstruction — and make the code more expensive for the prior.
#
# **Common pitfalls**
# - Forgetting `.detach()` in the straight-through line: `z_e + (z_q - z_e)` passes no gradient to the encoder
#   (the check above fails). Swapping the two `detach`es in the losses trains the encoder towards the codes and the
#   codes towards nothing.
# - Reading perplexity from one batch: it depends on the batch size; also count the codes used over a whole
#   dataset, as the tables here do.
# - The EMA variant with counts starting at 0 and neither bias correction nor smoothing: the first updates divide
#   by nearly nothing and throw codes far away.
# - Calling the EMA update "the paper's method": the paper describes it in an appendix as an alternative and used
#   the codebook loss for its experiments.
# - A prior trained on one codebook's codes used with another codebook: the indices mean different things.
# - Masked convolutions with the wrong mask (a leak of the current code, or a blind spot): the gradient check
#   above catches both.
#
# ## Try it yourself
#
# 1. Set `codes=512` in the `book` configuration (and a new `ITEMCHEST_CHECKPOINTS` folder): the paper's $K$. Expect
#    even more dead codes without restarts, and a higher prior cost per position with them.
# 2. Change `BETA` to 2.0 (the top of the paper's range): the commitment loss holds the encoder closer to the codes;
#    compare reconstruction nats and usage.
# 3. Delete `.detach()` in `straight_through` and rerun the checks: the straight-through check must fail.
# 4. Swap the code grids of two *shapes* with `swap_codes` and `colour_model.decode_codes`: does colour travel
#    with the left half?
#
# **Further reading.** Razavi, van den Oord, Vinyals 2019, *Generating Diverse High-Fidelity Images with VQ-VAE-2*
# {cite}`razavi2019generating` (a hierarchy of code grids and stronger priors); Dhariwal et al. 2020, *Jukebox*
# {cite}`dhariwal2020jukebox` (restarts, audio); the [PixelCNN page](pixelcnn.ipynb); the
# [VAE page](../vae/vae.ipynb) for the continuous bound this page compares with.
