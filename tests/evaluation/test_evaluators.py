"""Task evaluators against fake embed functions built from known vectors."""

import numpy as np
import pytest
from PIL import Image

import gemb
from gemb.evaluation import (ClassificationData, ClusteringData, PairedData, RetrievalData,
                             STSData, build_evaluator, evaluate_suite, format_table,
                             plot_metric_vs_dim, plot_topk_grid)

D = 32


def unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


class FakeModel:
  """Items are keys into a table of known vectors; the embedding is a noisy copy.

  Matryoshka-like: `dim` keeps the first dim coordinates, and the noise is seeded per item so
  the same item always gets the same vector. Records every call for assertions.
  """

  def __init__(self, table, noise=0.0, seed=0):
    self.table, self.noise, self.seed = table, noise, seed
    self.calls = []

  def __call__(self, items, task=None, dim=None):
    self.calls.append((len(items), task, dim))
    rows = []
    for it in items:
      rng = np.random.default_rng(hash((self.seed, it)) % (2 ** 32))
      v = self.table[it] + self.noise * rng.normal(size=self.table[it].shape)
      rows.append(v)
    x = np.stack(rows)[:, :dim] if dim else np.stack(rows)
    return unit(x)


def retrieval_case(n_docs=200, n_q=60, seed=0, d=64):
  rng = np.random.default_rng(seed)
  docs = unit(rng.normal(size=(n_docs, d)))
  table = {f"doc{i}": docs[i] for i in range(n_docs)}
  qrels = []
  for q in range(n_q):
    a, b = rng.choice(n_docs, 2, replace=False)
    table[f"q{q}"] = unit(0.8 * docs[a] + 0.6 * docs[b])  # a is closer than b: grade a higher
    qrels.append({int(a): 2, int(b): 1})
  data = RetrievalData([f"q{q}" for q in range(n_q)], [f"doc{i}" for i in range(n_docs)], qrels)
  return data, table


def test_retrieval_perfect_and_noisy_models():
  data, table = retrieval_case()
  ev = gemb.evaluators.get("retrieval")(data, metrics=("ndcg@10", "recall@10", "mrr@10", "map"))
  clean = FakeModel(table)
  got = ev.evaluate(clean)
  assert got["recall@10"] == 1.0 and got["mrr@10"] == 1.0
  assert got["ndcg@10"] > 0.97
  tasks = {task for _, task, _ in clean.calls}
  assert tasks == {"search result", None}  # queries get the prompt, documents none
  noisy = ev.evaluate(FakeModel(table, noise=0.35))
  worse = ev.evaluate(FakeModel(table, noise=1.5))
  assert got["ndcg@10"] > noisy["ndcg@10"] > worse["ndcg@10"] > 0
  assert worse["ndcg@10"] < 0.5


def test_retrieval_with_corpus_ids_and_scann_backend():
  data, table = retrieval_case(n_docs=300, n_q=20, seed=1)
  ids = list(range(1000, 1300))
  shifted = RetrievalData(data.queries, data.corpus, [{1000 + k: g for k, g in r.items()}
                                                      for r in data.qrels], ids)
  a = gemb.evaluators.get("retrieval")(data).evaluate(FakeModel(table, noise=0.2))
  b = gemb.evaluators.get("retrieval(retriever='scann')")(shifted).evaluate(
      FakeModel(table, noise=0.2))
  assert a == pytest.approx(b)


def test_classification_learns_separable_classes_and_not_noise():
  rng = np.random.default_rng(2)
  centers = unit(rng.normal(size=(4, D)))
  labels = rng.integers(0, 4, 400)
  table = {i: centers[labels[i]] + 0.25 * rng.normal(size=D) for i in range(400)}
  data = ClassificationData(list(range(300)), labels[:300], list(range(300, 400)), labels[300:])
  ev = gemb.evaluators.get("classification")(data)
  good = ev.evaluate(FakeModel(table))
  assert good["accuracy"] > 0.95 and good["f1_macro"] > 0.95
  rand = {i: rng.normal(size=D) for i in range(400)}
  chance = ev.evaluate(FakeModel(rand))
  assert chance["accuracy"] < 0.45


def test_clustering_v_measure():
  rng = np.random.default_rng(3)
  centers = unit(rng.normal(size=(5, D))) * 3
  labels = np.repeat(np.arange(5), 30)
  table = {i: centers[labels[i]] + 0.2 * rng.normal(size=D) for i in range(150)}
  ev = gemb.evaluators.get("clustering")(ClusteringData(list(range(150)), labels))
  assert ev.evaluate(FakeModel(table))["v_measure"] == pytest.approx(1.0)
  rand = {i: rng.normal(size=D) for i in range(150)}
  assert ev.evaluate(FakeModel(rand))["v_measure"] < 0.3


