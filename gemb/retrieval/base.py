"""The retrieval-backend contract, input checks and the atomic on-disk layout.

Every backend in `gemb.retrievers` is a class with::

    index = Backend(**spec_args)
    index.build(emb_nd, ids=None)        # replaces the contents
    ids_qk, scores_qk = index.search(queries_qd, k)
    index.add(emb_nd, ids); index.remove(ids)
    index.save(path); index = Backend.load(path)   # or gemb.retrieval.load_index(path)

Scores are inner products (cosine for L2-normalized embeddings), higher is better; ids are int64.

On disk an index is a directory::

    path/MANIFEST.json     {"format_version", "backend", "data": "v-<hex>", "files", ...}
    path/v-<hex>/...       backend files

A save writes a fresh ``v-<hex>`` folder, then swaps MANIFEST.json with `os.replace` (atomic on
POSIX), then deletes the older folders; a crash at any point leaves a loadable index: the old one
until the swap, the new one after it. The manifest lists every data file with its size; load
checks them (and ids.npy against the manifest's size, and the backend's row count) before any
backend parser runs, so a damaged index raises `IndexFormatError` naming the file.
"""

from __future__ import annotations

import abc
import json
import os
import pathlib
import shutil
import uuid
from typing import Any, ClassVar

import numpy as np

from gemb.errors import GembError, InputError
from gemb.io import atomic_write, fsync_dir

FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"


class IndexFormatError(InputError):
  """An index on disk is missing, damaged, or written by another format version or backend."""


def as_vectors(x: Any, what: str, dim: int | None = None) -> np.ndarray:
  """Checks `x` is a finite [n, d] float array (d == `dim` if given); returns float32 C-order."""
  try:
    arr = np.asarray(x)
  except Exception as e:  # ragged lists and the like
    raise InputError(f"{what} must be a 2-D array of floats [n, d]; could not convert: {e}") from None
  if arr.ndim == 1 and arr.size and dim is not None and arr.shape[0] == dim:
    arr = arr[None, :]
  if arr.ndim != 2:
    raise InputError(f"{what} must be 2-D [n, d], got shape {arr.shape}. Reshape a single vector "
                     "with v[None, :].")
  if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
    raise InputError(f"{what} must hold numbers, got dtype {arr.dtype}.")
  if dim is not None and arr.shape[1] != dim:
    raise InputError(f"Dimension mismatch: {what} has d={arr.shape[1]} but the index holds "
                     f"d={dim} vectors. Embed with the same model and output dim as the index.")
  arr = np.ascontiguousarray(arr, dtype=np.float32)
  bad = ~np.isfinite(arr).all(axis=1)
  if bad.any():
    rows = np.flatnonzero(bad)
    raise InputError(f"{what} has {rows.size} row(s) with NaN or inf (first rows: "
                     f"{rows[:5].tolist()}). Fix the embeddings before indexing or searching.")
  return arr


def as_ids(ids: Any, n: int, what: str = "ids") -> np.ndarray:
  """Checks `ids` are n unique integers; returns int64."""
  arr = np.asarray(ids)
  if arr.ndim != 1 or arr.shape[0] != n:
    raise InputError(f"{what} must be a 1-D sequence of {n} integers (one per vector), got shape "
                     f"{arr.shape}.")
  if n and not np.issubdtype(arr.dtype, np.integer):
    raise InputError(f"{what} must be integers, got dtype {arr.dtype}. Map string keys to ints "
                     "first (e.g. with a dict) and keep the mapping beside the index.")
  arr = arr.astype(np.int64)
  uniq, counts = np.unique(arr, return_counts=True)
  if (counts > 1).any():
    raise InputError(f"{what} contain duplicates: {uniq[counts > 1][:5].tolist()}.")
  return arr


def check_k(k: Any, size: int) -> int:
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise InputError(f"k must be a positive integer, got {k!r}.")
  if size == 0:
    raise InputError("The index is empty: build it with vectors (or add some) before searching.")
  if k > size:
    raise InputError(f"k={k} is larger than the corpus ({size} vectors). Ask for k <= {size}.")
  return int(k)


