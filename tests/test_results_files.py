"""Every notebook page's stored run and its results file agree, and every page offers a landing figure.

The site's results table is built from ``results/book/*.json``; these tests are what keeps it honest.
"""

import json
import sys
from pathlib import Path

import pytest

from itemchest_utils.results import RESULTS_MIME, load_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from itemchest_site import LANDING_TAG, landing_figure, toc_notebooks  # noqa: E402

PAGES = [docname for docname, _ in toc_notebooks(ROOT)]


def stored_results(notebook: dict) -> list[dict]:
    return [output["data"][RESULTS_MIME] for cell in notebook["cells"] if cell["cell_type"] == "code"
            for output in cell.get("outputs", []) if RESULTS_MIME in output.get("data", {})]


def test_every_notebook_on_disk_is_a_page():
    on_disk = sorted(str(path.relative_to(ROOT).with_suffix("")) for path in ROOT.glob("notebooks/*/*.ipynb"))
    assert sorted(PAGES) == on_disk


@pytest.mark.parametrize("docname", PAGES)
def test_stored_results_equal_the_results_file(docname):
    stem = docname.rsplit("/", 1)[-1]
    notebook = json.loads((ROOT / f"{docname}.ipynb").read_text())
    recorded = stored_results(notebook)
    assert len(recorded) == 1, f"{docname}.ipynb must call icu.record_results exactly once in its stored run"
    path = ROOT / "results" / "book" / f"{stem}.json"
    assert path.exists(), f"{path} is missing: run {docname}.py in the book profile and commit the file"
    on_file = load_results(path)
    assert recorded[0] == on_file, (f"{docname}.ipynb and {path.name} disagree: the notebook was re-run without "
                                    "committing its results file, or the other way round")
    assert on_file["profile"] == "book" and on_file["notebook"] == stem
    for row in on_file["rows"]:
        assert isinstance(row["value"], (int, float)), f"{row['metric']}: a headline number must be a number"
        # 0 (or None) for a baseline or a measurement of real images, which train nothing
        assert row["steps"] is None or (isinstance(row["steps"], int) and row["steps"] >= 0)
        assert row["device"] and row["data"]


def test_no_stray_results_files():
    stems = {docname.rsplit("/", 1)[-1] for docname in PAGES}
    assert {path.stem for path in (ROOT / "results" / "book").glob("*.json")} <= stems


@pytest.mark.parametrize("docname", PAGES)
def test_every_page_has_one_landing_figure(docname):
    notebook = json.loads((ROOT / f"{docname}.ipynb").read_text())
    tagged = [cell for cell in notebook["cells"] if LANDING_TAG in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{docname}: tag exactly one figure cell {LANDING_TAG!r}"
    png = landing_figure(notebook)
    assert png and len(png) > 1000, f"{docname}: the {LANDING_TAG!r} cell has no stored PNG"
