"""Host-side batches for contrastive training: one task per batch, drawn by sampling rate.

The stream is a pure function of (seed, step): the task of step s, and the positions of its items
in that task's shuffled, repeated grain `MapDataset`, follow from the seed alone. So the "iterator
state" that a checkpoint must hold is the step, and a resumed run reads exactly the batches an
uninterrupted one would. Each process builds only its rows of the global batch.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable, Mapping, Sequence

import grain
import numpy as np

from gemb.data import protocol
from gemb.errors import ConfigError, InputError

# prepare(items, task or one task per item) -> model inputs
Prepare = Callable[[list, "str | None | Sequence[str | None]"], Mapping[str, np.ndarray]]
# [(items, task or one task per item), ...] -> one packed batch of all their items
# (`Encoder.prepare_packed`).
Pack = Callable[[list], Mapping[str, np.ndarray]]


def content_id(item: Any) -> int:
  """A stable 31-bit id of an item's content: equal items get equal ids (for the false-negative
  mask), across processes and runs (so not Python's salted `hash`)."""
  if isinstance(item, str):
    data = item.encode()
  elif isinstance(item, (bytes, bytearray)):
    data = bytes(item)
  elif isinstance(item, np.ndarray):
    data = item.tobytes() + str(item.shape).encode()
  elif isinstance(item, Mapping):
    data = repr(sorted((k, content_id(v)) for k, v in item.items())).encode()
  elif isinstance(item, (list, tuple)):
    data = repr([content_id(v) for v in item]).encode()
  elif dataclasses.is_dataclass(item):
    # Field by field: repr() of an Image/Video elides most pixels ("..."), so distinct images
    # with the same corners would collide and be masked as false negatives of each other.
    data = repr((type(item).__name__, [content_id(getattr(item, f.name))
                                       for f in dataclasses.fields(item)])).encode()
  else:
    data = repr(item).encode()
  return zlib.crc32(data) & 0x7FFFFFFF


@dataclasses.dataclass
class Mixture:
  """Tasks (random-access sources of pair dicts) with sampling rates; one task per batch.

  The keys name the mixture's entries (the dataset specs); each source declares in `task` the
  task its queries serve, which is the prompt they train with (`prompt_task`).
  """

  sources: Mapping[str, Any]
  rates: Mapping[str, float]
  global_batch: int
  seed: int = 0
  process_index: int = 0
  process_count: int = 1
  # Negatives each pair keeps (the stage's hard_negatives); None keeps all. The rest are never
  # decoded: a pre-finetuning stage (0) does not pay for the dataset's negative images.
  max_negatives: int | None = None

  def __post_init__(self):
    if not self.sources:
      raise ConfigError("The training mixture has no tasks; list at least one dataset.")
    missing = set(self.sources) ^ set(self.rates)
    if missing:
      raise ConfigError(f"Mixture tasks and rates differ on {sorted(missing)}.")
    rates = np.array([float(self.rates[t]) for t in self.sources])
    if (rates < 0).any() or rates.sum() <= 0:
      raise ConfigError(f"Mixture rates must be >= 0 with a positive sum; got {dict(self.rates)}.")
    if self.global_batch % self.process_count:
      raise ConfigError(f"The global batch {self.global_batch} does not divide over "
                        f"{self.process_count} processes.")
    undeclared = [name for name, src in self.sources.items()
                  if not isinstance(getattr(src, "task", None), str)]
    if undeclared:
      raise ConfigError(f"Mixture sources {undeclared} do not declare `task` (the task their "
                        "queries serve, e.g. 'search result'); every gemb.datasets entry must.")
    self.tasks = list(self.sources)
    self._p = rates / rates.sum()
    self._ds = {}
    for i, (name, src) in enumerate(self.sources.items()):
      if len(src) == 0:
        raise InputError(f"Task {name!r} has no pairs.")
      capped = src if self.max_negatives is None else _AtMostNegatives(src, self.max_negatives)
      self._ds[name] = grain.MapDataset.source(capped).shuffle(seed=self.seed * 1009 + i).repeat()
    self._task_of: list[int] = []  # the task sequence, extended lazily

  def _extend(self, upto: int) -> None:
    while len(self._task_of) <= upto:
      s = len(self._task_of)
      self._task_of.append(int(np.random.default_rng([self.seed, s]).choice(len(self.tasks),
                                                                            p=self._p)))

  def task(self, step: int) -> str:
    self._extend(step)
    return self.tasks[self._task_of[step]]

  def prompt_task(self, name: str) -> str:
    """The task prompt of mixture entry `name`: its dataset's declared task."""
    return self.sources[name].task

  def local_pairs(self, step: int) -> tuple[str, list[dict]]:
    """(task, this process's pairs of the global batch at `step`)."""
    self._extend(step)
    t = self._task_of[step]
    k = self._task_of[:step].count(t)  # batches of this task before this one
    rows = self.global_batch // self.process_count
    start = k * self.global_batch + self.process_index * rows
    ds = self._ds[self.tasks[t]]
    return self.tasks[t], [ds[start + j] for j in range(rows)]


class _AtMostNegatives:
  """`source` whose examples keep at most k negatives, asked of the source itself
  (`gemb.data.protocol.example`), so the others are never decoded."""

  def __init__(self, source: Any, k: int):
    self.source, self.k = source, k

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> dict:
    return protocol.example(self.source, i, max_negatives=self.k)


@dataclasses.dataclass
class PairBatcher:
  """Turns pair dicts into model inputs plus the ids that the false-negative mask needs.

  Queries are prompted with `task` (the dataset's declared task); each query independently
  loses its prompt with probability `prompt_dropout`, decided by (seed, step, the pair's content
  ids), so the decision does not depend on how the batch is split across processes.
  """

  prepare: Prepare
  hard_negatives: int = 0
  prompt_dropout: float = 0.0
  seed: int = 0
  # When set, queries, positives and negatives share packed rows under the key "packed"
  # (instead of one padded batch per side): the step costs the items' real tokens.
  pack: Pack | None = None

  def __call__(self, pairs: Sequence[Mapping], task: str | None, step: int) -> dict:
    for i, pr in enumerate(pairs):
      if "query" not in pr or "positive" not in pr:
        raise InputError(f"Training pair {i} of task {task!r} lacks 'query' or 'positive'; "
                         f"it has keys {sorted(pr)}.")
    # Each query loses its prompt with probability prompt_dropout, decided by (seed, step, the
    # pair's content ids): the same whichever process holds the pair and wherever in the batch.
    drop_b = np.array([np.random.default_rng(
        [self.seed, step, 7, content_id(p["query"]), content_id(p["positive"])]).random()
        < self.prompt_dropout for p in pairs], bool)
    q_tasks = [None if d else task for d in drop_b]
    sides = {"query": ([p["query"] for p in pairs], q_tasks),
             "positive": ([p["positive"] for p in pairs], None)}
    out: dict[str, Any] = {
        "q_id": np.array([content_id(p["query"]) for p in pairs], np.int32),
        "p_id": np.array([content_id(p["positive"]) for p in pairs], np.int32),
    }
    k = self.hard_negatives
    if k:
      negs, valid = [], np.zeros((len(pairs), k), bool)
      for i, pr in enumerate(pairs):
        mine = list(pr.get("negatives") or [])[:k]
        valid[i, :len(mine)] = True
        negs += mine + [pr["positive"]] * (k - len(mine))  # padding, masked by n_valid
      sides["negatives"] = (negs, None)
      out["n_id"] = np.array([content_id(n) for n in negs], np.int32).reshape(len(pairs), k)
      out["n_valid"] = valid
    if self.pack is not None:  # item order: queries, positives, negatives (the trainer splits)
      out["packed"] = dict(self.pack(list(sides.values())))
    else:
      out.update({name: dict(self.prepare(items, task)) for name, (items, task) in sides.items()})
    return out
