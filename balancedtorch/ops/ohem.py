"""Op glue of ``balancedtorch::ohem_weights``: the fake kernel and the Python wrapper.

The op turns per-pixel losses ``-log p_y`` into HRNet's OHEM coefficients
``keep * weight[y] / kept`` (see ``csrc/loss/ohem_weights.h``). It is a
constant of its inputs (the selection is piecewise constant), so it has no
autograd formula: callers pass detached losses and multiply.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._fake import check_same_device

__all__: list = []


@torch.library.register_fake("balancedtorch::ohem_weights")
def _ohem_weights_fake(
    losses: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, thresh: float, min_kept: int
) -> Tensor:
    check_same_device("ohem_weights", "losses", losses, target=target, weight=weight)
    torch._check(
        tuple(target.shape) == tuple(losses.shape),
        lambda: f"ohem_weights: target must have the shape of losses {tuple(losses.shape)}, got {tuple(target.shape)}",
    )
    return losses.new_empty(losses.shape)


def ohem_weights(
    losses: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, thresh: float, min_kept: int
) -> Tensor:
    """``keep * weight[target] / max(1, kept)`` per pixel, HRNet's OHEM selection (no host sync).

    Args:
        losses (Tensor[*]): per-pixel ``-log p_y``, float32 or float64 (not differentiated).
        target (Tensor[*]): class indices (int64, int32, uint8), the losses' shape.
        weight (Tensor[C], optional): per-class weights in the losses' dtype.
        ignore_index (int): skipped target value. thresh (float): in (0, 1].
        min_kept (int): >= 0.

    Returns:
        Tensor[*]: the losses' shape and dtype; ``sum(result * losses)`` is the OHEM loss.
    """
    return torch.ops.balancedtorch.ohem_weights(losses, target, weight, ignore_index, thresh, min_kept)
