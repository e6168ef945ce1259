"""The main job: train, evaluate and explore on the embedded default data, in minutes on a CPU.

1. Evaluates the untrained `minilm-l6` preset (pretrained text path, fresh image/audio/video
   tokenizers) on cross-modal, interleaved, code and text retrieval, searched with ScaNN.
2. Trains it in two stages (pre-finetuning on broad cross-modal pairs with the text backbone
   frozen, then finetuning on a task mixture with hard negatives) and makes a greedy model soup.
3. Evaluates the trained model on the same tasks, at every Matryoshka dim, with plots.
4. Embeds the MovieLens-100k items with the trained model and compares the cold-start
   exploration policies at the same impression budget.
5. Prints a summary table and writes report.md, summary.json and the plots into the workdir.

    python3 -m gemb run quickstart
    python3 -m gemb run quickstart:tiny --workdir /tmp/quickstart-tiny

Variants: "" (the README's main job, about 10 minutes on 2 CPU cores), "tiny" (the tiny preset
and a few steps of each part: it checks the wiring, not the numbers).
"""

import ml_collections

from gemb.config import check_variant, recipe_config

# The text backbone stays frozen in pre-finetuning: the new modality tokenizers learn to map into
# the space MiniLM already has (regexes over parameter paths such as "layers/0/query/kernel").
BACKBONE = r"^(layers|word_emb|pos_emb|type_emb|emb_norm)/"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  check_variant(variant, ("", "tiny"))
  tiny = variant == "tiny"
  c = ml_collections.ConfigDict()
  c.kind = "quickstart"

  train = recipe_config("train:tiny" if tiny else "train")
  train.model = "tiny(truncate=True, max_len=64)" if tiny else "minilm-l6(max_len=64)"
  train.seq_len = 64
  train.eval.dataset = "emoji(languages=('en',))"
  train.eval.max_queries = 16 if tiny else 100
  broad = (("emoji(languages=('en', 'de', 'fr', 'es'))", 2.0), ("clips", 1.0),
           ("spoken-names", 1.0))
  mix = broad + (("interleaved", 1.0), ("code", 0.5), ("text-pairs", 0.5))
  pre, fine = train.stages.prefinetune, train.stages.finetune
  pre.tasks, pre.hard_negatives = broad, 0
  pre.steps, pre.batch_size = (4, 8) if tiny else (45, 32)
  pre.optim.lr, pre.optim.warmup_steps = 2e-3, 2 if tiny else 5
  pre.optim.param_groups = ((BACKBONE, 0.0),)
  fine.tasks, fine.hard_negatives = mix, 1
  fine.steps, fine.batch_size = (4, 8) if tiny else (30, 16)
  fine.optim.lr, fine.optim.warmup_steps = 1e-3, 1 if tiny else 3
  fine.optim.param_groups = ((BACKBONE, 0.02),)
  train.checkpoint.every = 2 if tiny else 10
  train.log_every = 2 if tiny else 5
  c.train = train

  c.eval = ml_collections.ConfigDict()
  c.eval.dims = (64, 16) if tiny else (384, 128, 64)
  c.eval.retriever = "scann"
  c.eval.max_queries = 16 if tiny else 150
  c.eval.examples = 1 if tiny else 2
  n = 40 if tiny else 250  # examples read from each test split (the corpus is their positives)
  c.eval.tasks = {
      "text_image": {"kind": "mscoco", "split": "test",
                     "dataset": f"emoji(languages=('en', 'de', 'fr', 'es', 'ja'), limit={n})"},
      "speech_text": {"kind": "retrieval", "dataset": f"spoken-names(limit={n})", "split": "test"},
      "text_video": {"kind": "vatex", "dataset": f"clips(limit={n // 2})", "split": "test"},
      "interleaved": {"kind": "retrieval", "dataset": f"interleaved(limit={n})", "split": "test"},
      "code": {"kind": "retrieval", "dataset": f"code(limit={n})", "split": "test"},
  }

  cs = recipe_config("coldstart:tiny" if tiny else "coldstart")
  cs.embedder = "trained"  # the model trained above; or a preset such as "minilm-l6"
  if not tiny:
    cs.seeds = (0, 1, 2)
  c.coldstart = cs
  return c
