"""Entry-point plugins from real installed distributions, and the `gemb` command line.

The test plugins under tests/plugins/ are pip-installed into a private folder (see conftest), so
discovery goes through importlib.metadata exactly as for a user's `pip install gemb-xyz`.
"""

import json
import textwrap

from _helpers import HELLO_RECIPE, run_gemb, run_python

HELLO = str(HELLO_RECIPE)


def test_entry_points_register_lazily_and_a_broken_plugin_only_warns(plugin_env):
  code = textwrap.dedent("""
      import sys, warnings
      warnings.simplefilter("always")
      import gemb
      assert "gemb_hello" not in sys.modules, "discovery must be lazy"
      with warnings.catch_warnings(record=True) as caught:
          warnings.simplefilter("always")
          loss = gemb.losses.get("hello_l2(scale=2.0)")
      print("LOSS", loss([[1.0, 0.0]], [[0.0, 0.0]]))
      e = gemb.losses.entry("hello_l2")
      print("ORIGIN", e.origin, "|", e.description)
      for w in caught:
          print("WARN", w.message)
      index = gemb.retrievers.get("hello_brute")().build([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      ids, scores = index.search([[0.0, 1.0]], k=2)
      print("IDS", ids.tolist())
      for p in gemb.loaded_plugins():
          print("PLUGIN", p.group, p.name, p.distribution, p.version, p.error is not None)
  """)
  out = run_python(code, plugin_env)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert "LOSS 2.0" in lines
  assert "ORIGIN gemb-hello | Mean squared L2 distance between paired embeddings, times `scale`." in lines
  warns = [l for l in lines if l.startswith("WARN")]
  assert len(warns) == 1, lines
  assert "gemb-broken 9.9.9" in warns[0] and "broken_loss" in warns[0]
  assert "gemb_dependency_that_is_not_installed" in warns[0]
  assert "IDS [[1, 2]]" in lines
  assert "PLUGIN gemb.losses hello_l2 gemb-hello 0.3.1 False" in lines
  assert "PLUGIN gemb.losses broken_loss gemb-broken 9.9.9 True" in lines
  assert "PLUGIN gemb.retrievers hello_brute gemb-hello 0.3.1 False" in lines


def test_gemb_list_shows_plugins_with_origin(plugin_env):
  out = run_gemb(["list", "losses"], plugin_env)
  assert out.returncode == 0, out.stderr
  row = next(l for l in out.stdout.splitlines() if l.strip().startswith("hello_l2"))
  assert "gemb-hello" in row and "Mean squared L2 distance" in row
  assert "failed plugin: gemb-broken 9.9.9 -> gemb.losses:broken_loss" in out.stdout
  out = run_gemb(["list", "runners"], plugin_env)
  assert "hello_fit" in out.stdout
  out = run_gemb(["list", "lossez"], plugin_env)
  assert out.returncode == 2 and "Did you mean 'losses'" in out.stderr
  assert "Traceback" not in out.stderr


def test_gemb_run_writes_config_metadata_and_metrics(plugin_env, tmp_path):
  workdir = tmp_path / "run"
  out = run_gemb(["run", f"{HELLO}:tiny", "--set", "steps=40", "--set", "slope=-1.5",
                  "--workdir", str(workdir)], plugin_env)
  assert out.returncode == 0, out.stderr
  cfg = json.loads((workdir / "config.json").read_text())
  assert cfg["steps"] == 40 and cfg["slope"] == -1.5
  meta = json.loads((workdir / "run.json").read_text())
  assert meta["status"] == "completed" and meta["recipe"] == "recipe:tiny"
  assert meta["versions"]["jax"] == "0.10.2" and meta["versions"]["gemb"]
  assert meta["devices"]["platform"] == "cpu" and meta["devices"]["count"] >= 1
  assert {"group": "gemb.runners", "name": "hello_fit", "distribution": "gemb-hello",
          "version": "0.3.1", "error": None} in meta["plugins"]
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == list(range(40))
  assert records[-1]["loss"] < records[0]["loss"] * 1e-3  # the run really fit the line
  summary = json.loads((workdir / "summary.json").read_text())
  assert abs(summary["slope"] + 1.5) < 0.05 and abs(summary["intercept"] + 0.5) < 0.05


