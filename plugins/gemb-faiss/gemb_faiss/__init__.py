"""FAISS retrieval backends for gemb, added through the `gemb.retrievers` entry point `faiss`."""

from __future__ import annotations

import pathlib
from typing import Any

import faiss
import numpy as np

from gemb import InputError
from gemb.retrieval import Index

KINDS = ("flat", "ivf_flat", "hnsw")


class FaissIndex(Index):
  """FAISS inner-product search: kind='flat' (exact), 'ivf_flat' or 'hnsw'."""

  backend = "faiss"

  def __init__(self, kind: str = "hnsw", nlist: int | None = None, nprobe: int | None = None,
               m: int = 32, ef_construction: int = 200, ef_search: int = 128):
    super().__init__()
    if kind not in KINDS:
      raise InputError(f"faiss: unknown kind {kind!r}; use one of {', '.join(KINDS)}.")
    self.kind, self.nlist, self.nprobe = kind, nlist, nprobe
    self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
    self._index = None
    self._sorted_ids = self._row_of_sorted = None

  def _params(self) -> dict[str, Any]:
    return {"kind": self.kind, "nlist": self.nlist, "nprobe": self.nprobe, "m": self.m,
            "ef_construction": self.ef_construction, "ef_search": self.ef_search}

  def _new_index(self, emb_nd: np.ndarray) -> Any:
    d = emb_nd.shape[1]
    if self.kind == "flat":
      inner = faiss.IndexFlatIP(d)
    elif self.kind == "hnsw":
      inner = faiss.IndexHNSWFlat(d, self.m, faiss.METRIC_INNER_PRODUCT)
      inner.hnsw.efConstruction = self.ef_construction
      inner.hnsw.efSearch = self.ef_search
    else:
      # ~4*sqrt(n) lists is FAISS's usual rule of thumb; it needs >= 39 points per list to train.
      nlist = self.nlist or max(1, min(int(4 * np.sqrt(len(emb_nd))), len(emb_nd) // 39))
      self.nlist = nlist
      inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
      inner.train(emb_nd)
      inner.nprobe = self.nprobe or max(1, nlist // 8)
      return inner  # IVF stores ids itself; an IDMap around it would mis-map ids after removals
    return faiss.IndexIDMap2(inner)

  def _reindex_rows(self) -> None:
    order = np.argsort(self.ids_n, kind="stable")
    self._sorted_ids, self._row_of_sorted = self.ids_n[order], order

  def _build(self, emb_nd: np.ndarray, ids_n: np.ndarray) -> None:
    self._index = self._new_index(emb_nd)
    self._index.add_with_ids(emb_nd, ids_n)
    self.ids_n = ids_n
    self._reindex_rows()

  def _search(self, q_qd: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores_qk, ids_qk = self._index.search(q_qd, k)
    if (ids_qk < 0).any():
      raise InputError(
          f"faiss({self.kind}) found fewer than k={k} results for some queries; raise nprobe "
          f"(now {getattr(faiss.extract_index_ivf(self._index), 'nprobe', '-')}) or ef_search.")
    rows_qk = self._row_of_sorted[np.searchsorted(self._sorted_ids, ids_qk)]
    return rows_qk, scores_qk

  def _add(self, emb_nd: np.ndarray, ids_n: np.ndarray) -> None:
    self._index.add_with_ids(emb_nd, ids_n)
    self.ids_n = np.concatenate([self.ids_n, ids_n])
    self._reindex_rows()

  def _remove(self, ids_n: np.ndarray) -> None:
    if self.kind == "hnsw":
      # HNSW graphs do not support deletion: rebuild from the remaining stored vectors.
      keep = ~np.isin(self.ids_n, ids_n)
      vectors = np.stack([self._index.reconstruct(int(i)) for i in self.ids_n[keep]]) if keep.any() \
          else np.zeros((0, self.dim), np.float32)
      self._build(vectors, self.ids_n[keep])
      return
    self._index.remove_ids(faiss.IDSelectorArray(ids_n))
    self.ids_n = self.ids_n[~np.isin(self.ids_n, ids_n)]
    self._reindex_rows()

  def _save(self, directory: pathlib.Path) -> dict[str, Any]:
    faiss.write_index(self._index, str(directory / "faiss.index"))
    return self._params()

  @classmethod
  def _load(cls, directory: pathlib.Path, params: dict[str, Any]) -> "FaissIndex":
    index = cls(**params)
    index._index = faiss.read_index(str(directory / "faiss.index"))
    return index

  @classmethod
  def load(cls, path) -> "FaissIndex":
    index = super().load(path)
    index._reindex_rows()
    return index
