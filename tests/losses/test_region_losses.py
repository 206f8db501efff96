"""Fused region losses (issue 13 §1): Dice, generalised Dice, Tversky, DiceCE, DiceFocal.

Against a plain PyTorch reference (one-hot + softmax + sums), MONAI 1.x, nnU-Net's
soft Dice, gradcheck, opcheck (also channels-last), torch.compile, bad input and
a 2-process gloo run of distributed=True.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
import balancedtorch.functional as btf

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

# ---------------------------------------------------------------------------------------------
# plain reference
# ---------------------------------------------------------------------------------------------


def _probs_and_onehot(x, target, activation, ignore_index):
    """p (N, C, S), t (N, C, S), valid (N, 1, S) in float64."""
    x = x.double()
    N, C = x.shape[:2]
    xs = x.reshape(N, C, -1)
    p = torch.softmax(xs, 1) if activation == "softmax" else torch.sigmoid(xs)
    if target.is_floating_point():
        t = target.double().reshape(N, C, -1)
        valid = torch.ones(N, 1, t.shape[2], dtype=torch.float64)
    else:
        ts = target.reshape(N, -1).long()
        valid = (ts != ignore_index).double().unsqueeze(1)
        t = F.one_hot(ts.clamp(0, C - 1) * (ts != ignore_index), C).permute(0, 2, 1).double() * valid
    return p, t, valid


def reference(
    x,
    target,
    kind="dice",
    activation="softmax",
    include_background=True,
    squared_pred=False,
    jaccard=False,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    batch=False,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    w_type="square",
    alpha=0.5,
    beta=0.5,
    gamma=1.0,
    ce=None,
    ce_gamma=0.0,
    label_smoothing=0.0,
    lambda_dice=1.0,
    lambda_ce=1.0,
):
    p, t, valid = _probs_and_onehot(x, target, activation, ignore_index)
    pv = p * valid
    if not include_background:
        pv, t = pv[:, 1:], t[:, 1:]
    dims = [0, 2] if batch else [2]
    I = (pv * t).sum(dims)
    P = (pv * pv if squared_pred else pv).sum(dims)
    T = (t * t if squared_pred else t).sum(dims)
    if batch:
        I, P, T = I[None], P[None], T[None]
    w = None if weight is None else weight.double()
    if w is not None and not include_background:
        w = w[1:]
    if kind == "gdl":
        gw = {"square": 1 / (T * T), "simple": 1 / T, "uniform": torch.ones_like(T)}[w_type]
        inf = torch.isinf(gw)
        gw = torch.where(inf, torch.zeros_like(gw), gw)
        gw = gw + inf * gw.max(1, keepdim=True).values
        terms = 1 - (2 * (gw * I).sum(1) + smooth_nr) / ((gw * (P + T)).sum(1) + smooth_dr)
    elif kind == "tversky":
        ti = (I + smooth_nr) / (I + alpha * (P - I) + beta * (T - I) + smooth_dr)
        terms = (1 - ti).clamp(min=0) ** gamma if gamma != 1.0 else 1 - ti
    else:
        den = 2 * (P + T - I) + smooth_dr if jaccard else P + T + smooth_dr
        terms = 1 - (2 * I + smooth_nr) / den
    if w is not None and kind != "gdl":
        terms = terms * w
    if reduction == "none":
        return terms
    loss = terms.mean() if reduction == "mean" else terms.sum()
    if ce is None:
        return loss
    xd = x.double()
    red = reduction
    if activation == "softmax":
        tgt = target.double() if target.is_floating_point() else target.long()
        if ce == "ce" or ce_gamma == 0.0:
            ce_loss = F.cross_entropy(
                xd,
                tgt,
                weight=weight.double() if weight is not None else None,
                ignore_index=ignore_index,
                reduction=red,
                label_smoothing=label_smoothing,
            )
        else:
            ce_loss = bt.nn.FocalLoss(
                gamma=ce_gamma,
                weight=weight.double() if weight is not None else None,
                ignore_index=ignore_index,
                reduction=red,
                label_smoothing=label_smoothing,
            )(xd, tgt)
    elif ce == "ce":
        pw = None if weight is None else weight.double().view([-1] + [1] * (x.dim() - 2))
        ce_loss = F.binary_cross_entropy_with_logits(xd, target.double(), pos_weight=pw, reduction=red)
    else:
        tt = target.double()
        el = xd - xd * tt - F.logsigmoid(xd)
        if ce == "focal_tv":  # torchvision's modulating term (the kernels'): differentiable in soft targets alike
            p = torch.sigmoid(xd)
            el = (p * (1 - tt) + (1 - p) * tt) ** ce_gamma * el
        else:  # MONAI's: the same at t in {0, 1}
            el = torch.exp(F.logsigmoid(-xd * (tt * 2 - 1)) * ce_gamma) * el
        if weight is not None:
            el = el * weight.double().view([1, -1] + [1] * (x.dim() - 2))
        if not include_background:
            el = el[:, 1:]
        ce_loss = el.mean() if red == "mean" else el.sum()
    return lambda_dice * loss + lambda_ce * ce_loss


def _inputs(N=3, C=4, spatial=(5, 6), activation="softmax", dense=False, ignore=False, dtype=torch.float64):
    x = torch.randn(N, C, *spatial, dtype=dtype) * 2
    if activation == "sigmoid":
        target = (torch.rand(N, C, *spatial) < 0.3).to(dtype)
    elif dense:
        target = torch.softmax(torch.randn(N, C, *spatial, dtype=dtype) * 3, 1)
    else:
        target = torch.randint(0, C, (N, *spatial))
        if ignore:
            target[torch.rand(target.shape) < 0.2] = -100
    return x, target


def _check(fn, ref_kwargs, x, target, **kwargs):
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    got = fn(xa, target, **kwargs)
    want = reference(xb, target, **ref_kwargs)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-8)
    if got.dim() == 0:
        got.backward()
        want.backward()
    else:
        g = torch.rand_like(want)
        got.backward(g.to(got.dtype))
        want.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad.to(xa.dtype), rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# against the reference, option by option
# ---------------------------------------------------------------------------------------------

# every value of every option, each pair of (activation, include_background, reduction), the
# three booleans cycled through their 8 combinations
_DICE_CASES = [
    (act, bg, *flags, red)
    for (act, bg, red), flags in zip(
        itertools.product(["softmax", "sigmoid"], [True, False], ["mean", "sum", "none"]),
        itertools.cycle(itertools.product([False, True], repeat=3)),
    )
]


@pytest.mark.parametrize("activation,include_background,squared_pred,jaccard,batch,reduction", _DICE_CASES)
def test_dice_matches_reference(activation, include_background, squared_pred, jaccard, batch, reduction):
    x, target = _inputs(activation=activation, ignore=True)
    weight = torch.rand(4, dtype=torch.float64) + 0.5 if squared_pred else None
    opts = dict(
        activation=activation,
        include_background=include_background,
        squared_pred=squared_pred,
        jaccard=jaccard,
        batch=batch,
        weight=weight,
        reduction=reduction,
    )
    _check(btf.dice_loss, opts, x, target, **opts)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("smooth", [(1e-5, 1e-5), (1.0, 1.0), (0.0, 1e-3)])
def test_dice_targets_and_smoothing(dense, smooth):
    x, target = _inputs(dense=dense, ignore=not dense)
    opts = dict(smooth_nr=smooth[0], smooth_dr=smooth[1])
    _check(btf.dice_loss, opts, x, target, **opts)


@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize(
    "batch,include_background,activation",
    [(False, True, "softmax"), (True, False, "softmax"), (False, False, "sigmoid"), (True, True, "sigmoid")],
)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_generalized_dice_matches_reference(w_type, batch, include_background, activation, reduction):
    x, target = _inputs(C=5, activation=activation, ignore=True)
    if activation == "softmax":
        target[0][target[0] == 3] = 0  # an empty class: MONAI's inf weight replacement
    else:
        target[:, 2] = 0
    opts = dict(w_type=w_type, batch=batch, include_background=include_background, activation=activation, reduction=reduction)
    _check(btf.generalized_dice_loss, dict(kind="gdl", **opts), x, target, **opts)


@pytest.mark.parametrize("alpha,beta,gamma", [(0.5, 0.5, 1.0), (0.3, 0.7, 1.0), (0.7, 0.3, 0.75), (0.0, 1.0, 2.0)])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_tversky_matches_reference(alpha, beta, gamma, batch, activation):
    x, target = _inputs(activation=activation, ignore=True)
    weight = torch.rand(4, dtype=torch.float64) + 0.5
    opts = dict(alpha=alpha, beta=beta, gamma=gamma, batch=batch, activation=activation, weight=weight)
    _check(btf.tversky_loss, dict(kind="tversky", **opts), x, target, **opts)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize(
    "include_background,weighted,reduction", [(True, False, "mean"), (False, True, "mean"), (True, True, "sum")]
)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_dice_ce_matches_reference(activation, include_background, weighted, reduction, label_smoothing):
    if activation == "sigmoid" and label_smoothing:
        pytest.skip("label smoothing is softmax-only")
    x, target = _inputs(activation=activation, ignore=activation == "softmax")
    weight = torch.rand(4, dtype=torch.float64) + 0.5 if weighted else None
    opts = dict(
        activation=activation,
        include_background=include_background,
        weight=weight,
        reduction=reduction,
        label_smoothing=label_smoothing,
        lambda_dice=0.7,
        lambda_ce=1.3,
    )
    _check(btf.dice_ce_loss, dict(ce="ce", **opts), x, target, **opts)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("include_background,weighted,dense", [(True, False, False), (False, True, False), (True, True, True)])
def test_dice_focal_matches_reference(activation, gamma, include_background, weighted, dense):
    x, target = _inputs(activation=activation, ignore=activation == "softmax" and not dense, dense=dense)
    weight = torch.rand(4, dtype=torch.float64) + 0.5 if weighted else None
    opts = dict(activation=activation, include_background=include_background, weight=weight, lambda_focal=0.5)
    ref = dict(
        activation=activation, include_background=include_background, weight=weight, lambda_ce=0.5, ce="focal", ce_gamma=gamma
    )
    _check(btf.dice_focal_loss, ref, x, target, gamma=gamma, **opts)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_any_integer_target_dtype_and_n1_targets(dtype):
    x, target = _inputs(dtype=torch.float32)
    want = btf.dice_ce_loss(x, target)
    torch.testing.assert_close(btf.dice_ce_loss(x, target.to(dtype)), want)
    torch.testing.assert_close(btf.dice_ce_loss(x, target.unsqueeze(1)), want)


def test_ignore_index_pixels_excluded_from_every_sum():
    x, target = _inputs(dtype=torch.float32, ignore=False)
    keep = torch.rand(target.shape) < 0.7
    masked = torch.where(keep, target, torch.full_like(target, 255))
    got = btf.dice_ce_loss(x, masked, ignore_index=255, batch=True)
    # the same pixels cut out by hand: one sample of only the kept pixels
    xs = x.permute(1, 0, 2, 3)[:, keep].T.unsqueeze(0).transpose(1, 2)  # (1, C, K)
    want = btf.dice_ce_loss(xs.contiguous(), target[keep].unsqueeze(0), batch=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the ignored pixels' logits get no gradient and do not change the loss
    xr = x.clone().requires_grad_(True)
    btf.dice_ce_loss(xr, masked, ignore_index=255).backward()
    assert bool((xr.grad.permute(1, 0, 2, 3)[:, ~keep] == 0).all())
    x2 = torch.where(keep.unsqueeze(1), x, torch.randn_like(x) * 10)
    torch.testing.assert_close(btf.dice_ce_loss(x2, masked, ignore_index=255), btf.dice_ce_loss(x, masked, ignore_index=255))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(dtype):
    x, target = _inputs(N=2, C=5, spatial=(16, 16), dtype=torch.float32)
    xh = x.to(dtype).requires_grad_(True)
    got = btf.dice_ce_loss(xh, target)
    got.backward()
    xr = xh.detach().float().requires_grad_(True)
    want = reference(xr, target, ce="ce")
    want.backward()
    assert got.dtype == dtype and xh.grad.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(xh.grad.float(), xr.grad.float(), rtol=2e-2, atol=2e-4)


def test_channels_last_equals_contiguous():
    x, target = _inputs(N=2, C=6, spatial=(7, 9), dtype=torch.float32, ignore=True)
    xc = x.clone().requires_grad_(True)
    xl = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    a = btf.dice_focal_loss(xc, target, include_background=False, squared_pred=True)
    b = btf.dice_focal_loss(xl, target, include_background=False, squared_pred=True)
    a.backward()
    b.backward()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(xc.grad, xl.grad)
    assert xl.grad.is_contiguous(memory_format=torch.channels_last)


def test_3d_volumes_and_large_images_chunked():
    x, target = _inputs(N=2, C=3, spatial=(4, 5, 6), ignore=True)
    _check(btf.dice_ce_loss, dict(ce="ce", batch=True), x, target, batch=True)
    x, target = _inputs(N=1, C=3, spatial=(150, 200), ignore=True)  # several chunks per sample
    _check(btf.dice_loss, dict(batch=True), x, target, batch=True)


# ---------------------------------------------------------------------------------------------
# full tiles: float/double NC[S] softmax logits with class-index targets have a path of their own
# (32 float or 16 double pixels a tile); shapes here hold full tiles, a partial last one and, at
# (64, 70), several chunks per sample, so both paths run in one call
# ---------------------------------------------------------------------------------------------


def _full_tile_cases():
    w = torch.rand(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5
    return [
        ("dice", btf.dice_loss, {}, {}),
        ("dice squared weighted", btf.dice_loss, dict(squared_pred=True, weight=w), None),
        ("dice jaccard no background", btf.dice_loss, dict(jaccard=True, include_background=False), None),
        ("dice batch none", btf.dice_loss, dict(batch=True, reduction="none"), None),
        ("generalized dice", btf.generalized_dice_loss, {}, dict(kind="gdl")),
        ("tversky", btf.tversky_loss, dict(alpha=0.3, beta=0.7, gamma=0.75), dict(kind="tversky")),
        ("dice ce weighted", btf.dice_ce_loss, dict(weight=w, lambda_dice=0.7, lambda_ce=1.3), dict(ce="ce")),
        ("dice ce squared", btf.dice_ce_loss, dict(squared_pred=True), dict(ce="ce")),
        ("dice ce lambda_ce 0", btf.dice_ce_loss, dict(lambda_ce=0.0), dict(ce="ce")),
        ("dice focal", btf.dice_focal_loss, dict(gamma=2.0), dict(ce="focal", ce_gamma=2.0)),
        ("dice focal 1.5 weighted", btf.dice_focal_loss, dict(gamma=1.5, weight=w), dict(ce="focal", ce_gamma=1.5)),
    ]


_FULL_TILE_CASES = _full_tile_cases()


def _ref_opts(opts, ref):
    ref_opts = dict(opts) if ref is None else {**opts, **ref}
    for ours, theirs in (("lambda_focal", "lambda_ce"), ("gamma", "ce_gamma")):
        if ours in ref_opts and ref_opts.get("ce") == "focal":
            ref_opts[theirs] = ref_opts.pop(ours)
    return ref_opts


@pytest.mark.parametrize("case", _FULL_TILE_CASES, ids=[c[0] for c in _FULL_TILE_CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spatial,ignore", [((7, 19), False), ((7, 19), True), ((64, 70), True)])
def test_full_tiles_match_reference(case, dtype, spatial, ignore):
    _, fn, opts, ref = case
    x, target = _inputs(N=2, C=5, spatial=spatial, ignore=ignore)
    x[:, 2, ::3] += 12  # confident pixels: p_t -> 1 where class 2 is the target
    xa = x.to(dtype).requires_grad_(True)
    xb = xa.detach().double().requires_grad_(True)
    got = fn(xa, target, **opts)
    want = reference(xb, target, **_ref_opts(opts, ref))
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-7)
    torch.testing.assert_close(got.double(), want, **tol)
    g = torch.rand_like(want)
    got.backward(g.to(dtype))
    want.backward(g)
    scale = xb.grad.abs().max().item()
    torch.testing.assert_close(xa.grad.double(), xb.grad, rtol=tol["rtol"] * 10, atol=scale * tol["rtol"])


def test_full_tiles_equal_the_channels_last_path():
    # channels-last logits take the general path: the same loss, the same gradient
    x, target = _inputs(N=2, C=6, spatial=(9, 40), ignore=True, dtype=torch.float32)
    for fn, opts in ((btf.dice_loss, dict(squared_pred=True)), (btf.dice_ce_loss, {}), (btf.dice_focal_loss, {})):
        xa = x.clone().requires_grad_(True)
        xb = x.to(memory_format=torch.channels_last).requires_grad_(True)
        la, lb = fn(xa, target, **opts), fn(xb, target, **opts)
        la.backward()
        lb.backward()
        torch.testing.assert_close(la, lb, rtol=1e-6, atol=0)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6 * xa.grad.abs().max().item())


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("fn,ref", [(btf.dice_ce_loss, dict(ce="ce")), (btf.dice_focal_loss, dict(ce="focal", ce_gamma=2.0))])
def test_weighted_ce_mean_of_many_pixels_is_accurate_in_float32(channels_last, fn, ref):
    # the CE part's sum and its weight sum over 131072 pixels: a float32 running sum of the
    # weight 0.7 drifted by 4e-5 relative; the kernels sum chunks in double
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 256, 256, generator=g)
    t = torch.randint(0, 5, (2, 256, 256), generator=g)
    w = torch.full((5,), 0.7)
    xa = x.to(memory_format=torch.channels_last) if channels_last else x
    kw = dict(weight=w, lambda_dice=0.0) if fn is btf.dice_ce_loss else dict(weight=w, lambda_dice=0.0, gamma=2.0)
    got = fn(xa, t, **kw)
    want = reference(x.double(), t, weight=w.double(), lambda_dice=0.0, **ref)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)


try:  # hypothesis is a test dependency; the tests above run without it
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:

    @settings(max_examples=40, deadline=None)
    @given(
        n=st.integers(1, 3),
        c=st.integers(2, 21),
        s=st.integers(1, 200),
        offset=st.sampled_from([0.0, 1e3, -3e4]),
        spread=st.sampled_from([1e-3, 1.0, 40.0]),
        ties=st.booleans(),
        loss=st.sampled_from(["dice", "dice_ce", "dice_focal", "dice_sq"]),
        dtype=st.sampled_from([torch.float32, torch.float64]),
        seed=st.integers(0, 2**31 - 1),
    )
    def test_full_tiles_adversarial_logits(n, c, s, offset, spread, ties, loss, dtype, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, c, s, generator=g, dtype=torch.float64) * spread + offset
        if ties:
            x[:, :, ::2] = offset  # whole pixels of equal logits
            x[:, 1] = x[:, 0]  # duplicate classes
        target = torch.randint(0, c, (n, s), generator=g)
        target[torch.rand(n, s, generator=g) < 0.1] = -100
        fn, ref = {
            "dice": (btf.dice_loss, {}),
            "dice_sq": (lambda a, b: btf.dice_loss(a, b, squared_pred=True), dict(squared_pred=True)),
            "dice_ce": (btf.dice_ce_loss, dict(ce="ce")),
            "dice_focal": (lambda a, b: btf.dice_focal_loss(a, b, gamma=2.0), dict(ce="focal", ce_gamma=2.0)),
        }[loss]
        xa = x.to(dtype).requires_grad_(True)
        xb = xa.detach().double().requires_grad_(True)  # the reference sees the same (rounded) logits
        got = fn(xa, target)
        want = reference(xb, target, **ref)
        rtol = 1e-10 if dtype == torch.float64 else 3e-5
        # every pixel ignored: torch's mean CE is 0 / 0 = nan, and so is ours
        torch.testing.assert_close(got.double(), want, rtol=rtol, atol=rtol, equal_nan=True)
        if not torch.isfinite(want):
            return
        got.backward()
        want.backward()
        assert torch.isfinite(xa.grad).all()
        # g_c = p_c (a_c - B) cancels where p_c -> 1: its rounding is relative to the Dice
        # derivatives a_c, about 1 / (n c) for a class of few pixels, not to the largest gradient
        floor = 64 * torch.finfo(dtype).eps / (n * c)
        atol = xb.grad.abs().max().item() * rtol * 10 + floor
        torch.testing.assert_close(xa.grad.double(), xb.grad, rtol=rtol * 10, atol=atol)


def test_input_not_modified_and_raw_outputs_untouched():
    x, target = _inputs(dtype=torch.float32, ignore=True)
    x0, t0 = x.clone(), target.clone()
    xr = x.clone().requires_grad_(True)
    out = torch.ops.balancedtorch.region_loss(
        xr,
        target,
        None,
        0,
        0,
        True,
        False,
        False,
        1e-5,
        1e-5,
        False,
        -100,
        1,
        0,
        0.5,
        0.5,
        1.0,
        1,
        0.0,
        0.0,
        1.0,
        1.0,
        False,
        True,
    )
    buf = out[1].clone()
    (out[0] * 3).backward()
    torch.testing.assert_close(out[1], buf)  # a direct call's buffer is never scaled in place
    torch.testing.assert_close(xr.grad, buf * 3)
    assert torch.equal(xr.detach(), x0) and torch.equal(target, t0)


# ---------------------------------------------------------------------------------------------
# MONAI (value and gradient wherever the options overlap)
# ---------------------------------------------------------------------------------------------


def _monai_pair(ours, theirs, x, target_ours, target_theirs, rtol=1e-5, atol=1e-6):
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    a = ours(xa, target_ours)
    b = theirs(xb, target_theirs)
    torch.testing.assert_close(a, b.reshape(a.shape), rtol=rtol, atol=atol)
    g = torch.rand_like(a)
    a.backward(g)
    b.backward(g.reshape(b.shape))
    torch.testing.assert_close(xa.grad, xb.grad, rtol=rtol, atol=atol)


_MONAI_OPTS = [
    dict(),
    dict(include_background=False, batch=True),
    dict(squared_pred=True, jaccard=True, reduction="sum"),
    dict(batch=True, smooth_nr=0.0, smooth_dr=1e-3, reduction="none"),
    dict(include_background=False, reduction="none"),
]


@pytest.mark.parametrize("opts", _MONAI_OPTS)
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_dice_equals_monai(opts, activation):
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=4, spatial=(6, 7), activation=activation, dtype=torch.float32)
    weight = torch.rand(4) + 0.5
    ours = bt.nn.DiceLoss(activation=activation, weight=weight, **opts)
    mw = weight if opts.get("include_background", True) else weight[1:]
    if activation == "softmax":
        theirs = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, weight=mw, **opts)
        _monai_pair(ours, theirs, x, target, target.unsqueeze(1))
    else:
        theirs = monai_losses.DiceLoss(sigmoid=True, weight=mw, **opts)
        _monai_pair(ours, theirs, x, target, target)


def test_dice_ignore_index_equals_monai():
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=4, spatial=(6, 7), dtype=torch.float32)
    target[torch.rand(target.shape) < 0.25] = 255
    ours = bt.nn.DiceLoss(ignore_index=255, batch=True)
    theirs = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255, batch=True)
    _monai_pair(ours, theirs, x, target, target.unsqueeze(1))


@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("opts", [dict(), dict(batch=True, include_background=False), dict(reduction="sum")])
def test_generalized_dice_equals_monai(w_type, opts):
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=3, C=4, spatial=(6, 7), dtype=torch.float32)
    target[1][target[1] == 2] = 0  # an empty class
    ours = bt.nn.GeneralizedDiceLoss(w_type=w_type, **opts)
    theirs = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, w_type=w_type, **opts)
    _monai_pair(ours, theirs, x, target, target.unsqueeze(1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "opts", [dict(alpha=0.3, beta=0.7), dict(alpha=0.7, beta=0.3, batch=True, include_background=False), dict(reduction="sum")]
)
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_tversky_equals_monai(opts, activation):
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=4, spatial=(6, 7), activation=activation, dtype=torch.float32)
    ours = bt.nn.TverskyLoss(activation=activation, **opts)
    if activation == "softmax":
        theirs = monai_losses.TverskyLoss(softmax=True, to_onehot_y=True, **opts)
        _monai_pair(ours, theirs, x, target, target.unsqueeze(1))
    else:
        _monai_pair(ours, monai_losses.TverskyLoss(sigmoid=True, **opts), x, target, target)


@pytest.mark.parametrize(
    "opts",
    [
        dict(),
        dict(include_background=False, batch=True, label_smoothing=0.1),
        dict(reduction="sum", lambda_dice=0.3, lambda_ce=2.0, squared_pred=True),
    ],
)
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_dice_ce_equals_monai(opts, activation):
    monai_losses = pytest.importorskip("monai.losses")
    if activation == "sigmoid" and opts.get("label_smoothing"):
        pytest.skip("label smoothing is softmax-only")
    x, target = _inputs(N=2, C=4, spatial=(6, 7), activation=activation, dtype=torch.float32)
    weight = torch.rand(4) + 0.5
    ours = bt.nn.DiceCELoss(activation=activation, weight=weight, **opts)
    if activation == "softmax":
        theirs = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, weight=weight, **opts)
        _monai_pair(ours, theirs, x, target, target.unsqueeze(1))
    else:
        # MONAI's DiceCE takes BCE for one channel only (softmax CE on multi-label masks otherwise):
        # compare the one-channel case (a single Dice class: the weight is BCE's pos_weight only, as MONAI)
        if not opts.get("include_background", True):
            pytest.skip("one channel has no background to leave out")
        x, target = x[:, :1].contiguous(), target[:, :1].contiguous()
        ours = bt.nn.DiceCELoss(activation=activation, weight=weight[:1], **opts)
        theirs = monai_losses.DiceCELoss(sigmoid=True, weight=weight[:1], **opts)
        _monai_pair(ours, theirs, x, target, target)


@pytest.mark.parametrize(
    "opts",
    [dict(), dict(include_background=False, gamma=1.5), dict(batch=True, lambda_dice=0.5, lambda_focal=2.0, reduction="sum")],
)
def test_dice_focal_sigmoid_equals_monai(opts):
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=4, spatial=(6, 7), activation="sigmoid", dtype=torch.float32)
    weight = torch.rand(4) + 0.5
    ours = bt.nn.DiceFocalLoss(activation="sigmoid", weight=weight, **opts)
    mw = weight if opts.get("include_background", True) else weight[1:]
    theirs = monai_losses.DiceFocalLoss(sigmoid=True, weight=mw, **opts)
    _monai_pair(ours, theirs, x, target, target)


# ---------------------------------------------------------------------------------------------
# nnU-Net's soft Dice: smooth 1, background excluded, batch dice
# ---------------------------------------------------------------------------------------------


def _nnunet_soft_dice(x, target, smooth=1.0):
    """nnunetv2 SoftDiceLoss(apply_nonlin=softmax, batch_dice=True, do_bg=False, smooth=1.) written out."""
    p = torch.softmax(x, 1)
    y = F.one_hot(target, x.shape[1]).movedim(-1, 1).to(x.dtype)
    axes = [0] + list(range(2, x.dim()))
    tp = (p * y).sum(axes)
    fp = (p * (1 - y)).sum(axes)
    fn = ((1 - p) * y).sum(axes)
    dc = (2 * tp + smooth) / torch.clip(2 * tp + fp + fn + smooth, 1e-8)
    return -dc[1:].mean()


def test_nnunet_soft_dice_through_options():
    x, target = _inputs(N=2, C=4, spatial=(9, 8))
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    ours = bt.nn.DiceLoss(include_background=False, batch=True, smooth_nr=1.0, smooth_dr=1.0)(xa, target)
    theirs = _nnunet_soft_dice(xb, target)
    torch.testing.assert_close(ours, 1 + theirs)  # nnU-Net returns -dice, we return 1 - dice
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(xa.grad, xb.grad)


# ---------------------------------------------------------------------------------------------
# gradcheck, opcheck, compile
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn,kwargs",
    [
        (btf.dice_ce_loss, dict(include_background=False, weight=torch.tensor([0.5, 1.0, 2.0]))),
        (btf.dice_focal_loss, dict(label_smoothing=0.1, squared_pred=True, batch=True)),
        (btf.tversky_loss, dict(alpha=0.3, beta=0.7, gamma=1.5, activation="sigmoid")),
        (btf.generalized_dice_loss, dict(reduction="none")),
    ],
)
def test_gradcheck(fn, kwargs):
    act = kwargs.get("activation", "softmax")
    x, target = _inputs(N=2, C=3, spatial=(3, 4), activation=act, ignore=act == "softmax")
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fn(x, target, **kwargs), (x,))


def _raw_args(x, target, activation=0, ce_kind=1, soft_label=False, alpha=-1.0):
    return (x, target, None, activation, False, -100, ce_kind, 2.0, 0.1 if activation == 0 else 0.0, 0, soft_label, alpha)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("activation", [0, 1, 2])
def test_opcheck_raw_ops(channels_last, activation):
    x, target = _inputs(
        N=2, C=3, spatial=(4, 5), activation="sigmoid" if activation == 1 else "softmax", dtype=torch.float32, ignore=True
    )
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # activation 2 ("none"): MONAI's sigmoid focal part with alpha, soft labels
    args = _raw_args(
        x,
        target,
        activation,
        ce_kind=2 if activation == 2 else 1,
        soft_label=activation != 0,
        alpha=0.25 if activation == 2 else -1.0,
    )
    torch.library.opcheck(torch.ops.balancedtorch.region_loss_stats.default, args)
    coef = torch.randn(2, 2, 3)
    ce = torch.rand(2)
    # coef and ce_coef come before the two defaulted options (soft_label, alpha)
    torch.library.opcheck(torch.ops.balancedtorch.region_loss_grad.default, args[:-2] + (coef, ce) + args[-2:])
    # calls written before soft_label/alpha existed keep working (their defaults: False, -1)
    if activation == 0:
        torch.library.opcheck(torch.ops.balancedtorch.region_loss_stats.default, args[:-2])
        torch.testing.assert_close(
            torch.ops.balancedtorch.region_loss_grad(*args[:-2], coef, ce),
            torch.ops.balancedtorch.region_loss_grad(*args[:-2], coef, ce, *args[-2:]),
        )
    op_args = (
        x.requires_grad_(True),
        target,
        torch.rand(3) + 0.5,
        0,
        activation,
        False,
        True,
        False,
        1e-5,
        1e-5,
        True,
        -100,
        1,
        0,
        0.5,
        0.5,
        1.0,
        2,
        2.0,
        0.0,
        1.0,
        1.0,
        False,
        True,
    )
    torch.library.opcheck(torch.ops.balancedtorch.region_loss.default, op_args)


def test_torch_compile_fullgraph():
    x, target = _inputs(N=2, C=4, spatial=(8, 8), dtype=torch.float32, ignore=True)
    loss_fn = bt.nn.DiceCELoss(include_background=False, weight=torch.rand(4) + 0.5)
    compiled = torch.compile(lambda x, t: loss_fn(x, t), fullgraph=True, backend="aot_eager")
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    a = compiled(xa, target)
    b = loss_fn(xb, target)
    a.backward()
    b.backward()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(xa.grad, xb.grad)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_the_argument():
    x, target = _inputs(dtype=torch.float32)
    bad = target.clone()
    bad[1, 2, 3] = 7
    with pytest.raises(ValueError, match=r"target.*7"):
        btf.dice_ce_loss(x, bad)
    with pytest.raises(ValueError, match="target"):
        btf.dice_loss(x, target[:, :3])
    with pytest.raises(ValueError, match="smooth_dr"):
        empty = torch.zeros_like(target)
        btf.tversky_loss(x, empty, alpha=0.0, beta=1.0, smooth_dr=0.0, include_background=False)
    for kwargs, name in [(dict(alpha=-0.1), "alpha"), (dict(beta=-1.0), "beta"), (dict(gamma=0.0), "gamma")]:
        with pytest.raises(ValueError, match=name):
            bt.nn.TverskyLoss(**kwargs)
        with pytest.raises(ValueError, match=name):
            btf.tversky_loss(x, target, **kwargs)
    with pytest.raises(ValueError, match="w_type.*'cube'"):
        bt.nn.GeneralizedDiceLoss(w_type="cube")
    with pytest.raises(ValueError, match="activation.*'relu'"):
        bt.nn.DiceLoss(activation="relu")
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        btf.dice_loss(x, target, reduction="avg")
    with pytest.raises(ValueError, match="reduction.*'none'"):
        bt.nn.DiceCELoss(reduction="none")
    with pytest.raises(ValueError, match="smooth_dr"):
        bt.nn.DiceLoss(smooth_dr=-1.0)
    with pytest.raises(ValueError, match="weight"):
        btf.dice_loss(x, target, weight=torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="weight"):
        btf.dice_loss(x, target, weight=torch.ones(3))
    with pytest.raises(ValueError, match="sync"):
        bt.nn.DiceLoss(sync=True)
    with pytest.raises(ValueError, match="label_smoothing"):
        btf.dice_ce_loss(x, (torch.rand_like(x) < 0.5).float(), activation="sigmoid", label_smoothing=0.1)
    with pytest.raises(ValueError, match="ce_kind"):
        torch.ops.balancedtorch.region_loss_stats(x, target, None, 0, False, -100, 5, 0.0, 0.0, 0, False, -1.0)
    assert bool(torch.isfinite(x).all())


# ---------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU): the same numbers as the CPU kernels
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_cuda_equals_cpu(dtype, activation):
    x, target = _inputs(N=3, C=5, spatial=(33, 47), activation=activation, dtype=torch.float32, ignore=True)
    x = x.to(dtype)
    for fn, kw in [
        (btf.dice_ce_loss, dict(include_background=False, label_smoothing=0.0 if activation == "sigmoid" else 0.1)),
        (btf.dice_focal_loss, dict(batch=True, squared_pred=True)),
        (btf.generalized_dice_loss, dict()),
        (btf.tversky_loss, dict(gamma=0.75)),
    ]:
        for cl in (False, True):
            xc = x.clone().requires_grad_(True)
            xg = x.cuda()
            if cl:
                xg = xg.contiguous(memory_format=torch.channels_last)
            xg.requires_grad_(True)
            a = fn(xc, target, activation=activation, **kw)
            b = fn(xg, target.cuda(), activation=activation, **kw)
            a.backward()
            b.backward()
            tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=1e-3)
            torch.testing.assert_close(b.cpu().float(), a.float(), **tol)
            torch.testing.assert_close(xg.grad.cpu().float(), xc.grad.float(), **tol)


# ---------------------------------------------------------------------------------------------
# DDP: distributed=True on 2 gloo processes equals one process on the concatenated batch
# ---------------------------------------------------------------------------------------------


def _ddp_worker(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file)
    try:
        torch.manual_seed(0)
        x = torch.randn(4, 3, 6, 5, dtype=torch.float64)
        target = torch.randint(0, 3, (4, 6, 5))
        target[0, 0] = -100
        conv = torch.nn.Conv2d(3, 3, 1).double()
        model = torch.nn.parallel.DistributedDataParallel(conv)
        loss_fn = bt.nn.DiceCELoss(batch=True, distributed=True, include_background=False)
        xr = x[rank * 2 : (rank + 1) * 2].clone().requires_grad_(True)
        loss = loss_fn(model(xr), target[rank * 2 : (rank + 1) * 2])
        loss.backward()
        save_rank(
            {"loss": loss.detach(), "weight_grad": conv.weight.grad, "bias_grad": conv.bias.grad, "x_grad": xr.grad},
            out_dir,
            rank,
        )
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_sync_two_gloo_processes_equal_concatenated_batch(tmp_path):
    parts = run_ranks(_ddp_worker, 2, tmp_path)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (4, 6, 5))
    target[0, 0] = -100
    conv = torch.nn.Conv2d(3, 3, 1).double()
    xr = x.clone().requires_grad_(True)
    loss = bt.nn.DiceCELoss(batch=True, include_background=False)(conv(xr), target)
    loss.backward()
    for rank in range(2):
        got = parts[rank]
        torch.testing.assert_close(got["loss"], loss.detach())
        torch.testing.assert_close(got["weight_grad"], conv.weight.grad)
        torch.testing.assert_close(got["bias_grad"], conv.bias.grad)
        # autograd of an all-reduce: each rank's input gets the gradient of the sum of both ranks' losses
        torch.testing.assert_close(got["x_grad"], 2 * xr.grad[rank * 2 : (rank + 1) * 2])


def test_autocast_returns_float32_as_cross_entropy():
    x, target = _inputs(N=2, C=4, spatial=(6, 7), dtype=torch.float32, ignore=True)
    lin = torch.nn.Conv2d(4, 4, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lin(x)
        assert logits.dtype == torch.bfloat16
        got = btf.dice_ce_loss(logits, target, include_background=False)
        ce = F.cross_entropy(logits, target)
    assert got.dtype == torch.float32 and ce.dtype == torch.float32
    want = btf.dice_ce_loss(logits.detach().float(), target, include_background=False)
    torch.testing.assert_close(got, want)
    got.backward()
    assert lin.weight.grad is not None and bool(torch.isfinite(lin.weight.grad).all())


def test_opcheck_permuted_logits_gradient_layout():
    # dense but neither contiguous nor channels-last: the gradient (and the fake's) is contiguous
    x, target = _inputs(N=2, C=3, spatial=(4, 5), dtype=torch.float32, ignore=True)
    xp = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    assert not xp.is_contiguous()
    args = _raw_args(xp, target)
    torch.library.opcheck(
        torch.ops.balancedtorch.region_loss_grad.default, args[:-2] + (torch.randn(2, 2, 3), torch.rand(2)) + args[-2:]
    )
    xr = xp.clone().requires_grad_(True)
    xc = x.clone().requires_grad_(True)
    btf.dice_ce_loss(xr, target).backward()
    btf.dice_ce_loss(xc, target).backward()
    torch.testing.assert_close(xr.grad, xc.grad)


# ---------------------------------------------------------------------------------------------
# peer parity (issue 23): one Dice class, DiceFocal sum/none/alpha, activation "none", soft_label,
# number weights in modules, target gradients, weights on another device
# ---------------------------------------------------------------------------------------------


def _monai_grads(ours, theirs, x, t_ours, t_theirs, target_grad=False, rtol=1e-5, atol=1e-6):
    """Value, input gradient and (optionally) target gradient of ours against MONAI's autograd."""
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ta, tb = t_ours, t_theirs
    if target_grad:
        ta, tb = t_ours.clone().requires_grad_(True), t_theirs.clone().requires_grad_(True)
    a, b = ours(xa, ta), theirs(xb, tb)
    torch.testing.assert_close(a, b.reshape(a.shape), rtol=rtol, atol=atol)
    g = torch.rand_like(a)
    a.backward(g)
    b.backward(g.reshape(b.shape))
    torch.testing.assert_close(xa.grad, xb.grad, rtol=rtol, atol=atol)
    if target_grad:
        torch.testing.assert_close(ta.grad, tb.grad, rtol=rtol, atol=atol)


