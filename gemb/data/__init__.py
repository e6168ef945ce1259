"""Datasets and input pipelines.

Built-in datasets register in `gemb.datasets` when this package is imported (the registry does it
on first lookup). Each is ``build(split="train", **options) -> PairSource``: random access, a
`.card`, and ``retrieval_task()`` for evaluation. See docs/data.md.

    src = gemb.datasets.build("emoji(languages=['en', 'de'])", split="train")
    it = iter(gemb.data.pipeline(src, prepare_fn, batch_size=64, seed=0))
"""

import importlib.util

from gemb.data.assets import MissingAssetError
from gemb.data.base import SPLITS, PairSource, split_of
from gemb.data.card import DatasetCard
from gemb.data.input_pipeline import pipeline, restore_state, save_state, shard_indices

# Imported for their registrations.
from gemb.data import clips, code, emoji, interleaved, speech, text  # noqa: F401  isort: skip
from gemb.data import tfds  # noqa: F401  isort: skip

if importlib.util.find_spec("gemb.data.movielens") is not None:
  from gemb.data import movielens  # noqa: F401  (registers "movielens-100k")

__all__ = ["DatasetCard", "MissingAssetError", "PairSource", "SPLITS", "pipeline",
           "restore_state", "save_state", "shard_indices", "split_of"]
