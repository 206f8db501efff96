"""bt.ops.knn is exact on adversarial data: every search path against a float64 brute force, by distance.

Every path is run: the bfloat16 search (on CPUs with AVX512-BF16), the float32
fused kernel (BALANCEDTORCH_KNN_BF16=0) and the device-generic GEMM-tile path
that CUDA takes (BALANCEDTORCH_KNN_GENERIC=1 runs it on the CPU). The data is
built to break distance searches that rely on |q|^2 + |r|^2 - 2 q.r: large
offsets, tight clusters at several scales, duplicates, integer lattices at
large magnitudes, mixed scales per dimension.
"""

import os
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_knn import reference_knn

import balancedtorch as bt

PATHS = ["bf16", "f32", "generic"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    if request.param == "bf16" and not bt.build_info()["knn_bf16"]:
        pytest.skip("the bfloat16 search does not run on this CPU")
    monkeypatch.setenv("BALANCEDTORCH_KNN_BF16", "1" if request.param == "bf16" else "0")
    monkeypatch.setenv("BALANCEDTORCH_KNN_GENERIC", "1" if request.param == "generic" else "0")
    return request.param


def _set_path(name):
    os.environ["BALANCEDTORCH_KNN_BF16"] = "1" if name == "bf16" else "0"
    os.environ["BALANCEDTORCH_KNN_GENERIC"] = "1" if name == "generic" else "0"


def assert_exact(x, k, groups=None, ref=None, ref_groups=None, **kw):
    """Every row's neighbours are a k nearest by float64 distance (ties: any of the tied points)."""
    d, i = bt.ops.knn(x, k, groups, ref, ref_groups, **kw)
    rd, _ = reference_knn(x, k, groups, ref, ref_groups)
    self = ref is None
    r = (x if self else ref).double()
    assert i.shape == (x.shape[0], k) and bool((i >= 0).all())
    # the true distances of the returned points, in the order returned
    true = ((x.double().unsqueeze(1) - r[i]) ** 2).sum(-1)
    bad = ~torch.isclose(true, rd, rtol=1e-12, atol=0.0).all(1)
    assert not bool(bad.any()), (
        f"{int(bad.sum())} of {x.shape[0]} rows have a non-nearest neighbour, e.g. row {int(bad.nonzero()[0, 0])}"
    )
    # distinct, never the row itself, within its group
    assert bool((i.sort(1).values.diff(1) > 0).all()) if k > 1 else True
    if self:
        assert not bool((i == torch.arange(x.shape[0]).unsqueeze(1)).any())
    if groups is not None:
        rg = groups if ref_groups is None else ref_groups
        assert torch.equal(rg[i], groups.unsqueeze(1).expand_as(i))
    # the reported distance is the true one (in x's dtype)
    torch.testing.assert_close(d, true.to(d.dtype), rtol=1e-6 if d.dtype != torch.float64 else 1e-12, atol=0.0)
    return d, i


# -- the cases from the issue: each broke the float32 search -------------------


def test_offset_tight_data(path):
    g = torch.Generator().manual_seed(0)
    x = (1e4 + 0.01 * torch.randn(2000, 3, dtype=torch.float64, generator=g)).float()
    assert_exact(x, 5)


@pytest.mark.slow
def test_tight_clusters(path):
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(50, 32, generator=g)
    x = centres[torch.randint(0, 50, (2000,), generator=g)] + 1e-3 * torch.randn(2000, 32, generator=g)
    assert_exact(x, 5)
    assert_exact(x[:700], 3, ref=x[700:])


def test_integer_grid_at_large_magnitude_with_duplicates(path):
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 12, (1500, 3), generator=g).float() + 2e6
    d, _ = assert_exact(x, 5)
    assert bool((d[:, 0] == 0).any())  # duplicates exist and are found at distance 0


