"""LDAM, VS and Balanced Softmax on the fused softmax kernel; post-hoc logit adjustment and tau-normalisation.

References are written from the authors' published formulas in plain torch
(margins, scaling, vector scaling, then ``F.cross_entropy``), and compared in
value and gradient over every option; the extended ``softmax_loss`` schema
(``logit_scale``, ``margin``, ``scale``) gets gradcheck, opcheck, hypothesis
on adversarial logits, and its argument checks.
"""

import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf

hypothesis = pytest.importorskip("hypothesis")
from conftest import REFUSED_UNDER_NO_GRAD  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

COUNTS = [500, 120, 37, 9, 2]
C = len(COUNTS)
OP = torch.ops.balancedtorch.softmax_loss
REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


# --- references (the authors' formulas, eager torch) -------------------------------------------------------


def _view(vec, x):
    return vec.to(device=x.device, dtype=x.dtype).view([1, -1] + [1] * (x.dim() - 2))


def ldam_margins_ref(counts, max_m):
    n = torch.as_tensor(counts, dtype=torch.float64)
    m = 1.0 / torch.sqrt(torch.sqrt(n))
    return m * (max_m / m.max())


def ldam_ref(x, t, counts, max_m=0.5, s=30.0, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cao et al.: z - m_y at the target, everything times s, then cross-entropy."""
    m = ldam_margins_ref(counts, max_m).to(device=x.device, dtype=x.dtype)
    valid = t != ignore_index
    safe = torch.where(valid, t, torch.zeros_like(t))
    onehot = F.one_hot(safe, x.shape[1]).movedim(-1, 1).to(x.dtype) * valid.unsqueeze(1).to(x.dtype)
    out = x - onehot * _view(m, x)
    return F.cross_entropy(
        s * out, t, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )


def vs_ref(x, t, counts, gamma=0.3, tau=1.0, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Kini et al.: x / Delta + iota, Delta = (1/n)^gamma / min((1/n)^gamma), iota = tau log(n / N)."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    temp = (1.0 / n) ** gamma
    delta = temp / temp.min()
    iota = tau * torch.log(n / n.sum())
    out = x / _view(delta, x) + _view(iota, x)
    return F.cross_entropy(out, t, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)


def balanced_softmax_ref(x, t, counts, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Ren et al.: logits + log n_c, then cross-entropy."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    return F.cross_entropy(
        x + _view(n.log(), x),
        t,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def adjusted_ref(x, t, logit_scale, bias, margin, scale, weight, ignore_index, label_smoothing, gamma, reduction):
    """The kernel's definition, s * (x * delta + iota - margin[y] onehot(y)), then the (focal) CE sum."""
    z = x
    if logit_scale is not None:
        z = z * _view(logit_scale, x)
    if bias is not None:
        z = z + _view(bias, x)
    hard = not t.is_floating_point()
    if hard:
        valid = t != ignore_index
        safe = torch.where(valid, t, torch.zeros_like(t))
        onehot = F.one_hot(safe, x.shape[1]).movedim(-1, 1).to(x.dtype)
        if margin is not None:
            z = z - onehot * _view(margin, x)
        q = onehot * (1 - label_smoothing) + label_smoothing / x.shape[1]
    else:
        valid = torch.ones(t.shape[:1] + t.shape[2:], dtype=torch.bool, device=t.device)
        q = t * (1 - label_smoothing) + label_smoothing / x.shape[1]
    z = z * scale
    log_p = torch.log_softmax(z, 1)
    w = _view(weight, x) if weight is not None else torch.ones_like(x)
    per = (q * w * (-torch.expm1(log_p)) ** gamma * -log_p).sum(1) * valid
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if not hard:
        return per.sum() / per.numel()
    den = (w.expand_as(x).gather(1, safe.unsqueeze(1)).squeeze(1) * valid).sum()
    return per.sum() / den


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-11)


def _compare(got_fn, ref_fn, x, **tol):
    """Value and gradient (against a random upstream gradient) of got_fn(x) and ref_fn(x)."""
    xg = x.clone().requires_grad_()
    xr = x.clone().requires_grad_()
    got, ref = got_fn(xg), ref_fn(xr)
    assert got.dtype == x.dtype
    torch.testing.assert_close(got, ref, **tol)
    up = torch.rand_like(ref) + 0.5
    (g,) = torch.autograd.grad(got, xg, up)
    (gr,) = torch.autograd.grad(ref, xr, up)
    torch.testing.assert_close(g, gr, **tol)
    return got


def _logits(shape, dtype, device, spread=3.0):
    return (torch.randn(shape, dtype=torch.float64) * spread).to(device=device, dtype=dtype)


