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
  """T×H×W×C frames (uint8 or float in [0, 1]) at `fps` frames per second, with an optional
  soundtrack: `audio` (an `Audio` starting at the first frame) is embedded with the frames as one
  item, its tokens interleaved with theirs in time order (`gemb.load_video` fills it from a file's
  audio stream)."""
  frames: np.ndarray
  fps: float = 1.0
  audio: "Audio | None" = None


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
  try:
    t.text.encode("utf-8")
  except UnicodeEncodeError as e:
    raise InputError(
        f"{where}: the text holds a lone surrogate ({t.text[e.start]!r} at character {e.start}), "
        "which is not valid Unicode (often half of a badly decoded emoji). Repair it, e.g. "
        "text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace').") from None
  return t.text


# -- pixels: alpha and resizing (public: every image path, and other image tokenizers, use them) --

WHITE = (255, 255, 255)


def _background(background) -> np.ndarray:
  bg = np.asarray(background, np.float32).reshape(-1)
  if bg.shape != (3,) or not np.all(np.isfinite(bg)) or bg.min() < 0 or bg.max() > 255:
    raise InputError(f"background must be an RGB triple in [0, 255], got {background!r}.")
  return bg


def composite_alpha(x: np.ndarray, background=WHITE) -> np.ndarray:
  """RGBA pixels [..., 4] (straight alpha, as in PNG; uint8, or float in [0, 1]) composited onto
  `background` (an RGB triple in [0, 255], default white) → RGB [..., 3] of the same dtype kind.

  Transparent pixels become the background whatever colour the file keeps under them; this is
  what a viewer shows, and what `load_image`, `load_video` and RGBA arrays given as items get.
  """
  x = np.asarray(x)
  if x.shape[-1] != 4:
    raise InputError(f"composite_alpha expects RGBA pixels [..., 4], got shape {x.shape}.")
  bg = _background(background)
  if x.dtype == np.uint8:
    a = x[..., 3:].astype(np.float32) / 255.0
    out = x[..., :3].astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
  a = x[..., 3:].astype(np.float32)
  return (x[..., :3].astype(np.float32) * a + (bg / 255.0) * (1.0 - a)).astype(np.float32)


def pil_to_rgb(im, background=WHITE) -> np.ndarray:
  """A Pillow image of any mode → RGB uint8 [H, W, 3]; transparency (an alpha channel, or a
  palette/grayscale image's transparent colour) composited onto `background`."""
  if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
    return composite_alpha(np.asarray(im.convert("RGBA")), background)
  return np.asarray(im.convert("RGB"))


def to_uint8(x: np.ndarray) -> np.ndarray:
  """uint8 pixels unchanged; float pixels in [0, 1] rounded to 8 bits."""
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x
  return np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def to_unit(x: np.ndarray) -> np.ndarray:
  """Pixels (uint8, or float in [0, 1]) as float32 in [0, 1]."""
  x = np.asarray(x)
  return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def resize_rgb(x_hwc: np.ndarray, h: int, w: int) -> np.ndarray:
  """Resizes RGB pixels [H, W, 3] to [h, w, 3] with Pillow's native antialiased bilinear filter
  on uint8 (float input in [0, 1] is rounded to 8 bits first; the result is uint8). An image
  already h×w is returned unchanged, float or not. About 4 ms for 794×1123 → 224² on one core,
  several times less than the earlier per-channel float path.
  """
  x = np.asarray(x_hwc)
  if x.shape[:2] == (h, w):
    return x
  from PIL import Image as PILImage
  im = PILImage.fromarray(np.ascontiguousarray(to_uint8(x)))  # [h, w, 3] uint8: RGB
  return np.asarray(im.resize((w, h), PILImage.BILINEAR))


