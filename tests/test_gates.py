"""A page whose models learned nothing must stop at its quality gates.

Each page listed here is executed in `smoke` with ``ITEMCHEST_SKIP_TRAINING=1``: every ``icu.fit`` returns an
untrained model. The run must end with an ``AssertionError`` raised in the page's quality-gate cell, not pass and
not fail anywhere else. (The DDIM page trains nothing: it samples the DDPM page's checkpoint, and is left out.
The score-SDE page also samples that checkpoint, so the DDPM page is first trained in `smoke` for it: only the
page's own models are left untrained.)
"""

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
PAGES_GATED_WITHOUT_TRAINING = [
    "notebooks/diffusion/ddpm",
    "notebooks/diffusion/guidance",
    "notebooks/flow/flow_matching",
    "notebooks/diffusion/score_sde",
    "notebooks/autoregressive/pixelcnn",
    "notebooks/autoregressive/vqvae",
    "notebooks/gan/cyclegan",
    "notebooks/vae/draw",
    "notebooks/vae/vae",
    "notebooks/gan/pggan",
    "notebooks/gan/dcgan",
    "notebooks/vae/gqn",
    "notebooks/gan/gan",
    "notebooks/flow/glow",
    "notebooks/gan/discogan",
    "notebooks/gan/stargan",
]
GATE_CELL_MARK = 'print("quality gates passed")'
TRAINED_FIRST = {"notebooks/diffusion/score_sde": ["notebooks/diffusion/ddpm"]}


def run_page(page, tmp_path):
    notebook = jupytext.read(ROOT / f"{page}.py")
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    return notebook, client


@pytest.mark.parametrize("page", PAGES_GATED_WITHOUT_TRAINING)
def test_an_untrained_page_stops_at_a_quality_gate(page, tmp_path, monkeypatch):
    for variable, folder in (("CHECKPOINTS", "checkpoints"), ("RESULTS", "results"), ("OUTPUTS", "outputs")):
        monkeypatch.setenv(f"ITEMCHEST_{variable}", str(tmp_path / folder))
    monkeypatch.setenv("ITEMCHEST_PROFILE", "smoke")
    monkeypatch.setenv("ITEMCHEST_PROGRESS", "off")
    for needed in TRAINED_FIRST.get(page, []):
        run_page(needed, tmp_path)[1].execute()
    monkeypatch.setenv("ITEMCHEST_SKIP_TRAINING", "1")
    notebook, client = run_page(page, tmp_path)
    with pytest.raises(CellExecutionError) as raised:
        client.execute()
    failed = [cell for cell in notebook.cells if cell.cell_type == "code"
              and any(output.get("output_type") == "error" for output in cell.get("outputs", []))]
    assert raised.value.ename == "AssertionError", f"{page} failed outside its gates: {raised.value.evalue}"
    assert len(failed) == 1 and GATE_CELL_MARK in failed[0].source, \
        f"{page}: the assertion that stopped the untrained run is not in the quality-gate cell"
    print(f"{page}: stopped by {raised.value.evalue!r}")
