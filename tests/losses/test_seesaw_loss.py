"""bt.functional.seesaw_loss / bt.nn.SeesawLoss against the paper's formula written in plain torch.

The reference builds what MMDetection's seesaw_ce_loss builds (the (C, C)
count-ratio matrix, the (N, C) score-ratio matrix, the factors as powers,
the shifted logits) and takes F.cross_entropy; the fused kernel forms the
factors in the log domain, one row at a time.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import REFUSED_UNDER_NO_GRAD

import balancedtorch as bt
import balancedtorch.functional as btf

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

# ---------------------------------------------------------------------------------------------
# plain reference (the paper's formula / MMDetection's semantics)
# ---------------------------------------------------------------------------------------------


def seesaw_reference(x, target, cum_samples, p=0.8, q=2.0, eps=1e-2, reduction="mean", ignore_index=-100):
    """Seesaw loss from its definition, in float64; the factors are detached (constants of backward)."""
    z = x.double()
    C = z.shape[1]
    t = target.long()
    valid = t != ignore_index
    safe = torch.where(valid, t, torch.zeros_like(t))
    onehot = F.one_hot(safe, C).double()
    factors = torch.ones_like(z)
    if p > 0:
        n = cum_samples.double().clamp(min=1)
        ratio = n[None, :] / n[:, None]  # [i, j] = n_j / n_i
        below = (ratio < 1).double()
        factors = factors * (ratio.pow(p) * below + (1 - below))[safe]
    if q > 0:
        sigma = torch.softmax(z.detach(), dim=1)
        own = sigma.gather(1, safe[:, None]).clamp(min=eps)
        ratio = sigma / own
        above = (ratio > 1).double()
        factors = factors * (ratio.pow(q) * above + (1 - above))
    shifted = z + factors.log() * (1 - onehot)
    per = F.cross_entropy(shifted, safe, reduction="none") * valid
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / valid.sum()


def _case(N, C, device, dtype=torch.float32, scale=3.0, zeros=0.0, target_dtype=torch.int64):
    x = (torch.randn(N, C, dtype=torch.float64) * scale).to(device=device, dtype=dtype)
    # long-tailed targets: class c drawn with weight ~ 1 / (c + 1)
    weights = 1.0 / torch.arange(1, C + 1, dtype=torch.float64)
    t = torch.multinomial(weights, N, replacement=True).to(device=device, dtype=target_dtype)
    counts = torch.randint(0, 5000, (C,)).double() * (torch.rand(C) > zeros)
    return x, t, counts.to(device=device, dtype=torch.float32)


def _value_and_grad(fn, x, *args, **kwargs):
    xr = x.detach().clone().requires_grad_(True)
    loss = fn(xr, *args, **kwargs)
    grad_out = torch.randn_like(loss) if loss.dim() else torch.ones_like(loss)
    (grad,) = torch.autograd.grad(loss, xr, grad_out)
    return loss, grad, grad_out


def _check_against_reference(x, t, cs, atol=None, **kw):
    ours = x.detach().clone().requires_grad_(True)
    ref = x.detach().double().clone().requires_grad_(True)
    lo = btf.seesaw_loss(ours, t, cs, **kw)
    lr = seesaw_reference(ref, t, cs, **kw)
    assert lo.dtype == x.dtype and lo.shape == lr.shape
    g = torch.randn(lr.shape, dtype=torch.float64, device=x.device)
    (lo.double() * g).sum().backward()
    (lr * g).sum().backward()
    tol = dict(rtol=1e-5, atol=1e-5) if x.dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    if atol is not None:
        tol = dict(rtol=atol, atol=atol)
    torch.testing.assert_close(lo.double(), lr.detach(), **tol)
    torch.testing.assert_close(ours.grad.double(), ref.grad, **tol)


# ---------------------------------------------------------------------------------------------
# values and gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p,q", [(0.8, 2.0), (0.0, 2.0), (0.8, 0.0), (0.0, 0.0), (2.5, 0.5), (0.3, 4.0)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("N,C", [(64, 10), (37, 45), (5, 1003)])
def test_equals_reference(device, dtype, p, q, reduction, N, C):
    x, t, cs = _case(N, C, device, dtype, zeros=0.2)
    _check_against_reference(x, t, cs, p=p, q=q, reduction=reduction)


@pytest.mark.parametrize("eps", [1e-6, 1e-2, 0.3, 1.0, 2.0])
def test_eps(device, eps):
    x, t, cs = _case(50, 13, device, torch.float64, scale=6.0)
    _check_against_reference(x, t, cs, eps=eps, reduction="none")


@pytest.mark.parametrize("counts", ["zeros", "equal", "ones", "fractional", "huge", "some_zero"])
def test_cum_samples_edge_values(device, counts):
    x, t, _ = _case(40, 9, device, torch.float64)
    cs = {
        "zeros": torch.zeros(9),
        "equal": torch.full((9,), 123.0),
        "ones": torch.ones(9),
        "fractional": torch.rand(9),  # below 1: clamped to 1, as MMDetection
        "huge": torch.logspace(0, 15, 9),
        "some_zero": torch.tensor([0.0, 5, 0, 100, 7, 0, 1, 2, 3]),
    }[counts].to(device)
    _check_against_reference(x, t, cs, p=0.8, q=2.0, reduction="none")
    if counts in ("zeros", "equal", "ones", "fractional"):
        # every class equally frequent: no mitigation, only compensation
        torch.testing.assert_close(btf.seesaw_loss(x, t, cs, q=0.0), F.cross_entropy(x, t.long()))


def test_integer_cum_samples_and_target_dtypes(device):
    x, t, cs = _case(30, 6, device, torch.float64)
    expected = btf.seesaw_loss(x, t, cs, reduction="none")
    torch.testing.assert_close(btf.seesaw_loss(x, t, cs.long(), reduction="none"), expected)
    torch.testing.assert_close(btf.seesaw_loss(x, t, cs.double(), reduction="none"), expected)
    for dt in (torch.int32, torch.uint8):
        torch.testing.assert_close(btf.seesaw_loss(x, t.to(dt), cs, reduction="none"), expected)


def test_mitigation_only_lowers_rarer_classes_and_compensation_raises_confused_ones(device):
    """The factors as the paper describes them, on a hand-made case."""
    x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64, device=device)
    t = torch.tensor([0, 0], device=device)
    cs = torch.tensor([1000.0, 10.0, 1.0], dtype=torch.float64, device=device)
    ce = F.cross_entropy(x, t, reduction="none")
    mitigated = btf.seesaw_loss(x, t, cs, q=0.0, reduction="none")
    assert (mitigated < ce).all()  # rarer negatives pushed down less: smaller loss
    # mitigation of row 0 by hand: z_j + p log(n_j / n_0)
    z = x[0] + torch.tensor([0.0, 0.8 * torch.log(torch.tensor(10 / 1000.0)), 0.8 * torch.log(torch.tensor(1 / 1000.0))])
    torch.testing.assert_close(mitigated[0], torch.logsumexp(z, 0) - z[0])
    compensated = btf.seesaw_loss(x, t, cs, p=0.0, reduction="none")
    torch.testing.assert_close(compensated[0], ce[0])  # target the most likely class: nothing to compensate
    assert compensated[1] > ce[1]  # class 2 confused with the target: penalty raised


def test_ignore_index(device):
    x, t, cs = _case(40, 7, device, torch.float64)
    t[::3] = -100
    _check_against_reference(x, t, cs, reduction="mean")
    _check_against_reference(x, t, cs, reduction="none")
    t2 = t.clone()
    t2[t2 == -100] = 255
    torch.testing.assert_close(btf.seesaw_loss(x, t2, cs, ignore_index=255), btf.seesaw_loss(x, t, cs))
    xr = x.clone().requires_grad_(True)
    btf.seesaw_loss(xr, t, cs, reduction="sum").backward()
    assert (xr.grad[::3] == 0).all() and (xr.grad[1::3] != 0).any()


def test_all_ignored_and_empty_batch(device):
    x = torch.randn(4, 5, device=device, requires_grad=True)
    t = torch.full((4,), -100, device=device)
    cs = torch.ones(5, device=device)
    assert torch.isnan(btf.seesaw_loss(x, t, cs))
    assert btf.seesaw_loss(x, t, cs, reduction="sum").item() == 0.0
    btf.seesaw_loss(x, t, cs, reduction="sum").backward()
    assert (x.grad == 0).all()
    e = torch.randn(0, 5, device=device, requires_grad=True)
    te = torch.zeros(0, dtype=torch.long, device=device)
    assert torch.isnan(btf.seesaw_loss(e, te, cs))
    assert btf.seesaw_loss(e, te, cs, reduction="none").shape == (0,)
    btf.seesaw_loss(e, te, cs, reduction="sum").backward()
    assert e.grad.shape == (0, 5)


@pytest.mark.parametrize("C", [1, 2, 7, 8, 9, 16, 17, 1000, 1025, 2051])
def test_class_counts_around_vector_widths(device, C):
    x, t, cs = _case(9, C, device, torch.float32)
    _check_against_reference(x, t, cs, reduction="none")
    if C == 1:
        assert (btf.seesaw_loss(x, t, cs, reduction="none") == 0).all()


def test_no_grad_non_contiguous_and_input_untouched(device):
    base, t, cs = _case(12, 20, device, torch.float32)
    x = base.t().contiguous().t()  # same values, column-major strides
    assert not x.is_contiguous()
    before = x.clone()
    with torch.no_grad():
        torch.testing.assert_close(btf.seesaw_loss(x, t, cs), seesaw_reference(base, t, cs).float())
    _check_against_reference(x, t, cs)
    assert torch.equal(x, before)


def test_backward_retain_graph_and_double_backward(device):
    x, t, cs = _case(16, 9, device, torch.float64)
    x.requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(seesaw_reference(xr, t, cs), xr)
    loss = btf.seesaw_loss(x, t, cs)
    (3.0 * loss).backward(retain_graph=True)
    torch.testing.assert_close(x.grad, 3.0 * ref)
    loss.backward()  # the buffer was handed over: recomputed from the saved input
    torch.testing.assert_close(x.grad, 4.0 * ref)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(btf.seesaw_loss(x, t, cs), x, create_graph=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(device, dtype):
    x, t, cs = _case(33, 17, device, dtype)
    loss, grad, _ = _value_and_grad(btf.seesaw_loss, x, t, cs, reduction="sum")
    assert loss.dtype == dtype and grad.dtype == dtype
    ref, ref_grad, _ = _value_and_grad(seesaw_reference, x.double(), t, cs, reduction="sum")
    torch.testing.assert_close(loss.double(), ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=2e-2, atol=2e-2)


def test_autocast_returns_float32():
    lin = torch.nn.Linear(8, 6)
    inp = torch.randn(20, 8)
    t = torch.randint(0, 6, (20,))
    cs = torch.tensor([100.0, 50, 20, 5, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lin(inp)
        assert logits.dtype == torch.bfloat16
        loss = btf.seesaw_loss(logits, t, cs)
        module_loss = bt.nn.SeesawLoss(6)(logits, t)
    assert loss.dtype == torch.float32 and module_loss.dtype == torch.float32
    torch.testing.assert_close(loss, seesaw_reference(logits.float(), t, cs).float())
    loss.backward()
    assert lin.weight.grad.dtype == torch.float32


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("p", [0.0, 0.8, 2.0])
def test_gradcheck_float64(device, reduction, p):
    """Finite differences where the factors are constants of x: q = 0 (mitigation depends on the counts only).

    With q > 0 the compensation factor moves with x but is held constant by the
    backward (as in MMDetection): that gradient is checked against the
    reference's autograd (test_equals_reference, test_gradient_is_detached_factors_gradient).
    """
    x, t, cs = _case(6, 5, device, torch.float64)
    t[2] = -100
    xr = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda inp: btf.seesaw_loss(inp, t, cs, p, 0.0, reduction=reduction), (xr,), eps=1e-6, atol=1e-6
    )


def test_gradient_is_detached_factors_gradient(device):
    """With the compensation on, the gradient is softmax(z') - onehot (factors constant), not d(loss)/dx."""
    x, t, cs = _case(7, 4, device, torch.float64)
    xr = x.clone().requires_grad_(True)
    btf.seesaw_loss(xr, t, cs, reduction="sum").backward()
    with torch.no_grad():
        sigma = torch.softmax(x, 1)
        own = sigma.gather(1, t[:, None]).clamp(min=1e-2)
        comp = (sigma / own).clamp(min=1).pow(2.0)
        n = cs.double().clamp(min=1)
        mit = (n[None, :] / n[t][:, None]).clamp(max=1).pow(0.8)
        onehot = F.one_hot(t, 4).double()
        zs = x + (comp * mit).log() * (1 - onehot)
        expected = torch.softmax(zs, 1) - onehot
    torch.testing.assert_close(xr.grad, expected)


def test_opcheck(device):
    x, t, cs = _case(8, 6, device, torch.float32)
    x.requires_grad_(True)
    for reduction in (0, 1, 2):
        for compute_grad in (True, False):
            torch.library.opcheck(
                torch.ops.balancedtorch.seesaw_loss.default, (x, t, cs, 0.8, 2.0, 1e-2, -100, reduction, compute_grad)
            )


# ---------------------------------------------------------------------------------------------
# adversarial logits (hypothesis)
# ---------------------------------------------------------------------------------------------

try:  # hypothesis is a test dependency; the tests above run without it
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:

    @st.composite
    def _problems(draw):
        N, C = draw(st.integers(1, 6)), draw(st.integers(1, 20))
        kind = draw(st.sampled_from(["normal", "ties", "offset", "huge", "tiny", "one_hot"]))
        x = torch.randn(N, C, dtype=torch.float64, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))))
        if kind == "ties":
            x = torch.tensor(
                draw(st.lists(st.sampled_from([-1.0, 0.0, 2.0]), min_size=N * C, max_size=N * C)), dtype=torch.float64
            )
            x = x.view(N, C)
        elif kind == "offset":
            x = x + draw(st.sampled_from([-1e4, 1e4, 3e5]))
        elif kind == "huge":
            x = x * draw(st.sampled_from([50.0, 200.0, 1e3]))
        elif kind == "tiny":
            x = x * 1e-30
        elif kind == "one_hot":
            x = torch.zeros(N, C, dtype=torch.float64)
            x[:, draw(st.integers(0, C - 1))] = draw(st.sampled_from([30.0, -30.0, 100.0]))
        t = torch.tensor(draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)))
        counts = torch.tensor(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 7.0, 1e3, 1e9]), min_size=C, max_size=C)))
        p = draw(st.sampled_from([0.0, 0.8, 3.0]))
        q = draw(st.sampled_from([0.0, 2.0, 5.0]))
        eps = draw(st.sampled_from([1e-12, 1e-2, 0.5]))
        dtype = draw(st.sampled_from([torch.float32, torch.float64]))
        return x, t, counts, p, q, eps, dtype

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_problems())
    def test_adversarial_logits_match_reference(problem):
        x, t, counts, p, q, eps, dtype = problem
        x = x.to(dtype)
        ours = x.clone().requires_grad_(True)
        lo = btf.seesaw_loss(ours, t, counts, p, q, eps, reduction="none")
        lo.sum().backward()
        assert torch.isfinite(lo).all() and torch.isfinite(ours.grad).all()
        assert (lo >= 0).all()
        # each gradient row: a probability vector minus the target's one-hot
        torch.testing.assert_close(ours.grad.double().sum(1), torch.zeros(x.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)
        ref = x.double().clone().requires_grad_(True)
        lr = seesaw_reference(ref, t, counts, p, q, eps, reduction="none")
        lr.sum().backward()
        if torch.isfinite(lr).all():  # the reference's powers may overflow where the log-domain kernel does not
            tol = 1e-4 if dtype == torch.float32 else 1e-9
            scale = 1.0 + lr.abs()
            torch.testing.assert_close(lo.double() / scale, lr.detach() / scale, rtol=tol, atol=tol)
            torch.testing.assert_close(ours.grad.double(), ref.grad, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# the module: cum_samples buffer
# ---------------------------------------------------------------------------------------------


def test_module_updates_counts_before_the_loss(device):
    C = 6
    m = bt.nn.SeesawLoss(C).to(device)
    assert m.cum_samples.dtype == torch.float32 and m.cum_samples.shape == (C,)
    assert (m.cum_samples == 0).all()
    total = torch.zeros(C, device=device)
    for _ in range(3):
        x, t, _ = _case(25, C, device, torch.float32)
        t[0] = -100
        total += torch.bincount(t[t != -100], minlength=C).float()
        xr = x.clone().requires_grad_(True)
        loss = m(xr, t)
        torch.testing.assert_close(m.cum_samples, total)
        expected = x.clone().requires_grad_(True)
        ref = seesaw_reference(expected, t, total)
        torch.testing.assert_close(loss, ref.float())
        loss.backward()
        ref.backward()
        torch.testing.assert_close(xr.grad, expected.grad)


def test_module_options_and_repr():
    m = bt.nn.SeesawLoss(5, p=0.5, q=1.0, eps=0.1, reduction="sum", ignore_index=255)
    assert repr(m) == "SeesawLoss(num_classes=5, p=0.5, q=1.0, eps=0.1, reduction='sum', ignore_index=255)"
    x, t, _ = _case(10, 5, "cpu", torch.float64)
    t[3] = 255
    loss = m(x, t)
    counts = torch.bincount(t[t != 255], minlength=5).double()
    torch.testing.assert_close(loss, seesaw_reference(x, t, counts, 0.5, 1.0, 0.1, "sum", 255))


def test_module_state_dict_to_and_snapshot():
    m = bt.nn.SeesawLoss(4)
    x = torch.randn(6, 4, requires_grad=True)
    m(x, torch.tensor([0, 0, 1, 2, 3, 3]))
    state = m.state_dict()
    assert torch.equal(state["cum_samples"], torch.tensor([2.0, 1, 1, 2]))
    fresh = bt.nn.SeesawLoss(4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.cum_samples, m.cum_samples)
    assert fresh.cum_samples.data_ptr() != m.cum_samples.data_ptr()
    m64 = bt.nn.SeesawLoss(4).to(torch.float64)
    assert m64.cum_samples.dtype == torch.float64
    # two forwards before one backward: each loss keeps the counts it saw
    m2 = bt.nn.SeesawLoss(4)
    x1, x2 = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    t1, t2 = torch.tensor([0, 0, 0, 1, 2]), torch.tensor([3, 3, 3, 3, 0])
    (m2(x1, t1) + m2(x2, t2)).backward()
    r1, r2 = x1.detach().clone().requires_grad_(True), x2.detach().clone().requires_grad_(True)
    c1 = torch.tensor([3.0, 1, 1, 0])
    (seesaw_reference(r1, t1, c1) + seesaw_reference(r2, t2, c1 + torch.tensor([1.0, 0, 0, 4]))).backward()
    torch.testing.assert_close(x1.grad, r1.grad.float())
    torch.testing.assert_close(x2.grad, r2.grad.float())


def test_module_torch_compile_fullgraph(device):
    """The buffer update inside forward compiles with the loss (fullgraph) and matches eager."""
    C = 5
    model = torch.nn.Linear(8, C).to(device)
    crit_c = bt.nn.SeesawLoss(C).to(device)
    crit_e = bt.nn.SeesawLoss(C).to(device)

    def step(crit, inp, tgt):
        return crit(model(inp), tgt)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for _ in range(2):
        inp = torch.randn(16, 8, device=device)
        tgt = torch.randint(0, C, (16,), device=device)
        loss_c = compiled(crit_c, inp, tgt)
        loss_c.backward()
        grad_c = model.weight.grad.clone()
        model.weight.grad = None
        loss_e = step(crit_e, inp, tgt)
        loss_e.backward()
        torch.testing.assert_close(loss_c, loss_e)
        torch.testing.assert_close(grad_c, model.weight.grad)
        torch.testing.assert_close(crit_c.cum_samples, crit_e.cum_samples)
        model.weight.grad = None
    assert crit_c.cum_samples.sum().item() == 32


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(p=-0.1), ValueError, r"p must be a finite number >= 0, got -0.1"),
        (dict(q=-1), ValueError, r"q must be a finite number >= 0, got -1"),
        (dict(p=float("nan")), ValueError, r"p must be"),
        (dict(q=float("inf")), ValueError, r"q must be"),
        (dict(eps=0.0), ValueError, r"eps must be a finite number > 0, got 0.0"),
        (dict(eps=-1e-3), ValueError, r"eps must be"),
        (dict(p="0.8"), TypeError, r"p must be"),
        (dict(reduction="avg"), ValueError, "reduction must be 'none', 'mean' or 'sum', got 'avg'"),
        (dict(ignore_index=1.5), TypeError, "ignore_index must be an int"),
    ],
)
def test_bad_options(kwargs, error, match):
    x, t, cs = torch.randn(3, 4), torch.tensor([0, 1, 3]), torch.ones(4)
    with pytest.raises(error, match=match):
        btf.seesaw_loss(x, t, cs, **kwargs)
    with pytest.raises(error, match=match):
        bt.nn.SeesawLoss(4, **kwargs)


