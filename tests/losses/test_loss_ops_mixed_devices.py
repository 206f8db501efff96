"""Regression tests of issue 16's kernel fixes: 64-bit image offsets in
affine_color, ignore_index inside [0, C) in class_counts, exact class-index
comparison in the segmentation losses, and fused-loss ops that never modify
the gradient tensor they returned."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import balancedtorch as bt
import balancedtorch.functional as btf
from balancedtorch.augment.functional import affine_color

# ---------------------------------------------------------------------------
# affine_color / affine_mask: images past 2^31 elements, sides past float32
# ---------------------------------------------------------------------------

BIG = 2**31 + 8  # one side wider than int32 (and than float32's exact integers)


def _shift_theta(dx: float, dy: float) -> torch.Tensor:
    """Identity warp moved by (dx, dy) input pixels: output (x, y) reads input
    (x - W_out / 2 + W / 2 + dx - 0.5 + 0.5, ...), see affine_color's frame."""
    return torch.tensor([[[1.0, 0.0, dx], [0.0, 1.0, dy]]])


def test_affine_color_rejects_sides_beyond_float32():
    # torch.empty: 2 GiB of address space, no page is touched
    images = torch.empty((1, 1, 1, BIG), dtype=torch.uint8)
    theta = _shift_theta(0.0, 0.0)
    with pytest.raises(ValueError, match=r"images height and width must be below 2\^24.*W = 2147483656"):
        affine_color(images, theta, size=(1, 8))
    # the raw ops check too (the AVX2 path used to gather from a wrapped-around offset)
    with pytest.raises(ValueError, match=r"affine_color: images height and width must be below 2\^24"):
        torch.ops.balancedtorch.affine_color(images, theta, None, None, None, None, 1, 8, 1, None, torch.float32)
    with pytest.raises(ValueError, match=r"affine_mask: masks height and width must be below 2\^24"):
        torch.ops.balancedtorch.affine_mask(images[:, 0], theta, None, 1, 8, 0)
    with pytest.raises(ValueError, match=r"size must be below 2\^24"):
        affine_color(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), theta, size=(2**24, 1))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_affine_color_plane_past_2_31_elements(device, dtype, interpolation):
    # H * W = 2,147,488,281 > 2^31: the corner pixels sit past every 32-bit offset.
    # Only the two patches read are written (and so paged in).
    H = W = 46341
    images = torch.empty((1, 1, H, W), dtype=dtype, device=device)
    high = 256 if dtype == torch.uint8 else 1
    corner = torch.randint(0, high, (16, 16)) if dtype == torch.uint8 else torch.rand(16, 16)
    origin = torch.randint(0, high, (16, 16)) if dtype == torch.uint8 else torch.rand(16, 16)
    images[0, 0, H - 16 :, W - 16 :] = corner.to(device=device, dtype=dtype)
    images[0, 0, :16, :16] = origin.to(device=device, dtype=dtype)
    scale = 255.0 if dtype == torch.uint8 else 1.0
    # output pixel (x, y) reads input (x + dx + W / 2 - 8, y + dy + H / 2 - 8)
    for (dx, dy), patch in (((W / 2 - 8, H / 2 - 8), corner), ((8 - W / 2, 8 - H / 2), origin)):
        out = affine_color(images, _shift_theta(dx, dy), size=(16, 16), interpolation=interpolation)
        assert out.shape == (1, 1, 16, 16)
        torch.testing.assert_close(out[0, 0].cpu(), patch.float() / scale, rtol=0, atol=1e-6)
        if dtype == torch.uint8:
            warped = torch.ops.balancedtorch.affine_mask(images[:, 0], _shift_theta(dx, dy).to(device), None, 16, 16, 0)
            assert torch.equal(warped[0].cpu(), patch.to(torch.uint8))


