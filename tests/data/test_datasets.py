"""Built-in datasets: contract, split disjointness, sizes, real content, bad input."""

import sys

import numpy as np
import pytest

import gemb
from gemb.data import assets, base, clips, code, emoji, interleaved, speech, text
from gemb.errors import ConfigError, InputError
from gemb.model.inputs import Audio, Image, Interleaved, Video

SPLITS = ("train", "validation", "test")
# (registry spec, module SIZES for that spec)
BUILT = [("emoji", emoji.SIZES), ("spoken-names", speech.SIZES), ("clips", clips.SIZES),
         ("code", code.SIZES), ("text-pairs", text.SIZES["docstrings"]),
         ("text-pairs(source='names')", text.SIZES["names"]),
         ("interleaved", interleaved.SIZES["composed"]),
         ("interleaved(kind='vqa')", interleaved.SIZES["vqa"])]
PY311 = sys.version_info[:2] == (3, 11)


@pytest.mark.parametrize("spec,sizes", BUILT, ids=[b[0] for b in BUILT])
def test_splits_disjoint_and_sized(spec, sizes):
  srcs = {s: gemb.datasets.build(spec, split=s) for s in SPLITS}
  for s, src in srcs.items():
    assert len(src) > 0
    assert len(src) == src.card.sizes[s], (spec, s)  # the card documents what is built
    if PY311 or not spec.startswith(("code", "text-pairs")):  # stdlib content varies by version
      assert len(src) == sizes[s], (spec, s)  # pinned: a change must update docs/data.md
  groups = {s: src.groups() for s, src in srcs.items()}
  ids = {s: {r["id"] for r in src.records} for s, src in srcs.items()}
  for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
    assert not groups[a] & groups[b], (spec, a, b)
    assert not ids[a] & ids[b], (spec, a, b)
  # Roughly 80/10/10 by group (spoken-names speaks every test emoji on purpose: test-heavy).
  total = sum(len(g) for g in groups.values())
  if spec != "spoken-names":
    assert 0.7 < len(groups["train"]) / total < 0.9


def same_item(a, b):
  """Equal media (pixels, samples, frames) or equal text: a re-read decodes the same thing."""
  if isinstance(a, Image):
    return np.array_equal(a.pixels, b.pixels)
  if isinstance(a, Audio):
    return a.sample_rate == b.sample_rate and np.array_equal(a.waveform, b.waveform)
  if isinstance(a, Video):
    return np.array_equal(a.frames, b.frames)
  if isinstance(a, Interleaved):
    return len(a.parts) == len(b.parts) and all(same_item(x, y) for x, y in zip(a.parts, b.parts))
  return a == b


def test_emoji_sizes_match_an_independent_count():
  """Names per split counted straight from the asset's metadata, with the documented rule
  (crc32 of "gemb:<base emoji>" into 100 buckets; 10 test, 10 validation)."""
  import zlib
  counts = {s: 0 for s in SPLITS}
  for r in assets.emoji_records():
    bucket = zlib.crc32(f"gemb:{r['base'] or r['emoji']}".encode()) % 100
    split = "test" if bucket < 10 else "validation" if bucket < 20 else "train"
    counts[split] += len(r["names"])
  assert counts == {s: len(gemb.datasets.build("emoji", split=s)) for s in SPLITS}


@pytest.mark.parametrize("spec", [b[0] for b in BUILT])
def test_example_contract_and_retrieval_task(spec):
  src = gemb.datasets.build(spec, split="test")
  idx = np.linspace(0, len(src) - 1, 5).astype(int)
  for i in idx:
    ex = src[int(i)]
    assert {"query", "positive", "negatives", "task", "id", "group", "positive_id"} <= set(ex)
    assert isinstance(ex["task"], str) and ex["task"] == src.task  # the task the source declares
    assert isinstance(ex["negatives"], list)
    for neg in ex["negatives"]:
      assert type(neg) is type(ex["positive"])
  j = int(idx[1])
  first, again = src[j], src[j]
  assert first["id"] == src.records[j]["id"] and first["positive_id"] == src.records[j]["positive_id"]
  assert same_item(first["query"], again["query"]) and same_item(first["positive"], again["positive"])
  queries, corpus, qrels = src.retrieval_task(max_queries=50)
  assert len(queries) == len(qrels) == min(50, len(src))
  assert all(len(q) == 1 and 0 <= next(iter(q)) < len(corpus) for q in qrels)
  # Every corpus position is one distinct positive of the split.
  assert len(corpus) == len({r["positive_id"] for r in src.records})


