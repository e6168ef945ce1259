"""Bad plugins: one that calls sys.exit (or raises anything) on import is isolated like any
failing plugin, and asking for its component names the failure."""

import importlib.metadata
import sys

import pytest

from gemb import registry
from gemb.errors import UnknownComponentError

BEHAVIOURS = {
    "sys.exit(3)": "SystemExit: 3",
    "sys.exit('bye')": "SystemExit: bye",
    "raise ImportError('no dep')": "ImportError: no dep",
    "raise RuntimeError('boom')": "RuntimeError: boom",
    "import gemb_module_that_does_not_exist": "ModuleNotFoundError",
}


@pytest.fixture()
def fake_plugins(tmp_path, monkeypatch):
  """Entry points in a private group: `good` works, `bad_<i>` runs one bad behaviour."""
  eps = [importlib.metadata.EntryPoint("good", "gemb_test_good:thing", "gemb.testkind")]
  (tmp_path / "gemb_test_good.py").write_text("def thing():\n  'A good component.'\n")
  for i, code in enumerate(BEHAVIOURS):
    (tmp_path / f"gemb_test_bad{i}.py").write_text(f"import sys\n{code}\nthing = 1\n")
    eps.append(importlib.metadata.EntryPoint(f"bad_{i}", f"gemb_test_bad{i}:thing",
                                             "gemb.testkind"))
  monkeypatch.syspath_prepend(str(tmp_path))
  real = importlib.metadata.entry_points
  monkeypatch.setattr(importlib.metadata, "entry_points",
                      lambda **kw: eps if kw.get("group") == "gemb.testkind" else real(**kw))
  yield registry.Registry("testkind")
  for i in range(len(BEHAVIOURS)):
    sys.modules.pop(f"gemb_test_bad{i}", None)


def test_failing_plugins_are_isolated_and_named(fake_plugins):
  reg = fake_plugins
  with pytest.warns(RuntimeWarning):
    assert reg.names() == ["good"]
  records = {p.name: p.error for p in registry.loaded_plugins() if p.group == "gemb.testkind"}
  for i, text in enumerate(BEHAVIOURS.values()):
    assert text in records[f"bad_{i}"], records
    with pytest.raises(UnknownComponentError, match="failed to load") as e:
      reg.get(f"bad_{i}")
    assert text in str(e.value)
