"""Evaluate a preset or a trained checkpoint on the built-in suite, at every Matryoshka dim.

Held-out real sets that no training mixture touches: clip art (openclipart) and emoji in
languages the training never sees (CLDR) searched by text, and human speech (KLettres) -> its
written form. Built-in sets: text -> image (MSCOCO protocol: R@1/5/10 both ways, several captions
per image, here emoji names in 5 languages), speech -> text, text -> video (Vatex protocol: NDCG@10), interleaved image+text ->
image, code and text retrieval (NDCG@10, as MTEB), all on the whole test splits, searched with
ScaNN. Every metric is reported with its 95% bootstrap interval over queries and its chance level
(the expected value under a random ranking).

    python3 -m gemb run eval:tiny --workdir /tmp/eval-tiny
    python3 -m gemb run eval --set model=runs/train/model --workdir reports/eval-trained

Variants: "" (minilm-l6-effnet, the quickstart's untrained model: MiniLM and the ImageNet
EfficientNet-Lite0 tower; every test query), "tiny" (the tiny preset, 24 queries a task).
"""

import ml_collections

from gemb.config import check_variant

LANGS = "('en', 'de', 'fr', 'es', 'ja')"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  check_variant(variant, ("", "tiny"))
  tiny = variant == "tiny"
  c = ml_collections.ConfigDict()
  c.kind = "eval"
  # A gemb.presets spec or a saved model folder.
  c.model = "tiny(truncate=True)" if tiny else "minilm-l6-effnet(max_len=96)"
  c.dims = (64, 16) if tiny else (384, 256, 128, 64)
  c.retriever = "scann"
  c.max_queries = 24 if tiny else None  # None: the whole test split
  c.examples = 1 if tiny else 3  # queries per task in the top-5 grids
  c.tasks = {
      "clipart": {"kind": "mscoco", "dataset": "openclipart", "split": "test"},
      "cldr_heldout": {"kind": "mscoco", "dataset": "cldr-emoji-heldout", "split": "test"},
      "klettres": {"kind": "retrieval", "dataset": "klettres", "split": "test"},
      "text_image": {"kind": "mscoco", "dataset": f"emoji(languages={LANGS})", "split": "test"},
      "speech_text": {"kind": "retrieval", "dataset": "spoken-names", "split": "test"},
      "text_video": {"kind": "vatex", "dataset": "clips", "split": "test"},
      "interleaved": {"kind": "retrieval", "dataset": "interleaved", "split": "test"},
      "code": {"kind": "retrieval", "dataset": "code", "split": "test"},
      "text": {"kind": "retrieval", "dataset": "text-pairs", "split": "test"},
  }
  return c
