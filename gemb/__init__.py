"""gemb: native multimodal embeddings and item cold-start exploration, on JAX.

The public API is what this module exports; plugins and recipes use nothing else (plus the
``__all__`` of the documented subpackages: gemb.retrieval, gemb.evaluation, gemb.coldstart, ...).

    enc = gemb.load("minilm-l6")
    emb_nd = enc.embed(["a cat", gemb.Image(pixels_hwc)], dim=128)
"""

import importlib

from gemb.errors import (ConfigError, DuplicateComponentError, GembError, InputError, SpecError,
                         UnknownComponentError)
from gemb.registry import (Registry, datasets, evaluators, loaded_plugins, losses, parse_spec,
                           policies, presets, retrievers, runners, tokenizers)

__version__ = "0.1.0"

# Imported on first use, so that `import gemb` (and `gemb list`) does not pay for jax and flax.
_LAZY = {
    "load": "gemb.model", "Encoder": "gemb.model", "Text": "gemb.model", "Image": "gemb.model",
    "Audio": "gemb.model", "Video": "gemb.model", "Interleaved": "gemb.model",
    "load_image": "gemb.model", "load_audio": "gemb.model", "load_video": "gemb.model",
    "load_pdf": "gemb.model",
}


# Subpackages reachable as attributes after a plain `import gemb` (gemb.retrieval.load_index).
_SUBPACKAGES = ("coldstart", "data", "evaluation", "io", "model", "retrieval", "train")


def __getattr__(name):
  if name in _SUBPACKAGES:
    return importlib.import_module(f"gemb.{name}")
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'gemb' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))


__all__ = [
    "Audio", "ConfigError", "DuplicateComponentError", "Encoder", "GembError", "Image", "InputError",
    "Interleaved", "Registry", "SpecError", "Text", "UnknownComponentError", "Video", "datasets",
    "evaluators", "load", "load_audio", "load_image", "load_pdf", "load_video", "loaded_plugins",
    "losses", "parse_spec", "policies", "presets", "retrievers", "runners", "tokenizers",
]