def test_tomek_links_match_imbalanced_learn_on_offset_data(path):
    under = pytest.importorskip("imblearn.under_sampling")
    rng = np.random.default_rng(3)
    X = (1e4 + 0.03 * rng.normal(size=(1200, 8))).astype(np.float32)
    y = (rng.random(1200) < 0.2).astype(np.int64)
    d, _ = bt.ops.knn(torch.from_numpy(X), 2)
    assert bool((d[:, 0] < d[:, 1]).all())  # no ties: the nearest neighbour is unambiguous
    ours = bt.resample.TomekLinks().fit(X, y)
    ours.fit_resample(X, y)
    theirs = under.TomekLinks()
    theirs.fit_resample(X, y)
    assert np.array_equal(ours.sample_indices_, theirs.sample_indices_)


# -- property-based: adversarial generators ------------------------------------


@st.composite
def adversarial(draw):
    kind = draw(st.sampled_from(["offset", "clusters", "duplicates", "lattice", "mixed_scales", "normal"]))
    n = draw(st.integers(2, 160))
    dim = draw(st.sampled_from([1, 2, 3, 7, 16, 33]))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    g = torch.Generator().manual_seed(seed)
    if kind == "offset":
        offset = 10.0 ** draw(st.integers(0, 7)) * draw(st.sampled_from([1.0, -1.0]))
        spread = 10.0 ** draw(st.integers(-4, 0))
        x = offset + spread * torch.randn(n, dim, dtype=torch.float64, generator=g)
    elif kind == "clusters":
        c = draw(st.integers(1, 12))
        scale = 10.0 ** draw(st.integers(-6, -1))
        centres = 10.0 ** draw(st.integers(0, 4)) * torch.randn(c, dim, dtype=torch.float64, generator=g)
        x = centres[torch.randint(0, c, (n,), generator=g)] + scale * torch.randn(n, dim, dtype=torch.float64, generator=g)
    elif kind == "duplicates":
        base = torch.randn(max(1, n // draw(st.integers(2, 10))), dim, dtype=torch.float64, generator=g)
        x = base[torch.randint(0, base.shape[0], (n,), generator=g)]
    elif kind == "lattice":
        big = 2.0 ** draw(st.integers(0, 22))
        x = torch.randint(0, draw(st.integers(2, 6)), (n, dim), generator=g).double() + big
    elif kind == "mixed_scales":
        scales = 10.0 ** (6 * torch.rand(dim, generator=g, dtype=torch.float64) - 3)
        x = torch.randn(n, dim, dtype=torch.float64, generator=g) * scales
    else:
        x = torch.randn(n, dim, dtype=torch.float64, generator=g)
    x = x.to(dtype)
    if not bool(torch.isfinite(x).all()):  # float16 overflow of large offsets
        x = torch.nan_to_num(x, posinf=1000.0, neginf=-1000.0)
    mode = draw(st.sampled_from(["self", "ref", "groups", "ref_groups"]))
    return x, mode, seed


def _run_case(x, mode, seed, k_hint):
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    if mode == "self":
        k = 1 + k_hint % (n - 1) if n > 1 else None
        if k is not None:
            assert_exact(x, k)
    elif mode == "ref":
        cut = max(1, n // 3)
        q, r = x[:cut], x[cut:] if n - cut >= 1 else x
        assert_exact(q, 1 + k_hint % r.shape[0], ref=r)
    else:
        groups = torch.randint(0, 3, (n,), generator=g)
        if mode == "groups":
            small = int(torch.bincount(groups, minlength=3)[torch.bincount(groups, minlength=3) > 0].min())
            if small >= 2:
                assert_exact(x, 1 + k_hint % (small - 1), groups=groups)
        else:
            r = x.flip(0)
            rg = torch.randint(0, 2, (n,), generator=g)
            groups = groups % 2
            if bool((torch.bincount(rg, minlength=2) > 0).all()):
                small = int(torch.bincount(rg, minlength=2).min())
                assert_exact(x, 1 + k_hint % small, groups=groups, ref=r, ref_groups=rg)


@pytest.mark.parametrize("path_name", PATHS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=adversarial(), k_hint=st.integers(0, 40))
def test_exact_on_adversarial_data(path_name, case, k_hint):
    if path_name == "bf16" and not bt.build_info()["knn_bf16"]:
        pytest.skip("the bfloat16 search does not run on this CPU")
    old = {v: os.environ.get(v) for v in ("BALANCEDTORCH_KNN_BF16", "BALANCEDTORCH_KNN_GENERIC")}
    _set_path(path_name)
    try:
        _run_case(*case, k_hint)
    finally:
        for v, val in old.items():
            os.environ.pop(v, None) if val is None else os.environ.__setitem__(v, val)


@pytest.mark.slow
def test_bounded_fuzz():
    """Random cases for a bounded time (BALANCEDTORCH_FUZZ_SECONDS, default 20), each on every path."""
    budget = float(os.environ.get("BALANCEDTORCH_FUZZ_SECONDS", "20"))
    rng = np.random.default_rng(int(time.time()) if os.environ.get("BALANCEDTORCH_FUZZ_RANDOM") else 12345)
    old = {v: os.environ.get(v) for v in ("BALANCEDTORCH_KNN_BF16", "BALANCEDTORCH_KNN_GENERIC")}
    paths = [p for p in PATHS if p != "bf16" or bt.build_info()["knn_bf16"]]
    start, cases = time.monotonic(), 0
    try:
        while time.monotonic() - start < budget:
            seed = int(rng.integers(2**31))
            g = torch.Generator().manual_seed(seed)
            n, dim = int(rng.integers(2, 400)), int(rng.choice([1, 2, 3, 5, 8, 17, 64]))
            offset = float(10.0 ** rng.integers(0, 6)) * (1 if rng.random() < 0.5 else 0)
            n_clusters = int(rng.integers(1, 30))
            scale = float(10.0 ** rng.integers(-5, 0))
            centres = torch.randn(n_clusters, dim, dtype=torch.float64, generator=g) * float(10.0 ** rng.integers(-1, 3))
            x = (
                offset
                + centres[torch.randint(0, n_clusters, (n,), generator=g)]
                + scale * torch.randn(n, dim, dtype=torch.float64, generator=g)
            )
            if rng.random() < 0.3:  # duplicates
                x = x[torch.randint(0, n, (n,), generator=g)]
            if rng.random() < 0.3:  # a lattice
                x = x.round()
            x = x.to(torch.float32 if rng.random() < 0.7 else torch.float64)
            for p in paths:
                _set_path(p)
                try:
                    _run_case(x, str(rng.choice(["self", "ref", "groups", "ref_groups"])), seed, int(rng.integers(0, 40)))
                except AssertionError as e:
                    raise AssertionError(f"fuzz case seed={seed} n={n} dim={dim} path={p}: {e}") from None
            cases += 1
    finally:
        for v, val in old.items():
            os.environ.pop(v, None) if val is None else os.environ.__setitem__(v, val)
    assert cases > 0


# -- small memory budgets: windows across query and reference chunks -------------


@pytest.mark.slow
@pytest.mark.parametrize("with_ref", [False, True])
def test_small_tile_budget(path, with_ref):
    g = torch.Generator().manual_seed(4)
    centres = 100 * torch.randn(20, 8, generator=g)
    x = centres[torch.randint(0, 20, (3000,), generator=g)] + 1e-2 * torch.randn(3000, 8, generator=g)
    if with_ref:
        assert_exact(x[:500], 4, ref=x[500:], max_tile_bytes=1 << 20)
    else:
        assert_exact(x, 4, max_tile_bytes=1 << 20)


# -- crashes, gradients, labels ----------------------------------------------------


def test_zero_features_raise():
    with pytest.raises(ValueError, match=r"knn: x must have at least 1 feature \(D >= 1\), got shape \[5, 0\]"):
        bt.ops.knn(torch.randn(5, 0), 2)
    with pytest.raises(ValueError, match="at least 1 feature"):
        torch.ops.balancedtorch.knn(torch.randn(5, 0), 2, None, None, None, 1 << 20)
    with pytest.raises(ValueError, match="at least 1 feature"):
        torch.ops.balancedtorch.knn(torch.randn(5, 0), 2, None, torch.randn(4, 0), None, 1 << 20)


@pytest.mark.parametrize("name", ["SMOTE", "TomekLinks", "NearMiss", "EditedNearestNeighbours", "ADASYN"])
def test_resamplers_refuse_zero_features(name):
    X, y = np.zeros((12, 0)), np.array([0] * 8 + [1] * 4)
    with pytest.raises(
        ValueError, match=rf"Found array with 0 feature\(s\) \(shape=\(12, 0\)\) while a minimum of 1 is required by {name}"
    ):
        getattr(bt.resample, name)().fit_resample(X, y)


def test_distances_are_differentiable():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(14, 3, dtype=torch.float64, generator=g, requires_grad=True)
    r = torch.randn(11, 3, dtype=torch.float64, generator=g, requires_grad=True)
    groups, rg = torch.tensor([0, 1] * 7), torch.tensor([0, 1] * 5 + [0])
    assert bt.ops.knn(x, 3)[0].grad_fn is not None
    torch.autograd.gradcheck(lambda a: bt.ops.knn(a, 3)[0], (x,))
    torch.autograd.gradcheck(lambda a, b: bt.ops.knn(a, 3, ref=b)[0], (x, r))
    torch.autograd.gradcheck(lambda a, b: bt.ops.knn(a, 2, groups, b, rg)[0], (x, r))
    # the gradient is that of the squared distances to the neighbours found
    xf = x.detach().float().requires_grad_()
    d, i = bt.ops.knn(xf, 4)
    w = torch.rand(d.shape, generator=g)
    (d * w).sum().backward()
    xd = xf.detach().double().requires_grad_()
    ((((xd.unsqueeze(1) - xd[i]) ** 2).sum(-1)) * w.double()).sum().backward()
    torch.testing.assert_close(xf.grad.double(), xd.grad, rtol=1e-5, atol=1e-5)
    assert not bt.ops.knn(x.detach(), 3)[1].requires_grad


def test_opcheck_with_grad():
    x = torch.randn(50, 6, requires_grad=True)
    torch.library.opcheck(torch.ops.balancedtorch.knn.default, (x, 3, None, None, None, 1 << 20))
    torch.library.opcheck(
        torch.ops.balancedtorch.knn.default, (x, 2, None, torch.randn(20, 6, requires_grad=True), None, 1 << 20)
    )


def test_sparse_group_values():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(60, 3, generator=g)
    groups = torch.tensor([0, 2**40, 7 * 2**33]).repeat(20)
    d, i = bt.ops.knn(x, 2, groups=groups)
    dense = torch.unique(groups, return_inverse=True)[1]
    d2, i2 = bt.ops.knn(x, 2, groups=dense)
    assert torch.equal(i, i2) and torch.equal(d, d2)
    with pytest.raises(ValueError, match=r"group 1099511627776\)"):
        bt.ops.knn(x[:22], 2, groups=torch.tensor([0] * 20 + [2**40] * 2))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.uint16, torch.uint32, torch.uint64])
def test_group_dtypes(dtype):
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(7))
    groups = torch.tensor([0, 1, 2]).repeat(10)
    want = bt.ops.knn(x, 2, groups=groups)
    got = bt.ops.knn(x, 2, groups=groups.to(dtype))
    assert torch.equal(want[1], got[1])


