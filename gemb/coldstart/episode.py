"""Running a policy through the simulator, and the exploration logs the model learns from."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from gemb.coldstart.calibrate import Calibration
from gemb.coldstart.engagement import model_features
from gemb.coldstart.policies.protocol import check_allocation
from gemb.coldstart.simulator import SimConfig, Simulator, exact_index


@dataclasses.dataclass
class Episode:
  policy: str
  seed: int
  discoverable_by_period: list[int]  # cumulative
  traffic_per_item: np.ndarray  # [n_items] exploration impressions each item received
  discoverable: np.ndarray  # [n_items] bool
  spent: int
  wall_s_per_period: float
  cost: float = 0.0  # exploration cost spent in all (`cost.cost_of`, summed over periods)
  stats: dict | None = None  # the policy's own `stats` at the end (e.g. finite quota share)

  @property
  def n_discoverable(self) -> int:
    return int(self.discoverable.sum())


def policy_rng(seed: int) -> np.random.Generator:
  """The generator a policy draws from in the episode of `seed` (saved with the run state)."""
  return np.random.default_rng([seed, 7])


def run_episode(sim: Simulator, policy: Any, name: str, seed: int,
                rng: np.random.Generator | None = None,
                after_period: Callable[[Simulator, np.random.Generator], None] | None = None
                ) -> Episode:
  """Runs `policy` until the simulation ends, from wherever `sim` (and `rng`) stand.

  `after_period(sim, rng)` is called after every period, e.g. to checkpoint; a simulator and
  generator restored from such a checkpoint continue the episode exactly.
  """
  import time
  rng = policy_rng(seed) if rng is None else rng
  needs_truth = bool(getattr(policy, "needs_truth", False))
  t0, periods0 = time.perf_counter(), sim.period
  while not sim.done:
    obs = sim.observe(with_truth=needs_truth)
    x = check_allocation(name, policy.allocate(obs, rng), obs)
    sim.step(x, obs.item)
    if after_period is not None:
      after_period(sim, rng)
  wall = (time.perf_counter() - t0) / max(sim.period - periods0, 1)
  curve = [h["discoverable"] for h in sim.history]
  spent = sum(h["spent"] for h in sim.history)
  stats = dict(policy.stats) if isinstance(getattr(policy, "stats", None), dict) else None
  return Episode(name, seed, curve, sim.impressions.copy(), sim.discoverable(), spent, wall,
                 sim.cost_spent, stats)


def collect_logs(cal: Calibration, config: SimConfig, static_tf: np.ndarray, seed: int,
                 x_max: float = 400.0, index_factory: Callable = exact_index,
                 zero_share: float = 0.1, policy: Any = None,
                 noise: float = 0.7, templates: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
  """Exploration logs: one row per item and period it spent in exploration, with the features at
  the start of that period, the total traffic X the item got in the end, whether it became
  discoverable, and its group (the MovieLens template it was drawn around).

  Without `policy`, traffic is random: each item gets a total quota X (log-uniform up to `x_max`,
  or 0) spent over its first one or two periods. With `policy`, its allocations are used, each
  multiplied by log-normal noise (sigma `noise`) so that the logs cover more than one X per state:
  logs from the states a deployed policy visits.
  """
  sim = Simulator(cal, config, static_tf, seed, index_factory, templates)
  rng = np.random.default_rng([seed, 3])
  quota = np.exp(rng.uniform(0.0, np.log(x_max), sim.n_items))
  quota[rng.random(sim.n_items) < zero_share] = 0.0
  first_share = np.where(rng.random(sim.n_items) < 0.5, 1.0, rng.uniform(0.3, 0.9, sim.n_items))
  rows_f, rows_x, rows_i = [], [], []
  while not sim.done:
    obs = sim.observe()
    rows_f.append(model_features(obs))
    rows_x.append(quota[obs.item])
    rows_i.append(obs.item)
    if policy is None:
      x = np.where(obs.age == 0, quota[obs.item] * first_share[obs.item],
                   np.where(obs.age == 1, quota[obs.item] * (1 - first_share[obs.item]), 0.0))
    else:
      x = policy.allocate(obs, rng) * rng.lognormal(0.0, noise, len(obs))
    sim.step(np.floor(x + rng.random(len(x))), obs.item)  # unbiased rounding
  items = np.concatenate(rows_i)
  # The traffic an item actually got is what the label depends on; rounding makes it differ from
  # the quota by at most one impression per period.
  return {"features": np.concatenate(rows_f), "x": sim.impressions[items].astype(np.float32),
          "y": sim.discoverable()[items].astype(np.float32), "group": sim.template[items]}
