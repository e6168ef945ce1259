"""Input items: `Text`, `Image`, `Audio`, `Video` and `Interleaved` (a sequence of parts).

An *item* is what becomes one embedding. A plain `str` is accepted wherever an item or a part is
and means `Text`; a list/tuple of parts means `Interleaved`. Validation happens here, once, so that
every modality reports bad input the same way: an `InputError` naming the item's index.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence, Union

import numpy as np

from gemb.errors import InputError


@dataclasses.dataclass(frozen=True)
class Text:
  text: str


@dataclasses.dataclass(frozen=True)
class Image:
  """An H×W×C image: uint8 in [0, 255] or float in [0, 1]; C is 3 (RGB)."""
  pixels: np.ndarray


@dataclasses.dataclass(frozen=True)
class Audio:
  """A mono waveform [n] (or [n, channels], averaged to mono) at `sample_rate` Hz."""
  waveform: np.ndarray
  sample_rate: int


@dataclasses.dataclass(frozen=True)
class Video:
  """T×H×W×C frames (uint8 or float in [0, 1]) at `fps` frames per second."""
  frames: np.ndarray
  fps: float = 1.0


Part = Union[Text, Image, Audio, Video]


@dataclasses.dataclass(frozen=True)
class Interleaved:
  """Several parts embedded as one item, e.g. ``Interleaved([Image(x), Text("a red car")])``."""
  parts: tuple[Part, ...]

  def __init__(self, parts: Sequence[Part | str]):
    object.__setattr__(self, "parts", tuple(Text(p) if isinstance(p, str) else p for p in parts))


Item = Union[Part, Interleaved, str, Sequence]


# -- normalising and validating ------------------------------------------------------------------

def as_parts(item, index: int) -> tuple[Part, ...]:
  """The parts of `item` (one for a plain part), after type checks; raises InputError."""
  if isinstance(item, str):
    return (Text(item),)
  if isinstance(item, (Text, Image, Audio, Video)):
    return (item,)
  if isinstance(item, Interleaved):
    parts = item.parts
  elif isinstance(item, (list, tuple)):
    parts = tuple(Text(p) if isinstance(p, str) else p for p in item)
  else:
    raise InputError(
        f"Item {index}: expected str, gemb.Text, gemb.Image, gemb.Audio, gemb.Video or an "
        f"interleaved list of those, got {type(item).__name__}.")
  if not parts:
    raise InputError(f"Item {index}: an interleaved item needs at least one part, got none.")
  for j, p in enumerate(parts):
    if isinstance(p, Interleaved) or not isinstance(p, (Text, Image, Audio, Video)):
      raise InputError(
          f"Item {index}, part {j}: parts must be str, Text, Image, Audio or Video "
          f"(no nesting), got {type(p).__name__}.")
  return parts


def check_text(t: Text, where: str) -> str:
  if not isinstance(t.text, str):
    raise InputError(f"{where}: Text.text must be a str, got {type(t.text).__name__}.")
  if not t.text.strip():
    raise InputError(f"{where}: empty text. Drop the item or give it some text.")
  return t.text


def _check_pixels(x, where: str, rank: int, what: str) -> np.ndarray:
  """Returns float32 pixels in [0, 1] after rank/channel/dtype checks."""
  x = np.asarray(x)
  if x.ndim != rank:
    shape = "H×W×C" if rank == 3 else "T×H×W×C"
    raise InputError(f"{where}: {what} must have rank {rank} ({shape}), got shape {x.shape}. "
                     "Add a channel axis for grayscale (x[..., None].repeat(3, -1)).")
  if x.shape[-1] != 3:
    raise InputError(f"{where}: {what} must have 3 (RGB) channels, got {x.shape[-1]} in shape "
                     f"{x.shape}. Convert it, e.g. with gemb.model.load_image (RGB) or by "
                     "dropping alpha (x[..., :3]).")
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  if np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
      raise InputError(f"{where}: {what} contains NaN or inf.")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
      raise InputError(f"{where}: float {what} must lie in [0, 1], got range "
                       f"[{x.min():.3g}, {x.max():.3g}]. Divide uint8 data by 255.")
    return x
  raise InputError(f"{where}: {what} dtype must be uint8 or float, got {x.dtype}. "
                   "Cast it, e.g. x.astype(np.uint8).")


def check_image(im: Image, where: str) -> np.ndarray:
  x = _check_pixels(im.pixels, where, 3, "an image")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise InputError(f"{where}: the image is empty (shape {x.shape}).")
  return x


def check_video(v: Video, where: str) -> np.ndarray:
  x = np.asarray(v.frames)
  if x.ndim == 4 and x.shape[0] == 0:
    raise InputError(f"{where}: zero-length video (no frames). Drop it or give at least one frame.")
  x = _check_pixels(x, where, 4, "video frames")
  if x.shape[1] == 0 or x.shape[2] == 0:
    raise InputError(f"{where}: video frames are empty (shape {x.shape}).")
  if not (np.isfinite(v.fps) and v.fps > 0):
    raise InputError(f"{where}: fps must be a positive number, got {v.fps}.")
  return x


def check_audio(a: Audio, where: str, sample_rates: Sequence[int]) -> np.ndarray:
  """Returns a float32 mono waveform; rejects NaN/inf and unsupported sample rates."""
  if a.sample_rate not in sample_rates:
    raise InputError(f"{where}: unsupported sample rate {a.sample_rate} Hz; supported: "
                     f"{', '.join(map(str, sample_rates))}. Resample the audio first.")
  w = np.asarray(a.waveform)
  if w.ndim == 2:
    w = w.mean(axis=1)
  if w.ndim != 1:
    raise InputError(f"{where}: audio must be [n] or [n, channels], got shape {w.shape}.")
  if not np.issubdtype(w.dtype, np.number):
    raise InputError(f"{where}: audio dtype must be numeric, got {w.dtype}.")
  if np.issubdtype(w.dtype, np.integer):  # PCM: scale to [-1, 1]
    w = w.astype(np.float32) / float(np.iinfo(w.dtype).max)
  w = w.astype(np.float32)
  if w.size == 0:
    raise InputError(f"{where}: empty audio (no samples).")
  if not np.all(np.isfinite(w)):
    raise InputError(f"{where}: audio contains NaN or inf samples. Clean or drop them.")
  return w


# -- loaders -------------------------------------------------------------------------------------

PathLike = Union[str, os.PathLike]


def load_image(path: PathLike) -> Image:
  """Reads any image Pillow can open, as RGB uint8."""
  from PIL import Image as PILImage
  with PILImage.open(path) as im:
    return Image(np.asarray(im.convert("RGB")))


def load_audio(path: PathLike) -> Audio:
  """Reads WAV/FLAC/OGG (anything soundfile reads) as float32, mixed down to mono."""
  import soundfile
  w, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
  return Audio(w.mean(axis=1), int(sr))


def load_video(path: PathLike | Sequence[PathLike], fps: float | None = None) -> Video:
  """Reads a GIF (or other multi-frame image), an image sequence (list of paths or a folder of
  images, sorted by name), or an MP4 when `imageio-ffmpeg` is installed."""
  from PIL import Image as PILImage, ImageSequence
  if isinstance(path, (list, tuple)) or pathlib.Path(path).is_dir():
    paths = (sorted(p for p in pathlib.Path(path).iterdir() if p.is_file())
             if not isinstance(path, (list, tuple)) else [pathlib.Path(p) for p in path])
    frames = [load_image(p).pixels for p in paths]
    if not frames:
      raise InputError(f"load_video({path!r}): no image files found.")
    return Video(np.stack(frames), fps or 1.0)
  p = pathlib.Path(path)
  if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".avi"):
    try:
      import imageio.v3 as iio  # optional: needs imageio + imageio-ffmpeg
    except ImportError:
      raise InputError(f"load_video({str(p)!r}): reading {p.suffix} needs `pip install imageio "
                       "imageio-ffmpeg`; GIFs and image sequences need nothing extra.") from None
    frames = iio.imread(p)
    meta = iio.immeta(p)
    return Video(np.asarray(frames)[..., :3], fps or float(meta.get("fps", 1.0)))
  with PILImage.open(p) as im:
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    duration_ms = im.info.get("duration") or 100
  return Video(np.stack(frames), fps or 1000.0 / float(duration_ms))
