"""openclipart: public-domain clip art with captions from its file names (image <-> text).

About 3,800 drawings of Debian's ``openclipart-png`` (the Open Clip Art Library 0.18, public
domain), pre-rendered by ``tools/build_openclipart_assets.py`` into ``assets/openclipart.npz``:
composited onto white, fitted into 112 x 112 px, WebP. The caption is the cleaned file name plus
its category folder ("owl on branch (birds)"); non-depictive clip art (stars, patterns,
gradients, textures, borders, arrows, icons, buttons, ...) is left out at build time.

Splits hash the caption's title, so every copy of a drawing ("acquila" 01 to 04) lands in one
split; the test split takes 37% so that it has over 1,000 pairs. In validation and test each
caption keeps one image (the first by file name), so that a caption has exactly one relevant
image; train keeps them all.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np

import gemb.registry
from gemb.data import assets
from gemb.data.base import (PairSource, check_split, describe, filter_decodable, split_of,
                            stable_choice)
from gemb.data.card import DatasetCard
from gemb.data.emoji import TASK, _image_item
from gemb.errors import ConfigError, InputError

OPENCLIPART_FILE = os.path.join(assets.ASSET_DIR, "openclipart.npz")
REBUILD = "apt-get install openclipart-png && python tools/build_openclipart_assets.py"
SPLIT_PERCENT = {"test": 37, "validation": 10}
SIZES = {"train": 2036, "validation": 282, "test": 1065}


class ClipArtBank:
  """The openclipart asset: records with captions and decoded RGB images (cached)."""

  def __init__(self, path: str):
    self.store = assets.BlobStore(path, "images", REBUILD)
    self.records: list[dict] = self.store.meta["records"]
    self.size: int = self.store.meta["size"]
    self._image = functools.lru_cache(maxsize=4096)(self._decode)

  def group(self, i: int) -> str:
    return self.records[i]["title"].casefold()

  def split(self, i: int) -> str:
    return split_of(self.group(i), salt="openclipart", percent=SPLIT_PERCENT)

  def _decode(self, i: int) -> np.ndarray:
    try:
      return assets.decode_image(self.store.blob(i))
    except Exception as e:
      raise InputError(f"openclipart image {i} ({self.records[i]['file']}) in {self.store.path} "
                       f"does not decode ({type(e).__name__}: {e}). Rebuild the asset "
                       f"({REBUILD}) or pass on_corrupt='skip'.") from None

  def image(self, i: int) -> np.ndarray:
    x = self._image(i)
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=None)
def bank(path: str = OPENCLIPART_FILE) -> ClipArtBank:
  return ClipArtBank(path)


def card(sizes: dict) -> DatasetCard:
  return DatasetCard(
      name="openclipart",
      description="clip art <-> caption from its file name and category folder; non-depictive "
                  "clip art (stars, patterns, gradients, borders, icons) filtered out",
      source="Debian openclipart-png 1:0.18+dfsg (Open Clip Art Library 0.18), rendered at "
             "112 px on white as WebP in gemb/data/assets/openclipart.npz",
      license="public domain (Open Clip Art Library dedication)", sizes=sizes, rebuild=REBUILD)


@gemb.registry.datasets.register(
    "openclipart", description=describe(
        SIZES, "public-domain clip art <-> caption from file name + category (openclipart-png)"))
def openclipart(split: str = "train", direction: str = "text_to_image", negatives: int = 1,
                unique_captions: bool | None = None, categories: Sequence[str] | None = None,
                limit: int | None = None, on_corrupt: str = "error",
                asset: str = OPENCLIPART_FILE) -> PairSource:
  """Clip art <-> its caption (cleaned file name + category folder), 112 px on white.

  `unique_captions` (default: True for validation and test, False for train) keeps one image
  per caption; `categories` keeps clip art whose folder starts with one of them ("animals").
  """
  check_split(split, "openclipart")
  if direction not in ("text_to_image", "image_to_text"):
    raise ConfigError(f"openclipart: direction must be 'text_to_image' or 'image_to_text', got "
                      f"{direction!r}.")
  b = bank(asset)
  unique = split != "train" if unique_captions is None else unique_captions
  ids, seen = [], set()
  for i, r in enumerate(b.records):
    if b.split(i) != split:
      continue
    if categories and not r["category"].startswith(tuple(categories)):
      continue
    if unique:
      if r["caption"] in seen:
        continue
      seen.add(r["caption"])
    ids.append(i)
  by_category: dict[str, list[int]] = {}
  for i in ids:
    by_category.setdefault(b.records[i]["category"].split("/")[0], []).append(i)
  task = TASK if direction == "text_to_image" else "image to text retrieval"
  records = []
  for i in ids:
    r = b.records[i]
    negs = stable_choice(r["file"], by_category[r["category"].split("/")[0]], negatives,
                         exclude=i)
    records.append({"id": r["file"], "group": b.group(i), "task": task,
                    "positive_id": r["file"] if direction == "text_to_image" else r["caption"],
                    "i": i, "negatives": negs})

  def materialize(rec: dict) -> dict:
    caption, image = b.records[rec["i"]]["caption"], _image_item(b.image(rec["i"]))
    if direction == "image_to_text":
      return {"query": image, "positive": caption,
              "negatives": [b.records[j]["caption"] for j in rec["negatives"]], "task": task,
              "id": rec["id"], "group": rec["group"], "positive_id": rec["positive_id"]}
    return {"query": caption, "positive": image,
            "negatives": [_image_item(b.image(j)) for j in rec["negatives"]], "task": task,
            "id": rec["id"], "group": rec["group"], "positive_id": rec["positive_id"]}

  def check(rec: dict) -> None:
    for j in [rec["i"], *rec["negatives"]]:
      b.image(j)

  records, skipped = filter_decodable(records, check, on_corrupt, "openclipart")
  return PairSource("openclipart", split, records, materialize, card(SIZES), limit, skipped,
                    task=task)


openclipart.task = TASK
