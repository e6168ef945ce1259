"""gemb.model.packing: the row / forward-pass plan of Encoder.embed, against brute force."""

import itertools
import math

import numpy as np
import pytest

import gemb
from gemb.model import packing


def naive_best_fit_decreasing(lengths, cap):
  """Textbook best-fit decreasing over a plain list of row loads (no buckets, no item cap)."""
  loads = []
  for n in sorted(lengths, reverse=True):
    fits = [r for r, load in enumerate(loads) if load + n <= cap]
    if fits:
      r = min(fits, key=lambda r: cap - loads[r])
      loads[r] += n
    else:
      loads.append(n)
  return sorted(loads)


def optimal_rows(lengths, cap):
  """Fewest rows of `cap` tokens that hold every item: every assignment tried (small n only)."""
  n = len(lengths)
  for k in range(1, n + 1):
    for assign in itertools.product(range(k), repeat=n):
      if max(assign) != k - 1:
        continue
      loads = [0] * k
      for i, r in enumerate(assign):
        loads[r] += lengths[i]
      if max(loads) <= cap:
        return k
  return n


@pytest.mark.parametrize("seed", range(12))
def test_pack_rows_is_best_fit_decreasing(seed):
  rng = np.random.default_rng(seed)
  cap = int(rng.choice([16, 32, 64]))
  lengths = [int(v) for v in rng.integers(3, cap + 1, size=int(rng.integers(1, 40)))]
  # Items have >= 3 tokens, so at most cap // 3 fit a row anyway: the item cap does not bind.
  rows = packing.pack_rows(lengths, range(len(lengths)), cap, max_items=cap // 3)
  assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
  assert sorted(sum(lengths[i] for i in r) for r in rows) == naive_best_fit_decreasing(lengths, cap)


@pytest.mark.parametrize("seed", range(8))
def test_pack_rows_near_optimal_on_small_sets(seed):
  rng = np.random.default_rng(100 + seed)
  cap = 24
  lengths = [int(v) for v in rng.integers(3, 20, size=7)]
  rows = packing.pack_rows(lengths, range(7), cap, max_items=8)
  opt = optimal_rows(lengths, cap)
  assert opt <= len(rows) <= math.floor(11 / 9 * opt + 6 / 9)  # BFD's worst-case bound


def test_pack_rows_respects_the_item_cap():
  rows = packing.pack_rows([3] * 10, range(10), 64, max_items=4)
  assert [len(r) for r in rows] == [4, 4, 2]
  with pytest.raises(gemb.InputError, match="does not fit"):
    packing.pack_rows([70], [0], 64, max_items=4)


@pytest.mark.parametrize("seed", range(6))
def test_plan_covers_every_item_within_the_shapes(seed):
  rng = np.random.default_rng(200 + seed)
  max_len, buckets, batch = 128, (16, 32, 64, 96, 128), int(rng.choice([1, 3, 8, 64]))
  lengths = [int(v) for v in np.minimum(rng.geometric(1 / 30, size=300) + 2, max_len)]
  plan = packing.plan(lengths, max_len=max_len, length_buckets=buckets, batch_size=batch)
  seen = []
  for row_len, rows in plan:
    assert len(rows) in packing.ROW_LADDER  # row counts are powers of two
    assert sum(len(r) for r in rows) <= batch
    for r in rows:
      assert 1 <= len(r) <= min(batch, row_len // 3)
      assert sum(lengths[i] for i in r) <= row_len
      for i in r:  # each item in the row its length asks for (brute force over the buckets)
        want = min([b for b in (*buckets, max_len) if b >= max(lengths[i], 64)])
        assert row_len == want
      seen += r
  assert sorted(seen) == list(range(len(lengths)))
  assert [p[0] for p in plan] == sorted(p[0] for p in plan)


def test_helpers_against_closed_forms():
  for n in range(1, 2000):
    p = packing.pow2(n)
    assert p >= n and p & (p - 1) == 0 and (p == 1 or p // 2 < n)
  assert packing.bucket(17, (16, 32, 64)) == 32 and packing.bucket(65, (16, 32, 64)) == 65
  assert packing.row_length(10, 128, (16, 32, 64, 128)) == 64  # short items share rows of 64
  assert packing.row_length(70, 128, (16, 32, 64, 96, 128)) == 96
  assert packing.row_length(10, 32, (16, 32, 64)) == 32  # never past max_len
  with pytest.raises(gemb.InputError, match="batch_size"):
    packing.plan([5], max_len=32, length_buckets=(16,), batch_size=0)


def test_encoder_embed_follows_the_public_plan():
  enc = gemb.model.load("tiny")
  texts = ["a", "a few more words here", "x " * 40, "short", "y " * 5]
  lengths = [p.length for p in enc.tokenize(texts)]
  plan = enc.plan(lengths, batch_size=4)
  enc.compiled_shapes.clear()
  enc.embed(texts, batch_size=4)
  shapes = {(len(rows), row_len) for row_len, rows in plan}
  assert {(s[0], s[1]) for s in enc.compiled_shapes} == shapes