def test_one_dice_class_ignores_the_weight_as_monai():
    monai_losses = pytest.importorskip("monai.losses")
    # MONAI's own DiceCE case: sigmoid, one channel, weight [0.5] (BCE's pos_weight only)
    x = torch.tensor([[[0.8, 0.6, 0.0]], [[0.0, 0.0, 0.9]]])
    t = torch.tensor([[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]])
    w = torch.tensor([0.5])
    ours = bt.nn.DiceCELoss(activation="sigmoid", weight=w)(x, t)
    theirs = monai_losses.DiceCELoss(sigmoid=True, weight=w)(x, t)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours, torch.tensor(1.445239), rtol=1e-5, atol=1e-6)
    # the Dice part alone: weight ignored for C = 1 (sigmoid) and for C = 2 without the background
    xs, ts = _inputs(N=2, C=1, spatial=(5, 6), activation="sigmoid", dtype=torch.float32)
    _monai_grads(
        bt.nn.DiceLoss(activation="sigmoid", weight=[3.0]), monai_losses.DiceLoss(sigmoid=True, weight=[3.0]), xs, ts, ts
    )
    x2, t2 = _inputs(N=2, C=2, spatial=(5, 6), dtype=torch.float32)
    _monai_grads(
        bt.nn.DiceLoss(include_background=False, weight=[0.3, 3.0]),
        monai_losses.DiceLoss(softmax=True, to_onehot_y=True, include_background=False, weight=[3.0]),
        x2,
        t2,
        t2.unsqueeze(1),
    )
    _monai_grads(
        bt.nn.DiceCELoss(include_background=False, weight=torch.tensor([0.3, 3.0])),
        monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, weight=torch.tensor([0.3, 3.0])),
        x2,
        t2,
        t2.unsqueeze(1),
    )
    # two or more classes keep their weights
    a = btf.dice_loss(x2, t2, weight=[1.0, 3.0])
    assert not torch.allclose(a, btf.dice_loss(x2, t2))


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("DiceLoss", "DiceLoss"),
        ("GeneralizedDiceLoss", "GeneralizedDiceLoss"),
        ("TverskyLoss", "TverskyLoss"),
    ],
)
@pytest.mark.parametrize("option", ["softmax", "include_background"])
def test_one_channel_softmax_or_no_background_warns_and_equals_monai(ours, theirs, option):
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(3)
    x = torch.rand(2, 1, 5, 6)  # probabilities: MONAI skips the softmax and reads the input as they are
    t = (torch.rand(2, 1, 5, 6) > 0.6).float()
    if option == "softmax":
        mine = getattr(bt.nn, ours)(activation="softmax")
        peer = getattr(monai_losses, theirs)(softmax=True)
    else:
        mine = getattr(bt.nn, ours)(activation="sigmoid", include_background=False)
        peer = getattr(monai_losses, theirs)(sigmoid=True, include_background=False)
    with pytest.warns(UserWarning, match=f"single channel prediction.*{option}"):
        _monai_grads(mine, peer, x, t, t)
    # and the value is the loss without the option, which is what MONAI computes
    plain = getattr(bt.nn, ours)(activation="none" if option == "softmax" else "sigmoid")
    with pytest.warns(UserWarning, match="single channel prediction"):
        torch.testing.assert_close(mine(x, t), plain(x, t))


