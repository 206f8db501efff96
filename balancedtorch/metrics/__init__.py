"""Evaluation for imbalanced data: per-class metrics, the confusion matrix, scikit-learn's ranking metrics and decision thresholds."""

from .classification import ClassificationMetrics
from .ranking import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve
from .thresholds import apply_thresholds, tune_threshold

__all__ = [
    "ClassificationMetrics",
    "apply_thresholds",
    "average_precision_score",
    "precision_recall_curve",
    "roc_auc_score",
    "roc_curve",
    "tune_threshold",
]
