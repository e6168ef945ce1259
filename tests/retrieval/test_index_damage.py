"""Damaged index folders: every halved, emptied, garbage or deleted file (and a valid but
shorter ids.npy) raises the documented IndexFormatError at load, naming the file or folder."""

import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import gemb
from gemb.retrieval import ExactIndex, IndexFormatError, ScannIndex, load_index

BACKENDS = {"exact": lambda: ExactIndex(),
            "scann-brute": lambda: ScannIndex(),
            "scann-tree": lambda: ScannIndex(num_leaves=8, leaves_to_search=4)}


def _emb(n=400, d=16, seed=0):
  x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module", params=list(BACKENDS))
def saved(request, tmp_path_factory):
  root = tmp_path_factory.mktemp(request.param)
  index = BACKENDS[request.param]()
  index.build(_emb())
  index.save(root / "idx")
  return root / "idx"


def _files(path):
  return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


DAMAGE = {
    "halved": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "emptied": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(bytes(range(256)) * 3),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_damaged_file_raises_index_format_error(saved, tmp_path, damage):
  files = _files(saved)
  assert "MANIFEST.json" in files and any(f.endswith("ids.npy") for f in files)
  for rel in files:
    copy = tmp_path / f"{damage}-{rel.replace('/', '_')}"
    shutil.copytree(saved, copy)
    target = copy / rel
    DAMAGE[damage](target)
    try:
      index = load_index(copy)
    except IndexFormatError as e:
      message = str(e)
      assert str(copy) in message and "\n" not in message, (rel, message)
      continue
    # a damage the format cannot see (a text config whose garbage still parses) must not give
    # wrong answers: the loaded index then agrees with exact search on its own corpus
    pytest.fail(f"{damage} {rel}: loaded without error ({index})")


def test_shorter_ids_fail_at_load_not_at_search(saved, tmp_path):
  copy = tmp_path / "short"
  shutil.copytree(saved, copy)
  ids_path = next(copy.rglob("ids.npy"))
  np.save(ids_path, np.load(ids_path)[:-7])
  with pytest.raises(IndexFormatError, match="ids.npy"):
    load_index(copy)


def test_load_index_after_plain_import_in_a_fresh_process(saved):
  code = ("import gemb, sys; i = gemb.retrieval.load_index(sys.argv[1]); "
          "print(len(i))")
  out = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "400"
