"""The paper's quota plan (plan="quota") against exhaustive enumeration and the curve's quota."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gemb.coldstart import allocation as A
from gemb.coldstart.curve import curve_prob
from gemb.coldstart.policies import quota as Q


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, A.EXACT_MAX_ITEMS), seed=st.integers(0, 10_000),
       budget=st.floats(10.0, 3000.0))
def test_quota_plan_funds_as_many_items_as_exhaustive_enumeration(n, seed, budget):
  rng = np.random.default_rng(seed)
  a, s, c = rng.normal(-2, 1.5, n), rng.uniform(0.0, 2.0, n), rng.normal(2, 2, n)
  imp = rng.integers(0, 50, n).astype(np.float64)
  q = Q.quota_needs(a, s, c, 10.0, imp, cf=0.6)
  x = Q.allocate_quota(q["need"], budget, partial=False)
  full = (x > 0) & (x >= q["need"] - 1e-9)
  exact = A.allocate_exact(np.ones(n), q["need"], budget)
  funded = np.isfinite(q["need"]) & (q["need"] > 0)
  # Same number of quotas met in full as the best subset (unit gains: maximize the count).
  assert full.sum() == ((exact > 0) & funded).sum()
  assert x.sum() <= budget + 1e-9
  # With the break item funded in part, the budget is used up or every need is met.
  xp = Q.allocate_quota(q["need"], budget)
  assert xp.sum() == pytest.approx(min(budget, q["need"][funded].sum()), rel=1e-9, abs=1e-9)


def test_quota_solves_p_equals_cf_and_unreachable_items_get_the_floor():
  a, s, c = np.array([-3.0, -1.0, 0.0]), np.array([1.5, 0.8, 1.0]), np.array([4.0, 4.0, -2.0])
  cf = 0.7
  q = Q.quota_needs(a, s, c, 10.0, np.array([5.0, 0.0, 0.0]), cf, floor=25.0)
  # Items 0 and 1 reach CF (ceiling ~0.98); item 2's ceiling sigmoid(-2) = 0.12 < CF.
  assert q["finite"].tolist() == [True, True, False]
  np.testing.assert_allclose(curve_prob(a[:2], s[:2], c[:2], q["quota"][:2], 10.0), cf, rtol=1e-9)
  assert q["need"][0] == pytest.approx(q["quota"][0] - 5.0)
  assert q["need"][2] == 25.0
  # Bisection over the same curve (any non-decreasing curve) agrees with the closed form.
  qb = Q.quota_needs(a, s, c, 10.0, np.array([5.0, 0.0, 0.0]), cf, floor=25.0,
                     p_fn=lambda x: curve_prob(a, s, c, x, 10.0))
  np.testing.assert_allclose(qb["quota"][:2], q["quota"][:2], rtol=1e-6)
  assert np.isinf(qb["quota"][2])


def test_quota_plan_respects_the_cost_budget():
  need = np.array([10.0, 20.0, 30.0, 40.0])
  cost = np.array([5.0, 1.0, 1.0, 1.0])
  x = Q.allocate_quota(need, 1000.0, cost, cost_budget=3.0)
  assert (cost * x / need).sum() <= 3.0 + 1e-9
  assert x[0] == 0.0 and np.all(x[1:] == need[1:])  # the cheap-in-cost items, not the smallest
