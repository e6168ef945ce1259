"""Builds the committed openclipart asset `gemb/data/assets/openclipart.npz` from Debian's
openclipart-png (Open Clip Art Library 0.18, public domain).

Setup (Debian, build-time only): ``apt-get install openclipart-png``. Then::

    python tools/build_openclipart_assets.py [--size 112] [--quality 75]

Per kept PNG: the clip art composited onto white, fitted into a size x size square (aspect kept,
white padding), stored as WebP; its caption is the cleaned file name plus its category folder
("owl on branch (birds)"). Cleaning drops the numeric suffix, the author's name (a trailing
token pair or token that recurs after several different titles and is not an English word) and
a last token cut off by the package's 24-character file-name limit.

Dropped as non-depictive: the folders shapes/ (stars, arrows, jigsaw, flowchart, callouts),
special/ (patterns, gradients), decorations/ (borders, frames), computer/icons, computer/buttons,
computer/folders, signs_and_symbols/led, and any file whose name says star, pattern, gradient,
texture, border, frame, background, tile, ornament, button, icon, arrow, divider, corner, swirl,
bullet, line, dingbat, banner, label, logo, glossy, bordered or similar (see DROP_WORDS).
"""

from __future__ import annotations

import argparse
import collections
import glob
import io
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
PNG_ROOT = "/usr/share/openclipart/png"
CLDR_EN = "/usr/share/unicode/cldr/common/annotations/en.xml"
OUT = os.path.join(ROOT, "gemb", "data", "assets", "openclipart.npz")

DROP_DIRS = ("shapes", "special", "decorations", "computer/icons", "computer/buttons",
             "computer/folders", "signs_and_symbols/led", "buttons", "logos",
             "recreation/games/cards")
DROP_WORDS = {
    "star", "stars", "starburst", "pattern", "patterns", "gradient", "gradients", "texture",
    "textures", "border", "borders", "bordered", "frame", "frames", "background", "backgrounds",
    "tile", "tiles", "tiled", "ornament", "ornamental", "ornaments", "button", "buttons", "icon",
    "icons", "arrow", "arrows", "divider", "corner", "corners", "swirl", "swirls", "bullet",
    "line", "lines", "dingbat", "dingbats", "banner", "label", "logo", "glossy", "seamless",
    "wallpaper", "mime", "gnome", "jigsaw", "flourish", "stripes", "striped", "dots", "checker",
    "semaphore", "signalflag", "callout", "bubble", "shape", "shapes", "template", "emblem",
    "rosette", "vignette", "separator", "ribbon", "spiral", "circle", "circles", "square",
    "squares", "rectangle", "triangle", "blank", "empty", "test", "sample", "untitled"}
FILE_LIMIT = 23  # the package cut titles at about 24 characters; a name this long ends mid-word


def english_words(path: str = CLDR_EN) -> set[str]:
  """Lower-case English words from the CLDR English emoji annotations (names and keywords)."""
  import xml.etree.ElementTree as ET
  words: set[str] = set()
  try:
    for a in ET.parse(path).getroot().iter("annotation"):
      words.update(re.findall(r"[a-z]+", (a.text or "").lower()))
  except (OSError, ET.ParseError):
    pass
  # Common clip-art words absent from the emoji annotations.
  words.update("of and with on in the for at to by from under over computer map symbol sign "
               "black white red blue green yellow orange purple brown grey gray pink old new "
               "simple little big small cartoon stylized drawing".split())
  return words


def tokens_of(path: str) -> tuple[list[str], bool]:
  """(lower-case title tokens, whether the file name was cut at the package's length limit)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  stem = re.sub(r"_\d*$", "", stem)  # "_01", "_"
  cut = len(stem) >= FILE_LIMIT
  toks = [t for t in re.split(r"[_\-\s.]+", stem.lower()) if t]
  return toks, cut


def authors(paths: list[str], english: set[str]) -> set[tuple[str, ...]]:
  """Trailing token pairs or single tokens that follow >= 3 different titles and are not English:
  the authors' names that openclipart appended to file names."""
  after: dict[tuple[str, ...], set[str]] = collections.defaultdict(set)
  for p in paths:
    toks, cut = tokens_of(p)
    if cut and len(toks) > 1:
      toks = toks[:-1]
    for n in (1, 2):
      if len(toks) > n:
        after[tuple(toks[-n:])].add(" ".join(toks[:-n]))
  return {k for k, titles in after.items()
          if len(titles) >= 3 and not any(t in english for t in k)}


