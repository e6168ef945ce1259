"""Retrieval backends: exactness, ScaNN recall, mutation, persistence and input errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gemb
from gemb.retrieval import IndexFormatError, load_index
from gemb.retrieval import base as base_lib


def clustered(n, d, seed=0, centers=None, noise=0.5):
  """Unit vectors drawn around random centres, like real embeddings (not uniform on the sphere)."""
  rng = np.random.default_rng(seed)
  centers = centers or max(1, n // 100)
  c_cd = rng.normal(size=(centers, d))
  x_nd = c_cd[rng.integers(0, centers, n)] + noise * rng.normal(size=(n, d))
  x_nd /= np.linalg.norm(x_nd, axis=1, keepdims=True)
  return x_nd.astype(np.float32)


def brute(x_nd, q_qd, k, ids=None):
  s_qn = q_qd.astype(np.float64) @ x_nd.T.astype(np.float64)
  rows = np.argsort(-s_qn, axis=1, kind="stable")[:, :k]
  ids = np.arange(len(x_nd)) if ids is None else np.asarray(ids)
  return ids[rows], np.take_along_axis(s_qn, rows, axis=1)


def recall(found_qk, truth_qk):
  return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found_qk, truth_qk)])


@pytest.mark.parametrize("chunk,k", [(64, 5), (64, 100), (4096, 10)])
def test_exact_equals_numpy(chunk, k):
  x = clustered(1000, 24, seed=1)
  q = clustered(37, 24, seed=2)  # 37: not a multiple of the query block, exercises padding
  ids = np.random.default_rng(3).permutation(10_000)[:1000] + 5
  index = gemb.retrievers.get(f"exact(chunk={chunk}, query_block=16)")().build(x, ids)
  got_ids, got_s = index.search(q, k)
  want_ids, want_s = brute(x, q, k, ids)
  np.testing.assert_array_equal(got_ids, want_ids)
  np.testing.assert_allclose(got_s, want_s, atol=1e-5)
  assert got_ids.dtype == np.int64 and got_s.shape == (37, k)


def test_exact_sharded_over_8_devices_equals_numpy(tmp_path):
  code = textwrap.dedent("""
      import os
      os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
      import jax, numpy as np, gemb
      assert len(jax.devices()) == 8, jax.devices()
      rng = np.random.default_rng(0)
      x = rng.normal(size=(1003, 16)).astype(np.float32)
      q = rng.normal(size=(9, 16)).astype(np.float32)
      index = gemb.retrievers.get("exact(chunk=32, shard_min_rows=100)")().build(x)
      assert index._on_device()[2] is not None, "expected a sharded corpus"
      assert len(index._on_device()[0].sharding.device_set) == 8
      ids, s = index.search(q, 20)
      s_qn = q.astype(np.float64) @ x.T.astype(np.float64)
      want = np.argsort(-s_qn, axis=1, kind="stable")[:, :20]
      np.testing.assert_array_equal(ids, want)
      np.testing.assert_allclose(s, np.take_along_axis(s_qn, want, 1), atol=1e-4)
      index.remove(np.arange(0, 1003, 2))
      ids, _ = index.search(q, 20)
      assert (ids % 2 == 1).all()
      print("OK")
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_scann_recall_at_10_on_100k_corpus():
  x = clustered(100_000, 64, seed=4)
  rng = np.random.default_rng(5)
  q = x[rng.integers(0, len(x), 300)] + 0.1 * rng.normal(size=(300, 64)).astype(np.float32)
  q /= np.linalg.norm(q, axis=1, keepdims=True)
  truth, _ = gemb.retrievers.get("exact")().build(x).search(q, 10)
  index = gemb.retrievers.get("scann")().build(x)
  assert index.resolved["num_leaves"] == 316  # sqrt(n): parameters come from the corpus size
  found, scores = index.search(q, 10)
  r = recall(found, truth)
  assert r >= 0.95, r
  assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_scann_small_corpus_is_brute_force_and_exact():
  x = clustered(500, 16, seed=6)
  q = clustered(20, 16, seed=7)
  index = gemb.retrievers.get("scann")().build(x, np.arange(500) * 3)
  assert index.resolved["num_leaves"] == 0
  ids, s = index.search(q, 10)
  want_ids, want_s = brute(x, q, 10, np.arange(500) * 3)
  np.testing.assert_array_equal(ids, want_ids)
  np.testing.assert_allclose(s, want_s, atol=1e-5)


