"""Over-samplers for categorical features: SMOTENC (categorical and continuous) and SMOTEN (categorical only).

imbalanced-learn's algorithms (0.14), with the same attributes and checks:

* SMOTENC: a one-hot encoding of the categorical features whose ones are
  replaced, per class, by ``median(std of the continuous features) / sqrt(2)``,
  so a differing category adds the median std squared to the squared Euclidean
  distance; the ``k_neighbors`` nearest same-class samples by that distance
  (exact, ``bt.ops.knn``); the continuous features interpolated as SMOTE; each
  categorical feature the most frequent category among the base sample's k
  neighbours, ties broken uniformly at random.
* SMOTEN: the Value Difference Metric (Stanfill & Waltz 1986, with imbalanced-
  learn's ``k=1, r=2``: the sum over features of the squared L1 distance between
  the class distributions of the two categories); a new sample is, feature by
  feature, the most common category among a random sample of the class and its
  k nearest same-class samples (ties: the smallest category in sorted order,
  as ``scipy.stats.mode``).

The random streams are torch's: same distribution as imbalanced-learn, other
points for the same seed.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, Tuple

import numpy as np
import torch
from torch import Tensor

from ._base import HAVE_SKLEARN, InvalidParameterError, Neighbours, _Data, _Done, clone_estimator
from .over import SMOTE, _interpolate

__all__ = ["SMOTENC", "SMOTEN"]


def _check_encoder(encoder: Any, owner: str) -> None:
    if encoder is not None and not (hasattr(encoder, "fit_transform") and hasattr(encoder, "inverse_transform")):
        raise InvalidParameterError(
            f"{owner}: categorical_encoder must be None or an encoder with fit_transform and inverse_transform, got {encoder!r}"
        )


def _all_columns(data: _Data) -> np.ndarray:
    """X as a 2-D numpy array that keeps each value (object for lists of mixed values)."""
    if data.x_kind == "tensor":
        return data.x_in.detach().cpu().numpy()
    if data.x_sp is not None:
        return data._densified()
    if data.x_kind == "list":
        return np.array(data.x_in, dtype=object)
    return data.x_np


def _columns(data: _Data, cols: np.ndarray) -> Any:
    """The columns ``cols`` of X: a DataFrame for DataFrame X (encoders see the pandas dtypes), else numpy."""
    if data.x_kind == "dataframe" and data.x_sp is None:
        return data.x_in.iloc[:, cols]
    return _all_columns(data)[:, cols]


class _Categories:
    """Integer codes of categorical columns (categories in sorted order), and the way back.

    With scikit-learn (or a ``categorical_encoder``), the encoder does it, as in
    imbalanced-learn: ``onehot=True`` takes a one-hot encoder (SMOTENC),
    ``onehot=False`` an ordinal one (SMOTEN). Without scikit-learn, ``np.unique``
    per column (the categories a OneHotEncoder/OrdinalEncoder would find).
    """

    def __init__(self, X_cat: Any, encoder: Any, onehot: bool, owner: str) -> None:
        self.encoder, self.onehot = encoder, onehot
        if encoder is None:
            arr = np.asarray(X_cat)
            self.categories, codes = [], []
            for j in range(arr.shape[1]):
                try:
                    cats, inv = np.unique(arr[:, j], return_inverse=True)
                except TypeError as err:
                    raise ValueError(f"{owner}: categorical column {j} mixes values that cannot be sorted: {err}") from None
                self.categories.append(cats)
                codes.append(inv.reshape(-1))
            self.codes = np.stack(codes, 1).astype(np.int64)
        else:
            out = encoder.fit_transform(X_cat)
            self.categories = list(encoder.categories_)
            sizes = [len(c) for c in self.categories]
            if onehot:
                if out.shape[1] != sum(sizes):
                    raise ValueError(
                        f"{owner} requires a one-hot encoding with one column per category for the categorical "
                        f"features (SMOTENC requires a one-hot encoding with one column per category). The "
                        f"categorical_encoder produced {out.shape[1]} columns for {sum(sizes)} categories (e.g. "
                        "OneHotEncoder(drop=...) or merged infrequent categories); pass an encoder that keeps every "
                        "category, such as OneHotEncoder(handle_unknown='ignore')"
                    )
                starts = np.cumsum([0] + sizes)
                mat = out.tocsr() if hasattr(out, "tocsr") else np.asarray(out)
                self.codes = np.stack(
                    [np.asarray(mat[:, starts[f] : starts[f + 1]].argmax(axis=1)).reshape(-1) for f in range(len(sizes))], 1
                ).astype(np.int64)
            else:
                self.codes = np.asarray(out).astype(np.int64)
        self.sizes = [len(c) for c in self.categories]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Category values of integer codes [S, F]."""
        if self.encoder is None:
            if codes.shape[0] == 0:
                return np.empty((0, len(self.categories)), dtype=object)
            cols = [self.categories[f][codes[:, f]] for f in range(codes.shape[1])]
            out = np.empty(codes.shape, dtype=np.result_type(*[c.dtype for c in cols]))
            for f, c in enumerate(cols):
                out[:, f] = c
            return out
        if self.onehot:
            from scipy import sparse

            starts = np.cumsum([0] + self.sizes)
            S = codes.shape[0]
            onehot = sparse.csr_matrix(
                (np.ones(S * len(self.sizes)), (np.repeat(np.arange(S), len(self.sizes)), (codes + starts[:-1]).reshape(-1))),
                shape=(S, int(starts[-1])),
            )
            return np.asarray(self.encoder.inverse_transform(onehot))
        return np.asarray(self.encoder.inverse_transform(codes.astype(getattr(self.encoder, "dtype", np.int64))))


