"""One bidirectional transformer for every modality (Flax NNX), with Matryoshka output.

Token embeddings (text ids or projected patches) + sequence position + modality → BERT-style
post-LayerNorm encoder → mean pooling over real tokens → linear projection → first `dim` dims,
L2-normalised. The text path is exactly BERT's, so MiniLM's weights load unchanged
(`pretrained.py`). Parameters carry logical axis names ('vocab', 'embed', 'heads', 'mlp') as
`out_sharding` metadata; the recipe's rules map them to a mesh.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gemb.errors import ConfigError, InputError
from gemb.model.tokenizers import AUDIO, IMAGE, TEXT, VIDEO

Array = jax.Array
_normal = nnx.initializers.normal(0.02)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture and tokenizers of one model; saved as JSON beside the weights."""
  vocab_size: int = 30522
  width: int = 384
  depth: int = 6
  heads: int = 12
  mlp_dim: int = 1536
  max_len: int = 256               # tokens per item, [CLS] and [SEP] included
  max_positions: int = 512         # rows of the position table (≥ max_len)
  layer_norm_eps: float = 1e-12
  out_dim: int = 384
  mrl_dims: tuple[int, ...] = (64, 128, 256, 384)
  text_tokenizer: str = "wordpiece"
  image_tokenizer: str = "image_patches(image_size=224, patch=16)"
  audio_tokenizer: str = "audio_logmel()"
  video_tokenizer: str = "video_frames(frame_size=64, patch=16, max_frames=8)"
  truncate: bool = True            # over-long items: truncate with a warning, else InputError
  identity_projection: bool = False  # start the projection at identity (needs out_dim == width)
  length_buckets: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
  # Operand type of the layers' dense matmuls (accumulation stays float32). "bfloat16" runs them
  # on AMX/AVX512-BF16 units, several times the float32 rate, at ~1e-3 relative error per matmul.
  # "auto": bfloat16 where the machine has bf16 matrix units (`bf16_units`), else float32;
  # resolved when the model is built, so a saved "auto" model picks again where it is loaded.
  matmul_dtype: str = "float32"

  def __post_init__(self):
    import typing
    from gemb.config import _check_value
    hints = typing.get_type_hints(type(self))
    for f in dataclasses.fields(self):  # types first (lists become tuples), then ranges
      object.__setattr__(self, f.name, _check_value(f"model.{f.name}", hints[f.name],
                                                    getattr(self, f.name)))
    def need(ok: bool, what: str) -> None:
      if not ok:
        raise ConfigError(f"model config: {what}.")
    for k in ("vocab_size", "width", "heads", "mlp_dim", "max_len", "max_positions", "out_dim"):
      need(getattr(self, k) > 0, f"{k}={getattr(self, k)} must be > 0")
    need(self.depth >= 1, f"depth={self.depth} must be >= 1")
    need(self.width % self.heads == 0,
         f"heads={self.heads} must divide width={self.width} (each head gets width/heads dims)")
    need(self.max_len >= 2, f"max_len={self.max_len} must be >= 2 ([CLS] and [SEP] count)")
    need(self.max_positions >= self.max_len,
         f"max_positions={self.max_positions} must be >= max_len={self.max_len}")
    need(self.layer_norm_eps > 0, f"layer_norm_eps={self.layer_norm_eps} must be > 0")
    need(self.out_dim <= self.width,
         f"out_dim={self.out_dim} must be <= width={self.width} (the projection of a "
         f"width-dim pooled vector has rank <= width)")
    need(all(0 < d <= self.out_dim for d in self.mrl_dims),
         f"mrl_dims={self.mrl_dims} must lie in (0, out_dim={self.out_dim}]")
    need(list(self.mrl_dims) == sorted(set(self.mrl_dims)),
         f"mrl_dims={self.mrl_dims} must be increasing without repeats")
    need(all(b > 0 for b in self.length_buckets) and
         list(self.length_buckets) == sorted(set(self.length_buckets)),
         f"length_buckets={self.length_buckets} must be positive and increasing")
    need(self.matmul_dtype in ("float32", "bfloat16", "auto"),
         f"matmul_dtype={self.matmul_dtype!r}; use 'float32', 'bfloat16' or 'auto'")


def bf16_units() -> str | None:
  """What runs bf16 matmuls faster than float32 here: "amx_bf16", "avx512_bf16", the
  accelerator's platform ("gpu", "tpu"), or None (e.g. an AVX2-only CPU, where bf16 operands
  are converted in software and lose to float32)."""
  platform = jax.default_backend()
  if platform != "cpu":
    return platform
  try:
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                  if line.startswith("flags")), [])
  except OSError:
    return None
  return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


