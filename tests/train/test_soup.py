"""Uniform and greedy soups on small parameter trees with a known validation metric."""

import numpy as np
import pytest

from gemb.errors import ConfigError
from gemb.train import soup


def _tree(v):
  return {"a": {"kernel": np.full((2, 3), v, np.float32)}, "b": np.array([v], np.float32)}


def test_uniform_soup_is_the_mean():
  out = soup.uniform_soup([_tree(1.0), _tree(2.0), _tree(6.0)])
  np.testing.assert_allclose(out["a"]["kernel"], 3.0)
  assert out["a"]["kernel"].dtype == np.float32
  with pytest.raises(ConfigError, match="another parameter structure"):
    soup.uniform_soup([_tree(1.0), {"a": {"kernel": np.zeros((3, 2))}, "b": np.zeros(1)}])
  with pytest.raises(ConfigError, match="at least one"):
    soup.uniform_soup([])


def test_greedy_soup_keeps_only_improving_ingredients():
  # The metric peaks at weight value 2: averaging 1 and 3 helps, adding 10 hurts.
  metric = lambda p: -abs(float(p["b"][0]) - 2.0)
  cands = [("c1", _tree(1.0)), ("c3", _tree(3.0)), ("c10", _tree(10.0)), ("c2.5", _tree(2.5))]
  params, kept, scores = soup.greedy_soup(cands, metric)
  assert kept[0] == "c2.5" and "c10" not in kept
  assert scores["soup"] >= scores["c2.5"]
  np.testing.assert_allclose(params["b"], np.mean([float(k[1:]) for k in kept]), rtol=1e-6)
