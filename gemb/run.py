"""Running a recipe: the workdir, run metadata, metrics and progress.

Every run writes into its workdir:

* ``config.json``: the resolved config (after ``--set`` overrides);
* ``run.json``: metadata (package versions, plugins loaded, devices, git commit, status);
* ``metrics.jsonl``: one JSON object a line, appended as the run goes.

Only process 0 writes, so the same code runs in one process or in many.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any, Iterable, Sequence

import numpy as np

from gemb import config as config_lib
from gemb import registry
from gemb.errors import ConfigError

TRACKED_PACKAGES = ("gemb", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
                    "tensorflow-datasets", "scann", "numpy", "ml-collections")


def package_versions(names: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
  out = {}
  for n in names:
    try:
      out[n] = importlib.metadata.version(n)
    except importlib.metadata.PackageNotFoundError:
      out[n] = None
  return out


def git_commit(path: pathlib.Path) -> str | None:
  """The commit of the git checkout holding `path` (with '+dirty' if modified), or None."""
  try:
    cwd = path if path.is_dir() else path.parent
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                         timeout=10)
    if sha.returncode != 0:
      return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return sha.stdout.strip() + ("+dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    return None


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.floating, np.integer, np.bool_)):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, pathlib.Path):
    return str(x)
  if hasattr(x, "item") and getattr(x, "shape", None) == ():  # jax scalars
    return x.item()
  return x


def write_json_atomic(path: pathlib.Path, obj: Any) -> None:
  """Writes JSON so that a crash leaves either the old file or the new one, never half of one."""
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  with open(tmp, "w") as f:
    json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
    f.write("\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class Run:
  """A run's workdir and logs; passed to the runner that a recipe's ``kind`` selects."""

  def __init__(self, config: config_lib.ConfigDict, workdir: str | os.PathLike,
               recipe: config_lib.Recipe | None = None, *, is_writer: bool | None = None,
               tensorboard: bool = False):
    """`tensorboard=True` also writes every numeric metric to ``WORKDIR/tensorboard/``."""
    self.config = config
    self.recipe = recipe
    self.workdir = pathlib.Path(workdir)
    if is_writer is None:
      import jax
      is_writer = jax.process_index() == 0
    self.is_writer = is_writer
    self.started = time.time()
    if self.is_writer:
      self.workdir.mkdir(parents=True, exist_ok=True)
    self.tensorboard = tensorboard
    self._tb = None
    if tensorboard and self.is_writer:
      try:
        from tensorboardX import SummaryWriter
      except ImportError:
        raise ConfigError("TensorBoard logging needs the tensorboardX package: pip install "
                          "'gemb[tensorboard]' (or run without --tensorboard).") from None
      self._tb = SummaryWriter(str(self.workdir / "tensorboard"), flush_secs=10)

  @property
  def metrics_path(self) -> pathlib.Path:
    return self.workdir / "metrics.jsonl"

  def log(self, step: int | None = None, **metrics: Any) -> None:
    """Appends one record to metrics.jsonl (process 0 only)."""
    if not self.is_writer:
      return
    record = {"time": round(time.time() - self.started, 3)}
    if step is not None:
      record["step"] = int(step)
    record.update(_jsonable(metrics))
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
    if self._tb is not None:
      for name, value in record.items():
        if name not in ("time", "step") and isinstance(value, (int, float)) and \
            not isinstance(value, bool):
          self._tb.add_scalar(name, value, global_step=record.get("step"),
                              walltime=self.started + record["time"])

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer, if any (metrics.jsonl needs nothing)."""
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def write_json(self, name: str, obj: Any) -> pathlib.Path:
    path = self.workdir / name
    if self.is_writer:
      write_json_atomic(path, obj)
    return path

  def progress(self, iterable: Iterable | None = None, *, total: int | None = None,
               desc: str = "") -> Any:
    """A tqdm progress bar on process 0 of an interactive run; silent elsewhere."""
    from tqdm.auto import tqdm
    disable = (not self.is_writer) or os.environ.get("GEMB_PROGRESS", "") == "0" or None
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True)

  def metadata(self, status: str, **extra: Any) -> dict[str, Any]:
    import jax
    devices = jax.devices()
    where = self.recipe.path if self.recipe else pathlib.Path.cwd()
    return {
        "recipe": self.recipe.ref if self.recipe else None,
        "recipe_path": str(self.recipe.path) if self.recipe else None,
        "status": status,
        "argv": sys.argv,
        "started_utc": datetime.datetime.fromtimestamp(
            self.started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - self.started, 3),
        "python": platform.python_version(),
        "host": platform.node(),
        "versions": package_versions(),
        "plugins": [vars(p) for p in registry.loaded_plugins()],
        "devices": {"platform": devices[0].platform, "count": len(devices),
                    "local_count": jax.local_device_count(),
                    "process_count": jax.process_count(), "kinds": sorted(
                        {d.device_kind for d in devices})},
        "git_commit": git_commit(where),
        **extra,
    }


def default_workdir(recipe: config_lib.Recipe) -> pathlib.Path:
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  name = recipe.name + (f"-{recipe.variant}" if recipe.variant else "")
  return pathlib.Path("runs") / name / stamp


def init_distributed() -> None:
  """Joins a multi-process run when GEMB_COORDINATOR is set (host:port of process 0).

  Every process runs the same command with GEMB_NUM_PROCESSES and its own GEMB_PROCESS_ID. On CPU
  the collectives go through gloo. On TPU pods and SLURM clusters jax can find the peers itself:
  set GEMB_COORDINATOR=auto. Must run before anything asks jax for its devices.
  """
  address = os.environ.get("GEMB_COORDINATOR")
  if not address:
    return
  import jax
  if address == "auto":
    jax.distributed.initialize()
    return
  try:
    num, pid = int(os.environ["GEMB_NUM_PROCESSES"]), int(os.environ["GEMB_PROCESS_ID"])
  except (KeyError, ValueError):
    raise ConfigError("GEMB_COORDINATOR is set, so GEMB_NUM_PROCESSES and GEMB_PROCESS_ID must "
                      "be integers too (e.g. 2 and 0 on the first process).") from None
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # affects CPU devices only
  jax.distributed.initialize(coordinator_address=address, num_processes=num, process_id=pid)


def run_recipe(ref: str, overrides: Sequence[str] = (), workdir: str | None = None, *,
               tensorboard: bool = False) -> Any:
  """Loads recipe `ref` (``NAME[:VARIANT]``), applies overrides and runs it; returns its summary.

  `tensorboard=True` mirrors the metrics into ``WORKDIR/tensorboard/`` (needs tensorboardX).
  """
  init_distributed()
  recipe = config_lib.find_recipe(ref)
  cfg = config_lib.load_config(recipe)
  config_lib.apply_overrides(cfg, overrides)
  runner = registry.runners.get(cfg.kind)
  check = getattr(runner, "check_config", None)
  if check is not None:  # a run kind's own checks, before the workdir is touched
    check(cfg)
  if workdir is None:
    import jax
    if jax.process_count() > 1:
      raise ConfigError("A multi-process run needs --workdir: every process must write its "
                        "checkpoints to the same (shared) folder.")
    workdir = default_workdir(recipe)
  run = Run(cfg, workdir, recipe, tensorboard=tensorboard)
  run.write_json("config.json", cfg.to_dict())
  run.write_json("run.json", run.metadata("running"))
  try:
    summary = runner(cfg, run)
  except BaseException as e:
    run.write_json("run.json", run.metadata("failed", error=f"{type(e).__name__}: {e}"))
    raise
  finally:
    run.close()
  run.write_json("run.json", run.metadata("completed"))
  return summary
