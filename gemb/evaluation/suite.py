"""Running a suite of evaluators at every Matryoshka dim, and the readable table of the result."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from gemb.errors import ConfigError
from gemb.evaluation.evaluators import EmbedFn, Evaluator, build_evaluator

Tasks = Mapping[str, "Evaluator | Mapping[str, Any]"]


def build_suite(entries: Tasks, load_data: Callable[..., Any] | None = None
                ) -> dict[str, Evaluator]:
  """{task name: evaluator} from {task name: evaluator or recipe entry}."""
  if not entries:
    raise ConfigError("The evaluation suite is empty: give at least one task.")
  return {name: e if isinstance(e, Evaluator) else build_evaluator(e, load_data)
          for name, e in entries.items()}


def evaluate_suite(embed_fn: EmbedFn, tasks: Tasks, dims: Sequence[int | None] = (None,),
                   load_data: Callable[..., Any] | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Runs every task at every dim. Returns a JSON-able report::

      {"dims": [768, 256], "main_metric": {task: name},
       "results": {task: {"768": {metric: value, ...}, ...}},
       "main": {task: {"768": value, ...}}, "seconds": {task: {"768": s}}}

  `dims` entries are passed to embed_fn as its `dim` (None: the model's full size, written "full").
  """
  if not dims:
    raise ConfigError("evaluate_suite needs at least one dim (None for the full size).")
  suite = build_suite(tasks, load_data)
  keys = [_dim_key(d) for d in dims]
  report: dict[str, Any] = {"dims": keys, "main_metric": {}, "results": {}, "main": {},
                            "seconds": {}}
  for name, ev in suite.items():
    report["main_metric"][name] = ev.main_metric
    for dim, key in zip(dims, keys):
      if progress:
        progress(f"{name} @ {key}")
      start = time.perf_counter()
      values = ev.evaluate(embed_fn, dim)
      report["results"].setdefault(name, {})[key] = values
      report["main"].setdefault(name, {})[key] = values.get(ev.main_metric)
      report["seconds"].setdefault(name, {})[key] = round(time.perf_counter() - start, 3)
  return report


def _dim_key(dim: int | None) -> str:
  return "full" if dim is None else str(int(dim))


def format_table(report: Mapping[str, Any], all_metrics: bool = False) -> str:
  """A Markdown table: one row per task (and metric), one column per dim."""
  dims = list(report["dims"])
  lines = ["| task | metric | " + " | ".join(dims) + " |",
           "|---|---|" + "---:|" * len(dims)]
  for task, per_dim in report["results"].items():
    names = [report["main_metric"][task]]
    if all_metrics:
      names += [m for m in next(iter(per_dim.values())) if m not in names]
    for metric in names:
      cells = []
      for d in dims:
        v = per_dim.get(d, {}).get(metric)
        cells.append("-" if v is None else f"{100 * v:.2f}")
      lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n\n(values x 100)\n"
