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
# # Score SDEs and EDM: one framework, many samplers
#
# | **Paper** | *Score-Based Generative Modeling through Stochastic Differential Equations* — Yang Song, Jascha Sohl-Dickstein, Diederik P. Kingma, Abhishek Kumar, Stefano Ermon, Ben Poole, 2021 ([arXiv 2011.13456](https://arxiv.org/abs/2011.13456)) {cite}`song2021score` |
# | --- | --- |
# | **And** | *Elucidating the Design Space of Diffusion-Based Generative Models* — Tero Karras, Miika Aittala, Timo Aila, Samuli Laine, 2022 ([arXiv 2206.00364](https://arxiv.org/abs/2206.00364)) {cite}`karras2022elucidating` |
# | **Family** | [Diffusion models](../../book/diffusion-family.md) |
# | **Trains here** | a 2-D score network in seconds; an EDM denoiser (the DDPM page's U-Net size) on 4,000 real MNIST digits and two shorter ablation runs, about ten minutes on two CPU cores; the score-SDE samplers and the likelihood reuse the [DDPM page](ddpm.ipynb)'s network |
#
# **The idea in three sentences.** Song et al. let the noise level vary continuously: a stochastic differential
# equation (SDE) turns data into noise, its time reversal is another SDE that needs only the *score*
# $\nabla_x \log p_t(x)$, and a network learns that score by denoising — DDPM and the noise-conditional score
# networks (NCSN) are two discretisations of it, the *variance-preserving* (VP) and *variance-exploding* (VE) SDE.
# The same marginal densities are reached by a deterministic *probability-flow* ODE, which gives exact likelihoods
# and a deterministic sampler. Karras et al. (EDM) rewrite the whole framework with the noise level $\sigma$ as the
# time variable and a denoiser $D(x; \sigma)$ as the network, and then choose each piece — the network's input and
# output scalings, the noise levels seen in training, the loss weight, the time steps, the ODE solver, the amount of
# fresh noise — on its own merits, reaching better samples in 35 network evaluations.
#
# **Why one page.** EDM is not a new model but a re-parameterisation of the score-SDE framework: the same score,
# the same reverse SDE and ODE, written in $\sigma$. Putting both on one page lets us use one set of definitions,
# run the score-SDE samplers on the DDPM page's network and EDM's sampler on a denoiser trained here, and compare
# every sampler of the diffusion family on one figure, on the same digits and the same metric.

# %% [markdown]
# ## Setup
#
# This page samples the DDPM page's trained network: run that page first in the same profile (the regenerate
# command, `python -m itemchest_utils.execute --all`, does). Without its checkpoint this page stops with a message
# that says so. On Colab, the first cell installs this project's helper package `itemchest_utils`.

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
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import itemchest_utils as icu

config = icu.pick_config(
    smoke=dict(dataset="mnist_embedded", toy_steps=300, toy_samples=500, langevin_steps=20,
               channels=8, multipliers=(1, 2, 2), blocks=1, attention=(8,), steps=40,
               ablation_steps=20, batch_size=32, lr=1e-3, warmup=10, ema_decay=0.9,
               fid_samples=8, ablation_samples=8,
               edm_steps=(2, 3), edm_ablation_steps=3, ddpm_edm_steps=(2,),
               vp_em_nfe=(4,), vp_pc_nfe=(4,), vp_ode_nfe=(4,),
               likelihood_digits=4, likelihood_steps=4),
    book=dict(dataset="mnist_embedded", toy_steps=3000, toy_samples=2000, langevin_steps=100,
              channels=16, multipliers=(1, 2, 4), blocks=1, attention=(8,), steps=1200,
              ablation_steps=400, batch_size=64, lr=1e-3, warmup=100, ema_decay=0.995,
              fid_samples=200, ablation_samples=200,
              edm_steps=(3, 5, 10, 18), edm_ablation_steps=18, ddpm_edm_steps=(5, 10, 18),
              vp_em_nfe=(10, 20, 50, 100), vp_pc_nfe=(20, 50, 100), vp_ode_nfe=(10, 20, 50),
              likelihood_digits=100, likelihood_steps=100),
    full=dict(dataset="mnist", toy_steps=3000, toy_samples=2000, langevin_steps=100,
              channels=128, multipliers=(1, 2, 2, 2), blocks=2, attention=(16,), steps=100_000,
              ablation_steps=20_000, batch_size=128, lr=2e-4, warmup=5000, ema_decay=0.9999,
              fid_samples=10_000, ablation_samples=2000,
              edm_steps=(3, 5, 10, 18, 40), edm_ablation_steps=18, ddpm_edm_steps=(5, 10, 18, 40),
              vp_em_nfe=(10, 20, 50, 100, 1000), vp_pc_nfe=(20, 50, 100, 1000),
              vp_ode_nfe=(10, 20, 50, 100), likelihood_digits=1000, likelihood_steps=200),
    gates=dict(
        smoke=dict(toy_weight_error=0.5, toy_score_fraction=0.95, heldout_fraction=0.9,
                   edm_fid_fraction=1.5, vp_fid_fraction=1.5, classes=1, bits_fraction=0.9,
                   ode_resolution=5.0),
        book=dict(toy_weight_error=0.06, toy_score_fraction=0.2, heldout_fraction=0.5,
                  edm_fid_fraction=0.1, vp_fid_fraction=0.3, classes=9, bits_fraction=0.5,
                  ode_resolution=0.1),
        full=dict(toy_weight_error=0.06, toy_score_fraction=0.2, heldout_fraction=0.4,
                  edm_fid_fraction=0.05, vp_fid_fraction=0.1, classes=10, bits_fraction=0.4,
                  ode_resolution=0.05)),
)
# The score-SDE paper's settings (the same in every profile)
# VP: β(t) rises linearly; ×1/1000 these are DDPM's 1e-4 and 0.02
VP_BETA_MIN, VP_BETA_MAX = 0.1, 20.0
VE_SIGMA_MIN, VE_SIGMA_MAX = 0.01, 50.0  # VE: the default configuration's noise range
SNR = 0.16  # the Langevin corrector's target signal-to-noise ratio
SAMPLING_END = 1e-3  # VP samplers stop at t = ε, not at 0, where the score diverges
# DDPM's linear schedule at T = 1000: the DDPM page's network was trained with it
BETA_1, BETA_T = 1e-4, 0.02
# EDM's settings
# the sampler's noise range and step-density exponent
EDM_SIGMA_MIN, EDM_SIGMA_MAX, RHO = 0.002, 80.0, 7.0
P_MEAN, P_STD = -1.2, 1.2  # training: ln σ ~ N(P_mean, P_std²)
# the paper's ImageNet-64 settings
CHURN = dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)
DROPOUT, GRADIENT_CLIP, SEED = 0.1, 1.0, 0  # the DDPM page's recipe

device = icu.pick_device()
icu.seed_everything(SEED)
print("device:", icu.describe_device(device))
config

# %% [markdown]
# ## The idea in math
#
# **Scores and denoising.** Blur the data distribution with Gaussian noise of standard deviation $\sigma$:
# $p(x; \sigma) = \int p_\text{data}(y)\,\mathcal N(x; y, \sigma^2 I)\,dy$. Its *score* ({term}`score`) $\nabla_x \log p(x; \sigma)$
# points towards higher density. A network $s_\theta(x, \sigma)$ learns it without knowing $p$ by **denoising score
# matching** {cite}`vincent2011connection`: with $x = y + \sigma\epsilon$,
#
# $$
# \mathcal L_\text{DSM} = \mathbb E_{y, \epsilon}\,\big\lVert \sigma\, s_\theta(y + \sigma\epsilon, \sigma) + \epsilon \big\rVert^2
# $$
#
# (weighted by $\sigma^2$, as in NCSN {cite}`song2019generative`) is minimised by
# $s_\theta(x, \sigma) = \mathbb E[-\epsilon/\sigma \mid x] = \nabla_x \log p(x; \sigma)$: the score of one noised
# point, $\nabla_x \log \mathcal N(x; y, \sigma^2 I) = -\epsilon/\sigma$, averaged over the clean $y$ that could have
# produced $x$, is the score of the whole blurred distribution. The same minimiser has two other names:
#
# - **noise prediction**: a network $\epsilon_\theta$ trained like DDPM's gives $s = -\epsilon_\theta/\sigma$ (for
#   DDPM's $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$, with $\sigma_t = \sqrt{1-\bar\alpha_t}$);
# - **denoising** (Tweedie's formula): the best denoiser $D(x; \sigma) = \mathbb E[y \mid x]$ satisfies
#   $\nabla_x \log p(x; \sigma) = (D(x; \sigma) - x)/\sigma^2$.
#
# **Annealed Langevin dynamics** (NCSN). Langevin dynamics, $x \leftarrow x + \tfrac{\alpha}{2} s(x) + \sqrt{\alpha}\,z$
# with $z \sim \mathcal N(0, I)$, samples $p$ for small steps $\alpha$ and many of them. Alone it fails on data in two
# ways: the score is learned only where data are, and a chain that starts near one mode rarely crosses to another,
# so the modes' proportions come out wrong. Song & Ermon anneal: Langevin at a large $\sigma$ first (the blurred
# density connects the modes), then at smaller and smaller ones, with steps $\alpha_i = \varepsilon\,\sigma_i^2/\sigma_L^2$.
#
# **Continuous time.** Let the noise grow along a forward SDE $dx = f(x, t)\,dt + g(t)\,dw$ from data at $t = 0$ to
# noise at $t = 1$. The paper's two main choices:
#
# | SDE | drift $f(x, t)$ | diffusion $g(t)$ | marginal $p_t(x \mid x_0)$ | discretised, it is |
# | --- | --- | --- | --- | --- |
# | VP | $-\tfrac12\beta(t)\,x$ | $\sqrt{\beta(t)}$ | $\mathcal N\big(x_0 e^{-B(t)/2},\ (1 - e^{-B(t)}) I\big)$ | DDPM, with $\beta_i = \beta(i/N)/N$ |
# | VE | $0$ | $\sigma(t)\sqrt{2\ln(\sigma_\max/\sigma_\min)}$ | $\mathcal N\big(x_0,\ (\sigma(t)^2 - \sigma_\min^2) I\big)$ | NCSN's noise levels |
#
# with $\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)$, $B(t) = \int_0^t \beta = \beta_\min t + \tfrac12(\beta_\max -
# \beta_\min)t^2$, $\beta_\min = 0.1$, $\beta_\max = 20$; and $\sigma(t) = \sigma_\min(\sigma_\max/\sigma_\min)^t$ with
# $\sigma_\min = 0.01$, $\sigma_\max = 50$. With $N = 1000$ steps the VP SDE's $\beta_i$ run from $10^{-4}$ to $0.02$:
# DDPM's linear schedule.
#
# **Reversing time** (Anderson, 1982). The forward SDE run backwards is again an SDE, which needs only the score:
#
# $$
# dx = \big[f(x, t) - g(t)^2\,\nabla_x \log p_t(x)\big]\,dt + g(t)\,d\bar w, \qquad t: 1 \to 0 .
# $$
#
# - **Euler–Maruyama (EM)**: $x \leftarrow x - [f - g^2 s_\theta]\,\Delta t + g\sqrt{\Delta t}\,z$, one network
#   evaluation per step.
# - **Predictor–corrector (PC)**: after each predictor step, a Langevin step at the same $t$ pulls the samples
#   towards $p_t$, with step $\varepsilon = 2\alpha\,(r\lVert z\rVert / \lVert s_\theta\rVert)^2$ — the paper's
#   signal-to-noise rule, target $r = 0.16$, norms averaged over the batch as in the official code.
# - **Probability-flow ODE**: $\frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2 \nabla_x \log p_t(x)$ has the same marginals
#   $p_t$ with no noise at all. It is deterministic (the [DDIM page](ddim.ipynb)'s $\eta = 0$ sampler is its Euler
#   method, for VP), invertible, and gives exact likelihoods through the instantaneous change of variables,
#   $\log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\cdot\big(f - \tfrac12 g^2 s_\theta\big)\,dt$.
#
# **EDM: everything in $\sigma$.** Karras et al. show that each such model is, after rescaling $x$ and relabelling
# time, the ODE $dx/d\sigma = -\sigma\,\nabla_x \log p(x; \sigma) = (x - D(x; \sigma))/\sigma$ — the VE ODE with
# $\sigma(t) = t$. With $\sigma$ as the time, the design choices come apart:
#
# 1. **Preconditioning**: $D_\theta(x; \sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,F_\theta\big(c_\text{in}(\sigma)\,x;\ c_\text{noise}(\sigma)\big)$ with
#    $c_\text{skip} = \frac{\sigma_\text{data}^2}{\sigma^2 + \sigma_\text{data}^2}$,
#    $c_\text{out} = \frac{\sigma\,\sigma_\text{data}}{\sqrt{\sigma^2 + \sigma_\text{data}^2}}$,
#    $c_\text{in} = \frac{1}{\sqrt{\sigma^2 + \sigma_\text{data}^2}}$, $c_\text{noise} = \tfrac14 \ln\sigma$.
#    $c_\text{in}$ gives the network inputs of unit variance; $c_\text{skip}$ and $c_\text{out}$ give its target
#    $(y - c_\text{skip}x)/c_\text{out}$ unit variance, with $c_\text{out}$ as small as possible so that the
#    network's errors are amplified least. At small $\sigma$ the network predicts a small correction (like
#    $\epsilon$-prediction), at large $\sigma$ the image itself.
# 2. **Training noise levels**: $\ln\sigma \sim \mathcal N(P_\text{mean}, P_\text{std}^2)$, $P_\text{mean} = -1.2$,
#    $P_\text{std} = 1.2$ — the levels where the loss can still be reduced.
# 3. **Loss weight** $\lambda(\sigma) = 1/c_\text{out}^2 = (\sigma^2 + \sigma_\text{data}^2)/(\sigma\,\sigma_\text{data})^2$
#    in $\mathbb E\,\lambda(\sigma)\lVert D_\theta(y + n; \sigma) - y\rVert^2$, so that the network's own loss has
#    weight one at every $\sigma$.
# 4. **Time steps** $\sigma_i = \big(\sigma_\max^{1/\rho} + \tfrac{i}{N-1}(\sigma_\min^{1/\rho} - \sigma_\max^{1/\rho})\big)^\rho$
#    for $i < N$, $\sigma_N = 0$, with $\rho = 7$, $\sigma_\min = 0.002$, $\sigma_\max = 80$: dense at small
#    $\sigma$, where the trajectories bend.
# 5. **Heun's second-order solver**, whose correction is skipped on the last step (to $\sigma = 0$): $2N - 1$
#    evaluations, 35 for $N = 18$.
# 6. **Stochastic churn** (optional): before step $i$, add fresh noise to raise the level to
#    $\hat\sigma_i = \sigma_i(1 + \gamma_i)$, with $\gamma_i = \min(S_\text{churn}/N, \sqrt2 - 1)$ for
#    $\sigma_i \in [S_\text{tmin}, S_\text{tmax}]$ and 0 elsewhere, and the noise scaled by
#    $S_\text{noise} \gtrsim 1$. The paper leaves it off for CIFAR-10 and uses $S_\text{churn} = 40$,
#    $S_\text{tmin} = 0.05$, $S_\text{tmax} = 50$, $S_\text{noise} = 1.003$ for ImageNet-64.