def test_sts_spearman_of_cosine():
  rng = np.random.default_rng(4)
  base = unit(rng.normal(size=(50, D)))
  other = rng.normal(size=(50, D))
  other = unit(other - (other * base).sum(1, keepdims=True) * base)  # orthogonal to base
  t = np.linspace(0, 1, 50)
  table = {}
  for i in range(50):
    table[("a", i)] = base[i]
    table[("b", i)] = unit(t[i] * base[i] + (1 - t[i]) * other[i])  # cosine grows with t
  data = STSData([("a", i) for i in range(50)], [("b", i) for i in range(50)], 5 * t)
  got = gemb.evaluators.get("sts")(data).evaluate(FakeModel(table))
  assert got["cosine_spearman"] == pytest.approx(1.0)
  assert 0.9 < got["cosine_pearson"] < 1.0


def paired_case(n=20, per=5, wrong_every=None, seed=5):
  """n images, `per` captions each; caption j of image a points at image a (or a+1 if wrong)."""
  rng = np.random.default_rng(seed)
  img = unit(rng.normal(size=(n, D)))
  table = {("img", a): img[a] for a in range(n)}
  b_to_a = []
  for a in range(n):
    for j in range(per):
      target = (a + 1) % n if wrong_every and j % wrong_every == 0 else a
      table[("cap", a, j)] = unit(img[target] + 0.05 * rng.normal(size=D))
      b_to_a.append(a)
  items_b = [("cap", a, j) for a in range(n) for j in range(per)]
  return PairedData([("img", a) for a in range(n)], items_b, b_to_a), table


def test_mscoco_protocol():
  data, table = paired_case()
  ev = gemb.evaluators.get("mscoco")(data)
  perfect = ev.evaluate(FakeModel(table))
  assert set(perfect) == {"text_to_image/R@1", "text_to_image/R@5", "text_to_image/R@10",
                          "image_to_text/R@1", "image_to_text/R@5", "image_to_text/R@10",
                          "mean_R@1"}
  assert all(v == 1.0 for v in perfect.values())
  data, table = paired_case(wrong_every=5)  # caption 0 of every image describes the next one
  model = FakeModel(table)
  got = ev.__class__(data).evaluate(model)
  assert got["text_to_image/R@1"] == pytest.approx(0.8)
  assert got["image_to_text/R@5"] == 1.0  # 4 of its own captions are still in its top 5
  want = brute_force_paired(data, model)
  assert got == pytest.approx(want)


def brute_force_paired(data, embed, ks=(1, 5, 10)):
  """R@K both ways by loops over the cosine matrix: text -> every image; image -> text for the
  images that have a caption in `data` (an image without one has nothing to find)."""
  a = unit(np.asarray(embed(list(data.items_a))))
  b = unit(np.asarray(embed(list(data.items_b))))
  sim_ba = b @ a.T
  out = {}
  for k in ks:
    hits = [int(np.asarray(data.b_to_a)[j] in np.argsort(-sim_ba[j], kind="stable")[:k])
            for j in range(len(b))]
    out[f"text_to_image/R@{k}"] = float(np.mean(hits))
    hits = []
    for i in range(len(a)):
      mine = {j for j in range(len(b)) if data.b_to_a[j] == i}
      if mine:
        hits.append(int(bool(mine & set(np.argsort(-sim_ba[:, i], kind="stable")[:k].tolist()))))
    out[f"image_to_text/R@{k}"] = float(np.mean(hits))
  out["mean_R@1"] = (out["text_to_image/R@1"] + out["image_to_text/R@1"]) / 2
  return out


def test_capped_captions_score_only_images_with_a_caption():
  # 20 images x 5 captions, captions capped at 37: images 8..19 have no caption left, image 7
  # has two. Image -> text must rank captions for the 8 images that have one (not score the
  # other 12 as misses), text -> image still ranks all 20 images; both equal the brute force.
  full, table = paired_case(n=20, per=5, wrong_every=3, seed=11)
  capped = PairedData(full.items_a, full.items_b[:37], full.b_to_a[:37])
  model = FakeModel(table, noise=0.6, seed=3)
  ev = gemb.evaluators.get("mscoco")(capped)
  assert ev.evaluate(model) == pytest.approx(brute_force_paired(capped, model))
  got = ev.score(model)
  assert got.n_queries == 37 and got.n_corpus == 20
  assert len(got.per_query["image_to_text/R@1"][0]) == 8
  perfect = gemb.evaluators.get("mscoco")(PairedData(full.items_a, full.items_b[:37],
                                                     [a for a in full.b_to_a[:37]]))
  clean = perfect.evaluate(FakeModel(paired_case(n=20, per=5, seed=11)[1]))
  assert clean["image_to_text/R@10"] == 1.0 and clean["text_to_image/R@10"] == 1.0


def test_vatex_protocol_text_to_video_ndcg():
  data, table = paired_case(n=15, per=10)
  ev = gemb.evaluators.get("vatex")(data)
  assert ev.main_metric == "text_to_video/ndcg@10"
  assert ev.evaluate(FakeModel(table))["text_to_video/ndcg@10"] == 1.0
  data, table = paired_case(n=15, per=10, wrong_every=2)  # half the captions point elsewhere
  got = ev.__class__(data).evaluate(FakeModel(table))
  assert got["text_to_video/R@1"] == pytest.approx(0.5)
  assert 0.5 < got["text_to_video/ndcg@10"] < 1.0