@pytest.mark.parametrize("spec", ["exact(chunk=128)", "scann"])
def test_add_and_remove_match_rebuilt_index(spec):
  x = clustered(2000, 32, seed=8)
  q = clustered(25, 32, seed=9)
  index = gemb.retrievers.get(spec)().build(x[:1500], np.arange(1500))
  index.add(x[1500:], np.arange(1500, 2000))
  gone = np.random.default_rng(10).choice(2000, 700, replace=False)
  index.remove(gone)
  assert len(index) == 1300
  keep = np.setdiff1d(np.arange(2000), gone)
  ids, s = index.search(q, 10)
  want_ids, want_s = brute(x[keep], q, 10, keep)
  np.testing.assert_array_equal(ids, want_ids)
  np.testing.assert_allclose(s, want_s, atol=1e-5)
  # An added vector is its own nearest neighbour; a removed id never comes back.
  index.add(x[gone[:3]], [90001, 90002, 90003])
  top, _ = index.search(x[gone[:3]], 1)
  assert top[:, 0].tolist() == [90001, 90002, 90003]


def test_scann_tree_add_remove():
  x = clustered(30_000, 32, seed=11)
  index = gemb.retrievers.get("scann")().build(x[:25_000], np.arange(25_000) + 10)
  assert index.resolved["num_leaves"] > 0
  index.add(x[25_000:], np.arange(25_000, 30_000) + 10)
  index.remove(np.arange(10, 5010))
  ids, _ = index.search(x[:6000], 5)
  assert not np.isin(ids, np.arange(10, 5010)).any()
  assert (ids[5000:, 0] == np.arange(5000, 6000) + 10).mean() > 0.97
  top, _ = index.search(x[29_000:], 1)
  assert (top[:, 0] == np.arange(29_000, 30_000) + 10).mean() > 0.97


@pytest.mark.parametrize("spec", ["exact", "scann", "scann(brute_force_below=100)"])
def test_save_load_round_trip(tmp_path, spec):
  x = clustered(3000, 16, seed=12)
  q = clustered(30, 16, seed=13)
  index = gemb.retrievers.get(spec)().build(x, np.arange(3000) + 7)
  index.add(clustered(5, 16, seed=14), [1, 2, 3, 4, 5])
  index.remove([7, 8])
  before = index.search(q, 10)
  index.save(tmp_path / "idx")
  loaded = load_index(tmp_path / "idx")
  assert type(loaded) is type(index) and len(loaded) == len(index) and loaded.dim == 16
  after = loaded.search(q, 10)
  np.testing.assert_array_equal(before[0], after[0])
  np.testing.assert_allclose(before[1], after[1], atol=1e-6)
  # Saving again replaces the data folder; the old one is cleaned up.
  loaded.remove([1])
  loaded.save(tmp_path / "idx")
  assert len([p for p in (tmp_path / "idx").iterdir() if p.name.startswith("v-")]) == 1
  assert len(load_index(tmp_path / "idx")) == len(index) - 1


def test_crash_during_save_keeps_previous_index(tmp_path, monkeypatch):
  x = clustered(400, 8, seed=15)
  index = gemb.retrievers.get("exact")().build(x)
  index.save(tmp_path / "idx")
  want = index.search(x[:5], 3)[0]
  index.remove(np.arange(200))

  def boom(self, directory):
    (directory / "emb.npy").write_bytes(b"half a file")
    raise OSError("disk full")

  monkeypatch.setattr(type(index), "_save", boom)
  with pytest.raises(OSError, match="disk full"):
    index.save(tmp_path / "idx")
  monkeypatch.undo()
  old = load_index(tmp_path / "idx")
  assert len(old) == 400
  np.testing.assert_array_equal(old.search(x[:5], 3)[0], want)
  assert not [p for p in (tmp_path / "idx").iterdir() if p.name.startswith(".tmp")]


def test_crash_before_manifest_swap_keeps_previous_index(tmp_path, monkeypatch):
  x = clustered(300, 8, seed=16)
  index = gemb.retrievers.get("exact")().build(x)
  index.save(tmp_path / "idx")
  index.remove(np.arange(100))
  real_replace = os.replace

  def replace(src, dst):
    if str(dst).endswith(base_lib.MANIFEST):
      raise KeyboardInterrupt  # the process dies just before the manifest swap
    return real_replace(src, dst)

  monkeypatch.setattr(base_lib.os, "replace", replace)
  with pytest.raises(KeyboardInterrupt):
    index.save(tmp_path / "idx")
  monkeypatch.undo()
  assert len(load_index(tmp_path / "idx")) == 300


