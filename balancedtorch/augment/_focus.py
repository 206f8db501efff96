"""``focus_pixels``: the pixel each focused crop of BatchAugment is centred on (C++/CUDA kernel).

Used by ``BatchAugment(crop_focus=...)``; the selection is documented there
and in ``csrc/augment/focus_pixels.h``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from .. import _validate

__all__ = ["check_crop_focus", "focus_classes", "focus_pixels"]

# "rare" considers the labels 0-255 (every uint8 label); a dict names any class.
RARE_LABELS = 256

_MASK_MAX = {torch.uint8: 255, torch.int32: 2**31 - 1, torch.int64: 2**63 - 1, torch.bool: 1}


def check_crop_focus(crop_focus) -> Union[None, str, Dict[int, float]]:
    """``crop_focus`` as BatchAugment keeps it: None, "rare" or a checked copy {class: weight}, sorted by class."""
    if crop_focus is None or (isinstance(crop_focus, str) and crop_focus == "rare"):
        return crop_focus
    if not isinstance(crop_focus, dict):
        raise ValueError(f"crop_focus must be None, 'rare' or a dict {{class: weight}}, got {crop_focus!r}")
    if not crop_focus:
        raise ValueError("crop_focus must name at least one class, got an empty dict")
    out = {}
    for c, w in crop_focus.items():
        c = _validate.integer(c, "crop_focus key", low=0)  # a class index
        out[c] = _validate.real(w, f"crop_focus[{c}]", low=0)  # its weight
    if not any(w > 0 for w in out.values()):
        raise ValueError(f"crop_focus needs at least one class of positive weight, got {crop_focus!r}")
    return dict(sorted(out.items()))


def focus_classes(crop_focus, dtype: torch.dtype, fill: Optional[int], device) -> Tuple[Tensor, Optional[Tensor]]:
    """The kernel's (classes, weights) for masks of ``dtype`` whose padding/ignore label is ``fill``.

    A dict class outside ``dtype`` or equal to ``fill`` raises a ValueError;
    "rare" gives the labels 0-255 other than ``fill`` and no weights (the
    kernel derives them from the batch). Bool masks have no separate fill
    label (False is both the padding and a label): both values are classes.
    """
    hi = _MASK_MAX[dtype]
    if dtype == torch.bool:
        fill = None
    if crop_focus == "rare":
        labels: List[int] = [c for c in range(min(RARE_LABELS, hi + 1)) if c != fill]
        if not labels:
            raise ValueError(f"crop_focus='rare': no label other than the mask fill {fill} fits the masks' dtype {dtype}")
        return torch.tensor(labels, dtype=torch.long, device=device), None
    for c in crop_focus:
        if c > hi:
            raise ValueError(
                f"crop_focus class {c} does not exist in masks of dtype {dtype} (labels 0 to {hi}); crop_focus={crop_focus!r}"
            )
        if c == fill:
            raise ValueError(
                f"crop_focus class {c} is the masks' fill (ignore) label {fill}, which marks padding, not a class; crop_focus={crop_focus!r}"
            )
    classes = torch.tensor(list(crop_focus), dtype=torch.long, device=device)
    weights = torch.tensor(list(crop_focus.values()), dtype=torch.float64, device=device)
    return classes, weights


def focus_pixels(
    masks: Tensor, classes: Tensor, weights: Optional[Tensor], uniforms: Tensor, active: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """Per sample, a uniformly drawn pixel of a drawn focus class (one kernel pass to count, one to find).

    Args:
        masks (Tensor[B, H, W]): uint8, int32, int64 or bool label masks.
        classes (Tensor[K]): int64 focus classes, sorted and distinct.
        weights (Tensor[K], optional): class weights (finite, >= 0). None:
            "rare", 1 / (pixels of the class in the whole batch) for the
            classes present in the batch, except the most frequent (0; the
            smallest class on ties).
        uniforms (Tensor[B, 2]): in [0, 1]; column 0 draws the class among
            those present in the sample (probability proportional to the
            weight), column 1 the rank r = floor(u * count) (at most
            count - 1) of the pixel in raster order.
        active (Tensor[B], optional): bool, the samples that want a pixel
            (default all); counts cover every sample.

    Returns:
        (index, counts): ``index`` int64 (B,), the flat pixel index
        ``row * W + col``, or -1 for inactive samples and samples without a
        focus class of positive weight; ``counts`` int64 (B, K), each focus
        class's pixels per sample.
    """
    return torch.ops.balancedtorch.focus_pixels(masks, classes, weights, uniforms, active)
