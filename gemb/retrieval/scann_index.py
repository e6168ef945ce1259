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
`target_recall` checks them at build time on probe queries and only ever raises them; `tune` fits
them to a sample of real queries and may lower them (docs/retrieval.md).
"""

from __future__ import annotations

import math
import pathlib
import warnings
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


def _reorder_ladder(n: int, start: int = 75) -> list[int]:
  """Reorder depths a recall check tries: doubling from `start` up to the corpus size."""
  out, r = [], start
  while r < n:
    out.append(r)
    r *= 2
  return out + [n]


# What one reordered candidate costs, in vectors scored by asymmetric hashing (4 dims per block,
# LUT16). Fitted to the quiet 1M x 128 sweep of benchmarks/retrieval.py (raw ScaNN at three
# reorder depths, recall 0.95): ~0.41 ns a hashed vector, ~80 ns a reordered candidate. Both
# scale with d, so the ratio carries over to other dims roughly; it only ranks settings.
REORDER_COST = 200


def search_cost(n: int, num_leaves: int, leaves: int, reorder: int) -> float:
  """Relative cost of one query: vectors hashed (leaves searched times the mean leaf size, or all
  n without a tree) plus REORDER_COST per candidate rescored exactly. Deterministic, so a build
  resolves the same knobs on any machine and under any load."""
  hashed = n * leaves / num_leaves if num_leaves else n
  return hashed + REORDER_COST * reorder


def recall_probe(emb_nd: np.ndarray, n_queries: int, noise: float, k: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Queries for a build-time recall check, and their exact top k rows: `n_queries` corpus rows,
  each plus Gaussian noise of norm `noise` times the rows' RMS norm in a random direction (near,
  not on, corpus points: 0.4 on unit 64-d vectors is 0.05 per coordinate)."""
  n, d = emb_nd.shape
  rng = np.random.default_rng(seed)
  rows = rng.choice(n, min(n_queries, n), replace=False)
  rms = float(np.sqrt(np.mean(np.sum(emb_nd[rows].astype(np.float64) ** 2, axis=1))))
  q_qd = (emb_nd[rows] + noise * rms / np.sqrt(d)
          * rng.standard_normal((len(rows), d))).astype(np.float32)
  return q_qd, exact_top_k(emb_nd, q_qd, k)


def recall_with_bound(found_qk: np.ndarray, truth_qk: np.ndarray) -> tuple[float, float]:
  """Mean recall@k over queries and its one-sided 95% lower bound (mean - 1.645 standard errors
  of the per-query recalls)."""
  r_q = (np.asarray(found_qk)[:, :, None] == truth_qk[:, None, :]).any(axis=2).mean(axis=1)
  return float(r_q.mean()), float(r_q.mean() - 1.645 * r_q.std() / np.sqrt(len(r_q)))


