"""Every argument check of the package, under one exception policy.

Policy: a value of the wrong type is a TypeError, a value of the right type
that is out of range (or not among the options) is a ValueError; every
message names the caller, the argument and the value, in one format::

    "{caller}: {name} must be {what}, got {value!r}"

(the repr cut at 80 characters). Classes that are
drop-ins for a peer keep the peer's exception types where they are part of
the promise (``bt.resample`` raises scikit-learn's InvalidParameterError, a
ValueError and a TypeError at once; the ranking functions in ``bt.metrics``
raise what scikit-learn raises).

Scalars: :func:`integer`, :func:`real`, :func:`flag`, :func:`choice`; the
class-related arguments: :func:`num_classes` (one lower bound: 1; a tool that
needs two classes asks ``integer(..., low=2)``), :func:`ignore_index` (any
int64); devices: :func:`same_device`; tensors: :func:`as_tensor`,
:func:`refuse_meta`, :func:`check_dense`, :func:`all_finite`,
:func:`finite_nonnegative` (weights and counts). Label vectors themselves are checked
by :func:`balancedtorch._labels.check_labels`, which takes its ``num_classes``
from here.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

__all__: list = []


def _prefix(caller: Optional[str]) -> str:
    return f"{caller}: " if caller else ""


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _wrong_type(what: str, value: Any, name: str, caller: str) -> TypeError:
    return TypeError(f"{_prefix(caller)}{name} must be {what}, got {_show(value)}")


def _wrong_value(what: str, value: Any, name: str, caller: str) -> ValueError:
    return ValueError(f"{_prefix(caller)}{name} must be {what}, got {_show(value)}")


def is_integer(value: Any) -> bool:
    """True for a Python or numpy integer; False for a bool (numpy's bool_ too: ``True`` is no count) and anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _int_bounds(low: Optional[int], high: Optional[int]) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def integer(
    value: Any,
    name: str,
    *,
    low: Optional[int] = None,
    high: Optional[int] = None,
    optional: bool = False,
    int64: bool = True,
    caller: str = "",
) -> Any:
    """``value`` as a Python int in ``[low, high]`` (both inclusive, None: no bound), within int64.

    A bool is refused (``True`` is not a count); numpy integers are accepted.
    ``optional=True`` lets None through (returned as None); ``int64=False``
    drops the int64 range (for seeds, which are hashed, never passed to a kernel).

    Raises:
        TypeError: not an integer (floats such as 2.0 included).
        ValueError: outside ``[low, high]``, or outside int64 (the kernels take int64).

    Example:
        >>> import numpy as np
        >>> integer(np.int32(3), "k", low=1)
        3
        >>> integer(0, "k", low=1, caller="knn")
        Traceback (most recent call last):
        ValueError: knn: k must be an int >= 1, got 0
    """
    if value is None and optional:
        return None
    what = "an int" + _int_bounds(low, high) + (" or None" if optional else "")
    if not is_integer(value):
        raise _wrong_type(what, value, name, caller)
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise _wrong_value(what, value, name, caller)
    return check_int64(v, name, caller) if int64 else v


def _real_bounds(low, high, low_inclusive, high_inclusive) -> str:
    if low is not None and high is not None:
        return f" in {'[' if low_inclusive else '('}{_number(low)}, {_number(high)}{']' if high_inclusive else ')'}"
    if low is not None:
        return f" {'>=' if low_inclusive else '>'} {_number(low)}"
    if high is not None:
        return f" {'<=' if high_inclusive else '<'} {_number(high)}"
    return ""


