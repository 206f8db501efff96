"""The one validator of integer class labels, shared by every module.

Samplers, ``class_weights``, the quality tools, ``labels_of``,
``ClassificationMetrics``, ``FeatureSMOTE`` and ``BatchAugment`` all read
labels through :func:`check_labels` (dtype, shape, range) and, when the number
of classes is not given, :func:`infer_num_classes` (``max + 1``, refused beyond
:data:`MAX_INFERRED_CLASSES` so that a stray id such as 2**40 gives a clear
error instead of a terabyte allocation). Messages name the caller, its
argument, the bad value and its index.

One rule set everywhere: every integer dtype, and floats holding integers
(``[0., 2., 1.]``), are labels; bools, complex numbers, non-integral floats
and strings are not. One-hot or multi-hot ``(N, C)`` arrays where one label
per sample is expected say so and how to convert them; logits where
probabilities are expected (:func:`check_probabilities`) say so too.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from . import _validate

__all__ = [
    "MAX_INFERRED_CLASSES",
    "check_labels",
    "check_probabilities",
    "describe_one_hot",
    "encode_labels",
    "infer_num_classes",
]

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
        if isinstance(example, np.generic):
            example = example.item()  # 'cat', not np.str_('cat')
        found = "non-numeric labels: strings" if isinstance(example, (str, bytes)) else "non-numeric labels"
        raise ValueError(
            f"{_prefix(caller)}{name} holds {found} (e.g. {example!r}), not integer class labels 0..C-1; "
            f"map the class names to integers first, e.g. class_names, {_short(name)} = "
            f"numpy.unique({_short(name)}, return_inverse=True)"
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
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        # read-only (a pandas Series under copy-on-write): torch warns on sharing it, so read a copy
        array = array.copy()
    return torch.from_numpy(array)


def _short(name: str) -> str:
    """An argument name usable in a code suggestion ("labels", not "column 'label'")."""
    return name if name.isidentifier() else "labels"


def describe_one_hot(t: Tensor, name: str, caller: Optional[str] = None, multi_hot: bool = True) -> Optional[str]:
    """A message for a 2-D (N, C) array of 0/1 where one label per sample is expected, else None.

    One-hot (exactly one 1 per row): pass ``argmax(1)``. Multi-hot (only when
    ``multi_hot``): one class per sample does not exist; say what takes
    multi-label targets.

    Args:
        t (Tensor): the array as given (any dtype and shape; only 2-D
            ``(N, C >= 2)`` arrays of 0/1 or bools are recognised).
        name (str): the caller's argument name, used in the message.
        caller (str, optional): a prefix for the message.
        multi_hot (bool): also describe multi-hot rows. Default True.

    Returns:
        str or None: the message (naming the shape and the fix), or None
        when ``t`` is neither one-hot nor (with ``multi_hot``) multi-hot.

    Example:
        >>> import torch
        >>> describe_one_hot(torch.eye(3), "labels", "class_weights")[:46]
        'class_weights: labels looks like one-hot targe'
    """
    if t.dim() != 2 or t.shape[1] < 2 or t.numel() == 0 or t.is_complex():
        return None
    binary = t if t.dtype == torch.bool else (t == 0) | (t == 1)
    if not bool(binary.all()):
        return None
    rows = t.to(torch.int64).sum(dim=1)
    short = _short(name)
    if bool((rows == 1).all()):
        return (
            f"{_prefix(caller)}{name} looks like one-hot targets of shape {tuple(t.shape)} (one 1 per row); "
            f"pass one class index per sample instead: {short}.argmax(1) (numpy: {short}.argmax(axis=1))"
        )
    if not multi_hot or not bool((rows > 1).any()):
        return None  # e.g. an all-zero array: just not 1-D
    return (
        f"{_prefix(caller)}{name} looks like multi-hot (multi-label) targets of shape {tuple(t.shape)}; "
        "one class index per sample is expected here: pick one class per sample "
        f"(e.g. {short}.argmax(1)), or use a multi-label tool (bt.data.RepeatFactorSampler, bt.nn.SigmoidFocalLoss)"
    )


def _to_integer_tensor(t: Tensor, name: str, caller: Optional[str]) -> Tensor:
    if t.dtype == torch.bool or t.is_complex():
        raise _not_integer(name, caller, t.dtype)
    if t.is_floating_point():
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
    keep_dtype: bool = False,
    allow_empty: bool = False,
    any_shape: bool = False,
    device: Any = None,
    shape_hint: str = "",
) -> Tensor:
    """Integer class labels, checked, as a 1-D tensor.

    Accepts a tensor (any device; not copied when already int64), a numpy
    array or a sequence. Every integer dtype works, unsigned ones included
    (uint16/32/64 are converted to int64; a uint64 value >= 2**63 is refused);
    floats are accepted when every value is a finite integer (<= 2**53 in
    magnitude), everywhere. The input is never modified.

    Args:
        labels: the labels.
        name: the caller's argument name, used in every message.
        caller: a prefix for the messages (e.g. ``"class_weights"``).
        num_classes: when given, labels must lie in ``[0, num_classes)``.
        ignore_index: a label value exempt from the range checks.
        allow_negative: skip the ``>= 0`` check (labels such as -1 pass).
        keep_dtype: return uint8/int8/int16/int32 as is (for kernels that read
            them); otherwise the result is int64.
        allow_empty: accept zero labels.
        any_shape: accept labels of any shape (segmentation masks), flattened.
        device: move the result there.
        shape_hint: appended to the 1-D error (e.g. how to flatten masks).

    Returns:
        Tensor[N]: the labels, int64 unless ``keep_dtype``.

    Raises:
        ValueError: non-numeric or non-integer labels, not 1-D (one-hot and
            multi-hot arrays are named as such), empty, a label out of range
            (the message names ``name[index] = value``).

    Example:
        >>> import numpy as np
        >>> check_labels(np.array([0.0, 2.0, 1.0]), caller="sampler")
        tensor([0, 2, 1])
        >>> check_labels([0, 5], caller="sampler", num_classes=3)
        Traceback (most recent call last):
        ValueError: sampler: labels must be >= 0 and < num_classes=3, got labels[1] = 5
    """
    num_classes = _validate.num_classes(num_classes, optional=True, caller=caller or "")
    if isinstance(labels, Tensor):
        t = labels.detach()
    else:
        t = _from_array(labels, name, caller)
    if t.dim() != 1 and not any_shape:
        one_hot = describe_one_hot(t, name, caller)
        if one_hot is not None:
            raise ValueError(one_hot)
    t = _to_integer_tensor(t, name, caller)
    if any_shape:
        t = t.reshape(-1)
    if t.dim() != 1:
        raise ValueError(f"{_prefix(caller)}{name} must be 1-D, got shape {tuple(t.shape)}{shape_hint}")
    if t.numel() == 0 and not allow_empty:
        raise ValueError(f"{_prefix(caller)}{name} is empty")
    if not keep_dtype:
        t = t.long()
    if device is not None:
        t = t.to(device)
    if t.numel() and (num_classes is not None or not allow_negative):
        lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one host synchronisation on a GPU
        low_bad = not allow_negative and lo < 0
        high_bad = num_classes is not None and hi >= num_classes
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

    Args:
        labels (Tensor[N] int64): labels from :func:`check_labels`.
        name (str): the caller's argument name, used in the message.
        caller (str, optional): a prefix for the message.
        ignore_index (int, optional): a label value left out. Default None.
        num_classes_arg (str or None): the caller's argument for an explicit
            class count, suggested in the message. Default ``"num_classes"``.

    Returns:
        int: the number of classes C = largest label + 1.

    Raises:
        ValueError: every label is ignored, or the largest label is
            >= :data:`MAX_INFERRED_CLASSES`.

    Example:
        >>> import torch
        >>> infer_num_classes(torch.tensor([0, 3, 255]), ignore_index=255)
        4
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
    advice = f"; or pass {num_classes_arg}= to confirm that many classes" if num_classes_arg else ""
    raise ValueError(
        f"{_prefix(caller)}{name}[{i}] = {value} would make {value + 1} classes (the number of classes is taken "
        f"as the largest label + 1), more than the {MAX_INFERRED_CLASSES} inferred without being told: class "
        f"labels must be 0 .. C-1, so map sparse ids to them first (e.g. torch.unique({name}, "
        f"return_inverse=True)[1]){advice}"
    )


def check_probabilities(
    probs: Tensor,
    name: str = "pred_probs",
    *,
    caller: Optional[str] = None,
    dim: int = 1,
    atol: float = 1e-3,
) -> Tensor:
    """Checks that ``probs`` holds probabilities along ``dim`` (each in [0, 1], summing to 1).

    Logits are the usual mistake: the message says that they look like logits
    and to apply ``softmax`` first.

    Args:
        probs (Tensor[N, C, ...] | array): floating probabilities.
        name (str): the caller's argument name, used in every message.
            Default ``"pred_probs"``.
        caller (str, optional): a prefix for the messages.
        dim (int): the class dimension, along which rows sum to 1. Default 1.
        atol (float): tolerance on the row sums. Default 1e-3.

    Returns:
        Tensor: ``probs`` unchanged (as a tensor when given an array).

    Example:
        >>> import torch
        >>> check_probabilities(torch.tensor([[2.0, -1.0]]), caller="rank_mistakes")
        Traceback (most recent call last):
        ValueError: rank_mistakes: pred_probs must hold probabilities ... pass torch.softmax(logits, dim=1) instead

    Raises:
        ValueError: not floating, not finite, a value outside [0, 1], or a
            row that does not sum to 1 (within ``atol``).
    """
    if not isinstance(probs, Tensor):
        probs = torch.as_tensor(np.asarray(probs))
    if not probs.is_floating_point():
        raise ValueError(f"{_prefix(caller)}{name} must hold floating probabilities, got dtype {probs.dtype}")
    if probs.numel() == 0:
        return probs
    p = probs.detach()
    bad = ~torch.isfinite(p)
    if bool(bad.any()):
        i = int(bad.flatten().nonzero()[0, 0])
        raise ValueError(f"{_prefix(caller)}{name} must be finite, got {name}.flatten()[{i}] = {p.flatten()[i].item()}")
    outside = (p < 0) | (p > 1)
    sums = p.double().sum(dim=dim)
    off = (sums - 1).abs() > atol
    if bool(outside.any()) or bool(off.any()):
        if bool(outside.any()):
            i = int(outside.flatten().nonzero()[0, 0])
            found = f"{name}.flatten()[{i}] = {p.flatten()[i].item():.4g} is outside [0, 1]"
        else:
            i = int(off.flatten().nonzero()[0, 0])
            found = f"entry {i} sums to {sums.flatten()[i].item():.4g} over dim {dim}, not 1"
        raise ValueError(
            f"{_prefix(caller)}{name} must hold probabilities (each in [0, 1], summing to 1 over dim {dim}), "
            f"but {found}: these look like logits; pass torch.softmax(logits, dim={dim}) instead"
        )
    return probs


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

    Example:
        >>> classes, codes = encode_labels(["cat", "dog", "cat"])
        >>> classes.tolist(), codes.tolist()
        (['cat', 'dog'], [0, 1, 0])
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
    if array.dtype == object and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in array):
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
