"""A cold-start run killed (SIGKILL) mid-way and run again ends with the uninterrupted report."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from _helpers import COLDSTART_FAST as FAST, needs_movielens, without_timings

pytestmark = needs_movielens

# Runs the recipe in a child process that SIGKILLs itself right after checkpoint `kill_after`.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from gemb import checkpoint
    kill_after = int(sys.argv[2])
    save = checkpoint.Checkpointer.save
    def save_then_die(self, step, *a, **k):
      out = save(self, step, *a, **k)
      if step == kill_after:
        self.wait()
        os.kill(os.getpid(), signal.SIGKILL)
      return out
    checkpoint.Checkpointer.save = save_then_die
    import gemb.coldstart.runner
    from gemb.run import run_recipe
    run_recipe("coldstart:tiny", sys.argv[3:], workdir=sys.argv[1])
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.run import run_recipe
  wd = tmp_path_factory.mktemp("whole")
  run_recipe("coldstart:tiny", FAST, workdir=str(wd))
  return json.loads((wd / "report.json").read_text())


# Step 5: in the middle of the discoverability episode, after the model was trained and saved.
# Step 3: after uniform's last period, before its episode is listed as finished.
@pytest.mark.parametrize("kill_after", [5, pytest.param(3, marks=pytest.mark.slow)])
def test_killed_run_resumes_to_the_same_report(tmp_path, uninterrupted, kill_after):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.run import run_recipe
  from gemb.checkpoint import Checkpointer
  env = {**os.environ, "GEMB_PROGRESS": "0"}
  child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(kill_after), *FAST],
                         env=env, capture_output=True, text=True, timeout=600)
  assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
  assert not (tmp_path / "report.json").exists()
  ckpt = Checkpointer(tmp_path / "ckpt", every=1, keep=2)
  assert ckpt.latest_step() == kill_after
  assert ckpt.all_steps() == [kill_after - 1, kill_after]  # keep last 2
  ckpt.close()
  run_recipe("coldstart:tiny", FAST, workdir=str(tmp_path))
  resumed = json.loads((tmp_path / "report.json").read_text())
  assert without_timings(resumed) == without_timings(uninterrupted)
  assert sum(resumed["policies"]["discoverability"]["spent_per_seed"]) > 0


def test_resume_refuses_another_config(tmp_path):
  import gemb.coldstart.runner  # noqa: F401
  from gemb.errors import ConfigError
  from gemb.run import run_recipe
  short = ["seeds=(0,)", "sim.periods=2", "sim.n_new=20", "sim.n_users=100",
           "policies=('uniform',)", "plots=false"]
  run_recipe("coldstart:tiny", short, workdir=str(tmp_path))
  with pytest.raises(ConfigError, match=r"another config \(sim.budget is 1200 there but 900"):
    run_recipe("coldstart:tiny", short + ["sim.budget=900"], workdir=str(tmp_path))


def test_simulator_state_round_trip(cal, static, small):
  from gemb.coldstart.simulator import Simulator
  a, b = Simulator(cal, small, static, 3), Simulator(cal, small, static, 3)
  alloc = lambda s: np.full(len(s.active()), 15.0)
  a.step(alloc(a))
  arrays, meta = a.state()
  b.load_state(arrays, json.loads(json.dumps(meta)))  # the JSON half goes through a file
  for s in (a, b):
    while not s.done:
      s.step(alloc(s))
  assert a.history == b.history
  np.testing.assert_array_equal(a.clicks, b.clicks)
  np.testing.assert_array_equal(a.discovered_at, b.discovered_at)
  with pytest.raises(Exception, match="another size"):
    b.load_state({k: v[:5] for k, v in arrays.items()}, meta)
