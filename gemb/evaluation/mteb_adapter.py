"""Runs gemb encoders under the `mteb` package (tested with mteb 2.26.24).

    import mteb
    from gemb.evaluation.mteb_adapter import MtebEncoder
    model = MtebEncoder(gemb.load("minilm-l6"), dim=256)
    result = mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]), cache=None)

`MtebEncoder` implements mteb's encoder protocol (`encode(inputs, *, task_metadata, hf_split,
hf_subset, prompt_type)` over a DataLoader of batched dicts, plus `similarity`). mteb asks for
queries with ``prompt_type=query`` and documents with ``prompt_type=document``; gemb embeds
documents with ``task=None`` and queries with a task prompt chosen from the mteb task type, the
same names gemb's own evaluators use, so an mteb score and a gemb evaluator score of the same
data agree. Text, images and audio are mapped to `gemb.Text`, `gemb.Image`, `gemb.Audio`; a
batch with several modalities per row becomes one `gemb.Interleaved` item per row.

mteb (and its torch dependency) is imported by this module only; `gemb.evaluation` does not
import it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gemb.data import code as code_data
from gemb.errors import InputError
from gemb.evaluation import task_data as ev

try:
  import mteb
  from mteb.models import ModelMeta
  from mteb.models.abs_encoder import AbsEncoder
  from mteb.models.model_meta import ScoringFunction
  from mteb.types import PromptType
except ImportError as e:  # pragma: no cover - depends on the environment
  raise ImportError(
      "gemb.evaluation.mteb_adapter needs the `mteb` package: pip install 'gemb[mteb]' "
      f"(mteb==2.26.24 with the CPU torch wheel). Import failed with: {e}") from None

MTEB_VERSION = "2.26.24"  # the version whose encoder protocol this adapter follows

# mteb task type -> gemb task prompt for the *query* side (and for symmetric tasks, both sides).
# Documents of retrieval-like tasks are embedded with task=None, as gemb's RetrievalEvaluator does.
QUERY_TASKS: dict[str, str] = {
    **{t: ev.RETRIEVAL_QUERY for t in (
        "Retrieval", "Reranking", "InstructionRetrieval", "InstructionReranking",
        "Any2AnyRetrieval", "Any2AnyMultilingualRetrieval", "Any2AnyReranking", "AudioReranking",
        "VisionCentricQA", "DocumentUnderstanding", "Compositionality")},
    **{t: ev.CLASSIFICATION for t in (
        "Classification", "MultilabelClassification", "ImageClassification",
        "AudioClassification", "AudioMultilabelClassification", "ZeroShotClassification",
        "AudioZeroshotClassification", "Regression")},
    **{t: ev.CLUSTERING for t in ("Clustering", "ImageClustering", "AudioClustering")},
    **{t: ev.SEMANTIC_SIMILARITY for t in (
        "STS", "PairClassification", "BitextMining", "Summarization", "VisualSTS(eng)",
        "VisualSTS(multi)")},
}
CODE_QUERY_TASK = code_data.TASK  # the code dataset's query prompt, for "Programming" tasks


class MtebEncoder(AbsEncoder):
  """A gemb `Encoder` (or any ``embed(items, task=, dim=, batch_size=)``) as an mteb encoder.

  Args:
    encoder: what embeds; `gemb.load(...)` or anything with the same `embed` signature.
    dim: Matryoshka output size (None: the model's full size).
    name: the model name mteb writes into results ("org/name").
    task_prompts: overrides of `QUERY_TASKS` by mteb task type or task name (a task name wins);
      a value of None embeds without a prompt.
    batch_size: items per `encoder.embed` call.
  """

  def __init__(self, encoder: Any, *, dim: int | None = None, name: str = "gemb/model",
               revision: str = "local", task_prompts: Mapping[str, str | None] | None = None,
               batch_size: int = 64):
    if not callable(getattr(encoder, "embed", None)):
      raise InputError(f"MtebEncoder needs an object with .embed(items, task=, dim=), got "
                       f"{type(encoder).__name__}. Pass gemb.load(preset_or_dir).")
    if "/" not in name:
      raise InputError(f"MtebEncoder name must look like 'org/model' (mteb's convention), got "
                       f"{name!r}.")
    self.model = encoder
    self.dim = dim
    self.batch_size = batch_size
    self.task_prompts = dict(QUERY_TASKS, **(task_prompts or {}))
    config = getattr(encoder, "config", None)
    self.mteb_model_meta = ModelMeta.create_empty(overwrites={
        "name": name, "revision": revision, "framework": ["JAX"],
        "similarity_fn_name": ScoringFunction.COSINE,
        "embed_dim": dim or getattr(config, "out_dim", None),
        "modalities": ["text", "image", "audio"], "use_instructions": True,  # task prompts
    })

  def gemb_task(self, task_metadata: Any, prompt_type: PromptType | None) -> str | None:
    """The gemb task prompt for one side of an mteb task (None: embed as a document)."""
    if prompt_type == PromptType.document:
      return None
    if task_metadata.name in self.task_prompts:
      return self.task_prompts[task_metadata.name]
    task = self.task_prompts.get(task_metadata.type, ev.RETRIEVAL_QUERY)
    if task == ev.RETRIEVAL_QUERY and "Programming" in (task_metadata.domains or ()):
      return CODE_QUERY_TASK
    return task

  def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str,
             prompt_type: PromptType | None = None, **kwargs) -> np.ndarray:
    del hf_split, hf_subset, kwargs  # batch_size etc. of mteb's loader are already applied
    task = self.gemb_task(task_metadata, prompt_type)
    out = [self.model.embed(_items(batch), task=task, dim=self.dim, batch_size=self.batch_size)
           for batch in inputs]
    if not out:
      return np.zeros((0, self.dim or 0), np.float32)
    return np.concatenate([np.asarray(o, np.float32) for o in out])


def _items(batch: Mapping[str, Any]) -> list[Any]:
  """One mteb batch dict -> gemb items (str / Image / Audio, Interleaved when mixed)."""
  from gemb.model import inputs as I
  columns = []
  if "image" in batch:
    columns.append([I.Image(np.asarray(im.convert("RGB") if hasattr(im, "convert") else im))
                    for im in batch["image"]])
  if "audio" in batch:
    columns.append([I.Audio(np.asarray(a["array"], np.float32), int(a["sampling_rate"]))
                    for a in batch["audio"]])
  if "video" in batch:
    raise InputError("MtebEncoder: mteb video inputs are not mapped yet; pass frames as images.")
  if "text" in batch:  # for corpora, mteb has already joined title and body into "text"
    columns.append([str(t) for t in batch["text"]])
  if not columns:
    raise InputError(f"MtebEncoder: an mteb batch with none of text/image/audio (keys: "
                     f"{sorted(batch)}).")
  rows = list(zip(*columns))
  return [row[0] if len(row) == 1 else I.Interleaved(row) for row in rows]


__all__ = ["CODE_QUERY_TASK", "MTEB_VERSION", "MtebEncoder", "QUERY_TASKS", "mteb"]
