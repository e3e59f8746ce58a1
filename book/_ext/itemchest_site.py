"""Site directives built from the stored runs, so the site cannot drift from them.

``results-table``: one table of every notebook's headline numbers, read from ``results/book/<notebook>.json``
(written by ``itemchest_utils.record_results`` during each notebook's `book` run).
``notebook-gallery``: one card per notebook with the figure its cell tagged ``landing-figure`` stored.
``likelihood-table``: every page's likelihood on the shared held-out digits (``LIKELIHOODS``, by stable keys).
``sampler-comparison``: FID against network evaluations for every sampler that recorded it (``SAMPLER_CURVES``).
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


def toc_notebooks(root: Path | None = None) -> list[tuple[str, str]]:
    """(docname, part caption) of every notebook page in ``_toc.yml``, in reading order."""
    root = root or ROOT
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


def landing_crop(notebook: dict) -> tuple[float, float, float, float] | None:
    """The part of the landing figure a gallery card shows, as fractions (left, top, right, bottom) of its size:
    the tagged cell's ``landing_crop`` metadata (the samples, without titles and axes), else the whole figure."""
    for cell in notebook["cells"]:
        metadata = cell.get("metadata", {})
        if LANDING_TAG in metadata.get("tags", []) and "landing_crop" in metadata:
            left, top, right, bottom = (float(v) for v in metadata["landing_crop"])
            if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
                raise ValueError(f"landing_crop {metadata['landing_crop']} is not (left, top, right, bottom) "
                                 "fractions of the figure with left < right and top < bottom")
            return left, top, right, bottom
    return None


CARD_SIZE = (300, 200)   # twice the card's drawn height: sharp, and a small fraction of the full figure's bytes


def card_thumbnail(png_base64: str, crop: tuple[float, float, float, float] | None = None) -> str:
    """A small PNG (base64) of the landing figure, cropped to ``crop``, that fits ``CARD_SIZE``."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(png_base64))).convert("RGB")
    if crop is not None:
        width, height = image.size
        image = image.crop((round(crop[0] * width), round(crop[1] * height),
                            round(crop[2] * width), round(crop[3] * height)))
    image.thumbnail(CARD_SIZE, Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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


def readme_pages_table(root: Path | None = None) -> str:
    """The README's table of every page: family, page, paper, what it trains, its headline `book` number."""
    root = root or ROOT
    lines = ["| family | page | paper | trains here (`book`) | headline result (`book`) |",
             "| --- | --- | --- | --- | --- |"]
    results = page_results(root)
    for docname, caption in toc_notebooks(root):
        notebook = json.loads((root / f"{docname}.ipynb").read_text())
        paper = _header_field(notebook, "Paper", "Papers")
        trains = re.sub(r"\[([^\]]*)\]\([^)]*\.ipynb\)", r"\1", _header_field(notebook, "Trains here"))
        rows = results.get(docname.rsplit("/", 1)[-1], [])
        headline = "; ".join(": ".join(format_row(row)[:2]) for row in headline_rows(rows)) or "—"
        lines.append(f"| {caption} | [{notebook_title(notebook)}]({docname}.ipynb) | {paper} | {trains} | {headline} |")
    return "\n".join(lines)


def readme_figure(root: Path | None = None) -> bytes:
    root = root or ROOT
    notebook = json.loads((root / f"{README_FIGURE_PAGE}.ipynb").read_text())
    return base64.b64decode(landing_figure(notebook))


def write_readme_table(root: Path | None = None) -> bool:
    """Replace the table between the README's markers and its picture; return whether either changed."""
    root = root or ROOT
    figure = root / README_FIGURE
    changed = not figure.exists() or figure.read_bytes() != readme_figure(root)
    figure.write_bytes(readme_figure(root))
    readme = root / "README.md"
    text = readme.read_text()
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    updated = text[:start] + "\n" + readme_pages_table(root) + "\n" + text[end:]
    readme.write_text(updated)
    return changed or updated != text


