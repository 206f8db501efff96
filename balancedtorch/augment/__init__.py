"""Batched GPU/CPU augmentation: per-sample flip, rotation, zoom, shear, crop and colour in one fused kernel; MixUp and CutMix (with Remix)."""

from . import functional
from .batch import BatchAugment
from .functional import affine_color
from .mix import CutMix, MixUp

__all__ = ["BatchAugment", "CutMix", "MixUp", "affine_color", "functional"]
