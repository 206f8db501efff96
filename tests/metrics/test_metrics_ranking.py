"""bt.metrics' scikit-learn ranking functions against the installed scikit-learn, on adversarial data.

Ties, duplicates, constant scores, one class absent, zero sample weights,
extreme magnitudes, float32 and float64 scores, string and integer labels;
numpy in -> numpy / float out with scikit-learn's dtypes, tensors in -> tensors
out on their device. scikit-learn's own test file runs against the same
functions in tests/metrics/test_sklearn_ranking_suite.py.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

import balancedtorch as bt

skm = pytest.importorskip("sklearn.metrics")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RTOL = 1e-12
ATOL = 1e-12

# a small pool of scores: many ties, duplicates, extreme magnitudes, signed zeros
_SCORES = [0.0, -0.0, 0.5, 0.25, 1.0, 1e-300, -1e300, 1e300, 3.0, -2.5, 0.1, 0.7]
_WEIGHTS = [0.0, 1e-3, 0.5, 1.0, 2.0, 7.0, 1e6]


def _call(fn, *args, **kwargs):
    """(result, exception type or None, warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn(*args, **kwargs)
        except (ValueError, TypeError, NotImplementedError, ZeroDivisionError) as e:
            return None, type(e), []
    # numpy's RuntimeWarnings inside scikit-learn (e.g. the mean of no class pair) are not part of the contract
    return out, None, sorted({str(w.message) for w in caught if not issubclass(w.category, RuntimeWarning)})


def _same(ours, theirs):
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), type(ours)
        assert ours.shape == theirs.shape, (ours, theirs)
        assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, equal_nan=True)
        return
    assert isinstance(ours, float), type(ours)
    if math.isnan(theirs):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(float(theirs), rel=RTOL, abs=ATOL)


def _compare(name, *args, **kwargs):
    ours = _call(getattr(bt.metrics, name), *args, **kwargs)
    theirs = _call(getattr(skm, name), *args, **kwargs)
    if theirs[1] is not None:
        assert (
            ours[1] is not None and issubclass(ours[1], theirs[1]) or (theirs[1] is ZeroDivisionError and ours[1] is ValueError)
        ), (ours, theirs)
        return
    assert ours[1] is None, (ours, theirs)
    _same(ours[0], theirs[0])
    assert bool(ours[2]) == bool(theirs[2]), (ours[2], theirs[2])


@st.composite
def binary_case(draw):
    n = draw(st.integers(1, 30))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    scores = draw(st.lists(st.sampled_from(_SCORES), min_size=n, max_size=n))
    weights = draw(st.none() | st.lists(st.sampled_from(_WEIGHTS), min_size=n, max_size=n))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return np.array(y), np.array(scores, dtype=dtype), None if weights is None else np.array(weights)


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(binary_case(), st.booleans())
def test_curves_equal_sklearn(case, drop):
    y, s, w = case
    _compare("precision_recall_curve", y, s, sample_weight=w, drop_intermediate=drop)
    _compare("roc_curve", y, s, sample_weight=w, drop_intermediate=drop)


@_SETTINGS
@given(binary_case(), st.sampled_from([None, 1.0, 0.5, 0.3, 1e-3, 0.999]))
def test_binary_scores_equal_sklearn(case, max_fpr):
    y, s, w = case
    _compare("average_precision_score", y, s, sample_weight=w)
    if (
        max_fpr not in (None, 1.0)
        and w is not None
        and w.sum() > 0
        and np.isfinite(s).all()
        and len(set(y)) == 2
        and (w[y == 0].sum() == 0 or w[y == 1].sum() == 0)
    ):
        # both classes present, one weighing 0: scikit-learn's partial AUC interpolates on NaN rates and
        # raises "x is neither increasing nor decreasing"; ours is NaN with roc_curve's warning, as without max_fpr
        with pytest.warns(UserWarning, match="samples in y_true"):
            assert math.isnan(bt.metrics.roc_auc_score(y, s, sample_weight=w, max_fpr=max_fpr))
        return
    _compare("roc_auc_score", y, s, sample_weight=w, max_fpr=max_fpr)


@st.composite
def multilabel_case(draw):
    n = draw(st.integers(1, 12))
    c = draw(st.integers(2, 4))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n * c, max_size=n * c))).reshape(n, c)
    s = np.array(draw(st.lists(st.sampled_from(_SCORES), min_size=n * c, max_size=n * c))).reshape(n, c)
    w = draw(st.none() | st.lists(st.sampled_from(_WEIGHTS), min_size=n, max_size=n))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return y, s.astype(dtype), None if w is None else np.array(w)


