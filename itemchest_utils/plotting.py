"""Figures every notebook draws: image grids, loss curves, interpolation strips, animations."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] → one (H', W', C) or (H', W') array laid out ``nrow`` per row."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}.")
    n, c, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    array = grid.permute(1, 2, 0).numpy()
    return array[..., 0] if c == 1 else array


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, **grid_kwargs):
    """Draw an image grid (grey images in a grey colour map); return the axes."""
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        _, ax = plt.subplots(figsize=(min(1.0 * nrow, 12), min(1.0 * rows, 12) + (0.4 if title else 0)))
    grid = image_grid(images, nrow=nrow, **grid_kwargs)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start, so the curve starts at the first value)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def plot_history(history, keys: Sequence[str] | None = None, window: int | None = None, ax=None,
                 ylabel: str = "value", title: str | None = None):
    """Curves of recorded metrics against the step, smoothed with a moving average; return the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    if getattr(history, "skipped", False):  # ITEMCHEST_SKIP_TRAINING: nothing was recorded
        ax.text(0.5, 0.5, "training skipped: no curve", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title or "")
        return ax
    keys = list(keys or history.metrics)
    steps = np.asarray(history.steps)
    window = window or max(1, len(steps) // 50)
    for key in keys:
        ax.plot(steps, smooth(history.metrics[key], window), label=key)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def show_interpolation(rows: torch.Tensor, labels: Sequence[str] | None = None, title: str | None = None):
    """Rows of images (R, S, C, H, W), one interpolation path per row; return the figure."""
    n_rows, n_steps = rows.shape[:2]
    fig, axes = plt.subplots(n_rows, 1, figsize=(n_steps * 0.8, n_rows * 0.9 + (0.4 if title else 0)),
                             squeeze=False)
    for r in range(n_rows):
        show_images(rows[r], nrow=n_steps, ax=axes[r, 0])
        if labels:
            axes[r, 0].set_title(labels[r], fontsize=9, loc="left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_animation(frames: Sequence[np.ndarray] | torch.Tensor, path: str | Path, fps: int = 8,
                   scale: int = 1, loop: bool = True) -> Path:
    """Save frames as a GIF. Frames: (T, C, H, W) tensors in [0, 1] or a list of (H, W[, 3]) arrays."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frames, torch.Tensor):
        frames = [f.permute(1, 2, 0).squeeze(-1).clamp(0, 1).cpu().numpy() for f in frames.detach().float()]
    if len(frames) == 0:
        raise ValueError("save_animation needs at least one frame.")
    images = []
    for frame in frames:
        array = np.asarray(frame, dtype=float)
        image = Image.fromarray(np.uint8(np.clip(array, 0, 1) * 255))
        if scale != 1:
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0 if loop else 1)
    return path


def show_animation(frames, path: str | Path, fps: int = 8, scale: int = 1):
    """Save frames as a GIF (see :func:`save_animation`) and return an object that shows it inline."""
    from IPython.display import Image as DisplayImage

    saved = save_animation(frames, path, fps=fps, scale=scale)
    return DisplayImage(data=saved.read_bytes(), format="gif")
