"""One of N processes (or a lone reference run) training the toy model for a few steps.

usage: multiprocess_worker.py PORT PROCESS_ID NUM_PROCESSES OUT.npz   (NUM_PROCESSES=1: no init)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax


def main(port, pid, nproc, out):
  if nproc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc,
                               process_id=pid)
  import numpy as np
  from jax.experimental import multihost_utils

  import toy
  from gemb import sharding
  from gemb.train import data, trainer as T

  mesh = sharding.make_mesh({"data": 1, "fsdp": -1})  # fsdp spans the processes' devices
  tr = T.Trainer(toy.ToyEncoder(), mesh=mesh, rules=sharding.resolve_rules("fsdp"),
                 optim=T.OptimConfig(lr=1e-2, total_steps=4), loss="infonce(temperature=0.1)")
  mix = data.Mixture({"a": toy.pairs(64, 1, 1), "b": toy.pairs(64, 2, 1)}, {"a": 1, "b": 1}, 8,
                     process_index=jax.process_index(), process_count=jax.process_count())
  T.fit(tr, mix, data.PairBatcher(toy.prepare, hard_negatives=1), 4, log_every=100)
  params = multihost_utils.process_allgather(tr.params, tiled=True)
  if jax.process_index() == 0:
    flat = {jax.tree_util.keystr(p): np.asarray(x)
            for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(out, devices=len(jax.devices()), **flat)


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