def test_affine_color_strides_past_2_31(device):
    # Channel and batch strides beyond int32 on small planes (the AVX2 gather
    # path on the CPU): as_strided views into 8 GiB of untouched address space.
    sC, sB = 2**31 + 64, 2**32 + 256
    base = torch.empty(sB + 2 * sC + 64, dtype=torch.uint8, device=device)
    images = base.as_strided((2, 3, 8, 8), (sB, sC, 8, 1))
    values = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    images.copy_(values.to(device))
    theta = _shift_theta(0.0, 0.0).expand(2, 2, 3).contiguous()
    for interpolation in ("nearest", "bilinear"):
        out = affine_color(images, theta, interpolation=interpolation)
        torch.testing.assert_close(out.cpu(), values.float() / 255.0, rtol=0, atol=1e-6)
    masks = base.as_strided((2, 8, 8), (sB, 8, 1))
    warped = torch.ops.balancedtorch.affine_mask(masks, theta, None, 8, 8, 0)
    assert torch.equal(warped.cpu(), values[:, 0])


# ---------------------------------------------------------------------------
# class_counts / class_weights with ignore_index inside [0, C)
# ---------------------------------------------------------------------------

LABEL_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


def _reference_counts(labels: torch.Tensor, num_classes: int, ignore_index) -> torch.Tensor:
    flat = labels.flatten().to(torch.int64)
    if ignore_index is not None:
        flat = flat[flat != ignore_index]
    return torch.bincount(flat, minlength=num_classes)


