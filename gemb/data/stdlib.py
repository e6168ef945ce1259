"""Real code and prose from the installed Python standard library, read with `ast` (never
imported: importing every stdlib module has side effects, e.g. `antigravity` opens a browser).

Shared by the `code` (docstring summary -> source) and `text-pairs` (summary -> description)
datasets. Everything is derived at run time from the interpreter gemb runs on, so nothing is
committed; sizes vary slightly between Python versions (the cards quote Python 3.11).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import os
import sysconfig
import textwrap
import warnings

# Folders that hold tests, demos, vendored tools or third-party packages, not library code.
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "__pycache__", "idle_test",
             "lib2to3", "ensurepip", "turtledemo", "venv", "pydoc_data"}


@dataclasses.dataclass(frozen=True)
class Definition:
  module: str  # dotted module name, e.g. "email.utils"
  qualname: str  # "Class.method" or "function"
  kind: str  # "function" | "class" | "module"
  summary: str  # the docstring's first paragraph, one line
  description: str  # the rest of the docstring
  code: str  # the source without its docstring, dedented ("" for modules)


def stdlib_root() -> str:
  return sysconfig.get_paths()["stdlib"]


def _module_files(root: str) -> list[tuple[str, str]]:
  out = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("config-"))
    for f in sorted(filenames):
      if not f.endswith(".py") or f.startswith("test_"):
        continue
      rel = os.path.relpath(os.path.join(dirpath, f), root)[:-3].split(os.sep)
      if rel[-1] == "__init__":
        rel = rel[:-1]
      if rel and not any(p.startswith("_") and p != "__main__" for p in rel[:1]):
        out.append((".".join(rel), os.path.join(dirpath, f)))
  return out


def _split_doc(doc: str) -> tuple[str, str]:
  doc = inspect_cleandoc(doc)
  first, _, rest = doc.partition("\n\n")
  return " ".join(first.split()), rest.strip()


def inspect_cleandoc(doc: str) -> str:
  import inspect
  return inspect.cleandoc(doc)


def _strip_docstring(node: ast.AST, lines: list[str]) -> str:
  """The definition's source with its docstring statement removed, dedented."""
  doc = node.body[0]
  start, end = node.lineno - 1, node.end_lineno
  if getattr(node, "decorator_list", None):
    start = min(d.lineno for d in node.decorator_list) - 1
  keep = [l for k, l in enumerate(lines[start:end], start)
          if not (doc.lineno - 1 <= k <= doc.end_lineno - 1)]
  return textwrap.dedent("\n".join(keep)).strip("\n")


def _walk(tree: ast.Module, prefix: str = ""):
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      yield prefix + node.name, node
      if isinstance(node, ast.ClassDef):
        yield from _walk(node, prefix + node.name + ".")


@functools.lru_cache(maxsize=4)
def definitions(root: str | None = None) -> tuple[Definition, ...]:
  """Every documented module, class and function of the stdlib at `root`, in a fixed order."""
  root = root or stdlib_root()
  out: list[Definition] = []
  for module, path in _module_files(root):
    try:
      with open(path, encoding="utf-8") as f:
        src = f.read()
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        tree = ast.parse(src)
    except (SyntaxError, UnicodeDecodeError, OSError):
      continue  # a few stdlib files are templates or Python-2 examples
    lines = src.splitlines()
    doc = ast.get_docstring(tree)
    if doc:
      s, d = _split_doc(doc)
      out.append(Definition(module, "", "module", s, d, ""))
    for qualname, node in _walk(tree):
      doc = ast.get_docstring(node)
      if not doc:
        continue
      s, d = _split_doc(doc)
      kind = "class" if isinstance(node, ast.ClassDef) else "function"
      code = _strip_docstring(node, lines) if kind == "function" else ""
      out.append(Definition(module, qualname, kind, s, d, code))
  return tuple(out)
