"""Each notebook is a jupytext pair: the .py source and the .ipynb with stored outputs must not drift."""

import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in (ROOT / "notebooks").rglob("*.py") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert SOURCES, "no notebooks found under notebooks/"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_py_and_ipynb_cells_are_identical(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run python -m itemchest_utils.execute {source}"
    from_py = jupytext.read(source)
    from_ipynb = jupytext.read(paired)
    cells_py = [(c.cell_type, c.source.strip()) for c in from_py.cells]
    cells_ipynb = [(c.cell_type, c.source.strip()) for c in from_ipynb.cells]
    for index, (a, b) in enumerate(zip(cells_py, cells_ipynb)):
        assert a == b, f"cell {index} differs between {source.name} and {paired.name}"
    assert len(cells_py) == len(cells_ipynb), "the two files have different numbers of cells"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_outputs_are_complete_and_error_free(source):
    cells = json.loads(source.with_suffix(".ipynb").read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "some code cells were not executed"
    for cell in code:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"stored error output: {output.get('ename')}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_colab_setup_installs_from_the_configured_repository(source):
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    match = re.search(r'^REPOSITORY = "([^"]+)"', source.read_text(), re.MULTILINE)
    assert match, "the setup cell must define REPOSITORY for the Colab install"
    assert match.group(1) == repository


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_notebook_is_in_the_table_of_contents(source):
    toc = (ROOT / "_toc.yml").read_text()
    assert str(source.relative_to(ROOT).with_suffix("")) in toc
