"""Exploration policies, registered in `gemb.policies`.

A policy is any object with ``allocate(obs, rng) -> np.ndarray``: impressions for each item in
``obs`` (an `Observation`), non-negative, summing to at most ``obs.budget``. Optional:
``needs_truth = True`` (the simulator then fills ``obs.truth``; only for upper bounds) and
``prepare(ctx)`` (called once before a run with a `PolicyContext`, e.g. to fetch the trained
discoverability model), and ``get_state() -> JSON`` / ``set_state(obj)`` for a policy that keeps
state between periods (saved in the run's checkpoint; the built-ins keep none beyond the RNG).
Register a factory, a class or a function returning a policy::

    @gemb.policies.register("my_policy")
    class MyPolicy:
      def __init__(self, share: float = 0.5): ...
      def allocate(self, obs, rng): ...

``gemb.policies.build("my_policy(share=0.3)")`` then makes one. Every allocation goes through
`check_allocation`, which rejects negative, non-finite, mis-shaped or over-budget ones and names
the policy.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gemb import registry
from gemb.coldstart import allocation as alloc_lib
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


ENGAGEMENT_FEATURES = ("log1p_impressions", "posterior_mean", "click_rate", "age_share",
                       "admitted", "log1p_recs")
N_ENGAGEMENT = len(ENGAGEMENT_FEATURES)  # columns of engagement_features


def engagement_features(obs: Observation) -> np.ndarray:
  """[a, N_ENGAGEMENT] engagement so far: what the model conditions on besides the static
  features, in the order of ENGAGEMENT_FEATURES."""
  return _engagement(obs.impressions, obs.clicks, obs.age, obs.recs, obs.admitted, obs)


def _engagement(impressions, clicks, age, recs, admitted, obs: Observation) -> np.ndarray:
  """The ENGAGEMENT_FEATURES columns [..., N_ENGAGEMENT] (float32) from counts of any shape, for
  the state observed now and for the states the lookahead plan imagines."""
  pa, pb = obs.prior
  n32 = np.asarray(impressions, np.float32)  # whole counts: exact in float32
  cols = {"log1p_impressions": np.log1p(n32),
          "posterior_mean": (pa + clicks) / (pa + pb + np.asarray(impressions, np.float64)),
          "click_rate": clicks / np.maximum(n32, 1.0), "age_share": age / obs.config.age_cap,
          "admitted": np.asarray(admitted, np.float32),
          "log1p_recs": np.log1p(np.asarray(recs, np.float32))}
  shape = np.broadcast_shapes(*(np.shape(v) for v in cols.values()))
  return np.stack([np.broadcast_to(cols[k], shape) for k in ENGAGEMENT_FEATURES],
                  -1).astype(np.float32)


def model_features(obs: Observation) -> np.ndarray:
  return np.concatenate([obs.features_af, engagement_features(obs)], 1)


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


@registry.policies.register("uniform")
class Uniform:
  """The budget split evenly over the items in exploration."""

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    return _even(obs.budget, len(obs))


@registry.policies.register("epsilon_greedy")
class EpsilonGreedy:
  """A share epsilon spread evenly; the rest in chunks to the best posterior-mean items."""

  def __init__(self, epsilon: float = 0.1, chunk: int | None = None):
    if not 0.0 <= epsilon <= 1.0:
      raise InputError(f"epsilon_greedy: epsilon must be in [0, 1], got {epsilon}.")
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
    self.chunk = chunk

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    chunk = self.chunk or obs.config.n_min
    a, b = obs.prior
    sample = rng.beta(a + obs.clicks, b + obs.impressions - obs.clicks)
    return _top_chunks(sample, obs.budget, chunk)


@registry.policies.register("discoverability")
class Discoverability:
  """The paper's policy: the model's P(G=1|X) per item, quotas at P = CF, re-planned every period.

  Two planners share the model and the quota (the traffic at which P(G=1|X) reaches `cf`, capped
  at `x_max`; an item leaves exploration once it is spent):

  * ``plan="lookahead"`` (default): each item may take a *push* (any amount within its quota, now)
    or a *screen* (`screens` impressions now, then a push or a stop next period decided on the
    clicks they bring). A screen is valued by a two-step Bayesian lookahead: the clicks it may
    bring follow the platform's Beta-binomial, and each outcome is scored by the model at the state
    it leads to. Impressions carry one price per period, set by bisection so that the chosen
    options fill the budget (`lookahead_options`, `allocate_lookahead`). A push alone undervalues
    an uncertain item whose chance rises only after 100-200 impressions; screening first spends
    those only on the items whose first clicks are good.
  * ``plan="greedy"``: one step per item, the tangent point of its S-shaped curve within
    `step_cap` impressions, funded by gain per impression (`allocation.allocate`). With `pace` the
    tangent is searched over the whole remaining quota and `step_cap` only paces it.
  """

  PLANS = ("lookahead", "greedy")

  def __init__(self, cf: float = 0.99, x_max: float = 400.0, cost_budget: float | None = None,
               grid: int = 24, plan: str = "lookahead", screens: tuple[int, ...] = (10, 20, 40),
               step_cap: float | None = 40.0, pace: bool = False):
    self.cf = alloc_lib.check_cf(cf)
    if plan not in self.PLANS:
      raise InputError(f"discoverability: plan must be one of {self.PLANS}, got {plan!r}.")
    if any(int(x) != x or x < 1 for x in screens):
      raise InputError(f"discoverability: screens must be positive whole impressions, got "
                       f"{screens!r}.")
    self.x_max, self.cost_budget, self.grid = float(x_max), cost_budget, int(grid)
    self.plan_kind, self.screens = plan, tuple(int(x) for x in screens)
    self.step_cap = step_cap  # greedy: most impressions an item may ask for in one period
    self.pace = pace
    self.model = None

  def prepare(self, ctx: PolicyContext) -> None:
    self.model = ctx.model()

  def _curve_fn(self):
    from gemb.coldstart import model as model_lib
    if self.model is None:
      raise InputError("policy 'discoverability' has no model: call prepare(ctx) first or set "
                       ".model to a trained DiscoverabilityModel.")
    return lambda feat: model_lib.curve(self.model, feat)

  def greedy_plan(self, obs: Observation) -> dict[str, np.ndarray]:
    """Greedy plan: quota, the traffic asked for now, its gain and its cost per item."""
    a, s, c = self._curve_fn()(model_features(obs))
    return plan_from_curve(a, s, c, self.model.x0, obs.impressions, self.cf, self.x_max,
                           self.grid, obs.posterior_mean(), obs.prior, self.step_cap, self.pace)

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    if len(obs) == 0:
      return np.zeros(0)
    if self.plan_kind == "lookahead":
      opts = lookahead_options(self._curve_fn(), self.model.x0, obs, self.cf, self.x_max,
                               self.grid, self.screens)
      return allocate_lookahead(opts, obs.budget, self.cost_budget)
    p = self.greedy_plan(obs)
    if len(obs) <= alloc_lib.EXACT_MAX_ITEMS:
      return alloc_lib.allocate_exact(p["gain"], p["ask"], obs.budget, p["cost"],
                                      self.cost_budget)
    return alloc_lib.allocate(p["gain"], p["ask"], obs.budget, p["cost"], self.cost_budget)


def exploration_cost_rate(posterior_mean: np.ndarray, prior: tuple[float, float]) -> np.ndarray:
  """Expected engagement lost per exploration impression, against the prior mean."""
  pa, pb = prior
  return np.maximum(pa / (pa + pb) - np.asarray(posterior_mean, np.float64), 0.0)


def plan_from_curve(a, s, c, x0: float, impressions: np.ndarray, cf: float, x_max: float,
                    grid: int, posterior_mean: np.ndarray, prior: tuple[float, float],
                    step_cap: float | None = None, pace: bool = False):
  """Vectorized greedy planning step of `Discoverability`, given each item's curve parameters."""
  n = np.asarray(impressions, np.float32)
  quota = alloc_lib.quota_closed_form(a, s, c, cf, x0)
  quota = np.minimum(quota, x_max).astype(np.float32)  # unreachable CF: use up to x_max
  cap = np.inf if step_cap is None else float(step_cap)
  ask, gain, p_now = (np.asarray(v, np.float64) for v in _tangent_step(
      *(np.asarray(v, np.float32) for v in (a, s, c)), n, quota, float(x0), float(x_max), cap,
      int(grid), bool(pace)))
  cost = exploration_cost_rate(posterior_mean, prior) * ask
  return {"quota": quota, "ask": ask, "gain": gain, "cost": cost, "p_now": p_now}


