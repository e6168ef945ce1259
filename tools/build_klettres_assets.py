"""Builds the committed klettres asset `gemb/data/assets/klettres.npz` from Debian's klettres-data
(KDE KLettres: letters, syllables and words recorded by human speakers; GPL-2+).

Setup (Debian, build-time only): ``apt-get install klettres-data``; build-only Python dep:
``scipy`` (resampling). Then::

    python tools/build_klettres_assets.py

Reads every ``/usr/share/klettres/<lang>/sounds.xml`` (the written form of each recording and its
file, in the ``alphabet`` section, kind "letter", and the ``syllables`` section, kind "syllable",
which also holds short words such as "AFFE" or "dog"), decodes the Ogg/Vorbis recording, mixes it
to mono, resamples it to 16 kHz, trims leading and trailing silence (below 2% of the clip's peak,
keeping 60 ms either side) and stores it as Ogg/Opus (about 2 kB a second). A file listed twice is
stored once.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
import xml.etree.ElementTree as ET

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
KLETTRES = "/usr/share/klettres"
OUT = os.path.join(ROOT, "gemb", "data", "assets", "klettres.npz")
SAMPLE_RATE = 16000
PAD_S = 0.06


def entries(root: str) -> list[dict]:
  """(lang, kind, text, file) for every recording named in the sounds.xml files."""
  out, seen = [], set()
  for lang in sorted(os.listdir(root)):
    xml = os.path.join(root, lang, "sounds.xml")
    if not os.path.isfile(xml):
      continue
    tree = ET.parse(xml).getroot()
    for section, kind in (("alphabet", "letter"), ("syllables", "syllable")):
      for sec in tree.iter(section):
        for s in sec.iter("sound"):
          name, rel = s.get("name"), s.get("file")
          if not name or not rel or rel in seen:
            continue
          path = os.path.join(root, rel)
          if not os.path.isfile(path):
            continue
          seen.add(rel)
          text = unicodedata.normalize("NFC", name.strip())
          out.append({"lang": lang, "kind": kind, "text": text, "file": rel})
  return out


def trim(y: np.ndarray, sr: int) -> np.ndarray:
  a = np.abs(y)
  if a.max() == 0:
    return y
  idx = np.flatnonzero(a > 0.02 * a.max())
  pad = int(PAD_S * sr)
  return y[max(0, idx[0] - pad):idx[-1] + pad + 1]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--root", default=KLETTRES)
  p.add_argument("--out", default=OUT)
  p.add_argument("--limit", type=int, default=None, help="only the first N (for tests)")
  args = p.parse_args(argv)
  if not os.path.isdir(args.root):
    sys.exit(f"{args.root} not found: apt-get install klettres-data")
  import soundfile as sf
  from scipy.signal import resample_poly

  from gemb.data import assets
  metas, blobs, bad = [], [], 0
  for e in entries(args.root)[:args.limit]:
    try:
      x, sr = sf.read(os.path.join(args.root, e["file"]), dtype="float32", always_2d=True)
    except Exception as err:  # a broken recording in the package: report and skip it
      print(f"skip {e['file']}: {type(err).__name__}: {err}", file=sys.stderr)
      bad += 1
      continue
    x = x.mean(axis=1)
    g = np.gcd(SAMPLE_RATE, sr)
    y = trim(resample_poly(x, SAMPLE_RATE // g, sr // g).astype(np.float32), SAMPLE_RATE)
    peak = float(np.abs(y).max()) or 1.0
    y = (y * min(1.0, 0.9 / peak)).astype(np.float32)
    blobs.append(assets.encode_opus(y, SAMPLE_RATE))
    metas.append({**e, "seconds": round(len(y) / SAMPLE_RATE, 3)})
  assets.write_blob_store(args.out, "audio", blobs, {
      "sample_rate": SAMPLE_RATE,
      "source": f"Debian klettres-data {assets.debian_version('klettres-data')}".strip(),
      "records": metas})
  print(f"wrote {len(metas)} clips ({sum(m['seconds'] for m in metas):.0f} s, {bad} unreadable) "
        f"to {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
