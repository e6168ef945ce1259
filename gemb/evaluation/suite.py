"""Running a suite of evaluators at every Matryoshka dim, and the readable table of the result."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from gemb.errors import ConfigError
from gemb.evaluation.bootstrap import bootstrap_ci
from gemb.evaluation.build import build_evaluator
from gemb.evaluation.contract import EmbedFn, Evaluator

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
                   progress: Callable[[str], None] | None = None,
                   splits: Mapping[str, str] | None = None) -> dict[str, Any]:
  """Runs every task at every dim. Returns a JSON-able report::

      {"dims": ["768", "256"], "main_metric": {task: name}, "split": {task: "test"},
       "results": {task: {"768": {metric: value, ...}, ...}},
       "main": {task: {"768": value, ...}},
       "ci95": {task: {"768": {metric: [lo, hi], ...}}},   # bootstrap over queries
       "chance": {task: {metric: value}},                  # expected value, random ranking
       "n_queries": {task: n}, "n_corpus": {task: n},
       "per_query": {task: {"768": [[...], ...]}},         # the main metric's strata
       "seconds": {task: {"768": s}}}

  `dims` entries are passed to embed_fn as its `dim` (None: the model's full size, written
  "full"). `splits` names each task's split for the table (entries' ``split`` otherwise).
  """
  if not dims:
    raise ConfigError("evaluate_suite needs at least one dim (None for the full size).")
  suite = build_suite(tasks, load_data)
  keys = [_dim_key(d) for d in dims]
  report: dict[str, Any] = {"dims": keys, "main_metric": {}, "split": {}, "results": {},
                            "main": {}, "ci95": {}, "chance": {}, "n_queries": {},
                            "n_corpus": {}, "per_query": {}, "seconds": {}}
  for name, ev in suite.items():
    report["main_metric"][name] = ev.main_metric
    entry = tasks[name]
    split = (splits or {}).get(name) or (None if isinstance(entry, Evaluator) or "data" in entry
                                         else entry.get("split", "test"))
    report["split"][name] = split
    for dim, key in zip(dims, keys):
      if progress:
        progress(f"{name} @ {key}")
      start = time.perf_counter()
      res = ev.score(embed_fn, dim)
      report["results"].setdefault(name, {})[key] = res.values
      report["main"].setdefault(name, {})[key] = res.values.get(ev.main_metric)
      report["ci95"].setdefault(name, {})[key] = {
          m: list(bootstrap_ci(strata)) for m, strata in res.per_query.items()}
      if ev.main_metric in res.per_query:
        report["per_query"].setdefault(name, {})[key] = [
            [round(float(x), 6) for x in s] for s in res.per_query[ev.main_metric]]
      report["chance"][name] = res.chance
      report["n_queries"][name], report["n_corpus"][name] = res.n_queries, res.n_corpus
      report["seconds"].setdefault(name, {})[key] = round(time.perf_counter() - start, 3)
  return report


def _dim_key(dim: int | None) -> str:
  return "full" if dim is None else str(int(dim))


def format_table(report: Mapping[str, Any], all_metrics: bool = False) -> str:
  """A Markdown table: one row per task (and metric), one column per dim, each value with its
  95% bootstrap interval over queries, and the metric's chance level."""
  dims = list(report["dims"])
  lines = ["| task | split | queries / corpus | metric | chance | " + " | ".join(dims) + " |",
           "|---|---|---:|---|---:|" + "---:|" * len(dims)]
  for task, per_dim in report["results"].items():
    names = [report["main_metric"][task]]
    if all_metrics:
      names += [m for m in next(iter(per_dim.values())) if m not in names]
    split = (report.get("split") or {}).get(task) or "-"
    size = f"{report['n_queries'][task]} / {report['n_corpus'][task]}" \
        if task in report.get("n_queries", {}) else "-"
    for metric in names:
      chance = report.get("chance", {}).get(task, {}).get(metric)
      cells = []
      for d in dims:
        v = per_dim.get(d, {}).get(metric)
        ci = report.get("ci95", {}).get(task, {}).get(d, {}).get(metric)
        cell = "-" if v is None else f"{100 * v:.2f}"
        if v is not None and ci is not None:
          cell += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        cells.append(cell)
      lines.append(f"| {task} | {split} | {size} | {metric} | "
                   f"{'-' if chance is None else f'{100 * chance:.2f}'} | " + " | ".join(cells)
                   + " |")
  return "\n".join(lines) + ("\n\n(values x 100; [95% bootstrap interval over queries]; chance: "
                             "the expected value under a random ranking)\n")
