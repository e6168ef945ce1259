import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gemb
from gemb.coldstart import policies as P
from gemb.coldstart.simulator import Observation, SimConfig
from gemb.errors import InputError

BUILTIN = ("uniform", "epsilon_greedy", "ucb", "thompson", "discoverability", "oracle")


class _FixedModel:
  """Curve parameters from the first feature: a stand-in for a trained model."""
  x0 = 10.0


def _obs(n, budget, seed=0):
  rng = np.random.default_rng(seed)
  imp = rng.integers(0, 80, n)
  return Observation(
      period=1, budget=budget, item=np.arange(n), features_af=rng.normal(size=(n, 4)).astype(
          np.float32), impressions=imp, clicks=rng.binomial(imp, 0.4), age=rng.integers(0, 3, n),
      recs=np.zeros(n, np.int64), admitted=rng.random(n) < 0.2, prior=(8.0, 12.0),
      config=SimConfig(), truth={"q": rng.uniform(0.1, 0.8, n).astype(np.float32),
                                 "reach": rng.uniform(0, 0.1, n).astype(np.float32),
                                 "potential": rng.random(n) < 0.3})


@pytest.fixture(scope="module")
def tiny_model():
  from gemb.coldstart import model as M
  rng = np.random.default_rng(0)
  f = rng.normal(size=(400, 4 + P.N_ENGAGEMENT)).astype(np.float32)
  x = np.exp(rng.uniform(0, 6, 400)).astype(np.float32)
  y = (rng.random(400) < 1 / (1 + np.exp(-(np.log1p(x / 10) - 2 + f[:, 0])))).astype(np.float32)
  return M.train(f, x, y, hidden=8, steps=50).model


def test_builtins_are_registered():
  assert set(BUILTIN) <= set(gemb.policies.names())


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 60), budget=st.integers(1, 5000), seed=st.integers(0, 10))
def test_every_builtin_stays_within_budget(tiny_model, n, budget, seed):
  obs = _obs(n, budget, seed)
  for name in BUILTIN:
    pol = gemb.policies.build(name)
    if name == "discoverability":
      pol.prepare(P.PolicyContext(model=lambda: tiny_model))
    x = P.check_allocation(name, pol.allocate(obs, np.random.default_rng(seed)), obs)
    assert x.shape == (n,) and np.all(x >= 0) and x.sum() <= budget + 1e-6


def test_discoverability_is_deterministic_and_spends_on_promising_items(tiny_model):
  obs = _obs(40, 600)
  pol = gemb.policies.build("discoverability(cf=0.5)")
  pol.prepare(P.PolicyContext(model=lambda: tiny_model))
  a, b = pol.allocate(obs, np.random.default_rng(0)), pol.allocate(obs, np.random.default_rng(1))
  np.testing.assert_array_equal(a, b)
  plan = pol.plan(obs)
  assert np.all(plan["ask"] <= pol.step_cap + 1e-9)
  funded = a > 0
  assert funded.any() and (plan["gain"][funded] / plan["ask"][funded]).min() >= (
      plan["gain"][~funded & (plan["ask"] > 0)] / plan["ask"][~funded & (plan["ask"] > 0)]
  ).max(initial=0) - 1e-9


def test_oracle_funds_only_viable_items_first():
  obs = _obs(50, 300)
  x = gemb.policies.build("oracle").allocate(obs, np.random.default_rng(0))
  viable = obs.truth["potential"] & (obs.truth["q"] > obs.config.bar) & (obs.age < 4)
  assert x.sum() <= 300 and np.all(x[~viable] == 0)


@pytest.mark.parametrize("alloc,match", [
    (lambda n: -np.ones(n), "'bad' allocated a negative amount"),
    (lambda n: np.full(n, 1e6), "'bad' allocated .* over the budget"),
    (lambda n: np.ones(n + 1), "'bad' returned an allocation of shape"),
    (lambda n: np.full(n, np.nan), "'bad' returned non-finite"),
])
def test_bad_allocations_are_rejected_naming_the_policy(alloc, match):
  obs = _obs(5, 100)
  with pytest.raises(P.AllocationError, match=match):
    P.check_allocation("bad", alloc(5), obs)


def test_third_party_policy_plugs_in_and_is_checked(cal, static, small):
  from gemb.coldstart.episode import run_episode
  from gemb.coldstart.simulator import Simulator

  class Greedy:
    def __init__(self, share=1.0):
      self.share = share

    def allocate(self, obs, rng):
      return np.full(len(obs), self.share * obs.budget / max(len(obs), 1))

  with gemb.policies.temporary():
    gemb.policies.register("my_policy", Greedy)
    ep = run_episode(Simulator(cal, small, static, 0), gemb.policies.build("my_policy(share=0.5)"),
                     "my_policy", 0)
    assert 0 < ep.spent <= 0.5 * small.budget * small.periods
    with pytest.raises(P.AllocationError, match="'my_policy' allocated .* over the budget"):
      run_episode(Simulator(cal, small, static, 0), gemb.policies.build("my_policy(share=2.0)"),
                  "my_policy", 0)


def test_bad_policy_arguments():
  with pytest.raises(InputError, match="strictly between 0 and 1"):
    gemb.policies.build("discoverability(cf=1.5)")
  with pytest.raises(InputError, match="no model"):
    gemb.policies.build("discoverability").allocate(_obs(3, 10), np.random.default_rng(0))
  with pytest.raises(InputError, match="epsilon"):
    gemb.policies.build("epsilon_greedy(epsilon=2)")


def test_paced_step_looks_past_the_period_cap():
  # Two items: a slow riser whose best gain per impression is at ~900 impressions (past the cap of
  # 40), and a fast riser that gains a little within the cap.
  a, s, c = np.array([-9.0, -1.0]), np.array([2.0, 0.3]), np.array([4.0, -3.0])
  kw = dict(x0=10.0, impressions=np.zeros(2), cf=0.9, x_max=1000.0, grid=64,
            posterior_mean=np.full(2, 0.4), prior=(8.0, 12.0), step_cap=40.0)
  capped = P.plan_from_curve(a, s, c, pace=False, **kw)
  paced = P.plan_from_curve(a, s, c, pace=True, **kw)
  r_cap, r_pace = capped["gain"] / capped["ask"], paced["gain"] / paced["ask"]
  assert np.all(paced["ask"] <= 40.0 + 1e-9) and np.all(capped["ask"] <= 40.0 + 1e-9)
  # Capped, the slow riser looks worse than the fast one; paced, its 900-impression step is worth
  # more per impression, and the fast riser's ratio is unchanged (its tangent is inside the cap).
  assert r_cap[0] < r_cap[1] < r_pace[0]
  assert r_pace[1] == pytest.approx(r_cap[1], rel=1e-5)
  from gemb.coldstart.allocation import curve_prob
  p0 = curve_prob(a[0], s[0], c[0], 0.0, 10.0)
  best = max((curve_prob(a[0], s[0], c[0], x, 10.0) - p0) / x for x in np.geomspace(1, 1000, 64))
  assert r_pace[0] == pytest.approx(best, rel=1e-4)
