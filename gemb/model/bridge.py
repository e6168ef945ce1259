"""The label-text bridge: tower tokens that the pretrained text model reads from step 0.

A tower tokenizer with ``head=True`` puts each cell's ImageNet class distribution p (1000
probabilities) in front of its 1280 features. `bridge_patch_embed` sets the modality's
`PatchEmbed` so that the class part maps to the text model's own word embeddings:

    proj(cell) = p · E_class + 0 · features + 0,   E_class[k] = mean of word_emb over the
                                                    WordPiece tokens of class k's first name

and zeroes its (t, row, col) position table, so a cell whose distribution is one-hot on "tabby"
embeds exactly as the word "tabby" would at that sequence position: the backbone then adds the
same sequence-position, type and (zero-initialised) modality embeddings and the same embedding
LayerNorm as for text. An image becomes 49 "words for what ImageNet sees there", and the
untrained model already ranks a cat photo near "a cat". Training moves everything from there;
the feature rows start at zero and learn what the 1000 labels miss.
"""

from __future__ import annotations

import numpy as np

from gemb.errors import ConfigError


def class_names(names: list[str]) -> list[str]:
  """First synonym of each ImageNet class name, lower-cased ("tabby, tabby cat" → "tabby")."""
  return [n.split(",")[0].strip().lower() for n in names]


def class_text_embeddings(word_emb_vd: np.ndarray, text_tokenizer, names: list[str]) -> np.ndarray:
  """E_class [K, d]: per name, the mean of `word_emb_vd`'s rows of its WordPiece ids."""
  ids = text_tokenizer.encode_batch(names)
  if any(len(i) == 0 for i in ids):
    bad = [n for n, i in zip(names, ids) if len(i) == 0][:3]
    raise ConfigError(f"bridge: class names {bad} have no tokens under the text tokenizer.")
  return np.stack([word_emb_vd[i].mean(0) for i in ids]).astype(np.float32)


def bridge_patch_embed(patch_embed, e_class_kd: np.ndarray) -> None:
  """Class rows of `patch_embed.proj` ← E_class; feature rows, bias and positions ← 0."""
  k, d = e_class_kd.shape
  kernel = np.zeros(patch_embed.proj.kernel.shape, np.float32)
  if kernel.shape[0] < k or kernel.shape[1] != d:
    raise ConfigError(f"bridge: PatchEmbed maps {kernel.shape[0]} → {kernel.shape[1]}, which "
                      f"cannot hold {k} class rows of width {d}; use a tower tokenizer with "
                      "head=True.")
  kernel[:k] = e_class_kd
  dtype = patch_embed.proj.kernel[...].dtype
  patch_embed.proj.kernel[...] = kernel.astype(dtype)
  patch_embed.proj.bias[...] = np.zeros(patch_embed.proj.bias.shape, dtype)
  patch_embed.pos[...] = np.zeros(patch_embed.pos.shape, patch_embed.pos[...].dtype)
