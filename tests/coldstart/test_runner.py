import json

import numpy as np
import pytest

import gemb
from gemb.errors import ConfigError

from _helpers import COLDSTART_FAST as FAST, needs_movielens

pytestmark = needs_movielens


def test_recipe_writes_report_and_discoverability_beats_uniform(tmp_path):
  import gemb.coldstart.runner  # noqa: F401  (until gemb.runners lists it as a builtin module)
  from gemb.run import run_recipe
  # At 400 impressions a period, spreading evenly never brings an item to the 20-impression
  # admission floor within its 3 periods (10 + 5 + 3.3); a policy must concentrate traffic.
  headline = run_recipe("coldstart:tiny", FAST + ["sim.budget=400"], workdir=str(tmp_path))
  report = json.loads((tmp_path / "report.json").read_text())
  assert set(report["policies"]) == {"uniform", "discoverability", "truth_heuristic"}
  for p in report["policies"].values():
    assert max(p["spent_per_seed"]) <= 3 * report["sim"]["budget"]
    assert len(p["curve_mean"]) == 3
  assert 0 <= report["model"]["ece"] <= 1
  disc = report["policies"]["discoverability"]["discoverable_per_seed"]
  assert disc[0] > report["policies"]["uniform"]["discoverable_per_seed"][0]
  # Nothing beats the certified bound.
  for p in report["policies"].values():
    assert np.all(np.asarray(p["discoverable_per_seed"]) <= headline["bound"]["per_seed"])
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert set(summary) == {"vs_bound", "vs_best_baseline", "vs_best_baseline_ci95",
                          "quota_vs_bound", "seeds", "unseen_templates"}
  assert summary["unseen_templates"] is True
  assert (tmp_path / "report.md").read_text().startswith("# Cold-start exploration")


def test_template_split_is_disjoint_and_used(tmp_path):
  import gemb.coldstart.runner as R
  from gemb.coldstart.calibrate import Calibration
  cal = Calibration(*(None,) * 7, fresh_templates=np.arange(100, 200), established=np.arange(100),
                    rmse=0.0)
  sets = R.template_split(cal, (0.5, 0.2, 0.3), seed=0)
  assert [len(v) for v in (sets["train"], sets["tune"], sets["eval"])] == [50, 20, 30]
  all_ = np.concatenate(list(sets.values()))
  assert len(np.unique(all_)) == 100 and set(all_) == set(range(100, 200))
  with pytest.raises(ConfigError, match="three positive shares"):
    R.template_split(cal, (0.5, 0.5), seed=0)


def test_simulator_and_logs_draw_only_from_the_given_templates(cal, static, small):
  from gemb.coldstart.episode import collect_logs
  from gemb.coldstart.simulator import Simulator
  some = np.arange(10, 20)
  sim = Simulator(cal, small, static, 0, templates=some)
  assert set(sim.template) <= set(some)
  logs = collect_logs(cal, small, static, 0, templates=some)
  allowed = {tuple(r) for r in static[some]}
  assert {tuple(r[:static.shape[1]]) for r in logs["features"]} <= allowed
  # Each row names its template, and the row's static features are that template's.
  assert logs["group"].shape == logs["y"].shape and set(logs["group"]) <= set(some)
  np.testing.assert_array_equal(logs["features"][:, :static.shape[1]], static[logs["group"]])


@pytest.mark.slow
def test_tiny_recipe_with_plots(tmp_path):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.run import run_recipe
  run_recipe("coldstart:tiny", ["tuning.seeds=(10,)", "seen_templates=true"],
             workdir=str(tmp_path))
  for name in ("report.json", "discoverable.png", "traffic.png", "calibration.png"):
    assert (tmp_path / name).stat().st_size > 0
  report = json.loads((tmp_path / "report.json").read_text())
  assert set(report["tuning"]) == {"uniform_floor", "epsilon_greedy", "ucb", "thompson", "quota",
                                   "discoverability"}
  assert "seen_templates_main_over_bound" in report["headline"]
  assert (tmp_path / "cost_sweep.png").exists() is False  # tiny: no sweep


def test_bad_recipe_values(tmp_path):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.run import run_recipe
  with pytest.raises(ConfigError, match="budget must be > 0"):
    run_recipe("coldstart:tiny", FAST + ["sim.budget=0"], workdir=str(tmp_path))
  with pytest.raises(gemb.UnknownComponentError):
    run_recipe("coldstart:tiny", FAST + ["policies=('nope',)"], workdir=str(tmp_path))


@pytest.mark.parametrize("over, message", [
    ("sim.budget=0", "budget must be > 0"),
    ("sim.periods=2.5", "sim.periods"),
    ("policies=()", "policies` is empty"),
])
def test_bad_settings_are_refused_before_the_workdir_is_touched(tmp_path, over, message):
  from gemb.run import run_recipe
  workdir = tmp_path / "w"
  with pytest.raises(ConfigError, match=message):
    run_recipe("coldstart:tiny", FAST + [over], workdir=str(workdir))
  assert not workdir.exists()  # nothing written: no config.json, no run.json
