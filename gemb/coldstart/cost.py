"""The exploration cost C(X): engagement lost by showing a fresh item instead of exploiting.

An exploration impression replaces one the exploitation recommender would have served. Its cost
rate is the engagement that impression would have brought (`exploit_rate`: the simulator's own mean
engagement of the established catalogue, the platform's prior mean by default) minus what the fresh
item is expected to bring (its posterior mean), floored at 0. The cost of X more impressions is
non-linear: ``C(X) = X * rate * w(X)`` with ``w(X) = clip((1 + X / (n + prior strength)) / 2,
1/2, 1)``: the first impressions, backed by the item's evidence so far, cost half the gap, and
pushing an item far beyond its evidence costs up to the full gap. C is convex and non-decreasing
in X. Policies that take a cost budget ``C_max`` (summed over the items each period) use `cost_of`.
"""

from __future__ import annotations

import numpy as np


def cost_rate(posterior_mean, prior: tuple[float, float],
              exploit_rate: float | None = None) -> np.ndarray:
  """Expected engagement lost per exploration impression: the exploitation rate (default: the
  prior mean) minus the item's posterior mean, floored at 0."""
  pa, pb = prior
  ref = pa / (pa + pb) if exploit_rate is None else float(exploit_rate)
  return np.maximum(ref - np.asarray(posterior_mean, np.float64), 0.0)


def cost_of(x, impressions, clicks, prior: tuple[float, float],
            exploit_rate: float | None = None) -> np.ndarray:
  """C(X) for X more impressions on items with the given counts (see the module docstring)."""
  pa, pb = prior
  n = np.asarray(impressions, np.float64)
  post = (pa + np.asarray(clicks, np.float64)) / (pa + pb + n)
  rate = cost_rate(post, prior, exploit_rate)
  x = np.asarray(x, np.float64)
  weight = np.clip(0.5 * (1.0 + x / (n + pa + pb)), 0.5, 1.0)
  return x * rate * weight
