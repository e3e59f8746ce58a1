"""A dry run of a page's ``full`` profile on any machine: full-size models, a few real training steps.

``python -m itemchest_utils.full_dry_run notebooks/gan/dcgan.py`` (or ``--all``) runs the page's code in the ``full``
profile with ``ITEMCHEST_DRY_RUN=N`` set, which changes three things and nothing else:

- data: a full dataset (MNIST, CIFAR-10, an unpaired image folder) is replaced by random tensors of its shape and
  type, and rendered rooms are generated at a few hundred scenes; each stand-in says so. Procedural shapes are
  generated at their full count (pages build them through several calls that must agree on it);
- ``icu.fit`` runs ``N`` steps of the page's own ``train_step`` on full-size models and full-size batches, calls
  each periodic callback (``every=``) once, and prints what the run would cost: trained parameters, the batch,
  seconds per step on this device, peak memory and the projected wall time of all the run's steps;
- nothing is recorded: ``icu.record_results`` writes nothing, and no checkpoint is written, except the weights of
  the runs another page reads (``ITEMCHEST_DRY_RUN_KEEP``, e.g. DDPM's network for DDIM), to a separate
  ``full-dry-run-*`` file that a normal run never reads.

The runner executes a page's setup and its trainings, not the evaluation between and after them: evaluating a
full-size model (thousands of samples, hundreds of sampler steps) is the expensive part of a ``full`` run, and is
what the GPU is for. No stored output ever comes from a dry run; the numbers it prints are costs, not results.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time

import torch

DRY_RUN_VARIABLE = "ITEMCHEST_DRY_RUN"
REPORT_VARIABLE = "ITEMCHEST_DRY_RUN_REPORT"
KEEP_VARIABLE = "ITEMCHEST_DRY_RUN_KEEP"          # runs ("page/name", comma-separated) whose weights other pages read
BATCH_VARIABLE = "ITEMCHEST_DRY_RUN_BATCH"        # the pages' batch size in a quick shape check
STAND_IN_IMAGES = 512          # examples held per split of a stand-in dataset: a few full batches
QUICK_STAND_IN_IMAGES = 16     # in a quick shape check: data-dependent initialisations stay cheap
REPORT_WIDTH = 100

# (training images, test images, image shape) of the full datasets that load_images can download.
FULL_DATASET_SHAPES = {
    "mnist": (60_000, 10_000, (1, 28, 28)),
    "fashion_mnist": (60_000, 10_000, (1, 28, 28)),
    "cifar10": (50_000, 10_000, (3, 32, 32)),
}
# (trainA, trainB, testA, testB) image counts of the official unpaired datasets the pages name.
UNPAIRED_COUNTS = {"horse2zebra": (1067, 1334, 120, 140), "apple2orange": (995, 1019, 266, 248)}


class DryRunError(RuntimeError):
    """A dry run cannot go on (e.g. a page reads another page's run that was not dry-run first)."""


def dry_run_steps() -> int | None:
    """``ITEMCHEST_DRY_RUN`` as a step count; ``None`` when unset (every normal run)."""
    value = os.environ.get(DRY_RUN_VARIABLE, "").strip()
    if value in ("", "0"):
        return None
    if not value.isdigit():
        raise ValueError(f"{DRY_RUN_VARIABLE}={value!r}: give the number of training steps to time (e.g. 3), "
                         "or unset it")
    return int(value)


def stand_in_size() -> int:
    """How many examples a stand-in dataset holds: a few full batches, or a handful in a quick shape check
    (``ITEMCHEST_DRY_RUN_BATCH``; batches are then drawn with replacement, see ``TensorBatches``)."""
    return QUICK_STAND_IN_IMAGES if os.environ.get(BATCH_VARIABLE, "").strip() else STAND_IN_IMAGES


BATCH_KEYS = ("batch_size", "batch", "batch_sizes")   # batch_sizes: {resolution: batch} of a growing schedule


def dry_run_batch(settings: dict) -> dict:
    """A profile's settings with its batch size (``batch_size``, ``batch``, or each entry of a ``batch_sizes``
    schedule) capped at ``ITEMCHEST_DRY_RUN_BATCH`` in a dry run: a quick shape check whose times are not the
    run's. Pages whose batch size is not a setting keep their full batches."""
    size = _positive(BATCH_VARIABLE) if dry_run_steps() else None
    keys = [key for key in BATCH_KEYS if key in settings]
    if size is None or not keys:
        return settings

    def capped(value):
        return {k: min(size, v) for k, v in value.items()} if isinstance(value, dict) else min(size, value)

    announce(f"batch size {size} instead of {', '.join(str(settings[k]) for k in keys)} "
             f"({BATCH_VARIABLE}: a shape check; the times are not the run's)")
    return {**settings, **{key: capped(settings[key]) for key in keys}}


def announce(text: str) -> None:
    print(f"[dry run] {text}")


# --- stand-in data ----------------------------------------------------------------------------------------------

def stand_in_images(name: str):
    """Random images in [0, 1] and random labels shaped like the full dataset ``name``."""
    from .data import ImageDataset

    train_count, test_count, shape = FULL_DATASET_SHAPES[name]
    generator = torch.Generator().manual_seed(0)
    held_train, held_test = min(train_count, stand_in_size()), min(test_count, stand_in_size())
    shape_text = "×".join(map(str, shape))
    announce(f"{name} replaced by random tensors: {train_count:,} training and {test_count:,} test images of "
             f"{shape_text} in the full data, {held_train} + {held_test} held")
    return ImageDataset(
        name=f"{name} (dry-run stand-in)",
        train_images=torch.rand(held_train, *shape, generator=generator),
        train_labels=torch.randint(0, 10, (held_train,), generator=generator),
        test_images=torch.rand(held_test, *shape, generator=generator),
        test_labels=torch.randint(0, 10, (held_test,), generator=generator),
        classes=tuple(str(c) for c in range(10)),
        source=f"random tensors shaped like {name} (a dry run; never a result)",
    )


def stand_in_folders(name: str, resolution: int, limit: int | None):
    """Random RGB images at ``resolution`` in place of an unpaired image-folder dataset."""
    from .data import UnpairedImageFolders

    counts = UNPAIRED_COUNTS.get(name, (stand_in_size(),) * 4)
    held = [min(count, limit or count, stand_in_size()) for count in counts]
    generator = torch.Generator().manual_seed(0)
    parts = [torch.rand(n, 3, resolution, resolution, generator=generator) for n in held]
    announce(f"{name} replaced by random tensors: {' / '.join(f'{c:,}' for c in counts)} images (trainA / trainB "
             f"/ testA / testB) of 3×{resolution}×{resolution}, {' / '.join(map(str, held))} held")
    return UnpairedImageFolders(f"{name} (dry-run stand-in)", *parts,
                                source=f"random tensors shaped like {name} (a dry run; never a result)")


def procedural_count(n: int, what: str) -> int:
    """How many rendered rooms to generate in a dry run: the full count, capped at a few batches."""
    held = min(n, stand_in_size())
    if held < n:
        announce(f"{what}: {held} of the full {n:,} generated")
    return held


# --- the training side: called by icu.fit -----------------------------------------------------------------------

SECONDS_VARIABLE = "ITEMCHEST_DRY_RUN_SECONDS"    # time each variant for this long instead of for N steps
VARIANTS_VARIABLE = "ITEMCHEST_DRY_RUN_VARIANTS"  # "fp32" (default), or e.g. "fp32,bf16,compile"
VARIANTS = ("fp32", "bf16", "compile")
WARMUP_STEPS = {"fp32": 1, "bf16": 1, "compile": 3}  # untimed: allocation, kernel choice, compilation


def _positive(variable: str, kind=int):
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    try:
        number = kind(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{variable}={value!r}: give a positive {kind.__name__}, or unset it")
    return number


def variants() -> list[str]:
    names = [n.strip() for n in os.environ.get(VARIANTS_VARIABLE, "fp32").split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"{VARIANTS_VARIABLE}: unknown {unknown or 'empty list'}; use some of {', '.join(VARIANTS)}")
    return names


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _describe_batch(batch) -> str:
    if isinstance(batch, torch.Tensor):
        return f"{tuple(batch.shape)} {str(batch.dtype).removeprefix('torch.')}"
    if isinstance(batch, (tuple, list)):
        return "(" + ", ".join(_describe_batch(part) for part in batch) + ")"
    if isinstance(batch, dict):
        return "{" + ", ".join(f"{k}: {_describe_batch(v)}" for k, v in batch.items()) + "}"
    return type(batch).__name__


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "GPU memory allocated"
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak_kib / 2**20, "peak resident memory of the process"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 360 else f"{seconds / 60:,.1f} min"


def _time_variant(name, train_step, batches, *, first_step, count, seconds, device, state):
    """Run the variant's steps; return its timings and the values of its steps."""
    from .training import _as_scalar

    if name == "compile":
        for module in state.values():
            if isinstance(module, torch.nn.Module):
                module.compile()  # in place: the page's train_step calls these same objects
    precision = (torch.autocast(device.type, dtype=torch.bfloat16) if name == "bf16"
                 else torch.autocast(device.type, enabled=False))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warmup = WARMUP_STEPS[name] if seconds else 0
    step_seconds, rows, step, started_all = [], [], first_step, time.perf_counter()
    while True:
        batch = batches.batch(step)
        _synchronize(device)
        started = time.perf_counter()
        with precision:
            returned = train_step(batch)
        values = {key: float(_as_scalar(key, value)) for key, value in returned.items()}
        _synchronize(device)
        step_seconds.append(time.perf_counter() - started)
        rows.append((step, values, batch))
        step += 1
        timed = len(step_seconds) - warmup
        if seconds is None and len(step_seconds) >= count:
            break
        if seconds is not None and timed >= 2 and time.perf_counter() - started_all >= seconds:
            break
    timed_seconds = step_seconds[warmup:] if seconds else (step_seconds[1:] or step_seconds)
    per_step = sum(timed_seconds) / len(timed_seconds)
    memory, memory_kind = _peak_memory(device)
    nonfinite = next((f"{key} at step {s}" for s, values, _ in rows for key, v in values.items()
                      if not math.isfinite(v)), None)
    return {"seconds_per_step": per_step, "steps_run": len(step_seconds), "first_step_seconds": step_seconds[0],
            "peak_memory_gib": memory, "memory_kind": memory_kind, "nonfinite": nonfinite}, rows


def trained_parameters(state) -> dict[str, int]:
    """Per module in ``state``, how many of its parameters an optimizer in ``state`` trains (an averaged copy
    of the weights counts none); every parameter when ``state`` holds no optimizer."""
    modules = {name: obj for name, obj in state.items() if isinstance(obj, torch.nn.Module)}
    optimized = {id(p) for obj in state.values() if isinstance(obj, torch.optim.Optimizer)
                 for group in obj.param_groups for p in group["params"]}
    counts = {name: sum(p.numel() for p in module.parameters() if not optimized or id(p) in optimized)
              for name, module in modules.items()}
    return {name: count for name, count in counts.items() if count}


def dry_run_fit(train_step, batches, *, steps: int, state, run: str | None, callbacks, description: str,
                config: dict, code: dict, device: torch.device):
    """Real training steps on the full-size models, timed; each callback once; a report; a History."""
    from .runtime import describe_device
    from .training import History, NonFiniteLossError, run_checkpoint, save_checkpoint

    count, seconds = min(dry_run_steps(), steps), _positive(SECONDS_VARIABLE, float)
    cut = _positive(BATCH_VARIABLE)  # the batch size a quick shape check set
    parameters = trained_parameters(state)
    history = History(description=description, dry_run=True)
    measured, first_step, first_batch = {}, 0, None
    for name in variants():
        measured[name], rows = _time_variant(name, train_step, batches, first_step=first_step, count=count,
                                             seconds=seconds, device=device, state=state)
        if name == variants()[0]:
            first_batch = rows[0][2]
            if measured[name]["nonfinite"]:
                raise NonFiniteLossError(f"{description}: {measured[name]['nonfinite']} became non-finite in a dry "
                                         "run (random data, full-size model): a bug in the full configuration?")
            for step, values, _ in rows:
                history.steps.append(step)
                for key, value in values.items():
                    history.metrics.setdefault(key, []).append(value)
        first_step += len(rows)
    callback_seconds = {}
    # The periodic work (evaluation, samples) once; a quick shape check leaves it out, to stay fast.
    for callback in ([] if cut else callbacks.values()):
        started = time.perf_counter()
        history.records[callback.__name__] = {"steps": [first_step], "values": [callback(first_step)]}
        callback_seconds[callback.__name__] = time.perf_counter() - started
    main = measured[variants()[0]]
    batch_size = getattr(batches, "batch_size", None)
    device_text = describe_device(device)
    history.device, history.wall_time = device_text, main["seconds_per_step"] * main["steps_run"]
    history.images_seen = main["steps_run"] * (batch_size or 0)
    row = {"run": run or description, "description": description, "parameters": parameters,
           "batch": _describe_batch(first_batch), "batch_size": batch_size, "batch_set_to": cut,
           "timed_steps": main["steps_run"], "steps": steps, "seconds_per_step": main["seconds_per_step"],
           "projected_hours": main["seconds_per_step"] * steps / 3600, "peak_memory_gib": main["peak_memory_gib"],
           "memory_kind": main["memory_kind"], "device": device_text, "variants": measured,
           "callbacks": {name: round(s, 3) for name, s in callback_seconds.items()}}
    total = sum(parameters.values())
    by_module = ", ".join(f"{name} {n:,}" for name, n in parameters.items())
    per_step = main["seconds_per_step"]
    lines = [f"{description} ({run or 'no run name'}): {total:,} trained parameters ({by_module})",
             f"batch {row['batch']}" + (f" ({BATCH_VARIABLE}={cut}: a shape check; the times are not the run's)"
                                        if cut else ""),
             f"{main['steps_run']} of {steps:,} steps run: {per_step:.3g} s/step on {device_text}; peak memory "
             f"{main['peak_memory_gib']:.2f} GiB ({main['memory_kind']})",
             f"all {steps:,} steps at this rate: {hours(per_step * steps)}"]
    for name, result in list(measured.items())[1:]:
        lines.append(f"{name}: {result['seconds_per_step']:.3g} s/step ({per_step / result['seconds_per_step']:.2f}× "
                     f"the speed), peak {result['peak_memory_gib']:.2f} GiB"
                     + (f"; NON-FINITE: {result['nonfinite']}" if result["nonfinite"] else ""))
    if callback_seconds:
        lines.append("periodic work run once: " + ", ".join(f"{n} {s:.2g} s" for n, s in callback_seconds.items()))
    for line in lines:
        announce(line)
    if os.environ.get(REPORT_VARIABLE):
        with open(os.environ[REPORT_VARIABLE], "a") as report:
            report.write(json.dumps(row) + "\n")
    if run is not None and run in os.environ.get(KEEP_VARIABLE, "").split(","):
        # Another page reads this run (load_trained): keep its weights, not its optimizer states, which for a
        # full-size model would fill a disk across a page's many runs.
        weights = {name: obj for name, obj in state.items() if isinstance(obj, torch.nn.Module)}
        save_checkpoint(run_checkpoint(run), first_step, weights, history, config, code)
    return history
