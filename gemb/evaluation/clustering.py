"""The ``clustering`` evaluator: k-means with one cluster per gold label, scored by V-measure."""

from __future__ import annotations

import numpy as np

from gemb.evaluation import learners
from gemb.evaluation import metrics as metrics_lib
from gemb.evaluation.contract import Evaluator, TaskResult
from gemb.evaluation.task_data import ClusteringData
from gemb.registry import evaluators


@evaluators.register("clustering")
class ClusteringEvaluator(Evaluator):
  """V-measure, mean over k-means seeds. Chance: the V-measure of the gold labels against the
  same cluster sizes assigned at random (mean of 50 permutations; above 0 for small sets)."""

  main_metric = "v_measure"

  def __init__(self, data: ClusteringData, *, seeds: int = 3, batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.seeds = seeds

  def score(self, embed_fn, dim=None) -> TaskResult:
    data = self.data
    x_nd = self.embed(embed_fn, data.items, data.task, dim)
    labels = np.asarray(data.labels)
    k = len(np.unique(labels))
    scores = [metrics_lib.v_measure(labels, learners.kmeans(x_nd, k, seed=s))
              for s in range(self.seeds)]
    rng = np.random.default_rng(0)
    chance = np.mean([metrics_lib.v_measure(labels, rng.permutation(labels)) for _ in range(50)])
    return TaskResult(values={"v_measure": float(np.mean(scores))},
                      chance={"v_measure": float(chance)}, per_query={},
                      n_queries=len(labels), n_corpus=len(labels))
