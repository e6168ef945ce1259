"""Input pipeline throughput vs. the trainer's consumption at the minilm-l6 preset.

Setup: for each built-in dataset, the grain pipeline (`gemb.data.pipeline`: seeded shuffle,
sharding, batching) with the trainer's own batch function (`PairBatcher` around
`Encoder.prepare`: tokenize, patchify, pad to `--seq-len`) produces batches of `--batch` pairs
with one hard negative; we time `--batches` batches after one warm-up batch. Side by side, the
trainer (`gemb.train.Trainer`, one jitted contrastive step: forward + backward on query, positive
and negative, AdamW update) consumes batches of the same shapes; we time `--steps` steps after
compiling. Both run on this machine's CPU, one process, one device.

Input is not the bottleneck when pipeline examples/s >= train examples/s (ratio >= 1); with
grain's reader threads the pipeline overlaps the step, so the ratio is the headroom.

    python benchmarks/input_pipeline.py            # writes nothing; prints a table, then JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import jax

import gemb
from gemb import data, model as model_lib, sharding
from gemb.train.data import PairBatcher
from gemb.train.trainer import OptimConfig, Trainer

DATASETS = ["text-pairs", "code", "emoji(languages=['en'])", "spoken-names", "clips",
            "interleaved"]


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--seq-len", type=int, default=128)
  p.add_argument("--batches", type=int, default=20, help="pipeline batches timed per dataset")
  p.add_argument("--steps", type=int, default=2, help="train steps timed per dataset")
  p.add_argument("--threads", type=int, default=2, help="grain reader threads")
  p.add_argument("--datasets", nargs="*", default=DATASETS)
  args = p.parse_args()

  # Long docstrings and code exceed seq_len: the trainer's setting is to truncate them.
  warnings.filterwarnings("ignore", category=model_lib.TruncationWarning)
  encoder = model_lib.load(f"minilm-l6(truncate=True, max_len={args.seq_len})")
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  rules = sharding.resolve_rules("fsdp")
  optim = OptimConfig.from_config({"lr": 1e-5, "warmup_steps": 1}, total_steps=1000)
  trainer = Trainer(encoder.model, mesh=mesh, rules=rules, optim=optim,
                    loss="infonce(temperature=0.05)")
  # Fixed shapes per dataset so every train step reuses one compiled program.
  rows = []
  for spec in args.datasets:
    src = gemb.datasets.build(spec, split="train")
    probe = [src[i] for i in range(0, len(src), max(1, len(src) // 64))][:64]
    shapes = {}
    for key in ("query", "positive"):
      b = encoder.prepare([e[key] for e in probe], None, length=args.seq_len)
      shapes[key] = b["patches"].shape[1]
    n_patch = max(shapes.values())

    def prepare(items, task, n_patch=n_patch):
      return encoder.prepare(list(items), task, length=args.seq_len, num_patches=n_patch)

    batcher = PairBatcher(prepare, hard_negatives=1, seed=0)
    prepare_fn = lambda exs: batcher(exs, exs[0]["task"], 0)
    it = iter(data.pipeline(src, prepare_fn, batch_size=args.batch, seed=0, shard="none",
                            num_threads=args.threads, prefetch=2 * args.batch))
    first = next(it)
    t0 = time.perf_counter()
    for _ in range(args.batches):
      batch = next(it)
    pipe_s = (time.perf_counter() - t0) / args.batches

    jax.block_until_ready(trainer.step(first)["loss"])  # compile
    t0 = time.perf_counter()
    for _ in range(args.steps):
      loss = trainer.step(batch)["loss"]
    jax.block_until_ready(loss)
    step_s = (time.perf_counter() - t0) / args.steps
    row = {"dataset": spec, "pipeline_ex_per_s": round(args.batch / pipe_s, 1),
           "train_ex_per_s": round(args.batch / step_s, 1),
           "ratio": round(step_s / pipe_s, 2), "patches": int(n_patch),
           "loss": round(float(loss), 4)}
    rows.append(row)
    print(f"{spec:28s} pipeline {row['pipeline_ex_per_s']:9.1f} ex/s   train "
          f"{row['train_ex_per_s']:8.1f} ex/s   ratio {row['ratio']:7.2f}   patches {n_patch}",
          flush=True)

  summary = {
      "setup": f"minilm-l6, batch {args.batch}, seq_len {args.seq_len}, 1 hard negative, "
               f"{args.threads} grain threads, {jax.devices()[0].platform} "
               f"({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
      "min_ratio": min(r["ratio"] for r in rows),
      "input_is_bottleneck": any(r["ratio"] < 1 for r in rows),
      **{f"{r['dataset']}": {"pipeline_ex_s": r["pipeline_ex_per_s"],
                             "train_ex_s": r["train_ex_per_s"]} for r in rows},
  }
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
