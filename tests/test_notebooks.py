"""The Colab notebooks are executed, and each .ipynb is checked against its jupytext .py pair.

The .py (jupytext percent format) is the source of truth; `tools/sync_notebooks.py` regenerates
the .ipynb. Notebooks read GEMB_NOTEBOOK_SMALL=1 to shrink their settings for the tests.
"""

import importlib.util
import os
import subprocess
import sys
import tomllib

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


def _sync_tool():
  spec = importlib.util.spec_from_file_location("sync_notebooks", REPO / "tools" / "sync_notebooks.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_badge_and_install_cell(path):
  """Badge and install cell are the ones generated from pyproject's Repository URL and
  requirements-data.txt (one place), and come first."""
  sync = _sync_tool()
  assert sync.rewrite(path.read_text(), path.stem) == path.read_text(), (
      f"{path.name}: badge or install cell out of date: run python3 tools/sync_notebooks.py")
  nb = jupytext.read(path)
  assert sync.badge(path.stem) in nb.cells[0].source
  url = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
  assert f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/" \
      f"notebooks/{path.stem}.ipynb" in nb.cells[0].source
  assert nb.cells[1].cell_type == "code" and nb.cells[1].source == sync.install_cell()
  code = nb.cells[1].source
  assert f'"gemb @ git+{url}"' in code
  for line in (REPO / "requirements-data.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
      assert repr(line.strip()) in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
  script = tmp_path / f"{path.stem}_run.py"
  # Shell and magic lines (`!pip install ...`) are Colab-only; jupytext writes them commented out.
  script.write_text(jupytext.writes(jupytext.read(path), fmt="py:percent"))
  env = dict(os.environ, GEMB_NOTEBOOK_SMALL="1", GEMB_PROGRESS="0", MPLBACKEND="Agg")
  out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
