"""A per-seed upper bound on the discoverable items any policy can reach: `hindsight_bound`.

The argument (every step is a necessary condition for an item i to become discoverable):

1. **Fixed click streams.** The simulator draws the j-th impression of item i from a fixed uniform
   (`simulator.stream_uniforms`), so the clicks after n impressions, S_i(n), do not depend on the
   policy, and the posterior mean after n impressions is ``m_i(n) = (a + S_i(n)) / (a + b + n)``.
   The users of every period are drawn from their own generator, also policy-independent.
2. **Admission and ranking.** An item is recommended in a period only if it is admitted then, at
   its cumulative impressions n_t: n_t >= n_min and m_i(n_t) >= bar; it is ranked with score
   m_i(n_t). If a policy gives it X_i impressions in all, every such score is at most
   ``M_i(X_i) = max_{n_min <= n <= X_i} m_i(n)``.
3. **Slates.** User u recommends i only if i is among u's `candidates` nearest items (by inner
   product) and fewer than `slate` candidates outrank it. Against the established catalogue alone
   (assumption A1 below), i is a candidate only if its inner product reaches the k-th best
   established one, ``d_u``, and then it is in the slate only if its score reaches
   ``tau_u``, the slate-th highest engagement among u's k-1 nearest established items.
4. **Threshold.** i is discoverable only if it collects m_recs recommendations over the (period,
   user) pairs of its window; so only if at least m_recs of those pairs have <u, i> >= d_u and
   ``tau_u <= M_i(X_i)``: ``M_i(X_i) >= p*_i``, the m_recs-th smallest tau over the eligible pairs
   (and >= bar). Since M_i is non-decreasing, that is ``X_i >= X*_i``, the first n with
   m_i(n) >= p*_i (infinite if none within the traffic the item can get).
5. **Budget.** The impressions of item i are spent in its first `age_cap` periods, at most
   `budget` per period in all. The number of items with X_i >= X*_i is therefore at most the
   optimum of the integer program "fund items in full, X*_i each, from the budgets of the periods
   in their windows", whose LP relaxation (solved here with HiGHS) is >= it; the bound is the LP
   optimum rounded down (the count is an integer).

So for every seed and every policy, discoverable <= bound, pathwise (not just in expectation),
under one modelling assumption:

**A1 (no help from crowding).** Other admitted fresh items never raise an item's chance of being
in a slate. They take candidate slots and slate places; but a fresh item can push a high-engagement
established item out of a user's candidates and so *lower* that user's slate threshold. A1 ignores
that effect. The tests check the necessary condition X_i >= X*_i on every discovered item of every
built-in policy (tests/coldstart/test_bound.py); a violation would show there.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gemb.coldstart.simulator import Simulator, _user_batch, stream_uniforms

_TOL = 1e-5  # float32 inner products and scores in the simulator's retrieval and ranking


@dataclasses.dataclass
class Bound:
  value: int  # floor of the LP optimum: the bound on discoverable items
  lp: float  # the LP optimum itself
  x_star: np.ndarray  # [n_items] X*_i (inf: can never become discoverable)
  p_star: np.ndarray  # [n_items] the score each item must reach
  fundable: int  # items with a finite X*


def _period_users(sim: Simulator) -> list[np.ndarray]:
  """The users of every period, drawn exactly as `Simulator.step` draws them."""
  c = sim.config
  rng = np.random.default_rng([sim.seed, 1])
  return [_user_batch(sim.cal, c.n_users, c.user_jitter, rng)[0] for _ in range(c.periods)]


def _user_thresholds(sim: Simulator, users_ud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per user: d_u (k-th best established inner product) and tau_u (slate-th best engagement
  among the k-1 nearest established items)."""
  c = sim.config
  est = sim.est_latent.astype(np.float64)
  n_est = len(est)
  k = c.candidates
  dots = users_ud.astype(np.float64) @ est.T
  if n_est >= k:
    d_u = -np.partition(-dots, k - 1, axis=1)[:, k - 1]
  else:
    d_u = np.full(len(users_ud), -np.inf)
  k1 = min(k - 1, n_est)
  if k1 < c.slate:
    return d_u, np.full(len(users_ud), -np.inf)
  near = np.argpartition(-dots, k1 - 1, axis=1)[:, :k1]
  q_near = sim.est_q.astype(np.float64)[near]
  tau = -np.partition(-q_near, c.slate - 1, axis=1)[:, c.slate - 1]
  return d_u, tau


