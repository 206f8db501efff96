"""Argument checks the fused-loss families share (reductions, reals, class vectors, tensors)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from .. import _validate
from .._constants import REDUCTIONS
from .._dispatch import _is_compiling, refuse_bad_values
from .._validate import check_dense

__all__: list = []

_REDUCTIONS = REDUCTIONS


def _reduction_code(reduction: str) -> int:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return _REDUCTIONS[reduction]


def _real(value: Any, name: str, low: float, high: Optional[float] = None) -> float:
    """A finite real option in ``[low, high]`` (TypeError for a non-number, ValueError outside or non-finite)."""
    return _validate.real(value, name, low=low, high=high)


def _alpha(alpha: Any) -> float:
    """Sigmoid focal alpha: a finite number <= 1; a negative one disables the weighting, as in torchvision."""
    return _validate.real(alpha, "alpha", high=1.0)


def _check_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return check_dense(value, name)


def _check_class_vector(
    vec: Optional[Tensor], name: str, validate_values: bool = True, input: Optional[Tensor] = None
) -> Optional[Tensor]:
    """A per-class vector (weight, pos_weight): 1-D, floating, finite and >= 0.

    With ``input``, the vector must be on the input's device (checked first, before any value is read).
    A meta vector without ``input`` (a module built on the meta device) has no values to check yet.
    """
    if vec is None:
        return None
    vec = _check_tensor(vec, name)
    if input is not None and vec.device != input.device:
        raise ValueError(f"{name} is on {vec.device} but input is on {input.device}: move {name} to {input.device}")
    if vec.is_meta and (input is None or input.is_meta):
        validate_values = False
    if vec.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor with one entry per class, got shape {tuple(vec.shape)}")
    if not vec.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {vec.dtype}")
    if vec.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{name} must not require grad: the fused kernels give no gradient for it")
    if validate_values and not _is_compiling():
        refuse_bad_values(
            ~torch.isfinite(vec) | (vec < 0),
            lambda i: (
                f"{name} must be finite and >= 0, got {name}[{i}] = {vec[i].item()}"
                if i is not None
                else f"{name} must be finite and >= 0 (device-side check)"
            ),
        )
    return vec