def test_one_channel_dice_focal_with_monai_softmax_warns_and_equals_monai():
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(4)
    x = torch.randn(2, 1, 5, 6)
    t = (torch.rand(2, 1, 5, 6) > 0.6).float()
    mine = bt.nn.DiceFocalLoss(activation="softmax", focal_activation="sigmoid", gamma=1.5)
    peer = monai_losses.DiceFocalLoss(softmax=True, gamma=1.5)
    with pytest.warns(UserWarning, match="single channel prediction.*softmax"):
        _monai_grads(mine, peer, x, t, t)


@pytest.mark.parametrize(
    "loss",
    [
        lambda: bt.nn.DiceCELoss(activation="softmax"),
        lambda: bt.nn.DiceFocalLoss(activation="softmax"),  # softmax focal part of one class
    ],
)
def test_one_channel_softmax_with_a_softmax_ce_or_focal_part_is_refused(loss):
    x, t = torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"activation='softmax' needs at least 2 classes for the softmax .* part"):
        loss()(x, t)


@pytest.mark.parametrize("name", ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "DiceCELoss", "DiceFocalLoss"])
@pytest.mark.parametrize(
    "input_shape, target",
    [
        ((2, 3, 4, 4), torch.zeros(2, 5, 4, dtype=torch.long)),  # class indices of another spatial shape
        ((2, 3, 4, 4), torch.rand(2, 3, 4, 5)),  # probabilities of another shape
        ((1, 2, 3), torch.ones(4, 5, 6)),  # MONAI's own ill-shape case
    ],
)
def test_target_shape_mismatch_is_a_value_error_and_monai_assertion_error(name, input_shape, target):
    loss = getattr(bt.nn, name)()
    x = torch.randn(input_shape)
    with pytest.raises(ValueError, match="target .*must have"):
        loss(x, target)
    with pytest.raises(AssertionError, match="target .*must have"):  # what MONAI's losses raise for it
        loss(x, target)
    monai_losses = pytest.importorskip("monai.losses")
    peer = getattr(monai_losses, name)(softmax=True, to_onehot_y=target.dtype == torch.long)
    with pytest.raises((AssertionError, ValueError)):  # MONAI refuses it too (DiceCE/DiceFocal: a ValueError here)
        peer(x, target.unsqueeze(1) if target.dtype == torch.long else target)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "opts",
    [
        dict(),
        dict(include_background=False, gamma=1.5, batch=True),
        dict(alpha=0.25, lambda_dice=0.5, lambda_focal=2.0),
        dict(alpha=0.7, include_background=False, squared_pred=True),
    ],
)
def test_dice_focal_sigmoid_reductions_and_alpha_equal_monai(reduction, opts):
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=3, spatial=(5, 7), activation="sigmoid", dtype=torch.float64)
    weight = torch.rand(3, dtype=torch.float64) + 0.5
    ours = bt.nn.DiceFocalLoss(activation="sigmoid", weight=weight, reduction=reduction, **opts)
    mw = weight if opts.get("include_background", True) else weight[1:]
    theirs = monai_losses.DiceFocalLoss(sigmoid=True, weight=mw, reduction=reduction, **opts)
    if reduction == "none":
        assert ours(x, target).shape == theirs(x, target).shape
    # no target gradient against MONAI: its focal term sigmoid(-x (2t - 1))^gamma equals ours (torchvision's
    # (p (1 - t) + (1 - p) t)^gamma) at t in {0, 1} only, so their derivatives in t differ (see the gradcheck below)
    _monai_grads(ours, theirs, x, target, target)  # MONAI's FocalLoss computes in float32


