"""The integer codes the kernels take, read from the C++ headers that declare them (one declaration).

``torch.ops.balancedtorch._constants()`` returns the enums of
csrc/loss/softmax_loss.h (reductions), csrc/loss/region_loss.h (activations,
the CE part of a region loss) and csrc/augment/affine_color.h (interpolation);
every Python table that turns an option into a code is built from them here.
Codes that never reach a kernel (the region-loss kind and the generalised
Dice's weight type, used by the Python side of ``region_loss`` only) are
declared here, once.
"""

from __future__ import annotations

from typing import Dict

import torch

from . import _extension  # noqa: F401  (loads balancedtorch._C, which defines _constants)

__all__ = ["REDUCTIONS", "ACTIVATIONS", "CE_KINDS", "INTERPOLATIONS", "REGION_KINDS", "W_TYPES"]


def _read() -> Dict[str, Dict[str, int]]:
    groups: Dict[str, Dict[str, int]] = {}
    for item in torch.ops.balancedtorch._constants().split(";"):
        key, value = item.split("=")
        group, name = key.split(".")
        groups.setdefault(group, {})[name] = int(value)
    return groups


_FROM_CPP = _read()

#: reduction of the fused losses: "none" | "mean" | "sum"
REDUCTIONS: Dict[str, int] = _FROM_CPP["reduction"]
#: activation of the region losses' Dice part: "softmax" | "sigmoid" | "none" (probabilities in)
ACTIVATIONS: Dict[str, int] = _FROM_CPP["activation"]
#: the CE part of a region loss: "none" | "cross_entropy" | "focal"
CE_KINDS: Dict[str, int] = _FROM_CPP["ce_kind"]
#: resampling of the augmentation kernels: "bilinear" | "nearest"
INTERPOLATIONS: Dict[str, int] = _FROM_CPP["interpolation"]

#: the region term of a region loss (Python side only)
REGION_KINDS: Dict[str, int] = {"dice": 0, "generalized_dice": 1, "tversky": 2}
#: class weights of the generalised Dice loss (Python side only)
W_TYPES: Dict[str, int] = {"square": 0, "simple": 1, "uniform": 2}
