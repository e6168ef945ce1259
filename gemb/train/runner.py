"""The ``train`` run kind: stages of contrastive training, then an optional model soup.

Each stage trains from the previous stage's final weights with a fresh optimizer, its own task
mixture, batch size, loss and hard negatives, and its own checkpoints under
``WORKDIR/ckpt/STAGE``. Re-running a recipe in the same workdir resumes: finished stages are
skipped (their last checkpoint is loaded), an unfinished one continues from its latest checkpoint.
Once the run has finished (model saved), each stage's checkpoints are deleted down to
``checkpoint.keep_finished`` (default 0), so a finished run keeps its model, reports and plots.

Every choice (stage-end validation, the soup) is measured on the validation split of
``eval.dataset`` by the gemb.evaluation ``retrieval`` evaluator, run through `fit`'s validation
hook; the numbers the run reports (``summary["test"]``) come from the same dataset's test split,
with bootstrap intervals and the paired interval of the trained-minus-untrained difference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from typing import Any

import jax
import numpy as np
from flax import nnx

from gemb import registry, sharding
from gemb.checkpoint import Checkpointer
from gemb.config import dataclass_from
from gemb.errors import ConfigError, GembError
from gemb.io import atomic_write
from gemb.model.encoder import keep_media_max_len
from gemb.model.inputs import TruncationWarning
from gemb.train import soup as soup_lib
from gemb.train.data import Mixture, PairBatcher
from gemb.train.trainer import OptimConfig, Trainer, fit, plot_curves

SOUP_METHODS = ("none", "uniform", "greedy")


def check_config(cfg) -> None:
  """Checks the settings that would otherwise fail after training; before any work starts."""
  if cfg.soup.method not in SOUP_METHODS:
    raise ConfigError(f"soup.method must be one of {', '.join(SOUP_METHODS)}; got "
                      f"{cfg.soup.method!r}.")
  if cfg.eval.split != "validation":
    raise ConfigError(f"eval.split is {cfg.eval.split!r}: stage-end validation and the soup "
                      "choose on the validation split only (test is for reporting).")
  if cfg.soup.method != "none" and cfg.soup.metric not in tuple(cfg.eval.metrics):
    raise ConfigError(f"soup.metric {cfg.soup.metric!r} is not among eval.metrics "
                      f"{tuple(cfg.eval.metrics)}; add it there.")
  check_train_config(cfg)


def evaluator(cfg, split: str):
  """The ``retrieval`` evaluator of ``eval.dataset`` on `split` (validation caps its queries at
  ``eval.max_queries``; test uses the whole split)."""
  from gemb.evaluation import build_evaluator
  from gemb.evaluation.runner import dataset_loader
  entry = {"kind": "retrieval", "dataset": cfg.eval.dataset, "split": split,
           "metrics": tuple(cfg.eval.metrics), "retriever": "exact"}
  max_queries = cfg.eval.max_queries if split == "validation" else None
  return build_evaluator(entry, dataset_loader(max_queries))


def _validator(ev, encoder: Any):
  """fit's validation hook: the evaluator on the encoder's current weights. Scores are kept by
  the model's digest (weights, config, prompts): the same model always scores the same, so a
  soup candidate already validated at its stage's end, and the chosen soup, are not embedded
  a second time (in the quickstart that is 2 of its 9 validations)."""
  from gemb.evaluation.runner import make_embed_fn
  scored: dict[str, dict[str, float]] = {}

  def validate(_trainer=None) -> dict[str, float]:
    key = _model_digest(encoder)
    if key not in scored:
      scored[key] = ev.evaluate(make_embed_fn(encoder))  # a fresh cache: new weights
    return dict(scored[key])
  return validate


def _model_digest(encoder: Any) -> str:
  """A digest of everything an embedding depends on: every array of the model (RNG keys aside;
  ~0.15 s for minilm-l6-effnet) and the encoder's config and prompts."""
  h = hashlib.blake2b(repr((encoder.config, encoder.prompts)).encode(), digest_size=16)
  for x in jax.tree.leaves(nnx.state(encoder.model)):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      continue
    a = np.ascontiguousarray(np.asarray(x))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.data)
  return h.hexdigest()