def resolve_matmul_dtype(dtype: str) -> str:
  """`ModelConfig.matmul_dtype` made concrete: "auto" → "bfloat16" with `bf16_units`, else
  "float32"."""
  if dtype == "auto":
    return "bfloat16" if bf16_units() else "float32"
  return dtype


def _p(init, *names):
  return nnx.with_partitioning(init, names)


def gelu(x: Array) -> Array:
  """BERT's exact GELU, x·Φ(x), written with erf as torch does.

  `jax.nn.gelu(approximate=False)` uses erfc, whose XLA:CPU kernel is ~3x slower than erf's; in
  float32 the two differ by < 1e-6 here.
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(0.7071067811865476)))


def dense(lin: nnx.Linear, x: Array, dtype: str) -> Array:
  """`lin(x)`, with the matmul's operands in `dtype` and a float32 result."""
  if dtype == "float32":
    return lin(x)
  return _low_precision_matmul(x, lin.kernel[...]) + lin.bias[...]


@jax.custom_vjp
def _low_precision_matmul(x_nd: Array, w_df: Array) -> Array:
  """x @ w with bfloat16 operands and float32 accumulation, in the backward pass too.

  Plain autodiff would run both backward matmuls in float32 (the cotangent is float32), which
  leaves two thirds of a train step's matmul FLOPs at the slow rate.
  """
  return _bf16_dot(x_nd, w_df)


def _bf16_dot(a: Array, b: Array) -> Array:
  return jnp.dot(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16),
                 preferred_element_type=jnp.float32)


def _lpm_fwd(x_nd, w_df):
  x16, w16 = x_nd.astype(jnp.bfloat16), w_df.astype(jnp.bfloat16)
  return _bf16_dot(x16, w16), (x16, w16)


def _lpm_bwd(res, g_nf):
  x16, w16 = res
  g16 = g_nf.astype(jnp.bfloat16)
  dx = _bf16_dot(g16, w16.T)
  dw = _bf16_dot(x16.reshape(-1, x16.shape[-1]).T, g16.reshape(-1, g16.shape[-1]))
  return dx, dw


_low_precision_matmul.defvjp(_lpm_fwd, _lpm_bwd)


class PatchEmbed(nnx.Module):
  """Patches → token embeddings: a linear map plus learned (t, row, col) position embeddings."""

  def __init__(self, patch_dim: int, width: int, max_pos: int, *, rngs: nnx.Rngs):
    self.patch_dim = patch_dim
    self.proj = nnx.Linear(patch_dim, width, kernel_init=_p(_normal, None, "embed"),
                           bias_init=_p(nnx.initializers.zeros, "embed"), rngs=rngs)
    self.pos = nnx.Param(_p(_normal, None, None, "embed")(rngs.params(), (3, max_pos, width)))

  def __call__(self, patches_bpk: Array, pos_bp3: Array) -> Array:
    emb_bpd = self.proj(patches_bpk[..., : self.patch_dim])
    pos = self.pos[...]
    for axis in range(3):
      emb_bpd = emb_bpd + pos[axis][pos_bp3[..., axis]]
    return emb_bpd


