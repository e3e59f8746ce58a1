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
# # Denoising Diffusion Probabilistic Models
#
# | **Paper** | *Denoising Diffusion Probabilistic Models* — Jonathan Ho, Ajay Jain, Pieter Abbeel, 2020 ([arXiv 2006.11239](https://arxiv.org/abs/2006.11239)) {cite}`ho2020denoising` |
# | --- | --- |
# | **Ablation from** | *Improved Denoising Diffusion Probabilistic Models* — Alex Nichol, Prafulla Dhariwal, 2021 ([arXiv 2102.09672](https://arxiv.org/abs/2102.09672)) {cite}`nichol2021improved` |
# | **Family** | [Diffusion models](../../book/diffusion-family.md) |
# | **Trains here** | a 2-D toy in seconds; a small U-Net on 4,000 real MNIST digits (32×32), about 15 minutes on a laptop CPU |
#
# **The idea in three sentences.** Destroy data step by step with a fixed Markov chain that adds a little
# Gaussian noise at each of $T = 1000$ steps, until nothing but noise is left; then learn the reverse chain, one
# small denoising step at a time. Because each forward step is Gaussian, the noisy version of an image at any step
# can be drawn in one shot, and the variational bound on the likelihood splits into one simple regression per
# step: predict the noise $\epsilon$ that was added. Sampling runs the learned reverse chain from pure noise, with
# one network evaluation per step.

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
import math
import time
from types import SimpleNamespace

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import make_moons
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(dataset="mnist_embedded", diffusion_steps=100, channels=8, multipliers=(1, 2, 2),
               blocks=1, attention=(8,), steps=60, batch_size=32, lr=1e-3, warmup=10, ema_decay=0.9,
               snapshot_every=30, fid_samples=8, bound_digits=4, ablation_samples=8,
               ablation_bound_digits=2, toy_steps=300, toy_samples=300),
    book=dict(dataset="mnist_embedded", diffusion_steps=1000, channels=16, multipliers=(1, 2, 4),
              blocks=1, attention=(8,), steps=2400, batch_size=64, lr=1e-3, warmup=100,
              ema_decay=0.995, snapshot_every=600, fid_samples=200, bound_digits=100,
              ablation_samples=200, ablation_bound_digits=32, toy_steps=3000, toy_samples=2000),
    full=dict(dataset="mnist", diffusion_steps=1000, channels=128, multipliers=(1, 2, 2, 2),
              blocks=2, attention=(16,), steps=100_000, batch_size=128, lr=2e-4, warmup=5000,
              ema_decay=0.9999, snapshot_every=25_000, fid_samples=10_000, bound_digits=1000,
              ablation_samples=2000, ablation_bound_digits=200, toy_steps=3000, toy_samples=2000),
    gates=dict(
        smoke=dict(heldout_fraction=0.7, fid_fraction=2.0, classes=1, bound_fraction=0.9,
                   toy_fraction=0.9, toy_recall_fraction=1.0),
        book=dict(heldout_fraction=0.1, fid_fraction=0.25, classes=9, bound_fraction=0.5,
                  toy_fraction=0.5, toy_recall_fraction=0.85),
        full=dict(heldout_fraction=0.08, fid_fraction=0.05, classes=10, bound_fraction=0.3,
                  toy_fraction=0.5, toy_recall_fraction=0.85)),
)
# The paper's T = 1,000 steps (100 in `smoke`, with β rescaled by 1000/T as Improved DDPM does).
T = config.diffusion_steps
# The paper's settings, the same in every profile.
BETA_1, BETA_T = 1e-4, 0.02  # the linear schedule's ends at T = 1000
DROPOUT = 0.1
GRADIENT_CLIP = 1.0  # global norm
SEED = 0

device = icu.pick_device()
icu.seed_everything(SEED)
print("device:", icu.describe_device(device))
config

# %% [markdown]
# ## The idea in math
#
# **The forward process** is fixed, not learned. With a *noise schedule* $\beta_1, \dots, \beta_T$ ({term}`noise schedule`)
# small and increasing (here linear from $10^{-4}$ to $0.02$),
#
# $$
# q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big).
# $$
#
# The factor $\sqrt{1 - \beta_t}$ keeps the variance of $x_t$ at one when the data has variance one. With
# $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$, composing the Gaussian steps gives the
# **closed form** that makes training cheap — any $x_t$ in one draw:
#
# $$
# q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big), \qquad
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon \sim \mathcal N(0, I).
# $$
#
# **The posterior** of one step back, given the clean image, is Gaussian too:
#
# $$
# q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(\tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),\quad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
#             + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\quad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .
# $$
#
# **The reverse model** $p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$ has a fixed
# variance ($\sigma_t^2 = \beta_t$ or $\tilde\beta_t$; the paper found both similar) and a learned mean. Its
# variational bound on $-\log p_\theta(x_0)$ is a sum of one term per step,
#
# $$
# L = \underbrace{\mathrm{KL}\big(q(x_T\mid x_0)\,\|\,\mathcal N(0,I)\big)}_{L_T}
#   + \sum_{t=2}^{T} \underbrace{\mathrm{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
#   \underbrace{-\,\log p_\theta(x_0 \mid x_1)}_{L_0},
# $$
#
# and each $L_{t-1}$ is a KL between two Gaussians with the same variance: a squared distance between means.
#
# **The ε-parameterisation.** Since $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$, the paper
# lets a network $\epsilon_\theta(x_t, t)$ predict the noise and writes
# $\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\big)$.
# Then
#
# $$
# L_{t-1} = \mathbb E_{x_0, \epsilon}\Big[\underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}}_{\lambda_t}\,
#           \big\lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\rVert^2\Big] + C .
# $$
#
# **$L_\text{simple}$ is a reweighted bound.** The paper drops $\lambda_t$ and samples $t$ uniformly:
# $L_\text{simple} = \mathbb E_{t, x_0, \epsilon}\lVert \epsilon - \epsilon_\theta(x_t, t)\rVert^2$. Each term still
# has its minimum at the same $\epsilon_\theta$, so only the emphasis between steps changes: $\lambda_t$ is large
# for small $t$ (barely noisy images, imperceptible details), and dropping it spends the network's capacity on the
# harder, noisier steps — better samples, a worse bound. The ablation below trains both.
#
# **Sampling** (the paper's Algorithm 2) runs the chain backwards from $x_T \sim \mathcal N(0, I)$:
# $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$, with $z \sim \mathcal N(0, I)$ and no noise at the last step
# ({term}`ancestral sampling`). Like the official code, we compute $\mu_\theta$ as $\tilde\mu_t(x_t, \hat x_0)$
# with the predicted clean image $\hat x_0$ clipped to the data range $[-1, 1]$ — the same mean when nothing is
# clipped, and more stable early in the chain.
#
# In code, time is the index `t = 0 … T-1` (the paper's $t = 1 \dots T$), and the network receives that integer.

