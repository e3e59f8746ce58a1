"""Site directives built from the stored runs, so the site cannot drift from them.

``results-table``: one table of every notebook's headline numbers, read from ``results/book/<notebook>.json``
(written by ``itemchest_utils.record_results`` during each notebook's `book` run).
``notebook-gallery``: one card per notebook with the figure its cell tagged ``landing-figure`` stored.
Both list the notebooks in the order of ``_toc.yml``; a notebook without a results file or a tagged figure is a
build warning, and the site is built with warnings as errors.
"""

from __future__ import annotations

import base64
import html
import json
import posixpath
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

from itemchest_utils.results import format_row

ROOT = Path(__file__).resolve().parents[2]
LANDING_TAG = "landing-figure"


def toc_notebooks(root: Path = ROOT) -> list[tuple[str, str]]:
    """(docname, part caption) of every notebook page in ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = []

    def walk(entries, caption):
        for entry in entries or []:
            name = entry.get("file", "")
            if name.startswith("notebooks/"):
                found.append((name, caption))
            walk(entry.get("sections"), caption)
            walk(entry.get("chapters"), caption)

    for part in toc.get("parts", []):
        walk(part.get("chapters"), part.get("caption", ""))
    return found


def notebook_title(notebook: dict) -> str:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "?"


def landing_figure(notebook: dict) -> str | None:
    """The base64 PNG stored by the notebook's cell tagged ``landing-figure``."""
    for cell in notebook["cells"]:
        if LANDING_TAG in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    return "".join(png).replace("\n", "")
    return None


def headline_rows(rows: list[dict]) -> list[dict]:
    """The rows a page marks ``headline``, or its first row."""
    return [row for row in rows if row.get("headline")] or rows[:1]


def _header_field(notebook: dict, *names: str) -> str:
    """A cell of the two-column table at the top of a page (``| **Paper** | … |``), without citations."""
    for line in "".join(notebook["cells"][0]["source"]).splitlines():
        for name in names:
            prefix = f"| **{name}** |"
            if line.startswith(prefix):
                return re.sub(r"\s*\{cite\}`[^`]*`", "", line[len(prefix):].rstrip(" |")).strip()
    return ""


README_START, README_END = "<!-- pages-table -->", "<!-- /pages-table -->"
README_FIGURE_PAGE = "notebooks/diffusion/ddpm"  # its landing figure is the README's picture
README_FIGURE = "book/_static/readme-figure.png"


def readme_pages_table(root: Path = ROOT) -> str:
    """The README's table of every page: family, page, paper, what it trains, its headline `book` number."""
    lines = ["| family | page | paper | trains here (`book`) | headline result (`book`) |",
             "| --- | --- | --- | --- | --- |"]
    for docname, caption in toc_notebooks(root):
        notebook = json.loads((root / f"{docname}.ipynb").read_text())
        paper = _header_field(notebook, "Paper", "Papers")
        trains = re.sub(r"\[([^\]]*)\]\([^)]*\.ipynb\)", r"\1", _header_field(notebook, "Trains here"))
        path = root / "results" / "book" / f"{docname.rsplit('/', 1)[-1]}.json"
        rows = json.loads(path.read_text())["rows"] if path.exists() else []
        headline = "; ".join(": ".join(format_row(row)[:2]) for row in headline_rows(rows)) or "—"
        lines.append(f"| {caption} | [{notebook_title(notebook)}]({docname}.ipynb) | {paper} | {trains} | {headline} |")
    return "\n".join(lines)


def readme_figure(root: Path = ROOT) -> bytes:
    notebook = json.loads((root / f"{README_FIGURE_PAGE}.ipynb").read_text())
    return base64.b64decode(landing_figure(notebook))


def write_readme_table(root: Path = ROOT) -> bool:
    """Replace the table between the README's markers and its picture; return whether either changed."""
    figure = root / README_FIGURE
    changed = not figure.exists() or figure.read_bytes() != readme_figure(root)
    figure.write_bytes(readme_figure(root))
    readme = root / "README.md"
    text = readme.read_text()
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    updated = text[:start] + "\n" + readme_pages_table(root) + "\n" + text[end:]
    readme.write_text(updated)
    return changed or updated != text


class ResultsTable(SphinxDirective):
    """A headline table (each page's first row, or the rows it marks ``headline``), then every page's full rows
    in a collapsed section of their own."""

    HEADER = ["| page | metric | value | paper | data | steps | wall time | device |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def table(self, lines: list[str]) -> nodes.container:
        container = nodes.container(classes=["itemchest-results"])
        self.state.nested_parse(StringList(lines, source="results-table"), self.content_offset, container)
        return container

    def run(self):
        pages = []
        for docname, _ in toc_notebooks():
            stem = docname.rsplit("/", 1)[-1]
            path = ROOT / "results" / "book" / f"{stem}.json"
            self.env.note_dependency(str(path))
            if not path.exists():
                self.reporter.warning(f"no results file {path.relative_to(ROOT)}: run {docname}.py in the "
                                      "book profile (it calls icu.record_results)", line=self.lineno)
                continue
            pages.append((docname, stem, json.loads(path.read_text())["rows"]))
        headline = list(self.HEADER)
        for docname, stem, rows in pages:
            headline += ["| " + " | ".join([f"{{doc}}`{stem} </{docname}>`", *format_row(row)]) + " |"
                         for row in headline_rows(rows)]
        result = [self.table(headline)]
        for docname, stem, rows in pages:
            lines = self.HEADER + ["| " + " | ".join([f"{{doc}}`{stem} </{docname}>`", *format_row(row)]) + " |"
                                   for row in rows]
            summary = f"{html.escape(stem)}: all {len(rows)} numbers"
            result += [nodes.raw("", f'<details class="itemchest-page-results"><summary>{summary}</summary>',
                                 format="html"),
                       self.table(lines), nodes.raw("", "</details>", format="html")]
        return result


class NotebookGallery(SphinxDirective):
    def run(self):
        here = posixpath.dirname(self.env.docname)
        cards = []
        for docname, caption in toc_notebooks():
            path = ROOT / f"{docname}.ipynb"
            self.env.note_dependency(str(path))
            notebook = json.loads(path.read_text())
            png = landing_figure(notebook)
            if png is None:
                self.reporter.warning(f"{docname}.ipynb has no stored PNG in a cell tagged {LANDING_TAG!r}",
                                      line=self.lineno)
                continue
            href = posixpath.relpath(docname, here) + ".html"
            title = html.escape(notebook_title(notebook))
            cards.append(f'<a class="itemchest-card" href="{href}"><img src="data:image/png;base64,{png}" '
                         f'alt="A figure from the page {title}"><span class="itemchest-card-family">'
                         f'{html.escape(caption)}</span><span class="itemchest-card-title">{title}</span></a>')
        return [nodes.raw("", '<div class="itemchest-gallery">' + "".join(cards) + "</div>", format="html")]


def expand_navigation(app, config):
    """The sidebar shows every family with its papers at a glance. (Set here rather than in ``_config.yml``,
    where an ``html_theme_options`` entry would replace the launch-button options Jupyter Book puts there.)"""
    config.html_theme_options["show_navbar_depth"] = 2


def setup(app):
    app.connect("config-inited", expand_navigation)
    app.add_directive("results-table", ResultsTable)
    app.add_directive("notebook-gallery", NotebookGallery)
    app.add_css_file("itemchest.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    # `python book/_ext/itemchest_site.py`: refresh the README's table of pages from the stored runs.
    print("README table " + ("updated" if write_readme_table() else "already up to date"))
