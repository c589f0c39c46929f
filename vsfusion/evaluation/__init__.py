"""Evaluation: classification metrics, exact McNemar tests, result files and figures.

Example:
    >>> from vsfusion.evaluation import STREAMS, top_k_accuracy
    >>> STREAMS[0], top_k_accuracy([0], [[0.9, 0.1]], k=1)
    ('video', 1.0)
"""

from vsfusion.evaluation.metrics import (
    classification_summary,
    confusion,
    macro_f1,
    mcnemar_exact,
    per_class_recall_change,
    per_class_report,
    pooled_mcnemar,
    top_k_accuracy,
)
from vsfusion.evaluation.report import (
    STREAMS,
    aggregate_markdown,
    aggregate_seeds,
    build_results,
    plot_confusion,
    plot_embedding_tsne,
    plot_per_class_delta,
    results_markdown,
    write_per_class_report,
    write_results,
)

__all__ = [
    "STREAMS",
    "aggregate_markdown",
    "aggregate_seeds",
    "build_results",
    "classification_summary",
    "confusion",
    "macro_f1",
    "mcnemar_exact",
    "per_class_recall_change",
    "per_class_report",
    "plot_confusion",
    "plot_embedding_tsne",
    "plot_per_class_delta",
    "pooled_mcnemar",
    "results_markdown",
    "top_k_accuracy",
    "write_per_class_report",
    "write_results",
]