def _test_report(ev, before, after) -> dict[str, Any]:
  """Test-split numbers of the untrained and trained model: intervals, paired deltas, chance."""
  from gemb.evaluation import bootstrap_ci
  out = {"split": "test", "n_queries": after.n_queries, "n_corpus": after.n_corpus,
         "chance": after.chance, "untrained": before.values, "trained": after.values,
         "trained_ci95": {}, "delta_ci95": {}}
  for m, strata in after.per_query.items():
    out["trained_ci95"][m] = list(bootstrap_ci(strata))
    out["delta_ci95"][m] = list(bootstrap_ci(strata, before.per_query[m]))
  return out


def _prepare_fn(encoder: Any, seq_len: int):
  """Each side of a batch gets the model's smallest length bucket that fits, at most `seq_len`.

  A batch of 12-token captions is not padded to the length of the images it is paired with, so
  the text side costs a fraction of a fixed `seq_len`; the buckets bound how many step shapes
  compile. With several processes, each packs only its rows, so they agree on the largest
  (length, patch slots) first: the global array needs one shape.
  """
  said = []

  def prepare(items, task):
    items = list(items)
    with warnings.catch_warnings(record=True) as cut:  # truncation: said once per run, below
      warnings.simplefilter("always", TruncationWarning)
      batch = encoder.prepare(items, task)
      if batch["token_ids"].shape[1] > seq_len:  # fits seq_len, or raises naming what is needed
        batch = encoder.prepare(items, task, length=seq_len)
    for w in cut:
      if not issubclass(w.category, TruncationWarning):
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
      elif not said:
        said.append(1)
        warnings.warn(TruncationWarning(f"{w.message} (training batches are cut like this "
                                        "throughout; this is said once per run)"), stacklevel=2)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      shape = np.array([batch["token_ids"].shape[1], batch["patches"].shape[1]], np.int32)
      length, n_patch = np.asarray(multihost_utils.process_allgather(shape)).reshape(-1, 2).max(0)
      batch = encoder.pad_batch(batch, int(length), int(n_patch))
    return batch
  return prepare


def _pack_fn(encoder: Any, seq_len: int, row_multiple: int):
  """One packed batch of all a step's items (`Encoder.prepare_packed`): rows of at most
  `seq_len` tokens, the row count a multiple of the devices that split the batch."""
  return lambda groups: encoder.prepare_packed(groups, max_length=seq_len,
                                               row_multiple=row_multiple)


def _host_tree(tree: Any) -> Any:
  """Full numpy copies of a tree's arrays, on every process.

  `np.asarray` cannot read an array split across processes (an fsdp axis spanning hosts); those
  are gathered, in one collective that every process joins, since they all hold the same tree.
  """
  leaves, struct = jax.tree.flatten(tree)
  split = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array)
           and not (x.is_fully_addressable or x.is_fully_replicated)]
  out = [None if i in split else np.asarray(x) for i, x in enumerate(leaves)]
  if split:
    from jax.experimental import multihost_utils
    full = multihost_utils.process_allgather([leaves[i] for i in split], tiled=True)
    for i, x in zip(split, full):
      out[i] = np.asarray(x)
  return jax.tree.unflatten(struct, out)


def _set_weights(encoder: Any, trainer: Trainer, params: Any | None = None) -> None:
  """Makes `params` (a `_host_tree`; None: the trainer's own) the weights evaluation sees.

  In one process the trainer takes them on its mesh and the encoder shares its arrays. With
  several processes the encoder gets the full weights on this process's first device, so that
  evaluation and saving run locally in each process on the same weights, instead of on arrays
  that span processes (which the host-side embedding code cannot read); the trainer, which is
  not stepped again, keeps its own.
  """
  if jax.process_count() == 1:
    if params is not None:
      trainer.load_params(params)
    nnx.update(encoder.model, nnx.state(trainer.model(), nnx.Param))
    return
  params = _host_tree(trainer.params) if params is None else params
  state = nnx.state(encoder.model, nnx.Param)
  nnx.replace_by_pure_dict(state, jax.device_put(params, jax.local_devices()[0]))
  nnx.update(encoder.model, state)


