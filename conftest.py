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


def pytest_collection_modifyitems(session, config, items):
    """Run a notebook after the notebooks whose checkpoints or results it reads (DiscoGAN after CycleGAN), keeping the
    order of everything else; nbval collects the notebooks of a folder alphabetically."""
    from pathlib import Path

    from itemchest_utils.execute import DEPENDS_ON

    root = Path(__file__).resolve().parent

    def rank(item):
        try:
            page = str(Path(str(item.fspath)).resolve().relative_to(root).with_suffix(""))
        except ValueError:
            return 0
        return 1 if page in DEPENDS_ON else 0

    items[:] = sorted(items, key=rank)  # stable: cells keep their order
