"""Item cold-start exploration (after arXiv 2505.09033).

A MovieLens-calibrated platform simulator (`simulator`), the discoverability curve (`curve`) and
model P(G=1 | X, features) (`model`), engagement features (`engagement`), quotas and budgeted
allocation (`allocation`), the exploration cost (`cost`), exploration policies registered in
`gemb.policies` (`policies/`), the certified upper bound (`bound`), and the ``coldstart`` run kind
(`runner`).
"""

from gemb.coldstart.allocation import allocate, allocate_exact, bisect_quota, quota_closed_form
from gemb.coldstart.bound import hindsight_bound
from gemb.coldstart.calibrate import Calibration, calibrate
from gemb.coldstart.episode import Episode, collect_logs, run_episode
from gemb.coldstart.features import bow_embed, resolve_embedder, static_features
from gemb.coldstart.model import DiscoverabilityModel, expected_calibration_error, train
from gemb.coldstart.engagement import engagement_features, model_features
from gemb.coldstart.policies.protocol import (AllocationError, Policy, PolicyContext,
                                              check_allocation)
from gemb.coldstart.simulator import Observation, SimConfig, Simulator, admission

__all__ = [
    "AllocationError", "Calibration", "DiscoverabilityModel", "Episode", "Observation", "Policy",
    "PolicyContext", "SimConfig", "Simulator", "admission", "allocate", "allocate_exact",
    "bisect_quota", "bow_embed", "calibrate", "check_allocation", "collect_logs",
    "engagement_features", "expected_calibration_error", "hindsight_bound", "model_features",
    "quota_closed_form", "resolve_embedder", "run_episode", "static_features", "train",
]
