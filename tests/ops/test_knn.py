"""bt.ops.knn against a brute-force float64 reference and scikit-learn."""

import numpy as np
import pytest
import torch

import balancedtorch as bt


def reference_knn(x, k, groups=None, ref=None, ref_groups=None):
    """Brute force in float64: all distances, masks, then (distance, index) order."""
    self = ref is None
    r = (x if self else ref).double()
    rows = max(1, (64 << 20) // (8 * max(1, r.shape[0] * r.shape[1])))  # bounded memory per chunk
    d = (
        torch.cat([((c[:, None, :] - r[None, :, :]) ** 2).sum(-1) for c in x.double().split(rows)])
        if x.shape[0]
        else x.new_zeros(0, r.shape[0], dtype=torch.float64)
    )
    if groups is not None:
        rg = groups if ref_groups is None else ref_groups
        d[groups[:, None] != rg[None, :]] = float("inf")
    if self:
        d.fill_diagonal_(float("inf"))
    idx = torch.arange(d.shape[1]).expand_as(d)
    order = torch.sort(d, dim=1, stable=True).indices  # stable: ties keep the lower index first
    return d.gather(1, order)[:, :k], idx.gather(1, order)[:, :k]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 5, 17])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("with_ref", [False, True])
@pytest.mark.parametrize("tile", [1 << 20, 256 << 20])
def test_matches_brute_force(device, dtype, k, grouped, with_ref, tile):
    g = torch.Generator().manual_seed(k + 10 * grouped + 100 * with_ref)
    x = torch.randn(333, 12, generator=g, dtype=torch.float64).to(dtype)
    ref = torch.randn(401, 12, generator=g, dtype=torch.float64).to(dtype) if with_ref else None
    groups = torch.randint(0, 3, (333,), generator=g) if grouped else None
    ref_groups = torch.randint(0, 3, (401,), generator=g) if grouped and with_ref else None
    mv = lambda t: None if t is None else t.to(device)  # noqa: E731
    d, i = bt.ops.knn(x.to(device), k, mv(groups), mv(ref), mv(ref_groups), max_tile_bytes=tile)
    rd, ri = reference_knn(x, k, groups, ref, ref_groups)
    assert d.dtype == dtype and i.dtype == torch.int64 and d.shape == (333, k)
    assert torch.equal(i.cpu(), ri)
    torch.testing.assert_close(d.cpu().double(), rd, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=1e-6)


def test_matches_sklearn_nearest_neighbors():
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32)).astype(np.float32)
    _, ref_idx = neighbors.NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)
    _, idx = bt.ops.knn(torch.from_numpy(x), 5)
    assert np.array_equal(idx.numpy(), ref_idx[:, 1:])


def test_ties_go_to_the_lower_index():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    d, i = bt.ops.knn(x, 5)
    assert i[0].tolist() == [1, 2, 3, 4, 5]  # five points at distance 1
    assert i[1].tolist()[:2] == [5, 0]  # the duplicate at distance 0 first


def test_half_precision_and_opcheck():
    x = torch.randn(100, 8)
    d, i = bt.ops.knn(x.half(), 3)
    rd, ri = reference_knn(x.half().float(), 3)
    assert d.dtype == torch.float16 and torch.equal(i, ri)
    torch.library.opcheck(torch.ops.balancedtorch.knn.default, (x, 3, None, None, None, 1 << 20))
    torch.library.opcheck(
        torch.ops.balancedtorch.knn.default, (x, 2, torch.randint(0, 2, (100,)), x[:50], torch.randint(0, 2, (50,)), 1 << 20)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k=0), "k must be >= 1, got 0"),
        (
            dict(k=10, groups=torch.tensor([0] * 5 + [1] * 15)),
            r"k=10 but a query has only 4 candidate neighbours in its group \(itself excluded\)",
        ),
        (dict(k=20), "k=20 but a query has only 19 candidate"),
        (dict(k=2, ref=torch.randn(5, 3)), r"ref must have shape \(M, D\) with D = 4"),
        (dict(k=2, ref_groups=torch.zeros(20, dtype=torch.long)), "ref_groups needs groups"),
        (dict(k=2, groups=torch.zeros(19, dtype=torch.long)), r"groups must have shape \(20,\)"),
        (dict(k=2, groups=torch.zeros(20)), "groups must be an integer tensor"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) if "integer tensor" not in match else pytest.raises(TypeError, match=match):
        bt.ops.knn(torch.randn(20, 4), **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["x", "ref"])
def test_non_finite_points(bad, where):
    x, r = torch.randn(10, 3), torch.randn(8, 3)
    (x if where == "x" else r)[4, 1] = bad
    with pytest.raises(ValueError, match=f"{where} contains NaN or inf"):
        bt.ops.knn(x, 2, ref=r)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", ["huge", "tiny"])
def test_extreme_magnitudes(dtype, magnitude):
    """Values whose squares overflow (or underflow) float32 still give the exact neighbours."""
    info = torch.finfo(dtype)
    s = info.max / 8 if magnitude == "huge" else info.tiny * 2**12
    if dtype == torch.float64 and magnitude == "huge":
        s = 2.0**500  # squared distances must stay finite in the float64 re-rank
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    base /= base.abs().max()
    x = (base * s).to(dtype)
    d, i = bt.ops.knn(x, 3)
    assert (d > 0).all() or magnitude == "tiny"
    _, want = reference_knn(x.double() / s, 3)
    torch.testing.assert_close(i, want, rtol=0, atol=0)


