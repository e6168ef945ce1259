"""Regenerates notebooks/*.ipynb from their jupytext .py sources (outputs are not stored)."""

import pathlib

import jupytext

ROOT = pathlib.Path(__file__).resolve().parent.parent

for py in sorted((ROOT / "notebooks").glob("*.py")):
  nb = jupytext.read(py)
  nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  nb.metadata["colab"] = {"provenance": []}
  jupytext.write(nb, py.with_suffix(".ipynb"))
  print("wrote", py.with_suffix(".ipynb").relative_to(ROOT))
