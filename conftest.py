"""Test-wide settings: notebooks run in the smoke profile, with throw-away checkpoints and outputs."""

import os
import tempfile

import pytest

# Set before any kernel starts, so nbval's notebook kernels inherit them. Under pytest-xdist the workers inherit
# the controller's folders: one cache, so a reference classifier is built once, and one checkpoint folder.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
os.environ["ITEMCHEST_PROFILE"] = "smoke"
if not WORKER:
    # An empty cache: the reference classifiers and rendered scenes are built by this run's code, never read from
    # files an older recipe left in the user's cache.
    os.environ["ITEMCHEST_CACHE"] = tempfile.mkdtemp(prefix="itemchest-cache-")
    os.environ["ITEMCHEST_CHECKPOINTS"] = tempfile.mkdtemp(prefix="itemchest-checkpoints-")
    os.environ["ITEMCHEST_OUTPUTS"] = tempfile.mkdtemp(prefix="itemchest-outputs-")
    os.environ["ITEMCHEST_RESULTS"] = tempfile.mkdtemp(prefix="itemchest-results-")
elif int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Workers share the cores: one thread each (torch reads this when imported; kernels and subprocesses
    # inherit it). Two torch processes with a thread per core each run many times slower than one.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
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


def notebook_groups() -> dict[str, str]:
    """Each page linked to others by ``DEPENDS_ON`` (a page reads another's runs), mapped to one name per linked set."""
    from itemchest_utils.execute import DEPENDS_ON

    group: dict[str, str] = {}

    def find(page):
        while group.setdefault(page, page) != page:
            page = group[page]
        return page

    for page, needs in DEPENDS_ON.items():
        for need in needs:
            group[find(page)] = find(need)
    return {page: find(page) for page in group}


# Test modules whose tests are independent and long (each runs a page): their tests are spread over the workers.
SPREAD_MODULES = {"tests/test_dry_run.py", "tests/test_gates.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist, one worker takes a whole test module (but for ``SPREAD_MODULES``), a whole notebook, or a
    whole set of notebooks that read each other's runs (DDPM, DDIM, guidance, Glow, flow matching and score SDE), in
    collection order: a notebook's cells share one kernel, and a page runs after the pages it reads, on the same
    worker."""
    from xdist.scheduler import LoadScopeScheduling

    groups = notebook_groups()

    class NotebookSetScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.partition("::")[0]
            if path in SPREAD_MODULES:
                return nodeid
            return groups.get(path.removesuffix(".ipynb"), path)

    return NotebookSetScheduling(config, log)


@pytest.fixture
def speed_ratio():
    """``speed_ratio(work)``: how many times longer ``work()`` takes on one thread than a fixed element-wise tensor
    workload. The two are timed alternately, five times each, and the fastest of each is kept: a busy machine
    slows both alike, so throughput tests assert a ratio instead of an absolute rate."""
    import time

    import torch

    def seconds(run) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    def measure(work) -> float:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x = torch.linspace(0, 1, 2000 * 3 * 64 * 64).view(2000, 3, 64, 64)
            pairs = [(seconds(lambda: torch.sigmoid(x * 3.0 - 1.0) * torch.cos(x)), seconds(work)) for _ in range(5)]
            return min(w for _, w in pairs) / min(r for r, _ in pairs)
        finally:
            torch.set_num_threads(threads)

    return measure
