"""Each notebook's headline numbers: a small JSON file written during its run, and the same numbers shown as a table.

The site's results page is built from the `book` files (``results/book/<notebook>.json`` at the repository root);
a test checks that the table stored in each notebook's outputs equals its file, so the page cannot drift from the
stored runs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .dry_run import dry_run_steps
from .distributed import rank
from .profiles import active_profile, check_profile
from .runtime import output_dir

RESULTS_MIME = "application/vnd.itemchest.results+json"
RESULTS_VARIABLE = "ITEMCHEST_RESULTS"
REQUIRED_FIELDS = ("metric", "value", "data", "steps", "wall_time_s", "device")
OPTIONAL_FIELDS = ("key", "paper", "note", "headline")
KEY_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def repository_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding the book's ``_toc.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def results_dir(profile: str | None = None) -> Path:
    """Where results files go: ``$ITEMCHEST_RESULTS/<profile>``, else ``<repository>/results/<profile>``,
    else (outside a checkout, e.g. on Colab) ``itemchest_outputs/results/<profile>``."""
    profile = check_profile(profile) if profile is not None else active_profile()
    if os.environ.get(RESULTS_VARIABLE):
        base = Path(os.environ[RESULTS_VARIABLE])
    else:
        root = repository_root()
        base = root / "results" if root is not None else output_dir("results")
    path = base / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_row(row: dict, index: int) -> dict:
    missing = [field for field in REQUIRED_FIELDS if field not in row]
    unknown = sorted(set(row) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if missing or unknown:
        raise ValueError(f"results row {index} ({row.get('metric', '?')!r}): missing fields {missing}, "
                         f"unknown fields {unknown}; fields are {REQUIRED_FIELDS + OPTIONAL_FIELDS}")
    key = row.get("key")
    if key is not None and (not isinstance(key, str) or not key or set(key) - KEY_CHARACTERS):
        raise ValueError(f"results row {index} ({row['metric']!r}): key {key!r} must be lower-case letters, digits "
                         "and underscores (a stable name other pages read the row by)")
    clean = {}
    for field, value in row.items():
        if hasattr(value, "item"):          # numpy / torch scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"results row {index} ({row['metric']!r}): {field} is {value}; "
                             "a non-finite number usually means the run diverged — rerun or lower the learning rate")
        if value is not None and not isinstance(value, (str, int, float)):
            raise TypeError(f"results row {index}: {field} must be a string or a number, not {type(value).__name__}")
        clean[field] = value
    return clean


def _format(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def format_row(row: dict) -> list[str]:
    """A results row as table cells: metric, value, paper, data, steps, wall time, device."""
    wall = row["wall_time_s"]
    return [_format(row["metric"]), _format(row["value"]), _format(row.get("paper")), _format(row["data"]),
            _format(row["steps"]), "—" if wall is None else f"{wall:.0f} s", _format(row["device"])]


def results_markdown(rows: list[dict], profile: str) -> str:
    lines = ["| metric | value | paper | data | steps | wall time | device |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(format_row(row)) + " |" for row in rows]
    return "\n".join(lines) + f"\n\n*Profile `{profile}`.*"


def record_results(notebook: str, rows: list[dict], *, defaults: dict | None = None, profile: str | None = None,
                   display: bool = True) -> None:
    """Write ``rows`` (one dict per headline number) to ``results/<profile>/<notebook>.json`` and show them.

    Each row has ``metric`` (the label a reader sees), ``value``, ``data`` (what it was measured on), ``steps``,
    ``wall_time_s`` and ``device``, optionally ``key`` (a stable name that other pages read the row by, see
    :func:`read_result`), ``paper`` (the paper's own number, as text with its setting), ``note``, and ``headline``
    (``True`` on the row(s) the results page's headline table shows; by default the first row).
    ``defaults`` fills the fields that rows share (device, steps, wall time). The displayed output carries the
    same JSON, which the site's tests compare with the file.
    """
    profile = check_profile(profile) if profile is not None else active_profile()
    if not rows:
        raise ValueError("record_results needs at least one row")
    if dry_run_steps():
        print(f"[dry run] {notebook}: {len(rows)} results not recorded (a dry run measures costs, not results)")
        return
    rows = [{**(defaults or {}), **row} for row in rows]
    keys = [row["key"] for row in rows if row.get("key") is not None]
    if len(keys) != len(set(keys)):
        raise ValueError(f"results keys must be unique within a page; repeated: {sorted({k for k in keys if keys.count(k) > 1})}")
    payload = {"notebook": notebook, "profile": profile,
               "rows": [_check_row(dict(row), index) for index, row in enumerate(rows)]}
    path = results_dir(profile) / f"{notebook}.json"
    if rank() == 0:   # under torchrun every rank runs the page; rank 0's numbers are those of the checkpoint
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
        partial.replace(path)
    if display:
        table = results_markdown(payload["rows"], profile)
        try:
            from IPython import get_ipython
            from IPython.display import display as show
        except ImportError:
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            show({"text/markdown": table, RESULTS_MIME: payload}, raw=True)
        else:                                   # run as a plain script
            print(table)


def read_result(notebook: str, key: str, profile: str | None = None) -> dict | None:
    """The row with stable ``key`` from another page's results file, or ``None`` (with a note saying why) when
    that page has not been run in this profile or no longer records the key."""
    profile = check_profile(profile) if profile is not None else active_profile()
    path = results_dir(profile) / f"{notebook}.json"
    if not path.exists():
        print(f"(no {profile} results of the {notebook} page yet: run it first to see its {key} here)")
        return None
    for row in load_results(path)["rows"]:
        if row.get("key") == key:
            return row
    print(f"(the {notebook} page's {profile} results have no row {key!r}: re-run that page)")
    return None


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; numbers formatted like the results (4 significant figures, thousands separated)."""
    lines = ["| " + " | ".join(_format(str(name)) for name in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_format(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def show_table(header: list[str], rows: list[list]) -> None:
    """Display a table: rendered in a notebook and on the site, plain Markdown text when run as a script."""
    table = markdown_table(header, rows)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(table))
    else:
        print(table)


def load_results(path: Path) -> dict:
    """Read a results file written by :func:`record_results`, with a clear error when it is unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read the results file {path}: {error}. Re-run its notebook in the profile "
                         "named by the folder to write it again.") from error
