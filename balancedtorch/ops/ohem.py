"""Op glue of ``balancedtorch::ohem_prob_weights``: the fake kernel and the Python wrapper.

The op turns per-pixel target probabilities ``p_y`` (softmax's, as
``softmax_loss_target_prob`` gives them) into HRNet's OHEM coefficients
``keep * weight[y] / kept`` (see ``csrc/loss/ohem_weights.h``). It is a
constant of its inputs (the selection is piecewise constant), so it has no
autograd formula: callers multiply the per-pixel losses by it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._validate import check_dense
from ._fake import check_same_device

__all__: list = []


@torch.library.register_fake("balancedtorch::ohem_prob_weights")
def _ohem_prob_weights_fake(
    probs: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, thresh: float, min_kept: int
) -> Tensor:
    check_same_device("ohem_prob_weights", "probs", probs, target=target, weight=weight)
    torch._check(
        tuple(target.shape) == tuple(probs.shape),
        lambda: f"ohem_prob_weights: target must have the shape of probs {tuple(probs.shape)}, got {tuple(target.shape)}",
    )
    return probs.new_empty(probs.shape)


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