def test_other_format_version_is_refused(tmp_path):
  gemb.retrievers.get("exact")().build(clustered(10, 4)).save(tmp_path / "idx")
  m = json.loads((tmp_path / "idx" / base_lib.MANIFEST).read_text())
  m["format_version"] = 999
  (tmp_path / "idx" / base_lib.MANIFEST).write_text(json.dumps(m))
  with pytest.raises(IndexFormatError, match="format version 999"):
    load_index(tmp_path / "idx")
  with pytest.raises(IndexFormatError, match="MANIFEST.json is missing"):
    load_index(tmp_path / "nothing")


def test_loading_with_the_wrong_backend_class_is_refused(tmp_path):
  gemb.retrievers.get("exact")().build(clustered(10, 4)).save(tmp_path / "idx")
  with pytest.raises(IndexFormatError, match="holds a 'exact' index"):
    gemb.retrievers.get("scann").load(tmp_path / "idx")


@pytest.mark.parametrize("spec", ["exact", "scann"])
def test_bad_input_errors(spec):
  cls = gemb.retrievers.get(spec)
  with pytest.raises(gemb.InputError, match="empty corpus"):
    cls().build(np.zeros((0, 8), np.float32))
  with pytest.raises(gemb.InputError, match="not been built"):
    cls().search(np.ones((1, 8)), 1)
  x = clustered(50, 8)
  bad = x.copy()
  bad[3, 2] = np.nan
  with pytest.raises(gemb.InputError, match="NaN"):
    cls().build(bad)
  index = cls().build(x)
  with pytest.raises(gemb.InputError, match="Dimension mismatch.*d=7.*d=8"):
    index.search(np.ones((2, 7)), 1)
  with pytest.raises(gemb.InputError, match="NaN"):
    index.search(bad[:5], 1)
  with pytest.raises(gemb.InputError, match="k=51 is larger than the corpus"):
    index.search(x[:2], 51)
  with pytest.raises(gemb.InputError, match="positive integer"):
    index.search(x[:2], 0)
  with pytest.raises(gemb.InputError, match="already in the index"):
    index.add(x[:1], [3])
  with pytest.raises(gemb.InputError, match="duplicates"):
    cls().build(x[:3], [1, 1, 2])
  with pytest.raises(gemb.InputError, match="not in the index"):
    index.remove([4242])
  with pytest.raises(gemb.InputError, match="2-D"):
    index.search(np.ones((2, 2, 8)), 1)
  index.remove(np.arange(50))
  with pytest.raises(gemb.InputError, match="empty"):
    index.search(x[:1], 1)


def test_registry_lists_both_backends():
  assert {"exact", "scann"} <= set(gemb.retrievers.names())
  with pytest.raises(gemb.SpecError, match="accepts"):
    gemb.retrievers.get("scann(no_such_knob=3)")


def test_scann_quantizes_any_dimension():
  """Asymmetric hashing splits vectors into blocks; an odd d is zero-padded inside the backend."""
  rng = np.random.default_rng(3)
  centers = rng.normal(size=(30, 33))
  x = (centers[rng.integers(0, 30, 30000)] + 0.3 * rng.normal(size=(30000, 33))).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  q = x[:50] + 0.05 * rng.normal(size=(50, 33)).astype(np.float32)
  exact_ids, exact_scores = gemb.retrievers.get("exact")().build(x).search(q, 10)
  index = gemb.retrievers.get("scann")().build(x)
  assert index.resolved["num_leaves"]  # the quantized path, not brute force
  ids, scores = index.search(q, 10)
  recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids)])
  assert recall >= 0.9, recall
  np.testing.assert_allclose(scores[:, 0], exact_scores[:, 0], atol=0.02)
  index.add(x[:5] * 0.5, np.arange(30000, 30005))
  assert index.search(x[:1], 1)[0].shape == (1, 1)


