"""Model soups: averaging the weights of several checkpoints of one model.

`uniform_soup` averages all; `greedy_soup` (Wortsman et al., 2022) ranks the checkpoints by their
own validation metric, starts from the best and adds each next one only if the average with it
scores at least as well.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np

from gemb.errors import ConfigError


def uniform_soup(trees: Sequence[Any]) -> Any:
  """The element-wise mean of parameter trees of one structure (accumulated in float64)."""
  if not trees:
    raise ConfigError("A soup needs at least one checkpoint.")
  struct = jax.tree.structure(trees[0])
  for i, t in enumerate(trees[1:], 1):
    if jax.tree.structure(t) != struct or jax.tree.map(np.shape, t) != jax.tree.map(
        np.shape, trees[0]):
      raise ConfigError(f"Soup ingredient {i} has another parameter structure or shapes than "
                        "ingredient 0; only checkpoints of one model can be averaged.")
  return jax.tree.map(
      lambda *xs: (sum(np.asarray(x, np.float64) for x in xs) / len(xs)).astype(
          np.asarray(xs[0]).dtype), *trees)


def greedy_soup(candidates: Sequence[tuple[str, Any]], evaluate: Callable[[Any], float]
                ) -> tuple[Any, list[str], dict[str, float]]:
  """Returns (soup params, names kept, {name or 'soup': metric}); higher metric is better."""
  if not candidates:
    raise ConfigError("A greedy soup needs at least one checkpoint.")
  scores = {name: float(evaluate(p)) for name, p in candidates}
  ranked = sorted(candidates, key=lambda c: -scores[c[0]])
  kept = [ranked[0]]
  best = scores[ranked[0][0]]
  for name, params in ranked[1:]:
    trial = uniform_soup([p for _, p in kept] + [params])
    score = float(evaluate(trial))
    if score >= best:
      kept.append((name, params))
      best = score
  scores["soup"] = best
  return uniform_soup([p for _, p in kept]), [n for n, _ in kept], scores
