"""Device choice and seeding."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda, then Apple's mps, then cpu. ``ITEMCHEST_DEVICE`` (or ``prefer``) overrides the choice.

    Under ``torchrun`` on GPUs each process gets the GPU of its ``LOCAL_RANK`` (a plain "cuda" choice included)."""
    from .distributed import init_distributed, rank_device

    init_distributed()
    choice = prefer or os.environ.get("ITEMCHEST_DEVICE")
    if rank_device() is not None and (not choice or torch.device(choice).type == "cuda"):
        return rank_device()
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Device {choice!r} was asked for, but CUDA is not available here.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"Device {choice!r} was asked for, but MPS is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python's ``random``, numpy and torch (all devices); return a CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'cpu (2 threads)' or 'cuda (NVIDIA H100 80GB HBM3)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def cache_root() -> Path:
    """Item Chest's cache folder (classifiers, rendered scenes, checkpoints, downloads): ``$ITEMCHEST_CACHE``,
    else ``$XDG_CACHE_HOME/itemchest``, else ``~/.cache/itemchest``."""
    if os.environ.get("ITEMCHEST_CACHE"):
        return Path(os.environ["ITEMCHEST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "itemchest"


def output_dir(*parts: str) -> Path:
    """Folder for files a notebook writes (GIFs, figures): ``$ITEMCHEST_OUTPUTS``, else ``./itemchest_outputs``.

    Under ``torchrun`` every rank runs the page; ranks other than 0 write under ``rank-<r>/`` so that rank 0's files
    (those of the weights its checkpoint holds) are never overwritten."""
    from .distributed import rank

    root = Path(os.environ.get("ITEMCHEST_OUTPUTS") or "itemchest_outputs")
    path = (root if rank() == 0 else root / f"rank-{rank()}").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
