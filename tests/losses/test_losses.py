"""Fused losses against torch.nn.functional.cross_entropy, torchvision and pure-PyTorch references."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf

SHAPES = [(13, 7), (4, 5, 6), (2, 3, 4, 5), (7,)]  # (N, C), segmentation, unbatched (C,)


def make_case(shape, device, dtype=torch.float32, target_dtype=torch.int64, ignore_index=-100, soft=False, scale=3.0):
    """Random logits and targets for an input shape (class dim 1, or 0 when unbatched)."""
    x = (torch.randn(shape, dtype=torch.float64) * scale).to(device=device, dtype=dtype)
    unbatched = len(shape) == 1
    C = shape[0] if unbatched else shape[1]
    tshape = () if unbatched else (shape[0],) + tuple(shape[2:])
    if soft:
        t = torch.softmax(torch.randn(shape, dtype=torch.float64) * 2, dim=0 if unbatched else 1).to(device=device, dtype=dtype)
    else:
        t = torch.randint(0, C, tshape)
        if not unbatched and t.numel() > 2:
            t.view(-1)[::3] = ignore_index  # every third target ignored
        t = t.to(device=device, dtype=target_dtype)
    return x, t, C


def focal_reference(x, t, gamma=0.0, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, bias=None):
    """sum_c q_c w_c (1 - p_c)^gamma (-log p_c), torch's weighting and mean denominators, float64."""
    unbatched = x.dim() == 1
    if unbatched:
        x, t = x.unsqueeze(0), t.unsqueeze(0)
    x = x.double()
    C = x.shape[1]
    shape = [1, C] + [1] * (x.dim() - 2)
    if bias is not None:
        x = x + bias.double().view(shape)
    logp = torch.log_softmax(x, dim=1)
    w = torch.ones(C, dtype=torch.float64, device=x.device) if weight is None else weight.double()
    soft = t.is_floating_point()
    if soft:
        q = t.double() * (1 - label_smoothing) + label_smoothing / C
        valid = torch.ones(x.shape[:1] + x.shape[2:], dtype=torch.bool, device=x.device)
    else:
        tl = t.long()
        valid = tl != ignore_index
        safe = torch.where(valid, tl, torch.zeros_like(tl))
        onehot = F.one_hot(safe, C).movedim(-1, 1).double()
        q = onehot * (1 - label_smoothing) + label_smoothing / C
    a = q * w.view(shape)
    mod = (-torch.expm1(logp)).pow(gamma) if gamma else torch.ones_like(logp)
    per = (a * mod * -logp).sum(1) * valid
    if reduction == "none":
        return per.squeeze(0) if unbatched else per
    if reduction == "sum":
        return per.sum()
    if soft:
        return per.sum() / per.numel()
    return per.sum() / (w[safe] * valid).sum()


def torch_ce(x, t, **kw):
    return F.cross_entropy(x, t.long() if not t.is_floating_point() else t, **kw)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15, 1.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("target_dtype", [torch.int64, torch.int32, torch.uint8])