@pytest.mark.parametrize(
    "cls,monai_name,opts",
    [
        ("DiceLoss", "DiceLoss", dict()),
        ("DiceLoss", "DiceLoss", dict(include_background=False, batch=True, jaccard=True)),
        ("DiceLoss", "DiceLoss", dict(squared_pred=True, reduction="sum", soft_label=True)),
        ("DiceLoss", "DiceLoss", dict(soft_label=True, reduction="none")),
        ("GeneralizedDiceLoss", "GeneralizedDiceLoss", dict(w_type="simple")),
        ("GeneralizedDiceLoss", "GeneralizedDiceLoss", dict(soft_label=True, batch=True)),
        ("TverskyLoss", "TverskyLoss", dict(alpha=0.3, beta=0.7)),
        ("TverskyLoss", "TverskyLoss", dict(soft_label=True, include_background=False, reduction="sum")),
    ],
)
@pytest.mark.parametrize("activation", ["none", "sigmoid", "softmax"])
def test_activation_none_and_soft_label_equal_monai(cls, monai_name, opts, activation):
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(3)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    if activation == "none":
        x = torch.softmax(x, 1)
    # soft labels: probabilities, some exactly equal to the prediction (ties of |p - t|)
    target = torch.softmax(torch.randn(2, 3, 5, 6, dtype=torch.float64) * 2, 1)
    if activation == "none":
        target[:, :, 0] = x[:, :, 0]
    mopts = dict(opts)
    flags = {"none": {}, "sigmoid": dict(sigmoid=True), "softmax": dict(softmax=True)}[activation]
    ours = getattr(bt.nn, cls)(activation=activation, **opts)
    theirs = getattr(monai_losses, monai_name)(**flags, **mopts)
    # MONAI's generalised Dice writes its weights in place, which breaks its own autograd to the target
    # (ours is gradchecked below)
    _monai_grads(ours, theirs, x, target, target, target_grad=cls != "GeneralizedDiceLoss", rtol=1e-7, atol=1e-9)


