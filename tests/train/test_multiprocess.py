"""2 processes on 127.0.0.1 (gloo CPU collectives) end with the 1-process run's parameters."""

import os
import pathlib
import subprocess
import sys

import numpy as np

from _helpers import free_port

HERE = pathlib.Path(__file__).parent
WORKER = str(HERE / "multiprocess_worker.py")


def test_two_processes_equal_one(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device per process: the mesh must span both
  ref = subprocess.run([sys.executable, WORKER, "0", "0", "1", str(tmp_path / "one.npz")],
                       env=env, capture_output=True, text=True, timeout=300)
  assert ref.returncode == 0, ref.stderr[-3000:]
  port = free_port()
  procs = [subprocess.Popen([sys.executable, WORKER, str(port), str(i), "2",
                             str(tmp_path / "two.npz")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=300) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
  assert int(one["devices"]) == 1 and int(two["devices"]) == 2
  keys = [k for k in one.files if k != "devices"]
  assert keys
  for k in keys:
    np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)
