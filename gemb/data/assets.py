"""The committed compact assets (emoji images, spoken names) and the system assets behind them.

Runtime needs pip only: the images and clips live pre-rendered in `gemb/data/assets/*.npz`, read
here and decoded lazily, one item at a time. The system packages (Noto Color Emoji font,
espeak-ng) are needed only to rebuild those files or to synthesize new audio.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import warnings
from typing import Any

import numpy as np

from gemb.errors import InputError
from gemb.io import atomic_open

ASSET_DIR = os.path.join(os.path.dirname(__file__), "assets")
EMOJI_FILE = os.path.join(ASSET_DIR, "emoji.npz")
SPEECH_FILE = os.path.join(ASSET_DIR, "speech.npz")
FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"

# Which built-in datasets need which asset; named in every "missing asset" message.
NEEDS = {
    "emoji.npz": ("emoji", "clips", "interleaved", "spoken-names (image targets)"),
    "speech.npz": ("spoken-names",),
    "openclipart.npz": ("openclipart",),
    "klettres.npz": ("klettres",),
    "cldr_emoji.json.gz": ("cldr-emoji", "cldr-emoji-heldout"),
}
NEED_NOTHING = ("code", "text-pairs", "coco, flickr30k, msrvtt and beir (your own files)")


class MissingAssetError(InputError):
  """A committed asset file or a system package is missing."""


def _missing(path: str, rebuild: str) -> MissingAssetError:
  name = os.path.basename(path)
  return MissingAssetError(
      f"The dataset asset {path} is missing (it ships with gemb; a partial checkout or a "
      f"packaging step dropped it). Rebuild it with `{rebuild}`. Datasets that need it: "
      f"{', '.join(NEEDS.get(name, ()))}. Datasets that still work without it: "
      f"{', '.join(NEED_NOTHING)}.")


def write_blob_store(path: str, blob_key: str, blobs: list[bytes], meta: dict[str, Any]) -> None:
  """Writes what `BlobStore` reads; via a temporary file and a rename, so a crash never leaves
  a half-written asset."""
  arrays = [np.frombuffer(b, np.uint8) for b in blobs]
  offsets = np.cumsum([0] + [len(a) for a in arrays]).astype(np.int64)
  meta_u8 = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), np.uint8)
  with atomic_open(path, "wb") as f:
    np.savez_compressed(f, **{blob_key: np.concatenate(arrays)}, offsets=offsets, meta=meta_u8)


class BlobStore:
  """Variable-length byte blobs packed in one array with offsets, plus JSON metadata."""

  def __init__(self, path: str, blob_key: str, rebuild: str):
    if not os.path.exists(path):
      raise _missing(path, rebuild)
    try:
      with np.load(path) as z:
        self.blobs = z[blob_key]
        self.offsets = z["offsets"]
        self.meta: dict[str, Any] = json.loads(z["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError) as e:
      raise MissingAssetError(f"The dataset asset {path} is corrupt ({type(e).__name__}: {e}). "
                              f"Rebuild it with `{rebuild}`.") from None
    self.path = path

  def __len__(self) -> int:
    return len(self.offsets) - 1

  def blob(self, i: int) -> bytes:
    return self.blobs[self.offsets[i]:self.offsets[i + 1]].tobytes()

  def audio(self, i: int, what: str, rebuild: str) -> tuple[np.ndarray, int]:
    """Blob i decoded as audio: (read-only float32 mono waveform, sample rate). A blob that does
    not decode raises InputError naming `what` (the clip, for the user) and how to rebuild."""
    try:
      w, sr = decode_audio(self.blob(i))
    except Exception as e:  # soundfile raises its own types; any failure means a damaged clip
      raise InputError(f"{what} in {self.path} does not decode ({type(e).__name__}: {e}). "
                       f"Rebuild it ({rebuild}) or pass on_corrupt='skip'.") from None
    w.setflags(write=False)
    return w, sr


@functools.lru_cache(maxsize=None)
def emoji_store(path: str = EMOJI_FILE) -> BlobStore:
  return BlobStore(path, "images", "python tools/build_emoji_assets.py")


@functools.lru_cache(maxsize=None)
def speech_store(path: str = SPEECH_FILE) -> BlobStore:
  return BlobStore(path, "audio", "python tools/build_speech_assets.py")


def emoji_records(path: str = EMOJI_FILE) -> list[dict]:
  """Per emoji: ``emoji``, ``names`` {lang: name}, ``unicode_name``, ``topic``, ``base``,
  ``tone``."""
  return emoji_store(path).meta["records"]


class DecodeCounter:
  """Counts items that failed to decode when the policy is to skip them."""

  def __init__(self):
    self.skipped = 0
    self.reasons: list[str] = []

  def skip(self, what: str, err: Exception) -> None:
    self.skipped += 1
    if len(self.reasons) < 20:
      self.reasons.append(f"{what}: {type(err).__name__}: {err}")


def decode_image(data: bytes, background: int = 255) -> np.ndarray:
  """Encoded image bytes -> H×W×3 uint8, alpha composited onto a plain background."""
  from PIL import Image
  with Image.open(io.BytesIO(data)) as im:
    im.load()
    if im.mode in ("RGBA", "LA", "P"):
      rgba = im.convert("RGBA")
      bg = Image.new("RGBA", rgba.size, (background,) * 3 + (255,))
      return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
  """Encoded audio bytes (WAV/FLAC/OGG) -> (float32 mono waveform, sample rate)."""
  import soundfile as sf
  w, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
  if w.size == 0:
    raise ValueError("no samples")
  return w.mean(axis=1), int(sr)


def encode_opus(w: np.ndarray, sample_rate: int) -> bytes:
  """A mono waveform as Ogg/Opus bytes: how the audio assets store their clips."""
  import soundfile as sf
  buf = io.BytesIO()
  sf.write(buf, w, sample_rate, format="OGG", subtype="OPUS")
  return buf.getvalue()


def debian_version(package: str) -> str:
  """The installed version of a Debian package ("" without dpkg): asset builders record it."""
  import subprocess
  try:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                          capture_output=True, text=True).stdout.strip()
  except OSError:
    return ""


def check_font(path: str = FONT_PATH) -> str:
  """The emoji font's path; raises MissingAssetError with install instructions."""
  if not os.path.exists(path):
    raise MissingAssetError(
        f"The Noto Color Emoji font ({path}) is not installed; it is needed only to rebuild "
        "emoji.npz. Install it with `apt-get install fonts-noto-color-emoji`. All built-in "
        "datasets still work from the committed asset.")
  return path