@_SETTINGS
@given(multilabel_case(), st.sampled_from([None, "micro", "macro", "weighted", "samples"]))
def test_multilabel_averages_equal_sklearn(case, average):
    y, s, w = case
    _compare("average_precision_score", y, s, average=average, sample_weight=w)
    _compare("roc_auc_score", y, s, average=average, sample_weight=w)


@st.composite
def multiclass_case(draw):
    n = draw(st.integers(3, 20))
    k = draw(st.integers(3, 5))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    # probabilities with ties: a few levels, rows normalised
    raw = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 5.0]), min_size=n * k, max_size=n * k))).reshape(n, k)
    raw[raw.sum(1) == 0, 0] = 1.0
    p = raw / raw.sum(1, keepdims=True)
    w = draw(st.none() | st.lists(st.sampled_from(_WEIGHTS[1:]), min_size=n, max_size=n))
    return y, p, None if w is None else np.array(w), k


@pytest.mark.slow
@_SETTINGS
@given(multiclass_case(), st.sampled_from(["ovr", "ovo"]), st.sampled_from([None, "micro", "macro", "weighted"]))
def test_multiclass_equals_sklearn(case, multi_class, average):
    y, p, w, k = case
    labels = list(range(k))
    if multi_class == "ovo":
        w = None
        if len(np.unique(y)) < 2:  # no class pair: NaN with a warning (scikit-learn: NaN or ZeroDivisionError)
            with pytest.warns(UserWarning, match="Only one class is present"):
                avg = "weighted" if average == "weighted" else "macro"
                assert math.isnan(bt.metrics.roc_auc_score(y, p, multi_class="ovo", average=avg, labels=labels))
            return
    _compare("roc_auc_score", y, p, multi_class=multi_class, average=average, sample_weight=w, labels=labels)
    if len(np.unique(y)) == k:
        _compare("roc_auc_score", y, p, multi_class=multi_class, average=average, sample_weight=w)
        _compare("average_precision_score", y, p, average=average or "macro", sample_weight=w)


def test_string_labels_and_pos_label():
    rng = np.random.default_rng(0)
    y = rng.choice(["cat", "dog"], 50)
    s = rng.random(50)
    for name in ("precision_recall_curve", "roc_curve"):
        _compare(name, y, s, pos_label="dog")
        _compare(name, y, s, pos_label="cat")
        with pytest.raises(ValueError, match=r"y_true takes value in \{'cat', 'dog'\} and pos_label is not specified"):
            getattr(bt.metrics, name)(y, s)
    _compare("average_precision_score", y, s, pos_label="dog")
    _compare("roc_auc_score", y, s)  # the greater label ("dog") is positive
    y3 = rng.choice(["a", "b", "c"], 60)
    p = rng.dirichlet(np.ones(3), 60)
    _compare("roc_auc_score", y3, p, multi_class="ovo")
    _compare("roc_auc_score", y3, p, multi_class="ovr", average=None)
    _compare("average_precision_score", y3, p, average=None)
    _compare("roc_auc_score", y3, p, multi_class="ovr", labels=["a", "b", "c"])
    # integer labels other than {0, 1}: pos_label picks the class
    yi = rng.choice([3, 7], 40)
    si = rng.random(40)
    _compare("precision_recall_curve", yi, si, pos_label=7)
    _compare("average_precision_score", yi, si, pos_label=3)


def test_numpy_in_gives_sklearns_types():
    y = np.array([0, 1, 1, 0, 1])
    s32 = np.array([0.1, 0.4, 0.4, 0.8, 0.9], dtype=np.float32)
    p, r, t = bt.metrics.precision_recall_curve(y, s32)
    assert p.dtype == np.float64 and r.dtype == np.float64 and t.dtype == np.float32
    fpr, tpr, t = bt.metrics.roc_curve(y, s32)
    assert fpr.dtype == tpr.dtype == t.dtype == np.float64 and t[0] == np.inf
    _, _, t = bt.metrics.precision_recall_curve(y, [1, 2, 2, 3, 4])
    assert t.dtype == np.int64
    assert type(bt.metrics.roc_auc_score(y, s32)) is float
    assert type(bt.metrics.average_precision_score(y, s32)) is float
    per = bt.metrics.average_precision_score(np.eye(3)[[0, 1, 2, 1]], np.eye(3)[[0, 2, 2, 1]], average=None)
    assert isinstance(per, np.ndarray) and per.dtype == np.float64 and per.shape == (3,)


