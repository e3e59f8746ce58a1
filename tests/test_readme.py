"""The README's table of pages and its picture are the ones generated from the stored runs."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from itemchest_site import (README_END, README_FIGURE, README_START, readme_figure,  # noqa: E402
                            readme_pages_table, toc_notebooks)

FIX = "run `.venv/bin/python book/_ext/itemchest_site.py` to regenerate it"


def test_readme_table_lists_every_page_with_its_stored_headline():
    text = (ROOT / "README.md").read_text()
    block = text[text.index(README_START) + len(README_START):text.index(README_END)].strip()
    assert block == readme_pages_table(ROOT), f"the README's table of pages is out of date: {FIX}"
    assert len(block.splitlines()) == 2 + len(toc_notebooks(ROOT))


def test_readme_picture_is_the_stored_landing_figure():
    assert (ROOT / README_FIGURE).read_bytes() == readme_figure(ROOT), f"the README's picture is out of date: {FIX}"


def test_the_repository_url_is_the_configured_one_everywhere():
    """The repository URL lives in `_config.yml`; the Colab cells, the citation file and the prose must agree."""
    import re

    import yaml

    configured = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    project = configured.rstrip("/").rsplit("/", 1)[-1]
    files = [ROOT / "README.md", ROOT / "CITATION.cff", *ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*/*.py")]
    pattern = re.compile(rf"https://github\.com/[\w.-]+/{re.escape(project)}(?=[/\s\"')\]]|$)")
    found = {match.group(0) for path in files for match in pattern.finditer(path.read_text())}
    assert found and found == {configured}, f"URLs {sorted(found - {configured})} differ from _config.yml's {configured}"