def check_espeak() -> str:
  """The espeak-ng executable; raises MissingAssetError with install instructions."""
  exe = shutil.which("espeak-ng")
  if exe is None:
    raise MissingAssetError(
        "espeak-ng is not installed; it is needed to synthesize new speech "
        "(gemb.data.assets.synthesize) and to rebuild speech.npz. Install it with "
        "`apt-get install espeak-ng`. spoken-names still works from the committed clips, and "
        f"{', '.join(NEED_NOTHING)}, emoji, clips and interleaved need no audio.")
  return exe


def synthesize(text: str, voice: str = "en-us", sample_rate: int = 16000) -> np.ndarray:
  """`text` spoken by espeak-ng, as a float32 mono waveform at `sample_rate` Hz."""
  import subprocess
  exe = check_espeak()
  try:
    wav = subprocess.run([exe, "-v", voice, "-s", "150", "--stdout", text], check=True,
                         capture_output=True, timeout=60).stdout
  except subprocess.CalledProcessError as e:
    raise InputError(f"espeak-ng failed for voice {voice!r}: {e.stderr.decode()[:200]}. "
                     "List voices with `espeak-ng --voices`.") from None
  w, sr = decode_audio(wav)
  if sr != sample_rate:  # linear resampling: speech from espeak has little energy near Nyquist
    n = int(round(len(w) * sample_rate / sr))
    w = np.interp(np.linspace(0, len(w) - 1, n), np.arange(len(w)), w).astype(np.float32)
  return w


def warn_skipped(name: str, counter: DecodeCounter) -> None:
  if counter.skipped:
    warnings.warn(f"{name}: skipped {counter.skipped} items that failed to decode; first: "
                  f"{counter.reasons[:3]}", RuntimeWarning, stacklevel=3)
