"""Batched GPU/CPU augmentation: per-sample flip, rotation, zoom, shear, crop and colour in one fused kernel."""

import torch

from ..ops._fake import check_same_device
from ..ops.losses import suggest_memory_format as _suggest_memory_format
from . import (
    _focus,  # noqa: F401  (registers the focus_pixels fake)
    functional,
)
from .batch import BatchAugment
from .functional import affine_color

__all__ = ["BatchAugment", "affine_color", "functional"]


@torch.library.register_fake("balancedtorch::affine_color")
def _affine_color_fake(images, theta, colour, crop, mean, std, out_height, out_width, interpolation, fill, out_dtype):
    check_same_device("affine_color", "images", images, theta=theta, colour=colour, crop=crop, mean=mean, std=std)
    B, C = images.shape[:2]
    # the kernels write in images.suggest_memory_format(): channels-last in, channels-last out
    fmt = _suggest_memory_format(images)
    return torch.empty((B, C, out_height, out_width), dtype=out_dtype, device=images.device, memory_format=fmt)


@torch.library.register_fake("balancedtorch::affine_mask")
def _affine_mask_fake(masks, theta, crop, out_height, out_width, fill):
    check_same_device("affine_mask", "masks", masks, theta=theta, crop=crop)
    lo, hi = functional._MASK_RANGES.get(masks.dtype, (fill, fill))  # other dtypes: the kernels' own error
    if not lo <= fill <= hi:  # as the kernels' check_mask_fill
        raise ValueError(f"affine_mask: fill must be a value of the masks' dtype {masks.dtype} ({lo} to {hi}), got {fill}")
    return masks.new_empty((masks.shape[0], out_height, out_width))  # (B, H, W): contiguous, as the kernels
