"""Measures the label-text bridge (gemb.model.bridge): untrained and after a short training.

    python3 tools/bridge_experiment.py eval SPLIT MODEL [MODEL ...]     # SPLIT: validation|test
    python3 tools/bridge_experiment.py train WORKDIR STEPS [EXTRA]      # then eval test+validation
      EXTRA: "real" adds ("openclipart", 1.0) and ("cldr-emoji", 1.0) to the pre-finetune mix

Sets (each: text→image and image→text R@1, 95% percentile-bootstrap intervals over queries
with gemb.evaluation.bootstrap_ci, chance; mean pairwise cosine of image vs caption embeddings):
  emoji      emoji(languages=('en','de','fr','es','ja')), first 250 pairs (50 images, 5 captions
             each); on validation English only, first 250 pairs
  clipart    openclipart (one image per caption): all 282 validation pairs; the first 300 of the
             1,065 test pairs (what a shared 2-core machine allowed)
BRIDGE_BEFORE="MODEL;MODEL" evaluates those (untrained) on test first; BRIDGE_PATCH_LR=0.1 sets
the image/video projections' learning-rate multiplier. Training is quickstart:tower's pre-finetuning stage only (STEPS steps), on the model given by
BRIDGE_MODEL (default: quickstart:tower's). One process: the tower features of the eval images
are computed once (the tokenizer's in-memory cache) for the untrained and the trained model.
"""

import json
import os
import sys
import time

import numpy as np

SETS = {
    "test": {"emoji": "emoji(languages=('en', 'de', 'fr', 'es', 'ja'), limit=250)",
             "clipart": "openclipart(limit=300)"},
    "validation": {"emoji": "emoji(languages=('en',), limit=250)", "clipart": "openclipart"},
}


def _mean_pairwise_cos(e: np.ndarray) -> float:
  s = e @ e.T
  n = len(e)
  return float((s.sum() - np.trace(s)) / (n * (n - 1)))


def measure(enc, spec: str, split: str) -> dict:
  import gemb
  from gemb.evaluation import bootstrap_ci
  src = gemb.datasets.build(spec, split=split)
  pairs = [src[i] for i in range(len(src))]
  task = pairs[0].get("task")
  q = enc.embed([p["query"] for p in pairs], task=task)
  docs_text = enc.embed([p["query"] for p in pairs])
  ids = [p.get("positive_id", i) for i, p in enumerate(pairs)]
  uniq = list(dict.fromkeys(ids))
  first = {pid: i for i, pid in reversed(list(enumerate(ids)))}
  img = enc.embed([pairs[first[u]]["positive"] for u in uniq])
  col = np.array([uniq.index(pid) for pid in ids])
  t2i = (np.argmax(q @ img.T, 1) == col).astype(float)
  best = np.argmax(img @ docs_text.T, 1)  # image → caption (documents): a hit when it is its own
  i2t = np.array([ids[best[k]] == u for k, u in enumerate(uniq)], float)
  per_image = len(pairs) / len(uniq)
  r = lambda x: round(float(x) * 100, 1)
  return {"set": spec, "split": split, "queries_t2i": len(pairs), "images": len(uniq),
          "t2i_r1": r(t2i.mean()), "t2i_ci95": [r(v) for v in bootstrap_ci(t2i)],
          "chance_t2i": r(1 / len(uniq)),
          "i2t_r1": r(i2t.mean()), "i2t_ci95": [r(v) for v in bootstrap_ci(i2t)],
          "chance_i2t": r(per_image / len(pairs)),
          "cos_images": round(_mean_pairwise_cos(img), 3),
          "cos_captions": round(_mean_pairwise_cos(docs_text), 3)}


def evaluate(model, split: str, name: str = "") -> list[dict]:
  from gemb.model import load
  enc = load(model) if isinstance(model, str) else model
  out = []
  for key, spec in SETS[split].items():
    t = time.time()
    m = measure(enc, spec, split)
    m.update(model=name or str(model), load_avg=round(os.getloadavg()[0], 1),
             eval_s=round(time.time() - t, 1))
    print(json.dumps(m), flush=True)
    out.append(m)
  return out


def train(workdir: str, steps: int, extra: str = "") -> None:
  import gemb  # noqa: F401  (registries)
  from gemb import registry
  from gemb.config import recipe_config
  from gemb.run import Run
  cfg = recipe_config("quickstart:tower").train
  if os.environ.get("BRIDGE_MODEL"):
    cfg.model = os.environ["BRIDGE_MODEL"]
  pre = cfg.stages.prefinetune
  if extra == "real":
    pre.tasks = tuple(pre.tasks) + (("openclipart", 1.0), ("cldr-emoji", 1.0))
  if os.environ.get("BRIDGE_TASKS") == "visual":  # image/video <-> text pairs only (no audio)
    pre.tasks = tuple(t for t in pre.tasks if t[0].split("(")[0] in
                      ("emoji", "clips", "openclipart", "cldr-emoji"))
  pre.steps = steps
  if os.environ.get("BRIDGE_PATCH_LR"):  # lr multiplier of the image/video projections
    from gemb.model.tokenizers import IMAGE, VIDEO
    rx = rf"^patch_embeds/({IMAGE}|{VIDEO})/"
    rest = tuple(g for g in pre.optim.param_groups if g[0] != rx)  # replaces the recipe's
    pre.optim.param_groups = ((rx, float(os.environ["BRIDGE_PATCH_LR"])),) + rest
  cfg.stage_order = ("prefinetune",)
  cfg.eval.max_queries = 16
  run = Run(cfg, workdir)
  run.write_json("config.json", cfg.to_dict())
  t = time.time()
  try:
    registry.runners.get("train")(cfg, run)
  finally:
    run.close()
  cpu = time.process_time()
  print(json.dumps({"train_wall_s": round(time.time() - t, 1), "process_cpu_s": round(cpu, 1),
                    "model": cfg.model, "tasks": [list(x) for x in pre.tasks], "steps": steps,
                    "batch_size": pre.batch_size, "load_avg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
  if sys.argv[1] == "eval":
    for m in sys.argv[3:]:
      evaluate(m, sys.argv[2])
  else:
    workdir, steps = sys.argv[2], int(sys.argv[3])
    for m in filter(None, os.environ.get("BRIDGE_BEFORE", "").split(";")):  # untrained, on test
      evaluate(m, "test")
    train(workdir, steps, sys.argv[4] if len(sys.argv) > 4 else "")
    for split in os.environ.get("BRIDGE_AFTER", "test").split(","):
      evaluate(workdir + "/model", split)
