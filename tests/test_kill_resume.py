"""Kill -9 a run at many moments (mid-step, mid-save, mid-deletion of an old checkpoint) and run
it again: the result equals an uninterrupted run's, for `train:tiny` and `coldstart:tiny`.

Slow (several full runs each); CI runs it in the slow step: pytest -m slow tests/test_kill_resume.py
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from _helpers import COLDSTART_FAST, without_timings

pytestmark = pytest.mark.slow

TRAIN_FAST = ["stages.prefinetune.steps=24", "stages.finetune.steps=12", "checkpoint.every=4",
              "log_every=4", "eval.max_queries=20"]
RECIPES = {"train:tiny": TRAIN_FAST, "coldstart:tiny": COLDSTART_FAST}

# Runs a recipe; with DIE_AT_RMTREE=n it deletes half of the n-th folder gemb's checkpoint
# cleanup removes and SIGKILLs itself there (a kill in the middle of a deletion).
CHILD = textwrap.dedent("""
    import os, pathlib, shutil, signal, sys, types
    from gemb import checkpoint
    die_at, calls = int(os.environ.get("DIE_AT_RMTREE", "0")), [0]
    def rmtree(path, *a, **k):
      calls[0] += 1
      if calls[0] == die_at:
        files = sorted(p for p in pathlib.Path(path).rglob("*") if p.is_file())
        for f in files[: len(files) // 2]:
          f.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
      return shutil.rmtree(path, *a, **k)
    checkpoint.shutil = types.SimpleNamespace(rmtree=rmtree)
    from gemb.run import run_recipe
    run_recipe(sys.argv[1], sys.argv[3:], workdir=sys.argv[2])
""")


def _run(recipe, workdir, *, kill_after=None, die_at_rmtree=0):
  env = dict(os.environ, GEMB_PROGRESS="0", DIE_AT_RMTREE=str(die_at_rmtree))
  p = subprocess.Popen([sys.executable, "-c", CHILD, recipe, str(workdir), *RECIPES[recipe]],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    _, err = p.communicate(timeout=kill_after)
  except subprocess.TimeoutExpired:
    p.send_signal(signal.SIGKILL)
    _, err = p.communicate()
  return p.returncode, err


def _result(recipe, workdir):
  """What must match an uninterrupted run: the weights bit for bit (train) or the report."""
  if recipe == "train:tiny":
    return (workdir / "model" / "model.safetensors").read_bytes()
  return without_timings(json.loads((workdir / "report.json").read_text()))


@pytest.fixture(scope="module", params=list(RECIPES))
def reference(request, tmp_path_factory):
  recipe = request.param
  workdir = tmp_path_factory.mktemp("whole") / "w"
  t = time.perf_counter()
  code, err = _run(recipe, workdir)
  assert code == 0, err[-3000:]
  return recipe, _result(recipe, workdir), time.perf_counter() - t


# Two kills per recipe keep CI's bounded slow step in time: one wherever the run is at half its
# length (a step, an async save or a deletion), one inside the first checkpoint deletion. More:
# GEMB_KILL_POINTS="time-0.25,time-0.5,time-0.8,rmtree-1,rmtree-2".
KILLS = os.environ.get("GEMB_KILL_POINTS", "time-0.5,rmtree-1").split(",")


@pytest.mark.parametrize("kill", KILLS)
def test_killed_then_rerun_equals_uninterrupted(reference, tmp_path, kill):
  recipe, want, seconds = reference
  workdir = tmp_path / "w"
  how, _, arg = kill.partition("-")
  if how == "time":  # wherever the run happens to be: a step, an async save, a deletion
    code, _ = _run(recipe, workdir, kill_after=max(2.0, float(arg) * seconds))
  else:
    code, _ = _run(recipe, workdir, die_at_rmtree=int(arg))
  for _ in range(3):  # a second kill may land in the rerun; at most a few reruns
    code, err = _run(recipe, workdir)
    if code == 0:
      break
  assert code == 0, err[-3000:]
  assert _result(recipe, workdir) == want
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(l) for l in lines]  # every line whole
  keys = [json.dumps({k: v for k, v in r.items() if k != "time"}, sort_keys=True)
          for r in records]
  assert len(keys) == len(set(keys)), "a resumed run repeated log lines"