def test_cross_entropy_equals_torch(device, shape, weighted, label_smoothing, reduction, target_dtype):
    ignore_index = 255 if target_dtype == torch.uint8 else -100
    x, t, C = make_case(shape, device, target_dtype=target_dtype, ignore_index=ignore_index)
    weight = torch.rand(C, device=device) + 0.1 if weighted else None
    kw = dict(weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    xr = x.clone().requires_grad_()
    xo = x.clone().requires_grad_()
    expected = torch_ce(xr, t, **kw)
    got = btf.cross_entropy(xo, t, **kw)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(expected)
    (ge,) = torch.autograd.grad(expected, xr, g)
    (gg,) = torch.autograd.grad(got, xo, g)
    torch.testing.assert_close(gg, ge, rtol=1e-5, atol=1e-6)
    # FocalLoss(gamma=0) is the same loss
    xf = x.clone().requires_grad_()
    torch.testing.assert_close(btf.focal_loss(xf, t, gamma=0.0, **kw), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_probability_targets_equal_torch(device, shape, weighted, label_smoothing, reduction):
    x, t, C = make_case(shape, device, soft=True)
    weight = torch.rand(C, device=device) + 0.1 if weighted else None
    kw = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = F.cross_entropy(xr, t, **kw)
    got = bt.nn.CrossEntropyLoss(**kw).to(device)(xo, t)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(got, xo, g)[0], torch.autograd.grad(expected, xr, g)[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("num_classes", [1, 2, 31, 1000, 2051])
def test_many_and_few_classes(device, num_classes):
    # C > 1024 takes the block-per-row CUDA kernel; C = 1 is a degenerate softmax.
    x, t, _ = make_case((67, num_classes), device)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.rand(num_classes, device=device) + 0.5
    expected = F.cross_entropy(xr, t, weight=w, label_smoothing=0.05)
    got = btf.cross_entropy(xo, t, weight=w, label_smoothing=0.05)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    expected.backward()
    got.backward()
    torch.testing.assert_close(xo.grad, xr.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(29, 11), (3, 6, 5, 7)], ids=str)
def test_focal_loss_matches_reference(device, gamma, label_smoothing, soft, reduction, shape):
    x, t, C = make_case(shape, device, soft=soft)
    weight = torch.rand(C, device=device) + 0.1
    kw = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    xr = x.double().clone().requires_grad_()
    xo = x.clone().requires_grad_()
    expected = focal_reference(xr, t, gamma=gamma, **kw)
    got = bt.nn.FocalLoss(gamma=gamma, **kw).to(device)(xo, t)
    torch.testing.assert_close(got.double(), expected, rtol=2e-6, atol=1e-6)
    g = torch.randn_like(expected)
    torch.testing.assert_close(
        torch.autograd.grad(got, xo, g.float())[0].double(), torch.autograd.grad(expected, xr, g)[0], rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("fn", [btf.cross_entropy, lambda x, t, **kw: btf.focal_loss(x, t, gamma=2.0, **kw)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reduced_loss_does_not_depend_on_the_thread_count(fn, reduction):
    # the CPU kernels sum the per-sample losses in fixed blocks (at::sum splits by thread)
    g = torch.Generator().manual_seed(2)  # with at::sum: 1, 2 and 3 threads gave 3 different sums
    x = torch.randn(1, 3, 262175, 1, generator=g)
    t = torch.randint(0, 3, (1, 262175, 1), generator=g)
    before = torch.get_num_threads()
    try:
        got = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            got.append(fn(x, t, reduction=reduction))
    finally:
        torch.set_num_threads(before)
    assert got[0].item() == got[1].item() == got[2].item()
    want = fn(x.double(), t, reduction=reduction)
    torch.testing.assert_close(got[0].double(), want, rtol=2e-7, atol=0)


def test_focal_loss_definition():
    """loss_i = -w[y] (1 - p_y)^gamma log p_y; mean divides by the summed w[y] of kept targets."""
    x = torch.randn(50, 6, dtype=torch.float64)
    t = torch.randint(0, 6, (50,))
    t[:7] = -100
    w = torch.rand(6, dtype=torch.float64) + 0.2
    logp = torch.log_softmax(x, 1)
    keep = t != -100
    lp = logp[keep].gather(1, t[keep, None]).squeeze(1)
    per = -w[t[keep]] * (1 - lp.exp()) ** 2 * lp
    torch.testing.assert_close(btf.focal_loss(x, t, gamma=2.0, weight=w), per.sum() / w[t[keep]].sum())
    torch.testing.assert_close(btf.focal_loss(x, t, gamma=2.0, weight=w, reduction="sum"), per.sum())


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
def test_focal_gradient_finite_when_confident(device, gamma):
    # p_t -> 1: (1 - p)^(gamma - 1) alone would blow up for gamma < 1.
    x = torch.zeros(4, 5, device=device)
    x[:, 2] = torch.tensor([20.0, 40.0, 90.0, 200.0], device=device)
    t = torch.full((4,), 2, device=device)
    x.requires_grad_()
    loss = btf.focal_loss(x, t, gamma=gamma, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # analytic gradient in float64, with 1 - p_t formed without cancellation:
    # s = sum_{c != t} exp(z_c - z_t), p_t = 1 / (1 + s), 1 - p_t = s / (1 + s), log p_t = -log1p(s)
    xd = x.detach().double()
    others = torch.exp(xd - xd[:, 2:3])
    others[:, 2] = 0.0
    s = others.sum(1)
    omp, lp = s / (1 + s), -torch.log1p(s)
    ratio = torch.where(omp > 0, lp / omp, torch.full_like(lp, -1.0))  # -> -1 as p -> 1
    h = omp**gamma * (gamma * (1 - omp) * ratio - 1)
    p = torch.softmax(xd, 1)
    p[:, 2] = 1 - omp
    expected = h[:, None] * (F.one_hot(t, 5).double() - p)
    expected[:, 2] = h * omp
    assert torch.isfinite(expected).all()
    # float32 resolves 1 - p_t down to its smallest normal number; beyond that the gradient is ~0
    torch.testing.assert_close(x.grad.double(), expected, rtol=1e-4, atol=1e-37)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("shape", [(40, 4), (3, 4, 5, 6)], ids=str)
def test_logit_adjusted_loss(device, tau, gamma, shape):
    x, t, C = make_case(shape, device)
    counts = torch.tensor([500, 120, 30, 6])
    weight = torch.rand(C, device=device) + 0.1
    bias = tau * torch.log(counts.double() / counts.sum())
    xr, xo = x.double().clone().requires_grad_(), x.clone().requires_grad_()
    expected = focal_reference(xr, t, gamma=gamma, weight=weight, bias=bias.to(device))
    module = bt.nn.LogitAdjustedLoss(counts, tau=tau, gamma=gamma, weight=weight).to(device)
    got = module(xo, t)
    torch.testing.assert_close(got.double(), expected, rtol=2e-6, atol=1e-7)
    if gamma == 0.0:  # tau * log(prior) added to the logits, then plain weighted CE
        adjusted = x + bias.float().to(device).view([1, C] + [1] * (x.dim() - 2))
        torch.testing.assert_close(got, F.cross_entropy(adjusted, t, weight=weight), rtol=1e-6, atol=1e-6)
    got.backward()
    expected.backward()
    torch.testing.assert_close(xo.grad.double(), xr.grad, rtol=1e-4, atol=1e-7)
    assert "tau=" in repr(module)


def test_class_weights_feed_the_loss(device):
    labels = torch.multinomial(torch.tensor([0.56, 0.03, 0.41]), 2000, replacement=True)
    w = bt.class_weights(labels=labels, scheme="effective_number", beta=0.99).to(device)
    x = torch.randn(64, 3, device=device)
    t = labels[:64].to(device)
    torch.testing.assert_close(bt.nn.CrossEntropyLoss(weight=w)(x, t), F.cross_entropy(x, t, weight=w))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(33, 17), (2, 5, 9, 7)], ids=str)
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_half_precision_inputs(device, dtype, shape, gamma):
    x, t, C = make_case(shape, device, dtype=dtype)
    w = torch.rand(C, device=device) + 0.1
    xo = x.clone().requires_grad_()
    got = btf.focal_loss(xo, t, gamma=gamma, weight=w, label_smoothing=0.1)
    assert got.dtype == dtype
    xr = x.float().requires_grad_()  # the fp32 accumulation we promise
    expected = focal_reference(xr, t, gamma=gamma, weight=w, label_smoothing=0.1)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(got.float(), expected.float(), rtol=tol, atol=tol)
    got.backward()
    expected.backward()
    assert xo.grad.dtype == dtype
    torch.testing.assert_close(xo.grad.float(), xr.grad.float(), rtol=tol, atol=tol * 1e-2)
    none = btf.cross_entropy(x, t, reduction="none")
    assert none.dtype == dtype
    torch.testing.assert_close(none.float(), F.cross_entropy(x.float(), t, reduction="none"), rtol=tol, atol=tol)


GRADCHECK_CASES = [
    dict(gamma=0.0),
    dict(gamma=2.0, weighted=True),
    dict(gamma=0.5),
    dict(gamma=0.0, label_smoothing=0.2, weighted=True),
    dict(gamma=1.5, label_smoothing=0.2, weighted=True),
    dict(gamma=0.0, soft=True, weighted=True),
    dict(gamma=2.0, soft=True),
    dict(gamma=1.0, bias=True),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("shape", [(6, 5), (2, 4, 3, 2)], ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradcheck_float64(device, case, shape, reduction):
    x, t, C = make_case(shape, device, dtype=torch.float64, soft=case.get("soft", False), scale=1.5)
    weight = torch.rand(C, device=device, dtype=torch.float64) + 0.1 if case.get("weighted") else None
    bias = torch.randn(C, device=device, dtype=torch.float64) if case.get("bias") else None
    op = torch.ops.balancedtorch.softmax_loss
    code = {"none": 0, "mean": 1, "sum": 2}[reduction]

    def fn(inp):
        return op(inp, t, weight, bias, -100, case.get("label_smoothing", 0.0), case["gamma"], code, True)[0]

    assert torch.autograd.gradcheck(fn, (x.requires_grad_(),), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("gamma,label_smoothing,weighted,biased", [(0.0, 0.0, True, False), (2.0, 0.1, False, True)])
def test_opcheck_softmax_loss(device, soft, reduction, gamma, label_smoothing, weighted, biased):
    x, t, C = make_case((5, 4, 3), device, soft=soft)
    weight = torch.rand(C, device=device) if weighted else None
    bias = torch.randn(C, device=device) if biased else None
    args = (x.requires_grad_(), t, weight, bias, -100, label_smoothing, gamma, reduction, True)
    torch.library.opcheck(torch.ops.balancedtorch.softmax_loss.default, args)
    torch.library.opcheck(torch.ops.balancedtorch.softmax_loss.default, args[:-1] + (False,))


def test_all_targets_ignored(device):
    x = torch.randn(5, 4, device=device, requires_grad=True)
    t = torch.full((5,), -100, device=device)
    for smoothing, fn in itertools.product([0.0, 0.1], [btf.cross_entropy, btf.focal_loss]):
        mean = fn(x, t, label_smoothing=smoothing)
        assert torch.isnan(mean)
        (g,) = torch.autograd.grad(mean, x)
        assert torch.equal(g, torch.zeros_like(x))
        total = fn(x, t, reduction="sum", label_smoothing=smoothing)
        assert total.item() == 0.0
        assert torch.isnan(F.cross_entropy(x, t, label_smoothing=smoothing))  # same as torch


def test_zero_summed_weight_is_nan_like_torch(device):
    x = torch.randn(4, 3, device=device, requires_grad=True)
    t = torch.tensor([0, 1, 1, 0], device=device)
    w = torch.tensor([0.0, 0.0, 2.0], device=device)
    ours = btf.cross_entropy(x, t, weight=w)
    ref = F.cross_entropy(x, t, weight=w)
    assert torch.isnan(ours) and torch.isnan(ref)
    assert torch.isnan(torch.autograd.grad(ours, x)[0]).all() == torch.isnan(torch.autograd.grad(ref, x)[0]).all()


def test_empty_batch(device):
    x = torch.randn(0, 4, device=device, requires_grad=True)
    t = torch.zeros(0, dtype=torch.long, device=device)
    assert torch.isnan(btf.cross_entropy(x, t))
    assert btf.cross_entropy(x, t, reduction="sum").item() == 0.0
    assert btf.cross_entropy(x, t, reduction="none").shape == (0,)
    btf.cross_entropy(x, t, reduction="sum").backward()
    assert x.grad.shape == (0, 4)


def test_backward_scaling_retain_graph_and_no_aliasing(device):
    x = torch.randn(16, 9, device=device, requires_grad=True)
    t = torch.randint(0, 9, (16,), device=device)
    before = x.detach().clone()
    ref = torch.autograd.grad(F.cross_entropy(x, t), x)[0]
    loss = btf.cross_entropy(x, t)
    (3.0 * loss).backward(retain_graph=True)
    torch.testing.assert_close(x.grad, 3.0 * ref)
    loss.backward(retain_graph=True)  # buffer already handed over: recomputed
    torch.testing.assert_close(x.grad, 4.0 * ref)
    loss.backward()
    torch.testing.assert_close(x.grad, 5.0 * ref)
    assert torch.equal(x.detach(), before), "the loss modified its input"
    assert x.grad.data_ptr() != x.data_ptr()


def test_double_backward_raises(device):
    x = torch.randn(4, 3, device=device, requires_grad=True)
    t = torch.randint(0, 3, (4,), device=device)
    loss = btf.focal_loss(x, t)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_no_grad_and_non_contiguous(device):
    base = torch.randn(7, 12, device=device)
    x = base.t()  # (12, 7) non-contiguous, class dim strided
    t = torch.randint(0, 7, (12,), device=device)
    with torch.no_grad():
        torch.testing.assert_close(btf.cross_entropy(x, t), F.cross_entropy(x, t))
    channels_last = torch.randn(2, 3, 4, 5, device=device).to(memory_format=torch.channels_last)
    ts = torch.randint(0, 3, (2, 4, 5), device=device)
    torch.testing.assert_close(btf.cross_entropy(channels_last, ts), F.cross_entropy(channels_last, ts))


def test_non_finite_logits_like_torch(device):
    x = torch.randn(4, 5, device=device)
    x[0, 1] = float("-inf")  # masked class: fine
    x[1, 2] = float("nan")
    t = torch.tensor([0, 0, -100, 3], device=device)
    x[2, 0] = float("nan")  # in an ignored row: no effect
    ours = btf.cross_entropy(x, t, reduction="none")
    ref = F.cross_entropy(x, t, reduction="none")
    torch.testing.assert_close(ours, ref, equal_nan=True)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(weight=torch.ones(4)), ValueError, r"weight must have shape \(C,\) = \(5,\)"),
        (dict(weight=torch.tensor([1.0, -1, 1, 1, 1])), ValueError, r"weight must be finite and >= 0, got weight\[1\] = -1"),
        (dict(weight=torch.tensor([1.0, 1, float("nan"), 1, 1])), ValueError, r"weight\[2\] = nan"),
        (dict(weight=torch.ones(5, dtype=torch.long)), ValueError, "weight must be a floating tensor"),
        (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be a number in \[0, 1\], got 1.5"),
        (dict(label_smoothing=-0.1), ValueError, "label_smoothing must be a number in"),
        (dict(reduction="avg"), ValueError, "reduction must be 'none', 'mean' or 'sum', got 'avg'"),
        (dict(ignore_index=1.0), TypeError, "ignore_index must be an int"),
        (dict(ignore_index=2**70), ValueError, r"ignore_index must fit in int64 .* got 1180591620717411303424"),
        (dict(ignore_index=-(2**63) - 1), ValueError, r"ignore_index must fit in int64"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    x = torch.randn(3, 5)
    t = torch.tensor([0, 4, 2])
    with pytest.raises(error, match=match):
        btf.cross_entropy(x, t, **kwargs)
    if "ignore_index" in kwargs:  # every entry point that takes it
        with pytest.raises(error, match=match):
            btf.focal_loss(x, t, **kwargs)
        with pytest.raises(error, match=match):
            btf.logit_adjusted_loss(x, t, [5, 4, 3, 2, 1], **kwargs)
        for module in (bt.nn.CrossEntropyLoss, bt.nn.FocalLoss):
            with pytest.raises(error, match=match):
                module(**kwargs)


@pytest.mark.parametrize("arg", ["input", "target", "weight"])
@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_tensors_are_refused_naming_the_argument(arg, layout):
    """The kernels take dense tensors: a sparse one raised torch's NotImplementedError ("Could not run ... SparseCPU")."""
    sparse = (lambda t: t.to_sparse()) if layout == "coo" else (lambda t: t.to_sparse_csr() if t.dim() == 2 else t.to_sparse())
    x, t, w = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.ones(3)
    args = {"input": x, "target": t, "weight": w}
    args[arg] = sparse(args[arg])
    match = rf"{arg} must be a dense tensor, got layout torch.sparse_\w+: sparse tensors are not supported"
    for fn in (btf.cross_entropy, btf.focal_loss, lambda i, tg, weight: btf.logit_adjusted_loss(i, tg, [3, 2, 1], weight=weight)):
        with pytest.raises(TypeError, match=match):
            fn(args["input"], args["target"], weight=args["weight"])
    if arg == "weight":
        with pytest.raises(TypeError, match=match):
            bt.nn.CrossEntropyLoss(weight=args["weight"])
        with pytest.raises(TypeError, match="pos_weight must be a dense tensor"):
            btf.sigmoid_focal_loss(x, torch.ones(4, 3), pos_weight=sparse(w))
    else:
        with pytest.raises(TypeError, match=match):
            btf.sigmoid_focal_loss(*(sparse(v) if k == arg else v for k, v in (("input", x), ("target", torch.ones(4, 3)))))


def test_int64_extreme_ignore_index_is_accepted():
    x = torch.randn(3, 5)
    t = torch.tensor([0, 4, 2])
    for ignore in (2**63 - 1, -(2**63)):
        torch.testing.assert_close(btf.cross_entropy(x, t, ignore_index=ignore), F.cross_entropy(x, t))


@pytest.mark.parametrize("ignore", [2**32 + 1, -(2**32) + 2, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_segmentation_ignore_index_compared_on_all_64_bits(ignore, weighted):
    # full tiles of 32 pixels read their int64 targets eight at a time: an
    # ignore_index whose low 32 bits are a class (1, 2) ignores only itself
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 8, 40, generator=g, dtype=torch.float32)
    t = torch.randint(0, 4, (2, 8, 40), generator=g)
    t[torch.rand(t.shape, generator=g) < 0.3] = ignore
    w = torch.rand(4, generator=g) + 0.5 if weighted else None
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = btf.cross_entropy(xa, t, weight=w, ignore_index=ignore)
    want = F.cross_entropy(xb, t, weight=w, ignore_index=ignore)
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(xa.grad, xb.grad)
    per_pixel = btf.cross_entropy(x, t, weight=w, ignore_index=ignore, reduction="none")
    torch.testing.assert_close(per_pixel, F.cross_entropy(x, t, weight=w, ignore_index=ignore, reduction="none"))


def test_bad_gamma_and_targets(device):
    x = torch.randn(3, 5, device=device)
    with pytest.raises(ValueError, match=r"gamma must be a finite number >= 0, got -1.0"):
        btf.focal_loss(x, torch.tensor([0, 1, 2], device=device), gamma=-1.0)
    with pytest.raises(ValueError, match=r"gamma must be a finite number >= 0, got nan"):
        bt.nn.FocalLoss(gamma=float("nan"))
    if device.type == "cpu":  # CUDA: a device-side assertion, no host sync (test_loss_cuda_contracts.py)
        with pytest.raises(
            ValueError, match=r"target must hold class indices in \[0, C=5\) or ignore_index=-100, got target 5 at flat index 1"
        ):
            btf.cross_entropy(x, torch.tensor([0, 5, 2], device=device))
        with pytest.raises(ValueError, match="got target -3 at flat index 2"):
            btf.focal_loss(x, torch.tensor([0, 1, -3], device=device))
    with pytest.raises(ValueError, match=r"target of class indices must have shape \[3\]"):
        btf.cross_entropy(x, torch.tensor([0, 1], device=device))
    with pytest.raises(ValueError, match="probability target must have the input's shape"):
        btf.cross_entropy(x, torch.rand(3, 4, device=device))
    with pytest.raises(TypeError, match="target must hold class indices"):
        btf.cross_entropy(x, torch.tensor([0, 1, 2], dtype=torch.int16, device=device))
    with pytest.raises(TypeError, match="input must be a floating tensor"):
        btf.cross_entropy(torch.ones(3, 5, dtype=torch.long, device=device), torch.tensor([0, 1, 2], device=device))
    with pytest.raises(ValueError, match="class_counts must be finite and >= 0"):
        bt.nn.LogitAdjustedLoss([10, -1, 3])  # a zero count is floored to half a sample (test_logit_adjusted_loss.py)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        bt.nn.LogitAdjustedLoss([10, 1, 3], tau=-1)


def test_modules_repr_and_state(device):
    w = torch.tensor([1.8, 33.3, 2.4])
    m = bt.nn.FocalLoss(gamma=2.0, weight=w, ignore_index=255)
    assert "gamma=2.0" in repr(m) and "ignore_index=255" in repr(m) and "3 classes" in repr(m)
    assert torch.equal(m.state_dict()["weight"], w)
    m = m.to(device)
    assert m.weight.device.type == torch.device(device).type
    assert "pos_weight" in repr(bt.nn.SigmoidFocalLoss(pos_weight=torch.ones(3)))


def test_torch_compile_fullgraph(device):
    model = torch.nn.Linear(8, 5).to(device)
    criterion = bt.nn.FocalLoss(gamma=2.0, weight=torch.rand(5) + 0.5, label_smoothing=0.1).to(device)

    def forward(inp, tgt):
        return criterion(model(inp), tgt)

    compiled = torch.compile(forward, fullgraph=True, backend="aot_eager")
    inp = torch.randn(16, 8, device=device)
    tgt = torch.randint(0, 5, (16,), device=device)
    loss_c = compiled(inp, tgt)
    loss_c.backward()  # the compiled graph's backward runs the registered formula
    grad_c = model.weight.grad.clone()
    model.weight.grad = None
    loss_e = forward(inp, tgt)
    loss_e.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(grad_c, model.weight.grad)


# --- sigmoid focal loss ------------------------------------------------------


def sigmoid_focal_reference(x, y, alpha, gamma, reduction, pos_weight=None):
    x, y = x.double(), y.double()
    ce = F.binary_cross_entropy_with_logits(
        x, y, reduction="none", pos_weight=None if pos_weight is None else pos_weight.double()
    )
    p = torch.sigmoid(x)
    m = p * (1 - y) + (1 - p) * y
    loss = ce * m**gamma
    if alpha >= 0:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize("alpha", [0.25, 0.5, -1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.3])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(64, 10), (3, 7, 5), (37,)], ids=str)
def test_sigmoid_focal_equals_torchvision(torchvision_ops, device, alpha, gamma, reduction, shape):
    x = (torch.randn(shape, device=device) * 4).requires_grad_()
    y = (torch.rand(shape, device=device) < 0.3).float()
    xr = x.detach().clone().requires_grad_()
    got = btf.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction=reduction)
    expected = torchvision_ops.sigmoid_focal_loss(xr, y, alpha=alpha, gamma=gamma, reduction=reduction)
    torch.testing.assert_close(got, expected, rtol=2e-5, atol=1e-6)
    g = torch.rand_like(expected)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(expected, xr, g)[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_pos_weight_and_soft_targets(device, reduction):
    x = (torch.randn(5000, 7, device=device) * 3).requires_grad_()
    y = torch.rand(5000, 7, device=device)  # soft targets in [0, 1]
    pw = torch.rand(7, device=device) * 5
    got = bt.nn.SigmoidFocalLoss(alpha=0.3, gamma=1.5, reduction=reduction, pos_weight=pw).to(device)(x, y)
    xr = x.detach().double().requires_grad_()
    expected = sigmoid_focal_reference(xr, y, 0.3, 1.5, reduction, pw)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)
    g = torch.rand_like(expected)
    torch.testing.assert_close(
        torch.autograd.grad(got, x, g.float())[0].double(), torch.autograd.grad(expected, xr, g)[0], rtol=1e-4, atol=1e-7
    )


def test_sigmoid_focal_extreme_logits(device):
    x = torch.tensor([-1000.0, -150.0, -89.0, -30.0, 0.0, 30.0, 89.0, 150.0, 1000.0], device=device).repeat(2)
    y = torch.tensor([0.0] * 9 + [1.0] * 9, device=device)
    x.requires_grad_()
    loss = btf.sigmoid_focal_loss(x, y, reduction="none")
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()
    expected = sigmoid_focal_reference(x.detach(), y, 0.25, 2.0, "none")
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sigmoid_focal_half(torchvision_ops, device, dtype):
    x = (torch.randn(300, 9, device=device) * 3).to(dtype).requires_grad_()
    y = (torch.rand(300, 9, device=device) < 0.2).to(dtype)
    got = btf.sigmoid_focal_loss(x, y, reduction="mean")
    assert got.dtype == dtype
    expected = torchvision_ops.sigmoid_focal_loss(x.detach().float(), y.float(), reduction="mean")
    torch.testing.assert_close(got.float(), expected, rtol=1e-2, atol=1e-3)
    got.backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("gamma", [0.0, 0.7, 2.0])
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_sigmoid_focal_gradcheck_and_opcheck(device, gamma, reduction):
    x = torch.randn(6, 4, device=device, dtype=torch.float64, requires_grad=True)
    y = torch.rand(6, 4, device=device, dtype=torch.float64)
    pw = torch.rand(4, device=device, dtype=torch.float64) + 0.5
    op = torch.ops.balancedtorch.sigmoid_focal_loss
    assert torch.autograd.gradcheck(lambda inp: op(inp, y, pw, 0.25, gamma, reduction, True)[0], (x,), atol=1e-7)
    torch.library.opcheck(op.default, (x, y, pw, 0.25, gamma, reduction, True))
    torch.library.opcheck(op.default, (x.detach().float(), y.float(), None, -1.0, gamma, reduction, False))


def test_sigmoid_focal_bad_arguments():
    x, y = torch.randn(4, 3), torch.rand(4, 3)
    with pytest.raises(ValueError, match="target must have the input's shape"):
        btf.sigmoid_focal_loss(x, y[:2])
    with pytest.raises(ValueError, match=r"pos_weight must have shape \(C,\) = \(3,\)"):
        btf.sigmoid_focal_loss(x, y, pos_weight=torch.ones(4))
    with pytest.raises(ValueError, match=r"pos_weight must be finite and >= 0, got pos_weight\[0\] = -1"):
        btf.sigmoid_focal_loss(x, y, pos_weight=torch.tensor([-1.0, 1, 1]))
    with pytest.raises(ValueError, match="alpha must be a finite number <= 1"):
        btf.sigmoid_focal_loss(x, y, alpha=1.5)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        bt.nn.SigmoidFocalLoss(gamma=-2)
    with pytest.raises(ValueError, match="reduction must be"):
        btf.sigmoid_focal_loss(x, y, reduction="batchmean")
    assert math.isnan(btf.sigmoid_focal_loss(torch.zeros(0, 3), torch.zeros(0, 3), reduction="mean").item())


def test_torch_compile_inductor(device):
    criterion = bt.nn.CrossEntropyLoss(weight=torch.rand(6) + 0.5, label_smoothing=0.05).to(device)
    compiled = torch.compile(lambda x, t: criterion(x * 2.0, t), fullgraph=True)
    x = torch.randn(32, 6, device=device, requires_grad=True)
    t = torch.randint(0, 6, (32,), device=device)
    loss = compiled(x, t)
    loss.backward()
    xr = x.detach().clone().requires_grad_()
    ref = F.cross_entropy(xr * 2.0, t, weight=criterion.weight, label_smoothing=0.05)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_channels_last_input(device, soft, gamma):
    x, t, C = make_case((3, 6, 5, 4), device, soft=soft)
    x = x.to(memory_format=torch.channels_last)
    xo = x.clone(memory_format=torch.channels_last).requires_grad_()
    xr = x.double().requires_grad_()
    got = btf.focal_loss(xo, t, gamma=gamma, label_smoothing=0.1)
    expected = focal_reference(xr, t, gamma=gamma, label_smoothing=0.1)
    torch.testing.assert_close(got.double(), expected, rtol=2e-6, atol=1e-7)
    got.backward()
    expected.backward()
    assert xo.grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(xo.grad.double(), xr.grad, rtol=1e-4, atol=1e-7)
    none = btf.cross_entropy(x, t, reduction="none")
    torch.testing.assert_close(none, F.cross_entropy(x.contiguous(), t, reduction="none"), rtol=1e-6, atol=1e-6)


# -- more than 2^24 classes: class indices compared exactly --------------------------------------------------------------


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


# -- the raw fused-loss ops never modify the gradient tensor they returned -----------------------------------------------


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


def test_cpu_buffer_cache_is_reused_bounded_and_released():
    bt.empty_cpu_cache()
    assert bt.cpu_cache_bytes() == 0
    x = torch.randn(4, 8, 256, 256, requires_grad=True)  # an 8 MiB gradient: pooled
    t = torch.randint(0, 8, (4, 256, 256))
    btf.cross_entropy(x, t).backward()
    grad = x.grad
    x.grad = None
    del grad  # the buffer goes back to the cache, not to the OS
    assert bt.cpu_cache_bytes() >= x.numel() * 4
    btf.cross_entropy(x, t).backward()  # reused: the same size is taken back
    assert bt.cpu_cache_bytes() == 0
    x.grad = None
    released = bt.empty_cpu_cache()
    assert released >= x.numel() * 4 and bt.cpu_cache_bytes() == 0
    torch.testing.assert_close(btf.cross_entropy(x, t), F.cross_entropy(x, t))
