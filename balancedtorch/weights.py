"""Per-class loss weights from labels or class counts."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from ._labels import check_labels, describe_one_hot, infer_num_classes
from .ops.class_counts import class_counts

__all__ = ["class_weights", "SCHEMES", "NORMALIZATIONS"]

SCHEMES = ("inverse", "sqrt_inverse", "effective_number", "median_frequency")
NORMALIZATIONS = ("mean", "sum", None)


def _as_count_tensor(counts: Any) -> Tensor:
    if isinstance(counts, Tensor):
        tensor = counts.detach()
    else:
        array = np.asarray(counts)
        if array.dtype.kind not in "iuf":
            raise ValueError(f"class_weights: counts must be numbers, got an array of dtype {array.dtype}")
        tensor = torch.from_numpy(np.array(array, dtype=np.float64))  # a copy: a read-only array (pandas) makes torch warn
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"class_weights: counts must be real numbers, got dtype {tensor.dtype}")
    if tensor.dim() != 1:
        raise ValueError(f"class_weights: counts must be 1-D (one count per class), got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError("class_weights: counts is empty")
    counts64 = tensor.to(torch.float64)
    bad = ~torch.isfinite(counts64) | (counts64 < 0)
    if bool(bad.any()):
        idx = int(bad.nonzero()[0, 0])
        raise ValueError(f"class_weights: counts must be finite and >= 0, got counts[{idx}] = {counts64[idx].item()}")
    return counts64


def class_weights(
    labels: Any = None,
    counts: Any = None,
    scheme: str = "inverse",
    beta: float = 0.999,
    normalize: Optional[str] = "mean",
    *,
    num_classes: Optional[int] = None,
    ignore_index: Optional[int] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-class weights that counter class imbalance, ready for a loss's ``weight=``.

    Give either ``labels`` or per-class ``counts``. With ``n_c`` samples of
    class ``c``, ``N = sum(n_c)`` and frequency ``f_c = n_c / N``, the raw
    weight of class ``c`` is

    * ``"inverse"``: ``1 / f_c = N / n_c``
    * ``"sqrt_inverse"``: ``sqrt(N / n_c)``
    * ``"effective_number"``: ``(1 - beta) / (1 - beta ** n_c)``, the inverse
      effective number of samples (Cui et al., CVPR 2019); ``beta -> 1``
      approaches inverse counts, ``beta = 0`` gives equal weights
    * ``"median_frequency"``: ``median(f) / f_c`` (Eigen & Fergus 2015; the
      median of the class frequencies, averaging the two middle ones for an
      even number of classes)

    and ``normalize`` rescales them: ``"mean"`` makes the weights average 1
    over the classes (so the loss keeps its scale), ``"sum"`` makes them sum to
    1, ``None`` returns the raw weights.

    Args:
        labels (Tensor | ndarray | sequence, optional): integer class labels
            (integral floats accepted) of any shape, e.g. segmentation masks
            ``(N, H, W)``, counted as :func:`balancedtorch.ops.class_counts`
            counts them. A one-hot ``(N, C)`` array is refused (pass ``argmax(1)``).
        counts (Tensor[C] | ndarray | sequence, optional): samples per class
            (non-negative; floats allowed, e.g. weighted counts).
        scheme (str): one of ``"inverse"``, ``"sqrt_inverse"``,
            ``"effective_number"``, ``"median_frequency"``. Default ``"inverse"``.
        beta (float): in ``[0, 1)``, used by ``"effective_number"``. Default 0.999.
        normalize (str or None): ``"mean"`` (default), ``"sum"`` or ``None``.
        num_classes (int, optional): number of classes when ``labels`` are
            given; default ``labels.max() + 1`` (ignoring ``ignore_index``),
            refused above 2**24 (a stray id such as 2**40 names itself in a
            ValueError instead of sizing the result by it): pass it for more.
        ignore_index (int, optional): a label value to leave out of the counts.
            When it is one of the classes (``0 <= ignore_index < C``), that
            class gets weight 0 and the scheme and ``normalize`` use the
            other classes only.
        dtype (torch.dtype): floating dtype of the result. Default float32.

    Returns:
        Tensor[C]: the weights, on the device of ``labels``/``counts`` when
        they are tensors, else on the CPU.

    Raises:
        ValueError: both or neither of ``labels`` and ``counts``; empty,
            negative or non-finite counts; a class with zero samples (its
            weight would be infinite); labels out of range; an unknown
            ``scheme`` or ``normalize``; ``beta`` outside ``[0, 1)``; labels
            that are not integers.
        TypeError: ``dtype`` is not a floating dtype.

    Example:
        >>> bt.class_weights(counts=[56, 3, 41], normalize=None)  # red, yellow, green
        tensor([ 1.7857, 33.3333,  2.4390])
    """
    if scheme not in SCHEMES:
        raise ValueError(f"class_weights: scheme must be one of {SCHEMES}, got {scheme!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"class_weights: normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not (0.0 <= float(beta) < 1.0):
        raise ValueError(f"class_weights: beta must be a number in [0, 1), got {beta!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"class_weights: dtype must be a floating torch.dtype, got {dtype!r}")
    if (labels is None) == (counts is None):
        raise ValueError("class_weights: give exactly one of labels= or counts=")

    if labels is not None:
        if isinstance(labels, Tensor) or (isinstance(labels, np.ndarray) and labels.dtype.kind in "biuf"):
            # labels of any shape are counted (masks), but a one-hot (N, C) array is almost surely a mistake
            one_hot = describe_one_hot(torch.as_tensor(labels), "labels", "class_weights", multi_hot=False)
            if one_hot is not None:
                raise ValueError(one_hot + " (if these really are 0/1 masks, pass labels.flatten())")
        # any shape, as class_counts; the range is checked by class_counts, which also honours ignore_index
        label_tensor = check_labels(labels, caller="class_weights", allow_negative=True, keep_dtype=True, any_shape=True)
        if num_classes is None:
            num_classes = infer_num_classes(label_tensor, caller="class_weights", ignore_index=ignore_index)
        elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"class_weights: num_classes must be a positive int, got {num_classes!r}")
        n = class_counts(label_tensor, num_classes, ignore_index).to(torch.float64)
    else:
        if num_classes is not None:
            raise ValueError("class_weights: num_classes is only used with labels= (counts has one entry per class)")
        n = _as_count_tensor(counts)

    # An ignore_index that is one of the classes: its labels are not counted,
    # and it gets weight 0 (the loss never sees it as a target); the scheme and
    # the normalisation use the other classes.
    ignored_class = labels is not None and ignore_index is not None and 0 <= ignore_index < n.numel()
    if ignored_class:
        full_size = n.numel()
        keep = torch.arange(full_size, device=n.device) != ignore_index
        n = n[keep]
        if n.numel() == 0:
            raise ValueError(f"class_weights: ignore_index={ignore_index} is the only class, so no class is left to weight")

    empty = n == 0
    if bool(empty.any()):
        idx = int(empty.nonzero()[0, 0])
        if bool(empty.all()):
            raise ValueError(f"class_weights: the counts sum to zero (counts = {n.tolist()[:8]}...)")
        raise ValueError(
            f"class_weights: class {idx} has no samples (count 0), so its weight would be infinite; "
            f"drop the class or give its count explicitly with counts="
        )

    total = n.sum()
    if not bool(torch.isfinite(total)) and scheme != "effective_number":
        # counts whose sum overflows (e.g. [1e308, 1e308, 1]): scale them by a
        # power of two (exact; these schemes depend only on ratios of counts)
        _, exponent = math.frexp(float(n.max()))
        n = n * 2.0 ** (-exponent // 2) * 2.0 ** (-exponent - (-exponent // 2))
        total = n.sum()
    if scheme == "inverse":
        w = total / n
    elif scheme == "sqrt_inverse":
        w = torch.sqrt(total / n)
    elif scheme == "effective_number":
        # 1 - beta**n without cancellation: -expm1(n * log(beta)); beta = 0 gives log 0 = -inf -> 1.
        log_beta = math.log(beta) if beta > 0 else -math.inf
        w = (1.0 - beta) / -torch.expm1(n * log_beta)
    else:  # median_frequency
        freq = n / total
        w = torch.quantile(freq, 0.5) / freq

    if normalize is not None and not bool(torch.isfinite(w).all()):
        # a raw weight beyond float64 (counts 1e308 apart): normalise the same
        # weights taken relative to the largest, min(n) / n (or its square root)
        w = n.min() / n
        if scheme == "sqrt_inverse":
            w = w.sqrt()
    if normalize is None and not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"class_weights: the raw {scheme} weights overflow float64 (counts from {float(n.min()):g} to "
            f"{float(n.max()):g}); use normalize='mean' or 'sum'"
        )
    if normalize == "mean":
        w = w * (w.numel() / w.sum())
    elif normalize == "sum":
        w = w / w.sum()
    if ignored_class:
        w = torch.zeros(full_size, dtype=w.dtype, device=w.device).masked_scatter_(keep, w)
    out = w.to(dtype)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"class_weights: the weights (largest {float(w.max()):g}) overflow dtype={dtype}; use a wider dtype or "
            f"normalize='mean' / 'sum'"
        )
    return out
