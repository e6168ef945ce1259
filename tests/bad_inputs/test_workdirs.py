"""Workdirs keep their history: a folder holding another run is refused untouched (exit 2,
naming the differing keys), the same config resumes, and metrics.jsonl survives a torn line."""

import json
import pathlib
import shutil

import pytest

from _helpers import HELLO_RECIPE, run_gemb

HELLO = str(HELLO_RECIPE)


def _snapshot(w: pathlib.Path) -> dict[str, bytes]:
  return {p.relative_to(w).as_posix(): p.read_bytes() for p in sorted(w.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(plugin_env, tmp_path_factory):
  w = tmp_path_factory.mktemp("finished") / "w"
  out = run_gemb(["run", f"{HELLO}:tiny", "--workdir", str(w)], plugin_env)
  assert out.returncode == 0, out.stderr
  return w


@pytest.fixture()
def done(finished, tmp_path):
  """A private copy of a finished run's workdir."""
  shutil.copytree(finished, tmp_path / "w")
  return tmp_path / "w"


REFUSED = {  # second command -> (text the error names)
    "another setting": (["run", f"{HELLO}:tiny", "--set", "slope=3.0"],
                        "(slope is 2.0 there but 3.0 now)"),
    "another variant": (["run", HELLO], "steps is 60 there but 200 now"),
    "another kind": (["run", "train:tiny"], "(kind is 'hello_fit' there but 'train' now"),
    "cold start on it": (["run", "coldstart:tiny"], "holds a 'hello_fit' run of another config"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_run_of_another_config_is_refused_untouched(done, plugin_env, case):
  args, text = REFUSED[case]
  before = _snapshot(done)
  out = run_gemb([*args, "--workdir", str(done)], plugin_env)
  assert out.returncode == 2, out.stderr
  assert text in out.stderr and "left untouched" in out.stderr, out.stderr
  assert "Traceback" not in out.stderr
  assert _snapshot(done) == before


def test_same_config_resumes_keeping_history_and_log(done, plugin_env):
  first = json.loads((done / "run.json").read_text())
  lines = (done / "metrics.jsonl").read_text().splitlines()
  out = run_gemb(["run", f"{HELLO}:tiny", "--workdir", str(done)], plugin_env)
  assert out.returncode == 0, out.stderr
  run = json.loads((done / "run.json").read_text())
  assert run["status"] == "completed" and run["history"][-1]["started_utc"] == first["started_utc"]
  after = [json.loads(l) for l in (done / "metrics.jsonl").read_text().splitlines()]
  strip = [{k: v for k, v in r.items() if k != "time"} for r in after]
  assert len(after) == len(lines), "a resumed run repeats no record"
  assert len({json.dumps(r, sort_keys=True) for r in strip}) == len(strip)


def test_torn_last_line_is_cut_and_never_appended_onto(done, plugin_env):
  m = done / "metrics.jsonl"
  n = len(m.read_text().splitlines())
  with open(m, "a") as f:
    f.write('{"step": 99, "lo')  # killed mid-write
  out = run_gemb(["run", f"{HELLO}:tiny", "--workdir", str(done)], plugin_env)
  assert out.returncode == 0, out.stderr
  assert "torn last line" in out.stderr
  records = [json.loads(l) for l in m.read_text().splitlines()]  # every line parses
  assert len(records) == n
  from gemb.run import read_metrics
  with open(m, "a") as f:
    f.write('{"step": 99, "lo')
  with pytest.warns(RuntimeWarning, match="torn or malformed"):
    assert read_metrics(m) == records


DAMAGED = {
    "records without config.json": (lambda w: (w / "config.json").unlink(), "no config.json"),
    "config.json malformed": (lambda w: (w / "config.json").write_text("{"), "is damaged"),
    "config.json not an object": (lambda w: (w / "config.json").write_text("[]"), "is damaged"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_workdir_is_refused_untouched(done, plugin_env, case):
  damage, text = DAMAGED[case]
  damage(done)
  before = _snapshot(done)
  out = run_gemb(["run", f"{HELLO}:tiny", "--workdir", str(done)], plugin_env)
  assert out.returncode == 2 and text in out.stderr, out.stderr
  assert _snapshot(done) == before


def test_unusable_paths(plugin_env, tmp_path):
  (tmp_path / "file").write_text("x")
  for workdir, text in [(tmp_path / "file" / "w", "is a file"), (tmp_path / "file", "is a file"),
                        (pathlib.Path("/proc/gemb-test/w"), "cannot be created")]:
    out = run_gemb(["run", f"{HELLO}:tiny", "--workdir", str(workdir)], plugin_env)
    assert out.returncode == 2 and text in out.stderr and "Traceback" not in out.stderr, \
        out.stderr