def test_class_counts_ignore_index_inside_classes(device):
    labels = torch.tensor([0, 1, 2, 0], device=device)
    assert bt.ops.class_counts(labels, 3, ignore_index=0).tolist() == [0, 1, 1]
    assert bt.ops.class_counts(labels, 3, ignore_index=2).tolist() == [2, 1, 0]
    # many blocks, every block on the range-checked fast path
    labels = torch.randint(0, 7, (300_000,), device=device)
    for ignore in (0, 3, 6):
        counts = bt.ops.class_counts(labels, 7, ignore_index=ignore)
        assert torch.equal(counts.cpu(), _reference_counts(labels.cpu(), 7, ignore))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(LABEL_DTYPES),
    # below and around the vector widths (4 to 32 lanes), the 4096-label
    # block and the 2 x 32768-label parallel grain
    n=st.one_of(st.integers(0, 80), st.sampled_from([4095, 4096, 4097, 65535, 65536, 65537, 140_001])),
    num_classes=st.sampled_from([1, 2, 3, 5, 31, 100, 127, 4097, 70_000]),
    ignore=st.one_of(st.none(), st.integers(-130, 130), st.sampled_from([255, -100, 4096, 69_999])),
    ignore_share=st.sampled_from([0.0, 0.01, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_class_counts_property(device, dtype, n, num_classes, ignore, ignore_share, seed):
    info = torch.iinfo(dtype)
    num_classes = min(num_classes, info.max + 1)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g, dtype=torch.int64)
    representable = ignore is not None and info.min <= ignore <= info.max
    if representable and n:
        mask = torch.rand(n, generator=g) < ignore_share
        labels[mask] = ignore
    labels = labels.to(dtype).to(device)
    counts = bt.ops.class_counts(labels, num_classes, ignore_index=ignore)
    assert counts.dtype == torch.int64 and counts.shape == (num_classes,)
    assert torch.equal(counts.cpu(), _reference_counts(labels.cpu(), num_classes, ignore))


def test_class_counts_refuses_unsigned_wide_dtypes():
    for dtype in (torch.uint16, torch.uint32, torch.uint64):
        labels = torch.tensor([0, 1, 2], dtype=dtype)
        with pytest.raises(TypeError, match="labels must be an integer tensor"):
            bt.ops.class_counts(labels, 3)


def test_class_weights_ignore_index_inside_classes(device):
    labels = torch.tensor([0, 1, 2, 0, 1, 1, 2, 0, 0], device=device)
    for scheme in ("inverse", "sqrt_inverse", "effective_number", "median_frequency"):
        for normalize in ("mean", "sum", None):
            w = bt.class_weights(labels, scheme=scheme, normalize=normalize, ignore_index=0)
            # class 0's labels are not counted: weight 0, the others as if class 0 did not exist
            rest = bt.class_weights(counts=[3, 2], scheme=scheme, normalize=normalize).to(device)
            assert w[0].item() == 0.0
            torch.testing.assert_close(w[1:], rest)
    # outside the classes: as before
    w = bt.class_weights(labels, ignore_index=255, normalize=None)
    torch.testing.assert_close(w, bt.class_weights(counts=[4, 3, 2], normalize=None).to(device))
    with pytest.raises(ValueError, match="ignore_index=0 is the only class"):
        bt.class_weights(torch.tensor([0, 0]), num_classes=1, ignore_index=0)


# ---------------------------------------------------------------------------
# Segmentation losses with more than 2^24 classes
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_segmentation_loss_classes_past_2_24(device, gamma):
    # (1, C, 2) logits, C = 2^24 + 2: the pixels' targets 2^24 + 1 and 2^24 are
    # one float32 value; classes 2^24 and 2^24 + 1 hold nearly all the
    # probability (the other 2^24 logits sit ~30 below), so taking one for the
    # other changes both pixels' losses completely.
    C = 2**24 + 2
    x = torch.randn(1, C, 2, device=device) * 0.5 - 30.0
    x[0, 2**24] = 6.0 + torch.rand(2, device=device)
    x[0, 2**24 + 1] = 3.0 + torch.rand(2, device=device)
    x.requires_grad_(True)
    t = torch.tensor([[2**24 + 1, 2**24]], device=device)
    loss = btf.focal_loss(x, t, gamma=gamma, reduction="none") if gamma else btf.cross_entropy(x, t, reduction="none")
    grad_out = torch.rand_like(loss)
    (grad,) = torch.autograd.grad(loss, x, grad_out)
    lp = F.log_softmax(x.detach().double(), dim=1)
    lp.requires_grad_(True)
    lpt = lp.gather(1, t.unsqueeze(1)).squeeze(1)
    ref = -((1 - lpt.exp()) ** gamma) * lpt
    (ref_grad,) = torch.autograd.grad(ref, lp, grad_out.double())
    # d/dx of f(log_softmax(x)): g - softmax * sum(g)
    p = lp.detach().exp()
    ref_grad_x = ref_grad - p * ref_grad.sum(1, keepdim=True)
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad_x, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------
# Raw fused-loss ops: the returned gradient tensor is never modified
# ---------------------------------------------------------------------------


def _raw_softmax_loss(x, t, reduction):
    return torch.ops.balancedtorch.softmax_loss(x, t, None, None, -100, 0.1, 0.0, reduction, True)


def _raw_sigmoid_focal_loss(x, t, reduction):
    return torch.ops.balancedtorch.sigmoid_focal_loss(x, t, None, 0.25, 2.0, reduction, True)


@pytest.mark.parametrize("op", ["softmax_loss", "sigmoid_focal_loss"])
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_raw_op_gradient_output_is_never_modified(device, op, reduction):
    x = torch.randn(64, 5, device=device, requires_grad=True)
    if op == "softmax_loss":
        t = torch.randint(0, 5, (64,), device=device)
        call = _raw_softmax_loss
    else:
        t = (torch.rand(64, 5, device=device) < 0.3).float()
        call = _raw_sigmoid_focal_loss
    loss, returned = call(x, t, reduction)
    kept = returned.clone()
    grad_out = torch.rand_like(loss) + 0.5  # != 1
    loss.backward(grad_out, retain_graph=True)
    assert torch.equal(returned, kept), "backward scaled the tensor the op returned"
    assert x.grad.data_ptr() != returned.data_ptr()
    scale = grad_out.unsqueeze(1) if (reduction == 0 and op == "softmax_loss") else grad_out
    torch.testing.assert_close(x.grad, kept * scale)
    # grad_output exactly 1 (loss.backward()) and a second backward: still untouched
    if reduction != 0:
        x.grad = None
        loss.backward()
        assert torch.equal(returned, kept)
        torch.testing.assert_close(x.grad, kept)
        returned.zero_()  # the caller's tensor is theirs to change: x.grad is not tied to it
        torch.testing.assert_close(x.grad, kept)


def test_public_losses_still_match_torch_after_scaled_backward(device):
    # the wrappers keep the in-place scaling of their private buffer
    x = torch.randn(32, 7, device=device, requires_grad=True)
    t = torch.randint(0, 7, (32,), device=device)
    ref = torch.autograd.grad(F.cross_entropy(x, t, label_smoothing=0.1), x)[0]
    (2.5 * btf.cross_entropy(x, t, label_smoothing=0.1)).backward()
    torch.testing.assert_close(x.grad, 2.5 * ref)
    y = (torch.rand(32, 7, device=device) < 0.2).float()
    x.grad = None
    (0.5 * btf.sigmoid_focal_loss(x, y, reduction="sum")).backward()
    xr = x.detach().clone().requires_grad_(True)
    p = torch.sigmoid(xr)
    ce = F.binary_cross_entropy_with_logits(xr, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    ((0.25 * y + 0.75 * (1 - y)) * ce * (1 - p_t) ** 2).sum().mul(0.5).backward()
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("weights, shares", [([1e308, 1e308, 1.0], [0.5, 0.5, 0.0]), ([1e-320, 1e-320, 3e-320], [0.2, 0.2, 0.6])])
def test_raw_alias_table_with_extreme_weight_sums(weights, shares):
    # the raw op (not only the Python wrapper) rescales: its sum overflowed to inf (uniform draws) or n / sum did
    w = torch.tensor(weights, dtype=torch.float64)
    kept = w.clone()
    prob, alias = torch.ops.balancedtorch.alias_table(w)
    assert torch.equal(w, kept)
    draws = torch.ops.balancedtorch.alias_sample(prob, alias, torch.tensor([7]), 200_000)
    freq = torch.bincount(draws, minlength=3).double() / draws.numel()
    torch.testing.assert_close(freq, torch.tensor(shares, dtype=torch.float64), atol=0.01, rtol=0)


def test_raw_sample_without_replacement_with_subnormal_weights():
    w = torch.tensor([1e-320, 1e-320, 3e-320], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    first = [
        int(torch.ops.balancedtorch.sample_without_replacement(w, torch.rand(3, dtype=torch.float64, generator=g), 1))
        for _ in range(3000)
    ]
    share = torch.bincount(torch.tensor(first), minlength=3).double() / 3000
    torch.testing.assert_close(share, torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64), atol=0.03, rtol=0)


_OPS = torch.ops.balancedtorch


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: _OPS.alias_sample(
                torch.zeros(3, dtype=torch.float64), torch.tensor([10**9, -5, 2**40]), torch.tensor([1]), 1000
            ),
            r"alias holds indices outside \[0, 3\)",
        ),
        (
            lambda: _OPS.alias_sample_packed(torch.tensor([-1, 2**62, 2**63 - 1, -(2**63)]), torch.tensor([1]), 1000),
            r"outside \[0, 4\)",
        ),
        (
            lambda: _OPS.alias_pack(torch.tensor([float("nan"), 0.5], dtype=torch.float64), torch.tensor([0, 1])),
            r"prob\[0\] = nan",
        ),
        (lambda: _OPS.alias_pack(torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([0, 7])), r"alias\[1\] = 7"),
        (
            lambda: _OPS.sample_without_replacement(
                torch.rand(3, dtype=torch.float64), torch.tensor([0.5, float("nan"), 0.1], dtype=torch.float64), 2
            ),
            r"uniforms\[1\] = nan",
        ),
        (
            lambda: _OPS.sample_without_replacement(
                torch.rand(3, dtype=torch.float64), torch.tensor([0.5, 1.5, 0.1], dtype=torch.float64), 2
            ),
            r"uniforms\[1\] = 1.5",
        ),
    ],
)
def test_raw_sampling_ops_refuse_hand_made_tables(call, match):
    # they returned indices outside the table (e.g. -5, 2**40) for tables not made by alias_table / alias_pack
    with pytest.raises(ValueError, match=match):
        call()