def _check_pixels(x, where: str, rank: int, what: str) -> np.ndarray:
  """Pixels after rank/channel/dtype checks: uint8 stays uint8, float stays float32 in [0, 1];
  RGBA is composited onto white."""
  x = np.asarray(x)
  if x.ndim != rank:
    shape = "H×W×C" if rank == 3 else "T×H×W×C"
    raise InputError(f"{where}: {what} must have rank {rank} ({shape}), got shape {x.shape}. "
                     "Add a channel axis for grayscale (x[..., None].repeat(3, -1)).")
  if x.shape[-1] not in (3, 4):
    raise InputError(f"{where}: {what} must have 3 (RGB) or 4 (RGBA) channels, got "
                     f"{x.shape[-1]} in shape {x.shape}. Convert it, e.g. with gemb.load_image.")
  if x.dtype != np.uint8:
    if not np.issubdtype(x.dtype, np.floating):
      raise InputError(f"{where}: {what} dtype must be uint8 or float, got {x.dtype}. "
                       "Cast it, e.g. x.astype(np.uint8).")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
      raise InputError(f"{where}: {what} contains NaN or inf.")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
      raise InputError(f"{where}: float {what} must lie in [0, 1], got range "
                       f"[{x.min():.3g}, {x.max():.3g}]. Divide uint8 data by 255.")
  if x.shape[-1] == 4:  # RGBA: what a viewer shows (on white); for another background call
    x = composite_alpha(x)  # gemb.model.composite_alpha(x, background) before embedding
  return x


def check_image(im: Image, where: str) -> np.ndarray:
  """RGB pixels [H, W, 3], uint8 or float32 in [0, 1] (the tokenizer resizes and scales)."""
  x = _check_pixels(im.pixels, where, 3, "an image")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise InputError(f"{where}: the image is empty (shape {x.shape}).")
  return x


def _check_fps(fps, where: str) -> float:
  number = (int, float, np.integer, np.floating)
  if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, number):
    raise InputError(f"{where}: Video fps must be a number (frames per second), got "
                     f"{type(fps).__name__} {fps!r}; e.g. gemb.Video(frames, fps=4.0).")
  if not (np.isfinite(fps) and fps > 0):
    raise InputError(f"{where}: fps must be a positive number, got {fps}.")
  return float(fps)


def check_video(v: Video, where: str) -> np.ndarray:
  x = np.asarray(v.frames)
  if x.ndim == 4 and x.shape[0] == 0:
    raise InputError(f"{where}: zero-length video (no frames). Drop it or give at least one frame.")
  _check_fps(v.fps, where)
  x = _check_pixels(x, where, 4, "video frames")
  if x.shape[1] == 0 or x.shape[2] == 0:
    raise InputError(f"{where}: video frames are empty (shape {x.shape}).")
  if v.audio is not None and not isinstance(v.audio, Audio):
    raise InputError(f"{where}: Video.audio must be a gemb.Audio or None, got "
                     f"{type(v.audio).__name__}.")
  return x


MAX_AMPLITUDE = 1e6  # beyond this a waveform is not audio (and its power overflows float32)
MAX_CHANNELS = 8


