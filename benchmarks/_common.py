"""Shared by the benchmarks: the CPU's measured matmul peak, the denominator of every MFU."""

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
