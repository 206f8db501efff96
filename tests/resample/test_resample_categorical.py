"""SMOTENC and SMOTEN against the installed imbalanced-learn: attributes, output layout, distributions."""

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancedtorch as bt

imb = pytest.importorskip("imblearn.over_sampling")
scipy_stats = pytest.importorskip("scipy.stats")
pd = pytest.importorskip("pandas")


def _mixed(n_min=40, n_maj=120, seed=0):
    rng = np.random.RandomState(seed)
    n = n_min + n_maj
    X = np.empty((n, 4), dtype=object)
    X[:, 0] = rng.randn(n)
    X[:, 1] = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    X[:, 2] = rng.randn(n) * 3 + 1
    X[:, 3] = rng.randint(4, size=n)
    y = np.array([1] * n_min + [0] * n_maj)
    return X, y


def _two_sample_chi2(a, b):
    keys = sorted(set(a) | set(b), key=repr)
    ca, cb = Counter(a), Counter(b)
    table = np.array([[ca[k] for k in keys], [cb[k] for k in keys]]) + 0.5
    return scipy_stats.chi2_contingency(table)[1]


def test_smotenc_attributes_and_layout_equal_imblearn():
    X, y = _mixed()
    ours = bt.resample.SMOTENC(categorical_features=[1, 3], random_state=0)
    theirs = imb.SMOTENC(categorical_features=[1, 3], random_state=0)
    Xo, yo = ours.fit_resample(X, y)
    Xt, yt = theirs.fit_resample(X, y)
    assert Xo.shape == Xt.shape and Xo.dtype == Xt.dtype == object
    np.testing.assert_array_equal(yo, yt)
    np.testing.assert_array_equal(ours.categorical_features_, theirs.categorical_features_)
    np.testing.assert_array_equal(ours.continuous_features_, theirs.continuous_features_)
    assert ours.median_std_.keys() == theirs.median_std_.keys()
    for c in ours.median_std_:
        assert ours.median_std_[c] == pytest.approx(theirs.median_std_[c], rel=1e-12)
    assert (Xo[: len(X)] == X).all()  # the original rows first, as given
    assert set(Xo[:, 1]) == set(X[:, 1]) and set(Xo[:, 3]) == set(X[:, 3])


def test_smotenc_distribution_equals_imblearn():
    # many new samples: the categories drawn (a neighbour vote with random ties) and the interpolated values
    X, y = _mixed(n_min=60, n_maj=3000, seed=1)
    Xo, _ = bt.resample.SMOTENC(categorical_features=[1, 3], k_neighbors=4, random_state=0).fit_resample(X, y)
    Xt, _ = imb.SMOTENC(categorical_features=[1, 3], k_neighbors=4, random_state=0).fit_resample(X, y)
    new_o, new_t = Xo[len(X) :], Xt[len(X) :]
    for col in (1, 3):
        assert _two_sample_chi2(new_o[:, col].tolist(), new_t[:, col].tolist()) > 1e-3
    assert _two_sample_chi2(list(map(tuple, new_o[:, [1, 3]])), list(map(tuple, new_t[:, [1, 3]]))) > 1e-3
    for col in (0, 2):
        assert scipy_stats.ks_2samp(new_o[:, col].astype(float), new_t[:, col].astype(float)).pvalue > 1e-3


def test_smotenc_new_points_are_on_a_segment_to_a_same_class_sample():
    X, y = _mixed(seed=2)
    Xo, yo = bt.resample.SMOTENC(categorical_features=[1, 3], random_state=3).fit_resample(X, y)
    cont = X[y == 1][:, [0, 2]].astype(float)
    for row in Xo[len(X) :, [0, 2]].astype(float):
        # some pair (i, j) with row = cont[i] + t (cont[j] - cont[i]), t in [0, 1]
        d = cont[None, :, :] - cont[:, None, :]
        r = row[None, None, :] - cont[:, None, :]
        t = (r * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-300)
        resid = np.abs(r - t[..., None] * d).max(-1)
        assert ((resid < 1e-9) & (t >= -1e-12) & (t <= 1 + 1e-12)).any()