def _targets(shape, device, ignore_index=None):
    t = torch.randint(0, C, (shape[0],) + tuple(shape[2:]), device=device)
    if ignore_index is not None:
        t.view(-1)[::5] = ignore_index
    t.view(-1)[1::5] = C - 1  # the rarest class, largest margin
    return t


# --- the losses against the authors' formulas ---------------------------------------------------------------

SHAPES = [(33, C), (3, C, 4, 6)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_ldam_equals_reference(device, dtype, reduction, label_smoothing, shape):
    ignore = 255
    x = _logits(shape, dtype, device, spread=1.0)  # cosine-like logits, as LDAM expects
    t = _targets(shape, device, ignore)
    weight = (torch.rand(C, dtype=dtype) + 0.2).to(device)
    kw = dict(weight=weight, ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing)
    got = _compare(
        lambda v: btf.ldam_loss(v, t, COUNTS, max_m=0.4, s=20.0, **kw),
        lambda v: ldam_ref(v, t, COUNTS, max_m=0.4, s=20.0, **kw),
        x,
        **_tol(dtype),
    )
    module = bt.nn.LDAMLoss(COUNTS, max_m=0.4, s=20.0, **kw).to(device)
    torch.testing.assert_close(module(x, t), got, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_vs_equals_reference(device, dtype, reduction, label_smoothing, shape):
    ignore = -1
    x = _logits(shape, dtype, device)
    t = _targets(shape, device, ignore)
    weight = (torch.rand(C, dtype=dtype) + 0.2).to(device)
    kw = dict(weight=weight, ignore_index=ignore, reduction=reduction, label_smoothing=label_smoothing)
    got = _compare(
        lambda v: btf.vs_loss(v, t, COUNTS, gamma=0.25, tau=1.3, **kw),
        lambda v: vs_ref(v, t, COUNTS, gamma=0.25, tau=1.3, **kw),
        x,
        **_tol(dtype),
    )
    module = bt.nn.VSLoss(COUNTS, gamma=0.25, tau=1.3, **kw).to(device)
    torch.testing.assert_close(module(x, t), got, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_vs_and_balanced_softmax_probability_targets(device, dtype, reduction, shape):
    x = _logits(shape, dtype, device)
    q = torch.softmax(torch.randn(shape, dtype=torch.float64), 1).to(device=device, dtype=dtype)
    weight = (torch.rand(C, dtype=dtype) + 0.2).to(device)
    kw = dict(weight=weight, reduction=reduction, label_smoothing=0.05)
    _compare(lambda v: btf.vs_loss(v, q, COUNTS, **kw), lambda v: vs_ref(v, q, COUNTS, **kw), x, **_tol(dtype))
    _compare(
        lambda v: btf.balanced_softmax_loss(v, q, COUNTS, **kw),
        lambda v: balanced_softmax_ref(v, q, COUNTS, **kw),
        x,
        **_tol(dtype),
    )
    # the gradient with respect to a probability target that requires grad: torch's
    qg, qr = q.clone().requires_grad_(), q.clone().requires_grad_()
    got, ref = btf.vs_loss(x, qg, COUNTS, **kw), vs_ref(x, qr, COUNTS, **kw)
    up = torch.rand_like(ref) + 0.5
    torch.testing.assert_close(torch.autograd.grad(got, qg, up)[0], torch.autograd.grad(ref, qr, up)[0], **_tol(dtype))


def test_ldam_refuses_probability_targets():
    q = torch.softmax(torch.randn(4, C), 1)
    with pytest.raises(ValueError, match="target: a margin loss"):
        btf.ldam_loss(torch.randn(4, C), q, COUNTS)
    with pytest.raises(ValueError, match="margin needs class-index targets"):
        OP(torch.randn(4, C), q, None, None, -100, 0.0, 0.0, 1, False, None, torch.rand(C), 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_balanced_softmax_equals_reference_and_logit_adjusted_tau_1(device, dtype, reduction, label_smoothing, shape):
    x = _logits(shape, dtype, device)
    t = _targets(shape, device, 255)
    weight = (torch.rand(C, dtype=dtype) + 0.2).to(device)
    kw = dict(weight=weight, ignore_index=255, reduction=reduction, label_smoothing=label_smoothing)
    got = _compare(
        lambda v: btf.balanced_softmax_loss(v, t, COUNTS, **kw),
        lambda v: balanced_softmax_ref(v, t, COUNTS, **kw),
        x,
        **_tol(dtype),
    )
    # the docstring's claim: exactly LogitAdjustedLoss(tau=1), value and gradient
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a = bt.nn.BalancedSoftmaxLoss(COUNTS, **kw).to(device)(xa, t)
    b = bt.nn.LogitAdjustedLoss(COUNTS, tau=1.0, **kw).to(device)(xb, t)
    assert torch.equal(a, b) and torch.equal(a, got)
    up = torch.rand_like(a)
    assert torch.equal(torch.autograd.grad(a, xa, up)[0], torch.autograd.grad(b, xb, up)[0])
    # zero counts: taken as half a sample there and here alike
    zero = [500, 0, 37, 9, 2]
    assert torch.equal(btf.balanced_softmax_loss(x, t, zero, **kw), btf.logit_adjusted_loss(x, t, zero, tau=1.0, **kw))


def test_ldam_margins_and_vs_vectors():
    m = bt.nn.LDAMLoss(COUNTS, max_m=0.5)
    torch.testing.assert_close(m.margin, ldam_margins_ref(COUNTS, 0.5), rtol=1e-15, atol=0)
    assert m.margin.max().item() == pytest.approx(0.5) and int(m.margin.argmax()) == C - 1
    v = bt.nn.VSLoss(COUNTS, gamma=0.3, tau=1.0)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    torch.testing.assert_close(v.logit_scale, (n / n.max()) ** 0.3, rtol=1e-15, atol=0)
    torch.testing.assert_close(v.logit_bias, torch.log(n / n.sum()), rtol=1e-15, atol=0)
    assert set(m.state_dict()) == {"margin"} and set(v.state_dict()) == {"logit_scale", "logit_bias"}


def test_drw_switching_weight_between_epochs():
    """Deferred re-weighting: the module's weight replaced mid-training gives the weighted LDAM loss."""
    criterion = bt.nn.LDAMLoss(COUNTS)
    x, t = torch.randn(64, C), torch.randint(0, C, (64,))
    torch.testing.assert_close(criterion(x, t), ldam_ref(x, t, COUNTS), rtol=1e-5, atol=1e-5)
    w = bt.class_weights(counts=COUNTS, scheme="effective_number", beta=0.9999)
    criterion.weight = w
    torch.testing.assert_close(criterion(x, t), ldam_ref(x, t, COUNTS, weight=w), rtol=1e-5, atol=1e-5)
    assert "weight=[5 classes]" in repr(criterion)


def test_module_buffers_follow_to_and_repr():
    m = bt.nn.VSLoss(COUNTS, gamma=0.2, tau=0.5, weight=torch.rand(C), reduction="sum", label_smoothing=0.1)
    m = m.to(torch.float32)
    assert m.logit_scale.dtype == torch.float32 and m.logit_bias.dtype == torch.float32
    x, t = torch.randn(16, C), torch.randint(0, C, (16,))
    torch.testing.assert_close(m(x, t), vs_ref(x, t, COUNTS, 0.2, 0.5, weight=m.weight, reduction="sum", label_smoothing=0.1))
    r = repr(m)
    assert r.startswith("VSLoss(class_counts=[500, 120, 37, 9, 2], gamma=0.2, tau=0.5, reduction='sum'")
    assert "label_smoothing=0.1" in r and "weight=[5 classes]" in r
    assert repr(bt.nn.LDAMLoss(COUNTS)) == "LDAMLoss(class_counts=[500, 120, 37, 9, 2], max_m=0.5, s=30.0, reduction='mean')"
    assert repr(bt.nn.BalancedSoftmaxLoss(list(range(1, 21)), ignore_index=255)) == (
        "BalancedSoftmaxLoss(class_counts=[20 classes], reduction='mean', ignore_index=255)"
    )


def test_unbatched_and_int32_uint8_targets(device):
    x = torch.randn(C, device=device, dtype=torch.float64)
    t = torch.tensor(3, device=device)
    torch.testing.assert_close(btf.ldam_loss(x, t, COUNTS), ldam_ref(x[None], t[None], COUNTS), rtol=1e-12, atol=0)
    xb = torch.randn(20, C, device=device, dtype=torch.float64)
    tb = torch.randint(0, C, (20,), device=device)
    ref = ldam_ref(xb, tb, COUNTS)
    for dt in (torch.int32, torch.uint8):
        torch.testing.assert_close(btf.ldam_loss(xb, tb.to(dt), COUNTS), ref, rtol=1e-12, atol=1e-12)


def test_channels_last_segmentation(device):
    x = _logits((2, C, 7, 9), torch.float32, device).contiguous(memory_format=torch.channels_last)
    t = _targets((2, C, 7, 9), device, 255)
    for got_fn, ref_fn in (
        (lambda v: btf.ldam_loss(v, t, COUNTS, ignore_index=255), lambda v: ldam_ref(v, t, COUNTS, ignore_index=255)),
        (lambda v: btf.vs_loss(v, t, COUNTS, ignore_index=255), lambda v: vs_ref(v, t, COUNTS, ignore_index=255)),
    ):
        xg = x.clone().requires_grad_()
        assert xg.is_contiguous(memory_format=torch.channels_last)
        loss = got_fn(xg)
        (g,) = torch.autograd.grad(loss, xg)
        xr = x.clone().requires_grad_()
        ref = ref_fn(xr)
        (gr,) = torch.autograd.grad(ref, xr)
        torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g, gr, rtol=1e-5, atol=1e-6)


def test_autocast_bf16_returns_float32():
    x = torch.randn(32, C, dtype=torch.bfloat16)
    t = torch.randint(0, C, (32,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for got, ref in (
            (btf.ldam_loss(x, t, COUNTS), ldam_ref(x.float(), t, COUNTS)),
            (bt.nn.VSLoss(COUNTS)(x, t), vs_ref(x.float(), t, COUNTS)),
            (bt.nn.BalancedSoftmaxLoss(COUNTS)(x, t), balanced_softmax_ref(x.float(), t, COUNTS)),
        ):
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_logits_accumulate_in_float32(device, dtype):
    x = _logits((40, C), dtype, device, spread=1.0)
    t = _targets((40, C), device)
    xg = x.clone().requires_grad_()
    got = btf.ldam_loss(xg, t, COUNTS, s=10.0)
    assert got.dtype == dtype
    ref = ldam_ref(x.double(), t, COUNTS, s=10.0)
    torch.testing.assert_close(got.double(), ref, rtol=2e-2, atol=2e-2)
    (g,) = torch.autograd.grad(got, xg)
    xr = x.double().requires_grad_()
    (gr,) = torch.autograd.grad(ldam_ref(xr, t, COUNTS, s=10.0), xr)
    assert g.dtype == dtype
    torch.testing.assert_close(g.double(), gr, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("cls", ["LDAMLoss", "VSLoss", "BalancedSoftmaxLoss"])
def test_torch_compile_fullgraph(device, cls):
    model = torch.nn.Linear(8, C).to(device)
    criterion = getattr(bt.nn, cls)(COUNTS, weight=torch.rand(C) + 0.5).to(device)

    def forward(inp, tgt):
        return criterion(model(inp), tgt)

    compiled = torch.compile(forward, fullgraph=True, backend="aot_eager")
    inp = torch.randn(16, 8, device=device)
    tgt = torch.randint(0, C, (16,), device=device)
    loss_c = compiled(inp, tgt)
    loss_c.backward()
    grad_c = model.weight.grad.clone()
    model.weight.grad = None
    loss_e = forward(inp, tgt)
    loss_e.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(grad_c, model.weight.grad)


# --- the extended op ------------------------------------------------------------------------------------------


def _adjust_args(device, dtype=torch.float64):
    delta = (torch.rand(C, dtype=dtype) + 0.3).to(device)
    bias = torch.randn(C, dtype=dtype).to(device)
    margin = (torch.rand(C, dtype=dtype) * 0.8).to(device)
    return delta, bias, margin


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "label_smoothing,gamma",
    [(0.0, 0.0), (0.0, 2.0), (0.15, 0.0), (0.15, 1.5)],
    ids=["ce", "focal", "smoothed", "smoothed-focal"],
)
@pytest.mark.parametrize("shape", [(23, C), (3, C, 5, 3)], ids=str)
def test_op_every_mode_equals_reference(device, reduction, label_smoothing, gamma, shape):
    """Every closed form of the kernel (target, linear, general) on adjusted logits, rows and columns."""
    delta, bias, margin = _adjust_args(device)
    x = _logits(shape, torch.float64, device)
    t = _targets(shape, device, -100)
    w = (torch.rand(C, dtype=torch.float64) + 0.2).to(device)
    code = REDUCTION_CODES[reduction]
    for ls, b, mg, s in (
        (delta, bias, margin, 2.5),
        (None, None, margin, 1.0),
        (delta, None, None, 0.7),
        (None, bias, None, 3.0),
    ):
        _compare(
            lambda v, ls=ls, b=b, mg=mg, s=s: OP(v, t, w, b, -100, label_smoothing, gamma, code, True, ls, mg, s)[0],
            lambda v, ls=ls, b=b, mg=mg, s=s: adjusted_ref(v, t, ls, b, mg, s, w, -100, label_smoothing, gamma, reduction),
            x,
            rtol=1e-10,
            atol=1e-11,
        )
    # probability targets (no margin): linear and general modes
    q = torch.softmax(torch.randn(shape, dtype=torch.float64), 1).to(device)
    _compare(
        lambda v: OP(v, q, w, bias, -100, label_smoothing, gamma, code, True, delta, None, 1.7)[0],
        lambda v: adjusted_ref(v, q, delta, bias, None, 1.7, w, -100, label_smoothing, gamma, reduction),
        x,
        rtol=1e-10,
        atol=1e-11,
    )


def test_op_identity_adjustment_equals_plain_path(device):
    """delta = 1, margin = 0, s = 1 given explicitly (the adjusted path) equals the plain path."""
    x = _logits((64, C), torch.float32, device)
    t = _targets((64, C), device, -100)
    bias = torch.randn(C, device=device)
    plain = OP(x, t, None, bias, -100, 0.0, 0.0, 1, True)
    adjusted = OP(x, t, None, bias, -100, 0.0, 0.0, 1, True, torch.ones(C, device=device), torch.zeros(C, device=device), 1.0)
    torch.testing.assert_close(adjusted[0], plain[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(adjusted[1], plain[1], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("shape", [(6, C), (4, C, 3)], ids=str)
def test_op_gradcheck_and_opcheck(device, reduction, shape):
    x = torch.randn(shape, device=device, dtype=torch.float64, requires_grad=True)
    t = _targets(shape, device, -100)
    w = torch.rand(C, device=device, dtype=torch.float64) + 0.5
    delta, bias, margin = _adjust_args(device)
    for ls_, gamma in ((0.0, 0.0), (0.1, 0.0), (0.0, 1.5), (0.1, 2.0)):
        assert torch.autograd.gradcheck(
            lambda v, ls_=ls_, gamma=gamma: OP(v, t, w, bias, -100, ls_, gamma, reduction, True, delta, margin, 2.0)[0],
            (x,),
            atol=1e-7,
        )
    torch.library.opcheck(OP.default, (x, t, w, bias, -100, 0.1, 0.0, reduction, True, delta, margin, 2.0))
    torch.library.opcheck(OP.default, (x, t, None, None, -100, 0.0, 0.0, reduction, True, None, margin, 30.0))
    q = torch.softmax(torch.randn(shape, dtype=torch.float64), 1).to(device).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, p: OP(v, p, w, bias, -100, 0.1, 0.0, reduction, True, delta, None, 1.5)[0], (x, q), atol=1e-7
    )
    torch.library.opcheck(OP.default, (x, q, w, bias, -100, 0.0, 1.0, reduction, True, delta, None, 1.5))


def test_module_gradcheck(device):
    x = torch.randn(7, C, device=device, dtype=torch.float64, requires_grad=True)
    t = _targets((7, C), device)
    for m in (bt.nn.LDAMLoss(COUNTS, s=5.0), bt.nn.VSLoss(COUNTS), bt.nn.BalancedSoftmaxLoss(COUNTS, label_smoothing=0.1)):
        m = m.to(device)
        assert torch.autograd.gradcheck(lambda v, m=m: m(v, t), (x,), atol=1e-7)


_finite = dict(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9),
    c=st.integers(1, 37),
    offset=st.sampled_from([0.0, 1e4, -3e5]),
    magnitude=st.sampled_from([1e-8, 1.0, 50.0, 1e3]),
    tie=st.booleans(),
    s=st.sampled_from([1.0, 30.0, 0.05]),
    smoothing=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**31 - 1),
)
def test_adversarial_logits_float64(n, c, offset, magnitude, tie, s, smoothing, seed):
    """Large offsets, ties, extreme magnitudes, odd C: equal to the reference in float64, gradient included."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * magnitude + offset
    if tie:
        x[:, : max(1, c // 2)] = x[:, :1]  # equal logits, the target among them
    t = torch.randint(0, c, (n,), generator=g)
    counts = torch.randint(1, 1000, (c,), generator=g)
    delta = torch.rand(c, generator=g, dtype=torch.float64) + 0.5
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    margin = torch.rand(c, generator=g, dtype=torch.float64)
    tol = dict(rtol=1e-9, atol=1e-9 * max(1.0, s * magnitude))
    _compare(
        lambda v: OP(v, t, None, bias, -100, smoothing, 0.0, 1, True, delta, margin, s)[0],
        lambda v: adjusted_ref(v, t, delta, bias, margin, s, None, -100, smoothing, 0.0, "mean"),
        x,
        **tol,
    )
    _compare(
        lambda v: btf.ldam_loss(v, t, counts, s=s, label_smoothing=smoothing),
        lambda v: ldam_ref(v, t, counts, s=s, label_smoothing=smoothing),
        x,
        **tol,
    )
    _compare(
        lambda v: btf.vs_loss(v, t, counts, reduction="sum"),
        lambda v: vs_ref(v, t, counts, reduction="sum"),
        x,
        rtol=1e-9,
        atol=1e-9 * max(1.0, magnitude) * n,
    )


# --- post-hoc adjustment, tau-normalisation ------------------------------------------------------------------


def test_posthoc_logit_adjustment(device):
    x = torch.randn(6, C, 4, device=device)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    ref = x - (0.7 * torch.log(n / n.sum())).to(device=device, dtype=x.dtype).view(1, C, 1)
    torch.testing.assert_close(btf.posthoc_logit_adjustment(x, COUNTS, tau=0.7), ref, rtol=0, atol=0)
    v = torch.randn(C, dtype=torch.float64)
    torch.testing.assert_close(btf.posthoc_logit_adjustment(v, COUNTS), v - torch.log(n / n.sum()))
    # training with logit adjustment and adjusting the plain model's logits post hoc: the same argmax shift
    assert btf.posthoc_logit_adjustment(torch.zeros(1, C), COUNTS).argmax().item() == C - 1
    with pytest.raises(ValueError, match="logits must have 5 classes"):
        btf.posthoc_logit_adjustment(torch.randn(4, 3), COUNTS)
    with pytest.raises(TypeError, match="logits must be a floating tensor"):
        btf.posthoc_logit_adjustment(torch.ones(4, C, dtype=torch.long), COUNTS)
    with pytest.raises(ValueError, match="tau"):
        btf.posthoc_logit_adjustment(torch.randn(4, C), COUNTS, tau=-1.0)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_tau_normalize(device, tau):
    w = torch.randn(C, 16, device=device, dtype=torch.float64)
    w[2] = 0.0
    got = bt.nn.tau_normalize(w, tau)
    norms = w.norm(dim=1, keepdim=True)
    ref = torch.where(norms > 0, w / norms.clamp_min(1e-300) ** tau, w)
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=0)
    assert torch.equal(got[2], torch.zeros(16, dtype=torch.float64, device=device))
    if tau == 1.0:
        nz = torch.arange(C, device=device) != 2
        torch.testing.assert_close(got.norm(dim=1)[nz], torch.ones(C - 1, dtype=torch.float64, device=device))
    conv = torch.randn(C, 3, 2, 2, device=device)
    torch.testing.assert_close(bt.nn.tau_normalize(conv, tau), conv / conv.flatten(1).norm(dim=1).pow(tau).view(C, 1, 1, 1))
    with pytest.raises(ValueError, match=r"weight must have shape \(C, D\)"):
        bt.nn.tau_normalize(torch.randn(C), tau)


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counts,match",
    [
        ([5, 0, 3], r"class_counts must be finite and > 0.*class_counts\[1\] = 0"),
        ([5, -2, 3], r"class_counts\[1\] = -2"),
        ([5, float("nan"), 3], r"class_counts\[1\] = nan"),
        ([[5, 3]], "class_counts must be a non-empty 1-D"),
        ([], "class_counts must be a non-empty 1-D"),
    ],
)
def test_bad_counts_name_the_argument(counts, match):
    for make in (lambda: bt.nn.LDAMLoss(counts), lambda: bt.nn.VSLoss(counts)):
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match=match):
        btf.ldam_loss(torch.randn(2, 3), torch.tensor([0, 1]), counts)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="max_m"):
        bt.nn.LDAMLoss(COUNTS, max_m=-0.1)
    for s in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="s must be"):
            bt.nn.LDAMLoss(COUNTS, s=s)
    with pytest.raises(ValueError, match="gamma"):
        bt.nn.VSLoss(COUNTS, gamma=-0.3)
    with pytest.raises(ValueError, match="tau"):
        btf.vs_loss(torch.randn(2, C), torch.tensor([0, 1]), COUNTS, tau=-1.0)
    with pytest.raises(ValueError, match="weight has 3 entries but class_counts has 5"):
        bt.nn.LDAMLoss(COUNTS, weight=torch.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        bt.nn.BalancedSoftmaxLoss(COUNTS, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        bt.nn.VSLoss(COUNTS, reduction="avg")
    with pytest.raises(ValueError, match="class_counts"):
        bt.nn.BalancedSoftmaxLoss([0, 0])
    with pytest.raises(TypeError, match="max_m"):
        bt.nn.LDAMLoss(COUNTS, max_m="big")
    # logits of the wrong class count
    wrong = "input has 3 classes \\(dimension 1\\) but class_counts has 5 entries"
    with pytest.raises(ValueError, match=wrong):
        btf.ldam_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), COUNTS)
    for m in (bt.nn.VSLoss(COUNTS), bt.nn.BalancedSoftmaxLoss(COUNTS), bt.nn.LDAMLoss(COUNTS)):
        with pytest.raises(ValueError, match=wrong):
            m(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_op_checks_the_new_arguments():
    x, t = torch.randn(4, C), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"logit_scale must have shape \(C,\)"):
        OP(x, t, None, None, -100, 0.0, 0.0, 1, False, torch.ones(C + 1), None, 1.0)
    with pytest.raises(ValueError, match=r"margin must have shape \(C,\)"):
        OP(x, t, None, None, -100, 0.0, 0.0, 1, False, None, torch.ones(2, C), 1.0)
    with pytest.raises(TypeError, match="logit_scale must be a floating tensor"):
        OP(x, t, None, None, -100, 0.0, 0.0, 1, False, torch.ones(C, dtype=torch.long), None, 1.0)
    with pytest.raises(ValueError, match=r"margin must be finite, got margin\[2\] = inf"):
        OP(x, t, None, None, -100, 0.0, 0.0, 1, False, None, torch.tensor([0.0, 0, float("inf"), 0, 0]), 1.0)
    with pytest.raises(ValueError, match=r"logit_scale must be finite, got logit_scale\[0\] = nan"):
        OP(x, t, None, None, -100, 0.0, 0.0, 1, False, torch.tensor([float("nan"), 1, 1, 1, 1]), None, 1.0)
    for bad in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            OP(x, t, None, None, -100, 0.0, 0.0, 1, False, None, None, bad)
    with pytest.raises(ValueError, match="margin is on meta but input is on cpu"):
        OP(x, t, None, None, -100, 0.0, 0.0, 1, False, None, torch.ones(C, device="meta"), 1.0)
    # the old nine-argument call is unchanged
    plain = OP(x, t, None, None, -100, 0.0, 0.0, 1, False)[0]
    torch.testing.assert_close(plain, F.cross_entropy(x, t))


def test_inputs_are_not_modified():
    x = torch.randn(8, C, requires_grad=True)
    t = torch.randint(0, C, (8,))
    counts = torch.tensor(COUNTS)
    x0, t0, c0 = x.detach().clone(), t.clone(), counts.clone()
    btf.ldam_loss(x, t, counts).backward()
    btf.vs_loss(x, t, counts).backward()
    assert torch.equal(x.detach(), x0) and torch.equal(t, t0) and torch.equal(counts, c0)


@pytest.mark.parametrize(
    "value,dtype",
    [(1e30, torch.float32), (1e-30, torch.float32), (1e-40, torch.float32), (6e4, torch.float16), (1e-6, torch.float16)],
)
@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_tau_normalize_rows_whose_squares_overflow_or_underflow(value, dtype, tau, ieee_denormals):
    # squaring 1e30 (float32) or 6e4 (float16) overflows and 1e-30 underflows: the rows came back 0 or unchanged
    w = torch.full((4, 3), value, dtype=dtype) * torch.tensor([1.0, -1.0, 0.5], dtype=dtype)
    w[3] = 0.0
    got = bt.nn.tau_normalize(w, tau)
    w64 = w.double()
    norms = w64.norm(dim=1, keepdim=True)
    ref = torch.where(norms > 0, w64 / norms.clamp_min(1e-300) ** tau, w64)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), ref.to(dtype).double(), rtol=2e-3 if dtype == torch.float16 else 1e-6, atol=0)
    assert torch.equal(got[3], torch.zeros(3, dtype=dtype))
    if tau == 1.0:
        torch.testing.assert_close(got[:3].double().norm(dim=1), torch.ones(3, dtype=torch.float64), rtol=2e-3, atol=0)


def test_tau_normalize_large_tau_goes_to_zero_or_inf_by_the_norm():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, -1.0], [0.0, 0.0]], dtype=torch.float64)  # norms 5, 0.5, 1, 0
    got = bt.nn.tau_normalize(w, 1e300)
    assert torch.equal(got[0], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(got[1], torch.full((2,), float("inf"), dtype=torch.float64))
    assert torch.equal(got[2], w[2])
    assert torch.equal(got[3], w[3])


def test_tau_normalize_gradient_nan_rows_and_tau_zero():
    w = (torch.randn(5, 4, dtype=torch.float64) * 1e-3).requires_grad_(True)
    torch.autograd.gradcheck(lambda v: bt.nn.tau_normalize(v, 1.3), (w,))
    same = bt.nn.tau_normalize(w, 0.0)
    assert torch.equal(same, w) and same.requires_grad
    bad = torch.tensor([[1.0, float("nan")], [float("inf"), 1.0], [3.0, 4.0]])
    got = bt.nn.tau_normalize(bad)
    assert got[:2].isnan().all()  # a NaN or inf row has no norm: NaN, never a row passed through
    torch.testing.assert_close(got[2], torch.tensor([0.6, 0.8]))


def test_log_priors_of_counts_far_apart():
    # log(n / N) as n / N underflowed to 0 for counts 1e600 apart: log 0 = -inf and an infinite loss
    counts = [1e300, 1e-300, 1.0, 2.0, 3.0]
    x, t = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 1])
    n = torch.tensor(counts, dtype=torch.float64)
    log_prior = n.log() - n.log().logsumexp(0)
    torch.testing.assert_close(btf.logit_adjustment(counts), log_prior, rtol=1e-14, atol=0)
    got = btf.balanced_softmax_loss(x, t, counts)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, balanced_softmax_ref(x, t, counts))
    got = btf.vs_loss(x, t, counts, gamma=0.0, tau=1.0)
    torch.testing.assert_close(got, F.cross_entropy(x + log_prior, t))


@pytest.mark.parametrize("counts", ["abc", None, {0: 1}, torch.ones(C, device="meta")])
@pytest.mark.parametrize(
    "fn",
    [
        lambda c: btf.ldam_loss(torch.randn(4, C), torch.zeros(4, dtype=torch.long), c),
        lambda c: btf.vs_loss(torch.randn(4, C), torch.zeros(4, dtype=torch.long), c),
        lambda c: btf.balanced_softmax_loss(torch.randn(4, C), torch.zeros(4, dtype=torch.long), c),
        lambda c: btf.posthoc_logit_adjustment(torch.randn(4, C), c),
        bt.nn.LDAMLoss,
        bt.nn.BalancedSoftmaxLoss,
    ],
)
def test_unusable_class_counts_name_the_argument(fn, counts):
    with pytest.raises(ValueError, match="class_counts"):
        fn(counts)


def test_ldam_scale_past_float32_names_s():
    x, t = torch.randn(4, C), torch.tensor([0, 1, 2, 3])
    with pytest.raises(
        ValueError,
        match=r"s \(the logit scale\) must be at most .* for torch.float32 logits \(accumulated in float32\), got 1e\+300",
    ):
        btf.ldam_loss(x, t, COUNTS, s=1e300)
    with pytest.raises(ValueError, match="s \\(the logit scale\\)"):
        bt.nn.LDAMLoss(COUNTS, s=1e39)(x.half(), t)
    # float64 logits take it (the kernel's scale is a double there)
    x64 = x.double()
    torch.testing.assert_close(btf.ldam_loss(x64, t, COUNTS, s=1e300), ldam_ref(x64, t, COUNTS, s=1e300))


def test_target_prob_op_refuses_probability_targets_with_a_value_error():
    x = torch.randn(4, C)
    with pytest.raises(ValueError, match=r"softmax_loss_target_prob: target must hold class indices.*Float"):
        torch.ops.balancedtorch.softmax_loss_target_prob(x, torch.softmax(torch.randn(4, C), 1), -100, False)


@pytest.mark.parametrize("slot,name", [(2, "weight"), (3, "logit_bias"), (9, "logit_scale"), (10, "margin")])
def test_op_refuses_class_vectors_that_require_grad(slot, name):
    # the kernel gives them no gradient: a learnable margin or scale would silently never train
    x, t = torch.randn(4, C, requires_grad=True), torch.tensor([0, 1, 2, 3])
    args = [x, t, None, None, -100, 0.0, 0.0, 1, True, None, None, 1.0]
    args[slot] = torch.rand(C, requires_grad=True)
    with pytest.raises(ValueError, match=rf"softmax_loss: {name} must not require grad"):
        OP(*args)
    args[0] = x.detach()
    with pytest.raises(ValueError, match=rf"softmax_loss: {name} must not require grad"):
        OP(*args)
    with torch.no_grad():  # nothing is differentiated: taken, as the value it holds
        if REFUSED_UNDER_NO_GRAD:  # torch < 2.5 runs the autograd kernel under no_grad too
            with pytest.raises(ValueError, match=rf"softmax_loss: {name} must not require grad"):
                OP(*args)
            return
        got = OP(*args)[0]
    args[slot] = args[slot].detach()
    torch.testing.assert_close(got, OP(*args)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: bt.nn.LDAMLoss(COUNTS, max_m=1e300), r"max_m \* s \(the largest scaled margin\) must be at most"),
        (lambda: bt.nn.VSLoss(COUNTS, tau=1e300), r"tau \* max \|log\(n_c / N\)\| .* must be at most"),
        (lambda: lambda x, t: btf.ldam_loss(x, t, COUNTS, max_m=1e38, s=30.0), r"max_m \* s .* got 3e\+39"),
        (lambda: lambda x, t: btf.vs_loss(x, t, COUNTS, tau=1e300), r"tau \* max \|log\(n_c / N\)\|"),
    ],
)
def test_per_class_terms_past_float32_name_the_argument(make, match):
    # they were cast to the float32 accumulation dtype: inf, and an infinite or NaN loss
    fn = make()
    t = torch.tensor([0, 1, 2, 3])
    for dtype in (torch.float32, torch.float16):
        with pytest.raises(ValueError, match=match):
            fn(torch.randn(4, C, dtype=dtype), t)
    x64 = torch.randn(4, C, dtype=torch.float64)  # float64 logits accumulate in float64: taken
    assert torch.isfinite(fn(x64, t))
