"""grain pipelines: seeded order, sharding coverage, checkpoint/restore mid-epoch, prepare_fn."""

import json

import grain
import numpy as np
import pytest

import gemb
from gemb.data import pipeline, restore_state, save_state, shard_indices
from gemb.errors import ConfigError, InputError


class Numbers:
  """A tiny random-access source: example i is {"query": str(i), ...}."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    return {"query": f"q{i}", "positive": f"p{i}", "negatives": [], "task": "t", "id": i}


def ids(batches):
  return [[ex["id"] for ex in b] for b in batches]


def take(it, k):
  return [next(it) for _ in range(k)]


def test_seeded_order_is_deterministic_and_reshuffled_per_epoch():
  src = Numbers(40)
  run = lambda seed: ids(take(iter(pipeline(src, batch_size=8, seed=seed, shard="none")), 10))
  a, b, c = run(1), run(1), run(2)
  assert a == b and a != c
  epoch0, epoch1 = sum(a[:5], []), sum(a[5:10], [])
  assert sorted(epoch0) == sorted(epoch1) == list(range(40))  # each epoch is a permutation
  assert epoch0 != epoch1  # and a different one
  assert epoch0 != list(range(40))
  unshuffled = ids(take(iter(pipeline(src, batch_size=8, shuffle=False, shard="none")), 1))
  assert unshuffled == [list(range(8))]


@pytest.mark.parametrize("n,count,drop", [(23, 3, False), (24, 4, False), (23, 3, True)])
def test_sharding_covers_each_example_once(n, count, drop):
  src = Numbers(n)
  seen = []
  for k in range(count):
    opts = grain.sharding.ShardOptions(k, count, drop_remainder=drop)
    got = sum(ids(pipeline(src, batch_size=1, seed=5, shard=opts, num_epochs=1,
                           drop_remainder=False)), [])
    assert got == shard_indices(n, opts, seed=5)
    seen += got
  if drop:
    assert len(seen) == len(set(seen)) == n - n % count
  else:
    assert sorted(seen) == list(range(n))  # every example exactly once across processes
  # In the next epoch the shards still partition the data, with a new order.
  ep1 = sum((shard_indices(n, grain.sharding.ShardOptions(k, count), seed=5, epoch=1)
             for k in range(count)), [])
  assert sorted(ep1) == list(range(n)) and ep1 != sum(
      (shard_indices(n, grain.sharding.ShardOptions(k, count), seed=5) for k in range(count)), [])


def test_default_shards_by_jax_process():
  import jax
  from gemb.data.input_pipeline import shard_options
  opts = shard_options(None)
  assert (opts.shard_index, opts.shard_count) == (jax.process_index(), jax.process_count())


def test_checkpoint_restore_mid_epoch(tmp_path):
  src = Numbers(50)
  make = lambda: iter(pipeline(src, batch_size=4, seed=7, shard=grain.sharding.ShardOptions(1, 2)))
  it = make()
  take(it, 3)  # mid-epoch: 12 of this shard's 25 examples
  path = tmp_path / "state" / "data.json"
  save_state(it, str(path))
  expected = ids(take(it, 9))  # crosses into the next epoch
  fresh = restore_state(make(), str(path))
  assert ids(take(fresh, 9)) == expected
  assert json.loads(path.read_text()) == {"next_index": 3}
  assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temporaries


def test_restore_errors(tmp_path):
  it = iter(pipeline(Numbers(5), batch_size=2, shard="none"))
  with pytest.raises(InputError, match="No pipeline state"):
    restore_state(it, str(tmp_path / "missing.json"))
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(InputError, match="not valid JSON"):
    restore_state(it, str(tmp_path / "bad.json"))


def test_prepare_fn_batches_real_pairs():
  src = gemb.datasets.build("emoji(languages=['en'], limit=64)", split="train")

  def prepare(examples):
    # Stands in for the trainer's Encoder.prepare: text lengths and stacked images.
    return {"q_len": np.array([len(e["query"]) for e in examples], np.int32),
            "pos_bhwc": np.stack([e["positive"].pixels for e in examples]),
            "neg_bhwc": np.stack([e["negatives"][0].pixels for e in examples])}

  it = iter(pipeline(src, prepare, batch_size=16, seed=0, shard="none", num_epochs=1))
  batches = list(it)
  assert len(batches) == 4
  assert batches[0]["pos_bhwc"].shape == (16, 48, 48, 3) and batches[0]["q_len"].min() > 0
  assert not np.array_equal(batches[0]["pos_bhwc"], batches[0]["neg_bhwc"])


def test_filter_and_bad_arguments():
  got = sum(ids(pipeline(Numbers(20), batch_size=5, shard="none", num_epochs=1,
                         drop_remainder=False, filter_fn=lambda e: e["id"] % 2 == 0)), [])
  assert sorted(got) == list(range(0, 20, 2))
  it = iter(pipeline(Numbers(40), batch_size=3, seed=1, shard="none",
                     filter_fn=lambda e: e["id"] % 3 != 0))
  take(it, 4)
  state, expected = it.get_state(), ids(take(it, 5))
  again = iter(pipeline(Numbers(40), batch_size=3, seed=1, shard="none",
                        filter_fn=lambda e: e["id"] % 3 != 0))
  again.set_state(state)
  assert ids(take(again, 5)) == expected  # filtered pipelines restore too
  with pytest.raises(ConfigError, match="batch_size"):
    pipeline(Numbers(5), batch_size=0)
  with pytest.raises(ConfigError, match="num_epochs"):
    pipeline(Numbers(5), batch_size=1, num_epochs=0)
  with pytest.raises(InputError, match="empty"):
    pipeline(Numbers(0), batch_size=1, shard="none")
  with pytest.raises(InputError, match="cannot be split"):
    pipeline(Numbers(2), batch_size=1, shard=grain.sharding.ShardOptions(0, 3))
  with pytest.raises(ConfigError, match="shard"):
    pipeline(Numbers(5), batch_size=1, shard="per-host")


WORKER_SCRIPT = """
import sys
from gemb.data import pipeline

