"""Issue 17 §3/§5: segmentation mask fill, LogitAdjustedLoss zero counts and label smoothing,
dense SigmoidFocalLoss pos_weight, forward docstrings and reprs."""

import inspect

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.augment.functional as AF
import balancedtorch.functional as btf

# ----------------------------------------------------------------------------- 1. mask_fill


def _images_and_masks(device, dtype, B=6, H=24, W=28, classes=19):
    images = torch.randint(1, 256, (B, 3, H, W), dtype=torch.uint8, device=device)
    if dtype == torch.bool:
        masks = torch.rand(B, H, W, device=device) < 0.5
    else:
        masks = torch.randint(0, classes, (B, H, W), device=device).to(dtype)
    return images, masks


# zoomed out and rotated: every sample's warp reads outside the input somewhere
ZOOM_OUT = dict(rotation=(20, 40), scale=(0.5, 0.7), hflip=0.5)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64, torch.bool], ids=str)
def test_batch_augment_pads_masks_with_the_ignore_label_by_default(device, dtype):
    images, masks = _images_and_masks(device, dtype)
    gen = lambda: torch.Generator(device=device).manual_seed(11)  # noqa: E731
    _, warped = bt.augment.BatchAugment(**ZOOM_OUT)(images, masks=masks, generator=gen())
    # the same parameters with an explicit fill of 1 on an all-zero mask: where the warp padded
    probe = bt.augment.BatchAugment(**ZOOM_OUT, mask_fill=1)
    _, pad = probe(images, masks=torch.zeros_like(masks), generator=gen())
    padded = pad == 1
    assert padded.any() and (~padded).any()
    expected_fill = False if dtype == torch.bool else 255
    assert warped.dtype == dtype
    assert bool((warped[padded] == expected_fill).all())
    _, inside = probe(images, masks=masks, generator=gen())
    assert torch.equal(warped[~padded], inside[~padded])  # the labels themselves are untouched
    if dtype != torch.bool:
        assert int(warped[~padded].max()) < 19  # 255 only where padded


def test_default_mask_fill_is_ignored_by_the_loss(device):
    images, masks = _images_and_masks(device, torch.uint8, classes=5)
    x, m = bt.augment.BatchAugment(**ZOOM_OUT)(images, masks=masks, generator=torch.Generator(device=device).manual_seed(3))
    logits = torch.randn(x.shape[0], 5, *x.shape[2:], device=device)
    got = bt.nn.CrossEntropyLoss(ignore_index=255)(logits, m.long())
    keep = m != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], m[keep].long())
    torch.testing.assert_close(got, expected)


def test_explicit_mask_fill_in_range_is_written(device):
    images, masks = _images_and_masks(device, torch.int64)
    gen = lambda: torch.Generator(device=device).manual_seed(5)  # noqa: E731
    _, pad = bt.augment.BatchAugment(**ZOOM_OUT, mask_fill=1)(images, masks=torch.zeros_like(masks), generator=gen())
    for fill in (-100, 0, 2**40):
        _, warped = bt.augment.BatchAugment(**ZOOM_OUT, mask_fill=fill)(images, masks=masks, generator=gen())
        assert bool((warped[pad == 1] == fill).all())
    theta = AF.affine_matrix(torch.full((masks.shape[0],), 30.0), scale=0.5).float().to(device)
    for dtype, fill in (
        (torch.uint8, 0),
        (torch.uint8, 255),
        (torch.int32, -(2**31)),
        (torch.int32, 2**31 - 1),
        (torch.bool, True),
    ):
        _, warped = AF.affine_color(images, theta, masks=masks.to(dtype), mask_fill=fill)
        assert warped.dtype == dtype and bool((warped[:, 0, 0] == fill).all())  # the corners are padding


@pytest.mark.parametrize(
    "dtype, fill",
    [
        (torch.uint8, 256),
        (torch.uint8, -1),
        (torch.uint8, -100),
        (torch.int32, 2**31),
        (torch.int32, -(2**31) - 1),
        (torch.bool, 2),
        (torch.bool, -1),
    ],
    ids=str,
)
def test_mask_fill_outside_the_mask_dtype_raises(device, dtype, fill):
    images, masks = _images_and_masks(device, dtype)
    before = masks.clone()
    match = rf"mask_fill = {fill} is outside the range of the masks' dtype {dtype}"
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        bt.augment.BatchAugment(rotation=10, mask_fill=fill)(images, masks=masks)
    theta = AF.identity_matrix(masks.shape[0], device=device)
    with pytest.raises(ValueError, match="mask_fill"):
        AF.affine_color(images, theta, masks=masks, mask_fill=fill)
    assert torch.equal(masks, before)
    # the raw op refuses too (it used to wrap: 256 -> 0 labelled the padding as class 0)
    with pytest.raises(ValueError, match=r"affine_mask: fill must be a value of the masks' dtype"):
        torch.ops.balancedtorch.affine_mask(masks, theta, None, 8, 8, fill)


def test_affine_mask_fake_refuses_out_of_range_fill():
    from torch._subclasses.fake_tensor import FakeTensorMode

    masks = torch.randint(0, 5, (2, 6, 7), dtype=torch.uint8)
    theta = AF.identity_matrix(2)
    with FakeTensorMode() as mode:
        fm, ft = mode.from_tensor(masks), mode.from_tensor(theta)
        assert torch.ops.balancedtorch.affine_mask(fm, ft, None, 4, 5, 255).shape == (2, 4, 5)
        with pytest.raises(ValueError, match="fill must be a value of the masks' dtype"):
            torch.ops.balancedtorch.affine_mask(fm, ft, None, 4, 5, 256)
    torch.library.opcheck(torch.ops.balancedtorch.affine_mask.default, (masks, theta, None, 4, 5, 255))


