"""The dry run of the ``full`` profile: the switch, the stand-in data, the report, and every page at full size."""

import ast
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from itemchest_utils import TensorBatches, fit, load_images, pick_config, run_checkpoint, save_checkpoint
from itemchest_utils.dry_run import (BATCH_VARIABLE, DRY_RUN_VARIABLE, KEEP_VARIABLE, REPORT_VARIABLE,
                                     STAND_IN_IMAGES, dry_run_steps, procedural_count)
from itemchest_utils.dry_run import DryRunError
from itemchest_utils.full_dry_run import (RECORD, all_pages, dry_run_pages, last_training_cell, markdown_rows,
                                         readme_section, statements_to_run, write_record)
from itemchest_utils.gpu_check import fit_read_back_cost
from itemchest_utils.gpu_check import table as gpu_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dry(monkeypatch, tmp_path):
    monkeypatch.setenv(DRY_RUN_VARIABLE, "3")
    monkeypatch.setenv(REPORT_VARIABLE, str(tmp_path / "report.jsonl"))
    monkeypatch.setenv("ITEMCHEST_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path


def small_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, 4)

    def train_step(batch):
        loss = model(batch).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    return model, optimizer, train_step, TensorBatches(x, batch_size=16)


def test_the_switch_reads_a_step_count(monkeypatch):
    monkeypatch.delenv(DRY_RUN_VARIABLE, raising=False)
    assert dry_run_steps() is None
    monkeypatch.setenv(DRY_RUN_VARIABLE, "5")
    assert dry_run_steps() == 5
    monkeypatch.setenv(DRY_RUN_VARIABLE, "a few")
    with pytest.raises(ValueError, match="number of training steps"):
        dry_run_steps()


def test_fit_times_a_few_real_steps_and_reports_the_run(dry):
    model, optimizer, train_step, batches = small_problem()
    before = [p.detach().clone() for p in model.parameters()]
    recorded = []
    history = fit(train_step, batches, steps=50_000, state={"model": model, "optimizer": optimizer},
                  run="toy/main", every={1000: lambda step: recorded.append(step) or step})
    assert history.dry_run and history.steps == [0, 1, 2]
    assert recorded == [3]  # the periodic work ran once, after the timed steps
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the real train_step ran
    (row,) = [json.loads(line) for line in (dry / "report.jsonl").read_text().splitlines()]
    assert row["run"] == "toy/main" and row["parameters"] == {"model": 4 * 8 + 8 + 8 + 1}
    assert row["batch"] == "(16, 4) float32" and row["timed_steps"] == 3 and row["steps"] == 50_000
    assert row["projected_hours"] == pytest.approx(row["seconds_per_step"] * 50_000 / 3600)
    assert row["peak_memory_gib"] > 0
    assert "a dry run" in history.summary()
    assert "toy/main" in markdown_rows([row])


def test_a_dry_run_never_reads_or_writes_a_real_checkpoint(dry, monkeypatch):
    model, optimizer, train_step, batches = small_problem()
    monkeypatch.delenv(DRY_RUN_VARIABLE)
    real = run_checkpoint("toy/main")
    from itemchest_utils import History

    save_checkpoint(real, 10, {"model": model, "optimizer": optimizer}, History(), {})
    written = real.stat().st_mtime_ns
    monkeypatch.setenv(DRY_RUN_VARIABLE, "2")
    assert run_checkpoint("toy/main") != real
    fit(train_step, batches, steps=100, state={"model": model, "optimizer": optimizer}, run="toy/main")
    assert real.stat().st_mtime_ns == written
    assert not run_checkpoint("toy/main").exists()  # no page reads this run: nothing written
    monkeypatch.setenv(KEEP_VARIABLE, "other/run,toy/main")  # a page reads it: its weights alone are kept
    fit(train_step, batches, steps=100, state={"model": model, "optimizer": optimizer}, run="toy/main")
    assert real.stat().st_mtime_ns == written
    assert set(torch.load(run_checkpoint("toy/main"), weights_only=True)["state"]) == {"model"}


