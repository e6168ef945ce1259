"""The ``retrieval`` evaluator: queries against a corpus, trec_eval metrics (NDCG@10 main, as MTEB)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gemb.evaluation import metrics as metrics_lib
from gemb.evaluation.contract import EmbedFn, Evaluator, TaskResult, single
from gemb.evaluation.search import search
from gemb.evaluation.task_data import RetrievalData
from gemb.registry import evaluators


@evaluators.register("retrieval")
class RetrievalEvaluator(Evaluator):
  """Query -> corpus retrieval. Queries carry the data's `query_task` prompt, documents none."""

  main_metric = "ndcg@10"

  def __init__(self, data: RetrievalData, *, metrics: Sequence[str] = (
      "ndcg@10", "recall@1", "recall@10", "recall@100", "mrr@10", "map@100"),
               retriever: str = "exact", batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.metrics = tuple(metrics)
    self.cutoff = max((metrics_lib.parse_metric(m)[1] or 100) for m in self.metrics)
    self.retriever = retriever
    if self.main_metric not in self.metrics:
      self.main_metric = self.metrics[0]

  def rankings(self, embed_fn: EmbedFn, dim: int | None = None, k: int | None = None):
    data = self.data
    c_nd = self.embed(embed_fn, data.corpus, None, dim)
    q_qd = self.embed(embed_fn, data.queries, data.query_task, dim)
    rows_qk = search(c_nd, q_qd, k or self.cutoff, self.retriever)
    ids = np.arange(len(data.corpus)) if data.corpus_ids is None else np.asarray(data.corpus_ids)
    return ids[rows_qk]

  def score(self, embed_fn, dim=None) -> TaskResult:
    data = self.data
    per_q = metrics_lib.per_query(self.rankings(embed_fn, dim).tolist(), data.qrels, self.metrics)
    return TaskResult(
        values={k: float(v.mean()) for k, v in per_q.items()},
        chance=metrics_lib.ranking_chance(self.metrics, data.qrels, len(data.corpus), self.cutoff),
        per_query=single(per_q), n_queries=len(data.queries), n_corpus=len(data.corpus))

  def examples(self, embed_fn: EmbedFn, n: int = 3, k: int = 5, dim: int | None = None):
    """The top-k corpus items of the first n queries, for a results grid."""
    data = self.data
    sub = RetrievalData(list(data.queries[:n]), data.corpus, list(data.qrels[:n]),
                        data.corpus_ids, data.query_task)
    ranked = RetrievalEvaluator(sub, metrics=self.metrics, retriever=self.retriever,
                                batch_size=self.batch_size).rankings(embed_fn, dim, k)
    pos = {cid: i for i, cid in enumerate(
        range(len(data.corpus)) if data.corpus_ids is None else data.corpus_ids)}
    return [{"query": sub.queries[i], "results": [data.corpus[pos[c]] for c in row],
             "relevant": [sub.qrels[i].get(c, 0) >= 1 for c in row]}
            for i, row in enumerate(ranked.tolist())]
