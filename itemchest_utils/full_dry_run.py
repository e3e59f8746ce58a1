"""Dry-run pages in the ``full`` profile: ``python -m itemchest_utils.full_dry_run --all`` (or page files).

Each page runs in its own Python process with ``ITEMCHEST_PROFILE=full`` and ``ITEMCHEST_DRY_RUN=N`` (see
:mod:`itemchest_utils.dry_run`), in a temporary folder for checkpoints, results and outputs, so nothing a dry run
does reaches a stored output or a real checkpoint. A page reading another page's run (DDIM reads DDPM's network) is
run after that page. The report is one row per training run: parameters, batch, seconds per step on this device,
projected wall time of the run's steps, peak memory.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .dry_run import (BATCH_VARIABLE, DRY_RUN_VARIABLE, KEEP_VARIABLE, REPORT_VARIABLE, DryRunError, announce,
                      hours)

# --- running a page ---------------------------------------------------------------------------------------------

# The package's training and run-reading calls, as pages write them (``icu.fit``) or import them (``fit``).
TRAINING_NAMES = {"icu.fit", "fit", "icu.load_trained", "load_trained"}


def _called_names(node: ast.AST) -> set[str]:
    """What ``node`` calls: ``name`` for ``name(...)``, ``base.attribute`` for ``base.attribute(...)`` (so
    ``icu.fit`` is not scikit-learn's ``model.fit``), ``….attribute`` for longer chains."""
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            function = child.func
            if isinstance(function, ast.Name):
                names.add(function.id)
            elif isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
                names.add(f"{function.value.id}.{function.attr}")
            elif isinstance(function, ast.Attribute):
                names.add(f"….{function.attr}")
    return names


def _top_level_calls(tree: ast.Module) -> set[str]:
    """Names called by a cell's own statements, not inside the functions and classes it defines."""
    names = set()
    for statement in tree.body:
        if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names |= _called_names(statement)
    return names


def _trainer_names(trees: list[ast.Module]) -> set[str]:
    """``fit``, ``load_trained`` and every page function that calls one of them, at any depth."""
    trainers = set(TRAINING_NAMES)
    functions = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[node.name] = _called_names(node)
    changed = True
    while changed:
        grown = {name for name, calls in functions.items() if calls & trainers}
        changed = not grown <= trainers
        trainers |= grown
    return trainers


def _training_cells(trees: list[ast.Module]) -> list[int]:
    """The code cells that train (call ``fit``, or a page function that does) or read another page's run."""
    trainers = _trainer_names(trees)
    return [index for index, tree in enumerate(trees) if _top_level_calls(tree) & trainers]


def last_training_cell(cells: list[str]) -> int | None:
    found = _training_cells([ast.parse(source) for source in cells])
    return found[-1] if found else None


def runs_read(page: Path) -> list[str]:
    """The runs (``"<page>/<run>"``) this page reads with ``load_trained``."""
    found = []
    for node in ast.walk(ast.parse(page.read_text())):
        if (isinstance(node, ast.Call) and _called_names(node) & {"load_trained", "icu.load_trained"} and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append(node.args[0].value)
    return list(dict.fromkeys(found))


def page_dependencies(page: Path) -> list[str]:
    """Pages whose runs this page reads with ``load_trained("<page>/<run>")``."""
    return list(dict.fromkeys(run.partition("/")[0] for run in runs_read(page)))


def _outer_scope(node: ast.AST):
    """``node`` and its descendants in the same scope: not the bodies of functions, classes, lambdas or
    comprehensions it contains."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield child  # its name is bound here; its body is another scope
        elif not isinstance(child, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            yield from _outer_scope(child)


def _defined_names(tree: ast.Module) -> set[str]:
    """Names a cell binds or changes in the page's namespace: assignments (``runs["a"] = …`` changes ``runs``),
    imports, the functions and classes it defines (not their local variables)."""
    names = set()
    for node in _outer_scope(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            base = node.value
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                names.add(base.id)
    return names


def _loaded_names(tree: ast.AST) -> set[str]:
    """Names the code reads from the page's namespace: every name it loads, less those bound in an inner scope
    (a function's parameters and locals, a lambda's parameters, a comprehension's variables)."""
    loads, local = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            parameters = node.args
            local |= {a.arg for a in parameters.posonlyargs + parameters.args + parameters.kwonlyargs}
            local |= {a.arg for a in (parameters.vararg, parameters.kwarg) if a is not None}
            if not isinstance(node, ast.Lambda):
                local |= {n.id for inner in node.body for n in ast.walk(inner)
                          if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        elif isinstance(node, ast.comprehension):
            local |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads.add(node.id)
    return loads - local


COMPOUND = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)


def _slice(statements: list[ast.stmt], needed: set[str], trainers: set[str]) -> list[ast.stmt]:
    """Walking back through ``statements``: keep each training statement and each statement that defines or
    changes a name in ``needed`` (which grows by what the kept statements read). A loop or block that trains
    keeps its header and, inside, only what its own training needs."""
    kept: list[ast.stmt] = []
    for statement in reversed(statements):
        definition = isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        trains = not definition and bool(_called_names(statement) & trainers)
        if trains and isinstance(statement, COMPOUND):
            inner = copy.copy(statement)
            for field in ("body", "orelse", "finalbody"):
                if getattr(statement, field, None):
                    setattr(inner, field, _slice(getattr(statement, field), needed, trainers) or [ast.Pass()])
            inner.handlers = getattr(statement, "handlers", [])
            if hasattr(statement, "target"):  # a loop variable: bound here, not needed from before
                needed -= _bound_names(statement.target)
            header = [getattr(statement, name) for name in ("iter", "test") if hasattr(statement, name)]
            header += [item.context_expr for item in getattr(statement, "items", [])]
            for node in header:
                needed |= _loaded_names(node)
            kept.insert(0, inner)
        elif trains or _defined_names(ast.Module(body=[statement], type_ignores=[])) & needed:
            kept.insert(0, statement)
            if not isinstance(statement, (ast.AugAssign, *COMPOUND)):
                needed -= _bound_names(statement)
            needed |= _loaded_names(statement)
    return kept


def _bound_names(node: ast.AST) -> set[str]:
    """Names a simple statement (re)binds outright: plain assignment targets, a function's or class's name."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return set().union(*(_bound_names(target) for target in targets))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, (ast.Tuple, ast.List)):
        return set().union(*(_bound_names(element) for element in node.elts)) if node.elts else set()
    if isinstance(node, ast.Starred):
        return _bound_names(node.value)
    return set()


def statements_to_run(cells: list[str]) -> list[list[ast.stmt]]:
    """For each code cell, the top-level statements a dry run executes: all of them up to the first training
    cell (the page's setup), then only the training and what it needs (:func:`_slice`, over the cells from the
    last training back). The evaluation between trainings (sampling, metrics, figures) is left out, as is
    everything after the last training."""
    trees = [ast.parse(source) for source in cells]
    training, trainers = _training_cells(trees), _trainer_names(trees)
    if not training:
        return [[] for _ in trees]
    chosen = [list(tree.body) if index <= training[0] else [] for index, tree in enumerate(trees)]
    needed: set[str] = set()
    for index in range(training[-1], training[0], -1):
        chosen[index] = _slice(trees[index].body, needed, trainers)
    return chosen


def run_page(page: Path) -> None:
    """Execute the page's setup and training code in this process (see :func:`statements_to_run`)."""
    import jupytext

    notebook = jupytext.read(page)
    cells = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    chosen = statements_to_run(cells)
    if not any(chosen):
        raise DryRunError(f"{page} trains nothing (no icu.fit call): there is nothing to dry-run")
    namespace = {"__name__": "__main__", "__file__": str(page)}
    for index, statements in enumerate(chosen):
        if statements:
            module = ast.fix_missing_locations(ast.Module(body=statements, type_ignores=[]))
            exec(compile(module, f"{page.name}, code cell {index + 1}", "exec"), namespace)
    ran = sum(map(len, chosen))
    total = sum(len(ast.parse(source).body) for source in cells)
    announce(f"{page.name}: ran {ran} of its {total} top-level statements: the setup, every training and what "
             "the trainings need")


def _page_environment(steps: int, workdir: Path, report: Path) -> dict:
    environment = dict(os.environ)
    environment.update({"ITEMCHEST_PROFILE": "full", DRY_RUN_VARIABLE: str(steps), REPORT_VARIABLE: str(report),
                        "ITEMCHEST_CHECKPOINTS": str(workdir / "checkpoints"),
                        "ITEMCHEST_RESULTS": str(workdir / "results"), "ITEMCHEST_OUTPUTS": str(workdir / "outputs"),
                        "ITEMCHEST_PROGRESS": "off", "MPLBACKEND": "Agg"})
    environment.pop("ITEMCHEST_SKIP_TRAINING", None)
    environment.pop("ITEMCHEST_STOP_AFTER", None)
    return environment


def all_pages(root: Path) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("*/*.py") if not p.name.startswith("_"))


def ordered_with_dependencies(pages: list[Path]) -> list[Path]:
    """The pages, each preceded by the pages whose runs it reads."""
    ordered: list[Path] = []

    def add(page: Path):
        for name in page_dependencies(page):
            matches = list(page.parent.parent.glob(f"*/{name}.py"))
            if matches and matches[0].resolve() not in [p.resolve() for p in ordered]:
                add(matches[0])
        if page.resolve() not in [p.resolve() for p in ordered]:
            ordered.append(page)

    for page in pages:
        add(page)
    return ordered


def dry_run_pages(pages: list[Path], steps: int, *, workdir: Path, timeout: float = 1800,
                  environment: dict | None = None, jobs: int = 1) -> tuple[list[dict], dict]:
    """Dry-run each page in its own Python process, ``jobs`` at a time (a page waits for the pages whose runs it
    reads); ``environment`` adds variables (e.g. the quick check's batch size). Return the report rows, in page
    order, and each page's outcome."""
    pages = ordered_with_dependencies(pages)
    names = {page.resolve(): page.stem for page in pages}
    keep = ",".join(sorted({run for page in pages for run in runs_read(page)}))

    def run(page: Path, needs: list) -> dict:
        for need in needs:
            need.result()
        report = workdir / f"report-{page.stem}.jsonl"
        report.touch()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "itemchest_utils.full_dry_run", "--one", str(page)],
                              env={**_page_environment(steps, workdir, report), KEEP_VARIABLE: keep,
                                   **(environment or {})},
                              capture_output=True, text=True, timeout=timeout)
        return {"returncode": done.returncode, "seconds": time.perf_counter() - started,
                "output": done.stdout[-6000:] + done.stderr[-6000:],
                "rows": [json.loads(line) for line in report.read_text().splitlines() if line.strip()]}

    futures = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:   # FIFO: a page starts after the pages it needs started
        for page in pages:
            needs = [futures[n] for n in page_dependencies(page) if n in futures]
            futures[page.stem] = pool.submit(run, page, needs)
    outcomes = {names[page.resolve()]: futures[page.stem].result() for page in pages}
    rows = [row for outcome in outcomes.values() for row in outcome.pop("rows")]
    return rows, outcomes


