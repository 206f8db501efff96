"""NoveltyDetector and embedding_coverage at any magnitude of the features.

Normalised scores do not depend on the features' scale (the squared norm
neither overflows nor sinks into the subnormals), raw float32 scores stay
finite past the range of their squares, and rows in the ordinary range keep
the direct normalisation.
"""

import numpy as np
import pytest
import torch

import balancedtorch as bt

Det = bt.quality.NoveltyDetector


def _data(n, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)


def _brute_kth(bank, queries, k, normalize):
    """float64 brute force; rows scaled by their largest |value| first so that any finite magnitude normalises."""
    b, q = bank.double(), queries.double()
    if normalize:
        b = b / b.abs().amax(1, keepdim=True)
        q = q / q.abs().amax(1, keepdim=True)
        b, q = torch.nn.functional.normalize(b, dim=1), torch.nn.functional.normalize(q, dim=1)
    return torch.cdist(q, b).sort(1)[0][:, k - 1]


@pytest.mark.parametrize(
    "dtype, scale", [(torch.float32, 1e30), (torch.float32, 1e-30), (torch.float64, 1e200), (torch.float64, 1e-200)]
)
def test_normalised_scores_do_not_depend_on_the_features_magnitude(dtype, scale):
    # the squared norm overflowed (-> all-zero rows, scores 0) or sank into the subnormals (-> rows of ~1e-18)
    bank, queries = _data(70, 9, 1, dtype) * scale, _data(25, 9, 2, dtype) * scale
    scores = Det(k=5).fit(bank).score(queries)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scores.double(), _brute_kth(bank, queries, 5, True), **tol)
    assert scores.min() > 0.1  # random directions in 9-D are far from each other
    cov = bt.quality.embedding_coverage(bank, queries, k=5)
    torch.testing.assert_close(cov["distance"], _brute_kth(bank, queries, 5, True), **tol)


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-25])
def test_raw_float32_scores_beyond_the_range_of_their_squares(scale):
    # the squared k-th distance was rounded to float32 before the root: inf above ~1e19, 0 below ~1e-19
    bank, queries = _data(70, 9, 3) * scale, _data(25, 9, 4) * scale
    want = _brute_kth(bank, queries, 5, False)
    for det in (Det(k=5, normalize=False), Det(k=5, normalize=False, bank_chunk_size=16)):
        scores = det.fit(bank).score(queries)
        assert scores.dtype == torch.float32 and bool(torch.isfinite(scores).all()) and bool((scores > 0).all())
        torch.testing.assert_close(scores.double(), want, rtol=1e-5, atol=0)
    cov = bt.quality.embedding_coverage(bank, queries, k=5, normalize=False)
    torch.testing.assert_close(cov["distance"], want, rtol=1e-5, atol=0)
    assert np.isfinite(cov["cut"]) and cov["cut"] > 0


def test_ordinary_scores_unchanged_by_the_rescaling_path():
    """Rows in the ordinary range keep the direct normalisation: bits equal to a plain x / ||x||."""
    x = _data(64, 12, 5) * 3
    bank = Det(k=2).fit(x).bank_
    norms = (x * x).sum(1).sqrt()  # row sums of 12 values: compare with a tolerance of one rounding
    torch.testing.assert_close(bank, x / norms.unsqueeze(1), rtol=2e-7, atol=0)
    zero = Det(k=2).fit(torch.cat([x, torch.zeros(2, 12)])).bank_[-2:]
    assert torch.equal(zero, torch.zeros(2, 12))  # zero rows stay zero, no NaN
