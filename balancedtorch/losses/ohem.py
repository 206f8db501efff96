"""OHEM cross-entropy (online hard example mining over pixels), as HRNet/OCR train on Cityscapes.

One call of the fused ``balancedtorch::softmax_loss_target_prob`` kernel (the
``softmax_loss`` kernel with ``reduction="none"``) gives, from one pass over
the logits, the per-pixel ``CE = -log p_y``, its gradient buffer and the
softmax probability ``p_y = exp(z_y - max) / sum exp(z - max)`` itself, formed
as softmax forms it: ``exp(-CE)`` rounds differently (at equal logits it falls
below ``1 / C``, where softmax gives ``1 / C`` exactly), and HRNet decides on
softmax's ``p``. For float16/bfloat16 logits outside autocast ``p`` is rounded
to the logits' dtype and ``thresh`` too, as HRNet's softmax and comparison run
in that dtype. ``balancedtorch::ohem_prob_weights`` applies HRNet's selection: the
k-th smallest valid ``p``, ``k = min(max(1, min_kept), n_valid - 1)``, found
on the device with no host synchronisation and no full sort (a radix select
on the CPU, topk's on CUDA; see ``csrc/loss/ohem_weights.h``); pixels with
``p < max(thresh, that value)`` are kept, and the op returns ``keep * w[y] /
kept`` per pixel.
The loss is ``sum(CE * coefficients)``. The selection is piecewise constant, so
the coefficients are constants for autograd, which scales the kernel's
per-pixel gradient by them in the op's own backward (in place: the buffer is
private to this call).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .. import _validate
from .._constants import REDUCTIONS
from .._dispatch import call_private_outputs
from .._validate import check_dense
from ._common import _check_class_vector, _check_tensor

__all__ = ["ohem_cross_entropy", "OhemCrossEntropyLoss"]


# Index dtypes the softmax_loss kernel reads in place; other integer targets are widened to int64.
_KERNEL_TARGET_DTYPES = (torch.int64, torch.int32, torch.uint8)

_REDUCTION_NONE = REDUCTIONS["none"]


def _check_thresh(thresh: Any) -> float:
    return _validate.real(thresh, "thresh", low=0.0, high=1.0, low_inclusive=False)


def _check_min_kept(min_kept: Any) -> int:
    return _validate.integer(min_kept, "min_kept", low=0)


def _check_ignore_index(ignore_index: Any) -> int:
    return _validate.integer(ignore_index, "ignore_index")


def _check_weight_device(weight: Any, input: Tensor) -> None:
    """Before any value check: a weight on another device (meta included) cannot be read."""
    if isinstance(weight, Tensor) and weight.device != input.device:
        raise ValueError(f"weight must be on the device of input ({input.device}), got weight on {weight.device}")


# Python float -> the comparison dtype, as torch casts a scalar compared with a tensor of that dtype.
def _thresh_in(thresh: float, dtype: torch.dtype) -> float:
    if dtype in (torch.float32, torch.float64):
        return thresh  # the kernel compares in the probabilities' dtype (float32: rounded there)
    return float(torch.tensor(thresh, dtype=torch.float64).to(dtype))


def _check_inputs(input: Any, target: Any, weight: Optional[Tensor]) -> tuple:
    input = _check_tensor(input, "input")
    target = _check_tensor(target, "target")
    if not input.is_floating_point():
        raise ValueError(f"input must be a floating tensor of logits, got dtype {input.dtype}")
    if input.dim() < 2:
        raise ValueError(f"input must have shape (N, C) or (N, C, d1, ..., dk), got {tuple(input.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target must have shape {expected} for input of shape {tuple(input.shape)}, got {tuple(target.shape)}")
    if target.device != input.device:
        raise ValueError(f"target is on {target.device} but input is on {input.device}")
    if weight is not None:  # its device was checked before its values (_ohem_cross_entropy)
        if weight.numel() != input.shape[1]:
            raise ValueError(
                f"weight must have one entry per class (C = input.shape[1] = {input.shape[1]}), got {weight.numel()} entries"
            )
    if target.dtype not in _KERNEL_TARGET_DTYPES:
        target = target.long()
    return input, target


def ohem_prob_weights(
    probs: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, thresh: float, min_kept: int
) -> Tensor:
    """``keep * weight[target] / max(1, kept)`` per pixel, HRNet's OHEM selection (no host sync).

    Args:
        probs (Tensor[*]): per-pixel softmax probability of the target,
            float32 or float64; compared in this dtype.
        target (Tensor[*]): class indices (int64, int32, uint8), the probs' shape.
        weight (Tensor[C], optional): per-class weights in the probs' dtype.
        ignore_index (int): skipped target value. thresh (float): in [0, 1].
        min_kept (int): >= 0.

    Returns:
        Tensor[*]: the probs' shape and dtype; ``sum(result * CE)`` is the OHEM loss.

    Raises:
        TypeError: a sparse tensor (the kernels take dense tensors), wrong dtypes.
        ValueError: tensors on different devices, wrong shapes, ``thresh`` or ``min_kept`` out of range.
    """
    for name, t in (("probs", probs), ("target", target), ("weight", weight)):
        if isinstance(t, Tensor):
            check_dense(t, name, "ohem_prob_weights")
    return torch.ops.balancedtorch.ohem_prob_weights(probs, target, weight, ignore_index, thresh, min_kept)


def _ohem_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    thresh: float,
    min_kept: int,
    weight: Optional[Tensor],
    ignore_index: int,
    validate: bool,
) -> Tensor:
    thresh = _check_thresh(thresh)
    min_kept = _check_min_kept(min_kept)
    ignore_index = _check_ignore_index(ignore_index)
    if isinstance(input, Tensor):
        _check_weight_device(weight, input)
    weight = _check_class_vector(weight, "weight", validate)
    input, target = _check_inputs(input, target, weight)
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    # per-pixel -log p_y (0 where ignored) and softmax's p_y from one kernel pass;
    # out-of-range targets raise in the kernel
    ce, prob = call_private_outputs(torch.ops.balancedtorch.softmax_loss_target_prob, input, target, ignore_index, compute_grad)
    acc = prob.dtype  # float32, float64 for float64 logits
    ce_flat = ce.reshape(-1).to(acc)
    p = prob.reshape(-1)
    # HRNet's softmax output, and its comparisons, are in the logits' dtype (float32 under autocast)
    p_dtype = ce.dtype
    if p_dtype != acc:
        p = p.to(p_dtype).to(acc)
    w = weight.to(device=ce.device, dtype=acc) if weight is not None else None
    coef = ohem_prob_weights(p, target.reshape(-1), w, ignore_index, _thresh_in(thresh, p_dtype), min_kept)
    # the plain mean of w[y] * CE over the kept pixels; 0 when none is kept
    return (ce_flat * coef).sum().to(ce.dtype)  # not torch.dot: autocast may lower matmul-like ops


def ohem_cross_entropy(
    input: Tensor,
    target: Tensor,
    thresh: float = 0.7,
    min_kept: int = 100000,
    weight: Optional[Tensor] = None,
    ignore_index: int = 255,
) -> Tensor:
    """OHEM cross-entropy over pixels, with the HRNet/OCR Cityscapes rule (fused, no host sync).

    Over the valid (``target != ignore_index``) pixels, let ``p`` be the softmax
    probability of each pixel's target class and ``s`` those probabilities
    sorted ascending. The threshold is ``max(thresh, s[min(max(1, min_kept),
    n_valid - 1)])``; the pixels with ``p < threshold`` (strictly) are kept and
    the loss is the plain mean of ``weight[y] * CE`` over them (divided by the
    number of kept pixels, not by their summed weights). So at least
    ``min(min_kept, n_valid - 1)`` of the hardest pixels are kept, more when
    more fall below ``thresh``.

    Selection and loss run on the logits' device with no host round trip and no
    full sort (a partial selection of ``max(1, min_kept) + 1`` values), so the
    loss compiles with ``torch.compile(fullgraph=True)``. The probabilities
    are softmax's, ``exp(z_y - max) / sum_c exp(z_c - max)``, produced by the
    fused cross-entropy kernel in the same pass (float32; float64 for float64
    logits); for float16/bfloat16 logits outside ``torch.autocast`` they and
    ``thresh`` are rounded to the logits' dtype, where HRNet's softmax and
    comparison run (under autocast they stay float32, as HRNet's softmax
    does). So ties fall as HRNet's: equal logits give ``p = 1 / C`` exactly,
    and ``thresh=1/C`` then keeps none of those pixels (``p < 1/C`` is false).
    ``p`` is not bit-identical to ``torch.softmax`` in general (another
    ``exp``; within a few ulps), which matters only for a threshold within a
    few ulps of a pixel's ``p`` that is not such a tie.

    Differences from the reference: when no pixel is kept (every pixel ignored,
    where HRNet raises an IndexError, or a tie of ``s[0..k]`` at or above
    ``thresh``, where it returns nan) the loss is 0 with a zero gradient; a
    valid pixel with nan logits is always kept (the loss is nan, as
    cross-entropy's), where the reference drops it.

    Args:
        input (Tensor[N, C] or Tensor[N, C, d1, ..., dk]): logits; float16,
            bfloat16, float32 or float64; channels-last is read in place.
        target (Tensor[N] or Tensor[N, d1, ..., dk]): class indices of any
            integer dtype; values in [0, C) or ``ignore_index``.
        thresh (float): probability threshold in (0, 1]. Default 0.7.
        min_kept (int): >= 0; at least ``min(max(1, min_kept), n_valid - 1)``
            pixels are kept. Default 100000.
        weight (Tensor[C], optional): per-class weights (finite, >= 0).
        ignore_index (int): target value to skip. Default 255 (Cityscapes).

    Returns:
        Tensor: a scalar in the loss dtype (the logits' dtype; float32 under autocast).

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> logits = torch.randn(2, 19, 64, 128, requires_grad=True)
        >>> target = torch.randint(0, 19, (2, 64, 128))
        >>> loss = bt.functional.ohem_cross_entropy(logits, target, thresh=0.7, min_kept=1000)
        >>> loss.backward()
        >>> loss.shape, logits.grad.shape
        (torch.Size([]), torch.Size([2, 19, 64, 128]))
    """
    return _ohem_cross_entropy(
        input, target, thresh=thresh, min_kept=min_kept, weight=weight, ignore_index=ignore_index, validate=True
    )


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
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> logits = torch.randn(2, 19, 32, 64, generator=g, requires_grad=True)  # model(images)
        >>> masks = torch.randint(0, 19, (2, 32, 64), generator=g)
        >>> masks[:, :4] = 255                                                  # void pixels
        >>> criterion = bt.nn.OhemCrossEntropyLoss(thresh=0.7, min_kept=1000, ignore_index=255)
        >>> loss = criterion(logits, masks)
        >>> loss.backward()
        >>> ce = torch.nn.functional.cross_entropy(logits, masks, ignore_index=255)
        >>> torch.allclose(loss, ce)  # random logits: every pixel is below 0.7, so every pixel is kept
        True
    """

    def __init__(
        self,
        thresh: float = 0.7,
        min_kept: int = 100000,
        weight: Optional[Tensor] = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.thresh = _check_thresh(thresh)
        self.min_kept = _check_min_kept(min_kept)
        self.ignore_index = _check_ignore_index(ignore_index)
        # Checked once here, so forward needs no host synchronisation. A weight on
        # the meta device (deferred initialisation) has no values to check; forward
        # then names it if it is still on another device than the input.
        on_meta = isinstance(weight, Tensor) and weight.device.type == "meta"
        self.register_buffer("weight", _check_class_vector(weight, "weight", not on_meta))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _ohem_cross_entropy(
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
