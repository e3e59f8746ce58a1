import json
import math

import pytest

import itemchest_utils as icu
from itemchest_utils.results import RESULTS_MIME, repository_root, results_markdown


def row(**changes):
    base = dict(metric="FID", value=12.5, paper="3.1 (CIFAR-10)", data="shapes 32²", steps=100,
                wall_time_s=3.2, device="cpu (2 threads)")
    base.update(changes)
    return base


def test_record_results_writes_the_rows_it_displays(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ITEMCHEST_RESULTS", str(tmp_path))
    assert icu.record_results("demo", [row(), row(metric="accuracy", value=0.9, paper=None)], profile="smoke") is None
    path = tmp_path / "smoke" / "demo.json"
    shown = capsys.readouterr().out
    assert shown.splitlines()[2].startswith("| FID | 12.5 | 3.1 (CIFAR-10) |")  # what a script run prints
    payload = json.loads(path.read_text())
    assert payload["notebook"] == "demo" and payload["profile"] == "smoke"
    assert [r["metric"] for r in payload["rows"]] == ["FID", "accuracy"]
    assert payload["rows"][0]["value"] == 12.5
    assert icu.load_results(path) == payload


def test_record_results_rejects_bad_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="missing fields"):
        icu.record_results("demo", [dict(metric="x", value=1)], profile="smoke", display=False)
    with pytest.raises(ValueError, match="unknown fields"):
        icu.record_results("demo", [row(colour="red")], profile="smoke", display=False)
    with pytest.raises(ValueError, match="diverged"):
        icu.record_results("demo", [row(value=math.nan)], profile="smoke", display=False)
    with pytest.raises(ValueError, match="at least one row"):
        icu.record_results("demo", [], profile="smoke", display=False)
    with pytest.raises(icu.UnknownProfileError):
        icu.record_results("demo", [row()], profile="huge", display=False)
    assert not (tmp_path / "smoke" / "demo.json").exists()


def test_numpy_and_torch_scalars_become_plain_numbers(tmp_path, monkeypatch):
    import numpy as np
    import torch
    monkeypatch.setenv("ITEMCHEST_RESULTS", str(tmp_path))
    icu.record_results("demo", [row(value=np.float32(0.5), steps=torch.tensor(7))], profile="smoke", display=False)
    path = tmp_path / "smoke" / "demo.json"
    stored = icu.load_results(path)["rows"][0]
    assert stored["value"] == 0.5 and stored["steps"] == 7


def test_unreadable_results_file_gives_a_clear_error(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="Re-run its notebook"):
        icu.load_results(broken)


def test_results_default_to_the_repository_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ITEMCHEST_RESULTS", raising=False)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    notebook_dir = tmp_path / "notebooks" / "gan"
    notebook_dir.mkdir(parents=True)
    monkeypatch.chdir(notebook_dir)
    assert repository_root() == tmp_path
    assert icu.results_dir("smoke") == tmp_path / "results" / "smoke"


def test_markdown_table_has_one_line_per_row():
    text = results_markdown([row(), row(metric="a|b", value=None, wall_time_s=None)], "book")
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) == 4
    assert "a\\|b" in lines[3] and "—" in lines[3]
    assert RESULTS_MIME.endswith("+json")


def test_rows_share_defaults_and_are_read_by_stable_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ITEMCHEST_RESULTS", str(tmp_path))
    shared = dict(data="digits", steps=10, wall_time_s=1.0, device="cpu")
    icu.record_results("demo", [dict(key="fid", metric="FID (MNIST-classifier features)", value=3.0),
                                dict(key="nll", metric="NLL", value=80.0, steps=20)],
                       defaults=shared, profile="smoke", display=False)
    rows = icu.load_results(tmp_path / "smoke" / "demo.json")["rows"]
    assert rows[0]["steps"] == 10 and rows[1]["steps"] == 20 and rows[1]["device"] == "cpu"
    assert icu.read_result("demo", "nll", profile="smoke")["value"] == 80.0
    assert icu.read_result("demo", "bits", profile="smoke") is None
    assert "no row 'bits'" in capsys.readouterr().out
    assert icu.read_result("other", "fid", profile="smoke") is None
    assert "run it first" in capsys.readouterr().out


def test_keys_are_stable_names_and_unique(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="lower-case"):
        icu.record_results("demo", [row(key="FID score")], profile="smoke", display=False)
    with pytest.raises(ValueError, match="repeated"):
        icu.record_results("demo", [row(key="fid"), row(key="fid")], profile="smoke", display=False)


def test_markdown_table_formats_numbers_like_the_results():
    text = icu.markdown_table(["model", "FID", "steps"], [["DDPM", 12.3456, 20000], ["none", None, 0]])
    assert text.splitlines() == ["| model | FID | steps |", "| --- | --- | --- |", "| DDPM | 12.35 | 20,000 |",
                                 "| none | — | 0 |"]


def test_a_bar_in_a_header_or_cell_does_not_break_the_table():
    from itemchest_utils.results import markdown_table

    table = markdown_table(["model", "−log p(x | z)"], [["a | b", 1.5]])
    header, rule, row = table.splitlines()
    assert header == "| model | −log p(x \\| z) |" and rule == "| --- | --- |"
    assert row == "| a \\| b | 1.5 |"
