"""Shared machinery of the imbalanced-learn compatible resamplers.

Kept whole (about 880 lines): its parts (``_Data``, the caller's containers
in and out; ``check_sampling_strategy``; ``Neighbours``; the ``check_*``
helpers; ``BaseSampler``) are the one base that every sampler module imports
together, and tests patch its module globals (``SPARSE_DENSE_LIMIT_BYTES``)
that ``_Data`` reads, so splitting it would scatter one contract over files.

Labels of any kind (integers, integral floats, bools, strings, objects) are
encoded once into dense codes 0..K-1 (classes in ascending order, as
``np.unique``) by the shared ``encode_labels``; X becomes a tensor on the
working device only where a sampler computes with it. Results go back into
the caller's containers: numpy in -> numpy out, list -> list, pandas ->
pandas (columns, per-column dtypes, names), tensor in -> tensor out on the
input's device. Every sampler is a scikit-learn estimator when scikit-learn
is installed, and a look-alike (``get_params``/``set_params``) otherwise.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._labels import encode_labels
from .._validate import all_finite
from ..ops.knn import knn

try:  # scikit-learn's, which imbalanced-learn raises for a bad constructor parameter (found at fit)
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # pragma: no cover - exercised in the no-sklearn test by a subprocess

    class InvalidParameterError(ValueError, TypeError):
        """A bad constructor parameter, found at fit: both a ValueError and a TypeError,
        as scikit-learn's ``InvalidParameterError`` (used when scikit-learn is not installed)."""


#: dense copies of sparse X (the distance-based samplers compute on dense rows) are refused above this many bytes
SPARSE_DENSE_LIMIT_BYTES = 2 * 2**30

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


def _is_scipy_sparse(obj: Any) -> bool:
    return type(obj).__module__.startswith("scipy.sparse") and hasattr(obj, "tocsr")


def _sparse_frame(obj: Any) -> bool:
    """A DataFrame whose every column is a pandas SparseDtype."""
    dtypes = getattr(obj, "dtypes", None)
    if dtypes is None or not hasattr(obj, "iloc") or getattr(obj, "ndim", 1) != 2 or len(dtypes) == 0:
        return False
    return all(type(t).__name__ == "SparseDtype" for t in dtypes)


def _kind(obj: Any) -> str:
    """The container kind that comes back out: tensor, sparse, dataframe, series, list or array."""
    if isinstance(obj, Tensor):
        return "tensor"
    if _is_scipy_sparse(obj):
        return "sparse"
    if hasattr(obj, "iloc"):
        return "dataframe" if getattr(obj, "ndim", 1) == 2 else "series"
    if isinstance(obj, (list, tuple)):
        return "list"
    return "array"


class _Rows:
    """A resampler's X result given as rows of the input: taken from the caller's own
    container, so any X (strings, dates, NaN) and every DataFrame column dtype survive."""

    def __init__(self, idx: Tensor) -> None:
        self.idx = idx


