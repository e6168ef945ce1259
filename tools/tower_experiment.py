"""Trains quickstart:tower's model (LiT on minilm-l6-effnet) and measures it on the emoji test split.

    python3 tools/tower_experiment.py train WORKDIR [PRE_STEPS FINE_STEPS]  # quickstart:tower's stages
    python3 tools/tower_experiment.py eval MODEL_OR_PRESET [N]
    python3 tools/tower_experiment.py all WORKDIR [PRE_STEPS FINE_STEPS]  # eval untrained, train, eval

`all` runs in one process, so the tower compiles once and the test images' features computed
for the untrained model are reused (from the in-memory cache) for the trained one.

`eval` reports text→image and image→text R@1 over the first N (default 250) test pairs of
emoji(languages=('en','de','fr','es','ja')) (the quickstart's text_image task; the corpus is their
images), with 1,000-resample bootstrap 95% intervals over queries, chance 1/N, and the mean
pairwise cosine of the image embeddings vs that of their captions' embeddings.
"""

import json
import os
import sys
import time

import numpy as np


def train(workdir: str, pre_steps: int | None = None, fine_steps: int | None = None) -> None:
  import gemb  # noqa: F401  (registries)
  from gemb import registry
  from gemb.config import recipe_config
  from gemb.run import Run
  cfg = recipe_config("quickstart:tower").train
  if os.environ.get("TOWER_EMOJI_ONLY"):  # a CPU-starved probe: text<->image batches only
    cfg.stages.prefinetune.tasks = ((cfg.eval.dataset.replace("('en',)", "('en', 'de', 'fr', 'es')"), 1.0),)
    cfg.eval.max_queries = 16
  if pre_steps is not None:
    cfg.stages.prefinetune.steps = pre_steps
  if fine_steps is not None:
    if fine_steps == 0:
      cfg.stage_order = ("prefinetune",)
    else:
      cfg.stages.finetune.steps = fine_steps
  run = Run(cfg, workdir)
  run.write_json("config.json", cfg.to_dict())
  t = time.time()
  try:
    out = registry.runners.get("train")(cfg, run)
  finally:
    run.close()
  print(json.dumps({"train_s": round(time.time() - t, 1), "summary": str(out)[:2000]}))


def _boot(hits: np.ndarray, rng) -> tuple[float, float]:
  idx = rng.integers(0, len(hits), (1000, len(hits)))
  m = hits[idx].mean(1)
  return float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


def _mean_pairwise_cos(e: np.ndarray) -> float:
  s = e @ e.T
  n = len(e)
  return float((s.sum() - np.trace(s)) / (n * (n - 1)))


def evaluate(model: str, n: int = 250) -> dict:
  import gemb
  from gemb.model import load
  enc = load(model)
  src = gemb.datasets.build(f"emoji(languages=('en', 'de', 'fr', 'es', 'ja'), limit={n})",
                            split="test")
  pairs = [src[i] for i in range(len(src))]
  task = pairs[0].get("task")
  t = time.time()
  q = enc.embed([p["query"] for p in pairs], task=task)
  docs_text = enc.embed([p["query"] for p in pairs])
  ids = [p.get("positive_id", i) for i, p in enumerate(pairs)]
  uniq = list(dict.fromkeys(ids))
  first = {pid: i for i, pid in reversed(list(enumerate(ids)))}
  img = enc.embed([pairs[first[u]]["positive"] for u in uniq])
  col = np.array([uniq.index(pid) for pid in ids])
  rng = np.random.default_rng(0)
  t2i = (np.argmax(q @ img.T, 1) == col).astype(float)  # caption -> its image among all images
  # image -> caption: each distinct image against all captions (documents, no prompt); a hit
  # when the best caption is one of its own.
  best = np.argmax(img @ docs_text.T, 1)
  i2t = np.array([ids[best[k]] == u for k, u in enumerate(uniq)], float)
  out = {"model": model, "split": "test", "pairs": len(pairs), "images": len(uniq),
         "t2i_r1": t2i.mean(), "t2i_r1_ci95": _boot(t2i, rng),
         "i2t_r1": i2t.mean(), "i2t_r1_ci95": _boot(i2t, rng),
         "chance_t2i": 1 / len(uniq), "chance_i2t": len(pairs) / len(uniq) / len(pairs),
         "mean_r1": (t2i.mean() + i2t.mean()) / 2,
         "cos_images": _mean_pairwise_cos(img), "cos_captions": _mean_pairwise_cos(docs_text),
         "embed_s": round(time.time() - t, 1)}
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  steps = [int(a) for a in sys.argv[3:5]] if len(sys.argv) > 3 else []
  if sys.argv[1] == "train":
    train(sys.argv[2], *steps)
  elif sys.argv[1] == "all":
    if not os.environ.get("TOWER_SKIP_BEFORE"):
      evaluate("minilm-l6-effnet(max_len=96)")
    train(sys.argv[2], *steps)
    after = evaluate(sys.argv[2] + "/model")
  else:
    evaluate(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 250)