def test_smotenc_categorical_features_forms_and_pandas_round_trip():
    X, y = _mixed()
    frame = pd.DataFrame(
        {"x": X[:, 0].astype(float), "c": pd.Categorical(X[:, 1]), "z": X[:, 2].astype(np.float32), "k": X[:, 3].astype(np.int64)}
    )
    results = []
    for spec in ("auto", ["c"], [1], [False, True, False, False], np.array([-3])):
        s = bt.resample.SMOTENC(categorical_features=spec, random_state=0)
        Xr, yr = s.fit_resample(frame, pd.Series(y, name="target"))
        np.testing.assert_array_equal(s.categorical_features_, [1])
        pd.testing.assert_series_equal(Xr.dtypes, frame.dtypes)
        assert yr.name == "target" and len(Xr) == len(yr) == 240
        results.append(Xr)
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0])  # same seed, same columns: the same resampling


def test_smote_on_category_columns_suggests_smotenc():
    X, y = _mixed()
    frame = pd.DataFrame({"x": X[:, 0].astype(float), "colour": pd.Categorical(X[:, 1])})
    with pytest.raises(ValueError, match=r"'colour'.*SMOTENC"):
        bt.resample.SMOTE().fit_resample(frame, y)


def test_smotenc_bad_input():
    X, y = _mixed()
    with pytest.raises(ValueError, match="all features must be in"):
        bt.resample.SMOTENC(categorical_features=[1, 7]).fit_resample(X, y)
    with pytest.raises(ValueError, match="boolean mask"):
        bt.resample.SMOTENC(categorical_features=[True, False]).fit_resample(X, y)
    with pytest.raises(ValueError, match="needs X as a pandas DataFrame"):
        bt.resample.SMOTENC(categorical_features=["b"]).fit_resample(X, y)
    with pytest.raises(ValueError, match="should be a pandas.DataFrame"):
        bt.resample.SMOTENC(categorical_features="auto").fit_resample(X, y)
    with pytest.raises(ValueError, match=r"continuous features \(columns \[0, 1, 2\]\) must be numbers"):
        bt.resample.SMOTENC(categorical_features=[3]).fit_resample(X, y)
    frame = pd.DataFrame({"x": X[:, 0].astype(float), "s": X[:, 1]})
    with pytest.raises(ValueError, match=r"only with numerical features.*\['s'\]"):
        bt.resample.SMOTENC(categorical_features="auto").fit_resample(frame, y)
    sklearn_errors = pytest.importorskip("sklearn.utils._param_validation")
    for bad in (
        dict(categorical_features="x"),
        dict(categorical_features=3),
        dict(categorical_features=[1], categorical_encoder=1),
    ):
        with pytest.raises(sklearn_errors.InvalidParameterError):
            bt.resample.SMOTENC(**bad).fit_resample(X, y)


def _categorical(n_min=40, n_maj=200, seed=0):
    rng = np.random.RandomState(seed)
    n = n_min + n_maj
    y = np.array([1] * n_min + [0] * n_maj)
    cols = []
    for _f, cats in enumerate((["A", "B", "C"], ["u", "v"], ["p", "q", "r", "s"])):
        p_min = rng.dirichlet(np.ones(len(cats)))
        p_maj = rng.dirichlet(np.ones(len(cats)))
        cols.append(np.where(y == 1, rng.choice(cats, size=n, p=p_min), rng.choice(cats, size=n, p=p_maj)))
    return np.stack(cols, 1).astype(object), y