def test_build_from_entry_and_suite_over_dims(tmp_path):
  data, table = retrieval_case(seed=6)
  loads = []

  def load_data(dataset, split, kind):
    loads.append((dataset, split, kind))
    return data

  mrl_table = {k: v * np.linspace(2.0, 0.2, 64) for k, v in table.items()}  # early dims matter
  model = FakeModel(mrl_table, noise=0.15)
  pdata, ptable = paired_case(seed=7)
  mrl_ptable = {k: v * np.linspace(2.0, 0.2, D) for k, v in ptable.items()}
  report = evaluate_suite(
      lambda items, task=None, dim=None: (model if items[0] in mrl_table else
                                          FakeModel(mrl_ptable, noise=0.3))(items, task, dim),
      {"tiny-retrieval": {"kind": "retrieval", "dataset": "tiny", "split": "test",
                          "metrics": ["ndcg@10", "recall@10"]},
       "tiny-coco": build_evaluator({"kind": "mscoco", "data": pdata})},
      dims=(4, 8, 32), load_data=load_data)
  assert loads == [("tiny", "test", "retrieval")]  # loaded lazily, once
  assert report["dims"] == ["4", "8", "32"]
  curve = [report["main"]["tiny-retrieval"][d] for d in ("4", "8", "32")]
  assert curve[0] < curve[1] < curve[2]
  assert report["main_metric"] == {"tiny-retrieval": "ndcg@10", "tiny-coco": "mean_R@1"}
  table_md = format_table(report, all_metrics=True)
  ci = report["ci95"]["tiny-retrieval"]["4"]["ndcg@10"]
  chance = report["chance"]["tiny-retrieval"]["ndcg@10"]
  assert ci[0] <= curve[0] <= ci[1]
  assert 0 < chance < 0.1  # 2 relevant of 200 documents
  assert (f"| tiny-retrieval | test | 60 / 200 | ndcg@10 | {100 * chance:.2f} | "
          f"{100 * curve[0]:.2f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] |") in table_md
  assert "text_to_image/R@5" in table_md

  png = plot_metric_vs_dim(report, tmp_path / "curves.png")
  assert Image.open(png).size[0] > 300
  examples = gemb.evaluators.get("mscoco")(pdata).examples(FakeModel(ptable), n=2, k=5)
  assert len(examples) == 4 and examples[0]["direction"] == "text_to_image"
  assert examples[0]["relevant"][0] is True

  def render(item):
    if item[0] == "img":
      return np.full((16, 16, 3), item[1] * 10, np.uint8)
    return f"caption {item[1]}.{item[2]}"

  grid = plot_topk_grid(examples, render, tmp_path / "grid.png", title="top-5")
  w, h = Image.open(grid).size
  assert w > h > 100  # 4 rows x 6 columns
  ex = gemb.evaluators.get("retrieval")(data).examples(FakeModel(table), n=3, k=5)
  assert [len(e["results"]) for e in ex] == [5, 5, 5] and ex[0]["relevant"][0]


def test_bad_inputs():
  data, table = retrieval_case(n_docs=20, n_q=3)
  ev = gemb.evaluators.get("retrieval")(data)
  with pytest.raises(gemb.InputError, match=r"returned shape \(20, 2, 2\)"):
    ev.evaluate(lambda items, task=None, dim=None: np.ones((len(items), 2, 2)))
  with pytest.raises(gemb.InputError, match="NaN"):
    ev.evaluate(lambda items, task=None, dim=None: np.full((len(items), 4), np.nan))
  with pytest.raises(gemb.InputError, match="asked for dim=8"):
    ev.evaluate(lambda items, task=None, dim=None: np.ones((len(items), 4)), dim=8)
  with pytest.raises(gemb.InputError, match="2 queries but 1 qrels"):
    RetrievalData(["a", "b"], ["x"], [{0: 1}])
  with pytest.raises(gemb.InputError, match="not in the corpus"):
    RetrievalData(["a"], ["x"], [{5: 1}])
  with pytest.raises(gemb.InputError, match="b_to_a must be integer positions"):
    PairedData(["i"], ["c1", "c2"], [0, 3])
  with pytest.raises(gemb.ConfigError, match="no 'kind'"):
    build_evaluator({"data": data})
  with pytest.raises(gemb.ConfigError, match="no data loader"):
    build_evaluator({"kind": "retrieval", "dataset": "x"})
  with pytest.raises(gemb.ConfigError, match="unexpected keyword"):
    build_evaluator({"kind": "sts", "data": data, "nope": 1})
  with pytest.raises(gemb.ConfigError, match="suite is empty"):
    evaluate_suite(lambda *a, **k: None, {})
