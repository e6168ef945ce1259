"""Losses against direct numpy loops (values and gradients), false-negative masking included."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

import gemb
from gemb.errors import ConfigError, InputError
from gemb.train import losses


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _logsumexp(v):
  m = max(v)
  return m + np.log(sum(np.exp(x - m) for x in v))


def np_infonce(q, p, n=None, t=0.05, two_sided=False, qid=None, pid=None, nid=None, nvalid=None):
  b = len(q)
  def neg_ok(i, j):
    if i == j:
      return True
    if qid is not None and qid[i] == qid[j]:
      return False
    if pid is not None and pid[i] == pid[j]:
      return False
    return True
  total = 0.0
  for i in range(b):
    terms = [q[i] @ p[j] / t for j in range(b) if neg_ok(i, j)]
    if n is not None:
      for k in range(n.shape[1]):
        if (nvalid is None or nvalid[i, k]) and (nid is None or nid[i, k] != pid[i]):
          terms.append(q[i] @ n[i, k] / t)
    total += -(q[i] @ p[i] / t - _logsumexp(terms))
  loss = total / b
  if two_sided:
    total_t = 0.0
    for i in range(b):
      terms = [q[j] @ p[i] / t for j in range(b) if neg_ok(j, i)]
      total_t += -(q[i] @ p[i] / t - _logsumexp(terms))
    loss = 0.5 * (loss + total_t / b)
  return loss


def np_siglip(q, p, n=None, t=0.1, bias=-10.0, qid=None, pid=None):
  b = len(q)
  ls = lambda z: -np.log1p(np.exp(-z))
  total = 0.0
  for i in range(b):
    for j in range(b):
      if i != j and ((qid is not None and qid[i] == qid[j]) or (pid is not None and pid[i] == pid[j])):
        continue
      sign = 1.0 if i == j else -1.0
      total += ls(sign * (q[i] @ p[j] / t + bias))
    if n is not None:
      for k in range(n.shape[1]):
        total += ls(-(q[i] @ n[i, k] / t + bias))
  return -total / b


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  b, k, d = 6, 2, 8
  q = _unit(rng.normal(size=(b, d)))
  p = _unit(q + 0.5 * rng.normal(size=(b, d)))
  n = _unit(rng.normal(size=(b, k, d)))
  qid = np.array([0, 1, 2, 0, 4, 5])        # rows 0 and 3: same query
  pid = np.array([10, 11, 12, 13, 11, 15])  # rows 1 and 4: same positive
  nid = np.array([[20, 21], [11, 22], [23, 24], [25, 26], [27, 28], [29, 30]])  # (1,0) = its positive
  nvalid = np.ones((b, k), bool)
  nvalid[2, 1] = False
  return q, p, n, qid, pid, nid, nvalid


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("with_neg", [False, True])
@pytest.mark.parametrize("with_ids", [False, True])
def test_infonce_matches_numpy(batch, two_sided, with_neg, with_ids):
  q, p, n, qid, pid, nid, nvalid = batch
  n = n if with_neg else None
  ids = dict(qid=qid, pid=pid, nid=nid if with_neg else None,
             nvalid=nvalid if with_neg else None) if with_ids else {}
  want = np_infonce(q, p, n, 0.07, two_sided, **ids)
  jids = dict(q_id_b=ids.get("qid"), p_id_b=ids.get("pid"), n_id_bk=ids.get("nid"),
              n_valid_bk=ids.get("nvalid")) if with_ids else {}
  got = losses.infonce(jnp.asarray(q, jnp.float32), jnp.asarray(p, jnp.float32),
                       None if n is None else jnp.asarray(n, jnp.float32), temperature=0.07,
                       two_sided=two_sided, **jids)
  np.testing.assert_allclose(float(got), want, rtol=2e-5, atol=1e-5)


def test_mask_changes_the_loss(batch):
  q, p, _, qid, pid, *_ = batch
  masked = losses.infonce(q, p, q_id_b=qid, p_id_b=pid)
  unmasked = losses.infonce(q, p)
  assert abs(float(masked) - float(unmasked)) > 1e-3
  # Duplicate a pair exactly: unmasked, its twin is a negative as hard as the positive.
  q2 = np.concatenate([q, q[:1]])
  p2 = q2.copy()  # positives dominate, so a twin in the denominator costs about log 2
  ids_q, ids_p = np.arange(7) % 6, np.arange(7) % 6 + 100
  with_twin = float(losses.infonce(q2, p2, q_id_b=ids_q, p_id_b=ids_p))
  without = float(losses.infonce(q2, p2))
  assert with_twin < without - 0.1


def test_siglip_matches_numpy(batch):
  q, p, n, qid, pid, *_ = batch
  want = np_siglip(q, p, n, 0.1, -3.0, qid, pid)
  got = losses.siglip(q, p, n, temperature=0.1, bias=-3.0, q_id_b=qid, p_id_b=pid)
  np.testing.assert_allclose(float(got), want, rtol=2e-5)
  np.testing.assert_allclose(float(losses.siglip(q, p, bias=-3.0)), np_siglip(q, p, None, 0.1, -3.0),
                             rtol=2e-5)


def _num_grad(f, x, eps=1e-6):
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


@pytest.mark.parametrize("name", ["infonce", "siglip"])
def test_gradients_match_numpy_finite_differences(batch, name):
  q, p, n, qid, pid, nid, nvalid = batch
  if name == "infonce":
    ref = lambda qq: np_infonce(qq, p, n, 0.1, True, qid, pid, nid, nvalid)
    fn = lambda qq: losses.infonce(qq, p, n, temperature=0.1, two_sided=True, q_id_b=qid,
                                   p_id_b=pid, n_id_bk=nid, n_valid_bk=nvalid)
  else:
    ref = lambda qq: np_siglip(qq, p, n, 0.1, -3.0, qid, pid)
    fn = lambda qq: losses.siglip(qq, p, n, temperature=0.1, bias=-3.0, q_id_b=qid, p_id_b=pid)
  want = _num_grad(ref, q.astype(np.float64))
  got = np.asarray(jax.grad(fn)(jnp.asarray(q, jnp.float32)))
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
  assert np.abs(want).max() > 0.1  # the check is not vacuous


def test_matryoshka_sums_renormalized_prefixes(batch):
  q, p, n, *_ = batch
  got = losses.matryoshka(q, p, n, loss="infonce(temperature=0.1)", dims=(4, 8), weights=(1.0, 0.5))
  want = (np_infonce(_unit(q[:, :4]), _unit(p[:, :4]), _unit(n[..., :4]), 0.1)
          + 0.5 * np_infonce(q, p, n, 0.1))
  np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_registry_specs_and_bad_input(batch):
  q, p, *_ = batch
  f = gemb.losses.get("infonce(temperature=0.1, two_sided=True)")
  np.testing.assert_allclose(float(f(q, p)), np_infonce(q, p, None, 0.1, True), rtol=2e-5)
  assert {"infonce", "siglip", "matryoshka"} <= set(gemb.losses.names())
  with pytest.raises(InputError, match="one shape"):
    losses.infonce(q, p[:3])
  with pytest.raises(ConfigError, match="temperature"):
    losses.infonce(q, p, temperature=0.0)
  with pytest.raises(ConfigError, match="outside"):
    losses.matryoshka(q, p, dims=(4, 99))
