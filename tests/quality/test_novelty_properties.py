"""Property-based exactness of NoveltyDetector on adversarial data (hypothesis).

The score of a query is the Euclidean distance to its k-th nearest bank row:
compared here with a float64 brute force over the very bank the detector
holds (so the check is of the search, not of the normalisation), on data
built to break approximate searches: duplicated rows, ties, tight clusters far
from the origin, extreme magnitudes, odd sizes and strides; chunked searches
must give the same bits as the whole bank.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import balancedtorch as bt  # noqa: E402
from balancedtorch.quality.novelty import _normalized  # noqa: E402


@st.composite
def _problem(draw):
    m = draw(st.integers(1, 60))
    q = draw(st.integers(1, 25))
    d = draw(st.integers(1, 9))
    k = draw(st.integers(1, m))
    kind = draw(st.sampled_from(["plain", "duplicates", "ties", "cluster", "huge", "tiny"]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    normalize = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(m, d))
    queries = rng.normal(size=(q, d))
    if kind == "duplicates":  # a few distinct rows, repeated; queries among them
        bank = bank[rng.integers(0, max(1, m // 4), m)]
        queries = bank[rng.integers(0, m, q)] + rng.normal(size=(q, d)) * draw(st.sampled_from([0.0, 1e-6]))
    elif kind == "ties":  # a small integer grid: masses of equal distances
        bank = rng.integers(-2, 3, size=(m, d)).astype(float)
        queries = rng.integers(-2, 3, size=(q, d)).astype(float)
    elif kind == "cluster":  # tight cluster far from the origin
        offset = draw(st.sampled_from([1e3, 1e5]))
        bank = offset + bank * 1e-3
        queries = offset + queries * 1e-3
    elif kind == "huge":
        bank, queries = bank * 1e15, queries * 1e15
    elif kind == "tiny":
        bank, queries = bank * 1e-15, queries * 1e-15
    chunk = draw(st.one_of(st.none(), st.integers(1, m + 3)))
    strided = draw(st.booleans())
    return bank, queries, k, dtype, normalize, chunk, strided


def _brute_kth(queries: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    q, b = queries.double(), bank.double()
    d2 = (q[:, None, :] - b[None, :, :]).square().sum(-1)
    return d2.sort(dim=1)[0][:, k - 1].sqrt()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problem())
def test_scores_equal_float64_brute_force_and_chunks_change_nothing(problem):
    bank_np, queries_np, k, dtype, normalize, chunk, strided = problem
    bank = torch.from_numpy(bank_np).to(dtype)
    queries = torch.from_numpy(queries_np).to(dtype)
    if strided:  # odd strides: every other column of a wider tensor, and transposed storage
        wide = torch.zeros(bank.shape[0], 2 * bank.shape[1], dtype=dtype)
        wide[:, ::2] = bank
        bank = wide[:, ::2]
        queries = queries.t().contiguous().t()
    bank_before, queries_before = bank.clone(), queries.clone()
    det = bt.quality.NoveltyDetector(k=k, normalize=normalize).fit(bank)
    scores = det.score(queries)
    assert torch.equal(bank, bank_before) and torch.equal(queries, queries_before)  # inputs untouched
    assert scores.dtype == dtype and scores.shape == (queries.shape[0],)
    ref = _brute_kth(_normalized(queries, normalize), det.bank_, k)
    # the k-th distance of an exact search: float32 rounded once (1 ulp for the double rounding of the root);
    # float64 up to the rounding of a D-term float64 sum taken in another order (a few ulps)
    rtol = torch.finfo(dtype).eps * (1 if dtype == torch.float32 else 8)
    torch.testing.assert_close(scores.double(), ref.to(dtype).double(), rtol=rtol, atol=0)
    if chunk is not None:
        chunked = bt.quality.NoveltyDetector(k=k, normalize=normalize, bank_chunk_size=chunk).fit(bank)
        assert torch.equal(chunked.score(queries), scores)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(20, 200),
    st.floats(0.05, 0.95),
)
def test_threshold_passes_at_least_tpr_with_the_smallest_cut(seed, n, tpr):
    rng = np.random.default_rng(seed)
    bank = torch.from_numpy(rng.normal(size=(300, 4))).float()
    val = torch.from_numpy(np.round(rng.normal(size=(n, 4)), 1)).float()  # rounded: tied scores
    det = bt.quality.NoveltyDetector(k=5).fit(bank)
    cut = det.threshold(val, tpr=tpr)
    s = det.score(val).double()
    passing = (s <= cut).double().mean().item()
    assert passing >= tpr - 1e-12
    below = s[s < cut]
    assert below.numel() < np.ceil(tpr * n)  # no lower cut would let tpr pass
    assert torch.equal(det.predict(val), s > cut)


def test_equidistant_bank_rows_keep_the_same_neighbour_whole_or_in_chunks():
    """Two bank rows at equal distance from a query, one ulp apart in float64 depending on the summation
    order: the bank searched whole and searched one row at a time keep the same one (found by hypothesis)."""
    bank = torch.tensor(
        [[-2, 2, -2, 1], [-1, 2, 1, -1], [-2, 1, 2, -1], [-1, 2, -1, 1], [-1, -1, 0, 1], [-2, -2, -1, 2],
         [-2, 1, 2, -1], [2, 1, 0, 1], [-1, 1, 1, 2], [-1, 0, 0, -1], [0, -1, 0, -1], [1, 0, -2, 1]],
        dtype=torch.float64,
    )  # fmt: skip
    queries = torch.tensor([[2, 2, -2, -1], [-2, 2, -2, -1], [1, 1, 2, -2]], dtype=torch.float64)
    whole = bt.quality.NoveltyDetector(k=1, normalize=True).fit(bank).score(queries)
    for chunk in (1, 2, 5):
        assert torch.equal(bt.quality.NoveltyDetector(k=1, normalize=True, bank_chunk_size=chunk).fit(bank).score(queries), whole)
