"""The evaluator contract: an embed function in, metrics (with per-query values) out.

An evaluator is built from a recipe entry (its registry name plus keyword arguments), holds its
task data, and is run against an embed function::

    ev = gemb.evaluators.get("retrieval")(data, metrics=("ndcg@10",))
    for name, value in ev.run(embed_fn, dim=256): ...
    result = ev.score(embed_fn, dim=256)  # values, chance levels, per-query values, sizes

`embed_fn(items, task=None, dim=None) -> [n, d] array` is all an evaluator knows of the model, so
evaluators can be tested with fake embed functions and used with any model. Embeddings are
L2-normalized here again (`embed_all`), so every score is a cosine.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from gemb.errors import InputError
from gemb.model.backbone import matryoshka

EmbedFn = Callable[..., np.ndarray]


def embed_all(embed_fn: EmbedFn, items: Sequence[Any], *, task: str | None, dim: int | None,
              batch_size: int = 64) -> np.ndarray:
  """Embeds `items` in batches; checks the shape and values; returns L2-normalized float32."""
  out = []
  for lo in range(0, len(items), batch_size):
    batch = list(items[lo:lo + batch_size])
    emb = np.asarray(embed_fn(batch, task=task, dim=dim), np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(batch):
      raise InputError(f"embed_fn returned shape {emb.shape} for {len(batch)} items; it must "
                       "return one row per item, [n, d].")
    if dim is not None and emb.shape[1] != dim:
      raise InputError(f"embed_fn was asked for dim={dim} but returned d={emb.shape[1]}.")
    if not np.isfinite(emb).all():
      raise InputError(f"embed_fn returned NaN/inf embeddings (task={task!r}, dim={dim}).")
    out.append(emb)
  return matryoshka(np.concatenate(out))


@dataclasses.dataclass
class TaskResult:
  """One evaluation of one task at one dim.

  `per_query[metric]` holds the per-query values the metric averages, as strata: the metric is
  the unweighted mean of the strata's means (one stratum for most metrics; MSCOCO's mean_R@1 has
  one per direction). Metrics that are not means over queries (Spearman, V-measure) have none.
  `chance[metric]` is the metric's expected value under a random ranking (or labelling).
  """

  values: dict[str, float]
  chance: dict[str, float]
  per_query: dict[str, tuple[np.ndarray, ...]]
  n_queries: int
  n_corpus: int


class Evaluator(abc.ABC):
  """Takes an embed function; `score` returns a TaskResult, `run` yields (metric_name, value)."""

  main_metric: str = ""

  def __init__(self, data: Any, *, batch_size: int = 64):
    self._data = data
    self.batch_size = batch_size

  @property
  def data(self) -> Any:
    if callable(self._data) and not dataclasses.is_dataclass(self._data):
      self._data = self._data()  # lazily loaded data, e.g. a dataset split
    return self._data

  def embed(self, embed_fn: EmbedFn, items, task, dim) -> np.ndarray:
    return embed_all(embed_fn, items, task=task, dim=dim, batch_size=self.batch_size)

  @abc.abstractmethod
  def score(self, embed_fn: EmbedFn, dim: int | None = None) -> TaskResult:
    ...

  def run(self, embed_fn: EmbedFn, dim: int | None = None) -> Iterator[tuple[str, float]]:
    yield from self.score(embed_fn, dim).values.items()

  def evaluate(self, embed_fn: EmbedFn, dim: int | None = None) -> dict[str, float]:
    return {k: float(v) for k, v in self.run(embed_fn, dim)}


def single(per_query: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, ...]]:
  """{metric: (values,)}: per-query values as one stratum."""
  return {k: (np.asarray(v, np.float64),) for k, v in per_query.items()}
