"""Synthesizes the committed spoken-names asset `gemb/data/assets/speech.npz` with espeak-ng.

Setup (Debian): ``apt-get install espeak-ng``; build-only Python deps: ``scipy`` (resampling).
It reads the emoji names from `gemb/data/assets/emoji.npz` (build that first), so that every clip
links to an emoji image. Then::

    python tools/build_speech_assets.py [--english 320] [--per-language 40] [--test-all en de fr es]

The first 440 clips spread over all emoji (an even stride through the code points); then, so that
the test split has enough queries, every test-split emoji (no skin tone) is spoken in each
`--test-all` language that is not already there. Each clip is the emoji's CLDR name spoken by espeak-ng's voice for its language, resampled to
16 kHz mono and stored as Ogg/Opus (about 4 kB a second).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "gemb", "data", "assets", "speech.npz")
SAMPLE_RATE = 16000
VOICES = {"en": "en-us", "de": "de", "fr": "fr-fr", "es": "es"}


def synthesize(text: str, voice: str) -> tuple[np.ndarray, int]:
  import soundfile as sf
  wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                       check=True, capture_output=True).stdout
  x, sr = sf.read(io.BytesIO(wav), dtype="float32")
  return x, sr


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--english", type=int, default=320, help="English clips")
  p.add_argument("--per-language", type=int, default=40, help="clips in each of de, fr, es")
  p.add_argument("--out", default=OUT)
  p.add_argument("--limit", type=int, default=None, help="synthesize only the first N (for tests)")
  p.add_argument("--test-all", nargs="*", default=["en", "de", "fr", "es"],
                 help="languages in which every test-split emoji is spoken")
  args = p.parse_args(argv)
  if shutil.which("espeak-ng") is None:
    sys.exit("espeak-ng not found: apt-get install espeak-ng")
  import soundfile as sf
  from scipy.signal import resample_poly

  from gemb.data import assets
  records = [r for r in assets.emoji_records() if not r["tone"]]
  # An even stride through the code-point order spreads the clips over all topics.
  step = max(1, len(records) // args.english)
  chosen = [(r, "en") for r in records[::step][:args.english]]
  for j, lang in enumerate(("de", "fr", "es")):
    pool = [r for r in records[j::step // 2 or 1] if lang in r["names"]]
    chosen += [(r, lang) for r in pool[:args.per_language]]
  from gemb.data.base import split_of
  have = {(r["emoji"], lang) for r, lang in chosen}
  for lang in args.test_all:
    chosen += [(r, lang) for r in records
               if split_of(r["base"] or r["emoji"]) == "test" and lang in r["names"]
               and (r["emoji"], lang) not in have]

  metas, blobs = [], []
  for r, lang in chosen[:args.limit]:
    text = r["names"][lang]
    x, sr = synthesize(text, VOICES[lang])
    g = np.gcd(SAMPLE_RATE, sr)
    y = resample_poly(x, SAMPLE_RATE // g, sr // g).astype(np.float32)
    blobs.append(assets.encode_opus(y, SAMPLE_RATE))
    metas.append({"emoji": r["emoji"], "lang": lang, "text": text, "voice": VOICES[lang],
                  "seconds": round(len(y) / SAMPLE_RATE, 3)})
  version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
  assets.write_blob_store(args.out, "audio", blobs, {"sample_rate": SAMPLE_RATE,
                                                     "synthesizer": version.strip(),
                                                     "records": metas})
  print(f"wrote {len(metas)} clips ({sum(m['seconds'] for m in metas):.0f} s) to {args.out}: "
        f"{os.path.getsize(args.out) / 1e6:.2f} MB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
