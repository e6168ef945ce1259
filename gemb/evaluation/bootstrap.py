"""Percentile bootstrap intervals over queries, for one model or paired between two.

A metric here is the mean of per-query values, or the unweighted mean of several strata's
means (MSCOCO's mean_R@1 averages its two directions, whose queries differ). Each bootstrap
replicate resamples the queries of every stratum with replacement; the interval is the central
`level` share of the replicates. With `baseline`, the replicates are of the difference
mean(values) - mean(baseline) on the *same* resampled queries (a paired bootstrap), so the
per-query correlation of two models on one set of queries narrows the interval as it should.

Over seeds (a few independent runs rather than many queries) `seed_summary` gives the mean, the
sample std and the Student-t interval of the mean.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from gemb.errors import InputError

Strata = Union[np.ndarray, Sequence[np.ndarray]]  # per-query values, or one array per stratum
_CHUNK = 1 << 22  # resampled values held at once (32 MiB of float64)


def _strata(values) -> list[np.ndarray]:
  if isinstance(values, np.ndarray) and values.ndim == 1:
    return [values.astype(np.float64)]
  if len(values) and np.ndim(values[0]) == 0:
    return [np.asarray(values, np.float64)]
  return [np.asarray(v, np.float64).reshape(-1) for v in values]


def bootstrap_ci(values: Strata, baseline: Strata | None = None, *, level: float = 0.95,
                 n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
  """The `level` percentile-bootstrap interval of mean(values), or with `baseline` of the paired
  difference mean(values) - mean(baseline) (same queries, same order, same resamples).

  `values` is a [q] array of per-query values or a sequence of such arrays (strata; the
  statistic is the mean of their means). Vectorised numpy; deterministic given `seed`.
  """
  if not 0.0 < level < 1.0:
    raise InputError(f"bootstrap_ci: level must be in (0, 1), got {level}.")
  if n_boot < 1:
    raise InputError(f"bootstrap_ci: n_boot must be >= 1, got {n_boot}.")
  xs = _strata(values)
  if baseline is not None:
    bs = _strata(baseline)
    if [len(b) for b in bs] != [len(x) for x in xs]:
      raise InputError(f"bootstrap_ci: a paired interval needs the same queries for both models; "
                       f"got strata of sizes {[len(x) for x in xs]} and {[len(b) for b in bs]}.")
    xs = [x - b for x, b in zip(xs, bs)]
  if not xs or any(len(x) == 0 for x in xs):
    raise InputError("bootstrap_ci: every stratum needs at least one query.")
  if any(not np.isfinite(x).all() for x in xs):
    raise InputError("bootstrap_ci: per-query values must be finite.")
  rng = np.random.default_rng(seed)
  stat_b = np.zeros(n_boot)
  for x in xs:
    n = len(x)
    step = max(1, _CHUNK // n)
    for lo in range(0, n_boot, step):
      idx = rng.integers(0, n, size=(min(step, n_boot - lo), n))
      stat_b[lo:lo + len(idx)] += x[idx].mean(axis=1)
  stat_b /= len(xs)
  tail = (1.0 - level) / 2
  lo, hi = np.quantile(stat_b, [tail, 1.0 - tail])
  return float(lo), float(hi)


def seed_summary(values) -> dict:
  """{mean, std, min, max, ci95, n} of per-seed values: the sample std (ddof 1) and the 95%
  Student-t interval of the mean (infinite with one seed)."""
  from scipy import stats as sps
  v = np.asarray(values, np.float64).reshape(-1)
  if v.size == 0:
    raise InputError("seed_summary: no values (pass one value per seed).")
  n = len(v)
  std = float(v.std(ddof=1)) if n > 1 else 0.0
  half = float(sps.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("inf")
  return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()),
          "ci95": [float(v.mean() - half), float(v.mean() + half)], "n": n}
