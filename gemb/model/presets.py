"""Model presets, registered in `gemb.presets`: architecture + where the weights come from.

A preset is a function returning a `Preset`; its keyword arguments override `ModelConfig`
fields, so ``gemb.model.load("minilm-l6(truncate=False)")`` works.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

import gemb.registry
from gemb.config import dataclass_from
from gemb.errors import ConfigError
from gemb.model.backbone import EmbeddingModel, ModelConfig


@dataclasses.dataclass(frozen=True)
class Preset:
  config: ModelConfig
  # Fills pretrained weights into a freshly initialised model; None means random init.
  init_weights: Callable[[EmbeddingModel], EmbeddingModel] | None = None


def _config(base: ModelConfig, overrides: dict) -> ModelConfig:
  return dataclass_from(ModelConfig, {**dataclasses.asdict(base), **overrides},
                        where="model config")


@gemb.registry.presets.register("tiny")
def tiny(**overrides) -> Preset:
  """Random init, ~260K parameters, byte tokenizer: fast on 2 CPU cores, for tests."""
  return Preset(_config(ModelConfig(
      vocab_size=259, width=64, depth=4, heads=4, mlp_dim=256, max_len=128, max_positions=128,
      layer_norm_eps=1e-6, out_dim=64, mrl_dims=(16, 32, 64), text_tokenizer="bytes",
      image_tokenizer="image_patches(image_size=32, patch=8)",
      audio_tokenizer="audio_logmel(n_mels=32, patch_time=16, patch_freq=16, max_seconds=2.0)",
      video_tokenizer="video_frames(frame_size=16, patch=8, max_frames=4)",
      truncate=False, identity_projection=False,
      length_buckets=(16, 32, 64, 128)), overrides))


@gemb.registry.presets.register("minilm-l6")
def minilm_l6(**overrides) -> Preset:
  """all-MiniLM-L6-v2's text path (pretrained), new image/audio/video tokenizers (random)."""
  from gemb.model.pretrained import load_bert_safetensors
  from gemb.model.tokenizers import minilm_dir
  cfg = _config(ModelConfig(identity_projection=True), overrides)
  path = os.path.join(minilm_dir(), "model.safetensors")
  return Preset(cfg, lambda model: load_bert_safetensors(model, path))


@gemb.registry.presets.register("minilm-l6-effnet")
def minilm_l6_effnet(**overrides) -> Preset:
  """minilm-l6's pretrained text path + a frozen ImageNet EfficientNet-Lite0 for images and video.

  Images become the tower's 7×7 feature map at 224 px (49 tokens), video frames its map at
  128 px pooled to 2×2 (4 tokens a frame, 4 frames); only the projection of those features into
  the backbone (`patch_embeds/...`) is new. With ``head=True`` in a tower tokenizer (the default
  here) each token also carries the cell's ImageNet class distribution, and the label-text
  bridge (gemb.model.bridge) initialises that modality's projection from MiniLM's word
  embeddings of the class names. Audio is trained from scratch (`audio_logmel`).
  max_len 128 holds an image with up to 77 text tokens.
  """
  base = dict(max_len=128,
              image_tokenizer="effnet_image(variant='lite0', image_size=224, grid=7, head=True, "
                              "temperature=2.0)",
              video_tokenizer="effnet_video(variant='lite0', frame_size=128, grid=2, max_frames=4, "
                              "head=True, temperature=2.0)")
  text = minilm_l6(**{**base, **overrides})
  return Preset(text.config, lambda model: bridge_towers(text.init_weights(model), text.config))


def bridge_towers(model: EmbeddingModel, cfg: ModelConfig) -> EmbeddingModel:
  """The label-text bridge (gemb.model.bridge) on every tower tokenizer of `cfg` with head=True."""
  from gemb.model import bridge
  from gemb.model import efficientnet as E
  from gemb.model.tokenizers import IMAGE, VIDEO
  text = gemb.registry.tokenizers.build(cfg.text_tokenizer)
  word_emb = None
  for modality, spec in ((IMAGE, cfg.image_tokenizer), (VIDEO, cfg.video_tokenizer)):
    tok = gemb.registry.tokenizers.build(spec)
    if not getattr(tok, "head", False):
      continue
    if word_emb is None:
      word_emb = np.asarray(model.word_emb.embedding[...], np.float32)
      e_class = bridge.class_text_embeddings(
          word_emb, text, bridge.class_names(E.imagenet_classes()))
    bridge.bridge_patch_embed(model.patch_embeds[str(modality)], e_class)
  return model