def test_activation_none_class_index_targets_and_combined_losses_equal_monai():
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=4, spatial=(5, 6), dtype=torch.float64)
    probs = torch.softmax(x, 1)
    _monai_grads(
        bt.nn.DiceLoss(activation="none", include_background=False),
        monai_losses.DiceLoss(to_onehot_y=True, include_background=False),
        probs,
        target,
        target.unsqueeze(1),
    )
    # DiceCE: the Dice part reads probabilities, the CE part the same tensor as logits (MONAI)
    _monai_grads(
        bt.nn.DiceCELoss(activation="none", weight=torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)),
        monai_losses.DiceCELoss(to_onehot_y=True, weight=torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)),
        probs,
        target,
        target.unsqueeze(1),
    )
    # DiceFocal: MONAI's sigmoid focal part on the input taken as logits
    onehot = F.one_hot(target, 4).movedim(-1, 1).double()
    for reduction in ("mean", "sum", "none"):
        _monai_grads(
            bt.nn.DiceFocalLoss(activation="none", alpha=0.25, reduction=reduction),
            monai_losses.DiceFocalLoss(to_onehot_y=True, alpha=0.25, reduction=reduction),
            probs,
            target,
            target.unsqueeze(1),
        )
        _monai_grads(
            bt.nn.DiceFocalLoss(activation="none", include_background=False, reduction=reduction),
            monai_losses.DiceFocalLoss(include_background=False, reduction=reduction),
            probs,
            onehot,
            onehot,
        )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "opts",
    [
        dict(),
        dict(include_background=False, gamma=1.5, batch=True),
        dict(alpha=0.25, lambda_dice=0.5, lambda_focal=2.0, jaccard=True),
        dict(alpha=0.7, include_background=False, squared_pred=True),
    ],
)
@pytest.mark.parametrize("dense", [False, True])
def test_dice_focal_sigmoid_focal_on_softmax_dice_equals_monai(reduction, opts, dense):
    # MONAI's DiceFocalLoss(softmax=True): a softmax Dice part plus a sigmoid focal part of the same logits
    monai_losses = pytest.importorskip("monai.losses")
    x, target = _inputs(N=2, C=4, spatial=(5, 7), dtype=torch.float64)
    weight = torch.rand(4, dtype=torch.float64) + 0.5
    mw = weight if opts.get("include_background", True) else weight[1:]
    ours = bt.nn.DiceFocalLoss(focal_activation="sigmoid", weight=weight, reduction=reduction, **opts)
    theirs = monai_losses.DiceFocalLoss(softmax=True, to_onehot_y=not dense, weight=mw, reduction=reduction, **opts)
    t_theirs = target.unsqueeze(1)
    if dense:  # one-hot floats (for soft targets the two focal terms differ: see the sigmoid test above)
        target = t_theirs = F.one_hot(target, 4).movedim(-1, 1).double()
    _monai_grads(ours, theirs, x, target, t_theirs)
    functional = btf.dice_focal_loss(x, target, focal_activation="sigmoid", weight=weight, reduction=reduction, **opts)
    torch.testing.assert_close(functional, ours(x, target))
    # the default (softmax focal part) is a different loss
    if reduction != "none":
        default = bt.nn.DiceFocalLoss(weight=weight, reduction=reduction, **{k: v for k, v in opts.items() if k != "alpha"})(
            x, target
        )
        assert not torch.allclose(default, ours(x, target))


