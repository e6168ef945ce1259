"""The saved-model folder: its files, its format versions and the checks made before loading.

`Encoder.save(folder)` writes a self-contained folder:

* ``gemb_model.json``: ``{"format": "gemb-model-2", "name", "config" (the ModelConfig fields),
  "prompts" ({task: prompt} the model was trained with), "files" ({role: file name})}``;
* ``model.safetensors``: the parameters, float32, named "a/b/kernel";
* the tokenizer file(s) the config needs (``tokenizer.json`` for a wordpiece model), so that
  loading needs no package beyond gemb.

`check_folder` reads only JSON and the safetensors header (no jax), so `gemb run --set
model=FOLDER` fails in a moment on a missing, damaged or newer folder, before jax is imported.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any

from gemb.errors import ConfigError, InputError

CONFIG_FILE = "gemb_model.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "gemb-model-2"
READABLE_FORMATS = ("gemb-model-1", "gemb-model-2")  # 1: before tokenizer files and prompts
META_KEYS = {"format", "name", "config", "prompts", "files"}
MAX_HEADER_BYTES = 100 * 2**20
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1}


def looks_like_folder(ref: Any) -> bool:
  """True for a model reference that names a folder rather than a preset spec."""
  if not isinstance(ref, (str, os.PathLike)):
    return False
  ref = os.fspath(ref)
  return "(" not in ref and (os.sep in ref or ref.startswith((".", "~")) or os.path.isdir(ref))


def read_meta(path: str) -> dict[str, Any]:
  """`gemb_model.json` of folder `path`, checked: readable JSON object, a known format version,
  no unknown keys, the right types. Raises ConfigError naming the file and what to do."""
  cfg_path = os.path.join(path, CONFIG_FILE)
  if not os.path.isdir(path):
    what = "does not exist" if not os.path.exists(path) else "is not a folder"
    raise ConfigError(f"Model folder {path} {what}; give a folder written by Encoder.save or a "
                      "preset name (gemb list presets).")
  if not os.path.isfile(cfg_path):
    raise ConfigError(f"{path} is not a saved gemb model: it has no {CONFIG_FILE} "
                      "(write one with Encoder.save).")
  try:
    with open(cfg_path, "rb") as f:
      meta = json.loads(f.read().decode("utf-8"))
  except (ValueError, UnicodeDecodeError) as e:
    raise ConfigError(f"{cfg_path} is not valid JSON ({e}); the folder is damaged: save the "
                      "model again.") from None
  if not isinstance(meta, dict):
    raise ConfigError(f"{cfg_path}: expected a JSON object, got {type(meta).__name__}.")
  fmt = meta.get("format")
  if fmt not in READABLE_FORMATS:
    newer = isinstance(fmt, str) and fmt.startswith("gemb-model-")
    raise ConfigError(
        f"{cfg_path}: model format {fmt!r} is {'newer than or unknown to' if newer else 'not'} "
        f"this gemb, which reads {', '.join(READABLE_FORMATS)}"
        + ("; upgrade gemb to load it." if newer else "; the folder is damaged."))
  unknown = sorted(set(meta) - META_KEYS)
  if unknown:
    raise ConfigError(f"{cfg_path}: unknown key(s) {', '.join(map(repr, unknown))} for format "
                      f"{fmt} (known: {', '.join(sorted(META_KEYS))}); it was written by another "
                      "gemb version or edited by hand.")
  if not isinstance(meta.get("config"), dict):
    raise ConfigError(f"{cfg_path}: key 'config' must be an object of ModelConfig fields.")
  if not isinstance(meta.get("name", ""), str):
    raise ConfigError(f"{cfg_path}: key 'name' must be a string.")
  prompts = meta.get("prompts", {})
  if not (isinstance(prompts, dict) and all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in prompts.items())):
    raise ConfigError(f"{cfg_path}: key 'prompts' must map task names to prompt strings.")
  files = meta.get("files", {})
  if not (isinstance(files, dict) and all(isinstance(v, str) and os.path.basename(v) == v
                                          and v not in ("", ".", "..") for v in files.values())):
    raise ConfigError(f"{cfg_path}: key 'files' must map roles to file names inside the folder.")
  for role, name in files.items():
    if not os.path.isfile(os.path.join(path, name)):
      raise InputError(f"{path}: the {role} file {name} named in {CONFIG_FILE} is missing; "
                       "the folder is incomplete: save the model again.")
  return meta


def weights_header(path: str) -> dict[str, dict]:
  """The tensor table of a safetensors file, after checking the file is complete: every tensor
  lies inside the file and the file ends where the last one does. InputError names the file."""
  try:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
      head = f.read(8)
      if len(head) < 8:
        raise InputError(f"{path} is truncated ({size} bytes); save the model again.")
      (n,) = struct.unpack("<Q", head)
      if n > min(size - 8, MAX_HEADER_BYTES):
        raise InputError(f"{path} is truncated or not a safetensors file (header of {n} bytes "
                         f"in a file of {size}); save the model again.")
      header = json.loads(f.read(n).decode("utf-8"))
  except FileNotFoundError:
    raise InputError(f"{path} is missing; the model folder is incomplete: save the model "
                     "again.") from None
  except (ValueError, UnicodeDecodeError) as e:
    raise InputError(f"{path} is not a safetensors file ({e}); save the model again.") from None
  if not isinstance(header, dict):
    raise InputError(f"{path}: damaged safetensors header; save the model again.")
  header.pop("__metadata__", None)
  end = 0
  for name, t in header.items():
    try:
      lo, hi = (int(x) for x in t["data_offsets"])
      want = math.prod(int(d) for d in t["shape"]) * _DTYPE_BYTES[t["dtype"]]
    except (KeyError, TypeError, ValueError):
      raise InputError(f"{path}: damaged entry for tensor {name!r}; save the model "
                       "again.") from None
    if hi - lo != want or lo < 0:
      raise InputError(f"{path}: tensor {name!r} has {hi - lo} bytes for shape {t['shape']} "
                       f"{t['dtype']}; the file is damaged.")
    end = max(end, hi)
  if 8 + n + end != size:
    raise InputError(f"{path} is truncated or has trailing bytes ({size} bytes, expected "
                     f"{8 + n + end}); save the model again.")
  return header


def check_folder(path: str) -> dict[str, Any]:
  """Everything about a model folder that can be checked without jax: the metadata, the files
  it names, and the weights file's completeness and dtypes. Returns the metadata."""
  meta = read_meta(path)
  header = weights_header(os.path.join(path, WEIGHTS_FILE))
  bad = sorted(k for k, t in header.items() if t["dtype"] != "F32")
  if bad:
    raise InputError(f"{os.path.join(path, WEIGHTS_FILE)}: tensor {bad[0]!r} is "
                     f"{header[bad[0]]['dtype']}, expected F32 (float32); {len(bad)} tensor(s) "
                     "differ. Save the model with Encoder.save.")
  return meta
