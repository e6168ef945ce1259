"""Building evaluators from recipe entries."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from gemb.errors import ConfigError
from gemb.evaluation.contract import Evaluator
from gemb.registry import evaluators

DataLoader = Callable[..., Any]


def build_evaluator(entry: Mapping[str, Any], load_data: DataLoader | None = None) -> Evaluator:
  """Builds an evaluator from a recipe entry such as::

      {"kind": "retrieval", "dataset": "tiny_text", "split": "test", "metrics": ["ndcg@10"]}

  `kind` is a `gemb.evaluators` spec. The task data comes from ``entry["data"]`` (a task-data
  object or a callable returning one) or, when the entry names a ``dataset``, from
  ``load_data(dataset=..., split=..., kind=...)``.
  """
  entry = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
  if "kind" not in entry:
    raise ConfigError(f"Evaluator entry {entry!r} has no 'kind'; known kinds: "
                      f"{', '.join(evaluators.names())}.")
  kind = entry.pop("kind")
  entry.pop("name", None)
  if "data" in entry:
    data = entry.pop("data")
  elif "dataset" in entry:
    if load_data is None:
      raise ConfigError(f"Evaluator entry for {kind!r} names dataset {entry['dataset']!r} but no "
                        "data loader was given; pass load_data=... to build_evaluator.")
    dataset, split = entry.pop("dataset"), entry.pop("split", "test")
    data = lambda: load_data(dataset=dataset, split=split, kind=kind)  # noqa: E731
  else:
    raise ConfigError(f"Evaluator entry for {kind!r} needs 'data' or 'dataset'.")
  try:
    return evaluators.get(kind)(data, **entry)
  except TypeError as e:
    raise ConfigError(f"Evaluator entry for {kind!r}: {e}.") from None