def required_scores(sim: Simulator) -> np.ndarray:
  """p*_i per item (step 4 of the module docstring); +inf where too few (period, user) pairs can
  ever recommend the item."""
  c = sim.config
  users = _period_users(sim)
  thr = [_user_thresholds(sim, u) for u in users]
  lat = sim.latent_nd.astype(np.float64)
  p_star = np.full(sim.n_items, np.inf)
  for e in np.unique(sim.entry):
    items = np.nonzero(sim.entry == e)[0]
    taus = []
    for t in range(e, min(e + c.window, c.periods)):
      d_u, tau_u = thr[t]
      ok = (users[t].astype(np.float64) @ lat[items].T) >= d_u[:, None] - _TOL  # [u, i]
      taus.append(np.where(ok, tau_u[:, None], np.inf))
    tau_ui = np.concatenate(taus, 0)
    if len(tau_ui) < c.m_recs:
      continue
    kth = np.partition(tau_ui, c.m_recs - 1, axis=0)[c.m_recs - 1]
    p_star[items] = np.maximum(kth - _TOL, c.bar)
  return p_star


def first_crossing(sim: Simulator, p_star: np.ndarray, n_cap: int, chunk: int = 256) -> np.ndarray:
  """X*_i: the first n in [n_min, n_cap] with m_i(n) >= p*_i on item i's click stream; inf if
  none."""
  c = sim.config
  a, b = sim.prior
  x_star = np.full(sim.n_items, np.inf)
  todo = np.nonzero(np.isfinite(p_star))[0]
  j = np.arange(n_cap)
  n = np.arange(1, n_cap + 1, dtype=np.float64)
  for s in range(0, len(todo), chunk):
    items = todo[s:s + chunk]
    hit = stream_uniforms(sim.seed, items[:, None], j[None, :]) < sim.q[items][:, None]
    post = (a + np.cumsum(hit, 1)) / (a + b + n)
    ok = (post >= p_star[items][:, None]) & (n >= c.n_min)
    any_ok = ok.any(1)
    x_star[items[any_ok]] = n[np.argmax(ok[any_ok], 1)]
  return x_star


def budget_lp(x_star: np.ndarray, entry: np.ndarray, budget: float, periods: int,
              age_cap: int) -> float:
  """max sum z_i  s.t. item i's X*_i z_i is paid from the budgets of periods entry_i ..
  entry_i + age_cap - 1 (each at most `budget`), 0 <= z_i <= 1 (HiGHS)."""
  from scipy.optimize import linprog
  from scipy.sparse import coo_matrix
  items = np.nonzero(np.isfinite(x_star) & (x_star <= budget * age_cap))[0]
  m = len(items)
  if m == 0:
    return 0.0
  rows_eq, cols_eq, vals_eq, rows_ub, cols_ub = [], [], [], [], []
  n_var = m
  for r, i in enumerate(items):
    rows_eq.append(r); cols_eq.append(r); vals_eq.append(-float(x_star[i]))
    for t in range(int(entry[i]), min(int(entry[i]) + age_cap, periods)):
      rows_eq.append(r); cols_eq.append(n_var); vals_eq.append(1.0)
      rows_ub.append(t); cols_ub.append(n_var)
      n_var += 1
  a_eq = coo_matrix((vals_eq, (rows_eq, cols_eq)), shape=(m, n_var)).tocsr()
  a_ub = coo_matrix((np.ones(len(rows_ub)), (rows_ub, cols_ub)), shape=(periods, n_var)).tocsr()
  cost = np.zeros(n_var)
  cost[:m] = -1.0
  bounds = [(0.0, 1.0)] * m + [(0.0, None)] * (n_var - m)
  res = linprog(cost, A_ub=a_ub, b_ub=np.full(periods, float(budget)), A_eq=a_eq,
                b_eq=np.zeros(m), bounds=bounds, method="highs")
  if res.status != 0:
    raise RuntimeError(f"the bound's LP did not solve: {res.message}")
  return float(-res.fun)


def hindsight_bound(sim: Simulator) -> Bound:
  """The certified per-seed bound for the simulator's seed (see the module docstring).

  `sim` may be fresh: only its seed, items, users and configuration are read."""
  c = sim.config
  p_star = required_scores(sim)
  x_star = first_crossing(sim, p_star, int(c.budget) * c.age_cap)
  lp = budget_lp(x_star, sim.entry, c.budget, c.periods, c.age_cap)
  return Bound(int(np.floor(lp + 1e-6)), lp, x_star, p_star, int(np.isfinite(x_star).sum()))
