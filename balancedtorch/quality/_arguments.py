"""The first two stages of ``bt.quality``'s label functions: validate the arguments, agree across ranks.

:func:`_check_find_args` checks every argument of ``find_label_issues``
(under ``torch.distributed`` an invalid input is held, not raised, so that
:func:`_agree_across_ranks` can make every rank raise, or none);
:func:`_check_mistake_inputs` does both for ``rank_mistakes`` and
``mistakes_per_class``. Nothing here computes an answer.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import Comm
from .._labels import check_labels
from ._confident_joint import FILTERS, PRUNING_FILTERS, _check_confident_joint
from ._inputs import as_tensor, check_labels_and_probs, check_pred_probs
from ._results import check_class_names
from ._scores import RANKINGS, _check_rank_by_kwargs

__all__: list = []

_UNSET = object()


def _multi_hot(labels: Any, num_rows: int, K: int) -> np.ndarray:
    """(N, K) int64 0/1 from per-sample class lists (cleanlab's format) or a multi-hot array/tensor."""
    if hasattr(labels, "to_numpy") and not isinstance(labels, Tensor):
        # pandas: a multi-hot DataFrame, or a Series of per-sample class lists
        labels = labels.to_numpy() if getattr(labels, "ndim", 1) == 2 else labels.tolist()
    if isinstance(labels, Tensor) or (isinstance(labels, np.ndarray) and labels.dtype != object):
        hot = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else labels
        if hot.ndim != 2 or hot.shape != (num_rows, K):
            raise ValueError(
                f"labels with multi_label=True must be a list of per-sample class lists or a multi-hot array of shape "
                f"({num_rows}, {K}), got an array of shape {tuple(hot.shape)}"
            )
        if not np.isin(hot, (0, 1)).all():
            raise ValueError("labels with multi_label=True as an array must be multi-hot (only 0 and 1)")
        return hot.astype(np.int64)
    if not isinstance(labels, Sequence) or isinstance(labels, (str, bytes)):
        raise TypeError(f"labels with multi_label=True must be a list of per-sample class lists, got {type(labels).__name__}")
    if len(labels) != num_rows:
        raise ValueError(f"labels has {len(labels)} entries but pred_probs has {num_rows} rows")
    hot = np.zeros((num_rows, K), dtype=np.int64)
    for i, row in enumerate(labels):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise TypeError(f"labels[{i}] must be a list of class indices when multi_label=True, got {row!r}")
        for c in row:
            if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= c < K:
                raise ValueError(f"labels[{i}] must hold class indices in [0, {K}), got {c!r}")
            hot[i, c] = 1
    return hot


def _check_num_to_remove(num_to_remove_per_class: Any, K: int) -> Optional[np.ndarray]:
    if num_to_remove_per_class is None:
        return None
    values = np.asarray(num_to_remove_per_class.cpu() if isinstance(num_to_remove_per_class, Tensor) else num_to_remove_per_class)
    if values.ndim == 0:  # one count for every class, as cleanlab's broadcasting allows
        values = np.full(K, values)
    if values.shape != (K,) or values.dtype.kind not in "iu" or (values < 0).any():
        raise ValueError(
            f"num_to_remove_per_class must be {K} non-negative integers (one per class), got {num_to_remove_per_class!r}"
        )
    return values.astype(np.int64)


def _check_rows(pred_probs: Any, allow_empty: bool, labels: Any = None, multi_label: bool = False):
    """Checked ``pred_probs`` (and labels); a rank's share may hold 0 rows (``allow_empty``), as ``(0, K)``."""
    p = as_tensor(pred_probs, "pred_probs")
    if allow_empty and p.dim() == 2 and p.shape[0] == 0 and p.shape[1] >= 2 and p.is_floating_point():
        if multi_label:
            return p
        y = check_labels(labels, num_classes=p.shape[1], device=p.device, allow_empty=True)
        if y.numel():
            raise ValueError(f"labels has {y.numel()} entries but pred_probs has 0 rows")
        return y, p
    if multi_label:
        return check_pred_probs(pred_probs, None, multi_label=True)
    return check_labels_and_probs(labels, pred_probs)


def _agree_across_ranks(comm: Comm, error: Optional[BaseException], K: int, dtype: Any, num_rows: int, options: tuple) -> None:
    """One all-gather before any data-dependent collective: every rank raises, or none does."""
    dtypes = (None, torch.float16, torch.bfloat16, torch.float32, torch.float64)
    code = dtypes.index(dtype) if dtype in dtypes else len(dtypes)
    fingerprint = zlib.crc32(repr(options).encode()) & 0x7FFFFFFF
    facts = comm.agree(error, [K, code, num_rows, fingerprint], "find_label_issues")
    if len({f[0] for f in facts}) > 1:
        raise ValueError(
            f"pred_probs must have the same number of classes on every rank, got {[f[0] for f in facts]} (rank order)"
        )
    if len({f[1] for f in facts}) > 1:
        raise ValueError(
            f"pred_probs must have the same dtype on every rank, got {[str(dtypes[f[1]]) for f in facts]} (rank order)"
        )
    if len({f[3] for f in facts}) > 1:
        raise ValueError(
            "find_label_issues must be called with the same options on every rank (filter_by, "
            "return_indices_ranked_by, rank_by_kwargs, frac_noise, num_to_remove_per_class, ...)"
        )
    if sum(f[2] for f in facts) == 0:
        raise ValueError("pred_probs is empty on every rank")


def _fingerprint(array: Any) -> Optional[int]:
    """A checksum of a user-given array (None stays None), to check that every rank passed the same one."""
    if array is None:
        return None
    try:
        values = array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array, dtype=np.float64)
        return zlib.crc32(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    except (TypeError, ValueError):  # not an array: the check before reported it; no raise before the collective
        return -1


def _check_name_strings(class_names: Any, what: str) -> Any:
    """class_names are documented as strings: a number (a class id passed by mistake) is a TypeError naming it.

    Returns the names (an iterator read into a list, so that it can be read again)."""
    if class_names is None or isinstance(class_names, (str, bytes, Mapping)) or not hasattr(class_names, "__iter__"):
        return class_names  # check_class_names words those
    class_names = list(class_names)
    for i, name in enumerate(class_names):
        if not isinstance(name, str):  # numpy.str_ is a str
            raise TypeError(
                f"{what}: class_names must be strings (one name per class), got class_names[{i}] = {name!r} "
                f"({type(name).__name__}); for ids as names pass [str(c) for c in ...]"
            )
    return class_names


def _check_mistake_inputs(labels: Any, pred_probs: Any, class_names: Any, comm: Optional[Comm], what: str):
    """Checked labels, pred_probs and names; across ranks, agreed by every rank before any data-dependent step."""
    error, y, p, names = None, None, None, None
    try:
        y, p = _check_rows(pred_probs, comm is not None, labels=labels)
        names = check_class_names(class_names, p.shape[1])
    except (ValueError, TypeError) as err:
        if comm is None:
            raise
        error = err
    if comm is not None:
        K = 0 if p is None else p.shape[1]
        facts = comm.agree(error, [K, 0 if p is None else p.shape[0]], what)
        if len({f[0] for f in facts}) > 1:
            raise ValueError(
                f"pred_probs must have the same number of classes on every rank, got {[f[0] for f in facts]} (rank order)"
            )
    return y, p, names


class _Checked(NamedTuple):
    """What :func:`_check_find_args` hands on: the error held (across ranks) and the checked inputs."""

    error: Optional[BaseException]
    method: Optional[str]  # return_indices_ranked_by (or its old name rank_by)
    adjust: bool
    K: int
    dtype: Any
    num_rows: int
    num_to_remove: Optional[np.ndarray]
    p: Optional[Tensor]
    y: Optional[Tensor]  # single-label
    y_one: Optional[np.ndarray]  # multi-label
    joint: Optional[np.ndarray]  # single-label, pruning filters


def _check_find_args(
    labels: Any,
    pred_probs: Any,
    comm: Optional[Comm],
    *,
    filter_by: str,
    return_indices_ranked_by: Optional[str],
    rank_by_kwargs: Any,
    frac_noise: Any,
    num_to_remove_per_class: Any,
    min_examples_per_class: Any,
    confident_joint: Any,
    n_jobs: Any,
    verbose: Any,
    multi_label: Any,
    low_memory: Any,
    rank_by: Any,
) -> _Checked:
    """Every argument of ``find_label_issues`` checked; across ranks (``comm``) an error is returned, not raised.

    The values reached before an error are handed on as they are, for the
    agreement across ranks.
    """
    p: Optional[Tensor] = None
    y: Optional[Tensor] = None
    y_one: Optional[np.ndarray] = None
    joint: Optional[np.ndarray] = None
    error: Optional[BaseException] = None
    K, dtype, num_rows, adjust, num_to_remove = 0, None, 0, False, None
    try:
        if rank_by is not _UNSET:
            if return_indices_ranked_by is not None and rank_by != return_indices_ranked_by:
                raise ValueError(
                    f"rank_by={rank_by!r} and return_indices_ranked_by={return_indices_ranked_by!r} disagree: "
                    "pass only return_indices_ranked_by (rank_by is its old name)"
                )
            return_indices_ranked_by = rank_by
        _validate.choice(filter_by, "filter_by", FILTERS)
        if return_indices_ranked_by is not None:
            _validate.choice(return_indices_ranked_by, "return_indices_ranked_by", RANKINGS)
        adjust = _check_rank_by_kwargs(rank_by_kwargs, return_indices_ranked_by)
        _validate.real(frac_noise, "frac_noise", low=0, high=1, low_inclusive=False)
        _validate.integer(min_examples_per_class, "min_examples_per_class", low=0)
        _validate.integer(n_jobs, "n_jobs", low=1, optional=True)
        for name, value in (("verbose", verbose), ("multi_label", multi_label), ("low_memory", low_memory)):
            _validate.flag(value, name)
        if filter_by not in PRUNING_FILTERS:
            if num_to_remove_per_class is not None:
                raise ValueError(
                    f"num_to_remove_per_class works with filter_by in {PRUNING_FILTERS}, not {filter_by!r} (as cleanlab)"
                )
            if frac_noise != 1.0:
                warnings.warn(
                    f"frac_noise has no effect with filter_by={filter_by!r} (only with {PRUNING_FILTERS})", stacklevel=3
                )
        if filter_by == "confident_learning" and confident_joint is not None:
            warnings.warn(
                "confident_joint is ignored with filter_by='confident_learning': the confident joint is re-estimated "
                "from labels and pred_probs (as cleanlab)",
                stacklevel=3,
            )
        if multi_label and low_memory:
            raise ValueError(
                "low_memory=True with multi_label=True (cleanlab's approximate batched estimate) is not supported; "
                "use low_memory=False: the exact algorithm needs no more memory than pred_probs"
            )

        if multi_label:
            p = _check_rows(pred_probs, comm is not None, multi_label=True)
            K = p.shape[1]
            y_one = _multi_hot(labels, p.shape[0], K)
            if comm is not None and adjust:
                raise ValueError(
                    "rank_by_kwargs={'adjust_pred_probs': True} with multi_label=True is not supported with "
                    "distributed=True (its thresholds come from the ranked rows themselves); rank on one process"
                )
        else:
            y, p = _check_rows(pred_probs, comm is not None, labels=labels)
            K = p.shape[1]
            if confident_joint is not None and filter_by in PRUNING_FILTERS:
                joint = _check_confident_joint(confident_joint, (K, K))
        num_to_remove = _check_num_to_remove(num_to_remove_per_class, K)
        dtype, num_rows = p.dtype, p.shape[0]
    except (ValueError, TypeError) as err:
        if comm is None:
            raise
        error = err
    return _Checked(error, return_indices_ranked_by, adjust, K, dtype, num_rows, num_to_remove, p, y, y_one, joint)
