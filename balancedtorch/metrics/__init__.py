"""Evaluation for imbalanced data: per-class metrics and the confusion matrix."""

from .classification import ClassificationMetrics

__all__ = ["ClassificationMetrics"]
