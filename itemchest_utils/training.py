"""A small training loop: the notebook writes ``train_step``; ``fit`` runs it with a progress bar, a history,
periodic work (``every``), checkpoints that resume, and a guard against NaN/inf values.

The loop serves the paper's code, not the reverse:

- ``train_step(batch)`` returns the quantities the paper talks about (any names); every one is checked for
  NaN/inf, and the error names the one that failed and the step.
- ``run="page/name"`` and ``config`` identify a run; its checkpoint file is derived from them and from the
  profile. ``code`` (the model classes, ``train_step``, ...) is fingerprinted, so a checkpoint trained by other
  code is refused with an error that names what changed, instead of silently producing stored outputs.
- ``every={500: record}`` calls ``record(step)`` every 500 steps; what it returns is kept in the history and in
  the checkpoint, so a resumed run has the recordings of the steps it did not retrain.
- Values stay on the device and are read every ``log_every`` steps, so a GPU is not synchronised every step.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import math
import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from .distributed import (DataParallelTraining, average_over_ranks, barrier, gather_rng_states, is_main_process,
                          restore_rng_state, same_on_every_rank, world_size)
from .dry_run import dry_run_fit, dry_run_steps
from .profiles import active_profile
from .runtime import cache_root, describe_device

CHECKPOINT_VARIABLE = "ITEMCHEST_CHECKPOINTS"
SKIP_TRAINING_VARIABLE = "ITEMCHEST_SKIP_TRAINING"
STOP_AFTER_VARIABLE = "ITEMCHEST_STOP_AFTER"
SUMMARY_WIDTH = 100   # characters: a stored output line the page shows without scrolling


class NonFiniteLossError(FloatingPointError):
    """A value returned by ``train_step`` became NaN or infinite; training stopped, the last checkpoint was kept."""


class TrainingInterrupted(RuntimeError):
    """Training stopped on purpose after the step ``ITEMCHEST_STOP_AFTER`` names; its checkpoint was written."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint on disk was written for another configuration or by other code."""


@dataclass
class History:
    """What a run recorded: per-step values, periodic recordings, wall time and throughput (summed over resumes)."""

    steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0
    images_seen: int = 0
    resumed_from: int | None = None
    records: dict[str, dict[str, list]] = field(default_factory=dict)
    device: str = ""
    description: str = ""
    skipped: bool = False
    dry_run: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.wall_time if self.wall_time > 0 else float("nan")

    def recorded(self, name: str) -> tuple[list[int], list]:
        """The steps at which ``every``'s callback ``name`` ran, and what it returned each time."""
        if name not in self.records:
            raise KeyError(f"nothing was recorded under {name!r}; recorded: {sorted(self.records) or 'nothing'}")
        return list(self.records[name]["steps"]), list(self.records[name]["values"])

    def final(self, window: int = 100) -> dict[str, float]:
        """Each value's mean over the last ``window`` steps (training batches)."""
        return {key: sum(values[-window:]) / len(values[-window:]) for key, values in self.metrics.items() if values}

    def summary(self) -> str:
        """One paragraph on the run that produced the weights: the same text after training or after resuming."""
        if self.skipped:
            return f"{self.description}: training skipped ({SKIP_TRAINING_VARIABLE} is set); the model is untrained."
        if self.dry_run:
            return f"{self.description}: a dry run ({len(self.steps)} steps timed on random data); nothing trained."
        steps = self.steps[-1] + 1 if self.steps else 0
        final = ", ".join(f"{key} {value:.4g}" for key, value in self.final().items())
        window = min(100, len(self.steps))
        means = textwrap.fill(f"mean of the last {window} training steps: {final}", SUMMARY_WIDTH,
                              subsequent_indent="    ", break_on_hyphens=False)
        return (f"{self.description}: {steps:,} steps in {self.wall_time:,.0f} s on {self.device or 'an unknown device'}"
                f" ({self.images_per_second:,.0f} images/s)." + (f"\n{means}" if final else ""))

    def as_state(self) -> dict:
        return {"steps": list(self.steps), "metrics": {k: list(v) for k, v in self.metrics.items()},
                "wall_time": self.wall_time, "images_seen": self.images_seen,
                "records": {k: {"steps": list(v["steps"]), "values": list(v["values"])} for k, v in self.records.items()},
                "device": self.device, "description": self.description, "dry_run": self.dry_run}

    @classmethod
    def from_state(cls, state: Mapping, resumed_from: int) -> "History":
        records = {k: {"steps": list(v["steps"]), "values": list(v["values"])}
                   for k, v in state.get("records", {}).items()}
        return cls(steps=list(state["steps"]), metrics={k: list(v) for k, v in state["metrics"].items()},
                   wall_time=float(state["wall_time"]), images_seen=int(state["images_seen"]),
                   resumed_from=resumed_from, records=records, device=state.get("device", ""),
                   description=state.get("description", ""), dry_run=bool(state.get("dry_run", False)))