def _sparse_out(out: np.ndarray, like: Any, sparse_out: str) -> Any:
    """Dense rows as the scipy sparse container imbalanced-learn 0.14 returns for sparse input ``like``.

    ``"smotenc"``: csr always, ``*_array`` for ``*_array`` input (its ``sparse.vstack`` of csr parts);
    ``"smoten"``: csr or csc as the input (any other format: csr), always ``*_matrix`` (its
    ``sparse.csr_matrix``/``csc_matrix`` constructors).
    """
    from scipy import sparse

    if sparse_out == "smotenc":
        array_api = isinstance(like, getattr(sparse, "sparray", ()))
        return (sparse.csr_array if array_api else sparse.csr_matrix)(out)
    return {"csr": sparse.csr_matrix, "csc": sparse.csc_matrix}[like.format](out)


def _assemble(data: _Data, new_cols: List[Tuple[np.ndarray, np.ndarray]], n_new: int, sparse_out: str) -> Any:
    """The caller's X with ``n_new`` rows appended; ``new_cols``: (column indices, values [n_new, len(cols)]).

    ``sparse_out`` (``"smotenc"`` or ``"smoten"``): the sparse container of sparse input, see :func:`_sparse_out`.
    """
    d = data.n_features
    if data.x_kind == "dataframe":
        import pandas as pd

        X = data.x_in
        if n_new == 0:
            return X.reset_index(drop=True)
        frame = {}
        for cols, vals in new_cols:
            for j, c in enumerate(cols):
                dtype = data.x_dtypes.iloc[c]
                col = pd.Series(vals[:, j])
                try:
                    col = col.astype(dtype)
                except (TypeError, ValueError):
                    pass  # a value the column's dtype cannot hold keeps its own
                frame[c] = col
        new = pd.DataFrame({X.columns[c]: frame[c] for c in range(d)}, columns=X.columns)
        out = pd.concat([X.reset_index(drop=True), new], ignore_index=True)
        return out
    if data.x_kind == "tensor":
        X = data.x_in
        new = torch.empty((n_new, d), dtype=X.dtype, device=X.device)
        for cols, vals in new_cols:
            new[:, torch.as_tensor(cols, device=X.device)] = torch.as_tensor(
                np.asarray(vals, dtype=np.float64 if X.is_floating_point() else np.int64)
            ).to(device=X.device, dtype=X.dtype)
        return torch.cat([X.detach(), new])
    X = _all_columns(data)
    dtype = X.dtype
    for _, vals in new_cols:
        if dtype != object and vals.dtype.kind in "OUS":
            dtype = np.result_type(dtype, vals.dtype) if vals.dtype.kind != "O" else np.dtype(object)
    out = np.empty((data.n + n_new, d), dtype=dtype)
    out[: data.n] = X
    for cols, vals in new_cols:
        out[data.n :, cols] = vals if dtype == object else vals.astype(dtype)
    if data.x_sp is not None:
        return _sparse_out(out, data.x_sp, sparse_out)
    return out.tolist() if data.x_kind == "list" else out


