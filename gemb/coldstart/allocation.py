"""Traffic quotas and budgeted allocation.

The discoverability curve of an item is ``P(X) = sigmoid(c) * sigmoid(a + s * log1p(X / x0))``
with ``s >= 0`` (`curve.curve_prob`; see `model.py`). Its quota at confidence CF is the traffic X
with P(X) = CF, in closed form; `bisect_quota` solves the same equation for any non-decreasing
curve.

`allocate` picks which items to fund with their remaining quota to maximize the expected number of
discoverable items under a traffic budget and an exploration-cost budget: greedy by marginal gain
per unit of (normalized) resource, the break item funded in part; `allocate_exact` enumerates all
subsets and is used where tractable (few items) and to test the greedy.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

from gemb.coldstart.curve import curve_prob
from gemb.errors import InputError

EXACT_MAX_ITEMS = 16


def check_cf(cf: float) -> float:
  if not (isinstance(cf, (int, float)) and 0.0 < float(cf) < 1.0):
    raise InputError(f"the confidence level CF must be strictly between 0 and 1, got {cf!r}.")
  return float(cf)


def check_budget(budget: float, what: str = "traffic budget") -> float:
  if not (np.isfinite(budget) and budget > 0):
    raise InputError(f"the {what} must be a positive number, got {budget!r}.")
  return float(budget)


def quota_closed_form(a, s, c, cf: float, x0: float) -> np.ndarray:
  """X with P(X) = CF; 0 where P(0) >= CF already, +inf where the curve never reaches CF."""
  cf = check_cf(cf)
  a, s, c = (np.asarray(v, np.float64) for v in (a, s, c))
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    ceil = 1.0 / (1.0 + np.exp(-c))
    t = np.clip(cf / ceil, 0.0, None)
    logit_t = np.log(t) - np.log1p(-np.minimum(t, 1.0))
    log1p_x = (logit_t - a) / s
    x = x0 * np.expm1(log1p_x)
  x = np.where(t >= 1.0, np.inf, x)
  x = np.where((s <= 0) & (t < 1.0), np.where(curve_prob(a, s, c, 0.0, x0) >= cf, 0.0, np.inf), x)
  return np.maximum(np.where(np.isnan(x), np.inf, x), 0.0)


def bisect_quota(p_fn: Callable[[np.ndarray], np.ndarray], cf: float, n: int, x_max: float,
                 iters: int = 60) -> np.ndarray:
  """Smallest X in [0, x_max] with p_fn(X) >= CF per item (vectorized); +inf if p_fn(x_max) < CF.

  `p_fn` maps an [n] array of traffic to [n] probabilities and must be non-decreasing.
  """
  cf = check_cf(cf)
  lo, hi = np.zeros(n), np.full(n, float(x_max))
  reach = p_fn(hi) >= cf
  done0 = p_fn(lo) >= cf
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    ok = p_fn(mid) >= cf
    hi = np.where(ok, mid, hi)
    lo = np.where(ok, lo, mid)
  return np.where(done0, 0.0, np.where(reach, hi, np.inf))


def _div(num, den) -> np.ndarray:
  """num / den for den >= 0, elementwise; +-inf where den is 0 or the quotient overflows float64.

  A resource use near zero (a cost of 1e-310, say) is legitimate: such an item ranks first and its
  share of a budget is unbounded. Saying so here avoids numpy's overflow warning without changing
  the result.
  """
  num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
  fits = (den > 0) & (np.abs(num) <= np.minimum(den, 1.0) * np.finfo(np.float64).max)
  return np.where(fits, num / np.where(fits, den, 1.0), np.copysign(np.inf, num))


def _validate(gain, need, cost):
  gain = np.asarray(gain, np.float64)
  need = np.asarray(need, np.float64)
  cost = np.zeros_like(need) if cost is None else np.asarray(cost, np.float64)
  if not (gain.shape == need.shape == cost.shape and gain.ndim == 1):
    raise InputError(f"gain, need and cost must be 1-D arrays of one length, got {gain.shape}, "
                     f"{need.shape}, {cost.shape}.")
  if np.any(need < 0) or np.any(np.isnan(need)) or np.any(cost < 0) or np.any(np.isnan(gain)):
    raise InputError("need and cost must be non-negative and gains must not be NaN.")
  return gain, need, cost


def allocate(gain, need, budget: float, cost=None, cost_budget: float | None = None,
             partial: bool = True) -> np.ndarray:
  """Greedy: fund items by gain per normalized resource until the budgets bind.

  gain[i]: expected discoverable items gained by giving item i its remaining quota need[i]
  (impressions); cost[i]: the exploration cost of doing so. Returns impressions per item, with
  sum <= budget and sum(cost * x / need) <= cost_budget. Items with infinite need get nothing.
  """
  budget = check_budget(budget)
  gain, need, cost = _validate(gain, need, cost)
  if cost_budget is not None:
    cost_budget = check_budget(cost_budget, "exploration cost budget")
  ok = np.isfinite(need) & (need > 0) & (gain > 0)
  # One resource per constraint, normalized by its budget; rank by gain per the larger share.
  use = need / budget
  if cost_budget is not None:
    use = np.maximum(use, cost / cost_budget)
  ratio = np.where(ok, _div(gain, use), -np.inf)
  order = np.argsort(-ratio, kind="stable")
  order = order[ok[order]]
  need_o, cost_o = need[order], cost[order]
  cum_x = np.cumsum(need_o)
  fit = cum_x <= budget
  if cost_budget is not None:
    fit &= np.cumsum(cost_o) <= cost_budget
  n_full = int(np.argmin(fit)) if not fit.all() else len(fit)
  x = np.zeros_like(need)
  x[order[:n_full]] = need_o[:n_full]
  if partial and n_full < len(order):
    left = budget - (cum_x[n_full - 1] if n_full else 0.0)
    frac = float(_div(left, need_o[n_full]))
    if cost_budget is not None and cost_o[n_full] > 0:
      left_c = cost_budget - (np.cumsum(cost_o)[n_full - 1] if n_full else 0.0)
      frac = min(frac, float(_div(left_c, cost_o[n_full])))
    x[order[n_full]] = max(0.0, min(1.0, frac)) * need_o[n_full]
  return x


def allocate_exact(gain, need, budget: float, cost=None,
                   cost_budget: float | None = None) -> np.ndarray:
  """The best subset of items to fund in full (0/1 knapsack by enumeration, <= 16 items)."""
  budget = check_budget(budget)
  gain, need, cost = _validate(gain, need, cost)
  n = len(gain)
  if n > EXACT_MAX_ITEMS:
    raise InputError(f"allocate_exact enumerates subsets and takes at most {EXACT_MAX_ITEMS} "
                     f"items, got {n}; use allocate() (greedy).")
  ok = np.isfinite(need) & (gain > 0)
  masks = np.array(list(itertools.product([0, 1], repeat=n)), bool).reshape(-1, n) & ok
  with np.errstate(invalid="ignore"):
    tot_x = np.where(masks, need, 0.0).sum(1)
    feasible = tot_x <= budget + 1e-9
    if cost_budget is not None:
      feasible &= np.where(masks, cost, 0.0).sum(1) <= cost_budget + 1e-9
  value = np.where(feasible, np.where(masks, gain, 0.0).sum(1), -np.inf)
  best = masks[int(np.argmax(value))]
  return np.where(best, need, 0.0)