def _tensorboard_scalars(folder) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} from the TFRecord event files under `folder`."""
  import struct
  from tensorboardX.proto import event_pb2
  out: dict[str, dict[int, float]] = {}
  for path in sorted(folder.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4  # length, its crc, the record, its crc
      for v in event.summary.value:
        out.setdefault(v.tag, {})[event.step] = v.simple_value
  return out


def test_gemb_run_tensorboard_mirrors_the_metrics(plugin_env, tmp_path):
  workdir = tmp_path / "run"
  out = run_gemb(["run", f"{HELLO}:tiny", "--set", "steps=12", "--tensorboard",
                  "--workdir", str(workdir)], plugin_env)
  assert out.returncode == 0, out.stderr
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  scalars = _tensorboard_scalars(workdir / "tensorboard")
  assert set(scalars["loss"]) == set(range(12))
  for r in records:  # float32 in the event file
    assert abs(scalars["loss"][r["step"]] - r["loss"]) <= 1e-6 * max(1.0, abs(r["loss"]))


def test_gemb_run_errors_exit_2_without_traceback(plugin_env, tmp_path):
  cases = [
      (["run", HELLO, "--set", "steps=ten"], "expected an int"),
      (["run", HELLO, "--set", "stepz=3"], "Did you mean 'steps'"),
      (["run", f"{HELLO}:huge"], "Unknown recipe variant 'huge'"),
      (["run", "no_such_recipe"], "Unknown recipe 'no_such_recipe'"),
      (["run", HELLO, "--set", "kind=hello_fti"], "Did you mean 'hello_fit'"),
  ]
  for args, message in cases:
    out = run_gemb(args + ["--workdir", str(tmp_path / "w")], plugin_env)
    assert out.returncode == 2, (args, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


def test_help_everywhere():
  for args in (["--help"], ["run", "--help"], ["list", "--help"]):
    out = run_gemb(args)
    assert out.returncode == 0 and "usage: gemb" in out.stdout
  out = run_gemb(["run"])
  assert out.returncode == 2 and "RECIPE" in out.stderr


def test_print_config(plugin_env):
  out = run_gemb(["run", HELLO, "--set", "lr=0.25", "--print-config"], plugin_env)
  assert out.returncode == 0 and "lr: 0.25" in out.stdout


def test_gemb_run_joins_a_two_process_run(plugin_env, tmp_path):
  import socket
  import subprocess
  import sys
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = []
  for pid in range(2):
    env = dict(plugin_env, GEMB_COORDINATOR=f"127.0.0.1:{port}", GEMB_NUM_PROCESSES="2",
               GEMB_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "gemb", "run", f"{HELLO}:tiny", "--workdir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs
  meta = json.loads((tmp_path / "run.json").read_text())
  assert meta["devices"]["process_count"] == 2 and meta["devices"]["count"] == 2
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 60  # written by process 0 only, not twice
  out = run_gemb(["run", f"{HELLO}:tiny"], dict(plugin_env, GEMB_COORDINATOR="127.0.0.1:1"))
  assert out.returncode == 2 and "GEMB_NUM_PROCESSES" in out.stderr


def test_tensorboard_without_tensorboardx_says_what_to_install(tmp_path, monkeypatch):
  import sys
  import pytest
  import ml_collections
  from gemb.errors import ConfigError
  from gemb.run import Run
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # makes the import fail
  with pytest.raises(ConfigError, match=r"gemb\[tensorboard\]"):
    Run(ml_collections.ConfigDict(), tmp_path, tensorboard=True, is_writer=True)


def test_recipes_come_from_the_package_a_local_folder_and_plugins(plugin_env, tmp_path):
  """From a directory outside the checkout: the built-in recipes (inside the package), a plugin's
  recipe through the gemb.recipes entry point, and the user's own ./recipes/ (which shadows)."""
  (tmp_path / "recipes").mkdir()
  (tmp_path / "recipes" / "mine.py").write_text(open(HELLO).read())
  out = run_gemb(["list", "recipes"], plugin_env, cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  rows = {l.split()[0]: l.split()[1:] for l in out.stdout.splitlines() if l.strip()}
  for name in ("quickstart", "train", "eval", "coldstart"):
    origin, path = rows[name]
    assert origin == "gemb" and path.endswith(f"gemb/recipes/{name}.py"), rows[name]
  assert rows["hello"][0] == "gemb-hello" and rows["hello"][1].endswith("gemb_hello/recipe.py")
  assert rows["mine"] == ["local", str(tmp_path / "recipes" / "mine.py")]
  for name in ("hello", "mine"):
    workdir = tmp_path / f"run-{name}"
    out = run_gemb(["run", f"{name}:tiny", "--workdir", str(workdir)], plugin_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    meta = json.loads((workdir / "run.json").read_text())
    assert meta["status"] == "completed" and meta["recipe"] == f"{name}:tiny"
