"""Plots for eval reports: metric-vs-dimension curves and a grid of top-k results."""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gemb.errors import InputError
from gemb.io import atomic_path


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # files only; never needs a display
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: str | os.PathLike) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with warnings.catch_warnings(), atomic_path(path) as tmp:
    # matplotlib's bundled font has no CJK glyphs; such labels render as boxes, which is fine.
    warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
  return path


def plot_metric_vs_dim(report: Mapping[str, Any], path: str | os.PathLike,
                       title: str = "Main metric vs. embedding dimension") -> pathlib.Path:
  """One line per task: its main metric at each Matryoshka dim (log2 x axis)."""
  plt = _pyplot()
  numeric = [d for d in report["dims"] if d != "full"]
  if not numeric:
    raise InputError("plot_metric_vs_dim needs a report with numeric dims, e.g. dims=(64, 768).")
  xs = sorted(int(d) for d in numeric)
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for task, per_dim in report["main"].items():
    ys = [per_dim.get(str(x)) for x in xs]
    ax.plot(xs, [np.nan if y is None else y for y in ys], marker="o",
            label=f"{task} ({report['main_metric'][task]})")
  ax.set_xscale("log", base=2)
  ax.set_xticks(xs, [str(x) for x in xs])
  ax.set_xlabel("embedding dimension (Matryoshka prefix)")
  ax.set_ylabel("score")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  path = _save(fig, path)
  plt.close(fig)
  return path


def plot_topk_grid(examples: Sequence[Mapping[str, Any]], render: Callable[[Any], Any],
                   path: str | os.PathLike, title: str = "") -> pathlib.Path:
  """A grid: one row per query, the query then its top-k results (green frame: relevant).

  `examples` are what an evaluator's `examples(...)` returns ({"query", "results", "relevant",
  optionally "direction"}); `render(item)` returns a thumbnail, an [h, w] or [h, w, 3] array (or
  a PIL image), or a string for text, which is drawn as wrapped text.
  """
  if not examples:
    raise InputError("plot_topk_grid got no examples to draw.")
  plt = _pyplot()
  k = max(len(e["results"]) for e in examples)
  rows = len(examples)
  fig, axes = plt.subplots(rows, k + 1, figsize=(1.9 * (k + 1), 1.9 * rows), squeeze=False)
  for r, ex in enumerate(examples):
    cells = [(ex["query"], None)] + list(zip(ex["results"], ex["relevant"]))
    for c in range(k + 1):
      ax = axes[r][c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c >= len(cells):
        ax.axis("off")
        continue
      item, relevant = cells[c]
      _draw(ax, render(item))
      if c == 0:
        ax.set_title(ex.get("direction", "query"), fontsize=7)
        color = "black"
      else:
        ax.set_title(f"#{c}", fontsize=7)
        color = "tab:green" if relevant else "tab:red"
      for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2.5)
  if title:
    fig.suptitle(title, fontsize=9)
  path = _save(fig, path)
  plt.close(fig)
  return path


def _draw(ax, thumb: Any) -> None:
  if isinstance(thumb, str):
    import textwrap
    ax.text(0.5, 0.5, textwrap.fill(thumb[:120], 22), ha="center", va="center", fontsize=6,
            transform=ax.transAxes)
    return
  arr = np.asarray(thumb)
  if arr.ndim not in (2, 3):
    raise InputError(f"render() must return text or an image array [h, w(, c)], got {arr.shape}.")
  ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
