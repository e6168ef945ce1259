"""The real held-out sets: openclipart, cldr-emoji(-heldout), klettres.

References are independent of the dataset code: the file names and XML of the Debian packages
(when installed; the asset metadata otherwise), word lists written here, the emoji dataset's own
splits.
"""

import os
import re
import unicodedata
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import gemb
from gemb.data import assets, cldr, klettres, openclipart
from gemb.model.inputs import Audio, Image

SPLITS = ("train", "validation", "test")
NON_DEPICTIVE = ("star", "pattern", "gradient", "texture", "border", "frame", "background",
                 "ornament", "button", "icon", "arrow", "jigsaw")


def _disjoint(srcs):
  groups = {s: src.groups() for s, src in srcs.items()}
  for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
    if a in groups and b in groups:
      assert not groups[a] & groups[b], (a, b)


# -- openclipart -------------------------------------------------------------------------------

def test_openclipart_splits_sizes_and_captions():
  srcs = {s: gemb.datasets.build("openclipart", split=s) for s in SPLITS}
  _disjoint(srcs)
  assert len(srcs["test"]) >= 1000 and len(srcs["validation"]) >= 250
  for s, src in srcs.items():
    assert len(src) == src.card.sizes[s]
  test = srcs["test"]
  captions = [test.records[i] for i in range(len(test))]
  bank = openclipart.bank()
  texts = [bank.records[r["i"]]["caption"] for r in captions]
  assert len(set(texts)) == len(texts)  # one image per caption: exactly one relevant image
  for r in captions:
    rec = bank.records[r["i"]]
    words = set(re.findall(r"[a-z]+", rec["title"]))
    assert not words & set(NON_DEPICTIVE), rec
    assert not rec["file"].startswith(("shapes/", "special/")), rec
    # Every title word comes from the file name (the caption invents nothing).
    name = rec["file"].lower().replace("_", " ").replace("-", " ")
    assert all(w in name for w in words - {"flag", "of"}), rec
  queries, corpus, qrels = test.retrieval_task()
  assert len(corpus) == len(queries) == len(test)


