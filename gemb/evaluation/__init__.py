"""Evaluation: trec_eval-compatible metrics, MTEB-style task evaluators, cross-modal protocols.

Importing this module registers the built-in evaluators in `gemb.evaluators`: ``retrieval``,
``classification``, ``clustering``, ``sts``, ``mscoco`` and ``vatex``.
"""

from gemb.evaluation import metrics
from gemb.evaluation.evaluators import (ClassificationData, ClusteringData, Evaluator, PairedData,
                                        RetrievalData, STSData, build_evaluator, embed_all)
from gemb.evaluation.plots import plot_metric_vs_dim, plot_topk_grid
from gemb.evaluation.suite import build_suite, evaluate_suite, format_table

__all__ = [
    "ClassificationData", "ClusteringData", "Evaluator", "PairedData", "RetrievalData", "STSData",
    "build_evaluator", "build_suite", "embed_all", "evaluate_suite", "format_table", "metrics",
    "plot_metric_vs_dim", "plot_topk_grid",
]