def check_audio(a: Audio, where: str, sample_rates: Sequence[int]) -> np.ndarray:
  """Returns a float32 mono waveform. Rejects NaN/inf, |x| > 1e6, complex and unsupported rates.

  A 2-D waveform is [n, channels] or [channels, n]: the axis of length ≤ 8 is the channels axis
  (when exactly one axis is ≤ 8), and channels are averaged to mono; anything else is an error.
  """
  if isinstance(a.sample_rate, (bool, np.bool_)) or a.sample_rate not in sample_rates:
    raise InputError(f"{where}: unsupported sample rate {a.sample_rate!r} Hz; supported: "
                     f"{', '.join(map(str, sample_rates))}. Resample the audio first.")
  w = np.asarray(a.waveform)
  if np.iscomplexobj(w):
    raise InputError(f"{where}: audio is complex ({w.dtype}); a waveform is real. Pass its real "
                     "part (np.real(x)) or magnitude (np.abs(x)) if that is what you mean.")
  if w.ndim == 2:
    small = [ax for ax in (0, 1) if w.shape[ax] <= MAX_CHANNELS]
    if len(small) != 1:
      raise InputError(
          f"{where}: cannot tell channels from samples in audio of shape {w.shape}: give [n] "
          f"(mono), [n, channels] or [channels, n] with at most {MAX_CHANNELS} channels.")
    w = w.mean(axis=small[0])
  if w.ndim != 1:
    raise InputError(f"{where}: audio must be [n], [n, channels] or [channels, n], got shape "
                     f"{w.shape}.")
  if not np.issubdtype(w.dtype, np.number) or np.issubdtype(w.dtype, np.bool_):
    raise InputError(f"{where}: audio dtype must be numeric, got {w.dtype}.")
  if np.issubdtype(w.dtype, np.integer):  # PCM: scale to [-1, 1]
    w = w.astype(np.float32) / float(np.iinfo(w.dtype).max)
  if w.size == 0:
    raise InputError(f"{where}: empty audio (no samples).")
  w64 = w.astype(np.float64)
  if not np.all(np.isfinite(w64)):
    raise InputError(f"{where}: audio contains NaN or inf samples. Clean or drop them.")
  peak = float(np.max(np.abs(w64)))
  if peak > MAX_AMPLITUDE:
    raise InputError(f"{where}: audio amplitude {peak:.3g} is beyond ±{MAX_AMPLITUDE:g}; "
                     "waveforms are float in [-1, 1] (or integer PCM). Rescale it.")
  return w.astype(np.float32)


# -- truncation notes ------------------------------------------------------------------------------

class TruncationWarning(UserWarning):
  """An item was cut to fit the model (only with truncate=True); the message says how much."""


def fit_seconds(n: int, per_second: float, max_seconds: float, truncate: bool, where: str,
                what: str, unit: str) -> tuple[int, str | None]:
  """How many of `n` samples/frames (at `per_second`) fit in `max_seconds`, and a note saying
  what was cut (None when nothing was). Over the limit without `truncate`: an InputError."""
  keep = min(n, int(np.floor(max_seconds * per_second + 1e-9)) + (unit == "frames"))
  if keep >= n:
    return n, None
  secs = n / per_second
  if not truncate:
    raise InputError(
        f"{where}: {what} is {secs:.2f} s long but the model takes at most {max_seconds:g} s. "
        f"Cut it, or load the model with truncate=True (it then keeps the first {max_seconds:g} s "
        "with a warning).")
  return keep, (f"{what} kept {min(keep / per_second, max_seconds):.2f} of {secs:.2f} s "
                f"({keep} of {n} {unit})")


# -- loaders -------------------------------------------------------------------------------------

PathLike = Union[str, os.PathLike]
MAX_PIXELS = 64_000_000  # per image or frame; larger files are refused before decoding


def _open_image(path: PathLike, max_pixels: int | None):
  """Opens with Pillow; a file above `max_pixels` (or Pillow's own bomb limit) is an InputError."""
  from PIL import Image as PILImage
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
    try:
      im = PILImage.open(path)
    except PILImage.DecompressionBombError as e:
      raise InputError(f"{os.fspath(path)}: the image is too large to decode safely ({e}). "
                       "Downscale the file first.") from None
    except FileNotFoundError:
      raise InputError(f"{os.fspath(path)}: no such file.") from None
    except (PILImage.UnidentifiedImageError, OSError) as e:
      raise InputError(f"{os.fspath(path)}: not an image Pillow can read ({e}).") from None
  w, h = im.size
  if max_pixels is not None and w * h > max_pixels:
    im.close()
    raise InputError(f"{os.fspath(path)}: {w}×{h} = {w * h / 1e6:.1f} Mpx is above the limit of "
                     f"{max_pixels / 1e6:g} Mpx. Downscale the file, or pass max_pixels=... "
                     "(None for no limit) if you mean it.")
  return im


