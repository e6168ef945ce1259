"""Helpers for tests that run gemb in a subprocess (pytest puts tests/ on sys.path)."""

import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent


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
