"""gemb-faiss against gemb's own `exact` backend, through the installed entry point."""

import numpy as np
import pytest

import gemb
from gemb.retrieval import load_index


def _corpus(n=4000, d=32, seed=0):
  # Clustered, like real embeddings (uniform random vectors have no structure for IVF to use).
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(40, d))
  x = (centers[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, d))).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  q = x[rng.choice(n, 64, replace=False)] + 0.1 * rng.normal(size=(64, d)).astype(np.float32)
  return x, q


def test_registered_through_the_entry_point():
  entry = gemb.retrievers.entry("faiss")
  assert entry.origin == "gemb-faiss"


def test_flat_equals_exact():
  x, q = _corpus()
  ids = np.arange(10, 10 + len(x))
  exact_ids, exact_scores = gemb.retrievers.get("exact")().build(x, ids).search(q, 10)
  got_ids, got_scores = gemb.retrievers.get("faiss(kind='flat')")().build(x, ids).search(q, 10)
  np.testing.assert_array_equal(got_ids, exact_ids)
  np.testing.assert_allclose(got_scores, exact_scores, atol=1e-5)


@pytest.mark.parametrize("spec", ["faiss(kind='hnsw')", "faiss(kind='ivf_flat', nprobe=16)"])
def test_approximate_kinds_have_high_recall(spec):
  x, q = _corpus()
  exact_ids, _ = gemb.retrievers.get("exact")().build(x).search(q, 10)
  got_ids, _ = gemb.retrievers.get(spec)().build(x).search(q, 10)
  recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got_ids, exact_ids)])
  assert recall >= 0.9, recall


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf_flat"])
def test_add_remove_save_load(kind, tmp_path):
  x, q = _corpus(n=2000)
  index = gemb.retrievers.get(f"faiss(kind={kind!r})")().build(x[:1500], np.arange(1500))
  index.add(x[1500:], np.arange(1500, 2000))
  index.remove(np.arange(0, 1500, 2))  # drop the even ids below 1500
  ids, _ = index.search(x[1501:1502], 1)
  assert ids[0, 0] == 1501
  ids, _ = index.search(x[0:1], 5)
  assert 0 not in ids and len(index) == 2000 - 750
  index.save(tmp_path / "idx")
  loaded = load_index(tmp_path / "idx")
  assert type(loaded).__name__ == "FaissIndex" and len(loaded) == len(index)
  a, _ = index.search(q, 5)
  b, _ = loaded.search(q, 5)
  np.testing.assert_array_equal(a, b)


def test_bad_kind_is_a_clear_error():
  with pytest.raises(gemb.InputError, match="unknown kind 'ivf'"):
    gemb.retrievers.get("faiss(kind='ivf')")()
