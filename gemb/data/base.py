"""What every built-in dataset shares: split assignment, the pair-source contract, retrieval tasks.

A dataset is registered in `gemb.datasets` as ``build(split="train", **options) -> PairSource``.
A `PairSource` is random-access (``len``, ``source[i] -> dict``) so grain can shuffle and shard
it; it holds light records and decodes media only in ``__getitem__``. Every example is a dict::

    {"query": item, "positive": item, "negatives": [items], "task": str (the source's task),
     "id": str, "group": str, "positive_id": str}

`group` names what must not be split across train/validation/test (an emoji and its skin tones,
a Python module); `positive_id` names the corpus item, so examples sharing a positive (one image
named in 14 languages) become one corpus entry in `retrieval_task`.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import numpy as np

from gemb.data.card import DatasetCard
from gemb.errors import ConfigError, InputError

SPLITS = ("train", "validation", "test")
# Percent of groups in each split; by group hash, so a split never changes when others grow.
SPLIT_PERCENT = {"test": 10, "validation": 10}


def split_of(group: str, salt: str = "gemb", percent: dict[str, int] | None = None) -> str:
  """The split of `group`: a stable hash (crc32, not Python's salted `hash`) into 100 buckets.

  `percent` ({"test": t, "validation": v}, default `SPLIT_PERCENT`) lets a small source give its
  test split a larger share, so that it reaches enough queries.
  """
  pct = SPLIT_PERCENT if percent is None else percent
  b = zlib.crc32(f"{salt}:{group}".encode()) % 100
  if b < pct["test"]:
    return "test"
  if b < pct["test"] + pct["validation"]:
    return "validation"
  return "train"


def check_split(split: str, name: str) -> str:
  if split not in SPLITS:
    raise ConfigError(f"Dataset {name!r} has splits {', '.join(SPLITS)}; got split={split!r}.")
  return split


class PairSource:
  """A random-access list of pair examples of one split.

  Subclasses give `records` (cheap, JSON-like dicts with at least ``id``, ``group``,
  ``positive_id`` and ``task``) and `materialize(record) -> example` (decodes media).

  `task` is the task the queries serve, in Gemini Embedding's names ("search result",
  "question answering", "code retrieval", "sentence similarity", ...): training, validation,
  evaluation and `Encoder.embed` all prompt the queries with ``task: <task> | query: <text>``.
  """

  def __init__(self, name: str, split: str, records: Sequence[dict],
               materialize: Callable[[dict], dict], card: DatasetCard,
               limit: int | None = None, skipped: int = 0, *, task: str):
    if not isinstance(task, str) or not task.strip():
      raise ConfigError(f"Dataset {name!r} must declare the task its queries serve (task=...), "
                        f"got {task!r}.")
    self.task = task
    self.name = name
    self.skipped = skipped  # examples dropped as corrupt (on_corrupt="skip")
    self.split = check_split(split, name)
    if limit is not None:
      if limit < 1:
        raise ConfigError(f"Dataset {name!r}: limit must be >= 1, got {limit}.")
      records = records[:limit]
    self.records = list(records)
    self._materialize = materialize
    self.card = card
    # The task its queries carry; by default the records' (one task per source).
    self.task = task or (self.records[0].get("task", "") if self.records else "")

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, i: int) -> dict:
    return self.example(i)

  def example(self, i: int, max_negatives: int | None = None) -> dict:
    """Example i with at most `max_negatives` of its negatives (None: all of them). The others
    are never decoded, so a stage that trains on k negatives, or on none, or brings mined ones,
    does not pay for the dataset's images."""
    if not -len(self) <= i < len(self):
      raise IndexError(f"{self.name}[{self.split}] has {len(self)} examples; index {i}.")
    rec = self.records[i]
    if max_negatives is not None and len(rec.get("negatives") or ()) > max_negatives:
      rec = {**rec, "negatives": list(rec["negatives"])[:max(max_negatives, 0)]}
    return self._materialize(rec)

  def __repr__(self) -> str:
    return f"<{self.name}[{self.split}]: {len(self)} examples>"

  def groups(self) -> set[str]:
    return {r["group"] for r in self.records}

  def retrieval_task(self, max_queries: int | None = None) -> tuple[list, list, list[dict]]:
    """(queries, corpus, qrels) for evaluation: one query per example, the corpus the distinct
    positives (and negatives) of the split; ``qrels[i]`` maps corpus positions to grade 1.

    Fits ``gemb.evaluation``'s ``RetrievalData(queries, corpus, qrels)``.
    """
    records = self.records[:max_queries] if max_queries else self.records
    corpus_pos: dict[str, int] = {}
    corpus: list[Any] = []
    for r in self.records:  # the whole split's positives, so retrieval is not trivially small
      if r["positive_id"] not in corpus_pos:
        corpus_pos[r["positive_id"]] = len(corpus)
        corpus.append(r)
    queries, qrels = [], []
    examples: dict[str, dict] = {}
    for r in records:
      ex = self._materialize(r)
      examples.setdefault(r["positive_id"], ex)
      queries.append(ex["query"])
      qrels.append({corpus_pos[r["positive_id"]]: 1.0})
    docs = [(examples.get(c["positive_id"]) or self._materialize(c))["positive"] for c in corpus]
    if not queries:
      raise InputError(f"{self.name}[{self.split}] is empty; nothing to evaluate.")
    return queries, docs, qrels


def stable_choice(key: str, options: Sequence[Any], k: int, exclude: Any = None) -> list:
  """Up to `k` distinct items of `options` (never `exclude`), fixed by `key` across runs."""
  pool = [o for o in options if o != exclude]
  if not pool:
    return []
  rng = np.random.default_rng(zlib.crc32(key.encode()))
  return [pool[j] for j in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]


def filter_decodable(records: list[dict], check: Callable[[dict], None], on_corrupt: str,
                     name: str) -> tuple[list[dict], int]:
  """Drops records whose media fail `check` when ``on_corrupt="skip"``; returns (kept, skipped).

  Only decode failures count: `check` raises `InputError` for an item that does not decode (the
  datasets' decoders wrap every codec error in one); any other exception is a bug and
  propagates. What was dropped is reported in one RuntimeWarning (count and first reasons).
  With ``on_corrupt="error"`` nothing is checked up front: a bad item raises when it is read.
  """
  from gemb.data.assets import DecodeCounter, warn_skipped
  if on_corrupt == "error":
    return records, 0
  if on_corrupt != "skip":
    raise ConfigError(f"Dataset {name!r}: on_corrupt must be 'error' or 'skip', got "
                      f"{on_corrupt!r}.")
  kept, counter = [], DecodeCounter()
  for r in records:
    try:
      check(r)
      kept.append(r)
    except InputError as e:
      counter.skip(str(r.get("id", "?")), e)
  warn_skipped(name, counter)
  return kept, counter.skipped


def describe(sizes: dict[str, int], text: str) -> str:
  """A registry description that leads with the split sizes, so `gemb list datasets` shows them
  even when it shortens the line."""
  short = {"validation": "val"}
  return " ".join(f"{short.get(k, k)}={v}" for k, v in sizes.items()) + "; " + text