def test_modalities_are_real_media():
  ex = gemb.datasets.build("emoji", split="train")[0]
  assert isinstance(ex["query"], str) and isinstance(ex["positive"], Image)
  px = ex["positive"].pixels
  assert px.shape == (48, 48, 3) and px.dtype == np.uint8
  assert px.std() > 20 and len(np.unique(px.reshape(-1, 3), axis=0)) > 20  # a picture, not flat

  sp = gemb.datasets.build("spoken-names", split="train")[0]
  a = sp["query"]
  assert isinstance(a, Audio) and a.sample_rate == 16000
  rec = assets.speech_store().meta["records"][int(sp["id"].split("/")[1])]
  assert abs(len(a.waveform) / 16000 - rec["seconds"]) < 0.1  # decodes to its recorded length
  assert np.abs(a.waveform).max() > 0.05 and sp["positive"] == rec["text"]

  cl = gemb.datasets.build("clips(motions=('zoom_in', 'pan_right'))", split="train")
  zoom, pan = cl[0], cl[1]
  assert isinstance(zoom["positive"], Video) and zoom["positive"].frames.shape == (8, 48, 48, 3)
  f = zoom["positive"].frames.astype(float)
  ink = (f < 250).any(-1).sum((1, 2))  # non-white pixels per frame grow while zooming in
  assert ink[-1] > 2 * ink[0]
  cols = [np.flatnonzero((fr < 250).any(-1).any(0)).mean() for fr in pan["positive"].frames]
  assert cols[-1] > cols[0] + 10  # the pan moves right
  neg = zoom["negatives"][0].frames
  assert not np.array_equal(neg, zoom["positive"].frames)

  it = gemb.datasets.build("interleaved", split="train")[0]
  assert isinstance(it["query"], Interleaved)
  assert isinstance(it["query"].parts[0], Image) and "skin" in it["query"].parts[1].text


def test_emoji_languages_and_hard_negatives():
  src = gemb.datasets.build("emoji(languages=['en', 'ja'])", split="train")
  langs = {r["lang"] for r in src.records}
  assert langs == {"en", "ja"}
  b = emoji.bank()
  # A skin-toned emoji's first hard negative is the same emoji in another tone.
  toned = next(r for r in src.records if b.records[r["i"]]["tone"])
  neg = b.records[toned["negatives"][0]]
  base = b.records[toned["i"]]["base"]
  assert base in (neg["base"], neg["emoji"])


def test_emoji_image_to_text_direction():
  src = gemb.datasets.build("emoji(languages=['en', 'fr'], direction='image_to_text')", "test")
  ex = src[0]
  assert isinstance(ex["query"], Image) and isinstance(ex["positive"], str)
  assert ex["task"] == src.records[0]["task"] == src.task == "search result"
  queries, corpus, qrels = src.retrieval_task()
  assert len(corpus) == len(src)  # each (emoji, language) name is its own document
  assert all(isinstance(c, str) for c in corpus[:10])


def test_cross_dataset_splits_agree():
  # An emoji is in the same split in every dataset built from it: no leak through clips/speech.
  for spec in ("spoken-names", "clips", "interleaved"):
    for s in SPLITS:
      for g in gemb.datasets.build(spec, split=s).groups():
        assert base.split_of(g) == s


def test_code_pairs_strip_docstrings():
  src = gemb.datasets.build("code(limit=200)", split="train")
  for i in range(0, 200, 20):
    ex = src[i]
    assert ex["positive"].lstrip().startswith(("def ", "async def ", "@"))
    assert ex["query"] not in ex["positive"]  # the summary is not left in the code
    assert ex["negatives"] and ex["negatives"][0] != ex["positive"]
  assert all(len(r["negatives"]) <= 1 for r in src.records)


@pytest.mark.parametrize("spec,split,match", [
    ("emoji", "dev", "splits train, validation, test"),
    ("emoji(languages=['xx'])", "train", "unknown languages"),
    ("clips(motions=('spin',))", "train", "motion"),
    ("emoji(on_corrupt='ignore')", "train", "on_corrupt"),
    ("text-pairs(source='wiki')", "train", "source"),
])
def test_bad_input_errors(spec, split, match):
  with pytest.raises(ConfigError, match=match):
    gemb.datasets.build(spec, split=split)


def test_index_past_the_end():
  with pytest.raises(IndexError):
    gemb.datasets.build("emoji(limit=3)")[3]


