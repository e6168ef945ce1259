import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gemb
from gemb.coldstart import policies as P
from gemb.coldstart.simulator import Observation, SimConfig
from gemb.errors import InputError

BUILTIN = ("uniform", "uniform_floor", "epsilon_greedy", "ucb", "thompson", "discoverability",
           "truth_heuristic")


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


@settings(max_examples=10, deadline=None)
@given(n=st.integers(0, 60), budget=st.integers(1, 5000), seed=st.integers(0, 10),
       cost_budget=st.floats(0.5, 50.0))
def test_one_pass_plans_stay_within_both_budgets(tiny_model, n, budget, seed, cost_budget):
  from gemb.coldstart import cost as C
  obs = _obs(n, budget, seed)
  for plan in ("greedy", "quota"):
    pol = gemb.policies.build(f"discoverability(plan={plan!r}, cost_budget={cost_budget})")
    pol.prepare(P.PolicyContext(model=lambda: tiny_model))
    x = P.check_allocation(plan, pol.allocate(obs, np.random.default_rng(seed)), obs)
    assert x.sum() <= budget + 1e-6
    assert C.cost_of(x, obs.impressions, obs.clicks, obs.prior).sum() <= cost_budget + 1e-6


def test_policies_that_draw_use_their_rng_and_only_it():
  obs = _obs(40, 100)
  obs.impressions[:], obs.clicks[:] = 0, 0  # uniform_floor: 5 of the 40 items reach the floor
  for name in ("thompson", "uniform_floor"):
    pol = gemb.policies.build(name)
    a, b = pol.allocate(obs, np.random.default_rng(0)), pol.allocate(obs, np.random.default_rng(0))
    c = pol.allocate(obs, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), name


def test_uniform_floor_brings_a_random_subset_to_the_floor():
  obs = _obs(60, 500)
  obs.impressions[:], obs.clicks[:] = 0, 0
  x = gemb.policies.build("uniform_floor").allocate(obs, np.random.default_rng(0))
  # 500 // 20 items get exactly the floor of 20, the rest nothing (no item is at the floor yet).
  assert sorted(np.unique(x)) == [0.0, 20.0] and (x == 20).sum() == 25


def test_greedy_discoverability_spends_on_the_best_gain_per_impression(tiny_model):
  obs = _obs(40, 600)
  pol = gemb.policies.build("discoverability(cf=0.5, plan='greedy')")
  pol.prepare(P.PolicyContext(model=lambda: tiny_model))
  a = pol.allocate(obs, np.random.default_rng(0))
  plan = pol.greedy_plan(obs)
  assert np.all(plan["ask"] <= pol.step_cap + 1e-9)
  funded = a > 0
  assert funded.any() and (plan["gain"][funded] / plan["ask"][funded]).min() >= (
      plan["gain"][~funded & (plan["ask"] > 0)] / plan["ask"][~funded & (plan["ask"] > 0)]
  ).max(initial=0) - 1e-9


def test_truth_heuristic_funds_only_viable_items_first():
  obs = _obs(50, 300)
  x = gemb.policies.build("truth_heuristic").allocate(obs, np.random.default_rng(0))
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


@pytest.mark.parametrize("spec,match", [
    ("discoverability(cf=1.5)", "strictly between 0 and 1"),
    ("epsilon_greedy(epsilon=2)", "epsilon"),
    ("discoverability(plan='best')", "plan must be one of"),
    ("discoverability(screens=(0, 10))", "screens must be positive"),
])
def test_bad_policy_arguments(spec, match):
  with pytest.raises(InputError, match=match):
    gemb.policies.build(spec)


def test_discoverability_without_a_model():
  with pytest.raises(InputError, match="no model"):
    gemb.policies.build("discoverability").allocate(_obs(3, 10), np.random.default_rng(0))


def test_paced_step_looks_past_the_period_cap():
  # Two items: a slow riser whose best gain per impression is at ~900 impressions (past the cap of
  # 40), and a fast riser that gains a little within the cap.
  a, s, c = np.array([-9.0, -1.0]), np.array([2.0, 0.3]), np.array([4.0, -3.0])
  kw = dict(x0=10.0, impressions=np.zeros(2), cf=0.9, x_max=1000.0, grid=64,
            clicks=np.zeros(2), prior=(8.0, 12.0), step_cap=40.0)
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


# -- lookahead planner ----------------------------------------------------------------------------

def _clicky_curve(feat_bf):
  """A stand-in model: the ceiling follows the posterior mean (rate 0.5 -> ceiling ~0.5), the
  curve rises over ~100 impressions; static features are ignored."""
  post = feat_bf[:, -P.N_ENGAGEMENT + P.ENGAGEMENT_FEATURES.index("posterior_mean")]
  n = len(feat_bf)
  return np.full(n, -4.0), np.full(n, 2.0), 12.0 * (post - 0.5)


def _fresh_obs(n, budget, age=0, clicks=0, impressions=0):
  return Observation(
      period=0, budget=budget, item=np.arange(n), features_af=np.zeros((n, 2), np.float32),
      impressions=np.full(n, impressions), clicks=np.full(n, clicks), age=np.full(n, age),
      recs=np.zeros(n, np.int64), admitted=np.zeros(n, bool), prior=(6.0, 14.0),
      config=SimConfig())


