"""Orbax checkpoints of everything a run needs to resume: one directory per step.

Each checkpoint holds ``state`` (parameters, optimizer state, non-parameter model state, RNG key)
and ``meta`` (step, the data position, parameter shapes). Orbax writes into a temporary directory
and renames it when complete, so a run killed mid-save leaves the previous checkpoint intact; the
save itself runs in the background (async) while training continues.

Cleanup cannot hurt either. Old steps are not deleted in place: Orbax renames each into
``_deleted/`` (one atomic rename), and gemb empties that folder. Each finished step gets an
inventory (``gemb_files.json``: every file and its size). When a Checkpointer opens a folder it
first finishes what a killed run left half done: a step whose inventory no longer matches its
files, or that lacks the files every step has (a deletion interrupted by an older gemb), is
moved to ``_deleted/`` with a warning and removed, so resume and soups only see complete steps.
This module serves training and cold start alike.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import warnings
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from gemb.errors import ConfigError
from gemb.io import atomic_write

TRASH = "_deleted"  # steps being deleted are renamed into this subfolder first
INVENTORY = "gemb_files.json"
# What every finished Orbax step of a Checkpointer holds (items "state" and "meta").
REQUIRED = ("_CHECKPOINT_METADATA", "state/_METADATA", "state/manifest.ocdbt", "meta/metadata")


def _files(step_dir: pathlib.Path) -> dict[str, int]:
  out = {}
  for root, _, names in os.walk(step_dir):
    for n in names:
      full = pathlib.Path(root) / n
      rel = full.relative_to(step_dir).as_posix()
      if rel != INVENTORY:
        out[rel] = full.stat().st_size
  return out


def step_problem(step_dir: pathlib.Path) -> str | None:
  """Why the step folder is not a complete checkpoint (None when it is)."""
  inv = step_dir / INVENTORY
  if inv.exists():
    try:
      want = json.loads(inv.read_text())
      have = _files(step_dir)
    except (OSError, ValueError) as e:
      return f"its inventory cannot be read ({e})"
    gone = sorted(set(want) - set(have)) + sorted(k for k in want if k in have and
                                                  have[k] != want[k])
    return f"{len(gone)} file(s) missing or cut short, e.g. {gone[0]}" if gone else None
  missing = [r for r in REQUIRED if not (step_dir / r).exists()]
  return f"it lacks {', '.join(missing)}" if missing else None


def _step_dirs(directory: pathlib.Path) -> list[pathlib.Path]:
  if not directory.is_dir():
    return []
  return sorted((p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()),
                key=lambda p: int(p.name))


def finish_deletions(directory: str | pathlib.Path) -> list[int]:
  """Removes what an interrupted cleanup left: the trash folder, and steps that are incomplete
  (a deletion killed half way). Returns the steps removed. Safe to run from several processes."""
  directory = pathlib.Path(directory)
  trash = directory / TRASH
  removed = []
  for step_dir in _step_dirs(directory):
    problem = step_problem(step_dir)
    if problem is None:
      continue
    warnings.warn(f"Checkpoint {step_dir} is incomplete ({problem}): a deletion or save was "
                  "interrupted. Finishing its deletion; resume uses the complete steps.",
                  RuntimeWarning, stacklevel=3)
    trash.mkdir(exist_ok=True)
    try:
      os.replace(step_dir, trash / f"{step_dir.name}-{os.getpid()}")
    except OSError:  # another process got there first
      continue
    removed.append(int(step_dir.name))
  if trash.exists():
    shutil.rmtree(trash, ignore_errors=True)
  return removed


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
    self._is_writer = jax.process_index() == 0
    self._async = async_save
    self.removed_incomplete = finish_deletions(self.directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=every, enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True, todelete_subdir=TRASH)
    self._mgr = ocp.CheckpointManager(self.directory, options=options,
                                      item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._mgr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def _inventory(self) -> None:
    """Writes the inventory of every finished step that has none yet."""
    if not self._is_writer:
      return
    for step_dir in _step_dirs(self.directory):
      if not (step_dir / INVENTORY).exists() and \
          all((step_dir / r).exists() for r in REQUIRED):
        try:
          atomic_write(step_dir / INVENTORY, json.dumps(_files(step_dir), sort_keys=True))
        except OSError:  # renamed away by Orbax's cleanup meanwhile
          pass

  def _after_saves(self) -> None:
    """With no save in flight: inventories, then empties the trash Orbax renamed old steps to."""
    self._inventory()
    if self._is_writer and (self.directory / TRASH).exists():
      shutil.rmtree(self.directory / TRASH, ignore_errors=True)

  def save(self, step: int, state: Any, meta: Mapping[str, Any], *, force: bool = False) -> bool:
    meta = {**meta, "step": int(step), "shapes": shapes_of(state["params"])}
    saved = self._mgr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)
    if saved:  # the previous save has finished by now (Orbax waits for it first)
      self._after_saves() if not self._async else self._inventory()
    return saved

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
    self._after_saves()

  def close(self) -> None:
    self._mgr.wait_until_finished()
    self._after_saves()
    self._mgr.close()
