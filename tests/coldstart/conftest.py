"""Small synthetic platforms for the cold-start tests (no MovieLens needed)."""

import numpy as np
import pytest

from gemb.coldstart.calibrate import Calibration
from gemb.coldstart.simulator import SimConfig


def synthetic_calibration(n_users=64, n_items=120, d=4, seed=0) -> Calibration:
  rng = np.random.default_rng(seed)
  return Calibration(
      user_ud=rng.normal(0, 0.5, (n_users, d)).astype(np.float32),
      user_bias_u=rng.normal(0, 0.3, n_users).astype(np.float32),
      item_id=rng.normal(0, 0.5, (n_items, d)).astype(np.float32),
      item_bias_i=rng.normal(0, 0.6, n_items).astype(np.float32),
      mu=3.5, kappa=1.5, pivot=3.5,
      fresh_templates=np.arange(n_items // 2), established=np.arange(n_items // 2, n_items),
      rmse=0.0)


SMALL = SimConfig(periods=4, n_new=30, n_users=200, budget=600, n_min=10, m_recs=3, candidates=20,
                  slate=5, probe_users=64, full_traffic=200)


@pytest.fixture(scope="session")
def cal():
  return synthetic_calibration()


@pytest.fixture(scope="session")
def static(cal):
  rng = np.random.default_rng(1)
  return rng.normal(size=(cal.item_id.shape[0], 6)).astype(np.float32)


@pytest.fixture(scope="session")
def small():
  return SMALL
