"""Item cold-start exploration: every policy at the same budget on a MovieLens-calibrated platform.

Trains the discoverability model on simulated exploration logs, runs each policy for the same
periods and seeds, and writes report.json, report.md and plots into the workdir.

    python3 -m gemb run coldstart:tiny --workdir /tmp/coldstart-tiny
    python3 -m gemb run coldstart --workdir reports/coldstart/budget4000
    python3 -m gemb run coldstart --set sim.budget=6000 --workdir reports/coldstart/budget6000

Needs MovieLens-100k from the recbole package: ``pip install --no-deps recbole==1.2.1``.
Variants: "" (the committed report: MiniLM content embeddings, 10 evaluation seeds on templates
the model never saw, tuned baselines, the certified bound, a cost-cap sweep), "tiny" (hashed
bag-of-words embeddings, 2 seeds, a few small periods).
"""

import ml_collections

from gemb.config import check_variant

POLICIES = ("uniform", "uniform_floor", "epsilon_greedy", "ucb", "thompson", "discoverability",
            "discoverability(plan='quota')", "truth_heuristic")

# Candidate settings of each baseline, tried on the tuning seeds and templates; the best mean goes
# into the evaluation (reports/coldstart: "fair baselines").
TUNING = {
    "uniform_floor": ("uniform_floor", "uniform_floor(floor=30)", "uniform_floor(floor=40)"),
    "epsilon_greedy": ("epsilon_greedy", "epsilon_greedy(epsilon=0.0, chunk=40)",
                       "epsilon_greedy(epsilon=0.05, chunk=30)"),
    "ucb": ("ucb", "ucb(c=0.1)", "ucb(c=0.3, chunk=40)"),
    "thompson": ("thompson", "thompson(chunk=40)", "thompson(chunk=10)"),
    # The paper's quota plan: at the policy's default CF 0.99 few curves ever reach CF (their
    # ceiling is lower), so the plan funds almost nothing; its CF is tuned like the baselines.
    # With the engagement-only model a fresh item's ceiling is near the base rate (a few %):
    # low CFs, or a floor for the items that cannot reach CF.
    "quota": ("discoverability(plan='quota', cf=0.3)", "discoverability(plan='quota', cf=0.1)",
              "discoverability(plan='quota', cf=0.3, floor=20.0)"),
    "discoverability": ("discoverability", "discoverability(cf=0.9)"),
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  check_variant(variant, ("", "tiny"))
  tiny = variant == "tiny"
  c = ml_collections.ConfigDict()
  c.kind = "coldstart"
  c.policies = POLICIES
  c.seeds = (0, 1) if tiny else tuple(range(10))
  # Disjoint MovieLens template sets for the model's training logs, tuning and evaluation (shares
  # of the fresh templates); None: every set is all templates (the pre-split behaviour).
  c.templates = ml_collections.ConfigDict({"split": (0.5, 0.2, 0.3), "seed": 0})
  c.tuning = ml_collections.ConfigDict({
      # tiny: no tuning by default (the default test suite runs it); --set "tuning.seeds=(10,)"
      "seeds": () if tiny else (10, 11, 12),
      "candidates": ml_collections.ConfigDict(
          {k: v[:2] for k, v in TUNING.items()} if tiny else TUNING)})
  # Also run the main policy on the training templates (the "seen templates" row).
  c.seen_templates = not tiny
  # The certified per-seed upper bound (gemb.coldstart.bound).
  c.bound = True
  # Discoverable items against the per-period exploration-cost cap C_max.
  c.cost_sweep = ml_collections.ConfigDict({
      "policies": () if tiny else ("discoverability", "discoverability(plan='quota')"),
      "c_max": () if tiny else (30.0, 100.0, 300.0),
      "seeds": (0, 1, 2)})
  # What the discoverability model knows of an item besides its engagement so far: "content"
  # (the embedding below, genres, year), "metadata" (genres, year) or "none". Fresh items here
  # are drawn around 336 MovieLens templates, half of them in the model's logs; static features
  # let it learn those templates, and on unseen ones it then screens the wrong items (tuning
  # seeds 10-13, tuning templates: 47.8 discoverable items with "none", 27.8 "metadata", 23.0
  # "content"; uniform_floor 45.5; reports/coldstart/README.md).
  # tiny keeps the (hashed bag-of-words) content path under test; its fresh items are otherwise
  # exchangeable, and its tight budget (tests: 400 a period for 60 new items) then leaves the
  # lookahead nothing to tell them apart by.
  c.item_features = "content" if tiny else "none"
  # Content embedding of "title (year). Genres: ...": a gemb.model preset, or the model-free
  # "bow(dim=64)" chosen explicitly; there is no fallback from one to the other.
  c.embedder = "bow(dim=64)" if tiny else "minilm-l6"
  # The model sees the embedding's top principal components over the catalogue, not all of it.
  c.content_dims = 32
  # Candidate retrieval of the exploitation recommender: a gemb.retrievers spec.
  c.retriever = "exact"
  c.plots = True
  # Run state (model, simulator, RNGs, period) saved every `every` periods, last `keep` kept, in
  # <workdir>/ckpt; running again in the same workdir resumes from there.
  c.checkpoint = ml_collections.ConfigDict({"every": 1, "keep": 2})
  c.calibration = ml_collections.ConfigDict({"dim": 16, "fresh_fraction": 0.2})
  c.sim = ml_collections.ConfigDict({
      "periods": 5 if tiny else 12,
      "n_new": 60 if tiny else 200,
      "n_users": 400 if tiny else 2000,
      "budget": 1200 if tiny else 4000,
      "n_min": 20,
      "bar": 0.5,
      "prior_strength": 20.0,
      "candidates": 100,
      "slate": 10,
      "m_recs": 6 if tiny else 30,
      "window": 4,
      "age_cap": 3,
      "item_jitter": 0.5,
      "user_jitter": 0.3,
      "probe_users": 256,
      "full_traffic": 1000,
  })
  c.model = ml_collections.ConfigDict({
      # Random-traffic log episodes. Data was the model's bottleneck: 8 instead of 3 took the
      # lookahead policy from 0.86 to 0.92 of the oracle at budget 4000 (reports/coldstart).
      "log_seeds": (100,) if tiny else tuple(range(100, 108)),
      "log_x_max": 400.0,
      # Seeds of a second round of logs from the trained policy's own allocations (none: off).
      "onpolicy_seeds": () if tiny else (200, 201),
      "hidden": 64,
      # Ensemble members, each its own initialization and minibatches; their curves are averaged.
      "members": 10,
      "steps": 300 if tiny else 2000,
      "batch": 1024,
      "lr": 3e-3,
      "x0": 10.0,
      "seed": 0,
      # Held-out rows for the model's validation: "template" holds out a fifth of the templates
      # (a fresh item is never one the logs saw), "rows" a random fifth of the rows. With
      # eval_every > 0 training keeps the step with the lowest held-out loss.
      "holdout": "template",
      "eval_every": 25,
  })
  return c
