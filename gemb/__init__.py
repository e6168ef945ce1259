"""gemb: native multimodal embeddings and item cold-start exploration, on JAX.

The public API is what this module exports; plugins and recipes use nothing else.
"""

from gemb.errors import (ConfigError, DuplicateComponentError, GembError, InputError, SpecError,
                         UnknownComponentError)
from gemb.registry import (Registry, datasets, evaluators, loaded_plugins, losses, parse_spec,
                           policies, presets, retrievers, runners, tokenizers)

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DuplicateComponentError", "GembError", "InputError", "Registry", "SpecError",
    "UnknownComponentError", "datasets", "evaluators", "loaded_plugins", "losses", "parse_spec",
    "policies", "presets", "retrievers", "runners", "tokenizers",
]
