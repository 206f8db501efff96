"""Shared machinery of the imbalanced-learn compatible resamplers.

Inputs are converted once into torch tensors on the working device, the labels
into dense codes 0..K-1 (classes in ascending order, as ``np.unique``), and
results are converted back: numpy in -> numpy out, tensor in -> tensor out on
the input's device.
"""

from __future__ import annotations

import numbers
import warnings
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .._checks import all_finite
from ..ops.knn import knn

SAMPLING_KINDS = ("over-sampling", "under-sampling", "clean-sampling")
STRATEGY_NAMES = ("auto", "minority", "majority", "not minority", "not majority", "all")


def _from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing a numpy array's memory; read-only arrays (pandas' copy-on-write)
    are shared too: the resamplers only read their inputs."""
    arr = np.ascontiguousarray(arr)
    if arr.flags.writeable:
        return torch.from_numpy(arr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


class _Data:
    """X and y of one ``fit_resample`` call, as tensors on the working device."""

    def __init__(self, X: Any, y: Any, device=None, owner: str = "fit_resample") -> None:
        self.numpy = not isinstance(X, Tensor)
        # pandas in -> pandas out, as imbalanced-learn (column names and y's name kept)
        self.x_columns = getattr(X, "columns", None) if hasattr(X, "iloc") else None
        self.y_name = getattr(y, "name", None) if hasattr(y, "iloc") else None
        self.y_is_series = hasattr(y, "iloc") and getattr(y, "ndim", 0) == 1
        if isinstance(X, Tensor) != isinstance(y, Tensor) and isinstance(X, Tensor):
            y = torch.as_tensor(np.asarray(y))
        if self.numpy:
            X_arr = np.asarray(X)
            if X_arr.dtype == object or not (np.issubdtype(X_arr.dtype, np.number) or X_arr.dtype == bool):
                raise ValueError(f"{owner}: X must be a numeric array, got dtype {X_arr.dtype}")
            self.x_dtype_np = X_arr.dtype
            X = _from_numpy(X_arr)
            y_arr = np.asarray(y.cpu().numpy() if isinstance(y, Tensor) else y)
            self.y_dtype_np = y_arr.dtype
            if y_arr.dtype == object or y_arr.dtype.kind in "USV":
                raise ValueError(f"{owner}: y must hold integer class labels, got dtype {y_arr.dtype}")
            y = _from_numpy(y_arr)
        self.in_device = X.device
        self.device = torch.device(device) if device is not None else X.device
        X = X.detach()
        y = y.detach()
        if X.dim() != 2:
            raise ValueError(f"{owner}: X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
        if y.dim() != 1:
            raise ValueError(f"{owner}: y must be 1-D, got shape {tuple(y.shape)}")
        if X.shape[1] == 0:
            # scikit-learn's check_array wording, as imbalanced-learn raises it
            raise ValueError(f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required by {owner}.")
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"{owner}: X has {X.shape[0]} samples but y has {y.shape[0]} labels")
        if X.shape[0] == 0:
            raise ValueError(f"{owner}: X is empty")
        if y.dtype == torch.bool or y.is_complex():
            raise ValueError(f"{owner}: y must hold integer class labels, got dtype {y.dtype}")
        if y.is_floating_point():
            if not bool((y == y.round()).all()):
                bad = int((y != y.round()).nonzero()[0, 0])
                raise ValueError(f"{owner}: y must hold integer class labels, got y[{bad}] = {float(y[bad])}")
        self.y_dtype = y.dtype
        if X.dtype == torch.bool:
            X = X.to(torch.uint8)
        self.x_dtype = X.dtype
        X = X.to(self.device)
        if X.is_floating_point():
            if not all_finite(X):
                raise ValueError(f"{owner}: X contains NaN or inf")
        self.X = X
        self.y = y.to(self.device)
        classes, codes, counts = torch.unique(self.y, sorted=True, return_inverse=True, return_counts=True)
        if classes.numel() < 2:
            raise ValueError(f"{owner}: y needs more than 1 class, got {classes.numel()} class")
        self.classes = classes
        self.class_values = classes.tolist()
        self.codes = codes
        self.counts = counts.tolist()

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def work(self) -> Tensor:
        """X in a floating dtype for distances and interpolation."""
        X = self.X
        if X.is_floating_point():
            return X
        return X.to(torch.float64)

    def rows_of(self, code: int) -> Tensor:
        return (self.codes == code).nonzero().squeeze(1)

    def out_x(self, X: Tensor):
        if X.dtype != self.x_dtype:
            X = X.to(self.x_dtype)  # truncation toward zero for integer X, as numpy's astype
        if self.numpy:
            arr = X.cpu().numpy().astype(self.x_dtype_np, copy=False)
            if self.x_columns is not None:
                import pandas as pd

                return pd.DataFrame(arr, columns=self.x_columns)
            return arr
        return X.to(self.in_device)

    def out_y(self, codes: Tensor):
        y = self.classes[codes].to(self.y_dtype)
        if self.numpy:
            arr = y.cpu().numpy().astype(self.y_dtype_np, copy=False)
            if self.y_is_series:
                import pandas as pd

                return pd.Series(arr, name=self.y_name)
            return arr
        return y.to(self.in_device)

    def out_indices(self, idx: Tensor):
        return idx.cpu().numpy() if self.numpy else idx.to(self.in_device)


def _minority_code(counts) -> int:
    return min(range(len(counts)), key=counts.__getitem__)


def _majority_code(counts) -> int:
    return max(range(len(counts)), key=counts.__getitem__)


def check_sampling_strategy(sampling_strategy: Any, data: _Data, kind: str, owner: str) -> "OrderedDict[int, int]":
    """imbalanced-learn's ``check_sampling_strategy`` on class codes.

    Returns ``{code: n}`` in ascending class order: for over-sampling the
    number of samples to generate, for under-sampling the number to keep, for
    cleaning methods the classes to clean (values: the minority count).
    """
    counts = data.counts
    K = len(counts)
    n_max, n_min = max(counts), min(counts)
    c_max, c_min = _majority_code(counts), _minority_code(counts)
    over = kind == "over-sampling"
    if isinstance(sampling_strategy, str):
        name = sampling_strategy
        if name not in STRATEGY_NAMES:
            raise ValueError(f"{owner}: sampling_strategy must be one of {STRATEGY_NAMES}, a float, a dict or a callable, got {name!r}")
        if name == "auto":
            name = "not majority" if over else "not minority"
        if name == "minority" and not over:
            raise ValueError(f"{owner}: sampling_strategy='minority' cannot be used with an under-sampler or a cleaning method")
        if name == "majority" and over:
            raise ValueError(f"{owner}: sampling_strategy='majority' cannot be used with an over-sampler")
        chosen = {
            "minority": [c_min],
            "majority": [c_max],
            "not minority": [c for c in range(K) if c != c_min],
            "not majority": [c for c in range(K) if c != c_max],
            "all": list(range(K)),
        }[name]
        out = {c: (n_max - counts[c]) if over else n_min for c in chosen}
    elif isinstance(sampling_strategy, dict) or callable(sampling_strategy):
        if not isinstance(sampling_strategy, dict):
            y_np = data.out_y(data.codes)
            sampling_strategy = sampling_strategy(y_np if isinstance(y_np, np.ndarray) else y_np.cpu().numpy())
            if not isinstance(sampling_strategy, dict):
                raise ValueError(f"{owner}: a callable sampling_strategy must return a dict, got {type(sampling_strategy).__name__}")
        if kind == "clean-sampling":
            raise ValueError(f"{owner}: sampling_strategy as a dict is not supported by cleaning methods; give a list of classes")
        out = {}
        for cls, n in sampling_strategy.items():
            code = _code_of(cls, data, owner)
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
                raise ValueError(f"{owner}: sampling_strategy[{cls!r}] must be a non-negative int, got {n!r}")
            have = counts[code]
            if over and n < have:
                raise ValueError(
                    f"{owner}: with over-sampling, sampling_strategy[{cls!r}]={n} must be >= the class's {have} samples"
                )
            if not over and n > have:
                raise ValueError(
                    f"{owner}: with under-sampling, sampling_strategy[{cls!r}]={n} must be <= the class's {have} samples"
                )
            out[code] = int(n) - have if over else int(n)
    elif isinstance(sampling_strategy, (list, tuple)):
        if kind != "clean-sampling":
            raise ValueError(f"{owner}: sampling_strategy can be a list only for cleaning methods")
        out = {_code_of(cls, data, owner): n_min for cls in sampling_strategy}
    elif isinstance(sampling_strategy, numbers.Real) and not isinstance(sampling_strategy, bool):
        ratio = float(sampling_strategy)
        if not 0 < ratio <= 1:
            raise ValueError(f"{owner}: a float sampling_strategy must be in (0, 1], got {sampling_strategy}")
        if K != 2:
            raise ValueError(f"{owner}: sampling_strategy can be a float only for two classes (got {K}); use a dict")
        if kind == "clean-sampling":
            raise ValueError(f"{owner}: cleaning methods do not take a float sampling_strategy")
        if over:
            out = {c: int(n_max * ratio - counts[c]) for c in range(K) if c != c_max}
            if any(v <= 0 for v in out.values()):
                raise ValueError(
                    f"{owner}: sampling_strategy={ratio} would remove minority samples while over-sampling; increase it"
                )
        else:
            out = {c: int(n_min / ratio) for c in range(K) if c != c_min}
            if any(v > counts[c] for c, v in out.items()):
                raise ValueError(
                    f"{owner}: sampling_strategy={ratio} would add majority samples while under-sampling; increase it"
                )
    else:
        raise ValueError(f"{owner}: sampling_strategy must be a str, float, dict, list or callable, got {sampling_strategy!r}")
    return OrderedDict(sorted(out.items()))


def _code_of(cls: Any, data: _Data, owner: str) -> int:
    try:
        value = cls.item() if hasattr(cls, "item") else cls
        return data.class_values.index(value)
    except ValueError:
        raise ValueError(f"{owner}: sampling_strategy names class {cls!r}, which is not present in y") from None


def make_generator(random_state: Any, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` from an int, a numpy RandomState/Generator, a torch.Generator or None."""
    if isinstance(random_state, torch.Generator):
        if random_state.device.type == device.type:
            return random_state
        seed = int(torch.randint(0, 2**62, (1,), generator=random_state))
    elif random_state is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    elif isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(0, 2**31 - 1))
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(0, 2**62))
    else:
        raise ValueError(f"random_state must be None, an int, a numpy RandomState/Generator or a torch.Generator, got {random_state!r}")
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def check_neighbours(value: Any, name: str, owner: str, additional: int) -> int:
    """k from an int or, as imbalanced-learn accepts, a fitted-or-not neighbours
    estimator (anything with ``n_neighbors``, e.g. sklearn's NearestNeighbors).

    imbalanced-learn adds ``additional`` neighbours to an int (the sample itself,
    dropped from the results) but uses an estimator's ``n_neighbors`` as is, so
    an estimator means ``n_neighbors - additional`` usable neighbours. The search
    itself is always bt.ops.knn (exact, squared Euclidean)."""
    if hasattr(value, "n_neighbors") and not isinstance(value, (int, float)):
        k = getattr(value, "n_neighbors")
        return check_int(k - additional if isinstance(k, numbers.Integral) else k, f"{name}.n_neighbors - {additional}" if additional else f"{name}.n_neighbors", owner)
    return check_int(value, name, owner)


