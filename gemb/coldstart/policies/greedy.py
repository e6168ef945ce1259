"""The greedy (one-step tangent) planner of `Discoverability`: ``plan="greedy"``.

Each item asks for one step within its remaining quota (and a per-period cap): the tangent point of
its S-shaped curve, the step with the best gain per impression, searched on a log grid. Items are
funded by gain per impression (`allocation.allocate`) until the budgets bind.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gemb.coldstart import allocation as alloc_lib
from gemb.coldstart import cost as cost_lib
from gemb.coldstart.curve import curve_prob


def plan_from_curve(a, s, c, x0: float, impressions: np.ndarray, cf: float, x_max: float,
                    grid: int, clicks: np.ndarray, prior: tuple[float, float],
                    step_cap: float | None = None, pace: bool = False,
                    exploit_rate: float | None = None):
  """Vectorized greedy planning step, given each item's curve parameters: quota, the traffic asked
  for now, its gain, its exploration cost (`cost.cost_of`) and P(G=1) now, per item."""
  n = np.asarray(impressions, np.float32)
  quota = alloc_lib.quota_closed_form(a, s, c, cf, x0)
  quota = np.minimum(quota, x_max).astype(np.float32)  # unreachable CF: use up to x_max
  cap = np.inf if step_cap is None else float(step_cap)
  ask, gain, p_now = (np.asarray(v, np.float64) for v in _tangent_step(
      *(np.asarray(v, np.float32) for v in (a, s, c)), n, quota, float(x0), float(x_max), cap,
      int(grid), bool(pace)))
  cost = cost_lib.cost_of(ask, impressions, clicks, prior, exploit_rate)
  return {"quota": quota, "ask": ask, "gain": gain, "cost": cost, "p_now": p_now}


@functools.partial(jax.jit, static_argnames=("grid", "pace"))
def _tangent_step(a, s, c, n, quota, x0, x_max, cap, grid, pace=False):
  # For each item, the step within its remaining quota (and the per-period cap) with the best gain
  # per impression: the tangent point of its S-shaped curve, searched on a log grid. With `pace`,
  # the tangent point is searched over the whole remaining quota and the cap only paces how much
  # of that step is spent this period (at the step's gain per impression).
  left = jnp.maximum(quota - n, 0.0)
  room = left if pace else jnp.minimum(left, cap)

  def prob(x_n):
    return curve_prob(a[:, None], s[:, None], c[:, None], x_n, x0, jnp)

  p_now = prob(n[:, None])[:, 0]
  steps = jnp.geomspace(1.0, x_max, grid)
  x_ng = jnp.minimum(steps[None, :], room[:, None])
  ratio = jnp.where(x_ng > 0, (prob(n[:, None] + x_ng) - p_now[:, None])
                    / jnp.maximum(x_ng, 1e-9), 0.0)
  best = jnp.argmax(ratio, axis=1)
  r = jnp.take_along_axis(ratio, best[:, None], 1)[:, 0]
  ask = jnp.where(r > 0, jnp.take_along_axis(x_ng, best[:, None], 1)[:, 0], 0.0)
  if pace:
    ask = jnp.minimum(ask, cap)
  return ask, jnp.where(r > 0, r * ask, 0.0), p_now


def allocate_greedy(plan: dict[str, np.ndarray], budget: float,
                    cost_budget: float | None = None) -> np.ndarray:
  """Funds the plan's asks: exactly (subset enumeration) for few items, greedily otherwise."""
  if len(plan["ask"]) <= alloc_lib.EXACT_MAX_ITEMS:
    return alloc_lib.allocate_exact(plan["gain"], plan["ask"], budget, plan["cost"], cost_budget)
  return alloc_lib.allocate(plan["gain"], plan["ask"], budget, plan["cost"], cost_budget)
