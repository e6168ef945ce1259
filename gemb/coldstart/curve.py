"""The discoverability curve family, in one place.

``P(X) = sigmoid(c) * sigmoid(a + s * log1p(X / x0))`` with ``s >= 0``: non-decreasing in the
traffic X, with ceiling ``sigmoid(c)``. The model (`model.py`), the quotas and allocation
(`allocation.py`) and the planners (`policies/`) all evaluate it through `curve_prob`, in numpy or
inside jitted JAX code (``xp=jnp``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def curve_logits(a, s, c, x, x0: float, xp: Any = np):
  """The two logits (ceiling c, slope part z) of P(X) = sigmoid(c) * sigmoid(z)."""
  return c, a + s * xp.log1p(x / x0)


def curve_prob(a, s, c, x, x0: float, xp: Any = np):
  """P(X) of the curve family, elementwise with broadcasting; numpy (float64) or ``xp=jnp``."""
  if xp is np:
    from scipy.special import expit as sigmoid
    a, s, c, x = (np.asarray(v, np.float64) for v in (a, s, c, x))
  else:
    import jax
    sigmoid = jax.nn.sigmoid
  c, z = curve_logits(a, s, c, x, x0, xp)
  return sigmoid(c) * sigmoid(z)