def test_tensors_in_give_tensors_on_their_device(device):
    g = torch.Generator().manual_seed(3)
    y = (torch.rand(200, generator=g) < 0.3).long()
    s = torch.rand(200, generator=g).round(decimals=1)  # ties
    w = torch.rand(200, generator=g).masked_fill(torch.rand(200, generator=g) < 0.2, 0)
    yd, sd, wd = y.to(device), s.to(device), w.to(device)
    for name in ("precision_recall_curve", "roc_curve"):
        for drop in (False, True):
            ours = getattr(bt.metrics, name)(yd, sd, sample_weight=wd, drop_intermediate=drop)
            theirs = getattr(skm, name)(y.numpy(), s.numpy(), sample_weight=w.numpy(), drop_intermediate=drop)
            for a, b in zip(ours, theirs):
                assert isinstance(a, torch.Tensor) and a.device.type == torch.device(device).type
                assert a.dtype == {np.float64: torch.float64, np.float32: torch.float32}[b.dtype.type]
                np.testing.assert_allclose(a.cpu().numpy(), b, rtol=RTOL, atol=ATOL)
    ap = bt.metrics.average_precision_score(yd, sd, sample_weight=wd)
    auc = bt.metrics.roc_auc_score(yd, sd, sample_weight=wd, max_fpr=0.2)
    for ours, theirs in (
        (ap, skm.average_precision_score(y.numpy(), s.numpy(), sample_weight=w.numpy())),
        (auc, skm.roc_auc_score(y.numpy(), s.numpy(), sample_weight=w.numpy(), max_fpr=0.2)),
    ):
        assert isinstance(ours, torch.Tensor) and ours.dim() == 0 and ours.dtype == torch.float64
        assert ours.device.type == torch.device(device).type
        assert float(ours) == pytest.approx(theirs, rel=RTOL, abs=ATOL)
    k = 4
    yk = torch.randint(0, k, (300,), generator=g)
    pk = torch.softmax(torch.randn(300, k, generator=g).round(), 1)
    for mc, avg in (("ovr", None), ("ovr", "micro"), ("ovr", "weighted"), ("ovo", "macro"), ("ovo", "weighted")):
        ours = bt.metrics.roc_auc_score(yk.to(device), pk.to(device), multi_class=mc, average=avg)
        theirs = skm.roc_auc_score(yk.numpy(), pk.numpy(), multi_class=mc, average=avg)
        assert ours.device.type == torch.device(device).type
        np.testing.assert_allclose(ours.cpu().numpy(), theirs, rtol=1e-9, atol=1e-12)


def test_inputs_are_not_modified():
    y = np.array([0, 1, 1, 0, 1, 0])
    s = np.array([0.3, 0.1, 0.3, 0.8, 0.2, 0.2])
    w = np.array([1.0, 0.0, 2.0, 1.0, 1.0, 0.5])
    copies = [a.copy() for a in (y, s, w)]
    bt.metrics.precision_recall_curve(y, s, sample_weight=w)
    bt.metrics.roc_auc_score(y, s, sample_weight=w)
    for a, b in zip((y, s, w), copies):
        np.testing.assert_array_equal(a, b)
    t = torch.tensor(s)
    bt.metrics.roc_curve(torch.tensor(y), t)
    torch.testing.assert_close(t, torch.tensor(s))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: bt.metrics.roc_curve([0, 1], [0.1, float("nan")]), ValueError, r"Input y_score contains NaN"),
        (lambda: bt.metrics.roc_curve([0, 1, 1], [0.1, 0.2]), ValueError, r"inconsistent numbers of samples: \[3, 2\]"),
        (
            lambda: bt.metrics.roc_curve([0, 1], [0.1, 0.2], sample_weight=[1.0, -1.0]),
            ValueError,
            r"sample_weight must be >= 0, got sample_weight\[1\] = -1.0",
        ),
        (
            lambda: bt.metrics.roc_curve([0, 1], [0.1, 0.2], sample_weight=[0, 0]),
            ValueError,
            r"Sample weights must contain at least one non-zero number",
        ),
        (
            lambda: bt.metrics.roc_curve([0, 1], [0.1, 0.2], sample_weight=[1.0]),
            ValueError,
            r"sample_weight.shape == \(1,\), expected \(2,\)",
        ),
        (
            lambda: bt.metrics.roc_curve([0, 1], [0.1, 0.2], drop_intermediate="yes"),
            TypeError,
            r"drop_intermediate must be True or False",
        ),
        (lambda: bt.metrics.roc_curve([0, 1], ["a", "b"]), ValueError, r"y_score must hold numbers"),
        (lambda: bt.metrics.roc_curve([b"a", b"b"], [0.1, 0.2]), TypeError, r"labels represented as bytes"),
        (
            lambda: bt.metrics.average_precision_score([0, 1], [0.1, 0.2], average="mean"),
            ValueError,
            r"'average' parameter of average_precision_score",
        ),
        (lambda: bt.metrics.roc_auc_score([0, 1], [0.1, 0.2], max_fpr=0), ValueError, r"'max_fpr' parameter of roc_auc_score"),
        (lambda: bt.metrics.roc_auc_score([0, 1], [0.1, 0.2], multi_class="ovx"), ValueError, r"'multi_class' parameter"),
        (
            lambda: bt.metrics.roc_auc_score([0, 1, 2], [[0.5, 0.5, 0.5]] * 3, multi_class="ovr"),
            ValueError,
            r"Target scores need to be probabilities",
        ),
        (lambda: bt.metrics.roc_auc_score([0.5, 1.5], [0.1, 0.2]), ValueError, r"continuous format is not supported"),
        (
            lambda: bt.metrics.roc_auc_score(torch.tensor([0, 1]), torch.tensor([0.1, 0.2], device="meta")),
            ValueError,
            r"roc_auc_score: y_score is on the meta device",
        ),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


