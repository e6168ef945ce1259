"""cldr-emoji and cldr-emoji-heldout: emoji images searched by their CLDR names in 30 languages.

The names and keywords come from the Unicode CLDR annotations (Debian ``unicode-cldr-core``,
Unicode licence), read at build time into ``assets/cldr_emoji.json.gz`` for the emoji of the
`emoji` asset (no skin-tone variants); the images are the `emoji` asset's. Two entries, with
disjoint languages and disjoint emoji:

* ``cldr-emoji`` (training data): the 20 `TRAIN_LANGUAGES`, on the emoji of `emoji`'s train
  split (and its validation split for early stopping; its test split exists but is the same
  emoji as ``cldr-emoji-heldout``'s, so use that one for reporting).
* ``cldr-emoji-heldout`` (evaluation only): the 10 `EVAL_LANGUAGES`, on the emoji of `emoji`'s
  validation and test splits. It has no train split, so a mixture cannot train on it.

Neither language set overlaps the 14 languages of the `emoji` dataset, so a model trained on
``emoji`` and ``cldr-emoji`` is evaluated on languages and emoji it never saw.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from typing import Sequence

import gemb.registry
from gemb.data import assets
from gemb.data.base import PairSource, check_split, describe, stable_choice
from gemb.data.card import DatasetCard
from gemb.data.emoji import TASK, _image_item, bank
from gemb.errors import ConfigError

CLDR_FILE = os.path.join(assets.ASSET_DIR, "cldr_emoji.json.gz")
REBUILD = "apt-get install unicode-cldr-core && python tools/build_cldr_assets.py"
# Disjoint from each other and from the `emoji` dataset's 14 languages (en es ja ko pt it fr de
# fa id zh ru tr ar); spread over scripts (Latin, Cyrillic, Greek, Hebrew, Devanagari, Thai).
EVAL_LANGUAGES = ("nl", "pl", "sv", "cs", "el", "he", "hi", "th", "vi", "uk")
TRAIN_LANGUAGES = ("af", "bg", "ca", "da", "eu", "fi", "fil", "gl", "hr", "hu", "hy", "kk", "lt",
                   "mk", "ms", "no", "ro", "sk", "sl", "sq")
FIELDS = ("name", "keywords", "both")
TRAIN_SIZES = {"train": 27860, "validation": 3900, "test": 3780}
HELDOUT_SIZES = {"validation": 1950, "test": 1890}


@functools.lru_cache(maxsize=None)
def names(path: str = CLDR_FILE) -> dict:
  """{"languages": [...], "names": {emoji: {lang: [name, [keywords]]}}, "source": str}."""
  if not os.path.exists(path):
    raise assets.MissingAssetError(
        f"The dataset asset {path} is missing (it ships with gemb). Rebuild it with "
        f"`{REBUILD}`. Datasets that need it: cldr-emoji, cldr-emoji-heldout.")
  try:
    with gzip.open(path, "rt", encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError, EOFError) as e:
    raise assets.MissingAssetError(f"The dataset asset {path} is corrupt ({type(e).__name__}: "
                                   f"{e}). Rebuild it with `{REBUILD}`.") from None


def _card(name: str, description: str, sizes: dict, langs: Sequence[str]) -> DatasetCard:
  return DatasetCard(
      name=name, description=description,
      source=f"Unicode CLDR annotations ({names().get('source', 'unicode-cldr-core')}; "
             f"languages {', '.join(langs)}) in gemb/data/assets/cldr_emoji.json.gz; images: "
             "Noto Color Emoji via gemb/data/assets/emoji.npz",
      license="names: Unicode License (Unicode-DFS-2016); images: SIL Open Font License 1.1",
      sizes=sizes, rebuild=REBUILD)


def _source(name: str, split: str, langs: Sequence[str], allowed: Sequence[str], field: str,
            negatives: int, limit: int | None, asset: str, sizes: dict,
            description: str) -> PairSource:
  if split not in allowed:
    raise ConfigError(f"Dataset {name!r} has splits {', '.join(allowed)}; got split={split!r}."
                      + (" It is held out for evaluation: train on 'cldr-emoji' instead."
                         if split == "train" else ""))
  check_split(split, name)
  if field not in FIELDS:
    raise ConfigError(f"{name}: field must be one of {FIELDS}, got {field!r}.")
  table = names(asset)
  b = bank()
  ids = [i for i in b.in_split(split) if not b.records[i]["tone"]
         and table["names"].get(b.records[i]["emoji"])]
  by_topic: dict[str, list[int]] = {}
  for i in ids:
    by_topic.setdefault(b.records[i]["topic"], []).append(i)
  records = []
  for i in ids:
    e = b.records[i]["emoji"]
    negs = stable_choice(e, by_topic[b.records[i]["topic"]], negatives, exclude=i)
    for lang in langs:
      entry = table["names"][e].get(lang)
      if not entry:
        continue
      text_name, keywords = entry
      texts = {"name": [text_name], "keywords": [", ".join(keywords)] if keywords else [],
               "both": [text_name] + ([", ".join(keywords)] if keywords else [])}[field]
      for j, text in enumerate(texts):
        records.append({"id": f"{e}/{lang}/{j}", "group": b.group(i), "task": TASK,
                        "positive_id": e, "i": i, "lang": lang, "text": text,
                        "negatives": negs})

  def materialize(r: dict) -> dict:
    return {"query": r["text"], "positive": _image_item(b.image(r["i"])),
            "negatives": [_image_item(b.image(j)) for j in r["negatives"]], "task": TASK,
            "id": r["id"], "group": r["group"], "positive_id": r["positive_id"],
            "lang": r["lang"]}

  return PairSource(name, split, records, materialize, _card(name, description, sizes, langs),
                    limit, task=TASK)


def _languages(name: str, languages, default: Sequence[str], forbidden: Sequence[str]):
  langs = tuple(languages) if languages is not None else tuple(default)
  unknown = [l for l in langs if l not in default]
  if unknown or not langs:
    raise ConfigError(f"{name}: languages {unknown or list(langs)} are not among its "
                      f"{', '.join(default)}" + (f" (the held-out languages "
                                                 f"{', '.join(forbidden)} belong to the other "
                                                 "entry)" if set(unknown) & set(forbidden)
                                                 else "") + ".")
  return langs


@gemb.registry.datasets.register(
    "cldr-emoji", description=describe(
        TRAIN_SIZES, "emoji names/keywords in 20 CLDR languages -> emoji image (training)"))
def cldr_emoji(split: str = "train", languages: Sequence[str] | None = None,
               field: str = "name", negatives: int = 1, limit: int | None = None,
               asset: str = CLDR_FILE) -> PairSource:
  """CLDR emoji names (or keywords) in 20 languages -> the emoji image; training data."""
  langs = _languages("cldr-emoji", languages, TRAIN_LANGUAGES, EVAL_LANGUAGES)
  return _source("cldr-emoji", split, langs, ("train", "validation", "test"), field, negatives,
                 limit, asset, TRAIN_SIZES,
                 f"CLDR emoji {field} in {len(langs)} languages -> emoji image (training)")


@gemb.registry.datasets.register(
    "cldr-emoji-heldout", description=describe(
        HELDOUT_SIZES, "emoji names in 10 held-out CLDR languages -> unseen emoji (evaluation)"))
def cldr_emoji_heldout(split: str = "test", languages: Sequence[str] | None = None,
                       field: str = "name", negatives: int = 1, limit: int | None = None,
                       asset: str = CLDR_FILE) -> PairSource:
  """CLDR emoji names in 10 languages no training set uses -> images of held-out emoji."""
  langs = _languages("cldr-emoji-heldout", languages, EVAL_LANGUAGES, TRAIN_LANGUAGES)
  return _source("cldr-emoji-heldout", split, langs, ("validation", "test"), field, negatives,
                 limit, asset, HELDOUT_SIZES,
                 f"CLDR emoji {field} in {len(langs)} held-out languages -> held-out emoji")


cldr_emoji.task = cldr_emoji_heldout.task = TASK
cldr_emoji.splits = ("train", "validation", "test")
cldr_emoji_heldout.splits = ("validation", "test")