# %% [markdown]
# ## Noise schedules
#
# One class holds every per-step quantity, computed in float64 as in the official code. It is built from
# $\bar\alpha$ at chosen steps, which serves twice: the full chain, and a *respaced* chain over a subset of the
# steps (Nichol & Dhariwal's trick for fewer sampling steps, used below only to evaluate the ablations quickly),
# where each $\beta$ is recomputed as $1 - \bar\alpha_{t_i}/\bar\alpha_{t_{i-1}}$.
# The cosine schedule of Improved DDPM, $\bar\alpha(t) = \cos^2\!\big(\tfrac{t/T + 0.008}{1.008}\,\tfrac\pi2\big)$,
# destroys information more slowly at the start; it is this page's schedule ablation.


# %%
def linear_alpha_bar(steps: int) -> torch.Tensor:
    betas = torch.linspace(BETA_1 * 1000 / steps, BETA_T * 1000 / steps, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def cosine_alpha_bar(steps: int, offset: float = 0.008) -> torch.Tensor:
    f = (
        torch.cos(
            (torch.arange(steps + 1, dtype=torch.float64) / steps + offset)
            / (1 + offset)
            * math.pi
            / 2
        )
        ** 2
    )
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


SCHEDULES = {"linear": linear_alpha_bar, "cosine": cosine_alpha_bar}


class Schedule:
    def __init__(self, alpha_bar: torch.Tensor, timesteps: torch.Tensor):
        self.timesteps = timesteps  # the network's time input at each step
        self.alpha_bar64 = alpha_bar
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        betas = 1 - alpha_bar / previous
        as32 = lambda v: v.float().to(device)  # noqa: E731
        self.alpha_bar, self.alpha_bar_previous, self.betas = (
            as32(alpha_bar),
            as32(previous),
            as32(betas),
        )
        self.posterior_variance = as32(betas * (1 - previous) / (1 - alpha_bar))  # β̃_t
        self.coef_x0 = as32(betas * previous.sqrt() / (1 - alpha_bar))  # μ̃_t's weight on x_0
        self.coef_xt = as32((1 - betas).sqrt() * (1 - previous) / (1 - alpha_bar))  # and on x_t
        # β̃ is 0 at the first step; as in the official code, both choices use β̃ of the
        # second step there.
        self.variance = {
            "small": torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]),
            "large": torch.cat([self.posterior_variance[1:2], self.betas[1:]]),
        }

    @classmethod
    def named(cls, name: str, steps: int = T) -> "Schedule":
        if name not in SCHEDULES:
            raise ValueError(
                f"unknown noise schedule {name!r}; choose one of {', '.join(SCHEDULES)}"
            )
        return cls(SCHEDULES[name](steps), torch.arange(steps))

    def respaced(self, steps: int) -> "Schedule":
        """The same process at ``steps`` evenly spaced steps (Nichol & Dhariwal 2021, Section 4)."""
        if not 1 <= steps <= len(self.alpha_bar) or int(steps) != steps:
            raise ValueError(
                f"a respaced chain needs a whole number of steps in 1 … {len(self)}, not {steps}"
            )
        keep = torch.linspace(0, len(self.alpha_bar) - 1, steps).round().long()
        return Schedule(self.alpha_bar64[keep], self.timesteps[keep])

    def __len__(self) -> int:
        return len(self.alpha_bar)


def bound_weight(schedule):
    """λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)) with σ_t² = β_t: each step's weight in the bound."""
    return schedule.betas**2 / (
        2 * schedule.variance["large"] * (1 - schedule.betas) * (1 - schedule.alpha_bar)
    )


def normal_kl(mean_q, variance_q, mean_p, variance_p):
    """KL(N(mean_q, variance_q) ‖ N(mean_p, variance_p)) per dimension, in nats."""
    return 0.5 * (
        torch.log(variance_p / variance_q) + (variance_q + (mean_q - mean_p) ** 2) / variance_p - 1
    )


def per_image(values: torch.Tensor) -> torch.Tensor:
    """A per-step value, shaped to broadcast over a batch of images."""
    return values.view(-1, 1, 1, 1)


