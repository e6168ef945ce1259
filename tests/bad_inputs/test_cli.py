"""The command line answers bad input in one line (exit 2), fast, with tracebacks only under
--debug; OS errors about user paths included."""

import time

import pytest

from _helpers import run_gemb

CASES = {  # arguments -> text of the one-line error (all exit 2, before jax is imported)
    "model folder missing": (["--set", "model=/nonexistent"], "Model folder /nonexistent does not exist"),
    "model path is a file": (["--set", "model=/etc/hostname"], "is not a folder"),
    "model folder without config": (["--set", "model=/tmp"], "not a saved gemb model"),
    "workdir below a file": (["--workdir", "/etc/hostname/w"], "/etc/hostname is a file"),
    "workdir not creatable": (["--workdir", "/proc/gemb-x/w"], "cannot be created"),
    "100k minus signs": (["--set", "stages.finetune.tasks=" + "-" * 100_000 + "1"], "characters"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_one_line_errors(case, tmp_path):
  args, text = CASES[case]
  if "--workdir" not in args:
    args = [*args, "--workdir", str(tmp_path / "w")]
  t = time.perf_counter()
  out = run_gemb(["run", "train:tiny", *args], cwd=tmp_path)
  elapsed = time.perf_counter() - t
  assert out.returncode == 2, out.stderr
  assert text in out.stderr and "Traceback" not in out.stderr, out.stderr
  assert len(out.stderr.strip().splitlines()) == 1, out.stderr
  assert elapsed < 10, f"{elapsed:.1f}s: checked after the expensive imports?"  # < 2 s when idle
  assert not (tmp_path / "w").exists(), "a refused run writes nothing"


def test_debug_shows_the_traceback(tmp_path):
  out = run_gemb(["run", "train:tiny", "--set", "model=/nonexistent", "--debug", "--workdir",
                  str(tmp_path / "w")])
  assert out.returncode != 0 and "Traceback" in out.stderr and "/nonexistent" in out.stderr


def test_os_error_about_a_path_is_one_line():
  from gemb.cli import describe_error
  msg, code = describe_error(PermissionError(13, "Permission denied", "/ro/w/config.json"))
  assert code == 2 and msg.startswith("Permission denied: /ro/w/config.json") and "\n" not in msg
  msg, code = describe_error(OSError(30, "Read-only file system", "/ro/w"))
  assert code == 2 and "Read-only file system: /ro/w" in msg
  msg, code = describe_error(ZeroDivisionError("x"))
  assert code == 1 and "--debug" in msg
