"""Builds the committed CLDR asset `gemb/data/assets/cldr_emoji.json.gz`: emoji names and keywords
in many languages from Debian's unicode-cldr-core (Unicode licence), for the emoji of
`gemb/data/assets/emoji.npz` (build that first).

Setup (Debian, build-time only): ``apt-get install unicode-cldr-core``. Then::

    python tools/build_cldr_assets.py

Reads ``common/annotations/<lang>.xml`` and ``common/annotationsDerived/<lang>.xml`` (the
derived files name flags, ZWJ sequences and keycaps). Per emoji without a skin tone and per
language of `gemb.data.cldr.LANGUAGES`: the short name (``type="tts"``) and the keywords.
Entries marked ``↑↑↑`` (inherit from the parent locale) are skipped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
CLDR = "/usr/share/unicode/cldr/common"
OUT = os.path.join(ROOT, "gemb", "data", "assets", "cldr_emoji.json.gz")


def key(e: str) -> str:
  return e.replace("\ufe0f", "")


def read(lang: str, root: str) -> dict[str, dict]:
  out: dict[str, dict] = {}
  for sub in ("annotations", "annotationsDerived"):
    path = os.path.join(root, sub, f"{lang}.xml")
    if not os.path.exists(path):
      continue
    for a in ET.parse(path).getroot().iter("annotation"):
      text = (a.text or "").strip()
      if not text or text == "↑↑↑":
        continue
      d = out.setdefault(key(a.get("cp", "")), {})
      if a.get("type") == "tts":
        d.setdefault("name", text)
      else:
        d.setdefault("keywords", [k.strip() for k in text.split("|") if k.strip()])
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--cldr", default=CLDR)
  p.add_argument("--out", default=OUT)
  args = p.parse_args(argv)
  if not os.path.isdir(os.path.join(args.cldr, "annotations")):
    sys.exit(f"no CLDR annotations under {args.cldr}: apt-get install unicode-cldr-core")
  from gemb.data import assets
  from gemb.data.cldr import EVAL_LANGUAGES, TRAIN_LANGUAGES
  emoji = [r["emoji"] for r in assets.emoji_records() if not r["tone"]]
  names: dict[str, dict] = {e: {} for e in emoji}
  for lang in (*TRAIN_LANGUAGES, *EVAL_LANGUAGES):
    table = read(lang, args.cldr)
    for e in emoji:
      d = table.get(key(e))
      if d and "name" in d:
        names[e][lang] = [d["name"], d.get("keywords", [])]
  source = f"Debian unicode-cldr-core {assets.debian_version('unicode-cldr-core')}".strip()
  data = {"source": source,
          "languages": [*TRAIN_LANGUAGES, *EVAL_LANGUAGES], "names": names}
  blob = gzip.compress(json.dumps(data, ensure_ascii=False, sort_keys=True).encode(), 9, mtime=0)
  tmp = args.out + ".tmp"
  with open(tmp, "wb") as f:
    f.write(blob)
  os.replace(tmp, args.out)
  per_lang = {l: sum(l in v for v in names.values()) for l in data["languages"]}
  print(f"wrote {args.out}: {len(blob) / 1e6:.2f} MB, {len(emoji)} emoji; names per language: "
        f"{per_lang}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
