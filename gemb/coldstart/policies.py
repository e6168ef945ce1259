"""Exploration policies, registered in `gemb.policies`.

A policy is any object with ``allocate(obs, rng) -> np.ndarray``: impressions for each item in
``obs`` (an `Observation`), non-negative, summing to at most ``obs.budget``. Optional:
``needs_truth = True`` (the simulator then fills ``obs.truth``; only for upper bounds) and
``prepare(ctx)`` (called once before a run with a `PolicyContext`, e.g. to fetch the trained
discoverability model), and ``get_state() -> JSON`` / ``set_state(obj)`` for a policy that keeps
state between periods (saved in the run's checkpoint; the built-ins keep none beyond the RNG).
Register a factory, a class or a function returning a policy::

    @gemb.policies.register("my_policy")
    class MyPolicy:
      def __init__(self, share: float = 0.5): ...
      def allocate(self, obs, rng): ...

``gemb.policies.build("my_policy(share=0.3)")`` then makes one. Every allocation goes through
`check_allocation`, which rejects negative, non-finite, mis-shaped or over-budget ones and names
the policy.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gemb import registry
from gemb.coldstart import allocation as alloc_lib
from gemb.coldstart.simulator import Observation
from gemb.errors import InputError


class AllocationError(InputError):
  """A policy returned an allocation the platform cannot serve."""


class Policy(Protocol):
  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray: ...


@dataclasses.dataclass
class PolicyContext:
  """What a policy may ask for before a run; `model()` trains the discoverability model lazily."""

  model: Callable[[], Any]
  config: Any = None


def check_allocation(name: str, alloc: Any, obs: Observation) -> np.ndarray:
  """Returns the allocation as float64 [a] or raises AllocationError naming policy `name`."""
  try:
    x = np.asarray(alloc, np.float64)
  except (TypeError, ValueError):
    raise AllocationError(f"policy {name!r} returned {type(alloc).__name__}, not an array of "
                          "impressions.") from None
  if x.shape != (len(obs),):
    raise AllocationError(f"policy {name!r} returned an allocation of shape {x.shape}; expected "
                          f"({len(obs)},), one entry per item in exploration.")
  if not np.all(np.isfinite(x)):
    raise AllocationError(f"policy {name!r} returned non-finite impressions (NaN or inf).")
  if np.any(x < 0):
    i = int(np.argmin(x))
    raise AllocationError(f"policy {name!r} allocated a negative amount ({x[i]:g} impressions) "
                          f"to item {int(obs.item[i])}; allocations must be >= 0.")
  total = float(x.sum())
  if total > obs.budget * (1 + 1e-9) + 1e-6:
    raise AllocationError(f"policy {name!r} allocated {total:g} impressions, over the budget of "
                          f"{obs.budget} for period {obs.period}.")
  return x


ENGAGEMENT_FEATURES = ("log1p_impressions", "posterior_mean", "click_rate", "age_share",
                       "admitted", "log1p_recs")
N_ENGAGEMENT = len(ENGAGEMENT_FEATURES)  # columns of engagement_features


def engagement_features(obs: Observation) -> np.ndarray:
  """[a, N_ENGAGEMENT] engagement so far: what the model conditions on besides the static
  features, in the order of ENGAGEMENT_FEATURES."""
  n = obs.impressions.astype(np.float32)
  cols = {"log1p_impressions": np.log1p(n), "posterior_mean": obs.posterior_mean(),
          "click_rate": obs.clicks / np.maximum(n, 1.0), "age_share": obs.age / obs.config.age_cap,
          "admitted": obs.admitted.astype(np.float32),
          "log1p_recs": np.log1p(obs.recs.astype(np.float32))}
  return np.stack([cols[k] for k in ENGAGEMENT_FEATURES], 1).astype(np.float32)


def model_features(obs: Observation) -> np.ndarray:
  return np.concatenate([obs.features_af, engagement_features(obs)], 1)


def _even(budget: float, n: int) -> np.ndarray:
  return np.full(n, float(budget) / n) if n else np.zeros(0)


def _top_chunks(score: np.ndarray, budget: float, chunk: int) -> np.ndarray:
  """`chunk` impressions to each of the best-scored items while the budget lasts."""
  n = len(score)
  x = np.zeros(n)
  if n == 0:
    return x
  picks = int(budget // chunk)
  if picks >= n:
    return _even(budget, n)
  order = np.argsort(-score, kind="stable")[:picks]
  x[order] = chunk
  return x


@registry.policies.register("uniform")
class Uniform:
  """The budget split evenly over the items in exploration."""

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    return _even(obs.budget, len(obs))


@registry.policies.register("epsilon_greedy")
class EpsilonGreedy:
  """A share epsilon spread evenly; the rest in chunks to the best posterior-mean items."""

  def __init__(self, epsilon: float = 0.1, chunk: int | None = None):
    if not 0.0 <= epsilon <= 1.0:
      raise InputError(f"epsilon_greedy: epsilon must be in [0, 1], got {epsilon}.")
    self.epsilon, self.chunk = epsilon, chunk

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    chunk = self.chunk or obs.config.n_min
    explore = _even(self.epsilon * obs.budget, len(obs))
    score = obs.posterior_mean() + 1e-9 * rng.random(len(obs))  # random tie-breaks
    return explore + _top_chunks(score, (1 - self.epsilon) * obs.budget, chunk)


@registry.policies.register("ucb")
class UCB:
  """Chunks to the items with the highest upper confidence bound on their engagement rate."""

  def __init__(self, c: float = 1.0, chunk: int | None = None):
    self.c, self.chunk = c, chunk

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    chunk = self.chunk or obs.config.n_min
    t = obs.impressions.sum() + len(obs) + 1.0
    bonus = self.c * np.sqrt(np.log(t) / (obs.impressions + 1.0))
    score = obs.posterior_mean() + bonus + 1e-9 * rng.random(len(obs))
    return _top_chunks(score, obs.budget, chunk)


@registry.policies.register("thompson")
class Thompson:
  """Beta-Bernoulli Thompson sampling: chunks to the items with the highest sampled rate."""

  def __init__(self, chunk: int | None = None):
    self.chunk = chunk

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    chunk = self.chunk or obs.config.n_min
    a, b = obs.prior
    sample = rng.beta(a + obs.clicks, b + obs.impressions - obs.clicks)
    return _top_chunks(sample, obs.budget, chunk)


@registry.policies.register("discoverability")
class Discoverability:
  """The paper's policy: model-based quotas (P(G=1|X) = CF), funded greedily under the budget.

  Each item's quota is the traffic X at which the model's P(G=1|X) reaches `cf` (capped at
  `x_max`); the item leaves exploration once its quota is spent. Within the quota, the item asks
  for the next step of traffic with the best marginal gain per impression (the tangent point of its
  S-shaped curve), and the allocator funds the best ratios first, re-planned every period.
  With `pace`, that tangent point is searched over the whole remaining quota and `step_cap` only
  limits how much of it is spent per period: an item whose chance rises only after a few hundred
  impressions is valued by that whole step, not by its first `step_cap` impressions.
  """

  def __init__(self, cf: float = 0.6, x_max: float = 1000.0, cost_budget: float | None = None,
               grid: int = 16, step_cap: float | None = 40.0, pace: bool = False):
    self.cf = alloc_lib.check_cf(cf)
    self.x_max, self.cost_budget, self.grid = float(x_max), cost_budget, int(grid)
    self.step_cap = step_cap  # most impressions an item may ask for in one period
    self.pace = pace
    self.model = None

  def prepare(self, ctx: PolicyContext) -> None:
    self.model = ctx.model()

  def plan(self, obs: Observation) -> dict[str, np.ndarray]:
    """Quota, the traffic asked for now, its gain and its cost per item (for reports and tests)."""
    from gemb.coldstart import model as model_lib
    if self.model is None:
      raise InputError("policy 'discoverability' has no model: call prepare(ctx) first or set "
                       ".model to a trained DiscoverabilityModel.")
    a, s, c = model_lib.curve(self.model, model_features(obs))
    return plan_from_curve(a, s, c, self.model.x0, obs.impressions, self.cf, self.x_max,
                           self.grid, obs.posterior_mean(), obs.prior, self.step_cap, self.pace)

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    if len(obs) == 0:
      return np.zeros(0)
    p = self.plan(obs)
    if len(obs) <= alloc_lib.EXACT_MAX_ITEMS:
      return alloc_lib.allocate_exact(p["gain"], p["ask"], obs.budget, p["cost"],
                                      self.cost_budget)
    return alloc_lib.allocate(p["gain"], p["ask"], obs.budget, p["cost"], self.cost_budget)


def plan_from_curve(a, s, c, x0: float, impressions: np.ndarray, cf: float, x_max: float,
                    grid: int, posterior_mean: np.ndarray, prior: tuple[float, float],
                    step_cap: float | None = None, pace: bool = False):
  """Vectorized planning step of `Discoverability`, given each item's curve parameters."""
  n = np.asarray(impressions, np.float32)
  quota = alloc_lib.quota_closed_form(a, s, c, cf, x0)
  quota = np.minimum(quota, x_max).astype(np.float32)  # unreachable CF: use up to x_max
  cap = np.inf if step_cap is None else float(step_cap)
  ask, gain, p_now = (np.asarray(v, np.float64) for v in _tangent_step(
      *(np.asarray(v, np.float32) for v in (a, s, c)), n, quota, float(x0), float(x_max), cap,
      int(grid), bool(pace)))
  pa, pb = prior
  # Exploration cost: expected engagement lost against the prior mean, per impression.
  cost = np.maximum(pa / (pa + pb) - posterior_mean, 0.0) * ask
  return {"quota": quota, "ask": ask, "gain": gain, "cost": cost, "p_now": p_now}


