"""Atomic file writes: the one helper every module that writes a file calls.

A write goes to a temporary file in the target's own folder (so `os.replace` never crosses a
filesystem), is flushed and fsynced, gets the permissions an ordinary `open(path, "w")` would give
(0666 less the umask; `mkstemp` alone would leave 0600), and is then renamed over the target. A
crash at any moment leaves either the old file or the new one, never half of one; the temporary
file is removed when the writer raises.

    atomic_write(path, "text")                       # str (UTF-8) or bytes
    atomic_write(path, lambda tmp: np.save(tmp, a))  # a writer that needs a path
    with atomic_path("fig.png") as tmp:              # same, as a context manager; tmp keeps the
      fig.savefig(tmp)                               # target's suffix (".png", ".npy", ...)
    with atomic_open("log.json", "w") as f:          # a writer that needs a file object
      json.dump(obj, f)
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from typing import Callable, Iterator, IO

__all__ = ["atomic_write", "atomic_path", "atomic_open", "file_mode", "fsync_dir"]


def file_mode() -> int:
  """The mode `open(path, "w")` would create a file with: 0o666 less the process umask."""
  try:  # Linux reports the umask without changing it (os.umask would race with other threads)
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return 0o666 & ~int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return 0o666 & ~mask


def fsync_dir(directory: str | os.PathLike) -> None:
  """Makes a rename inside `directory` durable (a no-op where folders cannot be opened)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _fsync_file(path: str) -> None:
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
  """Yields a temporary path next to `path` (same suffix); on a clean exit it becomes `path`."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                             dir=path.parent)
  os.close(fd)
  try:
    yield tmp
    _fsync_file(tmp)
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise
  fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
  """`open(path, mode)` whose result appears at `path` only when the block exits cleanly."""
  if not mode.startswith("w"):
    raise ValueError(f"atomic_open writes a whole file; mode must start with 'w', got {mode!r}.")
  if "b" not in mode:
    kwargs.setdefault("encoding", "utf-8")
  with atomic_path(path) as tmp:
    with open(tmp, mode, **kwargs) as f:
      yield f


def atomic_write(path: str | os.PathLike,
                 data: str | bytes | Callable[[str], object]) -> pathlib.Path:
  """Writes `data` (str as UTF-8, bytes, or a callable given the temporary path) to `path`."""
  with atomic_path(path) as tmp:
    if callable(data):
      data(tmp)
    elif isinstance(data, str):
      with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
    elif isinstance(data, (bytes, bytearray, memoryview)):
      with open(tmp, "wb") as f:
        f.write(data)
    else:
      raise TypeError(f"atomic_write takes str, bytes or a callable, got {type(data).__name__}.")
  return pathlib.Path(path)