def test_bad_tensors(device):
    x = torch.randn(3, 4, device=device)
    t = torch.tensor([0, 1, 3], device=device)
    cs = torch.ones(4, device=device)
    with pytest.raises(ValueError, match=r"cum_samples must have shape \(C,\) = \(4,\), got \[5\]"):
        btf.seesaw_loss(x, t, torch.ones(5, device=device))
    with pytest.raises(ValueError, match=r"cum_samples must have shape \(C,\)"):
        btf.seesaw_loss(x, t, torch.ones(1, 4, device=device))
    with pytest.raises(TypeError, match="cum_samples must be a floating or integer tensor"):
        btf.seesaw_loss(x, t, torch.ones(4, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match=r"target must have shape \(N,\) = \(3,\)"):
        btf.seesaw_loss(x, t[:2], cs)
    with pytest.raises(TypeError, match="target must hold class indices"):
        btf.seesaw_loss(x, t.float(), cs)
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\)"):
        btf.seesaw_loss(x[0], t[:1], cs)
    with pytest.raises(TypeError, match="input must be a floating tensor"):
        btf.seesaw_loss(t[:, None].expand(3, 4).contiguous(), t, cs)
    with pytest.raises(ValueError, match="cum_samples must not require grad"):
        btf.seesaw_loss(x, t, cs.clone().requires_grad_(True))
    with pytest.raises(TypeError, match="cum_samples must be a torch.Tensor"):
        btf.seesaw_loss(x, t, [1.0, 1.0, 1.0, 1.0])
    if device.type == "cpu":  # CUDA: device-side assertions (no host sync)
        with pytest.raises(ValueError, match=r"cum_samples must be finite and >= 0, got cum_samples\[2\] = -1"):
            btf.seesaw_loss(x, t, torch.tensor([1.0, 1, -1, 1]))
        with pytest.raises(ValueError, match=r"cum_samples\[0\] = nan"):
            btf.seesaw_loss(x, t, torch.tensor([float("nan"), 1, 1, 1]))
        with pytest.raises(ValueError, match=r"target must hold class indices in \[0, C=4\) .* got target 4 at index 1"):
            btf.seesaw_loss(x, torch.tensor([0, 4, 1]), cs)
        with pytest.raises(ValueError, match=r"got target -1 at index 2"):
            btf.seesaw_loss(x, torch.tensor([0, 1, -1]), cs)
        # raw op: the same checks
        with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got 0"):
            torch.ops.balancedtorch.seesaw_loss(x, t, cs, 0.8, 2.0, 0.0, -100, 1, False)
        with pytest.raises(ValueError, match=r"p must be a finite number >= 0, got -1"):
            torch.ops.balancedtorch.seesaw_loss(x, t, cs, -1.0, 2.0, 0.01, -100, 1, False)
        with pytest.raises(ValueError, match=r"reduction must be 0 \(none\), 1 \(mean\) or 2 \(sum\), got 7"):
            torch.ops.balancedtorch.seesaw_loss(x, t, cs, 0.8, 2.0, 0.01, -100, 7, False)