def test_raw_sampling_ops_refuse_mixed_devices():
    prob, alias = _OPS.alias_table(torch.rand(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="alias_sample: seed is on meta but prob is on cpu"):
        _OPS.alias_sample(prob, alias, torch.tensor([1], device="meta"), 10)
    with pytest.raises(ValueError, match="uniforms is on meta"):
        _OPS.sample_without_replacement(torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64, device="meta"), 2)


def test_losses_refuse_mixed_devices():
    # a meta target among CPU logits dispatched to the fake kernel, which returned uninitialised memory as the loss
    with pytest.raises(ValueError, match="softmax_loss: target is on meta but input is on cpu"):
        btf.cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match="softmax_loss: weight is on meta"):
        _OPS.softmax_loss(
            torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.ones(3, device="meta"), None, -100, 0.0, 0.0, 1, True
        )
    with pytest.raises(ValueError, match="sigmoid_focal_loss: target is on meta but input is on cpu"):
        btf.sigmoid_focal_loss(torch.randn(4, 3), torch.zeros(4, 3, device="meta"))


def _raw_loss_calls(dev_a, dev_b, ops=_OPS):
    """Raw loss ops with one argument on dev_b and the others on dev_a: (call, expected message)."""
    a = lambda *s, **k: torch.zeros(*s, device=dev_a, **k)  # noqa: E731
    b = lambda *s, **k: torch.zeros(*s, device=dev_b, **k)  # noqa: E731
    L = torch.long
    return [
        (
            lambda: ops.ohem_prob_weights(a(4) + 0.5, b(4, dtype=L), None, 255, 0.7, 1),
            f"ohem_prob_weights: target is on {dev_b} but probs is on {dev_a}",
        ),
        (
            lambda: ops.ohem_prob_weights(a(4, 3) + 0.5, a(4, 3, dtype=L), b(3) + 1, 255, 0.7, 1),
            f"ohem_prob_weights: weight is on {dev_b} but probs is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss_target_prob(a(4, 3), b(4, dtype=L), -100, False),
            f"target is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss(a(4, 3), b(4, dtype=L), None, None, -100, 0.0, 0.0, 1, False),
            f"softmax_loss: target is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss(a(4, 3), a(4, dtype=L), b(3) + 1, None, -100, 0.0, 0.0, 1, False),
            f"softmax_loss: weight is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.softmax_loss(a(4, 3), a(4, dtype=L), None, b(3), -100, 0.0, 0.0, 1, False),
            f"softmax_loss: logit_bias is on {dev_b} but input is on {dev_a}",
        ),
        (
            lambda: ops.sigmoid_focal_loss(a(4, 3), a(4, 3), b(3) + 1, 0.25, 2.0, 1, False),
            f"sigmoid_focal_loss: pos_weight is on {dev_b} but input is on {dev_a}",
        ),
    ]


