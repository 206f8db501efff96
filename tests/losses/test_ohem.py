"""OHEM cross-entropy (bt.nn.OhemCrossEntropyLoss, bt.functional.ohem_cross_entropy, ops ohem_prob_weights, ohem_weights).

Reference: a plain PyTorch transcription of HRNet/OCR's OhemCrossEntropy
(softmax, gather, sort, threshold, mask, mean), in float64, except where we
document a difference: no kept pixel gives 0 (HRNet: IndexError or nan).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import CUDA_SKIP_REASON
from torch import Tensor

import balancedtorch as bt
import balancedtorch.functional as btf

_OP = torch.ops.balancedtorch.ohem_prob_weights


def ohem_reference(x, t, thresh=0.7, min_kept=100000, weight=None, ignore_index=255):
    """HRNet's rule, written as a user would (sort of all valid pixels), in float64."""
    x = x.double()
    t = t.long()
    w = None if weight is None else weight.double().to(x.device)
    pixel_losses = F.cross_entropy(x, t, weight=w, ignore_index=ignore_index, reduction="none").reshape(-1)
    mask = t.reshape(-1) != ignore_index
    safe = torch.where(t == ignore_index, 0, t)
    prob = F.softmax(x, dim=1).gather(1, safe.unsqueeze(1)).reshape(-1)
    prob, order = prob[mask].sort()
    if prob.numel() == 0:
        return x.sum() * 0.0  # HRNet raises IndexError here; we return 0
    min_value = prob[min(max(1, min_kept), prob.numel() - 1)]
    threshold = max(min_value, thresh)
    kept = pixel_losses[mask][order][prob < threshold]
    if kept.numel() == 0:
        return x.sum() * 0.0  # HRNet: mean of nothing, nan; we return 0
    return kept.mean()


def _reference_with_grad(x, t, **kw):
    xr = x.detach().double().requires_grad_()
    loss = ohem_reference(xr, t, **kw)
    (grad,) = torch.autograd.grad(loss, xr, allow_unused=True)
    return loss.detach(), (torch.zeros_like(xr) if grad is None else grad)


def _ours_with_grad(x, t, **kw):
    x = x.detach().clone().requires_grad_()
    loss = btf.ohem_cross_entropy(x, t, **kw)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def _spread_logits(shape, device, dtype=torch.float32, lo=-3.0, hi=3.0):
    """Logits (N, C, *) with every pixel's target probability distinct and well apart (robust in any dtype).

    Each pixel's target logit is a distinct value of linspace(lo, hi), the others are 0.
    """
    N, C = shape[0], shape[1]
    pixels = math.prod(shape) // C
    target = torch.randint(0, C, (N,) + tuple(shape[2:]))
    a = torch.linspace(lo, hi, pixels)[torch.randperm(pixels)].view(target.shape)
    x = torch.zeros(shape)
    x.scatter_(1, target.unsqueeze(1), a.unsqueeze(1))
    return x.to(device=device, dtype=dtype), target.to(device)


# ---------------------------------------------------------------------------- value and gradient


@pytest.mark.parametrize("scale", [0.001, 1.0, 30.0])
@pytest.mark.parametrize("thresh", [0.3, 0.7, 1.0])
@pytest.mark.parametrize("min_kept", [0, 1, 9, 10**6])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_reference_float64(device, scale, thresh, min_kept, weighted):
    x = (torch.randn(2, 5, 6, 7, dtype=torch.float64) * scale).to(device)
    t = torch.randint(0, 5, (2, 6, 7)).to(device)
    t[torch.rand(t.shape, device=device) < 0.2] = 255
    w = (torch.rand(5, dtype=torch.float64) * 2).to(device) if weighted else None
    kw = dict(thresh=thresh, min_kept=min_kept, weight=w)
    loss, grad = _ours_with_grad(x, t, **kw)
    ref, ref_grad = _reference_with_grad(x, t, **kw)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "dtype, tol",
    [(torch.float64, 1e-10), (torch.float32, 1e-5), (torch.float16, 3e-3), (torch.bfloat16, 2e-2)],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtypes_and_channels_last(device, dtype, tol, channels_last):
    x, t = _spread_logits((2, 5, 4, 6), device, dtype)
    t[0, 0, :3] = 255
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.rand(5, device=device) + 0.5
    # thresholds at least 0.006 away from every target probability of the grid, in every dtype
    for thresh, min_kept in [(0.65, 5), (0.3, 30), (0.5, 1000), (0.9, 0)]:
        kw = dict(thresh=thresh, min_kept=min_kept, weight=w)
        loss, grad = _ours_with_grad(x, t, **kw)
        ref, ref_grad = _reference_with_grad(x, t, **kw)
        assert loss.dtype == dtype and grad.dtype == dtype
        assert grad.is_contiguous(memory_format=torch.channels_last) == channels_last
        torch.testing.assert_close(loss.double(), ref, rtol=tol, atol=tol)
        torch.testing.assert_close(grad.double(), ref_grad, rtol=tol, atol=tol * ref_grad.abs().max().item())


