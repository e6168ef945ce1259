"""Image and video tokenizers on a pretrained, frozen EfficientNet-Lite tower (LiT).

An image is resized to `image_size`² and run through the tower; its last feature map (7×7×1280 at
224 px for Lite0) becomes the item's tokens: one "patch" per cell whose features are the cell's
1280 channels (centred and scaled to norm 8 per token, `standardize`), at (0, row, col). The
backbone's `PatchEmbed` projects them to its width, exactly as it does the raw pixel patches of
`image_patches`, so images, video frames and text meet in the one transformer. `grid` below the map's size average-pools it (adaptive pooling, as torch's
AdaptiveAvgPool2d) to fewer tokens; video does this per frame, with the frame index as time.

The tower is frozen: it runs on the host, under `jax.jit`, in batches (`tokenize_batch`, which
`Encoder` calls with all images of a call), and its output is cached per distinct input (a hash of
its pixels): in memory (bounded, least recently used first out) and, with `cache_dir`, on disk.
Features are stored as float16 whether cached or not, so a cached and an uncached run are equal.
Memory: grid² × 1280 × 2 bytes per image, 125 KB at 7×7: 120 MiB per 1,000 images.

    "effnet_image(variant='lite0', image_size=224, grid=7)"
    "effnet_video(variant='lite0', frame_size=224, grid=2, max_frames=8)"
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import tempfile
import threading

import jax
import numpy as np
from flax import nnx

import gemb.registry
from gemb.errors import ConfigError
from gemb.model import efficientnet as E
from gemb.model.inputs import resize_rgb, to_unit
from gemb.model.tokenizers import (IMAGE, VIDEO, PartTokens, PatchTokenizer, _grid_pos,
                                   frame_times, video_pos)

_BATCH_LADDER = (1, 8, 32)  # tower batch sizes (each compiles once per image size)


@functools.lru_cache(maxsize=4)
def _tower(variant: str):
  """(graphdef, state, jitted features fn) of the pretrained tower, shared process-wide."""
  net = E.load_efficientnet_lite(variant)
  graphdef, state = nnx.split(net)

  @jax.jit
  def features(state, x_bhwc):
    return nnx.merge(graphdef, state).features(E.normalize(x_bhwc))

  return state, features


@functools.lru_cache(maxsize=4)
def classifier(variant: str) -> tuple[np.ndarray, np.ndarray]:
  """The tower's ImageNet classifier (kernel [1280, 1000], bias [1000]) as float32 numpy."""
  state, _ = _tower(variant)
  return (np.asarray(state["fc"]["kernel"][...], np.float32),
          np.asarray(state["fc"]["bias"][...], np.float32))