class Index(abc.ABC):
  """Base class of retrieval backends: id bookkeeping, checks and atomic saving."""

  backend: ClassVar[str] = ""

  def __init__(self):
    self.dim: int | None = None
    self.ids_n = np.zeros((0,), np.int64)  # row -> id, in the backend's own row order

  def __len__(self) -> int:
    return int(self.ids_n.shape[0])

  @property
  def size(self) -> int:
    return len(self)

  def __repr__(self):
    return f"{type(self).__name__}(n={len(self)}, d={self.dim})"

  # -- public API: checks, then the backend's _methods ---------------------------------------

  def build(self, emb_nd: Any, ids: Any = None) -> "Index":
    """Replaces the index contents with `emb_nd` (ids default to 0..n-1)."""
    emb_nd = as_vectors(emb_nd, "corpus embeddings")
    n = emb_nd.shape[0]
    if n == 0:
      raise InputError("Cannot build an index from an empty corpus (0 vectors). Pass at least one "
                       "vector, or build from one and add() the rest later.")
    ids_n = np.arange(n, dtype=np.int64) if ids is None else as_ids(ids, n)
    self.dim = int(emb_nd.shape[1])
    self._build(emb_nd, ids_n)
    self.ids_n = ids_n
    return self

  def search(self, queries_qd: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (ids_qk int64, scores_qk float32), best first."""
    self._require_built()
    k = check_k(k, len(self))
    q_qd = as_vectors(queries_qd, "queries", self.dim)
    if q_qd.shape[0] == 0:
      return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    rows_qk, scores_qk = self._search(q_qd, k)
    return self.ids_n[rows_qk], np.asarray(scores_qk, np.float32)

  def add(self, emb_nd: Any, ids: Any) -> None:
    """Adds vectors under new ids; an id already present is an error (remove it first)."""
    self._require_built()
    emb_nd = as_vectors(emb_nd, "added embeddings", self.dim)
    ids_n = as_ids(ids, emb_nd.shape[0])
    if ids_n.size == 0:
      return
    taken = np.intersect1d(ids_n, self.ids_n)
    if taken.size:
      raise InputError(f"add(): ids already in the index: {taken[:5].tolist()}. remove() them "
                       "first to replace their vectors.")
    self._add(emb_nd, ids_n)

  def remove(self, ids: Any) -> None:
    """Removes the vectors with these ids; an unknown id is an error."""
    self._require_built()
    ids_n = as_ids(np.atleast_1d(np.asarray(ids)), np.atleast_1d(np.asarray(ids)).shape[0])
    missing = np.setdiff1d(ids_n, self.ids_n)
    if missing.size:
      raise InputError(f"remove(): ids not in the index: {missing[:5].tolist()}.")
    if ids_n.size:
      self._remove(ids_n)

  def save(self, path: str | os.PathLike) -> pathlib.Path:
    """Saves atomically into directory `path` (see the module docstring for the layout)."""
    self._require_built()
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data = f"v-{uuid.uuid4().hex[:12]}"
    tmp = path / f".tmp-{data}"
    tmp.mkdir()
    try:
      np.save(tmp / "ids.npy", self.ids_n)
      extra = self._save(tmp)
      _fsync_tree(tmp)
      files = {f.relative_to(tmp).as_posix(): f.stat().st_size
               for f in sorted(tmp.rglob("*")) if f.is_file()}
      os.replace(tmp, path / data)
      manifest = {"format_version": FORMAT_VERSION, "backend": self.backend, "data": data,
                  "dim": self.dim, "size": len(self), "params": extra or {}, "files": files}
      atomic_write(path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    for old in path.iterdir():  # older versions and debris of crashed saves
      if old.name != data and old.name.startswith(("v-", ".tmp-v-", f".{MANIFEST}.tmp")):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    return path

  @classmethod
  def load(cls, path: str | os.PathLike) -> "Index":
    manifest, data_dir = read_manifest(path)
    if cls.backend and manifest["backend"] != cls.backend:
      raise IndexFormatError(f"{path} holds a {manifest['backend']!r} index, not {cls.backend!r}. "
                             "Load it with gemb.retrieval.load_index(path).")
    size, dim = manifest["size"], manifest["dim"]
    for rel, nbytes in manifest.get("files", {}).items():  # every file whole, before any parser
      f = data_dir / rel
      if not f.is_file() or f.stat().st_size != nbytes:
        state = "is missing" if not f.is_file() else f"has {f.stat().st_size} bytes, not {nbytes}"
        raise IndexFormatError(f"{f} {state}; the index is damaged: rebuild and save it again.")
    ids_path = data_dir / "ids.npy"
    try:
      ids_n = np.load(ids_path, allow_pickle=False)
    except FileNotFoundError:
      raise IndexFormatError(f"{ids_path} is missing; the index is damaged: rebuild and save "
                             "it again.") from None
    except (OSError, ValueError, EOFError) as e:
      raise IndexFormatError(f"{ids_path} cannot be read ({e}); the index is damaged: rebuild "
                             "and save it again.") from None
    if ids_n.ndim != 1 or ids_n.dtype.kind not in "iu" or len(ids_n) != size:
      raise IndexFormatError(f"{ids_path} holds {ids_n.dtype} {ids_n.shape}, but {MANIFEST} says "
                             f"{size} integer ids; the index is damaged: rebuild and save it "
                             "again.")
    try:
      index = cls._load(data_dir, manifest.get("params", {}))
      rows = index._stored_rows()
    except GembError:
      raise
    except Exception as e:  # a backend's loader fails in its own words on a damaged file
      raise IndexFormatError(f"{data_dir}: the {manifest['backend']} index files cannot be loaded "
                             f"({type(e).__name__}: {str(e)[:200]}); the index is damaged: "
                             "rebuild and save it again.") from None
    if rows is not None and rows != size:
      raise IndexFormatError(f"{data_dir}: the {manifest['backend']} index files hold {rows} "
                             f"vectors but {MANIFEST} and ids.npy say {size}; the index is "
                             "damaged: rebuild and save it again.")
    index.ids_n = ids_n.astype(np.int64, copy=False)
    index.dim = dim
    return index

  def _stored_rows(self) -> int | None:
    """After `_load`: how many vectors the backend's files hold (None: cannot tell)."""
    return None

  # -- backend hooks -------------------------------------------------------------------------

  def _require_built(self) -> None:
    if self.dim is None:
      raise InputError(f"This {self.backend} index has not been built: call build(emb_nd) first.")

  @abc.abstractmethod
  def _build(self, emb_nd: np.ndarray, ids_n: np.ndarray) -> None: ...

  @abc.abstractmethod
  def _search(self, q_qd: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (rows_qk into ids_n, scores_qk)."""

  @abc.abstractmethod
  def _add(self, emb_nd: np.ndarray, ids_n: np.ndarray) -> None:
    """Must also extend self.ids_n in row order."""

  @abc.abstractmethod
  def _remove(self, ids_n: np.ndarray) -> None:
    """Must also update self.ids_n in row order."""

  @abc.abstractmethod
  def _save(self, directory: pathlib.Path) -> dict[str, Any]:
    """Writes backend files; returns JSON-able params for the manifest."""

  @classmethod
  @abc.abstractmethod
  def _load(cls, directory: pathlib.Path, params: dict[str, Any]) -> "Index": ...


def _is_count(x: Any) -> bool:
  return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def read_manifest(path: str | os.PathLike) -> tuple[dict[str, Any], pathlib.Path]:
  path = pathlib.Path(path)
  mpath = path / MANIFEST
  if not mpath.is_file():
    raise IndexFormatError(f"No gemb index at {path}: {MANIFEST} is missing. Save one with "
                           "index.save(path).")
  try:
    manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    if not isinstance(manifest, dict):
      raise ValueError(f"expected a JSON object, got {type(manifest).__name__}")
  except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError too
    raise IndexFormatError(f"{mpath} is unreadable ({e}); the index is damaged.") from None
  version = manifest.get("format_version")
  if version != FORMAT_VERSION:
    raise IndexFormatError(
        f"{path} was saved with index format version {version!r}; this gemb reads version "
        f"{FORMAT_VERSION}. Rebuild the index from its embeddings with this gemb version.")
  checks = {"backend": isinstance(manifest.get("backend"), str),
            "data": isinstance(manifest.get("data"), str) and
            pathlib.PurePath(manifest.get("data", "")).name == manifest.get("data") and
            manifest.get("data") not in ("", ".", ".."),
            "dim": _is_count(manifest.get("dim")) and manifest.get("dim", 0) > 0,
            "size": _is_count(manifest.get("size")),
            "params": isinstance(manifest.get("params", {}), dict),
            "files": isinstance(manifest.get("files", {}), dict) and all(
                isinstance(k, str) and ".." not in pathlib.PurePosixPath(k).parts and
                not k.startswith("/") and _is_count(v)
                for k, v in manifest.get("files", {}).items())}
  bad = [k for k, ok in checks.items() if not ok]
  if bad:
    raise IndexFormatError(f"{mpath}: key {bad[0]!r} is missing or invalid "
                           f"({manifest.get(bad[0])!r}); the index is damaged: rebuild and save "
                           "it again.")
  data_dir = path / str(manifest.get("data", ""))
  if not data_dir.is_dir():
    raise IndexFormatError(f"{path}: the data folder {manifest.get('data')!r} named by {MANIFEST} "
                           "is missing; the index is damaged.")
  return manifest, data_dir


def _fsync_tree(root: pathlib.Path) -> None:
  for p in sorted(root.rglob("*")):
    if p.is_file():
      with open(p, "rb") as f:
        os.fsync(f.fileno())
  fsync_dir(root)
