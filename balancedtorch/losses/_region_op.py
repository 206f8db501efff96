"""The Python kernel of ``balancedtorch::region_loss`` (schema in csrc/balancedtorch.cpp) and its backward.

The C++ ops ``balancedtorch::region_loss_stats`` (one pass over the logits:
per (sample, class) sums ``[sum p t, sum p, sum t]`` and the CE/focal sum with
its mean's denominator) and ``balancedtorch::region_loss_grad`` (one pass that
writes d(loss)/d(logits) given dL/d(sums)) are combined here into
``balancedtorch::region_loss`` (registered for CPU and CUDA, with its fake
kernel and autograd, in :mod:`balancedtorch._meta`): the loss is a small function of the sums,
evaluated in plain PyTorch on (N, C) tensors, and its derivatives with respect
to the sums are closed forms (no autograd graph over the pixels). When the
logits require grad, the forward also writes the gradient of the whole loss
(Dice part and CE/focal part) into one buffer; backward only scales it (or,
for ``reduction="none"``, runs the gradient pass with the incoming weights).

With ``sync`` (``batch=True`` only) the per-class sums and the CE sums are
all-reduced across ``torch.distributed`` ranks before the loss is formed, so
every rank's loss is the loss of the concatenated batch. Backward all-reduces
the incoming gradient too, as the autograd of ``torch.distributed.nn``'s
all_reduce does: a rank's logits get the gradient of the sum of all ranks'
losses, so DDP's averaging over ranks yields the single-process gradient.

Under ``torch.autocast`` the op runs on float32 logits (and float32 dense
targets) and returns float32, as ``F.cross_entropy`` and the other fused losses.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._constants import ACTIVATIONS, CE_KINDS, REDUCTIONS, REGION_KINDS, W_TYPES
from .._dispatch import _acc_dtype, _is_compiling, _private_call, _traced, refuse_bad_values
from .._distributed import all_reduce_, world_and_rank

__all__: list = []

# the codes of the region_loss arguments (balancedtorch._constants; kernels' enums declared in C++)
DICE, GENERALIZED_DICE, TVERSKY = (REGION_KINDS[k] for k in ("dice", "generalized_dice", "tversky"))
W_SQUARE, W_SIMPLE, W_UNIFORM = (W_TYPES[k] for k in ("square", "simple", "uniform"))
R_NONE, R_MEAN, R_SUM = (REDUCTIONS[k] for k in ("none", "mean", "sum"))
CE_NONE, CE_CROSS_ENTROPY, CE_FOCAL = (CE_KINDS[k] for k in ("none", "cross_entropy", "focal"))
SOFTMAX, SIGMOID, NONE = (ACTIVATIONS[k] for k in ("softmax", "sigmoid", "none"))


def _world_size(sync: bool) -> int:
    group = world_and_rank() if sync else None
    return 1 if group is None else group[0]


def _dice_part(sums: Tensor, kind: int, cfg: dict):
    """Per-term losses of the region part and their derivatives with respect to I and P.

    sums: (B, 3, C') = [I, P, T]. Returns (terms, dI, dP, group) where terms is
    (B, C') for Dice/Tversky (one term per (sample, class)) or (B,) for the
    generalised Dice (one per sample), and dI/dP (B, C') are d(term)/d(I, P)
    of the term each (b, c) belongs to.
    """
    I, P, T = sums[:, 0], sums[:, 1], sums[:, 2]
    snr, sdr = cfg["smooth_nr"], cfg["smooth_dr"]
    if kind == GENERALIZED_DICE:
        w_type = cfg["w_type"]
        if w_type == W_UNIFORM:
            w = torch.ones_like(T)
            infs = torch.zeros_like(T, dtype=torch.bool)
        else:
            Tw = T if w_type == W_SIMPLE else T * T
            infs = torch.isinf(torch.reciprocal(Tw))
            # the same values, with a finite derivative where a weight is replaced (target gradients)
            w = torch.reciprocal(torch.where(infs, torch.ones_like(Tw), Tw)).masked_fill(infs, 0.0)
        w = w + infs * w.max(dim=1, keepdim=True).values
        numer = 2.0 * (w * I).sum(1) + snr
        denom = (w * (P + T)).sum(1) + sdr
        _check_denominator(denom, sdr)
        terms = 1.0 - numer / denom
        dI = -2.0 * w / denom.unsqueeze(1)
        dP = w * (numer / (denom * denom)).unsqueeze(1)
        return terms, dI, dP
    if kind == TVERSKY:
        alpha, beta, gamma = cfg["alpha"], cfg["beta"], cfg["tversky_gamma"]
        num = I + snr
        den = I + alpha * (P - I) + beta * (T - I) + sdr
        _check_denominator(den, sdr)
        r = num / den
        dr_dI = 1.0 / den - num / (den * den) * (1.0 - alpha - beta)
        dr_dP = -num / (den * den) * alpha
        f = 1.0 - r
        if gamma != 1.0:
            base = f.clamp(min=0.0)
            terms = base.pow(gamma)
            df = torch.where(base > 0, gamma * base.pow(gamma - 1.0), torch.zeros_like(base))
        else:
            terms = f
            df = torch.ones_like(f)
        dI, dP = -df * dr_dI, -df * dr_dP
    else:
        num = 2.0 * I + snr
        if cfg["jaccard"]:
            den = 2.0 * (P + T - I) + sdr
            dden_dI, dden_dP = -2.0, 2.0
        else:
            den = P + T + sdr
            dden_dI, dden_dP = 0.0, 1.0
        _check_denominator(den, sdr)
        q = num / (den * den)
        terms = 1.0 - num / den
        dI = -(2.0 / den - q * dden_dI)
        dP = q * dden_dP
    w = cfg["class_weight"]
    if w is not None:
        terms, dI, dP = terms * w, dI * w, dP * w
    return terms, dI, dP


def _check_denominator(den: Tensor, sdr: float) -> None:
    # smooth_dr > 0 keeps every denominator positive; with 0, an empty class
    # (or sample) gives 0 / 0: refuse rather than return nan.
    if sdr == 0.0 and not _is_compiling():
        refuse_bad_values(
            den == 0,
            lambda _: "smooth_dr=0.0 leaves a zero denominator (an empty class or an all-ignored sample): use smooth_dr > 0",
        )


def _loss_and_coefs(sums_b: Tensor, ce_tot: Tensor, n: int, cfg: dict, grad_terms: Optional[Tensor]):
    """The loss and (coef (N, 2, C), ce_coef (N,)) = d(weighted loss)/d(sums).

    grad_terms: the incoming gradient of a "none" loss (the per-term weights);
    None for the reduced losses (weights 1/count for "mean", 1 for "sum").
    """
    first = 0 if cfg["include_background"] else 1
    kind, reduction = cfg["kind"], cfg["reduction"]
    terms, dI, dP = _dice_part(sums_b[:, :, first:], kind, cfg)
    if grad_terms is not None:
        g = grad_terms.to(terms.dtype).reshape(terms.shape)
        loss = terms
    elif reduction == R_NONE:
        g = torch.ones_like(terms)  # coefficients unused: backward weighs the terms
        loss = terms
    elif reduction == R_MEAN:
        g = torch.full_like(terms, 1.0 / max(1, terms.numel()))
        loss = terms.mean()
    else:
        g = torch.ones_like(terms)
        loss = terms.sum()
    lam_d = cfg["lambda_dice"]
    if kind == GENERALIZED_DICE:
        g = g.unsqueeze(1)
    cI, cP = g * dI * lam_d, g * dP * lam_d
    coef = torch.zeros((sums_b.shape[0], 2, sums_b.shape[2]), dtype=sums_b.dtype, device=sums_b.device)
    coef[:, 0, first:] = cI
    coef[:, 1, first:] = cP
    if coef.shape[0] != n:
        coef = coef.expand(n, 2, coef.shape[2])
    ce_coef = sums_b.new_zeros((n,))
    if cfg["ce_kind"] != CE_NONE:
        if reduction == R_MEAN:
            den = ce_tot[1]
            den = torch.where(den == 0, torch.full_like(den, float("nan")), den)
            ce_loss = ce_tot[0] / den
            ce_coef = (1.0 / den).expand(n)
        elif _monai_focal(cfg):
            # MONAI's FocalLoss "sum": the mean over the spatial dimensions, summed over samples and classes
            ce_loss = ce_tot[0] / cfg["spatial"]
            ce_coef = ce_tot.new_full((), 1.0 / cfg["spatial"]).expand(n)
        else:
            ce_loss = ce_tot[0]
            ce_coef = ce_tot.new_ones(()).expand(n)
        loss = lam_d * loss + cfg["lambda_ce"] * ce_loss
        ce_coef = ce_coef * cfg["lambda_ce"]
    elif lam_d != 1.0:
        loss = lam_d * loss
    return loss, coef.contiguous(), ce_coef.contiguous()


def _cfg(**options) -> dict:
    """The op's options by name (see region_loss), plus class_weight, soft_label, focal_alpha and spatial."""
    cfg = dict(soft_label=False, focal_alpha=-1.0, spatial=1)
    cfg.update(options)
    return cfg


def _monai_focal(cfg: dict) -> bool:
    """The focal part is MONAI's sigmoid focal loss (activation "sigmoid", or "none" with the input as logits)."""
    return cfg["ce_kind"] == CE_FOCAL and cfg["activation"] in (SIGMOID, NONE)


def _ce_first_class(cfg: dict) -> int:
    # MONAI's DiceFocal drops the background from the (sigmoid) focal part too
    return int(_monai_focal(cfg) and not cfg["include_background"])


def _stats_args(input, target, weight, cfg):
    return (
        input,
        target,
        weight,
        cfg["activation"],
        cfg["squared_pred"],
        cfg["ignore_index"],
        cfg["ce_kind"],
        cfg["ce_gamma"],
        cfg["label_smoothing"],
        _ce_first_class(cfg),
        cfg["soft_label"],
        cfg["focal_alpha"],
    )


def _grad_args(input, target, weight, cfg, coef, ce_coef):
    """region_loss_grad's arguments: the stats' ones with coef and ce_coef before the two defaulted options."""
    args = _stats_args(input, target, weight, cfg)
    return (*args[:-2], coef, ce_coef, *args[-2:])


def _sync_sums(sums: Tensor, ce: Tensor, cfg: dict):
    """Per-(B, class) sums (B = 1 with batch) and the total CE sums, all-reduced under sync."""
    sums_b = sums.sum(0, keepdim=True) if cfg["batch"] else sums
    ce_tot = ce.sum(0)
    if _world_size(cfg["sync"]) > 1:
        c = sums_b.shape[2]
        buf = torch.cat([sums_b.reshape(-1), ce_tot])
        all_reduce_(buf)
        sums_b = buf[: 3 * c].reshape(1, 3, c).clone()
        ce_tot = buf[3 * c :].clone()
    return sums_b, ce_tot


def _class_weight(weight: Optional[Tensor], cfg: dict, acc: torch.dtype) -> Optional[Tensor]:
    """The weights of the region terms: none for the generalised Dice, and none for a single Dice class (MONAI)."""
    if weight is None or cfg["kind"] == GENERALIZED_DICE:
        return None
    w = weight.to(acc)
    w = w if cfg["include_background"] else w[1:]
    if cfg["kind"] == DICE and w.shape[0] == 1:
        return None  # MONAI's DiceLoss applies no class weight to one remaining class
    return w


def region_loss(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    kind: int,
    activation: int,
    include_background: bool,
    squared_pred: bool,
    jaccard: bool,
    smooth_nr: float,
    smooth_dr: float,
    batch: bool,
    ignore_index: int,
    reduction: int,
    w_type: int,
    alpha: float,
    beta: float,
    tversky_gamma: float,
    ce_kind: int,
    ce_gamma: float,
    label_smoothing: float,
    lambda_dice: float,
    lambda_ce: float,
    sync: bool,
    compute_grad: bool,
    soft_label: bool = False,
    focal_alpha: float = -1.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The CPU/CUDA kernel of ``balancedtorch::region_loss``: (loss, grad buffer or empty, per-(B, class) sums (B, 3, C), CE sums (2,))."""
    args = locals()
    cfg = _cfg(**{k: args[k] for k in _CFG_KEYS + _EXTRA_KEYS}, class_weight=None, spatial=_spatial(input))
    sums, ce = torch.ops.balancedtorch.region_loss_stats(*_stats_args(input, target, weight, cfg))
    cfg["class_weight"] = _class_weight(weight, cfg, sums.dtype)
    sums_b, ce_tot = _sync_sums(sums, ce, cfg)
    loss, coef, ce_coef = _loss_and_coefs(sums_b, ce_tot, input.shape[0], cfg, None)
    if compute_grad and reduction != R_NONE:
        grad = torch.ops.balancedtorch.region_loss_grad(*_grad_args(input, target, weight, cfg, coef, ce_coef))
    else:
        grad = input.new_empty((0,))
    return loss.to(input.dtype).clone(), grad, sums_b.clone(), ce_tot.clone()


_CFG_KEYS = (
    "kind",
    "activation",
    "include_background",
    "squared_pred",
    "jaccard",
    "smooth_nr",
    "smooth_dr",
    "batch",
    "ignore_index",
    "reduction",
    "w_type",
    "alpha",
    "beta",
    "tversky_gamma",
    "ce_kind",
    "ce_gamma",
    "label_smoothing",
    "lambda_dice",
    "lambda_ce",
    "sync",
)

# the region_loss arguments after compute_grad
_EXTRA_KEYS = ("soft_label", "focal_alpha")


def _spatial(input: Tensor) -> int:
    """Pixels per sample (the product of d1, ...)."""
    s = 1
    for d in input.shape[2:]:
        s *= d
    return max(1, s)


def _loss_shape(n: int, c: int, kind: int, batch: bool, include_background: bool, reduction: int):
    if reduction != R_NONE:
        return ()
    b = 1 if batch else n
    if kind == GENERALIZED_DICE:
        return (b,)
    return (b, c - (0 if include_background else 1))


def _setup_context(ctx, inputs, output):
    loss, grad, sums_b, ce_tot = output
    ctx.mark_non_differentiable(grad, sums_b, ce_tot)
    ctx.set_materialize_grads(False)
    ctx.inputs = [None if isinstance(a, Tensor) else a for a in inputs]
    ctx.traced = _traced(grad)
    ctx.private = _private_call.active and not ctx.traced
    has_buffer = grad.numel() == inputs[0].numel() and grad.numel() > 0
    ctx.save_for_backward(inputs[0], inputs[1], inputs[2], sums_b, ce_tot, grad if (has_buffer and ctx.traced) else None)
    ctx.grad_buffer = grad if (has_buffer and not ctx.traced) else None


def _backward(ctx, grad_loss, *_unused):
    n_args = len(ctx.inputs)
    if grad_loss is None:
        return (None,) * n_args
    if torch.is_grad_enabled():
        raise RuntimeError("region_loss: double backward (create_graph=True) is not supported by the fused kernels")
    input, target, weight, sums_b, ce_tot, saved_grad = ctx.saved_tensors
    names = ("input", "target", "weight") + _CFG_KEYS + ("compute_grad",) + _EXTRA_KEYS
    args = dict(zip(names, ctx.inputs))
    cfg = _cfg(**{k: args[k] for k in _CFG_KEYS + _EXTRA_KEYS if k in args}, class_weight=None, spatial=_spatial(input))
    cfg["class_weight"] = _class_weight(weight, cfg, sums_b.dtype)
    if _world_size(cfg["sync"]) > 1:
        # autograd of an all-reduce: every rank's loss depends on every rank's logits
        grad_loss = grad_loss.clone()
        all_reduce_(grad_loss)
    grad = saved_grad if ctx.traced else ctx.grad_buffer
    ctx.grad_buffer = None
    # a probability target that requires grad: its gradient in plain PyTorch (rare; not fused)
    grad_target = _target_grad(input, target, weight, sums_b, ce_tot, cfg, grad_loss) if ctx.needs_input_grad[1] else None
    rest = (None,) * (n_args - 2)
    if not ctx.needs_input_grad[0]:
        return (None, grad_target) + rest
    if grad is None or cfg["reduction"] == R_NONE:
        weights = grad_loss if cfg["reduction"] == R_NONE else None
        _, coef, ce_coef = _loss_and_coefs(sums_b, ce_tot, input.shape[0], cfg, weights)
        grad = torch.ops.balancedtorch.region_loss_grad(*_grad_args(input.detach(), target.detach(), weight, cfg, coef, ce_coef))
        if cfg["reduction"] == R_NONE:
            return (grad, grad_target) + rest
        private = not ctx.traced
    else:
        private = ctx.private
    scale = grad_loss
    if not private or _traced(scale):
        grad = grad * scale.to(grad.dtype)
    elif scale.device.type == "cpu" and scale.item() == 1.0:
        pass  # loss.backward(): the buffer already is the gradient
    else:
        grad.mul_(scale.to(grad.dtype))
    return (grad, grad_target) + rest


def _target_grad(input, target, weight, sums_b, ce_tot, cfg, grad_loss):
    """d(loss)/d(target) for a probability / multi-label target, in plain PyTorch.

    Region part: the loss is a function of the sums (I, P, T) only; its
    derivatives with respect to them come from autograd over the small (B, 3, C)
    tensor (the generalised Dice's weights depend on T), and each pixel's
    target enters the sums through i(p, t) and t (or t^2, |t|). CE/focal part:
    the derivative of the per-element losses (losses/softmax.py, losses/sigmoid.py), times the
    coefficient of each sample's CE sum.
    """
    acc = sums_b.dtype
    n = input.shape[0]
    x = input.detach().to(acc)
    t = target.detach().to(acc)
    act = cfg["activation"]
    p = torch.softmax(x, 1) if act == SOFTMAX else (torch.sigmoid(x) if act == SIGMOID else x)
    reduced = cfg["reduction"] != R_NONE
    with torch.enable_grad():
        s = sums_b.detach().clone().requires_grad_(True)
        loss, _, ce_coef = _loss_and_coefs(s, ce_tot, n, cfg, None if reduced else grad_loss)
        if reduced:
            total = loss * grad_loss.to(acc)
        else:
            total = (loss * grad_loss.to(acc).reshape(loss.shape)).sum()
        (d_sums,) = torch.autograd.grad(total, s, allow_unused=True)
    if d_sums is None:
        d_sums = torch.zeros_like(s)
    d_sums = d_sums.expand(n, 3, d_sums.shape[2])
    view = (n, -1) + (1,) * (x.dim() - 2)
    dI, dT = d_sums[:, 0].reshape(view), d_sums[:, 2].reshape(view)
    if cfg["soft_label"] and not cfg["squared_pred"]:
        st = torch.sign(t)
        g = dI * (st + torch.sign(p - t)) * 0.5 + dT * st
    else:
        g = dI * p + dT * (2.0 * t if cfg["squared_pred"] else 1.0)
    if cfg["ce_kind"] != CE_NONE:
        g = g + _ce_target_grad(input, target, weight, cfg) * (ce_coef.to(acc) * grad_loss.to(acc)).reshape(view)
    return g.to(target.dtype)


def _ce_target_grad(input, target, weight, cfg):
    """d(CE/focal sum)/d(target) per element, as the kernels define the CE part."""
    from .sigmoid import _sigmoid_focal_target_grad
    from .softmax import _softmax_loss_target_grad

    one = torch.ones((), dtype=_acc_dtype(input), device=input.device)
    if _monai_focal(cfg) or cfg["activation"] == SIGMOID:
        focal = cfg["ce_kind"] == CE_FOCAL
        pos_weight = None if focal else weight
        alpha = cfg["focal_alpha"] if focal else -1.0
        gamma = cfg["ce_gamma"] if focal else 0.0
        d = _sigmoid_focal_target_grad((input, target, pos_weight, alpha, gamma, R_SUM), one).to(one.dtype)
        if focal:
            if weight is not None:
                d = d * weight.to(d.dtype).view((1, -1) + (1,) * (input.dim() - 2))
            if _ce_first_class(cfg):
                d = torch.cat([torch.zeros_like(d[:, :1]), d[:, 1:]], 1)
        return d
    gamma = cfg["ce_gamma"] if cfg["ce_kind"] == CE_FOCAL else 0.0
    args = (input, target, weight, None, cfg["ignore_index"], cfg["label_smoothing"], gamma, R_SUM)
    return _softmax_loss_target_grad(args, one).to(one.dtype)
