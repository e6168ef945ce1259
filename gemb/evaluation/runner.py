"""The ``eval`` run kind: a model on a suite of tasks over datasets' splits, at every MRL dim.

Writes ``report.json`` (every metric at every dim), ``report.md`` (a readable table),
``metric_vs_dim.png`` and one ``topk_<task>.png`` grid of the top-5 results for a few queries per
modality pair.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Callable, Mapping

import numpy as np

from gemb import registry
from gemb.errors import ConfigError
from gemb.io import atomic_write
from gemb.evaluation import plots
from gemb.evaluation.suite import build_suite, evaluate_suite, format_table
from gemb.evaluation.task_data import PairedData, RetrievalData
from gemb.model.backbone import matryoshka

PAIRED_KINDS = ("mscoco", "vatex")


def dataset_loader(max_queries: int | None) -> Callable[..., Any]:
  """``load_data(dataset=, split=, kind=)`` for `build_evaluator`, over `gemb.datasets` sources.

  Retrieval kinds get `RetrievalData` from the source's ``retrieval_task``; cross-modal kinds
  (``mscoco``, ``vatex``) get `PairedData` whose b side is the queries (captions) and whose a
  side is the corpus (images, videos), so several captions of one image are grouped as in MSCOCO.
  Queries carry the dataset's declared ``task``, the prompt it is trained with.
  """

  @functools.lru_cache(maxsize=None)
  def load(dataset: str, split: str, kind: str) -> Any:
    source = registry.datasets.build(dataset, split=split)
    queries, corpus, qrels = source.retrieval_task(max_queries)
    if kind in PAIRED_KINDS:
      b_to_a = []
      for i, rel in enumerate(qrels):
        relevant = [c for c, g in rel.items() if g > 0]
        if len(relevant) != 1:
          raise ConfigError(f"{dataset}[{split}] query {i} has {len(relevant)} relevant items; "
                            f"the {kind!r} protocol needs exactly one. Use kind='retrieval'.")
        b_to_a.append(int(relevant[0]))
      return PairedData(items_a=corpus, items_b=queries, b_to_a=b_to_a, query_task=source.task)
    return RetrievalData(queries=queries, corpus=corpus, qrels=qrels, query_task=source.task)

  return lambda dataset, split, kind: load(dataset, split, kind)


def thumbnail(item: Any) -> Any:
  """A picture of an input item for the top-k grid: text as text, media as an image array."""
  from gemb.model import inputs
  if isinstance(item, str):
    return item
  if isinstance(item, inputs.Text):
    return item.text
  if isinstance(item, inputs.Image):
    return np.asarray(item.pixels)
  if isinstance(item, inputs.Video):
    frames = np.asarray(item.frames)
    picks = frames[np.linspace(0, len(frames) - 1, 3).astype(int)]
    return np.concatenate(list(picks), axis=1)  # three frames side by side
  if isinstance(item, inputs.Audio):
    wave = np.asarray(item.waveform, np.float32)
    h, w = 48, 96
    cols = np.array_split(np.abs(wave), w)
    amp = np.array([c.max() if c.size else 0.0 for c in cols])
    amp = amp / max(float(amp.max()), 1e-6)
    img = np.ones((h, w), np.float32)
    for x, a in enumerate(amp):
      half = int(a * (h // 2 - 1))
      img[h // 2 - half:h // 2 + half + 1, x] = 0.0
    return img
  if isinstance(item, inputs.Interleaved):
    parts = [thumbnail(p) for p in item.parts]
    images = [p for p in parts if not isinstance(p, str)]
    return images[0] if images else " ".join(parts)
  return str(item)


def make_embed_fn(encoder: Any, batch_size: int = 64) -> Callable[..., np.ndarray]:
  """`embed_fn` for evaluators, embedding each batch once at full size.

  A Matryoshka embedding at dim d is the first d dims of the full one, re-normalized, so a suite
  run at several dims reuses the full embeddings instead of running the model once per dim. The
  cache is keyed by the identity of the item objects and holds them, so an id cannot be reused.
  """
  cache: dict[tuple, tuple[list, np.ndarray]] = {}

  def embed_fn(items, task=None, dim=None):
    items = list(items)
    key = (task, tuple(id(x) for x in items))
    if key not in cache:
      cache[key] = (items, encoder.embed(items, task=task, dim=None, batch_size=batch_size))
    full_nd = cache[key][1]
    if dim is None or dim == full_nd.shape[1]:
      return full_nd
    return matryoshka(full_nd, dim)

  return embed_fn


def evaluate_model(encoder: Any, tasks: Mapping[str, Any], dims, *, max_queries: int | None,
                   retriever: str, progress: Callable[[str], None] | None = None
                   ) -> tuple[dict[str, Any], dict]:
  """Runs the suite; returns (report, evaluators by task) so callers can draw examples."""
  entries = {}
  for name, entry in tasks.items():
    entry = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
    if entry.get("kind") in ("retrieval",) + PAIRED_KINDS:
      entry.setdefault("retriever", retriever)
    entries[name] = entry
  suite = build_suite(entries, dataset_loader(max_queries))
  report = evaluate_suite(make_embed_fn(encoder), suite, dims=dims, progress=progress,
                          splits={name: e.get("split", "test") for name, e in entries.items()})
  return report, suite


@registry.runners.register("eval")
def run_eval(cfg, run) -> dict[str, Any]:
  """Evaluates a preset or checkpoint on a suite, at every Matryoshka dim; writes a report."""
  from gemb import model as model_lib
  encoder = model_lib.load(cfg.model)
  dims = tuple(None if d in (None, 0) else int(d) for d in cfg.dims)
  bar = run.progress(total=len(cfg.tasks) * len(dims), desc="eval")

  def progress(msg: str) -> None:
    bar.set_postfix_str(msg)
    bar.update(1)

  report, suite = evaluate_model(encoder, cfg.tasks, dims, max_queries=cfg.max_queries,
                                 retriever=cfg.retriever, progress=progress)
  bar.close()
  report["model"] = cfg.model
  for task, per_dim in report["main"].items():
    run.log(task=task, **{f"main@{d}": v for d, v in per_dim.items()})
  write_report(run.workdir, report, suite, encoder, cfg.examples, is_writer=run.is_writer)
  run.write_json("report.json", report)
  print(format_table(report))
  return report


def write_report(workdir: pathlib.Path, report: Mapping[str, Any], suite: Mapping[str, Any],
                 encoder: Any, n_examples: int, *, is_writer: bool = True,
                 title: str = "") -> None:
  """report.md, metric_vs_dim.png and a top-5 grid per task that can show examples."""
  if not is_writer:
    return
  workdir = pathlib.Path(workdir)
  atomic_write(workdir / "report.md",
               f"# {title or 'Evaluation of ' + str(report.get('model', ''))}\n\n"
               + format_table(report, all_metrics=True) + "\n")
  if len([d for d in report["dims"] if d != "full"]) >= 1:
    plots.plot_metric_vs_dim(report, workdir / "metric_vs_dim.png")
  if n_examples <= 0:
    return
  embed_fn = make_embed_fn(encoder)
  for task, ev in suite.items():
    if hasattr(ev, "examples"):
      examples = ev.examples(embed_fn, n=n_examples, k=5)
      if examples:
        plots.plot_topk_grid(examples, thumbnail, workdir / f"topk_{task}.png", title=task)