def class_probs(variant: str, cells_nc: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """softmax(classifier(cell) / temperature) of each cell's raw (pooled) features [n, 1000].

  The classifier is linear after global average pooling, so the cells' logits average to the
  image's logits: a cell's distribution is what ImageNet sees in that part of the picture.
  """
  w, b = classifier(variant)
  z = (cells_nc.astype(np.float32) @ w + b) / temperature
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def tower_features(variant: str, x_bhwc: np.ndarray) -> np.ndarray:
  """The tower's feature maps [B, h, w, C] of float32 images in [0, 1], in padded batches."""
  state, fn = _tower(variant)
  out, n, top = [], len(x_bhwc), _BATCH_LADDER[-1]
  pending = []
  for start in range(0, n, top):
    chunk = x_bhwc[start:start + top]
    rows = next(b for b in _BATCH_LADDER if b >= len(chunk))
    if rows > len(chunk):
      chunk = np.concatenate([chunk, np.zeros((rows - len(chunk),) + chunk.shape[1:],
                                              chunk.dtype)])
    pending.append((min(top, n - start), fn(state, chunk)))  # async: dispatch all, then collect
  for k, feat in pending:
    out.append(np.asarray(feat)[:k])
  return np.concatenate(out)


def adaptive_pool(feat_hwc: np.ndarray, grid: int) -> np.ndarray:
  """Average pooling to `grid`×`grid` cells; cell i spans [floor(i·h/g), ceil((i+1)·h/g))."""
  h, w, _ = feat_hwc.shape
  if (h, w) == (grid, grid):
    return feat_hwc
  rows = [(i * h // grid, -(-(i + 1) * h // grid)) for i in range(grid)]
  cols = [(j * w // grid, -(-(j + 1) * w // grid)) for j in range(grid)]
  return np.stack([np.stack([feat_hwc[r0:r1, c0:c1].mean(axis=(0, 1)) for c0, c1 in cols])
                   for r0, r1 in rows])


TOKEN_NORM = 8.0
N_CLASSES = 1000


def standardize(cells_nc: np.ndarray) -> np.ndarray:
  """Each token's features to zero mean and norm `TOKEN_NORM` over channels.

  The head's ReLU6 features are non-negative with a large shared offset; fed raw (norm ~40) to
  the patch projection at the recipe's learning rate, the image embeddings collapsed to one point
  within 20 steps (loss at chance, gradient norm 0.08). Norm 8 is that of a 192-value pixel patch
  in [-1, 1], the input `PatchEmbed`'s init and the recipes' learning rates were set for.
  """
  x = cells_nc - cells_nc.mean(-1, keepdims=True)
  return x * (TOKEN_NORM / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6))


class FeatureCache:
  """Bounded LRU of feature arrays by key, in memory; mirrored to `directory` when given."""

  def __init__(self, max_bytes: int, directory: str = ""):
    self.max_bytes, self.directory = max_bytes, directory
    self._items: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
    self.bytes = 0
    self.hits = self.misses = 0
    self._lock = threading.Lock()
    if directory:
      os.makedirs(directory, exist_ok=True)

  def _path(self, key: str) -> str:
    return os.path.join(self.directory, key + ".npy")

  def get(self, key: str) -> np.ndarray | None:
    with self._lock:
      if key in self._items:
        self._items.move_to_end(key)
        self.hits += 1
        return self._items[key]
    if self.directory and os.path.isfile(self._path(key)):
      arr = np.load(self._path(key))
      self._remember(key, arr)
      self.hits += 1
      return arr
    self.misses += 1
    return None

  def put(self, key: str, arr: np.ndarray) -> None:
    self._remember(key, arr)
    if self.directory and not os.path.isfile(self._path(key)):
      fd, tmp = tempfile.mkstemp(prefix=".feat.", suffix=".npy", dir=self.directory)
      try:
        with os.fdopen(fd, "wb") as f:
          np.save(f, arr)
        os.replace(tmp, self._path(key))
      except BaseException:
        if os.path.exists(tmp):
          os.remove(tmp)
        raise

  def _remember(self, key: str, arr: np.ndarray) -> None:
    if arr.nbytes > self.max_bytes:
      return
    with self._lock:
      if key in self._items:
        return
      self._items[key] = arr
      self.bytes += arr.nbytes
      while self.bytes > self.max_bytes:
        _, old = self._items.popitem(last=False)
        self.bytes -= old.nbytes

  def __len__(self) -> int:
    return len(self._items)


_CACHES: dict[tuple, FeatureCache] = {}


def _shared_cache(key: tuple, max_bytes: int, directory: str) -> FeatureCache:
  """One cache per (tower, size, grid, dir) in the process: encoders built again (before and
  after training, say) reuse the features."""
  cache = _CACHES.get(key)
  if cache is None or cache.max_bytes != max_bytes:
    cache = _CACHES[key] = FeatureCache(max_bytes, directory)
  return cache


class _TowerTokenizer(PatchTokenizer):
  """Shared machinery: resize, hash, look up, run the tower on the misses, pool, store."""

  def __init__(self, variant: str, size: int, grid: int, cache_mb: float, cache_dir: str,
               head: bool = False, temperature: float = 1.0):
    E.variant_of(variant)
    if not temperature > 0:
      raise ConfigError(f"{type(self).__name__}: temperature must be > 0, got {temperature}.")
    fmap = -(-size // 32)  # the tower downsamples by 32 with "SAME" padding
    if not 1 <= grid <= fmap:
      raise ConfigError(f"{type(self).__name__}: grid {grid} must be between 1 and the feature "
                        f"map's {fmap} cells at {size} px (pool down, never up).")
    if cache_mb < 0:
      raise ConfigError(f"cache_mb must be >= 0, got {cache_mb}.")
    self.variant, self.size, self.grid = variant, size, grid
    self.head, self.temperature = bool(head), float(temperature)
    # With the head: [1000 class probabilities, 1280 standardized features] per cell.
    self.patch_dim = N_CLASSES * self.head + 1280
    kind = f"head{self.temperature!r}" if self.head else "features"
    self.cache = _shared_cache((variant, size, grid, cache_dir, kind), int(cache_mb * 2 ** 20),
                               cache_dir)
    self._salt = f"{variant}/{size}/{grid}/{kind}/".encode()

  def bytes_per_image(self) -> int:
    return self.grid * self.grid * self.patch_dim * 2

  def _key(self, x_hwc: np.ndarray) -> str:
    x = np.ascontiguousarray(x_hwc)
    h = hashlib.blake2b(self._salt + str((x.shape, x.dtype.str)).encode(), digest_size=16)
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()

  def cells(self, images: list[np.ndarray]) -> list[np.ndarray]:
    """float16 [grid², C] features of each float32 [H, W, 3] image in [0, 1]."""
    keys = [self._key(x) for x in images]
    out: list[np.ndarray | None] = [self.cache.get(k) for k in keys]
    todo: dict[str, int] = {}
    for i, (k, v) in enumerate(zip(keys, out)):
      if v is None and k not in todo:
        todo[k] = i
    if todo:
      x = np.stack([to_unit(resize_rgb(images[i], self.size, self.size)) for i in todo.values()])
      feat = tower_features(self.variant, x.astype(np.float32))
      for (k, i), f in zip(todo.items(), feat):
        raw = adaptive_pool(f, self.grid).reshape(-1, f.shape[-1])
        cells = standardize(raw)
        if self.head:
          cells = np.concatenate([class_probs(self.variant, raw, self.temperature), cells], -1)
        cells = cells.astype(np.float16)
        self.cache.put(k, cells)
        out[i] = cells
      for i, k in enumerate(keys):
        if out[i] is None:
          out[i] = out[todo[k]]
    return out


@gemb.registry.tokenizers.register("effnet_image")
class EffNetImage(_TowerTokenizer):
  """Image → grid² tokens of a frozen, ImageNet-pretrained EfficientNet-Lite's feature map."""
  modality = IMAGE

  def __init__(self, variant: str = "lite0", image_size: int = 224, grid: int = 7,
               cache_mb: float = 512, cache_dir: str = "", head: bool = False,
               temperature: float = 1.0):
    super().__init__(variant, image_size, grid, cache_mb, cache_dir, head, temperature)
    self.max_pos = grid

  def __call__(self, x_hwc: np.ndarray) -> PartTokens:
    return self.tokenize_batch([x_hwc])[0]

  def tokenize_batch(self, images: list[np.ndarray]) -> list[PartTokens]:
    pos = _grid_pos(1, self.grid, self.grid)
    return [PartTokens(IMAGE, patches_np=c.astype(np.float32), pos_n3=pos)
            for c in self.cells(images)]


@gemb.registry.tokenizers.register("effnet_video")
class EffNetVideo(_TowerTokenizer):
  """Video → per sampled frame grid² tower tokens at (t, row, col), t in seconds / `time_step`
  (frames sampled as `video_frames` samples them, so the frame rate is part of the tokens)."""
  modality = VIDEO

  def __init__(self, variant: str = "lite0", frame_size: int = 224, grid: int = 2,
               max_frames: int = 8, time_step: float = 0.25, max_seconds: float = 30.0,
               cache_mb: float = 512, cache_dir: str = "", head: bool = False,
               temperature: float = 1.0):
    super().__init__(variant, frame_size, grid, cache_mb, cache_dir, head, temperature)
    if not (time_step > 0 and max_seconds > 0 and max_frames >= 1):
      raise ConfigError(f"effnet_video: need time_step > 0, max_seconds > 0 and max_frames >= 1, "
                        f"got {time_step}, {max_seconds}, {max_frames}.")
    self.max_frames = max_frames
    self.time_step, self.max_seconds = float(time_step), float(max_seconds)
    self.max_t = int(round(max_seconds / time_step))
    self.max_pos = max(grid, self.max_t + 1)

  def warm(self, videos: list) -> None:
    """Runs the tower once over the sampled frames of every clip in `videos` (gemb.Video parts)
    and caches them, so the per-clip calls that follow are cache hits. Clips that fail their
    checks are skipped here; the encoder's own checks name them."""
    frames = []
    for v in videos:
      try:
        x = np.asarray(v.frames)
        idx, _ = frame_times(x.shape[0], float(v.fps), self.max_seconds, self.max_frames)
        if x.ndim == 4 and x.shape[-1] == 3:
          frames += [x[i] for i in idx]
      except (TypeError, ValueError, AttributeError, IndexError):
        continue
    if frames:
      self.cells(frames)

  def __call__(self, x_thwc: np.ndarray, fps: float = 1.0) -> PartTokens:
    idx, times = frame_times(x_thwc.shape[0], fps, self.max_seconds, self.max_frames)
    cells = self.cells([x_thwc[i] for i in idx])  # one tower batch over the clip's frames
    return PartTokens(VIDEO, patches_np=np.concatenate(cells).astype(np.float32),
                      pos_n3=video_pos(times, self.grid, self.time_step, self.max_t))
