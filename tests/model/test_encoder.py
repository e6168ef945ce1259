"""The tiny model end to end: mixed batches, packing, interleaving, Matryoshka, task prompts,
save/load, and the training contract (prepare + differentiable, jit-able model)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gemb
import gemb.model as gm
from gemb.model.backbone import param_count

RNG = np.random.default_rng(0)
IMG = gm.Image(RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8))
AUD = gm.Audio(RNG.normal(0, 0.1, 12000).astype(np.float32), 16000)
VID = gm.Video(RNG.random((6, 20, 20, 3), dtype=np.float32), 5.0)
ITEMS = ["hello world", IMG, "a much longer sentence about cold start items " * 2, AUD, VID,
         [IMG, "a red car"], "日本語のテキスト", gm.Interleaved([AUD, gm.Text("speech"), VID])]


@pytest.fixture(scope="module")
def enc():
  e = gm.load("tiny")
  # Trained models have non-zero modality embeddings; make the test see their effect.
  e.model.modality_emb.embedding[...] = 0.1 * jax.random.normal(jax.random.key(1), (5, 64))
  return e


def test_presets_registered_and_tiny_is_small(enc):
  assert {"tiny", "minilm-l6"} <= set(gemb.presets.names())
  n = param_count(enc.model)
  assert 100_000 < n < 1_000_000


def test_mixed_batch_is_normalised_and_order_independent(enc):
  e = enc.embed(ITEMS, batch_size=3)
  assert e.shape == (len(ITEMS), 64) and e.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
  # Packing several items per row must not mix them: each equals the item embedded alone.
  alone = np.concatenate([enc.embed([it]) for it in ITEMS])
  np.testing.assert_allclose(e, alone, atol=2e-5)
  perm = np.random.default_rng(1).permutation(len(ITEMS))
  np.testing.assert_allclose(enc.embed([ITEMS[i] for i in perm], batch_size=3), e[perm], atol=2e-5)
  # Different modalities land on different vectors.
  cos = e @ e.T
  assert np.all(cos[np.triu_indices(len(ITEMS), 1)] < 0.9999)


def test_packed_path_equals_unpacked_model_call(enc):
  batch = enc.prepare(ITEMS)
  ref = np.asarray(enc.model(batch))[: len(ITEMS)]
  np.testing.assert_allclose(enc.embed(ITEMS), ref, atol=2e-5)


def test_prepare_layout_of_interleaved_item(enc):
  b = enc.prepare([[IMG, "ab"]], length=32, num_patches=16, batch_size=2)
  assert b["token_ids"].shape == (2, 32) and b["patches"].shape == (2, 16, 256)
  n = 1 + 16 + 2 + 1  # [CLS] + 16 image patches + 2 bytes + [SEP]
  assert b["mask"][0].sum() == n and not b["mask"][1].any()
  assert b["modality"][0, :n].tolist() == [1] + [2] * 16 + [1, 1, 1]
  assert b["positions"][0, :n].tolist() == list(range(n))
  assert b["token_ids"][0, [0, 17, 18, 19]].tolist() == [1, ord("a") + 3, ord("b") + 3, 2]
  assert b["patch_index"][0, 1:17].tolist() == list(range(16))
  assert b["patch_modality"][0].tolist() == [2] * 16
  assert b["patch_pos"][0, 5].tolist() == [0, 1, 1]  # 4×4 grid, row-major
  with pytest.raises(gemb.InputError, match="needs length 20"):
    enc.prepare([[IMG, "ab"]], length=16)


def test_matryoshka_prefixes(enc):
  full = enc.embed(ITEMS[:4])
  for d in (16, 32):
    e = enc.embed(ITEMS[:4], dim=d)
    ref = full[:, :d] / np.linalg.norm(full[:, :d], axis=1, keepdims=True)
    assert e.shape == (4, d)
    np.testing.assert_allclose(e, ref, atol=1e-5)


def test_task_prompt(enc):
  q = enc.embed(["red shoes"], task="search result")
  np.testing.assert_allclose(q, enc.embed(["task: search result | query: red shoes"]), atol=1e-6)
  assert float((q @ enc.embed(["red shoes"]).T)[0, 0]) < 0.9999
  qimg = enc.embed([IMG], task="retrieval")  # a non-text item gets a leading prompt part
  np.testing.assert_allclose(qimg, enc.embed([["task: retrieval | query:", IMG]]), atol=1e-6)


def test_bounded_compiles(enc):
  enc.compiled_shapes.clear()
  rng = np.random.default_rng(3)
  texts = ["w" * int(n) for n in rng.integers(1, 120, 300)]
  enc.embed(texts, batch_size=32)
  enc.embed(texts[::-1], batch_size=32)
  # Two row lengths (shared rows of 64, then the 128 bucket), one segment count each; row
  # counts are powers of two ≤ 32.
  assert {s[1:] for s in enc.compiled_shapes} == {(64, 0, 21, 64), (128, 0, 32, 64)}
  assert len(enc.compiled_shapes) <= 12, enc.compiled_shapes


def test_save_load_roundtrip(enc, tmp_path):
  enc.save(str(tmp_path / "m"))
  again = gm.load(str(tmp_path / "m"))
  np.testing.assert_array_equal(again.embed(ITEMS[:3]), enc.embed(ITEMS[:3]))
  with pytest.raises(gemb.ConfigError, match="not a saved gemb model"):
    gm.load(str(tmp_path))
  with pytest.raises(gemb.UnknownComponentError, match="tiny"):
    gm.load("tinyy")
  with pytest.raises(gemb.ConfigError, match=r"unknown key\(s\) 'widht'.*Did you mean 'width'"):
    gm.load("tiny(widht=3)")


def test_model_is_differentiable_and_carries_logical_axes(enc):
  batch = {k: jnp.asarray(v) for k, v in enc.prepare(ITEMS[:4]).items()}

  def loss_fn(model):
    emb = model(batch, dim=32)
    return -jnp.sum(emb[0] * emb[1])

  loss, grads = jax.jit(nnx.value_and_grad(loss_fn))(enc.model)
  assert np.isfinite(float(loss))
  g = nnx.to_flat_state(grads)
  norms = {"/".join(map(str, k)): float(jnp.linalg.norm(v[...])) for k, v in g}
  assert norms["word_emb/embedding"] > 0 and norms["layers/0/query/kernel"] > 0
  assert norms["patch_embeds/2/proj/kernel"] > 0  # the image tokenizer trains with the rest
  specs = nnx.get_partition_spec(nnx.state(enc.model, nnx.Param))
  flat = {"/".join(map(str, k)): tuple(v.get_value()) for k, v in nnx.to_flat_state(specs)}
  assert flat["word_emb/embedding"] == ("vocab", "embed")
  assert flat["layers/0/query/kernel"] == ("embed", "heads")
  assert flat["layers/0/out/kernel"] == ("heads", "embed")
  assert flat["layers/0/mlp_in/kernel"] == ("embed", "mlp")
  assert flat["layers/0/mlp_out/kernel"] == ("mlp", "embed")