def test_smoten_layout_and_distribution_equal_imblearn():
    X, y = _categorical(n_min=50, n_maj=4000, seed=4)
    Xo, yo = bt.resample.SMOTEN(k_neighbors=3, random_state=0).fit_resample(X, y)
    Xt, yt = imb.SMOTEN(k_neighbors=3, random_state=0).fit_resample(X, y)
    assert Xo.shape == Xt.shape and Xo.dtype == Xt.dtype
    np.testing.assert_array_equal(yo, yt)
    assert (Xo[: len(X)] == X).all()
    new_o, new_t = list(map(tuple, Xo[len(X) :])), list(map(tuple, Xt[len(X) :]))
    assert _two_sample_chi2(new_o, new_t) > 1e-3
    # a new row is the mode of a neighbourhood: the rows that can come out are the same
    assert set(new_o) <= set(new_t) | set(map(tuple, X[y == 1]))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_smoten_with_the_whole_class_as_neighbours_gives_the_class_mode(data):
    # k + 1 = the class size: every neighbourhood is the whole class, so every new row is, per feature, the most
    # common category of the class, ties going to the smallest (scipy.stats.mode), whatever the distances
    n_min = data.draw(st.integers(2, 9))
    n_maj = data.draw(st.integers(n_min + 1, 20))
    n_feat = data.draw(st.integers(1, 3))
    X = np.array(
        data.draw(
            st.lists(
                st.lists(st.sampled_from("abc"), min_size=n_feat, max_size=n_feat), min_size=n_min + n_maj, max_size=n_min + n_maj
            )
        ),
        dtype=object,
    )
    y = np.array([1] * n_min + [0] * n_maj)
    Xr, yr = bt.resample.SMOTEN(k_neighbors=n_min - 1 if n_min > 1 else 1, random_state=0).fit_resample(X, y)
    if n_min == 1:
        return
    expected = [
        min(c for c, v in Counter(X[y == 1][:, f]).items() if v == max(Counter(X[y == 1][:, f]).values())) for f in range(n_feat)
    ]
    assert (Xr[len(X) :] == np.array(expected, dtype=object)).all()
    assert (yr[len(X) :] == 1).all() and len(yr) == 2 * n_maj


