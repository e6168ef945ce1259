"""The ``coldstart`` run kind: every policy through the same simulated periods, budget and seeds.

Writes into the run's workdir ``report.json`` (per-policy results per seed, the model's
calibration, headline ratios), ``report.md`` and plots: ``discoverable.png`` (discoverable items
over time per policy), ``traffic.png`` (traffic per item), ``calibration.png`` (reliability).

The run state is one Orbax checkpoint per simulated period under ``<workdir>/ckpt`` (keep last K,
written atomically by `gemb.train.checkpoint.Checkpointer`): the discoverability model, the
simulator's counters and user RNG, the policy's RNG (and its ``get_state()`` if it has one), the
period, and the episodes already finished. Running again in the same workdir resumes from the
latest one and ends with the same report as a run that was never stopped.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any, Callable

import numpy as np
from flax import nnx

from gemb import registry
from gemb.coldstart import model as model_lib
from gemb.coldstart.calibrate import calibrate
from gemb.coldstart.episode import Episode, collect_logs, policy_rng, run_episode
from gemb.coldstart.features import resolve_embedder, static_features
from gemb.coldstart.engagement import N_ENGAGEMENT
from gemb.coldstart.policies.protocol import PolicyContext
from gemb.coldstart.simulator import SimConfig, Simulator
from gemb.config import flat_items
from gemb.data.movielens import load_movielens_100k
from gemb.errors import ConfigError
from gemb.train.checkpoint import Checkpointer


def index_factory(spec: str) -> Callable[[], Any]:
  """A gemb.retrievers spec; ``"local-exact"`` (older recipes) is ``"exact"``."""
  return registry.retrievers.get("exact" if spec == "local-exact" else spec)


def sim_config(cfg) -> SimConfig:
  known = {f.name for f in dataclasses.fields(SimConfig)}
  unknown = set(cfg.sim.keys()) - known
  if unknown:
    raise ConfigError(f"coldstart: unknown sim keys {sorted(unknown)}; known: {sorted(known)}.")
  sc = SimConfig(**cfg.sim.to_dict())
  sc.validate()
  return sc


def _stats(v) -> dict[str, float]:
  v = np.asarray(v, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
          "min": float(v.min()), "max": float(v.max())}


@registry.runners.register("coldstart")
def run_coldstart(cfg, run) -> dict[str, Any]:
  """Calibrate on MovieLens, train the discoverability model on logs, compare the policies."""
  if not cfg.policies:
    raise ConfigError("coldstart: `policies` is empty; name at least one gemb.policies spec.")
  sc = sim_config(cfg)
  t0 = time.time()
  ml = load_movielens_100k()
  cal = calibrate(ml, dim=cfg.calibration.dim, fresh_fraction=cfg.calibration.fresh_fraction)
  static = static_features(ml, resolve_embedder(cfg.embedder), cfg.get("content_dims"))
  make_index = index_factory(cfg.retriever)
  run.log(step=0, phase="calibrated", mf_rmse=cal.rmse, feature_dim=static.shape[1],
          seconds=time.time() - t0)

  trained: dict[str, Any] = {}
  n_features = static.shape[1] + N_ENGAGEMENT
  ck = cfg.get("checkpoint", None)
  ckpt = Checkpointer(run.workdir / "ckpt", every=ck.every if ck else 1, keep=ck.keep if ck else 2,
                      async_save=False)
  state = RunState.restore(ckpt, cfg, n_features)
  if state.model is not None:
    trained.update(state.trained, result=model_lib.TrainResult(state.model, **state.fit))

  def get_model():
    if "result" not in trained:
      logs = [collect_logs(cal, sc, static, seed, x_max=cfg.model.log_x_max,
                           index_factory=make_index) for seed in cfg.model.log_seeds]

      def fit(logs):
        data = {k: np.concatenate([l[k] for l in logs]) for k in logs[0]}
        res = model_lib.train(data["features"], data["x"], data["y"], hidden=cfg.model.hidden,
                              steps=cfg.model.steps, batch=cfg.model.batch, lr=cfg.model.lr,
                              x0=cfg.model.x0, seed=cfg.model.seed,
                              members=cfg.model.get("members", 1))
        return res, data

      res, data = fit(logs)
      # Second round: logs from the states the policy itself visits (with noisy allocations).
      for seed in cfg.model.onpolicy_seeds:
        pol = registry.policies.build("discoverability")
        pol.model = res.model
        logs.append(collect_logs(cal, sc, static, seed, index_factory=make_index, policy=pol))
      if cfg.model.onpolicy_seeds:
        res, data = fit(logs)
      trained["result"] = res
      trained["rows"], trained["positive_rate"] = len(data["y"]), float(data["y"].mean())
      run.log(step=0, phase="model", val_loss=res.val_loss, ece=res.ece, rows=len(data["y"]))
    return trained["result"].model

  episodes: dict[str, list] = {}
  jobs = [(spec, seed) for spec in cfg.policies for seed in cfg.seeds]
  for e, (spec, seed) in enumerate(jobs):
    if e < len(state.finished):
      ep = state.finished[e]
      episodes.setdefault(spec, []).append(ep)
      continue
    policy = registry.policies.build(spec)
    if hasattr(policy, "prepare"):
      policy.prepare(PolicyContext(model=get_model, config=sc))
    sim = Simulator(cal, sc, static, seed, make_index)
    rng = policy_rng(seed)
    if state.current is not None and state.current["episode"] == e:
      state.resume_episode(sim, rng, policy)

    def save(sim, rng, e=e, policy=policy):
      state.capture(e, sim, rng, policy, trained)
      state.save(ckpt, e * sc.periods + sim.period, cfg)

    ep = run_episode(sim, policy, spec, seed, rng=rng, after_period=save)
    state.finished.append(ep)
    state.current = None
    episodes.setdefault(spec, []).append(ep)
    run.log(step=seed, policy=spec, discoverable=ep.n_discoverable, spent=ep.spent,
            wall_s_per_period=ep.wall_s_per_period)
  ckpt.close()
  report = build_report(cfg, sc, cal, episodes, trained)
  report["seconds"] = round(time.time() - t0, 1)
  run.write_json("report.json", report)
  if run.is_writer:
    write_markdown(run.workdir / "report.md", report)
    if cfg.plots:
      write_plots(run.workdir, report, episodes)
  return report["headline"]


def _flat(cfg) -> dict[str, Any]:
  """The config keys that decide the results (not checkpointing or plotting), flattened."""
  return {k: v for k, v in flat_items(cfg).items() if not k.startswith(("checkpoint.", "plots"))}


class RunState:
  """What a cold-start run needs to resume, and its round trip through one Orbax checkpoint.

  Orbax ``state``: ``params`` (the discoverability model, once trained) and ``sim`` (the counters
  of the episode in progress). JSON ``meta``: the config, finished episodes, the episode in
  progress (simulator period, user RNG and history; the policy's RNG and state) and the model's
  training summary.
  """

  def __init__(self):
    self.finished: list[Episode] = []
    self.current: dict[str, Any] | None = None  # JSON part of the episode in progress
    self.sim_arrays: dict[str, np.ndarray] = {}
    self.model = None
    self.fit: dict[str, Any] = {}
    self.trained: dict[str, Any] = {}

  def capture(self, e: int, sim: Simulator, rng: np.random.Generator, policy: Any,
              trained: dict[str, Any]) -> None:
    self.sim_arrays, sim_meta = sim.state()
    self.current = {"episode": e, "sim": sim_meta, "rng": rng.bit_generator.state,
                    "policy": policy.get_state() if hasattr(policy, "get_state") else None}
    if "result" in trained and self.model is None:
      res = trained["result"]
      self.model = res.model
      self.fit = {"train_loss": res.train_loss, "val_loss": res.val_loss, "ece": res.ece,
                  "reliability": res.reliability}
      self.trained = {"rows": trained["rows"], "positive_rate": trained["positive_rate"]}

  def resume_episode(self, sim: Simulator, rng: np.random.Generator, policy: Any) -> None:
    sim.load_state(self.sim_arrays, self.current["sim"])
    rng.bit_generator.state = self.current["rng"]
    if self.current["policy"] is not None:
      policy.set_state(self.current["policy"])

  def save(self, ckpt: Checkpointer, step: int, cfg) -> None:
    params = {} if self.model is None else nnx.to_pure_dict(nnx.state(self.model))
    done = [{"policy": ep.policy, "seed": ep.seed, "curve": ep.discoverable_by_period,
             "traffic": ep.traffic_per_item.tolist(),
             "discoverable": np.nonzero(ep.discoverable)[0].tolist(), "spent": ep.spent,
             "wall_s_per_period": ep.wall_s_per_period} for ep in self.finished]
    meta = {"config": _flat(cfg), "finished": done, "current": self.current,
            "model": None if self.model is None else {"fit": self.fit, **self.trained}}
    ckpt.save(step, {"params": params, "sim": self.sim_arrays}, meta)

  @classmethod
  def restore(cls, ckpt: Checkpointer, cfg, n_features: int) -> "RunState":
    self = cls()
    step = ckpt.latest_step()
    if step is None:
      return self
    meta = ckpt.meta(step)
    want, have = _flat(cfg), meta["config"]
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
      k = diff[0]
      raise ConfigError(
          f"{ckpt.directory} holds a cold-start run of another config ({k} is "
          f"{have.get(k, 'absent')!r} there but {want.get(k, 'absent')!r} now; {len(diff)} keys "
          "differ). Use a fresh workdir, or delete that folder to start over.")
    target: dict[str, Any] = {"params": {}, "sim": {}}
    model = None
    if meta["model"] is not None:
      model = model_lib.DiscoverabilityModel(n_features, cfg.model.hidden, cfg.model.x0,
                                             cfg.model.get("members", 1), rngs=nnx.Rngs(0))
      target["params"] = nnx.to_pure_dict(nnx.state(model))
    n_items = cfg.sim.periods * cfg.sim.n_new
    if meta["current"] is not None:
      target["sim"] = {k: np.zeros(n_items, np.int64) for k in Simulator.COUNTERS}
    state, _ = ckpt.restore(step, target)
    if model is not None:
      graph_state = nnx.state(model)
      nnx.replace_by_pure_dict(graph_state, state["params"])
      nnx.update(model, graph_state)
      self.model, self.fit = model, meta["model"]["fit"]
      self.trained = {k: v for k, v in meta["model"].items() if k != "fit"}
    self.sim_arrays = {k: np.asarray(v) for k, v in state["sim"].items()}
    self.current = meta["current"]
    for d in meta["finished"]:
      disc = np.zeros(n_items, bool)
      disc[d["discoverable"]] = True
      self.finished.append(Episode(d["policy"], d["seed"], d["curve"],
                                   np.asarray(d["traffic"], np.int64), disc, d["spent"],
                                   d["wall_s_per_period"]))
    # An episode whose last period was saved but not yet listed as finished resumes at its end
    # (the simulator is done) and is rebuilt from the restored state.
    return self


def build_report(cfg, sc: SimConfig, cal, episodes, trained) -> dict[str, Any]:
  seeds = list(cfg.seeds)
  policies = {}
  for name, eps in episodes.items():
    counts = [e.n_discoverable for e in eps]
    entered = [e.traffic_per_item for e in eps]
    policies[name] = {
        "discoverable_per_seed": counts, "discoverable": _stats(counts),
        "curve_mean": np.mean([e.discoverable_by_period for e in eps], 0).tolist(),
        "spent_per_seed": [e.spent for e in eps],
        "items_with_traffic_share": float(np.mean([np.mean(t > 0) for t in entered])),
        "traffic_per_item_mean": float(np.mean([t.mean() for t in entered])),
        "wall_s_per_period": float(np.mean([e.wall_s_per_period for e in eps])),
    }
  headline: dict[str, Any] = {"seeds": seeds}

  def ratio(a, b):
    if a in episodes and b in episodes:
      r = [x.n_discoverable / max(y.n_discoverable, 1) for x, y in zip(episodes[a], episodes[b])]
      return {"per_seed": r, **_stats(r)}
    return None

  main = "discoverability"
  headline["discoverability_over_uniform"] = ratio(main, "uniform")
  headline["discoverability_over_oracle"] = ratio(main, "oracle")
  if headline["discoverability_over_uniform"]:
    r = headline["discoverability_over_uniform"]
    headline["goal_1_3x_uniform_met"] = bool(r["mean"] >= 1.3)
    headline["goal_1_3x_uniform_met_every_seed"] = bool(r["min"] >= 1.3)
  if headline["discoverability_over_oracle"]:
    r = headline["discoverability_over_oracle"]
    headline["goal_90pct_oracle_met"] = bool(r["mean"] >= 0.9)
    headline["goal_90pct_oracle_met_every_seed"] = bool(r["min"] >= 0.9)
  model = None
  if "result" in trained:
    res = trained["result"]
    model = {"train_loss": res.train_loss, "val_loss": res.val_loss, "ece": res.ece,
             "reliability": res.reliability, "log_rows": trained["rows"],
             "log_positive_rate": trained["positive_rate"]}
  return {"sim": dataclasses.asdict(sc), "embedder": cfg.embedder, "retriever": cfg.retriever,
          "calibration": {"mf_rmse": cal.rmse, "fresh_templates": int(len(cal.fresh_templates)),
                          "established_items": int(len(cal.established))},
          "items_entered": sc.periods * sc.n_new, "policies": policies, "model": model,
          "headline": headline}


def write_markdown(path: pathlib.Path, report: dict[str, Any]) -> None:
  sc = report["sim"]
  lines = ["# Cold-start exploration: policies at the same budget", "",
           f"{report['items_entered']} fresh items over {sc['periods']} periods "
           f"({sc['n_new']}/period), {sc['n_users']} users/period, budget {sc['budget']} "
           f"impressions/period; seeds {report['headline']['seeds']}; embedder "
           f"`{report['embedder']}`, retriever `{report['retriever']}`.", "",
           "| policy | discoverable (mean ± std) | per seed | traffic spent / seed |",
           "|---|---|---|---|"]
  for name, p in report["policies"].items():
    d = p["discoverable"]
    lines.append(f"| {name} | {d['mean']:.1f} ± {d['std']:.1f} | {p['discoverable_per_seed']} | "
                 f"{int(np.mean(p['spent_per_seed']))} |")
  h = report["headline"]
  for key, goal in (("discoverability_over_uniform", "≥ 1.3"), ("discoverability_over_oracle",
                                                                 "≥ 0.9")):
    r = h.get(key)
    if r:
      lines.append("")
      lines.append(f"**{key}**: {r['mean']:.3f} ± {r['std']:.3f} (min {r['min']:.3f}; per seed "
                   f"{[round(x, 3) for x in r['per_seed']]}); goal {goal}: "
                   f"{'met' if r['mean'] >= float(goal.split()[-1]) else 'NOT met'} on the mean, "
                   f"{'met' if r['min'] >= float(goal.split()[-1]) else 'not met'} on every seed.")
  if report["model"]:
    m = report["model"]
    lines += ["", f"Discoverability model: validation cross-entropy {m['val_loss']:.4f}, expected "
              f"calibration error {m['ece']:.4f} on {m['log_rows']} log rows "
              f"(positive rate {m['log_positive_rate']:.3f}); see calibration.png."]
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  tmp.write_text("\n".join(lines) + "\n")
  os.replace(tmp, path)


def write_plots(workdir: pathlib.Path, report: dict[str, Any], episodes) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  def save(fig, name):
    tmp = workdir / f".{name}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, workdir / name)

  fig, ax = plt.subplots(figsize=(6, 4))
  for name, eps in episodes.items():
    c = np.array([e.discoverable_by_period for e in eps], np.float64)
    m, s = c.mean(0), c.std(0)
    ax.plot(np.arange(1, len(m) + 1), m, label=name)
    ax.fill_between(np.arange(1, len(m) + 1), m - s, m + s, alpha=0.2)
  ax.set(xlabel="period", ylabel="discoverable items (cumulative)",
         title="Discoverable items over time (mean ± std over seeds)")
  ax.legend(fontsize=8)
  save(fig, "discoverable.png")

  fig, ax = plt.subplots(figsize=(6, 4))
  for name, eps in episodes.items():
    t = np.sort(eps[0].traffic_per_item)[::-1]
    ax.plot(np.arange(1, len(t) + 1), np.maximum(t, 0.5), label=name)
  ax.set(xscale="log", yscale="log", xlabel="item rank", ylabel="exploration impressions",
         title=f"Traffic per item (seed {report['headline']['seeds'][0]})")
  ax.legend(fontsize=8)
  save(fig, "traffic.png")

  if report["model"]:
    rel = report["model"]["reliability"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ok = np.array(rel["count"]) > 0
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(np.array(rel["mean_predicted"])[ok], np.array(rel["observed"])[ok], "o-")
    ax.set(xlabel="predicted P(G=1|X)", ylabel="observed discoverable rate",
           title=f"Reliability (ECE {report['model']['ece']:.3f})", xlim=(0, 1), ylim=(0, 1))
    save(fig, "calibration.png")