def q_sample(schedule, x0, t, noise):
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: a draw from q(x_t | x_0) in one shot."""
    a = per_image(schedule.alpha_bar[t])
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def predict_x0(schedule, x_t, t, noise_prediction):
    a = per_image(schedule.alpha_bar[t])
    return (x_t - (1 - a).sqrt() * noise_prediction) / a.sqrt()


def posterior_mean(schedule, x0, x_t, t):
    """μ̃_t(x_t, x_0), the mean of q(x_{t-1} | x_t, x_0)."""
    return per_image(schedule.coef_x0[t]) * x0 + per_image(schedule.coef_xt[t]) * x_t


schedules = {name: Schedule.named(name) for name in SCHEDULES}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for name, schedule in schedules.items():
    axes[0].plot(schedule.alpha_bar.cpu(), label=name)
    axes[1].semilogy(bound_weight(schedule).cpu(), label=name)
axes[0].set(title="signal kept: ᾱ_t", xlabel="step t")
axes[1].set(title="bound's weight λ_t (σ² = β_t), dropped by L_simple", xlabel="step t")
for ax in axes:
    ax.legend()
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# The linear schedule has removed most of the signal by the middle of the chain ($\bar\alpha_t$ is below 0.2 at step
# 400 and below 0.1 from about step 480): the rest of the chain works on nearly pure noise. The cosine schedule
# spreads the destruction evenly. For the linear schedule the bound's weight $\lambda_t$ falls about ninety-fold from
# the first step to the last — the emphasis that $L_\text{simple}$ removes; for the cosine schedule it jumps at the
# very end, where that schedule's $\beta_t$ is clipped at 0.999.

# %% [markdown]
# ## Checks that training cannot change
#
# **1. The closed form equals the chain it summarises.** Push a batch of scalar "images" through 1000 one-step
# kernels, with the $\beta_t$ built afresh from the paper's endpoints, and compare the moments of $x_t$ with those
# of $q(x_t \mid x_0)$ from the page's schedule and with one-shot draws from `q_sample`, at a few steps.
#
# **2. The posterior is the regression of $x_{t-1}$ on $x_t$.** Draw pairs $(x_{t-1}, x_t)$ from the forward process
# for a fixed $x_0$; a least-squares fit of $x_{t-1}$ on $x_t$ must find $\tilde\mu_t$'s coefficient on $x_t$, and
# its residual variance must be $\tilde\beta_t$ — an independent check of the formulas above.

# %%
# NBVAL_CHECK_OUTPUT
generator = torch.Generator().manual_seed(0)
schedule = Schedule.named("linear", 1000)  # the paper's chain, whatever the profile's T
x0_scalar, draws = 0.7, 100_000
# β built apart from the page's code:
betas_from_the_paper = torch.linspace(BETA_1, BETA_T, 1000, dtype=torch.float64)
x = torch.full((draws,), x0_scalar, dtype=torch.float64)
agree = []
for t in range(1000):
    x = (1 - betas_from_the_paper[t]).sqrt() * x + betas_from_the_paper[t].sqrt() * torch.randn(
        draws, generator=generator, dtype=torch.float64
    )
    if t in (9, 99, 499, 999):
        a = schedule.alpha_bar[t].double().cpu()
        one_shot = (
            q_sample(
                schedule,
                torch.full((draws, 1, 1, 1), x0_scalar, device=device),
                torch.full((draws,), t, device=device),
                torch.randn(draws, 1, 1, 1, generator=generator).to(device),
            )
            .double()
            .cpu()
            .flatten()
        )
        tolerance = 4 * ((1 - a) / draws).sqrt()
        agree += [
            abs(x.mean() - a.sqrt() * x0_scalar) < tolerance,
            abs(x.var() / (1 - a) - 1) < 0.03,
            abs(one_shot.mean() - x.mean()) < 2 * tolerance,
            abs(one_shot.var() / x.var() - 1) < 0.03,
        ]
print(
    "iterating the one-step kernel matches q(x_t | x_0) and q_sample at t = 10, 100, 500, 1000:",
    all(agree),
)

matches = []
for t in (1, 50, 500, 998):
    a_prev = schedule.alpha_bar[t - 1].double().cpu()
    x_prev = a_prev.sqrt() * x0_scalar + (1 - a_prev).sqrt() * torch.randn(
        draws, generator=generator, dtype=torch.float64
    )
    x_t = (1 - betas_from_the_paper[t]).sqrt() * x_prev + betas_from_the_paper[
        t
    ].sqrt() * torch.randn(draws, generator=generator, dtype=torch.float64)
    design = torch.stack([x_t, torch.ones_like(x_t)], dim=1)
    coefficients = torch.linalg.lstsq(design, x_prev[:, None]).solution[:, 0]
    residual = (x_prev - design @ coefficients).var()
    intercept = schedule.coef_x0[t].double().cpu() * x0_scalar
    matches.append(
        torch.allclose(
            coefficients.cpu(),
            torch.stack([schedule.coef_xt[t].double().cpu(), intercept]),
            atol=5e-3,
        )
        and abs(residual / schedule.posterior_variance[t].double().cpu() - 1) < 0.02
    )
print(
    "least squares recovers the posterior's mean coefficients and variance at 4 steps:",
    all(matches),
)

# %% [markdown]
# **3. $\lambda_t\lVert\epsilon - \epsilon_\theta\rVert^2$ is the bound's term.** For any noise prediction, the KL
# between the posterior and the reverse step (with $\sigma_t^2 = \beta_t$), computed from the means, must equal the
# weighted squared error plus the constant that depends only on the variances.

# %%
# NBVAL_CHECK_OUTPUT
equal = []
for t in (1, 500, 998):
    x0_check, noise, guess = (torch.randn(1000, generator=generator).to(device) for _ in range(3))
    x_t = q_sample(schedule, x0_check, t, noise).flatten()
    mean_p = posterior_mean(schedule, predict_x0(schedule, x_t, t, guess), x_t, t).flatten()
    kl = normal_kl(
        posterior_mean(schedule, x0_check, x_t, t).flatten(),
        schedule.posterior_variance[t],
        mean_p,
        schedule.variance["large"][t],
    )
    constant = normal_kl(0.0, schedule.posterior_variance[t], 0.0, schedule.variance["large"][t])
    equal.append(
        torch.allclose(
            kl, bound_weight(schedule)[t] * (noise - guess) ** 2 + constant, rtol=1e-3, atol=1e-6
        )
    )
print("KL(q(x_{t-1} | x_t, x_0) ‖ p_θ) = λ_t (ε − ε_θ)² + constant at 3 steps:", all(equal))

# %% [markdown]
# ## A 2-D toy: destroy two moons, then rebuild them
#
# Before images, the whole algorithm on points in the plane. The denoiser is a small MLP that sees the noisy point
# and a sinusoidal embedding of $t$ (the same embedding the U-Net below uses); everything else — schedule, loss,
# sampler — is the code of this page.

# %%
moons = torch.tensor(make_moons(20_000, noise=0.05, random_state=0)[0], dtype=torch.float32)
moons = ((moons - moons.mean(0)) / moons.std(0)).to(device)  # unit variance, like the images below
toy_schedule = schedules["linear"]


class ToyDenoiser(nn.Module):
    def __init__(self, hidden: int = 128, embedding: int = 32):
        super().__init__()
        self.embedding = embedding
        self.net = nn.Sequential(
            nn.Linear(2 + embedding, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x, t):
        return self.net(torch.cat([x, icu.sinusoidal_embedding(t, self.embedding)], dim=1))


def toy_training():
    model = ToyDenoiser().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(x0):
        t = torch.randint(0, T, (len(x0),), device=device)
        noise = torch.randn_like(x0)
        a = toy_schedule.alpha_bar[t][:, None]
        loss = (model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - noise).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    return SimpleNamespace(
        model=model, train_step=train_step, state={"model": model, "optimizer": optimizer}
    )


@torch.inference_mode()
def toy_sample(model, n, keep=(T - 1, 6 * T // 10, 3 * T // 10, T // 10, 3 * T // 100)):
    """Samples, and the points x_t at the levels in ``keep`` (before each step's update)."""
    x, kept = torch.randn(n, 2, device=device), {}
    for t in reversed(range(T)):
        if t in keep:
            kept[t] = x.clone()
        steps = torch.full((n,), t, device=device)
        x0_hat = (
            x - (1 - toy_schedule.alpha_bar[t]).sqrt() * model(x, steps)
        ) / toy_schedule.alpha_bar[t].sqrt()
        mean = toy_schedule.coef_x0[t] * x0_hat + toy_schedule.coef_xt[t] * x
        x = mean + (toy_schedule.variance["small"][t].sqrt() * torch.randn_like(x) if t > 0 else 0)
    return x, kept


icu.seed_everything(SEED)
toy = toy_training()
toy_history = icu.fit(
    toy.train_step,
    icu.TensorBatches(moons, batch_size=256, seed=SEED),
    steps=config.toy_steps,
    state=toy.state,
    run="ddpm/toy",
    config=config,
    code=[ToyDenoiser, toy_training, Schedule, linear_alpha_bar],
    description="2-D toy",
)

# %%
torch.manual_seed(1)
toy_samples, toy_chain = toy_sample(toy.model, config.toy_samples)
fig, axes = plt.subplots(2, 3, figsize=(10, 6.6), sharex=True, sharey=True)
for ax, t in zip(axes[0], (0, T // 10, T - 1)):
    noisy = q_sample(
        toy_schedule,
        moons[:2000, :, None, None],
        torch.full((2000,), t, device=device),
        torch.randn(2000, 2, 1, 1, device=device),
    )[:, :, 0, 0]
    ax.scatter(*noisy.cpu().T, s=2, alpha=0.5)
    ax.set_title(f"forward: x_t at t = {t + 1}")
for ax, points, title in zip(
    axes[1],
    (toy_chain[T - 1], toy_chain[T // 10], toy_samples),
    (
        f"learned reverse: x_t at t = {T}",
        f"learned reverse: x_t at t = {T // 10 + 1}",
        "learned reverse: x_0",
    ),
):
    ax.scatter(*points.cpu().T, s=2, alpha=0.5, color="C1")
    ax.set_title(title)
paths = torch.stack(
    [toy_chain[t][:12] for t in sorted(toy_chain, reverse=True)] + [toy_samples[:12]]
).cpu()
for k in range(12):
    axes[1, 2].plot(paths[:, k, 0], paths[:, k, 1], color="k", lw=0.8, alpha=0.7)
for ax in axes.flat:
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()


def mean_nearest(points, references):
    return icu.nearest_neighbours(points.cpu(), references.cpu())[0].mean().item()


gaussian = torch.randn(len(toy_samples), 2)
held_out = moons[-len(toy_samples) :]
toy_distance, noise_distance = mean_nearest(toy_samples, moons[:5000]), mean_nearest(
    gaussian, moons[:5000]
)
toy_recall, noise_recall = mean_nearest(held_out, toy_samples), mean_nearest(held_out, gaussian)
print(
    f"sample → nearest training point: {toy_distance:.3f} (Gaussian noise: {noise_distance:.3f}); "
    f"held-out point → nearest sample: {toy_recall:.3f} (to noise: {noise_recall:.3f})"
)

# %% [markdown]
# Top row: a hundred steps of the forward process already blur the moons; after a thousand only the Gaussian is
# left. Bottom row: the learned reverse chain run from fresh noise, at the same levels; the black lines follow twelve
# points through the chain to where they end. The two distances printed under the figure measure both directions:
# samples that land on the data (first), and data that the samples cover (second) — a model that put every sample
# on one moon would pass the first and fail the second. In the stored run the rebuilt moons are there but thicker
# than the data: both distances are well below noise's, and the first is still several times the data's own
# spread after 3,000 training steps.

# %% [markdown]
# ## Data
#
# The embedded MNIST digits (4,000 for training, 1,000 held out), padded to 32×32 with background as in the
# paper's CIFAR-10 setting, and scaled from $\{0, \dots, 255\}$ to $[-1, 1]$ — the data range the sampler clips
# to and the discretised decoder below assumes. The `full` profile uses all 70,000 digits:
# `icu.load_images("mnist")` (downloaded once when online, checksum-verified; offline it stops and says so).

# %%
mnist = icu.load_images(config.dataset)
print(mnist)


def to_model(images):
    """[0, 1] digits, 28×28 → [-1, 1], 32×32 (the padding is background)."""
    return F.pad(images * 2 - 1, (2, 2, 2, 2), value=-1.0)


def to_digits(x):
    """Model space → [0, 1] digits, 28×28, for the classifier and for display."""
    return ((x[..., 2:30, 2:30] + 1) / 2).clamp(0, 1).cpu()


train_x = to_model(mnist.train_images)
test_x = to_model(mnist.test_images)
train_batches = icu.TensorBatches(train_x, batch_size=config.batch_size, seed=SEED, device=device)
print("model input:", tuple(train_x.shape), f"range [{train_x.min():.0f}, {train_x.max():.0f}]")

# %% [markdown]
# ## The denoiser: a time-conditioned U-Net
#
# The paper's network is a U-Net in the style of PixelCNN++, shared by this family's pages as `icu.UNet` (its
# source is [itemchest_utils/unet.py](https://github.com/item-chest/item-chest/blob/main/itemchest_utils/unet.py)).
# Its ingredients:
#
# - the step $t$ enters through a **sinusoidal embedding** (as for positions in a Transformer) and a two-layer MLP,
#   and is added inside every residual block, so one network serves all 1,000 steps;
# - **residual blocks**: GroupNorm → SiLU → 3×3 convolution, plus the time embedding, → GroupNorm → SiLU →
#   dropout → 3×3 convolution; the second convolution starts at zero, so every block starts as the identity;
# - **self-attention** (one head) at chosen resolutions (16×16 in the paper; 8×8, the lowest, here) and in the
#   middle of the network, so every pixel can see the whole image;
# - down by strided convolutions, up by nearest-neighbour upsampling, with skip connections that concatenate each
#   resolution's features into the up path; the output layer starts at zero, so the untrained network predicts
#   $\epsilon = 0$.
#
# The paper's CIFAR-10 model has 128 channels at 32×32, multipliers (1, 2, 2, 2), two residual blocks per
# resolution and attention at 16×16: 35.7 M parameters. The `book` run uses the same design at 16 channels,
# multipliers (1, 2, 4), one block per resolution and attention at 8×8 — about 50 times fewer parameters, so that
# training fits a CPU budget. The `full` profile uses the paper's size.


# %%
def make_unet():
    return icu.UNet(
        in_channels=1,
        channels=config.channels,
        channel_multipliers=config.multipliers,
        blocks_per_level=config.blocks,
        attention_resolutions=config.attention,
        dropout=DROPOUT,
        image_size=32,
    ).to(device, memory_format=torch.channels_last)  # channels-last convolutions: ~2× faster on CPU


# %% [markdown]
# ## The objective, the optimiser and the EMA
#
# The training step is the paper's Algorithm 1: draw $x_0$, $t$ and $\epsilon$, regress $\epsilon_\theta(x_t, t)$
# on $\epsilon$. `objective="simple"` is $L_\text{simple}$; `objective="bound"` weights each step by $\lambda_t$
# (with $\sigma_t^2 = \beta_t$), the true variational bound up to a constant — divided by the mean weight so that
# both objectives see gradients of a similar size. Per image, the squared error is averaged over pixels, as in the
# official code.
#
# The optimiser is the paper's: Adam with a linear learning-rate warm-up, gradients clipped to global norm 1, and
# an exponential moving average of the weights ({term}`EMA of the weights`) used for sampling. Two deviations fit
# the short run: the learning rate is $10^{-3}$ (the paper: $2 \times 10^{-4}$ over 800,000 steps) with a 100-step
# warm-up (5,000), and the EMA decay is 0.995 (0.9999, which would average over 10,000 steps — four times our whole
# run). The `full` profile uses the paper's values, for 100,000 steps of 128 digits: an eighth of the paper's
# 800,000 steps on CIFAR-10.


# %%
def update_ema(ema, model, decay):
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters()):
            averaged.lerp_(current, 1 - decay)


def make_training(schedule_name="linear", objective="simple"):
    if objective not in ("simple", "bound"):
        raise ValueError(f"unknown objective {objective!r}; choose 'simple' or 'bound'")
    schedule = Schedule.named(schedule_name)
    weights = torch.ones(T, device=device)
    if (
        objective == "bound"
    ):  # the first step's term is the decoder's likelihood; its weight is used there too
        weights = bound_weight(schedule) / bound_weight(schedule).mean()
    model = make_unet()
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / config.warmup)
    )

    def train_step(x0):
        t = torch.randint(0, T, (len(x0),), device=device)
        noise = torch.randn_like(x0)
        squared_error = (
            (model(q_sample(schedule, x0, t, noise), t) - noise).pow(2).mean(dim=(1, 2, 3))
        )
        loss = (weights[t] * squared_error).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gradient_norm = nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
        optimizer.step()
        warmup.step()
        update_ema(ema, model, config.ema_decay)
        return {"loss": loss, "noise_mse": squared_error.mean(), "gradient_norm": gradient_norm}

    state = {"model": model, "ema": ema, "optimizer": optimizer, "warmup": warmup}
    return SimpleNamespace(
        model=model, ema=ema, schedule=schedule, train_step=train_step, state=state
    )


TRAINING_CODE = [
    icu.unet,
    make_unet,
    make_training,
    update_ema,
    Schedule,
    linear_alpha_bar,
    cosine_alpha_bar,
    q_sample,
    bound_weight,
]

# %% [markdown]
# ## Checks before training
#
# The parameter count of the paper's CIFAR-10 network built from the same class, this run's output shape, and the
# two scalings everything above assumes: the data sits exactly on the 256 levels of $[-1, 1]$, and after the whole
# forward chain the digits have become standard Gaussian noise (mean 0, variance 1), as the prior $p(x_T)$ says.

# %%
# NBVAL_CHECK_OUTPUT
paper_unet = icu.UNet(
    in_channels=3,
    channels=128,
    channel_multipliers=(1, 2, 2, 2),
    blocks_per_level=2,
    attention_resolutions=(16,),
    dropout=0.1,
    image_size=32,
)
print(
    f"paper's CIFAR-10 U-Net: {sum(p.numel() for p in paper_unet.parameters()) / 1e6:.1f} M "
    "parameters"
)
del paper_unet
icu.seed_everything(SEED)
untrained = make_training()
x_check = train_x[:64].to(device)
t_check = torch.randint(0, T, (64,), device=device)
print("ε_θ(x_t, t) shape:", tuple(untrained.model(x_check, t_check).shape))
levels = (train_x[:500] + 1) * 255 / 2
print(
    "digits lie on the 256 levels of [-1, 1]:",
    bool(
        train_x.min() == -1
        and train_x.max() == 1
        and torch.allclose(levels, levels.round(), atol=1e-4)
    ),
)
x_T = q_sample(
    schedule,
    train_x[:2000].to(device),
    torch.full((2000,), 999, device=device),
    torch.randn(2000, 1, 32, 32, generator=generator).to(device),
)
print(
    "q(x_T | x_0) of the digits is standard noise (mean and variance within 0.01 of 0 and 1):",
    abs(x_T.mean().item()) < 0.01 and abs(x_T.var().item() - 1) < 0.01,
)

# %%
print(
    f"this run's U-Net: {sum(p.numel() for p in untrained.model.parameters()):,} parameters "
    f"({config.channels} channels, multipliers {config.multipliers}, "
    f"{config.blocks} block(s) per resolution)"
)

# %% [markdown]
# ## Training
#
# One run with the paper's recipe ($L_\text{simple}$, linear schedule). Every `snapshot_every` steps, `icu.fit`
# keeps a copy of the EMA weights — the samples-over-training figure below uses them, and the one at the first
# snapshot is this recipe at the ablations' budget.


# %%
def ema_weights(step):
    return {name: value.detach().cpu().clone() for name, value in main.ema.state_dict().items()}


icu.seed_everything(SEED)
main = make_training("linear", "simple")
history = icu.fit(
    main.train_step,
    train_batches,
    steps=config.steps,
    state=main.state,
    run="ddpm/main",
    config=config,
    code=TRAINING_CODE,
    every={config.snapshot_every: ema_weights},
    description="DDPM, L_simple, linear schedule",
)

# %%
fig, ax = plt.subplots(figsize=(8, 3.2))
icu.plot_history(
    history,
    keys=["noise_mse"],
    window=50,
    ax=ax,
    ylabel="‖ε − ε_θ‖² per pixel",
    title="training loss (L_simple, moving average of 50 batches)",
)
ax.set_yscale("log")
plt.show()

# %% [markdown]
# ## Sampling
#
# The ancestral sampler, all 1,000 steps, with either variance: `"small"` is $\sigma_t^2 = \tilde\beta_t$,
# `"large"` is $\sigma_t^2 = \beta_t$ (the official CIFAR-10 runs). `keep` stores the current $x_t$ and $\hat x_0$
# at a few steps for the figure of the chain.


# %%
@torch.inference_mode()
def ancestral_sample(model, schedule, n, variance="small", keep=(), batch_size=500, seed=1):
    if variance not in ("small", "large"):
        raise ValueError(f"unknown variance {variance!r}; choose 'small' (β̃_t) or 'large' (β_t)")
    generator = torch.Generator(device=device).manual_seed(seed)
    images, chain = [], {}
    for start in range(0, n, batch_size):
        x = torch.randn(min(batch_size, n - start), 1, 32, 32, device=device, generator=generator)
        for i in reversed(range(len(schedule))):
            t = schedule.timesteps[i].to(device).expand(len(x))
            x0_hat = predict_x0(schedule, x, i, model(x, t)).clamp(-1, 1)
            if (
                start == 0 and int(schedule.timesteps[i]) in keep
            ):  # x at this level, and the guess made from it
                chain[int(schedule.timesteps[i])] = (x[:8].cpu(), x0_hat[:8].cpu())
            mean = posterior_mean(schedule, x0_hat, x, i)
            noise = torch.randn(x.shape, device=device, generator=generator)
            x = mean + (schedule.variance[variance][i].sqrt() * noise if i > 0 else 0)
        images.append(x.cpu())
    return torch.cat(images), chain


sampling_start = time.perf_counter()
samples, chain = ancestral_sample(
    main.ema,
    main.schedule,
    config.fid_samples,
    "small",
    keep=[T * k // 10 for k in (9, 8, 6, 4, 3, 2, 1, 0)] + [T - 1],
)
sampling_seconds = time.perf_counter() - sampling_start
samples_large, _ = ancestral_sample(
    main.ema, main.schedule, config.fid_samples // 2, "large", seed=2
)
print(
    f"{config.fid_samples} samples × {T} steps in {sampling_seconds:.0f} s "
    f"({sampling_seconds / config.fid_samples:.2f} s per digit) on {icu.describe_device(device)}"
)

# %% tags=["landing-figure"] landing_crop=[0.017, 0.16, 0.37, 0.94]
fig, ax = plt.subplots(figsize=(9, 4.2))
icu.show_images(
    to_digits(samples[:64]),
    nrow=16,
    ax=ax,
    title=f"DDPM samples after {config.steps:,} steps (σ² = β̃_t, EMA weights, not cherry-picked)",
)
plt.show()

# %% [markdown]
# ### The chain, step by step
# Each row follows one sample from noise (left) to digit (right): the top row of each pair is $x_t$, the bottom row
# the network's current guess $\hat x_0$ of the clean image.

# %%
steps_shown = sorted(chain, reverse=True)
rows = []
for k in range(4):
    rows.append(torch.stack([chain[t][0][k] for t in steps_shown]))
    rows.append(torch.stack([chain[t][1][k] for t in steps_shown]))
fig, ax = plt.subplots(figsize=(8, 8.5))
icu.show_images(
    to_digits(torch.cat(rows)),
    nrow=len(steps_shown),
    ax=ax,
    title="x_t (odd rows) and x̂_0 (even rows) at t = "
    + ", ".join(str(t + 1) for t in steps_shown),
)
plt.show()

# %% [markdown]
# Read the $\hat x_0$ rows from left to right: the network's guess starts as a blurred average and commits to a digit
# somewhere in the middle of the chain; the last few hundred steps add stroke detail. This coarse-to-fine order is
# the paper's Figure 6 and its reading of diffusion as a progressive, lossy decompression.
#
# ### Samples over training
# The EMA weights that `icu.fit` kept along the run, each sampled from the same noise with a 100-step respaced chain
# (to keep the figure cheap).

# %%
snapshot_steps, snapshots = history.recorded("ema_weights")
snapshot_model = make_unet().eval()
over_training = []
for weights in snapshots:
    snapshot_model.load_state_dict(weights)
    over_training.append(
        ancestral_sample(snapshot_model, main.schedule.respaced(100), 12, seed=3)[0]
    )
fig, ax = plt.subplots(figsize=(8, 0.75 * len(snapshots) + 0.6))
icu.show_images(
    to_digits(torch.cat(over_training)),
    nrow=12,
    ax=ax,
    title="rows: EMA weights after " + ", ".join(f"{s:,}" for s in snapshot_steps) + " steps",
)
plt.show()

# %% [markdown]
# ## Numbers
#
# On the shared scale of the site's digit pages:
#
# - **FID (MNIST-classifier features)** — the Fréchet distance between the features that the site's MNIST classifier
#   computes for samples and for the 1,000 held-out digits (not Inception features: comparable within this site
#   only). Its value depends on the number of samples, so the floor — real training digits, as many as the
#   samples — is printed beside it, and so is the *untrained* network's sampler;
# - **mode coverage** — how many digit classes the classifier finds among the samples;
# - **nearest training digits** — a memorisation check: are samples closer to a training digit than held-out
#   digits are?
# - **the variational bound in bits/dim** on held-out digits (below).

# %%
classifier = icu.mnist_classifier(device)
test_features, _ = icu.classify(classifier, mnist.test_images)


def zero_network(x, t):
    """The untrained U-Net's output, exactly: its last layer starts at zero."""
    return torch.zeros_like(x)


def sample_scores(images):
    features, probabilities = icu.classify(classifier, to_digits(images))
    return (
        icu.frechet_distance(features, test_features),
        icu.mode_coverage(probabilities),
        len(images),
    )


scores = {
    "training digits (the floor)": sample_scores(train_x[: config.fid_samples]),
    "DDPM, σ² = β̃_t": sample_scores(samples),
    "DDPM, σ² = β_t": sample_scores(samples_large),
    "untrained network": sample_scores(
        ancestral_sample(zero_network, main.schedule, config.fid_samples)[0]
    ),
}
icu.show_table(
    ["samples", "n", "FID (MNIST-clf)", "classes covered", "class entropy (nats)"],
    [
        [name, n, fid, coverage.classes_covered, coverage.entropy]
        for name, (fid, coverage, n) in scores.items()
    ],
)

# %%
distances, nearest = icu.nearest_neighbours(to_digits(samples), mnist.train_images)
test_distances, _ = icu.nearest_neighbours(mnist.test_images[: len(samples)], mnist.train_images)
pairs = torch.stack([to_digits(samples[:12]), mnist.train_images[nearest[:12]]], dim=1).flatten(
    0, 1
)
fig, ax = plt.subplots(figsize=(8, 1.6))
icu.show_images(pairs, nrow=24, ax=ax, title="samples, each beside its nearest training digit")
plt.show()
print(
    f"distance to the nearest training digit: samples median {distances.median():.2f}, "
    f"held-out digits median {test_distances.median():.2f} (smaller for samples would mean copying)"
)

# %% [markdown]
# ### The variational bound in bits per dimension
#
# All $T$ terms, as the official `calc_bpd_loop`: the prior term $L_T$, one KL per step with a fresh $x_t$ for each,
# and the decoder term $L_0$ — the paper's discretised Gaussian, which gives each of the 256 pixel levels the
# probability mass of its bin (the edge bins extend to $\pm\infty$). Computed for both variances from the same
# network evaluations. The sum is an **upper bound** on $-\log_2 p(x_0)$; as on the Glow page, the bound of the
# padded 32×32 image is divided by the 784 pixels of the digit (the padding is constant, so this is still a bound
# on the digit's own likelihood). One pass over $T$ steps per batch makes this costly: it is computed on
# `bound_digits` held-out digits, with the standard error across digits.


# %%
def discretized_gaussian_log_likelihood(x0, mean, variance):
    """log P(x_0) per pixel: N(mean, variance) integrated over each 8-bit level's bin of [-1, 1]."""
    scale = variance.sqrt()
    upper, lower = (x0 + 1 / 255 - mean) / scale, (x0 - 1 / 255 - mean) / scale
    middle = torch.log((torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12))
    return torch.where(
        x0 < -0.999,
        torch.special.log_ndtr(upper),
        torch.where(x0 > 0.999, torch.special.log_ndtr(-lower), middle),
    )


@torch.inference_mode()
def variational_bound(model, schedule, x0, seed=4):
    """Per-image bound terms in nats: the prior, then L_{t-1} for every step, for both variances."""
    generator = torch.Generator(device=device).manual_seed(seed)
    x0 = x0.to(device)
    a_T = schedule.alpha_bar[-1]
    prior = normal_kl(a_T.sqrt() * x0, 1 - a_T, torch.zeros_like(x0), torch.ones(())).sum((1, 2, 3))
    terms = {
        "small": torch.zeros(len(x0), T, device=device),
        "large": torch.zeros(len(x0), T, device=device),
    }
    for t in range(T):
        x_t = q_sample(schedule, x0, t, torch.randn(x0.shape, device=device, generator=generator))
        steps = torch.full((len(x0),), t, device=device)
        mean_p = posterior_mean(
            schedule, predict_x0(schedule, x_t, t, model(x_t, steps)).clamp(-1, 1), x_t, t
        )
        for variance, term in terms.items():
            sigma2 = schedule.variance[variance][t]
            if t == 0:
                term[:, 0] = -discretized_gaussian_log_likelihood(x0, mean_p, sigma2).sum((1, 2, 3))
            else:
                mean_q = posterior_mean(schedule, x0, x_t, t)
                term[:, t] = normal_kl(mean_q, schedule.posterior_variance[t], mean_p, sigma2).sum(
                    (1, 2, 3)
                )
    return prior, {variance: term.cpu() for variance, term in terms.items()}


def bits_per_digit_pixel(nats):
    return icu.nats_to_bits_per_dim(nats, 28 * 28)


def bound_summary(model, schedule, digits):
    prior, terms = variational_bound(model, schedule, digits)
    totals = {v: bits_per_digit_pixel(prior.cpu() + term.sum(1)) for v, term in terms.items()}
    return {
        v: (total.mean().item(), total.std().item() / len(total) ** 0.5)
        for v, total in totals.items()
    }, terms


bound_digits = test_x[: config.bound_digits]
bound_start = time.perf_counter()
bound, bound_terms = bound_summary(main.ema, main.schedule, bound_digits)
bound_seconds = time.perf_counter() - bound_start
untrained_bound, _ = bound_summary(zero_network, main.schedule, bound_digits)
icu.show_table(
    ["model", "bound, σ² = β̃_t (bits/dim)", "± s.e.", "bound, σ² = β_t (bits/dim)", "± s.e."],
    [
        [name, b["small"][0], b["small"][1], b["large"][0], b["large"][1]]
        for name, b in [
            ("DDPM (EMA weights)", bound),
            ("untrained network (ε_θ = 0)", untrained_bound),
        ]
    ],
)
print(f"{len(bound_digits)} held-out digits × {T} steps in {bound_seconds:.0f} s")

# %%
fig, ax = plt.subplots(figsize=(8, 3.2))
per_step = bits_per_digit_pixel(bound_terms["small"].mean(0))
ax.semilogy(range(1, T + 1), per_step)
ax.set(
    xlabel="step t",
    ylabel="bits/dim",
    title="where the bound's bits are: mean L_{t-1} per step (σ² = β̃_t)",
)
ax.grid(alpha=0.3)
plt.show()
print(
    f"the decoder term L_0 holds {per_step[0] / per_step.sum():.0%} of the bound; "
    f"the first 10 steps {per_step[:10].sum() / per_step.sum():.0%}, "
    f"the second half of the chain {per_step[T // 2:].sum() / per_step.sum():.0%}"
)

# %% [markdown]
# The printed fractions say where the bound's bits are. The first steps — the imperceptible details that
# $L_\text{simple}$ down-weights — carry a share far above their number, and the second half of the chain almost
# none. This is the paper's Section 4.3 in one picture: a network can make good samples and still have a mediocre
# likelihood bound.

# %% [markdown]
# ## Ablations at one budget
#
# Two of the design choices that later work revisited, each trained for `snapshot_every` steps and compared with the
# main recipe's EMA weights at that same step (kept during its run):
#
# - the **cosine schedule** of Improved DDPM instead of the linear one;
# - the **true bound** ($\lambda_t$-weighted, $\sigma_t^2 = \beta_t$) instead of $L_\text{simple}$ — the paper's
#   Table 1 reports it gives better likelihoods (3.70 against 3.75 bits/dim) and worse samples (FID 13.51 against
#   3.17).
#
# To keep the cost down, samples for these FIDs come from a 100-step respaced ancestral chain and the bound is taken
# on fewer digits; all three models are measured the same way.

# %%
icu.seed_everything(SEED)
ablation_models = {"L_simple, linear (main run at this step)": (main.schedule, snapshots[0])}
for name, (schedule_name, objective) in {
    "L_simple, cosine": ("cosine", "simple"),
    "true bound, linear": ("linear", "bound"),
}.items():
    icu.seed_everything(SEED)
    run = make_training(schedule_name, objective)
    icu.fit(
        run.train_step,
        train_batches,
        steps=config.snapshot_every,
        state=run.state,
        run=f"ddpm/{schedule_name}-{objective}",
        config=config,
        code=TRAINING_CODE,
        description=f"ablation: {name}",
    )
    ablation_models[name] = (run.schedule, run.ema.state_dict())

# %%
ablation_rows = {}
for name, (schedule, weights) in ablation_models.items():
    snapshot_model.load_state_dict(weights)
    images = ancestral_sample(
        snapshot_model, schedule.respaced(100), config.ablation_samples, seed=5
    )[0]
    fid, coverage, _ = sample_scores(images)
    ablation_bound, _ = bound_summary(
        snapshot_model, schedule, test_x[: config.ablation_bound_digits]
    )
    ablation_rows[name] = (fid, coverage.classes_covered, *ablation_bound["small"])
icu.show_table(
    [
        "recipe",
        "steps",
        "FID (MNIST-clf), 100-step chain",
        "classes",
        "bound σ² = β̃_t (bits/dim)",
        "± s.e.",
    ],
    [[name, config.snapshot_every, *values] for name, values in ablation_rows.items()],
)

# %% [markdown]
# Read the table row by row against the first, the main recipe at the same step. In the stored run the cosine
# schedule gives both better samples and a better bound than the linear one after the same 600 steps. The true
# bound gives the best bound of the three and by far the worst samples, with fewer digit classes among them: the
# paper's trade-off between the two objectives, already visible at this budget. (Three runs of one seed each, at a
# quarter of the main run's length: a direction, not a measurement of the final gap.)

# %% [markdown]
# ## Results
#
# The headline numbers of this run, also written to `results/book/ddpm.json` for the
# [results page](../../book/results.md):

# %%
run_device = icu.describe_device(device)
fid_data = (
    f"{config.fid_samples:,} samples vs {len(mnist.test_images):,} held-out {mnist.name} digits"
)
bound_data = f"{len(bound_digits):,} held-out {mnist.name} digits, 8-bit, 28×28"
icu.record_results(
    "ddpm",
    [
        dict(
            key="fid",
            metric=f"FID (MNIST-classifier features), {T}-step ancestral sampler",
            value=round(scores["DDPM, σ² = β̃_t"][0], 2),
            data=fid_data,
            paper="3.17 (CIFAR-10, Inception features, 50,000 samples vs the training set)",
            note=f"floor (training digits): {scores['training digits (the floor)'][0]:.2f}; "
            f"untrained network: {scores['untrained network'][0]:.1f}",
        ),
        dict(
            key="classes_covered",
            metric="digit classes covered (of 10)",
            value=scores["DDPM, σ² = β̃_t"][1].classes_covered,
            data=fid_data,
        ),
        dict(
            key="bound_bits_per_dim",
            metric="variational bound, σ² = β̃_t (bits/dim, upper bound)",
            value=round(bound["small"][0], 3),
            data=bound_data,
            paper="≤ 3.75 (CIFAR-10, L_simple model)",
            note=f"± {bound['small'][1]:.3f} (standard error over digits); "
            f"σ² = β_t: {bound['large'][0]:.3f}; "
            f"untrained network: {untrained_bound['small'][0]:.2f}",
        ),
        dict(
            key="seconds_per_sample",
            metric=f"sampling time per digit, {T} steps (s)",
            value=round(sampling_seconds / config.fid_samples, 3),
            data=f"batches of up to 500, {config.channels}-channel U-Net",
        ),
    ],
    defaults=dict(steps=config.steps, wall_time_s=round(history.wall_time), device=run_device),
)

# %% [markdown]
# ### Beside the paper
#
# | source | data | FID | bound (bits/dim) |
# | --- | --- | --- | --- |
# | Ho et al. 2020, Table 1, $L_\text{simple}$ | CIFAR-10, 35.7 M parameters, 800,000 steps of 128 | 3.17 (Inception features, vs the training set; 5.24 vs the test set) | ≤ 3.75 |
# | Ho et al. 2020, Table 1, true bound | the same | 13.51 | ≤ 3.70 |
# | **this page** | 4,000 MNIST digits, the results table above | FID (MNIST-classifier features) | bound on 8-bit digits |
#
# The numbers cannot be compared across the rows: different data (32×32 colour photographs against grey digits),
# a different feature extractor for FID, and a model fifty times smaller trained for three hundred times fewer steps.
# What carries over are the comparisons *within* a row: samples against the floor and the untrained sampler, the
# bound against the untrained network, and the direction of the ablations.

# %% [markdown]
# ## Quality gates
#
# Each gate compares the trained model with what a model that learned nothing reaches — the untrained network,
# whose output is exactly $\epsilon_\theta = 0$:
#
# - the held-out denoising loss (the same $t$ and $\epsilon$ for both) must fall below a fraction of the untrained
#   network's;
# - the samples' FID must fall below a fraction of the untrained sampler's, and cover enough digit classes;
# - the variational bound must be below a fraction of the untrained network's;
# - on the toy, samples must land closer to the data than Gaussian noise does, and held-out data closer to the
#   samples than to noise, each by a factor.


# %%
@torch.inference_mode()
def heldout_loss(model, schedule, digits, seed=6):
    generator = torch.Generator(device=device).manual_seed(seed)
    digits = digits.to(device)
    t = torch.randint(0, T, (len(digits),), device=device, generator=generator)
    noise = torch.randn(digits.shape, device=device, generator=generator)
    return (model(q_sample(schedule, digits, t, noise), t) - noise).pow(2).mean().item()


trained_heldout = heldout_loss(main.ema, main.schedule, test_x[:500])
untrained_heldout = heldout_loss(zero_network, main.schedule, test_x[:500])
gates = config.gates
print(
    f"held-out noise MSE {trained_heldout:.4f} vs untrained {untrained_heldout:.4f}; "
    f"FID {scores['DDPM, σ² = β̃_t'][0]:.1f} vs untrained {scores['untrained network'][0]:.1f}; "
    f"bound {bound['small'][0]:.3f} vs untrained {untrained_bound['small'][0]:.3f} bits/dim; "
    f"toy: {toy_distance:.3f} vs noise {noise_distance:.3f}, "
    f"coverage {toy_recall:.3f} vs {noise_recall:.3f}"
)
assert (
    trained_heldout < gates.heldout_fraction * untrained_heldout
), "the denoiser did not learn to predict the noise"
assert (
    scores["DDPM, σ² = β̃_t"][0] < gates.fid_fraction * scores["untrained network"][0]
), "samples are no closer to digits"
assert scores["DDPM, σ² = β̃_t"][1].classes_covered >= gates.classes, "samples miss digit classes"
assert (
    bound["small"][0] < gates.bound_fraction * untrained_bound["small"][0]
), "the bound is no better than untrained"
assert (
    toy_distance < gates.toy_fraction * noise_distance
), "the toy's samples do not land on the moons"
assert (
    toy_recall < gates.toy_recall_fraction * noise_recall
), "the toy's samples do not cover the moons"
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - A diffusion model is a VAE whose encoder is fixed: a Gaussian noising chain with a closed form at every step.
#   Training is regression — predict the added noise at a random step — with no adversary and no collapse.
# - $L_\text{simple}$ is the bound with its per-step weights dropped: it spends the model on the noisy steps that
#   make samples, and gives away likelihood on the nearly clean steps, where the bound's bits are.
# - Sampling costs one network evaluation per step: 1,000 here. That cost is what DDIM {cite}`song2021denoising` removes
#   without retraining.
#
# **Common pitfalls**
# - Off-by-one in time: the paper's $t = 1 \dots T$ against code indices $0 \dots T-1$, and $\bar\alpha_{t-1}$ at the
#   first step (it is 1). The least-squares check above catches wrong posterior coefficients.
# - Feeding data in $[0, 1]$ while the sampler clips to $[-1, 1]$ (or normalising twice).
# - Adding noise at the last sampling step, or not clipping $\hat x_0$ while comparing with numbers that did.
# - Judging samples from the raw weights instead of the EMA, or with an EMA decay that averages over more steps
#   than the run has.
# - Reading FID across feature extractors, sample counts or reference sets: the paper's 3.17 is against the
#   training set.
#
# ## Try it yourself
#
# 1. Set `variance="large"` in the landing figure's sampler call: the samples look much the same (the paper's
#    observation), and the table above shows the FID of both.
# 2. Remove `.clamp(-1, 1)` in `ancestral_sample`: early $\hat x_0$ overshoot and some samples come out washed out
#    or saturated.
# 3. Replace `main.ema` by `main.model.eval()` in the sampling cell: the raw weights' samples are noisier.
# 4. Sample with `main.schedule.respaced(50)`: fifty steps instead of a thousand. The digits degrade: the ancestral
#    sampler needs its small steps.
# 5. Train the toy for `toy_steps=300` instead of 3,000: the samples land near the moons but not on them, and both
#    distances printed under its figure grow.
#
# **Further reading.** Sohl-Dickstein et al. 2015 {cite}`sohl2015deep`, where diffusion models began; Nichol &
# Dhariwal 2021 {cite}`nichol2021improved` (learned variances, the cosine schedule, fewer steps); the
# [diffusion family page](../../book/diffusion-family.md) on the three views of these models.