class SMOTENC(SMOTE):
    """SMOTE for continuous and categorical features (Chawla et al. 2002), imbalanced-learn's SMOTENC.

    The continuous features are interpolated as in :class:`SMOTE`; each
    categorical feature of a new sample is the most frequent category among the
    k nearest neighbours of its base sample (ties broken at random). The
    neighbours are found on the continuous features plus a one-hot encoding of
    the categorical ones scaled so that a differing category costs the class's
    median standard deviation of the continuous features (``median_std_``).

    Args:
        categorical_features: which columns are categorical: ``"auto"`` (the
            pandas ``category`` columns of a DataFrame), column indices, a
            boolean mask of length n_features, or column names (DataFrame X).
        categorical_encoder: a one-hot encoder to use (cloned; needs
            ``fit_transform``, ``inverse_transform`` and ``categories_``, one
            column per category). Default None: scikit-learn's
            ``OneHotEncoder(handle_unknown="ignore")`` (``np.unique`` per
            column without scikit-learn).
        sampling_strategy: as :class:`SMOTE`. Default ``"auto"``.
        random_state: int, numpy RandomState/Generator, torch.Generator or None.
        k_neighbors (int or estimator): same-class neighbours. Default 5.
        device (str or torch.device, optional): where the neighbour search and
            interpolation run. Default None (the input's).

    X can be a numpy array (object arrays mixing strings and numbers too), a
    list of rows, a DataFrame (every column dtype kept, ``category`` columns
    included), a tensor, or a scipy.sparse matrix or array of any format
    (csr out, as imbalanced-learn, of the input's ``*_matrix`` / ``*_array``
    class; the columns are densified for the search, as imbalanced-learn's
    estimator checks do not cover sparse SMOTENC).

    Attributes:
        categorical_features_ / continuous_features_ (ndarray int64): column indices.
        median_std_ (dict): class -> median std of its continuous features.
        categorical_encoder_: the fitted encoder (None without scikit-learn).
        nn_k_, n_features_, sampling_strategy_: as imbalanced-learn.

    Differences from imbalanced-learn: the original rows come back as given
    (imbalanced-learn returns them through its encoder, e.g. the ints of an
    object array as floats); integer continuous columns are interpolated in
    float64 and truncated back (imbalanced-learn computes in the integer dtype,
    truncating ``median_std_``); a median std below ~1e-8 still counts the
    neighbours' categories (imbalanced-learn's ``isclose`` test then draws any
    category); neighbour ties go to the lower index.

    Example:
        >>> import numpy as np
        >>> import balancedtorch as bt
        >>> X = np.array([[0.1, "a"], [0.3, "b"], [0.2, "a"], [0.9, "b"], [0.5, "a"], [0.4, "b"]] * 5, dtype=object)
        >>> y = np.array([0, 0, 0, 0, 1, 1] * 5)
        >>> X_res, y_res = bt.resample.SMOTENC(categorical_features=[1], random_state=0).fit_resample(X, y)
        >>> np.bincount(y_res).tolist(), sorted(set(X_res[:, 1]))
        ([20, 20], ['a', 'b'])
    """

    _accepts_any_x = True  # categorical columns may be strings; continuous ones are checked
    _accepts_sparse = False  # imbalanced-learn's tag (sparse X works all the same)

    def __init__(
        self,
        categorical_features: Any,
        *,
        categorical_encoder: Any = None,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        k_neighbors: Any = 5,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy=sampling_strategy, random_state=random_state, k_neighbors=k_neighbors, device=device)
        self.categorical_features = categorical_features
        self.categorical_encoder = categorical_encoder

    def _prepare(self, X: Any, y: Any) -> _Data:
        # the columns are resolved (and refused) before X and y are checked against each other, as imbalanced-learn
        shape = getattr(X, "shape", None)
        if shape is None and isinstance(X, (list, tuple)) and X and hasattr(X[0], "__len__"):
            shape = (len(X), len(X[0]))
        if shape is not None and len(shape) == 2:
            self._cat_columns = self._resolve_columns(X, int(shape[1]))
        data = super()._prepare(X, y)
        if shape is None or len(shape) != 2:
            self._cat_columns = self._resolve_columns(X, data.n_features)
        return data

    def _resolve_columns(self, X: Any, d: int) -> np.ndarray:
        cat = self._column_indices(X, d)
        if cat.size == d:
            raise ValueError(
                "SMOTE-NC is not designed to work only with categorical features. It requires some numerical features."
            )
        if cat.size == 0:
            hint = ""
            if hasattr(X, "dtypes") and hasattr(X, "columns"):
                obj = [c for c, t in X.dtypes.items() if t == object or type(t).__name__ == "StringDtype"]
                if obj:
                    hint = (
                        f" ({self._owner}: columns {obj} hold strings but are not of dtype 'category': pass "
                        f"categorical_features={obj} or convert them with X.astype({{...: 'category'}}))"
                    )
            raise ValueError(
                f"SMOTE-NC is not designed to work only with numerical features. It requires some categorical features.{hint}"
            )
        return cat

    def _column_indices(self, X: Any, d: int) -> np.ndarray:
        owner, spec = self._owner, self.categorical_features
        frame = hasattr(X, "dtypes") and hasattr(X, "columns") and hasattr(X, "iloc")
        columns = X.columns if frame else None
        if isinstance(spec, str):
            if spec != "auto":
                raise InvalidParameterError(f"{owner}: categorical_features must be 'auto' or an array-like, got {spec!r}")
            if not frame:
                raise ValueError(
                    "When `categorical_features='auto'`, the input data should be a pandas.DataFrame. "
                    f"Got {type(X)} instead. ({owner}: give the indices, names or a boolean mask instead)"
                )
            return np.flatnonzero([type(t).__name__ == "CategoricalDtype" for t in X.dtypes]).astype(np.int64)
        if isinstance(spec, (numbers.Number, bytes)) or spec is None or not hasattr(spec, "__len__"):
            raise InvalidParameterError(f"{owner}: categorical_features must be 'auto' or an array-like, got {spec!r}")
        arr = np.asarray(spec.cpu() if isinstance(spec, Tensor) else spec)
        if arr.ndim != 1:
            raise ValueError(f"{owner}: categorical_features must be 1-D, got shape {arr.shape}")
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype == bool:
            if arr.size != d:
                raise ValueError(f"{owner}: the boolean mask categorical_features has {arr.size} entries for {d} features")
            return np.flatnonzero(arr).astype(np.int64)
        if arr.dtype.kind in "iu":
            bad = arr[(arr >= d) | (arr < -d)]
            if bad.size:
                raise ValueError(
                    f"{owner}: categorical_features {bad.tolist()} out of range: all features must be in [0, {d - 1}] "
                    f"or [-{d}, -1]"
                )
            return np.unique(np.where(arr < 0, arr + d, arr)).astype(np.int64)
        if arr.dtype.kind in "UO" and all(isinstance(v, str) for v in arr.tolist()):
            if columns is None:
                raise ValueError(f"{owner}: categorical_features given as names {arr.tolist()} needs X as a pandas DataFrame")
            names = list(columns)
            missing = [v for v in arr.tolist() if v not in names]
            if missing:
                raise ValueError(f"{owner}: categorical_features names {missing} that are not columns of X")
            return np.unique([names.index(v) for v in arr.tolist()]).astype(np.int64)
        raise ValueError(f"{owner}: categorical_features must hold column indices, names or booleans, got {arr.tolist()!r}")

    def _fit_resample(self, data: _Data):
        owner = self._owner
        _check_encoder(self.categorical_encoder, owner)
        nn_k = Neighbours(self.k_neighbors, "k_neighbors", owner, 1)
        self.nn_k_ = nn_k.estimator
        self.n_features_ = d = data.n_features
        cat = self._cat_columns
        cont = np.setdiff1d(np.arange(d), cat).astype(np.int64)
        self.categorical_features_, self.continuous_features_ = cat, cont
        # continuous columns: numbers, computed in float64 (float32 X keeps its precision in the output)
        try:
            X_cont_np = np.asarray(_columns(data, cont), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{owner}: the continuous features (columns {cont.tolist()}) must be numbers; name every "
                "categorical column in categorical_features"
            ) from None
        X_cont = torch.from_numpy(np.ascontiguousarray(X_cont_np)).to(self._device)
        if not bool(torch.isfinite(X_cont).all()):
            raise ValueError(f"{owner}: the continuous features (columns {cont.tolist()}) contain NaN or inf; impute them first")
        X_cat = _columns(data, cat)  # NaN is a category to the encoder, as in imbalanced-learn
        encoder = self.categorical_encoder
        if encoder is not None:
            encoder = clone_estimator(encoder)
        elif HAVE_SKLEARN:
            from sklearn.preprocessing import OneHotEncoder

            out_dtype = data.np_dtype if data.x_kind not in ("tensor",) and data.np_dtype.kind == "f" else np.float64
            encoder = OneHotEncoder(handle_unknown="ignore", dtype=out_dtype)
        cats = _Categories(X_cat, encoder, True, owner)
        self.categorical_encoder_ = encoder
        codes = torch.from_numpy(cats.codes).to(self._device)
        starts = torch.tensor(np.cumsum([0] + cats.sizes)[:-1], device=self._device)
        n_onehot = int(sum(cats.sizes))
        gen = self._generator
        self.median_std_ = {}
        new_cont, new_cat, new_codes = [], [], []
        todo = []  # (code, samples to add, continuous rows, category codes, distance embedding) per class
        for code, n_new in self._codes_strategy.items():
            if n_new == 0:
                continue
            value = data.class_values[code]
            rows = data.rows_of(code)
            C, K = X_cont.index_select(0, rows), codes.index_select(0, rows)
            std = C.var(0, unbiased=False).sqrt().cpu().numpy()
            m = float(np.median(std))
            if not math.isfinite(m) and K.shape[1]:
                # imbalanced-learn scales the one-hot columns by this median and its neighbour search
                # refuses the non-finite matrix: the same ValueError, saying which values overflow
                what = "NaN" if math.isnan(m) else "infinity or a value too large for dtype('float64')"
                flat = C.abs().argmax()
                i, j = int(rows[flat // C.shape[1]]), int(cont[int(flat % C.shape[1])])
                raise ValueError(
                    f"Input X contains {what}. ({owner}: the median standard deviation of the continuous features "
                    f"of class {value!r} overflows float64 (X[{i}, {j}] = {float(C.flatten()[flat]):g}); "
                    "scale the continuous features down)"
                )
            self.median_std_[value] = m
            # the squared distance: |continuous difference|^2 + m^2 per differing category (one-hot scaled by m/sqrt 2)
            embed = torch.zeros((C.shape[0], C.shape[1] + n_onehot), dtype=torch.float64, device=C.device)
            embed[:, : C.shape[1]] = C
            if m > 0:
                embed.scatter_(1, C.shape[1] + K + starts, m / math.sqrt(2))
            nn_k.check(C.shape[0], value)  # raised in class order, as the search per class did
            todo.append((code, n_new, C, K, embed))
        # the same-class neighbours of every class from one knn(groups=) call; the draws follow in class order
        found = nn_k.within_classes([t[4] for t in todo], [data.class_values[t[0]] for t in todo])
        for (code, n_new, C, K, _), nns in zip(todo, found):
            k = nns.shape[1]
            pick = torch.randint(0, C.shape[0] * k, (n_new,), generator=gen, device=C.device)
            base, col = pick // k, pick % k
            steps = torch.rand(n_new, generator=gen, device=C.device, dtype=torch.float64)
            new_cont.append(_interpolate(C, base, C.index_select(0, nns[base, col]), steps))
            neighbour_codes = K[nns[base]]  # [S, k, F]
            chosen = torch.empty((n_new, K.shape[1]), dtype=torch.long, device=C.device)
            for f, size in enumerate(cats.sizes):
                counts = torch.zeros((n_new, size), dtype=torch.float64, device=C.device)
                counts.scatter_add_(1, neighbour_codes[:, :, f], torch.ones_like(neighbour_codes[:, :, f], dtype=torch.float64))
                # counts are integers: a uniform U[0, 1) added breaks ties uniformly and never reorders unequal counts
                noise = torch.rand((n_new, size), generator=gen, device=C.device, dtype=torch.float64)
                chosen[:, f] = (counts + noise).argmax(1)
            new_codes.append(chosen)
            new_cat.append(torch.full((n_new,), code, dtype=data.codes.dtype, device=data.device))
        n_total = sum(t.shape[0] for t in new_cont)
        y_codes = torch.cat([data.codes] + new_cat)
        if n_total == 0:
            return _Done(_assemble(data, [], 0, "smotenc")), y_codes
        cont_vals = torch.cat(new_cont).cpu().numpy()
        if data.x_kind == "tensor":
            pass
        elif data.x_kind == "dataframe" and data.x_sp is None:
            pass  # cast per column by _assemble
        elif data.np_dtype.kind in "iub":
            cont_vals = np.trunc(cont_vals)  # integer X: truncation toward zero, as SMOTE
        elif data.np_dtype.kind == "f":
            cont_vals = cont_vals.astype(data.np_dtype)
        cat_vals = cats.decode(torch.cat(new_codes).cpu().numpy())
        return _Done(_assemble(data, [(cont, cont_vals), (cat, cat_vals)], n_total, "smotenc")), y_codes

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"X_types": ["2darray", "dataframe", "string"], "allow_nan": False, "requires_y": True}


def _vdm_tables(codes: np.ndarray, y_codes: np.ndarray, sizes: List[int], n_classes: int, device) -> List[Tensor]:
    """Per feature, the class distribution of each category [n_cat, K] (rows of categories never seen: 0)."""
    probs = []
    for f, size in enumerate(sizes):
        counts = np.zeros((size, n_classes), dtype=np.float64)
        np.add.at(counts, (codes[:, f], y_codes), 1.0)
        total = counts.sum(1, keepdims=True)
        probs.append(torch.from_numpy(np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)).to(device))
    return probs


