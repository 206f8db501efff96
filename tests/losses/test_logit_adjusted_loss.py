"""LogitAdjustedLoss / logit_adjusted_loss: zero class counts, label smoothing, the focal variant.

torch's cross-entropy on the adjusted logits (every dtype, weights, ignored
targets, label smoothing), a class with zero count given the prior of half a
sample, bad counts refused, gradcheck and opcheck of softmax_loss with a bias
and smoothing.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf


def _prior_bias(counts, tau, C, ndim, device):
    n = torch.as_tensor(counts, dtype=torch.float64)
    n = torch.where(n == 0, torch.full_like(n, 0.5), n)
    return (tau * torch.log(n / n.sum())).to(device).view([1, C] + [1] * (ndim - 2))


COUNTS = [400, 0, 37, 5, 0]  # two classes absent from the training counts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("shape", [(17, 5), (3, 5, 4, 6)], ids=str)
def test_logit_adjusted_equals_torch_cross_entropy_on_adjusted_logits(device, dtype, reduction, label_smoothing, shape):
    C, tau, ignore = 5, 0.8, 255
    x = (torch.randn(shape, dtype=torch.float64) * 3).to(device=device, dtype=dtype)
    t = torch.randint(0, C, (shape[0],) + tuple(shape[2:]), device=device)
    t.view(-1)[::4] = ignore
    t.view(-1)[1::4] = 1  # targets of a zero-count class
    weight = (torch.rand(C, device=device) + 0.2).to(dtype)
    xo = x.clone().requires_grad_()
    got = btf.logit_adjusted_loss(
        xo, t, COUNTS, tau=tau, weight=weight, ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing
    )
    module = bt.nn.LogitAdjustedLoss(
        COUNTS, tau=tau, weight=weight, ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing
    )
    assert got.dtype == dtype
    torch.testing.assert_close(module.to(device)(x, t), got, rtol=0, atol=0)
    # the reference: torch's CrossEntropyLoss on logits + tau * log(prior), in float64
    xr = x.double().requires_grad_()
    ref_module = torch.nn.CrossEntropyLoss(
        weight=weight.double(), ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing
    )
    expected = ref_module(xr + _prior_bias(COUNTS, tau, C, x.dim(), device), t)
    assert torch.isfinite(expected).all()
    low = dtype in (torch.float16, torch.bfloat16)
    tol = (
        dict(rtol=2e-2, atol=2e-2)
        if low
        else dict(rtol=1e-5, atol=1e-6)
        if dtype == torch.float32
        else dict(rtol=1e-10, atol=1e-12)
    )
    torch.testing.assert_close(got.double(), expected, **tol)
    g = torch.rand_like(expected)
    (grad,) = torch.autograd.grad(got, xo, g.to(dtype))
    (grad_ref,) = torch.autograd.grad(expected, xr, g)
    assert grad.dtype == dtype
    torch.testing.assert_close(grad.double(), grad_ref, **tol)


def test_logit_adjusted_focal_with_label_smoothing(device):
    """gamma > 0: sum_c q_c w_c (1 - p_c)^gamma (-log p_c) of the adjusted logits, q smoothed."""
    C, eps, gamma = 5, 0.2, 2.0
    x = torch.randn(40, C, device=device, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, C, (40,), device=device)
    weight = torch.rand(C, device=device, dtype=torch.float64) + 0.3
    got = btf.logit_adjusted_loss(x, t, COUNTS, gamma=gamma, weight=weight, label_smoothing=eps)
    log_p = torch.log_softmax(x + _prior_bias(COUNTS, 1.0, C, 2, device), 1)
    q = F.one_hot(t, C).double() * (1 - eps) + eps / C
    per = (q * weight * (1 - log_p.exp()) ** gamma * -log_p).sum(1)
    expected = per.sum() / weight[t].sum()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(expected, x)[0], rtol=1e-9, atol=1e-12)


def test_zero_counts_get_half_a_sample():
    bias = btf.logit_adjustment([90, 10, 0])
    torch.testing.assert_close(bias, torch.log(torch.tensor([90, 10, 0.5], dtype=torch.float64) / 100.5))
    torch.testing.assert_close(
        btf.logit_adjustment(torch.tensor([3, 0, 0]), tau=2.0),
        2 * torch.log(torch.tensor([3, 0.5, 0.5], dtype=torch.float64) / 4),
    )
    # positive counts are used as given (fractional ones included): scale-free
    torch.testing.assert_close(btf.logit_adjustment([0.56, 0.03, 0.41]), btf.logit_adjustment([56, 3, 41]))
    # a target of an absent class: finite loss and gradient (was a ValueError; log(0) would be -inf)
    x = torch.randn(6, 3, requires_grad=True)
    loss = bt.nn.LogitAdjustedLoss([90, 10, 0])(x, torch.tensor([2, 2, 0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "counts, match",
    [
        ([10, -1, 3], r"class_counts must be finite and >= 0, got class_counts\[1\] = -1"),
        ([10, float("nan"), 3], r"class_counts\[1\] = nan"),
        ([10, float("inf"), 3], r"class_counts\[1\] = inf"),
        ([0, 0, 0], "class_counts are all zero"),
        ([], "non-empty"),
    ],
)
def test_bad_class_counts_still_refused(counts, match):
    with pytest.raises(ValueError, match=match):
        bt.nn.LogitAdjustedLoss(counts)
    with pytest.raises(ValueError, match=match):
        btf.logit_adjusted_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), counts)


def test_logit_adjusted_label_smoothing_checked():
    with pytest.raises(ValueError, match="label_smoothing must be a number in"):
        bt.nn.LogitAdjustedLoss([5, 3], label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be a number in"):
        btf.logit_adjusted_loss(torch.randn(4, 2), torch.tensor([0, 1, 1, 0]), [5, 3], label_smoothing=-0.1)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_softmax_loss_bias_and_smoothing_gradcheck_opcheck(device, reduction):
    x = torch.randn(6, 5, 3, device=device, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 5, (6, 3), device=device)
    t[0, 0] = -100
    w = torch.rand(5, device=device, dtype=torch.float64) + 0.5
    bias = btf.logit_adjustment(COUNTS, 0.7).to(device)
    op = torch.ops.balancedtorch.softmax_loss
    assert torch.autograd.gradcheck(lambda inp: op(inp, t, w, bias, -100, 0.1, 0.0, reduction, True)[0], (x,), atol=1e-7)
    assert torch.autograd.gradcheck(
        lambda inp: btf.logit_adjusted_loss(
            inp, t, COUNTS, tau=0.7, gamma=1.5, weight=w, reduction=["none", "mean", "sum"][reduction], label_smoothing=0.1
        ),
        (x,),
        atol=1e-7,
    )
    torch.library.opcheck(op.default, (x, t, w, bias, -100, 0.1, 0.0, reduction, True))
