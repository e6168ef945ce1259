"""The ``coldstart`` run kind: every policy through the same simulated periods, budget and seeds.

Writes into the run's workdir ``report.json`` (per-policy results per seed, the model's
calibration, headline ratios), ``report.md`` and plots: ``discoverable.png`` (discoverable items
over time per policy), ``traffic.png`` (traffic per item), ``calibration.png`` (reliability).

The run state is one Orbax checkpoint per simulated period under ``<workdir>/ckpt`` (keep last K,
written atomically by `gemb.checkpoint.Checkpointer`): the discoverability model, the
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
from gemb.checkpoint import Checkpointer
from gemb.coldstart import model as model_lib
from gemb.coldstart.bound import hindsight_bound
from gemb.coldstart.calibrate import calibrate
from gemb.coldstart.episode import Episode, collect_logs, policy_rng, run_episode
from gemb.coldstart.features import ITEM_FEATURES, resolve_embedder, static_features
from gemb.coldstart.engagement import N_ENGAGEMENT
from gemb.coldstart.policies.protocol import PolicyContext
from gemb.coldstart.simulator import SimConfig, Simulator
from gemb.config import flat_items
from gemb.data.movielens import load_movielens_100k
from gemb.errors import ConfigError
from gemb.evaluation.bootstrap import seed_summary


def index_factory(spec: str) -> Callable[[], Any]:
  """A gemb.retrievers spec; ``"local-exact"`` (older recipes) is ``"exact"``."""
  return registry.retrievers.get("exact" if spec == "local-exact" else spec)


def sim_config(cfg) -> SimConfig:
  """The `sim` section as a checked SimConfig (unknown keys, types and ranges are errors)."""
  from gemb.config import dataclass_from
  sc = dataclass_from(SimConfig, cfg.sim, where="sim")
  sc.validate()
  return sc


def check_config(cfg) -> None:
  """Settings that would otherwise fail after calibration or training; before any work."""
  if not cfg.policies:
    raise ConfigError("coldstart: `policies` is empty; name at least one gemb.policies spec.")
  sim_config(cfg)
  if cfg.item_features not in ITEM_FEATURES:
    raise ConfigError(f"coldstart: item_features must be one of {ITEM_FEATURES}, got "
                      f"{cfg.item_features!r}.")
  if cfg.model.holdout not in ("rows", "template"):
    raise ConfigError(f"coldstart: model.holdout must be 'rows' or 'template', got "
                      f"{cfg.model.holdout!r}.")
  for spec in cfg.policies:
    registry.policies.get(spec)


def template_split(cal, fractions, seed: int = 0) -> dict[str, np.ndarray]:
  """Disjoint sets of MovieLens fresh templates for the model's training logs ("train"), policy
  tuning ("tune") and the evaluation episodes ("eval"), in proportion to `fractions` (three
  positive numbers). With `fractions` None every set is all templates (no split)."""
  t = np.asarray(cal.fresh_templates)
  if fractions is None:
    return {"train": t, "tune": t, "eval": t}
  f = np.asarray(fractions, np.float64)
  if f.shape != (3,) or np.any(f <= 0):
    raise ConfigError(f"coldstart: templates.split must be three positive shares (train, tune, "
                      f"eval), got {tuple(fractions)!r}.")
  perm = np.random.default_rng([seed, 11]).permutation(t)
  cut = np.round(np.cumsum(f) / f.sum() * len(perm)).astype(int)
  sets = {"train": perm[:cut[0]], "tune": perm[cut[0]:cut[1]], "eval": perm[cut[1]:]}
  if min(len(v) for v in sets.values()) == 0:
    raise ConfigError(f"coldstart: templates.split {tuple(fractions)!r} leaves a set of the "
                      f"{len(t)} fresh templates empty; give each set a larger share.")
  return {k: np.sort(v) for k, v in sets.items()}


def with_kwargs(spec: str, **kw) -> str:
  """The spec with keyword arguments set (replacing any of the same name)."""
  name, args, kwargs = registry.parse_spec(spec)
  kwargs = {**kwargs, **kw}
  parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
  return f"{name}({', '.join(parts)})" if parts else name


def spec_name(spec: str) -> str:
  return registry.parse_spec(spec)[0]


def family(spec: str) -> str:
  """The tuning family of a policy spec: its registry name, except that `discoverability`'s
  planners are families of their own ("discoverability" for the default lookahead, "greedy",
  "quota")."""
  name, _, kwargs = registry.parse_spec(spec)
  if name == "discoverability":
    plan = kwargs.get("plan", "lookahead")
    return name if plan == "lookahead" else plan
  return name


def main_policy(specs) -> str | None:
  """The evaluated policy the headline is about: the first `discoverability` spec with the
  default (lookahead) plan."""
  return next((s for s in specs if family(s) == "discoverability"), None)


def quota_policy(specs) -> str | None:
  return next((s for s in specs if family(s) == "quota"), None)


@registry.runners.register("coldstart")
def run_coldstart(cfg, run) -> dict[str, Any]:
  """Calibrate on MovieLens, train the discoverability model on logs, tune the baselines, compare
  every policy with the certified bound on evaluation templates the model never saw."""
  check_config(cfg)
  sc = sim_config(cfg)
  t0 = time.time()
  ml = load_movielens_100k()
  cal = calibrate(ml, dim=cfg.calibration.dim, fresh_fraction=cfg.calibration.fresh_fraction)
  embed = resolve_embedder(cfg.embedder) if cfg.item_features == "content" else None
  static = static_features(ml, embed, cfg.content_dims, include=cfg.item_features)
  make_index = index_factory(cfg.retriever)
  templates = template_split(cal, cfg.templates.split, cfg.templates.seed)
  run.log(step=0, phase="calibrated", mf_rmse=cal.rmse, feature_dim=static.shape[1],
          seconds=time.time() - t0)
  main = main_policy(cfg.policies)

  trained: dict[str, Any] = {}
  n_features = static.shape[1] + N_ENGAGEMENT
  ck = cfg.checkpoint
  ckpt = Checkpointer(run.workdir / "ckpt", every=ck.every, keep=ck.keep, async_save=False)
  state = RunState.restore(ckpt, cfg, n_features)
  if state.model is not None:
    trained.update(state.trained, result=model_lib.TrainResult(state.model, **state.fit))

  def get_model():
    if "result" not in trained:
      logs = [collect_logs(cal, sc, static, seed, x_max=cfg.model.log_x_max,
                           index_factory=make_index, templates=templates["train"])
              for seed in cfg.model.log_seeds]

      def fit(logs):
        data = {k: np.concatenate([l[k] for l in logs]) for k in logs[0]}
        groups = data["group"] if cfg.model.holdout == "template" else None
        res = model_lib.train(data["features"], data["x"], data["y"], hidden=cfg.model.hidden,
                              steps=cfg.model.steps, batch=cfg.model.batch, lr=cfg.model.lr,
                              x0=cfg.model.x0, seed=cfg.model.seed, members=cfg.model.members,
                              groups=groups, eval_every=cfg.model.eval_every)
        return res, data

      res, data = fit(logs)
      # Second round: logs from the states the configured policy itself visits (noised).
      for seed in cfg.model.onpolicy_seeds:
        pol = registry.policies.build(main or "discoverability")
        pol.model = res.model
        logs.append(collect_logs(cal, sc, static, seed, index_factory=make_index, policy=pol,
                                 templates=templates["train"]))
      if cfg.model.onpolicy_seeds:
        res, data = fit(logs)
      trained["result"] = res
      trained["rows"], trained["positive_rate"] = len(data["y"]), float(data["y"].mean())
      run.log(step=0, phase="model", val_loss=res.val_loss, ece=res.ece, rows=len(data["y"]),
              kept_step=res.steps)
    return trained["result"].model

  episodes: dict[str, list] = {}
  counter = [0]

  def run_job(label: str, spec: str, seed: int, tset: str) -> Episode:
    e = counter[0]
    counter[0] += 1
    if e < len(state.finished):
      ep = state.finished[e]
    else:
      policy = registry.policies.build(spec)
      if hasattr(policy, "prepare"):
        policy.prepare(PolicyContext(model=get_model, config=sc))
      sim = Simulator(cal, sc, static, seed, make_index, templates[tset])
      rng = policy_rng(seed)
      if state.current is not None and state.current["episode"] == e:
        state.resume_episode(sim, rng, policy)

      def save(sim, rng, e=e, policy=policy):
        state.capture(e, sim, rng, policy, trained)
        state.save(ckpt, e * sc.periods + sim.period, cfg)

      ep = run_episode(sim, policy, label, seed, rng=rng, after_period=save)
      state.finished.append(ep)
      state.current = None
      run.log(step=seed, policy=label, discoverable=ep.n_discoverable, spent=ep.spent,
              wall_s_per_period=ep.wall_s_per_period)
    episodes.setdefault(label, []).append(ep)
    return ep

  # 1. Tuning: every candidate setting of a family on the tuning seeds and templates.
  tuned: dict[str, dict[str, Any]] = {}
  for fam, specs in cfg.tuning.candidates.items():
    if fam not in {family(p) for p in cfg.policies} or not cfg.tuning.seeds:
      continue
    scores = {}
    for spec in specs:
      scores[spec] = float(np.mean([run_job(f"tune/{spec}", spec, seed, "tune").n_discoverable
                                    for seed in cfg.tuning.seeds]))
    best = max(scores, key=scores.get)  # first of the best on ties
    tuned[fam] = {"spec": best, "tuning_mean": scores}
  # 2. Evaluation on templates never seen in training (the headline).
  eval_specs = [tuned[family(s)]["spec"] if family(s) in tuned else s for s in cfg.policies]
  main = main_policy(eval_specs)
  for spec in eval_specs:
    for seed in cfg.seeds:
      run_job(spec, spec, seed, "eval")
  # 3. The main policy on the training templates (the "seen templates" row).
  if main is not None and cfg.seen_templates:
    for seed in cfg.seeds:
      run_job(f"seen/{main}", main, seed, "train")
  # 4. Cost cap sweep.
  for spec in cfg.cost_sweep.policies:
    for c_max in cfg.cost_sweep.c_max:
      capped = with_kwargs(spec, cost_budget=float(c_max))
      for seed in cfg.cost_sweep.seeds:
        run_job(f"sweep/{capped}", capped, seed, "eval")
  ckpt.close()
  bounds = {}
  if cfg.bound:
    bounds["eval"] = [hindsight_bound(Simulator(cal, sc, static, s, make_index,
                                                templates["eval"])).value for s in cfg.seeds]
    if main is not None and cfg.seen_templates:
      bounds["train"] = [hindsight_bound(Simulator(cal, sc, static, s, make_index,
                                                   templates["train"])).value for s in cfg.seeds]
  report = build_report(cfg, sc, cal, episodes, trained, eval_specs, tuned, bounds, templates)
  report["seconds"] = round(time.time() - t0, 1)
  run.write_json("report.json", report)
  run.write_json("summary.json", report["summary"])
  if run.is_writer:
    write_markdown(run.workdir / "report.md", report)
    if cfg.plots:
      write_plots(run.workdir, report, {k: v for k, v in episodes.items() if k in eval_specs})
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
                  "reliability": res.reliability, "steps": res.steps}
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
             "wall_s_per_period": ep.wall_s_per_period, "cost": ep.cost, "stats": ep.stats}
            for ep in self.finished]
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
                                             cfg.model.members, rngs=nnx.Rngs(0))
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
                                   d["wall_s_per_period"], d["cost"], d["stats"]))
    # An episode whose last period was saved but not yet listed as finished resumes at its end
    # (the simulator is done) and is rebuilt from the restored state.
    return self


GOALS = {"vs_bound": 0.85, "vs_best_baseline": 1.2}


def _ratio(num, den) -> dict[str, Any]:
  r = [x / max(y, 1) for x, y in zip(num, den)]
  return {"per_seed": r, **seed_summary(r)}


def _paired(a, b) -> dict[str, Any]:
  """Paired comparison on the same seeds: differences a - b, their interval, wins/ties/losses."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  return {"difference": seed_summary(d), "wins": int((d > 0).sum()), "ties": int((d == 0).sum()),
          "losses": int((d < 0).sum())}