#: a feature's VDM table (n_cat x n_cat float64) is precomputed up to this many categories; above, per block
_VDM_TABLE_MAX = 2048


class SMOTEN(SMOTE):
    """SMOTE for categorical features only (Chawla et al. 2002), imbalanced-learn's SMOTEN.

    Every feature is categorical. For each new sample of a class, a random
    sample of the class and its ``k_neighbors`` nearest same-class samples by
    the Value Difference Metric are taken, and each feature gets the most common
    category among those k + 1 samples (ties: the smallest category).

    Args:
        categorical_encoder: an ordinal encoder to use (cloned; needs
            ``fit_transform``, ``inverse_transform`` and ``categories_``).
            Default None: scikit-learn's ``OrdinalEncoder(dtype=np.int32)``
            (``np.unique`` per column without scikit-learn).
        sampling_strategy: as :class:`SMOTE`. Default ``"auto"``.
        random_state: int, numpy RandomState/Generator, torch.Generator or None.
        k_neighbors (int or estimator): same-class neighbours (the estimator's
            ``n_neighbors - 1``; its metric is set to "precomputed", as
            imbalanced-learn). Default 5.
        device (str or torch.device, optional): where the distances run.
            Default None (the input's).

    X: a numpy array (strings, numbers, objects), a list of rows, a DataFrame
    (column dtypes kept), an integer tensor, or a scipy.sparse matrix or array,
    which is densified with a ``DataConversionWarning`` (as imbalanced-learn)
    and comes back as imbalanced-learn returns it: csc for csc, else csr,
    always a ``*_matrix`` (``*_array`` input included). Only the distances of the sampled rows to
    their class are computed, in blocks of about 64 MiB.

    Attributes:
        categorical_encoder_: the fitted encoder (None without scikit-learn).
        nn_k_, sampling_strategy_: as imbalanced-learn.

    Differences from imbalanced-learn: the base sample is always one of the
    k + 1 (imbalanced-learn's precomputed search may rank another sample at
    distance 0 first); other ties go to the lower index.

    Example:
        >>> import numpy as np
        >>> import balancedtorch as bt
        >>> X = np.array(["A"] * 10 + ["B"] * 20 + ["C"] * 30, dtype=object).reshape(-1, 1)
        >>> y = np.array([0] * 20 + [1] * 40)
        >>> X_res, y_res = bt.resample.SMOTEN(random_state=0).fit_resample(X, y)
        >>> np.bincount(y_res).tolist()
        [40, 40]
    """

    _accepts_any_x = True

    def __init__(
        self,
        categorical_encoder: Any = None,
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        k_neighbors: Any = 5,
        device: Any = None,
    ) -> None:
        super().__init__(sampling_strategy=sampling_strategy, random_state=random_state, k_neighbors=k_neighbors, device=device)
        self.categorical_encoder = categorical_encoder

    def _fit_resample(self, data: _Data):
        owner = self._owner
        _check_encoder(self.categorical_encoder, owner)
        nn_k = Neighbours(self.k_neighbors, "k_neighbors", owner, 1)
        self.nn_k_ = nn_k.estimator
        if self.nn_k_ is not None and hasattr(self.nn_k_, "set_params"):
            self.nn_k_.set_params(metric="precomputed")
        k = nn_k.k
        if data.x_sp is not None:
            try:
                from sklearn.exceptions import DataConversionWarning as _Warn
            except ImportError:  # pragma: no cover
                _Warn = UserWarning
            warnings.warn(
                "Passing a sparse matrix to SMOTEN is not really efficient since it is converted to a dense array internally.",
                _Warn,
                stacklevel=4,
            )
        X_all = _columns(data, np.arange(data.n_features))
        # imbalanced-learn validates X as one array first (dtype=None): a numeric X must be finite, an
        # object X (object arrays, DataFrames with a non-numeric column) is not checked, so inf (or a NaN
        # the encoder takes) is one more category there; its default encoder then sees that object array
        whole = _all_columns(data)
        if whole.dtype.kind == "f" and not np.isfinite(whole).all():
            i, j = np.argwhere(~np.isfinite(whole))[0]
            what = "NaN" if np.isnan(whole[i, j]) else "infinity or a value too large for dtype('float64')"
            raise ValueError(
                f"Input X contains {what}. ({owner}: X[{i}, {j}] = {whole[i, j]}; a numeric X must be finite, "
                "as in imbalanced-learn; pass the column as object values (or strings) to make it a category)"
            )
        if self.categorical_encoder is None and data.x_kind == "dataframe" and whole.dtype == object:
            X_all = whole
        encoder = self.categorical_encoder
        if encoder is not None:
            encoder = clone_estimator(encoder)
        elif HAVE_SKLEARN:
            from sklearn.preprocessing import OrdinalEncoder

            encoder = OrdinalEncoder(dtype=np.int32)
        cats = _Categories(X_all, encoder, False, owner)
        self.categorical_encoder_ = encoder
        y_np = data.codes.cpu().numpy()
        device = data.device
        probs = _vdm_tables(cats.codes, y_np, cats.sizes, len(data.counts), device)
        tables = [torch.cdist(p, p, p=1).pow(2) if p.shape[0] <= _VDM_TABLE_MAX else None for p in probs]
        codes = torch.from_numpy(cats.codes).to(device)
        gen = self._generator
        new_codes, new_y = [], []
        for code, n_new in self._codes_strategy.items():
            if n_new == 0:
                continue
            rows = data.rows_of(code)
            K = codes.index_select(0, rows)
            n_c = K.shape[0]
            if n_c <= k:
                raise ValueError(
                    f"{owner}: k_neighbors={k} needs more than {k} samples in every class it resamples; "
                    f"class {data.class_values[code]!r} has {n_c}"
                )
            base = torch.randint(0, n_c, (n_new,), generator=gen, device=device)
            uniq, inverse = torch.unique(base, return_inverse=True)
            hood = torch.empty((uniq.numel(), k + 1), dtype=torch.long, device=device)
            block = max(1, (64 * 2**20) // (8 * n_c * 2))
            for s in range(0, uniq.numel(), block):
                q = uniq[s : s + block]
                dist = torch.zeros((q.numel(), n_c), dtype=torch.float64, device=device)
                for f, table in enumerate(tables):
                    if table is not None:
                        dist += table[K[q, f]][:, K[:, f]]
                    else:
                        dist += torch.cdist(probs[f][K[q, f]], probs[f][K[:, f]], p=1).pow(2)
                dist[torch.arange(q.numel(), device=device), q] = -1.0  # the sample itself comes first
                hood[s : s + block] = torch.sort(dist, dim=1, stable=True).indices[:, : k + 1]
            members = K[hood[inverse]]  # [S, k + 1, F]
            chosen = torch.empty((n_new, K.shape[1]), dtype=torch.long, device=device)
            for f, size in enumerate(cats.sizes):
                counts = torch.zeros((n_new, size), dtype=torch.long, device=device)
                counts.scatter_add_(1, members[:, :, f], torch.ones_like(members[:, :, f]))
                chosen[:, f] = counts.argmax(1)  # the first maximum: the smallest category, as scipy.stats.mode
            new_codes.append(chosen)
            new_y.append(torch.full((n_new,), code, dtype=data.codes.dtype, device=data.device))
        y_codes = torch.cat([data.codes] + new_y)
        if not new_codes:
            return _Done(_assemble(data, [], 0, "smoten")), y_codes
        vals = cats.decode(torch.cat(new_codes).cpu().numpy())
        return _Done(_assemble(data, [(np.arange(data.n_features), vals)], vals.shape[0], "smoten")), y_codes

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # imbalanced-learn's: its OrdinalEncoder(dtype=int32) refuses NaN
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"X_types": ["2darray", "dataframe", "string", "sparse"], "allow_nan": False, "requires_y": True}
