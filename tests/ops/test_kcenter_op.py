"""torch.ops.balancedtorch.kcenter_update (the fused step of k-center greedy) against a float64
torch reference of the same summation order, bit for bit: random data, ties, float32/float64,
odd N and D, the picked (-inf) rows, bad inputs, opcheck."""

from __future__ import annotations

import math

import pytest
import torch

import balancedtorch  # noqa: F401  (loads the ops)

op = torch.ops.balancedtorch.kcenter_update
LANES = 4  # csrc/knn/kcenter.h: kKCenterLanes


def _reference(x, center, old):
    """The kernel's d in its documented order: LANES partial sums over the columns j = l (mod LANES),
    each in increasing j (zero-padded), then (s0 + s1) + (s2 + s3); torch.minimum; torch.argmax."""
    n, dim = x.shape
    diff = x.double() - center.double()
    diff = torch.nn.functional.pad(diff, (0, (-dim) % LANES))
    sq = (diff * diff).view(n, -1, LANES)
    acc = torch.zeros(n, LANES, dtype=torch.float64, device=x.device)
    for k in range(sq.shape[1]):
        acc = acc + sq[:, k]
    d = (acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])
    new = torch.minimum(old, d)
    return new, (int(torch.argmax(new)) if n else -1)


def _check(x, center, old):
    new, idx = op(x, center, old)
    ref, ref_idx = _reference(x, center, old)
    assert new.dtype == torch.float64 and new.shape == (x.shape[0],) and new.device == x.device
    assert idx.dtype == torch.long and idx.dim() == 0 and idx.device == x.device
    assert torch.equal(new, ref)
    assert int(idx) == ref_idx
    return new, int(idx)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, dim", [(1, 1), (7, 3), (101, 5), (1000, 64), (4099, 17), (33, 130)])
def test_matches_reference(device, dtype, n, dim):
    x = (torch.randn(n, dim, dtype=torch.float64) * 3 + 1).to(dtype).to(device)
    old = torch.rand(n, dtype=torch.float64, device=device) * 4 * dim
    old[::5] = math.inf
    center = torch.randn(dim, dtype=torch.float64, device=device)
    before = old.clone()
    _check(x, center, old)
    assert torch.equal(old, before)  # not written
    _check(x, x[n // 2], old)  # a center of x's dtype
    _check(x, x[n // 2].double(), torch.full((n,), math.inf, dtype=torch.float64, device=device))


def test_greedy_sequence_matches_reference(device):
    x = torch.randn(3001, 9, device=device)
    mind = torch.full((3001,), math.inf, dtype=torch.float64, device=device)
    pick = 17
    for _ in range(20):
        mind = mind.clone()
        mind[pick] = -math.inf
        mind, pick = _check(x, x[pick].double(), mind)


def test_ties_go_to_the_lowest_index(device):
    x = torch.zeros(9, 5, device=device)
    x[3] = x[5] = x[8] = 2.0  # three rows at the largest distance
    center = torch.zeros(5, dtype=torch.float64, device=device)
    _, idx = _check(x, center, torch.full((9,), math.inf, dtype=torch.float64, device=device))
    assert idx == 3
    # duplicate rows of random data: equal distances, the first copy
    base = torch.randn(4, 7, dtype=torch.float64)
    x = base[torch.tensor([0, 2, 1, 2, 3, 2])].to(device)
    x[1] = x[3] = x[5] = base[2] * 10 + 5
    _, idx = _check(x, base[0].to(device), torch.full((6,), math.inf, dtype=torch.float64, device=device))
    assert idx == 1
    # picked rows (-inf) lose to any real one; all equal: the first
    old = torch.full((9,), -math.inf, dtype=torch.float64, device=device)
    old[4:] = math.inf
    _, idx = _check(torch.zeros(9, 3, device=device), torch.zeros(3, device=device), old)
    assert idx == 4
    old = torch.full((4,), -math.inf, dtype=torch.float64, device=device)
    _, idx = _check(torch.zeros(4, 3, device=device), torch.zeros(3, device=device), old)
    assert idx == 0


def test_ties_across_threads(device):
    x = torch.ones(200_003, 3, device=device)
    x[150_000] = x[60_000] = x[199_999] = 5.0
    _, idx = _check(x, torch.zeros(3, device=device), torch.full((200_003,), math.inf, dtype=torch.float64, device=device))
    assert idx == 60_000


def test_empty_pool(device):
    new, idx = op(
        torch.zeros(0, 4, device=device), torch.zeros(4, device=device), torch.zeros(0, dtype=torch.float64, device=device)
    )
    assert new.shape == (0,) and int(idx) == -1


def test_non_contiguous_inputs(device):
    x = torch.randn(64, 12, device=device)[:, ::2]
    old = torch.full((128,), math.inf, dtype=torch.float64, device=device)[::2]
    center = torch.randn(12, dtype=torch.float64, device=device)[::2]
    _check(x, center, old)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (
            (torch.zeros(3, 2, dtype=torch.int64), torch.zeros(2), torch.zeros(3, dtype=torch.float64)),
            TypeError,
            "x must be float32",
        ),
        (
            (torch.zeros(3, 2, dtype=torch.float16), torch.zeros(2), torch.zeros(3, dtype=torch.float64)),
            TypeError,
            "x must be float32",
        ),
        ((torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.float64)), ValueError, r"x must have shape \(N, D\)"),
        ((torch.zeros(3, 2), torch.zeros(3), torch.zeros(3, dtype=torch.float64)), ValueError, r"center must have shape \(D,\)"),
        (
            (torch.zeros(3, 2), torch.zeros(1, 2), torch.zeros(3, dtype=torch.float64)),
            ValueError,
            r"center must have shape \(D,\)",
        ),
        (
            (torch.zeros(3, 2), torch.zeros(2, dtype=torch.int32), torch.zeros(3, dtype=torch.float64)),
            TypeError,
            "center must be float32",
        ),
        ((torch.zeros(3, 2), torch.zeros(2), torch.zeros(3)), TypeError, "min_dist must be float64"),
        (
            (torch.zeros(3, 2), torch.zeros(2), torch.zeros(4, dtype=torch.float64)),
            ValueError,
            r"min_dist must have shape \(N,\)",
        ),
    ],
)
def test_bad_input(args, exc, match):
    with pytest.raises(exc, match=f"kcenter_update: {match}"):
        op(*args)
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:  # the fake kernel: the same words
        fake = [mode.from_tensor(a) for a in args]
        with pytest.raises(exc, match=f"kcenter_update: {match}"):
            op(*fake)


@pytest.mark.cuda
def test_other_device():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="kcenter_update: center is on cuda"):
        op(x, torch.zeros(2, device="cuda"), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="kcenter_update: min_dist is on cuda"):
        op(x, torch.zeros(2), torch.zeros(3, dtype=torch.float64, device="cuda"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(device, dtype):
    x = torch.randn(37, 6, dtype=dtype, device=device)
    old = torch.rand(37, dtype=torch.float64, device=device) * 10
    torch.library.opcheck(op.default, (x, torch.randn(6, dtype=torch.float64, device=device), old))


@pytest.mark.cuda
def test_cuda_equals_cpu():
    x = torch.randn(50_001, 33)
    old = torch.rand(50_001, dtype=torch.float64) * 66
    c = torch.randn(33, dtype=torch.float64)
    new, idx = op(x, c, old)
    new_g, idx_g = op(x.cuda(), c.cuda(), old.cuda())
    assert torch.equal(new, new_g.cpu()) and int(idx) == int(idx_g)
