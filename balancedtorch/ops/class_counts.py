"""``class_counts``: validated histogram of integer class labels (C++/CUDA kernel)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _validate

__all__ = ["class_counts"]


def class_counts(labels: Tensor, num_classes: int, ignore_index: Optional[int] = None) -> Tensor:
    """Count how often each class occurs, with validation.

    Like ``torch.bincount(labels.flatten(), minlength=num_classes)``, but a label
    outside ``[0, num_classes)`` raises instead of silently growing or
    corrupting the result, labels equal to ``ignore_index`` (e.g. 255 "void"
    pixels of a segmentation mask) are skipped, any integer dtype is read as
    is, and the CPU kernel runs in parallel.

    Args:
        labels (Tensor[*]): integer class labels of any shape (uint8, int8,
            int16, int32 or int64), on the CPU or a CUDA device. Every element
            is one label.
        num_classes (int): number of classes C (>= 0).
        ignore_index (int, optional): a label value that is not counted, inside
            or outside ``[0, num_classes)`` (inside: that class counts 0).

    Returns:
        Tensor[C]: int64 counts on the device of ``labels``.

    Raises:
        TypeError: ``labels`` is not an integer tensor.
        ValueError: ``num_classes`` < 0, or a label lies outside
            ``[0, num_classes)`` (the message names the value and its index).

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> bt.ops.class_counts(torch.tensor([0, 2, 2, 1, 2]), num_classes=4)
        tensor([1, 1, 3, 0])
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"class_counts: labels must be a torch.Tensor, got {type(labels).__name__}")
    num_classes = _validate.integer(num_classes, "num_classes", caller="class_counts")  # its range: the kernel's check
    ignore_index = _validate.ignore_index(ignore_index, caller="class_counts")
    return torch.ops.balancedtorch.class_counts(labels, num_classes, ignore_index)


_LABEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_labels_dtype(labels: Tensor) -> None:
    if labels.dtype not in _LABEL_DTYPES:
        raise TypeError(
            f"class_counts: labels must be an integer tensor (uint8, int8, int16, int32 or int64), got dtype {labels.dtype}"
        )
