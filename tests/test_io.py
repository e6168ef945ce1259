"""gemb.io: the one atomic-write helper (whole file or nothing; ordinary permissions)."""

import os
import stat

import numpy as np
import pytest

from gemb.io import atomic_open, atomic_path, atomic_write


def _mode(p):
  return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_mode_honours_umask(tmp_path, mask):
  old = os.umask(mask)
  try:
    atomic_write(tmp_path / "a.txt", "x")
    open(tmp_path / "ref.txt", "w").close()  # what a plain open gives: the reference
  finally:
    os.umask(old)
  assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "ref.txt") == 0o666 & ~mask


def test_str_bytes_callable_and_file_object(tmp_path):
  atomic_write(tmp_path / "s.txt", "héllo")
  atomic_write(tmp_path / "b.bin", b"\x00\x01")
  a = np.arange(5)
  atomic_write(tmp_path / "a.npy", lambda tmp: np.save(tmp, a))
  with atomic_open(tmp_path / "f.json") as f:
    f.write("{}")
  with atomic_path(tmp_path / "p.npy") as tmp:
    assert tmp.endswith(".npy") and os.path.dirname(tmp) == str(tmp_path)
    np.save(tmp, a)
  assert (tmp_path / "s.txt").read_text(encoding="utf-8") == "héllo"
  assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
  np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a)
  np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), a)
  assert (tmp_path / "f.json").read_text() == "{}"
  assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.bin", "f.json", "p.npy", "s.txt"]


def test_failed_writer_keeps_old_file_and_leaves_no_debris(tmp_path):
  target = tmp_path / "t.txt"
  target.write_text("old")

  def boom(tmp):
    with open(tmp, "w") as f:
      f.write("half")
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    atomic_write(target, boom)
  assert target.read_text() == "old"
  assert os.listdir(tmp_path) == ["t.txt"]


def test_refuses_other_types_and_append_mode(tmp_path):
  with pytest.raises(TypeError):
    atomic_write(tmp_path / "x", 3)
  with pytest.raises(ValueError):
    with atomic_open(tmp_path / "x", "a"):
      pass
  assert os.listdir(tmp_path) == []
