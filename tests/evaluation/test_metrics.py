"""Metrics agree with trec_eval (through pytrec_eval) to 1e-6, and with hand-computed values."""

import math

import numpy as np
import pytest

from gemb.errors import InputError
from gemb.evaluation import metrics as M

pytrec_eval = pytest.importorskip("pytrec_eval", reason="test-only dep pytrec-eval-terrier")

# our name -> trec_eval measure
PAIRS = {
    "ndcg@1": "ndcg_cut_1", "ndcg@5": "ndcg_cut_5", "ndcg@10": "ndcg_cut_10",
    "ndcg@100": "ndcg_cut_100", "recall@1": "recall_1", "recall@5": "recall_5",
    "recall@10": "recall_10", "recall@100": "recall_100", "map": "map", "map@10": "map_cut_10",
    "map@100": "map_cut_100", "success@1": "success_1", "success@5": "success_5",
    "success@10": "success_10", "precision@5": "P_5", "precision@10": "P_10",
}


def random_case(seed, n_queries=60, n_docs=150):
  """Rankings of varied length and graded qrels: several relevant items, some grade-0 items,
  a query with no relevant item at all, relevant items that are never retrieved."""
  rng = np.random.default_rng(seed)
  rankings, qrels = [], []
  for q in range(n_queries):
    length = int(rng.integers(1, 120))
    judged = rng.choice(n_docs, int(rng.integers(1, 25)), replace=False)
    grades = rng.integers(0, 4, len(judged)) if q % 7 else np.zeros(len(judged), int)
    qrels.append({int(d): int(g) for d, g in zip(judged, grades)})
    # A half-good ranker: judged items tend to come first, graded ones more so.
    score = rng.random(n_docs)
    score[judged] += rng.random(len(judged)) * (0.3 + 0.3 * grades)
    rankings.append(np.argsort(-score)[:length].tolist())
  return rankings, qrels


def trec(rankings, qrels, measures):
  t_qrels = {f"q{i}": {f"d{d}": g for d, g in rel.items()} for i, rel in enumerate(qrels)}
  # Strictly decreasing scores, so trec_eval's order is exactly the given ranking.
  t_run = {f"q{i}": {f"d{d}": float(len(r) - j) for j, d in enumerate(r)}
           for i, r in enumerate(rankings)}
  out = pytrec_eval.RelevanceEvaluator(t_qrels, set(measures)).evaluate(t_run)
  return [out[f"q{i}"] for i in range(len(rankings))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_query_metrics_agree_with_trec_eval(seed):
  rankings, qrels = random_case(seed)
  measures = {"ndcg_cut.1,5,10,100", "recall.1,5,10,100", "map", "map_cut.10,100",
              "success.1,5,10", "P.5,10"}
  want = trec(rankings, qrels, measures)
  got = M.per_query(rankings, qrels, PAIRS)
  for ours, theirs in PAIRS.items():
    np.testing.assert_allclose(got[ours], [w[theirs] for w in want], atol=1e-6, rtol=0,
                               err_msg=ours)
  assert got["ndcg@10"].max() > 0.3 and got["ndcg@10"].min() == 0  # the case is not trivial


@pytest.mark.parametrize("k", [1, 3, 10])
def test_mrr_at_k_is_recip_rank_of_the_top_k(k):
  rankings, qrels = random_case(3)
  cut = [r[:k] for r in rankings]
  want = [w["recip_rank"] for w in trec(cut, qrels, {"recip_rank"})]
  np.testing.assert_allclose(M.per_query(rankings, qrels, [f"mrr@{k}"])[f"mrr@{k}"], want,
                             atol=1e-6)
  full = M.per_query(rankings, qrels, ["mrr"])["mrr"]
  np.testing.assert_allclose(full, [w["recip_rank"] for w in trec(rankings, qrels,
                                                                   {"recip_rank"})], atol=1e-6)


def test_mean_over_queries_matches_trec_eval_mean():
  rankings, qrels = random_case(4)
  want = trec(rankings, qrels, {"ndcg_cut.10", "map"})
  got = M.ranking_metrics(rankings, qrels, ["ndcg@10", "map"])
  assert got["ndcg@10"] == pytest.approx(np.mean([w["ndcg_cut_10"] for w in want]), abs=1e-9)
  assert got["map"] == pytest.approx(np.mean([w["map"] for w in want]), abs=1e-9)


def test_hand_computed_graded_ndcg_and_map():
  ranking = ["b", "d", "a", "c"]
  rel = {"a": 2, "b": 0, "c": 1}
  # DCG@3 = 2/log2(4); IDCG@3 = 2 + 1/log2(3)
  assert M.ndcg_at_k(ranking, rel, 3) == pytest.approx(1 / (2 + 1 / math.log2(3)))
  # relevant a at rank 3 (P=1/3), c at rank 4 (P=2/4); 2 relevant
  assert M.average_precision(ranking, rel) == pytest.approx((1 / 3 + 2 / 4) / 2)
  assert M.recall_at_k(ranking, rel, 3) == 0.5
  assert M.mrr_at_k(ranking, rel, 2) == 0.0 and M.mrr_at_k(ranking, rel, 3) == pytest.approx(1 / 3)


def test_bad_metric_names_and_shapes():
  with pytest.raises(InputError, match="Unknown ranking metric"):
    M.ranking_metrics([[1]], [{1: 1}], ["ndgc@10"])
  with pytest.raises(InputError, match="needs a cutoff"):
    M.ranking_metrics([[1]], [{1: 1}], ["ndcg"])
  with pytest.raises(InputError, match="2 rankings but 1"):
    M.ranking_metrics([[1], [2]], [{1: 1}], ["map"])


def test_v_measure_known_values():
  # Values from the V-measure definition (Rosenberg & Hirschberg 2007) as sklearn documents them.
  assert M.v_measure([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.8)
  assert M.v_measure([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
  assert M.v_measure([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
  assert M.v_measure([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx(0.8)  # symmetric


def test_spearman_and_pearson_match_scipy():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(0)
  a = rng.integers(0, 6, 200).astype(float)  # many ties
  b = a + rng.normal(size=200)
  assert M.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
  assert M.pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-12)


def test_accuracy_and_macro_f1():
  assert M.accuracy([1, 2, 3, 3], [1, 2, 3, 1]) == 0.75
  # class 1: tp1 fp1 fn0 -> 2/3; class 2: 1; class 3: tp1 fn1 -> 2/3
  assert M.macro_f1([1, 2, 3, 3], [1, 2, 3, 1]) == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


@pytest.mark.parametrize("rel,n", [({3: 1}, 20), ({0: 1, 5: 1, 9: 1}, 12), ({1: 2, 2: 1}, 7),
                                   ({0: 1, 1: 1}, 2), ({}, 5)])
def test_chance_levels_equal_the_mean_over_every_ranking(rel, n):
  # Exhaustive for the small corpora (every ordering equally likely), Monte Carlo for the rest.
  import itertools
  names = ["recall@3", "precision@4", "success@1", "success@5", "mrr@4", "mrr", "ndcg@3",
           "ndcg@10", "map@5", "map"]
  if n <= 7:
    perms = [list(p) for p in itertools.permutations(range(n))]
  else:
    rng = np.random.default_rng(0)
    perms = [rng.permutation(n).tolist() for _ in range(40000)]
  brute = {k: v.mean() for k, v in M.per_query(perms, [rel] * len(perms), names).items()}
  for name in names:
    tol = 1e-12 if n <= 7 else 0.01
    assert M.chance_at(name, rel, n) == pytest.approx(brute[name], abs=tol), name