def test_openclipart_images_are_pictures_on_white():
  src = gemb.datasets.build("openclipart", split="test")
  for i in (0, len(src) // 2, len(src) - 1):
    ex = src[i]
    assert isinstance(ex["query"], str) and isinstance(ex["positive"], Image)
    px = ex["positive"].pixels
    assert px.shape == (112, 112, 3) and px.dtype == np.uint8
    assert (px[0, 0] > 240).all() or (px[-1, -1] > 240).all()  # white padding or background
    assert px.std() > 10  # not a blank square
  back = gemb.datasets.build("openclipart(direction='image_to_text')", split="test")[0]
  assert isinstance(back["query"], Image) and isinstance(back["positive"], str)


@pytest.mark.skipif(not os.path.isdir("/usr/share/openclipart/png"),
                    reason="apt-get install openclipart-png (build-time package)")
def test_openclipart_files_come_from_the_package():
  bank = openclipart.bank()
  for r in bank.records[::250]:
    assert os.path.isfile(os.path.join("/usr/share/openclipart/png", r["file"]))


# -- CLDR ---------------------------------------------------------------------------------------

def test_cldr_languages_and_emoji_are_held_out():
  emoji_langs = set(gemb.data.emoji.bank().languages)
  train_l, eval_l = set(cldr.TRAIN_LANGUAGES), set(cldr.EVAL_LANGUAGES)
  assert len(train_l | eval_l) >= 20 and len(train_l) > len(eval_l)
  assert not train_l & eval_l and not (train_l | eval_l) & emoji_langs
  emoji_train = gemb.datasets.build("emoji(languages=('en', 'de', 'fr', 'es'))", split="train")
  trained = {r["positive_id"] for r in emoji_train.records}
  for s in ("validation", "test"):
    held = gemb.datasets.build("cldr-emoji-heldout", split=s)
    assert {r["lang"] for r in held.records} == eval_l
    assert not {r["positive_id"] for r in held.records} & trained
  test = gemb.datasets.build("cldr-emoji-heldout", split="test")
  assert len(test) >= 500 and len(test) == test.card.sizes["test"]
  tr = gemb.datasets.build("cldr-emoji", split="train")
  assert {r["lang"] for r in tr.records} == train_l
  assert not {r["positive_id"] for r in tr.records} & {r["positive_id"] for r in test.records}


@pytest.mark.skipif(not os.path.isdir("/usr/share/unicode/cldr/common/annotations"),
                    reason="apt-get install unicode-cldr-core (build-time package)")
def test_cldr_names_match_the_xml():
  test = gemb.datasets.build("cldr-emoji-heldout(languages=('nl', 'th'))", split="test")
  tts = {}
  for lang in ("nl", "th"):
    for sub in ("annotations", "annotationsDerived"):
      root = ET.parse(f"/usr/share/unicode/cldr/common/{sub}/{lang}.xml").getroot()
      for a in root.iter("annotation"):
        if a.get("type") == "tts":
          tts.setdefault((a.get("cp"), lang), a.text.strip())
  for i in range(0, len(test), 37):
    r = test.records[i]
    assert test[i]["query"] == tts[(r["positive_id"].replace("\ufe0f", ""), r["lang"])]


# -- klettres -----------------------------------------------------------------------------------

def test_klettres_splits_sizes_and_audio():
  srcs = {s: gemb.datasets.build("klettres", split=s) for s in SPLITS}
  _disjoint(srcs)
  assert len(srcs["test"]) >= 500
  for s, src in srcs.items():
    assert len(src) == src.card.sizes[s]
  clips = assets.BlobStore(klettres.KLETTRES_FILE, "audio", "").meta["records"]
  assert len({c["lang"] for c in clips}) == 20
  test = srcs["test"]
  for i in (0, len(test) // 2, len(test) - 1):
    ex, rec = test[i], clips[test.records[i]["clip"]]
    a = ex["query"]
    assert isinstance(a, Audio) and a.sample_rate == 16000
    assert abs(len(a.waveform) / 16000 - rec["seconds"]) < 0.05
    assert np.abs(a.waveform).max() > 0.05  # speech, not silence
    assert ex["positive"] == rec["text"]
  queries, corpus, qrels = test.retrieval_task()
  assert len(corpus) == len({c["text"] for c in clips
                             if klettres.split_of_text(c["text"]) == "test"})


@pytest.mark.skipif(not os.path.isdir("/usr/share/klettres"),
                    reason="apt-get install klettres-data (build-time package)")
def test_klettres_text_matches_sounds_xml():
  clips = assets.BlobStore(klettres.KLETTRES_FILE, "audio", "").meta["records"]
  names = {}
  for lang in os.listdir("/usr/share/klettres"):
    xml = os.path.join("/usr/share/klettres", lang, "sounds.xml")
    if os.path.isfile(xml):
      for s in ET.parse(xml).getroot().iter("sound"):
        names.setdefault(s.get("file"), s.get("name").strip())
  for c in clips[::40]:  # the asset stores the NFC form (one code point per accented letter)
    assert c["text"] == unicodedata.normalize("NFC", names[c["file"]])


# -- wiring into the evaluators ----------------------------------------------------------------

@pytest.mark.parametrize("kind,spec", [("mscoco", "openclipart(limit=40)"),
                                       ("mscoco", "cldr-emoji-heldout(limit=40)"),
                                       ("retrieval", "klettres(limit=40)")])
def test_the_eval_recipes_kinds_load_them(kind, spec):
  from gemb.evaluation.task_data import PairedData, RetrievalData
  from gemb.evaluation.runner import dataset_loader
  data = dataset_loader(None)(dataset=spec, split="test", kind=kind)
  assert isinstance(data, PairedData if kind == "mscoco" else RetrievalData)
  n = len(data.items_b) if kind == "mscoco" else len(data.queries)
  assert n == 40
