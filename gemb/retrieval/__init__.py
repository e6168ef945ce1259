"""Retrieval backends, shared by evaluation and cold start: `gemb.retrievers.get("scann")()`.

Built-ins: ``exact`` (brute force in JAX) and ``scann`` (the default). See `base.Index` for the
contract every backend follows.
"""

from __future__ import annotations

import os

from gemb.retrieval.base import FORMAT_VERSION, Index, IndexFormatError, read_manifest
from gemb.retrieval.exact import ExactIndex
from gemb.retrieval.scann_index import ScannIndex

DEFAULT_BACKEND = "scann"


def load_index(path: str | os.PathLike) -> Index:
  """Loads an index saved by any registered backend (the manifest names the backend)."""
  from gemb.registry import retrievers
  manifest, _ = read_manifest(path)
  name = manifest.get("backend")
  if name not in retrievers:
    raise IndexFormatError(f"{path} was saved by retrieval backend {name!r}, which is not "
                           f"registered here (known: {', '.join(retrievers.names())}). Install "
                           "the plugin that provides it.")
  return retrievers.get(name).load(path)


__all__ = ["DEFAULT_BACKEND", "ExactIndex", "FORMAT_VERSION", "Index", "IndexFormatError",
           "ScannIndex", "load_index"]
