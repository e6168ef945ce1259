"""Device meshes and logical-axis rules.

Model parameters carry *logical* axis names (``("embed", "mlp")``, set with
``nnx.with_partitioning`` or ``out_sharding=``); a recipe picks the mesh and the rules that map
logical names to mesh axes::

    cfg.mesh = {"data": -1, "fsdp": 2, "tensor": 1}   # -1: whatever devices are left
    cfg.sharding.rules = "fsdp"                        # or a tuple of (logical, mesh axes) pairs
    cfg.sharding.overrides = (("vocab", None),)        # replace entries of a canned set

A logical name listed twice with different targets, or two dimensions of one parameter sent to the
same mesh axis, is an error (never a silent choice). Logical names without a rule are replicated.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gemb.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")

Target = str | tuple[str, ...] | None
Rules = tuple[tuple[str, Target], ...]

# The batch is split over every data-like axis; parameters over fsdp and/or tensor.
RULE_SETS: dict[str, Rules] = {
    "dp": (("batch", ("data", "fsdp")),),
    "fsdp": (("batch", ("data", "fsdp")), ("embed", "fsdp")),
    "fsdp_tp": (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("mlp", "tensor"),
                ("heads", "tensor"), ("kv_heads", "tensor"), ("vocab", "tensor")),
}


def _norm_target(t: Any) -> Target:
  if t is None or isinstance(t, str):
    return t
  if isinstance(t, (tuple, list)) and all(isinstance(a, str) for a in t):
    return tuple(t) if len(t) != 1 else t[0]
  raise ConfigError(f"A sharding rule target must be a mesh axis name, a tuple of them or None; "
                    f"got {t!r}.")


def _as_pairs(rules: Iterable[Any], what: str) -> Rules:
  out = []
  for r in rules:
    if not (isinstance(r, (tuple, list)) and len(r) == 2 and isinstance(r[0], str)):
      raise ConfigError(f"{what}: each rule is a (logical_name, mesh_axes) pair, got {r!r}.")
    out.append((r[0], _norm_target(r[1])))
  return tuple(out)


def resolve_rules(rules: str | Sequence[Any], overrides: Sequence[Any] = ()) -> dict[str, Target]:
  """Returns {logical name: mesh axes}; a name listed twice with different targets is an error."""
  if isinstance(rules, str):
    if rules not in RULE_SETS:
      raise ConfigError(f"Unknown sharding rule set {rules!r}; canned sets: "
                        f"{', '.join(RULE_SETS)} (or give a tuple of (logical, mesh_axes) pairs).")
    pairs = RULE_SETS[rules]
  else:
    pairs = _as_pairs(rules, "sharding.rules")
  table: dict[str, Target] = {}
  for name, target in pairs:
    if name in table and table[name] != target:
      raise ConfigError(f"Conflicting sharding rules for logical axis {name!r}: {table[name]!r} "
                        f"and {target!r}. Keep one.")
    table[name] = target
  seen: set[str] = set()
  for name, target in _as_pairs(overrides, "sharding.overrides"):
    if name in seen:
      raise ConfigError(f"sharding.overrides lists logical axis {name!r} twice.")
    seen.add(name)
    table[name] = target
  return table


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh with axes ``data, fsdp, tensor`` (in that order); one size may be -1 (the rest)."""
  devices = list(jax.devices() if devices is None else devices)
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ConfigError(f"Unknown mesh axes {sorted(unknown)}; the mesh axes are {MESH_AXES}.")
  sizes = {a: int(shape.get(a, 1)) for a in MESH_AXES}
  free = [a for a, s in sizes.items() if s == -1]
  if len(free) > 1 or any(s == 0 or s < -1 for s in sizes.values()):
    raise ConfigError(f"Mesh sizes must be positive, with at most one -1; got {dict(shape)}.")
  fixed = math.prod(s for s in sizes.values() if s != -1)
  if free:
    if len(devices) % fixed:
      raise ConfigError(f"Mesh {dict(shape)}: the fixed axes need a multiple of {fixed} devices, "
                        f"but there are {len(devices)}.")
    sizes[free[0]] = len(devices) // fixed
  total = math.prod(sizes.values())
  if total > len(devices):
    raise ConfigError(f"Mesh {sizes} needs {total} devices but only {len(devices)} are available "
                      f"({devices[0].platform}). Shrink the mesh or use -1 for one axis.")
  grid = np.array(devices[:total], dtype=object).reshape(tuple(sizes[a] for a in MESH_AXES))
  return Mesh(grid, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))