def test_autocast_computes_in_float32(device):
    x, t = _spread_logits((2, 5, 4, 6), device, torch.bfloat16)
    x.requires_grad_()
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        loss = btf.ohem_cross_entropy(x, t, thresh=0.65, min_kept=10)
    loss.backward()
    ref, ref_grad = _reference_with_grad(x, t, thresh=0.65, min_kept=10)
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), ref_grad, rtol=1e-2, atol=1e-2 * ref_grad.abs().max().item())


def test_min_kept_binds_and_thresh_binds(device):
    """Both branches of max(thresh, s[k]) and the count of kept pixels, checked directly."""
    x, t = _spread_logits((1, 5, 10, 10), device, torch.float64)
    prob = F.softmax(x, 1).gather(1, t.unsqueeze(1)).reshape(-1)
    # thresh binds: exactly the pixels below thresh
    n_below = int((prob < 0.7).sum())
    coef = _OP(prob, t.reshape(-1), None, 255, 0.7, 3)
    assert int((coef > 0).sum()) == n_below and n_below > 3
    # min_kept binds: the min_kept pixels of lowest probability (s[k] itself excluded: strict <)
    coef = _OP(prob, t.reshape(-1), None, 255, 0.01, 40)
    kept = coef > 0
    assert int(kept.sum()) == 40
    assert prob[kept].max() < prob[~kept].min()
    torch.testing.assert_close(coef[kept], torch.full((40,), 1 / 40, dtype=torch.float64, device=device))


@pytest.mark.parametrize("target_dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_any_integer_target_dtype(device, target_dtype):
    x = torch.randn(3, 4, 5, 6, device=device)
    t = torch.randint(0, 4, (3, 5, 6), device=device)
    ignore = 255 if target_dtype == torch.uint8 else -1
    t[:, 0] = ignore
    kw = dict(thresh=0.6, min_kept=20, ignore_index=ignore)
    loss, grad = _ours_with_grad(x, t.to(target_dtype), **kw)
    ref, ref_grad = _reference_with_grad(x, t, **kw)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5, atol=1e-7)


def test_uint8_target_with_unrepresentable_ignore_index(device):
    x = torch.randn(2, 3, 4, 4, device=device, dtype=torch.float64)
    t = torch.randint(0, 3, (2, 4, 4), device=device)
    loss, _ = _ours_with_grad(x, t.to(torch.uint8), thresh=0.7, min_kept=5, ignore_index=-100)
    ref, _ = _reference_with_grad(x, t, thresh=0.7, min_kept=5, ignore_index=-100)
    torch.testing.assert_close(loss, ref)


@pytest.mark.parametrize("min_kept", [0, 3, 1000])
def test_two_dimensional_input(device, min_kept):
    x = torch.randn(50, 7, dtype=torch.float64, device=device) * 2
    t = torch.randint(0, 7, (50,), device=device)
    t[::5] = 255
    w = torch.rand(7, dtype=torch.float64, device=device)
    loss, grad = _ours_with_grad(x, t, thresh=0.4, min_kept=min_kept, weight=w)
    ref, ref_grad = _reference_with_grad(x, t, thresh=0.4, min_kept=min_kept, weight=w)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad, ref_grad)


def test_three_dimensional_volume(device):
    x = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, device=device)
    t = torch.randint(0, 3, (2, 4, 5, 6), device=device)
    for mk in (0, 17, 500):
        loss, grad = _ours_with_grad(x, t, thresh=0.5, min_kept=mk)
        ref, ref_grad = _reference_with_grad(x, t, thresh=0.5, min_kept=mk)
        torch.testing.assert_close(loss, ref)
        torch.testing.assert_close(grad, ref_grad)


# ---------------------------------------------------------------------------- edge cases


def test_all_pixels_ignored_is_zero_with_zero_grad(device):
    """HRNet raises IndexError here (pred[-1] of nothing); we document 0 and a zero gradient."""
    x = torch.randn(2, 4, 3, 3, device=device, requires_grad=True)
    t = torch.full((2, 3, 3), 255, device=device)
    loss = bt.nn.OhemCrossEntropyLoss(min_kept=10)(x, t)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_single_valid_pixel(device):
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, device=device)
    t = torch.full((1, 2, 2), 255, device=device)
    t[0, 1, 0] = 2
    p = F.softmax(x, 1)[0, 2, 1, 0].item()
    for thresh in (min(1.0, p + 0.05), max(0.01, p - 0.05)):
        loss, grad = _ours_with_grad(x, t, thresh=thresh, min_kept=5)
        ref, ref_grad = _reference_with_grad(x, t, thresh=thresh, min_kept=5)
        torch.testing.assert_close(loss, ref)
        torch.testing.assert_close(grad, ref_grad)
        # n_valid = 1: s[0] is the pixel itself, so it is kept iff p < thresh
        assert (loss.item() > 0) == (p < thresh)


