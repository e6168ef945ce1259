"""Running a recipe: the workdir, run metadata, metrics and progress.

Every run writes into its workdir:

* ``config.json``: the resolved config (after ``--set`` overrides);
* ``run.json``: metadata (package versions, plugins loaded, devices, git commit, status);
* ``metrics.jsonl``: one JSON object a line, appended as the run goes.

The workdir is checked before anything is written (`check_workdir`): a folder holding a run of
another config or kind is refused untouched; one holding this config resumes, its earlier
``run.json`` kept under ``history``, its log continued (a torn last line cut, lines already
logged not repeated, the clock continuing).

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
import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from gemb import config as config_lib
from gemb import registry
from gemb.errors import ConfigError, GembError
from gemb.io import atomic_write

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
  atomic_write(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl; a torn or malformed line (a run killed mid-write) is
  dropped with a warning instead of failing whoever reads the log."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError:
    return []
  records, bad = [], 0
  for line in raw.split(b"\n"):
    if not line.strip():
      continue
    try:
      rec = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
      rec = None
    if isinstance(rec, dict):
      records.append(rec)
    else:
      bad += 1
  if bad:
    warnings.warn(f"{path}: dropped {bad} torn or malformed line(s) (a run killed while "
                  "writing?).", RuntimeWarning, stacklevel=2)
  return records


def _repair_log(path: pathlib.Path) -> None:
  """Cuts a torn last line (no newline: the writer was killed mid-line) so that new records
  start on a line of their own."""
  try:
    with open(path, "rb+") as f:
      raw = f.read()
      if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        warnings.warn(f"{path}: dropping a torn last line ({len(raw) - keep} bytes) left by a "
                      "killed run.", RuntimeWarning, stacklevel=3)
        f.truncate(keep)
  except FileNotFoundError:
    pass


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
  if not isinstance(d, dict):
    return {prefix.rstrip("."): d}
  out: dict[str, Any] = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


WORKDIR_RECORDS = ("run.json", "metrics.jsonl", "summary.json", "ckpt", "model")
LOG_ONLY = ("config.json", "run.json", "metrics.jsonl", "tensorboard")


def check_workdir(workdir: str | os.PathLike, cfg: config_lib.ConfigDict) -> list[dict]:
  """Checks, before anything is written, that `workdir` can hold this run: a usable folder path,
  and either new, or holding a run of exactly this config (which then resumes). Raises
  ConfigError naming the differing keys otherwise, leaving the folder untouched. Returns the
  earlier attempts recorded in its run.json (kept as the new run.json's "history")."""
  path = pathlib.Path(workdir)
  for p in (path, *path.parents):
    if p.exists() or p.is_symlink():
      if not p.is_dir():
        raise ConfigError(f"--workdir {path}: {p} is {'a file' if p.is_file() else 'not a folder'}"
                          "; pick another --workdir.")
      if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir {path}: cannot write in {p} (permission denied or a "
                          "read-only file system); pick another --workdir.")
      break
  if not path.is_dir() and _coordinator()[2] != 0:  # other processes leave the folder to
    return []                                         # process 0 (no race on mkdir/rmdir)
  if not path.is_dir():  # prove it can be made (a read-only mount passes os.access), then undo
    made = [p for p in (path, *path.parents) if not p.exists()]
    try:
      path.mkdir(parents=True)
    except OSError as e:
      raise ConfigError(f"--workdir {path} cannot be created ({e.strerror or e}); pick another "
                        "--workdir.") from None
    for p in made:
      try:
        p.rmdir()
      except OSError:
        break
    return []
  cfg_path = path / "config.json"
  if not cfg_path.exists():
    found = [n for n in WORKDIR_RECORDS if (path / n).exists()]
    if found:
      raise ConfigError(f"--workdir {path} holds {', '.join(found)} but no config.json, so it "
                        "cannot be checked or resumed; it was left untouched. Use a fresh "
                        "--workdir.")
    return []
  try:
    old = json.loads(cfg_path.read_bytes().decode("utf-8"))
    if not isinstance(old, dict):
      raise ValueError("not a JSON object")
  except (ValueError, UnicodeDecodeError) as e:
    raise ConfigError(f"{cfg_path} is damaged ({e}); the workdir cannot be resumed. Use a fresh "
                      "--workdir.") from None
  new = json.loads(json.dumps(_jsonable(cfg.to_dict())))
  a, b = _flat(old), _flat(new)
  diff = sorted((k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>")),
                key=lambda k: (k != "kind", k))  # another kind of run first
  prev: dict = {}
  try:
    prev = json.loads((path / "run.json").read_bytes().decode("utf-8"))
    prev = prev if isinstance(prev, dict) else {}
  except (OSError, ValueError, UnicodeDecodeError):
    pass
  history = list(prev.pop("history", []) or [])[-19:] + ([prev] if prev else [])
  # A run that failed before producing anything (a bad value its runner found) may be replaced;
  # its config stays in the history.
  produced = [p.name for p in path.iterdir() if p.name not in LOG_ONLY]
  if diff and prev.get("status") == "failed" and not produced:
    history[-1]["config"] = old
    return history
  if diff:
    shown = "; ".join(f"{k} is {a.get(k, '<absent>')!r} there but {b.get(k, '<absent>')!r} now"
                      for k in diff[:4])
    more = f"; and {len(diff) - 4} more" if len(diff) > 4 else ""
    raise ConfigError(
        f"--workdir {path} holds a {old.get('kind', '?')!r} run of another config ({shown}{more})."
        " It was left untouched: resume with the same settings, or use a fresh --workdir.")
  return history


MODEL_KEYS = ("model", "embedder")  # config keys whose string value may name a model folder


def check_model_refs(cfg: config_lib.ConfigDict) -> None:
  """Every `model` / `embedder` setting (nested ones too) that names a folder is checked now,
  without jax, instead of after minutes of imports and work."""
  from gemb import model_folder
  for key, value in config_lib.flat_items(cfg).items():
    if key.rsplit(".", 1)[-1] in MODEL_KEYS and model_folder.looks_like_folder(value):
      try:
        model_folder.check_folder(os.path.expanduser(os.fspath(value)))
      except GembError as e:
        raise type(e)(f"{key}: {e}") from None


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
    self._clock = 0.0  # a resumed run's clock continues from the log's last time
    self._seen: set[str] = set()  # records already logged (a resumed run repeats none of them)
    if self.is_writer:
      self.workdir.mkdir(parents=True, exist_ok=True)
      _repair_log(self.metrics_path)
      for rec in read_metrics(self.metrics_path):
        t = rec.pop("time", 0.0)
        self._clock = max(self._clock, t if isinstance(t, (int, float)) else 0.0)
        self._seen.add(json.dumps(rec, sort_keys=True))
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
    record: dict[str, Any] = {}
    if step is not None:
      record["step"] = int(step)
    record.update(_jsonable(metrics))
    key = json.dumps(record, sort_keys=True)
    if key in self._seen:  # logged before the run was interrupted and resumed
      return
    self._seen.add(key)
    record["time"] = round(self._clock + time.time() - self.started, 3)
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:  # one write of one whole line: a kill leaves at most a torn last line, cut next time
      os.write(fd, line)
    finally:
      os.close(fd)
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


def _coordinator() -> tuple[str | None, int, int]:
  """GEMB_COORDINATOR, GEMB_NUM_PROCESSES, GEMB_PROCESS_ID, checked (no jax needed)."""
  address = os.environ.get("GEMB_COORDINATOR")
  if not address or address == "auto":
    return address, 0, 0
  try:
    return address, int(os.environ["GEMB_NUM_PROCESSES"]), int(os.environ["GEMB_PROCESS_ID"])
  except (KeyError, ValueError):
    raise ConfigError("GEMB_COORDINATOR is set, so GEMB_NUM_PROCESSES and GEMB_PROCESS_ID must "
                      "be integers too (e.g. 2 and 0 on the first process).") from None


def init_distributed() -> None:
  """Joins a multi-process run when GEMB_COORDINATOR is set (host:port of process 0).

  Every process runs the same command with GEMB_NUM_PROCESSES and its own GEMB_PROCESS_ID. On CPU
  the collectives go through gloo. On TPU pods and SLURM clusters jax can find the peers itself:
  set GEMB_COORDINATOR=auto. Must run before anything asks jax for its devices.
  """
  address, num, pid = _coordinator()
  if not address:
    return
  import jax
  if address == "auto":
    jax.distributed.initialize()
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # affects CPU devices only
  jax.distributed.initialize(coordinator_address=address, num_processes=num, process_id=pid)


def run_recipe(ref: str, overrides: Sequence[str] = (), workdir: str | None = None, *,
               tensorboard: bool = False) -> Any:
  """Loads recipe `ref` (``NAME[:VARIANT]``), applies overrides and runs it; returns its summary.

  `tensorboard=True` mirrors the metrics into ``WORKDIR/tensorboard/`` (needs tensorboardX).
  """
  _coordinator()
  recipe = config_lib.find_recipe(ref)
  cfg = config_lib.load_config(recipe)
  config_lib.apply_overrides(cfg, overrides)
  # Everything that can be checked is checked before jax is imported and before the first write.
  check_model_refs(cfg)
  if workdir is None:
    if os.environ.get("GEMB_COORDINATOR"):
      raise ConfigError("A multi-process run needs --workdir: every process must write its "
                        "checkpoints to the same (shared) folder.")
    workdir = default_workdir(recipe)
  history = check_workdir(workdir, cfg)
  runner = registry.runners.get(cfg.kind)
  check_config = getattr(runner, "check_config", None)
  if check_config is not None:  # the run kind's typed schema: every stage, loss, optimizer value
    check_config(cfg)
  init_distributed()
  run = Run(cfg, workdir, recipe, tensorboard=tensorboard)
  run.write_json("config.json", cfg.to_dict())
  run.write_json("run.json", run.metadata("running", history=history))
  try:
    summary = runner(cfg, run)
  except BaseException as e:
    run.write_json("run.json", run.metadata("failed", error=f"{type(e).__name__}: {e}",
                                            history=history))
    raise
  finally:
    run.close()
  run.write_json("run.json", run.metadata("completed", history=history))
  return summary