class _Done:
    """A resampler's X result already in the caller's container (``out_x`` returns it as it is)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Data:
    """X and y of one ``fit_resample`` call: y as class codes on the working device,
    X as a tensor on first use (``X``, ``work()``), the containers to return to."""

    def __init__(self, X: Any, y: Any, device=None, owner: str = "fit_resample") -> None:
        self.owner = owner
        self.x_kind, self.y_kind = _kind(X), _kind(y)
        self.numpy = self.x_kind != "tensor"
        self.x_in = X
        # pandas in -> pandas out, as imbalanced-learn (column names, per-column dtypes and y's name kept)
        self.x_columns = getattr(X, "columns", None) if self.x_kind == "dataframe" else None
        self.x_dtypes = getattr(X, "dtypes", None) if self.x_kind == "dataframe" else None
        self.y_name = getattr(y, "name", None) if self.y_kind == "series" else None
        self.y_columns = getattr(y, "columns", None) if self.y_kind == "dataframe" else None
        self.y_pd_dtype = getattr(y, "dtype", None) if self.y_kind == "series" else None
        self.x_sp = None  # sparse X (scipy.sparse, or a DataFrame of sparse columns) as a csr/csc matrix
        if self.numpy:
            if self.x_kind == "sparse":
                # imbalanced-learn accepts csr and csc as they are, any other format as csr
                self.x_sp = X if getattr(X, "format", None) in ("csr", "csc") else X.tocsr()
            elif self.x_kind == "dataframe" and _sparse_frame(X):
                self.x_sp = X.sparse.to_coo().tocsr()
            if self.x_sp is not None:
                X_arr = None
                self.np_dtype = self.x_sp.dtype
                x_shape = self.x_sp.shape
            else:
                X_arr = np.asarray(X)
                self.np_dtype = X_arr.dtype
                x_shape = X_arr.shape
            if self.np_dtype.kind == "c":
                raise ValueError(f"{owner}: Complex data not supported (X has dtype {self.np_dtype}); pass real-valued X")
            self.x_np = X_arr
            self.in_device = torch.device("cpu")
        else:
            if X.is_complex():
                raise ValueError(f"{owner}: Complex data not supported (X has dtype {X.dtype}); pass real-valued X")
            self.x_np = None
            self.in_device = X.device
            x_shape = tuple(X.shape)
        self.device = torch.device(device) if device is not None else self.in_device
        if len(x_shape) != 2:
            raise ValueError(f"{owner}: X must be 2-D (n_samples, n_features), got shape {tuple(x_shape)}")
        if x_shape[1] == 0:
            # scikit-learn's check_array wording, as imbalanced-learn raises it
            raise ValueError(
                f"Found array with 0 feature(s) (shape={tuple(x_shape)}) while a minimum of 1 is required by {owner}."
            )
        if x_shape[0] == 0:
            raise ValueError(f"{owner}: X is empty")
        self.n_features = x_shape[1]
        self._x = None if self.numpy else X.detach()
        self._x_checked = False
        self.one_vs_all = False
        if isinstance(y, Tensor):
            y_in = y
        else:
            y_in = np.asarray(y)
            if isinstance(X, Tensor) and y_in.dtype.kind in "biuf":
                y_in = torch.as_tensor(y_in)  # tensor X: labels come back as a tensor too
                self.y_kind = "tensor"
        self.classes, codes = self._encode(y_in)
        if codes.shape[0] != x_shape[0]:
            raise ValueError(f"{owner}: X has {x_shape[0]} samples but y has {codes.shape[0]} labels")
        self.codes = codes.to(self.device)
        counts = torch.bincount(self.codes, minlength=len(self.classes))
        if len(self.classes) < 2:
            raise ValueError(
                f"{owner}: y needs to have more than 1 class (Sampler can't balance when only one class is "
                f"present), got {len(self.classes)} class"
            )
        self.class_values = [v.item() if hasattr(v, "item") else v for v in self.classes]
        self.counts = counts.tolist()

    def _encode(self, y):
        owner = self.owner
        if getattr(y, "ndim", 1) == 2 and y.shape[1] > 1:
            # one-vs-all encoded (label_binarize): argmax, binarized again on the way out, as imbalanced-learn
            yt = y if isinstance(y, Tensor) else (_from_numpy(y) if y.dtype.kind in "biuf" else None)
            if yt is None or not bool(((yt == 0) | (yt == 1)).all()):
                raise ValueError(
                    f"{owner}: y must be 1-D class labels (or one-hot), got shape {tuple(y.shape)}: "
                    "Multilabel and multioutput targets are not supported."
                )
            if bool((yt.sum(1) > 1).any()):
                raise ValueError(
                    f"{owner}: y of shape {tuple(y.shape)} has rows with several 1s: "
                    "Multilabel and multioutput targets are not supported."
                )
            self.one_vs_all = True
            self.y_ova_dtype = y.dtype
            self.n_ova = y.shape[1]
            codes = yt.argmax(1)
            classes = torch.arange(y.shape[1], device=codes.device)
            return classes, codes
        try:
            return encode_labels(y, "y", caller=owner)
        except ValueError as err:
            if getattr(y, "dtype", None) is not None and (
                y.is_floating_point() if isinstance(y, Tensor) else y.dtype.kind == "f"
            ):
                # scikit-learn's type_of_target wording, which imbalanced-learn's checks match
                raise ValueError(f"Unknown label type: continuous. {err}") from None
            raise

    @property
    def n(self) -> int:
        return self.codes.shape[0]

    @property
    def X(self) -> Tensor:
        """X as a numeric tensor on the working device; NaN/inf refused (a distance is computed)."""
        if self._x is None or not self._x_checked:
            X = self._x
            if X is None:
                arr = self.x_np if self.x_sp is None else self._densified()
                if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                    raise ValueError(
                        f"{self.owner}: X must be numeric (it computes distances between samples), "
                        f"got dtype {arr.dtype}{self._categorical_hint()}"
                    )
                X = _from_numpy(arr)
            if X.dtype == torch.bool:
                X = X.to(torch.uint8)
            X = X.to(self.device)
            if X.is_floating_point() and not all_finite(X):
                bad = (~torch.isfinite(X)).nonzero()[0].tolist()
                raise ValueError(
                    f"{self.owner}: X contains NaN or inf (X[{bad[0]}, {bad[1]}] = {X[bad[0], bad[1]].item()}); "
                    f"{self.owner} computes distances between samples, so impute or drop them first "
                    "(RandomOverSampler and RandomUnderSampler accept them)"
                )
            self._x = X
            self._x_checked = True
            self.x_dtype = X.dtype
        return self._x

    def _categorical_hint(self) -> str:
        """What to do with non-numeric X: the columns at fault, and the samplers made for categorical data."""
        where = ""
        if self.x_kind == "dataframe":
            bad = [
                c
                for c, t in self.x_dtypes.items()
                if not (np.issubdtype(np.dtype(t), np.number) if isinstance(t, np.dtype) else False) and t != bool
            ]
            if bad:
                where = f" (non-numeric columns: {', '.join(map(repr, bad[:10]))}{', ...' if len(bad) > 10 else ''})"
        return (
            f"{where}; for categorical features use SMOTENC (categorical and numeric columns, "
            "categorical_features='auto' detects pandas 'category' columns) or SMOTEN (categorical only), "
            "or encode them first (e.g. sklearn.preprocessing.OneHotEncoder)"
        )

    def _densified(self) -> np.ndarray:
        """The dense copy of sparse X that the distance computations run on, refused above
        ``SPARSE_DENSE_LIMIT_BYTES`` with a ValueError (never a silent multi-GiB allocation)."""
        n, d = self.x_sp.shape
        need = n * d * self.x_sp.dtype.itemsize
        if need > SPARSE_DENSE_LIMIT_BYTES:
            raise ValueError(
                f"{self.owner}: sparse X of shape {(n, d)} ({self.x_sp.nnz} stored values) would need a dense copy of "
                f"{need / 2**30:.1f} GiB for the neighbour search (limit: balancedtorch.resample._base."
                f"SPARSE_DENSE_LIMIT_BYTES = {SPARSE_DENSE_LIMIT_BYTES / 2**30:.1f} GiB); reduce the features first "
                "(e.g. sklearn.decomposition.TruncatedSVD) or use RandomOverSampler/RandomUnderSampler, which only "
                "select rows"
            )
        return self.x_sp.toarray()

    def work(self) -> Tensor:
        """X in a floating dtype for distances and interpolation."""
        X = self.X
        if X.is_floating_point():
            return X
        return X.to(torch.float64)

    def rows_of(self, code: int) -> Tensor:
        return (self.codes == code).nonzero().squeeze(1)

    def take(self, idx: Tensor):
        """Rows ``idx`` of the caller's X, in the caller's container."""
        if not self.numpy:
            return self._x.index_select(0, idx.to(self.in_device))
        idx_np = idx.cpu().numpy()
        if self.x_kind == "dataframe":
            return self.x_in.iloc[idx_np].reset_index(drop=True)
        if self.x_kind == "sparse":
            return self.x_sp[idx_np]  # csr/csc row indexing keeps the format
        arr = self.x_np[idx_np]
        return arr.tolist() if self.x_kind == "list" else arr

    def out_x(self, X: Any):
        if isinstance(X, _Rows):
            return self.take(X.idx)
        if isinstance(X, _Done):
            return X.value
        if X.dtype != self.x_dtype and not (self.x_dtype in _INTEGER and X.is_floating_point() and self.float_out):
            X = X.to(self.x_dtype)  # truncation toward zero for integer X, as numpy's astype
        if not self.numpy:
            return X.to(self.in_device)
        arr = X.cpu().numpy()
        if not (self.float_out and X.is_floating_point() and self.np_dtype.kind in "biu"):
            arr = arr.astype(self.np_dtype, copy=False)
        if self.x_kind == "sparse":
            return _sparse_like(arr, self.x_sp)
        if self.x_kind == "dataframe":
            import pandas as pd

            frame = pd.DataFrame(arr, columns=self.x_columns)
            keep = self.x_dtypes
            if self.float_out:  # float centroids of integer columns; float columns keep their own precision
                keep = {}
                for c, t in self.x_dtypes.items():
                    sub = np.dtype(getattr(t, "subtype", t))  # SparseDtype: its values' dtype
                    if sub.kind == "f":
                        keep[c] = t
                    elif sub is not t and type(t).__name__ == "SparseDtype":
                        keep[c] = pd.SparseDtype(np.float64, 0.0)  # sparse stays sparse, its centroids float
            return frame.astype(keep)
        return arr.tolist() if self.x_kind == "list" else arr

    float_out = False  # ClusterCentroids: centroids of integer X stay float, as imbalanced-learn

    def out_y(self, codes: Tensor):
        if self.one_vs_all:
            onehot = torch.nn.functional.one_hot(codes.long(), self.n_ova)
            if isinstance(self.classes, Tensor) and not self.numpy and self.y_kind == "tensor":
                return onehot.to(self.in_device)
            return onehot.cpu().numpy().astype(self.y_ova_dtype)
        if isinstance(self.classes, Tensor):
            y = self.classes[codes.to(self.classes.device)]
            if self.y_kind == "tensor":
                return y.to(self.in_device)
            arr = y.cpu().numpy()
        else:
            arr = self.classes[codes.cpu().numpy()]
        if self.y_kind == "list":
            return arr.tolist()
        if self.y_kind == "series":
            import pandas as pd

            return pd.Series(arr, dtype=self.y_pd_dtype, name=self.y_name)
        if self.y_kind == "dataframe":
            import pandas as pd

            return pd.DataFrame(arr.reshape(-1, 1) if arr.ndim == 1 else arr, columns=self.y_columns)
        return arr

    def out_indices(self, idx: Tensor):
        return idx.cpu().numpy() if self.numpy else idx.to(self.in_device)


_INTEGER = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _sparse_like(arr: np.ndarray, like: Any) -> Any:
    """Dense rows as a scipy sparse container of ``like``'s kind: its format (csr/csc) and class
    (``*_matrix`` or ``*_array``)."""
    from scipy import sparse

    array_api = isinstance(like, getattr(sparse, "sparray", ()))
    cls = {
        "csr": sparse.csr_array if array_api else sparse.csr_matrix,
        "csc": sparse.csc_array if array_api else sparse.csc_matrix,
    }[like.format]
    return cls(arr)


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
            raise InvalidParameterError(
                f"{owner}: sampling_strategy must be one of {STRATEGY_NAMES}, a float, a dict or a callable, got {name!r}"
            )
        if name == "auto":
            name = "not majority" if over else "not minority"
        if name == "minority" and not over:
            raise InvalidParameterError(
                f"{owner}: sampling_strategy='minority' cannot be used with an under-sampler or a cleaning method"
            )
        if name == "majority" and over:
            raise InvalidParameterError(f"{owner}: sampling_strategy='majority' cannot be used with an over-sampler")
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
            classes = data.classes
            if isinstance(classes, Tensor):
                y_np = classes[data.codes.to(classes.device)].cpu().numpy()
            else:
                y_np = classes[data.codes.cpu().numpy()]
            sampling_strategy = sampling_strategy(y_np)
            if not isinstance(sampling_strategy, dict):
                raise ValueError(
                    f"{owner}: a callable sampling_strategy must return a dict, got {type(sampling_strategy).__name__}"
                )
        if kind == "clean-sampling":
            raise InvalidParameterError(
                f"{owner}: sampling_strategy as a dict is not supported by cleaning methods; give a list of classes"
            )
        out = {}
        for cls, n in sampling_strategy.items():
            code = _code_of(cls, data, owner)
            n = _validate.integer(n, f"sampling_strategy[{cls!r}]", low=0, caller=owner)
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
            raise InvalidParameterError(f"{owner}: sampling_strategy can be a list only for cleaning methods")
        out = {_code_of(cls, data, owner): n_min for cls in sampling_strategy}
    elif isinstance(sampling_strategy, numbers.Real) and not isinstance(sampling_strategy, bool):
        ratio = float(sampling_strategy)
        if not 0 < ratio <= 1:
            raise InvalidParameterError(f"{owner}: a float sampling_strategy must be in (0, 1], got {sampling_strategy}")
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
        raise InvalidParameterError(
            f"{owner}: sampling_strategy must be a str, float, dict, list or callable, got {sampling_strategy!r}"
        )
    return OrderedDict(sorted(out.items()))


def _code_of(cls: Any, data: _Data, owner: str) -> int:
    try:
        value = cls.item() if hasattr(cls, "item") else cls
        return data.class_values.index(value)
    except ValueError:
        raise ValueError(f"{owner}: sampling_strategy names class {cls!r}, which is not present in y") from None


def make_generator(random_state: Any, device: torch.device, owner: str = "") -> torch.Generator:
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
        raise InvalidParameterError(
            f"{owner + ': ' if owner else ''}random_state must be None, an int, a numpy RandomState/Generator or a torch.Generator, got {random_state!r}"
        )
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


_EUCLIDEAN = ("euclidean", "l2")


def _is_euclidean(est: Any) -> bool:
    """Whether a neighbours estimator ranks by the Euclidean distance (so bt.ops.knn gives its answer)."""
    metric = getattr(est, "metric", None)
    if getattr(est, "metric_params", None):
        return False
    if metric in _EUCLIDEAN:
        return True
    if metric == "minkowski":
        p = getattr(est, "p", 2)
        return p is None or p == 2
    return False


class Neighbours:
    """The neighbour search of one parameter (``k_neighbors``, ``n_neighbors``, ...), as imbalanced-learn reads it.

    An int k means k neighbours besides the sample itself. An estimator (anything
    with ``n_neighbors`` and ``kneighbors``, e.g. scikit-learn's NearestNeighbors)
    is cloned (the user's object is never fitted) and exposed as ``estimator``;
    imbalanced-learn counts the sample itself among its ``n_neighbors``, so it
    means ``n_neighbors - additional`` usable neighbours. A Euclidean estimator
    (metric "euclidean"/"l2", or "minkowski" with p=2) is answered by the exact
    ``bt.ops.knn`` on the data's device; any other metric by the estimator's own
    ``fit``/``kneighbors`` on numpy copies, as imbalanced-learn does, never by a
    search with another metric.
    """

    def __init__(self, value: Any, name: str, owner: str, additional: int) -> None:
        self.name, self.owner, self.additional = name, owner, additional
        if hasattr(value, "kneighbors") and not isinstance(value, type):
            k = getattr(value, "n_neighbors", None)
            k = _as_imblearn(_validate.integer, k, f"{name}.n_neighbors", caller=owner)
            label = f"{name}.n_neighbors - {additional}" if additional else f"{name}.n_neighbors"
            self.k = check_int(int(k) - additional, label, owner)
            self.estimator = clone_estimator(value)
            self.own_search = not _is_euclidean(value)
        elif hasattr(value, "n_neighbors") and not isinstance(value, (numbers.Number, str)):
            raise InvalidParameterError(
                f"{owner}: {name} must be an int or a neighbours estimator with kneighbors, got {value!r}"
            )
        else:
            # imbalanced-learn's constraint (scikit-learn's Interval(Integral, 1, None)) takes the Python bool
            # True as 1, and refuses False (< 1) and numpy's bool_ (not Integral)
            self.k = check_int(1 if value is True else value, name, owner)
            self.own_search = False
            self.estimator = None
            if HAVE_SKLEARN:  # what imbalanced-learn's nn_ attributes describe; the search itself is bt.ops.knn
                from sklearn.neighbors import NearestNeighbors

                self.estimator = NearestNeighbors(n_neighbors=self.k + additional)

    def _own(self, queries: Tensor, ref: Tensor, n: Optional[int]) -> Tuple[Tensor, Tensor]:
        est = self.estimator.fit(ref.cpu().numpy())
        kwargs = {} if n is None else {"n_neighbors": n}
        d, i = est.kneighbors(queries.cpu().numpy(), **kwargs)
        return (
            torch.as_tensor(np.asarray(d), device=queries.device),
            torch.as_tensor(np.asarray(i), dtype=torch.long, device=queries.device),
        )

    def within(self, x: Tensor, cls: Any) -> Tensor:
        """The k nearest of every row of x among the other rows (indices into x)."""
        _check_enough(x.shape[0], self.k, self.owner, self.name, cls)
        if self.own_search:
            return self._own(x, x, None)[1][:, 1:]
        return knn(x, self.k)[1]

    def check(self, n: int, cls: Any) -> None:
        """The ValueError of ``within`` for a class of n rows that has too few (raised where ``within`` would)."""
        _check_enough(n, self.k, self.owner, self.name, cls)

    def within_classes(self, blocks: Sequence[Tensor], classes: Sequence[Any]) -> List[Tensor]:
        """``within`` of several classes at once: ``[within(b, c) for b, c in zip(blocks, classes)]``, equal
        to it index for index (so the random draws that follow are too), from one ``knn(groups=)`` call.

        ``blocks`` are the classes' rows (each in ascending order of X, same width and dtype), ``classes``
        their values (named in the error). The blocks are stacked in order and searched as groups: each
        group is the same search as its block's own call (ties to the lower index, which the stacking
        keeps), and the stacked indices minus the block's offset are its rows. Falls back to one call per
        class for a user's non-Euclidean estimator (its own ``kneighbors``, as imbalanced-learn) and where
        the stacked data would be scaled differently from some class alone (values beyond 2^40 or below
        2^-40 in some classes only: the kernel scales the whole input by one power of two).
        """
        for b, cls in zip(blocks, classes):
            self.check(b.shape[0], cls)
        if self.own_search or len(blocks) < 2 or not _one_scaling(blocks):
            return [self.within(b, cls) for b, cls in zip(blocks, classes)]
        sizes = [b.shape[0] for b in blocks]
        x = torch.cat(list(blocks))
        groups = torch.repeat_interleave(torch.arange(len(blocks), device=x.device), torch.tensor(sizes, device=x.device))
        idx = knn(x, self.k, groups=groups)[1]
        out, at = [], 0
        for n in sizes:
            out.append(idx[at : at + n] - at)  # a block's neighbours are its own rows: offsets back to its indices
            at += n
        return out

    def query(self, queries: Tensor, ref: Tensor, cls: Any = None) -> Tuple[Tensor, Tensor]:
        """imbalanced-learn's ``kneighbors(queries)[:, 1:]`` on an estimator fitted to ``ref`` (queries are rows
        of ref); ``cls``: the class ``ref`` holds, named in the error. Distances are squared Euclidean on the
        bt.ops.knn path, the estimator's own otherwise."""
        _check_enough(ref.shape[0], self.k, self.owner, self.name, cls)
        if self.own_search:
            d, i = self._own(queries, ref, None)
        else:
            d, i = knn(queries, self.k + 1, ref=ref)
        return d[:, 1:], i[:, 1:]

    def distances(self, queries: Tensor, ref: Tensor, n: int) -> Tuple[Tensor, Tensor]:
        """The n nearest rows of ref for every query (ref not containing the queries): metric distances, indices."""
        if self.own_search:
            d, i = self._own(queries, ref, n)
            return d.double(), i
        d, i = knn(queries, n, ref=ref)
        return d.double().clamp_min(0).sqrt(), i


