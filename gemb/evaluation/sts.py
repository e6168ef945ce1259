"""The ``sts`` evaluator: correlation of pair cosine with gold similarity."""

from __future__ import annotations

from gemb.evaluation import metrics as metrics_lib
from gemb.evaluation.contract import Evaluator, TaskResult
from gemb.evaluation.task_data import STSData
from gemb.registry import evaluators


@evaluators.register("sts")
class STSEvaluator(Evaluator):
  """Spearman (main) and Pearson correlation; chance 0 (their expectation under a random
  pairing of cosines and gold scores)."""

  main_metric = "cosine_spearman"

  def score(self, embed_fn, dim=None) -> TaskResult:
    data = self.data
    a_nd = self.embed(embed_fn, data.items_a, data.task, dim)
    b_nd = self.embed(embed_fn, data.items_b, data.task, dim)
    cos_n = (a_nd * b_nd).sum(1)
    return TaskResult(values={"cosine_spearman": metrics_lib.spearman(cos_n, data.scores),
                              "cosine_pearson": metrics_lib.pearson(cos_n, data.scores)},
                      chance={"cosine_spearman": 0.0, "cosine_pearson": 0.0}, per_query={},
                      n_queries=len(data.scores), n_corpus=len(data.scores))
