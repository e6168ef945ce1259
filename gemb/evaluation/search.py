"""Top-k search for evaluators: a `gemb.retrievers` backend built on the host, outside jit."""

from __future__ import annotations

import numpy as np

from gemb.registry import retrievers


def search(emb_corpus_nd: np.ndarray, emb_query_qd: np.ndarray, k: int,
           retriever: str = "exact") -> np.ndarray:
  """Rows [q, min(k, n)] of corpus positions, best first."""
  index = retrievers.get(retriever)().build(emb_corpus_nd)
  rows_qk, _ = index.search(emb_query_qd, min(k, len(emb_corpus_nd)))
  return rows_qk