@dataclasses.dataclass
class StageConfig:
  """One training stage, as a recipe's ``stages.NAME`` gives it."""
  steps: int
  batch_size: int
  tasks: tuple[tuple[str, float], ...]
  loss: str
  optim: dict[str, Any]
  hard_negatives: int = 0
  prompt_dropout: float = 0.0
  negatives: str = "dataset"  # or "mined" (gemb.train.mining)
  mine_retriever: str = "exact"

  def __post_init__(self):
    checks = [(self.steps >= 0, f"steps={self.steps} must be >= 0"),
              (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1"),
              (len(self.tasks) >= 1, "tasks is empty; name at least one (dataset spec, rate)"),
              (all(r > 0 for _, r in self.tasks), f"tasks={self.tasks}: every rate must be > 0"),
              (self.hard_negatives >= 0, f"hard_negatives={self.hard_negatives} must be >= 0"),
              (0.0 <= self.prompt_dropout <= 1.0,
               f"prompt_dropout={self.prompt_dropout} must be in [0, 1]"),
              (self.negatives in ("dataset", "mined"),
               f"negatives={self.negatives!r}; use 'dataset' or 'mined'"),
              (self.negatives != "mined" or self.hard_negatives >= 1,
               "negatives='mined' needs hard_negatives >= 1 (how many to mine per query)")]
    for ok, what in checks:
      if not ok:
        raise ConfigError(what + ".")


@dataclasses.dataclass
class SoupConfig:
  method: str = "greedy"
  metric: str = "mrr"

  def __post_init__(self):
    if self.method not in ("none", "uniform", "greedy"):
      raise ConfigError(f"method={self.method!r}; use 'none', 'uniform' or 'greedy'.")
    if self.metric not in ("recall@1", "mrr"):
      raise ConfigError(f"metric={self.metric!r}; use 'recall@1' or 'mrr'.")


@dataclasses.dataclass
class CheckpointConfig:
  every: int = 100
  keep: int = 3
  async_save: bool = True
  keep_finished: int = 0  # per stage, once the run has finished and its model is saved

  def __post_init__(self):
    if self.every < 1 or self.keep < 1:
      raise ConfigError(f"every={self.every} and keep={self.keep} must both be >= 1.")
    if self.keep_finished < 0:
      raise ConfigError(f"keep_finished={self.keep_finished} must be >= 0.")


def check_train_config(cfg) -> None:
  """The whole ``train`` config, checked before any work: every stage, its tasks, loss and
  optimizer, the soup, checkpointing and evaluation settings. Raises ConfigError naming the key."""
  if not cfg.stage_order:
    raise ConfigError("stage_order is empty; name at least one of stages: "
                      f"{', '.join(sorted(cfg.stages))}.")
  for name in cfg.stage_order:
    where = f"stages.{name}"
    st = dataclass_from(StageConfig, _stage_cfg(cfg, name), where=where)
    OptimConfig.from_config(st.optim, total_steps=st.steps, where=f"{where}.optim")
    for spec, _ in st.tasks:
      _check_spec(registry.datasets, spec, f"{where}.tasks")
    _check_spec(registry.losses, st.loss, f"{where}.loss")
  dataclass_from(SoupConfig, cfg.soup, where="soup")
  dataclass_from(CheckpointConfig, cfg.checkpoint, where="checkpoint")
  _check_spec(registry.datasets, cfg.eval.dataset, "eval.dataset")
  for key in ("seed", "seq_len", "log_every"):
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
      raise ConfigError(f"{key}={value!r} must be an integer >= {0 if key == 'seed' else 1}.")
  if cfg.eval.max_queries < 1:
    raise ConfigError(f"eval.max_queries={cfg.eval.max_queries} must be >= 1.")


def _check_spec(reg, spec: Any, where: str) -> None:
  """The spec parses, names a registered component and its arguments fit its signature."""
  try:
    reg.get(spec)
  except GembError as e:
    raise ConfigError(f"{where}: {e}") from None


def _stage_cfg(cfg, name: str):
  if name not in cfg.stages:
    raise ConfigError(f"stage_order names {name!r}, but stages has only {sorted(cfg.stages)}.")
  return cfg.stages[name]


@registry.runners.register("train")
def train(cfg, run) -> dict:
  """Contrastive multi-task, multi-stage training of an embedding model (then a soup)."""
  from gemb import model as model_lib
  encoder = model_lib.load(cfg.model, seed=cfg.seed)
  mesh = sharding.make_mesh(dict(cfg.mesh))
  rules = sharding.resolve_rules(cfg.sharding.rules, cfg.sharding.overrides)
  run.write_json("partition_specs.json", sharding.describe_specs(
      sharding.param_specs(nnx.state(encoder.model, nnx.Param), rules, mesh)))
  check_config(cfg)
  from gemb.evaluation.runner import make_embed_fn
  validate = _validator(evaluator(cfg, "validation"), encoder)
  test_ev = evaluator(cfg, "test") if cfg.eval.test else None
  test_before = test_ev.score(make_embed_fn(encoder)) if test_ev is not None else None
  summary: dict[str, Any] = {"validation_before": validate()}
  run.log(step=0, **{f"val/{k}": v for k, v in summary["validation_before"].items()})
  trained_tasks = dict(encoder.prompts or {})
  last_ckpt = None
  stage_ckpts: list[Checkpointer] = []  # pruned once the run has finished
  trainer = None
  stage_finals: list[tuple[str, Any]] = []  # earlier stages' final weights: greedy soup candidates
  for i, name in enumerate(cfg.stage_order):
    st = dataclass_from(StageConfig, _stage_cfg(cfg, name), where=f"stages.{name}")
    sharding.check_global_batch(st.batch_size, mesh, rules)
    sources, rates = {}, {}
    for spec, rate in st.tasks:
      sources[spec] = registry.datasets.build(spec, split="train")
      rates[spec] = rate
      trained_tasks[sources[spec].task] = model_lib.task_prompt(sources[spec].task)
    if st.negatives == "mined":
      sources = _mined(sources, encoder, st, run, name)
    mixture = Mixture(sources, rates, st.batch_size, seed=cfg.seed,
                      process_index=jax.process_index(), process_count=jax.process_count(),
                      max_negatives=st.hard_negatives)
    # One process: a step's items share packed rows. Several: each side padded to an agreed
    # bucket (packed item indices would need per-process offsets).
    pack = (_pack_fn(encoder, cfg.seq_len, sharding.batch_shards(mesh, rules))
            if cfg.pack and jax.process_count() == 1 else None)
    batcher = PairBatcher(_prepare_fn(encoder, cfg.seq_len), hard_negatives=st.hard_negatives,
                          prompt_dropout=st.prompt_dropout, seed=cfg.seed, pack=pack)
    optim = OptimConfig.from_config(st.optim, total_steps=st.steps)
    trainer = Trainer(encoder.model, mesh=mesh, rules=rules, optim=optim, loss=st.loss,
                      seed=cfg.seed)
    ckpt = Checkpointer(run.workdir / "ckpt" / name, every=cfg.checkpoint.every,
                        keep=cfg.checkpoint.keep, async_save=cfg.checkpoint.async_save)

    def stage_end(trainer: Trainer) -> dict[str, float]:
      _set_weights(encoder, trainer)  # what validation sees; the next stage starts here
      return validate()

    out = fit(trainer, mixture, batcher, st.steps, run=run, checkpointer=ckpt,
              log_every=cfg.log_every, stage=name, validate=stage_end)
    if cfg.soup.method == "greedy" and i < len(cfg.stage_order) - 1:
      stage_finals.append((f"{name}/final", _host_tree(trainer.params)))
    summary[f"stage/{name}"] = out
    last_ckpt = ckpt
    stage_ckpts.append(ckpt)
  if cfg.soup.method != "none" and last_ckpt is not None:
    summary["soup"] = _soup(cfg, encoder, trainer, last_ckpt, validate, stage_finals)
  encoder.prompts = trained_tasks
  keep_media_max_len(encoder)  # trained at seq_len; the saved model must not cut its media
  if run.is_writer:
    encoder.save(str(run.workdir / "model"))
  summary["validation_after"] = validate()
  run.log(**{f"val/final/{k}": v for k, v in summary["validation_after"].items()})
  if test_ev is not None:
    summary["test"] = _test_report(test_ev, test_before, test_ev.score(make_embed_fn(encoder)))
    run.log(**{f"test/final/{k}": v for k, v in summary["test"]["trained"].items()})
  if run.is_writer:
    plot_curves(run.metrics_path, run.workdir / "curves.png")
  run.write_json("summary.json", summary)
  _prune_finished(stage_ckpts, cfg.checkpoint.keep_finished)
  return summary


def _mined(sources: dict, encoder, st: StageConfig, run, stage: str) -> dict:
  """The stage's sources with hard negatives mined by the model as the stage starts
  (`gemb.train.mining`). The mined positions are saved to WORKDIR/mined/STAGE.json, so a resumed
  run trains on the same negatives instead of mining with its mid-stage weights."""
  from gemb.train.mining import MinedNegatives, mine_hard_negatives
  path = run.workdir / "mined" / f"{stage}.json"
  saved = json.loads(path.read_text()) if path.exists() else {}
  out = {}
  embed = lambda items, task: encoder.embed(items, task=task)
  for spec, src in sources.items():
    if spec in saved:
      out[spec] = MinedNegatives.restore(src, saved[spec])
      continue
    out[spec] = mine_hard_negatives(src, embed, st.hard_negatives,
                                    retriever=st.mine_retriever)
    saved[spec] = out[spec].to_json()
  if run.is_writer:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(saved))
  return out