class Layer(nnx.Module):
  """BERT encoder layer: post-LN self-attention and GELU MLP."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    d, f = cfg.width, cfg.mlp_dim
    self.heads = cfg.heads
    self.matmul_dtype = resolve_matmul_dtype(cfg.matmul_dtype)
    lin = lambda i, o, a, b: nnx.Linear(i, o, kernel_init=_p(_normal, a, b),
                                        bias_init=_p(nnx.initializers.zeros, b), rngs=rngs)
    ln = lambda: nnx.LayerNorm(d, epsilon=cfg.layer_norm_eps,
                               scale_init=_p(nnx.initializers.ones, "embed"),
                               bias_init=_p(nnx.initializers.zeros, "embed"), rngs=rngs)
    self.query, self.key, self.value = (lin(d, d, "embed", "heads") for _ in range(3))
    self.out = lin(d, d, "heads", "embed")
    self.attn_norm = ln()
    self.mlp_in = lin(d, f, "embed", "mlp")
    self.mlp_out = lin(f, d, "mlp", "embed")
    self.mlp_norm = ln()

  def __call__(self, x_bld: Array, bias_b11l: Array) -> Array:
    b, l, d = x_bld.shape
    mm = lambda lin, t: dense(lin, t, self.matmul_dtype)
    split = lambda t: t.reshape(b, l, self.heads, d // self.heads)
    q, k, v = (split(mm(lin, x_bld)) for lin in (self.query, self.key, self.value))
    logits_bhlm = jnp.einsum("blhk,bmhk->bhlm", q, k) / jnp.sqrt(d // self.heads).astype(q.dtype)
    probs = jax.nn.softmax(logits_bhlm + bias_b11l, axis=-1)
    ctx_bld = jnp.einsum("bhlm,bmhk->blhk", probs, v).reshape(b, l, d)
    x_bld = self.attn_norm(x_bld + mm(self.out, ctx_bld))
    return self.mlp_norm(x_bld + mm(self.mlp_out, gelu(mm(self.mlp_in, x_bld))))


class EmbeddingModel(nnx.Module):
  """The whole embedding model; `__call__(batch, dim=None) -> emb_bd` (L2-normalised).

  `batch` is the dict that `Encoder.prepare` returns (see its docstring for the keys).
  Differentiable and jit-able; `dim` must be static under jit.
  """

  def __init__(self, cfg: ModelConfig, patch_specs: dict[int, tuple[int, int]], *,
               rngs: nnx.Rngs):
    """`patch_specs` maps a patch modality id to (patch_dim, max_pos) of its tokenizer."""
    self.cfg = cfg
    d = cfg.width
    self.word_emb = nnx.Embed(cfg.vocab_size, d, embedding_init=_p(_normal, "vocab", "embed"),
                              rngs=rngs)
    self.pos_emb = nnx.Embed(cfg.max_positions, d, embedding_init=_p(_normal, None, "embed"),
                             rngs=rngs)
    self.type_emb = nnx.Embed(2, d, embedding_init=_p(_normal, None, "embed"), rngs=rngs)
    # Zero at start: a pretrained text path is unchanged until training moves it.
    self.modality_emb = nnx.Embed(5, d, embedding_init=_p(nnx.initializers.zeros, None, "embed"),
                                  rngs=rngs)
    self.emb_norm = nnx.LayerNorm(d, epsilon=cfg.layer_norm_eps,
                                  scale_init=_p(nnx.initializers.ones, "embed"),
                                  bias_init=_p(nnx.initializers.zeros, "embed"), rngs=rngs)
    self.patch_modalities = tuple(sorted(patch_specs))
    self.patch_embeds = nnx.Dict({
        str(m): PatchEmbed(k, d, p, rngs=rngs) for m, (k, p) in sorted(patch_specs.items())})
    self.layers = nnx.List([Layer(cfg, rngs=rngs) for _ in range(cfg.depth)])
    proj_init = (nnx.initializers.constant(jnp.eye(d, cfg.out_dim)) if cfg.identity_projection
                 else _normal)
    self.proj = nnx.Linear(d, cfg.out_dim, kernel_init=_p(proj_init, "embed", None),
                           bias_init=_p(nnx.initializers.zeros, None), rngs=rngs)

  def embed_tokens(self, batch: dict) -> Array:
    ids_bl = batch["token_ids"]
    mod_bl = batch["modality"]
    x_bld = self.word_emb(ids_bl)
    if self.patch_modalities and batch["patches"].shape[1] > 0:
      patches, pmod_bp, ppos_bp3 = batch["patches"], batch["patch_modality"], batch["patch_pos"]
      pemb_bpd = jnp.zeros(patches.shape[:2] + (x_bld.shape[-1],), x_bld.dtype)
      for m in self.patch_modalities:
        pemb_bpd = jnp.where((pmod_bp == m)[..., None],
                             self.patch_embeds[str(m)](patches, ppos_bp3), pemb_bpd)
      from_patch = jnp.take_along_axis(pemb_bpd, batch["patch_index"][..., None], axis=1)
      x_bld = jnp.where(((mod_bl != TEXT) & (mod_bl != 0))[..., None], from_patch, x_bld)
    x_bld = (x_bld + self.pos_emb(batch["positions"]) + self.type_emb.embedding[0]
             + self.modality_emb(mod_bl))
    return self.emb_norm(x_bld)

  def _layers(self, x_bld: Array, bias: Array) -> Array:
    for layer in self.layers:
      x_bld = layer(x_bld, bias)
    return x_bld

  def encode(self, batch: dict) -> Array:
    """Unnormalised projected embeddings [B, out_dim] (mean pooled over real tokens)."""
    mask_bl = batch["mask"].astype(jnp.float32)
    bias_b11l = jnp.where(mask_bl > 0, 0.0, jnp.finfo(jnp.float32).min)[:, None, None, :]
    x_bld = self._layers(self.embed_tokens(batch), bias_b11l)
    pooled_bd = (jnp.einsum("bld,bl->bd", x_bld, mask_bl)
                 / jnp.maximum(mask_bl.sum(-1, keepdims=True), 1e-9))
    return self.proj(pooled_bd)

  def encode_packed(self, batch: dict, num_segments: int) -> Array:
    """Several items per row, told apart by ``segment_ids`` (1..S, 0 = padding) → [B, S, out].

    Attention is block-diagonal per segment, so each item sees only itself (as if alone);
    this removes almost all padding when many short items share a batch.
    """
    seg_bl = batch["segment_ids"]
    x_bld = self._layers(self.embed_tokens(batch), segment_bias(seg_bl))
    onehot_bls = (seg_bl[..., None] == jnp.arange(1, num_segments + 1)).astype(x_bld.dtype)
    pooled_bsd = (jnp.einsum("bld,bls->bsd", x_bld, onehot_bls)
                  / jnp.maximum(onehot_bls.sum(1)[..., None], 1e-9))
    return self.proj(pooled_bsd)

  def encode_items(self, batch: dict) -> Array:
    """A packed training batch (`Encoder.prepare_packed`) → [N, out], one row per item in order.

    Rows hold several items (block-diagonal attention, per-item positions); each token's
    ``item_index`` names its item, and mean pooling is a segment sum over those indices
    (padding tokens carry an out-of-range index, which the sum drops).
    """
    x_bld = self._layers(self.embed_tokens(batch), segment_bias(batch["segment_ids"]))
    tokens_n = batch["item_tokens"]
    sums_nd = jax.ops.segment_sum(x_bld.reshape(-1, x_bld.shape[-1]),
                                  batch["item_index"].reshape(-1), num_segments=tokens_n.shape[0])
    pooled_nd = sums_nd / jnp.maximum(tokens_n, 1).astype(sums_nd.dtype)[:, None]
    return self.proj(pooled_nd)

  def __call__(self, batch: dict, dim: int | None = None) -> Array:
    """emb_bd for a `prepare` batch (one item per row), emb_nd for a `prepare_packed` one."""
    enc = self.encode_items if "item_index" in batch else self.encode
    return matryoshka(enc(batch), check_dim(dim, self.cfg))


def segment_bias(seg_bl: Array) -> Array:
  """Additive attention bias [B, 1, L, L]: a token sees only its own segment (0 = padding)."""
  same_bll = (seg_bl[:, :, None] == seg_bl[:, None, :]) & (seg_bl[:, None, :] > 0)
  return jnp.where(same_bll, 0.0, jnp.finfo(jnp.float32).min)[:, None]


_WARNED_DIMS: set[tuple[tuple[int, ...], int]] = set()


def check_dim(dim: int | None, cfg: ModelConfig) -> int:
  """The output size for `dim`: any int from 1 to out_dim (None: out_dim). The embedding is the
  first `dim` dimensions, renormalised; a size that is not a trained Matryoshka size works but
  was not trained for, and gets a warning once per process and size."""
  if dim is None:
    return cfg.out_dim
  if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= cfg.out_dim:
    raise InputError(f"dim={dim!r}: pick an int from 1 to this model's output size {cfg.out_dim} "
                     f"(trained Matryoshka sizes: {sorted(set(cfg.mrl_dims) | {cfg.out_dim})}).")
  trained = tuple(sorted(set(cfg.mrl_dims) | {cfg.out_dim}))
  if int(dim) not in trained and (trained, int(dim)) not in _WARNED_DIMS:
    _WARNED_DIMS.add((trained, int(dim)))
    warnings.warn(f"dim={dim} is not one of this model's trained Matryoshka sizes {list(trained)}; "
                  "its embeddings are the first dims renormalised, as for the trained sizes, but "
                  "retrieval quality at this size was not trained for.", UserWarning, stacklevel=3)
  return int(dim)


def matryoshka(emb_bd: Array, dim: int | None = None) -> Array:
  """The first `dim` dimensions (all when None), re-normalised (eps as in torch's F.normalize).

  The one Matryoshka prefix-and-renormalise of gemb: the model, the losses and evaluation call it.
  A numpy array stays numpy (host-side evaluation); anything else goes through jax.numpy.
  """
  xp = np if isinstance(emb_bd, np.ndarray) else jnp
  emb = emb_bd if dim is None else emb_bd[..., :dim]
  return emb / xp.maximum(xp.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


def param_count(model: nnx.Module) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def patch_specs_of(tokenizers: Sequence) -> dict[int, tuple[int, int]]:
  return {t.modality: (t.patch_dim, t.max_pos) for t in tokenizers}


__all__ = ["ModelConfig", "EmbeddingModel", "PatchEmbed", "Layer", "matryoshka", "check_dim",
           "segment_bias", "bf16_units", "resolve_matmul_dtype", "gelu", "dense", "param_count", "IMAGE", "AUDIO", "VIDEO", "TEXT"]
