"""Evaluation: trec_eval-compatible metrics, MTEB-style task evaluators, cross-modal protocols,
chance levels and bootstrap intervals.

Importing this module registers the built-in evaluators in `gemb.evaluators`: ``retrieval``,
``classification``, ``clustering``, ``sts``, ``mscoco`` and ``vatex``.
"""

from gemb.evaluation import metrics
from gemb.evaluation import classification, clustering, crossmodal, retrieval, sts  # noqa: F401
from gemb.evaluation.bootstrap import bootstrap_ci, seed_summary
from gemb.evaluation.build import build_evaluator
from gemb.evaluation.contract import EmbedFn, Evaluator, TaskResult, embed_all
from gemb.evaluation.plots import plot_metric_vs_dim, plot_topk_grid
from gemb.evaluation.suite import build_suite, evaluate_suite, format_table
from gemb.evaluation.task_data import (ClassificationData, ClusteringData, PairedData,
                                       RetrievalData, STSData)

__all__ = [
    "ClassificationData", "ClusteringData", "EmbedFn", "Evaluator", "PairedData", "RetrievalData",
    "STSData", "TaskResult", "bootstrap_ci", "build_evaluator", "build_suite", "embed_all",
    "evaluate_suite", "format_table", "metrics", "plot_metric_vs_dim", "plot_topk_grid",
    "seed_summary",
]
