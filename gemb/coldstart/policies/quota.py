"""The paper's planner: ``plan="quota"``.

Each item's quota X_i solves P(G_i = 1 | X_i, features) = CF: in closed form for the model's curve
family (`allocation.quota_closed_form`), by bisection for any other non-decreasing curve
(`allocation.bisect_quota`). Items whose curve never reaches CF get no quota, or a configured
`floor` of impressions. The remaining quotas are funded smallest first until the traffic budget T
or the cost budget C_max binds (the break item in part); the plan is recomputed every period from
the engagement observed so far.

With one budget, funding smallest first maximizes the number of items whose quota is met in full:
it is what `allocation.allocate_exact` finds with unit gains (tests/coldstart/test_quota.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from gemb.coldstart import allocation as alloc_lib
from gemb.coldstart import cost as cost_lib


def quota_needs(a, s, c, x0: float, impressions, cf: float, floor: float = 0.0,
                p_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                x_search: float = 1e6) -> dict[str, np.ndarray]:
  """Per item: the total quota, whether it is finite, and the impressions still needed.

  `p_fn(total_traffic) -> P` replaces the closed form by bisection (any non-decreasing curve).
  Unreachable items need ``max(floor - impressions, 0)``."""
  n = np.asarray(impressions, np.float64)
  if p_fn is None:
    quota = alloc_lib.quota_closed_form(a, s, c, cf, x0)
  else:
    quota = alloc_lib.bisect_quota(p_fn, cf, len(n), x_search)
  finite = np.isfinite(quota)
  need = np.where(finite, np.maximum(np.where(finite, quota, 0.0) - n, 0.0),
                  np.maximum(float(floor) - n, 0.0))
  return {"quota": quota, "finite": finite, "need": need}


def allocate_quota(need, budget: float, cost=None, cost_budget: float | None = None,
                   partial: bool = True) -> np.ndarray:
  """Funds the needs smallest first (by their share of the tighter budget) until a budget binds."""
  need = np.asarray(need, np.float64)
  return alloc_lib.allocate(np.ones_like(need), need, budget, cost, cost_budget, partial=partial)


def quota_allocation(a, s, c, x0: float, impressions, clicks, prior, cf: float, budget: float,
                     cost_budget: float | None = None, floor: float = 0.0,
                     exploit_rate: float | None = None):
  """One period of the quota plan: (impressions per item, quota_needs dict)."""
  q = quota_needs(a, s, c, x0, impressions, cf, floor)
  cost = cost_lib.cost_of(q["need"], impressions, clicks, prior, exploit_rate)
  return allocate_quota(q["need"], budget, cost, cost_budget), q
