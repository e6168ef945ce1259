"""A recommendation platform with fresh items, an exploration surface and an exploitation recommender.

Per period, in this order:

1. ``n_new`` fresh items enter (latents drawn around MovieLens's newest items, see `calibrate`);
2. a policy spends at most ``budget`` exploration impressions on the items still in exploration;
   each impression is shown to a random user and engages with the item's true rate ``q_i`` (the
   i-th impression of an item always draws the same uniform, `stream_uniforms`: one fixed click
   stream per item, so allocations change how far into its stream an item gets, not the stream);
3. the exploitation recommender admits an item once its engagement passes the bar (`admission`:
   at least ``n_min`` impressions and a posterior-mean engagement rate of at least ``bar``);
4. ``n_users`` users arrive; for each, candidates are retrieved over the admitted items by
   ``<user, item>`` through a retrieval backend, ranked by estimated engagement, and the top
   ``slate`` are recommended;
5. an item is *discoverable* once exploitation recommended it ``m_recs`` times within ``window``
   periods of entering. Items leave exploration when discoverable or at ``age_cap``.

Everything is seeded: the same seed and the same allocations give the same run.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gemb.coldstart.calibrate import Calibration
from gemb.errors import ConfigError, InputError


POOL_BUCKET = 2048


class Index(Protocol):
  """The gemb retrieval interface (``gemb.retrievers``) the recommender uses."""

  def build(self, emb_nd: np.ndarray, ids: np.ndarray | None = None) -> Any: ...

  def search(self, queries_qd: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def exact_index() -> Index:
  """The default retrieval backend: ``gemb.retrievers`` "exact" (brute-force inner product)."""
  from gemb import registry
  return registry.retrievers.build("exact")


def admission(impressions, clicks, prior: tuple[float, float], n_min: int, bar: float):
  """The exploitation bar, the one definition of it: at least `n_min` exploration impressions and
  a posterior-mean engagement of at least `bar` (Beta `prior`). Elementwise on counts of any
  shape; the simulator admits with it and the lookahead plan imagines admissions with it."""
  a, b = prior
  n = np.asarray(impressions)
  post = (a + np.asarray(clicks)) / (a + b + n)
  return (n >= n_min) & (post >= bar)


_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), \
    np.uint64(0x94D049BB133111EB)


def stream_uniforms(seed: int, item, j) -> np.ndarray:
  """The uniform in [0, 1) behind impression `j` (0-based) of item `item` in the run of `seed`.

  A counter-based hash (splitmix64), so every item has one fixed stream of clicks: impression j
  engages iff its uniform is below the item's true rate, whatever the allocation that led to it.
  The simulator draws its clicks from it, and `bound.hindsight_bound` reads the same streams.
  """
  item = np.asarray(item, np.uint64)
  j = np.asarray(j, np.uint64)
  with np.errstate(over="ignore"):
    z = (np.uint64(seed) * _M1 + item) * _M2 + j * _M1 + _M3
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    z = z ^ (z >> np.uint64(31))
  return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


@dataclasses.dataclass(frozen=True)
class SimConfig:
  periods: int = 12
  n_new: int = 200  # fresh items entering per period
  n_users: int = 2000  # users served by exploitation per period
  budget: int = 6000  # exploration impressions per period
  n_min: int = 20  # impressions before the exploitation bar applies
  bar: float = 0.5  # posterior-mean engagement needed for admission
  prior_strength: float = 20.0  # Beta prior pseudo-impressions, centred on the platform mean
  candidates: int = 100  # retrieval depth
  slate: int = 10  # recommendations per user
  m_recs: int = 30  # recommendations needed to count as discoverable ...
  window: int = 4  # ... within this many periods of entering
  age_cap: int = 3  # periods an item may stay in exploration
  item_jitter: float = 0.5  # fresh latents: template + jitter * (per-dim std) noise
  user_jitter: float = 0.3
  probe_users: int = 256  # users that estimate each item's true engagement rate
  full_traffic: int = 1000  # impressions per item in the counterfactual behind `potential`

  def validate(self) -> None:
    for name in ("periods", "n_new", "n_users", "n_min", "candidates", "slate", "m_recs",
                 "window", "age_cap", "probe_users"):
      if getattr(self, name) < 1:
        raise ConfigError(f"coldstart simulator: {name} must be >= 1, got {getattr(self, name)}.")
    if not self.budget > 0:
      raise ConfigError(f"coldstart simulator: the exploration budget must be > 0 impressions per "
                        f"period, got {self.budget}.")
    if not 0.0 < self.bar < 1.0:
      raise ConfigError(f"coldstart simulator: bar must be in (0, 1), got {self.bar}.")
    if self.slate > self.candidates:
      raise ConfigError(f"coldstart simulator: slate ({self.slate}) must be <= candidates "
                        f"({self.candidates}).")


@dataclasses.dataclass
class Observation:
  """What a policy sees about the items in exploration this period (arrays are [a], a = active)."""

  period: int
  budget: int
  item: np.ndarray  # global item index
  features_af: np.ndarray  # static item features (content embedding + metadata)
  impressions: np.ndarray
  clicks: np.ndarray
  age: np.ndarray  # periods since entering (0 in the entry period)
  recs: np.ndarray  # exploitation recommendations so far
  admitted: np.ndarray  # bool: passes the exploitation bar
  prior: tuple[float, float]  # Beta(alpha, beta) prior of the bar
  config: SimConfig
  truth: dict[str, np.ndarray] | None = None  # only for policies with needs_truth = True
  # Mean true engagement of what exploitation shows (what an exploration impression displaces);
  # None: the prior mean. See `cost.py`.
  exploit_rate: float | None = None

  def __len__(self) -> int:
    return len(self.item)

  def posterior_mean(self) -> np.ndarray:
    a, b = self.prior
    return (a + self.clicks) / (a + b + self.impressions)


def _user_batch(cal: Calibration, n: int, jitter: float, rng: np.random.Generator):
  src = rng.integers(0, len(cal.user_ud), n)
  std = cal.user_ud.std(0)
  u = cal.user_ud[src] + jitter * std * rng.standard_normal((n, cal.user_ud.shape[1]))
  b = cal.user_bias_u[src] + jitter * cal.user_bias_u.std() * rng.standard_normal(n)
  return u.astype(np.float32), b.astype(np.float32)


@jax.jit
def _engagement_rate(user_ud, user_b, item_id, item_b, mu, kappa, pivot):
  r = mu + user_b[:, None] + item_b[None, :] + user_ud @ item_id.T
  return jax.nn.sigmoid(kappa * (r - pivot)).mean(0)


class Simulator:
  """Fixed capacity: all ``periods * n_new`` fresh items are drawn up front, entering over time."""

  def __init__(self, cal: Calibration, config: SimConfig, item_features_tf: np.ndarray, seed: int,
               index_factory: Callable[[], Index] = exact_index,
               templates: np.ndarray | None = None):
    """`templates`: the MovieLens items fresh items are drawn around (default: all of
    ``cal.fresh_templates``); the runner gives disjoint sets to training logs, tuning and
    evaluation."""
    config.validate()
    if item_features_tf.shape[0] != cal.item_id.shape[0]:
      raise InputError(f"item features have {item_features_tf.shape[0]} rows but the calibration "
                       f"has {cal.item_id.shape[0]} items; give one feature row per MovieLens item.")
    if not np.all(np.isfinite(item_features_tf)):
      bad = np.unique(np.nonzero(~np.isfinite(item_features_tf))[0])[:5]
      raise InputError(f"item features are missing (NaN/inf) for template items {bad.tolist()}; "
                       "every item needs complete features.")
    self.cal, self.config, self.seed = cal, config, seed
    self._static_tf = item_features_tf
    self.index_factory = index_factory
    rng = np.random.default_rng(seed)
    c = config
    n = c.periods * c.n_new
    d = cal.item_id.shape[1]
    self.templates = np.asarray(cal.fresh_templates if templates is None else templates)
    if self.templates.size == 0 or self.templates.min() < 0 or \
        self.templates.max() >= cal.item_id.shape[0]:
      raise InputError(f"templates must be a non-empty set of item indices below "
                       f"{cal.item_id.shape[0]}, got {self.templates.size} indices.")
    self.template = rng.choice(self.templates, n)
    std = cal.item_id.std(0)
    self.latent_nd = (cal.item_id[self.template] + c.item_jitter * std
                      * rng.standard_normal((n, d))).astype(np.float32)
    self.bias_n = (cal.item_bias_i[self.template] + c.item_jitter * cal.item_bias_i.std()
                   * rng.standard_normal(n)).astype(np.float32)
    self.entry = np.repeat(np.arange(c.periods), c.n_new)
    self.features_nf = item_features_tf[self.template].astype(np.float32)
    self._probe = _user_batch(cal, c.probe_users, c.user_jitter, rng)
    self.q = self._rates(self.latent_nd, self.bias_n)
    est = cal.established
    self.est_latent = cal.item_id[est].astype(np.float32)
    self.est_q = self._rates(self.est_latent, cal.item_bias_i[est].astype(np.float32))
    qbar = float(self.est_q.mean())  # the platform's prior for a fresh item
    self.prior = (c.prior_strength * qbar, c.prior_strength * (1 - qbar))
    self.rng_users = np.random.default_rng([seed, 1])
    self.period = 0
    self.impressions = np.zeros(n, np.int64)
    self.clicks = np.zeros(n, np.int64)
    self.recs = np.zeros(n, np.int64)
    self.discovered_at = np.full(n, -1, np.int64)
    self.history: list[dict[str, Any]] = []
    self.cost_spent = 0.0  # exploration cost so far (`cost.cost_of` of every period's traffic)

  def _rates(self, latent_nd, bias_n, chunk: int = 65536) -> np.ndarray:
    u, b = self._probe
    cal = self.cal
    out = [np.asarray(_engagement_rate(u, b, latent_nd[s:s + chunk], bias_n[s:s + chunk],
                                       cal.mu, cal.kappa, cal.pivot))
           for s in range(0, len(latent_nd), chunk)]
    return np.concatenate(out).astype(np.float32)

  @property
  def n_items(self) -> int:
    return len(self.entry)

  @property
  def done(self) -> bool:
    return self.period >= self.config.periods

  def admitted(self) -> np.ndarray:
    return admission(self.impressions, self.clicks, self.prior, self.config.n_min,
                     self.config.bar)

  def active(self) -> np.ndarray:
    """Global indices of the items in exploration now."""
    age = self.period - self.entry
    return np.nonzero((age >= 0) & (age < self.config.age_cap) & (self.discovered_at < 0))[0]

  def observe(self, with_truth: bool = False) -> Observation:
    idx = self.active()
    truth = None
    if with_truth:
      truth = {"q": self.q[idx], "reach": self.reach()[idx], "potential": self.potential()[idx]}
    return Observation(self.period, self.config.budget, idx, self.features_nf[idx],
                       self.impressions[idx], self.clicks[idx], self.period - self.entry[idx],
                       self.recs[idx], self.admitted()[idx], self.prior, self.config, truth,
                       self.exploit_rate)

  @functools.cached_property
  def _reach(self) -> np.ndarray:
    # Fraction of probe users whose slate would include the item if it were admitted with its true
    # rate, against the established catalogue alone: the oracle's view of exploitation.
    c = self.config
    u, _ = self._probe
    k = min(c.candidates, len(self.est_q))
    ids, scores = exact_index().build(self.est_latent).search(u, k)
    t_dot = scores[:, -1]
    t_q = np.sort(self.est_q[ids], axis=1)[:, -min(c.slate, k)]
    reach = np.zeros(self.n_items, np.float32)
    for s in range(0, self.n_items, 65536):
      dots = np.asarray(jnp.asarray(self.latent_nd[s:s + 65536]) @ jnp.asarray(u).T)
      ok = (dots >= t_dot[None, :]) & (self.q[s:s + 65536, None] >= t_q[None, :])
      reach[s:s + 65536] = ok.mean(1)
    return reach

  def _stream_clicks(self, idx: np.ndarray, alloc: np.ndarray) -> np.ndarray:
    """Clicks of impressions n..n+alloc-1 of each item idx, from its fixed stream."""
    alloc = np.maximum(alloc, 0)
    total = int(alloc.sum())
    if total == 0:
      return np.zeros(len(idx), np.int64)
    owner = np.repeat(np.arange(len(idx)), alloc)
    offset = np.arange(total) - np.repeat(np.cumsum(alloc) - alloc, alloc)
    j = self.impressions[idx][owner] + offset
    hit = stream_uniforms(self.seed, idx[owner], j) < self.q[idx][owner]
    return np.bincount(owner, hit, len(idx)).astype(np.int64)

  def reach(self) -> np.ndarray:
    return self._reach

  @functools.cached_property
  def exploit_rate(self) -> float:
    """Mean true engagement of the slates exploitation serves the probe users from the
    established catalogue: the engagement an exploration impression gives up."""
    c = self.config
    u, _ = self._probe
    k = min(c.candidates, len(self.est_q))
    ids, _ = exact_index().build(self.est_latent).search(u, k)
    q = np.sort(self.est_q[np.asarray(ids)], axis=1)[:, -min(c.slate, k):]
    return float(q.mean())

  @functools.cached_property
  def _potential(self) -> np.ndarray:
    # Counterfactual ground truth: which items become discoverable when every item gets
    # `full_traffic` impressions on entry (same seed, so the same items, users and clicks stream).
    twin = Simulator(self.cal, self.config, self._static_tf, self.seed, self.index_factory,
                     self.templates)
    while not twin.done:
      idx = twin.active()
      twin.step(np.where(twin.impressions[idx] == 0, float(self.config.full_traffic), 0.0), idx)
    return twin.discoverable()

  def potential(self) -> np.ndarray:
    """[n_items] bool: discoverable under unlimited exploration (what the oracle knows)."""
    return self._potential

  def step(self, alloc_a: np.ndarray, idx: np.ndarray | None = None) -> dict[str, Any]:
    """Spends `alloc_a` impressions on active items `idx`, then serves one period of users."""
    c = self.config
    if self.done:
      raise InputError(f"the simulation already ran its {c.periods} periods.")
    if idx is None:
      idx = self.active()
    alloc = np.floor(np.asarray(alloc_a, np.float64)).astype(np.int64)
    if alloc.shape != idx.shape:
      raise InputError(f"allocation has shape {alloc.shape}, expected {idx.shape}.")
    from gemb.coldstart.cost import cost_of
    self.cost_spent += float(cost_of(alloc, self.impressions[idx], self.clicks[idx], self.prior,
                                     self.exploit_rate).sum())
    self.clicks[idx] += self._stream_clicks(idx, alloc)
    self.impressions[idx] += alloc
    # Exploitation over the established catalogue plus the admitted fresh items.
    age = self.period - self.entry
    fresh = np.nonzero(self.admitted() & (age >= 0))[0]
    a, b = self.prior
    post = ((a + self.clicks[fresh]) / (a + b + self.impressions[fresh])).astype(np.float32)
    pool_emb = np.concatenate([self.est_latent, self.latent_nd[fresh]])
    pool_q = np.concatenate([self.est_q, post])
    # Pad the pool to a bucket size so that jitted retrieval compiles for a few shapes only: an
    # extra coordinate (0 for items, -1e4 for padding, 1 in queries) keeps padding out of the
    # candidates and leaves item scores unchanged.
    n_pool, d = pool_emb.shape
    bucket = POOL_BUCKET * -(-n_pool // POOL_BUCKET)
    padded = np.zeros((bucket, d + 1), np.float32)
    padded[:n_pool, :d] = pool_emb
    padded[n_pool:, d] = -1e4
    users, _ = _user_batch(self.cal, c.n_users, c.user_jitter, self.rng_users)
    users = np.concatenate([users, np.ones((len(users), 1), np.float32)], 1)
    index = self.index_factory()
    index.build(padded)
    k = min(c.candidates, n_pool)
    cand_uk, _ = index.search(users, k)
    cand_uk = np.asarray(cand_uk)
    top = np.argsort(-pool_q[cand_uk], axis=1, kind="stable")[:, :c.slate]
    rec = np.take_along_axis(cand_uk, top, 1).ravel()
    rec = rec[rec >= len(self.est_q)] - len(self.est_q)
    counts = np.bincount(rec, minlength=len(fresh))
    in_window = age[fresh] < c.window
    self.recs[fresh] += counts * in_window
    newly = (self.recs >= c.m_recs) & (self.discovered_at < 0)
    self.discovered_at[newly] = self.period
    stats = {"period": self.period, "spent": int(alloc.sum()), "active": int(len(idx)),
             "admitted_fresh": int(len(fresh)), "new_discoverable": int(newly.sum()),
             "discoverable": int((self.discovered_at >= 0).sum())}
    self.history.append(stats)
    self.period += 1
    return stats

  def discoverable(self) -> np.ndarray:
    return self.discovered_at >= 0

  COUNTERS = ("impressions", "clicks", "recs", "discovered_at")

  def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """What changes as the simulation runs: per-item counters, and the period, user RNG and
    history (JSON). Everything else is rebuilt from the calibration, config and seed."""
    arrays = {k: getattr(self, k).copy() for k in self.COUNTERS}
    return arrays, {"period": self.period, "rng_users": self.rng_users.bit_generator.state,
                    "history": list(self.history), "cost_spent": self.cost_spent}

  def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Continues from `state()` of a simulator built with the same calibration, config and seed."""
    for k in self.COUNTERS:
      v = np.asarray(arrays[k])
      if v.shape != (self.n_items,):
        raise InputError(f"simulator state {k!r} has shape {v.shape}, expected ({self.n_items},): "
                         "it was saved by a simulator of another size.")
      setattr(self, k, v.astype(np.int64))
    self.period = int(meta["period"])
    self.rng_users.bit_generator.state = meta["rng_users"]
    self.history = [dict(h) for h in meta["history"]]
    self.cost_spent = float(meta["cost_spent"])
