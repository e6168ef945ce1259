"""Every recipe in gemb/recipes/ runs end to end in its `tiny` variant, with the command its docstring shows."""

import ast
import json
import shlex

import pytest

from _helpers import REPO, run_gemb

RECIPES = sorted(p for p in (REPO / "gemb" / "recipes").glob("*.py") if not p.name.startswith("_"))


def _tiny_command(path):
  doc = ast.get_docstring(ast.parse(path.read_text())) or ""
  wanted = f"python3 -m gemb run {path.stem}:tiny"
  for line in doc.splitlines():
    if line.strip().startswith(wanted):
      return shlex.split(line.strip())[3:]  # the arguments after `python3 -m gemb`
  raise AssertionError(f"{path.name}: its docstring must show the tiny command, `{wanted} ...`")


# quickstart:tiny and train:tiny take 1.5-2.5 min each on 2 cores, so they run in CI's slow step
# (the default suite trains train:tiny in tests/train/test_runner.py, and CI's wheel smoke test
# runs quickstart:tiny from the installed wheel).
SLOW = {"quickstart", "train"}


@pytest.mark.parametrize("path", [
    pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
    for p in RECIPES])
def test_recipe_tiny_variant_runs(path, tmp_path):
  args = _tiny_command(path)
  out = run_gemb(args + ["--workdir", str(tmp_path)], cwd=REPO)
  assert out.returncode == 0, out.stderr[-4000:]
  meta = json.loads((tmp_path / "run.json").read_text())
  assert meta["status"] == "completed"
  assert (tmp_path / "config.json").exists()
  assert (tmp_path / "metrics.jsonl").read_text().strip(), "a run must log metrics"
  if path.stem in ("train", "quickstart"):
    # A finished run keeps its model, reports and plots, not its training checkpoints
    # (checkpoint.keep_finished defaults to 0): nothing but empty stage folders under ckpt/.
    train_dir = tmp_path / "train" if path.stem == "quickstart" else tmp_path
    assert (train_dir / "model" / "model.safetensors").is_file()
    left = [p for p in (train_dir / "ckpt").rglob("*") if p.is_file()]
    assert not left, left[:5]
  if path.stem == "train":
    # The tiny training run must learn something that carries over to unseen pairs: measured on
    # the test split (selection used validation), with a paired interval that excludes 0.
    test = json.loads((tmp_path / "summary.json").read_text())["test"]
    assert test["split"] == "test"
    before, after = test["untrained"]["mrr"], test["trained"]["mrr"]
    assert after > 1.5 * before and test["delta_ci95"]["mrr"][0] > 0, test
  if path.stem == "quickstart":
    summary = json.loads((tmp_path / "summary.json").read_text())
    for task, row in summary["tasks"].items():
      assert {"metric", "chance", "n_queries", "n_corpus", "untrained", "trained",
              "trained_ci95", "delta_ci95"} <= set(row), task
      assert len(row["delta_ci95"]) == 2 and row["trained_ci95"][0] <= row["trained"] <= \
          row["trained_ci95"][1], (task, row)
    assert "chance" in (tmp_path / "report.md").read_text()