def real(
    value: Any,
    name: str,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    finite: bool = True,
    optional: bool = False,
    caller: str = "",
) -> Any:
    """``value`` as a Python float within the bounds (None: no bound).

    Any real number is accepted (int, float, numpy scalars); a bool is
    refused. NaN is always refused; ``finite=False`` lets +-inf through
    (where the bounds allow it). ``optional=True`` lets None through.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite (unless ``finite=False``) or out of bounds.

    Example:
        >>> real(0.5, "beta", low=0, high=1, high_inclusive=False)
        0.5
        >>> real(1, "tpr", low=0, high=1, low_inclusive=False, high_inclusive=False, caller="threshold")
        Traceback (most recent call last):
        ValueError: threshold: tpr must be a number in (0, 1), got 1
    """
    if value is None and optional:
        return None
    bounded = low is not None and high is not None
    what = ("a finite number" if finite and not bounded else "a number") + _real_bounds(low, high, low_inclusive, high_inclusive)
    what += " or None" if optional else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _wrong_type(what, value, name, caller)
    v = float(value)
    if (
        math.isnan(v)
        or (finite and math.isinf(v))
        or (low is not None and not (v >= low if low_inclusive else v > low))
        or (high is not None and not (v <= high if high_inclusive else v < high))
    ):
        raise _wrong_value(what, value, name, caller)
    return v


def flag(value: Any, name: str, *, optional: bool = False, caller: str = "") -> Any:
    """``value`` as a bool: only True or False (numpy's bool_ too); ``bool("no")`` is True, so nothing is coerced.

    ``optional=True`` lets None through (an "automatic" default).

    Raises:
        TypeError: anything else (1 and 0 included).
    """
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise _wrong_type("None, True or False" if optional else "True or False", value, name, caller)
    return bool(value)


def _kind(x: Any) -> type:
    """What ``choice`` compares by: True is not 1, while numpy's int64(1) is 1 and a numpy str_ a str."""
    if isinstance(x, (bool, np.bool_)):
        return bool
    if isinstance(x, numbers.Integral):
        return int
    return str if isinstance(x, str) else type(x)


def choice(value: Any, name: str, options: Sequence[Any], *, caller: str = "") -> Any:
    """``value`` when it is one of ``options`` (returned as the option itself), else a ValueError listing them.

    A value of another type is a ValueError too (as torch's ``reduction=None``
    and scikit-learn's string options): the options are the complete answer.
    """
    for option in options:
        if value is option:
            return option
        if option is not None and _kind(value) is _kind(option):
            try:
                if bool(value == option):
                    return option
            except (TypeError, ValueError):  # an array compared element-wise
                pass
    listed = ", ".join(repr(o) for o in options)
    raise _wrong_value(f"one of {listed}", value, name, caller)


def num_classes(value: Any, name: str = "num_classes", *, optional: bool = False, caller: str = "") -> Any:
    """A number of classes: an int >= 1 within int64 (None passes with ``optional=True``: inferred from the labels).

    One lower bound for the whole package: 1 (a single foreground class, or
    one label of a multi-label task, is a valid count). A tool that needs two
    classes to mean anything (multiclass metrics, label-shift estimation) asks
    ``integer(value, "num_classes", low=2)``.
    """
    return integer(value, name, low=1, optional=optional, caller=caller)


def ignore_index(value: Any, name: str = "ignore_index", *, caller: str = "") -> Optional[int]:
    """A label value to skip: None, or any int within int64 (negative ones such as torch's -100 included)."""
    return integer(value, name, optional=True, caller=caller)


def finite_nonnegative(t: Tensor, name: str, *, caller: str = "") -> Tensor:
    """``t`` itself when every entry is finite and >= 0 (weights, counts), else a ValueError naming the first bad entry."""
    bad = ~torch.isfinite(t) | (t < 0) if t.is_floating_point() else t < 0
    if bool(bad.any()):
        i = int(bad.flatten().nonzero()[0, 0])
        raise ValueError(f"{_prefix(caller)}{name} must be finite and >= 0, got {name}[{i}] = {t.flatten()[i].item()}")
    return t


def same_device(caller: str, anchor_name: str, anchor: Tensor, **others: Optional[Tensor]) -> None:
    """A ValueError naming both arguments and devices when a tensor of ``others`` (None skipped) is not on ``anchor``'s device."""
    for name, t in others.items():
        if t is not None and t.device != anchor.device:
            raise ValueError(
                f"{_prefix(caller)}{name} is on {t.device} but {anchor_name} is on {anchor.device}"
            )  # the message of the kernels' device checks (csrc/device_check.h); the fake kernels use it too