# %% [markdown]
# ## Scores from noise predictions and from denoisers
#
# Three lines turn any of the three parameterisations into the others, and one line is the DSM loss.


# %%
def score_from_epsilon(epsilon, sigma):
    """The score of the noised data from a noise prediction: s = −ε/σ."""
    return -epsilon / sigma


def score_from_denoiser(denoised, x, sigma):
    """Tweedie's formula: s = (D(x; σ) − x) / σ²."""
    return (denoised - x) / sigma**2


def dsm_loss(score, epsilon, sigma):
    """Denoising score matching weighted by σ²: ‖σ s(y + σε) + ε‖² per example, averaged."""
    return (sigma * score + epsilon).pow(2).flatten(1).sum(1).mean()


# %% [markdown]
# **Check: the three are the score, on a Gaussian where the score is known.** For data $y \sim \mathcal N(\mu,
# \operatorname{diag}(s^2))$ the blurred density is Gaussian and its score is $-(x - \mu)/(s^2 + \sigma^2)$. We learn
# the best noise predictor $\mathbb E[\epsilon \mid x]$ and the best denoiser $\mathbb E[y \mid x]$ by least squares
# from 400,000 draws (both are linear in $x$ here), convert them with the functions above, and compare with the
# closed form — at two noise levels and for DDPM's scaled form $x = \sqrt{\bar\alpha}\,y + \sqrt{1-\bar\alpha}\,\epsilon$.
# Then the DSM loss must be lower at the true score than at 0.9 or 1.1 times it, or at its negative. A wrong sign or
# a $1/\sigma^2$ for a $1/\sigma$ fails it.

# %%
# NBVAL_CHECK_OUTPUT
generator = torch.Generator().manual_seed(0)
mean, std, draws = torch.tensor([0.5, -1.0]).double(), torch.tensor([0.7, 1.5]).double(), 400_000
passed = []
for scale, sigma in ((1.0, 0.3), (1.0, 2.0), (0.6**0.5, 0.4**0.5)):  # last: DDPM's form, ᾱ = 0.6
    y = mean + std * torch.randn(draws, 2, generator=generator, dtype=torch.float64)
    epsilon = torch.randn(draws, 2, generator=generator, dtype=torch.float64)
    x = scale * y + sigma * epsilon
    design = torch.cat([x, torch.ones(draws, 1, dtype=torch.float64)], dim=1)
    best_epsilon = design @ torch.linalg.lstsq(design, epsilon).solution  # E[ε | x]
    best_clean = design @ torch.linalg.lstsq(design, scale * y).solution  # E[scale·y | x]
    exact = -(x - scale * mean) / (scale**2 * std**2 + sigma**2)
    error = lambda s: ((s - exact).norm() / exact.norm()).item()  # noqa: E731
    passed += [error(score_from_epsilon(best_epsilon, sigma)) < 0.03,
               error(score_from_denoiser(best_clean, x, sigma)) < 0.03]
    at_truth = dsm_loss(exact, epsilon, sigma)
    passed += [at_truth < dsm_loss(factor * exact, epsilon, sigma) for factor in (0.9, 1.1, -1.0)]
print("s = −E[ε|x]/σ and s = (E[y|x] − x)/σ² match the closed-form score at 3 noise levels:",
      all(passed[k] for k in range(len(passed)) if k % 5 < 2))
print("the DSM loss is lowest at the true score (vs 0.9×, 1.1×, −1×):",
      all(passed[k] for k in range(len(passed)) if k % 5 >= 2))

# %% [markdown]
# ## A 2-D toy: annealed Langevin dynamics (the NCSN view)
#
# Song & Ermon's example: a mixture of two Gaussians (standard deviation 1) at $(-4, -4)$ and $(4, 4)$ with weights
# 0.2 and 0.8. A small MLP learns $\epsilon_\theta(x, \sigma)$ by the DSM loss, with $\sigma$ log-uniform between
# $\sigma_L = 0.1$ and $\sigma_1 = 10$; its score is $-\epsilon_\theta/\sigma$. The exact score of the blurred mixture
# is known, so we can draw both.

# %%
TOY_MEANS = torch.tensor([[-4.0, -4.0], [4.0, 4.0]], device=device)
TOY_WEIGHTS = torch.tensor([0.2, 0.8], device=device)
TOY_SIGMAS = torch.logspace(1, -1, 10).tolist()  # σ_1 = 10 … σ_L = 0.1, the annealing levels


def toy_data(n, generator):
    k = torch.multinomial(TOY_WEIGHTS.cpu(), n, replacement=True, generator=generator).to(device)
    return TOY_MEANS[k] + torch.randn(n, 2, generator=generator).to(device)


def toy_exact_score(x, sigma):
    """∇ log of the mixture blurred by σ: each component N(μ_k, (1 + σ²) I), weighted by its
    posterior."""
    variance = 1 + sigma**2
    offsets = TOY_MEANS[None] - x[:, None]  # (n, 2 components, 2)
    logits = TOY_WEIGHTS.log() - offsets.pow(2).sum(-1) / (2 * variance)
    return (logits.softmax(1)[..., None] * offsets).sum(1) / variance


class ToyScore(nn.Module):
    """ε_θ(x, σ): an MLP on the point, scaled to unit variance, and an embedding of log σ."""

    def __init__(self, hidden=128, embedding=32):
        super().__init__()
        self.embedding = embedding
        self.net = nn.Sequential(nn.Linear(2 + embedding, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x, sigma):
        level = 1000 * (sigma.log() - math.log(0.1)) / math.log(100)  # 0 … 1000 across 0.1 … 10
        # 17: the mixture's variance per coordinate, about
        scaled = x / (sigma[:, None] ** 2 + 17) ** 0.5
        return self.net(torch.cat([scaled, icu.sinusoidal_embedding(level, self.embedding)], dim=1))

    def score(self, x, sigma):
        return score_from_epsilon(self(x, torch.full((len(x),), sigma, device=x.device)), sigma)


# %%
def toy_training():
    model = ToyScore().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(y):
        sigma = 0.1 * 100 ** torch.rand(len(y), device=device)  # log-uniform in [0.1, 10]
        epsilon = torch.randn_like(y)
        score = score_from_epsilon(model(y + sigma[:, None] * epsilon, sigma), sigma[:, None])
        loss = dsm_loss(score, epsilon, sigma[:, None])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"dsm_loss": loss}

    return SimpleNamespace(model=model, train_step=train_step,
                           state={"model": model, "optimizer": optimizer})


icu.seed_everything(SEED)
toy = toy_training()
toy_history = icu.fit(toy.train_step,
                      icu.TensorBatches(toy_data(50_000, torch.Generator().manual_seed(SEED)),
                                        batch_size=512, seed=SEED),
                      steps=config.toy_steps, state=toy.state, run="score_sde/toy",
                      config=dict(toy_steps=config.toy_steps),
                      code=[ToyScore, toy_training, dsm_loss, score_from_epsilon, toy_data],
                      description="2-D toy, denoising score matching")


# %% [markdown]
# **The learned score field** beside the exact one, at the smallest noise level, over the density of the blurred
# mixture (darker: denser). Near the modes the two agree; away from them few training points fall at this
# $\sigma$, and the printed errors (on points of the blurred data) grow as $\sigma$ shrinks: in the stored run 0.004
# at $\sigma = 10$, 0.034 at $\sigma = 1$, 0.21 at $\sigma = 0.1$ — the smallest level is the hardest to learn.

