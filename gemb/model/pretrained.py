"""Loading pretrained BERT/MiniLM weights (safetensors) into the backbone, exactly.

The mapping is written out so that a missing or misshaped tensor is an error naming it, never
a silently random layer.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from gemb.errors import ConfigError
from gemb.model.backbone import EmbeddingModel


def _assign(param: nnx.Param, value: np.ndarray, name: str) -> None:
  if tuple(param.shape) != tuple(value.shape):
    raise ConfigError(f"Pretrained tensor {name} has shape {value.shape}, the model expects "
                      f"{tuple(param.shape)}: the preset's architecture does not match the file.")
  param.set_value(jnp.asarray(value, jnp.float32))


def load_bert_safetensors(model: EmbeddingModel, path: str) -> EmbeddingModel:
  """Copies a HF BertModel's weights (MiniLM's model.safetensors) into `model`'s text path.

  Patch embedders, the modality embedding and the projection are left as initialised.
  """
  from safetensors.numpy import load_file
  if not os.path.isfile(path):
    raise ConfigError(f"Pretrained weights {path!r} do not exist.")
  w = load_file(path)
  prefix = "bert." if any(k.startswith("bert.") for k in w) else ""

  def get(name: str) -> np.ndarray:
    try:
      return w[prefix + name]
    except KeyError:
      raise ConfigError(f"{path} has no tensor {prefix + name!r}; is it a BERT checkpoint?") from None

  e = "embeddings."
  _assign(model.word_emb.embedding, get(e + "word_embeddings.weight"), "word_embeddings")
  pos = get(e + "position_embeddings.weight")
  if model.cfg.max_positions > pos.shape[0]:
    raise ConfigError(f"max_positions {model.cfg.max_positions} exceeds the {pos.shape[0]} "
                      "positions of the pretrained model.")
  _assign(model.pos_emb.embedding, pos[: model.cfg.max_positions], "position_embeddings")
  _assign(model.type_emb.embedding, get(e + "token_type_embeddings.weight"), "token_type")
  _assign(model.emb_norm.scale, get(e + "LayerNorm.weight"), "embeddings.LayerNorm.weight")
  _assign(model.emb_norm.bias, get(e + "LayerNorm.bias"), "embeddings.LayerNorm.bias")
  n_file = len({k.split(".")[2 + bool(prefix)] for k in w if ".layer." in k})
  if n_file != len(model.layers):
    raise ConfigError(f"{path} has {n_file} layers, the preset has {len(model.layers)}.")
  for i, layer in enumerate(model.layers):
    p = f"encoder.layer.{i}."
    pairs = [(layer.query, "attention.self.query"), (layer.key, "attention.self.key"),
             (layer.value, "attention.self.value"), (layer.out, "attention.output.dense"),
             (layer.mlp_in, "intermediate.dense"), (layer.mlp_out, "output.dense")]
    for lin, name in pairs:
      _assign(lin.kernel, get(p + name + ".weight").T, p + name + ".weight")  # torch: [out, in]
      _assign(lin.bias, get(p + name + ".bias"), p + name + ".bias")
    for norm, name in [(layer.attn_norm, "attention.output.LayerNorm"),
                       (layer.mlp_norm, "output.LayerNorm")]:
      _assign(norm.scale, get(p + name + ".weight"), p + name + ".weight")
      _assign(norm.bias, get(p + name + ".bias"), p + name + ".bias")
  return model
