"""Bootstrap intervals against closed forms: a 0/1 metric's resampled mean is Binomial(n, p)/n;
a paired difference at large n is the mean +- 1.96 standard errors of the per-query differences."""

import numpy as np
import pytest
from scipy import stats

from gemb.errors import InputError
from gemb.evaluation import bootstrap_ci, seed_summary


def test_zero_one_metric_matches_the_binomial_quantiles():
  n, hits = 200, 61
  values = np.zeros(n)
  values[:hits] = 1.0
  lo, hi = bootstrap_ci(values, n_boot=40000, seed=1)
  # Resampling n queries with replacement draws hits ~ Binomial(n, hits/n).
  want_lo, want_hi = stats.binom.ppf([0.025, 0.975], n, hits / n) / n
  assert lo == pytest.approx(want_lo, abs=1.01 / n)
  assert hi == pytest.approx(want_hi, abs=1.01 / n)


def test_paired_difference_matches_the_normal_approximation():
  rng = np.random.default_rng(0)
  n = 4000
  base = rng.random(n)
  better = np.clip(base + rng.normal(0.01, 0.05, n), 0, 1)
  lo, hi = bootstrap_ci(better, base, n_boot=4000, seed=2)
  d = better - base
  se = d.std(ddof=1) / np.sqrt(n)
  assert lo == pytest.approx(d.mean() - 1.96 * se, abs=0.1 * se)
  assert hi == pytest.approx(d.mean() + 1.96 * se, abs=0.1 * se)
  # Unpaired intervals of the two models overlap although the paired one excludes 0.
  a_lo, a_hi = bootstrap_ci(base, n_boot=4000)
  b_lo, b_hi = bootstrap_ci(better, n_boot=4000)
  assert lo > 0 and b_lo < a_hi
  assert bootstrap_ci(base, base) == (0.0, 0.0)


def test_strata_average_their_means():
  # Two directions of 0/1 values, with different query counts: the statistic is the mean of the
  # two means, and each is resampled within its own stratum.
  a, b = np.r_[np.ones(30), np.zeros(70)], np.r_[np.ones(5), np.zeros(5)]
  lo, hi = bootstrap_ci([a, b], n_boot=20000, seed=3)
  draws = (stats.binom.rvs(100, 0.3, size=200000, random_state=4) / 100
           + stats.binom.rvs(10, 0.5, size=200000, random_state=5) / 10) / 2
  want = np.quantile(draws, [0.025, 0.975])
  assert (lo, hi) == pytest.approx(tuple(want), abs=0.02)


def test_bad_input():
  with pytest.raises(InputError, match="same queries"):
    bootstrap_ci(np.ones(5), np.ones(4))
  with pytest.raises(InputError, match="at least one query"):
    bootstrap_ci(np.array([]))
  with pytest.raises(InputError, match="finite"):
    bootstrap_ci(np.array([1.0, np.nan]))
  with pytest.raises(InputError, match="level"):
    bootstrap_ci(np.ones(3), level=1.5)


def test_seed_summary_is_the_student_t_interval():
  # Three seeds 1, 2, 3: mean 2, sample std 1; t(0.975, df=2) = 4.3027 from a printed t-table.
  s = seed_summary([1.0, 2.0, 3.0])
  assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3
  half = 4.3027 / np.sqrt(3)
  np.testing.assert_allclose(s["ci95"], [2.0 - half, 2.0 + half], atol=1e-4)
  assert seed_summary([5.0])["ci95"] == [-np.inf, np.inf]  # one seed: no interval
  with pytest.raises(InputError, match="one value per seed"):
    seed_summary([])
