"""One same-class neighbour search for all classes: ``Neighbours.within_classes`` (one ``knn(groups=)`` call)
against one ``within`` call per class, index for index, on data built to break it: duplicated rows, ties on an
integer grid, tight clusters far from the origin, classes of exactly k + 1 rows, many classes, magnitudes that
make the kernel scale its input (in some classes only: the case where one call for all classes would rank
differently, so within_classes searches per class there); and the over-samplers' outputs bit for bit against the per-class search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import balancedtorch as bt  # noqa: E402
from balancedtorch.resample import _base  # noqa: E402
from balancedtorch.resample._base import Neighbours  # noqa: E402

KINDS = ["plain", "duplicates", "ties", "cluster", "huge", "tiny", "mixed"]


def _data(rng: np.random.Generator, kind: str, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    if kind == "duplicates":  # a few distinct rows, repeated (distance-0 ties across and within classes)
        x = x[rng.integers(0, max(1, n // 4), n)]
    elif kind == "ties":  # a small integer grid: masses of equal distances
        x = rng.integers(-1, 2, size=(n, d)).astype(float)
    elif kind == "cluster":  # tight cluster far from the origin
        x = 1e4 + x * 1e-4
    elif kind == "huge":
        x = x * 1e15
    elif kind == "tiny":
        x = x * 1e-15
    elif kind == "mixed":  # some rows far beyond 2^40: the stacked input is scaled unlike some classes alone
        x[rng.random(n) < 0.2] *= 1e14
    elif kind == "extreme":  # float64 beyond 2^509 and below 2^-500 in some rows: knn re-ranks scaled copies
        x[rng.random(n) < 0.2] *= 1e200
        x[rng.random(n) < 0.2] *= 1e-160
    return x


@st.composite
def _problem(draw):
    k = draw(st.integers(1, 6))
    n_classes = draw(st.integers(1, 25))
    # sizes: many exactly k + 1 (the fewest allowed), the others a little larger
    sizes = [draw(st.one_of(st.just(k + 1), st.integers(k + 1, k + 30))) for _ in range(n_classes)]
    d = draw(st.integers(1, 9))
    kind = draw(st.sampled_from(KINDS + ["extreme"]))
    dtype = torch.float64 if kind == "extreme" else draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(_data(rng, kind, sum(sizes), d)).to(dtype)
    codes = torch.from_numpy(rng.permutation(np.repeat(np.arange(n_classes), sizes)))
    return x, codes, k


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problem())
def test_within_classes_equals_one_search_per_class(problem):
    x, codes, k = problem
    nn = Neighbours(k, "k_neighbors", "SMOTE", 1)
    classes = codes.unique().tolist()
    blocks = [x[codes == c] for c in classes]
    grouped = nn.within_classes(blocks, classes)
    for b, c, got in zip(blocks, classes, grouped):
        want = nn.within(b, c)
        assert got.dtype == want.dtype and torch.equal(got, want), c


def test_within_classes_takes_the_grouped_path(monkeypatch):
    """On ordinary data the classes are searched by one knn call with groups (not one per class)."""
    calls = []
    real = _base.knn

    def spy(x, k, groups=None, **kw):
        calls.append(groups is not None)
        return real(x, k, groups, **kw)

    monkeypatch.setattr(_base, "knn", spy)
    x = torch.randn(200, 4)
    codes = torch.arange(200) % 7
    Neighbours(3, "k_neighbors", "SMOTE", 1).within_classes([x[codes == c] for c in range(7)], list(range(7)))
    assert calls == [True]


def test_within_classes_raises_for_the_first_class_too_small():
    nn = Neighbours(3, "k_neighbors", "SMOTE", 1)
    blocks = [torch.randn(5, 2), torch.randn(3, 2), torch.randn(2, 2)]
    with pytest.raises(ValueError, match=r"k_neighbors=3 needs more than 3 samples in every class it resamples; class 'b' has 3"):
        nn.within_classes(blocks, ["a", "b", "c"])


def _per_class(self, blocks, classes):
    """The search before within_classes: one ``within`` call per class."""
    return [self.within(b, c) for b, c in zip(blocks, classes)]


def _fit_both(monkeypatch, make, X, y):
    grouped = make().fit_resample(X, y)
    with monkeypatch.context() as m:
        m.setattr(Neighbours, "within_classes", _per_class)
        per_class = make().fit_resample(X, y)
    return grouped, per_class


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["SMOTE", "ADASYN", "SMOTENC"])
def test_samplers_are_bit_equal_to_the_per_class_search(monkeypatch, kind, name):
    rng = np.random.default_rng(len(kind) * 7 + len(name))
    sizes = [120] + [int(s) for s in rng.integers(6, 30, 18)] + [6, 6]  # k=5: classes of k + 1 rows too
    y = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    X = _data(rng, kind, len(y), 6)
    if name == "SMOTENC":
        X[:, :2] = rng.integers(0, 3, size=(len(y), 2))  # two categorical columns

        def make():
            return bt.resample.SMOTENC(categorical_features=[0, 1], random_state=0)

    else:

        def make():
            return getattr(bt.resample, name)(random_state=0)

    for X_in in (X, X.astype(np.float32)):
        try:
            (Xa, ya), (Xb, yb) = _fit_both(monkeypatch, make, X_in, y)
        except RuntimeError as err:  # ADASYN on data with no class boundary: both paths raise it
            assert name == "ADASYN" and "ADASYN" in str(err)
            continue
        assert Xa.dtype == Xb.dtype and np.array_equal(Xa, Xb) and np.array_equal(ya, yb)
        assert Xa.shape[0] > len(y)


def test_tensor_input_bit_equal(monkeypatch, device):
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate([200, 40, 17, 6, 6, 90])])
    X = torch.randint(-2, 3, (len(y), 5), generator=g).float()  # ties everywhere
    (Xa, ya), (Xb, yb) = _fit_both(monkeypatch, lambda: bt.resample.SMOTE(random_state=1), X.to(device), y.to(device))
    assert torch.equal(Xa, Xb) and torch.equal(ya, yb)


def test_own_estimator_keeps_its_per_class_search(monkeypatch):
    """A non-Euclidean estimator answers per class by its own kneighbors (imbalanced-learn's semantics)."""
    neighbors = pytest.importorskip("sklearn.neighbors")
    calls = []
    monkeypatch.setattr(_base, "knn", lambda *a, **kw: calls.append(1))
    nn = Neighbours(neighbors.NearestNeighbors(n_neighbors=4, metric="manhattan"), "k_neighbors", "SMOTE", 1)
    blocks = [torch.randn(10, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)]
    got = nn.within_classes(blocks, [0, 1])
    assert not calls and [t.shape for t in got] == [(10, 3), (7, 3)]
    for b, t in zip(blocks, got):
        want = neighbors.NearestNeighbors(n_neighbors=4, metric="manhattan").fit(b.numpy()).kneighbors(b.numpy())[1]
        assert np.array_equal(t.numpy(), want[:, 1:])