def _knn_scaling(max_abs: float, d: int, double: bool) -> Tuple[int, bool]:
    """The power-of-two scaling that ``bt.ops.knn`` applies to an input whose largest magnitude is max_abs
    (its candidate search; and whether the float64 re-rank runs on the scaled copies), as knn.cpp computes it."""
    exp = -(math.frexp(max_abs)[1] - 1) if max_abs > 0 and (max_abs > 2.0**40 or max_abs < 2.0**-40) else 0
    rscaled = double and (max_abs * math.sqrt(d) > 2.0**509 or 0 < max_abs < 2.0**-500)
    return exp, rscaled


def _one_scaling(blocks: Sequence[Tensor]) -> bool:
    """Whether knn scales the stacked blocks as it scales each alone (always, unless magnitudes beyond 2^40
    or below 2^-40 occur: then only where every block's largest magnitude gives the same scaling)."""
    peaks = torch.stack([b.detach().abs().amax() for b in blocks]).double().tolist()
    d, double = blocks[0].shape[1], blocks[0].dtype == torch.float64
    whole = _knn_scaling(max(peaks), d, double)
    return all(_knn_scaling(p, d, double) == whole for p in peaks)


def _as_imblearn(check: Any, *args: Any, **kwargs: Any) -> Any:
    """``check`` (a :mod:`balancedtorch._validate` function), its TypeError or ValueError raised as scikit-learn's
    InvalidParameterError (a ValueError and a TypeError), as imbalanced-learn's parameter validation raises it."""
    try:
        return check(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise InvalidParameterError(str(e)) from None


def check_int(value: Any, name: str, owner: str, low: int = 1) -> int:
    """An int parameter >= low; anything else is InvalidParameterError."""
    return _as_imblearn(_validate.integer, value, name, low=low, caller=owner)


def check_choice(value: Any, name: str, owner: str, options: tuple) -> Any:
    """One of ``options`` (``True`` is not ``1``), else InvalidParameterError."""
    return _as_imblearn(_validate.choice, value, name, options, caller=owner)


def check_n_jobs(value: Any, owner: str) -> None:
    """``n_jobs``: None or an int (accepted for imbalanced-learn compatibility; torch's threads are used)."""
    _as_imblearn(_validate.integer, value, "n_jobs", optional=True, caller=owner)


def _check_enough(n: int, k: int, owner: str, name: str, cls: Any) -> None:
    """k neighbours besides the sample itself need more than k samples (imbalanced-learn raises too)."""
    if n <= k:
        where = f" in every class it resamples; class {cls!r} has {n}" if cls is not None else f", got {n}"
        raise ValueError(f"{owner}: {name}={k} needs more than {k} samples{where}")


try:  # scikit-learn estimators when scikit-learn is there; it is not a run-time dependency
    from sklearn.base import BaseEstimator as _SkEstimator
    from sklearn.base import OneToOneFeatureMixin as _SkOneToOne

    _ESTIMATOR_BASES: tuple = (_SkOneToOne, _SkEstimator)
    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised in the no-sklearn test by a subprocess
    HAVE_SKLEARN = False

    class _Estimator:
        """``get_params`` / ``set_params`` / ``__repr__`` / ``get_feature_names_out`` as
        scikit-learn's BaseEstimator provides them, for installs without scikit-learn."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep: bool = True) -> Dict[str, Any]:
            out = {}
            for key in self._get_param_names():
                value = getattr(self, key)
                if deep and hasattr(value, "get_params") and not isinstance(value, type):
                    out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
                out[key] = value
            return out

        def set_params(self, **params):
            valid = self._get_param_names()
            nested: Dict[str, Dict[str, Any]] = {}
            for key, value in params.items():
                name, _, sub = key.partition("__")
                if name not in valid:
                    raise ValueError(f"Invalid parameter {name!r} for estimator {self!r}. Valid parameters are: {valid!r}.")
                if sub:
                    nested.setdefault(name, {})[sub] = value
                else:
                    setattr(self, name, value)
            for name, sub_params in nested.items():
                getattr(self, name).set_params(**sub_params)
            return self

        def __repr__(self) -> str:
            sig = inspect.signature(type(self).__init__)
            shown = []
            for key in self._get_param_names():
                default = sig.parameters[key].default
                value = getattr(self, key)
                if value is not default and not (isinstance(value, (str, int, float)) and value == default):
                    shown.append(f"{key}={value!r}")
            return f"{type(self).__name__}({', '.join(shown)})"

        def get_feature_names_out(self, input_features=None):
            n = getattr(self, "n_features_in_", None)
            if n is None:
                raise AttributeError(f"{type(self).__name__} is not fitted yet: call fit or fit_resample first")
            names = getattr(self, "feature_names_in_", None)
            if input_features is not None:
                if len(input_features) != n:
                    raise ValueError(
                        f"input_features should have length equal to number of features ({n}), got {len(input_features)}"
                    )
                return np.asarray(input_features, dtype=object)
            return names if names is not None else np.asarray([f"x{i}" for i in range(n)], dtype=object)

    _ESTIMATOR_BASES = (_Estimator,)


def clone_estimator(est: Any) -> Any:
    """An unfitted copy of a user's estimator (scikit-learn's ``clone``); the user's object is never fitted."""
    if HAVE_SKLEARN:
        from sklearn.base import clone

        return clone(est)
    if hasattr(est, "get_params"):
        return type(est)(**est.get_params(deep=False))
    import copy

    return copy.deepcopy(est)