def _corrupt_copy(src_path, tmp_path, key, index):
  with np.load(src_path) as z:
    arrays = {k: z[k].copy() for k in z.files}
  lo, hi = arrays["offsets"][index], arrays["offsets"][index + 1]
  arrays[key][lo:hi] = 0  # wipe one encoded file
  out = tmp_path / "corrupt.npz"
  np.savez(out, **arrays)
  return str(out)


def test_corrupt_image_skipped_and_counted_or_error(tmp_path):
  b = emoji.bank()
  target = next(i for i in b.in_split("test") if not b.records[i]["tone"])
  path = _corrupt_copy(assets.EMOJI_FILE, tmp_path, "images", target)
  emoji.bank.cache_clear()
  try:
    strict = emoji.emoji("test", languages=["en"], asset=path)
    bad = next(k for k, r in enumerate(strict.records) if r["i"] == target)
    with pytest.raises(InputError, match="does not decode.*on_corrupt='skip'"):
      strict[bad]
    lenient = emoji.emoji("test", languages=["en"], asset=path, on_corrupt="skip")
    # The corrupt image is dropped both as a positive and wherever it was a hard negative.
    assert lenient.skipped >= 1 and len(lenient) == len(strict) - lenient.skipped
    assert all(target not in (r["i"], *r["negatives"]) for r in lenient.records)
    lenient[0]
  finally:
    emoji.bank.cache_clear()


def test_corrupt_audio_skipped(tmp_path):
  path = _corrupt_copy(assets.SPEECH_FILE, tmp_path, "audio", 0)
  src = speech.spoken_names("train", asset=path, on_corrupt="skip")
  full = speech.spoken_names("train")
  had_clip0 = any(r["clip"] == 0 for r in full.records)
  assert src.skipped == int(had_clip0) and len(src) == len(full) - src.skipped


def test_missing_asset_says_how_to_fix(tmp_path):
  with pytest.raises(assets.MissingAssetError, match="build_emoji_assets.py.*still work.*code"):
    assets.BlobStore(str(tmp_path / "emoji.npz"), "images", "python tools/build_emoji_assets.py")


def test_missing_system_assets_message(monkeypatch):
  monkeypatch.setattr(assets.shutil, "which", lambda name: None)
  with pytest.raises(assets.MissingAssetError, match="apt-get install espeak-ng.*still works"):
    assets.synthesize("hello")
  with pytest.raises(assets.MissingAssetError, match="apt-get install fonts-noto-color-emoji"):
    assets.check_font("/nonexistent/NotoColorEmoji.ttf")


def test_skip_mode_keeps_intact_data():
  for spec in ("clips(on_corrupt='skip', motions=('zoom_in',))",
               "interleaved(on_corrupt='skip')"):
    src = gemb.datasets.build(spec, split="test")
    assert src.skipped == 0 and len(src) > 0


def test_cli_lists_datasets_with_sizes(capsys):
  from gemb import cli
  assert cli.main(["list", "datasets"]) == 0
  out = capsys.readouterr().out
  for name, sizes in (("emoji", emoji.SIZES), ("code", code.SIZES)):
    line = next(l for l in out.splitlines() if l.strip().startswith(name + " "))
    assert f"train={sizes['train']}" in line


def test_registered_with_cards():
  for name in ("emoji", "spoken-names", "clips", "code", "text-pairs", "interleaved"):
    assert name in gemb.datasets.names()
    assert "train=" in gemb.datasets.entry(name).description  # `gemb list datasets` shows sizes
  card = gemb.datasets.build("emoji(limit=2)").card
  assert "OFL" in card.license or "Open Font" in card.license
  assert card.rebuild and card.sizes["train"] == emoji.SIZES["train"]


@pytest.mark.parametrize("spec", ["emoji(limit=8)", "code(limit=8)", "clips(limit=4)"])
def test_example_without_negatives_decodes_none(spec):
  src = gemb.datasets.build(spec, split="train")
  decode, asked = src._materialize, []
  src._materialize = lambda rec: asked.append(list(rec["negatives"])) or decode(rec)
  for i in range(len(src)):
    whole, bare = src[i], src.example(i, max_negatives=0)
    assert asked[-2] and asked[-1] == []  # the decoder never sees the dataset's negatives
    assert whole["negatives"] and bare["negatives"] == []
    assert {k: v for k, v in bare.items() if k != "negatives"}.keys() == \
        {k for k in whole if k != "negatives"}
    assert repr(bare["query"]) == repr(whole["query"]) and bare["id"] == whole["id"]