def checkpoint_dir() -> Path:
    """``$ITEMCHEST_CHECKPOINTS``, else ``itemchest/checkpoints`` in the user's cache directory."""
    if os.environ.get(CHECKPOINT_VARIABLE):
        return Path(os.environ[CHECKPOINT_VARIABLE]).expanduser()
    return cache_root() / "checkpoints"


def run_checkpoint(run: str, profile: str | None = None) -> Path:
    """The checkpoint file of ``run`` ("page/name") in a profile: ``<checkpoints>/<page>/<profile>-<name>.pt``."""
    page, _, name = run.partition("/")
    if not page or not name or "/" in name or any(c in run for c in " \\"):
        raise ValueError(f"run must look like 'page/name' (e.g. 'ddpm/main'), not {run!r}")
    dry = "-dry-run" if dry_run_steps() else ""  # a dry run's weights never stand in for a trained run's
    return checkpoint_dir() / page / f"{profile or active_profile()}{dry}-{name}.pt"


def _source_fingerprint(obj) -> str:
    """A hash of the code that defines ``obj`` (a module, class or function), blind to comments and formatting
    (it hashes the syntax tree). A class's hash covers its own methods, not the classes it uses: list those too,
    or give their module."""
    if inspect.ismodule(obj):
        return hashlib.sha256(ast.dump(ast.parse(inspect.getsource(obj))).encode()).hexdigest()[:16]
    if inspect.isclass(obj):
        members = [value for _, value in sorted(vars(obj).items())
                   if inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod, property))]
        parts = [obj.__qualname__, *(b.__qualname__ for b in obj.__bases__)]
        parts += [_source_fingerprint(getattr(m, "__func__", None) or getattr(m, "fget", None) or m) for m in members]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    target = inspect.unwrap(obj)
    try:
        text = ast.dump(ast.parse(textwrap.dedent(inspect.getsource(target))))
    except (OSError, TypeError, SyntaxError):
        code = getattr(target, "__code__", None)
        if code is None:
            raise TypeError(f"cannot fingerprint {obj!r}: give classes or functions defined in Python") from None
        text = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_fingerprint(objects: Sequence[object]) -> dict[str, str]:
    """Name → hash of the source of each class or function that defines a run."""
    return {getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj)): _source_fingerprint(obj)
            for obj in objects}


def _progress_bar(**kwargs):
    """A notebook widget where ipywidgets and a kernel are present, else a text bar on stderr; none when
    ``ITEMCHEST_PROGRESS=off`` (how stored outputs are made: they show the run's summary, not a bar)."""
    mode = os.environ.get("ITEMCHEST_PROGRESS", "auto")
    from tqdm.std import tqdm

    if mode == "off" or not is_main_process():  # under torchrun one bar, rank 0's
        return tqdm(disable=True, **kwargs)
    if mode != "text":
        try:
            import ipywidgets  # noqa: F401
            from IPython import get_ipython

            if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
                from tqdm.notebook import tqdm as notebook_tqdm

                return notebook_tqdm(**kwargs)
        except ImportError:
            pass
    return tqdm(file=sys.stderr, mininterval=1.0, ascii=True, **kwargs)


def _state_dicts(state: Mapping[str, object]) -> dict:
    return {name: obj.state_dict() for name, obj in state.items()}