def test_module_bad_input_leaves_the_buffer_untouched():
    m = bt.nn.SeesawLoss(4)
    with pytest.raises(ValueError, match=r"labels? .*4|class indices|\[0, 4\)"):
        m(torch.randn(3, 4), torch.tensor([0, 4, 1]))
    assert (m.cum_samples == 0).all()
    with pytest.raises(ValueError, match=r"input must have shape \(N, num_classes=4\), got \(3, 5\)"):
        m(torch.randn(3, 5), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"target must have shape \(N,\) = \(3,\)"):
        m(torch.randn(3, 4), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="target must hold class indices"):
        m(torch.randn(3, 4), torch.tensor([0.0, 1.0, 1.0]))
    assert (m.cum_samples == 0).all()
    with pytest.raises(ValueError, match="num_classes"):
        bt.nn.SeesawLoss(0)
    with pytest.raises(TypeError, match="distributed"):
        bt.nn.SeesawLoss(3, distributed="yes")


def test_mixed_devices_are_value_errors():
    x, t, cs = torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.ones(3)
    with pytest.raises(ValueError, match="seesaw_loss: target is on meta but input is on cpu"):
        btf.seesaw_loss(x, t.to("meta"), cs)
    with pytest.raises(ValueError, match="seesaw_loss: cum_samples is on meta but input is on cpu"):
        btf.seesaw_loss(x, t, cs.to("meta"))
    meta = btf.seesaw_loss(x.to("meta"), t.to("meta"), cs.to("meta"), reduction="none")
    assert meta.shape == (4,) and meta.device.type == "meta"


