"""Exploration policies, registered in `gemb.policies`; one concept per module:

* `protocol`: the policy contract, `PolicyContext` and `check_allocation`;
* `baselines`: uniform, uniform_floor, epsilon_greedy, ucb, thompson;
* `discoverability`: the paper's policy, with three planners: `lookahead` (default), `greedy`,
  `quota` (the paper's plan);
* `truth`: `truth_heuristic`, a reference that reads the ground truth.

Register a factory, a class or a function returning a policy::

    @gemb.policies.register("my_policy")
    class MyPolicy:
      def __init__(self, share: float = 0.5): ...
      def allocate(self, obs, rng): ...

``gemb.policies.build("my_policy(share=0.3)")`` then makes one. Every allocation goes through
`check_allocation`, which rejects negative, non-finite, mis-shaped or over-budget ones and names
the policy. The certified upper bound is not a policy: `gemb.coldstart.bound`.
"""

from gemb.coldstart.engagement import (ENGAGEMENT_FEATURES, N_ENGAGEMENT, engagement_features,
                                       model_features)
from gemb.coldstart.policies.baselines import (UCB, EpsilonGreedy, Thompson, Uniform,
                                               UniformFloor)
from gemb.coldstart.policies.discoverability import Discoverability
from gemb.coldstart.policies.greedy import plan_from_curve
from gemb.coldstart.policies.lookahead import (LookaheadOptions, allocate_lookahead,
                                               lookahead_options)
from gemb.coldstart.policies.protocol import (AllocationError, Policy, PolicyContext,
                                              check_allocation)
from gemb.coldstart.policies.quota import allocate_quota, quota_allocation, quota_needs
from gemb.coldstart.policies.truth import TruthHeuristic

__all__ = [
    "ENGAGEMENT_FEATURES", "N_ENGAGEMENT", "UCB", "AllocationError", "Discoverability",
    "EpsilonGreedy", "LookaheadOptions", "Policy", "PolicyContext", "Thompson", "TruthHeuristic",
    "Uniform", "UniformFloor", "allocate_lookahead", "allocate_quota", "check_allocation",
    "engagement_features", "lookahead_options", "model_features", "plan_from_curve",
    "quota_allocation", "quota_needs",
]