# %%
@torch.no_grad()
def relative_score_error(score, sigma, n=4000, seed=3):
    """E‖s − s_exact‖² / E‖s_exact‖² on points of the mixture blurred by σ."""
    generator = torch.Generator().manual_seed(seed)
    x = toy_data(n, generator) + sigma * torch.randn(n, 2, generator=generator).to(device)
    exact = toy_exact_score(x, sigma)
    return ((score(x, sigma) - exact).pow(2).sum() / exact.pow(2).sum()).item()


grid = torch.linspace(-8, 8, 21)
points = torch.cartesian_prod(grid, grid).to(device)
fine = torch.linspace(-8, 8, 161)
fine_points = torch.cartesian_prod(fine, fine).to(device)
sigma_shown = TOY_SIGMAS[-1]
log_density = torch.logsumexp(TOY_WEIGHTS.log()
                              - (fine_points[:, None] - TOY_MEANS[None]).pow(2).sum(-1)
                              / (2 * (1 + sigma_shown**2)), dim=1).reshape(161, 161).T.cpu()
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
with torch.no_grad():
    fields = {"learned: −ε_θ(x, σ)/σ": toy.model.score(points, sigma_shown),
              "exact score of the blurred mixture": toy_exact_score(points, sigma_shown)}
for ax, (title, field) in zip(axes, fields.items()):
    ax.contourf(fine.numpy(), fine.numpy(), log_density.clamp(min=-30).numpy(), levels=20,
                cmap="Greys")
    direction = field / field.norm(dim=1, keepdim=True).clamp(min=1e-8)
    ax.quiver(*points.cpu().T, *direction.cpu().T, color="C3", scale=30, width=0.004)
    ax.set_title(f"{title}, σ = {sigma_shown:g}", fontsize=10)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()
toy_score_error = {s: relative_score_error(toy.model.score, s)
                   for s in (TOY_SIGMAS[0], 1.0, TOY_SIGMAS[-1])}
print("relative squared error of the learned score on blurred data (a zero score: 1):\n  "
      + ", ".join(f"σ = {s:g}: {e:.3f}" for s, e in toy_score_error.items()))


# %% [markdown]
# Arrows show directions only (their lengths differ by orders of magnitude). **Sampling.** Plain Langevin dynamics at
# the smallest $\sigma$, from points spread uniformly over the square, against annealed Langevin through the ten levels
# — the same learned network, the same total number of steps (`langevin_steps` per level, ten times that for the plain
# chain), $\varepsilon = 2\times10^{-3}$.

# %%
@torch.no_grad()
def langevin(score, x, sigmas, steps, epsilon=2e-3, generator=None):
    """Annealed Langevin dynamics: `steps` updates at each σ_i with α_i = ε σ_i² / σ_L²."""
    for sigma in sigmas:
        alpha = epsilon * sigma**2 / sigmas[-1] ** 2
        for _ in range(steps):
            z = torch.randn(x.shape, generator=generator).to(x.device)
            x = x + alpha / 2 * score(x, sigma) + alpha**0.5 * z
    return x


generator = torch.Generator().manual_seed(4)
start = (16 * torch.rand(config.toy_samples, 2, generator=generator) - 8).to(device)
toy_samples = {
    "plain Langevin at σ_L": langevin(toy.model.score, start, [TOY_SIGMAS[-1]] * 10,
                                      config.langevin_steps, generator=generator),
    "annealed Langevin": langevin(toy.model.score, start, TOY_SIGMAS, config.langevin_steps,
                                  generator=generator),
    "data": toy_data(config.toy_samples, generator),
}
weight_low = {name: (x.sum(1) < 0).float().mean().item() for name, x in toy_samples.items()}
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), sharex=True, sharey=True)
for ax, (name, x) in zip(axes, toy_samples.items()):
    ax.scatter(*x.cpu().T, s=2, alpha=0.4)
    ax.set_title(f"{name}\nshare in the lower-left mode: {weight_low[name]:.2f}", fontsize=10)
    ax.set_aspect("equal")
axes[0].set_xlim(-9, 9)
axes[0].set_ylim(-9, 9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The mixture puts 0.2 of its mass in the lower-left mode (0.19 in the drawn sample). In the stored run the plain
# chain puts 0.575 there — about the share of starting points that fell on that side — and after 1,000 small steps
# its points have not yet settled into the modes: within a mode the score is right, but no chain crosses the gap.
# Annealed Langevin puts 0.175 there. It starts where the blurred density is one broad bump whose score is learned
# well, and the proportions are set while the modes still overlap.
#
# ## The SDEs in code
#
# Each SDE is its drift, its diffusion and its marginal; `alpha` is the Langevin corrector's $\alpha_i$ (the official
# code takes $1 - \beta_i$ of the 1,000-step VP chain, and 1 for VE). Time is a Python number: every sample of a batch
# is at the same $t$.


# %%
def check_sigma_range(sigma_min, sigma_max):
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"noise levels need 0 < σ_min < σ_max; got σ_min = {sigma_min}, "
                         f"σ_max = {sigma_max}")


class VPSDE:
    """dx = −½β(t) x dt + √β(t) dw, β linear in t: DDPM in continuous time."""

    def __init__(self, beta_min=VP_BETA_MIN, beta_max=VP_BETA_MAX):
        check_sigma_range(beta_min, beta_max)
        self.beta_min, self.beta_max, self.prior_std = beta_min, beta_max, 1.0

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral(self, t):  # B(t) = ∫_0^t β
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def drift(self, x, t):
        return -0.5 * self.beta(t) * x

    def diffusion(self, t):
        return self.beta(t) ** 0.5

    def marginal(self, t):  # p_t(x | x_0) = N(scale·x_0, std²·I)
        return math.exp(-0.5 * self.integral(t)), (1 - math.exp(-self.integral(t))) ** 0.5

    def alpha(self, t):
        return 1 - self.beta(t) / 1000

    def time_of_integral(self, b):  # the t with B(t) = b
        slope = self.beta_max - self.beta_min
        return (-self.beta_min + (self.beta_min**2 + 2 * slope * b) ** 0.5) / slope


# %%
class VESDE:
    """dx = σ(t) √(2 ln(σ_max/σ_min)) dw with σ(t) = σ_min (σ_max/σ_min)^t: NCSN in continuous
    time."""

    def __init__(self, sigma_min=VE_SIGMA_MIN, sigma_max=VE_SIGMA_MAX):
        check_sigma_range(sigma_min, sigma_max)
        self.sigma_min, self.sigma_max, self.prior_std = sigma_min, sigma_max, sigma_max

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x, t):
        return torch.zeros_like(x)

    def diffusion(self, t):
        return self.sigma(t) * (2 * math.log(self.sigma_max / self.sigma_min)) ** 0.5

    # the exact variance ∫_0^t g² = σ(t)² − σ_min² (the official code uses σ(t)²)
    def marginal(self, t):
        return 1.0, (self.sigma(t) ** 2 - self.sigma_min**2) ** 0.5

    def alpha(self, t):
        return 1.0


SDES = {"vp": VPSDE, "ve": VESDE}


def make_sde(name, **settings):
    if name not in SDES:
        raise ValueError(f"unknown SDE {name!r}; choose one of {', '.join(SDES)}")
    return SDES[name](**settings)


# %% [markdown]
# The reverse-time samplers take an SDE and a score function `score(x, t)`. `nfe` is the number of score
# evaluations: one per step for EM, two for PC (predictor and corrector) and for the ODE (Heun's method). The grid is
# uniform in $t$ from 1 to $\varepsilon = 10^{-3}$, and the last EM step adds no noise (the official code returns the
# last step's mean).


# %%
def randn_like(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device)


def langevin_correct(sde, score, x, t, generator, snr=SNR):
    """One Langevin step at time t, its size set by the target signal-to-noise ratio."""
    s, z = score(x, t), randn_like(x, generator)
    ratio = snr * z.flatten(1).norm(dim=1).mean() / s.flatten(1).norm(dim=1).mean()
    step = 2 * sde.alpha(t) * ratio**2
    return x + step * s + (2 * step) ** 0.5 * z


def probability_flow(sde, score, x, t):
    return sde.drift(x, t) - 0.5 * sde.diffusion(t) ** 2 * score(x, t)


def heun_step(velocity, x, t, t_next):
    d = velocity(x, t)
    guess = x + (t_next - t) * d
    return x + (t_next - t) / 2 * (d + velocity(guess, t_next))


# %%
SAMPLERS = {"em": 1, "pc": 2, "ode": 2}  # score evaluations per step


@torch.no_grad()
def sample_sde(sde, score, x_T, nfe, sampler="em", generator=None):
    """From standard noise x_T (scaled to the prior) back to t = ε with `nfe` evaluations of the
    score."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if int(nfe) != nfe or nfe < SAMPLERS[sampler] or nfe % SAMPLERS[sampler]:
        raise ValueError(f"{sampler} needs a positive number of evaluations divisible by "
                         f"{SAMPLERS[sampler]}, not {nfe}")
    times = torch.linspace(1.0, SAMPLING_END, nfe // SAMPLERS[sampler] + 1,
                           dtype=torch.float64).tolist()
    x = x_T * sde.prior_std
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        if sampler == "ode":
            x = heun_step(lambda x_, t_: probability_flow(sde, score, x_, t_), x, t, t_next)
            continue
        if sampler == "pc":
            x = langevin_correct(sde, score, x, t, generator)
        dt, g = t - t_next, sde.diffusion(t)
        mean = x - (sde.drift(x, t) - g**2 * score(x, t)) * dt  # Euler–Maruyama, backwards in time
        x = mean if i == len(times) - 2 else mean + g * dt**0.5 * randn_like(x, generator)
    return x


# %% [markdown]
# **Check: the code's SDEs have the marginals of the table.** Simulate each forward SDE with 1,000 Euler–Maruyama
# steps from a fixed $x_0$ for 100,000 paths, and compare the mean and standard deviation at $t = 0.5$ and $t = 1$
# with `marginal(t)`. A wrong drift or diffusion fails it.

# %%
# NBVAL_CHECK_OUTPUT
generator = torch.Generator().manual_seed(1)
agree = []
for name in SDES:
    sde = make_sde(name)
    x = torch.full((100_000,), 0.7, dtype=torch.float64)
    for k in range(1000):
        t = k / 1000
        x = x + sde.drift(x, t) / 1000 + sde.diffusion(t) * (1 / 1000) ** 0.5 * torch.randn(
            x.shape, generator=generator, dtype=torch.float64)
        if k + 1 in (500, 1000):
            scale, std = sde.marginal((k + 1) / 1000)
            agree += [abs(x.mean() - 0.7 * scale) < 4 * std / 100_000**0.5 + 1e-3,
                      abs(x.std() / std - 1) < 0.02]
print("forward VP and VE SDEs match their closed-form marginals at t = 0.5 and 1:", all(agree))

# %% [markdown]
# ## The DDPM network as a VP SDE
#
# The [DDPM page](ddpm.ipynb) trained $\epsilon_\theta(x, i)$ on its discrete chain, steps $i = 0 \dots T-1$. Its
# linear $\beta_i$ are the VP SDE's $\beta(t)/T$ (in `smoke`, $T = 100$ and DDPM rescales its $\beta$ by $1000/T$,
# which keeps the same continuous $\beta(t)$). To evaluate the score at a continuous time $t$ we give the network the
# *fractional* step whose $\bar\alpha_i$ equals the SDE's $\bar\alpha(t) = e^{-B(t)}$ — interpolated in
# $\log\bar\alpha$ — so that the network is told exactly the noise level it was trained for, and divide by
# $\sigma(t) = \sqrt{1 - e^{-B(t)}}$. (Step $tT - 1$, or the score-SDE code's $999\,t$, tells the network a
# slightly different level: 4.9% in $\sigma$ at the first step in the stored run, 0.15% on average.) This costs no
# training.


# %%
def linear_alpha_bar(steps: int) -> torch.Tensor:
    betas = torch.linspace(BETA_1 * 1000 / steps, BETA_T * 1000 / steps, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


trained = icu.load_trained("ddpm/main", code=[icu.unet, linear_alpha_bar])
settings = trained.config
T = settings["diffusion_steps"]  # 1,000 steps (100 in `smoke`)
ddpm_network = icu.UNet(in_channels=1, channels=settings["channels"],
                        channel_multipliers=settings["multipliers"],
                        blocks_per_level=settings["blocks"],
                        attention_resolutions=settings["attention"],
                        image_size=32).to(device, memory_format=torch.channels_last)
ddpm_network.load_state_dict(trained.state["ema"])
ddpm_network.eval().requires_grad_(False)
print(trained.history.summary())

vp = make_sde("vp")
discrete_B = -linear_alpha_bar(T).log().numpy()  # −log ᾱ_i, increasing with i


def ddpm_step(t):
    """The fractional DDPM step whose noise level is the VP SDE's at time t."""
    return float(np.interp(vp.integral(t), discrete_B, np.arange(T)))


