"""What an evaluator is run on: queries and corpus, labelled items, scored pairs, paired media.

Each class checks its own shape when built. Every one names the task prompt of its query side
(``query_task``, or ``task`` where both sides are alike): a dataset-backed loader fills it with
the dataset's declared `task`, so evaluation uses the prompt training used. Documents (the
corpus, images, videos) are embedded without a prompt.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from gemb.errors import InputError

# Gemini Embedding's task names (the query prompt is built by gemb.model.task_prompt).
RETRIEVAL_QUERY = "search result"
CLASSIFICATION = "classification"
CLUSTERING = "clustering"
SEMANTIC_SIMILARITY = "sentence similarity"


@dataclasses.dataclass
class RetrievalData:
  """Queries, a corpus, and per query the graded relevant corpus items.

  `qrels[i]` maps corpus ids to grades (>= 1 is relevant; NDCG uses the grade as gain).
  Corpus ids are positions in `corpus` unless `corpus_ids` gives them.
  """

  queries: Sequence[Any]
  corpus: Sequence[Any]
  qrels: Sequence[Mapping[int, float]]
  corpus_ids: Sequence[int] | None = None
  query_task: str | None = RETRIEVAL_QUERY

  def __post_init__(self):
    if len(self.queries) != len(self.qrels):
      raise InputError(f"RetrievalData: {len(self.queries)} queries but {len(self.qrels)} qrels; "
                       "give one relevance mapping per query.")
    if len(self.corpus) == 0 or len(self.queries) == 0:
      raise InputError("RetrievalData needs at least one query and one corpus item.")
    ids = range(len(self.corpus)) if self.corpus_ids is None else self.corpus_ids
    if len(ids) != len(self.corpus):
      raise InputError(f"RetrievalData: {len(self.corpus_ids)} corpus_ids for {len(self.corpus)} "
                       "corpus items.")
    known = set(ids)
    for i, rel in enumerate(self.qrels):
      unknown = [c for c in rel if c not in known]
      if unknown:
        raise InputError(f"RetrievalData: qrels[{i}] names corpus ids not in the corpus: "
                         f"{unknown[:5]}.")


@dataclasses.dataclass
class ClassificationData:
  train_items: Sequence[Any]
  train_labels: Sequence[Any]
  test_items: Sequence[Any]
  test_labels: Sequence[Any]
  task: str | None = CLASSIFICATION

  def __post_init__(self):
    for split in ("train", "test"):
      items, labels = getattr(self, f"{split}_items"), getattr(self, f"{split}_labels")
      if len(items) != len(labels) or len(items) == 0:
        raise InputError(f"ClassificationData: {split} has {len(items)} items and {len(labels)} "
                         "labels; they must be equal and non-zero.")
    if len(np.unique(np.asarray(self.train_labels))) < 2:
      raise InputError("ClassificationData: the train split needs at least 2 classes.")


@dataclasses.dataclass
class ClusteringData:
  items: Sequence[Any]
  labels: Sequence[Any]
  task: str | None = CLUSTERING

  def __post_init__(self):
    if len(self.items) != len(self.labels) or len(self.items) < 2:
      raise InputError(f"ClusteringData: {len(self.items)} items and {len(self.labels)} labels; "
                       "they must be equal and at least 2.")


@dataclasses.dataclass
class STSData:
  """Pairs (items_a[i], items_b[i]) with gold similarity scores[i]."""

  items_a: Sequence[Any]
  items_b: Sequence[Any]
  scores: Sequence[float]
  task: str | None = SEMANTIC_SIMILARITY

  def __post_init__(self):
    if not len(self.items_a) == len(self.items_b) == len(self.scores) or len(self.scores) < 2:
      raise InputError(f"STSData: {len(self.items_a)} / {len(self.items_b)} / {len(self.scores)} "
                       "items_a / items_b / scores; they must be equal and at least 2.")


@dataclasses.dataclass
class PairedData:
  """Cross-modal pairs: items_b[j] (e.g. a caption) describes items_a[b_to_a[j]] (an image).

  Several b per a is the MSCOCO (5 captions per image) and Vatex (10 per video) setting. Either
  side may be the query side; both use `query_task` as their prompt when they are queries.
  """

  items_a: Sequence[Any]
  items_b: Sequence[Any]
  b_to_a: Sequence[int]
  query_task: str | None = RETRIEVAL_QUERY

  def __post_init__(self):
    b_to_a = np.asarray(self.b_to_a)
    if len(b_to_a) != len(self.items_b) or len(self.items_a) == 0 or len(self.items_b) == 0:
      raise InputError(f"PairedData: {len(self.items_b)} items_b but {len(b_to_a)} b_to_a "
                       f"entries (and {len(self.items_a)} items_a); every b needs its a.")
    if not np.issubdtype(b_to_a.dtype, np.integer) or b_to_a.min() < 0 or \
        b_to_a.max() >= len(self.items_a):
      raise InputError(f"PairedData: b_to_a must be integer positions in items_a "
                       f"[0, {len(self.items_a)}).")
