"""Runs in a subprocess with 8 fake CPU devices (XLA_FLAGS set by the caller); prints JSON."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax
import numpy as np

import toy
from gemb import sharding
from gemb.errors import ConfigError
from gemb.train import data, trainer as T


def one_step(mesh_shape, rules, devices):
  mesh = sharding.make_mesh(mesh_shape, devices)
  tr = T.Trainer(toy.ToyEncoder(), mesh=mesh, rules=sharding.resolve_rules(rules),
                 optim=T.OptimConfig(lr=1e-2, total_steps=10, clip_norm=0.5, weight_decay=0.1),
                 loss="matryoshka(loss='infonce(temperature=0.1, two_sided=True)', dims=(8, 16))")
  pairs = toy.pairs(16, seed=3, negatives=2)
  pairs[5]["query"] = pairs[2]["query"]  # a false negative the mask must remove
  batch = data.PairBatcher(toy.prepare, hard_negatives=2)(pairs, "toy", 0)
  loss, grads = tr.loss_and_grad(batch)
  tr.step(batch)
  tr.step(batch)
  try:  # 6 rows cannot split over 8 or 4 batch shards
    tr.global_batch(data.PairBatcher(toy.prepare)(toy.pairs(6), "toy", 0))
    odd_batch_error = ""
  except ConfigError as e:
    odd_batch_error = str(e)
  flat = lambda t: {jax.tree_util.keystr(p): np.asarray(x).tolist()
                    for p, x in jax.tree_util.tree_flatten_with_path(t)[0]}
  return {"loss": float(loss), "grads": flat(grads), "params": flat(tr.params),
          "specs": sharding.describe_specs(tr.param_specs), "odd_batch_error": odd_batch_error}


def main():
  devs = jax.devices()
  assert len(devs) == 8, f"expected 8 CPU devices, got {len(devs)}"
  out = {
      "single": one_step({"data": 1}, "dp", devs[:1]),
      "data8": one_step({"data": 8}, "dp", devs),
      "data4_fsdp2": one_step({"data": 4, "fsdp": 2}, "fsdp", devs),
      "data2_fsdp2_tp2": one_step({"data": 2, "fsdp": 2, "tensor": 2}, "fsdp_tp", devs),
  }
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main()
