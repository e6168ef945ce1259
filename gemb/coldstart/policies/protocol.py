"""The policy contract and the check every allocation goes through.

A policy is any object with ``allocate(obs, rng) -> np.ndarray``: impressions for each item in
``obs`` (an `Observation`), non-negative, summing to at most ``obs.budget``. Optional:
``needs_truth = True`` (the simulator then fills ``obs.truth``; only for truth-informed
references) and ``prepare(ctx)`` (called once before a run with a `PolicyContext`, e.g. to fetch
the trained discoverability model), and ``get_state() -> JSON`` / ``set_state(obj)`` for a policy
that keeps state between periods (saved in the run's checkpoint; the built-ins keep none beyond
the RNG).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

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
