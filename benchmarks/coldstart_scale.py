"""Cold-start at scale: the default policy, the greedy plan and one simulated period at 1M items.

Setup: the MovieLens-calibrated platform (recbole's ml-100k, 16-dim factorization), the
`coldstart` recipe's item features (its default "none": the model reads the 6 engagement
features only; with ``GEMB_SCALE_FEATURES=content``, hashed bag-of-words content reduced to 32
principal components, genres and year: 53 static dims more), CPU only. Timed:

* ``default_policy_1m_s``: `discoverability` exactly as registered (the recipe's 10-member model,
  the default plan), end to end for 1M fresh items: feature pass, model passes, plan. The default
  plan (lookahead) scores every click outcome of its screens with the model, about 73 model rows
  per item, and does not fit in memory at 1M items; it is timed at 100k items and scaled by 10
  (linear in items: every pass is per item), which the line before the JSON says.
* ``greedy_1m_s``: the same policy with ``plan="greedy"``, end to end at 1M items (10-member
  model pass included); ``quota`` (the paper's plan) beside it.
* ``sim_period_1m_s``: one simulated period with 1M items and 100k users (exploration clicks from
  the items' streams, admission, retrieval over the admitted pool with `gemb.retrievers` "exact",
  ranking, recommendation counts).

Also printed: the CPU (model, AVX-512 / AMX), the load average before and after, the measured
float32 matmul peak, and the model's FLOPs per row with the time they need at that peak: a floor
under each plan's time (the greedy plan makes one model row per item, the lookahead 1 + the sum of
(screen + 1) over its screens).

Run: ``python benchmarks/coldstart_scale.py`` (``GEMB_SCALE_ITEMS=20000`` for a quick check at a
smaller size; the keys keep their names). The last line printed is one JSON object with exactly
the keys above; timings are only meaningful on a quiet machine.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from _common import cpu_description, matmul_peak_flops  # benchmarks/ is on sys.path

N_ITEMS = int(os.environ.get("GEMB_SCALE_ITEMS", 1_000_000))
N_USERS = max(1000, N_ITEMS // 10)
LOOKAHEAD_ITEMS = min(N_ITEMS, 100_000)


def _timed(fn, repeats: int = 2):
  fn()  # compile
  best = np.inf
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn()
    best = min(best, time.perf_counter() - t)
  return best, out


def main() -> None:
  import jax
  from flax import nnx

  import gemb
  from gemb.coldstart import model as M
  from gemb.coldstart.calibrate import calibrate
  from gemb.coldstart.engagement import N_ENGAGEMENT
  from gemb.coldstart.features import bow_embed, static_features
  from gemb.coldstart.simulator import Observation, SimConfig, Simulator
  from gemb.config import recipe_config
  from gemb.data.movielens import load_movielens_100k

  load0 = os.getloadavg()
  print(f"cpu: {cpu_description()}, jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"{N_ITEMS} items, {N_USERS} users; load average before: {load0[0]:.2f} {load0[1]:.2f} "
        f"{load0[2]:.2f} (1/5/15 min)")
  peak = matmul_peak_flops()
  ml = load_movielens_100k()
  cal = calibrate(ml)
  recipe = recipe_config("coldstart")
  which = os.environ.get("GEMB_SCALE_FEATURES", recipe.item_features)
  static = static_features(ml, bow_embed(64) if which == "content" else None,
                           content_dims=recipe.content_dims, include=which)
  rng = np.random.default_rng(0)
  model = M.DiscoverabilityModel(static.shape[1] + N_ENGAGEMENT, recipe.model.hidden,
                                 members=recipe.model.members, rngs=nnx.Rngs(0))
  print(f"item features: {which!r} ({static.shape[1]} static + {N_ENGAGEMENT} engagement inputs), "
        f"{recipe.model.members} members")

  def observation(n):
    imp = rng.integers(0, 60, n)
    return Observation(0, 20 * n, np.arange(n), static[rng.integers(0, len(static), n)], imp,
                       rng.binomial(imp, rng.uniform(0.2, 0.7, n)), rng.integers(0, 3, n),
                       np.zeros(n, np.int64), np.zeros(n, bool), (8.0, 12.0), SimConfig())

  obs = observation(N_ITEMS)
  default = gemb.policies.build("discoverability")
  default.model = model
  # The floor: every model row costs its layers' matmuls (2 FLOPs per multiply-add, per member).
  flop_row = sum(2 * w.size for w in model.w)  # w: [members, in, out]
  rows_lookahead = 1 + sum(x + 1 for x in default.screens)
  floor_s = lambda rows: rows * N_ITEMS * flop_row / peak
  print(f"float32 matmul peak (XLA, 2048^3): {peak / 1e9:.1f} GFLOP/s; model: {flop_row / 1e3:.0f} "
        f"kFLOP per row; at that peak {N_ITEMS} items take >= {floor_s(1):.2f} s for the greedy "
        f"plan (1 row per item) and >= {floor_s(rows_lookahead):.1f} s for the lookahead "
        f"({rows_lookahead} rows per item, screens {default.screens})")
  times = {}
  for plan in ("greedy", "quota"):
    pol = gemb.policies.build(f"discoverability(plan={plan!r})")
    pol.model = model
    times[plan], x = _timed(lambda: pol.allocate(obs, rng))
    assert x.sum() <= obs.budget + 1e-6 and np.all(x >= 0)
    print(f"discoverability(plan={plan!r}), {N_ITEMS} items end to end: {times[plan]:.2f} s, "
          f"funds {int((x > 0).sum())} items")
  if default.plan_kind == "lookahead":
    small = observation(LOOKAHEAD_ITEMS)
    t_small, x = _timed(lambda: default.allocate(small, rng), repeats=1)
    t_default = t_small * N_ITEMS / LOOKAHEAD_ITEMS
    print(f"discoverability (default, lookahead): {t_small:.2f} s for {LOOKAHEAD_ITEMS} items, "
          f"{t_default:.2f} s scaled to {N_ITEMS} (does not fit in memory at 1M)")
  else:
    t_default, x = _timed(lambda: default.allocate(obs, rng))
    print(f"discoverability (default, {default.plan_kind}): {t_default:.2f} s for {N_ITEMS}")

  cfg = SimConfig(periods=1, n_new=N_ITEMS, n_users=N_USERS, budget=8 * N_ITEMS, probe_users=64)
  sim = Simulator(cal, cfg, static, seed=0, index_factory=gemb.retrievers.get("exact"))
  idx = sim.active()
  alloc = np.where(np.random.default_rng(1).random(len(idx)) < 0.2, 40.0, 0.0)
  t = time.perf_counter()
  stats = sim.step(alloc, idx)
  t_step = time.perf_counter() - t
  print(f"one period, {N_ITEMS} items, {N_USERS} users, exact retrieval: {t_step:.2f} s; {stats}")
  load1 = os.getloadavg()
  print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1/5/15 min)")
  print(json.dumps({"default_policy_1m_s": round(t_default, 3), "greedy_1m_s":
                    round(times["greedy"], 3), "sim_period_1m_s": round(t_step, 3)}))


if __name__ == "__main__":
  main()
