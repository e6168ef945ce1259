"""The certified bound (gemb.coldstart.bound) against the policies it bounds and an enumeration."""

import itertools

import numpy as np
import pytest

import gemb
from gemb.coldstart import bound as B
from gemb.coldstart.episode import run_episode
from gemb.coldstart.simulator import SimConfig, Simulator

POLICIES = ("uniform", "uniform_floor", "epsilon_greedy", "ucb", "thompson", "truth_heuristic")


class _Random:
  """Random allocations of random sizes: visits states no built-in policy would."""

  def allocate(self, obs, rng):
    w = rng.random(len(obs)) * (rng.random(len(obs)) < 0.5)
    return obs.budget * w / max(w.sum(), 1e-9) * rng.uniform(0.3, 1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_policy_stays_under_the_bound_and_its_item_thresholds(cal, static, small, seed):
  bnd = B.hindsight_bound(Simulator(cal, small, static, seed))
  assert 0 < bnd.value <= bnd.fundable
  for name in POLICIES + ("random",):
    sim = Simulator(cal, small, static, seed)
    pol = _Random() if name == "random" else gemb.policies.build(name)
    ep = run_episode(sim, pol, name, seed)
    # Pathwise: every discovered item got at least its threshold X*_i (steps 1-4 of the proof).
    found = sim.discoverable()
    assert np.all(sim.impressions[found] >= bnd.x_star[found]), name
    assert ep.n_discoverable <= bnd.value, name


def test_bound_on_sixteen_items_is_above_the_enumerated_optimum_and_every_policy(cal, static):
  cfg = SimConfig(periods=4, n_new=4, n_users=200, budget=60, n_min=10, m_recs=3, candidates=20,
                  slate=5, probe_users=64, full_traffic=200)
  for seed in range(3):
    sim = Simulator(cal, cfg, static, seed)
    bnd = B.hindsight_bound(sim)
    best = _enumerated_optimum(bnd.x_star, sim.entry, cfg.budget, cfg.periods, cfg.age_cap)
    assert bnd.value >= best
    for name in POLICIES:
      ep = run_episode(Simulator(cal, cfg, static, seed), gemb.policies.build(name), name, seed)
      assert ep.n_discoverable <= best <= bnd.value, (seed, name)


def _enumerated_optimum(x_star, entry, budget, periods, age_cap):
  """Largest subset of items whose thresholds can be paid from their windows' budgets: a subset
  is feasible iff for every run of periods [s, e] the items whose windows lie inside it need at
  most (e - s + 1) * budget (Hall's condition for interval windows)."""
  n = len(x_star)
  lo = entry
  hi = np.minimum(entry + age_cap - 1, periods - 1)
  best = 0
  for mask in itertools.product([0, 1], repeat=n):
    m = np.array(mask, bool)
    if m.sum() <= best or not np.all(np.isfinite(x_star[m])):
      continue
    ok = all(x_star[m & (lo >= s) & (hi <= e)].sum() <= (e - s + 1) * budget + 1e-9
             for s in range(periods) for e in range(s, periods))
    if ok:
      best = int(m.sum())
  return best


def test_budget_lp_against_hand_cases():
  inf = np.inf
  # One period of 100: items needing 30, 30, 50 -> 2 in full plus 40/50 of the third.
  assert B.budget_lp(np.array([30., 30., 50.]), np.zeros(3, int), 100, 1, 1) == pytest.approx(2.8)
  # Windows: the item entering in period 1 cannot use period 0's budget.
  assert B.budget_lp(np.array([100., 100.]), np.array([0, 1]), 100, 2, 1) == pytest.approx(2.0)
  # An item needing more than its window's budgets is never funded, not even in part.
  assert B.budget_lp(np.array([150., 10.]), np.array([1, 1]), 100, 2, 1) == pytest.approx(1.0)
  # Two-period window shared with a later item: z1 = 1, z0 = 100/150.
  assert B.budget_lp(np.array([150., 100.]), np.array([0, 1]), 100, 2, 2) == pytest.approx(5 / 3)
  assert B.budget_lp(np.array([inf, 10.]), np.array([0, 0]), 100, 1, 1) == pytest.approx(1.0)


def test_click_streams_do_not_depend_on_how_traffic_is_split(cal, static, small):
  one, two = Simulator(cal, small, static, 5), Simulator(cal, small, static, 5)
  idx = one.active()
  one.step(np.full(len(idx), 30.0), idx)
  two.step(np.full(len(idx), 10.0), idx)
  two.step(np.full(len(idx), 20.0), idx)
  np.testing.assert_array_equal(one.clicks[idx], two.clicks[idx])
  # ... and they follow the true rates (binomial mean within 5 standard errors).
  sim = Simulator(cal, small, static, 6)
  idx = sim.active()
  sim.step(np.full(len(idx), 200.0), idx)
  q = sim.q[idx].astype(np.float64)
  z = (sim.clicks[idx].sum() - 200 * q.sum()) / np.sqrt(200 * (q * (1 - q)).sum())
  assert abs(z) < 5