def markdown_rows(rows: list[dict]) -> str:
    """The report as a Markdown table, one row per training run."""
    lines = ["| run | trained parameters | batch | device | s/step | all steps at that rate | peak memory |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['description']} (`{row['run']}`) | {sum(row['parameters'].values()):,} | "
                     f"{row['batch']} | {row['device']} | {row['seconds_per_step']:.3g} | "
                     f"{hours(row['projected_hours'] * 3600)} for {row['steps']:,} steps | "
                     f"{row['peak_memory_gib']:.1f} GiB |")
    return "\n".join(lines)


README_BEGIN, README_END = "<!-- full-dry-run-table -->", "<!-- /full-dry-run-table -->"
RECORD = Path("results") / "full_dry_run.json"


def page_table(record: dict) -> str:
    """One row per page: its training runs added up (the README's table)."""
    pages: dict[str, list[dict]] = {}
    for row in record["rows"]:
        pages.setdefault(row["run"].partition("/")[0], []).append(row)
    lines = ["| page | training runs | trained parameters, largest run | batch, largest run | projected, all runs | "
             "peak memory of the process |", "| --- | ---: | ---: | --- | ---: | ---: |"]
    for page, rows in pages.items():
        largest = max(rows, key=lambda r: sum(r["parameters"].values()))
        seconds = sum(r["projected_hours"] for r in rows) * 3600
        lines.append(f"| {page} | {len(rows)} | {sum(largest['parameters'].values()):,} | {largest['batch']} | "
                     f"{hours(seconds)} | {max(r['peak_memory_gib'] for r in rows):.1f} GiB |")
    return "\n".join(lines)


