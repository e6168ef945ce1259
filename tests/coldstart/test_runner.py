import json

import pytest

import gemb
from gemb.errors import ConfigError

from _helpers import COLDSTART_FAST as FAST, needs_movielens

pytestmark = needs_movielens


def test_recipe_writes_report(tmp_path):
  import gemb.coldstart.runner  # noqa: F401  (until gemb.runners lists it as a builtin module)
  from gemb.run import run_recipe
  headline = run_recipe("coldstart:tiny", FAST, workdir=str(tmp_path))
  report = json.loads((tmp_path / "report.json").read_text())
  assert set(report["policies"]) == {"uniform", "discoverability", "oracle"}
  for p in report["policies"].values():
    assert max(p["spent_per_seed"]) <= 3 * report["sim"]["budget"]
    assert len(p["curve_mean"]) == 3
  assert 0 <= report["model"]["ece"] <= 1
  assert headline["discoverability_over_uniform"]["per_seed"][0] == pytest.approx(
      report["policies"]["discoverability"]["discoverable_per_seed"][0]
      / max(report["policies"]["uniform"]["discoverable_per_seed"][0], 1))
  assert (tmp_path / "report.md").read_text().startswith("# Cold-start exploration")


@pytest.mark.slow
def test_tiny_recipe_with_plots(tmp_path):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.run import run_recipe
  run_recipe("coldstart:tiny", workdir=str(tmp_path))
  for name in ("report.json", "discoverable.png", "traffic.png", "calibration.png"):
    assert (tmp_path / name).stat().st_size > 0


def test_bad_recipe_values(tmp_path):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.run import run_recipe
  with pytest.raises(ConfigError, match="budget must be > 0"):
    run_recipe("coldstart:tiny", FAST + ["sim.budget=0"], workdir=str(tmp_path))
  with pytest.raises(gemb.UnknownComponentError):
    run_recipe("coldstart:tiny", FAST + ["policies=('nope',)"], workdir=str(tmp_path))
