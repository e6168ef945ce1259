"""`discoverability`: the paper's policy, the model's P(G=1|X) per item planned every period."""

from __future__ import annotations

import numpy as np

from gemb import registry
from gemb.coldstart import allocation as alloc_lib
from gemb.coldstart.engagement import model_features
from gemb.coldstart.policies.greedy import allocate_greedy, plan_from_curve
from gemb.coldstart.policies.lookahead import allocate_lookahead, lookahead_options
from gemb.coldstart.policies.protocol import PolicyContext
from gemb.coldstart.policies.quota import quota_allocation
from gemb.coldstart.simulator import Observation
from gemb.errors import InputError


@registry.policies.register("discoverability")
class Discoverability:
  """The paper's policy: the model's P(G=1|X) per item, quotas at P = CF, re-planned every period.

  Three planners share the model (`plan=`):

  * ``"lookahead"`` (default): push or screen-then-decide per item, one price per impression
    (`policies.lookahead`); quotas at `cf` capped at `x_max`.
  * ``"greedy"``: one tangent step per item within `step_cap`, funded by gain per impression
    (`policies.greedy`); with `pace` the tangent is searched over the whole remaining quota.
  * ``"quota"``: the paper's plan: quota X_i with P(G_i=1|X_i) = CF, funded smallest first until
    the traffic or cost budget binds (`policies.quota`); items that never reach CF get `floor`.

  `cost_budget` (C_max per period) caps the summed exploration cost (`cost.cost_of`).
  """

  PLANS = ("lookahead", "greedy", "quota")

  def __init__(self, cf: float = 0.99, x_max: float = 400.0, cost_budget: float | None = None,
               grid: int = 24, plan: str = "lookahead", screens: tuple[int, ...] = (10, 20, 40),
               step_cap: float | None = 40.0, pace: bool = False, floor: float = 0.0):
    self.cf = alloc_lib.check_cf(cf)
    if plan not in self.PLANS:
      raise InputError(f"discoverability: plan must be one of {self.PLANS}, got {plan!r}.")
    if any(int(x) != x or x < 1 for x in screens):
      raise InputError(f"discoverability: screens must be positive whole impressions, got "
                       f"{screens!r}.")
    if not (grid >= 2 and x_max > 1 and floor >= 0):
      raise InputError(f"discoverability: need grid >= 2, x_max > 1 and floor >= 0; got grid="
                       f"{grid}, x_max={x_max}, floor={floor}.")
    if cost_budget is not None:
      alloc_lib.check_budget(cost_budget, "exploration cost budget")
    self.x_max, self.cost_budget, self.grid = float(x_max), cost_budget, int(grid)
    self.plan_kind, self.screens = plan, tuple(int(x) for x in screens)
    self.step_cap = step_cap  # greedy: most impressions an item may ask for in one period
    self.pace, self.floor = pace, float(floor)
    self.model = None
    self.stats = {"items_planned": 0, "finite_quota": 0}  # quota plan: share with a finite quota

  def prepare(self, ctx: PolicyContext) -> None:
    self.model = ctx.model()

  def _curve_fn(self):
    from gemb.coldstart import model as model_lib
    if self.model is None:
      raise InputError("policy 'discoverability' has no model: call prepare(ctx) first or set "
                       ".model to a trained DiscoverabilityModel.")
    return lambda feat: model_lib.curve(self.model, feat)

  def greedy_plan(self, obs: Observation) -> dict[str, np.ndarray]:
    """Greedy plan: quota, the traffic asked for now, its gain and its cost per item."""
    a, s, c = self._curve_fn()(model_features(obs))
    return plan_from_curve(a, s, c, self.model.x0, obs.impressions, self.cf, self.x_max,
                           self.grid, obs.clicks, obs.prior, self.step_cap, self.pace,
                           obs.exploit_rate)

  def allocate(self, obs: Observation, rng: np.random.Generator) -> np.ndarray:
    if len(obs) == 0:
      return np.zeros(0)
    if self.plan_kind == "lookahead":
      opts = lookahead_options(self._curve_fn(), self.model.x0, obs, self.cf, self.x_max,
                               self.grid, self.screens)
      return allocate_lookahead(opts, obs.budget, self.cost_budget)
    if self.plan_kind == "quota":
      a, s, c = self._curve_fn()(model_features(obs))
      x, q = quota_allocation(a, s, c, self.model.x0, obs.impressions, obs.clicks, obs.prior,
                              self.cf, obs.budget, self.cost_budget, self.floor,
                              obs.exploit_rate)
      self.stats["items_planned"] += len(obs)
      self.stats["finite_quota"] += int(q["finite"].sum())
      return x
    return allocate_greedy(self.greedy_plan(obs), obs.budget, self.cost_budget)
