"""Cold-start at scale: allocation for 1M items, and one simulated period with 1M items, 100k users.

Setup: the MovieLens-calibrated platform (recbole's ml-100k, 16-dim factorization), hashed
bag-of-words content features reduced to 32 principal components as the recipe does (53 static
dims), CPU only. Side by side in one run:

* allocation for 1M items in exploration: the discoverability policy's greedy plan (quota at P =
  CF in closed form, tangent-point step, greedy by gain per impression) + the greedy allocator,
  against `uniform`; the model's forward pass over the 1M items is timed separately, for one MLP
  and for the recipe's ensemble of 10;
* the `discoverability` policy end to end with the 10-member model (model passes included), its
  greedy plan and its default lookahead plan (screen options scored over every click outcome, one
  price per impression found by bisection) side by side, for 10k and 100k items;
* one simulated period (exploration clicks for 1M items, admission, 100k users served by retrieval
  over the admitted pool, ranking, recommendation counts) with the simulator's own brute-force
  index, with `gemb.retrievers` "exact" and with `gemb.retrievers` "scann" (approximate, default
  settings; its discoverable count may differ slightly from the exact ones).

Run: ``python benchmarks/coldstart_scale.py``; the last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

N_ITEMS = 1_000_000
N_USERS = 100_000


def main() -> None:
  import jax
  from flax import nnx

  import gemb
  from gemb.coldstart import allocation as A
  from gemb.coldstart import model as M
  from gemb.coldstart.calibrate import calibrate
  from gemb.coldstart.features import bow_embed, static_features
  from gemb.coldstart.policies import N_ENGAGEMENT, plan_from_curve
  from gemb.coldstart.simulator import BruteForceIndex, SimConfig, Simulator
  from gemb.data.movielens import load_movielens_100k

  print(f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"jax {jax.__version__} on {jax.devices()[0].platform}")
  ml = load_movielens_100k()
  cal = calibrate(ml)
  static = static_features(ml, bow_embed(64), content_dims=32)
  rng = np.random.default_rng(0)
  out: dict = {"items": N_ITEMS, "users": N_USERS}

  # -- allocation for 1M items --------------------------------------------------------------
  feat = np.concatenate([static[rng.integers(0, len(static), N_ITEMS)],
                         rng.normal(size=(N_ITEMS, N_ENGAGEMENT)).astype(np.float32)], 1)
  imp = rng.integers(0, 60, N_ITEMS)
  post = rng.uniform(0.2, 0.7, N_ITEMS)
  t_model = {}
  for members in (1, 10):
    model = M.DiscoverabilityModel(feat.shape[1], 64, members=members, rngs=nnx.Rngs(0))
    M.curve(model, feat[:1000])  # compile
    t = time.perf_counter()
    M.curve(model, feat)
    t_model[members] = time.perf_counter() - t
  # Curves as a trained model gives them (most items need tens to hundreds of impressions).
  a = rng.normal(-3.0, 1.0, N_ITEMS).astype(np.float32)
  s = rng.uniform(0.5, 2.0, N_ITEMS).astype(np.float32)
  c = rng.normal(0.0, 1.5, N_ITEMS).astype(np.float32)
  budget = 20 * N_ITEMS
  times = []
  for _ in range(3):
    t = time.perf_counter()
    plan = plan_from_curve(a, s, c, model.x0, imp, 0.99, 400.0, 24, post, (8.0, 12.0), 40.0)
    x = A.allocate(plan["gain"], plan["ask"], budget, plan["cost"], None)
    times.append(time.perf_counter() - t)
  assert x.sum() <= budget + 1e-6 and np.all(x >= 0)
  t = time.perf_counter()
  xu = np.full(N_ITEMS, budget / N_ITEMS)
  t_uniform = time.perf_counter() - t
  out["allocation_1m_s"] = round(min(times), 3)
  out["allocation_1m_s_runs"] = [round(v, 3) for v in times]
  out["model_forward_1m_s"] = round(t_model[1], 3)
  out["model_forward_1m_s_10_members"] = round(t_model[10], 3)
  out["uniform_allocation_1m_s"] = round(t_uniform, 4)
  out["allocation_goal_le_1s_met"] = bool(min(times) <= 1.0)
  print(f"allocation, 1M items: plan + greedy {min(times):.3f} s (runs {times}); uniform {t_uniform:.4f} s; funded {int((x > 0).sum())} items, "
        f"{x.sum():.0f} of {budget} impressions; uniform gives {xu[0]:.1f} each")
  print(f"model forward, 1M items: {t_model[1]:.3f} s (one MLP), {t_model[10]:.3f} s (10 members)")

  # -- both plans of the policy, end to end, at 10k and 100k items ---------------------------
  # `discoverability` as a user runs it (model passes included), greedy and lookahead side by
  # side on the same observation. The lookahead scores every click outcome of its screens with
  # the model (73 rows per item for screens 10, 20, 40), hence the smaller sizes.
  from gemb.coldstart.policies import Discoverability
  from gemb.coldstart.simulator import Observation
  model10 = M.DiscoverabilityModel(feat.shape[1], 64, members=10, rngs=nnx.Rngs(0))
  for n_plan in (10_000, 100_000):
    obs = Observation(0, 20 * n_plan, np.arange(n_plan), feat[:n_plan, :-N_ENGAGEMENT],
                      imp[:n_plan], rng.binomial(imp[:n_plan], post[:n_plan]),
                      rng.integers(0, 3, n_plan), np.zeros(n_plan, np.int64),
                      np.zeros(n_plan, bool), (8.0, 12.0), SimConfig())
    line = []
    for plan in ("greedy", "lookahead"):
      pol = Discoverability(plan=plan)
      pol.model = model10
      pol.allocate(obs, rng)  # compile
      t = time.perf_counter()
      xp = pol.allocate(obs, rng)
      dt = time.perf_counter() - t
      assert xp.sum() <= obs.budget + 1e-6 and np.all(xp >= 0)
      out[f"policy_{plan}_{n_plan // 1000}k_s"] = round(dt, 2)
      line.append(f"{plan} {dt:.2f} s (funds {int((xp > 0).sum())} items)")
    print(f"discoverability end to end, {n_plan} items, 10 members: " + "; ".join(line))

  # -- one simulated period, 1M items and 100k users ----------------------------------------
  cfg = SimConfig(periods=1, n_new=N_ITEMS, n_users=N_USERS, budget=8 * N_ITEMS, probe_users=64)
  backends = (("local-exact", BruteForceIndex), ("exact", gemb.retrievers.get("exact")),
              ("scann", gemb.retrievers.get("scann")))
  for name, factory in backends:
    t = time.perf_counter()
    sim = Simulator(cal, cfg, static, seed=0, index_factory=factory)
    t_build = time.perf_counter() - t
    idx = sim.active()
    # A fifth of the items get 40 impressions each (what a discoverability-style plan does).
    alloc = np.where(np.random.default_rng(1).random(len(idx)) < 0.2, 40.0, 0.0)
    t = time.perf_counter()
    stats = sim.step(alloc, idx)
    t_step = time.perf_counter() - t
    print(f"period with {name}: {t_step:.2f} s (world of {N_ITEMS} items drawn in {t_build:.2f} "
          f"s); {stats}")
    out[f"period_s_{name}"] = round(t_step, 2)
    out[f"admitted_fresh_{name}"] = stats["admitted_fresh"]
    out[f"discoverable_{name}"] = stats["discoverable"]
  print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
  main()