@pytest.mark.parametrize(
    "dtype, values",
    [
        (torch.float32, [1e-40, 0.0, 3e-40]),
        (torch.float64, [1e-310, 0.0, 3e-310]),
        (torch.float64, [1e-150, 0.0, 3e-150]),
        (torch.bfloat16, [1e-39, 0.0, 3e-39]),
    ],
)
def test_subnormal_and_tiny_points(dtype, values):
    # the search scales them up by a power of two beyond the dtype's range (2^132 for float32): it returned -1 / inf / nan
    x = torch.tensor(values, dtype=dtype).unsqueeze(1)
    d, i = bt.ops.knn(x, 1)
    assert i.squeeze(1).tolist() == [1, 0, 0]
    ref = ((x.double() - x.double()[i.squeeze(1)]) ** 2).squeeze(1)
    assert torch.equal(d.squeeze(1), ref.to(dtype))


def test_huge_float64_points_keep_small_distances():
    x = torch.tensor([[1e300, 0.0], [-1e300, 0.0], [1e300, 1.0]], dtype=torch.float64)
    d, i = bt.ops.knn(x, 1)
    assert i.squeeze(1).tolist() == [2, 0, 0]
    assert d.squeeze(1).tolist() == [1.0, float("inf"), 1.0]  # 4e600 is beyond float64, as for a float64 brute force


