"""Evaluation for imbalanced data: per-class metrics, the confusion matrix and decision thresholds."""

from .classification import ClassificationMetrics
from .thresholds import apply_thresholds, tune_threshold

__all__ = ["ClassificationMetrics", "apply_thresholds", "tune_threshold"]
