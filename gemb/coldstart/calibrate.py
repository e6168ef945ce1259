"""Ground truth for the simulator, fitted on MovieLens-100k.

A biased matrix factorization ``r(u, i) = mu + b_u + b_i + <p_u, q_i>`` is fitted to the ratings;
the probability that user u engages with item i is ``sigmoid(kappa * (r(u, i) - pivot))`` (a
rating of 4 or more counts as engagement). Items whose first rating is the newest play the fresh
items; the rest form the established catalogue that fresh items compete with.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gemb.data.movielens import MovieLens


@dataclasses.dataclass(frozen=True)
class Calibration:
  user_ud: np.ndarray  # [n_users, d] user factors
  user_bias_u: np.ndarray  # [n_users]
  item_id: np.ndarray  # [n_items, d] item factors
  item_bias_i: np.ndarray  # [n_items]
  mu: float
  kappa: float
  pivot: float
  fresh_templates: np.ndarray  # [n_fresh] item indices: the newest items
  established: np.ndarray  # [n_est] item indices: the rest
  rmse: float  # training RMSE of the fit, reported for transparency

  @classmethod
  def synthetic(cls, n_users: int = 64, n_items: int = 120, d: int = 4,
                seed: int = 0) -> "Calibration":
    """A small random platform (no MovieLens): for tests and for plugin policies' own tests.
    The first half of the items are fresh templates, the rest established."""
    rng = np.random.default_rng(seed)
    f32 = lambda x: x.astype(np.float32)
    return cls(user_ud=f32(rng.normal(0, 0.5, (n_users, d))),
               user_bias_u=f32(rng.normal(0, 0.3, n_users)),
               item_id=f32(rng.normal(0, 0.5, (n_items, d))),
               item_bias_i=f32(rng.normal(0, 0.6, n_items)), mu=3.5, kappa=1.5, pivot=3.5,
               fresh_templates=np.arange(n_items // 2),
               established=np.arange(n_items // 2, n_items), rmse=0.0)


def fit_mf(ml: MovieLens, dim: int = 16, steps: int = 400, l2: float = 0.05, lr: float = 0.05,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
  """Full-batch Adam on squared error + L2; returns (P, b_u, Q, b_i, mu, rmse)."""
  u, i = jnp.asarray(ml.user_n), jnp.asarray(ml.item_n)
  r = jnp.asarray(ml.rating_n)
  mu = float(r.mean())
  k1, k2 = jax.random.split(jax.random.key(seed))
  params = {"p": 0.1 * jax.random.normal(k1, (ml.n_users, dim)),
            "q": 0.1 * jax.random.normal(k2, (ml.n_items, dim)),
            "bu": jnp.zeros(ml.n_users), "bi": jnp.zeros(ml.n_items)}
  tx = optax.adam(lr)

  def loss_fn(p):
    pred = mu + p["bu"][u] + p["bi"][i] + jnp.sum(p["p"][u] * p["q"][i], -1)
    mse = jnp.mean((pred - r) ** 2)
    reg = l2 * (jnp.mean(jnp.sum(p["p"][u] ** 2, -1)) + jnp.mean(jnp.sum(p["q"][i] ** 2, -1)))
    return mse + reg, mse

  @jax.jit
  def run(params):
    def body(carry, _):
      p, s = carry
      (_, mse), g = jax.value_and_grad(loss_fn, has_aux=True)(p)
      upd, s = tx.update(g, s, p)
      return (optax.apply_updates(p, upd), s), mse
    (p, _), mses = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return p, mses[-1]

  p, mse = run(params)
  return (np.asarray(p["p"]), np.asarray(p["bu"]), np.asarray(p["q"]), np.asarray(p["bi"]), mu,
          float(np.sqrt(mse)))


def calibrate(ml: MovieLens, dim: int = 16, fresh_fraction: float = 0.2, kappa: float = 1.5,
              pivot: float = 3.5, seed: int = 0) -> Calibration:
  """Fits the factorization and splits items into fresh templates and the established catalogue."""
  p, bu, q, bi, mu, rmse = fit_mf(ml, dim=dim, seed=seed)
  order = np.argsort(ml.first_rated(), kind="stable")
  n_fresh = max(1, int(round(fresh_fraction * ml.n_items)))
  return Calibration(p, bu, q, bi, mu, kappa, pivot, np.sort(order[-n_fresh:]),
                     np.sort(order[:-n_fresh]), rmse)
