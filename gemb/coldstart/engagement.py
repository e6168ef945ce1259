"""Engagement features: what the discoverability model conditions on besides the static features.

One helper (`engagement`) turns counts of any shape into the ENGAGEMENT_FEATURES columns, for the
state observed now (`engagement_features`) and for the states the lookahead plan imagines.
"""

from __future__ import annotations

import numpy as np

from gemb.coldstart.simulator import Observation

ENGAGEMENT_FEATURES = ("log1p_impressions", "posterior_mean", "click_rate", "age_share",
                       "admitted", "log1p_recs")
N_ENGAGEMENT = len(ENGAGEMENT_FEATURES)  # columns of engagement_features


def engagement(impressions, clicks, age, recs, admitted, obs: Observation) -> np.ndarray:
  """The ENGAGEMENT_FEATURES columns [..., N_ENGAGEMENT] (float32) from counts of any shape."""
  pa, pb = obs.prior
  n32 = np.asarray(impressions, np.float32)  # whole counts: exact in float32
  cols = {"log1p_impressions": np.log1p(n32),
          "posterior_mean": (pa + clicks) / (pa + pb + np.asarray(impressions, np.float64)),
          "click_rate": clicks / np.maximum(n32, 1.0), "age_share": age / obs.config.age_cap,
          "admitted": np.asarray(admitted, np.float32),
          "log1p_recs": np.log1p(np.asarray(recs, np.float32))}
  shape = np.broadcast_shapes(*(np.shape(v) for v in cols.values()))
  return np.stack([np.broadcast_to(cols[k], shape) for k in ENGAGEMENT_FEATURES],
                  -1).astype(np.float32)


def engagement_features(obs: Observation) -> np.ndarray:
  """[a, N_ENGAGEMENT] engagement so far of the items in `obs`."""
  return engagement(obs.impressions, obs.clicks, obs.age, obs.recs, obs.admitted, obs)


def model_features(obs: Observation) -> np.ndarray:
  """[a, f + N_ENGAGEMENT]: static features then engagement, the model's input."""
  return np.concatenate([obs.features_af, engagement_features(obs)], 1)