def check_int(value: Any, name: str, owner: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_enough(n: int, k: int, owner: str, name: str, cls: Any) -> None:
    """k neighbours besides the sample itself need more than k samples (imbalanced-learn raises too)."""
    if n <= k:
        where = f" in every class it resamples; class {cls!r} has {n}" if cls is not None else f", got {n}"
        raise ValueError(f"{owner}: {name}={k} needs more than {k} samples{where}")


def neighbours_within(x: Tensor, k: int, owner: str, name: str, cls: Any) -> Tensor:
    """The k nearest of every row of x among the other rows (indices into x)."""
    _check_enough(x.shape[0], k, owner, name, cls)
    return knn(x, k)[1]


def neighbours_in(queries: Tensor, ref: Tensor, k: int, owner: str, name: str, cls: Any = None) -> Tuple[Tensor, Tensor]:
    """imbalanced-learn's ``kneighbors(queries)[:, 1:]`` on an estimator fitted to ``ref`` (queries are rows of ref);
    ``cls``: the class ``ref`` holds, named in the error."""
    _check_enough(ref.shape[0], k, owner, name, cls)
    d, i = knn(queries, k + 1, ref=ref)
    return d[:, 1:], i[:, 1:]


class BaseSampler:
    """``fit_resample(X, y)`` with imbalanced-learn's conventions; ``fit`` returns self."""

    _sampling_type = "over-sampling"

    def __init__(self, sampling_strategy: Any = "auto", random_state: Any = None, device: Any = None) -> None:
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state
        self.device = device

    @property
    def _owner(self) -> str:
        return type(self).__name__

    def _prepare(self, X: Any, y: Any) -> _Data:
        data = _Data(X, y, self.device, owner=self._owner)
        self._codes_strategy = check_sampling_strategy(self.sampling_strategy, data, self._sampling_type, self._owner)
        self.sampling_strategy_ = OrderedDict((data.class_values[c], n) for c, n in self._codes_strategy.items())
        return data

    def fit(self, X: Any, y: Any) -> "BaseSampler":
        self._prepare(X, y)
        return self

    def fit_resample(self, X: Any, y: Any):
        data = self._prepare(X, y)
        self._device = data.device
        self._gen = None
        X_res, codes_res = self._fit_resample(data)
        return data.out_x(X_res), data.out_y(codes_res)

    @property
    def _generator(self) -> torch.Generator:
        # created on first use: samplers without randomness leave torch's global RNG alone
        if self._gen is None:
            self._gen = make_generator(self.random_state, self._device)
        return self._gen

    def _fit_resample(self, data: _Data) -> Tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_"))
        return f"{type(self).__name__}({params})"


def selection(data: _Data, keep: Dict[int, Optional[Tensor]]) -> Tensor:
    """imbalanced-learn's under-sampling output order: classes ascending, each
    class's kept rows (positions within the class) or all of it (None)."""
    parts = []
    for code in range(len(data.counts)):
        rows = data.rows_of(code)
        chosen = keep.get(code)
        parts.append(rows if chosen is None else rows[chosen])
    return torch.cat(parts)
