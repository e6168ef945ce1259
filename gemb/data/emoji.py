"""emoji: Noto Color Emoji images with their names in 14 languages (image <-> text).

Images are pre-rendered from the Noto Color Emoji font (SIL OFL 1.1) into the committed
``assets/emoji.npz``; names are the CLDR short names carried by the `emoji` package (BSD), read
into the asset at build time. Splits are by base emoji, so an emoji and its skin tones share one.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

import gemb.registry
from gemb.data import assets
from gemb.data.base import (PairSource, check_split, describe, filter_decodable, split_of,
                             stable_choice)
from gemb.data.card import DatasetCard
from gemb.errors import ConfigError, InputError

TASK = "search result"  # names searching for images, and (direction="image_to_text") back
REBUILD = ("apt-get install fonts-noto-color-emoji && pip install emoji && "
           "python tools/build_emoji_assets.py")


class EmojiBank:
  """The emoji asset: records, split of each emoji, and decoded RGB images (cached)."""

  def __init__(self, path: str = assets.EMOJI_FILE):
    self.store = assets.emoji_store(path)
    self.records: list[dict] = self.store.meta["records"]
    self.languages: list[str] = self.store.meta["languages"]
    self.size: int = self.store.meta["size"]
    self.index = {r["emoji"]: i for i, r in enumerate(self.records)}
    self._image = functools.lru_cache(maxsize=4096)(self._decode)

  def group(self, i: int) -> str:
    r = self.records[i]
    return r["base"] or r["emoji"]

  def split(self, i: int) -> str:
    return split_of(self.group(i))

  def in_split(self, split: str) -> list[int]:
    return [i for i in range(len(self.records)) if self.split(i) == split]

  def name(self, i: int, lang: str = "en") -> str:
    return self.records[i]["names"].get(lang) or self.records[i]["names"]["en"]

  def _decode(self, i: int) -> np.ndarray:
    try:
      return assets.decode_image(self.store.blob(i))
    except Exception as e:
      raise InputError(f"emoji image {i} ({self.records[i]['emoji']}, "
                       f"{self.records[i]['names']['en']!r}) in {self.store.path} does not "
                       f"decode ({type(e).__name__}: {e}). Rebuild the asset ({REBUILD}) or "
                       "pass on_corrupt='skip'.") from None

  def image(self, i: int) -> np.ndarray:
    """H×W×3 uint8 on white (read-only, shared by the cache)."""
    x = self._image(i)
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=None)
def bank(path: str = assets.EMOJI_FILE) -> EmojiBank:
  return EmojiBank(path)


def _image_item(x: np.ndarray):
  from gemb.model.inputs import Image
  return Image(x)


def card_for(name: str, description: str, sizes: dict, source: str = "") -> DatasetCard:
  return DatasetCard(
      name=name, description=description,
      source=source or ("Noto Color Emoji font (Debian fonts-noto-color-emoji), names from "
                        "CLDR via the `emoji` package and Python's unicodedata; pre-rendered "
                        "in gemb/data/assets/emoji.npz"),
      license="images: SIL Open Font License 1.1 (Noto Color Emoji); names: Unicode CLDR "
              "(Unicode licence) via `emoji` (BSD-3)",
      sizes=sizes, rebuild=REBUILD)


SIZES = {"train": 26852, "validation": 3766, "test": 3836}  # all 14 languages, with skin tones


@gemb.registry.datasets.register(
    "emoji", description=describe(
        SIZES, "emoji images <-> names in 14 languages (Noto Color Emoji, CLDR)"))
def emoji(split: str = "train", languages: Sequence[str] | None = None, negatives: int = 1,
          skin_tones: bool = True, direction: str = "text_to_image", limit: int | None = None,
          on_corrupt: str = "error", asset: str = assets.EMOJI_FILE) -> PairSource:
  """Emoji images <-> their names in 14 languages (Noto Color Emoji, CLDR); ~2.5k images."""
  check_split(split, "emoji")
  b = bank(asset)
  langs = list(languages) if languages is not None else b.languages
  unknown = [l for l in langs if l not in b.languages]
  if unknown or not langs:
    raise ConfigError(f"emoji: unknown languages {unknown}; available: {', '.join(b.languages)}.")
  if direction not in ("text_to_image", "image_to_text"):
    raise ConfigError(f"emoji: direction must be 'text_to_image' or 'image_to_text', got "
                      f"{direction!r}.")
  task = TASK
  ids = [i for i in b.in_split(split) if skin_tones or not b.records[i]["tone"]]
  by_topic: dict[str, list[int]] = {}
  for i in ids:
    by_topic.setdefault(b.records[i]["topic"], []).append(i)
  by_base: dict[str, list[int]] = {}
  for i in ids:
    by_base.setdefault(b.group(i), []).append(i)
  records = []
  for i in ids:
    r = b.records[i]
    # Hard negatives: the same emoji in another skin tone first (only the tone tells them apart),
    # then emoji of the same topic in this split.
    negs = [j for j in by_base[b.group(i)] if j != i][:negatives]
    negs += stable_choice(r["emoji"], by_topic[r["topic"]], negatives - len(negs), exclude=i)
    for lang in langs:
      if lang not in r["names"]:
        continue
      records.append({"id": f"{r['emoji']}/{lang}", "group": b.group(i), "task": task,
                      "positive_id": r["emoji"] if direction == "text_to_image" else f"{i}/{lang}",
                      "i": i, "lang": lang, "negatives": negs})

  def materialize(rec: dict) -> dict:
    text, image = b.name(rec["i"], rec["lang"]), _image_item(b.image(rec["i"]))
    negs = [_image_item(b.image(j)) for j in rec["negatives"]]
    if direction == "image_to_text":
      return {"query": image, "positive": text,
              "negatives": [b.name(j, rec["lang"]) for j in rec["negatives"]],
              "task": task, "id": rec["id"], "group": rec["group"],
              "positive_id": rec["positive_id"], "lang": rec["lang"]}
    return {"query": text, "positive": image, "negatives": negs, "task": task, "id": rec["id"],
            "group": rec["group"], "positive_id": rec["positive_id"], "lang": rec["lang"]}

  def check(rec: dict) -> None:
    for j in [rec["i"], *rec["negatives"]]:
      b.image(j)

  records, skipped = filter_decodable(records, check, on_corrupt, "emoji")
  card = card_for("emoji", "emoji images <-> names in 14 languages; hard negatives: other skin "
                  "tone / same topic", SIZES)
  return PairSource("emoji", split, records, materialize, card, limit, skipped, task=task)