def test_ties_in_probabilities(device):
    """Rows repeated exactly: the k-th value is shared by a tie group, and p < threshold drops the whole group."""
    base = torch.randn(6, 4, dtype=torch.float64)
    base_t = torch.randint(0, 4, (6,))
    rep = torch.randint(0, 6, (120,))
    x, t = base[rep].to(device), base_t[rep].to(device)
    for min_kept in (0, 10, 40, 80, 119, 500):
        for thresh in (0.05, 0.5, 1.0):
            loss, grad = _ours_with_grad(x, t, thresh=thresh, min_kept=min_kept)
            ref, ref_grad = _reference_with_grad(x, t, thresh=thresh, min_kept=min_kept)
            torch.testing.assert_close(loss, ref)
            torch.testing.assert_close(grad, ref_grad)


def test_tie_at_or_above_thresh_keeps_nothing(device):
    """All target probabilities equal (0.5) and above thresh: threshold = 0.5 and p < 0.5 keeps nothing.

    HRNet returns the mean of nothing (nan); ours is 0 with a zero gradient.
    """
    x = torch.zeros(10, 2, device=device, requires_grad=True)
    t = torch.randint(0, 2, (10,), device=device)
    loss = btf.ohem_cross_entropy(x, t, thresh=0.4, min_kept=3)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    # just above the tie: every pixel is kept, the plain cross-entropy
    loss = btf.ohem_cross_entropy(x, t, thresh=0.51, min_kept=3)
    torch.testing.assert_close(loss, F.cross_entropy(x, t))


def test_op_ties_exact_on_probabilities(device):
    """ohem_prob_weights on probabilities with exact ties: kept iff p < max(thresh, s[k]), s ascending."""
    values = torch.tensor([0.1, 0.5, 0.5, 0.5, 1.5, 2.0, 2.0, 3.0], dtype=torch.float32)
    for _ in range(5):
        perm = torch.randperm(values.numel())
        p = torch.exp(-values[perm]).to(device)
        t = torch.zeros(values.numel(), dtype=torch.long, device=device)
        for min_kept, thresh in [(0, 0.01), (1, 0.01), (2, 0.01), (3, 0.01), (5, 0.01), (7, 0.01), (100, 0.01), (3, 0.5)]:
            coef = _OP(p, t, None, 255, thresh, min_kept)
            s = p.sort().values
            threshold = torch.clamp(s[min(max(1, min_kept), p.numel() - 1)], min=thresh)
            keep = p < threshold
            expected = keep.float() / max(1, int(keep.sum()))
            torch.testing.assert_close(coef, expected, rtol=0, atol=0)


def test_nan_logits_give_nan(device):
    x = torch.randn(2, 3, 4, 4, device=device)
    x[0, :, 1, 1] = float("nan")
    t = torch.randint(0, 3, (2, 4, 4), device=device)
    assert torch.isnan(btf.ohem_cross_entropy(x, t, min_kept=5))


def test_empty_input(device):
    x = torch.randn(0, 3, 4, 4, device=device, requires_grad=True)
    loss = btf.ohem_cross_entropy(x, torch.zeros(0, 4, 4, dtype=torch.long, device=device))
    loss.backward()
    assert loss.item() == 0.0 and x.grad.shape == x.shape


