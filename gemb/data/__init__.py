"""Datasets and input pipelines.

Built-in datasets register in `gemb.datasets` when this package is imported (the registry does it
on first lookup). Each is ``build(split="train", **options) -> source`` satisfying the dataset
protocol (`gemb.data.protocol`, checked by `gemb.datasets.build`): random access, `.records`,
`.card`, `.task` and ``retrieval_task()`` for evaluation. See docs/data.md.

    src = gemb.datasets.build("emoji(languages=['en', 'de'])", split="train")
    it = iter(gemb.data.pipeline(src, prepare_fn, batch_size=64, seed=0))
"""

import gemb.registry
from gemb.data.assets import MissingAssetError
from gemb.data.base import SPLITS, PairSource, split_of
from gemb.data.card import DatasetCard
from gemb.data.input_pipeline import pipeline, restore_state, save_state, shard_indices
from gemb.data.protocol import DatasetSource, check_source

# Imported for their registrations.
from gemb.data import clips, code, emoji, interleaved, speech, text  # noqa: F401  isort: skip
from gemb.data import cldr, klettres, openclipart, public  # noqa: F401  isort: skip
from gemb.data import tfds  # noqa: F401  isort: skip

gemb.registry.datasets.validator = check_source

__all__ = ["DatasetCard", "DatasetSource", "MissingAssetError", "PairSource", "SPLITS",
           "check_source", "pipeline", "restore_state", "save_state", "shard_indices", "split_of"]
