"""One trainer: a contrastive train step compiled with `jax.jit` over a device mesh.

The model is any `nnx.Module` whose ``__call__(batch) -> emb_bd`` returns normalized embeddings
and whose parameters carry logical axis names. Parameters, optimizer state and the global batch
are laid out by the recipe's mesh and logical-axis rules (`gemb.sharding`); the loss sees the
whole global batch, so in-batch negatives span every device and process.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from gemb import registry, sharding
from gemb.checkpoint import Checkpointer
from gemb.errors import ConfigError, GembError
from gemb.io import atomic_path
from gemb.train.data import Mixture, PairBatcher

Hook = Callable[["Trainer", int, dict], None]
# validate(trainer) -> {metric: value} on the validation split (gemb.train.runner builds it from
# the gemb.evaluation evaluators); fit calls it at the end of the stage.
Validate = Callable[["Trainer"], Mapping[str, float]]


class TrainingDivergedError(GembError, FloatingPointError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class OptimConfig:
  lr: float = 1e-4
  warmup_steps: int = 0
  warmup_frac: float = 0.0  # warmup over this fraction of the stage; the larger of the two wins
  total_steps: int = 1000
  schedule: str = "cosine"  # or "constant"
  end_lr_frac: float = 0.0
  weight_decay: float = 0.0
  clip_norm: float = 1.0
  b1: float = 0.9
  b2: float = 0.999
  # (regex on "a/b/kernel", lr multiplier); first match wins; multiplier 0 freezes.
  param_groups: Sequence[tuple[str, float]] = ()

  def __post_init__(self):
    checks = [(self.lr > 0, f"lr={self.lr} must be > 0"),
              (self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps} must be >= 0"),
              (0.0 <= self.warmup_frac < 1.0, f"warmup_frac={self.warmup_frac} must be in [0, 1)"),
              (self.total_steps >= 0, f"total_steps={self.total_steps} must be >= 0"),
              (self.schedule in ("cosine", "constant"),
               f"schedule={self.schedule!r}; use 'cosine' or 'constant'"),
              (0.0 <= self.end_lr_frac <= 1.0, f"end_lr_frac={self.end_lr_frac} must be in [0, 1]"),
              (self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0"),
              (self.clip_norm >= 0, f"clip_norm={self.clip_norm} must be >= 0 (0: no clipping)"),
              (0 <= self.b1 < 1 and 0 <= self.b2 < 1, f"b1={self.b1}, b2={self.b2} must be in [0, 1)")]
    for ok, what in checks:
      if not ok:
        raise ConfigError(f"optim.{what}.")

  @classmethod
  def from_config(cls, c: Mapping[str, Any], total_steps: int, where: str = "optim"
                  ) -> "OptimConfig":
    from gemb.config import dataclass_from
    o = dataclass_from(cls, {**dict(c), "total_steps": total_steps}, where=where)
    # Resolved here, not in the recipe, so `--set stages.X.steps=` rescales the warmup too.
    o.warmup_steps = max(int(o.warmup_steps), round(o.warmup_frac * total_steps))
    return o


def schedule_of(o: OptimConfig) -> optax.Schedule:
  if o.schedule == "constant":
    main = optax.constant_schedule(o.lr)
  elif o.schedule == "cosine":
    main = optax.cosine_decay_schedule(o.lr, max(o.total_steps - o.warmup_steps, 1),
                                       alpha=o.end_lr_frac)
  else:
    raise ConfigError(f"Unknown lr schedule {o.schedule!r}; use 'cosine' or 'constant'.")
  if o.warmup_steps <= 0:
    return main
  warm = optax.linear_schedule(0.0, o.lr, o.warmup_steps)
  return optax.join_schedules([warm, main], [o.warmup_steps])


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def param_group_labels(params: Any, groups: Sequence[tuple[str, float]]) -> Any:
  """Label tree: "g<i>" for the first group regex (searched in "a/b/kernel") that matches."""
  compiled = []
  for i, g in enumerate(groups):
    if not (isinstance(g, (tuple, list)) and len(g) == 2):
      raise ConfigError(f"optim.param_groups[{i}] must be (regex, lr_multiplier); got {g!r}.")
    try:
      compiled.append(re.compile(g[0]))
    except re.error as e:
      raise ConfigError(f"optim.param_groups[{i}]: bad regex {g[0]!r}: {e}.") from None
  used = set()

  def label(path, _):
    s = _path_str(path)
    for i, rx in enumerate(compiled):
      if rx.search(s):
        used.add(i)
        return f"g{i}"
    return "default"

  labels = jax.tree_util.tree_map_with_path(label, params)
  unused = [groups[i][0] for i in range(len(groups)) if i not in used]
  if unused:
    example = _path_str(jax.tree_util.tree_flatten_with_path(params)[0][0][0])
    raise ConfigError(f"optim.param_groups regexes {unused} match no parameter; parameter names "
                      f"look like {example!r}.")
  return labels


def _group_mults(o: OptimConfig) -> dict[str, float]:
  return {"default": 1.0, **{f"g{i}": float(g[1]) for i, g in enumerate(o.param_groups)}}


def frozen_mask(o: OptimConfig, params: Any) -> Any:
  """True for the parameters whose group has lr multiplier 0."""
  mults = _group_mults(o)
  return jax.tree.map(lambda lb: mults[lb] == 0.0, param_group_labels(params, o.param_groups))


def build_optimizer(o: OptimConfig, params: Any) -> optax.GradientTransformation:
  """clip -> per-group AdamW with a scaled schedule; frozen groups get zero updates and no state."""
  sched = schedule_of(o)
  labels = param_group_labels(params, o.param_groups)
  mults = _group_mults(o)
  decay_mask = jax.tree.map(lambda x: np.ndim(x) >= 2, params)  # no decay on biases and scales
  frozen = frozen_mask(o, params)
  transforms = {}
  for name, m in mults.items():
    if m == 0.0:
      transforms[name] = optax.set_to_zero()
    else:
      transforms[name] = optax.adamw(lambda s, m=m: m * sched(s), b1=o.b1, b2=o.b2,
                                     weight_decay=o.weight_decay, mask=decay_mask)
  chain = [optax.masked(optax.set_to_zero(), frozen)]  # frozen grads never enter the clip norm
  if o.clip_norm and o.clip_norm > 0:
    chain.append(optax.clip_by_global_norm(o.clip_norm))
  chain.append(optax.multi_transform(transforms, labels))
  return optax.chain(*chain)


def _leading_spec(x: np.ndarray, batch_axes) -> P:
  return P(batch_axes, *([None] * (np.ndim(x) - 1)))


def _put(tree: Any, shardings: Any) -> Any:
  """`jax.device_put` from host copies. With several processes, jax 0.10 builds a broken array
  (its `addressable_shards` raise, so Orbax cannot save it) when a committed single-device array
  is put on a sharding replicated over the processes; from numpy it builds a correct one."""
  host = jax.tree.map(lambda x: np.asarray(x) if not isinstance(x, jax.Array)
                      or x.is_fully_addressable else x, tree)
  return jax.device_put(host, shardings)


class Trainer:
  """Holds the sharded parameters and optimizer state; `step` runs one jitted update."""

  def __init__(self, model: nnx.Module, *, mesh: jax.sharding.Mesh,
               rules: Mapping[str, Any], optim: OptimConfig, loss: str | Callable = "infonce",
               seed: int = 0):
    self.mesh, self.rules, self.optim = mesh, dict(rules), optim
    self.loss_fn = registry.losses.get(loss) if isinstance(loss, str) else loss
    self.graphdef, params_state, rest_state = nnx.split(model, nnx.Param, ...)
    self.param_specs = sharding.param_specs(params_state, self.rules, mesh)
    self.param_shardings = sharding.named(mesh, self.param_specs)
    replicated = NamedSharding(mesh, P())
    self.params = _put(nnx.to_pure_dict(params_state), self.param_shardings)
    self.rest = _put(nnx.to_pure_dict(rest_state), replicated)
    self.tx = build_optimizer(optim, self.params)
    self.frozen = frozen_mask(optim, self.params)
    self.schedule = schedule_of(optim)
    # mu/nu inherit the parameters' layout; scalars (counts) land on one device: replicate them.
    mesh_devices = set(mesh.devices.flat)
    self.opt_state = jax.tree.map(
        lambda x: (x if set(x.sharding.device_set) == mesh_devices
                   else _put(x, replicated)),
        jax.jit(self.tx.init)(self.params))
    self.opt_shardings = jax.tree.map(lambda x: x.sharding, self.opt_state)
    self.step_num = 0
    # Raw uint32, checkpointable as is; replicated over the mesh, since Orbax refuses to save
    # an array that lives on one process's device in a multi-process run.
    self.rng = _put(jax.random.key_data(jax.random.key(seed)), replicated)
    self._batch_axes = self.rules.get("batch")
    self._jit_step = jax.jit(
        self._step, donate_argnums=(0, 1),
        in_shardings=(self.param_shardings, self.opt_shardings, replicated, None),
        out_shardings=(self.param_shardings, self.opt_shardings, replicated))
    self._jit_grad = jax.jit(self._loss_and_grad,
                             out_shardings=(replicated, self.param_shardings))

  # -- the compiled computation -----------------------------------------------------------------

  def _loss(self, params, rest, batch):
    # Frozen weights get no gradient at all, so XLA drops their weight-gradient matmuls (a third
    # of a layer's backward) instead of computing them for the optimizer to zero.
    params = jax.tree.map(lambda p, f: jax.lax.stop_gradient(p) if f else p, params, self.frozen)
    model = nnx.merge(self.graphdef, params, rest)
    n_bkd = None
    if "packed" in batch:  # every item of the batch in shared rows: queries, positives, negatives
      emb_nd = model(batch["packed"])
      b = batch["q_id"].shape[0]
      q_bd, p_bd = emb_nd[:b], emb_nd[b:2 * b]
      if "n_valid" in batch:
        n_bkd = emb_nd[2 * b:].reshape(b, batch["n_valid"].shape[1], -1)
    else:
      q_bd = model(batch["query"])
      p_bd = model(batch["positive"])
      if "negatives" in batch:
        b, k = batch["n_valid"].shape
        n_bkd = model(batch["negatives"]).reshape(b, k, -1)
    return self.loss_fn(q_bd, p_bd, n_bkd, q_id_b=batch.get("q_id"), p_id_b=batch.get("p_id"),
                        n_id_bk=batch.get("n_id"), n_valid_bk=batch.get("n_valid"))

  def _loss_and_grad(self, params, rest, batch):
    return jax.value_and_grad(self._loss)(params, rest, batch)

  def _step(self, params, opt_state, rest, batch):
    loss, grads = self._loss_and_grad(params, rest, batch)
    updates, opt_state = self.tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

  # -- host side --------------------------------------------------------------------------------

  def global_batch(self, local: Mapping[str, Any]) -> dict:
    """Assembles this process's rows into global arrays sharded along the batch axes."""
    def put(x):
      x = np.asarray(x)
      s = NamedSharding(self.mesh, _leading_spec(x, self._batch_axes))
      return jax.make_array_from_process_local_data(s, x)
    rows = len(local["q_id"]) if "q_id" in local else len(jax.tree.leaves(dict(local))[0])
    sharding.check_global_batch(rows * jax.process_count(), self.mesh, self.rules)
    if "packed" in local and jax.process_count() > 1:
      raise ConfigError("Packed batches (PairBatcher(pack=...)) are single-process: each "
                        "process's item indices would need offsets. Use the per-side `prepare`.")
    return jax.tree.map(put, dict(local))

  def loss_and_grad(self, local_batch: Mapping[str, Any]) -> tuple[jax.Array, Any]:
    return self._jit_grad(self.params, self.rest, self.global_batch(local_batch))

  def step(self, local_batch: Mapping[str, Any]) -> dict[str, jax.Array]:
    batch = self.global_batch(local_batch)
    self.params, self.opt_state, metrics = self._jit_step(self.params, self.opt_state,
                                                          self.rest, batch)
    self.step_num += 1
    return metrics

  def model(self) -> nnx.Module:
    """The module with the current parameters (for evaluation or export)."""
    return nnx.merge(self.graphdef, self.params, self.rest)

  def state(self) -> dict:
    return {"params": self.params, "opt_state": self.opt_state, "rest": self.rest,
            "rng": self.rng}

  def load_state(self, state: Mapping[str, Any], step: int) -> None:
    self.params, self.opt_state = state["params"], state["opt_state"]
    self.rest, self.rng = state["rest"], state["rng"]
    self.step_num = int(step)

  def load_params(self, params: Any) -> None:
    """Starts from given weights (a previous stage, a soup) with the optimizer state untouched."""
    want = jax.tree.map(np.shape, self.params)
    have = jax.tree.map(np.shape, params)
    if want != have:
      raise ConfigError("load_params: the given parameters have another structure or shapes than "
                        "this model's.")
    self.params = _put(params, self.param_shardings)

  def learning_rate(self, step: int | None = None) -> float:
    return float(self.schedule(self.step_num if step is None else step))


