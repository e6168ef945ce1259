"""The small learners that MTEB-style tasks fit on top of frozen embeddings.

Logistic regression (as MTEB's classification: multinomial, L2 with C=1, up to 100 L-BFGS steps)
and k-means (as MTEB's clustering: as many clusters as gold labels). Both are deterministic given
their seed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit_logreg(x_nd, y_n, l2, num_classes: int, steps: int):
  d = x_nd.shape[1]
  params = {"w_dc": jnp.zeros((d, num_classes), jnp.float32),
            "b_c": jnp.zeros((num_classes,), jnp.float32)}

  def loss(p):
    logits_nc = x_nd @ p["w_dc"] + p["b_c"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_nc, y_n).mean()
    return ce + 0.5 * l2 * jnp.sum(p["w_dc"] ** 2)  # bias unpenalised, as in sklearn

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    p, state = carry
    value, grad = value_and_grad(p, state=state)
    updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
    return (optax.apply_updates(p, updates), state), value

  (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  return params, losses


class LogisticRegression:
  """Multinomial logistic regression; `c` is sklearn's inverse regularisation strength."""

  def __init__(self, c: float = 1.0, steps: int = 100):
    self.c, self.steps = c, steps

  def fit(self, x_nd: np.ndarray, y_n: np.ndarray) -> "LogisticRegression":
    self.classes_, y_idx = np.unique(np.asarray(y_n), return_inverse=True)
    # sklearn minimises C * sum(CE) + |w|^2 / 2; dividing by C * n gives mean(CE) + |w|^2/(2Cn).
    l2 = 1.0 / (self.c * len(y_idx))
    params, self.losses_ = _fit_logreg(jnp.asarray(x_nd, jnp.float32), jnp.asarray(y_idx),
                                       jnp.float32(l2), num_classes=len(self.classes_),
                                       steps=self.steps)
    self.w_dc, self.b_c = np.asarray(params["w_dc"]), np.asarray(params["b_c"])
    return self

  def predict(self, x_nd: np.ndarray) -> np.ndarray:
    logits_nc = np.asarray(x_nd, np.float32) @ self.w_dc + self.b_c
    return self.classes_[np.argmax(logits_nc, axis=1)]


def kmeans(x_nd: np.ndarray, k: int, *, seed: int = 0, n_init: int = 3, iters: int = 100
           ) -> np.ndarray:
  """Lloyd's k-means with k-means++ seeding; returns the labels of the best of n_init runs."""
  x = np.asarray(x_nd, np.float64)
  n = x.shape[0]
  rng = np.random.default_rng(seed)
  sq_n = (x * x).sum(1)
  best, best_inertia = None, np.inf
  for _ in range(n_init):
    centers = [x[rng.integers(n)]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):  # k-means++: next centre with probability proportional to d^2
      p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
      centers.append(x[rng.choice(n, p=p)])
      d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    c_kd = np.stack(centers)
    labels = np.full(n, -1)
    for _ in range(iters):
      dist_nk = sq_n[:, None] - 2 * x @ c_kd.T + (c_kd * c_kd).sum(1)[None, :]
      new = dist_nk.argmin(1)
      if (new == labels).all():
        break
      labels = new
      for j in range(k):
        members = x[labels == j]
        if len(members):
          c_kd[j] = members.mean(0)
    inertia = float(dist_nk[np.arange(n), labels].sum())
    if inertia < best_inertia:
      best, best_inertia = labels.copy(), inertia
  return best
