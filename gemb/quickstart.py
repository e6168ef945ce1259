"""The ``quickstart`` run kind: train -> evaluate (before and after) -> cold start, one report.

It composes the ``train``, ``eval`` and ``coldstart`` run kinds; each part writes into its own
subfolder of the workdir (``train/``, ``eval/``, ``coldstart/``) exactly as it would alone.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gemb import registry
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
      "retrieval_untrained": _main_scores(before, full),
      "retrieval_trained": _main_scores(after, full),
      "main_metric": before["main_metric"],
      "train": {k: v for k, v in train_summary.items() if k.startswith("eval")},
      "coldstart": {name: p["discoverable"] for name, p in policies.items()},
      "coldstart_headline": headline,
      "timings_s": {k: round(v, 1) for k, v in timings.items()},
  }
  for task in summary["retrieval_trained"]:
    run.log(task=task, untrained=summary["retrieval_untrained"][task],
            trained=summary["retrieval_trained"][task])
  table = summary_table(summary, full)
  if run.is_writer:
    atomic_write(run.workdir / "report.md",
        "# gemb quickstart\n\n" + table + "\n\n## Trained model, every dim\n\n" +
        format_table(after) + "\n")
  run.write_json("summary.json", summary)
  print("\n" + table, flush=True)
  return summary


def _check_quickstart_config(cfg) -> None:
  from gemb.train.runner import check_train_config
  check_train_config(cfg.train)


quickstart.check_config = _check_quickstart_config


def summary_table(summary: dict[str, Any], dim: str) -> str:
  lines = [f"Retrieval on held-out test splits (main metric x 100, dim {dim}, ScaNN):", "",
           "| task | metric | untrained | trained |", "|---|---|---:|---:|"]
  for task, after in summary["retrieval_trained"].items():
    before = summary["retrieval_untrained"][task]
    lines.append(f"| {task} | {summary['main_metric'][task]} | {100 * before:.1f} | "
                 f"{100 * after:.1f} |")
  lines += ["", "Cold start: discoverable items per policy, same budget (mean ± std over seeds):",
            "", "| policy | discoverable |", "|---|---:|"]
  for name, s in summary["coldstart"].items():
    if "mean" in s:
      lines.append(f"| {name} | {s['mean']:.1f} ± {s.get('std', 0.0):.1f} |")
  t = summary["timings_s"]
  lines += ["", "Time (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in t.items())]
  return "\n".join(lines)
