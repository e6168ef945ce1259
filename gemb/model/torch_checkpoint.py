"""Reads PyTorch checkpoints (`torch.save` of a state dict) into numpy arrays, without torch.

Both of torch's on-disk layouts are read:

- the zip layout (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` record of raw
  little-endian bytes per storage;
- the legacy layout (what ``efficientnet-lite0-57934424.pth`` uses): five pickles in a row (magic
  number, protocol version, system info, the object, the list of storage keys), then for each key
  in that list an int64 element count followed by the storage's bytes.

Unpickling is restricted: only `collections.OrderedDict`, torch's tensor rebuild functions and its
typed storage classes may be named by the file. A pickle that names anything else (which is how a
malicious checkpoint runs code) is refused with `ConfigError`, never imported.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from gemb.errors import ConfigError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch's typed storages by name → numpy dtype (little-endian).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None,  # handled below: numpy has no bfloat16
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
  """Stands in for `torch.FloatStorage` etc.: only its element dtype matters."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(_STORAGE_DTYPES[name] or np.uint16)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
  flat, stype = storage
  size, stride = tuple(size), tuple(stride)
  if not size:
    arr = flat[offset:offset + 1].reshape(())
  else:
    itemsize = flat.dtype.itemsize
    arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                          strides=tuple(s * itemsize for s in stride))
  arr = np.array(arr)  # own, contiguous copy
  if stype.name == "BFloat16Storage":  # bfloat16 = the high half of a float32
    arr = (arr.astype(np.uint32) << 16).view(np.float32)
  return arr


def _rebuild_parameter(data, requires_grad=False, hooks=None, *args):
  return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, file, load_storage, where: str):
    super().__init__(file)
    self._load_storage = load_storage
    self._where = where
    self._storages: dict[str, tuple] = {}

  def find_class(self, module: str, name: str):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise ConfigError(f"{self._where}: the checkpoint's pickle names {module}.{name}, which this "
                      "reader does not allow (only state dicts of tensors are read; anything else "
                      "could run code). Re-save it as a plain state dict or as safetensors.")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise ConfigError(f"{self._where}: unsupported persistent id {pid!r} in the checkpoint.")
    stype, key, numel = pid[1], str(pid[2]), pid[4]
    if isinstance(stype, _StorageType):
      if key not in self._storages:
        self._storages[key] = (self._load_storage(key, stype.dtype, numel), stype)
      return self._storages[key]
    raise ConfigError(f"{self._where}: storage of unsupported type {stype!r}.")


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """`torch.load(path)` for a state dict of tensors → {name: numpy array} (torch not needed)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ConfigError(f"Checkpoint {path!r} does not exist.")
  if zipfile.is_zipfile(path):
    out = _load_zip(path)
  else:
    out = _load_legacy(path)
  if not isinstance(out, dict):
    raise ConfigError(f"{path}: expected a state dict (a dict of tensors), got {type(out).__name__}.")
  bad = [k for k, v in out.items() if not isinstance(v, np.ndarray)]
  if bad:
    raise ConfigError(f"{path}: entries {bad[:5]} are not tensors; only state dicts are read.")
  return dict(out)


def _load_zip(path: str):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
      raise ConfigError(f"{path}: a torch zip checkpoint has one data.pkl; found {pkl}.")
    prefix = pkl[0][: -len("data.pkl")]

    def load_storage(key, dtype, numel):
      raw = z.read(f"{prefix}data/{key}")
      arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
      if len(arr) < numel:
        raise ConfigError(f"{path}: storage {key} holds {len(arr)} elements, expected {numel}.")
      return arr

    return _Unpickler(io.BytesIO(z.read(pkl[0])), load_storage, path).load()


def _load_legacy(path: str):
  with open(path, "rb") as f:
    head = _Unpickler(f, _no_storage(path), path)
    try:
      magic = head.load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
      raise ConfigError(f"{path} is neither a torch zip checkpoint nor a legacy one ({e}).") from None
    if magic != _LEGACY_MAGIC:
      raise ConfigError(f"{path} is not a torch checkpoint (bad magic number).")
    _Unpickler(f, _no_storage(path), path).load()  # protocol version
    info = _Unpickler(f, _no_storage(path), path).load()
    if not info.get("little_endian", True):
      raise ConfigError(f"{path} was written on a big-endian machine; not supported.")
    # The storages' bytes follow the object's pickle, so it is read twice: once to learn each
    # storage's dtype (and to skip to the bytes), once to rebuild the tensors from them.
    obj_at = f.tell()
    dtypes: dict[str, np.dtype] = {}

    def note(key, dtype, numel):
      dtypes[key] = np.dtype(dtype)
      return np.zeros(numel, dtype)

    _Unpickler(f, note, path).load()
    keys = _Unpickler(f, _no_storage(path), path).load()
    storages: dict[str, np.ndarray] = {}
    for key in keys:
      (count,) = struct.unpack("<q", f.read(8))
      if key not in dtypes:
        raise ConfigError(f"{path}: storage {key} is not referenced by the state dict.")
      nbytes = count * dtypes[key].itemsize
      data = f.read(nbytes)
      if len(data) != nbytes:
        raise ConfigError(f"{path}: storage {key} is truncated ({len(data)} of {nbytes} bytes).")
      storages[key] = np.frombuffer(data, dtypes[key].newbyteorder("<"))
    missing = sorted(set(dtypes) - set(storages))
    if missing:
      raise ConfigError(f"{path}: storages {missing[:5]} are missing from the file.")

    def load_storage(key, dtype, numel):
      if len(storages[key]) < numel:
        raise ConfigError(f"{path}: storage {key} holds {len(storages[key])} elements, "
                          f"expected {numel}.")
      return storages[key]

    f.seek(obj_at)
    return _Unpickler(f, load_storage, path).load()


def _no_storage(path):
  def fail(key, dtype, numel):
    raise ConfigError(f"{path}: unexpected tensor storage in a checkpoint header.")
  return fail