@pytest.mark.parametrize("obj", [bt.nn.SeesawLoss, btf.seesaw_loss], ids=lambda o: o.__qualname__)
def test_public_docstrings(obj):
    import inspect

    fn = obj.forward if isinstance(obj, type) else obj
    doc = inspect.getdoc(fn) or ""
    for section in ("Args:", "Returns:", "Example:", "Tensor["):
        assert section in doc, f"{obj.__qualname__}: docstring lacks {section!r}"
    for name in inspect.signature(fn).parameters:
        assert name == "self" or name in doc, f"{obj.__qualname__}: argument {name!r} undocumented"
    class_doc = inspect.getdoc(bt.nn.SeesawLoss)
    for name in inspect.signature(bt.nn.SeesawLoss).parameters:
        assert name in class_doc, name


# ---------------------------------------------------------------------------------------------
# CUDA: no host synchronisation per step
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_step_does_not_synchronise():
    x, t, _ = _case(64, 10, "cuda", torch.float32)
    x.requires_grad_(True)
    m = bt.nn.SeesawLoss(10).cuda()
    m(x, t)  # warm-up (lazy initialisation may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        m(x, t).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)


# ---------------------------------------------------------------------------------------------
# DDP: the batch counts are summed over the ranks, so every rank holds the same buffer
# ---------------------------------------------------------------------------------------------