@dataclasses.dataclass
class LookaheadOptions:
  """Per item [a]: the options of the lookahead plan, gains relative to P(G=1) at no more traffic.

  push_x/push_gain [a, G]: a push of push_x impressions now. For screen j of size screens[j]:
  weight [a, K+1] of k = 0..K clicks (Beta-binomial), and after k clicks the gain of stopping
  (stop_gain [a, K+1]) or of pushing follow_x more next period (follow_x, follow_gain
  [a, K+1, G]). can_screen [a, screens]: a next period in exploration exists and the quota has
  room for the screen. cost_rate [a]: exploration cost per impression.
  """

  push_x: np.ndarray
  push_gain: np.ndarray
  screens: tuple[int, ...]
  weight: list[np.ndarray]
  stop_gain: list[np.ndarray]
  follow_x: list[np.ndarray]
  follow_gain: list[np.ndarray]
  can_screen: np.ndarray
  cost_rate: np.ndarray
  _device: Any = dataclasses.field(default=None, init=False, repr=False)  # arrays for _choose

  def choose(self, price_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each item's best option when an impression costs price_a [a] (in P units): the impressions
    it spends now and the option's net value (0: do nothing)."""
    # In float64, like the numpy that builds the options: the bisection compares budget totals,
    # and float32 rounding moved allocations.
    with jax.enable_x64(True):
      if self._device is None:  # the bisection calls this ~50 times: move the arrays once
        self._device = jax.device_put((self.push_x, self.push_gain, tuple(self.weight),
                                       tuple(self.stop_gain), tuple(self.follow_x),
                                       tuple(self.follow_gain), self.can_screen))
      x, v = _choose(jnp.asarray(price_a, jnp.float64), *self._device, screens=self.screens)
      return np.asarray(x, np.float64), np.asarray(v, np.float64)


@functools.partial(jax.jit, static_argnames=("screens",))
def _choose(price_a, push_x, push_gain, weight, stop_gain, follow_x, follow_gain, can_screen,
            screens):
  # One fused XLA computation: in numpy the [a, K+1, G] temporaries of every call made the
  # bisection 4x slower (128 s against 34 s for 100k items, benchmarks/coldstart_scale.py).
  p = price_a[:, None]
  net = push_gain - p * push_x
  g = jnp.argmax(net, 1)[:, None]
  value = jnp.take_along_axis(net, g, 1)[:, 0]
  x_now = jnp.take_along_axis(push_x, g, 1)[:, 0]
  for j, x1 in enumerate(screens):
    follow = jnp.maximum(stop_gain[j], (follow_gain[j] - p[:, :, None] * follow_x[j]).max(-1))
    v = jnp.where(can_screen[:, j], (weight[j] * follow).sum(1) - price_a * x1, -jnp.inf)
    better = v > value
    value, x_now = jnp.where(better, v, value), jnp.where(better, float(x1), x_now)
  fund = value > 0
  return jnp.where(fund, x_now, 0.0), jnp.where(fund, value, 0.0)


def _engagement_after(obs: Observation, extra_n: float, extra_k: np.ndarray) -> np.ndarray:
  """engagement_features [a, K, E] of the items next period, after extra_n more impressions
  brought extra_k [K] clicks; admission as the simulator decides it."""
  cfg = obs.config
  pa, pb = obs.prior
  n = obs.impressions[:, None] + extra_n
  k = obs.clicks[:, None] + np.asarray(extra_k)[None, :]
  admitted = (n >= cfg.n_min) & ((pa + k) / (pa + pb + n) >= cfg.bar)
  return _engagement(n, k, (obs.age + 1)[:, None], obs.recs[:, None], admitted, obs)


def _beta_binomial(n: int, a_a: np.ndarray, b_a: np.ndarray) -> np.ndarray:
  """[a, n+1] probabilities of k = 0..n successes in n trials under Beta(a_a, b_a) rates.

  From the ratio p(k+1) / p(k) = (n-k)(a+k) / ((k+1)(b+n-k-1)), accumulated in logs and then
  normalized: plain numpy, no special functions (jax's would compile for every item count)."""
  k = np.arange(n, dtype=np.float64)[None, :]
  a, b = np.asarray(a_a, np.float64)[:, None], np.asarray(b_a, np.float64)[:, None]
  log_ratio = np.log((n - k) * (a + k)) - np.log((k + 1) * (b + n - k - 1))
  logp = np.concatenate([np.zeros((len(a), 1)), np.cumsum(log_ratio, 1)], 1)
  w = np.exp(logp - logp.max(1, keepdims=True))
  return w / w.sum(1, keepdims=True)


def lookahead_options(curve_fn: Callable, x0: float, obs: Observation, cf: float, x_max: float,
                      grid: int, screens: tuple[int, ...]) -> LookaheadOptions:
  """Scores every item's push and screen options with the model (see `Discoverability`).

  `curve_fn(feat_bf) -> (a, s, c)` gives the model's curve at a state; it is called once at the
  items' current state and once per screen over all its click outcomes ([a * (screen+1)] rows).
  """
  curve_prob = alloc_lib.curve_prob
  a_n = len(obs)
  static = obs.features_af
  feat = np.concatenate([static, engagement_features(obs)], 1)
  n = obs.impressions.astype(np.float64)
  steps = np.geomspace(1.0, x_max, grid)

  def pushes(a, s, c, n_now):
    """Push sizes within the quota and their gains over stopping, for curves at n_now."""
    quota = np.minimum(alloc_lib.quota_closed_form(a, s, c, cf, x0), x_max)
    room = np.maximum(quota - n_now, 0.0)
    x = np.minimum(steps, room[..., None])
    p_stop = curve_prob(a, s, c, n_now, x0)
    gain = curve_prob(a[..., None], s[..., None], c[..., None], n_now[..., None] + x, x0)
    return x, gain - p_stop[..., None], p_stop, room

  a, s, c = (np.asarray(v, np.float64) for v in curve_fn(feat))
  push_x, push_gain, p_now, room = pushes(a, s, c, n)
  pa, pb = obs.prior
  kk = obs.clicks.astype(np.float64)
  weight, stop_gain, follow_x, follow_gain = [], [], [], []
  for x1 in screens:
    eng = _engagement_after(obs, x1, np.arange(x1 + 1))  # [a, K+1, E]
    st = np.broadcast_to(static[:, None, :], (a_n, x1 + 1, static.shape[1]))
    f1 = np.concatenate([st, eng], -1).reshape(a_n * (x1 + 1), -1).astype(np.float32)
    a1, s1, c1 = (np.asarray(v, np.float64).reshape(a_n, x1 + 1) for v in curve_fn(f1))
    n1 = np.broadcast_to((n + x1)[:, None], (a_n, x1 + 1))
    fx, fg, p1, _ = pushes(a1, s1, c1, n1)
    weight.append(_beta_binomial(x1, pa + kk, pb + n - kk))
    stop_gain.append(p1 - p_now[:, None])
    follow_x.append(fx)
    follow_gain.append(fg + (p1 - p_now[:, None])[..., None])
  # A screen needs a next period in exploration and room for it in the item's quota.
  can_screen = (obs.age + 1 < obs.config.age_cap)[:, None] & (room[:, None] >= np.asarray(screens))
  return LookaheadOptions(push_x, push_gain, tuple(screens), weight, stop_gain, follow_x,
                          follow_gain, can_screen, exploration_cost_rate(obs.posterior_mean(),
                                                                         obs.prior))


def allocate_lookahead(opts: LookaheadOptions, budget: float, cost_budget: float | None = None,
                       iters: int = 40) -> np.ndarray:
  """Impressions now per item: every item takes its best option at one price per impression,
  the lowest price (bisection) at which the options fit the traffic budget and, if given, the
  exploration-cost budget (an impression's price scales with its share of the tighter budget).
  The last increment between the two bracketing prices is funded in part."""
  budget = alloc_lib.check_budget(budget)
  scale = np.ones_like(opts.cost_rate)
  if cost_budget is not None:
    cost_budget = alloc_lib.check_budget(cost_budget, "exploration cost budget")
    scale = np.maximum(1.0, opts.cost_rate * budget / cost_budget)

  def spend(lam):
    x, _ = opts.choose(lam * scale)
    return x, x.sum() / budget, ((opts.cost_rate * x).sum() / cost_budget if cost_budget else 0.0)

  x_free, t_free, c_free = spend(0.0)  # what every item would take if impressions were free
  if t_free <= 1 and c_free <= 1:
    return x_free
  lo, hi = 0.0, 1.0 / budget
  while max(spend(hi)[1:]) > 1:
    hi *= 2
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    if max(spend(mid)[1:]) > 1:
      lo = mid
    else:
      hi = mid
  (x_hi, t_hi, c_hi), (x_lo, t_lo, c_lo) = spend(hi), spend(lo)
  frac = 1.0
  for used_hi, used_lo in ((t_hi, t_lo), (c_hi, c_lo)):
    if used_lo > used_hi:
      frac = min(frac, (1.0 - used_hi) / (used_lo - used_hi))
  x = x_hi + np.clip(frac, 0.0, 1.0) * np.maximum(x_lo - x_hi, 0.0)
  # Items that switch to a smaller option between the two prices keep the larger one above;
  # scale back so that both budgets hold exactly.
  over = max(x.sum() / budget, (opts.cost_rate * x).sum() / cost_budget if cost_budget else 0.0)
  return x / max(over, 1.0)


@functools.partial(jax.jit, static_argnames=("grid", "pace"))
def _tangent_step(a, s, c, n, quota, x0, x_max, cap, grid, pace=False):
  # For each item, the step within its remaining quota (and the per-period cap) with the best gain
  # per impression: the tangent point of its S-shaped curve, searched on a log grid. With `pace`,
  # the tangent point is searched over the whole remaining quota and the cap only paces how much
  # of that step is spent this period (at the step's gain per impression).
  left = jnp.maximum(quota - n, 0.0)
  room = left if pace else jnp.minimum(left, cap)
  ceil = jax.nn.sigmoid(c)

  def prob(x_n):
    return ceil[:, None] * jax.nn.sigmoid(a[:, None] + s[:, None] * jnp.log1p(x_n / x0))

  p_now = prob(n[:, None])[:, 0]
  steps = jnp.geomspace(1.0, x_max, grid)
  x_ng = jnp.minimum(steps[None, :], room[:, None])
  ratio = jnp.where(x_ng > 0, (prob(n[:, None] + x_ng) - p_now[:, None])
                    / jnp.maximum(x_ng, 1e-9), 0.0)
  best = jnp.argmax(ratio, axis=1)
  r = jnp.take_along_axis(ratio, best[:, None], 1)[:, 0]
  ask = jnp.where(r > 0, jnp.take_along_axis(x_ng, best[:, None], 1)[:, 0], 0.0)
  if pace:
    ask = jnp.minimum(ask, cap)
  return ask, jnp.where(r > 0, r * ask, 0.0), p_now


@registry.policies.register("oracle")
class Oracle:
  """Knows the ground truth: which items can become discoverable and their engagement rates.

  Funds only those items, cheapest first, with enough impressions that the posterior mean clears
  the bar with margin `z` standard errors. An upper bound for the others, not a policy to deploy.
  """

  needs_truth = True

  def __init__(self, z: float = 1.0):
    self.z = z

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    if obs.truth is None:
      raise InputError("policy 'oracle' needs the ground truth (needs_truth = True) but the "
                       "observation has none.")
    cfg = obs.config
    q = obs.truth["q"].astype(np.float64)
    a, b = obs.prior
    n, c = obs.impressions.astype(np.float64), obs.clicks.astype(np.float64)
    viable = obs.truth["potential"] & (obs.age < cfg.window) & (q > cfg.bar)

    def margin(x):  # expected posterior mean minus z standard errors, minus the bar, + 0.5
      tot = a + b + n + x
      return (a + c + q * x) / tot - self.z * np.sqrt(q * (1 - q) / tot) - cfg.bar + 0.5

    x_need = alloc_lib.bisect_quota(margin, 0.5, len(q), float(cfg.full_traffic), iters=30)
    need = np.ceil(np.maximum(x_need, cfg.n_min - n))
    first = viable & ~obs.admitted & np.isfinite(x_need) & (need > 0)
    x = alloc_lib.allocate(first.astype(np.float64), np.where(first, need, np.inf), obs.budget)
    # Left-over budget sharpens the posterior of viable items (exploitation ranks by it).
    left = obs.budget - x.sum()
    if left >= 1 and viable.any():
      x = x + np.where(viable, left / viable.sum(), 0.0)
    return x
