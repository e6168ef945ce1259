import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gemb.coldstart import model as M
from gemb.coldstart.allocation import curve_prob, quota_closed_form
from gemb.errors import ConfigError, InputError

from _helpers import needs_movielens


def test_probability_is_non_decreasing_in_traffic_for_any_weights():
  rng = np.random.default_rng(0)
  for seed in range(3):
    model = M.DiscoverabilityModel(7, hidden=16, rngs=nnx.Rngs(seed))
    feat = rng.normal(0, 3, (50, 7)).astype(np.float32)
    xs = np.concatenate([[0.0], np.geomspace(0.1, 1e5, 40)]).astype(np.float32)
    p = np.stack([np.asarray(model(jnp.asarray(feat), jnp.full(50, x))) for x in xs], 1)
    assert np.all(np.diff(p, axis=1) >= -1e-7)
    assert np.all((p >= 0) & (p <= 1))


def _synthetic_logs(n=6000, seed=0):
  # Items whose first feature is high need little traffic; the second feature caps the odds.
  rng = np.random.default_rng(seed)
  f = rng.normal(size=(n, 3)).astype(np.float32)
  x = np.exp(rng.uniform(0, np.log(500), n)).astype(np.float32)
  p = 1 / (1 + np.exp(-f[:, 1] - 1)) / (1 + np.exp(-(2 * np.log1p(x / 10) - 3 + 1.5 * f[:, 0])))
  return f, x, (rng.random(n) < p).astype(np.float32), p


def test_training_fits_and_is_calibrated():
  f, x, y, p_true = _synthetic_logs()
  res = M.train(f, x, y, hidden=32, steps=600, seed=0)
  base = -np.mean(y * np.log(y.mean()) + (1 - y) * np.log(1 - y.mean()))
  assert res.val_loss < base - 0.05  # learns beyond the base rate
  assert res.ece < 0.08  # ~1200 validation rows: sampling noise alone gives ~0.03
  p = M.predict(res.model, f, x)
  assert np.corrcoef(p, p_true)[0, 1] > 0.9
  # The closed-form quota of the learned curve hits the CF it was asked for.
  a, s, c = M.curve(res.model, f[:20])
  q = quota_closed_form(a, s, c, 0.3, res.model.x0)
  ok = np.isfinite(q) & (q > 0)
  assert ok.any()
  np.testing.assert_allclose(curve_prob(a[ok], s[ok], c[ok], q[ok], res.model.x0), 0.3, atol=1e-4)


def test_ensemble_averages_its_members_and_varies_less_across_seeds():
  f, x, y, _ = _synthetic_logs(3000, seed=1)
  probe_f, probe_x, _, _ = _synthetic_logs(200, seed=2)
  ens = M.DiscoverabilityModel(3, hidden=8, members=3, rngs=nnx.Rngs(0))
  per = [np.asarray(v) for v in ens.member_curves(jnp.asarray(probe_f))]
  assert per[0].shape == (3, 200) and np.ptp(per[0], axis=0).min() > 0  # members differ
  for k, v in enumerate(ens.curve(jnp.asarray(probe_f))):
    np.testing.assert_allclose(np.asarray(v), per[k].mean(0), rtol=1e-5, atol=1e-6)
  # Retrained on the same logs with other seeds, five members together move less than one.
  spread = {}
  for members in (1, 5):
    p = [M.predict(M.train(f, x, y, hidden=16, steps=150, seed=s, members=members).model,
                   probe_f, probe_x) for s in range(4)]
    spread[members] = float(np.std(p, axis=0).mean())
  assert spread[5] < 0.7 * spread[1], spread


def test_ece_of_a_perfect_and_a_wrong_predictor():
  y = np.array([0, 1] * 50, np.float32)
  assert M.expected_calibration_error(np.full(100, 0.5), y)[0] == pytest.approx(0.0)
  assert M.expected_calibration_error(np.full(100, 0.9), y)[0] == pytest.approx(0.4)


def test_missing_features_are_rejected():
  f, x, y, _ = _synthetic_logs(100)
  f[3, 1] = np.nan
  with pytest.raises(InputError, match="missing features"):
    M.train(f, x, y, steps=1)


