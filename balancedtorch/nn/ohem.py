"""OHEM cross-entropy module (online hard example mining over pixels)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .. import _ohem
from .. import functional as F

__all__ = ["OhemCrossEntropyLoss"]


class OhemCrossEntropyLoss(nn.Module):
    """OHEM cross-entropy with the HRNet/OCR Cityscapes rule, fused and free of host syncs.

    Keeps the valid pixels whose target-class probability is below
    ``max(thresh, s[min(max(1, min_kept), n_valid - 1)])`` (``s``: the valid
    pixels' target probabilities, ascending) and averages ``weight[y] * CE``
    over them; 0 when none is kept. See
    :func:`balancedtorch.functional.ohem_cross_entropy`.

    Shapes: input ``(N, C)`` or ``(N, C, d1, ..., dk)`` logits (float16,
    bfloat16, float32, float64; channels-last too); target ``(N, d1, ..., dk)``
    class indices of any integer dtype.

    Example:
        >>> criterion = bt.nn.OhemCrossEntropyLoss(thresh=0.7, min_kept=100000, ignore_index=255)
        >>> loss = criterion(model(images), masks)
    """

    def __init__(
        self,
        thresh: float = 0.7,
        min_kept: int = 100000,
        weight: Optional[Tensor] = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.thresh = _ohem._check_thresh(thresh)
        self.min_kept = _ohem._check_min_kept(min_kept)
        self.ignore_index = _ohem._check_ignore_index(ignore_index)
        # Checked once here, so forward needs no host synchronisation. A weight on
        # the meta device (deferred initialisation) has no values to check; forward
        # then names it if it is still on another device than the input.
        on_meta = isinstance(weight, Tensor) and weight.device.type == "meta"
        self.register_buffer("weight", F._check_class_vector(weight, "weight", not on_meta))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _ohem._ohem_cross_entropy(
            input,
            target,
            thresh=self.thresh,
            min_kept=self.min_kept,
            weight=self.weight,
            ignore_index=self.ignore_index,
            validate=False,  # weight was checked once, in __init__
        )

    def extra_repr(self) -> str:
        extra = f"thresh={self.thresh}, min_kept={self.min_kept}, ignore_index={self.ignore_index}"
        return extra + (f", weight=[{self.weight.numel()} classes]" if self.weight is not None else "")