def vp_score(x, t, network=ddpm_network):
    epsilon = network(x, torch.full((len(x),), ddpm_step(t), device=x.device))
    return score_from_epsilon(epsilon, vp.marginal(t)[1])


naive = [abs(vp.marginal((i + 1) / T)[1] / (1 - math.exp(-discrete_B[i])) ** 0.5 - 1)
         for i in range(T)]
print(f"σ of DDPM step i vs the SDE's σ((i + 1)/T): largest difference {max(naive):.1%} "
      f"(at i = {int(np.argmax(naive))}),\n"
      f"  {np.mean(naive):.2%} on average; the interpolation removes it")

# %% [markdown]
# ## Data and the metric
#
# The embedded MNIST digits (4,000 for training, 1,000 held out), padded to 32×32 and scaled to $[-1, 1]$ as on the
# DDPM page. Sample quality is the FID on the site's MNIST-classifier features against the 1,000 held-out digits,
# for `fid_samples` samples from one fixed noise $x_T$ (seed 10, the DDIM and flow-matching pages' too), so the
# numbers of those pages and this one can share a figure.

# %%
mnist = icu.load_images(config.dataset)
print(mnist)


def to_model(images):
    """[0, 1] digits, 28×28 → [-1, 1], 32×32 (the padding is background)."""
    return F.pad(images * 2 - 1, (2, 2, 2, 2), value=-1.0)


def to_digits(x):
    return ((x[..., 2:30, 2:30] + 1) / 2).clamp(0, 1).cpu()


train_x, test_x = to_model(mnist.train_images), to_model(mnist.test_images)
classifier = icu.mnist_classifier(device)
test_features, _ = icu.classify(classifier, mnist.test_images)


def fid_and_classes(images):
    features, probabilities = icu.classify(classifier, to_digits(images))
    return (icu.frechet_distance(features, test_features),
            icu.mode_coverage(probabilities).classes_covered)


x_T = torch.randn(config.fid_samples, 1, 32, 32,
                  generator=torch.Generator().manual_seed(10)).to(device)
fid_floor = fid_and_classes(to_model(mnist.train_images[: config.fid_samples]))[0]
print(f"floor: {config.fid_samples} training digits score {fid_floor:.2f}")

# %% [markdown]
# ## Score-SDE samplers on the DDPM network
#
# The three samplers, each at several numbers of evaluations (NFE), from the same $x_T$; and, as the baseline that
# learned nothing, EM with $\epsilon_\theta = 0$ (the untrained U-Net's output).

# %%
vp_fid, vp_kept, vp_seconds = {}, {}, {}
for sampler, counts in (("em", config.vp_em_nfe), ("pc", config.vp_pc_nfe),
                        ("ode", config.vp_ode_nfe)):
    for nfe in counts:
        started = time.perf_counter()
        images = sample_sde(vp, vp_score, x_T, nfe, sampler,
                            torch.Generator(device=device).manual_seed(11))
        vp_seconds[sampler, nfe] = time.perf_counter() - started
        vp_fid[sampler, nfe] = fid_and_classes(images)
        vp_kept[sampler, nfe] = images[:8]
zero_score = lambda x, t: vp_score(x, t, network=lambda x_, i: torch.zeros_like(x_))  # noqa: E731
vp_untrained = fid_and_classes(sample_sde(vp, zero_score, x_T, config.vp_em_nfe[0], "em",
                                          torch.Generator(device=device).manual_seed(11)))[0]
names = {"em": "reverse SDE, Euler–Maruyama", "pc": "predictor–corrector (EM + Langevin)",
         "ode": "probability-flow ODE, Heun"}
icu.show_table(["VP sampler (DDPM's network)", "NFE", "FID (MNIST-classifier)", "classes",
                "s per digit"],
               [[names[s], n, v[0], v[1], vp_seconds[s, n] / config.fid_samples]
                for (s, n), v in vp_fid.items()])
print(f"untrained network (ε_θ = 0), EM, {config.vp_em_nfe[0]} NFE: {vp_untrained:.0f}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.4))
largest = {s: max(n for s_, n in vp_kept if s_ == s) for s in names}
icu.show_images(to_digits(torch.cat([vp_kept[s, largest[s]] for s in names])), nrow=8, ax=ax,
                title="same x_T; rows: "
                      + ", ".join(f"{s.upper()} {largest[s]} NFE" for s in names))
plt.show()

# %% [markdown]
# In the stored run the reverse SDE needs about 50 evaluations: Euler–Maruyama scores 372 at 10, 135 at 20 and 85
# at 50 (91 at 100: at 200 samples, differences of this size are not resolved). Predictor–corrector is the best of
# the three at 50 evaluations (77) but the worst stochastic one at 20 (296), where half of its evaluations go to the
# corrector and only ten to the predictor. The probability-flow ODE, Heun on a grid uniform in $t$, is the worst
# (830, 357, 202 at 10, 20, 50): the VP ODE changes fastest at small $t$, where a uniform grid has few steps, and
# its samples keep a speckle of unremoved noise (bottom row). For scale: DDPM's own 1,000-step ancestral sampler
# scores 61 on the [DDPM page](ddpm.ipynb), and the untrained network 2,130 here.
#
# ## EDM: the denoiser and its preconditioning
#
# **$\sigma_\text{data}$.** EDM's $\sigma_\text{data} = 0.5$ is the standard deviation of CIFAR-10 scaled to
# $[-1, 1]$. Our padded digits' is measured below (0.55, around a mean of −0.80: most pixels are background) and
# used in $c_\text{skip}$, $c_\text{out}$, $c_\text{in}$ and $\lambda$. The network $F_\theta$ is the DDPM page's U-Net at the same size; it receives
# $c_\text{noise} = \frac14\ln\sigma$ where DDPM's receives its step index.
#
# `parameterization="epsilon"` is the first training ablation: the VE / NCSN choice of Table 1 in the EDM paper,
# $c_\text{skip} = 1$, $c_\text{out} = \sigma$, $c_\text{in} = 1$ — the network sees the raw noisy image and
# predicts the noise — with everything else (including $c_\text{noise}$) unchanged.

# %%
SIGMA_DATA = round(train_x.std().item(), 2)
print(f"σ_data of the padded digits: {SIGMA_DATA} (mean {train_x.mean():.2f}; "
      "CIFAR-10 in [-1, 1]: 0.5)")
PARAMETERIZATIONS = ("edm", "epsilon")


def edm_scalings(sigma, sigma_data=SIGMA_DATA):
    """c_skip, c_out, c_in, c_noise of EDM's preconditioning (Karras et al. 2022, Table 1)."""
    total = sigma**2 + sigma_data**2
    return (sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(),
            sigma.log() / 4)


class Denoiser(nn.Module):
    """D_θ(x; σ) = c_skip x + c_out F_θ(c_in x; c_noise), F_θ a U-Net."""

    def __init__(self, network, parameterization="edm"):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {parameterization!r}; "
                             f"choose one of {', '.join(PARAMETERIZATIONS)}")
        self.network, self.parameterization = network, parameterization

    def scalings(self, sigma):
        if self.parameterization == "edm":
            return edm_scalings(sigma)
        # ε-prediction (VE)
        return torch.ones_like(sigma), sigma, torch.ones_like(sigma), sigma.log() / 4

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(len(x))
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        per_image = lambda c: c.view(-1, 1, 1, 1)  # noqa: E731
        return per_image(c_skip) * x + per_image(c_out) * self.network(per_image(c_in) * x, c_noise)


# %% [markdown]
# **The loss.** Noise levels from the log-normal, or — the second training ablation — log-uniform over
# $[\sigma_\min, \sigma_\max]$, which is the VE SDE's training distribution ($t$ uniform, $\sigma(t)$ geometric).
# The loss per image is $\lambda(\sigma)$ times the squared error averaged over pixels (EDM sums over pixels; the
# factor 1,024 only rescales the loss, which Adam ignores).


# %%
SIGMA_DISTRIBUTIONS = ("lognormal", "loguniform")


def training_sigmas(n, distribution="lognormal", generator=None):
    if distribution not in SIGMA_DISTRIBUTIONS:
        raise ValueError(f"unknown σ distribution {distribution!r}; "
                         f"choose one of {', '.join(SIGMA_DISTRIBUTIONS)}")
    if distribution == "lognormal":
        return (P_MEAN + P_STD * torch.randn(n, generator=generator, device=device)).exp()
    return EDM_SIGMA_MIN * (EDM_SIGMA_MAX / EDM_SIGMA_MIN) ** torch.rand(n, generator=generator,
                                                                         device=device)


def loss_weight(sigma, sigma_data=SIGMA_DATA):
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(denoiser, y, sigma, noise):
    """λ(σ) ‖D_θ(y + σn; σ) − y‖², averaged over pixels: one value per image."""
    denoised = denoiser(y + sigma.view(-1, 1, 1, 1) * noise, sigma)
    return loss_weight(sigma) * (denoised - y).pow(2).mean((1, 2, 3))


# %% [markdown]
# **The sampler** (EDM's Algorithm 2): the $\rho$-schedule, Heun or Euler steps on $dx/d\sigma = (x - D)/\sigma$, and
# optional churn. With churn the number of evaluations does not change: the denoiser is evaluated at the raised
# level $\hat\sigma_i$ instead of $\sigma_i$.


# %%
def edm_sigmas(steps, sigma_min=EDM_SIGMA_MIN, sigma_max=EDM_SIGMA_MAX, rho=RHO):
    """σ_0 = σ_max > … > σ_{N−1} = σ_min, then σ_N = 0; ρ = 1 spaces them evenly."""
    check_sigma_range(sigma_min, sigma_max)
    if int(steps) != steps or steps < 1 or rho <= 0:
        raise ValueError("the schedule needs at least 1 step and ρ > 0; "
                         f"got steps = {steps}, ρ = {rho}")
    ramp = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    sigmas = (sigma_max ** (1 / rho)
              + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).tolist()


