"""The regenerate command: executes a .py notebook into its .ipynb, and orders every page by dependency."""

import json
from pathlib import Path

import pytest

from itemchest_utils.execute import DEPENDS_ON, execute, pages_in_order, run_order

ROOT = Path(__file__).resolve().parents[1]


def test_execute_writes_the_paired_notebook_with_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_PROFILE", "smoke")
    source = tmp_path / "demo.py"
    source.write_text("# %% [markdown]\n# # Demo\n\n# %%\nimport os\nprint('profile', os.environ['ITEMCHEST_PROFILE'],"
                      " os.environ['ITEMCHEST_PROGRESS'])\n")
    seconds = execute(source, timeout=120)
    cells = json.loads(source.with_suffix(".ipynb").read_text())["cells"]
    assert seconds > 0 and [c["cell_type"] for c in cells] == ["markdown", "code"]
    assert "".join(cells[1]["outputs"][0]["text"]) == "profile smoke off\n"


def test_a_failing_notebook_keeps_its_outputs_beside_it_and_leaves_the_page_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_PROFILE", "smoke")
    source = tmp_path / "demo.py"
    source.write_text("# %%\nprint('measured 0.42')\n\n# %%\nassert False, 'gate'\n")
    with pytest.raises(Exception, match="gate"):
        execute(source, timeout=120)
    assert not source.with_suffix(".ipynb").exists()
    cells = json.loads((tmp_path / "demo.failed.ipynb").read_text())["cells"]
    assert "".join(cells[0]["outputs"][0]["text"]) == "measured 0.42\n"


def test_execute_refuses_what_is_not_a_py_notebook(tmp_path):
    with pytest.raises(ValueError, match="source of truth"):
        execute(tmp_path / "demo.ipynb")
    with pytest.raises(FileNotFoundError, match="_toc.yml"):
        execute(tmp_path / "missing.py")


def test_every_page_runs_after_the_pages_it_reads():
    order = [str(path.relative_to(ROOT).with_suffix("")) for path in pages_in_order(ROOT)]
    assert order and all(path.exists() for path in pages_in_order(ROOT))
    for page, needs in DEPENDS_ON.items():
        if page in order:
            assert all(order.index(need) < order.index(page) for need in needs)


def test_a_page_listed_before_the_page_it_reads_runs_after_it(tmp_path):
    (tmp_path / "_toc.yml").write_text("parts:\n  - chapters:\n      - file: notebooks/gan/discogan\n"
                                       "      - file: notebooks/vae/vae\n      - file: notebooks/gan/cyclegan\n")
    order = [path.relative_to(tmp_path).as_posix() for path in pages_in_order(tmp_path)]
    assert order == ["notebooks/gan/cyclegan.py", "notebooks/gan/discogan.py", "notebooks/vae/vae.py"]


def test_a_dependency_missing_from_the_toc_or_a_cycle_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="does not list"):
        run_order(["notebooks/gan/discogan"])
    monkeypatch.setitem(DEPENDS_ON, "notebooks/gan/cyclegan", ["notebooks/gan/discogan"])
    with pytest.raises(ValueError, match="cycle"):
        run_order(["notebooks/gan/cyclegan", "notebooks/gan/discogan"])