def _prune_finished(ckpts: list[Checkpointer], keep: int) -> None:
  """The run has finished and its model is saved: each stage keeps only its latest `keep`
  checkpoints (`checkpoint.keep_finished`, default 0; ~165 MB each for MiniLM with its optimizer
  state). A run killed before this point keeps what it needs to resume."""
  for ckpt in ckpts:
    ckpt.prune(keep)
    ckpt.close()


def _soup(cfg, encoder, trainer: Trainer, ckpt: Checkpointer, validate,
          earlier: list[tuple[str, Any]]) -> dict:
  """Uniform: the mean of the last stage's kept checkpoints. Greedy: those and the earlier stages'
  final weights (all on one path from the same start, so averages are meaningful), so the soup
  can fall back towards an earlier stage when the last one lowered the validation metric."""
  candidates = []
  for s in ckpt.all_steps():
    params = ckpt.restore(s, trainer.state())[0]["params"]
    candidates.append((f"step{s}", _host_tree(params)))

  def evaluate(params) -> float:
    _set_weights(encoder, trainer, params)
    return validate()[cfg.soup.metric]

  if cfg.soup.method == "uniform":
    params, kept = soup_lib.uniform_soup([p for _, p in candidates]), [n for n, _ in candidates]
    scores = {"soup": evaluate(params)}
  else:  # "greedy" (check_config refused anything else before training)
    params, kept, scores = soup_lib.greedy_soup(list(earlier) + candidates, evaluate)
  _set_weights(encoder, trainer, params)
  return {"method": cfg.soup.method, "kept": kept, "scores": scores}


train.check_config = check_config  # gemb.run calls it before the run starts