def markdown_table(directive: SphinxDirective, lines: list[str]) -> nodes.container:
    container = nodes.container(classes=["itemchest-results"])
    directive.state.nested_parse(StringList(lines, source="results-table"), directive.content_offset, container)
    return container


def read_results_or_warn(directive: SphinxDirective) -> dict[str, list[dict]] | None:
    """Every page's rows, each results file noted as a dependency; a broken file is a build warning (an error
    under -W) naming it, and None."""
    for docname, _ in toc_notebooks():
        directive.env.note_dependency(str(ROOT / "results" / "book" / f"{docname.rsplit('/', 1)[-1]}.json"))
    try:
        return page_results()
    except ResultsFileError as error:
        directive.reporter.warning(str(error), line=directive.lineno)
        return None


class ResultsTable(SphinxDirective):
    """A headline table (each page's first row, or the rows it marks ``headline``), then every page's full rows
    in a collapsed section of their own."""

    HEADER = ["| page | metric | value | paper | data | steps | wall time | device |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def run(self):
        results = read_results_or_warn(self)
        if results is None:
            return []
        pages = []
        for docname, _ in toc_notebooks():
            stem = docname.rsplit("/", 1)[-1]
            if stem not in results:
                self.reporter.warning(f"no results file results/book/{stem}.json: run {docname}.py in the "
                                      "book profile (it calls icu.record_results)", line=self.lineno)
                continue
            pages.append((docname, stem, results[stem]))
        headline = list(self.HEADER)
        for docname, stem, rows in pages:
            headline += ["| " + " | ".join([f"{{doc}}`{stem} </{docname}>`", *format_row(row)]) + " |"
                         for row in headline_rows(rows)]
        result = [markdown_table(self, headline)]
        for docname, stem, rows in pages:
            lines = self.HEADER + ["| " + " | ".join([f"{{doc}}`{stem} </{docname}>`", *format_row(row)]) + " |"
                                   for row in rows]
            summary = f"{html.escape(stem)}: all {len(rows)} numbers"
            result += [nodes.raw("", f'<details class="itemchest-page-results"><summary>{summary}</summary>',
                                 format="html"),
                       markdown_table(self, lines), nodes.raw("", "</details>", format="html")]
        return result


# The likelihood table: every page that scores the shared held-out digits, by stable result keys.
# (section, page, key, model, what the number is, sign that turns the stored value into a negative log-likelihood)
LIKELIHOODS = [
    ("binarized", "vae", "test_iwae", "VAE (z = 20)", "importance-weighted estimate (a bound, tight as k grows)", -1),
    ("binarized", "vae", "test_elbo", "VAE (z = 20)", "−ELBO: upper bound", -1),
    ("binarized", "draw", "neg_elbo_draw_attention", "DRAW with attention", "−ELBO: upper bound", 1),
    ("binarized", "draw", "neg_elbo_draw_no_attention", "DRAW without attention", "−ELBO: upper bound", 1),
    ("binarized", "pixelcnn", "nll_nats_plain", "PixelCNN", "exact", 1),
    ("binarized", "pixelcnn", "nll_nats_gated", "Gated PixelCNN", "exact", 1),
    ("binarized", "vqvae", "bound_nats", "VQ-VAE + PixelCNN prior", "upper bound (deterministic encoder)", 1),
    ("8-bit", "glow", "test_bits_per_dim", "Glow", "exact density of dequantised digits: upper bound", 1),
    ("8-bit", "ddpm", "bound_bits_per_dim", "DDPM", "variational bound: upper bound", 1),
    ("8-bit", "flow_matching", "bits_per_dim", "flow matching", "ODE density of dequantised digits: upper bound", 1),
    ("8-bit", "score_sde", "bits_per_dim", "VP probability-flow ODE (DDPM network)",
     "ODE density of dequantised digits: upper bound", 1),
]
LIKELIHOOD_UNITS = {"binarized": "nats per digit", "8-bit": "bits per dimension"}

# The sampler comparison: (label, page, key pattern whose number is the count of network evaluations).
SAMPLER_CURVES = [
    ("DDPM ancestral (DDPM network)", "ddpm", r"fid()"),
    ("DDIM, η = 0 (DDPM network)", "ddim", r"fid_eta0_s(\d+)"),
    ("DDIM, η = 1 (DDPM network)", "ddim", r"fid_eta1_s(\d+)"),
    ("flow matching, Euler", "flow_matching", r"fid_euler_nfe(\d+)"),
    ("flow matching, Heun", "flow_matching", r"fid_heun_nfe(\d+)"),
    ("VP reverse SDE, Euler–Maruyama (DDPM network)", "score_sde", r"fid_vp_em_nfe(\d+)"),
    ("VP predictor–corrector (DDPM network)", "score_sde", r"fid_vp_pc_nfe(\d+)"),
    ("VP probability-flow ODE (DDPM network)", "score_sde", r"fid_vp_ode_nfe(\d+)"),
    ("EDM's Heun sampler, ρ = 7 steps (DDPM network)", "score_sde", r"fid_ddpm_edm_heun_nfe(\d+)"),
    ("EDM, Heun (EDM network)", "score_sde", r"fid_edm_heun_nfe(\d+)"),
]
DDPM_STEPS = 1000  # the DDPM page's ancestral sampler: one network evaluation per step


class ResultsFileError(ValueError):
    pass


def page_results(root: Path | None = None) -> dict[str, list[dict]]:
    """Each toc page's stored `book` rows by page stem (pages without a results file are absent); a file that is
    not valid JSON, or has no rows, is a clear error."""
    root = root or ROOT
    found = {}
    for docname, _ in toc_notebooks(root):
        stem = docname.rsplit("/", 1)[-1]
        path = root / "results" / "book" / f"{stem}.json"
        if not path.exists():
            continue
        try:
            found[stem] = json.loads(path.read_text())["rows"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ResultsFileError(f"{path.relative_to(root)} is not a results file ({error!r}): run {docname}.py "
                                   "in the book profile to rewrite it") from error
    return found


def _keyed(rows: list[dict]) -> dict[str, dict]:
    return {row["key"]: row for row in rows if row.get("key")}


def likelihood_rows(results: dict[str, list[dict]]) -> tuple[list[tuple[str, dict, tuple]], list[str]]:
    """([(section, row, LIKELIHOODS entry)], [missing "page: key"]) for the pages present in ``results``."""
    found, missing = [], []
    for entry in LIKELIHOODS:
        section, page, key = entry[:3]
        if page not in results:
            continue
        row = _keyed(results[page]).get(key)
        if row is None:
            missing.append(f"{page}: {key}")
        else:
            found.append((section, row, entry))
    return found, missing


def sampler_points(results: dict[str, list[dict]]) -> list[tuple[str, list[tuple[int, float]]]]:
    """(label, [(network evaluations, FID)] sorted by evaluations) for each curve with at least one number."""
    curves = []
    for label, page, pattern in SAMPLER_CURVES:
        points = []
        for key, row in _keyed(results.get(page, [])).items():
            match = re.fullmatch(pattern, key)
            if match and row.get("value") is not None:
                points.append((int(match.group(1) or DDPM_STEPS), float(row["value"])))
        if points:
            curves.append((label, sorted(points)))
    return curves


def sampler_figure_png(curves) -> bytes:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 4.6))
    markers = "osD^v<>ph*"
    for k, (label, points) in enumerate(curves):
        nfe, fid = zip(*points)
        ax.plot(nfe, fid, marker=markers[k % len(markers)], linestyle="-" if len(points) > 1 else "none",
                label=label)
    ax.set(xscale="log", yscale="log", xlabel="network evaluations per sample",
           ylabel="FID (MNIST-classifier features)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


class LikelihoodTable(SphinxDirective):
    """Every page's likelihood on the shared held-out digits, one table per kind of data."""

    def run(self):
        results = read_results_or_warn(self)
        if results is None:
            return []
        rows, missing = likelihood_rows(results)
        for name in missing:
            self.reporter.warning(f"likelihood table: no row with key {name}; re-run that page in the book profile",
                                  line=self.lineno)
        docnames = {docname.rsplit("/", 1)[-1]: docname for docname, _ in toc_notebooks()}
        result = []
        for section, unit in LIKELIHOOD_UNITS.items():
            lines = [f"| page | model | {unit} (lower is better) | what it is | data | steps | wall time |",
                     "| --- | --- | --- | --- | --- | --- | --- |"]
            for row_section, row, (_, page, _, model, kind, sign) in rows:
                if row_section == section:
                    value = format_row({**row, "value": sign * row["value"]})[1]
                    data, steps, wall = format_row(row)[3:6]
                    lines.append(f"| {{doc}}`{page} </{docnames[page]}>` | {model} | {value} | {kind} | {data} "
                                 f"| {steps} | {wall} |")
            if len(lines) > 2:
                result.append(nodes.rubric(text=f"{section} held-out digits, {unit}"))
                result.append(markdown_table(self, lines))
        return result


class SamplerComparison(SphinxDirective):
    """FID against network evaluations for every sampler that scored the digits, as a figure and a table."""

    def run(self):
        results = read_results_or_warn(self)
        if results is None:
            return []
        curves = sampler_points(results)
        if not curves:
            self.reporter.warning("sampler comparison: no page has recorded FID against evaluations",
                                  line=self.lineno)
            return []
        png = base64.b64encode(sampler_figure_png(curves)).decode()
        figure = nodes.raw("", f'<img class="itemchest-figure" src="data:image/png;base64,{png}" alt="FID '
                               'against network evaluations per sample for each sampler of the diffusion and '
                               'flow families">', format="html")
        counts = sorted({n for _, points in curves for n, _ in points})
        lines = ["| sampler | " + " | ".join(str(n) for n in counts) + " |",
                 "| --- | " + " | ".join("---" for _ in counts) + " |"]
        for label, points in curves:
            by_count = dict(points)
            lines.append(f"| {label} | " + " | ".join(f"{by_count[n]:.4g}" if n in by_count else "—"
                                                      for n in counts) + " |")
        return [figure, markdown_table(self, lines)]


class NotebookGallery(SphinxDirective):
    def run(self):
        here = posixpath.dirname(self.env.docname)
        cards = []
        for docname, caption in toc_notebooks():
            path = ROOT / f"{docname}.ipynb"
            self.env.note_dependency(str(path))
            try:
                notebook = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as error:
                self.reporter.warning(f"{docname}.ipynb cannot be read ({error!r}): restore it from git or re-run "
                                      f"{docname}.py in the book profile", line=self.lineno)
                continue
            png = landing_figure(notebook)
            if png is None:
                self.reporter.warning(f"{docname}.ipynb has no stored PNG in a cell tagged {LANDING_TAG!r}",
                                      line=self.lineno)
                continue
            try:
                png = card_thumbnail(png, landing_crop(notebook))
            except (ValueError, OSError) as error:   # a bad crop, or stored bytes that are not a PNG
                self.reporter.warning(f"{docname}.ipynb: its landing figure cannot be made a card: {error}",
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
    app.add_directive("likelihood-table", LikelihoodTable)
    app.add_directive("sampler-comparison", SamplerComparison)
    app.add_css_file("itemchest.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    # `python book/_ext/itemchest_site.py`: refresh the README's table of pages from the stored runs.
    print("README table " + ("updated" if write_readme_table() else "already up to date"))
