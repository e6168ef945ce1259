"""The dataset protocol: what every `gemb.datasets` entry gives, checked when it is built.

An entry is ``build(split=..., **options) -> source``. The entry may declare ``task`` (the
Gemini-style task name its queries carry, e.g. "search result") and ``splits`` (the splits it
has; default train/validation/test) as attributes. The source it returns provides:

* ``name``, ``split`` (str), ``card`` (a `DatasetCard`), ``task`` (a non-empty str);
* ``len(source)`` and ``source[i] -> {"query", "positive", "negatives", "task", "id", "group",
  "positive_id"}`` (random access, so grain can shuffle and shard it);
* ``records``: a random-access sequence of light per-example dicts with at least ``id``,
  ``group``, ``positive_id`` and ``task`` (no media decoded);
* ``retrieval_task(max_queries=None) -> (queries, corpus, qrels)`` for `gemb.evaluation`;
* optionally ``example(i, max_negatives=None)``: example i with at most that many negatives,
  decoding no others (`PairSource` has it). Training asks through `example` below, so a source
  without it still works and only decodes more than it needs.

`gemb.datasets.build` runs `check_source` on what an entry returns, so a third-party dataset
that misses a piece fails at build time with a message naming it, not later in a trainer or
evaluator.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from gemb.data.card import DatasetCard
from gemb.errors import ConfigError

DEFAULT_SPLITS = ("train", "validation", "test")
EXAMPLE_KEYS = ("query", "positive", "negatives", "task", "id", "group", "positive_id")
RECORD_KEYS = ("id", "group", "positive_id", "task")


@runtime_checkable
class DatasetSource(Protocol):
  """One split of a dataset (see the module docstring)."""

  name: str
  split: str
  card: DatasetCard
  task: str
  records: Sequence[dict]

  def __len__(self) -> int: ...

  def __getitem__(self, i: int) -> dict: ...

  def retrieval_task(self, max_queries: int | None = None) -> tuple[list, list, list[dict]]: ...


def example(source: Any, i: int, max_negatives: int | None = None) -> dict:
  """Example i of `source` with at most `max_negatives` negatives (None: all): through the
  source's own ``example`` where it has one, else ``source[i]`` with its negatives cut."""
  if callable(getattr(source, "example", None)):
    return dict(source.example(i, max_negatives=max_negatives))
  ex = dict(source[i])
  if max_negatives is not None:
    ex["negatives"] = list(ex.get("negatives") or [])[:max(max_negatives, 0)]
  return ex


def splits_of(entry: Any) -> tuple[str, ...]:
  """The splits a registered entry declares (``entry.splits``), else train/validation/test."""
  return tuple(getattr(entry, "splits", DEFAULT_SPLITS))


def check_source(spec: str, source: Any, entry: Any = None) -> Any:
  """Raises ConfigError naming what `source` (built from `spec`) lacks; returns it.

  A source without a ``task`` takes its entry's declared ``task``.
  """
  missing = [a for a in ("name", "split", "card", "records") if not hasattr(source, a)]
  missing += [m for m in ("__len__", "__getitem__", "retrieval_task")
              if not callable(getattr(source, m, None))]
  if missing:
    raise ConfigError(
        f"gemb.datasets entry {spec!r} returned a {type(source).__name__} without "
        f"{', '.join(missing)}. A dataset gives name, split, card, records, len(), [i] and "
        "retrieval_task() (see gemb.data.protocol); wrap other data (ratings, tables) in its "
        "own module instead of gemb.datasets.")
  task = getattr(source, "task", None) or getattr(entry, "task", None)
  if (not isinstance(task, str) or not task) and len(source) > 0:  # empty: nothing to prompt
    raise ConfigError(f"gemb.datasets entry {spec!r} declares no task: set `task = \"...\"` "
                      "(e.g. \"search result\") on the entry or its source.")
  if task and getattr(source, "task", None) != task:
    source.task = task
  if not isinstance(source.card, DatasetCard):
    raise ConfigError(f"gemb.datasets entry {spec!r}: card is a {type(source.card).__name__}, "
                      "not a gemb.data.DatasetCard.")
  allowed = splits_of(entry) if entry is not None else DEFAULT_SPLITS
  if source.split not in allowed and entry is not None and hasattr(entry, "splits"):
    raise ConfigError(f"gemb.datasets entry {spec!r} built split {source.split!r}; it declares "
                      f"{', '.join(allowed)}.")
  return source


def check_example(spec: str, example: Any) -> None:
  """Raises ConfigError when `example` lacks a key of the example contract."""
  missing = [k for k in EXAMPLE_KEYS if k not in example] if isinstance(example, dict) else \
      list(EXAMPLE_KEYS)
  if missing:
    raise ConfigError(f"gemb.datasets entry {spec!r}: an example lacks {', '.join(missing)}; "
                      f"examples are dicts with {', '.join(EXAMPLE_KEYS)}.")
