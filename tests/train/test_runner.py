"""The `train` run kind on gemb/recipes/train.py:tiny: stages, checkpoints, soup, outputs, resume;
and the partition spec of every parameter per recipe variant against a golden file."""

import json
import os
import pathlib

import pytest

import gemb.train.runner  # noqa: F401  registers the "train" run kind
from gemb import config as config_lib, registry, sharding
from gemb import run as run_lib

GOLDEN = pathlib.Path(__file__).parent.parent / "golden"


def test_tiny_recipe_runs_stages_soup_and_resumes(tmp_path, monkeypatch):
  monkeypatch.setenv("GEMB_PROGRESS", "0")
  over = ["stages.prefinetune.steps=2", "stages.finetune.steps=2", "checkpoint.every=1",
          "eval.max_queries=16", "stages.prefinetune.batch_size=8",
          "stages.finetune.batch_size=8", "stages.finetune.tasks=(('text-pairs', 1.0),)",
          "checkpoint.keep_finished=2"]
  s = run_lib.run_recipe("train:tiny", over, str(tmp_path))
  assert set(s) >= {"validation_before", "stage/prefinetune", "stage/finetune", "soup",
                    "validation_after", "test"}
  assert s["soup"]["method"] == "greedy" and s["soup"]["kept"]
  assert set(s["soup"]["scores"]) == {"prefinetune/final", "step1", "step2", "soup"}
  # The saved model is the soup: its validation score, measured afresh from the folder, is the
  # one the soup was chosen with, and the reported test numbers are of that model.
  from gemb import model as model_lib
  from gemb.evaluation.runner import make_embed_fn
  from gemb.train.runner import evaluator
  cfg = config_lib.load_config(config_lib.find_recipe("train:tiny"))
  config_lib.apply_overrides(cfg, over)
  saved = model_lib.load(str(tmp_path / "model"))
  val = evaluator(cfg, "validation").evaluate(make_embed_fn(saved))
  assert val["mrr"] == pytest.approx(s["soup"]["scores"]["soup"], abs=1e-6)
  assert s["validation_after"]["mrr"] == pytest.approx(val["mrr"], abs=1e-6)
  test = evaluator(cfg, "test").score(make_embed_fn(saved))
  assert s["test"]["trained"]["mrr"] == pytest.approx(test.values["mrr"], abs=1e-6)
  assert s["test"]["n_queries"] == 174  # the whole docstring test split, not eval.max_queries
  lo, hi = s["test"]["trained_ci95"]["mrr"]
  assert lo <= test.values["mrr"] <= hi
  assert saved.prompts == {"search result": "task: search result | query: "}  # text-pairs' task
  for f in ("summary.json", "curves.png", "partition_specs.json", "model/model.safetensors"):
    assert (tmp_path / f).is_file(), f
  kept = sorted(int(p.name) for p in (tmp_path / "ckpt" / "finetune").iterdir() if p.name.isdigit())
  assert kept == [1, 2]  # keep-last-2 while training, and keep_finished=2 after
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert any("finetune/loss" in r and "finetune/lr" in r and "finetune/examples_per_s" in r
             for r in recs)
  assert any("finetune/val/mrr" in r for r in recs)
  again = run_lib.run_recipe("train:tiny", over, str(tmp_path))  # finished stages: resumed at end
  assert again["stage/finetune"]["resumed_from"] == 2
  assert again["stage/prefinetune"]["resumed_from"] == 2


def test_validation_scores_each_model_once():
  # The soup re-scores stage finals that were validated at their stage's end; the same weights,
  # config and prompts must not be embedded again, and any change must be.
  import jax
  import numpy as np
  from flax import nnx
  from gemb import model as model_lib
  from gemb.train.runner import _validator

  class CountingEvaluator:
    calls = 0

    def evaluate(self, embed_fn):
      self.calls += 1
      return {"call": float(self.calls)}

  enc, ev = model_lib.load("tiny"), CountingEvaluator()
  validate = _validator(ev, enc)
  assert validate() == validate() == {"call": 1.0} and ev.calls == 1
  params = nnx.state(enc.model, nnx.Param)
  before = jax.tree.map(np.asarray, params)
  nnx.update(enc.model, jax.tree.map(lambda x: x + 1e-3, params))
  assert validate() == {"call": 2.0}
  enc.prompts = {"search result": "task: search result | query: "}
  assert validate() == {"call": 3.0}
  enc.prompts = None
  nnx.update(enc.model, before)  # back to the first model: its score, not a new evaluation
  assert validate() == {"call": 1.0} and ev.calls == 3


def test_bad_soup_method_fails_before_training(tmp_path):
  from _helpers import REPO, run_gemb
  out = run_gemb(["run", "train:tiny", "--set", "soup.method=best", "--workdir",
                  str(tmp_path / "w")], cwd=REPO)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "soup.method must be one of none, uniform, greedy; got 'best'" in out.stderr
  assert not (tmp_path / "w").exists()  # refused before the workdir was made


def _specs_for(variant):
  from flax import nnx
  from gemb.model.encoder import Encoder
  cfg = config_lib.load_config(config_lib.find_recipe(f"train:{variant}" if variant else "train"))
  enc = Encoder(registry.presets.build(cfg.model).config)  # random init: only shapes matter
  rules = sharding.resolve_rules(cfg.sharding.rules, cfg.sharding.overrides)
  return sharding.describe_specs(sharding.param_specs(nnx.state(enc.model, nnx.Param), rules))


@pytest.mark.parametrize("variant", ["tiny", ""])
def test_recipe_partition_specs_match_golden(variant):
  specs = _specs_for(variant)
  path = GOLDEN / f"train_recipe_{variant or 'default'}_partition_specs.json"
  if os.environ.get("GEMB_UPDATE_GOLDEN") == "1":
    path.write_text(json.dumps(specs, indent=2, sort_keys=True) + "\n")
  assert json.loads(path.read_text()) == specs
  assert specs["word_emb/embedding"] == "P(None, 'fsdp')"


def test_each_side_is_padded_to_its_own_bucket():
  import numpy as np
  from gemb import model as model_lib
  from gemb.errors import InputError
  from gemb.train.runner import _prepare_fn
  enc = model_lib.load("tiny(truncate=False, max_len=128)")
  prepare = _prepare_fn(enc, seq_len=64)
  short = prepare(["a cat", "two dogs"], None)
  assert short["token_ids"].shape == (2, 16)  # the smallest bucket, not seq_len
  image = prepare([gemb.Image(np.zeros((32, 32, 3), np.float32))], None)
  assert image["token_ids"].shape[1] == 32 and image["patches"].shape[1] == 16  # 16 patches + 2
  with pytest.raises(InputError, match="needs length"):
    prepare(["x" * 100], None)  # 102 tokens do not fit seq_len=64
  # Padding a packed batch to a larger agreed shape (what processes do) equals packing at it.
  items = ["a cat", gemb.Image(np.ones((32, 32, 3), np.float32))]
  padded = enc.pad_batch(enc.prepare(items), 48, 32)
  direct = enc.prepare(items, length=48, num_patches=32)
  assert padded.keys() == direct.keys()
  for k in direct:
    np.testing.assert_array_equal(padded[k], direct[k], err_msg=k)
  with pytest.raises(InputError, match="cannot shrink"):
    enc.pad_batch(direct, 16, 32)