def _ddp_batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 5, generator=g)  # (rank, step, N, C)
    t = torch.randint(0, 5, (2, 3, 12), generator=g)
    t[0, 0, :4] = 0
    t[1, 1, 0] = -100
    return x, t


def _ddp_worker(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file)
    try:
        x, t = _ddp_batches()
        m = bt.nn.SeesawLoss(5)
        losses, grads, buffers = [], [], []
        for step in range(3):
            xr = x[rank, step].clone().requires_grad_(True)
            loss = m(xr, t[rank, step])
            loss.backward()
            losses.append(loss.detach())
            grads.append(xr.grad)
            buffers.append(m.cum_samples.clone())
        save_rank({"losses": losses, "grads": grads, "buffers": buffers}, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_share_the_counts(tmp_path):
    parts = run_ranks(_ddp_worker, 2, tmp_path)
    x, t = _ddp_batches()
    total = torch.zeros(5)
    for step in range(3):
        both = t[:, step].reshape(-1)
        total = total + torch.bincount(both[both != -100], minlength=5).float()
        for rank in range(2):
            got = parts[rank]
            torch.testing.assert_close(got["buffers"][step], total)
            xr = x[rank, step].clone().requires_grad_(True)
            ref = seesaw_reference(xr, t[rank, step], total)
            ref.backward()
            torch.testing.assert_close(got["losses"][step], ref.float())
            torch.testing.assert_close(got["grads"][step], xr.grad)


@pytest.mark.parametrize("bad,index,value", [([0, 4, 1], 1, 4), ([0, 1, -1], 2, -1), ([2, -7, 3], 1, -7)])
def test_module_out_of_range_target_names_target(bad, index, value):
    m = bt.nn.SeesawLoss(4)
    m(torch.randn(2, 4), torch.tensor([0, 3]))
    before = m.cum_samples.clone()
    with pytest.raises(
        ValueError, match=rf"SeesawLoss: target must hold class indices in \[0, 4\).*target\[{index}\] = {value}$"
    ):
        m(torch.randn(3, 4), torch.tensor(bad))
    assert torch.equal(m.cum_samples, before)


def test_module_meta_tensors_are_value_errors():
    m = bt.nn.SeesawLoss(3)
    with pytest.raises(ValueError, match="SeesawLoss: input is on the meta device"):
        m(torch.randn(2, 3, device="meta"), torch.zeros(2, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match="SeesawLoss: target is on the meta device"):
        m(torch.randn(2, 3), torch.zeros(2, dtype=torch.long, device="meta"))
    assert (m.cum_samples == 0).all()


def test_op_refuses_cum_samples_that_require_grad():
    x, t = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0])
    counts = torch.tensor([5.0, 2.0, 1.0], requires_grad=True)
    with pytest.raises(ValueError, match="seesaw_loss: cum_samples must not require grad"):
        torch.ops.balancedtorch.seesaw_loss(x, t, counts, 0.8, 2.0, 1e-2, -100, 1, True)
    with torch.no_grad():
        if REFUSED_UNDER_NO_GRAD:  # torch < 2.5 runs the autograd kernel under no_grad too
            with pytest.raises(ValueError, match="seesaw_loss: cum_samples must not require grad"):
                torch.ops.balancedtorch.seesaw_loss(x, t, counts, 0.8, 2.0, 1e-2, -100, 1, False)
            return
        got = torch.ops.balancedtorch.seesaw_loss(x, t, counts, 0.8, 2.0, 1e-2, -100, 1, False)[0]
    torch.testing.assert_close(got, seesaw_reference(x.detach(), t, counts.detach()).float())
