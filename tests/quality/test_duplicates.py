"""bt.quality.find_duplicates and bt.quality.find_leakage against a float64 brute force over all pairs.

The brute force takes explicit float64 differences of every pair (cosine: of
the rows normalised in float64 by the library's own row normaliser, so the
check is of the search, not of the normalisation) and links the pairs within
the threshold; its components come from scipy. The data is built to break
approximate searches: planted groups of many sizes, chains, exact copies,
clusters far from the origin, masses of ties.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch.quality.novelty import _normalized

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

csgraph = pytest.importorskip("scipy.sparse.csgraph")
sparse = pytest.importorskip("scipy.sparse")


def _distances(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    a, b = a.double(), b.double()
    if metric == "cosine":
        a, b = _normalized(a, True), _normalized(b, True)
    d2 = (a[:, None, :] - b[None, :, :]).square().sum(-1)
    return d2 / 2 if metric == "cosine" else d2.sqrt()


def _brute_groups(x: torch.Tensor, threshold: float, metric: str):
    linked = (_distances(x, x, metric) <= threshold).numpy()
    _, comp = csgraph.connected_components(sparse.csr_matrix(linked), directed=False)
    groups = {}
    for i, c in enumerate(comp):
        groups.setdefault(c, []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


def _brute_leakage(train, test, threshold, metric):
    d = _distances(test, train, metric)
    best = d.min(1)
    j = (d == best.values[:, None]).double().argmax(1)  # the first (lowest) index among the ties
    hit = (best.values <= threshold).nonzero().squeeze(1)
    return hit, j[hit], best.values[hit]


def _planted(rng, n_base, dim, kind):
    """Rows with planted near-duplicate groups; a threshold that lies inside the groups."""
    base = rng.normal(size=(n_base, dim))
    parts = [base]
    if kind in ("groups", "offset"):
        for size in (2, 3, 5, 9, 17):  # groups of many sizes, noise well inside the threshold
            src = base[rng.integers(0, n_base)]
            parts.append(src + rng.normal(size=(size - 1, dim)) * 1e-3)
    if kind == "copies":  # exact copies: distance exactly 0
        parts.append(base[rng.integers(0, n_base, 25)])
    if kind == "chain":  # a chain of steps within the threshold whose ends are far apart
        start = base[0]
        step = rng.normal(size=dim)
        step *= 0.009 / np.linalg.norm(step)
        parts.append(start + np.arange(1, 30)[:, None] * step)
    x = np.concatenate(parts)
    if kind == "offset":  # far from the origin: the GEMM form cancels, exact differences do not
        x = 1e6 + x * 1e-2
    if kind == "ties":  # an integer grid: masses of equal distances, exactly at the threshold too
        x = rng.integers(-2, 3, size=(n_base, dim)).astype(float)
    return x[rng.permutation(len(x))]


_THRESHOLDS = {"groups": 0.01, "copies": 1e-9, "chain": 0.01, "offset": 1e-4, "ties": 1.0, "clustered": 0.3}


@st.composite
def _problem(draw):
    kind = draw(st.sampled_from(["groups", "copies", "chain", "offset", "ties", "clustered"]))
    dim = draw(st.integers(1, 12))
    n = draw(st.integers(2, 120))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if kind == "clustered":  # a few tight blobs: large groups, long candidate lists
        centers = rng.normal(size=(draw(st.integers(1, 4)), dim)) * 3
        x = centers[rng.integers(0, len(centers), n)] + rng.normal(size=(n, dim)) * 0.1
    else:
        x = _planted(rng, n, dim, kind)
    threshold = _THRESHOLDS[kind] * draw(st.sampled_from([1.0, 0.5, 3.0]))
    metric = draw(st.sampled_from(["euclidean", "cosine"]))
    if metric == "cosine" and kind == "ties":
        x = x + (np.abs(x).sum(1, keepdims=True) == 0)  # no zero row
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return torch.from_numpy(x).to(dtype), threshold, metric


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problem())
def test_find_duplicates_equals_float64_brute_force(problem):
    x, threshold, metric = problem
    before = x.clone()
    groups = bt.quality.find_duplicates(x, threshold, metric=metric)
    assert torch.equal(x, before)
    assert [g.tolist() for g in groups] == _brute_groups(x, threshold, metric)
    assert all(g.dtype == torch.long for g in groups)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problem(), st.integers(0, 2**31 - 1))
def test_find_leakage_equals_float64_brute_force(problem, seed):
    x, threshold, metric = problem
    rng = np.random.default_rng(seed)
    cut = int(rng.integers(1, x.shape[0]))
    perm = torch.from_numpy(rng.permutation(x.shape[0]))
    train, test = x[perm[:cut]], x[perm[cut:]]
    before = (train.clone(), test.clone())
    q, j, d = bt.quality.find_leakage(train, test, threshold, metric=metric)
    assert torch.equal(train, before[0]) and torch.equal(test, before[1])
    rq, rj, rd = _brute_leakage(train, test, threshold, metric)
    assert q.tolist() == rq.tolist()
    assert j.tolist() == rj.tolist()
    assert d.dtype == torch.float64
    torch.testing.assert_close(d, rd, rtol=1e-13, atol=1e-300)


def test_planted_groups_chain_and_copies_are_found():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=gen) * 10
    x[50] = x[7]  # an exact copy
    x[120] = x[7] + 0.001
    x[90:100] = x[30] + torch.arange(1, 11)[:, None] * torch.full((8,), 0.03)  # a chain from row 30
    groups = bt.quality.find_duplicates(x, 0.1)
    assert [g.tolist() for g in groups] == [[7, 50, 120], [30] + list(range(90, 100))]


def test_group_of_all_rows_and_of_none():
    x = torch.zeros(300, 3)
    x[:, 0] = torch.arange(300) * 0.5  # a chain of 300 rows
    assert [g.tolist() for g in bt.quality.find_duplicates(x, 0.5)] == [list(range(300))]
    assert bt.quality.find_duplicates(x, 0.49) == []
    assert bt.quality.find_duplicates(x[:1], 1.0) == []  # one row: nothing to pair


def test_threshold_is_inclusive_and_float64_exact():
    x = torch.tensor([[0.0], [0.1]], dtype=torch.float64)
    d = float(x[1, 0] - x[0, 0])
    assert len(bt.quality.find_duplicates(x, d)) == 1
    assert bt.quality.find_duplicates(x, math.nextafter(d, 0)) == []
    q, j, dist = bt.quality.find_leakage(x[:1], x[1:], d)
    assert q.tolist() == [0] and j.tolist() == [0] and dist.tolist() == [d]
    assert bt.quality.find_leakage(x[:1], x[1:], math.nextafter(d, 0))[0].numel() == 0


def test_leakage_ties_go_to_the_lowest_training_row():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    test = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    q, j, d = bt.quality.find_leakage(train, test, 1.0)
    assert q.tolist() == [0, 1] and j.tolist() == [0, 0] and d.tolist() == [1.0, 0.0]


def test_cosine_ignores_scale():
    x = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [-1.0, -2.0, -3.0], [3.0, 2.0, 1.0]])
    assert [g.tolist() for g in bt.quality.find_duplicates(x, 1e-6, metric="cosine")] == [[0, 1]]
    q, j, d = bt.quality.find_leakage(x[:1], x[2:], 1.99, metric="cosine")
    assert q.tolist() == [1] and j.tolist() == [0]


def test_numpy_and_half_inputs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5))
    x[10] = x[3]
    assert [g.tolist() for g in bt.quality.find_duplicates(x, 1e-6)] == [[3, 10]]
    half = torch.from_numpy(x).half()
    assert [g.tolist() for g in bt.quality.find_duplicates(half, 1e-6)] == [[3, 10]]


@pytest.mark.slow
def test_bigger_than_one_neighbour_list():
    """Groups of hundreds of rows (more than the first k) and more pairs than one block of slots."""
    gen = torch.Generator().manual_seed(1)
    centers = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 100
    x = centers[torch.arange(1500) % 6] + torch.randn(1500, 4, generator=gen, dtype=torch.float64)
    groups = bt.quality.find_duplicates(x, 2.0)
    assert [g.tolist() for g in groups] == _brute_groups(x, 2.0, "euclidean")


def _bad(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


@pytest.mark.parametrize(
    "threshold,exc,match",
    [
        (0.0, ValueError, "threshold"),
        (-1.0, ValueError, "threshold"),
        (float("nan"), ValueError, "threshold.*nan"),
        (float("inf"), ValueError, "threshold"),
        ("0.1", TypeError, "threshold.*'0.1'"),
        (None, TypeError, "threshold"),
        (True, TypeError, "threshold"),
    ],
)
def test_bad_threshold(threshold, exc, match):
    x = torch.randn(5, 2)
    _bad(lambda: bt.quality.find_duplicates(x, threshold), exc, match)
    _bad(lambda: bt.quality.find_leakage(x, x, threshold), exc, match)


def test_bad_features():
    x = torch.randn(6, 3)
    nan = x.clone()
    nan[2, 1] = float("nan")
    inf = x.clone()
    inf[4, 0] = float("inf")
    _bad(lambda: bt.quality.find_duplicates(nan, 0.1), ValueError, r"features\[2, 1\] = nan")
    _bad(lambda: bt.quality.find_duplicates(inf, 0.1), ValueError, r"features\[4, 0\] = inf")
    _bad(lambda: bt.quality.find_duplicates(x[0], 0.1), ValueError, r"features must have shape \(N, D\)")
    _bad(lambda: bt.quality.find_duplicates(x[None], 0.1), ValueError, "features must have shape")
    _bad(lambda: bt.quality.find_duplicates(x[:0], 0.1), ValueError, "features must be non-empty")
    _bad(lambda: bt.quality.find_duplicates(x[:, :0], 0.1), ValueError, "features must be non-empty")
    _bad(lambda: bt.quality.find_duplicates(x, 0.1, metric="manhattan"), ValueError, "metric.*manhattan")
    _bad(lambda: bt.quality.find_leakage(x, x[:, :2], 0.1), ValueError, "test_features has 2 features")
    _bad(lambda: bt.quality.find_leakage(nan, x, 0.1), ValueError, r"train_features\[2, 1\]")
    _bad(lambda: bt.quality.find_leakage(x, inf, 0.1), ValueError, r"test_features\[4, 0\]")
    _bad(lambda: bt.quality.find_leakage(x[:0], x, 0.1), ValueError, "train_features must be non-empty")
    _bad(lambda: bt.quality.find_leakage(x, x, 0.1, metric=None), ValueError, "metric")
    zero = x.clone()
    zero[3] = 0
    _bad(lambda: bt.quality.find_duplicates(zero, 0.1, metric="cosine"), ValueError, r"features\[3\] is a zero row")
    _bad(lambda: bt.quality.find_leakage(x, zero, 0.1, metric="cosine"), ValueError, r"test_features\[3\] is a zero row")
    assert bt.quality.find_duplicates(zero, 0.1) == []  # euclidean: a zero row is a row like any other


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=pytest.mark.cuda)])
def test_cuda_matches_cpu(device):
    rng = np.random.default_rng(5)
    x = torch.from_numpy(_planted(rng, 500, 16, "groups")).float()
    for metric, thr in (("euclidean", 0.01), ("cosine", 1e-4)):
        cpu = bt.quality.find_duplicates(x, thr, metric=metric)
        gpu = bt.quality.find_duplicates(x.to(device), thr, metric=metric)
        assert [g.tolist() for g in gpu] == [g.tolist() for g in cpu]
        a = bt.quality.find_leakage(x[:300], x[300:], thr, metric=metric)
        b = bt.quality.find_leakage(x[:300].to(device), x[300:].to(device), thr, metric=metric)
        assert all(torch.equal(u, v) for u, v in zip(a, b))
