"""The ``classification`` evaluator: logistic regression on frozen embeddings (MTEB's protocol)."""

from __future__ import annotations

import numpy as np

from gemb.evaluation import learners
from gemb.evaluation import metrics as metrics_lib
from gemb.evaluation.contract import Evaluator, TaskResult, single
from gemb.evaluation.task_data import ClassificationData
from gemb.registry import evaluators


def random_f1(y_true: np.ndarray, classes: np.ndarray, draws: int = 200, seed: int = 0) -> float:
  """Macro-F1 of predictions drawn uniformly from `classes`, averaged over `draws` labellings."""
  rng = np.random.default_rng(seed)
  return float(np.mean([metrics_lib.macro_f1(y_true, classes[rng.integers(0, len(classes),
                                                                          len(y_true))])
                        for _ in range(draws)]))


@evaluators.register("classification")
class ClassificationEvaluator(Evaluator):
  """Accuracy (main; per test item, so it has an interval) and macro-F1 on the test items.

  Chance: a class drawn uniformly at random among the train classes.
  """

  main_metric = "accuracy"

  def __init__(self, data: ClassificationData, *, c: float = 1.0, steps: int = 100,
               batch_size: int = 64):
    super().__init__(data, batch_size=batch_size)
    self.c, self.steps = c, steps

  def score(self, embed_fn, dim=None) -> TaskResult:
    data = self.data
    train_nd = self.embed(embed_fn, data.train_items, data.task, dim)
    test_nd = self.embed(embed_fn, data.test_items, data.task, dim)
    y_train, y_test = np.asarray(data.train_labels), np.asarray(data.test_labels)
    pred = learners.LogisticRegression(c=self.c, steps=self.steps).fit(
        train_nd, y_train).predict(test_nd)
    classes = np.unique(y_train)
    correct = (pred == y_test).astype(np.float64)
    return TaskResult(
        values={"accuracy": float(correct.mean()),
                "f1_macro": metrics_lib.macro_f1(y_test, pred)},
        chance={"accuracy": 1.0 / len(classes), "f1_macro": random_f1(y_test, classes)},
        per_query=single({"accuracy": correct}), n_queries=len(y_test), n_corpus=len(y_train))
