"""The dataset protocol (gemb.data.protocol), checked by gemb.datasets.build, and no silent drops."""

import inspect
import warnings

import pytest

import gemb
from gemb.data import assets, base, speech
from gemb.data.card import DatasetCard
from gemb.data.protocol import EXAMPLE_KEYS, RECORD_KEYS, DatasetSource
from gemb.errors import ConfigError, InputError

NEEDS_ROOT = {"coco", "flickr30k", "msrvtt", "beir", "tfds"}  # tested on fixtures elsewhere


@pytest.mark.parametrize("name", sorted(set(gemb.datasets.names()) - NEEDS_ROOT))
def test_every_builtin_satisfies_the_protocol(name):
  entry = gemb.datasets.entry(name).obj
  split = "test"
  src = gemb.datasets.build(f"{name}(limit=3)", split=split)
  assert isinstance(src, DatasetSource)
  assert isinstance(src.card, DatasetCard) and isinstance(src.task, str) and src.task
  assert src.split == split and len(src) == 3 == len(src.records)
  for k in RECORD_KEYS:
    assert k in src.records[0]
  assert set(EXAMPLE_KEYS) <= set(src[0])
  queries, corpus, qrels = src.retrieval_task()
  assert len(queries) == len(qrels) == 3 and corpus
  if hasattr(entry, "task"):  # an entry's declared task is its sources' task
    assert entry.task == src.task


def test_build_refuses_a_dataset_that_breaks_the_contract():
  class Half:  # no records, no card, no retrieval_task
    name, split = "half", "train"

    def __len__(self):
      return 0

    def __getitem__(self, i):
      raise IndexError(i)

  with gemb.datasets.temporary():
    gemb.datasets.register("half", lambda split="train": Half())
    with pytest.raises(ConfigError, match="'half'.*without card, records, retrieval_task"):
      gemb.datasets.build("half")


def test_build_requires_a_task_and_takes_the_entrys():
  card = DatasetCard("toy", "toy", "test", "CC0", {"train": 1})
  rec = [{"id": "a", "group": "a", "positive_id": "a"}]  # no task in the records
  mat = lambda r: {**r, "query": "q", "positive": "p", "negatives": [], "task": ""}
  with pytest.raises(ConfigError, match="'toy' must declare the task"):
    base.PairSource("toy", "train", rec, mat, card, task="")

  def toy(split="train"):
    src = base.PairSource("toy", split, rec, mat, card, task="placeholder")
    del src.task  # a protocol source that does not say which task its queries serve
    return src

  with gemb.datasets.temporary():
    gemb.datasets.register("toy", toy)
    with pytest.raises(ConfigError, match="'toy' declares no task"):
      gemb.datasets.build("toy")
    toy.task = "search result"
    assert gemb.datasets.build("toy").task == "search result"


def test_declared_splits_are_enforced():
  with pytest.raises(ConfigError, match="held out for evaluation"):
    gemb.datasets.build("cldr-emoji-heldout", split="train")


def test_filter_decodable_drops_only_decode_errors_and_reports_them():
  records = [{"id": str(i)} for i in range(5)]

  def check(r):
    if r["id"] in ("1", "3"):
      raise InputError(f"item {r['id']} does not decode")

  with pytest.warns(RuntimeWarning, match=r"toy: skipped 2 items.*item 1 does not decode"):
    kept, skipped = base.filter_decodable(records, check, "skip", "toy")
  assert [r["id"] for r in kept] == ["0", "2", "4"] and skipped == 2

  def buggy(r):
    raise KeyError("a bug in the dataset code, not a corrupt file")

  with pytest.raises(KeyError):
    base.filter_decodable(records, buggy, "skip", "toy")
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # nothing dropped: no warning
    assert base.filter_decodable(records, lambda r: None, "skip", "toy") == (records, 0)


def test_espeak_message_names_only_real_options(monkeypatch):
  monkeypatch.setattr(assets.shutil, "which", lambda name: None)
  with pytest.raises(assets.MissingAssetError) as e:
    assets.check_espeak()
  assert "synthesize" not in inspect.signature(speech.spoken_names).parameters
  assert "synthesize=True" not in str(e.value) and "gemb.data.assets.synthesize" in str(e.value)
