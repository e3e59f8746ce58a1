"""The site extension's directives, on a small project of their own: what they read from the results files, and
the clear build warnings (errors under -W) for a missing results file, a broken one and a page without a figure."""

import base64
import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import itemchest_site  # noqa: E402
from itemchest_site import (CARD_SIZE, LIKELIHOODS, ResultsFileError, card_thumbnail,  # noqa: E402
                            likelihood_rows, page_results, sampler_points)
from PIL import Image  # noqa: E402


def png_base64(width: int, height: int, colour=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def row(key, value, **extra):
    return {"key": key, "metric": key, "value": value, "data": "digits", "steps": 10, "wall_time_s": 1,
            "device": "cpu", "paper": None, **extra}


def project(tmp_path, pages: dict[str, list[dict] | str | None], figure: bool = True, crop=None) -> Path:
    """A repository with one toc part listing ``pages`` (page stem → rows, raw file text, or None for no file)."""
    toc = {"format": "jb-book", "root": "index",
           "parts": [{"caption": "Family", "chapters": [{"file": f"notebooks/f/{stem}"} for stem in pages]}]}
    (tmp_path / "_toc.yml").write_text(json.dumps(toc))
    (tmp_path / "results" / "book").mkdir(parents=True)
    (tmp_path / "notebooks" / "f").mkdir(parents=True)
    for stem, rows in pages.items():
        if rows is not None:
            text = rows if isinstance(rows, str) else json.dumps({"notebook": stem, "profile": "book", "rows": rows})
            (tmp_path / "results" / "book" / f"{stem}.json").write_text(text)
        outputs = [{"output_type": "display_data", "metadata": {}, "data": {"image/png": png_base64(1600, 400)}}]
        metadata = {"tags": ["landing-figure"] if figure else []} | ({"landing_crop": crop} if crop else {})
        cell = {"cell_type": "code", "metadata": metadata, "source": "", "outputs": outputs, "execution_count": 1}
        notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": f"# {stem}"}, cell],
                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (tmp_path / "notebooks" / "f" / f"{stem}.ipynb").write_text(json.dumps(notebook))
    return tmp_path


def build_warnings(tmp_path, monkeypatch, directive: str) -> str:
    """Build a one-page Sphinx site that uses ``directive`` against the project in ``tmp_path``; its warnings."""
    from sphinx.application import Sphinx

    monkeypatch.setattr(itemchest_site, "ROOT", tmp_path)
    source = tmp_path / "site"
    source.mkdir(exist_ok=True)
    (source / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
                                    "extensions = ['itemchest_site']\n")
    (source / "index.rst").write_text(f"Test\n====\n\n.. {directive}::\n")
    warnings = io.StringIO()
    Sphinx(str(source), str(source), str(tmp_path / "out"), str(tmp_path / "doctrees"), "html",
           status=None, warning=warnings, freshenv=True).build()
    return warnings.getvalue()


def test_likelihood_rows_turn_log_likelihoods_into_nlls_and_name_missing_keys(tmp_path):
    root = project(tmp_path, {"vae": [row("test_iwae", -103.8)], "pixelcnn": [row("nll_nats_gated", 85.0)]})
    found, missing = likelihood_rows(page_results(root))
    values = {entry[2]: entry[5] * r["value"] for _, r, entry in found}
    assert values == {"test_iwae": pytest.approx(103.8), "nll_nats_gated": 85.0}
    assert "vae: test_elbo" in missing and "pixelcnn: nll_nats_plain" in missing
    assert not any(name.startswith("glow") for name in missing)  # a page that is not in the toc is not missing
    assert {section for section, *_ in LIKELIHOODS} == set(itemchest_site.LIKELIHOOD_UNITS)


def test_sampler_points_read_evaluation_counts_from_keys(tmp_path):
    root = project(tmp_path, {"ddpm": [row("fid", 61.0), row("bound_bits_per_dim", 2.1)],
                              "ddim": [row("fid_eta0_s100", 178.5), row("fid_eta0_s10", 225.2),
                                       row("inversion_mse_s10", 0.05)]})
    curves = dict(sampler_points(page_results(root)))
    assert curves["DDPM ancestral (DDPM network)"] == [(1000, 61.0)]
    assert curves["DDIM, η = 0 (DDPM network)"] == [(10, 225.2), (100, 178.5)]
    assert len(curves) == 2


def test_a_broken_results_file_is_a_clear_error(tmp_path):
    root = project(tmp_path, {"ddpm": "{not json"})
    with pytest.raises(ResultsFileError, match=r"results/book/ddpm.json is not a results file.*book profile"):
        page_results(root)


def test_site_warns_about_a_missing_results_file(tmp_path, monkeypatch):
    warnings = build_warnings(project(tmp_path, {"ddpm": None}), monkeypatch, "results-table")
    assert "no results file results/book/ddpm.json: run notebooks/f/ddpm.py in the book profile" in warnings


def test_site_warns_about_a_malformed_results_file(tmp_path, monkeypatch):
    warnings = build_warnings(project(tmp_path, {"ddpm": '{"rows": [}'}), monkeypatch, "sampler-comparison")
    assert "results/book/ddpm.json is not a results file" in warnings


def test_site_warns_about_a_page_without_a_landing_figure(tmp_path, monkeypatch):
    warnings = build_warnings(project(tmp_path, {"ddpm": [row("fid", 61.0)]}, figure=False), monkeypatch,
                              "notebook-gallery")
    assert "notebooks/f/ddpm.ipynb has no stored PNG in a cell tagged 'landing-figure'" in warnings


def test_gallery_cards_are_thumbnails_of_the_cropped_figure(tmp_path, monkeypatch):
    root = project(tmp_path, {"ddpm": [row("fid", 61.0)]}, crop=[0.5, 0.0, 1.0, 1.0])
    warnings = build_warnings(root, monkeypatch, "notebook-gallery")
    assert "landing" not in warnings and "card" not in warnings, warnings
    page = (tmp_path / "out" / "index.html").read_text()
    card = page.split('class="itemchest-card"')[1].split('src="data:image/png;base64,')[1].split('"')[0]
    image = Image.open(io.BytesIO(base64.b64decode(card)))
    assert image.size == (CARD_SIZE[0], CARD_SIZE[0] * 400 // 800)     # the right half of 1600×400, shrunk
    assert len(card) < 10_000
    whole = Image.open(io.BytesIO(base64.b64decode(card_thumbnail(png_base64(1600, 400)))))
    assert whole.size == (300, 75)
    (tmp_path / "bad").mkdir()
    bad = project(tmp_path / "bad", {"ddpm": [row("fid", 61.0)]}, crop=[0.5, 0.0, 0.2, 1.0])
    assert "landing_crop [0.5, 0.0, 0.2, 1.0] is not (left, top, right, bottom)" in build_warnings(
        bad, monkeypatch, "notebook-gallery")


def test_site_warns_about_a_missing_likelihood_key_and_draws_the_sampler_figure(tmp_path, monkeypatch):
    root = project(tmp_path, {"ddpm": [row("fid", 61.0)]})
    warnings = build_warnings(root, monkeypatch, "likelihood-table")
    assert "likelihood table: no row with key ddpm: bound_bits_per_dim" in warnings
    assert "sampler comparison" not in build_warnings(root, monkeypatch, "sampler-comparison")
    assert "data:image/png;base64," in (tmp_path / "out" / "index.html").read_text()