def test_full_datasets_become_random_stand_ins_of_their_shape(dry, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_DATA", str(dry / "no-data-here"))  # nothing cached, nothing downloaded
    cifar = load_images("cifar10")
    assert cifar.image_shape == (3, 32, 32) and "stand-in" in cifar.name and "random" in cifar.source
    assert 0 <= cifar.train_images.min() and cifar.train_images.max() <= 1
    assert procedural_count(20_000, "rooms") == STAND_IN_IMAGES


def test_a_quick_shape_check_sets_the_batch_size_and_batches_draw_with_replacement(dry, monkeypatch):
    monkeypatch.setenv(BATCH_VARIABLE, "2")
    settings = dict(steps=10, batch_size=64)
    config = pick_config(smoke=settings, book=settings, full=settings, profile="full")
    assert config.batch_size == 2
    growing = dict(batch_sizes={4: 128, 64: 32})
    assert pick_config(smoke=growing, book=growing, full=growing, profile="full").batch_sizes == {4: 2, 64: 2}
    monkeypatch.delenv(DRY_RUN_VARIABLE)
    assert pick_config(smoke=settings, book=settings, full=settings, profile="full").batch_size == 64
    monkeypatch.setenv(DRY_RUN_VARIABLE, "1")
    few = TensorBatches(torch.arange(5.0), batch_size=8)  # fewer stand-in examples than a batch
    assert few.batch(0).shape == (8,) and torch.equal(few.batch(3), few.batch(3))


def test_the_last_training_cell_is_found_through_the_pages_own_functions():
    cells = ["import itemchest_utils as icu",
             "def train(name):\n    return icu.fit(step, batches, steps=10)",
             "def evaluate():\n    return 1",
             "runs = {name: train(name) for name in ('a', 'b')}",
             "evaluate()"]
    assert last_training_cell(cells) == 3
    assert last_training_cell(["x = 1", "probe = LogisticRegression().fit(x, y)"]) is None  # not icu.fit


def test_a_dry_run_keeps_the_trainings_and_what_they_need_and_leaves_out_the_evaluation():
    cells = ["import itemchest_utils as icu",
             "first = icu.fit(step, batches, steps=10)",
             "samples = sample(first, 10_000)\nmodel = build()",
             "scores = {name: fid(samples) for name in names}",
             "for seed in (1, 2):\n    net = make(model, seed)\n    icu.fit(net.step, batches, steps=10)\n"
             "    scores[seed] = fid(sample(net, 10_000))",
             "print(scores)"]
    kept = [[ast.unparse(statement) for statement in cell] for cell in statements_to_run(cells)]
    assert kept[:2] == [[cells[0]], [cells[1]]]  # the setup, up to the first training, runs whole
    assert kept[2] == ["model = build()"] and kept[3] == [] and kept[5] == []
    assert kept[4] == ["for seed in (1, 2):\n    net = make(model, seed)\n    icu.fit(net.step, batches, steps=10)"]


@pytest.mark.skipif(os.environ.get("ITEMCHEST_SKIP_FULL_DRY_RUN") == "1", reason="ITEMCHEST_SKIP_FULL_DRY_RUN=1")
@pytest.mark.parametrize("page", all_pages(ROOT), ids=lambda page: page.stem)
def test_every_page_builds_and_trains_its_full_models(page, tmp_path):
    """One real training step of every run of the page, with the `full` profile's models, on stand-in data
    (batches of 2 where the batch size is a setting, to keep CI fast): a shape, schedule or configuration bug
    in `full` fails here, on a CPU. A page that reads another page's runs (DDIM, score SDE) dry-runs it first."""
    rows, outcomes = dry_run_pages([page], 1, workdir=tmp_path, timeout=900, environment={BATCH_VARIABLE: "2"})
    failed = {name: outcome["output"][-3000:] for name, outcome in outcomes.items() if outcome["returncode"]}
    assert not failed, "\n\n".join(f"--- {name}:\n{output}" for name, output in failed.items())
    trains_nothing = {"ddim"}  # samples DDPM's network; its dry run reads DDPM's dry-run weights
    pages_with_runs = {row["run"].partition("/")[0] for row in rows}
    assert page.stem in pages_with_runs or page.stem in trains_nothing
    assert all(sum(row["parameters"].values()) > 0 and row["seconds_per_step"] > 0 for row in rows)


def test_the_gpu_check_measures_reading_values_back_and_tables_its_variants():
    rates = fit_read_back_cost(torch.device("cpu"), steps=10)
    assert set(rates) == {"log_every=1", "log_every=20"} and all(rate > 0 for rate in rates.values())
    timing = {"seconds_per_step": 0.5, "peak_memory_gib": 1.0, "nonfinite": None}
    row = {"description": "Toy", "run": "toy/main", "parameters": {"model": 10}, "batch": "(4, 2) float32",
           "batch_size": 4, "variants": {"fp32": timing, "bf16": {**timing, "seconds_per_step": 0.25},
                                         "compile": {**timing, "nonfinite": "loss at step 3"}}}
    lines = gpu_table([row], ["fp32", "bf16", "compile"]).splitlines()
    assert lines[2].split(" | ")[3:] == ["2.00", "8", "1.0", "2.00", "non-finite |"]


def test_recording_some_pages_again_replaces_only_their_rows(tmp_path):
    for page in ("vae/a", "vae/b", "gan/c"):
        (tmp_path / "notebooks" / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "notebooks" / f"{page}.py").write_text("")
    (tmp_path / "results").mkdir()
    (tmp_path / "README.md").write_text("intro\n<!-- full-dry-run-table -->\n<!-- /full-dry-run-table -->\nend\n")

    def row(run, seconds):
        return {"run": run, "description": run, "parameters": {"model": 10}, "batch": "(2,)", "device": "cpu",
                "seconds_per_step": seconds, "projected_hours": seconds, "steps": 1, "peak_memory_gib": 1.0,
                "timed_steps": 1, "batch_set_to": None}

    outcome = {"seconds": 1.0}
    write_record(tmp_path, [row("c/main", 1.0), row("a/main", 1.0), row("a/other", 1.0), row("b/main", 1.0)],
                 {"a": outcome, "b": outcome, "c": outcome}, "python -m itemchest_utils.full_dry_run --all")
    record = write_record(tmp_path, [row("b/main", 5.0), row("b/new", 5.0)], {"b": outcome},
                          "python -m itemchest_utils.full_dry_run notebooks/vae/b.py", update=True)
    assert [(r["run"], r["seconds_per_step"]) for r in record["rows"]] == [
        ("c/main", 1.0), ("a/main", 1.0), ("a/other", 1.0), ("b/main", 5.0), ("b/new", 5.0)]
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("intro\n") and readme.endswith("end\n") and "b measured again with" in readme
    assert json.loads((tmp_path / RECORD).read_text()) == record
    with pytest.raises(DryRunError, match="record every page again"):
        write_record(tmp_path, [{**row("b/main", 5.0), "device": "cuda"}], {"b": outcome}, "again", update=True)


def test_the_readme_shows_the_recorded_dry_run_of_every_page():
    record = json.loads((ROOT / RECORD).read_text())
    assert readme_section(record) in (ROOT / "README.md").read_text(), (
        "README.md's dry-run table differs from results/full_dry_run.json: run "
        "python -m itemchest_utils.full_dry_run --all --steps 2 --record")
    trains_nothing = {"ddim"}
    assert {row["run"].partition("/")[0] for row in record["rows"]} == {p.stem for p in all_pages(ROOT)} - trains_nothing
    assert all(row["batch_set_to"] is None for row in record["rows"])  # full batches, not a quick check