@pytest.mark.parametrize("case", range(7))
def test_raw_loss_ops_report_mixed_devices_as_value_errors(case):
    """Like their other bad arguments (ValueError/TypeError), not a RuntimeError (meta: the fake kernels' check)."""
    call, match = _raw_loss_calls("cpu", "meta")[case]
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("case", range(7))
def test_cpu_kernels_report_mixed_devices_as_value_errors(case):
    """The C++ check itself (csrc/device_check.h), reached by redispatching to the CPU kernel past the fake."""
    cpu = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)

    class ToCPU:  # ops.<name>(...) runs the CPU kernel, whatever the arguments' devices
        def __getattr__(self, name):
            return lambda *args: getattr(_OPS, name).default.redispatch(cpu, *args)

    call, match = _raw_loss_calls("cpu", "meta", ToCPU())[case]
    with pytest.raises(ValueError, match=match):
        call()
    # knn's checks too
    with pytest.raises(ValueError, match="knn: groups is on meta but x is on cpu"):
        torch.ops.balancedtorch.knn.default.redispatch(
            cpu, torch.randn(5, 3), 1, torch.zeros(5, dtype=torch.long, device="meta"), None, None
        )


@pytest.mark.cuda
@pytest.mark.parametrize("case", range(7))
def test_raw_loss_ops_report_mixed_devices_as_value_errors_cuda(case):
    """CPU and CUDA tensors mixed: the kernels' own check (csrc/device_check.h) raises the ValueError."""
    call, match = _raw_loss_calls("cuda:0", "cpu")[case]
    with pytest.raises(ValueError, match=match):
        call()