def build_report(cfg, sc: SimConfig, cal, episodes, trained, eval_specs, tuned, bounds,
                 templates) -> dict[str, Any]:
  seeds = list(cfg.seeds)
  count = {k: [e.n_discoverable for e in eps] for k, eps in episodes.items()}
  policies = {}
  for name in eval_specs:
    eps = episodes[name]
    policies[name] = {
        "discoverable_per_seed": count[name], "discoverable": seed_summary(count[name]),
        "curve_mean": np.mean([e.discoverable_by_period for e in eps], 0).tolist(),
        "spent_per_seed": [e.spent for e in eps],
        "cost_per_seed": [e.cost for e in eps],
        "items_with_traffic_share": float(np.mean([np.mean(e.traffic_per_item > 0)
                                                   for e in eps])),
        "traffic_per_item_mean": float(np.mean([e.traffic_per_item.mean() for e in eps])),
        "wall_s_per_period": float(np.mean([e.wall_s_per_period for e in eps])),
    }
    st = [e.stats for e in eps if e.stats and e.stats.get("items_planned")]
    if st:
      policies[name]["finite_quota_share"] = float(
          sum(x["finite_quota"] for x in st) / sum(x["items_planned"] for x in st))
  main, quota = main_policy(eval_specs), quota_policy(eval_specs)
  truthy = {s for s in eval_specs
            if getattr(registry.policies.get(spec_name(s)), "needs_truth", False)}
  baselines = [s for s in eval_specs if spec_name(s) != "discoverability" and s not in truthy]
  headline: dict[str, Any] = {"seeds": seeds, "main_policy": main, "quota_policy": quota,
                              "unseen_templates": cfg.templates.split is not None}
  if "eval" in bounds:
    headline["bound"] = {"per_seed": bounds["eval"], **seed_summary(bounds["eval"])}
  if main is not None:
    if "eval" in bounds:
      headline["main_over_bound"] = _ratio(count[main], bounds["eval"])
    if "train" in bounds:
      headline["seen_templates_main_over_bound"] = _ratio(count[f"seen/{main}"], bounds["train"])
      headline["seen_templates_main"] = seed_summary(count[f"seen/{main}"])
    if "uniform" in eval_specs:
      headline["main_over_uniform"] = _ratio(count[main], count["uniform"])
    if baselines:
      best = max(baselines, key=lambda s: np.mean(count[s]))
      headline["best_baseline"] = best
      headline["main_over_best_baseline"] = _ratio(count[main], count[best])
    headline["paired"] = {s: _paired(count[main], count[s]) for s in eval_specs if s != main}
  if quota is not None and "eval" in bounds:
    headline["quota_over_bound"] = _ratio(count[quota], bounds["eval"])
  for s in truthy:
    if "eval" in bounds:
      headline[f"{spec_name(s)}_over_bound"] = _ratio(count[s], bounds["eval"])
  vb, vbb = headline.get("main_over_bound"), headline.get("main_over_best_baseline")
  if vb:
    headline["goal_vs_bound_met"] = bool(vb["mean"] >= GOALS["vs_bound"])
  if vbb:
    headline["goal_vs_best_baseline_met"] = bool(vbb["mean"] >= GOALS["vs_best_baseline"]
                                                 and vbb["ci95"][0] > 1.0)
  summary = {"vs_bound": vb["mean"] if vb else None,
             "vs_best_baseline": vbb["mean"] if vbb else None,
             "vs_best_baseline_ci95": vbb["ci95"] if vbb else None,
             "quota_vs_bound": headline["quota_over_bound"]["mean"]
             if "quota_over_bound" in headline else None,
             "seeds": len(seeds), "unseen_templates": headline["unseen_templates"]}
  sweep = {}
  for label, eps in episodes.items():
    if label.startswith("sweep/"):
      spec = label[len("sweep/"):]
      name, args, kwargs = registry.parse_spec(spec)
      c_max = kwargs.pop("cost_budget")
      base = with_kwargs(name, **kwargs) if (args or kwargs) else name
      sweep.setdefault(base, []).append({"c_max": c_max, "discoverable": seed_summary(count[label]),
                                         "cost_per_period": float(np.mean(
                                             [e.cost for e in eps])) / sc.periods})
  tuning = {fam: {"spec": t["spec"], "tuning_mean": t["tuning_mean"],
                  "seeds": list(cfg.tuning.seeds)} for fam, t in tuned.items()}
  model = None
  if "result" in trained:
    res = trained["result"]
    model = {"train_loss": res.train_loss, "val_loss": res.val_loss, "ece": res.ece,
             "reliability": res.reliability, "log_rows": trained["rows"],
             "log_positive_rate": trained["positive_rate"]}
  return {"sim": dataclasses.asdict(sc), "embedder": cfg.embedder, "retriever": cfg.retriever,
          "calibration": {"mf_rmse": cal.rmse, "fresh_templates": int(len(cal.fresh_templates)),
                          "established_items": int(len(cal.established))},
          "templates": {k: v.tolist() for k, v in templates.items()},
          "items_entered": sc.periods * sc.n_new, "policies": policies, "model": model,
          "tuning": tuning, "cost_sweep": sweep, "headline": headline, "summary": summary}


