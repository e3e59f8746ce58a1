"""Refresh stored outputs: ``python -m itemchest_utils.execute notebooks/vae/vae.py``, or every page with ``--all``.

Reads the jupytext ``.py`` (the source of truth), runs it top to bottom in the active profile (``book`` unless
``ITEMCHEST_PROFILE`` says otherwise) in the notebook's own folder, and writes the paired ``.ipynb`` with its
outputs. Progress bars are off (the training cells print the summary of the run instead). Runs resume from
their checkpoints, so re-executing a page whose checkpoints exist only re-evaluates it.

``--all`` runs every page in the order of ``_toc.yml``, which puts each page after the pages whose results or
checkpoints it reads (``DEPENDS_ON``), and prints a table of pages with their wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Pages that read another page's results file or checkpoint: they run after it.
DEPENDS_ON = {
    "notebooks/gan/discogan": ["notebooks/gan/cyclegan"],
    "notebooks/diffusion/ddim": ["notebooks/diffusion/ddpm"],
    "notebooks/diffusion/guidance": ["notebooks/diffusion/ddim"],
    "notebooks/flow/flow_matching": ["notebooks/flow/glow", "notebooks/diffusion/ddpm", "notebooks/diffusion/ddim"],
    "notebooks/diffusion/score_sde": ["notebooks/diffusion/ddpm", "notebooks/diffusion/ddim", "notebooks/flow/glow",
                                      "notebooks/flow/flow_matching"],
    "notebooks/autoregressive/pixelcnn": ["notebooks/vae/vae", "notebooks/vae/draw"],
    "notebooks/autoregressive/vqvae": ["notebooks/vae/vae"],
}


def execute(source: Path, timeout: int = 7200) -> float:
    """Execute one notebook and write its ``.ipynb``; return the wall time in seconds."""
    import jupytext
    from nbclient import NotebookClient

    source = Path(source)
    if source.suffix != ".py":
        raise ValueError(f"Give the notebook's .py file (the source of truth), not {source.name}.")
    if not source.is_file():
        raise FileNotFoundError(f"No notebook at {source}; the pages are listed in _toc.yml.")
    notebook = jupytext.read(source)
    os.environ["ITEMCHEST_PROGRESS"] = "off"
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend must store the figures
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(source.parent.resolve())}})
    started = time.perf_counter()
    try:
        client.execute()
    except Exception:
        # Keep what ran, for reading the numbers that led to the failure; the page's .ipynb stays untouched.
        failed = source.with_name(f"{source.stem}.failed.ipynb")
        jupytext.write(notebook, failed, fmt="ipynb")
        print(f"{source}: stopped with an error; the cells that ran, with their outputs, are in {failed}",
              file=sys.stderr, flush=True)
        raise
    seconds = time.perf_counter() - started
    target = source.with_suffix(".ipynb")
    jupytext.write(notebook, target, fmt="ipynb")
    print(f"{target}: executed in {seconds:.0f} s (profile {os.environ.get('ITEMCHEST_PROFILE') or 'book'})",
          flush=True)
    return seconds


def run_order(pages: list[str], every_need_listed: bool = True) -> list[str]:
    """``pages`` (reading order) reordered so that each page comes after the pages it reads (``DEPENDS_ON``), and
    otherwise keeps its place. A needed page missing from ``pages`` is an error unless ``every_need_listed`` is
    false (a test session that collects only some notebooks)."""
    ordered: list[str] = []

    def visit(page: str, waiting: tuple[str, ...] = ()) -> None:
        if page in ordered:
            return
        if page in waiting:
            raise ValueError(f"DEPENDS_ON has a cycle through {page}")
        for need in DEPENDS_ON.get(page, []):
            if need in pages:
                visit(need, (*waiting, page))
            elif every_need_listed:
                raise ValueError(f"{page} reads the results of {need}, which _toc.yml does not list")
        ordered.append(page)

    for page in pages:
        visit(page)
    return ordered


def pages_in_order(root: Path) -> list[Path]:
    """Every notebook page of ``_toc.yml``, in reading order except that a page runs after the pages it reads."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found: list[str] = []

    def walk(entries):
        for entry in entries or []:
            if entry.get("file", "").startswith("notebooks/"):
                found.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return [root / f"{page}.py" for page in run_order(found)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="paths of .py notebooks")
    parser.add_argument("--all", action="store_true", help="every page of _toc.yml, in dependency order")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    if args.all == bool(args.notebooks):
        parser.error("give notebooks, or --all, not both")
    if args.all:
        from .results import repository_root

        root = repository_root()
        if root is None:
            parser.error("--all runs from inside the repository (where _toc.yml is)")
        sources = pages_in_order(root)
    else:
        sources = args.notebooks
    times = [(source, execute(source, timeout=args.timeout)) for source in sources]
    if len(times) > 1:
        print("\n| page | wall time |\n| --- | --- |")
        for source, seconds in times:
            print(f"| {source.with_suffix('')} | {seconds / 60:.1f} min |")
        print(f"| all | {sum(s for _, s in times) / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
