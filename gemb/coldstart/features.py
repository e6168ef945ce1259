"""Static item features: a content embedding of the item's text plus metadata (genres, year).

The content embedding is injected as ``embed_fn(texts) -> np.ndarray [n, d]``. `resolve_embedder`
turns a recipe's ``embedder`` key into one: a `gemb.model` preset name (``"minilm-l6"``) or the
explicit, model-free ``"bow(dim=64)"`` (hashed bag of words, for tests and tiny runs).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Callable, Sequence

import numpy as np

from gemb import registry
from gemb.data.movielens import MovieLens
from gemb.errors import ConfigError, InputError

EmbedFn = Callable[[Sequence[str]], np.ndarray]


def bow_embed(dim: int = 64) -> EmbedFn:
  """Hashed bag of lower-cased words, L2-normalized: deterministic, no model needed."""
  if dim < 1:
    raise ConfigError(f"bow embedder: dim must be >= 1, got {dim}.")

  def embed(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), dim), np.float32)
    for i, t in enumerate(texts):
      for w in re.findall(r"[a-z0-9']+", t.lower()):
        h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
        out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)

  return embed


def resolve_embedder(spec: str) -> EmbedFn:
  """``"bow(dim=64)"``, a gemb.model preset or a saved model folder; never falls back."""
  if not os.path.isdir(spec):
    name, args, kwargs = registry.parse_spec(spec)
    if name == "bow":
      return bow_embed(*args, **kwargs)
  try:
    from gemb import model as model_lib
    load = model_lib.load
  except (ImportError, AttributeError) as e:
    raise ConfigError(f"embedder {spec!r} needs gemb.model.load, which is unavailable ({e}). "
                      "Set embedder='bow(dim=64)' to use the model-free embedding explicitly.") \
        from None
  encoder = load(spec)
  return lambda texts: np.asarray(encoder.embed(list(texts)), np.float32)


def principal_components(emb_nd: np.ndarray, k: int) -> np.ndarray:
  """The centred rows of `emb_nd` projected on their top-k principal directions: [n, k]."""
  if not 1 <= k <= min(emb_nd.shape):
    raise ConfigError(f"content_dims must be between 1 and {min(emb_nd.shape)} (the rank limit "
                      f"of {emb_nd.shape[0]} embeddings of dim {emb_nd.shape[1]}), got {k}.")
  centred = emb_nd - emb_nd.mean(0)
  _, _, vt_kd = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
  return (centred @ vt_kd[:k].T).astype(np.float32)


ITEM_FEATURES = ("content", "metadata", "none")


def static_features(ml: MovieLens, embed_fn: EmbedFn | None, content_dims: int | None = None,
                    include: str = "content") -> np.ndarray:
  """Static item features [n_items, f]: by default (include="content", f = d + n_genres + 2) the
  content embedding of title + year + genres, the genres, and the year.

  With `content_dims`, the embedding is replaced by its top principal components over the
  catalogue: the discoverability model learns from a few thousand logged items, and 384 raw
  dimensions let its members fit noise (see reports/coldstart). `include` keeps fewer columns:
  "metadata" genres and year only, "none" no column at all (the model then sees only an item's
  engagement so far; `embed_fn` is not called and may be None).
  """
  if include not in ITEM_FEATURES:
    raise ConfigError(f"item_features must be one of {ITEM_FEATURES}, got {include!r}.")
  if include == "none":
    return np.zeros((ml.n_items, 0), np.float32)
  year = np.where(ml.years > 0, (ml.years - 1990) / 10.0, 0.0)[:, None]
  meta = np.concatenate([ml.genres_ig, year.astype(np.float32),
                         (ml.years > 0)[:, None].astype(np.float32)], 1)
  if include == "metadata":
    return meta.astype(np.float32)
  texts = [ml.item_text(i) for i in range(ml.n_items)]
  emb = np.asarray(embed_fn(texts), np.float32)
  if emb.ndim != 2 or emb.shape[0] != len(texts):
    raise InputError(f"embed_fn must return [n_texts, d] = [{len(texts)}, d], got {emb.shape}.")
  bad = ~np.isfinite(emb).all(1)
  if bad.any():
    raise InputError(f"embed_fn returned NaN/inf for {int(bad.sum())} items (first: "
                     f"{texts[int(np.argmax(bad))]!r}); every item needs a content embedding.")
  if content_dims:
    emb = principal_components(emb, int(content_dims))
  return np.concatenate([emb, meta], 1).astype(np.float32)
