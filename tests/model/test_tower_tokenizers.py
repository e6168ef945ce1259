"""The tower tokenizers: tokens are the pretrained tower's (pooled) feature map at (t, row, col);
batched, cached and uncached paths agree; the encoder tokenizes a call's images in one batch.

References: the tower module called directly on one image (not through the batched path), and
adaptive pooling written out cell by cell.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import gemb
import gemb.model as gm
from gemb.errors import ConfigError
from gemb.model import efficientnet as E
from gemb.model import tower_tokenizers as TT
from gemb.model.tokenizers import IMAGE, VIDEO
from gemb.model.tower_tokenizers import _resize

RNG = np.random.default_rng(0)
# 64 px (a 2×2 feature map) keeps the tower cheap; batches stay ≤ 8 so one program compiles.
SPEC = "effnet_image(image_size=64, grid=2, cache_mb={mb})"


def _images(n, size=(40, 30)):
  return [RNG.random(size + (3,), dtype=np.float32) for _ in range(n)]


def test_registered_and_refuses_bad_grid():
  assert {"effnet_image", "effnet_video"} <= set(gemb.tokenizers.names())
  with pytest.raises(ConfigError, match="grid 3"):
    gemb.tokenizers.build("effnet_image(image_size=64, grid=3)")  # 64 px: a 2×2 map


def test_adaptive_pool_matches_cellwise_mean():
  f = RNG.random((7, 7, 5)).astype(np.float32)
  got = TT.adaptive_pool(f, 2)
  bins = [(0, 4), (3, 7)]  # torch AdaptiveAvgPool2d(2) on 7: [0, 4) and [3, 7)
  for r, (r0, r1) in enumerate(bins):
    for c, (c0, c1) in enumerate(bins):
      np.testing.assert_allclose(got[r, c], f[r0:r1, c0:c1].reshape(-1, 5).mean(0), rtol=1e-6)
  np.testing.assert_allclose(TT.adaptive_pool(f, 1)[0, 0], f.mean((0, 1)), rtol=1e-5)


def test_image_tokens_are_the_tower_features():
  tok = gemb.tokenizers.build(SPEC.format(mb=0))
  imgs = _images(3)
  parts = tok.tokenize_batch(imgs)
  net = E.load_efficientnet_lite("lite0")
  for x, part in zip(imgs, parts):
    assert part.modality == IMAGE and part.patches_np.shape == (4, 1280)
    assert part.pos_n3.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]
    ref = np.asarray(net.features(E.normalize(jnp.asarray(_resize(x, 64, 64))[None])))[0]
    ref = ref.reshape(4, 1280) - ref.reshape(4, 1280).mean(1, keepdims=True)
    ref *= 8.0 / np.sqrt((ref ** 2).sum(1, keepdims=True))  # each token: mean 0, norm 8
    np.testing.assert_allclose(part.patches_np, ref, rtol=2e-3, atol=2e-3)
  one = tok(imgs[1])  # the single-image call and the batch agree (to float16's last bit)
  np.testing.assert_allclose(one.patches_np, parts[1].patches_np, rtol=2e-3, atol=1e-3)


def test_video_tokens_per_frame_with_time_positions():
  tok = gemb.tokenizers.build("effnet_video(frame_size=64, grid=1, max_frames=3, cache_mb=0)")
  vid = RNG.random((5, 20, 20, 3), dtype=np.float32)
  part = tok(vid)
  assert part.modality == VIDEO and part.patches_np.shape == (3, 1280)
  assert part.pos_n3.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
  img = gemb.tokenizers.build("effnet_image(image_size=64, grid=1, cache_mb=0)")
  frames = img.tokenize_batch([vid[0], vid[2], vid[4]])  # frames 0, 2, 4 of 5, evenly sampled
  np.testing.assert_array_equal(part.patches_np, np.concatenate([f.patches_np for f in frames]))


def test_cache_memory_and_disk(tmp_path):
  tok = TT.EffNetImage(image_size=64, grid=2, cache_mb=1, cache_dir=str(tmp_path))
  imgs = _images(2)
  first = tok.tokenize_batch(imgs + [imgs[0]])  # a duplicate within the call runs once
  assert tok.cache.misses == 3 and len(tok.cache) == 2 and len(list(tmp_path.glob("*.npy"))) == 2
  np.testing.assert_array_equal(first[0].patches_np, first[2].patches_np)
  assert tok.cache.bytes == 2 * tok.bytes_per_image() == 2 * 4 * 1280 * 2
  again = TT.FeatureCache(1 << 20, str(tmp_path))  # a new process: read back from disk
  key = tok._key(imgs[1])
  np.testing.assert_array_equal(again.get(key).astype(np.float32), first[1].patches_np)
  small = TT.FeatureCache(3 * 4 * 1280 * 2)  # bounded: the least recently used goes first
  for k in "abcd":
    small.put(k, np.zeros((4, 1280), np.float16))
  assert len(small) == 3 and small.get("a") is None and small.get("d") is not None


def _loss(enc, pairs):
  from gemb.train.losses import infonce
  q = enc.model(enc.prepare([p[0] for p in pairs]))
  p = enc.model(enc.prepare([p[1] for p in pairs]))
  return float(infonce(q, p))


def test_cached_and_uncached_runs_give_the_same_loss():
  imgs = [gm.Image(x) for x in _images(4)]
  pairs = [(f"caption {i}", [imgs[i], f"image {i}"]) for i in range(4)]
  cached = gm.load(f"tiny(image_tokenizer='{SPEC.format(mb=64)}')")
  uncached = gm.load(f"tiny(image_tokenizer='{SPEC.format(mb=0)}')")
  assert uncached.image_tokenizer.cache is not cached.image_tokenizer.cache
  first = _loss(cached, pairs)
  hits = cached.image_tokenizer.cache.hits
  second = _loss(cached, pairs)
  assert cached.image_tokenizer.cache.hits == hits + 4  # every image came from the cache
  assert len(uncached.image_tokenizer.cache) == 0
  assert second == first == pytest.approx(_loss(uncached, pairs), rel=1e-6)


def test_encoder_tokenizes_all_images_of_a_call_in_one_batch(monkeypatch):
  enc = gm.load(f"tiny(image_tokenizer='{SPEC.format(mb=0)}')")
  calls = []
  orig = enc.image_tokenizer.tokenize_batch
  monkeypatch.setattr(enc.image_tokenizer, "tokenize_batch",
                      lambda xs: calls.append(len(xs)) or orig(xs))
  imgs = [gm.Image(x) for x in _images(3)]
  emb = enc.embed(["text", imgs[0], [imgs[1], "x"], gm.Interleaved(["y", imgs[2]])])
  assert calls == [3]
  alone = enc.embed([imgs[0]])  # batching does not change an item's embedding
  np.testing.assert_allclose(emb[1], alone[0], atol=1e-5)