def load_image(path: PathLike, *, background=WHITE, max_pixels: int | None = MAX_PIXELS) -> Image:
  """Reads any image Pillow can open as RGB uint8; transparency is composited onto `background`
  (RGB in [0, 255], default white). Files above `max_pixels` raise InputError before decoding."""
  _background(background)
  with _open_image(path, max_pixels) as im:
    try:
      return Image(pil_to_rgb(im, background))
    except OSError as e:
      raise InputError(f"{os.fspath(path)}: the image could not be decoded ({e}).") from None


def load_audio(path: PathLike) -> Audio:
  """Reads WAV/FLAC/OGG (anything soundfile reads) as float32, mixed down to mono."""
  import soundfile
  w, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
  return Audio(w.mean(axis=1), int(sr))


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def load_video(path: PathLike | Sequence[PathLike], fps: float | None = None, *,
               background=WHITE, audio: bool = True, sample_rate: int = 16000,
               max_pixels: int | None = MAX_PIXELS) -> Video:
  """Reads a video file (MP4/MOV/MKV/WebM/AVI through the ffmpeg that `imageio-ffmpeg` ships),
  a GIF (or other multi-frame image), or an image sequence (a list of paths, or a folder of
  images sorted by name). Transparency is composited onto `background`.

  A video file's first audio stream becomes `Video.audio` (mono, `sample_rate` Hz; `audio=False`
  skips it), so the frames and their soundtrack embed as one item. Frames of an image sequence
  must share one size (an InputError names the first file that differs); `max_pixels` bounds
  each frame.
  """
  _background(background)
  if isinstance(path, (list, tuple)) or pathlib.Path(path).is_dir():
    paths = (sorted(p for p in pathlib.Path(path).iterdir() if p.is_file())
             if not isinstance(path, (list, tuple)) else [pathlib.Path(p) for p in path])
    if not paths:
      raise InputError(f"load_video({path!r}): no image files found.")
    frames = []
    for p in paths:
      frames.append(load_image(p, background=background, max_pixels=max_pixels).pixels)
      if frames[-1].shape != frames[0].shape:
        raise InputError(f"load_video: frame {p} is {frames[-1].shape[1]}×{frames[-1].shape[0]} "
                         f"but {paths[0]} is {frames[0].shape[1]}×{frames[0].shape[0]}; all "
                         "frames of a sequence must share one size. Resize them first.")
    return Video(np.stack(frames), fps or 1.0)
  p = pathlib.Path(path)
  if not p.is_file():
    raise InputError(f"load_video: {p}: no such file.")
  if p.suffix.lower() in VIDEO_SUFFIXES:
    return _load_video_file(p, fps, background, audio, sample_rate, max_pixels)
  from PIL import ImageSequence
  with _open_image(p, max_pixels) as im:
    try:  # Pillow composes each GIF/APNG frame onto the full canvas, so sizes agree
      frames = [pil_to_rgb(f, background) for f in ImageSequence.Iterator(im)]
    except OSError as e:
      raise InputError(f"{p}: the frames could not be decoded ({e}).") from None
    duration_ms = im.info.get("duration") or 100
  if len({f.shape for f in frames}) > 1:
    raise InputError(f"load_video: {p} has frames of different sizes "
                     f"{sorted({f.shape[:2] for f in frames})}; convert it to one canvas first.")
  return Video(np.stack(frames), fps or 1000.0 / float(duration_ms))


def _ffmpeg(p: pathlib.Path) -> str:
  try:
    import imageio_ffmpeg
  except ImportError:
    raise InputError(f"load_video({str(p)!r}): reading {p.suffix} needs the imageio-ffmpeg "
                     "package (a gemb dependency: `pip install imageio-ffmpeg`); GIFs and image "
                     "sequences need nothing extra.") from None
  return imageio_ffmpeg.get_ffmpeg_exe()