def exact_top_k(x_nd: np.ndarray, q_qd: np.ndarray, k: int) -> np.ndarray:
  """Rows of the k largest inner products per query (unordered), by exact search in query blocks
  of at most 32M scores."""
  block = max(1, 2**25 // x_nd.shape[0])
  out = np.empty((q_qd.shape[0], k), np.int64)
  for s in range(0, q_qd.shape[0], block):
    s_qn = q_qd[s:s + block] @ x_nd.T
    top = np.argpartition(-s_qn, k - 1, axis=1)[:, :k]
    out[s:s + block] = top
  return out


@retrievers.register("scann")
class ScannIndex(Index):
  """ScaNN: tree partitioning + asymmetric hashing + reordering; parameters from corpus size."""

  backend = "scann"

  # The knobs that `auto_params` resolves; a user argument left None is resolved at each build
  # into `self.resolved`, never written back, so one index object built on a small corpus and then
  # on a large one gets the large corpus's parameters.
  AUTO = ("num_leaves", "leaves_to_search", "reorder", "dims_per_block", "training_sample_size")

  def __init__(self, num_leaves: int | None = None, leaves_to_search: int | None = None,
               reorder: int | None = None, dims_per_block: int | None = None,
               anisotropic_threshold: float = 0.2, training_sample_size: int | None = None,
               soar_lambda: float | None = None, brute_force_below: int = 20000,
               threads: int = 0, query_batch: int = 256, target_recall: float | None = 0.95,
               recall_k: int = 10, recall_queries: int = 1000, recall_noise: float = 0.4):
    super().__init__()
    if target_recall is not None and not 0 < target_recall <= 1:
      raise InputError(f"scann: target_recall={target_recall} must be in (0, 1], or None to skip "
                       "the build-time recall check.")
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
    self.target_recall = target_recall
    self.recall_k = recall_k
    self.recall_queries = recall_queries
    self.recall_noise = recall_noise
    # What the last build used: the AUTO knobs, plus "measured_recall" when it was checked.
    self.resolved: dict[str, Any] = {}
    self._searcher = None  # the scann_pybind.ScannNumpy object; rows map to self.ids_n

  def params(self) -> dict[str, Any]:
    """The constructor's arguments, as given (None = resolved per build; see `resolved`)."""
    return {"num_leaves": self.num_leaves, "leaves_to_search": self.leaves_to_search,
            "reorder": self.reorder, "dims_per_block": self.dims_per_block,
            "anisotropic_threshold": self.anisotropic_threshold,
            "training_sample_size": self.training_sample_size,
            "soar_lambda": self.soar_lambda, "brute_force_below": self.brute_force_below,
            "threads": self.threads, "query_batch": self.query_batch,
            "target_recall": self.target_recall, "recall_k": self.recall_k,
            "recall_queries": self.recall_queries, "recall_noise": self.recall_noise}

  def _knob(self, key: str) -> int:
    """A search-time knob: the user's value if set (also after the build), else the resolved one."""
    value = getattr(self, key)
    return self.resolved[key] if value is None else value

  def _resolve(self, n: int, d: int) -> dict[str, Any]:
    given = {k: getattr(self, k) for k in self.AUTO}
    auto = auto_params(n, d, self.brute_force_below)
    if given["num_leaves"] and given["reorder"] is None:  # a tree asked for on a small corpus: AH
      auto["reorder"] = 300
    out = {k: auto.get(k) if given[k] is None else given[k] for k in self.AUTO}
    if out["num_leaves"] and not out["leaves_to_search"]:
      out["leaves_to_search"] = max(1, out["num_leaves"] // 6)
    return out

  def _build(self, emb_nd, ids_n):
    n, d = emb_nd.shape
    p = self._resolve(n, d)
    if p["num_leaves"] and p["num_leaves"] > n:
      raise InputError(f"scann: num_leaves={p['num_leaves']} exceeds the corpus size {n}.")
    if self.soar_lambda is not None and not p["num_leaves"]:
      raise InputError("scann: soar_lambda spills vectors across tree leaves; it needs a tree "
                       f"(num_leaves > 0), but this corpus of {n} gets none. Set num_leaves.")
    self.resolved = p
    builder = _scann_ops().builder(self._blocked(emb_nd), 10, "dot_product")
    if self.threads:
      builder = builder.set_n_training_threads(self.threads)
    if p["num_leaves"]:
      soar = ({} if self.soar_lambda is None else
              {"soar_lambda": float(self.soar_lambda), "overretrieve_factor": 2.0})
      builder = builder.tree(num_leaves=p["num_leaves"],
                             num_leaves_to_search=min(p["leaves_to_search"], p["num_leaves"]),
                             training_sample_size=min(p["training_sample_size"] or n, n), **soar)
    if p["reorder"]:  # asymmetric hashing, then exact rescoring of the best `reorder`
      builder = builder.score_ah(p["dims_per_block"],
                                 anisotropic_quantization_threshold=self.anisotropic_threshold,
                                 training_sample_size=min(n, 100_000))
      builder = builder.reorder(p["reorder"])
    else:
      builder = builder.score_brute_force()
    self._searcher = builder.build().searcher
    if self.threads:
      self._searcher.set_num_threads(self.threads)
    if self.target_recall is not None and p["reorder"]:  # approximate: check what it returns
      self._reach_target_recall(emb_nd)

  def _reach_target_recall(self, emb_nd: np.ndarray) -> None:
    """The build's recall check: on corpus points used as queries (plus noise), raises the knobs
    left to gemb from the table's setting until the target holds. Never lowers them: how far real
    queries lie from the corpus is unknown here, and the table's margin is what keeps recall on
    queries farther out than the probe (see `tune` to fit the knobs to a sample of real queries)."""
    k = min(self.recall_k, emb_nd.shape[0])
    q_qd, truth_qk = recall_probe(emb_nd, self.recall_queries, self.recall_noise, k)
    p = self.resolved
    reorders = _reorder_ladder(emb_nd.shape[0], start=p["reorder"])
    self._settle(q_qd, truth_qk, k, p["leaves_to_search"], reorders, "corpus points used as")

  def tune(self, corpus_nd: Any, queries_qd: Any, target_recall: float | None = None) -> dict:
    """Fits the search knobs left to gemb (leaves searched, reorder depth) to a sample of the
    queries you will search with: the cheapest setting whose recall@`recall_k` on them, against
    exact search over `corpus_nd` (the vectors the index was built from), holds `target_recall`
    (default: the index's). Unlike the build's check it may lower the knobs below the table's, so
    the promise holds for queries like the sample, not for others. Returns `resolved`."""
    from gemb.retrieval.base import as_vectors
    self._require_built()
    target = self.target_recall if target_recall is None else target_recall
    if target is None or not 0 < target <= 1:
      raise InputError(f"scann.tune: target_recall={target} must be in (0, 1].")
    x_nd = as_vectors(corpus_nd, "corpus_nd")
    q_qd = as_vectors(queries_qd, "queries_qd", dim=x_nd.shape[1])
    if x_nd.shape[0] != len(self):
      raise InputError(f"scann.tune: corpus_nd has {x_nd.shape[0]} rows but the index holds "
                       f"{len(self)}; pass the vectors the index was built from.")
    if not self.resolved.get("reorder"):
      return self.resolved  # exact brute force: nothing to tune
    k = min(self.recall_k, x_nd.shape[0])
    truth_qk = exact_top_k(x_nd, q_qd, k)
    self._settle(q_qd, truth_qk, k, 1, _reorder_ladder(x_nd.shape[0]), "given", target)
    return self.resolved

  def _settle(self, q_qd: np.ndarray, truth_qk: np.ndarray, k: int, leaves_floor: int,
              reorders: list[int], what: str, target: float | None = None) -> None:
    """Sets the cheapest (leaves searched, reorder depth) whose recall@k on q_qd holds `target`.

    "Holds" means the one-sided 95% lower bound of the mean recall over the queries (mean - 1.645
    standard errors) reaches the target, so the promise rests on the sample's size, not its luck.
    For each reorder depth in `reorders` (rising) the fewest leaves from `leaves_floor` up that
    hold it are found by bisection, and the setting of least `search_cost` is kept (the depths
    stop once a deeper one costs more). Knobs the user set stay as set (a set `reorder` replaces
    the ladder)."""
    target = self.target_recall if target is None else target
    p = self.resolved

    def measure() -> tuple[float, float]:  # (mean recall, its lower bound)
      return recall_with_bound(self._rows(q_qd, k), truth_qk)

    free_leaves = self.leaves_to_search is None and bool(p["num_leaves"])
    if self.reorder is not None:
      reorders = [self.reorder]
    n = len(self)
    best = None  # (cost, leaves, reorder, mean recall)
    fallback = None  # the most generous setting tried, if none holds the target
    last_cost, known_hi = math.inf, None
    for r in reorders:
      p["reorder"] = r
      if free_leaves:
        # A deeper reorder recalls at least as much with as many leaves: the last depth's answer
        # brackets this one's, and only the first feasible depth needs the all-leaves check.
        hi, lo = known_hi or p["num_leaves"], min(leaves_floor, p["num_leaves"])
        p["leaves_to_search"] = lo
        floor_holds = measure()[1] >= target
        if floor_holds:
          hi = lo
        elif known_hi is None:
          p["leaves_to_search"] = hi
          mean, bound = measure()
          fallback = (hi, r, mean)
          if bound < target:
            continue  # even every leaf misses it at this depth: reorder deeper
        while lo < hi:  # the fewest leaves that hold the target (recall rises with leaves)
          p["leaves_to_search"] = mid = (lo + hi) // 2
          if measure()[1] >= target:
            hi = mid
          else:
            lo = mid + 1
        p["leaves_to_search"] = known_hi = hi
        mean, _ = measure()
      else:
        mean, bound = measure()
        fallback = (p["leaves_to_search"], r, mean)
        if bound < target:
          continue
      cost = search_cost(n, p["num_leaves"], p["leaves_to_search"], r)
      if best is None or cost < best[0]:
        best = (cost, p["leaves_to_search"], r, mean)
      if cost > last_cost or (free_leaves and floor_holds):
        break  # costs rise from here on (at the leaves' floor, a deeper reorder only adds)
      last_cost = cost
    chosen = best[1:] if best else fallback
    p["leaves_to_search"], p["reorder"] = chosen[0], chosen[1]
    p["measured_recall"] = round(chosen[2], 4)
    if best is None:
      warnings.warn(f"scann: recall@{k} is {chosen[2]:.3f} on {len(q_qd)} {what} queries, below "
                    f"target_recall={target}, with every leaf searched and the deepest reorder "
                    "tried, or the leaves and reorder depth fixed by you. Leave leaves_to_search "
                    "/ reorder to gemb (None), raise them, or use the `exact` index.",
                    RuntimeWarning, stacklevel=4)

  def _blocked(self, x_nd: np.ndarray) -> np.ndarray:
    """Zero-pads the columns to a multiple of dims_per_block, which asymmetric hashing needs.

    Zero columns add nothing to inner products, so any dimension works; the pad is derived from
    `dim` and `dims_per_block`, so saved indexes need no extra state.
    """
    pad = -x_nd.shape[1] % self.resolved["dims_per_block"]
    return np.pad(x_nd, ((0, 0), (0, pad))) if pad else x_nd

  def _rows(self, q_qd, k):
    num_leaves, leaves, reorder = self.resolved["num_leaves"], self._knob("leaves_to_search"), \
        self._knob("reorder")
    leaves = min(leaves, num_leaves) if num_leaves else -1
    pre = max(reorder, k) if reorder else -1
    parallel = q_qd.shape[0] > self.query_batch
    rows, dist = self._searcher.search_batched(self._blocked(q_qd), k, pre, leaves, parallel,
                                               self.query_batch)
    rows = np.asarray(rows)
    if rows.shape != (q_qd.shape[0], k):  # ScaNN pads short results only in edge cases
      raise RuntimeError(f"scann returned shape {rows.shape} for {q_qd.shape[0]} queries, k={k}.")
    self._last_dist = dist
    return rows.astype(np.int64)

  def _search(self, q_qd, k):
    rows = self._rows(q_qd, k)
    return rows, np.asarray(self._last_dist, np.float32)

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
    return {**self.params(), "resolved": self.resolved}

  @classmethod
  def _load(cls, directory, params):
    params = dict(params)
    resolved = params.pop("resolved", None)
    if resolved is None:  # written before `resolved` existed: its params were the resolved ones
      resolved = {k: params[k] for k in cls.AUTO}
    index = cls(**params)
    index.resolved = resolved
    index._searcher = _scann_ops().load_searcher(str(directory / "scann")).searcher
    if index.threads:
      index._searcher.set_num_threads(index.threads)
    return index

  def _stored_rows(self) -> int | None:
    return int(self._searcher.size())
