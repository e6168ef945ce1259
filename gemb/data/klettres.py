"""klettres: human recordings of letters, syllables and short words in 20 languages (speech -> text).

About 1,800 recordings from Debian's ``klettres-data`` (KDE KLettres, GPL-2+), each the written
form it spells ("A", "BA", "AFFE", "അ") in one of 20 languages (ar cs da de en en_GB es fr he hu
it lt ml nb nds nl pt_BR ru tn uk). ``tools/build_klettres_assets.py`` resampled them to 16 kHz
mono, trimmed the silence and stored them as Ogg/Opus in ``assets/klettres.npz``.

The query is the recording, the document its written form; a written form shared by several
languages ("A") is one document, relevant to all its recordings. Splits hash the case-folded
written form (so "A" in every language is in one split); the test split takes 30% so that it has
over 500 queries.
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
from gemb.errors import ConfigError

KLETTRES_FILE = os.path.join(assets.ASSET_DIR, "klettres.npz")
REBUILD = ("apt-get install klettres-data && pip install scipy && "
           "python tools/build_klettres_assets.py")
SPLIT_PERCENT = {"test": 30, "validation": 10}
KINDS = ("letter", "syllable")
TASK = "speech to text"
SIZES = {"train": 1128, "validation": 197, "test": 504}


@functools.lru_cache(maxsize=None)
def store(path: str = KLETTRES_FILE) -> assets.BlobStore:
  return assets.BlobStore(path, "audio", REBUILD)


@functools.lru_cache(maxsize=2048)
def _clip(i: int, path: str) -> tuple[np.ndarray, int]:
  rec = store(path).meta["records"][i]
  return store(path).audio(i, f"klettres clip {i} ({rec['text']!r}, {rec['lang']}, "
                              f"{rec['file']})", REBUILD)


def split_of_text(text: str) -> str:
  return split_of(text.casefold(), salt="klettres", percent=SPLIT_PERCENT)


@gemb.registry.datasets.register(
    "klettres", description=describe(
        SIZES, "human recordings of letters/syllables/words in 20 languages -> written form"))
def klettres(split: str = "train", languages: Sequence[str] | None = None,
             kinds: Sequence[str] = KINDS, negatives: int = 1, limit: int | None = None,
             on_corrupt: str = "error", asset: str = KLETTRES_FILE) -> PairSource:
  """Human recordings (KLettres, 20 languages) of letters, syllables and words -> written form."""
  check_split(split, "klettres")
  s = store(asset)
  clips = s.meta["records"]
  known = sorted({c["lang"] for c in clips})
  if languages is not None:
    unknown = [l for l in languages if l not in known]
    if unknown or not languages:
      raise ConfigError(f"klettres: unknown languages {unknown or list(languages)}; available: "
                        f"{', '.join(known)}.")
  bad_kinds = [k for k in kinds if k not in KINDS]
  if bad_kinds or not kinds:
    raise ConfigError(f"klettres: kinds must be among {KINDS}, got {list(kinds)}.")
  records, pools = [], {}
  for i, c in enumerate(clips):
    if (languages and c["lang"] not in languages) or c["kind"] not in kinds:
      continue
    if split_of_text(c["text"]) != split:
      continue
    pools.setdefault((c["lang"], c["kind"]), []).append(c["text"])
    records.append({"id": f"klettres/{c['file']}", "group": c["text"].casefold(), "task": TASK,
                    "positive_id": c["text"], "clip": i, "lang": c["lang"], "kind": c["kind"]})
  for r in records:  # another written form of the same language and kind
    pool = sorted(set(pools[(r["lang"], r["kind"])]))
    r["negatives"] = stable_choice(r["id"], pool, negatives, exclude=r["positive_id"])

  def materialize(r: dict) -> dict:
    from gemb.model.inputs import Audio
    w, sr = _clip(r["clip"], asset)
    return {"query": Audio(w, sr), "positive": r["positive_id"], "negatives": r["negatives"],
            "task": TASK, "id": r["id"], "group": r["group"], "positive_id": r["positive_id"],
            "lang": r["lang"]}

  records, skipped = filter_decodable(records, lambda r: _clip(r["clip"], asset), on_corrupt,
                                      "klettres")
  card = DatasetCard(
      name="klettres", description="human recordings of letters, syllables and short words in "
                                   "20 languages -> their written form",
      source=f"{s.meta.get('source', 'Debian klettres-data')} (KDE KLettres), resampled to "
             "16 kHz mono, silence trimmed, Ogg/Opus in gemb/data/assets/klettres.npz",
      license="GPL-2.0-or-later (KLettres sounds)", sizes=SIZES, rebuild=REBUILD)
  return PairSource("klettres", split, records, materialize, card, limit, skipped, task=TASK)


klettres.task = TASK