def _load_video_file(p: pathlib.Path, fps, background, audio: bool, sample_rate: int,
                     max_pixels) -> Video:
  import subprocess
  exe = _ffmpeg(p)
  import imageio_ffmpeg
  try:
    gen = imageio_ffmpeg.read_frames(str(p), pix_fmt="rgba", bpp=4)
    meta = next(gen)
    w, h = meta["size"]
    if max_pixels is not None and w * h > max_pixels:
      gen.close()
      raise InputError(f"{p}: frames of {w}×{h} are above the limit of {max_pixels / 1e6:g} Mpx.")
    raw = [np.frombuffer(b, np.uint8).reshape(h, w, 4) for b in gen]
  except (RuntimeError, OSError, StopIteration, KeyError) as e:
    raise InputError(f"{p}: not a video ffmpeg can read ({str(e).strip().splitlines()[-1:]}).") \
        from None
  if not raw:
    raise InputError(f"{p}: the video has no frames.")
  frames = composite_alpha(np.stack(raw), background)
  track = None
  if audio and meta.get("audio_codec"):
    cmd = [exe, "-v", "error", "-i", str(p), "-vn", "-ac", "1", "-ar", str(sample_rate),
           "-f", "f32le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
      raise InputError(f"{p}: its audio stream could not be decoded "
                       f"({out.stderr.decode(errors='replace').strip()[-300:]}).")
    wave = np.frombuffer(out.stdout, np.float32).copy()
    if wave.size:
      track = Audio(wave, sample_rate)
  return Video(frames, fps or float(meta.get("fps") or 1.0), track)


def load_pdf(path: PathLike, max_pages: int | None = 6, *, size: int = 1024,
             background=WHITE) -> Interleaved:
  """Renders a PDF's first `max_pages` pages (None: all) with pdfium, the longer side of each
  page at `size` px on `background`, as one `Interleaved` item of page `Image`s: a document that
  embeds through the image path (`enc.embed([gemb.load_pdf("paper.pdf")])`). Pages past
  `max_pages` are dropped with a warning. A broken or password-protected PDF is an InputError
  naming the file."""
  import warnings
  import pypdfium2 as pdfium
  if max_pages is not None and (not isinstance(max_pages, int) or max_pages < 1):
    raise InputError(f"load_pdf: max_pages must be a positive int or None, got {max_pages!r}.")
  bg = tuple(int(c) for c in _background(background))
  p = os.fspath(path)
  if not os.path.isfile(p):
    raise InputError(f"load_pdf: {p}: no such file.")
  try:
    doc = pdfium.PdfDocument(p)
  except pdfium.PdfiumError as e:
    hint = ("it is password-protected; decrypt it first (e.g. `qpdf --decrypt`)"
            if "password" in str(e).lower() else "it is not a readable PDF")
    raise InputError(f"load_pdf: {p}: {hint} (pdfium: {e}).") from None
  try:
    n = len(doc)
    if n == 0:
      raise InputError(f"load_pdf: {p}: the PDF has no pages.")
    keep = n if max_pages is None else min(n, max_pages)
    if keep < n:
      warnings.warn(TruncationWarning(f"load_pdf: {p}: kept the first {keep} of {n} pages "
                                      "(max_pages)."), stacklevel=2)
    pages = []
    for i in range(keep):
      page = doc[i]
      w, h = page.get_size()
      bitmap = page.render(scale=size / max(w, h, 1e-6), fill_color=bg + (255,), rev_byteorder=True)
      pages.append(Image(np.ascontiguousarray(bitmap.to_numpy()[..., :3])))
  except pdfium.PdfiumError as e:
    raise InputError(f"load_pdf: {p}: a page could not be rendered (pdfium: {e}).") from None
  finally:
    doc.close()
  return Interleaved(pages)
