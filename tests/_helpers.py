"""Helpers for tests that run gemb in a subprocess (pytest puts tests/ on sys.path)."""

import importlib.util
import os
import pathlib
import socket
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
# The gemb-hello test plugin's recipe, also run by path (a recipe file outside any package).
HELLO_RECIPE = TESTS / "plugins" / "gemb_hello" / "gemb_hello" / "recipe.py"


def pip_install_target(packages, target: pathlib.Path) -> None:
  """Installs local packages as real distributions (dist-info + entry points) into `target`."""
  cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(target)]
  subprocess.run(cmd + [str(p) for p in packages], check=True, capture_output=True, text=True)


def run_python(code: str, env: dict, cwd=None, timeout=300) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                        text=True, timeout=timeout)


def run_gemb(args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
  env = dict(env or os.environ)
  env.setdefault("GEMB_PROGRESS", "0")
  return subprocess.run([sys.executable, "-m", "gemb", *args], env=env, cwd=cwd,
                        capture_output=True, text=True, timeout=timeout)


# Cold-start runs small enough for the default suite: 3 periods per episode, so uniform is steps
# 1-3, discoverability 4-6, truth_heuristic 7-9.
needs_movielens = pytest.mark.skipif(importlib.util.find_spec("recbole") is None,
                                     reason="needs MovieLens from recbole: "
                                     "pip install --no-deps recbole==1.2.1")
COLDSTART_FAST = ["seeds=(0,)", "sim.periods=3", "sim.n_new=40", "sim.n_users=200",
                  "model.steps=60", "policies=('uniform','discoverability','truth_heuristic')",
                  "plots=false", "model.onpolicy_seeds=(200,)"]


def free_port() -> int:
  """A TCP port on 127.0.0.1 that was free a moment ago (for a jax.distributed coordinator)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


TIMING_KEYS = ("seconds", "wall_s_per_period", "elapsed_s", "time")


def without_timings(x):
  """A report (nested dicts and lists) without its wall-clock fields: what two runs of the same
  config must agree on exactly."""
  if isinstance(x, dict):
    return {k: without_timings(v) for k, v in x.items() if k not in TIMING_KEYS}
  if isinstance(x, list):
    return [without_timings(v) for v in x]
  return x