def readme_section(record: dict) -> str:
    again = "".join(f"; {', '.join(update['pages'])} measured again with `{update['command']}` after a change to "
                    f"their `full` settings" for update in record.get("updates", []))
    return (f"{README_BEGIN}\n{page_table(record)}\n\nMeasured with `{record['command']}` on {record['device']}"
            f"{again}: {record['timed_steps']} real training steps per run, the first one untimed (allocation, "
            f"warm-up); per-run details in `{RECORD.as_posix()}`.\n{README_END}")


def write_record(root: Path, rows: list[dict], outcomes: dict, command: str, *, update: bool = False) -> dict:
    """Keep the dry run's rows in ``results/full_dry_run.json`` and its table in the README. With ``update``, the
    pages dry-run now replace their rows in the kept record (same device and step count), the others stay."""
    record = {"command": command, "device": rows[0]["device"] if rows else "", "rows": rows,
              "timed_steps": min((r["timed_steps"] for r in rows), default=0),
              "page_seconds": {name: round(o["seconds"], 1) for name, o in outcomes.items()}}
    if update:
        if not (root / RECORD).is_file():
            raise DryRunError(f"no {RECORD.as_posix()} to update: record every page first (--all --record)")
        kept = json.loads((root / RECORD).read_text())
        if (kept["device"], kept["timed_steps"]) != (record["device"], record["timed_steps"]):
            raise DryRunError(f"the kept record was measured on {kept['device']} with {kept['timed_steps']} timed "
                              f"steps per run; this run used {record['device']} and {record['timed_steps']}: "
                              "record every page again (--all --record)")
        order = [page.stem for page in all_pages(root)]
        measured = set(outcomes)
        rows_by_page = {}
        for row in [r for r in kept["rows"] if r["run"].partition("/")[0] not in measured] + rows:
            rows_by_page.setdefault(row["run"].partition("/")[0], []).append(row)
        record = {**kept, "rows": [row for page in order for row in rows_by_page.get(page, [])],
                  "page_seconds": {**kept["page_seconds"], **record["page_seconds"]},
                  "updates": [*kept.get("updates", []),
                              {"pages": sorted(measured, key=order.index), "command": command}]}
    (root / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    readme = (root / "README.md").read_text()
    if README_BEGIN not in readme or README_END not in readme:
        raise DryRunError(f"README.md has no {README_BEGIN} … {README_END} markers for the table")
    before, _, rest = readme.partition(README_BEGIN)
    _, _, after = rest.partition(README_END)
    (root / "README.md").write_text(before + readme_section(record) + after)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", type=Path, help="notebooks/<family>/<page>.py files")
    parser.add_argument("--all", action="store_true", help="every page under notebooks/")
    parser.add_argument("--steps", type=int, default=3, help="training steps to time per run (default 3)")
    parser.add_argument("--batch", type=int, help="set the pages' batch size (batch_size or batch) to this and "
                        "hold a few stand-in examples: a quick shape check whose times are not the run's")
    parser.add_argument("--jobs", type=int, default=1, help="pages dry-run at once (default 1; timings are only "
                        "comparable with one)")
    parser.add_argument("--json", type=Path, help="also write the report rows to this file")
    parser.add_argument("--record", action="store_true", help=f"keep the report in {RECORD.as_posix()} and its "
                        "table in README.md: with --all, anew; with named pages, replacing their rows")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.one is not None:
        run_page(arguments.one)
        return 0
    pages = all_pages(Path.cwd()) if arguments.all else arguments.pages
    if not pages:
        parser.error("name the pages to dry-run (notebooks/<family>/<page>.py) or give --all")
    missing = [str(p) for p in pages if not p.is_file()]
    if missing:
        parser.error(f"no such page: {', '.join(missing)}")
    if arguments.steps < 1:
        parser.error("--steps must be at least 1")
    with tempfile.TemporaryDirectory(prefix="itemchest-dry-run-") as folder:
        rows, outcomes = dry_run_pages(pages, arguments.steps, workdir=Path(folder), jobs=arguments.jobs,
                                       environment={BATCH_VARIABLE: str(arguments.batch)} if arguments.batch else None)
    failed = {name: o for name, o in outcomes.items() if o["returncode"] != 0}
    for name, outcome in failed.items():
        print(f"--- {name} failed (exit {outcome['returncode']}); the end of its output:\n{outcome['output']}")
    print(markdown_rows(rows))
    for name, outcome in outcomes.items():
        print(f"{name}: {'ok' if outcome['returncode'] == 0 else 'FAILED'} in {outcome['seconds']:.0f} s")
    if arguments.record:
        if arguments.batch or failed:
            parser.error("--record keeps full batches and successful runs only")
        named = "--all" if arguments.all else " ".join(p.as_posix() for p in arguments.pages)
        write_record(Path.cwd(), rows, outcomes,
                     f"python -m itemchest_utils.full_dry_run {named} --steps {arguments.steps}",
                     update=not arguments.all)
    if arguments.json:
        arguments.json.write_text(json.dumps({"rows": rows, "pages": {n: {k: v for k, v in o.items() if k != "output"}
                                                                       for n, o in outcomes.items()}}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
