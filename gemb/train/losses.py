"""Contrastive losses over normalized embeddings, registered in `gemb.losses`.

Every loss has one signature::

    loss(q_bd, p_bd, n_bkd=None, *, q_id_b=None, p_id_b=None, n_id_bk=None, n_valid_bk=None,
         **hyper) -> scalar

``q_bd``/``p_bd`` are the (global) batch of query and positive embeddings, ``n_bkd`` optional hard
negatives (K per query). The integer ids identify *content*: two rows with the same ``q_id`` (or
the same ``p_id``) are the same query (positive), so an in-batch entry ``j != i`` with
``q_id[j] == q_id[i]`` or ``p_id[j] == p_id[i]`` is a false negative and is masked out. A hard
negative whose id equals the query's positive is masked too; ``n_valid_bk`` masks padded negatives.

Under ``jax.jit`` with the batch sharded over a mesh, the similarity matrix spans the whole global
batch: in-batch negatives come from every device, with no all-gather to write by hand.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from gemb import registry
from gemb.model import backbone
from gemb.errors import ConfigError, InputError

_NEG = -1e9  # a finite "minus infinity": keeps softmax gradients finite for masked entries

Array = jax.Array


def _check(q_bd: Array, p_bd: Array, n_bkd: Array | None) -> None:
  if q_bd.ndim != 2 or p_bd.shape != q_bd.shape:
    raise InputError(f"Losses need q_bd and p_bd of one shape (batch, dim); got {q_bd.shape} "
                     f"and {p_bd.shape}.")
  if n_bkd is not None and (n_bkd.ndim != 3 or n_bkd.shape[0] != q_bd.shape[0]
                            or n_bkd.shape[2] != q_bd.shape[1]):
    raise InputError(f"Hard negatives must have shape (batch, k, dim) = ({q_bd.shape[0]}, k, "
                     f"{q_bd.shape[1]}); got {n_bkd.shape}.")


def false_negative_mask(q_id_b: Array | None, p_id_b: Array | None, b: int) -> Array:
  """``keep_bb[i, j]``: whether in-batch entry j is a true negative (or the positive) for i."""
  eye_bb = jnp.eye(b, dtype=bool)
  same_bb = jnp.zeros((b, b), bool)
  if q_id_b is not None:
    same_bb |= q_id_b[:, None] == q_id_b[None, :]
  if p_id_b is not None:
    same_bb |= p_id_b[:, None] == p_id_b[None, :]
  return eye_bb | ~same_bb


def _hard_keep(p_id_b, n_id_bk, n_valid_bk, shape) -> Array:
  keep_bk = jnp.ones(shape, bool)
  if n_valid_bk is not None:
    keep_bk &= n_valid_bk.astype(bool)
  if n_id_bk is not None and p_id_b is not None:
    keep_bk &= n_id_bk != p_id_b[:, None]
  return keep_bk


@registry.losses.register("infonce")
def infonce(q_bd: Array, p_bd: Array, n_bkd: Array | None = None, *, temperature: float = 0.05,
            two_sided: bool = False, q_id_b: Array | None = None, p_id_b: Array | None = None,
            n_id_bk: Array | None = None, n_valid_bk: Array | None = None) -> Array:
  """Noise-contrastive loss: cosine similarity / temperature, in-batch (+ hard) negatives."""
  _check(q_bd, p_bd, n_bkd)
  if temperature <= 0:
    raise ConfigError(f"infonce: temperature must be > 0, got {temperature}.")
  b = q_bd.shape[0]
  keep_bb = false_negative_mask(q_id_b, p_id_b, b)
  logits_bb = jnp.where(keep_bb, q_bd @ p_bd.T / temperature, _NEG)
  logits_bn = logits_bb
  if n_bkd is not None:
    hard_bk = jnp.einsum("bd,bkd->bk", q_bd, n_bkd) / temperature
    hard_bk = jnp.where(_hard_keep(p_id_b, n_id_bk, n_valid_bk, hard_bk.shape), hard_bk, _NEG)
    logits_bn = jnp.concatenate([logits_bb, hard_bk], axis=1)
  diag = jnp.arange(b)
  loss = -jnp.mean(jax.nn.log_softmax(logits_bn, axis=1)[diag, diag])
  if two_sided:  # positives retrieve their query among the batch's queries
    loss_t = -jnp.mean(jax.nn.log_softmax(logits_bb.T, axis=1)[diag, diag])
    loss = 0.5 * (loss + loss_t)
  return loss


@registry.losses.register("siglip")
def siglip(q_bd: Array, p_bd: Array, n_bkd: Array | None = None, *, temperature: float = 0.1,
           bias: float = -10.0, q_id_b: Array | None = None, p_id_b: Array | None = None,
           n_id_bk: Array | None = None, n_valid_bk: Array | None = None) -> Array:
  """SigLIP's pairwise sigmoid loss (sum over pairs / batch), false negatives left out."""
  _check(q_bd, p_bd, n_bkd)
  if temperature <= 0:
    raise ConfigError(f"siglip: temperature must be > 0, got {temperature}.")
  b = q_bd.shape[0]
  keep_bb = false_negative_mask(q_id_b, p_id_b, b)
  logits_bb = q_bd @ p_bd.T / temperature + bias
  sign_bb = 2.0 * jnp.eye(b) - 1.0
  total = jnp.sum(jnp.where(keep_bb, jax.nn.log_sigmoid(sign_bb * logits_bb), 0.0))
  if n_bkd is not None:
    hard_bk = jnp.einsum("bd,bkd->bk", q_bd, n_bkd) / temperature + bias
    keep_bk = _hard_keep(p_id_b, n_id_bk, n_valid_bk, hard_bk.shape)
    total += jnp.sum(jnp.where(keep_bk, jax.nn.log_sigmoid(-hard_bk), 0.0))
  return -total / b


def _prefix(x: Array | None, d: int) -> Array | None:
  return None if x is None else backbone.matryoshka(x, d)


@registry.losses.register("matryoshka")
def matryoshka(q_bd: Array, p_bd: Array, n_bkd: Array | None = None, *,
               loss: str = "infonce", dims: Sequence[int] = (),
               weights: Sequence[float] | None = None,
               **ids: Any) -> Array:
  """Sums `loss` (a gemb.losses spec) over the renormalized prefixes of the configured dims."""
  inner: Callable[..., Array] = registry.losses.get(loss)
  full = q_bd.shape[-1]
  dims = tuple(dims) or (full,)
  bad = [d for d in dims if not 0 < d <= full]
  if bad:
    raise ConfigError(f"matryoshka: dims {bad} are outside 1..{full} (the embedding width).")
  weights = tuple(weights) if weights is not None else (1.0,) * len(dims)
  if len(weights) != len(dims):
    raise ConfigError(f"matryoshka: {len(weights)} weights for {len(dims)} dims; give one each.")
  return sum(w * inner(_prefix(q_bd, d), _prefix(p_bd, d), _prefix(n_bkd, d), **ids)
             for d, w in zip(dims, weights))
