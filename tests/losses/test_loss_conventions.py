"""torch's and torchvision's conventions in the losses.

torchvision's sigmoid_focal_loss defaults and keyword names, nan for a mean
over zero summed target weight (with label smoothing too) as torch, gradients
for probability targets that require grad, and fake kernels in the real
kernels' memory format (channels-last in, channels-last out).
"""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf

# -- sigmoid_focal_loss: torchvision's default reduction and keyword names -----------------------------------------------


def test_sigmoid_focal_functional_defaults_as_torchvision(torchvision_ops):
    x, y = torch.randn(9, 4) * 2, (torch.rand(9, 4) < 0.4).float()
    assert inspect.signature(btf.sigmoid_focal_loss).parameters["reduction"].default == "none"
    got = btf.sigmoid_focal_loss(x, y)
    assert got.shape == x.shape
    torch.testing.assert_close(got, torchvision_ops.sigmoid_focal_loss(x, y))
    # torchvision's keyword names, as in a call written for torchvision
    by_name = btf.sigmoid_focal_loss(inputs=x, targets=y, alpha=0.5, gamma=1.0, reduction="sum")
    torch.testing.assert_close(
        by_name, torchvision_ops.sigmoid_focal_loss(inputs=x, targets=y, alpha=0.5, gamma=1.0, reduction="sum")
    )
    torch.testing.assert_close(btf.sigmoid_focal_loss(input=x, target=y), got)
    # the module keeps "mean"
    assert bt.nn.SigmoidFocalLoss().reduction == "mean"
    torch.testing.assert_close(bt.nn.SigmoidFocalLoss()(x, y), got.mean())
    with pytest.raises(TypeError, match="got both input and inputs"):
        btf.sigmoid_focal_loss(x, y, inputs=x)
    with pytest.raises(TypeError, match="missing the argument target"):
        btf.sigmoid_focal_loss(x)


# -- label smoothing with a zero summed target weight: nan, as torch -----------------------------------------------------


@pytest.mark.parametrize("case", ["zero_weight", "all_ignored"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.6])
def test_zero_target_weight_is_nan_as_torch(device, case, label_smoothing):
    x = torch.randn(6, 3, 5, device=device, requires_grad=True)
    if case == "zero_weight":
        target = torch.randint(0, 2, (6, 5), device=device)
        weight = torch.tensor([0.0, 0.0, 1.5], device=device)
    else:
        target = torch.full((6, 5), -100, device=device)
        weight = torch.rand(3, device=device) + 0.5
    expected = F.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing)
    got = btf.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing)
    assert math.isnan(expected.item()) and math.isnan(got.item())
    g_expected = torch.autograd.grad(expected, x)[0]
    g_got = torch.autograd.grad(got, x)[0]
    torch.testing.assert_close(g_got, g_expected, equal_nan=True)
    focal = btf.focal_loss(x, target, gamma=2.0, weight=weight, label_smoothing=label_smoothing)
    assert math.isnan(focal.item())
    # "sum" stays finite, as torch's
    s = btf.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing, reduction="sum")
    torch.testing.assert_close(s, F.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing, reduction="sum"))


# -- probability targets that require grad are differentiated as torch ---------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(7, 4), (3, 4, 5)])
def test_probability_target_grad_as_torch(device, reduction, label_smoothing, shape):
    x = torch.randn(shape, device=device, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(shape, device=device, dtype=torch.float64), dim=1).requires_grad_()
    weight = torch.rand(shape[1], device=device, dtype=torch.float64) + 0.3
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    expected = F.cross_entropy(x, q, **kwargs)
    got = btf.cross_entropy(x, q, **kwargs)
    grad_out = torch.randn_like(expected)
    gx_e, gq_e = torch.autograd.grad(expected, (x, q), grad_out)
    gx_g, gq_g = torch.autograd.grad(got, (x, q), grad_out)
    torch.testing.assert_close(gq_g, gq_e)
    torch.testing.assert_close(gx_g, gx_e)
    # only the target requires grad
    gq_only = torch.autograd.grad(btf.cross_entropy(x.detach(), q, **kwargs), q, grad_out)[0]
    torch.testing.assert_close(gq_only, gq_e)
    assert torch.autograd.gradcheck(lambda q_: btf.cross_entropy(x.detach(), q_, **kwargs), (q,))