@pytest.mark.parametrize("fill", [2.5, "255", float("nan"), 2**64, torch.tensor(1.0)], ids=repr)
def test_mask_fill_must_be_an_integer(fill):
    with pytest.raises(ValueError, match="mask_fill"):
        bt.augment.BatchAugment(mask_fill=fill)
    images, masks = _images_and_masks("cpu", torch.int64)
    with pytest.raises(ValueError, match="mask_fill"):
        AF.affine_color(images, AF.identity_matrix(masks.shape[0]), masks=masks, mask_fill=fill)


# ----------------------------------------------------------------------------- 2. LogitAdjustedLoss


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
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        bt.nn.LogitAdjustedLoss([5, 3], label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
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


# ----------------------------------------------------------------------------- 3. SigmoidFocalLoss on dense logits


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


# ----------------------------------------------------------------------------- 4. docstrings and repr

PUBLIC_MODULES = [
    bt.augment.BatchAugment,
    bt.nn.CrossEntropyLoss,
    bt.nn.FocalLoss,
    bt.nn.LogitAdjustedLoss,
    bt.nn.SigmoidFocalLoss,
]


@pytest.mark.parametrize(
    "obj", PUBLIC_MODULES + [AF.affine_color, btf.logit_adjusted_loss, btf.sigmoid_focal_loss], ids=lambda o: o.__qualname__
)
def test_public_call_has_a_real_docstring(obj):
    fn = obj.forward if isinstance(obj, type) else obj
    doc = inspect.getdoc(fn) or ""
    for section in ("Args:", "Returns:", "Example:", "Tensor["):
        assert section in doc, f"{obj.__qualname__}: docstring lacks {section!r}"
    params = [p for p in inspect.signature(fn).parameters if p not in ("self", "inputs", "targets")]
    for p in params:
        assert p in doc, f"{obj.__qualname__}: argument {p!r} undocumented"


REPR_CASES = [
    (
        bt.augment.BatchAugment,
        dict(
            hflip=0.5,
            vflip=0.25,
            rotation=30,
            translate=(0.1, 0.2),
            scale=(0.8, 1.2),
            shear=(1, 2, 3, 4),
            crop=32,
            brightness=0.4,
            contrast=0.3,
            saturation=0.2,
            hue=0.1,
            mean=(0.5, 0.4, 0.3),
            std=(0.2, 0.3, 0.4),
            out_dtype=torch.bfloat16,
            interpolation="nearest",
            p=0.7,
            same_on_batch=True,
            class_p={3: 1.0},
            crop_scale=(0.5, 1.0),
            crop_ratio=(0.9, 1.1),
            fill=None,
            mask_fill=254,
        ),
    ),
    (bt.nn.CrossEntropyLoss, dict(weight=torch.rand(3), ignore_index=255, reduction="sum", label_smoothing=0.1)),
    (bt.nn.FocalLoss, dict(gamma=1.5, weight=torch.rand(3), ignore_index=255, reduction="none", label_smoothing=0.1)),
    (
        bt.nn.LogitAdjustedLoss,
        dict(
            class_counts=[56, 0, 41],
            tau=0.5,
            gamma=1.0,
            weight=torch.rand(3),
            ignore_index=7,
            reduction="sum",
            label_smoothing=0.2,
        ),
    ),
    (bt.nn.SigmoidFocalLoss, dict(alpha=0.5, gamma=1.0, reduction="sum", pos_weight=torch.rand(3))),
]


@pytest.mark.parametrize("cls, kwargs", REPR_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_repr_shows_every_non_default_argument(cls, kwargs):
    text = repr(cls(**kwargs))
    for name in kwargs:
        assert f"{name}=" in text, f"{cls.__name__}: {name} missing from {text}"
    # each argument alone, too (nothing hides behind another)
    for name, value in kwargs.items():
        if name == "class_counts":
            continue
        base = {"class_counts": [5, 3, 1]} if cls is bt.nn.LogitAdjustedLoss else {}
        if cls is bt.augment.BatchAugment and name in ("crop_scale", "crop_ratio"):
            base = {"crop": 16}
        assert f"{name}=" in repr(cls(**base, **{name: value})), name


def test_repr_values():
    assert repr(bt.augment.BatchAugment()) == "BatchAugment()"
    text = repr(bt.augment.BatchAugment(rotation=30, shear=(1, 2, 3, 4), mask_fill=254, class_p={3: 1.0}))
    assert "rotation=(-30.0, 30.0)" in text and "shear=(1.0, 2.0, 3.0, 4.0)" in text
    assert "mask_fill=254" in text and "class_p={3: 1.0}" in text and "hflip" not in text
    assert "class_counts=[56, 0, 41]" in repr(bt.nn.LogitAdjustedLoss([56, 0, 41]))
    assert "class_counts=[20 classes]" in repr(bt.nn.LogitAdjustedLoss(list(range(1, 21))))
    # state stays as before: the counts are in repr only, logit_bias is the buffer
    assert set(bt.nn.LogitAdjustedLoss([56, 0, 41]).state_dict()) == {"logit_bias"}
