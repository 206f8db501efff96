"""scipy.sparse X (and DataFrames of sparse columns) in every bt.resample sampler, against dense X and imbalanced-learn."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancedtorch as bt

sp = pytest.importorskip("scipy.sparse")
imblearn = pytest.importorskip("imblearn")
from imblearn import combine as imb_combine  # noqa: E402
from imblearn import over_sampling as imb_over  # noqa: E402
from imblearn import under_sampling as imb_under  # noqa: E402


def _data(seed=0, n_min=30, n_maj=90, d=6, zeros=0.6):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_min + n_maj, d)
    X[rng.rand(*X.shape) < zeros] = 0.0  # mostly zeros
    y = np.array([1] * n_min + [0] * n_maj)
    return X, y


SAMPLERS = {
    "RandomOverSampler": dict(random_state=0),
    "RandomOverSampler-shrinkage": dict(random_state=0, shrinkage=0.5),
    "SMOTE": dict(random_state=0),
    "BorderlineSMOTE": dict(random_state=0, kind="borderline-2"),
    "ADASYN": dict(random_state=0),
    "RandomUnderSampler": dict(random_state=0),
    "NearMiss": dict(version=3),
    "TomekLinks": {},
    "EditedNearestNeighbours": dict(kind_sel="mode"),
    "ClusterCentroids": dict(random_state=0, voting="soft"),
    "SMOTETomek": dict(random_state=0),
    "SMOTEENN": dict(random_state=0),
    "SMOTENC": dict(random_state=0, categorical_features=[5]),
}


def _make(name):
    cls = getattr(bt.resample, name.split("-")[0])
    return cls(**SAMPLERS[name])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sparse_in_imblearn_format_out_equal_to_dense(name, fmt):
    X, y = _data()
    if name == "SMOTENC":
        X[:, 5] = np.random.RandomState(1).randint(3, size=len(X))
    Xs = sp.coo_matrix(X).asformat(fmt)
    dense_sampler, sparse_sampler = _make(name), _make(name)
    Xd, yd = dense_sampler.fit_resample(X, y)
    Xr, yr = sparse_sampler.fit_resample(Xs, y)
    # imbalanced-learn's rule: csr/csc kept, other formats csr; its SMOTENC always returns csr
    assert sp.issparse(Xr) and Xr.format == ("csr" if fmt == "coo" or name == "SMOTENC" else fmt)
    np.testing.assert_array_equal(Xr.toarray(), Xd)  # the same computation: bit-equal
    np.testing.assert_array_equal(yr, yd)
    if hasattr(dense_sampler, "sample_indices_"):
        np.testing.assert_array_equal(sparse_sampler.sample_indices_, dense_sampler.sample_indices_)


def test_sparse_array_class_kept():
    X, y = _data()
    Xr, _ = bt.resample.SMOTE(random_state=0).fit_resample(sp.csr_array(X), y)
    assert isinstance(Xr, sp.csr_array)
    Xr, _ = bt.resample.RandomUnderSampler(random_state=0).fit_resample(sp.csc_array(X), y)
    assert isinstance(Xr, sp.csc_array)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: bt.resample.NearMiss(version=1), lambda: imb_under.NearMiss(version=1)),
        (lambda: bt.resample.NearMiss(version=2), lambda: imb_under.NearMiss(version=2)),
        (lambda: bt.resample.NearMiss(version=3), lambda: imb_under.NearMiss(version=3)),
        (lambda: bt.resample.TomekLinks(sampling_strategy="all"), lambda: imb_under.TomekLinks(sampling_strategy="all")),
        (
            lambda: bt.resample.EditedNearestNeighbours(kind_sel="mode"),
            lambda: imb_under.EditedNearestNeighbours(kind_sel="mode"),
        ),
        (lambda: bt.resample.EditedNearestNeighbours(kind_sel="all"), lambda: imb_under.EditedNearestNeighbours(kind_sel="all")),
    ],
)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_selection_equals_imblearn(ours, theirs, fmt):
    # sparse, but no duplicate rows: imbalanced-learn's sparse search breaks exact ties its own way
    X, y = _data(seed=3, zeros=0.3)
    assert len({tuple(r) for r in X}) == len(X)
    Xs = sp.coo_matrix(X).asformat(fmt)
    a, b = ours(), theirs()
    Xa, ya = a.fit_resample(Xs, y)
    Xb, yb = b.fit_resample(Xs, y)
    np.testing.assert_array_equal(a.sample_indices_, b.sample_indices_)
    assert Xa.format == Xb.format
    np.testing.assert_array_equal(Xa.toarray(), Xb.toarray())
    np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: bt.resample.SMOTE(random_state=0), lambda: imb_over.SMOTE(random_state=0)),
        (lambda: bt.resample.SMOTEENN(random_state=0), lambda: imb_combine.SMOTEENN(random_state=0)),
        (lambda: bt.resample.ClusterCentroids(random_state=0), lambda: imb_under.ClusterCentroids(random_state=0)),
    ],
)
def test_sparse_random_samplers_counts_and_format_equal_imblearn(ours, theirs):
    X, y = _data(seed=5)
    a, b = ours(), theirs()
    Xa, ya = a.fit_resample(sp.csr_matrix(X), y)
    Xb, yb = b.fit_resample(sp.csr_matrix(X), y)
    assert Xa.format == Xb.format and Xa.shape[1] == Xb.shape[1]
    if not isinstance(a, bt.resample.SMOTEENN):  # ENN keeps what the random points allow
        np.testing.assert_array_equal(np.bincount(ya), np.bincount(yb))
    if isinstance(a, bt.resample.ClusterCentroids):  # "auto" voting is "hard" for sparse X: rows of X
        assert a.voting_ == b.voting_ == "hard"
        rows = {tuple(r) for r in X}
        assert all(tuple(r) in rows for r in Xa.toarray())


def test_pandas_sparse_columns_kept():
    pd = pytest.importorskip("pandas")
    X, y = _data()
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])], dtype=pd.SparseDtype(float, 0))
    for sampler in (
        bt.resample.SMOTE(random_state=0),
        bt.resample.TomekLinks(),
        bt.resample.ClusterCentroids(random_state=0, voting="soft"),
    ):
        Xr, yr = sampler.fit_resample(frame, pd.Series(y, name="t"))
        assert all(isinstance(t, pd.SparseDtype) for t in Xr.dtypes) and list(Xr.columns) == list(frame.columns)
        Xd, _ = type(sampler)(**sampler.get_params()).fit_resample(X, y)
        np.testing.assert_allclose(Xr.to_numpy(), Xd)


def test_sparse_too_large_to_densify_is_refused(monkeypatch):
    from balancedtorch.resample import _base

    monkeypatch.setattr(_base, "SPARSE_DENSE_LIMIT_BYTES", 1000)
    X, y = _data()
    with pytest.raises(ValueError, match=r"sparse X of shape \(120, 6\).*dense copy.*TruncatedSVD"):
        bt.resample.SMOTE().fit_resample(sp.csr_matrix(X), y)
    # samplers that only pick rows never densify
    Xr, _ = bt.resample.RandomUnderSampler(random_state=0).fit_resample(sp.csr_matrix(X), y)
    assert Xr.shape == (60, 6)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_sparse_selection_exact_on_ties_and_duplicates(data):
    # small integer values with many zeros: duplicate rows and equal distances everywhere; the sparse path must
    # pick exactly what the dense path picks (the same exact neighbour search on the same values)
    n = data.draw(st.integers(8, 30))
    d = data.draw(st.integers(1, 4))
    vals = data.draw(st.lists(st.sampled_from([0, 0, 0, 1, -1, 2, 1e6]), min_size=n * d, max_size=n * d))
    X = np.array(vals, dtype=np.float64).reshape(n, d) + data.draw(st.sampled_from([0.0, 1e9]))
    y = np.array(data.draw(st.lists(st.sampled_from([0, 0, 1]), min_size=n, max_size=n)))
    if len(set(y.tolist())) < 2 or min(np.bincount(y)) < 4:
        return
    for make in (
        lambda: bt.resample.TomekLinks(),
        lambda: bt.resample.EditedNearestNeighbours(n_neighbors=2),
        lambda: bt.resample.NearMiss(version=1, n_neighbors=2),
    ):
        a, b = make(), make()
        Xa, _ = a.fit_resample(X, y)
        Xb, _ = b.fit_resample(sp.csr_matrix(X), y)
        np.testing.assert_array_equal(a.sample_indices_, b.sample_indices_)
        np.testing.assert_array_equal(Xb.toarray(), Xa)
