"""The ``train`` run kind: stages of contrastive training, then an optional model soup.

Each stage trains from the previous stage's final weights with a fresh optimizer, its own task
mixture, batch size, loss and hard negatives, and its own checkpoints under
``WORKDIR/ckpt/STAGE``. Re-running a recipe in the same workdir resumes: finished stages are
skipped (their last checkpoint is loaded), an unfinished one continues from its latest checkpoint.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx

from gemb import registry, sharding
from gemb.errors import ConfigError
from gemb.train import soup as soup_lib
from gemb.train.checkpoint import Checkpointer
from gemb.train.data import Mixture, PairBatcher
from gemb.train.trainer import OptimConfig, Trainer, fit, plot_curves


def retrieval_recall(encoder: Any, source: Any, max_queries: int = 200) -> dict[str, float]:
  """Recall@1 and MRR of the split's queries against its whole corpus (exact search)."""
  from gemb.evaluation.evaluators import RetrievalData, RetrievalEvaluator
  from gemb.evaluation.runner import make_embed_fn
  queries, corpus, qrels = source.retrieval_task(max_queries)
  tasks = sorted({r.get("task") for r in source.records[:len(queries)]} - {None})
  ev = RetrievalEvaluator(RetrievalData(queries, corpus, qrels), metrics=("recall@1", "mrr"),
                          query_task=tasks[0] if len(tasks) == 1 else None, retriever="exact")
  return ev.evaluate(make_embed_fn(encoder))


def _prepare_fn(encoder: Any, seq_len: int):
  """Each side of a batch gets the model's smallest length bucket that fits, at most `seq_len`.

  A batch of 12-token captions is not padded to the length of the images it is paired with, so
  the text side costs a fraction of a fixed `seq_len`; the buckets bound how many step shapes
  compile. With several processes, each packs only its rows, so they agree on the largest
  (length, patch slots) first: the global array needs one shape.
  """
  def prepare(items, task):
    items = list(items)
    batch = encoder.prepare(items, task)
    if batch["token_ids"].shape[1] > seq_len:  # fits seq_len, or raises naming what is needed
      batch = encoder.prepare(items, task, length=seq_len)
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
  eval_src = registry.datasets.build(cfg.eval.dataset, split=cfg.eval.split)
  summary: dict[str, Any] = {"eval_before": retrieval_recall(encoder, eval_src,
                                                             cfg.eval.max_queries)}
  run.log(step=0, **{f"eval/{k}": v for k, v in summary["eval_before"].items()})
  last_ckpt = None
  trainer = None
  stage_finals: list[tuple[str, Any]] = []  # earlier stages' final weights: greedy soup candidates
  for i, name in enumerate(cfg.stage_order):
    st = _stage_cfg(cfg, name)
    sources, rates = {}, {}
    for spec, rate in st.tasks:
      sources[spec] = registry.datasets.build(spec, split="train")
      rates[spec] = rate
    sharding.check_global_batch(st.batch_size, mesh, rules)
    mixture = Mixture(sources, rates, st.batch_size, seed=cfg.seed,
                      process_index=jax.process_index(), process_count=jax.process_count())
    # One process: a step's items share packed rows. Several: each side padded to an agreed
    # bucket (packed item indices would need per-process offsets).
    pack = (_pack_fn(encoder, cfg.seq_len, sharding.batch_shards(mesh, rules))
            if jax.process_count() == 1 else None)
    batcher = PairBatcher(_prepare_fn(encoder, cfg.seq_len), hard_negatives=st.hard_negatives,
                          prompt_dropout=st.prompt_dropout, seed=cfg.seed, pack=pack)
    optim = OptimConfig.from_config(st.optim.to_dict(), total_steps=st.steps)
    trainer = Trainer(encoder.model, mesh=mesh, rules=rules, optim=optim, loss=st.loss,
                      seed=cfg.seed)
    ckpt = Checkpointer(run.workdir / "ckpt" / name, every=cfg.checkpoint.every,
                        keep=cfg.checkpoint.keep, async_save=cfg.checkpoint.async_save)
    out = fit(trainer, mixture, batcher, st.steps, run=run, checkpointer=ckpt,
              log_every=cfg.log_every, stage=name)
    if cfg.soup.method == "greedy" and i < len(cfg.stage_order) - 1:
      stage_finals.append((f"{name}/final", _host_tree(trainer.params)))
    _set_weights(encoder, trainer)  # the next stage starts here
    metrics = retrieval_recall(encoder, eval_src, cfg.eval.max_queries)
    run.log(step=st.steps, **{f"eval/{name}/{k}": v for k, v in metrics.items()})
    summary[f"stage/{name}"] = {**out, "eval": metrics}
    last_ckpt = ckpt
  if cfg.soup.method != "none" and last_ckpt is not None:
    summary["soup"] = _soup(cfg, encoder, trainer, last_ckpt, eval_src, stage_finals)
  if run.is_writer:
    encoder.save(str(run.workdir / "model"))
  summary["eval_after"] = retrieval_recall(encoder, eval_src, cfg.eval.max_queries)
  run.log(**{f"eval/final/{k}": v for k, v in summary["eval_after"].items()})
  if run.is_writer:
    plot_curves(run.metrics_path, run.workdir / "curves.png")
  run.write_json("summary.json", summary)
  if last_ckpt is not None:
    last_ckpt.close()
  return summary


def _soup(cfg, encoder, trainer: Trainer, ckpt: Checkpointer, eval_src,
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
    return retrieval_recall(encoder, eval_src, cfg.eval.max_queries)[cfg.soup.metric]

  if cfg.soup.method == "uniform":
    params, kept = soup_lib.uniform_soup([p for _, p in candidates]), [n for n, _ in candidates]
    scores = {"soup": evaluate(params)}
  elif cfg.soup.method == "greedy":
    params, kept, scores = soup_lib.greedy_soup(list(earlier) + candidates, evaluate)
  else:
    raise ConfigError(f"soup.method must be 'none', 'uniform' or 'greedy'; got "
                      f"{cfg.soup.method!r}.")
  _set_weights(encoder, trainer, params)
  return {"method": cfg.soup.method, "kept": kept, "scores": scores}
