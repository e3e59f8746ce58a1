"""A small training loop: the notebook writes ``train_step``; this runs it with a progress bar,
history, throughput, periodic checkpoints that resume, and a guard against NaN/inf losses."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch

from .runtime import cache_root

CHECKPOINT_VARIABLE = "ITEMCHEST_CHECKPOINTS"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint on disk was written for another configuration."""


@dataclass
class History:
    """What a run recorded: per-step metrics, wall time and throughput (summed over resumed runs)."""

    steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0
    images_seen: int = 0
    resumed_from: int | None = None

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.wall_time if self.wall_time > 0 else float("nan")

    def as_state(self) -> dict:
        return {"steps": list(self.steps), "metrics": {k: list(v) for k, v in self.metrics.items()},
                "wall_time": self.wall_time, "images_seen": self.images_seen}

    @classmethod
    def from_state(cls, state: Mapping, resumed_from: int) -> "History":
        return cls(steps=list(state["steps"]), metrics={k: list(v) for k, v in state["metrics"].items()},
                   wall_time=float(state["wall_time"]), images_seen=int(state["images_seen"]),
                   resumed_from=resumed_from)


def checkpoint_dir() -> Path:
    """``$ITEMCHEST_CHECKPOINTS``, else ``itemchest/checkpoints`` in the user's cache directory."""
    if os.environ.get(CHECKPOINT_VARIABLE):
        return Path(os.environ[CHECKPOINT_VARIABLE]).expanduser()
    return cache_root() / "checkpoints"


def _progress_bar(**kwargs):
    """A notebook widget where ipywidgets and a kernel are present, else a text bar on stdout.

    ``ITEMCHEST_PROGRESS=text`` forces the text bar (used when storing outputs for the site)."""
    if os.environ.get("ITEMCHEST_PROGRESS", "auto") != "text":
        try:
            import ipywidgets  # noqa: F401
            from IPython import get_ipython

            if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
                from tqdm.notebook import tqdm

                return tqdm(**kwargs)
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm(file=sys.stdout, mininterval=1.0, ascii=True, **kwargs)


def _to_float(value) -> float:
    return float(value.detach().item()) if isinstance(value, torch.Tensor) else float(value)


def _state_dicts(state: Mapping[str, object]) -> dict:
    return {name: obj.state_dict() for name, obj in state.items()}


def save_checkpoint(path: Path, step: int, state: Mapping[str, object], history: History,
                    config: Mapping | None) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"step": step, "state": _state_dicts(state), "history": history.as_state(),
               "config": dict(config or {}), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, state: Mapping[str, object], config: Mapping | None) -> tuple[int, History]:
    """Restore ``state`` in place from ``path``; return (step, history)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointMismatchError(f"Could not read checkpoint {path} ({error}). "
                                      "Delete it to start training afresh.") from error
    saved_config = payload.get("config", {})
    if config is not None and saved_config and dict(config) != saved_config:
        changed = sorted(k for k in set(saved_config) | set(config) if saved_config.get(k) != config.get(k))
        raise CheckpointMismatchError(
            f"Checkpoint {path} was written for another configuration (differs in: {', '.join(changed)}). "
            "Delete it, or point ITEMCHEST_CHECKPOINTS elsewhere, to train this configuration afresh.")
    missing = set(state) - set(payload["state"])
    if missing:
        raise CheckpointMismatchError(f"Checkpoint {path} has no state for {sorted(missing)}; delete it to start afresh.")
    for name, obj in state.items():
        obj.load_state_dict(payload["state"][name])
    torch.set_rng_state(payload["torch_rng"])
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    step = int(payload["step"])
    return step, History.from_state(payload["history"], resumed_from=step)


def fit(train_step: Callable[[object], Mapping[str, object]], batches, *, steps: int,
        state: Mapping[str, object], checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
        config: Mapping | None = None, description: str = "train") -> History:
    """Run ``train_step(batches.batch(step))`` for ``steps`` steps and return the :class:`History`.

    - ``train_step`` returns a dict of scalars; its ``"loss"`` is checked for NaN/inf every step.
    - ``state`` names everything with a ``state_dict`` (models, optimizers, schedulers) that a
      checkpoint must hold. With ``checkpoint`` set, training resumes from that file when it exists,
      saves every ``checkpoint_every`` steps (default: a tenth of the run) and at the end.
    - ``config`` is stored in the checkpoint; resuming with a different one is an error.
    """
    path = Path(checkpoint) if checkpoint is not None else None
    start, history = 0, History()
    if path is not None and path.exists():
        start, history = load_checkpoint(path, state, config)
        print(f"Resumed from {path} at step {start}.")
    every = checkpoint_every or max(1, steps // 10)
    batch_size = getattr(batches, "batch_size", 1)

    last_finite: tuple[int, dict] | None = None
    session_images, session_start = 0, time.perf_counter()
    bar = _progress_bar(total=steps, initial=start, desc=description, unit="step")
    try:
        for step in range(start, steps):
            values = {k: _to_float(v) for k, v in train_step(batches.batch(step)).items()}
            if "loss" not in values:
                raise KeyError("train_step must return a dict with a 'loss' entry.")
            if not math.isfinite(values["loss"]):
                kept = (f"The last checkpoint ({path}) is kept; " if path is not None and path.exists()
                        else "No checkpoint was written; ")
                before = (f"last finite values at step {last_finite[0]}: "
                          + ", ".join(f"{k}={v:.4g}" for k, v in last_finite[1].items())
                          if last_finite else "no step had a finite loss")
                raise NonFiniteLossError(
                    f"Loss became {values['loss']} at step {step} ({before}). {kept}"
                    "lower the learning rate or check the data, then run again.")
            last_finite = (step, values)
            history.steps.append(step)
            for key, value in values.items():
                history.metrics.setdefault(key, []).append(value)
            session_images += batch_size
            bar.update(1)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
            done = step + 1
            if path is not None and (done % every == 0 or done == steps):
                elapsed = time.perf_counter() - session_start
                snapshot = History(history.steps, history.metrics, history.wall_time + elapsed,
                                   history.images_seen + session_images)
                save_checkpoint(path, done, state, snapshot, config)
    finally:
        bar.close()
        history.wall_time += time.perf_counter() - session_start
        history.images_seen += session_images
    if session_images:
        print(f"{description}: {steps - start} steps in {time.perf_counter() - session_start:.1f} s "
              f"({session_images / max(time.perf_counter() - session_start, 1e-9):,.0f} images/s).")
    else:
        print(f"{description}: already trained to step {steps}; nothing to do.")
    return history