def test_dice_focal_sigmoid_focal_on_softmax_dice_leaves_ignored_pixels_out():
    x, target = _inputs(N=2, C=3, spatial=(6, 5), ignore=True)
    ignored = target == -100
    assert ignored.any() and (~ignored).any()
    y = x.clone()
    y[ignored.unsqueeze(1).expand_as(y)] = torch.randn(int(ignored.sum()) * 3, dtype=x.dtype) * 50
    for reduction in ("mean", "sum", "none"):
        a = btf.dice_focal_loss(x, target, focal_activation="sigmoid", reduction=reduction)
        b = btf.dice_focal_loss(y, target, focal_activation="sigmoid", reduction=reduction)
        if reduction == "none":
            a, b = a * (~ignored).unsqueeze(1), b * (~ignored).unsqueeze(1)
        torch.testing.assert_close(a, b)
    # the mean runs over the valid elements only: equal to the loss of the valid pixels alone (one sample)
    xs, ts = x[:1], target[:1]
    keep = ts[0] != -100
    flat_x = xs[0][:, keep].reshape(1, 3, -1)
    flat_t = ts[0][keep].reshape(1, -1)
    torch.testing.assert_close(
        btf.dice_focal_loss(xs, ts, focal_activation="sigmoid"), btf.dice_focal_loss(flat_x, flat_t, focal_activation="sigmoid")
    )