_META = dict(device="meta")


@pytest.mark.parametrize("fn", ["average_precision_score", "roc_auc_score", "precision_recall_curve", "roc_curve"])
@pytest.mark.parametrize("where", ["y_true", "y_score", "sample_weight", "all"])
def test_meta_tensors_are_refused_naming_the_argument(fn, where):
    # a meta tensor has a shape but no values: a ValueError naming it, never torch's RuntimeError /
    # NotImplementedError from deep inside (Tensor.item(), aten::_unique2)
    args = {"y_true": torch.tensor([0, 1, 1, 0]), "y_score": torch.tensor([0.1, 0.9, 0.4, 0.3]), "sample_weight": torch.ones(4)}
    for name in args:
        if where in (name, "all"):
            args[name] = args[name].to("meta")
    first = "y_true" if where == "all" else where
    with pytest.raises(ValueError, match=rf"^{fn}: {first} is on the meta device, which holds no values"):
        getattr(bt.metrics, fn)(args["y_true"], args["y_score"], sample_weight=args["sample_weight"])


def test_meta_labels_of_roc_auc_score_are_refused():
    y, p = [0, 1, 2, 1], torch.softmax(torch.rand(4, 3, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match=r"roc_auc_score: labels is on the meta device"):
        bt.metrics.roc_auc_score(y, p, multi_class="ovr", labels=torch.arange(3, device="meta"))


@pytest.mark.parametrize("tensors", [False, True])
@pytest.mark.parametrize(
    "fn, kwargs, shape",
    [
        ("roc_auc_score", {}, (0,)),
        ("average_precision_score", {}, (0,)),
        ("precision_recall_curve", {}, (0,)),
        ("precision_recall_curve", {"pos_label": "b"}, (0,)),
        ("roc_curve", {}, (0,)),
        ("roc_curve", {"pos_label": 1}, (0,)),
        ("roc_auc_score", {}, (0, 3)),
        ("average_precision_score", {"average": None}, (0, 3)),
    ],
)
def test_empty_input_raises_sklearns_check_array_error(fn, kwargs, shape, tensors):
    # scikit-learn: this ValueError in roc_auc_score (and for 2-D targets in average_precision_score);
    # IndexError or a numpy broadcasting error elsewhere. Never a number (nan, 0.0, or a curve).
    y, s = np.zeros(shape, dtype=np.int64), np.zeros(shape)
    if tensors:
        y, s = torch.from_numpy(y), torch.from_numpy(s)
    want = rf"^Found array with 0 sample\(s\) \(shape={re.escape(str(shape))}\) while a minimum of 1 is required\.$"
    with pytest.raises(ValueError, match=want):
        getattr(bt.metrics, fn)(y, s, **kwargs)
    if fn == "roc_auc_score" or len(shape) == 2:
        with pytest.raises(ValueError, match=want):
            getattr(skm, fn)(y, s, **kwargs)
