"""Trainer on the toy model: learning, freezing, kill-and-resume, NaN, wrong checkpoints."""

import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import toy
from gemb import sharding
from gemb.errors import ConfigError
from gemb import checkpoint
from gemb.train import data, trainer as T

HERE = pathlib.Path(__file__).parent


def _trainer(model=None, **optim):
  mesh = sharding.make_mesh({"data": -1})
  o = dict(lr=1e-2, total_steps=60)
  o.update(optim)
  return T.Trainer(model or toy.ToyEncoder(), mesh=mesh, rules=sharding.resolve_rules("fsdp"),
                   optim=T.OptimConfig(**o), loss="infonce(temperature=0.1)")


def _recall(model, pairs):
  q = np.asarray(model(toy.prepare([p["query"] for p in pairs])))
  d = np.asarray(model(toy.prepare([p["positive"] for p in pairs])))
  return float(np.mean(np.argmax(q @ d.T, axis=1) == np.arange(len(pairs))))


def test_training_beats_untrained_on_held_out_pairs():
  tr = _trainer(schedule="constant")
  held_out = toy.pairs(64, seed=99)
  before = _recall(tr.model(), held_out)
  mix = data.Mixture({"toy": toy.pairs(512, 0, 2)}, {"toy": 1.0}, 32)
  out = T.fit(tr, mix, data.PairBatcher(toy.prepare, hard_negatives=2), 60, log_every=60)
  after = _recall(tr.model(), held_out)
  assert before < 0.1 and after > before + 0.15, (before, after)
  assert out["loss"] < 2.0


def test_freeze_and_lr_groups():
  tr = _trainer(param_groups=[("^embed/", 0.0), ("^up/", 0.1)], warmup_steps=0,
                schedule="constant")
  p0 = jax.tree.map(np.asarray, tr.params)
  batch = data.PairBatcher(toy.prepare)(toy.pairs(8), "toy", 0)
  tr.step(batch)
  p1 = jax.tree.map(np.asarray, tr.params)
  np.testing.assert_array_equal(p1["embed"]["embedding"], p0["embed"]["embedding"])
  d_up = np.abs(p1["up"]["kernel"] - p0["up"]["kernel"]).max()
  d_down = np.abs(p1["down"]["kernel"] - p0["down"]["kernel"]).max()
  # Adam's first step moves each weight by about lr; the "up" group has a tenth of it.
  np.testing.assert_allclose(d_down, 1e-2, rtol=0.05)
  np.testing.assert_allclose(d_up, 1e-3, rtol=0.05)
  with pytest.raises(ConfigError, match="match no parameter"):
    _trainer(param_groups=[("^backbone/", 0.0)])


def test_frozen_parameters_get_no_gradient_computation():
  model = toy.ToyEncoder()
  frozen = _trainer(model, param_groups=[("^(embed|up)/", 0.0)])
  free = _trainer(model)
  batch = data.PairBatcher(toy.prepare)(toy.pairs(8), "toy", 0)
  loss_f, g_f = frozen.loss_and_grad(batch)
  loss_u, g_u = free.loss_and_grad(batch)
  np.testing.assert_allclose(float(loss_f), float(loss_u), rtol=1e-6)
  assert not np.any(np.asarray(g_f["embed"]["embedding"]))
  assert not np.any(np.asarray(g_f["up"]["kernel"]))
  np.testing.assert_allclose(np.asarray(g_f["down"]["kernel"]), np.asarray(g_u["down"]["kernel"]),
                             rtol=1e-5, atol=1e-7)
  # The frozen kernel's weight-gradient matmul is gone from the compiled program.
  gb = frozen.global_batch(batch)
  dots = lambda tr: tr._jit_grad.lower(tr.params, tr.rest, gb).as_text().count("dot_general")
  assert dots(frozen) < dots(free), (dots(frozen), dots(free))


def _run_worker(workdir, steps, kill_at, out):
  return subprocess.run([sys.executable, str(HERE / "resume_worker.py"), str(workdir), str(steps),
                         str(kill_at), str(out)], capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_kill_and_resume_gives_identical_parameters(tmp_path):
  steps = 12
  ref = _run_worker(tmp_path / "ref", steps, -1, tmp_path / "ref.npz")
  assert ref.returncode == 0, ref.stderr[-3000:]
  killed = _run_worker(tmp_path / "run", steps, 8, tmp_path / "never.npz")
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert not (tmp_path / "never.npz").exists()
  resumed = _run_worker(tmp_path / "run", steps, -1, tmp_path / "resumed.npz")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
  assert int(a["resumed_from"]) == 0 and int(b["resumed_from"]) in (3, 6)
  for k in a.files:
    if k == "resumed_from":
      continue
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  steps_kept = sorted(int(p.name) for p in (tmp_path / "run" / "ckpt").iterdir()
                      if p.name.isdigit())
  assert steps_kept == [9, 12]  # keep-last-2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  from gemb.train import losses

  def poisonable(q, p, n=None, **ids):  # NaN when the batch carries the sentinel id -1
    bad = (ids["q_id_b"] == -1).any()
    return losses.infonce(q, p, n, **ids) + jax.numpy.where(bad, jax.numpy.nan, 0.0)

  mesh = sharding.make_mesh({"data": -1})
  tr = T.Trainer(toy.ToyEncoder(), mesh=mesh, rules=sharding.resolve_rules("dp"),
                 optim=T.OptimConfig(lr=1e-3, total_steps=10), loss=poisonable)
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", every=2, keep=3, async_save=False)
  good = data.Mixture({"good": toy.pairs(64)}, {"good": 1.0}, 8)

  class Poisoned:  # step 3 is a batch of task "poison"
    global_batch = 8

    def local_pairs(self, step):
      return ("poison", good.local_pairs(step)[1]) if step == 3 else good.local_pairs(step)

    def prompt_task(self, name):  # the batcher sees "poison" as the task of step 3
      return name

  class PoisonBatcher(data.PairBatcher):
    def __call__(self, pairs, task, step):
      out = super().__call__(pairs, task, step)
      if task == "poison":
        out["q_id"][:] = -1
      return out

  with pytest.raises(T.TrainingDivergedError, match=r"step 3: the loss is nan .*task 'poison'"):
    T.fit(tr, Poisoned(), PoisonBatcher(toy.prepare), 10, checkpointer=ckpt)
  assert ckpt.latest_step() == 2
  state, meta = ckpt.restore(2, tr.state())
  assert meta["step"] == 2
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))


def test_checkpoint_of_another_model_shape_is_refused(tmp_path):
  small = _trainer()
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", every=1, keep=1, async_save=False)
  ckpt.save(1, small.state(), {})
  ckpt.wait()
  big = _trainer(toy.ToyEncoder(width=24))
  with pytest.raises(ConfigError, match=r"another model: parameter .* has shape"):
    ckpt.restore(1, big.state())


def test_checkpointer_prune_keeps_the_latest_on_disk(tmp_path):
  tr = _trainer()
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", every=1, keep=3, async_save=False)
  for step in (1, 2, 3):
    ckpt.save(step, tr.state(), {})
  ckpt.wait()

  def on_disk():
    return sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit())
  assert on_disk() == [1, 2, 3]
  assert ckpt.prune(1) == [1, 2] and on_disk() == [3]
  ckpt.restore(3, tr.state())  # the kept one still restores
  assert ckpt.prune(0) == [3] and on_disk() == []
  with pytest.raises(ConfigError, match="keep_finished must be >= 0"):
    ckpt.prune(-1)
  ckpt.close()
