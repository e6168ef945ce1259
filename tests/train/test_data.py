"""The task mixture and the pair batcher: rates, one task per batch, process shards, dropout."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import toy
from gemb.errors import ConfigError, InputError
from gemb.train import data


def test_mixture_rates_and_one_task_per_batch():
  src = {"a": toy.pairs(50, 1), "b": toy.pairs(50, 2)}
  mix = data.Mixture(src, {"a": 3.0, "b": 1.0}, 8, seed=5)
  tasks = [mix.task(s) for s in range(400)]
  assert 0.68 < tasks.count("a") / 400 < 0.82
  for s in range(20):
    task, pairs = mix.local_pairs(s)
    assert task == tasks[s] and len(pairs) == 8
    assert all(p in src[task] for p in pairs)


def test_mixture_is_a_function_of_the_step_and_splits_over_processes():
  src = {"a": toy.pairs(40, 1), "b": toy.pairs(40, 2)}
  one = data.Mixture(src, {"a": 1, "b": 1}, 8, seed=1)
  parts = [data.Mixture(src, {"a": 1, "b": 1}, 8, seed=1, process_index=i, process_count=2)
           for i in range(2)]
  for s in (7, 0, 3, 12):  # any order: no hidden iterator state
    task, rows = one.local_pairs(s)
    (t0, r0), (t1, r1) = parts[0].local_pairs(s), parts[1].local_pairs(s)
    assert t0 == t1 == task and r0 + r1 == rows
  # Repeats epochs with a fresh shuffle: 40 pairs, batches of 8, every pair seen once per epoch.
  only = data.Mixture({"a": src["a"]}, {"a": 1}, 8, seed=1)
  seen = [p["query"] for s in range(5) for p in only.local_pairs(s)[1]]
  assert sorted(seen) == sorted(p["query"] for p in src["a"])


@pytest.mark.parametrize("k", [0, 1])
def test_mixture_decodes_only_the_negatives_the_stage_uses(k):
  import gemb
  src = gemb.datasets.build("emoji(limit=16, negatives=2)", split="train")
  assert min(len(r["negatives"]) for r in src.records) > k  # else the cap would not bite
  decode, seen = src._materialize, []
  src._materialize = lambda rec: seen.append(len(rec["negatives"])) or decode(rec)
  whole = data.Mixture({"e": src}, {"e": 1}, 8, seed=3)
  capped = data.Mixture({"e": src}, {"e": 1}, 8, seed=3, max_negatives=k)
  for s in range(3):  # past one epoch of 16: the repeat keeps the cap
    (_, ref), n_ref = whole.local_pairs(s), len(seen)
    _, got = capped.local_pairs(s)
    assert max(seen[n_ref:]) == k  # the decoder was never handed more than the stage uses
    for a, b in zip(ref, got):  # the same pairs, with the first k negatives
      assert a["id"] == b["id"] and len(b["negatives"]) == k
      assert [x.pixels.tobytes() for x in a["negatives"][:k]] == \
          [x.pixels.tobytes() for x in b["negatives"]]
  # A source without `example` (a plain list) is cut after reading: same pairs either way.
  toy_src = toy.pairs(16, 1, negatives=2)
  ref = data.Mixture({"t": toy_src}, {"t": 1}, 8, seed=2).local_pairs(1)[1]
  got = data.Mixture({"t": toy_src}, {"t": 1}, 8, seed=2, max_negatives=k).local_pairs(1)[1]
  assert got == [{**p, "negatives": p["negatives"][:k]} for p in ref]


def test_mixture_bad_input():
  with pytest.raises(ConfigError, match="do not declare `task`"):
    data.Mixture({"a": list(toy.pairs(4))}, {"a": 1.0}, 4)
  with pytest.raises(ConfigError, match="no tasks"):
    data.Mixture({}, {}, 8)
  with pytest.raises(ConfigError, match="rates must be >= 0"):
    data.Mixture({"a": toy.pairs(4)}, {"a": 0.0}, 8)
  with pytest.raises(ConfigError, match="does not divide over 3 processes"):
    data.Mixture({"a": toy.pairs(4)}, {"a": 1.0}, 8, process_count=3)


def test_batcher_ids_negatives_and_prompt_dropout():
  pairs = toy.pairs(4, negatives=2)
  pairs[1]["negatives"] = pairs[1]["negatives"][:1]  # one short: padded and masked
  pairs[3]["query"] = pairs[0]["query"]
  out = data.PairBatcher(toy.prepare, hard_negatives=2)(pairs, "toy", 0)
  assert out["q_id"][0] == out["q_id"][3] and out["q_id"][0] != out["q_id"][1]
  assert out["n_valid"].tolist() == [[True, True], [True, False], [True, True], [True, True]]
  assert out["negatives"]["tokens"].shape == (8, toy.SEQ)
  with_prompt = out["query"]["tokens"]
  dropped = data.PairBatcher(toy.prepare, prompt_dropout=1.0)(pairs, "toy", 0)["query"]["tokens"]
  np.testing.assert_array_equal(dropped, toy.prepare([p["query"] for p in pairs])["tokens"])
  assert (with_prompt != dropped).any()
  rates = [data.PairBatcher(toy.prepare, prompt_dropout=0.3)(pairs, "toy", s)["query"]["tokens"]
           [0, 0] == dropped[0, 0] for s in range(200)]
  assert 0.2 < np.mean(rates) < 0.4
  # Per example: within one batch some queries keep the prompt and some lose it.
  many = toy.pairs(64)
  half = data.PairBatcher(toy.prepare, prompt_dropout=0.5)(many, "toy", 0)["query"]["tokens"]
  bare = toy.prepare([p["query"] for p in many])["tokens"]
  kept = (half != bare).any(axis=1)
  assert 16 < kept.sum() < 48
  with pytest.raises(InputError, match="lacks 'query' or 'positive'"):
    data.PairBatcher(toy.prepare)([{"query": "x"}], "t", 0)


def test_content_id_tells_apart_images_that_share_their_corners():
  content_id = data.content_id
  from gemb.model.inputs import Image, Video
  base = np.full((48, 48, 3), 255, np.uint8)
  a, b = base.copy(), base.copy()
  a[20:28, 20:28] = 10  # the same white border, different centres: repr() would show the same
  b[20:28, 20:28] = 200
  assert content_id(Image(a)) != content_id(Image(b))
  assert content_id(Image(a)) == content_id(Image(a.copy()))
  assert content_id(Video(np.stack([a, b]))) != content_id(Video(np.stack([b, a])))
