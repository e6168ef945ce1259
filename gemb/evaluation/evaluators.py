"""The evaluator contract and the built-in task evaluators.

An evaluator is built from a recipe entry (its registry name plus keyword arguments), holds its
task data, and is run against an embed function::

    ev = gemb.evaluators.get("retrieval")(data, ks=(1, 10))
    for name, value in ev.run(embed_fn, dim=256): ...

`embed_fn(items, task=None, dim=None) -> [n, d] array` is all an evaluator knows of the model, so
evaluators can be tested with fake embed functions and used with any model. Embeddings are
L2-normalized here again, so every score below is a cosine.

Task types (after MTEB) and their main metric:

* ``retrieval``: queries against a corpus with graded qrels; ``ndcg@10``.
* ``classification``: logistic regression on train embeddings, scored on test; ``accuracy``.
* ``clustering``: k-means with one cluster per gold label; ``v_measure``.
* ``sts``: Spearman correlation of cosine with gold similarity; ``cosine_spearman``.
* ``mscoco``: cross-modal, several captions per image, R@1/5/10 both directions; ``mean_R@1``.
* ``vatex``: cross-modal, text -> video NDCG@10 (several captions per video); ``text_to_video/ndcg@10``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from gemb.errors import ConfigError, InputError
from gemb.evaluation import learners
from gemb.evaluation import metrics as metrics_lib
from gemb.registry import evaluators, retrievers

EmbedFn = Callable[..., np.ndarray]

# Task names passed to embed_fn. gemb's Encoder prefixes query text with "task: {task} | query: "
# (EmbeddingGemma's prompt names) and embeds documents, images, audio and video with task=None.
RETRIEVAL_QUERY = "search result"
RETRIEVAL_DOCUMENT = None
CLASSIFICATION = "classification"
CLUSTERING = "clustering"
SEMANTIC_SIMILARITY = "sentence similarity"


# -- task data ---------------------------------------------------------------------------------

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

  def __post_init__(self):
    if not len(self.items_a) == len(self.items_b) == len(self.scores) or len(self.scores) < 2:
      raise InputError(f"STSData: {len(self.items_a)} / {len(self.items_b)} / {len(self.scores)} "
                       "items_a / items_b / scores; they must be equal and at least 2.")


@dataclasses.dataclass
class PairedData:
  """Cross-modal pairs: items_b[j] (e.g. a caption) describes items_a[b_to_a[j]] (an image).

  Several b per a is the MSCOCO (5 captions per image) and Vatex (10 per video) setting.
  """

  items_a: Sequence[Any]
  items_b: Sequence[Any]
  b_to_a: Sequence[int]

  def __post_init__(self):
    b_to_a = np.asarray(self.b_to_a)
    if len(b_to_a) != len(self.items_b) or len(self.items_a) == 0 or len(self.items_b) == 0:
      raise InputError(f"PairedData: {len(self.items_b)} items_b but {len(b_to_a)} b_to_a "
                       f"entries (and {len(self.items_a)} items_a); every b needs its a.")
    if not np.issubdtype(b_to_a.dtype, np.integer) or b_to_a.min() < 0 or \
        b_to_a.max() >= len(self.items_a):
      raise InputError(f"PairedData: b_to_a must be integer positions in items_a "
                       f"[0, {len(self.items_a)}).")


# -- the contract --------------------------------------------------------------------------------

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
  emb_nd = np.concatenate(out)
  norms = np.linalg.norm(emb_nd, axis=1, keepdims=True)
  return emb_nd / np.maximum(norms, 1e-12)


class Evaluator(abc.ABC):
  """Takes an embed function, yields (metric_name, value). `main_metric` names the headline."""

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
  def run(self, embed_fn: EmbedFn, dim: int | None = None) -> Iterator[tuple[str, float]]:
    ...

  def evaluate(self, embed_fn: EmbedFn, dim: int | None = None) -> dict[str, float]:
    return {k: float(v) for k, v in self.run(embed_fn, dim)}


def _search(emb_corpus_nd, emb_query_qd, k: int, retriever: str) -> np.ndarray:
  index = retrievers.get(retriever)().build(emb_corpus_nd)
  rows_qk, _ = index.search(emb_query_qd, min(k, len(emb_corpus_nd)))
  return rows_qk


@evaluators.register("retrieval")
class RetrievalEvaluator(Evaluator):
  """Query -> corpus retrieval scored with trec_eval metrics (NDCG@10 main, as MTEB)."""

  main_metric = "ndcg@10"

  def __init__(self, data: RetrievalData, *, metrics: Sequence[str] = (
      "ndcg@10", "recall@1", "recall@10", "recall@100", "mrr@10", "map@100"),
               query_task: str | None = RETRIEVAL_QUERY,
               doc_task: str | None = RETRIEVAL_DOCUMENT,
               retriever: str = "exact", batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.metrics = tuple(metrics)
    self.cutoff = max((metrics_lib.parse_metric(m)[1] or 100) for m in self.metrics)
    self.query_task, self.doc_task, self.retriever = query_task, doc_task, retriever

  def rankings(self, embed_fn: EmbedFn, dim: int | None = None, k: int | None = None):
    data = self.data
    c_nd = self.embed(embed_fn, data.corpus, self.doc_task, dim)
    q_qd = self.embed(embed_fn, data.queries, self.query_task, dim)
    rows_qk = _search(c_nd, q_qd, k or self.cutoff, self.retriever)
    ids = np.arange(len(data.corpus)) if data.corpus_ids is None else np.asarray(data.corpus_ids)
    return ids[rows_qk]

  def run(self, embed_fn, dim=None):
    rankings = self.rankings(embed_fn, dim)
    yield from metrics_lib.ranking_metrics(rankings.tolist(), self.data.qrels,
                                           self.metrics).items()

  def examples(self, embed_fn: EmbedFn, n: int = 3, k: int = 5, dim: int | None = None):
    """The top-k corpus items of the first n queries, for a results grid."""
    data = self.data
    sub = RetrievalData(list(data.queries[:n]), data.corpus, list(data.qrels[:n]),
                        data.corpus_ids)
    ranked = RetrievalEvaluator(sub, metrics=self.metrics, query_task=self.query_task,
                                doc_task=self.doc_task, retriever=self.retriever,
                                batch_size=self.batch_size).rankings(embed_fn, dim, k)
    pos = {cid: i for i, cid in enumerate(
        range(len(data.corpus)) if data.corpus_ids is None else data.corpus_ids)}
    return [{"query": sub.queries[i], "results": [data.corpus[pos[c]] for c in row],
             "relevant": [sub.qrels[i].get(c, 0) >= 1 for c in row]}
            for i, row in enumerate(ranked.tolist())]


@evaluators.register("classification")
class ClassificationEvaluator(Evaluator):
  """Logistic regression on frozen embeddings (MTEB's protocol); accuracy main, macro-F1 too."""

  main_metric = "accuracy"

  def __init__(self, data: ClassificationData, *, task: str | None = CLASSIFICATION, c: float = 1.0,
               steps: int = 100, batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.task, self.c, self.steps = task, c, steps

  def run(self, embed_fn, dim=None):
    data = self.data
    train_nd = self.embed(embed_fn, data.train_items, self.task, dim)
    test_nd = self.embed(embed_fn, data.test_items, self.task, dim)
    clf = learners.LogisticRegression(c=self.c, steps=self.steps).fit(
        train_nd, np.asarray(data.train_labels))
    pred = clf.predict(test_nd)
    yield "accuracy", metrics_lib.accuracy(np.asarray(data.test_labels), pred)
    yield "f1_macro", metrics_lib.macro_f1(np.asarray(data.test_labels), pred)


@evaluators.register("clustering")
class ClusteringEvaluator(Evaluator):
  """k-means with one cluster per gold label, scored by V-measure (mean over seeds)."""

  main_metric = "v_measure"

  def __init__(self, data: ClusteringData, *, task: str | None = CLUSTERING, seeds: int = 3,
               batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.task, self.seeds = task, seeds

  def run(self, embed_fn, dim=None):
    data = self.data
    x_nd = self.embed(embed_fn, data.items, self.task, dim)
    k = len(np.unique(np.asarray(data.labels)))
    scores = [metrics_lib.v_measure(data.labels, learners.kmeans(x_nd, k, seed=s))
              for s in range(self.seeds)]
    yield "v_measure", float(np.mean(scores))


@evaluators.register("sts")
class STSEvaluator(Evaluator):
  """Spearman (main) and Pearson correlation of pair cosine with gold similarity."""

  main_metric = "cosine_spearman"

  def __init__(self, data: STSData, *, task: str | None = SEMANTIC_SIMILARITY, batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.task = task

  def run(self, embed_fn, dim=None):
    data = self.data
    a_nd = self.embed(embed_fn, data.items_a, self.task, dim)
    b_nd = self.embed(embed_fn, data.items_b, self.task, dim)
    cos_n = (a_nd * b_nd).sum(1)
    yield "cosine_spearman", metrics_lib.spearman(cos_n, data.scores)
    yield "cosine_pearson", metrics_lib.pearson(cos_n, data.scores)


class CrossModalEvaluator(Evaluator):
  """Retrieval between two collections paired many-b-to-one-a (images/videos and captions)."""

  def __init__(self, data: PairedData, *, a_name: str, b_name: str = "text",
               b_to_a_metrics: Sequence[str], a_to_b_metrics: Sequence[str],
               a_task: str | None = RETRIEVAL_DOCUMENT, b_task: str | None = RETRIEVAL_QUERY,
               a_query_task: str | None = RETRIEVAL_QUERY,
               b_doc_task: str | None = RETRIEVAL_DOCUMENT,
               retriever: str = "exact", batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.a_name, self.b_name = a_name, b_name
    self.b_to_a_metrics, self.a_to_b_metrics = tuple(b_to_a_metrics), tuple(a_to_b_metrics)
    self.a_task, self.b_task = a_task, b_task
    self.a_query_task, self.b_doc_task = a_query_task, b_doc_task
    self.retriever = retriever

  @staticmethod
  def _cutoff(names):
    return max((metrics_lib.parse_metric(m)[1] or 100) for m in names)

  def directions(self, embed_fn, dim, k=None):
    """Yields (direction, queries, docs, rankings [q, k] of doc positions, qrels)."""
    data = self.data
    b_to_a = np.asarray(data.b_to_a)
    if self.b_to_a_metrics:
      a_doc = self.embed(embed_fn, data.items_a, self.a_task, dim)
      b_q = self.embed(embed_fn, data.items_b, self.b_task, dim)
      rows = _search(a_doc, b_q, k or self._cutoff(self.b_to_a_metrics), self.retriever)
      yield (f"{self.b_name}_to_{self.a_name}", data.items_b, data.items_a, rows,
             [{int(a): 1} for a in b_to_a], self.b_to_a_metrics)
    if self.a_to_b_metrics:
      a_q = self.embed(embed_fn, data.items_a, self.a_query_task, dim)
      b_doc = self.embed(embed_fn, data.items_b, self.b_doc_task, dim)
      rows = _search(b_doc, a_q, k or self._cutoff(self.a_to_b_metrics), self.retriever)
      qrels = [dict.fromkeys(np.flatnonzero(b_to_a == a).tolist(), 1)
               for a in range(len(data.items_a))]
      yield (f"{self.a_name}_to_{self.b_name}", data.items_a, data.items_b, rows, qrels,
             self.a_to_b_metrics)

  def run(self, embed_fn, dim=None):
    for direction, _, _, rows, qrels, names in self.directions(embed_fn, dim):
      values = metrics_lib.ranking_metrics(rows.tolist(), qrels, names)
      for name, v in values.items():
        yield f"{direction}/{_paper_name(name)}", v

  def examples(self, embed_fn: EmbedFn, n: int = 3, k: int = 5, dim: int | None = None):
    """For each direction, the top-k of the first n queries, for a results grid."""
    out = []
    for direction, queries, docs, rows, qrels, _ in self.directions(embed_fn, dim, k):
      for i in range(min(n, len(queries))):
        out.append({"direction": direction, "query": queries[i],
                    "results": [docs[j] for j in rows[i][:k]],
                    "relevant": [qrels[i].get(int(j), 0) >= 1 for j in rows[i][:k]]})
    return out


def _paper_name(metric: str) -> str:
  # Image-text papers call a hit among the top K "R@K"; that is trec_eval's success@K.
  kind, k = metrics_lib.parse_metric(metric)
  return f"R@{k}" if kind == "success" else metric


@evaluators.register("mscoco")
class MSCOCOEvaluator(CrossModalEvaluator):
  """MSCOCO protocol: R@1/5/10 image->text and text->image, several captions per image."""

  main_metric = "mean_R@1"

  def __init__(self, data: PairedData, *, a_name: str = "image", b_name: str = "text",
               ks: Sequence[int] = (1, 5, 10), **kw):
    names = tuple(f"success@{k}" for k in ks)
    super().__init__(data, a_name=a_name, b_name=b_name, b_to_a_metrics=names,
                     a_to_b_metrics=names, **kw)

  def run(self, embed_fn, dim=None):
    values = dict(super().run(embed_fn, dim))
    yield from values.items()
    r1 = [v for k, v in values.items() if k.endswith("/R@1")]
    if r1:
      yield "mean_R@1", float(np.mean(r1))


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


# -- building from recipe entries --------------------------------------------------------------

DataLoader = Callable[..., Any]


def build_evaluator(entry: Mapping[str, Any], load_data: DataLoader | None = None) -> Evaluator:
  """Builds an evaluator from a recipe entry such as::

      {"kind": "retrieval", "dataset": "tiny_text", "split": "test", "metrics": ["ndcg@10"]}

  `kind` is a `gemb.evaluators` spec. The task data comes from ``entry["data"]`` (a task-data
  object or a callable returning one) or, when the entry names a ``dataset``, from
  ``load_data(dataset=..., split=..., kind=...)``.
  """
  entry = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
  if "kind" not in entry:
    raise ConfigError(f"Evaluator entry {entry!r} has no 'kind'; known kinds: "
                      f"{', '.join(evaluators.names())}.")
  kind = entry.pop("kind")
  entry.pop("name", None)
  if "data" in entry:
    data = entry.pop("data")
  elif "dataset" in entry:
    if load_data is None:
      raise ConfigError(f"Evaluator entry for {kind!r} names dataset {entry['dataset']!r} but no "
                        "data loader was given; pass load_data=... to build_evaluator.")
    dataset, split = entry.pop("dataset"), entry.pop("split", "test")
    data = lambda: load_data(dataset=dataset, split=split, kind=kind)  # noqa: E731
  else:
    raise ConfigError(f"Evaluator entry for {kind!r} needs 'data' or 'dataset'.")
  try:
    return evaluators.get(kind)(data, **entry)
  except TypeError as e:
    raise ConfigError(f"Evaluator entry for {kind!r}: {e}.") from None
