"""SigmoidFocalLoss / sigmoid_focal_loss on dense logits (N, C, ...): pos_weight along the class dimension 1.

Against torchvision's formula with BCE-with-logits' pos_weight, in every
layout (contiguous, channels-last, strided), with soft targets and their
gradients, gradcheck and opcheck.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf


def dense_sigmoid_focal_reference(x, y, alpha, gamma, reduction, pos_weight):
    """torchvision's sigmoid_focal_loss formula, BCE-with-logits pos_weight along the class dimension 1."""
    x, y = x.double(), y.double()
    pw = pos_weight.double().view([1, -1] + [1] * (x.dim() - 2)) if x.dim() >= 2 else pos_weight.double()
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw)
    p = torch.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def _layout(t, layout):
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    if layout == "strided":  # a non-contiguous view
        return torch.cat([t, t], -1)[..., ::2]
    return t.contiguous()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (2, 3, 4, 3), (3, 4, 2, 3, 5), (1, 6, 4100, 2)], ids=str)
def test_sigmoid_focal_pos_weight_on_dense_logits(device, reduction, layout, shape):
    C = shape[1]
    x = _layout((torch.randn(shape, device=device) * 3), layout).requires_grad_()
    y = _layout(torch.rand(shape, device=device), layout)  # soft targets
    pw = torch.rand(C, device=device) * 5 + 0.1
    got = bt.nn.SigmoidFocalLoss(alpha=0.3, gamma=1.5, reduction=reduction, pos_weight=pw).to(device)(x, y)
    xr = x.detach().double().requires_grad_()
    expected = dense_sigmoid_focal_reference(xr, y, 0.3, 1.5, reduction, pw)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    if reduction == "none" and layout == "channels_last":
        assert got.stride() == x.stride()  # channels-last in, channels-last out
    g = torch.rand_like(expected)
    torch.testing.assert_close(
        torch.autograd.grad(got, x, g.float())[0].double(), torch.autograd.grad(expected, xr, g)[0], rtol=1e-4, atol=1e-6
    )
    fn = btf.sigmoid_focal_loss(x.detach(), y, alpha=0.3, gamma=1.5, reduction=reduction, pos_weight=pw)
    torch.testing.assert_close(fn, got.detach(), rtol=0, atol=0)


def test_sigmoid_focal_pos_weight_follows_dim_1_not_the_last_dim(device):
    """Regression: with W == C the weights used to broadcast over W, silently."""
    x = torch.randn(2, 3, 4, 3, device=device)
    y = (torch.rand(2, 3, 4, 3, device=device) < 0.4).float()
    pw = torch.tensor([1.0, 4.0, 9.0], device=device)
    got = btf.sigmoid_focal_loss(x, y, pos_weight=pw, reduction="sum")
    torch.testing.assert_close(got.double(), dense_sigmoid_focal_reference(x, y, 0.25, 2.0, "sum", pw), rtol=1e-5, atol=1e-6)
    last_dim = dense_sigmoid_focal_reference(x.movedim(-1, 1), y.movedim(-1, 1), 0.25, 2.0, "sum", pw)
    assert not torch.allclose(got.double(), last_dim, rtol=1e-3)
    # (N, C, H, W) with W != C works (it used to raise "must have shape (C,) = (W,)")
    z = torch.randn(2, 3, 4, 5, device=device)
    assert btf.sigmoid_focal_loss(z, torch.rand_like(z), pos_weight=pw).shape == z.shape


def test_sigmoid_focal_pos_weight_two_and_one_dim_as_bce(device):
    x = torch.randn(9, 4, device=device, dtype=torch.float64)
    y = torch.rand(9, 4, device=device, dtype=torch.float64)
    pw = torch.rand(4, device=device, dtype=torch.float64) + 0.5
    got = btf.sigmoid_focal_loss(x, y, alpha=-1, gamma=0.0, pos_weight=pw)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw))
    got1 = btf.sigmoid_focal_loss(x[0], y[0], alpha=-1, gamma=0.0, pos_weight=pw)
    torch.testing.assert_close(got1, F.binary_cross_entropy_with_logits(x[0], y[0], reduction="none", pos_weight=pw))


def test_sigmoid_focal_class_last_pos_weight_explains(device):
    x, y = torch.randn(2, 4, 5, 3, device=device), torch.rand(2, 4, 5, 3, device=device)
    with pytest.raises(ValueError, match=r"pos_weight must have shape \(C,\) = \(4,\).*movedim\(-1, 1\)"):
        btf.sigmoid_focal_loss(x, y, pos_weight=torch.ones(3, device=device))
    with pytest.raises(ValueError, match=r"pos_weight must have shape \(C,\) = \(4,\)"):
        btf.sigmoid_focal_loss(x, y, pos_weight=torch.ones(7, device=device))


def test_sigmoid_focal_dense_target_gradient(device):
    x = torch.randn(2, 3, 4, 5, device=device, dtype=torch.float64)
    y = torch.rand(2, 3, 4, 5, device=device, dtype=torch.float64, requires_grad=True)
    pw = torch.rand(3, device=device, dtype=torch.float64) + 0.5
    got = btf.sigmoid_focal_loss(x, y, pos_weight=pw, reduction="mean")
    yr = y.detach().clone().requires_grad_()
    expected = dense_sigmoid_focal_reference(x, yr, 0.25, 2.0, "mean", pw)
    torch.testing.assert_close(torch.autograd.grad(got, y)[0], torch.autograd.grad(expected, yr)[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_sigmoid_focal_dense_gradcheck_opcheck(device, layout, reduction):
    x = _layout(torch.randn(2, 3, 4, 5, device=device, dtype=torch.float64), layout).requires_grad_()
    y = _layout(torch.rand(2, 3, 4, 5, device=device, dtype=torch.float64), layout)
    pw = torch.rand(3, device=device, dtype=torch.float64) + 0.5
    op = torch.ops.balancedtorch.sigmoid_focal_loss
    assert torch.autograd.gradcheck(lambda inp: op(inp, y, pw, 0.25, 1.5, reduction, True)[0], (x,), atol=1e-7)
    torch.library.opcheck(op.default, (x, y, pw, 0.25, 1.5, reduction, True))
