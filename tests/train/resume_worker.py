"""Trains the toy model with checkpoints; optionally SIGKILLs itself at a step. Saves params.

usage: resume_worker.py WORKDIR STEPS KILL_AT(-1 = never) OUT.npz
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax
import numpy as np

import toy
from gemb import sharding
from gemb import checkpoint
from gemb.train import data, trainer as T


def main(workdir, steps, kill_at, out):
  mesh = sharding.make_mesh({"data": -1})
  tr = T.Trainer(toy.ToyEncoder(), mesh=mesh, rules=sharding.resolve_rules("dp"),
                 optim=T.OptimConfig(lr=3e-3, warmup_steps=2, total_steps=steps),
                 loss="infonce(temperature=0.1)")
  mix = data.Mixture({"a": toy.pairs(64, 1, 1), "b": toy.pairs(64, 2, 1)}, {"a": 0.7, "b": 0.3}, 8)
  batcher = data.PairBatcher(toy.prepare, hard_negatives=1, prompt_dropout=0.5)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"), every=3, keep=2)

  def killer(trainer, step, info):
    if step == kill_at:
      os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, async save possibly in flight

  summary = T.fit(tr, mix, batcher, steps, checkpointer=ckpt, hooks=[killer], log_every=5)
  ckpt.close()
  flat = {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tr.params)[0]}
  np.savez(out, resumed_from=summary["resumed_from"], **flat)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