def as_tensor(values: Any, name: str) -> Tensor:
    """A tensor of ``values``: tensors detached (never copied); arrays, pandas objects and lists converted.

    A read-only array (a pandas Series or DataFrame under copy-on-write) is
    copied first: torch warns when it shares read-only memory.
    """
    if isinstance(values, Tensor):
        return values.detach()
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as e:  # e.g. ragged nested lists
        raise ValueError(f"{name} must be a numeric array, got {type(values).__name__} that numpy cannot convert ({e})") from None
    if array.dtype == object:
        raise ValueError(f"{name} must be numeric, got an object array")
    if array.dtype.kind not in "biufc":  # strings, bytes, datetimes: torch's own message would not name the argument
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    if not array.flags.writeable:
        array = array.copy()
    return torch.as_tensor(array)


def refuse_meta(value: Any, name: str, caller: str) -> None:
    """A tensor on the meta device has a shape but no values: say so, naming the argument, before anything reads it."""
    if isinstance(value, Tensor) and value.device.type == "meta":
        raise ValueError(f"{caller}: {name} is on the meta device, which holds no values; pass a tensor with data (CPU or GPU)")


class ShapeMismatchError(ValueError, AssertionError):
    """A target whose shape does not fit the input's.

    A ValueError (the house rule for bad input) that is also an AssertionError,
    which MONAI's losses raise for the same mistake: code written against
    either catches it (as numpy's AxisError is both a ValueError and an
    IndexError).
    """


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_int64(value: int, name: str, caller: str = "") -> int:
    """``value`` (an int) as a Python int, or a ValueError naming ``name`` when it does not fit int64.

    The kernels take int64 arguments: a larger Python int would otherwise reach
    torch's dispatcher, which raises an OverflowError or a RuntimeError that
    names neither the argument nor the limit.
    """
    if not INT64_MIN <= value <= INT64_MAX:
        prefix = f"{caller}: " if caller else ""
        raise ValueError(f"{prefix}{name} must fit in int64 (from -2**63 to 2**63 - 1), got {value}")
    return int(value)


def check_dense(t: Tensor, name: str, caller: str = "") -> Tensor:
    """``t`` itself, or a TypeError naming ``name`` when it is not a dense (strided) tensor.

    The kernels are registered for dense CPU/CUDA tensors only: torch would
    dispatch a sparse tensor to its SparseCPU/SparseCUDA key and raise a
    NotImplementedError that names neither the argument nor the fix.
    """
    if t.layout != torch.strided:
        prefix = f"{caller}: " if caller else ""
        raise TypeError(
            f"{prefix}{name} must be a dense tensor, got layout {t.layout}: sparse tensors are not supported (pass {name}.to_dense())"
        )
    return t


def all_finite(t: Tensor) -> bool:
    """True when every element of floating tensor ``t`` is finite.

    One ``aminmax`` reduction (its min and max propagate NaN, and an inf is
    the min or the max), without the boolean temporary of
    ``isfinite(t).all()``: ~80x faster on large CPU tensors.
    """
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))


class _Unset:
    """The default of a deprecated keyword: tells "not passed" from any value a caller could pass."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def renamed(owner: str, new: str, new_value: Any, old: str, old_value: Any, default: Any, stacklevel: int = 3) -> Any:
    """The value of keyword ``new``, also accepted under its deprecated name ``old`` (one release).

    ``old_value`` is ``UNSET`` when the caller did not pass ``old``. Passing
    ``old`` warns (DeprecationWarning, pointing at the caller's line); passing
    ``old`` and a ``new`` other than its default is a TypeError, as Python's
    own "got multiple values". ``stacklevel`` is counted from this function
    (3: the caller of the function that calls it).
    """
    if old_value is UNSET:
        return new_value
    if new_value is not default and new_value != default:
        raise TypeError(f"{owner}: pass {new}= only ({old}= is its deprecated name), got both")
    warnings.warn(
        f"{owner}: {old}= is deprecated and will be removed in the next release; use {new}= (same values)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value