def caption_of(path: str, root: str, author_tails: set[tuple[str, ...]],
               author_words: set[str]) -> str:
  toks, cut = tokens_of(path)
  if cut and len(toks) > 1:
    toks = toks[:-1]
  toks = [re.sub(r"\d+$", "", t) if re.search(r"[a-z]", t) else t for t in toks]
  changed = True
  while changed and len(toks) > 1:
    changed = False
    for n in (2, 1):
      if len(toks) > n and tuple(toks[-n:]) in author_tails:
        toks, changed = toks[:-n], True
        break
  toks = [t for t in toks if t not in author_words and not t.isdigit() and len(t) > 1]
  title = " ".join(toks)
  if "/flags/" in f"/{os.path.dirname(path)}/" and "flag" not in toks and title:
    title = "flag of " + title
  folder = os.path.basename(os.path.dirname(os.path.relpath(path, root))).replace("_", " ")
  return f"{title} ({folder})" if title and folder else title


def dropped(rel: str, toks: list[str]) -> bool:
  return rel.startswith(tuple(d + "/" for d in DROP_DIRS)) or bool(set(toks) & DROP_WORDS)


def render(path: str, size: int):
  from PIL import Image
  with Image.open(path) as im:
    im.load()
    rgba = im.convert("RGBA")
  bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
  rgb = Image.alpha_composite(bg, rgba).convert("RGB")
  w, h = rgb.size
  s = size / max(w, h)
  rgb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
  out = Image.new("RGB", (size, size), (255, 255, 255))
  out.paste(rgb, ((size - rgb.size[0]) // 2, (size - rgb.size[1]) // 2))
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--root", default=PNG_ROOT)
  p.add_argument("--size", type=int, default=112)
  p.add_argument("--quality", type=int, default=75, help="WebP quality")
  p.add_argument("--out", default=OUT)
  p.add_argument("--limit", type=int, default=None, help="only the first N kept (for tests)")
  args = p.parse_args(argv)
  paths = sorted(glob.glob(os.path.join(args.root, "**", "*.png"), recursive=True))
  if not paths:
    sys.exit(f"no PNGs under {args.root}: apt-get install openclipart-png")
  english = english_words()
  tails = authors(paths, english)
  author_words = {t for k in tails for t in k if len(k) == 2}
  from gemb.data import assets
  records, blobs, n_drop, n_bad = [], [], 0, 0
  for path in paths:
    rel = os.path.relpath(path, args.root)
    toks, _ = tokens_of(path)
    if dropped(rel, toks):
      n_drop += 1
      continue
    caption = caption_of(path, args.root, tails, author_words)
    title = caption.split(" (")[0]
    if len(title) < 3 or set(title.split()) & DROP_WORDS:
      n_drop += 1
      continue
    try:
      img = render(path, args.size)
    except Exception as e:  # a broken PNG in the package: report and skip it
      print(f"skip {rel}: {type(e).__name__}: {e}", file=sys.stderr)
      n_bad += 1
      continue
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=args.quality, method=6)
    blobs.append(buf.getvalue())
    records.append({"file": rel, "caption": caption, "title": title,
                    "category": os.path.dirname(rel)})
    if args.limit and len(records) >= args.limit:
      break
  meta = {"size": args.size, "source": "Debian openclipart-png 1:0.18+dfsg", "records": records}
  assets.write_blob_store(args.out, "images", blobs, meta)
  print(f"kept {len(records)} of {len(paths)} PNGs ({n_drop} non-depictive, {n_bad} unreadable); "
        f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
