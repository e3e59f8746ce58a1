"""Test-wide settings: notebooks run in the smoke profile, with throw-away checkpoints and outputs."""

import os
import tempfile

# Set before any kernel starts, so nbval's notebook kernels inherit them.
os.environ["ITEMCHEST_PROFILE"] = "smoke"
os.environ["ITEMCHEST_CHECKPOINTS"] = tempfile.mkdtemp(prefix="itemchest-checkpoints-")
os.environ["ITEMCHEST_OUTPUTS"] = tempfile.mkdtemp(prefix="itemchest-outputs-")
os.environ["ITEMCHEST_RESULTS"] = tempfile.mkdtemp(prefix="itemchest-results-")
os.environ["ITEMCHEST_PROGRESS"] = "text"
os.environ.setdefault("MPLBACKEND", "Agg")

# A page whose `book` run stopped leaves its partial outputs in <page>.failed.ipynb for reading; never a test.
collect_ignore_glob = ["notebooks/*/*.failed.ipynb"]


def pytest_collection_modifyitems(session, config, items):
    """Run each notebook after the notebooks whose checkpoints or results it reads (``DEPENDS_ON``: DiscoGAN after
    CycleGAN, DDIM after DDPM), keeping the order of everything else; nbval collects a folder's notebooks
    alphabetically."""
    from pathlib import Path

    from itemchest_utils.execute import run_order

    root = Path(__file__).resolve().parent

    def page(item):
        try:
            return str(Path(str(item.fspath)).resolve().relative_to(root).with_suffix(""))
        except ValueError:
            return None

    pages = list(dict.fromkeys(p for p in map(page, items) if p and p.startswith("notebooks/")))
    position = {p: k for k, p in enumerate(run_order(pages, every_need_listed=False))}
    first_notebook = next((k for k, item in enumerate(items) if page(item) in position), len(items))
    before = items[:first_notebook]
    rest = items[first_notebook:]
    items[:] = before + sorted(rest, key=lambda item: position.get(page(item), -1))  # stable: cells keep their order