def _axes(target: Target) -> tuple[str, ...]:
  return () if target is None else (target,) if isinstance(target, str) else tuple(target)


def logical_to_spec(names: Sequence[str | None], rules: Mapping[str, Target], *,
                    where: str = "an array") -> P:
  """Maps logical axis names to a PartitionSpec; reusing a mesh axis is an error."""
  used: dict[str, str] = {}
  out = []
  for name in names:
    target = rules.get(name) if name is not None else None
    for a in _axes(target):
      if a in used:
        raise ConfigError(f"Sharding conflict for {where}: logical axes {used[a]!r} and {name!r} "
                          f"both map to mesh axis {a!r}. Override one in sharding.overrides.")
      used[a] = name
    out.append(target)
  return P(*out)


def _logical_names(var: Any) -> tuple | None:
  meta = var.get_metadata() if hasattr(var, "get_metadata") else {}
  for key in ("out_sharding", "sharding_names", "sharding"):
    if meta.get(key):
      return tuple(meta[key])
  return None


def param_specs(state: Any, rules: Mapping[str, Target], mesh: Mesh | None = None) -> dict:
  """PartitionSpecs for an `nnx.State` (or module), as a pure nested dict like `to_pure_dict()`.

  With `mesh`, every sharded dimension must divide over its mesh axes (a clear error otherwise).
  """
  from flax import nnx
  if isinstance(state, nnx.Module):
    state = nnx.state(state)
  out: dict = {}
  for path, var in nnx.to_flat_state(state):
    where = "/".join(map(str, path))
    names = _logical_names(var)
    shape = tuple(getattr(var, "shape", ()) or np.shape(var.get_value()))
    if names is None:
      spec = P()
    else:
      if len(names) != len(shape):
        raise ConfigError(f"Parameter {where} has shape {shape} but {len(names)} logical axis "
                          f"names {names}.")
      spec = logical_to_spec(names, rules, where=f"parameter {where}")
    if mesh is not None:
      for dim, target in zip(shape, spec):
        n = math.prod(mesh.shape[a] for a in _axes(target))
        if dim % n:
          raise ConfigError(f"Parameter {where} of shape {shape}: dimension {dim} does not divide "
                            f"over mesh axes {target} ({n} devices). Change the mesh, or map its "
                            "logical axis to None in sharding.overrides.")
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = spec
  return out


def batch_shards(mesh: Mesh, rules: Mapping[str, Target]) -> int:
  return math.prod(mesh.shape[a] for a in _axes(rules.get("batch")))


def check_global_batch(global_batch: int, mesh: Mesh, rules: Mapping[str, Target]) -> None:
  n = batch_shards(mesh, rules)
  if global_batch % n or global_batch % jax.process_count():
    raise ConfigError(f"The global batch of {global_batch} does not divide over the mesh's batch "
                      f"axes {rules.get('batch')} ({n} shards, {jax.process_count()} processes); "
                      f"use a multiple of {math.lcm(n, jax.process_count())}.")


def named(mesh: Mesh, specs: Any) -> Any:
  """NamedShardings for a tree of PartitionSpecs."""
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def describe_specs(specs: Mapping) -> dict[str, str]:
  """Flattens a spec tree to {"a/b/kernel": "P('fsdp', None)"} for golden files and logs."""
  flat = {}
  for path, spec in jax.tree_util.tree_flatten_with_path(
      specs, is_leaf=lambda x: isinstance(x, P))[0]:
    key = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
    flat[key] = str(spec)
  return dict(sorted(flat.items()))
