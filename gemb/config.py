"""Recipes and their configs.

A recipe is a Python file with ``get_config(variant: str = "")`` returning an
`ml_collections.ConfigDict`. Recipe names are looked up in a ``recipes/`` folder in the current
directory (a user's own recipes), then in the recipes that ship inside the package
(`gemb/recipes/`), then in the entry-point group ``gemb.recipes`` (a plugin distribution adds a
recipe as ``NAME = "package.module"``, the module being the recipe file). A path to a ``.py`` file
also works. The config names its run kind (``kind``, a `gemb.runners` name) and
its components by registry spec. gemb locks the config, so a typo'd key is an error, and
command-line overrides (``--set a.b=3``) are converted to the type already in the config.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import pathlib
from typing import Any, Iterable, Sequence

import ml_collections

from gemb.errors import ConfigError

ConfigDict = ml_collections.ConfigDict
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Recipe:
  name: str
  variant: str
  path: pathlib.Path

  @property
  def ref(self) -> str:
    return f"{self.name}:{self.variant}" if self.variant else self.name


RECIPE_GROUP = "gemb.recipes"
BUILTIN_RECIPES = pathlib.Path(__file__).resolve().parent / "recipes"


def recipe_dirs() -> list[pathlib.Path]:
  """Folders where recipe names are looked up: ./recipes (the user's own), then gemb/recipes."""
  out = []
  for d in (pathlib.Path.cwd() / "recipes", BUILTIN_RECIPES):
    if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
      out.append(d)
  return out


@dataclasses.dataclass(frozen=True)
class RecipeSource:
  """Where a recipe name resolves to: its file and who provides it ("local", "gemb", or the name
  of the plugin distribution)."""
  name: str
  path: pathlib.Path
  origin: str


def _plugin_recipes() -> list[RecipeSource]:
  """Recipes from the ``gemb.recipes`` entry points, resolved to files without importing them; a
  plugin whose module cannot be found is warned about and skipped."""
  import importlib.metadata
  import warnings
  out = []
  for ep in importlib.metadata.entry_points(group=RECIPE_GROUP):
    dist = ep.dist.name if ep.dist is not None else "?"
    try:
      spec = importlib.util.find_spec(ep.value.split(":")[0].strip())
      if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ImportError(f"no Python source file for module {ep.value!r}")
    except Exception as e:  # a broken plugin must not hide the other recipes
      warnings.warn(f"gemb: recipe plugin {dist} -> {RECIPE_GROUP}:{ep.name} could not be found "
                    f"({type(e).__name__}: {e}); skipped.", RuntimeWarning, stacklevel=2)
      continue
    out.append(RecipeSource(ep.name, pathlib.Path(spec.origin), dist))
  return out


def recipe_sources() -> list[RecipeSource]:
  """Every recipe gemb can find, first match per name winning: ./recipes, gemb/recipes, plugins."""
  found: dict[str, RecipeSource] = {}
  for d in recipe_dirs():
    origin = "gemb" if d.resolve() == BUILTIN_RECIPES else "local"
    for p in sorted(d.glob("*.py")):
      if not p.name.startswith("_"):
        found.setdefault(p.stem, RecipeSource(p.stem, p, origin))
  for src in _plugin_recipes():
    found.setdefault(src.name, src)
  return list(found.values())


def available_recipes() -> dict[str, pathlib.Path]:
  return {s.name: s.path for s in recipe_sources()}


def find_recipe(ref: str) -> Recipe:
  """Resolves ``NAME[:VARIANT]`` or ``path/to/recipe.py[:VARIANT]``."""
  target, _, variant = ref.partition(":")
  if target.endswith(".py") or "/" in target:
    path = pathlib.Path(target)
    if not path.is_file():
      raise ConfigError(f"Recipe file {target!r} does not exist.")
    return Recipe(path.stem, variant, path)
  known = available_recipes()
  if target not in known:
    close = difflib.get_close_matches(target, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    where = ", ".join([str(d) for d in recipe_dirs()] + [f"entry points {RECIPE_GROUP!r}"])
    raise ConfigError(f"Unknown recipe {target!r}.{hint} Known recipes: "
                      f"{', '.join(known) or 'none'} (looked in {where}).")
  return Recipe(target, variant, known[target])


def load_config(recipe: Recipe) -> ConfigDict:
  """Imports the recipe file and calls its ``get_config(variant)``; returns a locked config."""
  spec = importlib.util.spec_from_file_location(f"gemb_recipe_{recipe.name}", recipe.path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  get_config = getattr(module, "get_config", None)
  if get_config is None:
    raise ConfigError(f"Recipe {recipe.path} has no get_config(variant: str = '') function.")
  cfg = get_config(recipe.variant)
  if not isinstance(cfg, ConfigDict):
    raise ConfigError(f"{recipe.path}: get_config must return an ml_collections.ConfigDict, "
                      f"got {type(cfg).__name__}.")
  if "kind" not in cfg:
    raise ConfigError(f"{recipe.path}: the config must name its run kind in `kind` "
                      "(a gemb.runners name, e.g. 'train', 'eval', 'coldstart').")
  cfg.lock()
  return cfg


def recipe_config(ref: str) -> ConfigDict:
  """An unlocked copy of recipe `ref`'s config, for recipes that compose other recipes."""
  return ConfigDict(load_config(find_recipe(ref)).to_dict())


def check_variant(variant: str, known: Sequence[str]) -> None:
  """For recipes: raise a clear error for a variant the recipe does not define."""
  if variant not in known:
    shown = ", ".join(repr(v) for v in known)
    raise ConfigError(f"Unknown recipe variant {variant!r}; this recipe has: {shown}.")


def flat_items(cfg: ConfigDict, prefix: str = "") -> dict[str, Any]:
  """{"a.b.c": value} for every leaf of `cfg`, tuples (nested too) as lists, as JSON stores them,
  so a flattened config compares equal to its own JSON round trip."""
  def plain(v):
    return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v

  out: dict[str, Any] = {}
  for k, v in cfg.items():
    if isinstance(v, ConfigDict):
      out.update(flat_items(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = plain(v)
  return out


def flat_keys(cfg: ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for k, v in cfg.items():
    full = f"{prefix}{k}"
    keys.append(full)
    if isinstance(v, ConfigDict):
      keys.extend(flat_keys(v, full + "."))
  return keys


def _convert(key: str, raw: str, current: Any) -> Any:
  def fail(expected: str, example: str):
    return ConfigError(f"--set {key}={raw}: expected {expected} (current value {current!r}), "
                       f"e.g. --set {key}={example}.")

  if isinstance(current, ConfigDict):
    raise ConfigError(f"--set {key}=...: {key!r} is a group of settings; set its keys instead, "
                      f"e.g. --set {key}.{next(iter(current.keys()), 'KEY')}=...")
  if isinstance(current, bool):
    low = raw.strip().lower()
    if low in _TRUE:
      return True
    if low in _FALSE:
      return False
    raise fail("a bool", "true")
  if isinstance(current, int):
    try:
      return int(raw)
    except ValueError:
      raise fail("an int", str(current)) from None
  if isinstance(current, float):
    try:
      return float(raw)
    except ValueError:
      raise fail("a float", repr(current)) from None
  if isinstance(current, str):
    s = raw.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
      return s[1:-1]
    return raw
  if isinstance(current, (tuple, list)):
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      # A bare comma list like 128,256 is the common way to write it on a command line.
      value = tuple(_literal_or_str(p) for p in raw.split(",") if p.strip())
    if not isinstance(value, (tuple, list)):
      value = (value,)
    return type(current)(value)
  # None or anything else: a literal if it parses, else the string.
  return _literal_or_str(raw)


def _literal_or_str(raw: str) -> Any:
  try:
    return ast.literal_eval(raw.strip())
  except (ValueError, SyntaxError, TypeError):
    return raw.strip()


def apply_overrides(cfg: ConfigDict, overrides: Iterable[str]) -> ConfigDict:
  """Applies ``key.sub=value`` overrides in place, type-checked against the current values."""
  for item in overrides:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f"--set expects KEY=VALUE, got {item!r}.")
    *parents, leaf = key.split(".")
    node = cfg
    for depth, part in enumerate(parents + [leaf]):
      if not isinstance(node, ConfigDict) or part not in node:
        valid = flat_keys(cfg)
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"--set {item}: unknown config key {key!r}.{hint} "
                          f"Valid keys: {', '.join(valid)}.")
      if depth < len(parents):
        node = node[part]
    if not isinstance(node[leaf], str):  # strings are taken as they are, never parsed
      from gemb.registry import check_literal_size
      check_literal_size(raw, f"--set {key}", ConfigError)
    value = _convert(key, raw, node[leaf])
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f"--set {item}: {e}") from None
  return cfg


# -- typed sections: one dataclass-from-config helper ------------------------------------------

def _type_name(tp: Any) -> str:
  return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(where: str, tp: Any, value: Any) -> Any:
  """`value` converted to annotation `tp` (lists to tuples), or ConfigError naming `where`."""
  import collections.abc
  import math
  import types
  import typing
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if tp is Any or tp is object:
    return value
  if origin in (typing.Union, types.UnionType):
    for a in args:
      try:
        return _check_value(where, a, value)
      except ConfigError:
        continue
    raise ConfigError(f"{where}={value!r}: expected {' or '.join(_type_name(a) for a in args)}.")
  if tp is type(None):
    if value is None:
      return None
    raise ConfigError(f"{where}={value!r}: expected None.")
  if tp is bool:
    if isinstance(value, (bool, np_bool())):
      return bool(value)
    raise ConfigError(f"{where}={value!r}: expected true or false (a bool), not "
                      f"{type(value).__name__}.")
  if tp is int:
    if isinstance(value, bool) or not _is_int(value):
      raise ConfigError(f"{where}={value!r}: expected an integer.")
    return int(value)
  if tp is float:
    if isinstance(value, bool) or not (_is_int(value) or isinstance(value, float)):
      raise ConfigError(f"{where}={value!r}: expected a number.")
    if not math.isfinite(float(value)):
      raise ConfigError(f"{where}={value!r}: expected a finite number.")
    return float(value)
  if tp is str:
    if isinstance(value, str):
      return value
    raise ConfigError(f"{where}={value!r}: expected a string.")
  if origin in (tuple, list, collections.abc.Sequence):
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
      raise ConfigError(f"{where}={value!r}: expected a tuple/list.")
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
      if len(args) != len(value):
        raise ConfigError(f"{where}={value!r}: expected {len(args)} items.")
      return tuple(_check_value(f"{where}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
    item = args[0] if args else Any
    return tuple(_check_value(f"{where}[{i}]", item, v) for i, v in enumerate(value))
  if origin in (dict, collections.abc.Mapping):
    if not isinstance(value, collections.abc.Mapping):
      raise ConfigError(f"{where}={value!r}: expected a mapping.")
    return dict(value)
  if isinstance(tp, type) and not isinstance(value, tp):
    raise ConfigError(f"{where}={value!r}: expected {tp.__name__}.")
  return value


def np_bool() -> type:
  try:
    import numpy
    return numpy.bool_
  except ImportError:  # pragma: no cover
    return bool


def _is_int(value: Any) -> bool:
  import numbers
  return isinstance(value, numbers.Integral)


def dataclass_from(cls: type, values: Any, *, where: str, **fixed: Any) -> Any:
  """`cls(**values)` for a config section, checked: `values` must be a mapping (a ConfigDict or a
  dict) whose keys are `cls`'s fields (an unknown key is an error naming it and the known ones)
  and whose values have the annotated types (ints, finite floats, bools, strings, tuples; lists
  become tuples). `fixed` adds values the caller decides. Errors in `cls`'s own checks
  (`__post_init__`) come back as ConfigError prefixed with `where`."""
  import typing
  if isinstance(values, ConfigDict):
    values = values.to_dict()
  if not isinstance(values, dict):
    raise ConfigError(f"{where}: expected a group of settings (a dict), got "
                      f"{type(values).__name__} {values!r}.")
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(values) - set(fields))
  if unknown:
    close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}.{hint} "
                      f"Known keys: {', '.join(sorted(fields))}.")
  hints = typing.get_type_hints(cls)
  kwargs = {k: _check_value(f"{where}.{k}", hints.get(k, Any), v) for k, v in values.items()}
  try:
    return cls(**kwargs, **fixed)
  except ConfigError as e:
    raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{where}: {e}") from None