@functools.partial(jax.jit, static_argnames=("grid", "pace"))
def _tangent_step(a, s, c, n, quota, x0, x_max, cap, grid, pace=False):
  # For each item, the step within its remaining quota (and the per-period cap) with the best gain
  # per impression: the tangent point of its S-shaped curve, searched on a log grid. With `pace`,
  # the tangent point is searched over the whole remaining quota and the cap only paces how much
  # of that step is spent this period (at the step's gain per impression).
  left = jnp.maximum(quota - n, 0.0)
  room = left if pace else jnp.minimum(left, cap)
  ceil = jax.nn.sigmoid(c)

  def prob(x_n):
    return ceil[:, None] * jax.nn.sigmoid(a[:, None] + s[:, None] * jnp.log1p(x_n / x0))

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


@registry.policies.register("oracle")
class Oracle:
  """Knows the ground truth: which items can become discoverable and their engagement rates.

  Funds only those items, cheapest first, with enough impressions that the posterior mean clears
  the bar with margin `z` standard errors. An upper bound for the others, not a policy to deploy.
  """

  needs_truth = True

  def __init__(self, z: float = 1.0):
    self.z = z

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    if obs.truth is None:
      raise InputError("policy 'oracle' needs the ground truth (needs_truth = True) but the "
                       "observation has none.")
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
