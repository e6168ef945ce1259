"""Mesh/rule errors; one step on 8 fake CPU devices equals one device; golden partition specs."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from gemb import sharding
from gemb.errors import ConfigError

HERE = pathlib.Path(__file__).parent
GOLDEN = HERE.parent / "golden"


def test_rules_conflict_and_overrides():
  assert sharding.resolve_rules("fsdp")["embed"] == "fsdp"
  assert sharding.resolve_rules("fsdp_tp", overrides=[("vocab", None)])["vocab"] is None
  with pytest.raises(ConfigError, match="Conflicting sharding rules for logical axis 'embed'"):
    sharding.resolve_rules([("embed", "fsdp"), ("embed", "tensor")])
  with pytest.raises(ConfigError, match="Unknown sharding rule set 'fdsp'"):
    sharding.resolve_rules("fdsp")
  rules = sharding.resolve_rules([("embed", "fsdp"), ("mlp", "fsdp")])
  with pytest.raises(ConfigError, match="both map to mesh axis 'fsdp'"):
    sharding.logical_to_spec(("embed", "mlp"), rules, where="w")
  assert sharding.logical_to_spec(("embed", "other"), rules) == sharding.P("fsdp", None)


def test_mesh_errors():
  import jax
  n = len(jax.devices())
  with pytest.raises(ConfigError, match=f"needs {n * 4} devices but only {n}"):
    sharding.make_mesh({"data": n * 4})
  with pytest.raises(ConfigError, match="Unknown mesh axes"):
    sharding.make_mesh({"model": 1})
  with pytest.raises(ConfigError, match="at most one -1"):
    sharding.make_mesh({"data": -1, "fsdp": -1})
  mesh = sharding.make_mesh({"data": -1})
  assert mesh.shape["data"] == n and mesh.shape["tensor"] == 1


def test_batch_must_divide_over_mesh():
  class FakeMesh:
    shape = {"data": 4, "fsdp": 2, "tensor": 1}
  with pytest.raises(ConfigError, match="global batch of 12 does not divide"):
    sharding.check_global_batch(12, FakeMesh(), sharding.resolve_rules("fsdp"))
  sharding.check_global_batch(16, FakeMesh(), sharding.resolve_rules("fsdp"))


@pytest.fixture(scope="module")
def eight_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, str(HERE / "mesh_worker.py")], env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-4000:]
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("layout", ["data8", "data4_fsdp2", "data2_fsdp2_tp2"])
def test_sharded_step_equals_single_device(eight_devices, layout):
  ref, got = eight_devices["single"], eight_devices[layout]
  assert ref["odd_batch_error"] == ""
  assert "global batch of 6 does not divide" in got["odd_batch_error"]
  assert abs(ref["loss"]) > 0.1
  np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-5)
  for k in ref["grads"]:
    np.testing.assert_allclose(got["grads"][k], ref["grads"][k], rtol=1e-4, atol=1e-6, err_msg=k)
  for k in ref["params"]:  # two optimizer steps, clipping and weight decay included
    np.testing.assert_allclose(got["params"][k], ref["params"][k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_partition_specs_match_golden(eight_devices):
  """The spec of every parameter per rule set; GEMB_UPDATE_GOLDEN=1 rewrites the golden file."""
  specs = {k: eight_devices[k]["specs"] for k in ("data8", "data4_fsdp2", "data2_fsdp2_tp2")}
  assert specs["data4_fsdp2"]["up/kernel"] == "P('fsdp', None)"
  assert specs["data2_fsdp2_tp2"]["up/kernel"] == "P('fsdp', 'tensor')"
  path = GOLDEN / "train_toy_partition_specs.json"
  if os.environ.get("GEMB_UPDATE_GOLDEN") == "1":
    path.write_text(json.dumps(specs, indent=2, sort_keys=True) + "\n")
  assert json.loads(path.read_text()) == specs
