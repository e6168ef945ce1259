"""Shared by the benchmarks: the CPU's measured matmul peak, the denominator of every MFU."""

import os
import time

import numpy as np


def matmul_peak_flops(n: int = 2048, reps: int = 8, dtype: str = "float32") -> float:
  """Best-of-`reps` FLOP/s of one jitted n^3 matmul with `dtype` operands (float32 result)."""
  import jax
  import jax.numpy as jnp
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
  f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  f(a, a).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    f(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


def cpu_description() -> str:
  """The CPU's model name and whether it has the units bf16/f32 speed depends on."""
  import platform
  flags, name = set(), platform.processor() or platform.machine()
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name") and name in ("", platform.machine()):
        name = line.split(":", 1)[1].strip()
      elif line.startswith("flags"):
        flags = set(line.split(":", 1)[1].split())
  except OSError:
    pass
  has = lambda *fs: "yes" if all(f in flags for f in fs) else "no"
  return (f"{name} ({os.cpu_count()} CPUs; AMX bf16 {has('amx_bf16', 'amx_tile')}, AVX-512 "
          f"{has('avx512f')}, AVX512-BF16 {has('avx512_bf16')})")
