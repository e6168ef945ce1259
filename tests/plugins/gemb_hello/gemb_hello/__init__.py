"""A tiny third-party plugin, installed by the tests as a real distribution."""

import numpy as np


def l2_distance_loss(query_bd, doc_bd, scale=1.0):
  """Mean squared L2 distance between paired embeddings, times `scale`."""
  return scale * float(np.mean(np.sum((np.asarray(query_bd) - np.asarray(doc_bd)) ** 2, -1)))


class BruteForce:
  """Exact inner-product search in numpy."""

  def __init__(self, normalize=False):
    self.normalize = normalize
    self.emb_nd = None

  def build(self, emb_nd):
    self.emb_nd = np.asarray(emb_nd, np.float32)
    return self

  def search(self, queries_qd, k):
    scores_qn = np.asarray(queries_qd, np.float32) @ self.emb_nd.T
    ids_qk = np.argsort(-scores_qn, axis=1)[:, :k]
    return ids_qk, np.take_along_axis(scores_qn, ids_qk, 1)


def fit_line(config, run):
  """Fits y = a*x + b by gradient descent with jax; logs the loss each step."""
  import jax
  import jax.numpy as jnp

  x = jnp.linspace(-1.0, 1.0, 64)
  y = config.slope * x + config.intercept

  def loss(p):
    return jnp.mean((p[0] * x + p[1] - y) ** 2)

  grad = jax.jit(jax.value_and_grad(loss))
  p = jnp.zeros(2)
  for step in run.progress(range(config.steps), desc="fit"):
    value, g = grad(p)
    p = p - config.lr * g
    run.log(step=step, loss=float(value))
  summary = {"slope": float(p[0]), "intercept": float(p[1]), "loss": float(loss(p))}
  run.write_json("summary.json", summary)
  return summary