@pytest.mark.parametrize("D", [1, 7, 64, 67])
@pytest.mark.parametrize("mode", ["symmetric", "self, lists over budget", "ref"])
def test_fused_cpu_kernel_modes_match_sklearn(D, mode):
    """The CPU float32 kernel: symmetric self search, the non-symmetric fallback
    (per-thread lists over the memory budget) and a reference set; row and
    column counts that are not multiples of the 6 x 16 register block."""
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(D)
    n, k = (7001, 8) if mode == "self, lists over budget" else (1999, 5)
    x = rng.normal(size=(n, D)).astype(np.float32)
    ref = rng.normal(size=(1237, D)).astype(np.float32) if mode == "ref" else None
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        d, i = bt.ops.knn(torch.from_numpy(x), k, ref=None if ref is None else torch.from_numpy(ref), max_tile_bytes=1 << 20)
    finally:
        torch.set_num_threads(threads)
    fit = neighbors.NearestNeighbors(n_neighbors=k + (ref is None)).fit(x if ref is None else ref)
    rd, ri = fit.kneighbors(x)
    if ref is None:
        rd, ri = rd[:, 1:], ri[:, 1:]
    if D == 1:  # 1-D data has exact distance ties: compare distances only
        np.testing.assert_allclose(d.numpy(), rd**2, rtol=1e-5, atol=1e-6)
    else:
        assert np.array_equal(i.numpy(), ri)
        np.testing.assert_allclose(d.numpy(), rd**2, rtol=1e-4, atol=1e-5)


def _near_tie_sets():
    """Data sets whose distances tie or nearly tie at the k-th place."""
    gen = torch.Generator().manual_seed(7)
    sphere = torch.nn.functional.normalize(torch.randn(2000, 32, generator=gen, dtype=torch.float64), dim=1) * 100
    sphere = (sphere + torch.randn(2000, 32, generator=gen, dtype=torch.float64) * 1e-2).float()
    # queries at the centre see every sphere point within bfloat16 error of the k-th: their lists overflow
    centre_q = torch.cat([torch.randn(300, 32, generator=gen) * 1e-3, sphere[:300] + 0.5 * torch.randn(300, 32, generator=gen)])
    lattice = torch.randint(0, 4, (3000, 4), generator=gen).float()  # exact ties everywhere
    dups = torch.randn(300, 16, generator=gen).repeat(10, 1)  # every point 9 more times
    offset = torch.randn(2500, 24, generator=gen) * 0.01 + 1000.0  # far from the origin
    return {
        "sphere centre": (centre_q, sphere),
        "lattice": (lattice, None),
        "duplicates": (dups, None),
        "offset": (offset, None),
        "offset ref": (offset[:700], offset[700:]),
    }


@pytest.mark.slow
@pytest.mark.parametrize("bf16", ["1", "0"])
@pytest.mark.parametrize("k", [1, 5, 17])
@pytest.mark.parametrize("case", list(_near_tie_sets()))
def test_cpu_kernel_paths_exact_on_near_ties(monkeypatch, bf16, k, case):
    """Both CPU float32 candidate searches (bfloat16 with its proven error
    window and the float32 fallback, and plain float32) against the float64
    brute force where ties or near-ties sit at the k-th place."""
    monkeypatch.setenv("BALANCEDTORCH_KNN_BF16", bf16)
    x, ref = _near_tie_sets()[case]
    d, i = bt.ops.knn(x, k, ref=ref)
    rd, ri = reference_knn(x, k, ref=ref)
    assert torch.equal(i, ri)
    torch.testing.assert_close(d, rd.float(), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("bf16", ["1", "0"])
@pytest.mark.parametrize("D", [1, 2, 7, 64, 67])
@pytest.mark.parametrize("mode", ["symmetric", "self, lists over budget", "ref"])
def test_cpu_kernel_paths_exact_on_random_data(monkeypatch, bf16, D, mode):
    monkeypatch.setenv("BALANCEDTORCH_KNN_BF16", bf16)
    gen = torch.Generator().manual_seed(D)
    n, k = (3001, 14) if mode == "self, lists over budget" else (1501, 6)
    x = torch.randn(n, D, generator=gen) * 3 + torch.randn(D, generator=gen) * 10
    ref = torch.randn(1111, D, generator=gen) * 3 if mode == "ref" else None
    d, i = bt.ops.knn(x, k, ref=ref, max_tile_bytes=1 << 20)
    rd, ri = reference_knn(x, k, ref=ref)
    torch.testing.assert_close(d, rd.float(), rtol=1e-5, atol=1e-5)
    if D > 2:  # 1- and 2-D data has exact distance ties within float rounding of each other
        assert torch.equal(i, ri)


@pytest.mark.slow
@pytest.mark.parametrize("bf16", ["1", "0"])
def test_bank_search_across_packed_blocks(monkeypatch, bf16):
    """A query set against a larger bank at k=50 (NoveltyDetector's shape) with a
    1 MiB budget: the references are packed in several blocks and the query
    chunks are taken by both threads from a shared counter."""
    monkeypatch.setenv("BALANCEDTORCH_KNN_BF16", bf16)
    gen = torch.Generator().manual_seed(14)
    bank = torch.nn.functional.normalize(torch.randn(20000, 64, generator=gen), dim=1)
    q = torch.nn.functional.normalize(torch.randn(613, 64, generator=gen), dim=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        d, i = bt.ops.knn(q, 50, ref=bank, max_tile_bytes=1 << 20)
    finally:
        torch.set_num_threads(threads)
    rd, ri = reference_knn(q, 50, ref=bank)
    assert torch.equal(i, ri)
    torch.testing.assert_close(d, rd.float(), rtol=1e-6, atol=1e-6)
