"""The ``quickstart`` run kind: train -> evaluate (before and after) -> cold start, one report.

It composes the ``train``, ``eval`` and ``coldstart`` run kinds; each part writes into its own
subfolder of the workdir (``train/``, ``eval/``, ``coldstart/``) exactly as it would alone.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gemb import registry
from gemb.evaluation.bootstrap import bootstrap_ci
from gemb.evaluation.runner import evaluate_model, write_report
from gemb.evaluation.suite import format_table
from gemb.io import atomic_write
from gemb.run import Run


def _sub_run(run: Run, name: str, cfg) -> Run:
  sub = Run(cfg, run.workdir / name, run.recipe, is_writer=run.is_writer,
            tensorboard=run.tensorboard)
  sub.write_json("config.json", cfg.to_dict())
  return sub


def _main_scores(report: dict[str, Any], dim_key: str) -> dict[str, float]:
  return {task: per_dim[dim_key] for task, per_dim in report["main"].items()}


def task_table(before: dict[str, Any], after: dict[str, Any], dim_key: str) -> dict[str, Any]:
  """{task: {metric, split, chance, n_queries, n_corpus, untrained, trained, trained_ci95,
  delta_ci95, significant}} at one dim: the main metric of each task, its 95% bootstrap interval
  over queries and the paired interval of trained - untrained (the same resampled queries)."""
  out = {}
  for task, metric in after["main_metric"].items():
    row = {"metric": metric, "split": after["split"].get(task), "dim": dim_key,
           "chance": after["chance"][task].get(metric), "n_queries": after["n_queries"][task],
           "n_corpus": after["n_corpus"][task], "untrained": before["main"][task][dim_key],
           "trained": after["main"][task][dim_key], "trained_ci95": None, "delta_ci95": None,
           "significant": None}
    q_after = after["per_query"].get(task, {}).get(dim_key)
    q_before = before["per_query"].get(task, {}).get(dim_key)
    if q_after is not None and q_before is not None:
      row["trained_ci95"] = list(bootstrap_ci(q_after))
      row["delta_ci95"] = list(bootstrap_ci(q_after, q_before))
      row["significant"] = bool(row["delta_ci95"][0] > 0 or row["delta_ci95"][1] < 0)
    out[task] = row
  return out


@registry.runners.register("quickstart")
def quickstart(cfg, run: Run) -> dict[str, Any]:
  """Train, evaluate before/after, then compare cold-start policies on the trained embeddings."""
  from gemb import model as model_lib
  timings: dict[str, float] = {}
  ev = cfg.eval
  dims = tuple(int(d) for d in ev.dims)

  t = time.time()
  print("[1/4] evaluating the untrained model ...", flush=True)
  untrained = model_lib.load(cfg.train.model, seed=cfg.train.seed)
  before, _ = evaluate_model(untrained, ev.tasks, dims[:1], max_queries=ev.max_queries,
                             retriever=ev.retriever)
  del untrained
  timings["eval_untrained_s"] = time.time() - t

  t = time.time()
  print("[2/4] training (stages + soup) ...", flush=True)
  sub = _sub_run(run, "train", cfg.train)
  try:
    train_summary = registry.runners.get("train")(cfg.train, sub)
  finally:
    sub.close()
  timings["train_s"] = time.time() - t

  t = time.time()
  print("[3/4] evaluating the trained model ...", flush=True)
  model_dir = run.workdir / "train" / "model"
  trained = model_lib.load(str(model_dir))
  after, suite = evaluate_model(trained, ev.tasks, dims, max_queries=ev.max_queries,
                                retriever=ev.retriever)
  after["model"] = str(model_dir)
  eval_dir = run.workdir / "eval"
  if run.is_writer:
    eval_dir.mkdir(parents=True, exist_ok=True)
  write_report(eval_dir, after, suite, trained, ev.examples, is_writer=run.is_writer,
               title="Trained model")
  run.write_json("eval/report.json", after)
  run.write_json("eval/report_untrained.json", before)
  timings["eval_trained_s"] = time.time() - t

  t = time.time()
  print("[4/4] cold-start exploration on MovieLens-100k ...", flush=True)
  cs_cfg = cfg.coldstart
  if cs_cfg.embedder == "trained":
    with cs_cfg.unlocked():
      cs_cfg.embedder = str(model_dir)
  sub = _sub_run(run, "coldstart", cs_cfg)
  try:
    headline = registry.runners.get("coldstart")(cs_cfg, sub)
  finally:
    sub.close()
  cs_report = run.workdir / "coldstart" / "report.json"
  policies = json.loads(cs_report.read_text())["policies"] if run.is_writer else {}
  timings["coldstart_s"] = time.time() - t

  full = str(dims[0])
  summary = {
      "tasks": task_table(before, after, full),
      "retrieval_untrained": _main_scores(before, full),
      "retrieval_trained": _main_scores(after, full),
      "main_metric": before["main_metric"],
      "train": {k: v for k, v in train_summary.items() if k.startswith("validation")},
      "soup": train_summary.get("soup"),
      "coldstart": {name: p["discoverable"] for name, p in policies.items()},
      "coldstart_headline": headline,
      "timings_s": {k: round(v, 1) for k, v in timings.items()},
  }
  for task in summary["tasks"]:
    run.log(task=task, untrained=summary["retrieval_untrained"][task],
            trained=summary["retrieval_trained"][task])
  table = summary_table(summary, full)
  if run.is_writer:
    atomic_write(run.workdir / "report.md",
                      "# gemb quickstart\n\n" + table + "\n\n## Trained model, every dim\n\n"
                      + format_table(after) + "\n")
  run.write_json("summary.json", summary)
  print("\n" + table, flush=True)
  return summary


def _ci(ci) -> str:
  return "-" if ci is None else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def summary_table(summary: dict[str, Any], dim: str) -> str:
  lines = [f"Retrieval on the test splits (main metric x 100, dim {dim}, ScaNN; 95% bootstrap "
           "intervals over queries; delta: paired, the same resampled queries for both models; "
           "* where the delta's interval excludes 0):", "",
           "| task | metric | queries / corpus | chance | untrained | trained | delta |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for task, r in summary["tasks"].items():
    trained = f"{100 * r['trained']:.1f}"
    if r["trained_ci95"] is not None:
      trained += f" [{100 * r['trained_ci95'][0]:.1f}, {100 * r['trained_ci95'][1]:.1f}]"
    delta = f"{100 * (r['trained'] - r['untrained']):+.1f} {_ci(r['delta_ci95'])}"
    if r["significant"]:
      delta += " *"
    chance = "-" if r["chance"] is None else f"{100 * r['chance']:.1f}"
    lines.append(f"| {task} | {r['metric']} | {r['n_queries']} / {r['n_corpus']} | {chance} | "
                 f"{100 * r['untrained']:.1f} | {trained} | {delta} |")
  soup = summary.get("soup")
  if soup and soup.get("scores"):  # which training the saved model holds, and why
    dropped = [c for c in soup["scores"] if c != "soup" and c not in soup["kept"]]
    lines += ["", f"Model soup ({soup['method']}, chosen on the validation split): kept "
              f"{', '.join(soup['kept'])}; validation score of each candidate: "
              + ", ".join(f"{c} {v:.3f}" for c, v in soup["scores"].items())
              + (f". Not averaged in ({', '.join(dropped)}): adding each lowered that score."
                 if dropped else ".")]
  lines += ["", "Cold start: discoverable items per policy, same budget (mean ± std over seeds):",
            "", "| policy | discoverable |", "|---|---:|"]
  for name, s in summary["coldstart"].items():
    if "mean" in s:
      lines.append(f"| {name} | {s['mean']:.1f} ± {s.get('std', 0.0):.1f} |")
  t = summary["timings_s"]
  lines += ["", "Time (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in t.items())]
  return "\n".join(lines)


def check_config(cfg) -> None:
  """The train and cold-start parts' checks, before anything runs."""
  from gemb.coldstart.runner import check_config as check_coldstart
  from gemb.train.runner import check_config as check_train
  check_train(cfg.train)
  check_coldstart(cfg.coldstart)


quickstart.check_config = check_config
