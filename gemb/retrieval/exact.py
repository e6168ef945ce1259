"""`exact`: brute-force inner-product search in JAX, chunked and sharded across devices.

The corpus lives on the devices, split row-wise over a 1-D mesh of all local devices once it has
`shard_min_rows` rows or more. Each device scans its rows `chunk` at a time, keeping a running
top-k, so memory is bounded by [query_block, chunk] scores per device whatever the corpus size;
the per-device top-ks are then gathered and merged.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gemb.registry import retrievers
from gemb.retrieval.base import Index
from gemb.errors import InputError


def _topk_scan(corpus_nd: jax.Array, q_qd: jax.Array, n_valid: jax.Array, row0: jax.Array,
               k: int, chunk: int) -> tuple[jax.Array, jax.Array]:
  """Top-k of q @ corpus.T over rows [0, n_valid) scanned `chunk` rows at a time.

  Rows are numbered from `row0` (the shard's offset). Returns (scores_qk, rows_qk).
  """
  n, d = corpus_nd.shape
  chunks_cnd = corpus_nd.reshape(n // chunk, chunk, d)
  q = q_qd.shape[0]
  kk = min(k, chunk)

  def step(carry, xs):
    best_s, best_r = carry
    c_cd, start = xs
    s_qc = jnp.dot(q_qd, c_cd.T, precision=jax.lax.Precision.HIGHEST)
    local = start + jnp.arange(chunk)
    s_qc = jnp.where((local < n_valid)[None, :], s_qc, -jnp.inf)
    s_qk, i_qk = jax.lax.top_k(s_qc, kk)
    all_s = jnp.concatenate([best_s, s_qk], axis=1)
    all_r = jnp.concatenate([best_r, (row0 + start + i_qk).astype(jnp.int32)], axis=1)
    top_s, pos = jax.lax.top_k(all_s, k)
    return (top_s, jnp.take_along_axis(all_r, pos, axis=1)), None

  init = (jnp.full((q, k), -jnp.inf, jnp.float32), jnp.full((q, k), -1, jnp.int32))
  starts = jnp.arange(0, n, chunk, dtype=jnp.int32)
  (s, r), _ = jax.lax.scan(step, init, (chunks_cnd, starts))
  return s, r


@functools.lru_cache(maxsize=64)
def _search_fn(k: int, chunk: int, mesh: Mesh | None):
  if mesh is None:
    return jax.jit(lambda c, q, n: _topk_scan(c, q, n, jnp.int32(0), k, chunk))

  def per_shard(c_nd, q_qd, n_valid):
    shard_rows = c_nd.shape[0]
    me = jax.lax.axis_index("rows")
    row0 = (me * shard_rows).astype(jnp.int32)
    s, r = _topk_scan(c_nd, q_qd, n_valid - row0, row0, k, chunk)
    all_s = jax.lax.all_gather(s, "rows", axis=1, tiled=True)  # [q, shards*k]
    all_r = jax.lax.all_gather(r, "rows", axis=1, tiled=True)
    top_s, pos = jax.lax.top_k(all_s, k)
    return top_s, jnp.take_along_axis(all_r, pos, axis=1)

  f = jax.shard_map(per_shard, mesh=mesh, in_specs=(P("rows"), P(), P()), out_specs=(P(), P()),
                    check_vma=False)
  return jax.jit(f)


@retrievers.register("exact")
class ExactIndex(Index):
  """Brute-force inner-product search in JAX (chunked; sharded across devices when large)."""

  backend = "exact"

  def __init__(self, chunk: int = 32768, query_block: int = 256, shard_min_rows: int = 262144,
               devices: int | None = None):
    super().__init__()
    for name, v in (("chunk", chunk), ("query_block", query_block)):
      if not isinstance(v, int) or v < 1:
        raise InputError(f"exact: {name} must be a positive integer, got {v!r}.")
    self.chunk = chunk
    self.query_block = query_block
    self.shard_min_rows = shard_min_rows
    self.devices = devices
    self.emb_nd = np.zeros((0, 0), np.float32)
    self._device_state = None  # (corpus on device, chunk, mesh); rebuilt after mutations

  # -- device copy -----------------------------------------------------------------------------

  def _mesh(self) -> Mesh | None:
    devs = jax.local_devices()
    if self.devices is not None:
      devs = devs[:self.devices]
    if len(devs) < 2 or len(self) < self.shard_min_rows:
      return None
    return Mesh(np.array(devs), ("rows",))

  def _on_device(self):
    if self._device_state is None:
      mesh = self._mesh()
      shards = 1 if mesh is None else mesh.devices.size
      n = len(self)
      per_shard = -(-n // shards)
      chunk = min(self.chunk, -(-per_shard // 8) * 8)
      padded = -(-per_shard // chunk) * chunk * shards
      host = np.zeros((padded, self.dim), np.float32)
      host[:n] = self.emb_nd
      if mesh is None:
        corpus = jax.device_put(host)
      else:
        corpus = jax.device_put(host, NamedSharding(mesh, P("rows")))
      self._device_state = (corpus, chunk, mesh)
    return self._device_state

  # -- Index hooks -----------------------------------------------------------------------------

  def _build(self, emb_nd, ids_n):
    self.emb_nd = emb_nd
    self._device_state = None

  def _search(self, q_qd, k):
    corpus, chunk, mesh = self._on_device()
    fn = _search_fn(k, chunk, mesh)
    n_valid = jnp.int32(len(self))
    qb = min(self.query_block, -(-q_qd.shape[0] // 8) * 8)
    rows, scores = [], []
    for lo in range(0, q_qd.shape[0], qb):
      block = q_qd[lo:lo + qb]
      m = block.shape[0]
      if m < qb:  # pad to one shape so every block reuses one compiled program
        block = np.concatenate([block, np.zeros((qb - m, q_qd.shape[1]), np.float32)])
      s, r = fn(corpus, jnp.asarray(block), n_valid)
      scores.append(np.asarray(s)[:m])
      rows.append(np.asarray(r)[:m])
    return np.concatenate(rows).astype(np.int64), np.concatenate(scores)

  def _add(self, emb_nd, ids_n):
    self.emb_nd = np.concatenate([self.emb_nd, emb_nd])
    self.ids_n = np.concatenate([self.ids_n, ids_n])
    self._device_state = None

  def _remove(self, ids_n):
    keep = ~np.isin(self.ids_n, ids_n)
    self.emb_nd = self.emb_nd[keep]
    self.ids_n = self.ids_n[keep]
    self._device_state = None

  def _save(self, directory: pathlib.Path) -> dict[str, Any]:
    np.save(directory / "emb.npy", self.emb_nd)
    return {"chunk": self.chunk, "query_block": self.query_block,
            "shard_min_rows": self.shard_min_rows}

  @classmethod
  def _load(cls, directory, params):
    index = cls(**params)
    index.emb_nd = np.load(directory / "emb.npy", allow_pickle=False)
    if index.emb_nd.ndim != 2 or index.emb_nd.dtype != np.float32:
      raise ValueError(f"emb.npy holds {index.emb_nd.dtype} {index.emb_nd.shape}, expected a "
                       "float32 matrix")
    return index

  def _stored_rows(self) -> int | None:
    return int(self.emb_nd.shape[0])
