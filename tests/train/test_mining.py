"""Mined hard negatives (gemb.train.mining) against a brute-force loop, on a toy corpus with
planted false negatives; and a stage of `train:tiny` that mines, resumes on the saved negatives
and refuses a config that cannot mine."""

import json

import numpy as np
import pytest

from gemb import run as run_lib
from gemb.errors import ConfigError, InputError
from gemb.train.mining import MinedNegatives, mine_hard_negatives


class ToySource:
  """Examples (query, positive, positive_id) with a declared task, as gemb.datasets give them."""
  task = "search result"
  name = "toy"

  def __init__(self, examples):
    self.examples = examples

  def __len__(self):
    return len(self.examples)

  def __getitem__(self, i):
    q, p, pid = self.examples[i]
    return {"query": q, "positive": p, "negatives": ["dataset's own"], "positive_id": pid,
            "task": self.task}


def _toy():
  # "q-dup" is paired with two positives ("doc-a", "doc-b"): each is a known positive of the
  # other's example. "doc-a" is also filed again under another id ("a-copy"): same content, a
  # false negative that must never be mined. Everything else is a fair negative.
  ex = [("q-dup", "doc-a", "a"), ("q-dup", "doc-b", "b"), ("q-c", "doc-c", "c"),
        ("q-d", "doc-d", "d"), ("q-e", "doc-e", "e"), ("q-a2", "doc-a", "a-copy")]
  rng = np.random.default_rng(0)
  vec = {}
  for t in ("doc-a", "doc-b", "doc-c", "doc-d", "doc-e"):
    vec[t] = rng.normal(size=8)
  # Queries sit next to their positives, and q-c right next to doc-a's content as well: the
  # planted false negative would be q-dup's top hit without the known-positive rule.
  vec["q-dup"] = vec["doc-a"] + vec["doc-b"]
  vec["q-c"], vec["q-d"], vec["q-e"] = vec["doc-c"], vec["doc-d"] + 0.5 * vec["doc-a"], vec["doc-e"]
  vec["q-a2"] = vec["doc-a"]
  embed = lambda items, task: np.stack([vec[t] for t in items]).astype(np.float32)
  return ToySource(ex), embed, vec


def _brute_force(examples, vec, k, skip):
  """Per example: documents (distinct by positive_id, first occurrence) by descending inner
  product, without any whose text equals a positive of the same query text."""
  docs, seen = [], set()
  for _, p, pid in examples:
    if pid not in seen:
      seen.add(pid)
      docs.append(p)
  out = []
  for q, _, _ in examples:
    known = {p for qq, p, _ in examples if qq == q}
    order = sorted(range(len(docs)), key=lambda j: -float(vec[q] @ vec[docs[j]]))
    out.append([docs[j] for j in order if docs[j] not in known][skip:skip + k])
  return out


@pytest.mark.parametrize("k,skip", [(1, 0), (2, 0), (2, 1), (9, 0)])
def test_mined_negatives_match_brute_force_and_skip_known_positives(k, skip):
  src, embed, vec = _toy()
  mined = mine_hard_negatives(src, embed, k, skip=skip)
  got = [mined[i]["negatives"] for i in range(len(mined))]
  assert got == _brute_force(src.examples, vec, k, skip)
  for i, (q, _, _) in enumerate(src.examples):
    known = {p for qq, p, _ in src.examples if qq == q}
    assert not known & set(got[i])  # never a planted false negative
  assert mined[0]["query"] == "q-dup" and mined[0]["positive"] == "doc-a"  # the rest unchanged
  assert len(got[2]) == min(k, 5 - skip)  # q-c: 6 documents less its own positive


def test_restore_gives_the_same_source_and_rejects_stale_positions():
  src, embed, _ = _toy()
  mined = mine_hard_negatives(src, embed, 2)
  again = MinedNegatives.restore(src, json.loads(json.dumps(mined.to_json())))
  assert [again[i] for i in range(len(src))] == [mined[i] for i in range(len(src))]
  with pytest.raises(InputError, match="delete them to mine again"):
    MinedNegatives.restore(src, [[99]] * len(src))


@pytest.mark.slow  # ~80 s on 2 cores: a train:tiny stage that mines, then a resume
def test_a_tiny_stage_mines_its_negatives_and_resumes_on_them(tmp_path, monkeypatch):
  monkeypatch.setenv("GEMB_PROGRESS", "0")
  over = ["stages.prefinetune.steps=1", "stages.finetune.steps=2", "checkpoint.every=1",
          "eval.max_queries=8", "eval.test=False", "stages.prefinetune.batch_size=8",
          "stages.finetune.batch_size=8", "stages.finetune.tasks=(('code(limit=64)', 1.0),)",
          "stages.finetune.negatives='mined'", "soup.method='none'"]
  run_lib.run_recipe("train:tiny", over, str(tmp_path))
  saved = json.loads((tmp_path / "mined" / "finetune.json").read_text())
  assert list(saved) == ["code(limit=64)"] and len(saved["code(limit=64)"]) == 64
  assert all(len(n) == 1 for n in saved["code(limit=64)"])
  import gemb
  src = gemb.datasets.build("code(limit=64)", split="train")
  docs = {}
  for i in range(len(src)):
    docs.setdefault(src[i]["positive_id"], src[i]["positive"])
  pos = list(docs.values())
  for i in range(len(src)):  # a mined negative is never the example's own positive
    assert pos[saved["code(limit=64)"][i][0]] != src[i]["positive"]
  # A rerun on the same workdir trains on the saved negatives: it never mines again.
  def refuse(*a, **k):
    raise AssertionError("mined again instead of reading mined/finetune.json")
  monkeypatch.setattr("gemb.train.mining.mine_hard_negatives", refuse)
  run_lib.run_recipe("train:tiny", over, str(tmp_path))
  assert json.loads((tmp_path / "mined" / "finetune.json").read_text()) == saved


def test_mining_needs_a_count(tmp_path):
  over = ["stages.finetune.negatives='mined'", "stages.finetune.hard_negatives=0"]
  with pytest.raises(ConfigError, match="needs hard_negatives >= 1"):
    run_lib.run_recipe("train:tiny", over, str(tmp_path))
