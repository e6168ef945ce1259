"""Checkpoint cleanup that cannot hurt: a step whose deletion (or save) was interrupted is
finished off when the folder is opened again; resume and soups only see complete steps."""

import os
import pathlib
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from gemb.checkpoint import INVENTORY, TRASH, Checkpointer


def _state(step):
  return {"params": {"w": jnp.full((4,), float(step))}, "opt": jnp.arange(3.0) + step}


def _saved(tmp_path, steps=(1, 2, 3), async_save=False):
  d = tmp_path / "ck"
  c = Checkpointer(d, every=1, keep=3, async_save=async_save)
  for s in steps:
    c.save(s, _state(s), {"pos": s})
  c.close()
  return d


def _data_file(step_dir):
  return sorted(p for p in (step_dir / "state").rglob("*") if p.is_file() and
                p.parent.name == "d")[0]


# Each damage removes or cuts part of the newest step (3), as a kill during its deletion would.
DAMAGE = {
    "metadata file gone": lambda s: (s / "_CHECKPOINT_METADATA").unlink(),
    "meta item gone": lambda s: shutil.rmtree(s / "meta"),
    "state item gone": lambda s: shutil.rmtree(s / "state"),
    "one data file gone": lambda s: _data_file(s).unlink(),
    "a data file cut short": lambda s: os.truncate(_data_file(s), 1),
    "inventory and state metadata gone": lambda s: ((s / INVENTORY).unlink(),
                                                    (s / "state" / "_METADATA").unlink()),
    "only the folder left": lambda s: [shutil.rmtree(p) if p.is_dir() else p.unlink()
                                       for p in list(s.iterdir())],
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_interrupted_deletion_is_finished_and_ignored(tmp_path, damage):
  d = _saved(tmp_path)
  DAMAGE[damage](d / "3")
  with pytest.warns(RuntimeWarning, match="incomplete"):
    c = Checkpointer(d, every=1, keep=3, async_save=False)
  assert c.all_steps() == [1, 2] and c.removed_incomplete == [3]
  assert not (d / "3").exists() and not (d / TRASH).exists()
  state, meta = c.restore(c.latest_step(), _state(0))
  np.testing.assert_array_equal(np.asarray(state["params"]["w"]), np.full(4, 2.0))
  assert meta["pos"] == 2
  # the run goes on: saving step 3 again gives the same checkpoint an uninterrupted run has
  c.save(3, _state(3), {"pos": 3})
  c.close()
  state, _ = Checkpointer(d, every=1, keep=3).restore(3, _state(0))
  np.testing.assert_array_equal(np.asarray(state["opt"]), np.arange(3.0) + 3)


def test_complete_steps_are_kept_and_trash_is_emptied(tmp_path):
  d = _saved(tmp_path, steps=(1, 2, 3, 4, 5), async_save=True)
  assert sorted(p.name for p in d.iterdir()) == ["3", "4", "5"]  # old steps gone, trash too
  (d / TRASH / "2").mkdir(parents=True)  # a kill while the trash was being emptied
  (d / TRASH / "2" / "x").write_text("half")
  c = Checkpointer(d, every=1, keep=3)
  assert c.all_steps() == [3, 4, 5] and c.removed_incomplete == []
  assert not (d / TRASH).exists()
  assert all((d / s / INVENTORY).exists() for s in ("3", "4", "5"))
  c.close()
