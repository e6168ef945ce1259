"""Renders the committed emoji asset `gemb/data/assets/emoji.npz` from the Noto Color Emoji font.

Setup (Debian): ``apt-get install fonts-noto-color-emoji`` and ``pip install emoji`` (build-only:
gemb reads the names from the asset, not from the package). Then::

    python tools/build_emoji_assets.py [--size 48] [--font PATH/NotoColorEmoji.ttf]

The asset holds, per emoji, a WebP image (RGBA, size x size) and its names in the 14 languages of
the `emoji` package (CLDR short names), the `unicodedata` name where the emoji is one code point, a
coarse topic, and for skin-tone variants the base emoji and the tone.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import unicodedata

from PIL import Image, ImageDraw, ImageFont

from gemb.data import assets

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
OUT = os.path.join(os.path.dirname(__file__), "..", "gemb", "data", "assets", "emoji.npz")
TONES = {"\U0001F3FB": "light skin tone", "\U0001F3FC": "medium-light skin tone",
         "\U0001F3FD": "medium skin tone", "\U0001F3FE": "medium-dark skin tone",
         "\U0001F3FF": "dark skin tone"}
# Topic keywords, checked in order against the English name; the first match wins. They give the
# "related emoji" used by clips (sequences) and interleaved (category questions).
TOPICS = [
    ("flag", ("flag",)), ("clock", ("o’clock", "thirty")), ("moon", ("moon",)),
    ("heart", ("heart",)), ("cat", ("cat",)),
    ("hand", ("hand", "finger", "thumbs", "fist", "palm")),
    ("face", ("face",)), ("person", ("person", "man", "woman", "people", "family", "couple",
                                     "boy", "girl", "baby", "kiss")),
    ("animal", ("dog", "monkey", "bird", "fish", "bear", "horse", "cow", "pig", "mouse", "rabbit",
                "tiger", "lion", "bug", "snake", "whale", "dolphin", "frog", "chicken", "duck")),
    ("plant", ("flower", "tree", "leaf", "plant", "blossom", "rose", "tulip", "cactus", "herb")),
    ("food", ("fruit", "bread", "cake", "apple", "pepper", "cheese", "meat", "rice", "noodle",
              "pizza", "burger", "food", "egg", "soup", "cookie", "candy", "grapes", "melon",
              "banana", "lemon", "pear", "peach", "cherries", "strawberry", "tomato", "corn")),
    ("drink", ("cup", "glass", "bottle", "tea", "coffee", "beer", "wine", "drink", "milk")),
    ("vehicle", ("car", "train", "bus", "bike", "bicycle", "ship", "boat", "airplane", "rocket",
                 "truck", "taxi", "tram", "helicopter", "motor")),
    ("sport", ("ball", "sport", "medal", "trophy", "skate", "ski", "golf", "boxing")),
    ("music", ("music", "guitar", "drum", "trumpet", "violin", "saxophone", "musical", "notes")),
    ("weather", ("cloud", "sun", "rain", "snow", "wind", "umbrella", "lightning", "tornado")),
    ("building", ("house", "building", "castle", "office", "hospital", "school", "church",
                  "temple", "stadium", "hotel", "bank")),
    ("symbol", ("sign", "symbol", "button", "arrow", "mark", "square", "circle", "triangle",
                "diamond", "keycap", "zodiac")),
]


def clean(name: str) -> str:
  return name.strip(":").replace("_", " ").strip()


def topic_of(name_en: str, emoji: str = "") -> str:
  # Flags carry the country name alone ("Fiji"); their code points say what they are.
  if emoji and (all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in emoji) or "\U000E007F" in emoji):
    return "flag"
  words = name_en.lower().replace(":", " ").split()
  for topic, keys in TOPICS:
    for k in keys:
      if k in words or (" " in k and k in name_en.lower()):
        return topic
  return "other"


def render(font: ImageFont.FreeTypeFont, text: str, size: int) -> Image.Image | None:
  """The emoji as an RGBA `size`x`size` image, or None when the font has no single glyph for it."""
  l, t, r, b = font.getbbox(text)
  if r <= l or b <= t:
    return None
  im = Image.new("RGBA", (r - l, b - t))
  ImageDraw.Draw(im).text((-l, -t), text, font=font, embedded_color=True)
  box = im.getbbox()
  if box is None:
    return None
  w, h = box[2] - box[0], box[3] - box[1]
  if w > 1.4 * h:  # a ZWJ sequence the font lacks falls back to side-by-side glyphs
    return None
  side = max(w, h)
  sq = Image.new("RGBA", (side, side))
  sq.paste(im.crop(box), ((side - w) // 2, (side - h) // 2))
  return sq.resize((size, size), Image.LANCZOS)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--font", default=DEFAULT_FONT)
  p.add_argument("--size", type=int, default=48)
  p.add_argument("--quality", type=int, default=80, help="WebP quality")
  p.add_argument("--out", default=OUT)
  p.add_argument("--limit", type=int, default=None, help="render only the first N (for tests)")
  args = p.parse_args(argv)
  try:
    import emoji
    from emoji import unicode_codes
  except ImportError:
    sys.exit("This builder needs the `emoji` package: pip install emoji")
  if not os.path.exists(args.font):
    sys.exit(f"Font {args.font} not found: apt-get install fonts-noto-color-emoji")
  langs = list(unicode_codes.LANGUAGES)
  for lang in langs:
    unicode_codes.load_from_json(lang)
  data = unicode_codes.EMOJI_DATA
  font = ImageFont.truetype(args.font, 109)  # the CBDT font has a single 109 px strike

  records, blobs = [], []
  keys = sorted((k for k, v in data.items() if v["status"] == emoji.STATUS["fully_qualified"]),
                key=lambda k: [ord(c) for c in k])
  for k in keys[:args.limit]:
    tones = [c for c in k if c in TONES]
    base = "".join(c for c in k if c not in TONES)
    v = data[k]
    # Skin tones only for one-code-point bases (hands, single people): they feed the interleaved
    # "same emoji, other tone" task; toned ZWJ sequences would double the asset for little gain.
    if tones and (len(tones) > 1 or base not in data or len(base) > 1):
      continue
    img = render(font, k, args.size)
    if img is None:
      continue
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=args.quality, method=6)
    names = {lang: clean(v[lang]) for lang in langs if lang in v}
    uname = unicodedata.name(k, "") if len(k) == 1 else ""
    records.append({
        "emoji": k, "names": names, "unicode_name": uname.lower(),
        "topic": topic_of(names["en"], k),
        "base": base if tones else "", "tone": TONES[tones[0]] if tones else "",
    })
    blobs.append(buf.getvalue())
  assets.write_blob_store(args.out, "images", blobs,
                          {"size": args.size, "languages": langs, "records": records})
  print(f"wrote {len(records)} emoji ({sum(1 for r in records if r['tone'])} skin-tone variants) "
        f"to {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
