"""Samplers for imbalanced data; drop-in for ``torch.utils.data.DataLoader(sampler=/batch_sampler=)``."""

from .class_balanced import ClassBalancedSampler
from .labels import labels_of
from .presence import classes_present
from .repeat_factor import RepeatFactorSampler
from .stratified import StratifiedBatchSampler
from .weighted import WeightedRandomSampler

__all__ = [
    "labels_of",
    "WeightedRandomSampler",
    "ClassBalancedSampler",
    "StratifiedBatchSampler",
    "RepeatFactorSampler",
    "classes_present",
]