def _host_batch(mixture: Mixture, batcher: PairBatcher, step: int) -> tuple[str, dict]:
  task, pairs = mixture.local_pairs(step)
  return task, batcher(pairs, mixture.prompt_task(task), step)


def prefetch(make: Callable[[int], Any], steps: Sequence[int], ahead: int = 1):
  """Yields `make(s)` for each step, computing up to `ahead` of them in a background thread.

  The host work for step s+1 (tokenizing, packing) runs while the device runs step s; tokenizers
  and numpy release the GIL for most of it. Errors surface at the step that needed the batch.
  """
  it = iter(steps)
  with ThreadPoolExecutor(1, thread_name_prefix="gemb-prefetch") as pool:
    queue = collections.deque(pool.submit(make, s) for s in itertools.islice(it, ahead))
    while queue:
      for s in itertools.islice(it, 1):
        queue.append(pool.submit(make, s))
      yield queue.popleft().result()


def fit(trainer: Trainer, mixture: Mixture, batcher: PairBatcher, steps: int, *,
        run: Any = None, checkpointer: Checkpointer | None = None, log_every: int = 10,
        hooks: Sequence[Hook] = (), stage: str = "", validate: Validate | None = None) -> dict:
  """Trains to `steps` (resuming from the checkpointer's latest step) and returns a summary.

  `validate`, when given, runs once the stage has trained; its metrics are logged under
  ``{stage}/val/`` and returned under ``"validation"``.

  A NaN/inf loss stops the run with TrainingDivergedError naming the step and the task; it is
  checked before the checkpoint of that step is written, so the last checkpoint stays good.
  """
  if checkpointer is not None and checkpointer.latest_step() is not None:
    step0 = checkpointer.latest_step()
    state, meta = checkpointer.restore(step0, trainer.state())
    trainer.load_state(state, meta["step"])
  start = trainer.step_num
  prefix = f"{stage}/" if stage else ""
  bar = run.progress(total=steps, desc=stage or "train") if run is not None else None
  if bar is not None:
    bar.update(start)
  t_last, n_last, last = time.perf_counter(), start, {}
  make = lambda s: _host_batch(mixture, batcher, s)
  if jax.process_count() > 1:
    # Several processes agree on each batch's padded shape through a collective; run from a
    # background thread it would interleave with the step's collectives in a different order on
    # each process (gloo: "collective mismatch"). So the host work stays on the main thread.
    batches = (make(s) for s in range(start, steps))
  else:
    batches = prefetch(make, range(start, steps))
  for s, (task, local) in zip(range(start, steps), batches):
    metrics = trainer.step(local)
    loss = float(metrics["loss"])
    if not math.isfinite(loss):
      if checkpointer is not None:
        checkpointer.wait()
      raise TrainingDivergedError(
          f"{prefix}step {s}: the loss is {loss} on a batch of task {task!r}. Training stopped; "
          f"the last good checkpoint ({checkpointer.latest_step() if checkpointer else 'none'}) "
          "is kept. Lower the learning rate or check that task's data.")
    done = s + 1
    if checkpointer is not None and (done % checkpointer.every == 0 or done == steps):
      checkpointer.save(done, trainer.state(), {"stage": stage, "task": task}, force=True)
    if bar is not None:
      bar.update(1)
    if done % log_every == 0 or done == steps:
      dt = time.perf_counter() - t_last
      rate = (done - n_last) / max(dt, 1e-9)
      last = {f"{prefix}loss": loss, f"{prefix}grad_norm": float(metrics["grad_norm"]),
              f"{prefix}lr": trainer.learning_rate(s), f"{prefix}steps_per_s": rate,
              f"{prefix}examples_per_s": rate * mixture.global_batch, "task": task}
      if run is not None:
        run.log(step=done, **last)
      t_last, n_last = time.perf_counter(), done
    for h in hooks:
      h(trainer, done, {"loss": loss, "task": task})
  if bar is not None:
    bar.close()
  if checkpointer is not None:
    checkpointer.wait()
  out = {"steps": steps, "resumed_from": start, **last}
  if validate is not None:
    out["validation"] = {k: float(v) for k, v in validate(trainer).items()}
    if run is not None:
      run.log(step=steps, **{f"{prefix}val/{k}": v for k, v in out["validation"].items()})
  return out


def plot_curves(metrics_path, out_path) -> bool:
  """Writes a PNG of every '*loss' and '*lr' series in metrics.jsonl; False if nothing to plot."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from gemb.run import read_metrics
  series: dict[str, tuple[list, list]] = {}
  for rec in read_metrics(metrics_path):
    for k, v in rec.items():
      if (k.endswith("loss") or k.endswith("lr")) and "step" in rec and isinstance(v, (int, float)):
        series.setdefault(k, ([], []))[0].append(rec["step"])
        series[k][1].append(v)
  if not series:
    return False
  keys = sorted(series)
  fig, axes = plt.subplots(len(keys), 1, figsize=(6, 2.2 * len(keys)), squeeze=False)
  for ax, k in zip(axes[:, 0], keys):
    ax.plot(*series[k])
    ax.set_title(k, fontsize=9)
    ax.set_xlabel("step")
  fig.tight_layout()
  with atomic_path(out_path) as tmp:
    fig.savefig(tmp, dpi=80)
  plt.close(fig)
  return True
