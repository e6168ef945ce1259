"""Packed training batches: the same loss and gradients as one padded batch per side, few
compiled shapes, and the host work prefetched a step ahead."""

import logging
import threading

import jax
import numpy as np
import pytest

import gemb.model as gm
from gemb import sharding
from gemb.errors import InputError
from gemb.model.packing import ITEM_PAD, row_rung as _row_rung
from gemb.train import data, trainer as T


@pytest.fixture(scope="module")
def enc():
  return gm.load("tiny")


def _pairs(n, seed=0, images=False):
  rng = np.random.default_rng(seed)
  words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
  text = lambda k: " ".join(rng.choice(words, k))
  out = []
  for i in range(n):
    q = text(int(rng.integers(1, 4)))
    if images and i % 3 == 0:
      q = gm.Image(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out.append({"query": q, "positive": text(int(rng.integers(2, 15))),
                "negatives": [text(int(rng.integers(2, 15)))] * int(i % 2)})
  return out


def _trainer(enc):
  mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
  return T.Trainer(enc.model, mesh=mesh, rules=sharding.resolve_rules("dp"),
                   optim=T.OptimConfig(lr=1e-3, total_steps=10, schedule="constant"),
                   loss="infonce(temperature=0.05)")


@pytest.mark.parametrize("negatives,images", [(0, False), (2, True)])
def test_packed_loss_and_gradients_equal_the_padded_float32_path(enc, negatives, images):
  pairs = _pairs(12, seed=negatives, images=images)
  padded = data.PairBatcher(enc.prepare, hard_negatives=negatives)(pairs, "search result", 0)
  packed = data.PairBatcher(enc.prepare, hard_negatives=negatives,
                            pack=enc.prepare_packed)(pairs, "search result", 0)
  rows, length = packed["packed"]["token_ids"].shape
  padded_tokens = sum(padded[k]["token_ids"].size for k in ("query", "positive", "negatives")
                      if k in padded)
  assert rows * length < padded_tokens  # the point: fewer token slots than one row per item
  tr = _trainer(enc)
  loss_u, g_u = tr.loss_and_grad(padded)
  loss_p, g_p = tr.loss_and_grad(packed)
  np.testing.assert_allclose(float(loss_p), float(loss_u), rtol=1e-5)
  flat_u, flat_p = jax.tree.leaves(g_u), jax.tree.leaves(g_p)
  scale = max(float(np.abs(np.asarray(g)).max()) for g in flat_u)
  for gu, gp in zip(flat_u, flat_p):
    np.testing.assert_allclose(np.asarray(gp), np.asarray(gu), rtol=1e-4, atol=1e-5 * scale)
  # Per item too: each packed item's embedding is the one it gets alone.
  emb_alone = np.asarray(enc.model(enc.prepare([p["positive"] for p in pairs])))
  emb_packed = np.asarray(enc.model(packed["packed"]))[12:24]
  np.testing.assert_allclose(emb_packed, emb_alone, atol=2e-5)


def test_packed_layout_against_a_brute_force_reading(enc):
  groups = [(["ab", "hello there", "x" * 40], None), (["q"], "search result")]
  b = enc.prepare_packed(groups, max_length=64)
  items = [enc.prepare([it], t) for its, t in groups for it in its]
  seg, idx, ids = b["segment_ids"], b["item_index"], b["token_ids"]
  assert (idx == ITEM_PAD).sum() == (seg == 0).sum()
  for n, one in enumerate(items):  # each item's tokens, in order, with positions from 0
    real = one["token_ids"][0][one["mask"][0]]
    np.testing.assert_array_equal(ids[idx == n], real)
    np.testing.assert_array_equal(b["positions"][idx == n], np.arange(len(real)))
    assert b["item_tokens"][n] == len(real)
    assert len(np.unique(np.nonzero(idx == n)[0])) == 1  # an item never spans rows
  with pytest.raises(InputError, match="seq_len"):
    enc.prepare_packed([(["y" * 100], None)], max_length=64)


def test_row_ladder_is_coarse_monotone_and_tight():
  rungs = [_row_rung(n) for n in range(1, 300)]
  assert all(r >= n for n, r in zip(range(1, 300), rungs))
  assert rungs == sorted(rungs)
  assert all(r <= n * 1.125 or r - n < 2 for n, r in zip(range(1, 300), rungs))
  assert len(set(rungs[64:128])) <= 9  # 65..128 rows: eight shapes at most (+1)
  assert all(_row_rung(n, 8) % 8 == 0 for n in range(1, 100))


class _Compiles(logging.Handler):
  def __init__(self):
    super().__init__()
    self.names = []

  def emit(self, record):
    msg = record.getMessage()
    if "Compiling" in msg and "_step" in msg:
      self.names.append(msg)


def test_no_recompiles_after_warm_up_and_host_work_runs_ahead():
  enc = gm.load("tiny(depth=1)")  # compile time grows with depth; one layer shows the shapes
  tr = _trainer(enc)
  mix = data.Mixture({"t": _pairs(128, seed=5)}, {"t": 1.0}, 8)
  made_in = []

  def pack(groups):
    made_in.append(threading.current_thread().name)
    return enc.prepare_packed(groups)

  batcher = data.PairBatcher(enc.prepare, pack=pack)
  handler = _Compiles()
  logger = logging.getLogger("jax._src.interpreters.pxla")
  logger.addHandler(handler)
  try:
    with jax.log_compiles():
      T.fit(tr, mix, batcher, 6)
      warm = len(handler.names)
      T.fit(tr, mix, batcher, 10)
  finally:
    logger.removeHandler(handler)
  assert made_in and all(n.startswith("gemb-prefetch") for n in made_in)
  shapes = {batcher(mix.local_pairs(s)[1], "t", s)["packed"]["token_ids"].shape
            for s in range(10)}
  assert len(shapes) <= 3
  assert 1 <= warm <= len(shapes)
  assert len(handler.names) == len(shapes), shapes  # each shape compiled once, none again


def test_prefetch_yields_in_order_and_surfaces_errors():
  assert list(T.prefetch(lambda s: s * s, range(5))) == [0, 1, 4, 9, 16]
  assert list(T.prefetch(lambda s: s, [])) == []

  def bad(s):
    if s == 2:
      raise ValueError("step 2")
    return s
  got = []
  with pytest.raises(ValueError, match="step 2"):
    for x in T.prefetch(bad, range(4)):
      got.append(x)
  assert got == [0, 1]