def test_resamplers_on_tiny_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) * 1e-40
    y = np.array([0] * 45 + [1] * 15)
    ours = bt.resample.EditedNearestNeighbours().fit_resample(X, y)
    theirs = bt.resample.EditedNearestNeighbours().fit_resample(X * 1e40, y)
    assert np.array_equal(ours[1], theirs[1])
    Xs, ys = bt.resample.SMOTE(random_state=0).fit_resample(X.astype(np.float32), y)
    assert np.isfinite(Xs).all() and (ys == 1).sum() == 45


@pytest.mark.parametrize("arg", ["groups", "ref", "ref_groups"])
def test_mixed_devices_are_refused(arg):
    x = torch.randn(5, 3)
    kw = {"groups": torch.zeros(5, dtype=torch.long), "ref": torch.randn(4, 3), "ref_groups": torch.zeros(4, dtype=torch.long)}
    kw[arg] = kw[arg].to("meta")
    with pytest.raises(ValueError, match=f"knn: {arg} is on meta but x is on cpu"):
        bt.ops.knn(x, 1, **kw)


@pytest.mark.parametrize("kind", ["lattice", "duplicates"])
@pytest.mark.parametrize("mode", ["self", "ref", "groups"])
def test_ties_go_to_the_lower_index_on_every_path(path, kind, mode):
    # integer data: every distance is exact in float64, so the order (ties to the lower index) must equal the reference
    g = torch.Generator().manual_seed(8)
    if kind == "lattice":
        x = torch.randint(0, 4, (300, 3), generator=g).float() + 1000.0
    else:
        x = torch.randint(-50, 50, (60, 5), generator=g).float()[torch.randint(0, 60, (300,), generator=g)]
    if mode == "self":
        args = dict()
    elif mode == "ref":
        x, args = x[:100], dict(ref=x[100:])
    else:
        args = dict(groups=torch.randint(0, 3, (300,), generator=g))
    d, i = bt.ops.knn(x, 7, **args)
    rd, ri = reference_knn(x, 7, **args)
    assert torch.equal(i, ri)
    assert torch.equal(d.double(), rd)


def test_distances_beyond_float64_still_give_valid_neighbours(path):
    # float64 squares overflow: the exact search admitted no inf distance and returned -1 indices
    D = 32
    r = torch.full((100, D), 2.0**509, dtype=torch.float64) - torch.arange(100.0, dtype=torch.float64)[:, None] * 2.0**470
    q = -torch.full((1, D), 2.0**509, dtype=torch.float64)
    d, i = bt.ops.knn(q, 3, ref=r)
    assert i.tolist() == [[99, 98, 97]]  # the true order (a float64 brute force sees three ties at inf)
    assert bool(torch.isinf(d).all())
    _, i_self = bt.ops.knn(torch.cat([q, r]), 3)
    assert i_self[0].tolist() == [100, 99, 98]


def test_group_value_int64_max():
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(9))
    groups = torch.tensor([0, 2**63 - 1]).repeat(10)
    _, i = bt.ops.knn(x, 2, groups=groups)
    assert torch.equal(groups[i], groups.unsqueeze(1).expand(-1, 2))
