"""Cross-modal evaluators: MSCOCO (R@K both ways) and Vatex (text -> video NDCG@10).

Both score `PairedData`: several b (captions) per a (image, video). b -> a ranks every a. In the
a -> b direction only the a items with at least one b in the evaluated set are queries: with the
captions capped, an image whose captions were all left out has nothing to find and would score
0 whatever the model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gemb.evaluation import metrics as metrics_lib
from gemb.evaluation.contract import EmbedFn, Evaluator, TaskResult
from gemb.evaluation.search import search
from gemb.evaluation.task_data import PairedData
from gemb.registry import evaluators


def _cutoff(names: Sequence[str]) -> int:
  return max((metrics_lib.parse_metric(m)[1] or 100) for m in names)


def _paper_name(metric: str) -> str:
  # Image-text papers call a hit among the top K "R@K"; that is trec_eval's success@K.
  kind, k = metrics_lib.parse_metric(metric)
  return f"R@{k}" if kind == "success" else metric


class CrossModalEvaluator(Evaluator):
  """Retrieval between two collections paired many-b-to-one-a (images/videos and captions)."""

  def __init__(self, data: PairedData, *, a_name: str, b_name: str = "text",
               b_to_a_metrics: Sequence[str], a_to_b_metrics: Sequence[str],
               retriever: str = "exact", batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.a_name, self.b_name = a_name, b_name
    self.b_to_a_metrics, self.a_to_b_metrics = tuple(b_to_a_metrics), tuple(a_to_b_metrics)
    self.retriever = retriever

  def directions(self, embed_fn, dim, k=None):
    """Yields (direction, queries, docs, rankings [q, k] of doc positions, qrels, metrics)."""
    data = self.data
    b_to_a = np.asarray(data.b_to_a)
    if self.b_to_a_metrics:
      a_doc = self.embed(embed_fn, data.items_a, None, dim)
      b_q = self.embed(embed_fn, data.items_b, data.query_task, dim)
      rows = search(a_doc, b_q, k or _cutoff(self.b_to_a_metrics), self.retriever)
      yield (f"{self.b_name}_to_{self.a_name}", data.items_b, data.items_a, rows,
             [{int(a): 1} for a in b_to_a], self.b_to_a_metrics)
    if self.a_to_b_metrics:
      with_b = np.unique(b_to_a)  # only the a items that have a b among those evaluated
      queries = [data.items_a[a] for a in with_b]
      a_q = self.embed(embed_fn, queries, data.query_task, dim)
      b_doc = self.embed(embed_fn, data.items_b, None, dim)
      rows = search(b_doc, a_q, k or _cutoff(self.a_to_b_metrics), self.retriever)
      qrels = [dict.fromkeys(np.flatnonzero(b_to_a == a).tolist(), 1) for a in with_b]
      yield (f"{self.a_name}_to_{self.b_name}", queries, data.items_b, rows, qrels,
             self.a_to_b_metrics)

  def score(self, embed_fn, dim=None) -> TaskResult:
    values, chance, per_query = {}, {}, {}
    for direction, _, docs, rows, qrels, names in self.directions(embed_fn, dim):
      per_q = metrics_lib.per_query(rows.tolist(), qrels, names)
      ch = metrics_lib.ranking_chance(names, qrels, len(docs), _cutoff(names))
      for name in names:
        key = f"{direction}/{_paper_name(name)}"
        values[key], chance[key] = float(per_q[name].mean()), ch[name]
        per_query[key] = (per_q[name],)
    data = self.data
    return TaskResult(values, chance, per_query, n_queries=len(data.items_b),
                      n_corpus=len(data.items_a))

  def examples(self, embed_fn: EmbedFn, n: int = 3, k: int = 5, dim: int | None = None):
    """For each direction, the top-k of the first n queries, for a results grid."""
    out = []
    for direction, queries, docs, rows, qrels, _ in self.directions(embed_fn, dim, k):
      for i in range(min(n, len(queries))):
        out.append({"direction": direction, "query": queries[i],
                    "results": [docs[j] for j in rows[i][:k]],
                    "relevant": [qrels[i].get(int(j), 0) >= 1 for j in rows[i][:k]]})
    return out


@evaluators.register("mscoco")
class MSCOCOEvaluator(CrossModalEvaluator):
  """MSCOCO protocol: R@1/5/10 image->text and text->image; main: the mean of the two R@1."""

  main_metric = "mean_R@1"

  def __init__(self, data: PairedData, *, a_name: str = "image", b_name: str = "text",
               ks: Sequence[int] = (1, 5, 10), **kw):
    names = tuple(f"success@{k}" for k in ks)
    super().__init__(data, a_name=a_name, b_name=b_name, b_to_a_metrics=names,
                     a_to_b_metrics=names, **kw)

  def score(self, embed_fn, dim=None) -> TaskResult:
    result = super().score(embed_fn, dim)
    r1 = [k for k in result.values if k.endswith("/R@1")]
    if r1:
      result.values["mean_R@1"] = float(np.mean([result.values[k] for k in r1]))
      result.chance["mean_R@1"] = float(np.mean([result.chance[k] for k in r1]))
      result.per_query["mean_R@1"] = tuple(result.per_query[k][0] for k in r1)  # one stratum each
    return result


@evaluators.register("vatex")
class VatexEvaluator(CrossModalEvaluator):
  """Vatex / MSR-VTT protocol: text -> video NDCG@10 (plus R@1/5/10), several captions a video."""

  main_metric = "text_to_video/ndcg@10"

  def __init__(self, data: PairedData, *, a_name: str = "video", b_name: str = "text",
               metrics: Sequence[str] = ("ndcg@10", "success@1", "success@5", "success@10"),
               **kw):
    super().__init__(data, a_name=a_name, b_name=b_name, b_to_a_metrics=metrics,
                     a_to_b_metrics=(), **kw)
    self.main_metric = f"{b_name}_to_{a_name}/ndcg@10"