def test_smoten_sparse_and_pandas():
    X, y = _categorical()
    enc = pytest.importorskip("sklearn.preprocessing").OneHotEncoder().fit(X)
    Xd = enc.transform(X).toarray()
    sp = pytest.importorskip("scipy.sparse")
    dense, yd = bt.resample.SMOTEN(random_state=0).fit_resample(Xd, y)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        with pytest.warns(Warning, match="not really efficient"):
            out, ys = bt.resample.SMOTEN(random_state=0).fit_resample(fmt(Xd), y)
        assert out.format == fmt(Xd).format
        np.testing.assert_array_equal(out.toarray(), dense)
        np.testing.assert_array_equal(ys, yd)
    frame = pd.DataFrame(X, columns=["f", "g", "h"]).astype("category")
    Xr, yr = bt.resample.SMOTEN(random_state=0).fit_resample(frame, y)
    pd.testing.assert_series_equal(Xr.dtypes, frame.dtypes)
    plain, _ = bt.resample.SMOTEN(random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(Xr.to_numpy().astype(object), plain)


def _by_sampler(name):
    rng = np.random.RandomState(3)
    y = np.array([1] * 12 + [0] * 30)
    if name == "SMOTEN":
        return {}, rng.randint(0, 3, (42, 3)), y
    if name == "SMOTENC":
        return {"categorical_features": [0]}, np.c_[rng.randint(0, 3, 42), rng.randn(42, 2)], y
    return {}, rng.randn(42, 3), y


@pytest.mark.parametrize("name", ["SMOTE", "SMOTENC", "SMOTEN"])
def test_k_neighbors_true_is_one_as_in_imblearn(name):
    kw, X, y = _by_sampler(name)
    # imbalanced-learn's Interval(Integral, 1, None): the Python bool True is the int 1
    Xt, yt = getattr(imb, name)(k_neighbors=True, random_state=0, **kw).fit_resample(X, y)
    Xo, yo = getattr(bt.resample, name)(k_neighbors=True, random_state=0, **kw).fit_resample(X, y)
    X1, y1 = getattr(bt.resample, name)(k_neighbors=1, random_state=0, **kw).fit_resample(X, y)
    assert Xo.shape == Xt.shape
    np.testing.assert_array_equal(yo, yt)
    np.testing.assert_array_equal(Xo, X1)
    np.testing.assert_array_equal(yo, y1)
    errors = pytest.importorskip("sklearn.utils._param_validation")
    for bad in (False, np.True_, 0):
        with pytest.raises(errors.InvalidParameterError):
            getattr(imb, name)(k_neighbors=bad, **kw).fit_resample(X, y)
        with pytest.raises(errors.InvalidParameterError, match="k_neighbors"):
            getattr(bt.resample, name)(k_neighbors=bad, **kw).fit_resample(X, y)


def test_smoten_inf_as_imblearn_a_category_in_object_x_refused_in_numeric_x():
    rng = np.random.RandomState(0)
    n, y = 40, np.array([0] * 28 + [1] * 12)
    a = rng.choice([1.0, np.inf, 2.0], n)
    a[[28, 29]] = np.inf  # the minority class holds inf
    mixed = pd.DataFrame({"a": a, "s": rng.choice(["x", "y"], n)})
    for X in (mixed, np.c_[a, np.ones(n)].astype(object)):
        Xt, yt = imb.SMOTEN(random_state=0).fit_resample(X, y)
        Xo, yo = bt.resample.SMOTEN(random_state=0).fit_resample(X, y)
        np.testing.assert_array_equal(yo, yt)
        assert type(Xo) is type(Xt) and Xo.shape == Xt.shape
        new = np.asarray(Xo)[n:, 0]
        assert set(new) <= {1.0, 2.0, np.inf}
        if isinstance(X, pd.DataFrame):
            pd.testing.assert_series_equal(Xo.dtypes, Xt.dtypes)
    for X, what in (
        (pd.DataFrame({"a": a, "b": rng.randint(0, 3, n)}), "infinity or a value too large"),
        (np.c_[a, np.ones(n)], "infinity or a value too large"),
        (np.c_[np.where(np.arange(n) == 5, np.nan, 1.0), np.ones(n)], "NaN"),
    ):
        with pytest.raises(ValueError, match=rf"^Input X contains {what}"):
            imb.SMOTEN(random_state=0).fit_resample(X, y)
        with pytest.raises(ValueError, match=rf"^Input X contains {what}.*SMOTEN: X\[\d+, 0\] = "):
            bt.resample.SMOTEN(random_state=0).fit_resample(X, y)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dok", "bsr"])
@pytest.mark.parametrize("kind", ["matrix", "array"])
@pytest.mark.parametrize("name", ["SMOTE", "SMOTENC", "SMOTEN"])
@pytest.mark.parametrize("balanced", [False, True])
def test_sparse_container_out_equals_imblearns(name, fmt, kind, balanced):
    # imbalanced-learn 0.14: SMOTE keeps csr/csc (others: csr) and the *_array / *_matrix class; SMOTENC
    # always gives csr (class kept); SMOTEN keeps csr/csc (others: csr), always *_matrix
    sp = pytest.importorskip("scipy.sparse")
    kw, X, y = _by_sampler(name)
    if balanced:
        X, y = X[:24], np.array([0, 1] * 12)
    Xs = getattr(sp, f"{fmt}_{kind}")(X.astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Xt, yt = getattr(imb, name)(random_state=0, **kw).fit_resample(Xs, y)
        Xo, yo = getattr(bt.resample, name)(random_state=0, **kw).fit_resample(Xs, y)
    assert type(Xo) is type(Xt), (type(Xo), type(Xt))
    assert Xo.shape == Xt.shape
    np.testing.assert_array_equal(yo, yt)
    np.testing.assert_array_equal(Xo.toarray()[: len(X)], X)


@pytest.mark.parametrize("values", [(1e308, -1e308), (1e308, 0.0), (-1.5e308, 1.5e308)])
def test_smotenc_overflowing_std_raises_as_imblearn(values):
    rng = np.random.RandomState(0)
    n, y = 40, np.array([0] * 28 + [1] * 12)
    X = np.c_[rng.randint(0, 3, n), np.where(np.arange(n) % 2, *values), np.where(np.arange(n) % 3, *values)]
    with pytest.raises(ValueError, match=r"^Input X contains") as theirs:
        imb.SMOTENC([0], random_state=0).fit_resample(X, y)
    assert "NaN" in str(theirs.value) or "infinity" in str(theirs.value)
    # the same ValueError and opening; NaN or infinity as each library's variance overflows (scikit-learn's
    # sparse variance and torch's can differ there)
    overflow = r"(NaN|infinity or a value too large for dtype\('float64'\))"
    with pytest.raises(
        ValueError, match=rf"^Input X contains {overflow}\. \(SMOTENC: the median standard deviation .*\(X\[\d+, [12]\] = "
    ):
        bt.resample.SMOTENC([0], random_state=0).fit_resample(X, y)
    # plain SMOTE: imbalanced-learn raises nothing (its synthetic rows may hold inf); so does bt's
    imb.SMOTE(random_state=0).fit_resample(X, y)
    bt.resample.SMOTE(random_state=0).fit_resample(X, y)
