"""gemb-boltzmann through the installed entry point, run in gemb's cold-start simulator."""

import numpy as np
import pytest

import gemb
from gemb.coldstart import Calibration, SimConfig, Simulator, run_episode

# A small synthetic platform (no MovieLens): 4 periods x 40 fresh items, 600 impressions a period,
# i.e. 15 per item under `uniform`, below the 20 the exploitation bar needs.
SIM = SimConfig(periods=4, n_new=40, n_users=200, budget=600, n_min=20, m_recs=3, candidates=20,
                slate=5, probe_users=64, full_traffic=200)
SEEDS = (0, 1, 2)


def _platform(seed=0):
  cal = Calibration.synthetic(seed=seed)
  static = np.random.default_rng(seed).normal(size=(len(cal.item_id), 6)).astype(np.float32)
  return cal, static


@pytest.fixture(scope="module")
def platform():
  return _platform()


def _discoverable(platform, spec):
  cal, static = platform
  eps = [run_episode(Simulator(cal, SIM, static, s), gemb.policies.build(spec), spec, s)
         for s in SEEDS]
  return [e.n_discoverable for e in eps], [e.spent for e in eps]


def test_registered_through_the_entry_point():
  assert gemb.policies.entry("boltzmann").origin == "gemb-boltzmann"


def test_beats_uniform_at_the_same_budget(platform):
  uni, uni_spent = _discoverable(platform, "uniform")
  bol, bol_spent = _discoverable(platform, "boltzmann(temperature=0.05)")
  # Same budget: both spend at most budget x periods (floors make the spend a little less).
  for spent in uni_spent + bol_spent:
    assert spent <= SIM.budget * SIM.periods
  assert min(bol_spent) >= 0.95 * SIM.budget * SIM.periods
  print(f"discoverable per seed: uniform {uni}, boltzmann {bol}")
  assert sum(bol) >= 1.5 * sum(uni), (uni, bol)  # measured: 75 against 32
  assert all(b >= u for b, u in zip(bol, uni)), (uni, bol)


class _Obs:
  """Just what the policy reads: posterior means, the budget and n_min."""

  def __init__(self, mean, budget, n_min=20):
    self.mean, self.budget = np.asarray(mean, np.float64), budget
    self.config = SimConfig(n_min=n_min)

  def __len__(self):
    return len(self.mean)

  def posterior_mean(self):
    return self.mean


def test_temperature_moves_between_uniform_and_greedy():
  obs = _Obs([0.2, 0.3, 0.4, 0.5], budget=10_000)
  hot = gemb.policies.build("boltzmann(temperature=100.0)").probabilities(obs)
  np.testing.assert_allclose(hot, 0.25, atol=1e-3)
  cold = gemb.policies.build("boltzmann(temperature=0.01)").probabilities(obs)
  assert cold[3] > 0.9999
  mid = gemb.policies.build("boltzmann(temperature=0.1)").probabilities(obs)
  # softmax by hand: exp(mean / 0.1), normalized
  e = np.exp(np.array([2.0, 3.0, 4.0, 5.0]))
  np.testing.assert_allclose(mid, e / e.sum(), rtol=1e-12)


def test_allocation_is_whole_chunks_without_replacement_within_budget():
  pol = gemb.policies.build("boltzmann(temperature=0.1)")
  mean = np.linspace(0.1, 0.6, 50)
  # 25 chunks of n_min=20 for 50 items: 25 distinct items get one chunk each.
  x = pol.allocate(_Obs(mean, budget=510), np.random.default_rng(0))
  assert x.shape == (50,) and x.sum() == 500 and sorted(set(x)) == [0.0, 20.0]
  np.testing.assert_array_equal(x, pol.allocate(_Obs(mean, budget=510), np.random.default_rng(0)))
  # The best items are drawn more often (over many periods).
  avg = np.mean([pol.allocate(_Obs(mean, budget=510), np.random.default_rng(s))
                 for s in range(200)], 0)
  assert avg[-10:].sum() > 2 * avg[:10].sum()
  # 75 chunks: a whole round (every item once), then 25 more to distinct items.
  x = pol.allocate(_Obs(mean, budget=1500), np.random.default_rng(1))
  assert x.sum() == 1500 and x.min() == 20 and (x == 40).sum() == 25
  # A budget below one chunk: spread in proportion, still within budget.
  small = pol.allocate(_Obs([0.3, 0.5], budget=7), np.random.default_rng(0))
  assert small.sum() == pytest.approx(7.0) and small[1] > small[0]
  assert pol.allocate(_Obs([], budget=100), np.random.default_rng(0)).shape == (0,)


@pytest.mark.parametrize("spec,match", [
    ("boltzmann(temperature=0)", "temperature must be a positive number"),
    ("boltzmann(temperature=-1.0)", "temperature must be a positive number"),
    ("boltzmann(temperature=True)", "temperature must be a positive number"),
    ("boltzmann(chunk=0)", "chunk must be a positive int"),
    ("boltzmann(chunk=2.5)", "chunk must be a positive int"),
])
def test_bad_arguments_are_clear_errors(spec, match):
  with pytest.raises(gemb.InputError, match=match):
    gemb.policies.build(spec)