def test_input_not_modified_and_deterministic(device):
    x = torch.randn(4, 19, 16, 16, device=device)
    t = torch.randint(0, 19, (4, 16, 16), device=device)
    t[:, :2] = 255
    x0, t0 = x.clone(), t.clone()
    crit = bt.nn.OhemCrossEntropyLoss(min_kept=300, weight=torch.rand(19, device=device) + 0.1)
    runs = [_ours_with_grad(x, t, thresh=0.7, min_kept=300, weight=crit.weight) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert torch.equal(x, x0) and torch.equal(t, t0)


def test_gradcheck_float64(device):
    x, t = _spread_logits((2, 3, 3, 4), device, torch.float64)
    x = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    w = torch.rand(3, dtype=torch.float64, device=device) + 0.5
    assert torch.autograd.gradcheck(lambda z: btf.ohem_cross_entropy(z, t, 0.6, 7, w), (x,))


def test_retain_graph_second_backward(device):
    x = torch.randn(2, 4, 5, 5, device=device, requires_grad=True)
    t = torch.randint(0, 4, (2, 5, 5), device=device)
    loss = btf.ohem_cross_entropy(x, t, min_kept=10) * 3.0
    loss.backward(retain_graph=True)
    g1 = x.grad.clone()
    x.grad = None
    loss.backward()
    torch.testing.assert_close(x.grad, g1)


def test_module_matches_functional_and_repr(device):
    w = torch.rand(5) + 0.5
    crit = bt.nn.OhemCrossEntropyLoss(thresh=0.6, min_kept=12, weight=w, ignore_index=-1).to(device)
    assert "thresh=0.6" in repr(crit) and "min_kept=12" in repr(crit) and "weight=[5 classes]" in repr(crit)
    x = torch.randn(2, 5, 4, 4, device=device)
    t = torch.randint(-1, 5, (2, 4, 4), device=device)
    expected = btf.ohem_cross_entropy(x, t, 0.6, 12, w.to(device), ignore_index=-1)
    assert torch.equal(crit(x, t), expected)
    assert "OhemCrossEntropyLoss" in bt.nn.__all__ and "ohem_cross_entropy" in btf.__all__


# ---------------------------------------------------------------------------- no host sync: compile, opcheck


def test_no_graph_breaks():
    """No .item(), nonzero or data-dependent shapes: dynamo captures forward in one graph."""
    crit = bt.nn.OhemCrossEntropyLoss(thresh=0.7, min_kept=20, weight=torch.rand(5) + 0.5)
    x = torch.randn(2, 5, 6, 6, requires_grad=True)
    t = torch.randint(0, 5, (2, 6, 6))
    explanation = torch._dynamo.explain(crit)(x, t)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    crit = bt.nn.OhemCrossEntropyLoss(thresh=0.7, min_kept=20, weight=torch.rand(5) + 0.5).to(device)
    compiled = torch.compile(crit, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 5, 6, 6, device=device, requires_grad=True)
    t = torch.randint(0, 5, (2, 6, 6), device=device)
    t[0, 0] = 255
    loss_c = compiled(x, t)
    loss_c.backward()
    grad_c = x.grad
    x.grad = None
    loss_e = crit(x, t)
    loss_e.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(grad_c, x.grad)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_ohem_weights(device, weighted, dtype):
    p = torch.rand(3, 5, 7, dtype=dtype, device=device)
    t = torch.randint(0, 4, (3, 5, 7), device=device)
    t[0] = 255
    w = torch.rand(4, dtype=dtype, device=device) if weighted else None
    for min_kept in (0, 10, 1000):
        torch.library.opcheck(_OP.default, (p, t, w, 255, 0.7, min_kept))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ohem_weights_from_losses_keeps_its_meaning(device, weighted, dtype):
    # the op's earlier form takes per-pixel losses CE and selects on p = exp(-CE) in their dtype
    losses = torch.rand(3, 5, 7, dtype=dtype, device=device) * 4
    losses.view(-1)[:10] = losses.view(-1)[10]  # ties
    t = torch.randint(0, 4, (3, 5, 7), device=device)
    t[0, 0] = 255
    w = torch.rand(4, dtype=dtype, device=device) + 0.5 if weighted else None
    before = losses.clone()
    for thresh, min_kept in ((0.7, 0), (0.7, 10), (0.05, 30), (1.0, 1000)):
        got = torch.ops.balancedtorch.ohem_weights(losses, t, w, 255, thresh, min_kept)
        want = _OP(torch.exp(-losses), t, w, 255, thresh, min_kept)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        # HRNet's rule written out on p = exp(-CE)
        p = torch.exp(-losses)[t != 255]
        s = p.sort().values
        k = min(max(1, min_kept), p.numel() - 1)
        threshold = max(torch.tensor(thresh, dtype=dtype).item(), s[k].item())
        keep = (t != 255) & (torch.exp(-losses) < threshold)
        coef = keep.to(dtype) * (w[t.clamp(max=3)] if weighted else 1.0) / keep.sum().clamp(min=1)
        torch.testing.assert_close(got, coef)
        torch.library.opcheck(torch.ops.balancedtorch.ohem_weights.default, (losses, t, w, 255, thresh, min_kept))
    assert torch.equal(losses, before)
    with pytest.raises(TypeError, match="ohem_weights: losses must be float32 or float64"):
        torch.ops.balancedtorch.ohem_weights(losses.half(), t, w.half() if weighted else None, 255, 0.7, 1)


@pytest.mark.cuda
def test_cuda_selection_never_synchronises():
    if CUDA_SKIP_REASON is not None:  # pragma: no cover
        pytest.skip(CUDA_SKIP_REASON)
    ce = torch.rand(8, 64, 64, device="cuda")  # target probabilities
    t = torch.randint(0, 19, (8, 64, 64), device="cuda")
    w = torch.rand(19, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        coef = _OP(ce, t, w, 255, 0.7, 1000)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref = _OP(ce.cpu(), t.cpu(), w.cpu(), 255, 0.7, 1000)
    torch.testing.assert_close(coef.cpu(), ref)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(thresh=0.0), ValueError, r"thresh must be a number in \(0, 1\], got 0.0"),
        (dict(thresh=1.5), ValueError, r"thresh .* got 1.5"),
        (dict(thresh=float("nan")), ValueError, r"thresh .* got nan"),
        (dict(thresh=True), TypeError, r"thresh .* got True"),
        (dict(min_kept=-1), ValueError, r"min_kept must be an int >= 0, got -1"),
        (dict(min_kept=2.5), TypeError, r"min_kept must be an int >= 0, got 2.5"),
        (dict(weight=torch.ones(4)), ValueError, r"weight must have one entry per class \(C = input.shape\[1\] = 5\), got 4"),
        (dict(weight=torch.tensor([1.0, -1, 1, 1, 1])), ValueError, r"weight\[1\] = -1"),
        (dict(weight=torch.tensor([1.0, 1, float("nan"), 1, 1])), ValueError, r"weight\[2\] = nan"),
        (dict(ignore_index=2.0), TypeError, r"ignore_index must be an int, got 2.0"),
        (dict(min_kept=2**70), ValueError, r"min_kept must fit in int64 .* got 1180591620717411303424"),
        (dict(min_kept=2**63), ValueError, r"min_kept must fit in int64"),
        (dict(ignore_index=2**70), ValueError, r"ignore_index must fit in int64 .* got 1180591620717411303424"),
        (dict(ignore_index=-(2**63) - 1), ValueError, r"ignore_index must fit in int64 .* got -9223372036854775809"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    x = torch.randn(2, 5, 3, 3)
    t = torch.randint(0, 5, (2, 3, 3))
    with pytest.raises(exc, match=match):
        btf.ohem_cross_entropy(x, t, **kwargs)
    module_kwargs = {k: v for k, v in kwargs.items() if k != "weight" or v.numel() == 5}
    if module_kwargs:
        with pytest.raises(exc, match=match):
            bt.nn.OhemCrossEntropyLoss(**module_kwargs)


@pytest.mark.parametrize("arg", ["input", "target", "weight"])
def test_sparse_tensors_are_refused_naming_the_argument(arg):
    args = {"input": torch.randn(4, 5), "target": torch.randint(0, 5, (4,)), "weight": torch.ones(5)}
    args[arg] = args[arg].to_sparse()
    match = rf"{arg} must be a dense tensor, got layout torch.sparse_coo: sparse tensors are not supported \(pass {arg}.to_dense\(\)\)"
    with pytest.raises(TypeError, match=match):
        btf.ohem_cross_entropy(args["input"], args["target"], weight=args["weight"])
    if arg == "weight":
        with pytest.raises(TypeError, match=match):
            bt.nn.OhemCrossEntropyLoss(weight=args["weight"])
    else:
        with pytest.raises(TypeError, match=match):
            bt.nn.OhemCrossEntropyLoss()(args["input"], args["target"])
    # the raw op's Python wrapper
    raw = {"probs": torch.rand(4), "target": torch.zeros(4, dtype=torch.long), "weight": torch.ones(5)}
    name = {"input": "probs"}.get(arg, arg)
    raw[name] = raw[name].to_sparse()
    with pytest.raises(TypeError, match=f"ohem_prob_weights: {name} must be a dense tensor"):
        bt.losses.ohem.ohem_prob_weights(raw["probs"], raw["target"], raw["weight"], 255, 0.7, 1)


def test_int64_limits_are_accepted():
    """The int64 extremes still work: min_kept = 2**63 - 1 behaves as any min_kept above the pixel count, and an
    ignore_index that no label equals ignores nothing."""
    x = torch.randn(2, 5, 3, 3)
    t = torch.randint(0, 5, (2, 3, 3))
    big = btf.ohem_cross_entropy(x, t, min_kept=10**6, ignore_index=-1)
    torch.testing.assert_close(btf.ohem_cross_entropy(x, t, min_kept=2**63 - 1, ignore_index=-(2**63)), big)
    torch.testing.assert_close(bt.nn.OhemCrossEntropyLoss(min_kept=2**63 - 1, ignore_index=2**63 - 1)(x, t), big)


@pytest.mark.parametrize(
    "x_shape, t_shape, t_dtype, match",
    [
        (
            (2, 5, 3, 3),
            (2, 3, 4),
            torch.long,
            r"target must have shape \(2, 3, 3\) for input of shape \(2, 5, 3, 3\), got \(2, 3, 4\)",
        ),
        ((2, 5, 3, 3), (2, 5, 3, 3), torch.long, r"target must have shape \(2, 3, 3\)"),
        ((5,), (), torch.long, r"input must have shape \(N, C\) or \(N, C, d1, ..., dk\), got \(5,\)"),
        ((2, 5, 3, 3), (2, 3, 3), torch.float32, r"target must hold integer class indices, got dtype torch.float32"),
        ((2, 5, 3, 3), (2, 3, 3), torch.bool, r"target must hold integer class indices, got dtype torch.bool"),
    ],
)
def test_bad_shapes_and_dtypes(x_shape, t_shape, t_dtype, match):
    x = torch.randn(x_shape)
    t = torch.randint(0, 2, t_shape).to(t_dtype)
    with pytest.raises(ValueError, match=match):
        btf.ohem_cross_entropy(x, t)


@pytest.mark.parametrize("bad", [5, -3, 254])
def test_target_out_of_range(device, bad):
    if device.type == "cuda":
        pytest.skip("CUDA: a device-side assertion, no host sync (tests/losses/test_loss_cuda_contracts.py)")
    x = torch.randn(2, 5, 3, 3, device=device)
    t = torch.randint(0, 5, (2, 3, 3), device=device)
    t[1, 2, 0] = bad
    with pytest.raises(ValueError, match=rf"target must hold class indices in \[0, C=5\).*got target {bad} at flat index 15"):
        btf.ohem_cross_entropy(x, t)


def test_op_rejects_out_of_range_target_with_weight():
    ce = torch.rand(10)
    t = torch.zeros(10, dtype=torch.long)
    t[3] = 7
    with pytest.raises(ValueError, match=r"ohem_prob_weights: target .* got target 7 at flat index 3"):
        _OP(ce, t, torch.ones(4), 255, 0.7, 2)
    with pytest.raises(ValueError, match=r"ohem_prob_weights: thresh must be in \[0, 1\], got -0.5"):
        _OP(ce, t, None, 255, -0.5, 2)
    with pytest.raises(TypeError, match=r"ohem_prob_weights: probs must be float32 or float64"):
        _OP(ce.half(), t, None, 255, 0.7, 2)


def test_op_names_the_first_out_of_range_target_across_chunks():
    # the CPU op counts in parallel chunks of 32768 pixels: the error still names the first
    ce = torch.rand(100_003)
    t = torch.zeros(100_003, dtype=torch.long)
    t[[40_000, 70_001, 99_999]] = torch.tensor([9, 7, -2])
    with pytest.raises(ValueError, match=r"got target 9 at flat index 40000"):
        _OP(ce, t, torch.ones(4), 255, 0.7, 2)


def _sorted_selection(p, t, weight, ignore_index, thresh, min_kept):
    """HRNet's selection by a full sort, in the probabilities' dtype: keep * w[t] / max(1, kept)."""
    valid = t != ignore_index
    pv = p[valid]
    if pv.numel() == 0:
        return torch.zeros_like(p)
    k = min(max(1, min_kept), pv.numel() - 1)
    s_k = torch.sort(pv).values[k]  # nan last
    cap = torch.tensor(thresh, dtype=p.dtype)
    threshold = s_k if torch.isnan(s_k) else torch.maximum(s_k, cap)
    keep = valid & ~(p >= threshold)
    w = torch.ones_like(p) if weight is None else weight[t.clamp(0, weight.numel() - 1)]
    inv = 1 / torch.tensor(max(int(keep.sum()), 1), dtype=p.dtype)
    return torch.where(keep, w * inv, torch.zeros_like(p))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("thresh,min_kept", [(0.7, 1), (0.7, 90_000), (0.0, 5000), (1.0, 10**7), (0.3, 0)])
@pytest.mark.parametrize("weighted,nan", [(False, False), (True, True)])
def test_op_equals_a_full_sort_over_many_chunks(dtype, thresh, min_kept, weighted, nan):
    # both ways to the threshold: thresh itself when more than k pixels are below it (counted in
    # parallel), else the k-th smallest by the radix select; ties, nan and ignored pixels
    g = torch.Generator().manual_seed(min_kept + int(thresh * 10))
    m = 100_003
    p = torch.rand(m, generator=g, dtype=torch.float64).pow(3).to(dtype)
    p[::5] = 0.5
    if nan:
        p[7::13] = float("nan")
    t = torch.randint(0, 6, (m,), generator=g)
    t[torch.rand(m, generator=g) < 0.1] = 255
    w = torch.rand(6, generator=g, dtype=torch.float64).to(dtype) + 0.5 if weighted else None
    got = _OP(p, t, w, 255, thresh, min_kept)
    want = _sorted_selection(p, t, w, 255, thresh, min_kept)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_integer_input_rejected():
    with pytest.raises(ValueError, match=r"input must be a floating tensor of logits, got dtype torch.int64"):
        btf.ohem_cross_entropy(torch.ones(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long))


# ---------------------------------------------------------------------------- ties at thresh, HRNet's own dtype


def hrnet_kept(score, target, thresh, min_kept, ignore_index=255):
    """Which pixels HRNet's OhemCrossEntropy keeps, decided as it decides: in the logits' dtype.

    Softmax probabilities of the targets, sorted; the order statistic at
    min(max(1, min_kept), n_valid - 1); Python's max of that 0-d tensor and the
    float thresh; a strict ``<`` of each probability against the result (a float
    is compared in the probabilities' dtype). Returns a bool mask over all pixels.
    """
    t = target.reshape(-1)
    valid = t != ignore_index
    safe = torch.where(target == ignore_index, torch.zeros_like(target), target)
    p_all = torch.softmax(score, dim=1).gather(1, safe.unsqueeze(1)).reshape(-1)
    p = p_all[valid]
    keep = torch.zeros_like(valid)
    if p.numel() == 0:
        return keep
    s = p.sort().values
    order_stat = s[min(max(1, min_kept), p.numel() - 1)]
    threshold = max(order_stat, thresh)
    keep[valid] = p < threshold
    return keep


def _our_coefficients(x, t, monkeypatch, **kw):
    """The per-pixel coefficients the public loss computes (captured at the ohem_weights op), and the loss."""
    import balancedtorch.losses.ohem as ohem_module

    seen = {}
    real = ohem_module.ohem_prob_weights

    def spy(*args):
        seen["coef"] = real(*args)
        return seen["coef"]

    monkeypatch.setattr(ohem_module, "ohem_prob_weights", spy)
    loss = btf.ohem_cross_entropy(x, t, **kw)
    monkeypatch.setattr(ohem_module, "ohem_prob_weights", real)
    return seen["coef"], loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("num_classes", [2, 3, 7, 19, 150])
@pytest.mark.parametrize("layout", ["nchw", "rows", "channels_last"])
def test_equal_logits_at_thresh_one_over_c_keep_nothing(device, dtype, num_classes, layout, monkeypatch):
    """Equal logits: softmax gives exactly 1/C, so thresh=1/C keeps no pixel (HRNet: p < 1/C is false).

    exp(-CE) rounds below 1/C in float32 and used to keep every pixel.
    """
    x = torch.zeros(2, num_classes, 3, 5, dtype=dtype, device=device)
    t = torch.randint(0, num_classes, (2, 3, 5), device=device)
    if layout == "rows":
        x, t = x.permute(0, 2, 3, 1).reshape(-1, num_classes), t.reshape(-1)
    elif layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    thresh = 1.0 / num_classes
    assert not hrnet_kept(x, t, thresh, 3).any()
    coef, loss = _our_coefficients(x.clone().requires_grad_(), t, monkeypatch, thresh=thresh, min_kept=3)
    assert not (coef > 0).any()
    assert loss.item() == 0.0
    # just above 1/C every pixel is kept: the plain mean cross-entropy
    coef, loss = _our_coefficients(x, t, monkeypatch, thresh=min(1.0, thresh * 1.01), min_kept=3)
    assert bool((coef > 0).all())
    torch.testing.assert_close(loss.double(), F.cross_entropy(x.double(), t.long()), rtol=2e-2, atol=1e-3)


def test_equal_logits_beside_hard_pixels_keep_only_the_hard_ones(device, monkeypatch):
    """thresh=1/C with a tie group at exactly 1/C and harder pixels below it: only the hard ones are kept."""
    C = 19
    x = torch.zeros(1, C, 8, 8, device=device)
    t = torch.zeros(1, 8, 8, dtype=torch.long, device=device)
    x[0, 1, :2] = 2.0  # rows 0-1: class 1 dominates, target 0 is hard (p < 1/C)
    coef, loss = _our_coefficients(x, t, monkeypatch, thresh=1 / C, min_kept=1)
    expected = hrnet_kept(x, t, 1 / C, 1)
    assert int(expected.sum()) == 16
    assert torch.equal(coef > 0, expected)
    ce = F.cross_entropy(x.double(), t, reduction="none").reshape(-1)
    torch.testing.assert_close(loss.double(), ce[expected].mean())


@pytest.mark.parametrize("num_classes", [5, 13, 40])
@pytest.mark.parametrize("layout", ["nchw", "rows", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_op_target_probability_does_not_depend_on_where_the_target_sits(device, num_classes, layout, dtype):
    """Equal logit columns whose targets are different classes of equal logit give bit-equal p_t.

    The denominator used to be the other classes' sum plus the target's term, so the
    rounding moved with the target: of two tied pixels OHEM kept one (HRNet keeps both
    or neither, deciding on softmax's p, which is the same for both).
    """
    g = torch.Generator().manual_seed(num_classes)
    column = torch.randn(num_classes, generator=g) * 3
    tied = torch.randperm(num_classes, generator=g)[:4]
    column[tied] = column.max() + 0.5  # four classes share the largest logit
    W = 6
    x = column.reshape(1, -1, 1, 1).expand(2, num_classes, 1, W).contiguous().to(dtype)
    t = tied[torch.arange(2 * W) % 4].reshape(2, 1, W)
    if layout == "rows":
        x, t = x.permute(0, 2, 3, 1).reshape(-1, num_classes), t.reshape(-1)
    elif layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x, t = x.to(device), t.to(device)
    _, _, prob = torch.ops.balancedtorch.softmax_loss_target_prob(x, t, 255, False)
    prob = prob.reshape(-1)
    assert torch.equal(prob, prob[:1].expand_as(prob)), prob
    ref = torch.softmax(x.double(), 1).gather(1, t.unsqueeze(1)).reshape(-1)
    torch.testing.assert_close(prob.double(), ref, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0)


def test_tied_pixels_with_different_targets_are_kept_together(monkeypatch):
    """Two pixels with the same logits, targets on two classes of equal logit: HRNet keeps neither here."""
    x = torch.tensor([2.5, -2.0, 1.0, -2.0, 2.5]).reshape(1, 5, 1, 1).expand(1, 5, 1, 2).contiguous()
    t = torch.tensor([[[0, 4]]])
    for min_kept in (0, 1):
        coef, loss = _our_coefficients(x, t, monkeypatch, thresh=0.2, min_kept=min_kept)
        expected = hrnet_kept(x, t, 0.2, min_kept)
        assert not expected.any()
        assert torch.equal(coef > 0, expected)
        assert loss.item() == 0.0


def test_op_gives_softmax_target_probabilities(device):
    """softmax_loss_target_prob: per-pixel CE as cross_entropy's, p_t as softmax's (exactly 1/C for equal logits)."""
    x = torch.randn(2, 5, 4, 3, device=device)
    x[0, :, 0, 0] = 1.25  # equal logits
    t = torch.randint(0, 5, (2, 4, 3), device=device)
    t[1, 2, 1] = 255
    ce, grad, prob = torch.ops.balancedtorch.softmax_loss_target_prob(x, t, 255, True)
    assert prob.shape == (2, 4, 3) and prob.dtype == torch.float32
    safe = torch.where(t == 255, 0, t)
    ref_p = torch.softmax(x, 1).gather(1, safe.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(prob[t != 255], ref_p[t != 255], rtol=1e-6, atol=1e-7)
    assert prob[1, 2, 1].item() == 0.0
    assert prob[0, 0, 0].item() == torch.tensor(1 / 5, dtype=torch.float32).item()
    torch.testing.assert_close(ce, F.cross_entropy(x, t, ignore_index=255, reduction="none"))
    torch.library.opcheck(torch.ops.balancedtorch.softmax_loss_target_prob.default, (x, t, 255, True))


try:  # hypothesis is a test dependency; the tie tests above run without it
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _VALUES = [-2.0, -0.5, 0.0, 1.0, 2.5]

    @st.composite
    def _tied_problems(draw):
        """Logits with many exact ties: all-equal rows (p = 1/C) and a few row patterns repeated at many pixels."""
        C = draw(st.integers(2, 6))
        N, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
        patterns = draw(st.lists(st.lists(st.sampled_from(_VALUES), min_size=C, max_size=C), min_size=1, max_size=3))
        kinds = draw(st.lists(st.integers(-len(_VALUES), len(patterns) - 1), min_size=N * H * W, max_size=N * H * W))
        targets = draw(st.lists(st.integers(0, C), min_size=N * H * W, max_size=N * H * W))  # C: ignored
        rows = [[_VALUES[-k - 1]] * C if k < 0 else patterns[k] for k in kinds]
        x = torch.tensor(rows, dtype=torch.float32).view(N, H, W, C).permute(0, 3, 1, 2).contiguous()
        t = torch.tensor(targets).view(N, H, W)
        t[t == C] = 255
        thresh = draw(st.sampled_from([1.0 / C, 0.3, 0.5, 0.7, 1.0]))
        min_kept = draw(st.sampled_from([0, 1, 2, 5, 10, 1000]))
        layout = draw(st.sampled_from(["nchw", "rows", "channels_last"]))
        return x, t, thresh, min_kept, layout

    def _well_separated(p: Tensor, thresh: float) -> bool:
        """No two valid probabilities (and no probability and thresh) closer than a few ulps without being equal:
        there another exp implementation could order them otherwise, and neither order is HRNet's more than the other."""
        values = torch.cat([p, torch.tensor([thresh], dtype=torch.float32)]).unique()
        gaps = values[1:] - values[:-1]
        return bool((gaps > 8 * torch.finfo(torch.float32).eps * values[1:].abs()).all())

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_tied_problems())
    def test_kept_set_is_hrnets_on_logits_with_ties(problem):
        x, t, thresh, min_kept, layout = problem
        if layout == "rows":
            x, t = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]), t.reshape(-1)
        elif layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        valid = t.reshape(-1) != 255
        safe = torch.where(t == 255, torch.zeros_like(t), t)
        p = torch.softmax(x, 1).gather(1, safe.unsqueeze(1)).reshape(-1)[valid]
        assume(_well_separated(p, thresh))
        expected = hrnet_kept(x, t, thresh, min_kept)
        with pytest.MonkeyPatch.context() as mp:
            coef, loss = _our_coefficients(x, t, mp, thresh=thresh, min_kept=min_kept)
        assert torch.equal(coef > 0, expected)
        ce = F.cross_entropy(x.double(), t.long(), ignore_index=255, reduction="none").reshape(-1)
        ref = ce[expected].mean() if expected.any() else torch.zeros((), dtype=torch.float64)
        torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)


def test_weight_on_another_device_is_named_with_both_devices():
    x, t = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    meta = torch.empty(3, device="meta")
    with pytest.raises(ValueError, match=r"weight must be on the device of input \(cpu\), got weight on meta"):
        btf.ohem_cross_entropy(x, t, weight=meta)
    criterion = bt.nn.OhemCrossEntropyLoss(weight=meta)  # deferred initialisation: no values to check yet
    with pytest.raises(ValueError, match=r"weight must be on the device of input \(cpu\), got weight on meta"):
        criterion(x, t)
