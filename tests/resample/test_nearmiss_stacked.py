"""NearMiss-1's stacked search (``under._nearest_sums``: the classes' rows in one ``bt.ops.knn`` call against the
minority class) against one search per class, bit for bit: scores, selections and outputs, on data built to break
it (duplicated rows, integer-grid ties, tight clusters far from the origin, magnitudes that make the kernel scale
its input in some classes only, float64 beyond 2^509 / below 2^-500), with stacks split by the byte budget."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import balancedtorch as bt  # noqa: E402
from balancedtorch.resample import _base, under  # noqa: E402
from balancedtorch.resample._base import Neighbours  # noqa: E402

KINDS = ["plain", "duplicates", "ties", "cluster", "huge", "tiny", "mixed", "extreme"]


def _data(rng: np.random.Generator, kind: str, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    if kind == "duplicates":  # a few distinct rows, repeated: distance-0 ties
        x = x[rng.integers(0, max(1, n // 4), n)]
    elif kind == "ties":  # a small integer grid: masses of equal distances
        x = rng.integers(-1, 2, size=(n, d)).astype(float)
    elif kind == "cluster":  # tight cluster far from the origin
        x = 1e4 + x * 1e-4
    elif kind == "huge":  # every call scaled by the same power of two
        x = x * 1e15
    elif kind == "tiny":
        x = x * 1e-15
    elif kind == "mixed":  # some rows beyond 2^40: a stack would be scaled unlike some classes alone
        x[rng.random(n) < 0.2] *= 1e14
    elif kind == "extreme":  # float64 beyond 2^509 and below 2^-500 in some rows
        x[rng.random(n) < 0.2] *= 1e200
        x[rng.random(n) < 0.2] *= 1e-160
    return x


def _classes(codes: torch.Tensor) -> types.SimpleNamespace:
    """What _nearest_sums reads of a _Data: the class sizes and each class's rows (ascending)."""
    counts = torch.bincount(codes).tolist()
    return types.SimpleNamespace(counts=counts, rows_of=lambda c: (codes == c).nonzero().squeeze(1))


@st.composite
def _problem(draw):
    k = draw(st.integers(1, 5))
    n_classes = draw(st.integers(2, 12))
    sizes = [draw(st.integers(k, k + 40)) for _ in range(n_classes)]
    d = draw(st.integers(1, 9))
    kind = draw(st.sampled_from(KINDS))
    dtype = torch.float64 if kind == "extreme" else draw(st.sampled_from([torch.float32, torch.float64]))
    budget = draw(st.sampled_from([1, 200, 2000, under._STACK_BYTES]))  # 1: every class alone
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(_data(rng, kind, sum(sizes), d)).to(dtype)
    codes = torch.from_numpy(rng.permutation(np.repeat(np.arange(n_classes), sizes)))
    return x, codes, k, budget


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problem())
def test_stacked_scores_equal_one_search_per_class(problem):
    x, codes, k, budget = problem
    data = _classes(codes)
    nn = Neighbours(k, "n_neighbors", "NearMiss", 0)
    minority = int(np.argmin(data.counts))
    X_min = x.index_select(0, data.rows_of(minority))
    wanted = [c for c in range(len(data.counts)) if c != minority]
    mp = pytest.MonkeyPatch()
    mp.setattr(under, "_STACK_BYTES", budget)
    try:
        got = under._nearest_sums(nn, x, data, wanted, X_min, k)
    finally:
        mp.undo()
    assert set(got) <= set(wanted)
    for code, score in got.items():
        want = nn.distances(x.index_select(0, data.rows_of(code)), X_min, k)[0].sum(1)
        assert score.dtype == want.dtype and torch.equal(score, want), code
    if budget == 1:
        assert not got  # no stack of two classes fits: _fit_resample searches each class


def _spy(monkeypatch):
    calls = []
    real = _base.knn

    def spy(x, k, groups=None, **kw):
        calls.append(x.shape[0])
        return real(x, k, groups, **kw)

    monkeypatch.setattr(_base, "knn", spy)
    return calls


def test_one_knn_call_for_all_classes(monkeypatch):
    calls = _spy(monkeypatch)
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate([300, 120, 80, 41, 9])])
    X = torch.randn(len(y), 4, generator=g)
    bt.resample.NearMiss(version=1).fit_resample(X, y)
    assert calls == [300 + 120 + 80 + 41]
    calls.clear()
    monkeypatch.setattr(under, "_STACK_BYTES", 4 * 4 * 200)  # 200 float32 rows of 4 a stack
    bt.resample.NearMiss(version=1).fit_resample(X, y)
    assert calls == [120 + 80, 300, 41]  # the stacks first, then the classes searched alone
    calls.clear()
    monkeypatch.setattr(under, "_STACK_BYTES", 1 << 28)
    X[0] = 2.0**45  # the stack (and class 0) scaled, the other classes not: one search per class
    bt.resample.NearMiss(version=1).fit_resample(X, y)
    assert calls == [300, 120, 80, 41]


def _no_stacking(*args):
    return {}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ["auto", "all", "majority"])
def test_nearmiss1_outputs_equal_the_per_class_search(monkeypatch, kind, strategy):
    rng = np.random.default_rng(len(kind) * 3 + len(strategy))
    sizes = [150] + [int(s) for s in rng.integers(8, 60, 7)] + [8]
    y = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    X = _data(rng, kind, len(y), 5)
    inputs = [X, torch.from_numpy(X)] + ([] if kind == "extreme" else [X.astype(np.float32)])
    for X_in in inputs:
        y_in = torch.from_numpy(y) if isinstance(X_in, torch.Tensor) else y
        ours = bt.resample.NearMiss(version=1, sampling_strategy=strategy)
        Xa, ya = ours.fit_resample(X_in, y_in)
        with monkeypatch.context() as m:
            m.setattr(under, "_nearest_sums", _no_stacking)
            per_class = bt.resample.NearMiss(version=1, sampling_strategy=strategy)
            Xb, yb = per_class.fit_resample(X_in, y_in)
        assert np.array_equal(np.asarray(ours.sample_indices_), np.asarray(per_class.sample_indices_))
        assert np.array_equal(np.asarray(Xa), np.asarray(Xb)) and np.array_equal(np.asarray(ya), np.asarray(yb))


def test_own_estimator_keeps_its_per_class_search(monkeypatch):
    """A user's estimator answers per class by its own kneighbors, as in imbalanced-learn."""
    neighbors = pytest.importorskip("sklearn.neighbors")
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), [40, 30, 10])
    X = rng.normal(size=(len(y), 3))
    est = neighbors.NearestNeighbors(n_neighbors=3, metric="manhattan")
    assert under._nearest_sums(Neighbours(est, "n_neighbors", "NearMiss", 0), None, None, [0, 1], None, 3) == {}
    bt.resample.NearMiss(version=1, n_neighbors=est).fit_resample(X, y)
    assert not calls
