"""Refresh a notebook's stored outputs: ``python -m itemchest_utils.execute notebooks/vae/vae.py``.

Reads the jupytext ``.py`` (the source of truth), runs it top to bottom in the active profile (``book``
unless ``ITEMCHEST_PROFILE`` says otherwise) in the notebook's own folder, and writes the paired
``.ipynb`` with its outputs. Progress bars are stored as their final text line, not as widgets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def execute(source: Path, timeout: int = 3600) -> Path:
    import jupytext
    from nbclient import NotebookClient

    source = Path(source)
    if source.suffix != ".py":
        raise ValueError(f"Give the notebook's .py file (the source of truth), not {source.name}.")
    notebook = jupytext.read(source)
    os.environ.setdefault("ITEMCHEST_PROGRESS", "text")
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend must store the figures
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(source.parent.resolve())}})
    started = time.perf_counter()
    client.execute()
    target = source.with_suffix(".ipynb")
    jupytext.write(notebook, target, fmt="ipynb")
    print(f"{target}: executed in {time.perf_counter() - started:.0f} s "
          f"(profile {os.environ.get('ITEMCHEST_PROFILE') or 'book'})")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="paths of .py notebooks")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        execute(path, timeout=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
