"""Data-quality tools: mislabeled samples, slice coverage, label shift, drift, novelty, near-duplicates and leakage,
what to label next, image grids to look at, and one HTML page of it all (audit)."""

from ._results import MistakesPerClass, RankedMistakes
from .audit import audit
from .duplicates import find_duplicates, find_leakage
from .gallery import plot_mistakes, plot_novel
from .label_issues import find_label_issues, label_quality_scores, mistakes_per_class, rank_mistakes
from .novelty import NoveltyDetector, embedding_coverage
from .selection import select_for_labeling
from .shift import CoverageReport, DriftMonitor, LabelShiftEstimator, coverage_report

__all__ = [
    "find_label_issues",
    "label_quality_scores",
    "rank_mistakes",
    "mistakes_per_class",
    "RankedMistakes",
    "MistakesPerClass",
    "coverage_report",
    "CoverageReport",
    "LabelShiftEstimator",
    "DriftMonitor",
    "NoveltyDetector",
    "embedding_coverage",
    "find_duplicates",
    "find_leakage",
    "select_for_labeling",
    "plot_mistakes",
    "plot_novel",
    "audit",
]