def churn(x, sigma, steps, generator, s_churn, s_tmin, s_tmax, s_noise):
    """Raise the noise level from σ to σ̂ = σ(1 + γ) with fresh noise."""
    gamma = min(s_churn / steps, 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    sigma_hat = sigma * (1 + gamma)
    return x + (sigma_hat**2 - sigma**2) ** 0.5 * s_noise * randn_like(x, generator), sigma_hat


def edm_nfe(steps, solver="heun"):
    return 2 * steps - 1 if solver == "heun" else steps


# %%
@torch.no_grad()
def edm_sample(denoiser, x_T, steps, solver="heun", rho=RHO, stochastic=None, generator=None,
               sigma_range=(EDM_SIGMA_MIN, EDM_SIGMA_MAX)):
    """From σ_max·x_T down to σ = 0 in `steps` steps (Heun: 2·steps − 1 evaluations)."""
    if solver not in ("heun", "euler"):
        raise ValueError(f"unknown solver {solver!r}; choose 'heun' or 'euler'")
    sigmas = edm_sigmas(steps, *sigma_range, rho=rho)
    x = x_T * sigmas[0]
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        if stochastic:
            x, sigma = churn(x, sigma, steps, generator, **stochastic)
        d = (x - denoiser(x, sigma)) / sigma
        x_next = x + (sigma_next - sigma) * d
        if solver == "heun" and sigma_next > 0:  # the correction, skipped on the last step to σ = 0
            x_next = x + (sigma_next - sigma) * (d + (x_next - denoiser(x_next, sigma_next))
                                                 / sigma_next) / 2
        x = x_next
    return x


# %% [markdown]
# ## Checks that hold for any network
#
# **1. The preconditioning does what it says.** On real digits and noise at $\sigma = 0.01, 1, 80$: the network's
# input $c_\text{in}(y + n)$ and its target $(y - c_\text{skip}(y + n))/c_\text{out}$ have unit variance, and
# $\lambda(\sigma)\,c_\text{out}^2 = 1$.
#
# **2. The sampler solves the ODE.** For Gaussian data $y \sim \mathcal N(0, s^2 I)$ the exact denoiser is
# $D(x; \sigma) = \frac{s^2}{s^2 + \sigma^2}x$, and the ODE carries $\sigma_\max\,x_T$ to samples of standard
# deviation $s$. Heun with 18 steps (35 evaluations) must come closer than Euler with 35 steps, and with 100 steps
# land within 1% (2% with churn, whose $S_\text{noise} > 1$ adds a little).
#
# **3. Bad input gets a clear error.**

# %%
# NBVAL_CHECK_OUTPUT
generator = torch.Generator().manual_seed(2)
y = train_x[:500].double()
unit = []
for sigma in (0.01, 1.0, 80.0):
    x = y + sigma * torch.randn(y.shape, generator=generator, dtype=torch.float64)
    c_skip, c_out, c_in, _ = edm_scalings(torch.tensor(sigma, dtype=torch.float64),
                                          train_x.double().std())
    unit += [abs((c_in * x).var() - 1) < 0.03, abs(((y - c_skip * x) / c_out).var() - 1) < 0.03,
             abs(loss_weight(torch.tensor(sigma))
                 * edm_scalings(torch.tensor(sigma))[1] ** 2 - 1) < 1e-5]
print("unit-variance input and target, and λ·c_out² = 1, at σ = 0.01, 1, 80:", all(unit))


class CountingGaussianDenoiser:
    def __init__(self, s):
        self.s, self.calls = s, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.s**2 / (self.s**2 + sigma**2) * x


def gaussian_sample_std(steps, solver="heun", stochastic=None):
    exact = CountingGaussianDenoiser(0.5)
    noise = torch.randn(20_000, 8, generator=torch.Generator().manual_seed(3)).double()
    out = edm_sample(exact, noise, steps, solver, stochastic=stochastic,
                     generator=torch.Generator().manual_seed(4))
    return out.std().item(), exact.calls


heun_std, calls = gaussian_sample_std(18)
euler_std, _ = gaussian_sample_std(35, "euler")
print("Heun, 18 steps: 35 evaluations:", calls == 35, "; closer to s than Euler with 35 steps:",
      abs(heun_std - 0.5) < abs(euler_std - 0.5))
print("Heun, 100 steps: std within 1% of s:", abs(gaussian_sample_std(100)[0] / 0.5 - 1) < 0.01,
      "; with churn, within 2%:",
      abs(gaussian_sample_std(100, stochastic=CHURN)[0] / 0.5 - 1) < 0.02)


# %%
# NBVAL_CHECK_OUTPUT
bad_inputs = {
    "an unknown SDE": lambda: make_sde("subvp"),
    "σ range reversed": lambda: make_sde("ve", sigma_min=50.0, sigma_max=0.01),
    "σ_min = 0": lambda: edm_sigmas(18, sigma_min=0.0),
    "zero steps": lambda: edm_sigmas(0),
    "NFE = 0": lambda: sample_sde(vp, vp_score, x_T[:1], 0),
    "an unknown sampler": lambda: sample_sde(vp, vp_score, x_T[:1], 10, "ddim"),
    "an unknown solver": lambda: edm_sample(None, x_T[:1], 18, "rk4"),
    "an unknown parameterization": lambda: Denoiser(None, "v"),
    "an unknown σ distribution": lambda: training_sigmas(4, "uniform"),
}
for what, call in bad_inputs.items():
    try:
        call()
        print(f"{what}: FAIL, no error raised")
    except ValueError as error:
        print(f"{what}: {error}")

# %% [markdown]
# ## Training the EDM denoiser
#
# The DDPM page's recipe — Adam with a warm-up, gradients clipped to norm 1, an EMA of the weights for sampling —
# with EDM's loss. Deviations from EDM's CIFAR-10 recipe, for a short CPU run: batch 64 for 1,200 steps (EDM: 512
# for 200 million images), an EMA decay of 0.995 per step (EDM: a half-life of 500,000 images), the DDPM page's
# dropout 0.1 (0.13) and gradient clipping (EDM has none), and no data augmentation. The learning rate, $10^{-3}$,
# is EDM's. Every `ablation_steps` steps the EMA weights are kept: the first copy is this recipe at the ablations'
# budget.
#
# The `full` profile trains the DDPM page's U-Net at the DDPM paper's size (35.7 M parameters; EDM's DDPM++ is
# larger) with the DDPM page's `full` recipe: batch 128, learning rate $2\times10^{-4}$ after a 5,000-step warm-up,
# an EMA decay of 0.9999, for 100,000 steps (12.8 million images, EDM: 200 million). It is not EDM's: EDM's batch
# of 512 at this U-Net's size did not fit in the 23 GiB of the machine that dry-runs every page, and EDM's
# learning rate and EMA half-life go with that batch.


# %%
def make_unet():
    return icu.UNet(in_channels=1, channels=config.channels, channel_multipliers=config.multipliers,
                    blocks_per_level=config.blocks, attention_resolutions=config.attention,
                    dropout=DROPOUT, image_size=32).to(device, memory_format=torch.channels_last)


def update_ema(ema, model, decay):
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters()):
            averaged.lerp_(current, 1 - decay)


