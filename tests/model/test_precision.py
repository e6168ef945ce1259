"""The fast paths of the backbone keep its numbers: erf GELU, bfloat16 matmuls (forward and
backward), and the matmul_dtype option's validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gemb
import gemb.model as gm
from gemb.model import backbone


def test_gelu_is_exact_erf_gelu():
  x = np.linspace(-8, 8, 4001).astype(np.float32)
  want = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
  got = np.asarray(backbone.gelu(jnp.asarray(x)), np.float64)
  np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
  # And it agrees with jax's erfc-based exact GELU to float32 rounding.
  ref = np.asarray(jax.nn.gelu(jnp.asarray(x), approximate=False))
  assert np.abs(got - ref).max() < 2e-6


def test_matmul_dtype_is_validated():
  with pytest.raises(gemb.ConfigError, match="matmul_dtype='float16'"):
    gm.load("tiny(matmul_dtype='float16')")


def _grads(enc, batch):
  g, params, rest = nnx.split(enc.model, nnx.Param, ...)

  def loss(p):
    emb = nnx.merge(g, p, rest)(batch)
    return jnp.sum(emb * jnp.arange(emb.shape[-1], dtype=emb.dtype))

  return jax.grad(loss), params


def test_bf16_matmuls_are_close_and_bf16_in_the_backward_pass():
  texts = ["a short one", "a somewhat longer sentence about the weather today", "x y z"]
  e32, e16 = gm.load("tiny"), gm.load("tiny(matmul_dtype='bfloat16')")
  nnx.update(e16.model, nnx.state(e32.model))  # same weights
  a, b = e32.embed(texts), e16.embed(texts)
  cos = (a * b).sum(1)
  assert cos.min() > 0.999 and np.abs(a - b).max() > 1e-6  # close, and really lower precision
  batch = e32.prepare(texts)
  grad32, p = _grads(e32, batch)
  grad16, _ = _grads(e16, batch)
  v32 = np.concatenate([np.ravel(x) for x in jax.tree.leaves(grad32(p))])
  v16 = np.concatenate([np.ravel(x) for x in jax.tree.leaves(grad16(p))])
  assert np.dot(v32, v16) / np.linalg.norm(v32) / np.linalg.norm(v16) > 0.999
  # 6 dense matmuls per layer, each with one bf16 matmul forward and two backward.
  jaxpr = jax.make_jaxpr(grad16)(p)
  depth = e16.config.depth
  assert _count_bf16_dots(jaxpr.jaxpr) == 3 * 6 * depth


def _count_bf16_dots(jaxpr) -> int:
  n = 0
  for eq in jaxpr.eqns:
    if eq.primitive.name == "dot_general" and eq.invars[0].aval.dtype == jnp.bfloat16:
      n += 1
    for v in eq.params.values():
      for sub in (v if isinstance(v, (list, tuple)) else [v]):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          n += _count_bf16_dots(inner)
  return n


def test_auto_matmul_dtype_follows_the_cpu_flags(tmp_path):
  words = set(open("/proc/cpuinfo").read().split())  # the flags lines, read independently
  if jax.default_backend() != "cpu":
    want = "bfloat16"
  else:
    want = "bfloat16" if words & {"amx_bf16", "avx512_bf16"} else "float32"
  enc = gm.load("tiny(matmul_dtype='auto')")
  assert {layer.matmul_dtype for layer in enc.model.layers} == {want}
  assert backbone.resolve_matmul_dtype("float32") == "float32"
  enc.save(str(tmp_path))  # a saved "auto" model picks again where it is loaded
  assert gm.load(str(tmp_path)).config.matmul_dtype == "auto"
