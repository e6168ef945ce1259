"""`scann`: ScaNN with tree partitioning, anisotropic asymmetric hashing and exact reordering.

Parameters left as None are chosen from the corpus size at build time (`auto_params`):

* n < `brute_force_below` (20k): exact brute force. Cheap at that size, and exact.
* with `brute_force_below` lowered, n < 5k: asymmetric hashing over all vectors, no tree.
* otherwise: about sqrt(n) leaves trained on up to 100k vectors (from 250k vectors on:
  2 sqrt(n) leaves trained on 100 vectors each), AH with 4 dims per block for
  d >= 64, else 2 (16 centres per block, ScaNN's LUT16 kernel) and anisotropic threshold 0.2,
  a sixth of the leaves searched (a third below 20k vectors, where leaves are few) and the top
  300 candidates rescored exactly.

On 2k-7k real MiniLM embeddings (384-d, best QPS at recall@10 >= 0.95 over the search knobs) a
tree of sqrt(n) leaves matched AH alone at 5k vectors and was 13% faster at 7k (77k vs 68k QPS);
AH alone was faster at 3.5k (111k vs 104k).

Tuned on 1M x 128 clustered vectors (`benchmarks/retrieval.py`): 4 dims per block scores twice as
fast as 2 and, with 300 candidates reordered, loses no recall; 2000 leaves beat 1000 by 22% QPS
at recall 0.95 (timed in one process). `soar_lambda` (SOAR spilling, each
vector also filed under a second leaf) reaches recall with fewer leaves but is opt-in: ScaNN
1.4.2 crashes deleting from a spilled index, so `remove()` is refused on one.

The search-time knobs `leaves_to_search` and `reorder` are plain attributes and may be changed
between searches (a benchmark sweeps them to find the cheapest setting at a target recall).
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np

from gemb.errors import InputError
from gemb.registry import retrievers
from gemb.retrieval.base import Index


def _scann_ops():
  from scann.scann_ops.py import scann_ops_pybind  # heavy import; only when used
  return scann_ops_pybind


TREE_ABOVE = 5000  # below this a tree does not pay: AH scores every vector
SMALL_TREE = 20000  # below this, search a third of the (few) leaves instead of a sixth
BIG = 250_000  # from here on, twice as many leaves


def auto_params(n: int, d: int, brute_force_below: int = 20000) -> dict[str, Any]:
  """Default ScaNN parameters for a corpus of n vectors of dim d (see the module docstring)."""
  # 4 dims per block scores fastest, but the code must keep >= 16 blocks (64 bits): on d=33
  # (9 blocks) tight clusters lost 8% recall@10 that 2 dims per block kept.
  dpb = 4 if d >= 64 else 2
  if n < brute_force_below:
    return {"num_leaves": 0, "leaves_to_search": 0, "reorder": 0, "dims_per_block": dpb}
  if n < TREE_ABOVE:
    return {"num_leaves": 0, "leaves_to_search": 0, "reorder": 100, "dims_per_block": dpb}
  # On 1M x 128, 2 sqrt(n) leaves (trained on 100 vectors each) gave 22% more QPS at recall 0.95
  # than sqrt(n); below 250k, sqrt(n) is what the tests measured.
  per_sqrt = 2 if n >= BIG else 1
  leaves = int(round(per_sqrt * math.sqrt(n)))
  share = 3 if n < SMALL_TREE else 6
  return {"num_leaves": leaves, "leaves_to_search": max(8, leaves // share), "reorder": 300,
          "dims_per_block": dpb, "training_sample_size": min(n, 100 * leaves if n >= BIG
                                                                else 100_000)}


@retrievers.register("scann")
class ScannIndex(Index):
  """ScaNN: tree partitioning + asymmetric hashing + reordering; parameters from corpus size."""

  backend = "scann"

  def __init__(self, num_leaves: int | None = None, leaves_to_search: int | None = None,
               reorder: int | None = None, dims_per_block: int | None = None,
               anisotropic_threshold: float = 0.2, training_sample_size: int | None = None,
               soar_lambda: float | None = None, brute_force_below: int = 20000,
               threads: int = 0, query_batch: int = 256):
    super().__init__()
    self.num_leaves = num_leaves
    self.leaves_to_search = leaves_to_search
    self.reorder = reorder
    self.dims_per_block = dims_per_block
    self.anisotropic_threshold = anisotropic_threshold
    self.training_sample_size = training_sample_size
    self.soar_lambda = soar_lambda
    self.brute_force_below = brute_force_below
    self.threads = threads
    self.query_batch = query_batch
    self._searcher = None  # the scann_pybind.ScannNumpy object; rows map to self.ids_n

  def params(self) -> dict[str, Any]:
    return {"num_leaves": self.num_leaves, "leaves_to_search": self.leaves_to_search,
            "reorder": self.reorder, "dims_per_block": self.dims_per_block,
            "anisotropic_threshold": self.anisotropic_threshold,
            "training_sample_size": self.training_sample_size,
            "soar_lambda": self.soar_lambda, "brute_force_below": self.brute_force_below,
            "threads": self.threads, "query_batch": self.query_batch}

  def _build(self, emb_nd, ids_n):
    n, d = emb_nd.shape
    auto = auto_params(n, d, self.brute_force_below)
    if self.num_leaves and self.reorder is None:  # a tree asked for on a small corpus: AH too
      auto["reorder"] = 300
    for key, value in auto.items():
      if getattr(self, key, None) is None:
        setattr(self, key, value)
    if self.num_leaves and not self.leaves_to_search:
      self.leaves_to_search = max(1, self.num_leaves // 6)
    if self.num_leaves and self.num_leaves > n:
      raise InputError(f"scann: num_leaves={self.num_leaves} exceeds the corpus size {n}.")
    if self.soar_lambda is not None and not self.num_leaves:
      raise InputError("scann: soar_lambda spills vectors across tree leaves; it needs a tree "
                       f"(num_leaves > 0), but this corpus of {n} gets none. Set num_leaves.")
    builder = _scann_ops().builder(self._blocked(emb_nd), 10, "dot_product")
    if self.threads:
      builder = builder.set_n_training_threads(self.threads)
    if self.num_leaves:
      soar = ({} if self.soar_lambda is None else
              {"soar_lambda": float(self.soar_lambda), "overretrieve_factor": 2.0})
      builder = builder.tree(num_leaves=self.num_leaves,
                             num_leaves_to_search=min(self.leaves_to_search, self.num_leaves),
                             training_sample_size=min(self.training_sample_size or n, n), **soar)
    if self.reorder:  # asymmetric hashing, then exact rescoring of the best `reorder`
      builder = builder.score_ah(self.dims_per_block,
                                 anisotropic_quantization_threshold=self.anisotropic_threshold,
                                 training_sample_size=min(n, 100_000))
      builder = builder.reorder(self.reorder)
    else:
      builder = builder.score_brute_force()
    self._searcher = builder.build().searcher
    if self.threads:
      self._searcher.set_num_threads(self.threads)

  def _blocked(self, x_nd: np.ndarray) -> np.ndarray:
    """Zero-pads the columns to a multiple of dims_per_block, which asymmetric hashing needs.

    Zero columns add nothing to inner products, so any dimension works; the pad is derived from
    `dim` and `dims_per_block`, so saved indexes need no extra state.
    """
    pad = -x_nd.shape[1] % self.dims_per_block
    return np.pad(x_nd, ((0, 0), (0, pad))) if pad else x_nd

  def _search(self, q_qd, k):
    leaves = min(self.leaves_to_search, self.num_leaves) if self.num_leaves else -1
    pre = max(self.reorder, k) if self.reorder else -1
    parallel = q_qd.shape[0] > self.query_batch
    rows, dist = self._searcher.search_batched(self._blocked(q_qd), k, pre, leaves, parallel,
                                               self.query_batch)
    rows = np.asarray(rows)
    if rows.shape != (q_qd.shape[0], k):  # ScaNN pads short results only in edge cases
      raise RuntimeError(f"scann returned shape {rows.shape} for {q_qd.shape[0]} queries, k={k}.")
    return rows.astype(np.int64), np.asarray(dist, np.float32)

  def _add(self, emb_nd, ids_n):
    rows = self._searcher.upsert([None] * emb_nd.shape[0], self._blocked(emb_nd), 1)
    start = len(self)
    if list(rows) != list(range(start, start + emb_nd.shape[0])):
      raise RuntimeError(f"scann upsert placed rows {list(rows)[:5]}..., expected {start}...")
    self.ids_n = np.concatenate([self.ids_n, ids_n])

  def _remove(self, ids_n):
    if self.soar_lambda is not None:
      raise InputError("scann: remove() is not supported on an index built with soar_lambda "
                       "(ScaNN 1.4.2 crashes deleting spilled vectors). Rebuild without the "
                       "removed items, or build without soar_lambda if items are removed.")
    # ScaNN deletes a row by moving the last row into its place, one row at a time; mirror it
    # on ids_n so that rows keep mapping to the right ids.
    order = np.argsort(self.ids_n, kind="stable")
    first_rows = order[np.searchsorted(self.ids_n, ids_n, sorter=order)]
    ids = self.ids_n.copy()
    moved: dict[int, int] = {}
    n = ids.shape[0]
    rows = []
    for item, row0 in zip(ids_n.tolist(), first_rows.tolist()):
      row = moved.pop(item, row0)
      last = n - 1
      last_id = int(ids[last])
      ids[row] = last_id
      if last_id != item:
        moved[last_id] = row
      n -= 1
      rows.append(row)
    self._searcher.delete(rows)
    self.ids_n = ids[:n]

  def _save(self, directory: pathlib.Path) -> dict[str, Any]:
    scann_dir = directory / "scann"
    scann_dir.mkdir()
    self._searcher.serialize(str(scann_dir), True)  # relative paths: the folder gets renamed
    return self.params()

  @classmethod
  def _load(cls, directory, params):
    index = cls(**params)
    index._searcher = _scann_ops().load_searcher(str(directory / "scann")).searcher
    if index.threads:
      index._searcher.set_num_threads(index.threads)
    return index

  def _stored_rows(self) -> int | None:
    return int(self._searcher.size())