def test_scann_auto_params_follow_corpus_size_and_dim():
  from gemb.retrieval.scann_index import auto_params
  assert auto_params(5000, 128)["reorder"] == 0  # brute force: exact below 20k
  small = auto_params(4000, 128, brute_force_below=0)  # AH over all vectors, no tree
  assert small["num_leaves"] == 0 and small["reorder"] > 0
  mid = auto_params(10_000, 384, brute_force_below=0)  # a small tree, a third of it searched
  assert mid["num_leaves"] == 100 and mid["leaves_to_search"] == 33 and mid["reorder"] == 300
  big = auto_params(1_000_000, 128)
  assert big["num_leaves"] == 2000 and big["dims_per_block"] == 4  # 2 sqrt(n) from 250k on
  assert big["training_sample_size"] == 200_000 and big["reorder"] >= 100
  assert auto_params(100_000, 64)["num_leaves"] == 316  # sqrt(n) below
  assert auto_params(1_000_000, 33)["dims_per_block"] == 2  # keep >= 16 blocks per code


def _corpus_and_near_queries(n: int, seed: int, d: int = 64, n_q: int = 100):
  """A clustered corpus and queries near random corpus points (unit vectors)."""
  x = clustered(n, d, seed=seed)
  rng = np.random.default_rng(seed + 1)
  q = x[rng.integers(0, n, n_q)] + 0.1 * rng.normal(size=(n_q, d)).astype(np.float32)
  return x, q / np.linalg.norm(q, axis=1, keepdims=True)


def test_scann_ah_without_tree_on_a_small_corpus():
  x, q = _corpus_and_near_queries(4000, seed=20)
  index = gemb.retrievers.get("scann(brute_force_below=0)")().build(x)
  assert index.resolved["num_leaves"] == 0 and index.resolved["reorder"] > 0  # quantized, not brute force
  found, _ = index.search(q, 10)
  assert recall(found, brute(x, q, 10)[0]) >= 0.97
  index.remove(np.arange(100))
  assert not np.isin(index.search(q, 10)[0], np.arange(100)).any()


def test_scann_small_tree_when_brute_force_is_turned_off():
  x, q = _corpus_and_near_queries(8000, seed=23)
  index = gemb.retrievers.get("scann(brute_force_below=0, target_recall=None)")().build(x)
  assert index.resolved["num_leaves"] == 89 and index.resolved["leaves_to_search"] == 29
  found, _ = index.search(q, 10)
  assert recall(found, brute(x, q, 10)[0]) >= 0.95


def test_scann_soar_is_opt_in_and_refuses_remove():
  x = clustered(25_000, 32, seed=22)
  q = x[:200]
  index = gemb.retrievers.get("scann(soar_lambda=1.5)")().build(x)
  found, _ = index.search(q, 10)
  assert recall(found, brute(x, q, 10)[0]) >= 0.95
  index.add(x[:3] * 0.9, [10**6, 10**6 + 1, 10**6 + 2])  # adding works on a spilled index
  assert len(index) == 25_003
  with pytest.raises(gemb.InputError, match="soar_lambda"):  # ScaNN would segfault here
    index.remove([0])
  assert len(index) == 25_003
  with pytest.raises(gemb.InputError, match="needs a tree"):
    gemb.retrievers.get("scann(soar_lambda=1.5)")().build(x[:500])


def _gaussian(n, d, seed):
  x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_scann_resolves_automatic_parameters_per_build_and_keeps_the_arguments():
  """One index object built on a small corpus and then on a large one gets the large corpus's
  tree: the automatic parameters are not written over the constructor's arguments."""
  from gemb.retrieval.scann_index import auto_params
  index = gemb.retrievers.build("scann")
  index.build(clustered(1000, 32, seed=30))
  assert index.resolved["num_leaves"] == 0  # brute force below 20k
  x = clustered(30_000, 32, seed=31)
  index.build(x)
  assert index.resolved["num_leaves"] == auto_params(30_000, 32)["num_leaves"] == 173
  assert index.params()["num_leaves"] is None and index.params()["reorder"] is None
  q = x[:200]
  found, _ = index.search(q, 10)
  assert recall(found, brute(x, q, 10)[0]) >= 0.9
  index.build(clustered(800, 32, seed=32))  # and back down: exact again
  assert index.resolved["num_leaves"] == 0


