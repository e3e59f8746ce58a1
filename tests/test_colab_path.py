"""A notebook runs the way Colab runs it: with only the package's own dependencies installed.

Colab brings a Jupyter kernel; a notebook's first cell then runs `pip install git+<repository>`, which installs
`pyproject.toml`'s dependencies, not `requirements.txt`. This test builds a fresh virtual environment, installs a
kernel and then the package from a copy of this checkout (standing in for the git URL), and executes one stored
notebook in the `smoke` profile from a folder outside the checkout. A notebook that imports something the package
does not declare fails here. It takes about two minutes, most of it installing torch.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "vae" / "vae.ipynb"
RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
notebook = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
print("executed", len(notebook.cells), "cells")
"""


def test_a_notebook_runs_with_only_the_package_dependencies(tmp_path):
    package = tmp_path / "checkout"
    package.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, package / name)
    shutil.copytree(ROOT / "itemchest_utils", package / "itemchest_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    environment = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True)
    pip = [str(environment / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "ipykernel", "nbclient", "nbformat"], check=True)  # what Colab brings
    subprocess.run([*pip, str(package)], check=True)  # what the notebook's first cell installs

    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(NOTEBOOK, workdir / NOTEBOOK.name)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ITEMCHEST_", "PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(ITEMCHEST_PROFILE="smoke", ITEMCHEST_PROGRESS="off", MPLBACKEND="Agg",
               ITEMCHEST_CHECKPOINTS=str(tmp_path / "checkpoints"), ITEMCHEST_OUTPUTS=str(tmp_path / "outputs"),
               ITEMCHEST_RESULTS=str(tmp_path / "results"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PATH=f"{environment / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([str(environment / "bin" / "python"), "-c", RUNNER, NOTEBOOK.name], cwd=workdir,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "executed" in result.stdout