def _fmt(r: dict[str, Any], digits: int = 3) -> str:
  return (f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f} (95% CI {r['ci95'][0]:.{digits}f} to "
          f"{r['ci95'][1]:.{digits}f}, min {r['min']:.{digits}f})")


def write_markdown(path: pathlib.Path, report: dict[str, Any]) -> None:
  sc, h = report["sim"], report["headline"]
  lines = ["# Cold-start exploration: policies at the same budget", "",
           f"{report['items_entered']} fresh items over {sc['periods']} periods "
           f"({sc['n_new']}/period), {sc['n_users']} users/period, budget {sc['budget']} "
           f"impressions/period; evaluation seeds {h['seeds']} on "
           f"{'templates never seen in training' if h['unseen_templates'] else 'all templates'} "
           f"({len(report['templates']['eval'])} evaluation, {len(report['templates']['train'])} "
           f"training, {len(report['templates']['tune'])} tuning templates); embedder "
           f"`{report['embedder']}`, retriever `{report['retriever']}`. Intervals: 95% t-intervals "
           "of the mean over seeds.", "",
           "| policy | discoverable (mean ± std) | 95% CI | per seed | exploration cost / "
           "period |",
           "|---|---|---|---|---|"]
  if "bound" in h:
    b = h["bound"]
    lines.append(f"| **certified bound** | {b['mean']:.1f} ± {b['std']:.1f} | {b['ci95'][0]:.1f} "
                 f"to {b['ci95'][1]:.1f} | {b['per_seed']} | - |")
  for name, p in report["policies"].items():
    d = p["discoverable"]
    lines.append(f"| {name} | {d['mean']:.1f} ± {d['std']:.1f} | {d['ci95'][0]:.1f} to "
                 f"{d['ci95'][1]:.1f} | {p['discoverable_per_seed']} | "
                 f"{np.mean(p['cost_per_seed']) / sc['periods']:.1f} |")
  lines.append("")
  rows = [("main_over_bound", f"{h.get('main_policy')} ÷ bound", f"≥ {GOALS['vs_bound']}"),
          ("main_over_best_baseline", f"{h.get('main_policy')} ÷ best tuned baseline "
           f"({h.get('best_baseline')})", f"≥ {GOALS['vs_best_baseline']}, CI above 1"),
          ("main_over_uniform", f"{h.get('main_policy')} ÷ uniform", "-"),
          ("quota_over_bound", f"{h.get('quota_policy')} ÷ bound", "-"),
          ("truth_heuristic_over_bound", "truth_heuristic ÷ bound", "-"),
          ("seen_templates_main_over_bound", f"{h.get('main_policy')} ÷ bound, SEEN templates",
           "-")]
  lines += ["| ratio (per seed, then over seeds) | mean ± std (95% CI, min) | goal |",
            "|---|---|---|"]
  for key, what, goal in rows:
    if key in h:
      lines.append(f"| {what} | {_fmt(h[key])} | {goal} |")
  if "paired" in h:
    lines += ["", f"Paired on the same seeds: {h['main_policy']} minus each policy "
              "(discoverable items).", "", "| policy | mean difference (95% CI) | wins / ties / "
              "losses |", "|---|---|---|"]
    for name, pr in h["paired"].items():
      d = pr["difference"]
      lines.append(f"| {name} | {d['mean']:+.1f} ({d['ci95'][0]:+.1f} to {d['ci95'][1]:+.1f}) | "
                   f"{pr['wins']} / {pr['ties']} / {pr['losses']} |")
  shares = {n: p["finite_quota_share"] for n, p in report["policies"].items()
            if "finite_quota_share" in p}
  for n, v in shares.items():
    lines += ["", f"`{n}`: {100 * v:.1f}% of planned item-periods had a finite quota at its CF."]
  if report["tuning"]:
    lines += ["", "Tuned baselines (best mean discoverable on the tuning seeds and templates):", "",
              "| family | chosen | candidates (tuning mean) |", "|---|---|---|"]
    for fam, t in report["tuning"].items():
      cands = ", ".join(f"`{k}` {v:.1f}" for k, v in t["tuning_mean"].items())
      lines.append(f"| {fam} | `{t['spec']}` | {cands} |")
  if report["cost_sweep"]:
    lines += ["", "Cost cap sweep (C_max per period; discoverable items, mean over the sweep "
              "seeds):", "", "| policy | C_max | discoverable | cost spent / period |",
              "|---|---|---|---|"]
    for name, pts in report["cost_sweep"].items():
      for pt in pts:
        lines.append(f"| {name} | {pt['c_max']:g} | {pt['discoverable']['mean']:.1f} ± "
                     f"{pt['discoverable']['std']:.1f} | {pt['cost_per_period']:.1f} |")
  if report["model"]:
    m = report["model"]
    lines += ["", f"Discoverability model: validation cross-entropy {m['val_loss']:.4f}, expected "
              f"calibration error {m['ece']:.4f} on {m['log_rows']} log rows "
              f"(positive rate {m['log_positive_rate']:.3f}; training templates only); see "
              "calibration.png."]
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

  if report["cost_sweep"]:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in report["cost_sweep"].items():
      ax.plot([p["c_max"] for p in pts], [p["discoverable"]["mean"] for p in pts], "o-",
              label=name)
    for name, p in report["policies"].items():
      ax.axhline(p["discoverable"]["mean"], ls=":", lw=1, color="gray")
      per_period = np.mean(p["cost_per_seed"]) / report["sim"]["periods"]
      ax.annotate(f"{name} (uncapped, cost {per_period:.0f}/period)",
                  (0.01, p["discoverable"]["mean"]), xycoords=("axes fraction", "data"),
                  fontsize=6)
    ax.set(xscale="log", xlabel="C_max (exploration cost per period)",
           ylabel="discoverable items", title="Discoverable items against the cost cap")
    ax.legend(fontsize=7)
    save(fig, "cost_sweep.png")

  if report["model"]:
    rel = report["model"]["reliability"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ok = np.array(rel["count"]) > 0
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(np.array(rel["mean_predicted"])[ok], np.array(rel["observed"])[ok], "o-")
    ax.set(xlabel="predicted P(G=1|X)", ylabel="observed discoverable rate",
           title=f"Reliability (ECE {report['model']['ece']:.3f})", xlim=(0, 1), ylim=(0, 1))
    save(fig, "calibration.png")


run_coldstart.check_config = check_config  # gemb.run calls it before the run starts
