"""The Colab notebooks are executed, and each .ipynb is checked against its jupytext .py pair.

The .py (jupytext percent format) is the source of truth; `tools/sync_notebooks.py` regenerates
the .ipynb. Notebooks read GEMB_NOTEBOOK_SMALL=1 to shrink their settings for the tests.
"""

import os
import subprocess
import sys

import jupytext
import pytest

from _helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))


def _code_cells(nb):
  return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_ipynb_pair_is_in_sync(path):
  ipynb = path.with_suffix(".ipynb")
  assert ipynb.exists(), f"{ipynb.name} is missing: run python3 tools/sync_notebooks.py"
  assert _code_cells(jupytext.read(ipynb)) == _code_cells(jupytext.read(path)), (
      f"{ipynb.name} differs from {path.name}: run python3 tools/sync_notebooks.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_badge_and_install_cell(path):
  nb = jupytext.read(path)
  first = nb.cells[0].source
  assert "colab.research.google.com" in first and f"notebooks/{path.stem}.ipynb" in first
  assert any("pip install" in c.source for c in nb.cells[:4]), "an install cell comes first"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
  script = tmp_path / f"{path.stem}_run.py"
  # Shell and magic lines (`!pip install ...`) are Colab-only; jupytext writes them commented out.
  script.write_text(jupytext.writes(jupytext.read(path), fmt="py:percent"))
  env = dict(os.environ, GEMB_NOTEBOOK_SMALL="1", GEMB_PROGRESS="0", MPLBACKEND="Agg")
  out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