class BaseSampler(*_ESTIMATOR_BASES):
    """``fit_resample(X, y)`` with imbalanced-learn's conventions; ``fit`` returns self.

    A scikit-learn estimator when scikit-learn is installed (``get_params``,
    ``set_params``, ``clone``, ``GridSearchCV`` in an ``imblearn.pipeline``),
    with imbalanced-learn's sampler tags.
    """

    _sampling_type = "over-sampling"
    _estimator_type = "sampler"
    # tags: what imbalanced-learn's sampler of the same name declares
    _accepts_any_x = False  # selects rows only: any X (strings, dates, NaN) is accepted
    _has_sample_indices = False
    _accepts_sparse = True  # scipy.sparse csr/csc (other formats as csr) and DataFrames of sparse columns

    def __init__(self, sampling_strategy: Any = "auto", random_state: Any = None, device: Any = None) -> None:
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state
        self.device = device

    @property
    def _owner(self) -> str:
        return type(self).__name__

    def _prepare(self, X: Any, y: Any) -> _Data:
        data = _Data(X, y, getattr(self, "device", None), owner=self._owner)
        self._codes_strategy = check_sampling_strategy(self.sampling_strategy, data, self._sampling_type, self._owner)
        self.sampling_strategy_ = OrderedDict((data.class_values[c], n) for c, n in self._codes_strategy.items())
        self.n_features_in_ = data.n_features
        columns = data.x_columns
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = np.asarray(list(columns), dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return data

    def fit(self, X: Any, y: Any, **params) -> "BaseSampler":
        """Check X and y and set ``sampling_strategy_`` (and ``n_features_in_``); nothing is resampled.

        Use :meth:`fit_resample` to resample (scikit-learn's samplers have no
        separate ``resample``).

        Args:
            X: Tensor/array/DataFrame/list [N, D].
            y: labels [N] of any kind :meth:`fit_resample` takes.
            **params: accepted for imbalanced-learn compatibility; unused.

        Returns:
            self (scikit-learn convention).

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> bt.resample.SMOTE().fit(torch.randn(30, 2), torch.tensor([0] * 20 + [1] * 10)).sampling_strategy_
            OrderedDict([(1, 10)])
        """
        self._prepare(X, y)
        return self

    def fit_resample(self, X: Any, y: Any, **params):
        """Resample X and y.

        Args:
            X: Tensor/array/DataFrame/list [N, D].
            y: labels [N]: integers, integral floats, bools, strings or other
                sortable objects; also an (N, 1) column, a one-column DataFrame
                or one-hot (N, C).
            **params: accepted for imbalanced-learn compatibility; unused.

        Returns:
            (X_resampled, y_resampled) in the caller's containers (tensor in ->
            tensor out on its device; list -> list; DataFrame/Series keep
            their columns, dtypes and name).

        Example:
            >>> import numpy as np
            >>> import balancedtorch as bt
            >>> X, y = np.random.rand(30, 2), np.array(["a"] * 20 + ["b"] * 10)
            >>> X_res, y_res = bt.resample.RandomOverSampler(random_state=0).fit_resample(X, y)
            >>> X_res.shape, sorted(set(y_res.tolist()))
            ((40, 2), ['a', 'b'])
        """
        data = self._prepare(X, y)
        self._device = data.device
        self._gen = None
        X_res, codes_res = self._fit_resample(data)
        return data.out_x(X_res), data.out_y(codes_res)

    @property
    def _generator(self) -> torch.Generator:
        # created on first use: samplers without randomness leave torch's global RNG alone
        if self._gen is None:
            self._gen = make_generator(self.random_state, self._device, self._owner)
        return self._gen

    def _fit_resample(self, data: _Data) -> Tuple[Any, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self):
        try:
            from imblearn.utils._tags import InputTags, SamplerTags, Tags
            from sklearn.utils import TargetTags
        except ImportError:
            tags = super().__sklearn_tags__()
            tags.target_tags.required = True
        else:
            tags = Tags(estimator_type="sampler", target_tags=TargetTags(required=True), sampler_tags=SamplerTags())
            tags.input_tags = InputTags(dataframe=True)
            tags.sampler_tags.sample_indices = self._has_sample_indices
        tags.input_tags.two_d_array = True
        tags.input_tags.sparse = self._accepts_sparse
        tags.input_tags.allow_nan = self._accepts_any_x
        tags.input_tags.string = self._accepts_any_x
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {
            "X_types": ["2darray", "dataframe"]
            + (["string"] if self._accepts_any_x else [])
            + (["sparse"] if self._accepts_sparse else []),
            "allow_nan": self._accepts_any_x,
            "requires_y": True,
        }


def selection(data: _Data, keep: Dict[int, Optional[Tensor]]) -> Tensor:
    """imbalanced-learn's under-sampling output order: classes ascending, each
    class's kept rows (positions within the class) or all of it (None)."""
    parts = []
    for code in range(len(data.counts)):
        rows = data.rows_of(code)
        chosen = keep.get(code)
        parts.append(rows if chosen is None else rows[chosen])
    return torch.cat(parts)
