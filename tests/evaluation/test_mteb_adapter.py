"""gemb encoders under mteb: a local retrieval task scored by mteb equals gemb's own evaluator."""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the task is local; nothing may reach the hub
mteb = pytest.importorskip("mteb", reason="mteb not installed (pip install 'gemb[mteb]')")

import gemb  # noqa: E402
from gemb.evaluation import RetrievalData, build_evaluator  # noqa: E402
from gemb.evaluation import mteb_adapter  # noqa: E402
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402
from mteb.types import PromptType  # noqa: E402
from datasets import Dataset  # noqa: E402

CITIES = ["paris", "tokyo", "lima", "oslo", "cairo", "delhi", "quito", "hanoi", "accra", "riga",
          "seoul", "dakar", "bern", "doha", "kyiv", "baku", "sofia", "minsk", "rabat", "tunis"]
FACTS = ["river", "museum", "market", "bridge", "harbour", "tower"]


def corpus_and_queries():
  """Docs "<city> has a famous <fact>"; a query asks for one city: its docs are relevant,
  the one whose fact the query names with grade 2, the city's other docs with grade 1."""
  rng = np.random.default_rng(0)
  docs, doc_city = [], []
  for c, city in enumerate(CITIES):
    for fact in rng.choice(FACTS, 3, replace=False):
      docs.append(f"{city} has a famous {fact}")
      doc_city.append(c)
  queries, qrels = [], []
  for c in range(0, len(CITIES), 2):
    mine = [i for i, dc in enumerate(doc_city) if dc == c]
    fact = docs[mine[0]].rsplit(" ", 1)[1]
    queries.append(f"which {fact} is in {CITIES[c]}?")
    qrels.append({i: (2 if i == mine[0] else 1) for i in mine})
  return docs, queries, qrels


def local_task(docs, queries, qrels):
  """An mteb retrieval task whose data lives in memory (mteb cannot reach the hub here)."""

  class LocalCities(AbsTaskRetrieval):
    metadata = TaskMetadata(
        name="GembLocalCities", type="Retrieval", main_score="ndcg_at_10",
        description="Synthetic city facts, built in the test.", reference=None,
        dataset={"path": "local/none", "revision": "0"}, category="t2t", eval_splits=["test"],
        eval_langs=["eng-Latn"], date=("2026-01-01", "2026-01-01"), dialect=[], domains=[],
        task_subtypes=[], license="cc-by-4.0", annotations_creators="derived",
        modalities=["text"], sample_creation="created", bibtex_citation="")

    def load_data(self, num_proc=None, **kwargs):
      split = RetrievalSplitData(
          queries=Dataset.from_list([{"id": f"q{i}", "text": t} for i, t in enumerate(queries)]),
          corpus=Dataset.from_list([{"id": f"d{i}", "text": t, "title": ""}
                                    for i, t in enumerate(docs)]),
          relevant_docs={f"q{i}": {f"d{d}": g for d, g in rel.items()}
                         for i, rel in enumerate(qrels)},
          top_ranked=None)
      self.dataset = {"default": {"test": split}}
      self.data_loaded = True

  return LocalCities()


@pytest.fixture(scope="module")
def encoder():
  return gemb.load("tiny")


class Recording:
  """Wraps an encoder and records the task of every embed call."""

  def __init__(self, enc):
    self.enc, self.config, self.tasks = enc, enc.config, []

  def embed(self, items, task=None, dim=None, batch_size=64):
    self.tasks.append((task, len(items)))
    return self.enc.embed(items, task=task, dim=dim, batch_size=batch_size)


@pytest.mark.parametrize("dim", [None, 32])
def test_mteb_ndcg_equals_gemb_retrieval_evaluator(encoder, dim):
  docs, queries, qrels = corpus_and_queries()
  rec = Recording(encoder)
  model = mteb_adapter.MtebEncoder(rec, dim=dim, name="gemb/tiny")
  result = mteb.evaluate(model, local_task(docs, queries, qrels), cache=None,
                         show_progress_bar=False, encode_kwargs={"batch_size": 16})
  scores = result.task_results[0].scores["test"][0]
  ours = build_evaluator({"kind": "retrieval(metrics=('ndcg@10', 'recall@10', 'mrr@10'))",
                          "data": RetrievalData(queries, docs, qrels)}).evaluate(encoder.embed,
                                                                                  dim)
  assert 0.0 < ours["ndcg@10"] < 1.0  # a real ranking, neither empty nor perfect
  # mteb rounds NDCG/recall/MAP to 5 decimals (not MRR): equal up to that rounding
  for theirs, mine in [("ndcg_at_10", "ndcg@10"), ("recall_at_10", "recall@10"),
                       ("mrr_at_10", "mrr@10")]:
    assert abs(scores[theirs] - ours[mine]) <= 5e-6 + 1e-12, (theirs, scores[theirs], ours[mine])
  assert scores["main_score"] == scores["ndcg_at_10"]
  # queries got gemb's retrieval prompt, documents none; mteb batches of 16
  assert sum(n for t, n in rec.tasks if t == "search result") == len(queries)
  assert sum(n for t, n in rec.tasks if t is None) == len(docs)
  assert max(n for _, n in rec.tasks) <= 16


def test_task_prompt_mapping(encoder):
  model = mteb_adapter.MtebEncoder(encoder, name="gemb/tiny",
                                   task_prompts={"GembLocalCities": "question answering"})
  meta = local_task(*corpus_and_queries()).metadata
  assert model.gemb_task(meta, PromptType.document) is None
  assert model.gemb_task(meta, PromptType.query) == "question answering"  # by task name
  for kind, want in [("STS", "sentence similarity"), ("Clustering", "clustering"),
                     ("Classification", "classification"), ("Retrieval", "search result")]:
    assert model.gemb_task(meta.model_copy(update={"type": kind, "name": "X"}), None) == want
  code = meta.model_copy(update={"name": "X", "domains": ["Programming"]})
  assert model.gemb_task(code, PromptType.query) == "code retrieval"
  assert model.mteb_model_meta.embed_dim == encoder.config.out_dim


def test_bad_input(encoder):
  with pytest.raises(gemb.InputError, match="embed"):
    mteb_adapter.MtebEncoder(object())
  with pytest.raises(gemb.InputError, match="org/model"):
    mteb_adapter.MtebEncoder(encoder, name="tiny")
  with pytest.raises(gemb.InputError, match="none of text"):
    mteb_adapter._items({"id": ["a"]})
