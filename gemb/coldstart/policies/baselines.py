"""Model-free baselines: uniform, uniform at the admission floor, epsilon-greedy, UCB, Thompson."""

from __future__ import annotations

import numpy as np

from gemb import registry
from gemb.coldstart.simulator import Observation
from gemb.errors import InputError


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


def _check_chunk(name: str, chunk) -> None:
  if chunk is not None and not (int(chunk) == chunk and chunk >= 1):
    raise InputError(f"{name}: chunk must be a positive whole number of impressions, got "
                     f"{chunk!r}.")


@registry.policies.register("uniform")
class Uniform:
  """The budget split evenly over the items in exploration."""

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    return _even(obs.budget, len(obs))


@registry.policies.register("uniform_floor")
class UniformFloor:
  """Uniform that respects the admission floor: a random subset of the items still below `floor`
  impressions (default: the simulator's ``n_min``) is brought up to it, as many as the budget
  allows; what is left is spread evenly over the items at or above the floor."""

  def __init__(self, floor: int | None = None):
    if floor is not None and floor < 1:
      raise InputError(f"uniform_floor: floor must be >= 1 impression, got {floor}.")
    self.floor = floor

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    floor = self.floor or obs.config.n_min
    n = len(obs)
    x = np.zeros(n)
    need = np.maximum(floor - obs.impressions, 0).astype(np.float64)
    order = rng.permutation(n)
    order = order[need[order] > 0]
    cum = np.cumsum(need[order])
    k = int(np.searchsorted(cum, obs.budget, side="right"))
    x[order[:k]] = need[order[:k]]
    left = obs.budget - x.sum()
    above = need == 0
    if left > 0 and above.any():
      x[above] += left / above.sum()
    return x


@registry.policies.register("epsilon_greedy")
class EpsilonGreedy:
  """A share epsilon spread evenly; the rest in chunks to the best posterior-mean items."""

  def __init__(self, epsilon: float = 0.1, chunk: int | None = None):
    if not 0.0 <= epsilon <= 1.0:
      raise InputError(f"epsilon_greedy: epsilon must be in [0, 1], got {epsilon}.")
    _check_chunk("epsilon_greedy", chunk)
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
    _check_chunk("ucb", chunk)
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
    _check_chunk("thompson", chunk)
    self.chunk = chunk

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    chunk = self.chunk or obs.config.n_min
    a, b = obs.prior
    sample = rng.beta(a + obs.clicks, b + obs.impressions - obs.clicks)
    return _top_chunks(sample, obs.budget, chunk)