def make_training(parameterization="edm", sigma_distribution="lognormal"):
    denoiser = Denoiser(make_unet(), parameterization)
    ema = copy.deepcopy(denoiser).requires_grad_(False).eval()
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                               lambda step: min(1.0, (step + 1) / config.warmup))

    def train_step(y):
        loss = edm_loss(denoiser, y, training_sigmas(len(y), sigma_distribution),
                        torch.randn_like(y)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gradient_norm = nn.utils.clip_grad_norm_(denoiser.parameters(), GRADIENT_CLIP)
        optimizer.step()
        warmup.step()
        update_ema(ema, denoiser, config.ema_decay)
        return {"loss": loss, "gradient_norm": gradient_norm}

    state = {"model": denoiser, "ema": ema, "optimizer": optimizer, "warmup": warmup}
    return SimpleNamespace(model=denoiser, ema=ema, train_step=train_step, state=state)


# %%
TRAINING_SETTINGS = ("dataset", "channels", "multipliers", "blocks", "attention", "batch_size",
                     "lr", "warmup", "ema_decay", "ablation_steps")
TRAINING_CODE = [icu.unet, make_unet, update_ema, make_training, Denoiser, edm_scalings,
                 training_sigmas, loss_weight, edm_loss]
training_config = {**{k: getattr(config, k) for k in TRAINING_SETTINGS}, "sigma_data": SIGMA_DATA}
train_batches = icu.TensorBatches(train_x, batch_size=config.batch_size, seed=SEED, device=device)


def ema_weights(step):
    return {name: value.detach().cpu().clone() for name, value in main.ema.state_dict().items()}


icu.seed_everything(SEED)
main = make_training()
print(f"U-Net F_θ: {sum(p.numel() for p in main.model.parameters()):,} parameters")
history = icu.fit(main.train_step, train_batches, steps=config.steps, state=main.state,
                  run="score_sde/edm", config={**training_config, "steps": config.steps},
                  code=TRAINING_CODE, every={config.ablation_steps: ema_weights},
                  description="EDM denoiser, MNIST")

# %% [markdown]
# The loss is the held-out one too: the same $\lambda$-weighted error on the 1,000 held-out digits, with the same
# noise levels and noise for every model — and for the untrained network, whose $F_\theta$ is 0, so that
# $D = c_\text{skip}\,x$.


# %%
@torch.no_grad()
def heldout_loss(denoiser, seed=5):
    generator = torch.Generator(device=device).manual_seed(seed)
    y = test_x.to(device)
    sigma, noise = training_sigmas(len(y), generator=generator), randn_like(y, generator)
    return torch.cat([edm_loss(denoiser, y[i : i + 250], sigma[i : i + 250], noise[i : i + 250])
                      for i in range(0, len(y), 250)]).mean().item()


untrained_denoiser = Denoiser(lambda x, c: torch.zeros_like(x))
heldout = {"EDM (EMA weights)": heldout_loss(main.ema),
           "untrained (F_θ = 0)": heldout_loss(untrained_denoiser)}
fig, ax = plt.subplots(figsize=(8, 3.2))
icu.plot_history(history, keys=["loss"], window=50, ax=ax, ylabel="λ(σ)‖D − y‖² per pixel",
                 title="EDM training loss (moving average of 50 batches)")
ax.set_yscale("log")
plt.show()
print("held-out loss: " + ", ".join(f"{k} {v:.4f}" for k, v in heldout.items()))

# %% [markdown]
# In the stored run the held-out loss falls from 1.73 (untrained) to 0.117; the training loss is still falling
# slowly at the end of the 1,200 steps.
#
# ## EDM samples and their cost
#
# Heun with the $\rho = 7$ schedule at `edm_steps` steps, from the same $x_T$ as the VP samplers (scaled by
# $\sigma_\max = 80$).

# %%
edm_fid, edm_kept = {}, {}
for steps in config.edm_steps:
    started = time.perf_counter()
    images = edm_sample(main.ema, x_T, steps)
    edm_fid[edm_nfe(steps)] = (*fid_and_classes(images),
                               (time.perf_counter() - started) / config.fid_samples)
    edm_kept[edm_nfe(steps)] = images
edm_untrained = fid_and_classes(edm_sample(untrained_denoiser, x_T, config.edm_steps[0]))[0]
icu.show_table(["EDM sampler", "NFE", "FID (MNIST-classifier)", "classes", "s per digit"],
               [["Heun, ρ = 7", n, *v] for n, v in edm_fid.items()])
print(f"untrained network (D = c_skip x): {edm_untrained:.0f}; floor: {fid_floor:.2f}")
fig, ax = plt.subplots(figsize=(9, 4.6))
shown = edm_nfe(config.edm_ablation_steps)
icu.show_images(to_digits(edm_kept[shown][:64]), nrow=16, ax=ax,
                title=f"EDM samples: Heun, {shown} NFE, EMA weights after {config.steps:,} steps")
plt.show()

# %% [markdown]
# In the stored run EDM's deterministic sampler reaches its plateau by 19 evaluations (FID 174.5; 175.6 at 35);
# at 9 it scores 210, and with 5 (three steps) the images are still noise (1,404). Most samples are digits, some
# with broken strokes or extra blobs. The plateau is the ODE's endpoint for this network, not the solver's error —
# the same as on the [DDIM page](ddim.ipynb), whose deterministic sampler settles near 175–180 on the DDPM network.
#
# **EDM's sampler on the DDPM network.** EDM's Table 1 also writes a VP network as a denoiser: with
# $\sigma = \sqrt{e^{B(t)} - 1}$ (the noise-to-signal ratio) and $x = x_\text{VP}\sqrt{1 + \sigma^2}$,
# $D(x; \sigma) = x - \sigma\,\epsilon_\theta\big(x/\sqrt{1 + \sigma^2},\ i(\sigma)\big)$ — preconditioning
# $c_\text{skip} = 1$, $c_\text{out} = -\sigma$, $c_\text{in} = 1/\sqrt{\sigma^2 + 1}$, and $c_\text{noise}$ the
# DDPM step $i$ of that noise level. So the same Heun sampler and $\rho$-schedule run on the DDPM page's
# network, between its smallest and largest noise levels: a sampler change with the network held fixed.


# %%
def ddpm_denoiser(x, sigma):
    """The DDPM page's ε-network as an EDM denoiser (VP preconditioning)."""
    step = float(np.interp(math.log1p(sigma**2), discrete_B, np.arange(T)))
    epsilon = ddpm_network(x / (sigma**2 + 1) ** 0.5, torch.full((len(x),), step, device=x.device))
    return x - sigma * epsilon


DDPM_SIGMA_RANGE = (math.expm1(discrete_B[0]) ** 0.5, math.expm1(discrete_B[-1]) ** 0.5)
ddpm_edm_fid = {edm_nfe(steps): fid_and_classes(edm_sample(ddpm_denoiser, x_T, steps,
                                                           sigma_range=DDPM_SIGMA_RANGE))
                for steps in config.ddpm_edm_steps}
icu.show_table(["EDM sampler on DDPM's network", "NFE", "FID (MNIST-classifier)", "classes"],
               [[f"Heun, ρ = 7, σ from {DDPM_SIGMA_RANGE[1]:.0f} to {DDPM_SIGMA_RANGE[0]:.2f}",
                 n, *v]
                for n, v in ddpm_edm_fid.items()])

# %% [markdown]
# On the DDPM network EDM's sampler scores 216, 146 and 166 at 9, 19 and 35 evaluations: better than DDIM, the
# Euler method of the same ODE (225 at 10, 196 at 20, 183 at 50 on the DDIM page), and far better than Heun on a
# grid uniform in $t$ above (830 at 10, 357 at 20). The $\rho$-spaced steps put the evaluations where the ODE
# bends. (The rise from 19 to 35 evaluations is within what 200 samples resolve.)
#
# ## Ablations at one budget
#
# **Training side.** Two runs of `ablation_steps` steps, each with one of EDM's training choices turned off, against
# the main run's EMA weights at the same step: the $\epsilon$-prediction scalings of the VE SDE (no preconditioning),
# and log-uniform noise levels (the VE SDE's training distribution) instead of the log-normal. All three are sampled
# by the same Heun sampler at the same NFE, and scored by FID and by the held-out loss.
#
# **Sampling side**, on the main model at equal NFE: uniform steps in $\sigma$ ($\rho = 1$) instead of $\rho = 7$;
# Euler with as many steps as Heun has evaluations; churn on.

# %%
ablation_models = {"EDM (main run at this step)":
                   Denoiser(make_unet()).eval().requires_grad_(False)}
ablation_models["EDM (main run at this step)"].load_state_dict(
    history.recorded("ema_weights")[1][0])
ablation_histories = {}
for name, (parameterization, distribution) in {
    "no preconditioning (ε-prediction, VE scalings)": ("epsilon", "lognormal"),
    "log-uniform σ (VE training noise)": ("edm", "loguniform"),
}.items():
    icu.seed_everything(SEED)
    run = make_training(parameterization, distribution)
    ablation_histories[name] = icu.fit(
        run.train_step, train_batches, steps=config.ablation_steps, state=run.state,
        run=f"score_sde/ablation-{parameterization}-{distribution}",
        config={**training_config, "steps": config.ablation_steps}, code=TRAINING_CODE,
        description=f"ablation: {name.split(' (')[0]}")
    ablation_models[name] = run.ema

# %%
x_ablation = x_T[: config.ablation_samples]
ablation_nfe_steps = config.edm_ablation_steps
training_ablation, training_kept = {}, {}
for name, model in ablation_models.items():
    images = edm_sample(model, x_ablation, ablation_nfe_steps)
    training_ablation[name] = (*fid_and_classes(images), heldout_loss(model))
    training_kept[name] = images[:8]
icu.show_table(["training recipe", "steps", f"FID, Heun {edm_nfe(ablation_nfe_steps)} NFE",
                "classes", "held-out loss"],
               [[name, config.ablation_steps, *values]
                for name, values in training_ablation.items()])
fig, ax = plt.subplots(figsize=(8, 3.6))
icu.show_images(to_digits(torch.cat(list(training_kept.values()))), nrow=8, ax=ax,
                title=f"after {config.ablation_steps:,} steps, same x_T; rows:\n"
                      + "\n".join(training_kept))
plt.show()

# %%
sampler_variants = {
    "Heun, ρ = 7 (EDM)": dict(steps=ablation_nfe_steps),
    "Heun, ρ = 1 (uniform in σ)": dict(steps=ablation_nfe_steps, rho=1.0),
    f"Euler, ρ = 7, {edm_nfe(ablation_nfe_steps)} steps": dict(steps=edm_nfe(ablation_nfe_steps),
                                                               solver="euler"),
    "Heun, ρ = 7, churn on": dict(steps=ablation_nfe_steps, stochastic=CHURN),
}
sampling_ablation, sampling_kept = {}, {}
for name, settings in sampler_variants.items():
    images = edm_sample(main.ema, x_ablation,
                        generator=torch.Generator(device=device).manual_seed(12), **settings)
    sampling_ablation[name] = fid_and_classes(images)
    sampling_kept[name] = images[:8]
icu.show_table(["sampler (main model)", "NFE", "FID (MNIST-classifier)", "classes"],
               [[name, edm_nfe(s["steps"], s.get("solver", "heun")), *sampling_ablation[name]]
                for name, s in sampler_variants.items()])
fig, ax = plt.subplots(figsize=(8, 5))
icu.show_images(to_digits(torch.cat(list(sampling_kept.values()))), nrow=8, ax=ax,
                title="main model, same x_T; rows:\n" + "\n".join(sampler_variants))
plt.show()

# %% [markdown]
# **Training side**, after 400 steps each: the full recipe leads on both measures — FID 649 against 987 with
# log-uniform noise levels and 2,077 with $\epsilon$-prediction, held-out loss 0.284 against 0.327 and 0.319 (the
# grid's first row: strokes, not yet digits). The $\epsilon$-prediction network's held-out loss is close, but
# its samples are noise (second row). The held-out loss weighs mostly small $\sigma$ (the log-normal's); sampling
# starts at $\sigma = 80$, where this network sees the raw image (standard deviation 80) and its output is
# multiplied by $c_\text{out} = \sigma$, so a small error in $\epsilon$ is a large error in $D$ — the amplification
# that EDM's scalings are designed to avoid. Log-uniform levels put about 60% of the draws below $\sigma = 0.03$ or above
# $\sigma = 2$ (the log-normal: about 8%), where there is little to learn.
#
# **Sampling side**, the same network at 35 evaluations: uniform levels ($\rho = 1$) leave the last two at 4.7 and
# 0.002, so one step has to remove almost all the noise — FID 2,249. Euler with 35 steps scores 199 against Heun's
# 176. Churn improves it to 153, the best of the four: fresh noise lets the network correct its own errors, which
# Karras et al. find helps most when the network is imperfect (the DDIM page's stochastic $\eta = 1$ beats its
# deterministic sampler for the same reason).
#
# ## Every sampler of the family on one figure
#
# FID (MNIST-classifier features, 200 samples against the 1,000 held-out digits) against the number of network
# evaluations, for this page's samplers and those of the DDPM, DDIM and flow-matching pages, read from their results
# files by stable keys. **The curves come from three different networks**: DDPM's ancestral sampler, DDIM and this
# page's VP samplers share the DDPM page's U-Net (2,400 steps of $L_\text{simple}$); flow matching has its own
# (the same U-Net size, 2,000 steps); EDM has the one trained above. So a gap *between* networks mixes training
# recipe and sampler, while the curves of one network compare samplers alone.


# %%
def other_page_curve(page, prefix):
    """{NFE: FID} from another page's results rows whose keys are `prefix` + a number."""
    path = icu.results_dir() / f"{page}.json"
    if not path.exists():
        return {}
    rows = icu.load_results(path)["rows"]
    return {int(row["key"][len(prefix):]): row["value"] for row in rows
            if (row.get("key") or "").startswith(prefix) and row["key"][len(prefix):].isdigit()}


ddpm_fid = icu.read_result("ddpm", "fid")
curves = {
    "DDIM η = 0 (DDPM's network)": other_page_curve("ddim", "fid_eta0_s"),
    "DDIM η = 1 (DDPM's network)": other_page_curve("ddim", "fid_eta1_s"),
    "VP reverse SDE, EM (DDPM's network)": {n: vp_fid["em", n][0] for n in config.vp_em_nfe},
    "VP predictor–corrector (DDPM's network)": {n: vp_fid["pc", n][0] for n in config.vp_pc_nfe},
    "VP probability-flow ODE, Heun (DDPM's network)": {n: vp_fid["ode", n][0]
                                                       for n in config.vp_ode_nfe},
    "EDM's sampler, Heun, ρ = 7 (DDPM's network)": {n: v[0] for n, v in ddpm_edm_fid.items()},
    "flow matching, Euler (its network)": other_page_curve("flow_matching", "fid_euler_nfe"),
    "flow matching, Heun (its network)": other_page_curve("flow_matching", "fid_heun_nfe"),
    "EDM, Heun (this page's network)": {n: v[0] for n, v in edm_fid.items()},
}
missing = ([name for name, curve in curves.items() if not curve]
           + ([] if ddpm_fid else ["DDPM ancestral"]))
print("not drawn (their pages have no results in this profile yet):\n  "
      + ("\n  ".join(missing) or "none"))

# %% tags=["landing-figure"]
fig, ax = plt.subplots(figsize=(9, 5.4))
networks = {"(DDPM's network)": "-", "(its network)": ":", "(this page's network)": "-."}
for k, (name, curve) in enumerate(curves.items()):
    if curve:
        ax.plot(sorted(curve), [curve[n] for n in sorted(curve)], marker="o^sDvP<>"[k % 8],
                ls=next(ls for tail, ls in networks.items() if name.endswith(tail)), label=name)
if ddpm_fid:
    ax.scatter([T], [ddpm_fid["value"]], marker="*", s=160, color="k", zorder=3,
               label=f"DDPM ancestral, {T} steps (DDPM's network)")
ax.axhline(fid_floor, color="k", lw=0.8, label="training digits (floor)")
ax.set(xscale="log", yscale="log", xlabel="network evaluations (NFE)",
       ylabel="FID (MNIST-classifier)",
       title="sample quality against sampling cost; line style: which network",
       ylim=(fid_floor / 2, None))
ax.legend(fontsize=7, loc="upper right")
ax.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# **What the figure shows** (stored run). On the DDPM network, the stochastic samplers — ancestral (61 at 1,000),
# DDIM $\eta = 1$ (57 at 100), EM and PC (77–91 at 50–100) — are well below the deterministic ones — DDIM
# $\eta = 0$, EDM's Heun and the VP ODE, which settle at 146–202. EDM's sampler is what makes the deterministic
# curve cheap: it reaches 146 in 19 evaluations, where DDIM needs 50 for 183. This page's EDM network (1,200 steps,
# half of DDPM's 2,400) lands on the DDPM network's deterministic curve (176 at 35); flow matching's network (2,000
# steps) is the best deterministic model in the figure (88–94 at 50–100 with Heun or Euler). At this scale the
# choice between stochastic and deterministic sampling moves FID more than any other choice on the page, and the
# comparison between networks is one of whole recipes with different training budgets, not of samplers.
#
# ## Likelihood through the probability-flow ODE
#
# The DDPM network's VP probability-flow ODE, $\frac{dx}{dt} = -\frac12\beta(t)\big(x - \epsilon_\theta/\sigma(t)\big)$,
# carries each held-out digit to $t = 1$, where the density is the standard Gaussian's, and the log-density changes
# by the divergence along the way:
#
# $$
# \log p_{t_0}(x) = \log\mathcal N(x_1; 0, I) + \int_{t_0}^1 \nabla\cdot F\,dt, \qquad
# \nabla\cdot F = -\tfrac12\beta(t)\Big(D - \frac{\nabla\cdot\epsilon_\theta}{\sigma(t)}\Big),
# $$
#
# with $D = 1024$ dimensions. The divergence of $\epsilon_\theta$ is Hutchinson's estimate with two Rademacher
# probes, kept fixed along the trajectory (an unbiased estimate of the log-likelihood); its spread per digit is
# reported, and part of the standard error. Details as on the [flow-matching page](../flow/flow_matching.ipynb),
# whose code this follows: the same first held-out digits, dequantised once by the same draw (seed 9), bits counted
# per digit pixel (784, the padding being constant). The Heun steps are spaced geometrically in the
# noise-to-signal ratio $\sqrt{e^{B(t)} - 1}$ — EDM's $\sigma$ of the VP SDE — from 0.01 to about 150: spacing them
# geometrically in $\sigma(t)$ instead, which saturates at 1, leaves a single step for the second half of the
# path. One deviation from the score-SDE paper: the integral starts at $t_0$ where
# $\sigma(t_0)$ is the DDPM network's smallest training noise level (0.01 in `book`), not at $t = 10^{-5}$, since
# the network has never seen less noise.


# %%
def trace_estimates(output, x, probes):
    """p^T (∂output/∂x) p for each probe: (probes, batch)."""
    return torch.stack([(torch.autograd.grad(output, x, p, retain_graph=True)[0] * p)
                        .flatten(1).sum(1) for p in probes])


def vp_flow_and_divergence(epsilon_network, x, t, probes, exact=False):
    """The VP ODE's velocity and its divergence (per probe; summed over basis probes if `exact`)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        epsilon = epsilon_network(x, t)
        traces = trace_estimates(epsilon, x, probes)
    traces = traces.sum(0, keepdim=True) if exact else traces
    beta, std = vp.beta(t), vp.marginal(t)[1]
    return (-0.5 * beta * (x.detach() - epsilon.detach() / std),
            -0.5 * beta * (x[0].numel() - traces / std))


# %%
T0 = vp.time_of_integral(discrete_B[0])  # the network's smallest noise level


def likelihood_times(steps):
    """From t0 to 1, geometric in the noise-to-signal ratio √(e^B(t) − 1) (EDM's σ of the VP
    SDE)."""
    ends = [math.log10(math.expm1(vp.integral(t)) ** 0.5) for t in (T0, 1.0)]
    ratios = torch.logspace(*ends, steps + 1, dtype=torch.float64)[1:-1].tolist()
    return [T0] + [vp.time_of_integral(math.log1p(r**2)) for r in ratios] + [1.0]


def vp_log_likelihood(epsilon_network, x, steps, probes, exact=False):
    """log p_{t0}(x) in nats by Heun steps from t0 to 1: (probes, batch), or (1, batch) if exact."""
    times, integral = likelihood_times(steps), 0.0
    for t, t_next in zip(times[:-1], times[1:]):
        v, div = vp_flow_and_divergence(epsilon_network, x, t, probes, exact)
        guess = x + (t_next - t) * v
        v_next, div_next = vp_flow_and_divergence(epsilon_network, guess, t_next, probes, exact)
        x = x + (t_next - t) / 2 * (v + v_next)
        integral = integral + (t_next - t) / 2 * (div + div_next)
    prior = -0.5 * x.pow(2).flatten(1).sum(1) - 0.5 * x[0].numel() * math.log(2 * math.pi)
    return prior + integral


# %% [markdown]
# **Check: the code gives the exact density for the exact score.** For 2-D Gaussian data the VP marginal at any
# $t$ is Gaussian and its $\epsilon$ is known in closed form; with the exact divergence (probes = the basis vectors)
# the ODE must return the closed-form log-density at $t_0$, up to the prior: $\mathcal N(0, I)$ differs from the
# exact marginal at $t = 1$ by a mean of $e^{-5}\mu$. A sign error in the flow or the divergence fails it.

# %%
# NBVAL_CHECK_OUTPUT
g_mean, g_std = torch.tensor([0.2, -0.1], device=device), torch.tensor([0.5, 0.8], device=device)


def gaussian_epsilon(x, t):  # −σ(t) × the score of N(scale·μ, scale²s² + σ²)
    scale, std = vp.marginal(t)
    return std * (x - scale * g_mean) / (scale**2 * g_std**2 + std**2)


points = g_mean + g_std * torch.randn(500, 2, generator=torch.Generator().manual_seed(6)).to(device)
basis = [torch.eye(2, device=device)[k].expand(500, 2) for k in range(2)]
ode_ll = vp_log_likelihood(gaussian_epsilon, points, 100, basis, exact=True)[0]
scale0, std0 = vp.marginal(T0)
variance0 = scale0**2 * g_std**2 + std0**2
exact_ll = (-0.5 * (points - scale0 * g_mean).pow(2) / variance0
            - 0.5 * (2 * math.pi * variance0).log()).sum(1)
print("the exact score's ODE log-likelihood matches the closed form to 0.01 nats:",
      (ode_ll - exact_ll).abs().max().item() < 0.01)

# %%
BIN = 2 / 255  # the width of one 8-bit level in [-1, 1]


def bits_per_digit_pixel(log_density):
    return icu.nats_to_bits_per_dim(-log_density + 1024 * math.log(1 / BIN), 28 * 28)


def likelihood_bits(epsilon_network, digits, steps, probes, batch_size=50):
    """Bits per digit pixel: the mean over the probes (one pair per digit), its s.e., and the
    probes' noise."""
    estimates = []
    for i in range(0, len(digits), batch_size):
        x, batch_probes = (digits[i : i + batch_size].to(device),
                           [p[i : i + batch_size] for p in probes])
        estimates.append(bits_per_digit_pixel(vp_log_likelihood(epsilon_network, x, steps,
                                                                batch_probes)).cpu())
    both = torch.cat(estimates, dim=1)  # (2 probes, digits)
    per_digit = both.mean(0)
    return SimpleNamespace(mean=per_digit.mean().item(),
                           standard_error=per_digit.std().item() / len(per_digit) ** 0.5,
                           probe_noise=((both[0] - both[1]).std() / 2).item(), per_digit=per_digit)


# %%
def ddpm_epsilon(x, t):
    return ddpm_network(x, torch.full((len(x),), ddpm_step(t), device=x.device))


generator = torch.Generator().manual_seed(9)
digits = test_x[: config.likelihood_digits]
# the flow-matching page's draw
digits = digits + (torch.rand(digits.shape, generator=generator) - 0.5) * BIN
probes = [(torch.randint(0, 2, digits.shape, generator=generator) * 2 - 1).float().to(device)
          for _ in range(2)]
started = time.perf_counter()
bits = likelihood_bits(ddpm_epsilon, digits, config.likelihood_steps, probes)
likelihood_seconds = time.perf_counter() - started
subset = max(4, len(digits) // 4)
coarse = likelihood_bits(ddpm_epsilon, digits[:subset], config.likelihood_steps // 2,
                         [p[:subset] for p in probes]).mean
fine = bits.per_digit[:subset].mean().item()
bits_untrained = likelihood_bits(lambda x, t: 0 * x, digits, config.likelihood_steps, probes)
others = {("Glow (Glow page)", "exact, dequantised"): icu.read_result("glow", "test_bits_per_dim"),
          ("flow matching (its page)", "ODE, Hutchinson"):
              icu.read_result("flow_matching", "bits_per_dim"),
          ("DDPM, same network (DDPM page)", "variational bound"):
              icu.read_result("ddpm", "bound_bits_per_dim")}
icu.show_table(["model", "bits/dim (upper bound)", "± s.e.", "held-out digits", "how"],
               [["VP probability-flow ODE, DDPM's network (this page)", bits.mean,
                 bits.standard_error, len(digits),
                 f"{config.likelihood_steps} Heun steps, Hutchinson ×2"],
                ["untrained network (ε_θ = 0)", bits_untrained.mean, bits_untrained.standard_error,
                 len(digits), "the same ODE"]]
               + [[name, row["value"], "—", row["data"].split(" held-out")[0], how]
                  for (name, how), row in others.items() if row])
print("Hutchinson's noise in one digit's two-probe estimate: "
      f"{bits.probe_noise:.3f} bits/dim (s.d.),\n"
      f"  part of the s.e. above; {likelihood_seconds:.0f} s for {len(digits)} digits\n"
      f"the ODE solver, on the first {subset} digits, same probes: {config.likelihood_steps} steps "
      f"{fine:.3f}, {config.likelihood_steps // 2} steps {coarse:.3f} bits/dim")

# %% [markdown]
# In the stored run the DDPM network's probability-flow ODE gives 1.87 ± 0.03 bits/dim on 100 held-out digits
# (± one standard error over digits; Hutchinson's spread per digit is 0.030). That is better than the variational
# bound of *the same network* on the same 100 digits (2.15, DDPM page) and than flow matching's ODE (2.03), and worse
# than Glow (1.63), which trains on exactly this likelihood; the untrained network scores 20.3. The paper saw the
# same direction on CIFAR-10: the DDPM architecture as a VP SDE reaches 3.28 bits/dim through the ODE, below DDPM's
# bound of 3.70–3.75. On the first 25 digits, 50 and 100 Heun steps give 1.867 and 1.935: the value still rises
# with the steps, and with a second-order solver the error left at 100 steps is about a quarter of that change,
# some 0.02 bits/dim — the reported number is low by about that much.
#
# ## Results
#
# Written to `results/book/score_sde.json` for the [results page](../../book/results.md). The keys are stable:
# `fid_edm_heun_nfe{N}`, `fid_vp_em_nfe{N}`, `fid_vp_pc_nfe{N}`, `fid_vp_ode_nfe{N}` for the figure above,
# `bits_per_dim` for the likelihood table.

# %%
run_device = icu.describe_device(device)
fid_data = (f"{config.fid_samples:,} samples vs {len(mnist.test_images):,} held-out "
            f"{mnist.name} digits")
ddpm_run = dict(steps=trained.history.steps[-1] + 1, wall_time_s=round(trained.history.wall_time))
ablation_data = f"{config.ablation_samples:,} samples, Heun {edm_nfe(ablation_nfe_steps)} NFE"
rows = [dict(key=f"fid_edm_heun_nfe{n}",
             metric=f"FID (MNIST-classifier features), EDM Heun, {n} NFE",
             value=round(v[0], 2), data=fid_data, note=f"{v[1]} classes covered",
             headline=n == edm_nfe(ablation_nfe_steps),
             paper=("1.97 (CIFAR-10, unconditional, 35 NFE; 1.79 class-conditional)"
                    if n == 35 else None))
        for n, v in edm_fid.items()]
rows += [dict(key=f"fid_vp_{s}_nfe{n}",
              metric=f"FID (MNIST-classifier features), VP {names[s]}, {n} NFE",
              value=round(v[0], 2), data=f"{fid_data}; the DDPM page's network",
              note=f"{v[1]} classes covered", **ddpm_run) for (s, n), v in vp_fid.items()]
rows += [dict(key=f"fid_ddpm_edm_heun_nfe{n}",
              metric=f"FID (MNIST-classifier features), EDM's Heun sampler on "
                     f"DDPM's network, {n} NFE",
              value=round(v[0], 2), data=f"{fid_data}; the DDPM page's network",
              note=f"{v[1]} classes covered", **ddpm_run) for n, v in ddpm_edm_fid.items()]
rows += [dict(key="bits_per_dim", metric="test bits/dim (VP probability-flow ODE, upper bound)",
              value=round(bits.mean, 3), headline=True,
              paper="2.99 (CIFAR-10, sub-VP DDPM++ cont. deep)",
              data=f"{len(digits):,} held-out {mnist.name} digits, 8-bit, one dequantisation "
                   "draw each; the DDPM page's network",
              note=f"± {bits.standard_error:.3f} s.e.; "
                   f"{config.likelihood_steps} Heun steps, Hutchinson ×2", **ddpm_run)]
keys = {"EDM (main run at this step)": "edm",
        "no preconditioning (ε-prediction, VE scalings)": "epsilon",
        "log-uniform σ (VE training noise)": "loguniform"}
rows += [dict(key=f"ablation_fid_{keys[name]}", metric=f"ablation FID, {name}",
              value=round(v[0], 2), data=ablation_data, steps=config.ablation_steps,
              note=f"held-out loss {v[2]:.4f}",
              wall_time_s=(round(ablation_histories[name].wall_time)
                           if name in ablation_histories else None))
         for name, v in training_ablation.items()]
rows += [dict(key=f"toy_mode_weight_{k}",
              metric=f"2-D toy: share of samples in the 0.2-mode, {name}",
              value=round(weight_low[name], 3), data=f"{config.toy_samples:,} samples",
              steps=config.toy_steps, wall_time_s=round(toy_history.wall_time))
         for k, name in (("plain", "plain Langevin at σ_L"), ("annealed", "annealed Langevin"))]
icu.record_results("score_sde", rows,
                   defaults=dict(steps=config.steps, wall_time_s=round(history.wall_time),
                                 device=run_device))

# %% [markdown]
# ### Beside the papers
#
# | source | data | FID | NFE | bits/dim |
# | --- | --- | --- | --- | --- |
# | Song et al. 2021, VE SDE, NCSN++ cont. (deep), PC sampler | CIFAR-10, 50,000 samples, Inception features | 2.20 | — | — |
# | Song et al. 2021, sub-VP SDE, DDPM++ cont. (deep), probability-flow ODE likelihood | CIFAR-10, uniformly dequantised | 2.41 (reverse SDE) | — | 2.99 |
# | Song et al. 2021, the DDPM architecture as a VP SDE | CIFAR-10 | — | — | 3.28 (DDPM's bound: ≤ 3.70–3.75) |
# | Karras et al. 2022, EDM, Heun $N = 18$ | CIFAR-10, unconditional / class-conditional | 1.97 / 1.79 | 35 | — |
# | **this page** | 4,000 MNIST digits; the tables above | FID (MNIST-classifier features) | | bits/dim on 8-bit digits |
#
# The score-SDE paper's best FID and its best likelihood come from *two different models* (a VE and a sub-VP SDE).
# None of these numbers is comparable with ours: other data, Inception features against an MNIST classifier, 50,000
# samples against 200, networks some fifty times larger (the DDPM paper's CIFAR-10 U-Net has 35.7 M parameters, ours
# 0.69 M) trained for hundreds of thousands of steps (EDM: 200 million images, two days on eight GPUs; here: 1,200
# steps of 64 images, six minutes on a CPU). What carries over are the
# comparisons *within* one network: samplers against each other at equal evaluations, and each design choice against
# its ablation at equal budget.

# %% [markdown]
# ## Quality gates
#
# Each compares with what a model that learned nothing reaches:
#
# - the toy: annealed Langevin puts the right share of samples in the small mode, and the learned score's error on
#   blurred data (at the middle level, $\sigma = 1$) is a fraction of a zero score's;
# - EDM: the held-out loss is below a fraction of the untrained network's ($F_\theta = 0$), and Heun's samples at
#   the ablation NFE have an FID far below the untrained sampler's and cover the digit classes;
# - the VP samplers on the DDPM network: each one's best FID is far below the untrained network's;
# - the likelihood: positive, far below the untrained network's, and resolved (half the ODE steps change it by
#   less than `ode_resolution`).

# %%
gates = config.gates
best_vp = {s: min(v[0] for (s_, _), v in vp_fid.items() if s_ == s) for s in names}
edm_main = edm_fid[edm_nfe(ablation_nfe_steps)]
print(f"toy: share {weight_low['annealed Langevin']:.3f} (truth 0.2), score error "
      f"{toy_score_error[1.0]:.3f}\n"
      f"EDM: held-out loss {heldout['EDM (EMA weights)']:.4f} vs "
      f"{heldout['untrained (F_θ = 0)']:.4f}, FID {edm_main[0]:.1f} vs {edm_untrained:.0f}, "
      f"{edm_main[1]} classes\nVP best FID: "
      + ", ".join(f"{s} {v:.1f}" for s, v in best_vp.items()) + f" vs {vp_untrained:.0f}\n"
      f"bits/dim {bits.mean:.3f} vs {bits_untrained.mean:.3f}; half the steps "
      f"{coarse:.3f} vs {fine:.3f}")
assert abs(weight_low["annealed Langevin"] - 0.2) < gates.toy_weight_error, (
    "annealed Langevin misses the weights")
assert toy_score_error[1.0] < gates.toy_score_fraction, (
    "the toy's score network did not learn the score")
assert heldout["EDM (EMA weights)"] < gates.heldout_fraction * heldout["untrained (F_θ = 0)"], (
    "EDM did not learn")
assert edm_main[0] < gates.edm_fid_fraction * edm_untrained, "EDM's samples are not digits"
assert edm_main[1] >= gates.classes, "EDM's samples miss digit classes"
assert all(v < gates.vp_fid_fraction * vp_untrained for v in best_vp.values()), (
    "a VP sampler makes no digits")
assert 0 < bits.mean < gates.bits_fraction * bits_untrained.mean, (
    "the likelihood is no better than untrained")
assert abs(fine - coarse) < gates.ode_resolution, "the likelihood ODE is not resolved"
print("quality gates passed")

# %% [markdown]
# ## What to take away
#
# - A score, a noise prediction and a denoiser are one learned quantity under three names: $s = -\epsilon/\sigma =
#   (D - x)/\sigma^2$. Denoising score matching learns it without ever seeing the density.
# - One forward SDE gives a family of samplers for the same network — the reverse SDE, predictor–corrector, the
#   deterministic probability-flow ODE — and the ODE gives exact likelihoods: here the DDPM network scores better
#   through its ODE than through its own variational bound.
# - EDM separates what the score-SDE framework entangles: how the network is scaled, which noise levels it trains
#   on, how the loss is weighted, where the sampler steps and with what solver. Each is a few lines, and each can be
#   ablated alone. At this page's scale the preconditioning and the step schedule matter most: without either, the
#   samples are noise.
# - With briefly trained networks, stochastic samplers beat deterministic ones at every cost in the figure; EDM's
#   schedule makes the deterministic ones cheap, and churn recovers part of the stochastic samplers' advantage.
#
# **Common pitfalls**
# - Time conventions: $t = 0$ is data here and in the score-SDE code, $\sigma$ decreases along EDM's sampler, and
#   the DDPM step index is not $999\,t$ exactly.
# - Heun's correction at the last step divides by $\sigma = 0$: EDM skips it there.
# - $\sigma_\min = 0.02$ for $0.002$ (a typo that has appeared in public code), or $c_\text{noise} = \ln\sigma$
#   for $\frac14\ln\sigma$, or $\sigma_\text{data}$ copied from CIFAR-10 without checking the data.
# - The Langevin corrector's step uses batch-averaged norms in the official code; per-sample norms give another
#   sampler.
# - Comparing FIDs across networks as if they compared samplers: the figure above mixes three networks.
#
# ## Try it yourself
#
# 1. Set `SIGMA_DATA = 0.5` (EDM's CIFAR-10 value) and retrain: how much do the held-out loss and FID move?
# 2. Run the PC sampler with `snr=0.3` in `langevin_correct`, or the VE SDE's samplers on the EDM network
#    (score $= (D(x; \sigma(t)) - x)/\sigma(t)^2$ with `make_sde("ve")`).
# 3. Change `RHO` to 3 (the VE-like spacing) and to 20 at 35 NFE.
# 4. In the toy, run plain Langevin at $\sigma_L$ from the samples of the annealed chain's first level only
#    (`langevin(..., TOY_SIGMAS[:1], ...)` first): which share of the small mode do you get, and why?
#
# **Further reading.** The [diffusion family page](../../book/diffusion-family.md); NCSN {cite}`song2019generative`
# for annealed Langevin dynamics; DDIM {cite}`song2021denoising` for the probability-flow ODE's Euler method; flow
# matching {cite}`lipman2023flow` for the same ODE reached by regression on paths.
