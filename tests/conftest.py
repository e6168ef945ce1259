"""Shared fixtures.

Multi-device tests set XLA_FLAGS themselves in a subprocess; nothing here touches jax's devices.
"""

import os

import pytest

from _helpers import TESTS, pip_install_target


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory):
  """Environment for a subprocess in which the test plugins gemb-hello and gemb-broken are installed.

  They are installed with pip into a private folder on PYTHONPATH, so that importlib.metadata
  discovers them exactly as it would after `pip install gemb-hello`, without touching the
  environment that runs the tests.
  """
  target = tmp_path_factory.mktemp("plugin_site")
  pip_install_target([TESTS / "plugins" / "gemb_hello", TESTS / "plugins" / "gemb_broken"], target)
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
  env["GEMB_PROGRESS"] = "0"
  return env
