import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gemb.coldstart import allocation as A
from gemb.errors import InputError

X0 = 10.0


@settings(max_examples=60, deadline=None)
@given(a=st.floats(-6, 3), s=st.floats(0.05, 5), c=st.floats(-2, 6), cf=st.floats(0.05, 0.95))
def test_closed_form_quota_solves_p_equals_cf(a, s, c, cf):
  x = A.quota_closed_form(np.array([a]), np.array([s]), np.array([c]), cf, X0)[0]
  p0 = A.curve_prob(a, s, c, 0.0, X0)
  ceil = 1 / (1 + np.exp(-c))
  if ceil <= cf:
    assert np.isinf(x)
  elif p0 >= cf:
    assert x == 0.0
  elif np.isfinite(x) and x < 1e12:
    assert A.curve_prob(a, s, c, x, X0) == pytest.approx(cf, abs=1e-6)
    bis = A.bisect_quota(lambda xs: A.curve_prob(a, s, c, xs, X0), cf, 1, 2 * x + 1.0)[0]
    assert bis == pytest.approx(x, rel=1e-4, abs=1e-4)


def test_bisection_reports_unreachable_and_already_met():
  f = lambda xs: np.minimum(xs / 100.0, 0.5) + np.array([0.0, 0.0, 0.7])
  q = A.bisect_quota(f, 0.6, 3, 1000.0)
  assert np.isinf(q[0]) and np.isinf(q[1])  # the curve tops out at 0.5 < 0.6
  assert q[2] == 0.0


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0, 1), min_size=n, max_size=n),
    st.lists(st.one_of(st.floats(0, 500), st.just(np.inf)), min_size=n, max_size=n),
    st.lists(st.floats(0, 5), min_size=n, max_size=n),
    st.floats(0.5, 3000), st.one_of(st.none(), st.floats(0.5, 50)))))
def test_greedy_never_exceeds_budgets(args):
  gain, need, cost, budget, cost_budget = args
  gain, need, cost = map(np.array, (gain, need, cost))
  x = A.allocate(gain, need, budget, cost, cost_budget)
  assert np.all(x >= 0) and np.all(np.isfinite(x))
  assert x.sum() <= budget + 1e-6
  assert np.all(x <= np.where(np.isfinite(need), need, 0) + 1e-9)
  if cost_budget is not None:
    frac = np.where(need > 0, x / np.where(np.isfinite(need) & (need > 0), need, 1), 0)
    assert (frac * cost).sum() <= cost_budget + 1e-6


def _brute_force(gain, need, budget, cost=None, cost_budget=None):
  best = 0.0
  n = len(gain)
  for m in range(2 ** n):
    take = np.array([(m >> i) & 1 for i in range(n)], bool)
    if need[take].sum() <= budget and (cost is None or cost[take].sum() <= cost_budget):
      best = max(best, gain[take].sum())
  return best


@pytest.mark.parametrize("seed", range(25))
def test_exact_matches_brute_force_and_greedy_is_near_it(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(3, 11))
  gain, need = rng.uniform(0.05, 1, n), rng.integers(1, 60, n).astype(float)
  cost = rng.uniform(0, 3, n)
  budget, cost_budget = float(rng.uniform(20, 200)), float(rng.uniform(1, 10))
  opt = _brute_force(gain, need, budget)
  x = A.allocate_exact(gain, need, budget)
  assert gain[x > 0].sum() == pytest.approx(opt)
  assert x.sum() <= budget
  # Greedy (whole items) is within one item's gain of the optimum; with the fractional break item
  # (the LP relaxation) it is at least the optimum.
  xg = A.allocate(gain, need, budget, partial=False)
  assert gain[xg > 0].sum() >= opt - gain.max() - 1e-9
  xf = A.allocate(gain, need, budget)
  assert (gain * xf / need).sum() >= opt - 1e-9
  opt2 = _brute_force(gain, need, budget, cost, cost_budget)
  x2 = A.allocate_exact(gain, need, budget, cost, cost_budget)
  assert gain[x2 > 0].sum() == pytest.approx(opt2)
  assert cost[x2 > 0].sum() <= cost_budget + 1e-9


@pytest.mark.parametrize("budget", [0, -5, float("nan"), float("inf")])
def test_bad_budget_is_rejected(budget):
  with pytest.raises(InputError, match="budget must be a positive number"):
    A.allocate(np.ones(3), np.ones(3), budget)


@pytest.mark.parametrize("cf", [0.0, 1.0, -0.1, 1.5, "0.5"])
def test_cf_outside_unit_interval_is_rejected(cf):
  with pytest.raises(InputError, match="strictly between 0 and 1"):
    A.quota_closed_form(np.zeros(1), np.ones(1), np.ones(1), cf, X0)


def test_exact_refuses_large_instances():
  with pytest.raises(InputError, match="at most 16"):
    A.allocate_exact(np.ones(17), np.ones(17), 5.0)


def test_near_zero_costs_rank_first_without_overflow_warnings():
  import warnings
  gain = np.array([0.5, 0.4, 0.3])
  need = np.array([50.0, 5e-324, 20.0])
  cost = np.array([1.0, 1e-310, 2.0])
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
    x = A.allocate(gain, need, 40.0, cost, 1e-300)
    assert A._div(np.array([1.0, -1.0, 2.0]), np.array([1e-310, 1e-310, 4.0])).tolist() == [
        np.inf, -np.inf, 0.5]
  # The item needing (almost) nothing is funded in full first; the cost budget of 1e-300 then
  # binds, so the next-best item gets only the share of its need that the cost left over pays for.
  assert x[1] == 5e-324
  assert x[0] == pytest.approx(50.0 * (1e-300 - 1e-310) / 1.0, rel=1e-9) and x[2] == 0.0
