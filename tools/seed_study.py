"""The quickstart's training over several seeds: is each trained-vs-untrained difference a
property of the recipe or of one lucky seed?

    python3 tools/seed_study.py WORKDIR [SEEDS]       # SEEDS: comma-separated, default 0,1,2
    python3 tools/seed_study.py WORKDIR 0,1,2 --report-only   # re-aggregate finished seeds

For each seed: the quickstart recipe's training (its `train` config with `train.seed` set; the
seed drives initialisation of the new layers, data order and prompt dropout), then its evaluation
tasks on the test splits, exactly as `gemb run quickstart` evaluates them. The untrained model is
evaluated once (it does not depend on the seed beyond what its pretrained weights fix).

Writes WORKDIR/summary.json and WORKDIR/report.md: per task, the untrained score, each seed's
trained score and paired bootstrap interval over queries, and over seeds the mean difference
with its 95% Student-t interval (`gemb.evaluation.seed_summary`) and the chance level. Model
folders stay in WORKDIR/seed{S}/train (not meant for the repository).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time


def _evaluate(model, cfg) -> dict:
  from gemb.evaluation.runner import evaluate_model
  ev = cfg.eval
  report, _ = evaluate_model(model, ev.tasks, tuple(int(d) for d in ev.dims)[:1],
                             max_queries=ev.max_queries, retriever=ev.retriever)
  return report


def _train_seed(cfg, workdir: pathlib.Path, seed: int) -> None:
  from gemb import registry
  from gemb.run import Run
  train = cfg.train
  train.seed = seed
  run = Run(train, workdir / "train")
  run.write_json("config.json", train.to_dict())
  try:
    registry.runners.get("train")(train, run)
  finally:
    run.close()


def run_seeds(workdir: pathlib.Path, seeds: list[int], report_only: bool = False) -> None:
  import gemb  # noqa: F401  (registries)
  from gemb import model as model_lib
  from gemb.config import recipe_config
  from gemb.io import atomic_write
  cfg = recipe_config("quickstart")
  workdir.mkdir(parents=True, exist_ok=True)
  untrained_file = workdir / "untrained.json"
  if not report_only and not untrained_file.exists():
    t = time.time()
    report = _evaluate(model_lib.load(cfg.train.model, seed=cfg.train.seed), cfg)
    atomic_write(untrained_file, json.dumps(report))
    print(f"untrained evaluated in {time.time() - t:.0f} s", flush=True)
  for seed in seeds if not report_only else ():
    out = workdir / f"seed{seed}" / "report.json"
    if out.exists():
      continue
    t = time.time()
    _train_seed(recipe_config("quickstart"), workdir / f"seed{seed}", seed)
    report = _evaluate(model_lib.load(str(workdir / f"seed{seed}" / "train" / "model")), cfg)
    atomic_write(out, json.dumps(report))
    print(f"seed {seed}: trained and evaluated in {time.time() - t:.0f} s", flush=True)
  summarize(workdir, seeds, str(int(cfg.eval.dims[0])))


def summarize(workdir: pathlib.Path, seeds: list[int], dim: str) -> dict:
  from gemb.evaluation import seed_summary
  from gemb.io import atomic_write
  from gemb.quickstart import task_table
  before = json.loads((workdir / "untrained.json").read_text())
  rows = {}
  for seed in seeds:
    after = json.loads((workdir / f"seed{seed}" / "report.json").read_text())
    for task, row in task_table(before, after, dim).items():
      rows.setdefault(task, []).append(row)
  summary = {"seeds": seeds, "dim": int(dim), "split": "test", "tasks": {}}
  for task, per_seed in rows.items():
    first = per_seed[0]
    delta = [r["trained"] - r["untrained"] for r in per_seed]
    over_seeds = seed_summary(delta)
    summary["tasks"][task] = {
        "metric": first["metric"], "chance": first.get("chance"),
        "n_queries": first.get("n_queries"), "untrained": first["untrained"],
        "trained_per_seed": [r["trained"] for r in per_seed],
        "delta_ci95_per_seed": [r["delta_ci95"] for r in per_seed],
        "seeds_significant_up": sum(bool(r["significant"]) and r["delta_ci95"][0] > 0
                                    for r in per_seed),
        "delta_over_seeds": over_seeds,
        "significant_over_seeds": bool(over_seeds["ci95"][0] > 0 or over_seeds["ci95"][1] < 0),
    }
    # The t-interval measures training randomness on one fixed set of test queries, the paired
    # bootstrap the sampling of those queries: a difference is claimed only when both exclude 0
    # (every seed's paired interval, and the interval over seeds, on the same side).
    up = all(r["delta_ci95"][0] > 0 for r in per_seed) and over_seeds["ci95"][0] > 0
    down = all(r["delta_ci95"][1] < 0 for r in per_seed) and over_seeds["ci95"][1] < 0
    summary["tasks"][task]["claimed"] = "up" if up else "down" if down else "no"
  atomic_write(workdir / "summary.json", json.dumps(summary, indent=1))
  pct = lambda x: f"{100 * x:.1f}"
  lines = [f"# The quickstart's training over seeds {', '.join(map(str, seeds))}", "",
           f"Test splits (the quickstart's evaluation: first 300 queries a task), dim {dim}; "
           "values × 100. *paired CI per seed*: bootstrap over queries of trained − untrained; "
           "*over seeds*: mean difference and its 95% t-interval (n = number of seeds; training "
           "randomness on the same queries). *claimed*: both kinds of interval exclude 0 on the "
           "same side, for every seed.", "",
           "| task | metric | chance | untrained | trained per seed | paired CI per seed | "
           "seeds up (CI > 0) | Δ over seeds [95% t] | claimed |",
           "|---|---|---:|---:|---|---|---:|---|---|"]
  for task, t in summary["tasks"].items():
    d = t["delta_over_seeds"]
    cis = "; ".join(f"[{pct(a)}, {pct(b)}]" for a, b in t["delta_ci95_per_seed"])
    chance = pct(t["chance"]) if t["chance"] is not None else "–"
    lines.append(f"| {task} | {t['metric']} | {chance} | {pct(t['untrained'])} | "
                 f"{', '.join(pct(x) for x in t['trained_per_seed'])} | {cis} | "
                 f"{t['seeds_significant_up']}/{len(seeds)} | {100 * d['mean']:+.2f} "
                 f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] | {t['claimed']} |")
  atomic_write(workdir / "report.md", "\n".join(lines) + "\n")
  print("\n".join(lines))
  return summary


if __name__ == "__main__":
  if len(sys.argv) < 2:
    sys.exit(__doc__)
  seeds = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 and sys.argv[2][0] != "-" \
      else [0, 1, 2]
  run_seeds(pathlib.Path(sys.argv[1]), seeds, report_only="--report-only" in sys.argv)
