"""Validation shared by the data-quality tools."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from .._labels import check_labels
from .._validate import as_tensor

ROW_SUM_TOLERANCE = 1e-3


def _logits_hint(multi_label: bool, hint: str) -> str:
    if multi_label:
        return "if these are logits, pass logits.sigmoid() (numpy: scipy.special.expit(logits))"
    return f"if these are logits, pass logits.softmax(dim=1) (numpy: scipy.special.softmax(logits, axis=1)){hint}"


def _first(mask: Tensor) -> Tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def check_pred_probs(
    pred_probs: Any, num_rows: Optional[int], name: str = "pred_probs", multi_label: bool = False, logits_hint: str = ""
) -> Tensor:
    """Probabilities ``(N, K)`` in [0, 1]; rows sum to 1 unless ``multi_label`` (one probability per class).

    Rows sum to 1 within 1e-3, or within the dtype's machine epsilon where
    that is larger (bfloat16: 2**-7, the rounding of its probabilities).

    Raises ValueError (cleanlab raises ValueError for values outside [0, 1]
    too); logits, the usual mistake, are named as such with the softmax
    (sigmoid for ``multi_label``) to apply, followed by ``logits_hint``.
    """
    p = as_tensor(pred_probs, name)
    if not p.is_floating_point():
        raise ValueError(f"{name} must be a floating array of probabilities, got dtype {p.dtype}")
    if p.dim() != 2 or p.shape[1] < 2:
        raise ValueError(f"{name} must have shape (N, K) with K >= 2 classes, got {tuple(p.shape)}")
    if num_rows is not None and p.shape[0] != num_rows:
        raise ValueError(f"{name} has {p.shape[0]} rows but labels has {num_rows} entries")
    if p.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    low, high = torch.aminmax(p)  # one pass; nan propagates and fails both tests
    if not (bool(low >= 0) and bool(high <= 1)):
        finite = torch.isfinite(p)
        if not bool(finite.all()):
            i, j = _first(~finite)
            raise ValueError(f"{name} must hold finite probabilities, got {name}[{i}, {j}] = {p[i, j].item()}")
        i, j = _first((p < 0) | (p > 1))
        raise ValueError(
            f"{name} must hold probabilities in [0, 1], got {name}[{i}, {j}] = {p[i, j].item():.6g}: "
            + _logits_hint(multi_label, logits_hint)
        )
    if multi_label:
        return p
    # float32 and float64 sum to well within 1e-3 in their own precision; float16/bfloat16 are summed in float32
    # (their own sums drift by more), and bfloat16's rounding of the probabilities (up to 2**-8 relative, so
    # up to 2**-8 on a row's sum) exceeds 1e-3: the tolerance is its machine epsilon there
    half = p.dtype in (torch.float16, torch.bfloat16)
    sums = p.sum(1, dtype=torch.float32) if half else p.sum(1)
    tolerance = max(ROW_SUM_TOLERANCE, torch.finfo(p.dtype).eps)
    off = (sums - 1).abs() > tolerance
    if bool(off.any()):
        i = int(off.nonzero()[0, 0])
        raise ValueError(
            f"{name} rows must sum to 1 (within {tolerance:.3g}); row {i} sums to {float(sums[i]):.6f}: "
            + _logits_hint(False, logits_hint)
        )
    return p


def check_labels_and_probs(labels: Any, pred_probs: Any) -> Tuple[Tensor, Tensor]:
    p = check_pred_probs(pred_probs, None)
    y = check_labels(labels, num_classes=p.shape[1], device=p.device)
    if y.numel() != p.shape[0]:
        raise ValueError(f"labels has {y.numel()} entries but pred_probs has {p.shape[0]} rows")
    return y, p
