"""Batched GPU/CPU augmentation: per-sample flip, rotation, zoom, shear, crop and colour in one fused kernel."""

from . import functional
from .batch import BatchAugment
from .functional import affine_color

__all__ = ["BatchAugment", "affine_color", "functional"]