def test_screen_value_matches_monte_carlo():
  # The screen's value is E over the clicks it brings of the best follow-up; check it against
  # sampling the rate from the posterior, then the clicks, then scoring the follow-up directly.
  from gemb.coldstart.allocation import curve_prob
  obs = _fresh_obs(1, 1000, clicks=3, impressions=10)
  opts = P.lookahead_options(_clicky_curve, 10.0, obs, 0.99, 400.0, 24, (10,))
  price = 1e-3
  a, s, c = _clicky_curve(np.concatenate([obs.features_af, P.engagement_features(obs)], 1))
  p_now = curve_prob(a, s, c, 10.0, 10.0)[0]
  rng = np.random.default_rng(0)
  q = rng.beta(6.0 + 3, 14.0 + 7, 200_000)
  k = rng.binomial(10, q)
  vals = {}
  for kk in range(11):  # the best follow-up after kk clicks, scored on the stand-in directly
    post = (6.0 + 3 + kk) / (20.0 + 20)
    c1 = 12.0 * (post - 0.5)
    xs = np.minimum(np.geomspace(1, 400, 24), 380.0)
    p1 = curve_prob(-4.0, 2.0, c1, 20.0 + xs, 10.0)
    vals[kk] = max(curve_prob(-4.0, 2.0, c1, 20.0, 10.0), (p1 - price * xs).max()) - p_now
  mc = np.mean([vals[kk] for kk in k]) - price * 10
  follow = np.maximum(opts.stop_gain[0], (opts.follow_gain[0] - price * opts.follow_x[0]).max(-1))
  exact = (opts.weight[0] * follow).sum() - price * 10
  assert exact == pytest.approx(mc, abs=2e-3)
  np.testing.assert_allclose(opts.weight[0].sum(1), 1.0)


def test_lookahead_screens_uncertain_items_and_pushes_known_good_ones():
  # Fresh items (no clicks yet) are screened before a push; an item whose clicks already show a
  # high rate is pushed now; on its last period in exploration an item cannot be screened.
  fresh = _fresh_obs(1, 2000)
  good = _fresh_obs(1, 2000, clicks=28, impressions=40)
  last = _fresh_obs(1, 2000, age=SimConfig().age_cap - 1)
  price = 1e-3
  x_fresh = P.lookahead_options(_clicky_curve, 10.0, fresh, 0.99, 400.0, 24, (10, 20))
  x_good = P.lookahead_options(_clicky_curve, 10.0, good, 0.99, 400.0, 24, (10, 20))
  x_last = P.lookahead_options(_clicky_curve, 10.0, last, 0.99, 400.0, 24, (10, 20))
  assert x_fresh.choose(np.array([price]))[0][0] in (10.0, 20.0)
  assert x_good.choose(np.array([price]))[0][0] > 20.0
  assert not x_last.can_screen.any() and x_last.choose(np.array([price]))[0][0] not in (10.0, 20.0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), budget=st.integers(1, 3000), cost_share=st.floats(0.05, 2.0),
       seed=st.integers(0, 5))
def test_lookahead_allocation_fills_but_never_exceeds_both_budgets(n, budget, cost_share, seed):
  rng = np.random.default_rng(seed)
  imp = rng.integers(0, 60, n)
  obs = Observation(
      period=0, budget=budget, item=np.arange(n), features_af=np.zeros((n, 2), np.float32),
      impressions=imp, clicks=rng.binomial(imp, rng.uniform(0.1, 0.8, n)),
      age=rng.integers(0, 3, n), recs=np.zeros(n, np.int64), admitted=np.zeros(n, bool),
      prior=(6.0, 14.0), config=SimConfig())
  opts = P.lookahead_options(_clicky_curve, 10.0, obs, 0.99, 400.0, 16, (10, 20))
  x = P.allocate_lookahead(opts, budget)
  assert np.all(x >= 0) and x.sum() <= budget * (1 + 1e-9)
  wanted = opts.choose(np.zeros(n))[0].sum()
  # Either everything worth anything is funded, or the budget is (nearly) used up: the last
  # option between the two bracketing prices is funded in part.
  assert x.sum() >= min(wanted, budget) * 0.99 - 1e-6
  cost_budget = cost_share * max((opts.cost_rate * x).sum(), 1e-3)
  xc = P.allocate_lookahead(opts, budget, cost_budget)
  assert (opts.cost_rate * xc).sum() <= cost_budget * (1 + 1e-9) and xc.sum() <= budget + 1e-6


def test_beta_binomial_weights_match_the_closed_form():
  import math
  from gemb.coldstart.policies.lookahead import _beta_binomial
  a, b = np.array([6.0, 9.3, 30.0]), np.array([14.0, 21.0, 2.5])
  betaln = lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)
  for n in (1, 10, 40):
    ref = np.array([[math.comb(n, k) * math.exp(betaln(k + ai, n - k + bi) - betaln(ai, bi))
                     for k in range(n + 1)] for ai, bi in zip(a, b)])
    np.testing.assert_allclose(_beta_binomial(n, a, b), ref, atol=1e-12)
