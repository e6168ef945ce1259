"""Contrastive multi-stage training of a gemb embedding model, then a greedy model soup.

Stages follow Gemini Embedding: pre-finetuning on broad pairs (large batches, no hard negatives),
then finetuning on a task mixture with hard negatives; one task per batch, the task prompt dropped
at random, InfoNCE on every Matryoshka prefix.

    python3 -m gemb run train:tiny --workdir /tmp/train-tiny
    python3 -m gemb run train --set stages.finetune.steps=2000

Variants: "" (minilm-l6 on the text mixture), "tiny" (the tiny preset from random init with
MiniLM's WordPiece vocabulary, 120 + 24 steps, a minute or two on 2 CPU cores; on the docstring
pairs' test split it more than doubles the untrained model's MRR, which tests/test_recipes.py
checks).

Stage-end validation and the greedy soup use `eval.dataset`'s validation split; the summary's
"test" entry reports the same dataset's whole test split (bootstrap intervals, paired deltas,
chance levels).
"""

import ml_collections

from gemb.config import check_variant


def _stage(steps, batch_size, tasks, hard_negatives, lr, loss):
  return ml_collections.ConfigDict({
      "steps": steps,
      "batch_size": batch_size,
      "tasks": tasks,  # ((gemb.datasets spec, sampling rate), ...); one task per batch
      "hard_negatives": hard_negatives,
      # "dataset": each dataset's own negatives; "mined": the `hard_negatives` nearest documents
      # of the split under the model as the stage starts, known positives dropped
      # (gemb.train.mining), searched with `mine_retriever`.
      "negatives": "dataset",
      "mine_retriever": "exact",
      "prompt_dropout": 0.1,  # per query: the share trained without its task prompt
      "loss": loss,
      "optim": {"lr": lr, "warmup_steps": 0, "warmup_frac": 0.1, "schedule": "cosine",
                "end_lr_frac": 0.0, "weight_decay": 0.01, "clip_norm": 1.0, "b1": 0.9,
                "b2": 0.999,
                # (regex on parameter paths like "layers/0/attn/kernel", lr multiplier); 0 freezes
                "param_groups": ()},
  })


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  check_variant(variant, ("", "tiny"))
  tiny = variant == "tiny"
  mrl = "(16, 32, 64)" if tiny else "(64, 128, 256, 384)"
  loss = f"matryoshka(loss='infonce(temperature=0.05)', dims={mrl})"
  c = ml_collections.ConfigDict()
  c.kind = "train"
  c.seed = 0
  # tiny: random init with MiniLM's WordPiece vocabulary; words, unlike bytes, let a 4-layer
  # model learn the docstring pairs in a CI-sized run.
  c.model = ("tiny(truncate=True, max_len=64, text_tokenizer='wordpiece', vocab_size=30522)"
             if tiny else "minilm-l6(max_len=128)")
  c.seq_len = 64 if tiny else 128
  # One process packs each step's items into shared rows (its real tokens, not batch x seq_len);
  # False pads one batch per side, as several processes always do (packed item indices would
  # need per-process offsets).
  c.pack = True
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding = {"rules": "fsdp", "overrides": ()}
  broad = ((("text-pairs", 1.0),) if tiny
           else (("text-pairs", 1.0), ("text-pairs(source='names')", 1.0)))
  mix = (("text-pairs", 2.0), ("code", 1.0))
  c.stages = {
      "prefinetune": _stage(120 if tiny else 2000, 32 if tiny else 256, broad, 0,
                            1e-3 if tiny else 5e-5, loss),
      "finetune": _stage(24 if tiny else 1000, 16 if tiny else 64, mix, 1,
                         3e-4 if tiny else 2e-5, loss),
  }
  c.stage_order = ("prefinetune", "finetune")
  # keep: checkpoints per stage while it trains (the soup's candidates); keep_finished: per stage
  # once the run has finished (0: the saved model/ is the result; raise it to resume or re-soup).
  c.checkpoint = {"every": 12 if tiny else 200, "keep": 2 if tiny else 3,
                  "async_save": True, "keep_finished": 0}
  c.log_every = 12 if tiny else 50
  # Selection (stage ends, soup) on validation only; `test`: also report the whole test split.
  c.eval = {"dataset": "text-pairs", "split": "validation", "max_queries": 100 if tiny else 300,
            "metrics": ("recall@1", "mrr"), "test": True}
  c.soup = {"method": "greedy", "metric": "mrr"}
  return c
