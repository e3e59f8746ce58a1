"""The first thing to run on a GPU: every page's ``full`` training step, timed, in float32, bf16 and compiled.

``python -m itemchest_utils.gpu_check`` dry-runs every page (:mod:`itemchest_utils.full_dry_run`) on the local
accelerator: each training run of each page builds its ``full``-size models, takes real steps of its own
``train_step`` on random data of the full data's shape for ``--seconds`` in each variant — float32, then bf16
autocast, then ``torch.compile`` of every module (float32) — and the table gives steps/s, images/s, peak memory
and each variant's speed-up. Defaults fit every page in about fifteen minutes on one modern GPU. It also measures
what reading the step's values every step (``.item()``) instead of every 20 steps costs ``icu.fit``.

Options: ``--seconds`` per variant and run, ``--variants fp32,bf16`` to leave one out, page files to check only
those. Nothing is trained for real and nothing is stored but the ``--json`` report.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from .dry_run import SECONDS_VARIABLE, VARIANTS, VARIANTS_VARIABLE
from .full_dry_run import all_pages, dry_run_pages


def fit_read_back_cost(device: torch.device, steps: int = 300) -> dict:
    """Steps/s of ``icu.fit`` on a small convolutional model when the step's values are read every step
    (``log_every=1``: one device synchronisation per step) and every 20 steps (the default)."""
    from .data import TensorBatches
    from .training import fit

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(32, 1, 3, padding=1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = TensorBatches(torch.rand(1024, 1, 28, 28), batch_size=64, device=device)

    def train_step(batch):
        loss = (model(batch) - batch).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss, "scale": loss.detach() * 2}

    rates, progress = {}, os.environ.get("ITEMCHEST_PROGRESS")
    os.environ["ITEMCHEST_PROGRESS"] = "off"
    try:
        for log_every in (1, 20, 1, 20):  # twice each, alternating, so warm-up does not favour one
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # fit's run summaries
                fit(train_step, batches, steps=steps, state={}, log_every=log_every)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            rates.setdefault(log_every, []).append(steps / (time.perf_counter() - started))
    finally:
        os.environ.pop("ITEMCHEST_PROGRESS") if progress is None else os.environ.update(ITEMCHEST_PROGRESS=progress)
    return {f"log_every={k}": max(v) for k, v in rates.items()}


def table(rows: list[dict], variant_names: list[str]) -> str:
    header = ["run", "trained parameters", "batch", "steps/s", "images/s", "peak GiB"]
    header += [f"{name} ×" for name in variant_names[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        main = row["variants"][variant_names[0]]
        rate = 1 / main["seconds_per_step"]
        cells = [f"{row['description']} (`{row['run']}`)", f"{sum(row['parameters'].values()):,}", row["batch"],
                 f"{rate:,.2f}", f"{rate * (row['batch_size'] or 0):,.0f}", f"{main['peak_memory_gib']:.1f}"]
        for name in variant_names[1:]:
            other = row["variants"].get(name)
            cells.append("—" if other is None else
                         ("non-finite" if other["nonfinite"] else f"{main['seconds_per_step'] / other['seconds_per_step']:.2f}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="page files (default: every page)")
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per variant and run (default 6)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from fp32,bf16,compile")
    parser.add_argument("--json", type=Path, help="write the report rows to this file")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when no GPU is present")
    arguments = parser.parse_args(argv)
    if not torch.cuda.is_available() and not arguments.allow_cpu:
        parser.error("no CUDA GPU is visible (torch.cuda.is_available() is False); --allow-cpu runs it anyway")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = [n.strip() for n in arguments.variants.split(",") if n.strip()]
    if not names or any(n not in VARIANTS for n in names):
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    started = time.perf_counter()
    read_back = fit_read_back_cost(device)
    pages = arguments.pages or all_pages(Path.cwd())
    os.environ.update({SECONDS_VARIABLE: str(arguments.seconds), VARIANTS_VARIABLE: ",".join(names)})
    with tempfile.TemporaryDirectory(prefix="itemchest-gpu-check-") as folder:
        rows, outcomes = dry_run_pages(pages, 1, workdir=Path(folder))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {arguments.seconds:g} s per variant and run; "
          f"{time.perf_counter() - started:,.0f} s in all")
    print("icu.fit, small conv net: " + ", ".join(f"{k}: {v:,.0f} steps/s" for k, v in read_back.items()))
    print(table(rows, names))
    failed = {page: o for page, o in outcomes.items() if o["returncode"] != 0}
    for page, outcome in failed.items():
        print(f"--- {page} failed (exit {outcome['returncode']}):\n{outcome['output'][-3000:]}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"device": name, "read_back": read_back, "rows": rows,
                                              "failed": sorted(failed)}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
