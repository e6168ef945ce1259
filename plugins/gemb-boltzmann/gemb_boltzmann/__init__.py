"""Softmax (Boltzmann) exploration for gemb, added through the `gemb.policies` entry point `boltzmann`.

Each period the exploration budget is cut into chunks of ``chunk`` impressions (default: the
platform's ``n_min``, the traffic an item needs before the exploitation bar applies). The chunks
are drawn one after another from ``softmax(posterior_mean / temperature)`` *without replacement*
(an item drawn once sits out until every item has been drawn), by the Gumbel-top-k trick. A high
temperature approaches `uniform`; a low one approaches greedy on the posterior mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gemb import InputError

__all__ = ["Boltzmann", "softmax_probs"]


def softmax_probs(score_a: np.ndarray, temperature: float) -> np.ndarray:
  """softmax(score / temperature), shifted by the max so that a small temperature cannot overflow."""
  z = np.asarray(score_a, np.float64) / temperature
  z = z - z.max()
  p = np.exp(z)
  return p / p.sum()


class Boltzmann:
  """Chunks of impressions drawn from softmax(posterior mean / temperature), without replacement."""

  def __init__(self, temperature: float = 0.05, chunk: int | None = None):
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
        or not np.isfinite(temperature) or temperature <= 0):
      raise InputError(f"boltzmann: temperature must be a positive number, got {temperature!r}; "
                       "e.g. boltzmann(temperature=0.05) (larger is closer to uniform).")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
      raise InputError(f"boltzmann: chunk must be a positive int of impressions, got {chunk!r}.")
    self.temperature, self.chunk = float(temperature), chunk

  def probabilities(self, obs: Any) -> np.ndarray:
    """[a] probability that the first chunk of a period goes to each item in exploration."""
    return softmax_probs(obs.posterior_mean(), self.temperature)

  def allocate(self, obs: Any, rng: np.random.Generator) -> np.ndarray:
    n = len(obs)
    if n == 0:
      return np.zeros(0)
    chunk = self.chunk or obs.config.n_min
    picks = int(obs.budget // chunk)
    if picks == 0:  # a budget below one chunk: spread it in proportion instead
      return obs.budget * self.probabilities(obs)
    # Without replacement: with replacement, a chunk drawn twice for one item leaves another item
    # with nothing, and a single chunk (n_min impressions) is what lets an item reach the bar.
    # Whole rounds first (every item once), then the rest by Gumbel-top-k, which draws distinct
    # items with the same sequential softmax probabilities.
    x = np.full(n, float(picks // n))
    rest = picks % n
    if rest:
      score = np.asarray(obs.posterior_mean(), np.float64) / self.temperature
      score = score + rng.gumbel(size=n)
      x[np.argpartition(-score, rest - 1)[:rest]] += 1.0
    return chunk * x
