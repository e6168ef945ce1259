"""The Registry: spec parsing, binding, errors, duplicates and temporary registries."""

import functools

import numpy as np
import pytest

import gemb
from gemb.registry import Registry, _origin_of, parse_spec


@pytest.mark.parametrize("spec, expected", [
    ("infonce", ("infonce", (), {})),
    ("  infonce  ", ("infonce", (), {})),
    ("infonce()", ("infonce", (), {})),
    ("minilm-l6", ("minilm-l6", (), {})),
    ("infonce(temperature=0.05, two_sided=True)",
     ("infonce", (), {"temperature": 0.05, "two_sided": True})),
    ("mrl(dims=(64, 128), base='infonce(temperature=0.1)')",
     ("mrl", (), {"dims": (64, 128), "base": "infonce(temperature=0.1)"})),
    ("scann(3, leaves=None, cfg={'a': [1, -2.5]})",
     ("scann", (3,), {"leaves": None, "cfg": {"a": [1, -2.5]}})),
    ("org/thing.v2(x=-1)", ("org/thing.v2", (), {"x": -1})),
])
def test_parse_spec(spec, expected):
  assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("__import__('os').system('echo pwned')", "expected name(arg, key=value"),
    ("loss(x=__import__('os'))", "must be a Python literal"),
    ("loss(open('/etc/passwd'))", "must be a Python literal"),
    ("loss(x=(lambda: 1)())", "must be a Python literal"),
    ("loss(x=[i for i in range(3)])", "must be a Python literal"),
    ("loss(*[1, 2])", "*args are not allowed"),
    ("loss(**{'a': 1})", "**kwargs are not allowed"),
    ("loss(x=1", "only an argument list"),
    ("loss(x=1))", "not valid syntax"),
    ("loss; import os", "only an argument list"),
    ("(1)", "must start with a component name"),
    ("", "must start with a component name"),
])
def test_parse_spec_rejects_hostile_and_malformed(spec, message):
  with pytest.raises(gemb.SpecError, match=message.replace("*", r"\*").replace("(", r"\(")):
    parse_spec(spec)


def test_parse_spec_never_evaluates(tmp_path):
  marker = tmp_path / "pwned"
  with pytest.raises(gemb.SpecError):
    parse_spec(f"x(a=__import__('pathlib').Path({str(marker)!r}).touch())")
  assert not marker.exists()


def test_register_get_and_bind():
  reg = Registry("widgets")

  @reg.register("scale")
  def scale(x, factor=2.0):
    """Multiplies by a factor."""
    return x * factor

  assert reg.get("scale") is scale
  bound = reg.get("scale(factor=3)")
  assert isinstance(bound, functools.partial)
  assert bound(5) == 15
  assert reg.build("scale(factor=0.5)", 8) == 4.0
  entry = reg.entry("scale")
  assert entry.description == "Multiplies by a factor."
  assert entry.origin == _origin_of(scale)
  reg.register("np_mean", np.mean)
  assert reg.entry("np_mean").origin == "numpy"  # the distribution that provides the module
  reg.unregister("np_mean")
  assert reg.names() == ["scale"] and "scale" in reg and len(reg) == 1


def test_register_class_and_instances():
  reg = Registry("widgets")

  @reg.register("box", description="A box of a given size.")
  class Box:
    def __init__(self, size=1):
      self.size = size

  assert reg.build("box(size=4)").size == 4
  assert reg.entry("box").description == "A box of a given size."


def test_bad_arguments_name_the_accepted_ones():
  reg = Registry("widgets")
  reg.register("scale", lambda x, factor=2.0: x * factor)
  with pytest.raises(gemb.SpecError, match=r"unexpected keyword argument 'fctor'.*accepts: x, factor"):
    reg.get("scale(fctor=3)")
  reg.register("const", 42)
  with pytest.raises(gemb.SpecError, match="takes no arguments"):
    reg.get("const(1)")


def test_unknown_name_lists_known_and_closest():
  reg = Registry("widgets")
  reg.register("infonce", lambda: 0, origin="gemb")
  reg.register("siglip", lambda: 0, origin="gemb-siglip")
  with pytest.raises(gemb.UnknownComponentError) as e:
    reg.get("infonse(temperature=0.1)")
  msg = str(e.value)
  assert "Did you mean 'infonce'?" in msg
  assert "infonce (gemb)" in msg and "siglip (gemb-siglip)" in msg
  assert "gemb.widgets" in msg
  assert isinstance(e.value, LookupError)


def test_duplicates_refused_naming_both_origins():
  reg = Registry("widgets")

  def first():
    pass

  def second():
    pass

  reg.register("dup", first, origin="dist-one")
  reg.register("dup", first)  # the same object again (a re-import) is harmless
  with pytest.raises(gemb.DuplicateComponentError) as e:
    reg.register("dup", second, origin="other-dist")
  msg = str(e.value)
  assert "dist-one" in msg and "other-dist" in msg and "first" in msg and "second" in msg
  assert reg.get("dup") is first


def test_invalid_names_refused():
  reg = Registry("widgets")
  for bad in ("has space", "x(1)", "", "1abc"):
    with pytest.raises(gemb.SpecError):
      reg.register(bad, object())


def test_temporary_undoes_changes():
  reg = Registry("widgets")
  reg.register("keep", 1)
  with reg.temporary():
    reg.register("extra", 2)
    reg.unregister("keep")
    assert reg.names() == ["extra"]
  assert reg.names() == ["keep"]
  with reg.temporary(empty=True):
    assert reg.names() == []
    reg.register("keep", 3)  # no clash with the hidden entry
    assert reg.get("keep") == 3
  assert reg.get("keep") == 1


def test_temporary_on_a_builtin_registry():
  with gemb.losses.temporary():
    gemb.losses.register("test_only_loss", lambda: 0.0)
    assert "test_only_loss" in gemb.losses.names()
  assert "test_only_loss" not in gemb.losses.names()


def test_registry_for_unknown_kind():
  from gemb.registry import registry_for
  assert registry_for("losses") is gemb.losses
  with pytest.raises(gemb.UnknownComponentError, match="Did you mean 'losses'"):
    registry_for("loses")


def test_builtin_module_first_imported_inside_temporary_stays_registered(tmp_path, monkeypatch):
  # A builtin module imported for the first time inside `temporary()` registers its components
  # once (module imports are cached); they must survive the block's exit.
  reg = gemb.registry.Registry("probe_kind", "test", ("gemb_probe_builtin",))
  (tmp_path / "gemb_probe_builtin.py").write_text(
      "import test_registry_probe as t\nt.REG.register('alpha')(lambda: 1)\n")
  (tmp_path / "test_registry_probe.py").write_text("REG = None\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  import test_registry_probe
  test_registry_probe.REG = reg
  with reg.temporary():
    assert reg.get("alpha")() == 1
  assert reg.get("alpha")() == 1
