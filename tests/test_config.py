"""Recipes and type-checked overrides."""

import pytest

import gemb
from gemb import config as config_lib
from _helpers import HELLO_RECIPE as HELLO


def _load(variant=""):
  return config_lib.load_config(config_lib.find_recipe(f"{HELLO}:{variant}" if variant else str(HELLO)))


def test_load_recipe_locked_and_variant():
  cfg = _load()
  assert cfg.kind == "hello_fit" and cfg.steps == 200
  assert _load("tiny").steps == 60
  with pytest.raises(AttributeError):
    cfg.not_a_key = 1  # locked: a typo cannot add a key
  with pytest.raises(gemb.ConfigError, match="Unknown recipe variant 'huge'.*'', 'tiny'"):
    _load("huge")


def test_overrides_convert_to_the_existing_type():
  cfg = config_lib.apply_overrides(_load(), [
      "steps=7", "lr=1e-3", "slope=3", "flags.verbose=yes", "flags.dims=4,8,16", "kind='other'"])
  assert cfg.steps == 7 and isinstance(cfg.steps, int)
  assert cfg.lr == 1e-3 and cfg.slope == 3.0 and isinstance(cfg.slope, float)
  assert cfg.flags.verbose is True
  assert cfg.flags.dims == (4, 8, 16)
  assert cfg.kind == "other"
  cfg = config_lib.apply_overrides(cfg, ["flags.dims=(2, 3)", "flags.verbose=0"])
  assert cfg.flags.dims == (2, 3) and cfg.flags.verbose is False


@pytest.mark.parametrize("override, message", [
    ("steps=ten", r"--set steps=ten: expected an int \(current value 200\)"),
    ("lr=fast", "expected a float"),
    ("flags.verbose=maybe", "expected a bool"),
    ("flags=1", "is a group of settings"),
    ("step=3", "unknown config key 'step'. Did you mean 'steps'"),
    ("flags.verbos=1", "Did you mean 'flags.verbose'"),
    ("nokey", "expects KEY=VALUE"),
])
def test_override_errors_name_the_key(override, message):
  with pytest.raises(gemb.ConfigError, match=message):
    config_lib.apply_overrides(_load(), [override])


def test_unknown_recipe_suggests():
  with pytest.raises(gemb.ConfigError, match="Unknown recipe 'nope'"):
    config_lib.find_recipe("nope")
  with pytest.raises(gemb.ConfigError, match="does not exist"):
    config_lib.find_recipe("missing/recipe.py")


def test_recipe_without_kind(tmp_path):
  p = tmp_path / "r.py"
  p.write_text("import ml_collections\ndef get_config(variant=''):\n"
               "  return ml_collections.ConfigDict({'x': 1})\n")
  with pytest.raises(gemb.ConfigError, match="must name its run kind"):
    config_lib.load_config(config_lib.find_recipe(str(p)))


def test_flat_items_equal_their_json_round_trip():
  import json
  import ml_collections
  from gemb.config import flat_items
  cfg = ml_collections.ConfigDict({"a": {"b": (("x", 1.0), ("y", 2.0)), "c": 3}, "d": "s"})
  flat = flat_items(cfg)
  assert flat == {"a.b": [["x", 1.0], ["y", 2.0]], "a.c": 3, "d": "s"}
  assert json.loads(json.dumps(flat)) == flat  # what a checkpoint's meta compares against
