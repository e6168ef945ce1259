"""`Encoder`: items in, L2-normalised embeddings out; `load` builds one from a preset or a folder.

Items are validated and tokenized on the host. `embed` packs several short items into one row
(block-diagonal attention, per-item positions and pooling, so each item is embedded exactly as
if alone) in rows of a few bucketed lengths; row counts are powers of two. So a bounded number
of programs compile (each once) and almost no compute goes to padding, which is where the
speed over per-batch padding comes from. `prepare` gives the plain one-item-per-row batch that
training uses.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gemb.registry
from gemb.errors import ConfigError, InputError
from gemb.io import atomic_write
from gemb.model import inputs as I
from gemb.model.backbone import (EmbeddingModel, ModelConfig, check_dim, matryoshka,
                                 patch_specs_of)
from gemb.model import packing, user_items
from gemb.model.packing import Packed
from gemb.model.tokenizers import MODALITY_NAMES, TEXT, PartTokens, interleave_by_time

from gemb.model_folder import CONFIG_FILE, FORMAT, TOKENIZER_FILE, WEIGHTS_FILE  # noqa: E402


def task_prompt(task: str) -> str:
  """The query prompt of `task` (Gemini Embedding's format); the one place it is built."""
  return f"task: {task} | query: "


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
    # The tasks it was trained with, {task: prompt} (None: unknown, e.g. a preset); training sets
    # it, `save` writes it under "prompts", `embed` warns once on a task outside it.
    self.prompts: dict[str, str] | None = None
    self._prompt_tokens: dict[str, int] = {}  # task -> its prompt's token count
    self._warned_tasks: set[str] = set()
    self._forward_cache: dict = {}
    self.compiled_shapes: set[tuple] = set()

  # -- tokenizing and packing ------------------------------------------------------------------

  def tokenize(self, items: Sequence[Any], task: str | None = None) -> list[Packed]:
    """`items` validated and tokenized as `embed` does it (task prompt included): one `Packed` per
    item, its token length counting [CLS] and [SEP]."""
    return self._tokenize(items, task)

  def plan(self, lengths: Sequence[int], batch_size: int) -> list[tuple[int, list[list[int]]]]:
    """The forward passes `embed` runs for items of these token lengths (`gemb.model.packing`)."""
    return packing.plan(lengths, max_len=self.config.max_len,
                        length_buckets=self.config.length_buckets, batch_size=batch_size)

  def _tokenize(self, items: Sequence[Any], task: str | None | Sequence[str | None]
                ) -> list[Packed]:
    if isinstance(items, (str, I.Text, I.Image, I.Audio, I.Video, I.Interleaved)):
      raise InputError("embed/prepare take a list of items; wrap a single item in a list.")
    if items is None or isinstance(items, (bytes, dict)) or not hasattr(items, "__iter__"):
      raise InputError(f"embed/prepare take a list of items, got {type(items).__name__}; e.g. "
                       "enc.embed(['a text', gemb.Image(pixels)]).")
    items = list(items)
    # One task for all items, or one per item (training drops the prompt per example).
    tasks = list(task) if isinstance(task, (list, tuple)) else [task] * len(items)
    if len(tasks) != len(items):
      raise InputError(f"{len(tasks)} tasks for {len(items)} items; give one task or one each.")
    for t in tasks:
      if t is not None and (not isinstance(t, str) or not t.strip()):
        raise InputError(f"task must be a non-empty string or None, got {t!r}.")
    for t in set(tasks) - {None}:
      self._check_prompt(t)
    notes: list[str] = []  # what truncation cut, warned once per call
    parts_per_item = [list(I.as_parts(item, i)) for i, item in enumerate(items)]
    # Tokenizers with `tokenize_batch` (a pretrained tower) get all their inputs in one call.
    batched: dict[int, tuple[Any, list, list]] = {}
    texts: list[str] = []
    slots: list[tuple[int, int]] = []
    tokens: list[list[PartTokens | None]] = []
    warm = getattr(self.video_tokenizer, "warm", None)
    if warm is not None:  # a tower: one batched pass over every clip's frames, then cache hits
      warm([p for parts in parts_per_item for p in parts if isinstance(p, I.Video)])
    for i, (parts, task) in enumerate(zip(parts_per_item, tasks)):
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
          row.append(self._audio_tokens(p, where(j), None, notes))
        else:
          row.append(self._video_tokens(p, where(j), notes))
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
    flat = [[q for p in row for q in (p if isinstance(p, list) else [p])] for row in tokens]
    packed = [self._fit(i, row, notes) for i, row in enumerate(flat)]
    if notes:
      more = f"; and {len(notes) - 8} more" if len(notes) > 8 else ""
      warnings.warn(I.TruncationWarning(
          f"Truncated to fit the model (max_len={self.config.max_len} tokens, truncate=True): "
          f"{'; '.join(notes[:8])}{more}. Load the model with a larger max_len (or "
          "shorten the inputs) to keep them whole."), stacklevel=3)
    return packed

  def _check_prompt(self, task: str) -> None:
    """A task prompt that leaves the query less than a quarter of max_len is an error, not a cut."""
    n = self._prompt_tokens.get(task)
    if n is None:  # tokenized once per task
      n = self._prompt_tokens[task] = len(self.text_tokenizer.encode_batch([task_prompt(task)])[0])
    budget = self.config.max_len - 2
    if n > budget - budget // 4:
      raise InputError(
          f"The task prompt for task={task[:40]!r}{'...' if len(task) > 40 else ''} takes {n} of "
          f"the model's {budget} tokens per item, which would cut the query away; task names "
          f"must leave at least a quarter (here at most {budget - budget // 4} tokens). Use a "
          "short task name such as 'search result'.")

  def _audio_tokens(self, a: I.Audio, where: str, max_seconds: float | None,
                    notes: list[str]) -> PartTokens:
    """An audio part's tokens; audio past the tokenizer's `max_seconds` (or `max_seconds`) is
    cut with a note when truncating, else an InputError."""
    tok = self.audio_tokenizer
    wave = I.check_audio(a, where, tok.sample_rates)
    limit = tok.max_seconds if max_seconds is None else min(tok.max_seconds, max_seconds)
    keep, note = I.fit_seconds(len(wave), a.sample_rate, limit, self.config.truncate, where,
                               "audio", "samples")
    if note:
      notes.append(f"{where}: {note}")
    return tok(wave[:keep], a.sample_rate)

  def _video_tokens(self, v: I.Video, where: str, notes: list[str]):
    """A video's tokens; with a soundtrack, frames and audio interleaved in time order."""
    tok = self.video_tokenizer
    frames = I.check_video(v, where)
    keep, note = I.fit_seconds(len(frames), float(v.fps), tok.max_seconds, self.config.truncate,
                               where, "video", "frames")
    if note:
      notes.append(f"{where}: {note}")
    vt = tok(frames[:keep], float(v.fps))
    if v.audio is None:
      return vt
    span = tok.max_seconds if note is None else keep / float(v.fps)  # the frames kept
    at = self._audio_tokens(v.audio, f"{where} (soundtrack)", span, notes)
    return interleave_by_time([(vt, tok.time_step), (at, self.audio_tokenizer.time_step)])

  @staticmethod
  def _media(tok, x, slot: tuple[int, int], batched: dict) -> PartTokens | None:
    """`tok(x)`, or None with `x` queued for one `tok.tokenize_batch` call over the items."""
    if not hasattr(tok, "tokenize_batch"):
      return tok(x)
    batched.setdefault(id(tok), (tok, [], []))
    batched[id(tok)][1].append(x)
    batched[id(tok)][2].append(slot)
    return None

  def _fit(self, index: int, parts: list[PartTokens], notes: list[str] | None = None) -> Packed:
    """Checks an item's length against max_len; truncates from the end when configured."""
    budget = self.config.max_len - 2
    n = sum(len(p) for p in parts)
    if n > budget:
      if not self.config.truncate:
        raise InputError(
            f"Item {index} has {n + 2} tokens but the model allows {self.config.max_len}. Shorten "
            "it (fewer frames, shorter audio or text), or load the model with truncate=True, e.g. "
            f"gemb.model.load('{self.name or 'PRESET'}(truncate=True)').")
      if notes is not None:
        names = sorted({MODALITY_NAMES[p.modality] for p in parts})
        notes.append(f"Item {index} ({'+'.join(names)}) kept {budget + 2} of {n + 2} tokens")
      kept, left = [], budget
      for p in parts:
        if left <= 0:
          break
        kept.append(p.truncated(left))
        left -= len(kept[-1])
      parts, n = kept, budget
    n_patches = sum(len(p) for p in parts if p.modality != TEXT)
    return Packed(parts, n + 2, n_patches)

  def _pack(self, rows: Sequence[Sequence[Packed]], length: int, n_patch: int, n_rows: int,
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

  def _shape_for(self, packed: Sequence[Packed]) -> tuple[int, int]:
    buckets = tuple(b for b in self.config.length_buckets if b < self.config.max_len)
    length = packing.bucket(max(p.length for p in packed), buckets + (self.config.max_len,))
    n_patch = max(p.n_patches for p in packed)
    return length, (packing.pow2(n_patch) if n_patch else 0)

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

  def prepare_packed(self, groups: Sequence[tuple[Sequence[Any], str | None]], *,
                     max_length: int | None = None, row_multiple: int = 1) -> dict:
    """Packs every item of `groups` ([(items, task), ...]) into shared rows, for training.

    As `embed` does: several items per row (best-fit decreasing), each with its own positions
    and attending only to itself (``segment_ids``), so a batch costs its real tokens rather than
    items × longest. The model returns one embedding per item, in order (group after group).
    Rows are ``max(64, the longest item's bucket)`` tokens (at most `max_length`); the row
    count is rounded up to a ladder of steps ≤ 1/8 (multiples of `row_multiple`: the devices
    that split the batch), so a training run compiles a few shapes, once each.
    Keys: those of `prepare` plus ``segment_ids`` [R, L] (1.. per item in a row, 0 padding),
    ``item_index`` int32 [R, L] (the item of each token; `packing.ITEM_PAD` for padding) and
    ``item_tokens`` int32 [N] (tokens per item, [CLS] and [SEP] included).
    """
    packed: list[Packed] = []
    for items, task in groups:
      packed += self._tokenize(items, task)
    if not packed:
      raise InputError("prepare_packed() got no items.")
    cfg = self.config
    cap = max_length or cfg.max_len
    longest = max(p.length for p in packed)
    if longest > cap:
      raise InputError(f"prepare_packed(max_length={cap}): the longest item needs length "
                       f"{longest}; raise the training seq_len to at least that.")
    length = min(packing.row_length(longest, cfg.max_len, cfg.length_buckets), cap)
    lengths = [p.length for p in packed]
    rows = packing.pack_rows(lengths, range(len(lengths)), length, length // 3)
    n_rows = packing.row_rung(len(rows), row_multiple)
    n_patch = max(sum(packed[i].n_patches for i in r) for r in rows)
    batch = self._pack([[packed[i] for i in r] for r in rows], length,
                       packing.pow2(n_patch) if n_patch else 0, n_rows, segments=True)
    table = np.full((n_rows, length // 3 + 2), packing.ITEM_PAD, np.int32)  # (row, segment) -> item
    for r, row in enumerate(rows):
      table[r, 1:len(row) + 1] = row
    batch["item_index"] = np.take_along_axis(table, batch["segment_ids"], axis=1)
    batch["item_tokens"] = np.array([p.length for p in packed], np.int32)
    return batch

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

  def embed(self, items: Any, task: str | None = None, dim: int | None = None,
            batch_size: int = 64, *, progress: bool | None = None) -> np.ndarray:
    """Embeds `items` (any mix of modalities) → float32 [n, dim], rows L2-normalised; one item
    (``embed("a cat")``, an image, a path) → float32 [dim].

    Items: str, `gemb.Text` / `Image` / `Audio` / `Video`, an interleaved list of parts, and the
    ecosystem's forms (`gemb.model.user_items`): an image as a numpy array or `PIL.Image.Image`,
    a file as a `pathlib.Path` (image, audio, video or PDF by suffix).
    `task` (e.g. "search result") marks queries: their text gets ``task: {task} | query: ``
    prepended. Documents use task=None. `dim`: any size up to the output size (the first `dim`
    dimensions, renormalised; a size the model was not trained at gets a one-time warning).
    `batch_size` bounds the items per forward pass; short items share rows (each attends
    only to itself), so the result is the same as embedding each item alone. `progress`: a
    tqdm bar (default: on above PROGRESS_ABOVE items, unless GEMB_PROGRESS=0).
    """
    dim = check_dim(dim, self.config)
    self._check_trained_task(task)
    if not isinstance(batch_size, int) or batch_size < 1:
      raise InputError(f"batch_size must be a positive int, got {batch_size!r}.")
    if items is None or isinstance(items, (bytes, dict)) or not (
        user_items.is_single_item(items) or hasattr(items, "__iter__")):
      raise InputError(f"embed takes one item or a list of items, got {type(items).__name__}; "
                       "e.g. enc.embed('a text') or enc.embed(['a text', gemb.Image(pixels)]).")
    single = user_items.is_single_item(items)
    items = [user_items.coerce_item(x) for x in ([items] if single else items)]
    packed = self._tokenize(items, task)
    out = np.zeros((len(packed), dim), np.float32)
    if not packed:
      return out
    graphdef, state = nnx.split(self.model)
    fwd = self._forward(graphdef, dim)
    plan = self.plan([p.length for p in packed], batch_size)
    bar = _progress_bar(len(packed), progress)
    pending: collections.deque = collections.deque()

    def collect(rows, emb):
      emb_rsd = np.asarray(emb)
      for r, row in enumerate(rows):
        out[row] = emb_rsd[r, : len(row)]
      if bar is not None:
        bar.update(sum(len(row) for row in rows))

    for length, rows in plan:
      n_seg = min(batch_size, length // 3)  # fixed: every item has ≥ 3 tokens ([CLS] x [SEP])
      n_patch = max(sum(packed[i].n_patches for i in r) for r in rows)
      n_patch = packing.pow2(n_patch) if n_patch else 0
      batch = self._pack([[packed[i] for i in r] for r in rows], length, n_patch, len(rows),
                         segments=True)
      self.compiled_shapes.add((len(rows), length, n_patch, n_seg, dim))
      pending.append((rows, fwd(state, batch, n_seg)))  # async: pack the next one meanwhile
      if len(pending) > _IN_FLIGHT:  # bounded: host memory, and a progress bar that moves
        collect(*pending.popleft())
    while pending:
      collect(*pending.popleft())
    if bar is not None:
      bar.close()
    return out[0] if single else out

  def similarity(self, a_nd: Any, b_md: Any) -> np.ndarray:
    """Cosine similarity [n, m] between two sets of embeddings (rows; a single vector counts as
    one row), as sentence-transformers' `similarity`. gemb's embeddings are unit-norm, so this is
    their dot product."""
    a = _as_rows(a_nd, "a")
    b = _as_rows(b_md, "b")
    if a.shape[1] != b.shape[1]:
      raise InputError(f"similarity: the embeddings have different sizes, {a.shape[1]} and "
                       f"{b.shape[1]}; embed both with the same dim.")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).astype(np.float32)

  def encode(self, sentences: Any, batch_size: int = 32, show_progress_bar: bool | None = None,
             convert_to_numpy: bool = True, normalize_embeddings: bool = True,
             prompt_name: str | None = None, prompt: str | None = None, *,
             dim: int | None = None, task: str | None = None, **kwargs) -> np.ndarray:
    """sentence-transformers' `encode` protocol (also what mteb's older wrappers call):
    a str → [d], a list → [n, d], float32 numpy.

    `prompt_name` picks the query prompt: a key of this model's trained `prompts` (when it has
    them), "query" (gemb's retrieval query task, "search result"), "document" / "passage" / None
    (no prompt: documents), or any other string, taken as a gemb task name. `task=` says the
    same in gemb's words. A literal `prompt` string is refused: gemb prompts are task names.
    gemb's embeddings are always unit-norm, so `normalize_embeddings` changes nothing; `dim`
    (sentence-transformers' `truncate_dim`) picks the size.
    """
    if prompt is not None:
      raise InputError("encode(prompt=...): gemb's query prompts are task names, not free text; "
                       "pass prompt_name='query' or task='search result' instead.")
    if not convert_to_numpy or kwargs.get("convert_to_tensor"):
      raise InputError("encode: gemb returns numpy arrays only (convert_to_numpy=True).")
    unknown = set(kwargs) - {"convert_to_tensor", "device", "output_value", "precision",
                             "truncate_dim"}
    if unknown:
      raise InputError(f"encode: unknown argument(s) {sorted(unknown)}.")
    if kwargs.get("truncate_dim") is not None:
      dim = kwargs["truncate_dim"]
    if task is None and prompt_name is not None:
      task = _task_for_prompt_name(prompt_name, getattr(self, "prompts", None))
    del normalize_embeddings  # always unit-norm
    return self.embed(sentences, task=task, dim=dim, batch_size=batch_size,
                      progress=show_progress_bar)

  def _check_trained_task(self, task: str | None) -> None:
    if (not isinstance(task, str) or self.prompts is None or task in self.prompts
        or task in self._warned_tasks):
      return
    self._warned_tasks.add(task)
    warnings.warn(f"task {task!r} was never used in training this model; its prompt is new to "
                  f"it. Trained tasks: {', '.join(sorted(self.prompts)) or 'none'}.",
                  UserWarning, stacklevel=3)

  # -- saving ----------------------------------------------------------------------------------

  def save(self, directory: str) -> None:
    """Writes a self-contained model folder (see gemb.model_folder): weights, config, the text
    tokenizer's file and the trained prompts; each file atomically, the config last."""
    from safetensors.numpy import save_file
    os.makedirs(directory, exist_ok=True)
    flat = {"/".join(map(str, k)): np.asarray(v.get_value())
            for k, v in nnx.to_flat_state(nnx.state(self.model, nnx.Param))}
    atomic_write(os.path.join(directory, WEIGHTS_FILE), lambda p: save_file(flat, p))
    config, files = dataclasses.asdict(self.config), {}
    tok_path = getattr(self.text_tokenizer, "path", None)
    if tok_path and os.path.isfile(tok_path):  # a file-based tokenizer travels with the model
      target = os.path.join(directory, TOKENIZER_FILE)
      if os.path.abspath(tok_path) != os.path.abspath(target):
        with open(tok_path, "rb") as f:
          atomic_write(target, f.read())
      name, args, kwargs = gemb.registry.parse_spec(self.config.text_tokenizer)
      kwargs.pop("path", None)
      args = tuple(a for a in args if a != tok_path)
      config["text_tokenizer"] = _spec(name, args, kwargs)
      files["text_tokenizer"] = TOKENIZER_FILE
    meta = {"format": FORMAT, "name": self.name, "config": config, "files": files}
    if self.prompts is not None:
      meta["prompts"] = dict(self.prompts)  # {task: query prompt} it was trained with
    atomic_write(os.path.join(directory, CONFIG_FILE), json.dumps(meta, indent=2))


def _longest_audio_tokens(enc: "Encoder") -> int:
  au = enc.audio_tokenizer
  return len(au(np.zeros(int(au.max_seconds * au.sample_rate), np.float32), au.sample_rate))


def media_max_len(enc: "Encoder") -> int:
  """The max_len that holds a whole item of each media modality the model's tokenizers take: an
  image, the longest audio (`max_seconds`), the longest video with a soundtrack as long; rounded
  up to a power of two and capped at `max_positions`. Training may run at a shorter `seq_len`;
  a saved model should keep at least this (see `keep_media_max_len`)."""
  im, vi = enc.image_tokenizer, enc.video_tokenizer
  image = getattr(im, "grid", 0) ** 2
  audio = _longest_audio_tokens(enc)
  video = getattr(vi, "max_frames", 0) * getattr(vi, "grid", 0) ** 2
  need = 2 + max(image, audio, video + audio)
  return min(enc.config.max_positions, max(enc.config.max_len, packing.pow2(need)))


def keep_media_max_len(enc: "Encoder") -> None:
  """Raises `enc.config.max_len` to `media_max_len` (before saving a model trained at a short
  seq_len, so the saved model does not cut audio or video it was trained on); warns when
  max_positions cannot hold them."""
  need = media_max_len(enc)
  if need > enc.config.max_len:
    enc.config = dataclasses.replace(enc.config, max_len=need)
  au, n_audio = enc.audio_tokenizer, _longest_audio_tokens(enc)
  if n_audio + 2 > enc.config.max_len:
    warnings.warn(I.TruncationWarning(
        f"The model's max_positions={enc.config.max_positions} holds {enc.config.max_len - 2} "
        f"tokens, fewer than the {n_audio} of {au.max_seconds:g} s of audio: longer items "
        "will be cut."), stacklevel=2)


def _spec(name: str, args: tuple, kwargs: dict) -> str:
  parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
  return f"{name}({', '.join(parts)})" if parts else name


PROGRESS_ABOVE = 4096  # embed shows a progress bar for more items than this (progress=None)
_IN_FLIGHT = 8  # forward passes dispatched ahead of the one being collected
QUERY_TASK = "search result"  # the task a sentence-transformers prompt_name="query" stands for


def _progress_bar(n: int, progress: bool | None):
  if progress is None:
    progress = n > PROGRESS_ABOVE and os.environ.get("GEMB_PROGRESS", "") != "0"
  if not progress:
    return None
  from tqdm.auto import tqdm
  return tqdm(total=n, desc="embed", unit="item")


def _as_rows(x: Any, what: str) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if x.ndim == 1:
    x = x[None]
  if x.ndim != 2 or not x.size:
    raise InputError(f"similarity: {what} must be embeddings [n, d] (or one vector [d]), got "
                     f"shape {x.shape}.")
  return x


def _task_for_prompt_name(name: str, prompts: Any) -> str | None:
  if isinstance(prompts, dict) and name in prompts:
    return prompts[name]
  if name == "query":
    return QUERY_TASK
  if name in ("document", "passage", "corpus"):
    return None
  return name


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
  """Loads a folder written by `Encoder.save`, checked first (gemb.model_folder.check_folder):
  a damaged, incomplete or newer folder is a one-line ConfigError/InputError naming the file."""
  from safetensors import SafetensorError
  from safetensors.numpy import load_file
  from gemb.config import dataclass_from
  from gemb.model_folder import check_folder
  meta = check_folder(path)
  config = dict(meta["config"])
  tok_file = meta.get("files", {}).get("text_tokenizer")
  if tok_file:  # the folder's own tokenizer file, not the one the model was trained from
    name, args, kwargs = gemb.registry.parse_spec(config.get("text_tokenizer", "wordpiece"))
    config["text_tokenizer"] = _spec(name, args, {**kwargs, "path": os.path.join(path, tok_file)})
  cfg = dataclass_from(ModelConfig, config, where=f"{os.path.join(path, CONFIG_FILE)}: config")
  enc = Encoder(cfg, seed=seed, name=meta.get("name", ""))
  enc.prompts = dict(meta["prompts"]) if "prompts" in meta else None
  wpath = os.path.join(path, WEIGHTS_FILE)
  try:
    weights = load_file(wpath)
  except (SafetensorError, OSError, ValueError) as e:
    raise InputError(f"{wpath} cannot be read ({e}); save the model again.") from None
  params = dict(nnx.to_flat_state(nnx.state(enc.model, nnx.Param)))
  names = {"/".join(map(str, k)): k for k in params}
  missing, extra = sorted(set(names) - set(weights)), sorted(set(weights) - set(names))
  if missing or extra:
    which = (f"lacks {missing[:3]}" if missing else "") + (" and " if missing and extra else "") + \
            (f"has tensors this model does not: {extra[:3]}" if extra else "")
    raise InputError(f"{wpath} {which} ({len(missing)} missing, {len(extra)} extra); it does not "
                     f"match {CONFIG_FILE}.")
  for name, k in names.items():
    value, var = weights[name], params[k]
    if tuple(value.shape) != tuple(var.shape):
      raise InputError(f"{wpath}: tensor {name} has shape {value.shape}, expected "
                       f"{tuple(var.shape)} from {CONFIG_FILE}.")
    if value.dtype != np.float32:
      raise InputError(f"{wpath}: tensor {name} is {value.dtype}, expected float32.")
    if not np.isfinite(value).all():
      raise InputError(f"{wpath}: tensor {name} holds {int((~np.isfinite(value)).sum())} "
                       "NaN/inf values; the model is damaged (a diverged run?).")
    var.set_value(jnp.asarray(value))
  return enc
