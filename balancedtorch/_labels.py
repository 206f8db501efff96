"""The one validator of integer class labels, shared by every module.

Samplers, ``class_weights``, the quality tools, ``labels_of`` and
``BatchAugment`` all read labels through :func:`check_labels` (dtype, shape,
range) and, when the number of classes is not given, :func:`infer_num_classes`
(``max + 1``, refused beyond :data:`MAX_INFERRED_CLASSES` so that a stray id
such as 2**40 gives a clear error instead of a terabyte allocation). Messages
name the caller's argument, the bad value and its index.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["MAX_INFERRED_CLASSES", "check_labels", "encode_labels", "infer_num_classes"]

#: Largest class count inferred as ``labels.max() + 1`` (the per-class tables
#: then take up to 128 MiB). Beyond it the caller must be told the count.
MAX_INFERRED_CLASSES = 1 << 24

_INT64_MAX = (1 << 63) - 1
# float labels are exact integers only up to 2**53
_FLOAT_EXACT = float(1 << 53)
_WIDE_UNSIGNED = tuple(getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n))


def _prefix(caller: Optional[str]) -> str:
    return f"{caller}: " if caller else ""


def _not_integer(name: str, caller: Optional[str], dtype: Any, example: str = "") -> ValueError:
    if not example:  # the dtype itself is refused
        return ValueError(f"{_prefix(caller)}{name} must hold integers, got dtype {dtype}")
    return ValueError(f"{_prefix(caller)}{name} must hold integer class labels, got dtype {dtype} with {example}")


def _from_array(values: Any, name: str, caller: Optional[str]) -> Tensor:
    array = np.asarray(values)
    if array.dtype == object or array.dtype.kind in "USVMmO":
        example = array.flat[0] if array.size else values
        raise ValueError(
            f"{_prefix(caller)}{name} holds non-numeric labels (e.g. {example!r}); map class names to integers first"
        )
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        # torch < 2.3 has no uint16/32/64, and later releases implement few ops for them: convert here
        if array.size and array.dtype.itemsize == 8:
            too_big = array > _INT64_MAX
            if too_big.any():
                i = int(np.flatnonzero(too_big)[0])
                raise ValueError(
                    f"{_prefix(caller)}{name}[{i}] = {int(array.flat[i])} is too large for a class label (> 2**63 - 1)"
                )
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))


def _to_integer_tensor(t: Tensor, name: str, caller: Optional[str], allow_float: bool) -> Tensor:
    if t.dtype == torch.bool or t.is_complex():
        raise _not_integer(name, caller, t.dtype)
    if t.is_floating_point():
        if not allow_float:
            raise _not_integer(name, caller, t.dtype)
        bad = ~torch.isfinite(t) | (t != t.round()) | (t.abs() > _FLOAT_EXACT)
        if bool(bad.any()):
            i = int(bad.flatten().nonzero()[0, 0])
            where = f"{name}[{i}]" if t.dim() == 1 else f"{name}.flatten()[{i}]"
            raise _not_integer(name, caller, t.dtype, f"{where} = {t.flatten()[i].item()}")
        return t.long()
    if t.dtype in _WIDE_UNSIGNED:
        if t.dtype == getattr(torch, "uint64", None):
            # values >= 2**63 turn negative in int64: find them on the bit pattern
            wrapped = t.view(torch.int64) < 0
            if bool(wrapped.any()):
                i = int(wrapped.flatten().nonzero()[0, 0])
                value = int(t.view(torch.int64).flatten()[i]) + (1 << 64)
                raise ValueError(f"{_prefix(caller)}{name}[{i}] = {value} is too large for a class label (> 2**63 - 1)")
        return t.long()
    return t


def check_labels(
    labels: Any,
    name: str = "labels",
    *,
    caller: Optional[str] = None,
    num_classes: Optional[int] = None,
    ignore_index: Optional[int] = None,
    allow_negative: bool = False,
    allow_float: bool = True,
    keep_dtype: bool = False,
    allow_empty: bool = False,
    device: Any = None,
    shape_hint: str = "",
) -> Tensor:
    """Integer class labels, checked, as a 1-D tensor.

    Accepts a tensor (any device; not copied when already int64), a numpy
    array or a sequence. Every integer dtype works, unsigned ones included
    (uint16/32/64 are converted to int64; a uint64 value >= 2**63 is refused);
    floats are accepted when ``allow_float`` and every value is a finite
    integer (<= 2**53 in magnitude). The input is never modified.

    Args:
        labels: the labels.
        name: the caller's argument name, used in every message.
        caller: a prefix for the messages (e.g. ``"class_weights"``).
        num_classes: when given, labels must lie in ``[0, num_classes)``.
        ignore_index: a label value exempt from the range checks.
        allow_negative: skip the ``>= 0`` check (labels such as -1 pass).
        allow_float: accept integer-valued floating labels.
        keep_dtype: return uint8/int8/int16/int32 as is (for kernels that read
            them); otherwise the result is int64.
        allow_empty: accept zero labels.
        device: move the result there.
        shape_hint: appended to the 1-D error (e.g. how to flatten masks).

    Returns:
        Tensor[N]: the labels, int64 unless ``keep_dtype``.

    Raises:
        ValueError: non-numeric or non-integer labels, not 1-D, empty, a
            label out of range (the message names ``name[index] = value``).
    """
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1
    ):
        raise ValueError(f"{_prefix(caller)}num_classes must be a positive int, got {num_classes!r}")
    if isinstance(labels, Tensor):
        t = labels.detach()
    else:
        t = _from_array(labels, name, caller)
    t = _to_integer_tensor(t, name, caller, allow_float)
    if t.dim() != 1:
        raise ValueError(f"{_prefix(caller)}{name} must be 1-D, got shape {tuple(t.shape)}{shape_hint}")
    if t.numel() == 0 and not allow_empty:
        raise ValueError(f"{_prefix(caller)}{name} is empty")
    if not keep_dtype:
        t = t.long()
    if device is not None:
        t = t.to(device)
    if t.numel() and (num_classes is not None or not allow_negative):
        lo, hi = torch.aminmax(t)
        low_bad = not allow_negative and int(lo) < 0
        high_bad = num_classes is not None and int(hi) >= num_classes
        if low_bad or high_bad:
            bad = t < 0 if not allow_negative else torch.zeros_like(t, dtype=torch.bool)
            if num_classes is not None:
                bad = bad | (t >= num_classes)
            if ignore_index is not None:
                bad = bad & (t != ignore_index)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                bound = "" if num_classes is None else f" and < num_classes={num_classes}"
                ignored = "" if ignore_index is None else f" (or equal ignore_index={ignore_index})"
                raise ValueError(f"{_prefix(caller)}{name} must be >= 0{bound}{ignored}, got {name}[{i}] = {int(t[i])}")
    return t


def infer_num_classes(
    labels: Tensor,
    name: str = "labels",
    *,
    caller: Optional[str] = None,
    ignore_index: Optional[int] = None,
    num_classes_arg: Optional[str] = "num_classes",
) -> int:
    """``labels.max() + 1`` (labels equal to ``ignore_index`` left out), at most :data:`MAX_INFERRED_CLASSES`.

    ``labels`` come from :func:`check_labels`. A larger label is almost always
    a stray id rather than a real class: refusing it costs nothing, while
    sizing per-class tables by it would allocate up to terabytes. The message
    names the label and its index and suggests ``num_classes_arg`` (when the
    caller has such an argument) for a deliberate class count that large.

    Raises:
        ValueError: every label is ignored, or the largest label is
            >= :data:`MAX_INFERRED_CLASSES`.
    """
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() == 0:
        raise ValueError(f"{_prefix(caller)}every label equals ignore_index={ignore_index}")
    top = int(valid.max())
    if top < MAX_INFERRED_CLASSES:
        return top + 1
    bad = labels >= MAX_INFERRED_CLASSES
    if ignore_index is not None:
        bad = bad & (labels != ignore_index)
    i = int(bad.nonzero()[0, 0])
    value = int(labels[i])
    advice = (
        f"; or pass {num_classes_arg}= to confirm that many classes"
        if num_classes_arg
        else ""
    )
    raise ValueError(
        f"{_prefix(caller)}{name}[{i}] = {value} would make {value + 1} classes (the number of classes is taken "
        f"as the largest label + 1), more than the {MAX_INFERRED_CLASSES} inferred without being told: class "
        f"labels must be 0 .. C-1, so map sparse ids to them first (e.g. torch.unique({name}, "
        f"return_inverse=True)[1]){advice}"
    )


def encode_labels(
    labels: Any, name: str = "y", *, caller: Optional[str] = None, allow_column: bool = True
) -> Tuple[Union[np.ndarray, Tensor], Tensor]:
    """Class labels of any kind as ``(classes, codes)``: ``labels == classes[codes]``.

    For the estimators that accept what scikit-learn accepts as class labels
    (``bt.resample``): integers of any sign and spacing, integral floats (the
    rule of :func:`check_labels`: finite and integer-valued, else refused),
    bools, strings and other sortable objects. Numeric labels go through
    :func:`check_labels`, so the integer rule is the same everywhere.

    Args:
        labels: a 1-D tensor, numpy array or sequence; with ``allow_column``
            also an ``(n, 1)`` column (as scikit-learn's ``column_or_1d``).
        name: the caller's argument name, used in every message.
        caller: a prefix for the messages.
        allow_column: accept ``(n, 1)`` and flatten it.

    Returns:
        classes: the distinct labels in ascending order: a tensor on the
            labels' device for tensor input (the labels' dtype), else a numpy
            array of the labels' dtype (strings stay strings, bools bools).
        codes: Tensor[N] int64 in ``[0, len(classes))``, on the labels' device
            for tensor input, else on the CPU.

    Raises:
        ValueError: not 1-D (nor a column), empty, non-integer or non-finite
            floats, or objects that cannot be sorted together.
    """
    if isinstance(labels, Tensor):
        t = labels.detach()
        if allow_column and t.dim() == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.dtype == torch.bool:
            classes, codes = torch.unique(t.to(torch.uint8), sorted=True, return_inverse=True)
            if t.dim() != 1:
                raise ValueError(f"{_prefix(caller)}{name} must be 1-D, got shape {tuple(t.shape)}")
            return classes.bool(), codes
        check_labels(t, name, caller=caller, allow_negative=True)
        classes, codes = torch.unique(t, sorted=True, return_inverse=True)
        return classes, codes
    array = np.asarray(labels)
    if allow_column and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{_prefix(caller)}{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{_prefix(caller)}{name} is empty")
    if array.dtype == object and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in array
    ):
        # numbers that came in an object container (e.g. a list through pandas): the numeric rule applies
        array = np.asarray(array.tolist())
    if array.dtype.kind in "iuf":
        # a read-only array (pandas' copy-on-write) is checked on a copy: torch warns on sharing it
        check_labels(array if array.flags.writeable else array.copy(), name, caller=caller, allow_negative=True)
    elif array.dtype.kind in "mM":
        raise ValueError(f"{_prefix(caller)}{name} holds {array.dtype} values, not class labels")
    elif array.dtype.kind == "c":
        raise ValueError(f"{_prefix(caller)}{name} must hold class labels, got dtype {array.dtype}")
    try:
        classes, inverse = np.unique(array, return_inverse=True)
    except TypeError as err:
        kinds = sorted({type(v).__name__ for v in array})
        raise ValueError(
            f"{_prefix(caller)}{name} mixes label types that cannot be ordered ({', '.join(kinds)}): {err}"
        ) from None
    if array.dtype == object:
        bad = [v for v in classes if v is None or (isinstance(v, float) and v != v)]
        if bad:
            raise ValueError(f"{_prefix(caller)}{name} holds a missing label ({bad[0]!r})")
    return classes, torch.from_numpy(np.ascontiguousarray(inverse.reshape(-1).astype(np.int64)))
