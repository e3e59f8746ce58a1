"""The site builds from the stored outputs with no warnings and no network, and works in a real browser.

The browser test opens every page of the built site in headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by `.ci/run`), served from localhost with no network, and checks what a reader sees:
pages load, math is typeset, figures are present, internal links resolve, launch buttons point at the configured
repository. It saves screenshots of the landing page and one notebook page to `_build/test-artifacts/`.
"""

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("ITEMCHEST_ARTIFACTS") or ROOT / "_build" / "test-artifacts")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SKIPPED_PAGES = {"genindex.html", "search.html"}     # Sphinx's own index and search pages


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    result = subprocess.run([jupyter_book, "build", str(ROOT), "--path-output", str(out), "-W", "-n",
                             "--keep-going"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_site_builds_without_warnings(site):
    page = (site / "notebooks" / "vae" / "vae.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page, "MathJax must be served locally, not from a CDN"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert "cdn.jsdelivr.net/npm/mathjax" not in page
    assert page.count("<img") >= 5, "the VAE page should show its stored figures"
    for name in ("vae-family", "gan-family", "flow-family", "diffusion-family", "results", "glossary", "references"):
        assert (site / "book" / f"{name}.html").exists(), name


SMART_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})  # Sphinx's typography


def test_results_page_lists_every_notebook(site):
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from itemchest_site import toc_notebooks

    from itemchest_utils.results import format_row
    page = (site / "book" / "results.html").read_text()
    for docname, _ in toc_notebooks(ROOT):
        stem = docname.rsplit("/", 1)[-1]
        rows = json.loads((ROOT / "results" / "book" / f"{stem}.json").read_text())["rows"]
        assert page.count(f'{docname.split("/", 1)[1]}.html') >= len(rows) + 1, f"{stem}'s rows are missing"
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        flat = re.sub(r"\s+", "", text.translate(SMART_QUOTES))
        for row in rows:  # each row's metric cell followed by its value cell, as the results file has them
            metric, value = (html.unescape(cell.replace("\\|", "|")) for cell in format_row(row)[:2])
            expected = re.sub(r"\s+", "", (metric + value).translate(SMART_QUOTES))
            assert expected in flat, f"{stem}: {metric} = {value} is not on the page"


# ---------------------------------------------------------------- in a browser

def browser_or_skip():
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    message = ("headless Chromium is not installed: `apt-get install chromium chromium-driver` "
               "(.ci/run installs it)")
    if os.environ.get("ITEMCHEST_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def server(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser(server):
    browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # No network beyond localhost: switch off every background connection Chromium would try.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def site_pages(site: Path) -> list[str]:
    pages = []
    for path in sorted(site.rglob("*.html")):
        relative = path.relative_to(site).as_posix()
        if relative.startswith(("_static/", "_sources/", "_images/")) or relative in SKIPPED_PAGES:
            continue
        pages.append(relative)
    return pages


# Everything a reader sees as text, minus code, scripts and typeset math: where raw TeX would show.
VISIBLE_PROSE = """
const clone = document.querySelector('main') ? document.querySelector('main').cloneNode(true)
                                             : document.body.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, mjx-container, .cell_input, .output').forEach(e => e.remove());
return clone.textContent;
"""

WAIT_FOR_MATH = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { done('no-mathjax'); return; }
MathJax.startup.promise.then(() => done('ok')).catch(e => done('error: ' + e));
"""

IMAGES = """
return Array.from(document.images).map(img => [img.currentSrc || img.src, img.complete, img.naturalWidth]);
"""

LINKS = "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"

# A Markdown table that was not rendered shows as a paragraph of pipes (Sphinx turns its --- into dashes).
RAW_TABLES = """
return Array.from(document.querySelectorAll('p, .output pre'))
  .filter(e => e.offsetParent !== null)
  .map(e => e.textContent.trim())
  .filter(t => t.startsWith('|') && /\\|\\s*[-\\u2013\\u2014]+\\s*\\|/.test(t))
  .map(t => t.slice(0, 120));
"""

# Rule for wide content, checked at 1,280 px: a code or output block whose content is wider than its box must
# scroll (a scrollbar the reader can use, not clipped), and by at most 32% of its width: a code line of 100
# characters (a wide glyph or two included) scrolls by 30–32% in the 672-px code box; a wider block hides too much.
OVERFLOWING_BLOCKS = """
return Array.from(document.querySelectorAll('div.cell_input pre, div.cell_output pre, div.cell_output table'))
  .filter(e => e.offsetParent !== null && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
  .filter(e => !['auto', 'scroll'].includes(getComputedStyle(e).overflowX) || e.scrollWidth > 1.32 * e.clientWidth)
  .map(e => [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX, e.textContent.trim().slice(0, 80)]);
"""
# A figure drawn at less than 45% of its natural width has text too small to read (a 1,800-px figure in 676 px).
SHRUNK_IMAGES = """
return Array.from(document.images)
  .filter(img => img.offsetParent !== null && img.naturalWidth > 200 && img.clientWidth < 0.45 * img.naturalWidth)
  .map(img => [img.clientWidth, img.naturalWidth, (img.currentSrc || img.src).slice(0, 80)]);
"""

RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|(?<![\w$])\$[^$\s][^$\n]{0,200}?[^$\s\\]\$(?![\w$])")


def check_page(driver, server: str, site: Path, relative: str) -> list[str]:
    problems = []
    driver.get(f"{server}/{relative}")
    if not driver.title or "404" in driver.title:
        return [f"{relative}: did not load (title {driver.title!r})"]
    driver.set_script_timeout(60)
    math = driver.execute_async_script(WAIT_FOR_MATH)
    if math.startswith("error"):
        problems.append(f"{relative}: MathJax failed: {math}")
    prose = driver.execute_script(VISIBLE_PROSE)
    raw = RAW_MATH.search(prose)
    if raw:
        problems.append(f"{relative}: raw TeX on the page: {prose[max(0, raw.start() - 40):raw.end() + 40]!r}")
    for table in driver.execute_script(RAW_TABLES):
        problems.append(f"{relative}: a table shown as raw Markdown: {table!r}")
    errors = driver.execute_script("return document.querySelectorAll('mjx-merror').length;")
    if errors:
        problems.append(f"{relative}: {errors} MathJax error(s)")
    for wide, box, overflow, text in driver.execute_script(OVERFLOWING_BLOCKS):
        problems.append(f"{relative}: a block {wide} px wide in a {box}-px box (overflow {overflow}): {text!r}")
    for drawn, natural, src in driver.execute_script(SHRUNK_IMAGES):
        problems.append(f"{relative}: an image drawn {drawn} px wide of its {natural} px: {src!r}")
    for src, complete, width in driver.execute_script(IMAGES):
        if not complete or width == 0:
            problems.append(f"{relative}: image not shown: {src[:120]}")
    for href in driver.execute_script(LINKS):
        parts = urlsplit(href)
        if not href.startswith(server):
            continue
        target = site / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"{relative}: broken link {href}")
        elif parts.fragment and target.suffix == ".html":
            text = target.read_text(errors="replace")
            if f'id="{unquote(parts.fragment)}"' not in text:
                problems.append(f"{relative}: link to a missing anchor {href}")
    return problems


def test_every_page_works_in_a_browser(site, server, browser):
    pages = site_pages(site)
    assert len(pages) >= 10, pages
    problems = []
    for relative in pages:
        problems += check_page(browser, server, site, relative)
    assert not problems, "\n".join(problems)


def test_math_is_typeset(site, server, browser):
    browser.get(f"{server}/notebooks/vae/vae.html")
    assert browser.execute_async_script(WAIT_FOR_MATH) == "ok"
    assert browser.execute_script("return document.querySelectorAll('mjx-container').length;") > 20


def test_launch_buttons_point_at_the_configured_repository(site, server, browser):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository, branch = config["repository"]["url"].rstrip("/"), config["repository"]["branch"]
    owner_and_name = urlsplit(repository).path.strip("/")
    browser.get(f"{server}/notebooks/vae/vae.html")
    links = browser.execute_script(LINKS)
    colab = [href for href in links if href.startswith("https://colab.research.google.com/")]
    assert colab == [f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/notebooks/vae/vae.ipynb"]
    binder = [href for href in links if href.startswith("https://mybinder.org/")]
    assert binder and all(owner_and_name in href for href in binder)
    assert repository in links, "the repository button should link to the configured repository"


def test_screenshots_of_the_landing_page_and_a_notebook(site, server, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 2000)        # tall enough for the whole gallery of the landing page
    for name, page in (("landing", "book/intro.html"), ("notebook-vae", "notebooks/vae/vae.html")):
        browser.get(f"{server}/{page}")
        browser.execute_async_script(WAIT_FOR_MATH)
        path = ARTIFACTS / f"{name}.png"
        assert browser.save_screenshot(str(path))
        assert path.stat().st_size > 20_000, f"{path} looks blank"
    browser.get(f"{server}/book/intro.html")
    cards = browser.execute_script(
        "return Array.from(document.querySelectorAll('.itemchest-card img')).map(i => i.naturalWidth);")
    assert len(cards) == len(list(ROOT.glob("notebooks/*/*.ipynb"))) and all(cards), cards
    browser.set_window_size(1280, 900)


def test_every_reference_links_to_its_paper():
    entries = re.split(r"\n(?=@)", (ROOT / "book" / "references.bib").read_text())
    keys = [re.match(r"\s*@\w+\{([^,]+),", entry).group(1) for entry in entries if entry.strip()]
    unlinked = [key for key, entry in zip(keys, [e for e in entries if e.strip()])
                if not re.search(r"^\s*url\s*=\s*\{https://", entry, re.MULTILINE)]
    assert len(keys) == len(set(keys)), "a key appears twice in references.bib"
    assert not unlinked, f"entries without a url to the paper (arXiv or DOI): {unlinked}"
