"""The site builds from the stored outputs with no warnings and no network, with math bundled locally."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_site_builds_without_warnings(tmp_path):
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    result = subprocess.run([jupyter_book, "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n",
                             "--keep-going"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    page = (html / "notebooks" / "vae" / "vae.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page, "MathJax must be served locally, not from a CDN"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert "cdn.jsdelivr.net/npm/mathjax" not in page
    assert page.count("<img") >= 5, "the VAE page should show its stored figures"
    assert "colab.research.google.com/github/item-chest/item-chest" in page
    assert (html / "book" / "vae-family.html").exists() and (html / "book" / "references.html").exists()