def test_scann_default_keeps_recall_on_unstructured_vectors():
  """20k Gaussian unit vectors (no clusters for the tree to use), queries = corpus points + noise
  0.05 per coordinate: the default index measures its recall at build time and searches more
  until recall@10 >= 0.95 against exact search (with the parameters tuned on clustered data alone
  it was 0.65)."""
  x = _gaussian(20_000, 64, seed=40)
  rng = np.random.default_rng(41)
  q = x[rng.integers(0, len(x), 400)] + 0.05 * rng.normal(size=(400, 64)).astype(np.float32)
  index = gemb.retrievers.build("scann")
  index.build(x)
  assert index.resolved["num_leaves"] > 0  # the approximate path, not brute force
  found, _ = index.search(q, 10)
  r = recall(found, brute(x, q, 10)[0])
  assert r >= 0.95, (r, index.resolved)
  assert index.resolved["measured_recall"] >= 0.95


def _near(x, n_q, noise, seed):
  """Queries near corpus points: a corpus row plus Gaussian noise per coordinate."""
  rng = np.random.default_rng(seed)
  return (x[rng.integers(0, len(x), n_q)] + noise * rng.normal(size=(n_q, x.shape[1]))).astype(
      np.float32)


def _bound(found_qk, truth_qk):
  """Mean recall over queries minus 1.645 standard errors, computed here from sets."""
  r_q = np.array([len(set(a) & set(b)) / len(b) for a, b in zip(found_qk, truth_qk)])
  return r_q.mean() - 1.645 * r_q.std() / np.sqrt(len(r_q))


def test_scann_tune_finds_the_fewest_leaves_that_hold_the_target_on_a_query_sample():
  """`tune` on a sample of the queries: the build's table setting has margin for far queries;
  fitted to queries close to the corpus it searches fewer leaves, holds the target on fresh
  queries like the sample, and one leaf fewer at the chosen depth would miss it on the sample."""
  x = clustered(30_000, 32, seed=50)
  index = gemb.retrievers.build("scann").build(x)
  table = dict(index.resolved)
  sample, fresh = _near(x, 600, 0.05, seed=51), _near(x, 600, 0.05, seed=52)
  truth_sample = brute(x, sample, 10)[0]
  got = index.tune(x, sample)
  assert got is index.resolved and got["leaves_to_search"] < table["leaves_to_search"], (table, got)
  assert index.params()["leaves_to_search"] is None  # still gemb's to resolve: never stored over
  assert _bound(index.search(sample, 10)[0], truth_sample) >= 0.95
  assert recall(index.search(fresh, 10)[0], brute(x, fresh, 10)[0]) >= 0.95
  index.leaves_to_search = got["leaves_to_search"] - 1  # the cheapest: one leaf fewer misses
  assert _bound(index.search(sample, 10)[0], truth_sample) < 0.95
  with pytest.raises(gemb.InputError, match="rows but the index holds"):
    index.tune(x[:-1], sample)


def test_scann_build_check_never_lowers_the_table_setting():
  """The build's own check (corpus points plus noise) only raises: on clustered data where the
  table's setting already holds the target, the knobs stay at the table's values."""
  from gemb.retrieval.scann_index import auto_params
  x = clustered(30_000, 32, seed=53)
  index = gemb.retrievers.build("scann").build(x)
  table = auto_params(30_000, 32)
  assert index.resolved["leaves_to_search"] == table["leaves_to_search"]
  assert index.resolved["reorder"] == table["reorder"]
  assert index.resolved["measured_recall"] >= 0.95


def test_scann_target_recall_leaves_explicit_knobs_alone_and_warns():
  x = _gaussian(20_000, 32, seed=42)
  with pytest.warns(RuntimeWarning, match="below target_recall=0.99"):
    index = gemb.retrievers.build("scann(leaves_to_search=2, reorder=20, target_recall=0.99)")
    index.build(x)
  assert index.resolved["leaves_to_search"] == 2 and index.resolved["reorder"] == 20
  assert index.resolved["measured_recall"] < 0.99
  with pytest.raises(gemb.InputError, match="target_recall"):
    gemb.retrievers.build("scann(target_recall=1.5)")


def test_scann_save_load_keeps_arguments_and_resolved(tmp_path):
  x = _gaussian(20_000, 32, seed=43)
  index = gemb.retrievers.build("scann").build(x)
  index.save(tmp_path / "idx")
  back = gemb.retrievers.get("scann").load(tmp_path / "idx")
  assert back.params() == index.params() and back.resolved == index.resolved
  np.testing.assert_array_equal(back.search(x[:50], 10)[0], index.search(x[:50], 10)[0])
