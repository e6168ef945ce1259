"""TFDS export (array_record, no TensorFlow) and loading through tfds.data_source + adapters."""

import numpy as np
import pytest
import tensorflow_datasets as tfds  # a core dependency (pyproject.toml): no skip

import gemb
from gemb.data import tfds as gtfds
from gemb.errors import ConfigError, InputError
from gemb.model.inputs import Audio, Image, Interleaved, Video



def same(a, b):
  if isinstance(a, str) or isinstance(b, str):
    return a == b
  if isinstance(a, list):
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
  if isinstance(a, Interleaved):
    return same(list(a.parts), list(b.parts))
  if isinstance(a, Image):
    return np.array_equal(a.pixels, b.pixels)
  if isinstance(a, Audio):
    return a.sample_rate == b.sample_rate and np.array_equal(a.waveform, b.waveform)
  if isinstance(a, Video):
    return a.fps == b.fps and np.array_equal(a.frames, b.frames)
  return a == b


@pytest.mark.parametrize("spec", ["spoken-names", "clips", "interleaved"])
def test_item_codec_round_trips_every_modality(spec):
  ex = gemb.datasets.build(spec, split="test")[0]
  for key in ("query", "positive", "negatives"):
    assert same(gtfds.decode_item(gtfds.encode_item(ex[key])), ex[key])


def test_export_and_read_back(tmp_path):
  spec = "interleaved"
  gtfds.export(spec, str(tmp_path), splits=("train", "test"), limit=6)
  src = gemb.datasets.build(f"tfds(name='gemb_interleaved', data_dir='{tmp_path}')", split="test")
  assert len(src) == 6 and src.card.sizes == {"train": 6, "test": 6}
  orig = {e["id"]: e for e in (gemb.datasets.build(spec, split="test")[i] for i in range(6))}
  for i in range(6):
    got = src[i]
    want = orig[got["id"]]  # TFDS orders records by key hash; match by id
    for k in ("query", "positive", "negatives", "task", "group", "positive_id"):
      assert same(got[k], want[k]), k
  queries, corpus, qrels = src.retrieval_task()
  assert len(queries) == 6 and all(0 <= next(iter(q)) < len(corpus) for q in qrels)
  # Also readable with the plain tfds API, no gemb involved.
  raw = tfds.data_source("gemb_interleaved", split="train", data_dir=str(tmp_path))
  assert len(raw) == 6 and raw[0]["query"].dtype == np.uint8


def _caption_builder(tmp_path):
  class ToyCaptions(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    url_infos = None

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="zlib"),
          "caption": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
      return {"val": self._generate_examples()}

    def _generate_examples(self):
      for i in range(4):
        yield i, {"image": np.full((6, 5, 3), 40 * i, np.uint8), "caption": f"a picture {i}"}

  b = ToyCaptions(data_dir=str(tmp_path), file_format="array_record")
  b.download_and_prepare()
  return b.name


def test_image_text_adapter_reads_a_foreign_dataset(tmp_path):
  name = _caption_builder(tmp_path)
  src = gemb.datasets.build(
      f"tfds(name='{name}', data_dir='{tmp_path}', adapter=\"image_text(text_key='caption')\")",
      split="val")
  got = {src[i]["query"]: src[i]["positive"] for i in range(len(src))}
  assert sorted(got) == [f"a picture {i}" for i in range(4)]
  assert got["a picture 2"].pixels.shape == (6, 5, 3) and got["a picture 2"].pixels[0, 0, 0] == 80


def test_tfds_errors(tmp_path):
  with pytest.raises(ConfigError, match="name"):
    gemb.datasets.build("tfds()")
  with pytest.raises(ConfigError, match="no adapter"):
    gemb.datasets.build("tfds(name='mnist_like')")
  with pytest.raises(InputError, match="cannot read prepared dataset"):
    gemb.datasets.build(f"tfds(name='gemb_nothing', data_dir='{tmp_path}')", split="test")
  with pytest.raises(InputError, match="no field 'nope'"):
    gtfds.image_text({"image": np.zeros((2, 2, 3), np.uint8)}, text_key="nope")
  assert "coco_captions" in gtfds.ADAPTERS


def test_tfds_source_satisfies_the_dataset_protocol(tmp_path):
  # A tfds(...) dataset used to crash as eval.dataset on `source.records`.
  from gemb.data.protocol import DatasetSource
  gtfds.export("interleaved", str(tmp_path), splits=("test",), limit=4)
  src = gemb.datasets.build(f"tfds(name='gemb_interleaved', data_dir='{tmp_path}')", split="test")
  assert isinstance(src, DatasetSource) and src.task == "search result"
  ids = {src[i]["id"] for i in range(len(src))}
  assert len(src.records) == 4 and {r["id"] for r in src.records[:4]} == ids
  assert src.records[0]["positive_id"] == src[0]["positive_id"]


def test_adapters_are_a_listed_registry(capsys):
  from gemb import cli, registry
  assert gtfds.ADAPTERS is registry.ALL["tfds_adapters"]
  assert cli.main(["list", "tfds_adapters"]) == 0
  out = capsys.readouterr().out
  assert "image_text" in out and "coco_captions" in out
