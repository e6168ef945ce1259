"""Orbax checkpoints of everything a run needs to resume: one directory per step.

Each checkpoint holds ``state`` (parameters, optimizer state, non-parameter model state, RNG key)
and ``meta`` (step, the data position, parameter shapes). Orbax writes into a temporary directory
and renames it when complete, so a run killed mid-save leaves the previous checkpoint intact; the
save itself runs in the background (async) while training continues.
"""

from __future__ import annotations

import pathlib
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from gemb.errors import ConfigError


def shapes_of(tree: Any) -> dict[str, list[int]]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): list(np.shape(x)) for p, x in flat}


class Checkpointer:
  """Keep-last-K Orbax checkpoints, saved every `every` steps (and when forced)."""

  def __init__(self, directory: str | pathlib.Path, *, every: int = 100, keep: int = 3,
               async_save: bool = True):
    if every < 1 or keep < 1:
      raise ConfigError(f"Checkpointing needs every >= 1 and keep >= 1; got every={every}, "
                        f"keep={keep}.")
    self.directory = pathlib.Path(directory).absolute()
    self.every = every
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=every, enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True)
    self._mgr = ocp.CheckpointManager(self.directory, options=options,
                                      item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._mgr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def save(self, step: int, state: Any, meta: Mapping[str, Any], *, force: bool = False) -> bool:
    meta = {**meta, "step": int(step), "shapes": shapes_of(state["params"])}
    return self._mgr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)

  def meta(self, step: int) -> dict:
    return dict(self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
                .meta)

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """Restores into the shapes and shardings of `target` (arrays or ShapeDtypeStructs)."""
    meta = self.meta(step)
    want, have = shapes_of(target["params"]), meta.get("shapes", {})
    diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
    if diff:
      k = diff[0]
      raise ConfigError(
          f"Checkpoint {self.directory}/{step} is of another model: parameter {k} has shape "
          f"{have.get(k, 'absent')} there but {want.get(k, 'absent')} in this model "
          f"({len(diff)} parameters differ). Use a fresh workdir or the matching model preset.")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=getattr(x, "sharding", None)),
        target)
    out = self._mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out.state, dict(out.meta)

  def prune(self, keep: int) -> list[int]:
    """Deletes all but the latest `keep` checkpoints (0: all of them); returns the deleted steps.
    For a finished run, whose result is its saved model: the checkpoints only served resuming."""
    if keep < 0:
      raise ConfigError(f"checkpoint.keep_finished must be >= 0, got {keep}.")
    self._mgr.wait_until_finished()
    steps = sorted(self._mgr.all_steps())
    gone = steps[:len(steps) - keep] if keep else steps
    for step in gone:
      self._mgr.delete(step)
    return gone

  def wait(self) -> None:
    self._mgr.wait_until_finished()

  def close(self) -> None:
    self._mgr.wait_until_finished()
    self._mgr.close()
