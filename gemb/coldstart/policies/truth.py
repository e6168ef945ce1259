"""`truth_heuristic`: a reference that reads the simulator's ground truth (not deployable)."""

from __future__ import annotations

import numpy as np

from gemb import registry
from gemb.coldstart import allocation as alloc_lib
from gemb.coldstart.simulator import Observation
from gemb.errors import InputError


@registry.policies.register("truth_heuristic")
class TruthHeuristic:
  """A truth-informed heuristic (formerly "oracle"): knows each item's true engagement rate and
  whether it became discoverable in a counterfactual run where every item got `full_traffic`
  impressions; funds only those items, cheapest first, with enough impressions that the posterior
  mean clears the bar with margin `z` standard errors.

  It is NOT an upper bound: other policies can and do beat it on some seeds (the counterfactual
  changes slate crowding). The certified bound is `gemb.coldstart.bound.hindsight_bound`.
  """

  needs_truth = True

  def __init__(self, z: float = 1.0):
    self.z = z

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    if obs.truth is None:
      raise InputError("policy 'truth_heuristic' needs the ground truth (needs_truth = True) "
                       "but the observation has none.")
    cfg = obs.config
    q = obs.truth["q"].astype(np.float64)
    a, b = obs.prior
    n, c = obs.impressions.astype(np.float64), obs.clicks.astype(np.float64)
    viable = obs.truth["potential"] & (obs.age < cfg.window) & (q > cfg.bar)

    def margin(x):  # expected posterior mean minus z standard errors, minus the bar, + 0.5
      tot = a + b + n + x
      return (a + c + q * x) / tot - self.z * np.sqrt(q * (1 - q) / tot) - cfg.bar + 0.5

    x_need = alloc_lib.bisect_quota(margin, 0.5, len(q), float(cfg.full_traffic), iters=30)
    need = np.ceil(np.maximum(x_need, cfg.n_min - n))
    first = viable & ~obs.admitted & np.isfinite(x_need) & (need > 0)
    x = alloc_lib.allocate(first.astype(np.float64), np.where(first, need, np.inf), obs.budget)
    # Left-over budget sharpens the posterior of viable items (exploitation ranks by it).
    left = obs.budget - x.sum()
    if left >= 1 and viable.any():
      x = x + np.where(viable, left / viable.sum(), 0.0)
    return x
