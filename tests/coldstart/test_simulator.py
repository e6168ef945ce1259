import dataclasses
import importlib.util

import numpy as np
import pytest

from gemb.coldstart.episode import collect_logs, run_episode
from gemb.coldstart.policies import N_ENGAGEMENT, Uniform
from gemb.coldstart.simulator import Simulator
from gemb.errors import ConfigError, InputError


def _run(cal, static, seed, cfg):
  sim = Simulator(cal, cfg, static, seed)
  return run_episode(sim, Uniform(), "uniform", seed), sim


def test_same_seed_same_run_and_other_seed_differs(cal, static, small):
  a, sa = _run(cal, static, 3, small)
  b, sb = _run(cal, static, 3, small)
  c, sc = _run(cal, static, 4, small)
  assert a.discoverable_by_period == b.discoverable_by_period
  np.testing.assert_array_equal(sa.clicks, sb.clicks)
  np.testing.assert_array_equal(sa.recs, sb.recs)
  assert not np.array_equal(sa.clicks, sc.clicks)
  assert a.spent <= small.budget * small.periods
  assert a.n_discoverable > 0  # the small platform does make items discoverable


def test_more_traffic_never_makes_fewer_items_admitted(cal, static, small):
  admitted = []
  for x in (5.0, 20.0, 200.0):
    sim = Simulator(cal, small, static, 0)
    while not sim.done:
      idx = sim.active()
      sim.step(np.where(sim.impressions[idx] == 0, x, 0.0), idx)
    admitted.append(int(sim.admitted().sum()))
  assert admitted[0] <= admitted[1] <= admitted[2] and admitted[2] > admitted[0]


def test_potential_is_what_full_traffic_achieves(cal, static, small):
  sim = Simulator(cal, small, static, 1)
  pot = sim.potential()
  assert 0 < pot.sum() < len(pot)
  assert np.all(sim.q[pot] > small.bar)  # only items above the bar can be admitted


class _NumpyIndex:
  """An independent reference for retrieval: argsort over all inner products in float64."""

  def build(self, emb_nd, ids=None):
    self.emb = np.asarray(emb_nd, np.float64)
    return self

  def search(self, queries_qd, k):
    s = np.asarray(queries_qd, np.float64) @ self.emb.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(s, ids, 1)


def test_default_retriever_gives_the_run_of_a_numpy_reference(cal, static, small):
  a, sa = _run(cal, static, 2, small)  # default: gemb.retrievers "exact"
  sb = Simulator(cal, small, static, 2, _NumpyIndex)
  b = run_episode(sb, Uniform(), "uniform", 2)
  assert a.discoverable_by_period == b.discoverable_by_period
  np.testing.assert_array_equal(sa.recs, sb.recs)


def test_admission_rule_by_hand():
  from gemb.coldstart.simulator import admission
  prior = (8.0, 12.0)  # prior mean 0.4
  # (impressions, clicks): below the floor; at the floor, posterior (8+12)/40 = 0.5; just under.
  n, k = np.array([19, 20, 20]), np.array([19, 12, 11])
  np.testing.assert_array_equal(admission(n, k, prior, 20, 0.5), [False, True, False])


def test_logs_have_traffic_and_labels(cal, static, small):
  logs = collect_logs(cal, small, static, seed=9, x_max=200)
  n = len(logs["y"])
  assert logs["features"].shape == (n, static.shape[1] + N_ENGAGEMENT)
  assert 0 < logs["y"].mean() < 1
  # Discoverable items got more traffic on average: the signal the model learns.
  assert logs["x"][logs["y"] == 1].mean() > logs["x"][logs["y"] == 0].mean()


@pytest.mark.parametrize("field,value,match", [
    ("budget", 0, "budget must be > 0"), ("budget", -10, "budget must be > 0"),
    ("bar", 1.2, "bar must be in"), ("slate", 50, "slate")])
def test_bad_config_is_rejected(cal, static, small, field, value, match):
  with pytest.raises(ConfigError, match=match):
    Simulator(cal, dataclasses.replace(small, **{field: value}), static, 0)


def test_items_with_missing_features_are_rejected(cal, static, small):
  bad = static.copy()
  bad[5, 2] = np.nan
  with pytest.raises(InputError, match="missing"):
    Simulator(cal, small, bad, 0)
  with pytest.raises(InputError, match="one feature row per"):
    Simulator(cal, small, static[:-1], 0)


def test_movielens_reader(monkeypatch):
  from gemb.data import movielens
  if importlib.util.find_spec("recbole") is None:
    pytest.skip("recbole not installed (pip install --no-deps recbole==1.2.1)")
  ml = movielens.load_movielens_100k()
  assert (ml.n_users, ml.n_items, len(ml.rating_n)) == (943, 1682, 100_000)
  assert ml.item_text(0) == "Toy Story (1995). Genres: Animation, Children's, Comedy."
  assert set(np.unique(ml.rating_n)) == {1, 2, 3, 4, 5}
  monkeypatch.setattr(movielens.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(InputError, match="pip install --no-deps recbole==1.2.1"):
    movielens.load_movielens_100k()