def test_dice_focal_focal_activation_rejects_bad_values():
    x, target = _inputs(N=2, C=3, spatial=(4, 5), dtype=torch.float32)
    with pytest.raises(ValueError, match="focal_activation"):
        bt.nn.DiceFocalLoss(focal_activation="relu")
    with pytest.raises(ValueError, match="focal_activation"):
        btf.dice_focal_loss(x, target, focal_activation=1)
    with pytest.raises(ValueError, match="focal_activation='softmax' needs activation='softmax'"):
        btf.dice_focal_loss(
            x, (target > 0).float().unsqueeze(1).expand_as(x).contiguous(), activation="sigmoid", focal_activation="softmax"
        )
    with pytest.raises(ValueError, match="label_smoothing"):
        btf.dice_focal_loss(x, target, focal_activation="sigmoid", label_smoothing=0.1)
    # "softmax" is the default's meaning
    torch.testing.assert_close(btf.dice_focal_loss(x, target, focal_activation="softmax"), btf.dice_focal_loss(x, target))


def test_activation_none_equals_reference_with_ignore_index():
    x, target = _inputs(N=2, C=3, spatial=(4, 5), ignore=True)
    probs = torch.softmax(x, 1)
    got = btf.dice_loss(probs, target, activation="none", batch=True)
    want = reference(torch.log(probs), target, batch=True)  # softmax of log-probabilities: the probabilities
    torch.testing.assert_close(got, want)


def test_module_accepts_a_number_as_weight():
    x, target = _inputs(N=2, C=3, spatial=(4, 5), dtype=torch.float32)
    for cls, fn in [
        (bt.nn.DiceLoss, btf.dice_loss),
        (bt.nn.TverskyLoss, btf.tversky_loss),
        (bt.nn.DiceCELoss, btf.dice_ce_loss),
        (bt.nn.DiceFocalLoss, btf.dice_focal_loss),
    ]:
        module = cls(weight=2.0)
        torch.testing.assert_close(module(x, target), fn(x, target, weight=2.0))
        torch.testing.assert_close(module(x, target), fn(x, target, weight=[2.0, 2.0, 2.0]))
        assert module.weight.dim() == 0
    with pytest.raises(ValueError, match="weight"):
        bt.nn.DiceLoss(weight=-1.0)
    with pytest.raises(ValueError, match="weight"):
        bt.nn.DiceLoss(weight=float("nan"))


def _reference_from_target(fn_kwargs, ref_kwargs, x):
    def ours(t):
        return fn_kwargs["fn"](x, t, **fn_kwargs["kw"])

    def theirs(t):
        return reference(x, t, **ref_kwargs)

    return ours, theirs


@pytest.mark.parametrize(
    "fn,kw,ref",
    [
        (btf.dice_loss, dict(), dict()),
        (
            btf.dice_loss,
            dict(squared_pred=True, jaccard=True, batch=True, include_background=False),
            dict(squared_pred=True, jaccard=True, batch=True, include_background=False),
        ),
        (btf.dice_loss, dict(activation="sigmoid", reduction="none"), dict(activation="sigmoid", reduction="none")),
        (btf.generalized_dice_loss, dict(w_type="square"), dict(kind="gdl", w_type="square")),
        (btf.tversky_loss, dict(alpha=0.3, beta=0.7, gamma=1.5), dict(kind="tversky", alpha=0.3, beta=0.7, gamma=1.5)),
        (
            btf.dice_ce_loss,
            dict(label_smoothing=0.1, weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)),
            dict(ce="ce", label_smoothing=0.1, weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)),
        ),
        (
            btf.dice_ce_loss,
            dict(activation="sigmoid", reduction="sum", weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)),
            dict(ce="ce", activation="sigmoid", reduction="sum", weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)),
        ),
        (btf.dice_focal_loss, dict(gamma=1.5), dict(ce="focal", ce_gamma=1.5)),
        (
            btf.dice_focal_loss,
            dict(
                activation="sigmoid",
                include_background=False,
                gamma=2.0,
                weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64),
            ),
            dict(
                ce="focal_tv",
                activation="sigmoid",
                include_background=False,
                ce_gamma=2.0,
                weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64),
            ),
        ),
    ],
)
def test_probability_target_gradient_gradcheck_and_reference(fn, kw, ref):
    act = kw.get("activation", "softmax")
    x, _ = _inputs(N=2, C=3, spatial=(3, 4), activation=act)
    if act == "sigmoid":
        target = torch.rand(2, 3, 3, 4, dtype=torch.float64)
    else:
        target = torch.softmax(torch.randn(2, 3, 3, 4, dtype=torch.float64) * 2, 1)
    target.requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, t: fn(x, t, **kw), (xr, target))
    # against the plain reference's autograd
    ta, tb = target.detach().clone().requires_grad_(True), target.detach().clone().requires_grad_(True)
    a, b = fn(x, ta, **kw), reference(x, tb, **ref)
    g = torch.rand_like(b)
    a.backward(g)
    b.backward(g)
    assert ta.grad is not None
    torch.testing.assert_close(ta.grad, tb.grad, rtol=1e-7, atol=1e-10)


def test_soft_label_gradcheck_and_reduction_none():
    x, _ = _inputs(N=2, C=3, spatial=(3, 4), activation="sigmoid")
    target = torch.rand(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    for fn, kw in [
        (btf.dice_loss, dict(activation="sigmoid", soft_label=True, reduction="none")),
        (btf.tversky_loss, dict(activation="sigmoid", soft_label=True, alpha=0.2, beta=0.8)),
        (btf.generalized_dice_loss, dict(activation="sigmoid", soft_label=True, w_type="simple")),
    ]:
        xr = x.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x, t, fn=fn, kw=kw: fn(x, t, **kw), (xr, target))


