"""The input checks and output conversions of ``bt.metrics``' scikit-learn ranking metrics (``ranking.py``).

scikit-learn's rules and messages for labels, scores, ``sample_weight`` and
``pos_label`` (on numpy arrays, lists, pandas objects and tensors, without
moving tensors off their device), and the numpy-or-tensor answers.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ..data.labels import refuse_meta

__all__: List[str] = []

Array = Union[np.ndarray, Tensor]


def _undefined_metric_warning() -> type:
    """scikit-learn's UndefinedMetricWarning when scikit-learn is importable (its tests catch that class)."""
    try:
        from sklearn.exceptions import UndefinedMetricWarning

        return UndefinedMetricWarning
    except ImportError:  # pragma: no cover - scikit-learn is optional
        return _UndefinedMetricWarning


class _UndefinedMetricWarning(UserWarning):
    """A metric is undefined on these inputs (scikit-learn's UndefinedMetricWarning)."""


# ----------------------------------------------------------------------------- inputs
def _refuse_meta(caller: str, **arrays: Any) -> None:
    """Before anything reads them: tensors on the meta device hold no values (a ValueError naming the argument)."""
    for name, value in arrays.items():
        refuse_meta(value, name, caller)


def _float_dtype(device: torch.device) -> torch.dtype:
    """The widest float the device has (float64; float32 on MPS), as scikit-learn's _max_precision_float_dtype."""
    return torch.float32 if device.type == "mps" else torch.float64


def _labels_array(y: Any, name: str) -> Array:
    """Labels as a tensor (tensors stay where they are) or a numpy array (any dtype: strings stay strings)."""
    if isinstance(y, Tensor):
        return y.detach()
    if isinstance(y, (str, bytes)) or not (hasattr(y, "__array__") or hasattr(y, "__len__")):
        raise ValueError(f"Expected array-like (array or non-string sequence), got {y!r}")
    try:
        a = np.asarray(y)
    except ValueError:
        a = np.asarray(y, dtype=object)
    if a.dtype.kind == "S" or (a.dtype == object and a.size and isinstance(a.flat[0], bytes)):
        raise TypeError(
            "Support for labels represented as bytes is not supported. Convert the labels to a string or integer format."
        )
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported in {name}")
    return a


def _check_not_empty(y: Array) -> None:
    """scikit-learn's check_array(ensure_min_samples=1) on y_true, with its message."""
    if y.ndim >= 1 and y.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(y.shape)}) while a minimum of 1 is required.")


def _unique(y: Array) -> Array:
    if isinstance(y, Tensor):
        return torch.unique(y)
    try:
        return np.unique(y)
    except TypeError as e:
        kinds = sorted({type(v).__name__ for v in np.ravel(y)})
        raise ValueError(f"y_true mixes label types that cannot be ordered ({', '.join(kinds)}): {e}") from None


def _is_float(y: Array) -> bool:
    return y.is_floating_point() if isinstance(y, Tensor) else y.dtype.kind == "f"


def _assert_finite(y: Array, name: str) -> None:
    t = y if isinstance(y, Tensor) else torch.from_numpy(np.ascontiguousarray(y))
    if not t.is_floating_point() or t.numel() == 0:
        return
    bad = ~torch.isfinite(t.reshape(-1))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        v = float(t.reshape(-1)[i])
        what = "NaN" if math.isnan(v) else "infinity or a value too large for dtype('float64')"
        raise ValueError(f"Input {name} contains {what} ({name}.flatten()[{i}] = {v}).")


def _type_of_target(y: Array) -> str:
    """scikit-learn's ``type_of_target`` for the targets these functions take."""
    if y.ndim not in (1, 2):
        return "unknown"
    if min(y.shape) == 0:
        return "binary" if y.ndim == 1 else "unknown"
    if not isinstance(y, Tensor) and y.dtype == object and not isinstance(y.flat[0], str):
        return "unknown"
    if not isinstance(y, Tensor) and y.dtype.kind in "US" or (not isinstance(y, Tensor) and y.dtype == object):
        numeric = False
    else:
        numeric = True
    wide = y.ndim == 2 and y.shape[1] > 1
    if numeric and _is_float(y):
        _assert_finite(y, "y_true")
        t = y if isinstance(y, Tensor) else torch.from_numpy(np.ascontiguousarray(y))
        if not bool((t == t.trunc()).all()):
            return "continuous" + ("-multioutput" if wide else "")
    uniques = _unique(y)
    n_unique = uniques.numel() if isinstance(uniques, Tensor) else uniques.size
    if wide and n_unique < 3 and numeric:
        return "multilabel-indicator"
    if n_unique > 2 or wide:
        return "multiclass" + ("-multioutput" if wide else "")
    return "binary"


