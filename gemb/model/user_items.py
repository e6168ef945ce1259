"""What users hand `Encoder.embed` besides gemb's own item types: the ecosystem's conventions.

* an image as a numpy array (H×W×C, or H×W grey) or a `PIL.Image.Image`;
* a file as an `os.PathLike` (`pathlib.Path("cat.jpg")`), dispatched on its suffix to
  `gemb.load_image`, `gemb.load_audio`, `gemb.load_video` or `gemb.load_pdf` (a plain `str` is
  always text, never a path);
* the same inside an interleaved item (a list or tuple of parts).

`is_single_item` tells one item from a list of items, so that ``embed("one text")`` returns one
vector and ``embed(["a", "b"])`` a matrix.
"""

from __future__ import annotations

import importlib
import os
import pathlib
from typing import Any

import numpy as np

from gemb.errors import InputError
from gemb.model import inputs as I

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
VIDEO_SUFFIXES = (".gif", ".mp4", ".mov", ".mkv", ".webm", ".avi")
PDF_SUFFIXES = (".pdf",)


def _is_pil(x: Any) -> bool:
  mod = type(x).__module__ or ""
  return mod.startswith("PIL.") and hasattr(x, "convert") and hasattr(x, "size")


def is_single_item(items: Any) -> bool:
  """True for one item (a str, a gemb part, an image array, a PIL image, a path); False for a
  sequence of items (a list, a tuple, a 1-d array of strings)."""
  if isinstance(items, (str, I.Text, I.Image, I.Audio, I.Video, I.Interleaved, os.PathLike)):
    return True
  if isinstance(items, np.ndarray):
    return items.ndim >= 2 and items.dtype != object
  return _is_pil(items)


def from_path(path: os.PathLike) -> Any:
  """A file as a gemb part, by suffix; PDFs through `gemb.load_pdf` when this gemb has it."""
  p = pathlib.Path(path)
  suffix = p.suffix.lower()
  if not p.exists():
    raise InputError(f"{str(p)!r} does not exist (a path is read as a file; pass a str for text).")
  if suffix in IMAGE_SUFFIXES:
    return I.load_image(p)
  if suffix in AUDIO_SUFFIXES:
    return I.load_audio(p)
  if suffix in VIDEO_SUFFIXES:
    video = I.load_video(p)
    return I.Image(video.frames[0]) if video.frames.shape[0] == 1 else video  # a still GIF
  if suffix in PDF_SUFFIXES:
    load_pdf = getattr(importlib.import_module("gemb"), "load_pdf", None)  # looked up lazily
    if load_pdf is None:
      raise InputError(f"{str(p)!r}: this version of gemb has no gemb.load_pdf to read PDFs.")
    return load_pdf(p)
  known = IMAGE_SUFFIXES + AUDIO_SUFFIXES + VIDEO_SUFFIXES + PDF_SUFFIXES
  raise InputError(f"{str(p)!r}: unknown file type {suffix or '(no suffix)'!r}; gemb reads "
                   f"{', '.join(known)}. Load it yourself into gemb.Image / Audio / Video.")


def coerce_part(part: Any) -> Any:
  """One part in the ecosystem's forms -> a gemb part (anything else is returned unchanged, for
  `gemb.model.inputs` to validate)."""
  if isinstance(part, os.PathLike):
    return from_path(part)
  if isinstance(part, np.ndarray) and part.ndim in (2, 3) and part.dtype != object:
    pixels = np.repeat(part[..., None], 3, axis=-1) if part.ndim == 2 else part
    if pixels.shape[-1] == 4:  # RGBA: drop alpha, as PIL's convert("RGB") does
      pixels = pixels[..., :3]
    return I.Image(pixels)
  if _is_pil(part):
    return I.Image(np.asarray(part.convert("RGB")))
  return part


def coerce_item(item: Any) -> Any:
  """An item (a part, or an interleaved list / `Interleaved` of parts) with each part coerced."""
  if isinstance(item, I.Interleaved):
    return I.Interleaved([coerce_part(p) for p in item.parts])
  if isinstance(item, (list, tuple)):
    return [coerce_part(p) for p in item]
  return coerce_part(item)
