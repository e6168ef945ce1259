"""The two-step lookahead planner of `Discoverability`: ``plan="lookahead"``.

Each item may take a *push* (any amount within its quota, now) or a *screen* (`screens`
impressions now, then a push or a stop next period decided on the clicks they bring). A screen is
valued by a two-step Bayesian lookahead: the clicks it may bring follow the platform's
Beta-binomial, and each outcome is scored by the model at the state it leads to. Impressions carry
one price per period, set by bisection so that the chosen options fill the budget.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gemb.coldstart import allocation as alloc_lib
from gemb.coldstart import cost as cost_lib
from gemb.coldstart.curve import curve_prob
from gemb.coldstart.engagement import engagement, engagement_features
from gemb.coldstart.simulator import Observation, admission


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
  brought extra_k [K] clicks; admission by the simulator's own rule."""
  cfg = obs.config
  n = obs.impressions[:, None] + extra_n
  k = obs.clicks[:, None] + np.asarray(extra_k)[None, :]
  admitted = admission(n, k, obs.prior, cfg.n_min, cfg.bar)
  return engagement(n, k, (obs.age + 1)[:, None], obs.recs[:, None], admitted, obs)


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
  cost_rate = cost_lib.cost_rate(obs.posterior_mean(), obs.prior, obs.exploit_rate)
  return LookaheadOptions(push_x, push_gain, tuple(screens), weight, stop_gain, follow_x,
                          follow_gain, can_screen, cost_rate)


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
