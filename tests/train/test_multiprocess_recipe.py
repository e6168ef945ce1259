"""The `train` recipe end to end (stages, checkpoints, greedy soup, eval, saved model) in 2
processes on 127.0.0.1 (gloo CPU collectives), with parameters sharded across the processes,
equals the same recipe in 1 process over 2 forced host devices."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from _helpers import free_port

HERE = pathlib.Path(__file__).parent
WORKER = str(HERE / "multiprocess_recipe_worker.py")


def _start(args, env, log):
  with open(log, "w") as f:  # a file, not a pipe: a full pipe would block a worker
    p = subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env, stdout=f,
                         stderr=subprocess.STDOUT)
  p.log = log
  return p


def _weights(workdir):
  from safetensors.numpy import load_file
  return load_file(str(workdir / "model" / "model.safetensors"))


@pytest.mark.slow  # ~50-90 s: three processes compile and run the recipe; CI's slow step runs it
def test_recipe_two_processes_equal_one(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", GEMB_PROGRESS="0")
  env.pop("XLA_FLAGS", None)  # one CPU device per process: the fsdp axis spans both
  port = free_port()
  one, two = tmp_path / "one", tmp_path / "two"
  two_dev = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  # All three at once: while the pair waits on each other's collectives, the reference computes.
  runs = {"process 0": ([two, port, 0, 2], env), "process 1": ([two, port, 1, 2], env),
          "reference": ([one], two_dev)}
  procs = {name: _start(args, e, tmp_path / f"{name.replace(' ', '')}.log")
           for name, (args, e) in runs.items()}
  try:
    for p in procs.values():
      p.wait(timeout=300)
  finally:
    for p in procs.values():
      if p.poll() is None:
        p.kill()
  for name, p in procs.items():
    assert p.returncode == 0, f"{name}:\n{p.log.read_text()[-4000:]}"

  specs = json.loads((two / "partition_specs.json").read_text())
  assert sum("'fsdp'" in s for s in specs.values()) >= 5, specs  # really split across processes
  assert json.loads((two / "run.json").read_text())["devices"]["process_count"] == 2
  s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
  assert s2["soup"]["method"] == "greedy" and s2["soup"]["kept"]
  # The candidates: the first stage's final weights and the last stage's kept checkpoints.
  assert set(s2["soup"]["scores"]) == {"prefinetune/final", "step2", "step4", "soup"}
  assert s2["soup"]["kept"] == s1["soup"]["kept"]
  for k in s1["soup"]["scores"]:
    np.testing.assert_allclose(s2["soup"]["scores"][k], s1["soup"]["scores"][k], atol=1e-6,
                               err_msg=k)
  for k in ("validation_before", "validation_after"):
    for m in s1[k]:
      np.testing.assert_allclose(s2[k][m], s1[k][m], atol=1e-6, err_msg=f"{k}/{m}")
  for st in ("prefinetune", "finetune"):
    np.testing.assert_allclose(s2[f"stage/{st}"][f"{st}/loss"], s1[f"stage/{st}"][f"{st}/loss"],
                               rtol=1e-4, err_msg=st)
  w1, w2 = _weights(one), _weights(two)
  assert w1.keys() == w2.keys() and len(w1) > 10
  for k in w1:
    np.testing.assert_allclose(w2[k], w1[k], rtol=1e-4, atol=1e-5, err_msg=k)
  # The candidates differ (training moved the weights), so the soup choice means something.
  assert len({v for k, v in s1["soup"]["scores"].items() if k != "soup"}) > 1, s1["soup"]
  # Trainer.load_params puts a host tree back split across the processes, values intact.
  check = json.loads((two / "load_params.json").read_text())
  assert check == {"split": check["split"], "same_layout": True, "equal": True} and check["split"]