def save_checkpoint(path: Path, step: int, state: Mapping[str, object], history: History,
                    config: Mapping | None, code: Mapping[str, str] | None = None,
                    rank_rng: list[dict] | None = None) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a broken file.

    ``rank_rng`` (under torchrun) is every rank's RNG state, so that each rank of a resumed run draws its own noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"step": step, "state": _state_dicts(state), "history": history.as_state(),
               "config": dict(config or {}), "code": dict(code or {}), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    if rank_rng is not None:
        payload["rank_rng"] = rank_rng
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _shown(path: Path) -> str:
    """The checkpoint's path relative to the checkpoint folder, so messages do not carry machine paths."""
    try:
        return f"{path.relative_to(checkpoint_dir())} in {CHECKPOINT_VARIABLE}"
    except ValueError:
        return path.name


def load_checkpoint(path: Path, state: Mapping[str, object], config: Mapping | None,
                    code: Mapping[str, str] | None = None) -> tuple[int, History]:
    """Restore ``state`` in place from ``path``; return (step, history).

    The saved configuration must equal ``config`` (an empty one included) and the saved code fingerprint
    must equal ``code``; otherwise a :class:`CheckpointMismatchError` names what differs."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointMismatchError(f"Could not read checkpoint {_shown(path)} ({error}). "
                                      "Delete it to start training afresh.") from error
    retrain = f"Delete {_shown(path)} (or point {CHECKPOINT_VARIABLE} elsewhere) to train this run afresh."
    saved_config, config = payload.get("config", {}), dict(config or {})
    if saved_config != config:
        changed = sorted(k for k in set(saved_config) | set(config)
                         if k not in saved_config or k not in config or saved_config[k] != config[k])
        detail = ", ".join(f"{k}: {saved_config.get(k, '(unset)')!r} → {config.get(k, '(unset)')!r}" for k in changed)
        raise CheckpointMismatchError(f"Checkpoint {_shown(path)} was written for another configuration "
                                      f"({detail}). {retrain}")
    saved_code, code = payload.get("code", {}), dict(code or {})
    if saved_code != code:
        changed = sorted(k for k in set(saved_code) | set(code) if saved_code.get(k) != code.get(k))
        raise CheckpointMismatchError(f"Checkpoint {_shown(path)} was trained by other code: "
                                      f"{', '.join(changed)} changed since. Its weights would not match this page's "
                                      f"code. {retrain}")
    missing = set(state) - set(payload["state"])
    if missing:
        raise CheckpointMismatchError(f"Checkpoint {_shown(path)} has no state for {sorted(missing)}. {retrain}")
    for name, obj in state.items():
        obj.load_state_dict(payload["state"][name])
    torch.set_rng_state(payload["torch_rng"])
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    restore_rng_state(payload.get("rank_rng"))  # under torchrun: this rank's own state
    step = int(payload["step"])
    return step, History.from_state(payload["history"], resumed_from=step)


@dataclass
class TrainedRun:
    """A finished run read back by another page: its configuration, history and saved state dicts."""

    run: str
    config: dict
    history: History
    state: dict
    code: dict


def load_trained(run: str, *, code: Sequence[object] = (), profile: str | None = None) -> TrainedRun:
    """Read the checkpoint of ``run`` ("page/name"), trained by another page, for evaluation.

    ``code`` lists the classes and functions this page shares with the page that trained it; each must be the
    code that trained the weights (same fingerprint), or a :class:`CheckpointMismatchError` names it. A missing
    checkpoint is a ``FileNotFoundError`` that says which page to run first."""
    path = run_checkpoint(run, profile)
    page = run.partition("/")[0]
    if not path.exists():
        raise FileNotFoundError(
            f"No trained run {run!r} in the {profile or active_profile()} profile ({_shown(path)}). Run the {page} "
            f"page first (python -m itemchest_utils.execute notebooks/<family>/{page}.py, or open it), then this one.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointMismatchError(f"Could not read checkpoint {_shown(path)} ({error}). Delete it and run the "
                                      f"{page} page again.") from error
    changed = sorted(name for name, digest in code_fingerprint(code).items()
                     if payload.get("code", {}).get(name) != digest)
    if changed:
        raise CheckpointMismatchError(f"Checkpoint {_shown(path)} was trained by other code: {', '.join(changed)} "
                                      f"differ(s) from this page's. Re-run the {page} page so both pages share it.")
    return TrainedRun(run=run, config=dict(payload["config"]), history=History.from_state(payload["history"],
                      resumed_from=int(payload["step"])), state=payload["state"], code=dict(payload.get("code", {})))


def _as_scalar(name: str, value, as_tensor: bool = False) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"train_step returned {name!r} with shape {tuple(value.shape)}; return scalars")
        return value.detach().reshape(())
    return torch.tensor(float(value), dtype=torch.float64) if as_tensor else float(value)


def _config_dict(config) -> dict:
    if config is None:
        return {}
    if hasattr(config, "hyperparameters"):
        return dict(config.hyperparameters)
    return dict(config)


def fit(train_step: Callable[[object], Mapping[str, object]], batches, *, steps: int,
        state: Mapping[str, object], run: str | None = None, config=None, code: Sequence[object] = (),
        every: Mapping[int, Callable[[int], object]] | None = None, checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None, log_every: int = 20, description: str | None = None,
        device: torch.device | str | None = None) -> History:
    """Run ``train_step(batches.batch(step))`` for ``steps`` steps and return the :class:`History`.

    - ``state`` names everything with a ``state_dict`` (models, optimizers, schedulers) that a checkpoint holds.
    - ``run`` ("page/name") turns checkpoints on: the file is :func:`run_checkpoint` of it (or ``checkpoint``,
      an explicit path). Training resumes from it when it exists, saves every ``checkpoint_every`` steps
      (default: a tenth of the run) and at the end.
    - ``config`` (a dict, or a :func:`~itemchest_utils.pick_config` result: its hyperparameters, not its gates)
      and the fingerprint of ``code`` are stored in the checkpoint; resuming with others is an error.
    - ``every`` maps a period to a callback ``record(step)``, called after steps ``period, 2·period, …``; its
      return values are kept in ``history.records[record.__name__]`` and in the checkpoint.
    - ``ITEMCHEST_SKIP_TRAINING=1`` takes no step (the page's gates then show what an untrained model scores);
      each ``every`` callback is then called once, at step 0.
    - ``ITEMCHEST_STOP_AFTER=N`` stops a checkpointed run after step N with a checkpoint written there and raises
      :class:`TrainingInterrupted` (train in sessions, or test that a resumed run equals an uninterrupted one).
    - Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is data-parallel (:mod:`itemchest_utils.distributed`): each
      process trains on its slice of every batch, gradients and the history's values are averaged over the
      processes, and only rank 0 prints and writes the checkpoint.
    - ``ITEMCHEST_DRY_RUN=N`` times ``N`` steps and reports the run's cost instead of training it
      (:mod:`itemchest_utils.dry_run`).
    """
    description = description or (run or "train")
    config_values = _config_dict(config)
    fingerprint = code_fingerprint(code)
    path = Path(checkpoint) if checkpoint is not None else (run_checkpoint(run) if run else None)
    callbacks = dict(every or {})
    for period, callback in callbacks.items():
        if not isinstance(period, int) or period < 1:
            raise ValueError(f"every: periods are positive step counts, not {period!r}")
        if not callable(callback):
            raise TypeError(f"every[{period}] must be a function of the step, not {callback!r}")

    if dry_run_steps():  # ITEMCHEST_DRY_RUN: time a few steps of the full-size run, train nothing
        return dry_run_fit(train_step, batches, steps=steps, state=state, run=run, callbacks=callbacks,
                           description=description, config=config_values, code=fingerprint,
                           device=torch.device(device) if device is not None else _device_of(state))

    if os.environ.get(SKIP_TRAINING_VARIABLE, "").strip() not in ("", "0"):
        history = History(description=description, skipped=True)
        for callback in callbacks.values():  # once, on the untrained state, so pages that read recordings run
            history.records[callback.__name__] = {"steps": [0], "values": [callback(0)]}
        if is_main_process():
            print(history.summary())
        return history

    stop_after = _stop_after(path)
    parallel = DataParallelTraining(state).start()  # under torchrun: shards, averaged gradients; else nothing
    start, history = 0, History(description=description)
    try:
        resume = path is not None and same_on_every_rank(path.exists(), f"whether {_shown(path)} exists")
        if resume:
            start, history = load_checkpoint(path, state, config_values, fingerprint)
            history.description = description
    except BaseException:
        parallel.close()
        raise
    if start < steps:
        history.device = describe_device(torch.device(device) if device is not None else _device_of(state))
        history.device = f"{world_size()} × {history.device}" if parallel.active else history.device
    save_every = checkpoint_every or max(1, steps // 10)
    batch_size = getattr(batches, "batch_size", 1)

    pending: list[tuple[int, dict]] = []
    last_finite: tuple[int, dict] | None = None

    def flush():
        nonlocal last_finite
        if not pending:
            return
        tensors = [v for _, values in pending for v in values.values() if isinstance(v, torch.Tensor)]
        read = iter(average_over_ranks(torch.stack([t.double().to(tensors[0].device) for t in tensors])).tolist()
                    if tensors else [])  # under torchrun: the global batch's values
        rows = [{k: next(read) if isinstance(v, torch.Tensor) else v for k, v in values.items()}
                for _, values in pending]
        for (step, _), values in zip(pending, rows):
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                kept = (f"The last checkpoint ({_shown(path)}) is kept; " if path is not None and path.exists()
                        else "No checkpoint was written; ")
                before = (f"last finite values at step {last_finite[0]}: "
                          + ", ".join(f"{k}={v:.4g}" for k, v in last_finite[1].items())
                          if last_finite else "no earlier step was finite")
                raise NonFiniteLossError(
                    f"{', '.join(bad)} became {values[bad[0]]} at step {step} ({before}). {kept}"
                    "lower the learning rate or check the data, then run again.")
            last_finite = (step, values)
            history.steps.append(step)
            for key, value in values.items():
                history.metrics.setdefault(key, []).append(value)
        pending.clear()

    session_images, session_start, saved = 0, time.perf_counter(), None
    bar = _progress_bar(total=steps, initial=start, desc=description, unit="step")
    for note in parallel.notes if is_main_process() else []:
        print(note)
    try:
        for step in range(start, steps):
            returned = train_step(parallel.shard(batches.batch(step)))
            pending.append((step, {k: _as_scalar(k, v, as_tensor=parallel.active) for k, v in returned.items()}))
            session_images += batch_size
            done = step + 1
            stopping = done == stop_after and done < steps
            due_checkpoint = path is not None and (done % save_every == 0 or done == steps or stopping)
            due_callbacks = [(p, c) for p, c in callbacks.items() if done % p == 0]
            if len(pending) >= log_every or due_checkpoint or due_callbacks or done == steps:
                flush()
                bar.update(done - bar.n)
                if history.steps:
                    bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.metrics.items()}, refresh=False)
            for period, callback in due_callbacks:
                record = history.records.setdefault(callback.__name__, {"steps": [], "values": []})
                record["steps"].append(done)
                record["values"].append(callback(done))
            if due_checkpoint:
                elapsed = time.perf_counter() - session_start
                snapshot = History(history.steps, history.metrics, history.wall_time + elapsed,
                                   history.images_seen + session_images, records=history.records,
                                   device=history.device, description=description)
                rank_rng = gather_rng_states()  # under torchrun: every rank's, gathered; rank 0 alone writes
                if is_main_process():
                    save_checkpoint(path, done, state, snapshot, config_values, fingerprint, rank_rng=rank_rng)
                barrier()
                saved = snapshot
            if stopping:
                raise TrainingInterrupted(
                    f"{description}: stopped after step {done} of {steps} as {STOP_AFTER_VARIABLE} asks; the "
                    f"checkpoint ({_shown(path)}) is kept. Run again without {STOP_AFTER_VARIABLE} to resume.")
    finally:
        bar.close()
        parallel.close()
        if session_images and saved is not None and saved.steps and saved.steps[-1] == steps - 1:
            history.wall_time, history.images_seen = saved.wall_time, saved.images_seen  # what the file says
        elif session_images:
            history.wall_time += time.perf_counter() - session_start
            history.images_seen += session_images
    if is_main_process():
        print(history.summary())
    return history


def _stop_after(path: Path | None) -> int | None:
    value = os.environ.get(STOP_AFTER_VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{STOP_AFTER_VARIABLE}={value!r}: give a positive step count, or unset it")
    if path is None:
        raise ValueError(f"{STOP_AFTER_VARIABLE} is set but this run has no checkpoint to resume from: "
                         "give fit a run name (run=...), or unset the variable")
    return int(value)


def _device_of(state: Mapping[str, object]) -> torch.device:
    for obj in state.values():
        if isinstance(obj, torch.nn.Module):
            for parameter in obj.parameters():
                return parameter.device
    return torch.device("cpu")