class Numbers:
  def __len__(self):
    return 30
  def __getitem__(self, i):
    return {"id": i}

def ids(exs):
  return [e["id"] for e in exs]

if __name__ == "__main__":
  make = lambda w: iter(pipeline(Numbers(), ids, batch_size=4, seed=1, shard="none",
                                 num_workers=w))
  ref, mp = make(0), make(2)
  a = [next(mp) for _ in range(3)]
  assert a == [next(ref) for _ in range(3)], a  # workers keep the order
  state = mp.get_state()
  b = [next(mp) for _ in range(4)]
  again = make(2)
  again.set_state(state)
  assert b == [next(again) for _ in range(4)]
  for it in (mp, again):
    it.close()
  print("ok")
"""


def test_worker_processes_keep_order_and_state(tmp_path):
  import subprocess
  import sys
  script = tmp_path / "workers.py"
  script.write_text(WORKER_SCRIPT)
  out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=240)
  assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


DIST_SCRIPT = """
import json, sys
import jax
k, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=k)
from gemb.data import pipeline

class Numbers:
  def __len__(self):
    return 23
  def __getitem__(self, i):
    return {"id": i}

batches = pipeline(Numbers(), batch_size=1, seed=3, num_epochs=1, drop_remainder=False)
ids = [e["id"] for b in batches for e in b]
json.dump({"process": jax.process_index(), "count": jax.process_count(), "ids": ids},
          open(out, "w"))
"""


def test_two_jax_processes_read_each_example_once(tmp_path):
  # The default sharding (one shard per JAX process) with two real jax.distributed processes.
  import socket
  import subprocess
  import sys
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  script = tmp_path / "dist.py"
  script.write_text(DIST_SCRIPT)
  procs = [subprocess.Popen([sys.executable, str(script), str(k), str(port),
                             str(tmp_path / f"{k}.json")], stderr=subprocess.PIPE, text=True)
           for k in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=180)
    assert p.returncode == 0, err[-2000:]
  got = [json.loads((tmp_path / f"{k}.json").read_text()) for k in range(2)]
  assert [(g["process"], g["count"]) for g in got] == [(0, 2), (1, 2)]
  assert not set(got[0]["ids"]) & set(got[1]["ids"])
  assert sorted(got[0]["ids"] + got[1]["ids"]) == list(range(23))