def test_probability_target_grad_focal_logit_adjusted_sigmoid(torchvision_ops, device):
    x = torch.randn(6, 4, device=device, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(6, 4, device=device, dtype=torch.float64), dim=1).requires_grad_()
    w = torch.rand(4, device=device, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda a, b: btf.focal_loss(a, b, gamma=1.5, weight=w, label_smoothing=0.1), (x, q))
    assert torch.autograd.gradcheck(lambda a, b: btf.logit_adjusted_loss(a, b, [9, 5, 2, 1], gamma=0.5), (x, q))
    y = torch.rand(6, 4, device=device, dtype=torch.float64, requires_grad=True)
    for gamma in (0.0, 0.7, 2.0):
        for reduction in ("none", "mean", "sum"):
            assert torch.autograd.gradcheck(
                lambda a, b, gamma=gamma, reduction=reduction: btf.sigmoid_focal_loss(
                    a, b, gamma=gamma, reduction=reduction, pos_weight=w
                ),
                (x, y),
            )
    # torchvision's own function gives the same target gradient
    got = torch.autograd.grad(btf.sigmoid_focal_loss(x, y, reduction="sum"), y)[0]
    expected = torch.autograd.grad(torchvision_ops.sigmoid_focal_loss(x, y, reduction="sum"), y)[0]
    torch.testing.assert_close(got, expected)


def test_probability_target_grad_opcheck():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(5, 3, dtype=torch.float64), dim=1).requires_grad_()
    torch.library.opcheck(torch.ops.balancedtorch.softmax_loss.default, (x, q, None, None, -100, 0.1, 1.0, 1, True))
    y = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.balancedtorch.sigmoid_focal_loss.default, (x, y, None, 0.25, 2.0, 0, True))


# -- fake kernels return the real kernels' memory format -----------------------------------------------------------------


def _fake_outputs(op, args):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        return op(*fake_args)


def _assert_same_layout(real, fake):
    real = real if isinstance(real, (tuple, list)) else (real,)
    fake = fake if isinstance(fake, (tuple, list)) else (fake,)
    for r, f in zip(real, fake):
        assert r.shape == f.shape and r.dtype == f.dtype
        if r.numel() > 1:
            assert r.stride() == f.stride(), (r.stride(), f.stride())


@pytest.mark.parametrize("compute_grad", [True, False])
@pytest.mark.parametrize("reduction", [0, 1])
def test_loss_fakes_channels_last(torchvision_ops, device, compute_grad, reduction):
    x = torch.randn(2, 5, 4, 3, device=device).to(memory_format=torch.channels_last)
    t = torch.randint(0, 5, (2, 4, 3), device=device)
    q = torch.softmax(torch.randn(2, 5, 4, 3, device=device), dim=1).to(memory_format=torch.channels_last)
    for target in (t, q):
        args = (x, target, None, None, -100, 0.1, 0.0, reduction, compute_grad)
        op = torch.ops.balancedtorch.softmax_loss.default
        real = op(*args)
        if compute_grad:
            assert real[1].is_contiguous(memory_format=torch.channels_last)
        _assert_same_layout(real, _fake_outputs(op, args))
        torch.library.opcheck(op, args)
    y = torch.rand(2, 5, 4, 3, device=device).to(memory_format=torch.channels_last)
    for pos_weight in (None, torch.rand(5, device=device) + 0.5):  # (C,): the class dimension 1
        args = (x, y, pos_weight, 0.25, 2.0, reduction, compute_grad)
        op = torch.ops.balancedtorch.sigmoid_focal_loss.default
        real = op(*args)
        # channels-last in, channels-last out, as torchvision's elementwise loss
        if reduction == 0:
            assert real[0].is_contiguous(memory_format=torch.channels_last)
            expected = torchvision_ops.sigmoid_focal_loss(x, y, reduction="none") if pos_weight is None else None
            if expected is not None:
                assert expected.is_contiguous(memory_format=torch.channels_last)
                torch.testing.assert_close(real[0], expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(real[0], op(x.contiguous(), y.contiguous(), pos_weight, 0.25, 2.0, 0, False)[0])
        if compute_grad:
            assert real[1].is_contiguous(memory_format=torch.channels_last)
        _assert_same_layout(real, _fake_outputs(op, args))
        torch.library.opcheck(op, args)


def test_sigmoid_focal_channels_last_gradient(torchvision_ops, device):
    x = torch.randn(3, 4, 5, 6, device=device).to(memory_format=torch.channels_last).requires_grad_()
    y = (torch.rand(3, 4, 5, 6, device=device) < 0.3).float()
    xr = x.detach().clone().requires_grad_()
    btf.sigmoid_focal_loss(x, y, reduction="mean").backward()
    torchvision_ops.sigmoid_focal_loss(xr, y, reduction="mean").backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-8)
