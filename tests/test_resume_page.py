"""A page trained in two halves (stopped at a checkpoint, then run again) gives the numbers of an uninterrupted run.

The guidance page is used: it trains two models (digits, then shapes) in `smoke` in about ten seconds. The first run
is stopped inside the first training by ``ITEMCHEST_STOP_AFTER``; the second resumes it from its checkpoint and
trains the second model from scratch. Every recorded number must equal the uninterrupted run's; only wall times may
differ.
"""

import json
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
PAGE = "notebooks/diffusion/guidance"
TIMING_FIELDS = {"wall_time_s", "seconds_per_sample"}


def run_page(folder: Path, monkeypatch, stop_after: int | None = None) -> None:
    for variable, name in (("CHECKPOINTS", "checkpoints"), ("RESULTS", "results"), ("OUTPUTS", "outputs")):
        monkeypatch.setenv(f"ITEMCHEST_{variable}", str(folder / name))
    monkeypatch.setenv("ITEMCHEST_PROFILE", "smoke")
    monkeypatch.setenv("ITEMCHEST_PROGRESS", "off")
    if stop_after is None:
        monkeypatch.delenv("ITEMCHEST_STOP_AFTER", raising=False)
    else:
        monkeypatch.setenv("ITEMCHEST_STOP_AFTER", str(stop_after))
    folder.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(ROOT / f"{PAGE}.py")
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()


def recorded_numbers(folder: Path) -> dict:
    rows = json.loads((folder / "results" / "smoke" / "guidance.json").read_text())["rows"]
    return {row["key"] if row.get("key") else row["metric"]: {k: v for k, v in row.items() if k not in TIMING_FIELDS}
            for row in rows}


def test_a_page_trained_in_two_halves_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    run_page(tmp_path / "straight", monkeypatch)
    with pytest.raises(CellExecutionError) as stopped:
        run_page(tmp_path / "halves", monkeypatch, stop_after=30)
    assert stopped.value.ename == "TrainingInterrupted"
    assert not (tmp_path / "halves" / "results" / "smoke" / "guidance.json").exists()
    run_page(tmp_path / "halves", monkeypatch)
    straight, halves = recorded_numbers(tmp_path / "straight"), recorded_numbers(tmp_path / "halves")
    assert halves == straight
