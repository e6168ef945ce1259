"""`Encoder`: items in, L2-normalised embeddings out; `load` builds one from a preset or a folder.

Items are validated and tokenized on the host. `embed` packs several short items into one row
(block-diagonal attention, per-item positions and pooling, so each item is embedded exactly as
if alone) in rows of a few bucketed lengths; row counts are powers of two. So a bounded number
of programs compile (each once) and almost no compute goes to padding, which is where the
speed over per-batch padding comes from. `prepare` gives the plain one-item-per-row batch that
training uses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gemb.registry
from gemb.errors import ConfigError, InputError
from gemb.model import inputs as I
from gemb.model.backbone import (EmbeddingModel, ModelConfig, check_dim, matryoshka,
                                 patch_specs_of)
from gemb.model.tokenizers import TEXT, PartTokens

CONFIG_FILE, WEIGHTS_FILE = "gemb_model.json", "model.safetensors"


def task_prompt(task: str) -> str:
  return f"task: {task} | query: "


def _bucket(n: int, buckets: Sequence[int]) -> int:
  for b in buckets:
    if b >= n:
      return b
  return n


_ROW_LADDER = tuple(2 ** k for k in range(12))  # rows per forward pass
_SHARED_ROW = 64  # tokens per row that short items share (see Encoder._row_length)


def _pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass
class _Packed:
  """One item's tokens, [CLS] and [SEP] included."""
  parts: list[PartTokens]
  length: int
  n_patches: int


