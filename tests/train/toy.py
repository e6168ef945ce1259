"""A small NNX encoder that follows the model contract: `__call__(batch, dim=None) -> emb_bd`
(L2-normalized), with logical axis names on its parameters; and a matching `prepare`."""

import zlib

import jax.numpy as jnp
import numpy as np
from flax import nnx

VOCAB, SEQ, NWORDS = 256, 8, 60


class ToyEncoder(nnx.Module):

  def __init__(self, width: int = 16, hidden: int = 32, out: int = 16, *, seed: int = 0):
    rngs = nnx.Rngs(seed)
    init = nnx.initializers.normal(0.5)
    with nnx.use_eager_sharding(False):
      self.embed = nnx.Embed(VOCAB, width, rngs=rngs,
                             embedding_init=nnx.with_partitioning(init, ("vocab", "embed")))
      self.up = nnx.Linear(width, hidden, rngs=rngs, kernel_init=nnx.with_partitioning(
          nnx.initializers.lecun_normal(), ("embed", "mlp")))
      self.down = nnx.Linear(hidden, out, rngs=rngs, kernel_init=nnx.with_partitioning(
          nnx.initializers.lecun_normal(), ("mlp", "embed")))

  def __call__(self, batch, dim=None):
    tok_bl, mask_bl = batch["tokens"], batch["mask"]
    x_bld = self.embed(tok_bl)
    x_bld = x_bld + self.down(nnx.gelu(self.up(x_bld)))[..., :x_bld.shape[-1]]
    m = mask_bl[..., None].astype(x_bld.dtype)
    emb_bd = self.down(nnx.gelu(self.up((x_bld * m).sum(1) / jnp.maximum(m.sum(1), 1.0))))
    if dim is not None:
      emb_bd = emb_bd[:, :dim]
    return emb_bd / jnp.linalg.norm(emb_bd, axis=-1, keepdims=True)


def prepare(items, task=None):
  """Words -> hashed token ids, fixed length SEQ; a task (one, or one per item) adds a prompt
  token."""
  tok = np.zeros((len(items), SEQ), np.int32)
  mask = np.zeros((len(items), SEQ), bool)
  tasks = list(task) if isinstance(task, (list, tuple)) else [task] * len(items)
  for i, (text, t) in enumerate(zip(items, tasks)):
    words = ([f"<task:{t}>"] if t else []) + str(text).split()
    ids = [zlib.crc32(w.encode()) % (VOCAB - 1) + 1 for w in words][:SEQ]
    tok[i, :len(ids)] = ids
    mask[i, :len(ids)] = True
  return {"tokens": tok, "mask": mask}


class Pairs(list):
  """A list of pair dicts that declares its task, as every gemb.datasets source does."""
  task = "toy"


def pairs(n: int, seed: int = 0, negatives: int = 0) -> Pairs:
  """Synthetic pairs: query "a3 a17 a5", positive "b3 b17 b5" (no shared words, so an untrained
  model is near chance and only training can link a_i to b_i); held-out pairs recombine words."""
  rng = np.random.default_rng(seed)
  out = Pairs()
  for _ in range(n):
    ids = rng.choice(NWORDS, 3, replace=False)
    pr = {"query": " ".join(f"a{i}" for i in ids), "positive": " ".join(f"b{i}" for i in ids),
          "task": "toy"}
    if negatives:  # hard: shares two of the three words
      pr["negatives"] = [" ".join(f"b{i}" for i in (ids[0], ids[1], (ids[2] + 1 + k) % NWORDS))
                         for k in range(negatives)]
    out.append(pr)
  return out