def _scores_tensor(y_score: Any, name: str = "y_score") -> Tensor:
    """Scores as a tensor: tensors as they are, anything else through numpy (CPU)."""
    if isinstance(y_score, Tensor):
        s = y_score.detach()
    else:
        try:
            a = np.asarray(y_score)
        except ValueError as e:
            raise ValueError(f"{name} must be a numeric array: {e}") from None
        if a.dtype == object:
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must hold numbers, got an object array") from None
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
        if not a.flags.writeable or not a.flags.c_contiguous or a.dtype.byteorder == ">":
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
        s = torch.from_numpy(a)
    if s.is_complex():
        raise ValueError(f"Complex data not supported in {name}")
    if s.dtype == torch.bool:
        s = s.to(torch.uint8)
    if s.dim() > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {tuple(s.shape)}")
    return s


def _to_device(y: Array, device: torch.device, name: str) -> Array:
    if isinstance(y, Tensor) and y.device != device:
        raise ValueError(f"{name} is on {y.device} but y_score is on {device}: put both on one device")
    return y


def _check_length(name_lengths: List[Tuple[str, int]]) -> None:
    lengths = [n for _, n in name_lengths]
    if len(set(lengths)) > 1:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {lengths}")


def _column(x: Array, name: str) -> Array:
    """scikit-learn's column_or_1d."""
    if x.ndim == 2 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"{name} should be a 1d array, got an array of shape {tuple(x.shape)} instead.")
    return x


def _check_weight(sample_weight: Any, n: int, device: torch.device, allow_all_zero: bool = False) -> Optional[Tensor]:
    """Sample weights as a float64 tensor on ``device``: 1-D, length n, finite, >= 0, not all 0 (unless allowed)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, Tensor):
        w = _to_device(sample_weight.detach(), device, "sample_weight")
    elif isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        w = torch.full((n,), float(sample_weight), dtype=torch.float64, device=device)
    else:
        a = np.asarray(sample_weight)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must hold numbers, got dtype {a.dtype}")
        w = torch.from_numpy(np.array(a, dtype=np.float64)).to(device)
    if w.is_complex():
        raise ValueError("Complex data not supported in sample_weight")
    w = w.to(_float_dtype(device)) if not w.is_floating_point() else w
    if w.dim() == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.dim() != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {w.dim()}D array. Expected either a scalar value or a "
            f"1D array of length {n}."
        )
    if w.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {tuple(w.shape)}, expected {(n,)}!")
    _assert_finite(w, "sample_weight")
    if n and bool((w < 0).any()):
        i = int((w < 0).nonzero()[0, 0])
        raise ValueError(f"sample_weight must be >= 0, got sample_weight[{i}] = {float(w[i])}")
    if n and not allow_all_zero and bool((w == 0).all()):
        raise ValueError(_ALL_ZERO)
    return w


_ALL_ZERO = "Sample weights must contain at least one non-zero number."


def _equal(y: Array, value: Any, device: torch.device) -> Tensor:
    """``y == value`` as a bool tensor on ``device`` (False everywhere when the kinds cannot compare)."""
    if isinstance(y, Tensor):
        if isinstance(value, (str, bytes)):
            return torch.zeros(y.shape, dtype=torch.bool, device=y.device)
        return y == value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eq = np.asarray(y == value)
    if eq.shape != y.shape:
        eq = np.zeros(y.shape, dtype=bool)
    return torch.from_numpy(np.ascontiguousarray(eq, dtype=bool)).to(device)


def _contains(labels: Array, value: Any) -> bool:
    if isinstance(labels, Tensor):
        if isinstance(value, (str, bytes)):
            return False
        return bool((labels == value).any())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(np.any(np.asarray(labels == value)))


def _labels_repr(labels: Array) -> str:
    return str(labels.cpu().numpy()) if isinstance(labels, Tensor) else str(labels)


def _pos_label(pos_label: Any, y_true: Array) -> Any:
    """scikit-learn's _check_pos_label_consistency."""
    if pos_label is not None:
        return pos_label
    classes = _unique(y_true)
    values = classes.tolist()
    allowed = ([0, 1], [-1, 1], [0], [-1], [1])
    string = not isinstance(classes, Tensor) and classes.dtype.kind in "OUS"
    if string or not any(len(values) == len(a) and all(v == w for v, w in zip(values, a)) for a in allowed):
        shown = ", ".join(repr(v) for v in values)
        raise ValueError(
            f"y_true takes value in {{{shown}}} and pos_label is not specified: either make y_true take value in "
            "{0, 1} or {-1, 1} or pass pos_label explicitly."
        )
    return 1


def _check_pos_label_type(pos_label: Any, allow_none: bool) -> None:
    if pos_label is None and allow_none:
        return
    if not isinstance(pos_label, (numbers.Real, str, bool, np.bool_)):
        raise TypeError(
            f"pos_label must be an int, a float, a bool or a str{' or None' if allow_none else ''}, got {pos_label!r}"
        )


# ----------------------------------------------------------------------------- outputs
def _out_array(t: Tensor, tensors: bool) -> Array:
    return t if tensors else t.cpu().numpy()


def _out_scalar(value: Union[float, Tensor], tensors: bool, device: torch.device) -> Any:
    if tensors:
        if isinstance(value, Tensor):
            return value.to(_float_dtype(device)).reshape(())
        return torch.tensor(float(value), dtype=_float_dtype(device), device=device)
    return float(value)
