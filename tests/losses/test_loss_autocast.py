"""The losses under torch.autocast return float32, as F.cross_entropy (on autocast's float32 list).

Cross-entropy, focal, logit-adjusted and sigmoid focal losses (against torch
and torchvision), the raw operators called directly, the off switch, and
torch.compile.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf


def _autocast_dtypes(device):
    return [torch.bfloat16] if device.type == "cpu" else [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("soft", [False, True])
def test_autocast_cross_entropy_float32_as_torch(device, soft):
    C = 7
    lin = torch.nn.Linear(12, C).to(device)
    x = torch.randn(40, 12, device=device)
    weight = torch.rand(C, device=device) + 0.2
    if soft:
        target = torch.softmax(torch.randn(40, C, device=device), dim=1)  # float32 probabilities
    else:
        target = torch.randint(0, C, (40,), device=device)
        target[::7] = -100
    for dtype in _autocast_dtypes(device):
        kwargs = dict(weight=weight, label_smoothing=0.1)
        with torch.autocast(device.type, dtype=dtype):
            logits = lin(x)
            assert logits.dtype == dtype  # the model's output is in low precision
            expected = F.cross_entropy(logits, target, **kwargs)
            got = btf.cross_entropy(logits, target, **kwargs)
            module = bt.nn.CrossEntropyLoss(**kwargs)(logits, target)
        assert expected.dtype == torch.float32
        assert got.dtype == torch.float32 and module.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(module, expected, rtol=1e-5, atol=1e-6)
        # gradients reach the model through the cast, as torch's
        g_expected = torch.autograd.grad(expected, lin.weight, retain_graph=True)[0]
        g_got = torch.autograd.grad(got, lin.weight)[0]
        assert g_got.dtype == lin.weight.dtype
        torch.testing.assert_close(g_got, g_expected, rtol=2e-2, atol=1e-4)


def test_autocast_focal_and_logit_adjusted_compute_in_float32(device):
    x = (torch.randn(64, 5, 3, device=device) * 3).bfloat16()
    target = torch.randint(0, 5, (64, 3), device=device)
    counts = [50, 20, 9, 4, 1]
    for dtype in _autocast_dtypes(device):
        with torch.autocast(device.type, dtype=dtype):
            focal = btf.focal_loss(x, target, gamma=2.0, label_smoothing=0.05)
            adjusted = bt.nn.LogitAdjustedLoss(counts, tau=1.0, gamma=0.5)(x, target)
        assert focal.dtype == torch.float32 and adjusted.dtype == torch.float32
        # the same numbers as float32 logits without autocast
        torch.testing.assert_close(focal, btf.focal_loss(x.float(), target, gamma=2.0, label_smoothing=0.05))
        torch.testing.assert_close(adjusted, btf.logit_adjusted_loss(x.float(), target, counts, gamma=0.5))


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_autocast_sigmoid_focal_float32_as_torchvision(torchvision_ops, device, reduction):
    x = (torch.randn(30, 6, device=device) * 3).bfloat16().requires_grad_()
    y = (torch.rand(30, 6, device=device) < 0.3).float()
    for dtype in _autocast_dtypes(device):
        with torch.autocast(device.type, dtype=dtype):
            got = btf.sigmoid_focal_loss(x, y, reduction=reduction)
            module = bt.nn.SigmoidFocalLoss(reduction=reduction)(x, y)
        assert got.dtype == torch.float32 and module.dtype == torch.float32
        expected = torchvision_ops.sigmoid_focal_loss(x.detach().float(), y, reduction=reduction)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        got.sum().backward()
        assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()
        x.grad = None


def test_autocast_direct_op_calls_and_off_switch(device):
    x = torch.randn(10, 4, device=device).bfloat16()
    t = torch.randint(0, 4, (10,), device=device)
    y = torch.rand(10, 4, device=device).bfloat16()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss, _ = torch.ops.balancedtorch.softmax_loss(x, t, None, None, -100, 0.0, 0.0, 1, False)
        sloss, _ = torch.ops.balancedtorch.sigmoid_focal_loss(x, y, None, 0.25, 2.0, 0, False)
        x64 = x.double()  # float64 is left alone, as autocast does
        loss64, _ = torch.ops.balancedtorch.softmax_loss(x64, t, None, None, -100, 0.0, 0.0, 1, False)
    assert loss.dtype == torch.float32 and sloss.dtype == torch.float32 and loss64.dtype == torch.float64
    torch.testing.assert_close(loss, F.cross_entropy(x.float(), t))
    # outside autocast the input's dtype is kept
    assert btf.cross_entropy(x, t).dtype == torch.bfloat16
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=False):
        assert btf.sigmoid_focal_loss(x, y).dtype == torch.bfloat16


@pytest.mark.slow
def test_autocast_under_torch_compile():
    lin = torch.nn.Linear(8, 5)
    criterion = bt.nn.CrossEntropyLoss(label_smoothing=0.1)
    compiled = torch.compile(lambda x, t: criterion(lin(x), t), fullgraph=True)
    x, t = torch.randn(32, 8), torch.randint(0, 5, (32,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = compiled(x, t)
        expected = F.cross_entropy(lin(x), t, label_smoothing=0.1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