@pytest.mark.parametrize(
    "call",
    [
        lambda x, t, w: btf.cross_entropy(x, t, weight=w),
        lambda x, t, w: btf.focal_loss(x, t, weight=w),
        lambda x, t, w: btf.logit_adjusted_loss(x, t, [3, 2, 1], weight=w),
        lambda x, t, w: btf.sigmoid_focal_loss(x, F.one_hot(t, 3).movedim(-1, 1).float(), pos_weight=w),
        lambda x, t, w: btf.dice_loss(x, t, weight=w),
        lambda x, t, w: btf.dice_ce_loss(x, t, weight=w),
        lambda x, t, w: bt.nn.DiceFocalLoss(weight=w)(x, t),
        lambda x, t, w: bt.nn.CrossEntropyLoss(weight=w)(x, t),
        lambda x, t, w: bt.nn.SigmoidFocalLoss(pos_weight=w)(x, F.one_hot(t, 3).movedim(-1, 1).float()),
    ],
)
def test_weight_on_another_device_is_a_clear_value_error(call):
    x, target = _inputs(N=2, C=3, spatial=(4, 5), dtype=torch.float32)
    meta = torch.ones(3, device="meta")
    with pytest.raises(ValueError, match=r"weight is on meta but input is on cpu"):
        call(x, target, meta)


def test_new_options_bad_values_name_the_argument():
    x, target = _inputs(N=2, C=3, spatial=(4, 5), dtype=torch.float32)
    with pytest.raises(ValueError, match="alpha.*1.5"):
        bt.nn.DiceFocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="alpha.*-0.5"):
        btf.dice_focal_loss(x, target, activation="sigmoid", alpha=-0.5)
    with pytest.raises(ValueError, match="alpha=0.25.*activation='softmax'"):
        btf.dice_focal_loss(x, target, alpha=0.25)
    with pytest.raises(ValueError, match="reduction='none'.*activation='softmax'"):
        btf.dice_focal_loss(x, target, reduction="none")
    with pytest.raises(TypeError, match="soft_label"):
        bt.nn.DiceLoss(soft_label="yes")
    with pytest.raises(TypeError, match="soft_label"):
        btf.tversky_loss(x, target, soft_label=2)
    with pytest.raises(ValueError, match="activation.*'tanh'"):
        bt.nn.GeneralizedDiceLoss(activation="tanh")
    with pytest.raises(ValueError, match="label_smoothing"):
        btf.dice_focal_loss(x, target, activation="none", label_smoothing=0.1)
    with pytest.raises(ValueError, match="activation='none'.*2 classes"):
        btf.dice_ce_loss(x[:, :1], (target > 0).float().unsqueeze(1), activation="none")
    with pytest.raises(ValueError, match="reduction.*'none'"):
        bt.nn.DiceCELoss(reduction="none")


_REGION_FNS = [btf.dice_loss, btf.generalized_dice_loss, btf.tversky_loss, btf.dice_ce_loss, btf.dice_focal_loss]


@pytest.mark.parametrize("fn", _REGION_FNS)
def test_target_on_another_device_or_sparse_is_refused_before_any_kernel(fn):
    x, target = _inputs(N=2, C=3, spatial=(4, 4), dtype=torch.float32)
    with pytest.raises(ValueError, match="target is on meta but input is on cpu"):
        fn(x, target.to("meta"))
    with pytest.raises(ValueError, match="target is on meta but input is on cpu"):
        fn(x, torch.rand(2, 3, 4, 4, device="meta"))
    with pytest.raises(TypeError, match="input must be a dense"):
        fn(x.to_sparse(), target)
    with pytest.raises(TypeError, match="target must be a dense"):
        fn(x, torch.softmax(x, 1).to_sparse())


@pytest.mark.parametrize("fn", _REGION_FNS)
@pytest.mark.parametrize("name", ["include_background", "squared_pred", "jaccard", "batch", "sync"])
@pytest.mark.parametrize("value", ["False", "no", 1, 0, None])
def test_bool_options_must_be_bools(fn, name, value):
    x, target = _inputs(N=2, C=3, spatial=(4, 4), dtype=torch.float32)
    if name in ("squared_pred", "jaccard") and fn in (btf.generalized_dice_loss, btf.tversky_loss):
        pytest.skip(f"{fn.__name__} has no {name}")
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        fn(x, target, **{name: value})
    # numpy's bool is a bool
    ref = fn(x, target, batch=True)
    torch.testing.assert_close(fn(x, target, batch=np.bool_(True)), ref)


@pytest.mark.parametrize("cls", [bt.nn.DiceLoss, bt.nn.DiceCELoss, bt.nn.DiceFocalLoss])
def test_modules_check_bool_options_and_ignore_index_when_built(cls):
    with pytest.raises(TypeError, match="include_background must be True or False"):
        cls(include_background="False")
    with pytest.raises(TypeError, match="batch must be True or False"):
        cls(batch=1)
    with pytest.raises(ValueError, match="ignore_index must fit in int64"):
        cls(ignore_index=2**70)


@pytest.mark.parametrize("fn", _REGION_FNS)
def test_ignore_index_beyond_int64_is_a_value_error_and_a_non_integer_a_type_error(fn):
    x, target = _inputs(N=2, C=3, spatial=(4, 4), dtype=torch.float32)
    for bad in (2**70, -(2**63) - 1):
        with pytest.raises(ValueError, match="ignore_index must fit in int64"):
            fn(x, target, ignore_index=bad)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match="ignore_index must be an int"):
            fn(x, target, ignore_index=bad)


@pytest.mark.parametrize(
    "C, include_background, activation, focal_activation",
    [(1, True, "sigmoid", None), (2, False, "sigmoid", None), (2, False, "softmax", "sigmoid")],
)
def test_dice_focal_per_class_weight_on_one_remaining_channel_is_refused_as_monai(
    C, include_background, activation, focal_activation
):
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(5)
    x = torch.randn(2, C, 4, 4)
    t = (torch.rand(2, C, 4, 4) > 0.5).float()
    options = dict(activation=activation, include_background=include_background, focal_activation=focal_activation)
    with pytest.raises(ValueError, match="weight: a per-class weight is not supported when one channel remains"):
        bt.nn.DiceFocalLoss(weight=[3.0] * C, **options)(x, t)
    # MONAI's FocalLoss (1.6) refuses the same call; its weight has C - 1 entries without the background
    peer = monai_losses.DiceFocalLoss(
        sigmoid=activation == "sigmoid", softmax=activation == "softmax", include_background=include_background, weight=[3.0]
    )
    monai_version = tuple(int(v) for v in pytest.importorskip("monai").__version__.split(".")[:2])
    if monai_version >= (1, 6):
        with pytest.raises(ValueError, match="single-channel"):
            peer(x, t)
    # a number still scales the focal part, as MONAI's does
    _monai_grads(
        bt.nn.DiceFocalLoss(weight=3.0, **options),
        monai_losses.DiceFocalLoss(
            sigmoid=activation == "sigmoid", softmax=activation == "softmax", include_background=include_background, weight=3.0
        ),
        x,
        t,
        t,
    )


@pytest.mark.parametrize("name", ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "DiceCELoss", "DiceFocalLoss"])
def test_sync_is_a_deprecated_name_of_distributed(name):
    x, target = _inputs(N=2, C=3, spatial=(4, 4), dtype=torch.float32)
    module = getattr(bt.nn, name)(batch=True, distributed=False)
    assert module.options["distributed"] is False
    with pytest.warns(DeprecationWarning, match=f"{name}: sync= is deprecated.*use distributed=") as record:
        old = getattr(bt.nn, name)(batch=True, sync=False)
    assert record[0].filename == __file__
    torch.testing.assert_close(old(x, target), module(x, target))
    fn = getattr(
        btf,
        {
            "DiceLoss": "dice_loss",
            "GeneralizedDiceLoss": "generalized_dice_loss",
            "TverskyLoss": "tversky_loss",
            "DiceCELoss": "dice_ce_loss",
            "DiceFocalLoss": "dice_focal_loss",
        }[name],
    )
    with pytest.warns(DeprecationWarning, match="sync= is deprecated") as record:
        torch.testing.assert_close(fn(x, target, batch=True, sync=False), module(x, target))
    assert record[0].filename == __file__
    with pytest.raises(TypeError, match="pass distributed= only"):
        fn(x, target, batch=True, distributed=True, sync=True)
    # without a process group, distributed=True is one process's loss
    torch.testing.assert_close(fn(x, target, batch=True, distributed=True), module(x, target))
