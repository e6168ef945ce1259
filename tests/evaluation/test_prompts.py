"""One prompt per task: the strings that reach the tokenizer for a dataset's queries are the same
in training (through `fit`) and in evaluation (through the eval runner's loader), and a saved
model keeps the prompts it was trained with."""

import json
import warnings

import pytest

import gemb
from gemb import model as model_lib
from gemb.evaluation import build_evaluator
from gemb.evaluation.runner import dataset_loader, make_embed_fn
from gemb.train.data import Mixture, PairBatcher
from gemb.train.runner import _prepare_fn
from gemb.train.trainer import fit

SPEC = "text-pairs(source='names', limit=16)"


class StubTrainer:
  """Stands in for Trainer in `fit`: the test is about the batches' strings, not the update."""

  step_num = 0

  def step(self, batch):
    self.step_num += 1
    return {"loss": 0.0, "grad_norm": 0.0}

  def learning_rate(self, step=None):
    return 0.0


def _recording(enc):
  seen = []
  real = enc.text_tokenizer.encode_batch

  def encode_batch(texts):
    seen.extend(texts)
    return real(texts)
  enc.text_tokenizer.encode_batch = encode_batch
  return seen


def test_training_and_evaluation_prompt_the_same_strings():
  enc = model_lib.load("tiny(truncate=True, max_len=64)")
  seen = _recording(enc)
  src = gemb.datasets.build(SPEC, split="validation")
  queries = {src[i]["query"] for i in range(len(src))}
  mix = Mixture({SPEC: src}, {SPEC: 1.0}, 16, seed=0)
  fit(StubTrainer(), mix, PairBatcher(_prepare_fn(enc, 64), prompt_dropout=0.0), 1)
  train_q = sorted(t for t in seen if any(t.endswith(q) for q in queries) and "query: " in t)
  seen.clear()
  ev = build_evaluator({"kind": "retrieval", "dataset": SPEC, "split": "validation"},
                       dataset_loader(None))
  ev.evaluate(make_embed_fn(enc))
  eval_q = sorted(t for t in seen if "query: " in t)
  assert train_q and train_q == eval_q
  assert eval_q[0].startswith(f"task: {src.task} | query: ")
  seen.clear()
  enc.embed(sorted(queries), task=src.task)  # what a user of the dataset's task writes
  assert set(seen) == set(eval_q)


def test_prompt_dropout_is_per_example():
  enc = model_lib.load("tiny(truncate=True, max_len=64)")
  seen = _recording(enc)
  src = gemb.datasets.build(SPEC, split="validation")
  batcher = PairBatcher(_prepare_fn(enc, 64), prompt_dropout=0.5, seed=3)
  batcher([src[i] for i in range(16)], src.task, step=0)
  prompted = [t.startswith("task: ") for t in seen[:16]]  # the queries come first
  assert 0 < sum(prompted) < 16


def test_saved_model_keeps_its_prompts_and_warns_on_new_tasks(tmp_path):
  enc = model_lib.load("tiny(truncate=True, max_len=64)")
  enc.prompts = {"search result": model_lib.task_prompt("search result")}
  enc.save(str(tmp_path))
  meta = json.loads((tmp_path / "gemb_model.json").read_text())
  assert meta["prompts"] == {"search result": "task: search result | query: "}
  back = model_lib.load(str(tmp_path))
  assert back.prompts == enc.prompts
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    back.embed(["a"], task="search result")  # trained: no warning
  with pytest.warns(UserWarning, match="never used in training.*search result"):
    back.embed(["a"], task="clustering")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    back.embed(["a"], task="clustering")  # once per task
