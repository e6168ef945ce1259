"""Small synthetic platforms for the cold-start tests (no MovieLens needed)."""

import numpy as np
import pytest

from gemb.coldstart.calibrate import Calibration
from gemb.coldstart.simulator import SimConfig


SMALL = SimConfig(periods=4, n_new=30, n_users=200, budget=600, n_min=10, m_recs=3, candidates=20,
                  slate=5, probe_users=64, full_traffic=200)


@pytest.fixture(scope="session")
def cal():
  return Calibration.synthetic()


@pytest.fixture(scope="session")
def static(cal):
  rng = np.random.default_rng(1)
  return rng.normal(size=(cal.item_id.shape[0], 6)).astype(np.float32)


@pytest.fixture(scope="session")
def small():
  return SMALL
