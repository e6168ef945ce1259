"""Ranking and task metrics, with trec_eval's definitions.

A *ranking* is a sequence of item ids, best first. *Relevance* for one query is a mapping
``{item_id: grade}``; an item is relevant when its grade is >= 1 (trec_eval's default
relevance level), and NDCG uses the grade itself as the gain (trec_eval's ``ndcg_cut``), so
graded and multiple relevant items are both handled. Per-query values are averaged over the
queries given, as trec_eval does over the queries in its qrels: a query without any relevant item
scores 0.

The names below follow trec_eval: ``recall@k`` is ``recall_k``, ``ndcg@k`` is ``ndcg_cut_k``,
``mrr@k`` is ``recip_rank`` on the top k, ``map`` is ``map`` (``map@k`` is ``map_cut_k``),
``success@k`` is ``success_k`` (the "R@K" of image-text retrieval papers: a hit among the top k).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gemb.errors import InputError

Relevance = Mapping[Any, float]

_METRIC_RE = re.compile(r"^(recall|ndcg|mrr|map|success|precision)(?:@(\d+))?$")


def _relevant(rel: Relevance) -> set:
  return {i for i, g in rel.items() if g >= 1}


def recall_at_k(ranking: Sequence, rel: Relevance, k: int) -> float:
  relevant = _relevant(rel)
  if not relevant:
    return 0.0
  return len(relevant.intersection(list(ranking)[:k])) / len(relevant)


def precision_at_k(ranking: Sequence, rel: Relevance, k: int) -> float:
  relevant = _relevant(rel)
  return sum(1 for i in list(ranking)[:k] if i in relevant) / k


def success_at_k(ranking: Sequence, rel: Relevance, k: int) -> float:
  relevant = _relevant(rel)
  return float(any(i in relevant for i in list(ranking)[:k]))


def mrr_at_k(ranking: Sequence, rel: Relevance, k: int | None = None) -> float:
  relevant = _relevant(rel)
  for rank, i in enumerate(list(ranking)[:k], start=1):
    if i in relevant:
      return 1.0 / rank
  return 0.0


def average_precision(ranking: Sequence, rel: Relevance, k: int | None = None) -> float:
  """AP over the top k (all when None), divided by the number of relevant items (trec_eval)."""
  relevant = _relevant(rel)
  if not relevant:
    return 0.0
  hits, total = 0, 0.0
  for rank, i in enumerate(list(ranking)[:k], start=1):
    if i in relevant:
      hits += 1
      total += hits / rank
  return total / len(relevant)


def ndcg_at_k(ranking: Sequence, rel: Relevance, k: int) -> float:
  gains = sorted((g for g in rel.values() if g > 0), reverse=True)[:k]
  ideal = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
  if ideal == 0:
    return 0.0
  dcg = 0.0
  for r, i in enumerate(list(ranking)[:k]):
    g = rel.get(i, 0)
    if g > 0:
      dcg += g / math.log2(r + 2)
  return dcg / ideal


_PER_QUERY = {
    "recall": recall_at_k, "precision": precision_at_k, "success": success_at_k,
    "mrr": mrr_at_k, "map": average_precision, "ndcg": ndcg_at_k,
}


def parse_metric(name: str) -> tuple[str, int | None]:
  m = _METRIC_RE.match(name)
  if not m:
    raise InputError(f"Unknown ranking metric {name!r}. Use recall@K, ndcg@K, mrr@K, map, map@K, "
                     "success@K or precision@K (e.g. 'ndcg@10').")
  kind, k = m.group(1), m.group(2)
  if k is None and kind in ("recall", "ndcg", "success", "precision"):
    raise InputError(f"Metric {name!r} needs a cutoff, e.g. '{kind}@10'.")
  if k is not None and int(k) < 1:
    raise InputError(f"Metric {name!r}: the cutoff must be >= 1.")
  return kind, None if k is None else int(k)


def per_query(rankings: Sequence[Sequence], qrels: Sequence[Relevance],
              metrics: Iterable[str]) -> dict[str, np.ndarray]:
  """Each metric for each query: {name: [q] array}. rankings[i] goes with qrels[i]."""
  if len(rankings) != len(qrels):
    raise InputError(f"{len(rankings)} rankings but {len(qrels)} relevance judgements; give one "
                     "per query, in the same order.")
  out = {}
  for name in metrics:
    kind, k = parse_metric(name)
    fn = _PER_QUERY[kind]
    out[name] = np.array([fn(r, rel, k) for r, rel in zip(rankings, qrels)], np.float64)
  return out


def ranking_metrics(rankings: Sequence[Sequence], qrels: Sequence[Relevance],
                    metrics: Iterable[str] = ("ndcg@10", "recall@10", "mrr@10", "map")
                    ) -> dict[str, float]:
  """Mean of each metric over queries, e.g. ``{"ndcg@10": 0.61, ...}``."""
  if len(qrels) == 0:
    raise InputError("No queries to evaluate: qrels is empty.")
  return {k: float(v.mean()) for k, v in per_query(rankings, qrels, metrics).items()}


# -- task metrics (classification, clustering, STS) ------------------------------------------

def _check_same_length(a, b, what):
  if len(a) != len(b):
    raise InputError(f"{what}: {len(a)} vs {len(b)} entries; they must pair up one to one.")


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
  _check_same_length(y_true, y_pred, "accuracy")
  return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macro_f1(y_true: Sequence, y_pred: Sequence) -> float:
  """Unweighted mean of per-class F1 over the classes present in y_true or y_pred."""
  _check_same_length(y_true, y_pred, "macro_f1")
  t, p = np.asarray(y_true), np.asarray(y_pred)
  f1s = []
  for c in np.union1d(t, p):
    tp = np.sum((t == c) & (p == c))
    denom = np.sum(t == c) + np.sum(p == c)
    f1s.append(0.0 if denom == 0 else 2 * tp / denom)
  return float(np.mean(f1s))


def _entropy(counts: np.ndarray) -> float:
  p = counts[counts > 0] / counts.sum()
  return float(-(p * np.log(p)).sum())


def v_measure(labels_true: Sequence, labels_pred: Sequence, beta: float = 1.0) -> float:
  """Harmonic mean of homogeneity and completeness (Rosenberg & Hirschberg, 2007)."""
  _check_same_length(labels_true, labels_pred, "v_measure")
  _, t = np.unique(np.asarray(labels_true), return_inverse=True)
  _, p = np.unique(np.asarray(labels_pred), return_inverse=True)
  if t.size == 0:
    raise InputError("v_measure of zero items is undefined.")
  cont_tp = np.zeros((t.max() + 1, p.max() + 1))
  np.add.at(cont_tp, (t, p), 1)
  h_t, h_p = _entropy(cont_tp.sum(1)), _entropy(cont_tp.sum(0))
  n = cont_tp.sum()
  # H(T|P) = -sum n_tp/n log(n_tp/n_p); every row and column is non-empty by construction.
  safe = np.where(cont_tp > 0, cont_tp, 1.0)
  h_t_given_p = -float((cont_tp / n * np.log(safe / cont_tp.sum(0, keepdims=True))).sum())
  h_p_given_t = -float((cont_tp / n * np.log(safe / cont_tp.sum(1, keepdims=True))).sum())
  homogeneity = 1.0 if h_t == 0 else 1.0 - h_t_given_p / h_t
  completeness = 1.0 if h_p == 0 else 1.0 - h_p_given_t / h_p
  if homogeneity + completeness == 0:
    return 0.0
  return float((1 + beta) * homogeneity * completeness / (beta * homogeneity + completeness))


def _ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks with ties given their average rank."""
  order = np.argsort(x, kind="stable")
  ranks = np.empty(len(x), np.float64)
  sorted_x = x[order]
  i = 0
  while i < len(x):
    j = i
    while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
      j += 1
    ranks[order[i:j + 1]] = (i + j) / 2 + 1
    i = j + 1
  return ranks


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
  _check_same_length(a, b, "pearson")
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2:
    raise InputError("A correlation needs at least 2 pairs.")
  a, b = a - a.mean(), b - b.mean()
  denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
  return float((a * b).sum() / denom) if denom else 0.0


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
  """Pearson correlation of the (tie-averaged) ranks."""
  _check_same_length(a, b, "spearman")
  return pearson(_ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64)))


