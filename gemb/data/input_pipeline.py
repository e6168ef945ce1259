"""Input pipelines on grain: seeded per-epoch shuffle, per-process sharding, batching through the
trainer's `prepare_fn`, and an iterator whose state can be checkpointed and restored mid-epoch.

    ds = gemb.datasets.build("emoji", split="train")
    prepare = lambda exs: {k: encoder.prepare([e[k] for e in exs]) for k in ("query", "positive")}
    it = iter(gemb.data.pipeline(ds, prepare, batch_size=64, seed=0))
    batch = next(it)
    state = it.get_state()   # small dict; save it with the run's checkpoint
    it.set_state(state)      # resumes at the same batch

Order of operations, and why:

1. ``shuffle(seed)`` on the whole source: every process computes the same permutation, and
   grain reseeds it each epoch (``seed + epoch``), so epochs differ but are reproducible.
2. ``[shard_index::shard_count]``: process k takes every k-th element of each epoch's
   permutation, so within an epoch the processes together read each example exactly once.
3. ``repeat(num_epochs)``, then ``batch(batch_size, batch_fn=prepare_fn)``: batches are packed on
   the host by the trainer's function (tokenize, pad to buckets), in grain's reader threads.

The iterator state is grain's own (`next_index` of a random-access pipeline), so restoring is
O(1): no replay of the batches already seen.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Sequence

import grain

from gemb.errors import ConfigError, InputError
from gemb.io import atomic_write

PrepareFn = Callable[[Sequence[dict]], Any]


def shard_options(shard: grain.sharding.ShardOptions | str | None) -> grain.sharding.ShardOptions:
  """`None` or "jax" -> one shard per JAX process; "none" -> no sharding; else as given."""
  if shard is None or shard == "jax":
    return grain.sharding.ShardByJaxProcess(drop_remainder=False)
  if shard == "none":
    return grain.sharding.NoSharding()
  if isinstance(shard, grain.sharding.ShardOptions):
    return shard
  raise ConfigError(f"shard must be a grain.sharding.ShardOptions, 'jax' or 'none'; got {shard!r}.")


def pipeline(source: Sequence[dict], prepare_fn: PrepareFn | None = None, *, batch_size: int,
             seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
             shard: grain.sharding.ShardOptions | str | None = None, drop_remainder: bool = True,
             num_threads: int = 4, prefetch: int = 8, num_workers: int = 0,
             filter_fn: Callable[[dict], bool] | None = None) -> grain.IterDataset:
  """A grain `IterDataset` of prepared batches from a random-access `source` of examples.

  Args:
    source: anything with ``__len__``/``__getitem__`` (a `gemb.datasets` source).
    prepare_fn: list of examples -> batch (dict of arrays); `None` yields the lists themselves.
    batch_size: examples per batch on *this* process.
    seed: shuffle seed (identical on all processes).
    num_epochs: `None` repeats forever (training); 1 reads each example once (evaluation).
    shard: see `shard_options`; default one shard per JAX process.
    drop_remainder: drop a last short batch (keeps one compiled shape).
    num_threads, prefetch: grain reader threads and prefetch buffer (in examples).
    num_workers: > 0 runs reading and `prepare_fn` in that many worker processes (grain
      `mp_prefetch`; for image/audio/video tokenization, which holds the GIL). `source` and
      `prepare_fn` must then be picklable; the order and the iterator state are unchanged.
    filter_fn: keep only examples for which it is true (applied before batching).
  """
  if batch_size < 1:
    raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
  if num_epochs is not None and num_epochs < 1:
    raise ConfigError(f"num_epochs must be None (forever) or >= 1, got {num_epochs}.")
  n = len(source)
  if n == 0:
    raise InputError("The dataset is empty; check its split and options (e.g. limit, languages).")
  opts = shard_options(shard)
  if not 0 <= opts.shard_index < opts.shard_count:
    raise ConfigError(f"shard_index {opts.shard_index} is outside [0, {opts.shard_count}).")
  if opts.shard_count > n:
    raise InputError(f"{n} examples cannot be split over {opts.shard_count} processes.")
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = ds.shuffle(seed=seed)
  if opts.drop_remainder:  # equal shards: drop the last n % count of each epoch's permutation
    ds = ds[: n - n % opts.shard_count]
  if opts.shard_count > 1:
    ds = ds[opts.shard_index::opts.shard_count]
  ds = ds.repeat(num_epochs)
  if num_workers < 0:
    raise ConfigError(f"num_workers must be >= 0, got {num_workers}.")
  read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  if filter_fn is not None:
    # A filter makes batch boundaries data-dependent, so batching moves after the reader.
    out = ds.filter(filter_fn).to_iter_dataset(read).batch(
        batch_size, drop_remainder=drop_remainder, batch_fn=prepare_fn or list)
  else:
    out = ds.batch(batch_size, drop_remainder=drop_remainder,
                   batch_fn=prepare_fn or list).to_iter_dataset(read)
  if num_workers:
    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; a library has no argv
      flags.FLAGS.mark_as_parsed()
    out = out.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return out


def shard_indices(n: int, shard: grain.sharding.ShardOptions, seed: int = 0,
                  shuffle: bool = True, epoch: int = 0) -> list[int]:
  """The source indices that `shard` reads in `epoch` (for tests and for checking coverage)."""
  ds = grain.MapDataset.range(n)
  if shuffle:
    ds = ds.shuffle(seed=seed)
  if shard.drop_remainder:
    ds = ds[: n - n % shard.shard_count]
  ds = ds[shard.shard_index::shard.shard_count].repeat(epoch + 1)
  m = len(ds) // (epoch + 1)
  return [ds[i] for i in range(epoch * m, (epoch + 1) * m)]


def save_state(iterator: grain.DatasetIterator, path: str) -> None:
  """Writes the iterator's state as JSON, atomically (temporary file, then rename)."""
  state = iterator.get_state()
  atomic_write(path, json.dumps(state))


def restore_state(iterator: grain.DatasetIterator, path: str) -> grain.DatasetIterator:
  """Sets `iterator` to the state saved at `path`; returns it."""
  try:
    with open(path) as f:
      state: Mapping = json.load(f)
  except FileNotFoundError:
    raise InputError(f"No pipeline state at {path}; was it saved with save_state?") from None
  except json.JSONDecodeError as e:
    raise InputError(f"The pipeline state at {path} is not valid JSON ({e}).") from None
  iterator.set_state(dict(state))
  return iterator