class Encoder:
  """Embeds text, images, audio, video and interleaved items with one model.

  `model` is the `nnx.Module` (`model(batch, dim=None) -> emb_bd`), which a trainer may update
  in place; `embed` always uses its current parameters.
  """

  def __init__(self, config: ModelConfig, model: EmbeddingModel | None = None, *, seed: int = 0,
               name: str = ""):
    self.config = config
    self.name = name
    reg = gemb.registry.tokenizers
    self.text_tokenizer = reg.build(config.text_tokenizer)
    self.image_tokenizer = reg.build(config.image_tokenizer)
    self.audio_tokenizer = reg.build(config.audio_tokenizer)
    self.video_tokenizer = reg.build(config.video_tokenizer)
    if self.text_tokenizer.vocab_size > config.vocab_size:
      raise ConfigError(f"Text tokenizer {config.text_tokenizer!r} has {self.text_tokenizer.vocab_size}"
                        f" ids but the model's vocab_size is {config.vocab_size}.")
    if config.max_len > config.max_positions:
      raise ConfigError(f"max_len {config.max_len} exceeds max_positions {config.max_positions}.")
    self._patch_toks = (self.image_tokenizer, self.audio_tokenizer, self.video_tokenizer)
    self.patch_dim = max(t.patch_dim for t in self._patch_toks)
    if model is None:
      with nnx.use_eager_sharding(False):  # logical names as metadata; the trainer shards
        model = EmbeddingModel(config, patch_specs_of(self._patch_toks), rngs=nnx.Rngs(seed))
    self.model = model
    self._forward_cache: dict = {}
    self.compiled_shapes: set[tuple] = set()

  # -- tokenizing and packing ------------------------------------------------------------------

  def _tokenize(self, items: Sequence[Any], task: str | None) -> list[_Packed]:
    if isinstance(items, (str, I.Text, I.Image, I.Audio, I.Video, I.Interleaved)):
      raise InputError("embed/prepare take a list of items; wrap a single item in a list.")
    if task is not None and (not isinstance(task, str) or not task.strip()):
      raise InputError(f"task must be a non-empty string or None, got {task!r}.")
    parts_per_item = [list(I.as_parts(item, i)) for i, item in enumerate(items)]
    # Tokenizers with `tokenize_batch` (a pretrained tower) get all their inputs in one call.
    batched: dict[int, tuple[Any, list, list]] = {}
    texts: list[str] = []
    slots: list[tuple[int, int]] = []
    tokens: list[list[PartTokens | None]] = []
    for i, parts in enumerate(parts_per_item):
      where = lambda j: f"Item {i}" if len(parts) == 1 else f"Item {i}, part {j}"
      row: list[PartTokens | None] = []
      for j, p in enumerate(parts):
        if isinstance(p, I.Text):
          text = I.check_text(p, where(j))
          if task is not None and j == 0:
            text = task_prompt(task) + text
          slots.append((i, j))
          texts.append(text)
          row.append(None)
        elif isinstance(p, I.Image):
          row.append(self._media(self.image_tokenizer, I.check_image(p, where(j)), (i, j), batched))
        elif isinstance(p, I.Audio):
          wave = I.check_audio(p, where(j), self.audio_tokenizer.sample_rates)
          row.append(self.audio_tokenizer(wave, p.sample_rate))
        else:
          row.append(self._media(self.video_tokenizer, I.check_video(p, where(j)), (i, j), batched))
      if task is not None and not isinstance(parts[0], I.Text):
        slots.append((i, -1))
        texts.append(task_prompt(task).rstrip())
      tokens.append(row)
    for tok, inputs, where_ in batched.values():
      for (i, j), part in zip(where_, tok.tokenize_batch(inputs)):
        tokens[i][j] = part
    for (i, j), ids in zip(slots, self.text_tokenizer.encode_batch(texts) if texts else []):
      part = PartTokens(TEXT, ids_n=ids)
      if j < 0:
        tokens[i].insert(0, part)
      else:
        tokens[i][j] = part
    return [self._fit(i, row) for i, row in enumerate(tokens)]

  @staticmethod
  def _media(tok, x, slot: tuple[int, int], batched: dict) -> PartTokens | None:
    """`tok(x)`, or None with `x` queued for one `tok.tokenize_batch` call over the items."""
    if not hasattr(tok, "tokenize_batch"):
      return tok(x)
    batched.setdefault(id(tok), (tok, [], []))
    batched[id(tok)][1].append(x)
    batched[id(tok)][2].append(slot)
    return None

  def _fit(self, index: int, parts: list[PartTokens]) -> _Packed:
    """Checks an item's length against max_len; truncates from the end when configured."""
    budget = self.config.max_len - 2
    n = sum(len(p) for p in parts)
    if n > budget:
      if not self.config.truncate:
        raise InputError(
            f"Item {index} has {n + 2} tokens but the model allows {self.config.max_len}. Shorten "
            "it (fewer frames, shorter audio or text), or load the model with truncate=True, e.g. "
            f"gemb.model.load('{self.name or 'PRESET'}(truncate=True)').")
      if not all(p.modality == TEXT for p in parts):  # text-only truncation is routine (as ST)
        # One message per model size, so Python shows it once rather than once per item.
        warnings.warn(f"Non-text items longer than max_len={self.config.max_len} tokens are "
                      "truncated (long videos lose their last frames); load the model with a "
                      "larger max_len to keep them whole.", stacklevel=4)
      kept, left = [], budget
      for p in parts:
        if left <= 0:
          break
        kept.append(p.truncated(left))
        left -= len(kept[-1])
      parts, n = kept, budget
    n_patches = sum(len(p) for p in parts if p.modality != TEXT)
    return _Packed(parts, n + 2, n_patches)

  def _pack(self, rows: Sequence[Sequence[_Packed]], length: int, n_patch: int, n_rows: int,
            segments: bool = False) -> dict:
    """Lays items out in `n_rows` rows of `length` tokens; several per row when `segments`."""
    tt = self.text_tokenizer
    b = n_rows
    ids = np.full((b, length), tt.pad_id, np.int32)
    mod = np.zeros((b, length), np.int32)
    pos = np.zeros((b, length), np.int32)
    seg = np.zeros((b, length), np.int32)
    pidx = np.zeros((b, length), np.int32)
    patches = np.zeros((b, n_patch, self.patch_dim), np.float32)
    pmod = np.zeros((b, n_patch), np.int32)
    ppos = np.zeros((b, n_patch, 3), np.int32)
    for r, row in enumerate(rows):
      t, q = 0, 0
      for s_id, item in enumerate(row, 1):
        start = t
        ids[r, t], mod[r, t] = tt.cls_id, TEXT
        t += 1
        for p in item.parts:
          n = len(p)
          mod[r, t:t + n] = p.modality
          if p.modality == TEXT:
            ids[r, t:t + n] = p.ids_n
          else:
            patches[r, q:q + n, : p.patches_np.shape[1]] = p.patches_np
            pmod[r, q:q + n] = p.modality
            ppos[r, q:q + n] = p.pos_n3
            pidx[r, t:t + n] = np.arange(q, q + n)
            q += n
          t += n
        ids[r, t], mod[r, t] = tt.sep_id, TEXT
        t += 1
        pos[r, start:t] = np.arange(t - start)
        seg[r, start:t] = s_id
    batch = {"token_ids": ids, "modality": mod, "positions": pos, "mask": seg > 0,
             "patch_index": pidx, "patches": patches, "patch_modality": pmod, "patch_pos": ppos}
    if segments:
      batch["segment_ids"] = seg
    return batch

  def _shape_for(self, packed: Sequence[_Packed]) -> tuple[int, int]:
    buckets = tuple(b for b in self.config.length_buckets if b < self.config.max_len)
    length = _bucket(max(p.length for p in packed), buckets + (self.config.max_len,))
    n_patch = max(p.n_patches for p in packed)
    return length, (_pow2(n_patch) if n_patch else 0)

  def prepare(self, items: Sequence[Any], task: str | None = None, *, length: int | None = None,
              num_patches: int | None = None, batch_size: int | None = None) -> dict:
    """Packs `items` into one fixed-shape batch (a dict of numpy arrays) for `model(batch)`.

    Shapes default to the smallest length bucket / power-of-two patch count that fits; pass
    `length`, `num_patches` and `batch_size` to fix them (e.g. for one compiled train step).
    Keys (B rows, L tokens, P patch slots, K = the largest tokenizer patch size):

    - ``token_ids``  int32 [B, L]: text token ids ([CLS] first, [SEP] last; pad id elsewhere)
    - ``modality``   int32 [B, L]: 0 pad, 1 text, 2 image, 3 audio, 4 video
    - ``positions``  int32 [B, L]: sequence position of each token (0 at [CLS])
    - ``mask``       bool  [B, L]: True for real tokens (attention and mean pooling)
    - ``patch_index`` int32 [B, L]: for patch tokens, their slot in ``patches`` (else 0)
    - ``patches``    float32 [B, P, K]: flattened patches, zero-padded to K features
    - ``patch_modality`` int32 [B, P]: modality of each patch slot (0 for empty slots)
    - ``patch_pos``  int32 [B, P, 3]: (time, row, col) of each patch
    Rows past ``len(items)`` are padding (mask all False); drop their embeddings.
    """
    packed = self._tokenize(items, task)
    if not packed:
      raise InputError("prepare() got no items.")
    auto_len, auto_p = self._shape_for(packed)
    length = length or auto_len
    num_patches = auto_p if num_patches is None else num_patches
    longest = max(p.length for p in packed)
    if longest > length or max(p.n_patches for p in packed) > num_patches:
      raise InputError(f"prepare(length={length}, num_patches={num_patches}): the longest item "
                       f"needs length {longest} and {max(p.n_patches for p in packed)} patches.")
    rows = batch_size or len(packed)
    if rows < len(packed):
      raise InputError(f"prepare(batch_size={rows}) got {len(packed)} items.")
    return self._pack([[p] for p in packed], length, num_patches, rows)

  def pad_batch(self, batch: dict, length: int, num_patches: int) -> dict:
    """`batch` (from `prepare`) padded to `length` tokens and `num_patches` patch slots, as
    `prepare` would have laid it out; for callers that agree on a shape after packing (several
    processes packing their own rows), without tokenizing again."""
    have_l, have_p = batch["token_ids"].shape[1], batch["patches"].shape[1]
    if length < have_l or num_patches < have_p:
      raise InputError(f"pad_batch: cannot shrink a batch of {have_l} tokens and {have_p} patch "
                       f"slots to {length} and {num_patches}.")
    fill = {"token_ids": self.text_tokenizer.pad_id}
    out = {}
    for k, v in batch.items():
      grow = (num_patches - have_p) if k in ("patches", "patch_modality", "patch_pos") else (
          length - have_l)
      widths = [(0, 0), (0, grow)] + [(0, 0)] * (v.ndim - 2)
      out[k] = np.pad(v, widths, constant_values=fill.get(k, 0))
    return out

  # -- embedding -------------------------------------------------------------------------------

  def _forward(self, graphdef, dim: int):
    if self._forward_cache.get("graphdef") != graphdef:  # model replaced: old programs are stale
      self._forward_cache = {"graphdef": graphdef}
    if dim not in self._forward_cache:
      def fwd(state, batch, num_segments):
        model = nnx.merge(graphdef, state)
        return matryoshka(model.encode_packed(batch, num_segments), dim)
      self._forward_cache[dim] = jax.jit(fwd, static_argnums=2)
    return self._forward_cache[dim]

  def _plan(self, packed: Sequence[_Packed], subset: Sequence[int], cap: int,
            batch_size: int) -> list[list[list[int]]]:
    """Packs items into rows of `cap` tokens (best-fit decreasing), rows into forward passes.

    A group of rows is cut into power-of-two pieces rather than padded, so the only shapes
    that vary for one row length are the row count and the patch slots (powers of two).
    """
    order = sorted(subset, key=lambda i: (-packed[i].length, i))
    rows: list[list[int]] = []
    by_free: list[list[int]] = [[] for _ in range(cap + 1)]  # free tokens -> open rows
    free: list[int] = []
    for i in order:  # best fit: the open row with the least room that still fits
      n = packed[i].length
      r = next((by_free[c].pop() for c in range(n, cap + 1) if by_free[c]), None)
      if r is None:
        r = len(rows)
        rows.append([])
        free.append(cap)
      rows[r].append(i)
      free[r] -= n
      if len(rows[r]) < min(batch_size, cap // 3):
        by_free[free[r]].append(r)
    groups, cur, count = [], [], 0
    for row in rows:
      if cur and count + len(row) > batch_size:
        groups.append(cur)
        cur, count = [], 0
      cur.append(row)
      count += len(row)
    if cur:
      groups.append(cur)
    out = []
    for g in groups:  # cut each group to a rung of the ladder; the rest starts the next group
      while g:
        k = max(r for r in _ROW_LADDER if r <= len(g))
        out.append(g[:k])
        g = g[k:]
    return out

  def _row_length(self, length: int) -> int:
    """Items up to 64 tokens share rows of 64; longer ones get a row of their bucket.

    Attention (and its softmax) costs row length² per row, so rows no longer than needed to
    pack short items well: on MiniLM with a realistic mix of lengths, rows of 64 spent 15%
    less CPU time than rows of 128 (rows of 48 to 96 were alike).
    """
    cfg = self.config
    buckets = tuple(b for b in cfg.length_buckets if b < cfg.max_len) + (cfg.max_len,)
    return _bucket(max(length, min(_SHARED_ROW, cfg.max_len)), buckets)

  def embed(self, items: Sequence[Any], task: str | None = None, dim: int | None = None,
            batch_size: int = 64) -> np.ndarray:
    """Embeds `items` (any mix of modalities) → float32 [n, dim], rows L2-normalised.

    `task` (e.g. "search result") marks queries: their text gets ``task: {task} | query: ``
    prepended. Documents use task=None. `dim` picks a Matryoshka size (default: full).
    `batch_size` bounds the items per forward pass; short items share rows (each attends
    only to itself), so the result is the same as embedding each item alone.
    """
    dim = check_dim(dim, self.config)
    if not isinstance(batch_size, int) or batch_size < 1:
      raise InputError(f"batch_size must be a positive int, got {batch_size!r}.")
    packed = self._tokenize(items, task)
    out = np.zeros((len(packed), dim), np.float32)
    if not packed:
      return out
    graphdef, state = nnx.split(self.model)
    fwd = self._forward(graphdef, dim)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(packed):
      by_length.setdefault(self._row_length(p.length), []).append(i)
    plan = [(length, rows) for length, subset in sorted(by_length.items())
            for rows in self._plan(packed, subset, length, batch_size)]
    pending = []
    for length, rows in plan:
      n_seg = min(batch_size, length // 3)  # fixed: every item has ≥ 3 tokens ([CLS] x [SEP])
      n_patch = max(sum(packed[i].n_patches for i in r) for r in rows)
      n_patch = _pow2(n_patch) if n_patch else 0
      batch = self._pack([[packed[i] for i in r] for r in rows], length, n_patch, len(rows),
                         segments=True)
      self.compiled_shapes.add((len(rows), length, n_patch, n_seg, dim))
      pending.append((rows, fwd(state, batch, n_seg)))  # async: pack the next one meanwhile
    for rows, emb in pending:
      emb_rsd = np.asarray(emb)
      for r, row in enumerate(rows):
        out[row] = emb_rsd[r, : len(row)]
    return out

  # -- saving ----------------------------------------------------------------------------------

  def save(self, directory: str) -> None:
    """Writes config + weights to `directory` (each file atomically; config last)."""
    from safetensors.numpy import save_file
    os.makedirs(directory, exist_ok=True)
    flat = {"/".join(map(str, k)): np.asarray(v.get_value())
            for k, v in nnx.to_flat_state(nnx.state(self.model, nnx.Param))}
    _atomic(directory, WEIGHTS_FILE, lambda p: save_file(flat, p))
    meta = {"format": "gemb-model-1", "name": self.name,
            "config": dataclasses.asdict(self.config)}
    _atomic(directory, CONFIG_FILE,
            lambda p: open(p, "w").write(json.dumps(meta, indent=2)))


def _atomic(directory: str, name: str, write) -> None:
  fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
  os.close(fd)
  try:
    write(tmp)
    os.replace(tmp, os.path.join(directory, name))
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def load(preset_or_dir: str, *, seed: int = 0) -> Encoder:
  """`gemb.model.load("minilm-l6")`, `load("tiny(max_len=64)")` or `load("path/to/saved")`."""
  if not isinstance(preset_or_dir, (str, os.PathLike)):
    raise ConfigError(f"load() takes a preset name or a folder, got {type(preset_or_dir).__name__}.")
  path = os.fspath(preset_or_dir)
  if os.path.isdir(path):
    return _load_dir(path, seed)
  if os.sep in path and "(" not in path:
    raise ConfigError(f"{path!r} is not a folder (nor a preset name); known presets: "
                      f"{', '.join(gemb.registry.presets.names())}.")
  preset = gemb.registry.presets.build(path)
  enc = Encoder(preset.config, seed=seed, name=path)
  if preset.init_weights is not None:
    preset.init_weights(enc.model)
  return enc


def _load_dir(path: str, seed: int) -> Encoder:
  from safetensors.numpy import load_file
  cfg_path = os.path.join(path, CONFIG_FILE)
  if not os.path.isfile(cfg_path):
    raise ConfigError(f"{path} is not a saved gemb model: it has no {CONFIG_FILE} "
                      "(write one with Encoder.save).")
  meta = json.load(open(cfg_path))
  fields = {f.name for f in dataclasses.fields(ModelConfig)}
  cfg = ModelConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                       for k, v in meta["config"].items() if k in fields})
  enc = Encoder(cfg, seed=seed, name=meta.get("name", ""))
  weights = load_file(os.path.join(path, WEIGHTS_FILE))
  params = dict(nnx.to_flat_state(nnx.state(enc.model, nnx.Param)))
  missing = sorted("/".join(map(str, k)) for k in params if "/".join(map(str, k)) not in weights)
  if missing:
    raise ConfigError(f"{path}/{WEIGHTS_FILE} lacks {missing[:5]}{'...' if len(missing) > 5 else ''}.")
  for k, var in params.items():
    value = weights["/".join(map(str, k))]
    if tuple(value.shape) != tuple(var.shape):
      raise ConfigError(f"{path}: tensor {'/'.join(map(str, k))} has shape {value.shape}, "
                        f"expected {tuple(var.shape)}.")
    var.set_value(jnp.asarray(value))
  return enc