def test_content_principal_components_keep_the_geometry_of_low_rank_embeddings():
  from gemb.coldstart.features import principal_components
  from gemb.errors import ConfigError
  rng = np.random.default_rng(5)
  emb = (rng.normal(size=(300, 4)) @ rng.normal(size=(4, 64))).astype(np.float32)  # rank 4
  pc = principal_components(emb, 4)
  assert pc.shape == (300, 4)
  d_full = np.linalg.norm(emb[:50, None] - emb[None, :50], axis=-1)
  d_pc = np.linalg.norm(pc[:50, None] - pc[None, :50], axis=-1)
  np.testing.assert_allclose(d_pc, d_full, rtol=1e-3, atol=1e-3)
  var = pc.var(0)
  assert np.all(np.diff(var) <= 1e-3 * var[0])  # ordered by explained variance
  with pytest.raises(ConfigError, match="content_dims"):
    principal_components(emb, 65)


def test_curve_pads_rows_without_changing_them():
  # Row counts are padded to powers of two so that changing item counts reuse compilations; the
  # padding must not leak into the real rows, and no rows give empty arrays.
  model = M.DiscoverabilityModel(5, hidden=8, members=2, rngs=nnx.Rngs(1))
  f = np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)
  full = M.curve(model, f)
  for n in (1, 5, 257):
    part = M.curve(model, f[:n])
    for k in range(3):
      assert part[k].shape == (n,)
      np.testing.assert_allclose(part[k], full[k][:n], rtol=1e-5, atol=1e-6)
  chunked = M.curve(model, f, chunk=256)  # chunks of 256, 256 and 88 rows
  np.testing.assert_allclose(chunked[0], full[0], rtol=1e-5, atol=1e-6)
  assert all(v.shape == (0,) for v in M.curve(model, f[:0]))


def _memorisable(n_groups=60, rows=40, seed=0):
  """Labels that depend on the group only (rate 0.1 or 0.9, drawn per group) and features that
  name the group: learnable within a group, no signal across groups."""
  rng = np.random.default_rng(seed)
  emb_gf = rng.normal(size=(n_groups, 8)).astype(np.float32)
  q_g = np.where(rng.random(n_groups) < 0.5, 0.1, 0.9)
  g = np.repeat(np.arange(n_groups), rows)
  y = (rng.random(len(g)) < q_g[g]).astype(np.float32)
  return emb_gf[g], rng.uniform(1, 100, len(g)).astype(np.float32), y, g


def test_held_out_groups_reveal_memorisation_that_a_random_split_hides():
  feat, x, y, g = _memorisable()
  h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))  # noqa: E731
  kw = dict(hidden=32, steps=600, batch=256, lr=1e-2, seed=1)
  rows = M.train(feat, x, y, **kw)
  groups = M.train(feat, x, y, groups=g, **kw)
  stopped = M.train(feat, x, y, groups=g, eval_every=25, **kw)
  # A random split scores rows of groups it trained on: well below H(0.5), toward H(0.1).
  assert rows.val_loss < h(0.5) - 0.2
  # Held-out groups carry no signal: nothing beats H(0.5) there, and memorising does worse.
  assert groups.val_loss > h(0.5) and stopped.val_loss > h(0.5) - 0.02
  # Early stopping on the held-out groups keeps an earlier, better step.
  assert stopped.val_loss < groups.val_loss and stopped.steps < 600
  # The reported training loss is the kept step's: memorising drives the last step's far lower.
  assert stopped.train_loss > groups.train_loss
  with pytest.raises(InputError, match="one id per row"):
    M.train(feat, x, y, groups=g[:-1])
  with pytest.raises(InputError, match="cannot be split"):
    M.train(feat, x, y, groups=np.zeros_like(g), val_fraction=0.2)


@needs_movielens
def test_item_features_keep_the_columns_asked_for():
  from gemb.coldstart.features import bow_embed, static_features
  from gemb.data.movielens import load_movielens_100k
  ml = load_movielens_100k()
  full = static_features(ml, bow_embed(16), content_dims=4)
  n_meta = ml.genres_ig.shape[1] + 2  # genres, year, has-year
  assert full.shape == (ml.n_items, 4 + n_meta)
  np.testing.assert_array_equal(static_features(ml, None, 4, include="metadata"), full[:, 4:])
  called = []
  none = static_features(ml, lambda texts: called.append(1), include="none")
  assert none.shape == (ml.n_items, 0) and not called  # the embedder is never run
  with pytest.raises(ConfigError, match="item_features must be one of"):
    static_features(ml, None, include="titles")