# -- chance levels -----------------------------------------------------------------------------

def chance_at(name: str, rel: Relevance, n_corpus: int, depth: int | None = None) -> float:
  """Expected value of ranking metric `name` for one query when the corpus of `n_corpus` items
  is ranked uniformly at random (closed forms; `depth` is the cutoff of metrics without one,
  all of the corpus when None).

  With R relevant items among N and m = min(k, N) positions read: recall@k = m/N,
  precision@k = mR/(Nk), success@k = 1 - C(N-R, m)/C(N, m), mrr@k sums 1/r times the chance
  that the first relevant item is at rank r, NDCG@k is linear in the gains (each relevant item is
  at each rank with probability 1/N), and AP@k sums (1/r)(R/N + (r-1)R(R-1)/(N(N-1))) / R.
  """
  kind, k = parse_metric(name)
  n = int(n_corpus)
  if n < 1:
    raise InputError(f"chance_at: the corpus has {n} items.")
  k = k or depth or n
  m = min(k, n)
  r_ = len(_relevant(rel))
  if kind == "ndcg":
    gains = sorted((g for g in rel.values() if g > 0), reverse=True)
    ideal = sum(g / math.log2(r + 2) for r, g in enumerate(gains[:k]))
    if ideal == 0:
      return 0.0
    discount = float(np.sum(1.0 / np.log2(np.arange(2, m + 2))))
    return sum(gains) / n * discount / ideal
  if r_ == 0:
    return 0.0
  if kind == "recall":
    return m / n
  if kind == "precision":
    return m * r_ / (n * k)
  # miss_r[r] = P(no relevant item among the first r), r = 0..m
  i = np.arange(m)
  miss_r = np.concatenate([[1.0], np.cumprod(np.clip((n - r_ - i) / (n - i), 0.0, None))])
  if kind == "success":
    return float(1.0 - miss_r[m])
  ranks = np.arange(1, m + 1)
  if kind == "mrr":
    first_at = miss_r[:-1] * r_ / (n - ranks + 1)  # no hit before r, then a hit at r
    return float(np.sum(first_at / ranks))
  if kind == "map":
    both = r_ * (r_ - 1) / (n * (n - 1)) if n > 1 else 0.0
    return float(np.sum((r_ / n + (ranks - 1) * both) / ranks) / r_)
  raise InputError(f"No chance level for metric {name!r}.")


def ranking_chance(metrics: Iterable[str], qrels: Sequence[Relevance], n_corpus: int,
                   depth: int | None = None) -> dict[str, float]:
  """Each metric's chance level averaged over the queries, as the metric itself is."""
  return {name: float(np.mean([chance_at(name, rel, n_corpus, depth) for rel in qrels]))
          for name in metrics}
