"""One of N processes (or a lone reference run) running gemb/recipes/train.py:tiny, shrunk hard.

usage: multiprocess_recipe_worker.py WORKDIR [PORT PROCESS_ID NUM_PROCESSES]

With PORT etc. it joins a gloo CPU run through gemb's own GEMB_COORDINATOR path; without, it runs
alone. The mesh is fsdp=2, so the "embed" dimension of most parameters is split over two devices:
the two processes' one CPU device each, or the reference's two forced host devices.
"""

import os
import sys

# Two stages of 4 steps at a global batch of 8, a checkpoint every 2 steps (keep 2), a greedy
# soup over the last stage's checkpoints and the first stage's final weights, a small eval.
OVERRIDES = [
    "model=tiny(truncate=True, max_len=16, text_tokenizer='wordpiece', vocab_size=30522, "
    "depth=1)", "seq_len=16",  # one length bucket: one compiled step per stage
    "mesh.data=1", "mesh.fsdp=2",
    "stages.prefinetune.steps=4", "stages.prefinetune.batch_size=8",
    "stages.finetune.steps=4", "stages.finetune.batch_size=8",
    "checkpoint.every=2", "checkpoint.keep=2", "log_every=2",
    "eval.max_queries=8", "soup.method=greedy",
    "pack=False",  # the reference in one process pads as the two processes do: same numbers
]


def main(argv):
  workdir = argv[0]
  if len(argv) > 1:
    port, pid, nproc = argv[1:4]
    os.environ.update(GEMB_COORDINATOR=f"127.0.0.1:{port}", GEMB_NUM_PROCESSES=nproc,
                      GEMB_PROCESS_ID=pid)
  os.environ["GEMB_PROGRESS"] = "0"
  from gemb import run as run_lib
  import gemb.train.runner  # noqa: F401  registers the "train" run kind
  run_lib.run_recipe("train:tiny", OVERRIDES, workdir)
  check_load_params(os.path.join(workdir, "load_params.json"))


def check_load_params(out):
  """A host tree given to `Trainer.load_params` comes back laid out as the trainer's own params
  (split across the processes), with the given values."""
  import json

  import jax
  import numpy as np

  sys.path.insert(0, os.path.dirname(__file__))
  import toy
  from gemb import sharding
  from gemb.train import trainer as T
  from gemb.train.runner import _host_tree
  tr = T.Trainer(toy.ToyEncoder(), mesh=sharding.make_mesh({"data": 1, "fsdp": 2}),
                 rules=sharding.resolve_rules("fsdp"), optim=T.OptimConfig(total_steps=1))
  host = jax.tree.map(lambda x: x + 1.0, _host_tree(tr.params))
  tr.load_params(host)
  same_layout = jax.tree.map(lambda x, s: x.sharding == s, tr.params, tr.param_shardings)
  back = _host_tree(tr.params)
  result = {
      "split": sum(not x.is_fully_addressable for x in jax.tree.leaves(tr.params)),
      "same_layout": all(jax.tree.leaves(same_layout)),
      "equal": all(jax.tree.leaves(jax.tree.map(np.array_equal, back, host))),
  }
  if jax.process_index() == 0:
    with open(out, "w") as f:
      json.dump(result, f)


if __name__ == "__main__":
  main(sys.argv[1:])
