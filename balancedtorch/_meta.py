"""Every fake (meta) kernel, autograd formula, autocast rule and Python kernel registration of ``balancedtorch::*``.

The schemas are defined once, in C++ (csrc/balancedtorch.cpp); the C++ files
register the CPU/CUDA kernels. This module registers the rest, from Python,
for every operator: the fake kernels (shapes, dtypes and the device checks, so
every op works under ``torch.compile`` and ``torch.library.opcheck``), the
autograd formulas, the float32 autocast rule of the losses, and the CPU/CUDA
kernel of ``region_loss`` (written in Python on top of the two C++ passes
``region_loss_stats`` / ``region_loss_grad``; see
:mod:`balancedtorch.losses._region_op`). It is imported once, by
``balancedtorch/__init__.py``, right after the extension is loaded.

Fused losses: ``balancedtorch::softmax_loss`` and
``balancedtorch::sigmoid_focal_loss`` return ``(loss, grad)``
(``softmax_loss_target_prob``, OHEM's cross-entropy, ``(loss, grad,
p_target)``; ``region_loss`` ``(loss, grad, sums, ce_sums)``): when
``compute_grad`` is set, the forward pass also writes d(loss)/d(input),
already scaled for the reduction, into a buffer of its own. Backward then only
multiplies that buffer by ``grad_output`` and hands it over. A second backward
through a retained graph recomputes the buffer from the saved input.

The buffer is also the op's second output, so whoever called the op may hold
it; an op's output is never modified afterwards. Only a call made through
:func:`balancedtorch._dispatch.call_private` (the loss wrappers, which drop
the buffer at once) lets backward scale it in place, or hand it over untouched
when ``grad_output`` is exactly 1 on the CPU: nobody else can see it then. A
direct call of ``torch.ops.balancedtorch.*`` gets ``grad * grad_output`` in a
fresh tensor, and its returned buffer stays as the kernel wrote it.

Probability targets that require grad get torch's gradient, computed in
backward from the saved logits (the kernels write d(loss)/d(input) only).

Under ``torch.autocast`` the losses run in float32, as ``F.cross_entropy`` (on
autocast's float32 list): an Autocast kernel casts float16/bfloat16 logits and
probability targets to float32 and calls the op with autocast off. It is
registered with ``torch.library.Library.impl`` on the AutocastCPU/AutocastCUDA
keys: torch 2.4 has that (``torch.library.register_autocast``, which torch 2.4
lacks, does the same underneath), so one code path serves torch 2.4 to today,
eager and compiled, direct op calls included, with no C++ Autocast kernel to
build. Only float16/bfloat16 tensors are cast (float64 logits stay float64,
as autocast leaves float64 alone), and ``weight``/``logit_bias`` (and
``logit_scale``/``margin``) are left as they are: the kernels read them in
their accumulation dtype anyway.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ._constants import REDUCTIONS
from ._dispatch import (
    _AUTOCAST_KEYS,
    _AUTOCAST_LOW,
    _acc_dtype,
    _class_last,
    _elementwise_format,
    _grad_like,
    _private_call,
    _traced,
    suggest_memory_format,
)
from ._validate import same_device
from .augment.functional import _MASK_RANGES
from .losses import _region_op
from .losses.sigmoid import _sigmoid_focal_target_grad
from .losses.softmax import _softmax_loss_target_grad
from .ops.class_counts import _check_labels_dtype
from .ops.knn import DEFAULT_TILE_BYTES

__all__: list = []

_REDUCTION_NONE = REDUCTIONS["none"]


# --- fake kernels: losses ----------------------------------------------------------------------------------


@torch.library.register_fake("balancedtorch::softmax_loss")
def _softmax_loss_fake(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    logit_bias: Optional[Tensor],
    ignore_index: int,
    label_smoothing: float,
    gamma: float,
    reduction: int,
    compute_grad: bool,
    logit_scale: Optional[Tensor] = None,
    margin: Optional[Tensor] = None,
    scale: float = 1.0,
):
    torch._check(input.dim() >= 2, lambda: f"softmax_loss: input must have shape (N, C, ...), got {tuple(input.shape)}")
    same_device(
        "softmax_loss",
        "input",
        input,
        target=target,
        weight=weight,
        logit_bias=logit_bias,
        logit_scale=logit_scale,
        margin=margin,
    )
    for name, vec in (("logit_scale", logit_scale), ("margin", margin)):
        if vec is not None:
            torch._check(
                vec.dim() == 1 and vec.shape[0] == input.shape[1],
                lambda name=name, vec=vec: (
                    f"softmax_loss: {name} must have shape (C,) = ({input.shape[1]},), got {tuple(vec.shape)}"
                ),
            )
    torch._check(scale > 0.0, lambda: f"softmax_loss: scale must be a finite number > 0, got {scale}")
    if reduction == _REDUCTION_NONE:
        loss = input.new_empty((input.shape[0],) + tuple(input.shape[2:]))
    else:
        loss = input.new_empty(())
    if not compute_grad:
        grad = input.new_empty((0,))
    elif _class_last(input):
        grad = torch.empty_like(input)  # the gradient in the logits' (channels-last) layout
    else:
        grad = input.new_empty(input.shape)
    return loss, grad


@torch.library.register_fake("balancedtorch::softmax_loss_target_prob")
def _softmax_loss_target_prob_fake(input: Tensor, target: Tensor, ignore_index: int, compute_grad: bool):
    loss, grad = _softmax_loss_fake(input, target, None, None, ignore_index, 0.0, 0.0, _REDUCTION_NONE, compute_grad)
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    return loss, grad, loss.new_empty(loss.shape, dtype=acc)


@torch.library.register_fake("balancedtorch::sigmoid_focal_loss")
def _sigmoid_focal_loss_fake(
    input: Tensor,
    target: Tensor,
    pos_weight: Optional[Tensor],
    alpha: float,
    gamma: float,
    reduction: int,
    compute_grad: bool,
):
    same_device("sigmoid_focal_loss", "input", input, target=target, pos_weight=pos_weight)
    fmt = _elementwise_format(input)
    shape = tuple(input.shape)
    if reduction == _REDUCTION_NONE:
        loss = torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=fmt)
    else:
        loss = input.new_empty(())
    if compute_grad:
        grad = torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=fmt)
    else:
        grad = input.new_empty((0,))
    return loss, grad


@torch.library.register_fake("balancedtorch::ohem_prob_weights")
def _ohem_prob_weights_fake(
    probs: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, thresh: float, min_kept: int
) -> Tensor:
    same_device("ohem_prob_weights", "probs", probs, target=target, weight=weight)
    torch._check(
        tuple(target.shape) == tuple(probs.shape),
        lambda: f"ohem_prob_weights: target must have the shape of probs {tuple(probs.shape)}, got {tuple(target.shape)}",
    )
    return probs.new_empty(probs.shape)


@torch.library.register_fake("balancedtorch::region_loss_stats")
def _stats_fake(
    input,
    target,
    weight,
    activation,
    squared_pred,
    ignore_index,
    ce_kind,
    gamma,
    label_smoothing,
    ce_first_class,
    soft_label=False,
    alpha=-1.0,
):
    torch._check(input.dim() >= 2, lambda: f"region_loss_stats: input must have shape (N, C, ...), got {tuple(input.shape)}")
    acc = _acc_dtype(input)
    n, c = input.shape[0], input.shape[1]
    return input.new_empty((n, 3, c), dtype=acc), input.new_empty((n, 2), dtype=acc)


@torch.library.register_fake("balancedtorch::region_loss_grad")
def _grad_fake(
    input,
    target,
    weight,
    activation,
    squared_pred,
    ignore_index,
    ce_kind,
    gamma,
    label_smoothing,
    ce_first_class,
    coef,
    ce_coef,
    soft_label=False,
    alpha=-1.0,
):
    return _grad_like(input)


@torch.library.register_fake("balancedtorch::region_loss")
def _region_loss_fake(
    input,
    target,
    weight,
    kind,
    activation,
    include_background,
    squared_pred,
    jaccard,
    smooth_nr,
    smooth_dr,
    batch,
    ignore_index,
    reduction,
    w_type,
    alpha,
    beta,
    tversky_gamma,
    ce_kind,
    ce_gamma,
    label_smoothing,
    lambda_dice,
    lambda_ce,
    sync,
    compute_grad,
    soft_label=False,
    focal_alpha=-1.0,
):
    n, c = input.shape[0], input.shape[1]
    acc = _acc_dtype(input)
    loss = input.new_empty(_region_op._loss_shape(n, c, kind, batch, include_background, reduction))
    grad = _grad_like(input) if compute_grad and reduction != _REDUCTION_NONE else input.new_empty((0,))
    return loss, grad, input.new_empty((1 if batch else n, 3, c), dtype=acc), input.new_empty((2,), dtype=acc)


# --- fake kernels: sampling, kNN, augmentation ---------------------------------------------------------


@torch.library.register_fake("balancedtorch::class_counts")
def _class_counts_fake(labels: Tensor, num_classes: int, ignore_index: Optional[int] = None) -> Tensor:
    _check_labels_dtype(labels)
    if num_classes < 0:
        raise ValueError(f"class_counts: num_classes must be >= 0, got {num_classes}")
    return labels.new_empty((num_classes,), dtype=torch.long)


@torch.library.register_fake("balancedtorch::knn")
def _knn_fake(x, k, groups=None, ref=None, ref_groups=None, max_tile_bytes=DEFAULT_TILE_BYTES):
    same_device("knn", "x", x, groups=groups, ref=ref, ref_groups=ref_groups)
    n = x.shape[0]
    return x.new_empty((n, k)), x.new_empty((n, k), dtype=torch.long)


@torch.library.register_fake("balancedtorch::kcenter_update")
def _kcenter_update_fake(x, center, min_dist):
    # the checks of csrc/knn/kcenter.h, in its words
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"kcenter_update: x must be float32 or float64, got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"kcenter_update: x must have shape (N, D), got {list(x.shape)}")
    if center.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"kcenter_update: center must be float32 or float64, got {center.dtype}")
    if center.dim() != 1 or center.shape[0] != x.shape[1]:
        raise ValueError(f"kcenter_update: center must have shape (D,) with D = {x.shape[1]}, got {list(center.shape)}")
    if min_dist.dtype != torch.float64:
        raise TypeError(f"kcenter_update: min_dist must be float64, got {min_dist.dtype}")
    if min_dist.dim() != 1 or min_dist.shape[0] != x.shape[0]:
        raise ValueError(f"kcenter_update: min_dist must have shape (N,) with N = {x.shape[0]}, got {list(min_dist.shape)}")
    same_device("kcenter_update", "x", x, center=center, min_dist=min_dist)
    return min_dist.new_empty((x.shape[0],)), x.new_empty((), dtype=torch.long)


@torch.library.register_fake("balancedtorch::alias_table")
def _alias_table_fake(weights):
    n = weights.shape[0]
    return weights.new_empty((n,), dtype=torch.float64), weights.new_empty((n,), dtype=torch.long)


@torch.library.register_fake("balancedtorch::alias_sample")
def _alias_sample_fake(prob, alias, seed, num_samples):
    same_device("alias_sample", "prob", prob, alias=alias, seed=seed)
    return alias.new_empty((num_samples,))


@torch.library.register_fake("balancedtorch::alias_pack")
def _alias_pack_fake(prob, alias):
    same_device("alias_pack", "prob", prob, alias=alias)
    return alias.new_empty(alias.shape)


@torch.library.register_fake("balancedtorch::alias_sample_packed")
def _alias_sample_packed_fake(packed, seed, num_samples):
    same_device("alias_sample_packed", "packed", packed, seed=seed)
    return packed.new_empty((num_samples,))


@torch.library.register_fake("balancedtorch::sample_without_replacement")
def _sample_without_replacement_fake(weights, uniforms, num_samples):
    same_device("sample_without_replacement", "weights", weights, uniforms=uniforms)
    return weights.new_empty((num_samples,), dtype=torch.long)


@torch.library.register_fake("balancedtorch::affine_color")
def _affine_color_fake(images, theta, colour, crop, mean, std, out_height, out_width, interpolation, fill, out_dtype):
    same_device("affine_color", "images", images, theta=theta, colour=colour, crop=crop, mean=mean, std=std)
    B, C = images.shape[:2]
    # the kernels write in images.suggest_memory_format(): channels-last in, channels-last out
    fmt = suggest_memory_format(images)
    return torch.empty((B, C, out_height, out_width), dtype=out_dtype, device=images.device, memory_format=fmt)


@torch.library.register_fake("balancedtorch::affine_mask")
def _affine_mask_fake(masks, theta, crop, out_height, out_width, fill):
    same_device("affine_mask", "masks", masks, theta=theta, crop=crop)
    lo, hi = _MASK_RANGES.get(masks.dtype, (fill, fill))  # other dtypes: the kernels' own error
    if not lo <= fill <= hi:  # as the kernels' check_mask_fill
        raise ValueError(f"affine_mask: fill must be a value of the masks' dtype {masks.dtype} ({lo} to {hi}), got {fill}")
    return masks.new_empty((masks.shape[0], out_height, out_width))  # (B, H, W): contiguous, as the kernels


@torch.library.register_fake("balancedtorch::focus_pixels")
def _focus_pixels_fake(masks, classes, weights, uniforms, active=None):
    same_device("focus_pixels", "masks", masks, classes=classes, weights=weights, uniforms=uniforms, active=active)
    if masks.dim() != 3:
        raise ValueError(f"focus_pixels: masks must have shape (B, H, W), got {tuple(masks.shape)}")
    if classes.dim() != 1 or classes.numel() < 1:
        raise ValueError(f"focus_pixels: classes must have shape (K,) with K >= 1, got {tuple(classes.shape)}")
    B, K = masks.shape[0], classes.shape[0]
    return masks.new_empty((B,), dtype=torch.long), masks.new_empty((B, K), dtype=torch.long)


# --- autograd ------------------------------------------------------------------------------------------


def _make_autograd(
    op,
    name: str,
    num_args: int,
    reduction_arg: Optional[int],
    broadcast_dim: Optional[int],
    target_grad,
    compute_grad_arg: int = -1,
    constants: Tuple[Tuple[int, str], ...] = (),
):
    """setup_context/backward for an op returning (loss, prescaled grad buffer, *constants).

    ``reduction_arg`` None: the op always reduces with "none"; ``target_grad``
    None: the op's target is never differentiable (class indices);
    ``compute_grad_arg``: where the op's ``compute_grad`` flag sits (the last
    argument unless arguments were appended after it); ``constants``: the
    (position, name) of the tensor arguments the kernels give no gradient for:
    one that requires grad is refused (a ValueError naming it) rather than
    left with a silent None gradient. On torch < 2.5 the autograd kernel
    also runs under ``torch.no_grad()``, so the refusal fires there too
    (detach the vector).
    """

    def setup_context(ctx, inputs, output):
        for slot, arg_name in constants:
            value = inputs[slot]
            if isinstance(value, Tensor) and value.requires_grad:
                raise ValueError(
                    f"{name}: {arg_name} must not require grad: the fused kernels give no gradient for it "
                    "(detach it, or use the plain PyTorch loss to learn it)"
                )
        grad = output[1]
        ctx.mark_non_differentiable(*output[1:])
        # Otherwise autograd would allocate a zero "gradient" for the grad
        # buffer output: a logits-sized fill per backward.
        ctx.set_materialize_grads(False)
        tensors = [a if isinstance(a, Tensor) else None for a in inputs]
        ctx.tensor_slots = [i for i, t in enumerate(tensors) if t is not None]
        ctx.other_args = [None if isinstance(a, Tensor) else a for a in inputs]
        ctx.reduction = _REDUCTION_NONE if reduction_arg is None else inputs[reduction_arg]
        has_buffer = bool(inputs[compute_grad_arg]) and grad.numel() == inputs[0].numel()
        ctx.traced = _traced(grad)
        # Only call_private's caller drops the buffer; anyone else may hold it.
        ctx.private = _private_call.active and not ctx.traced
        saved = [t for t in tensors if t is not None]
        if ctx.traced:
            # Graph capture: a plain saved tensor and a functional backward.
            ctx.save_for_backward(*saved, grad if has_buffer else None)
            ctx.grad_buffer = None
        else:
            ctx.save_for_backward(*saved)
            # Eager: the buffer is handed over by the first backward. A
            # non-differentiable output holds no reference to this node, so
            # keeping it on ctx makes no reference cycle.
            ctx.grad_buffer = grad if has_buffer else None

    def backward(ctx, grad_loss, *_grads_of_constants):
        if grad_loss is None:
            return (None,) * num_args
        if torch.is_grad_enabled():
            raise RuntimeError(
                f"{name}: double backward (create_graph=True) is not supported by the fused loss kernels; "
                "use the plain PyTorch loss for higher-order gradients"
            )
        saved = list(ctx.saved_tensors)
        grad = saved.pop() if ctx.traced else ctx.grad_buffer
        ctx.grad_buffer = None  # handed over: a second backward recomputes it
        args = list(ctx.other_args)
        for slot, tensor in zip(ctx.tensor_slots, saved):
            args[slot] = tensor
        # probability targets that require grad: torch's gradient (rare; not fused)
        grad_target = target_grad(args, grad_loss) if target_grad is not None and ctx.needs_input_grad[1] else None
        if not ctx.needs_input_grad[0]:
            return (None, grad_target) + (None,) * (num_args - 2)
        # private: the buffer is this node's alone (see call_private), or recomputed here
        private = ctx.private
        if grad is None:
            args[0] = args[0].detach()
            args[1] = args[1].detach()
            args[compute_grad_arg] = True
            grad = op(*args)[1]
            private = not ctx.traced
        if ctx.reduction == _REDUCTION_NONE:
            scale = grad_loss if broadcast_dim is None else grad_loss.unsqueeze(broadcast_dim)
        else:
            scale = grad_loss
        if not private or _traced(scale):
            grad = grad * scale  # the op's output stays as returned
        elif ctx.reduction != _REDUCTION_NONE and scale.device.type == "cpu" and scale.item() == 1.0:
            pass  # loss.backward(): the buffer already is the gradient
        else:
            grad.mul_(scale)
        return (grad, grad_target) + (None,) * (num_args - 2)

    return setup_context, backward


_sm_setup, _sm_backward = _make_autograd(
    torch.ops.balancedtorch.softmax_loss.default,
    "softmax_loss",
    num_args=12,
    reduction_arg=7,
    broadcast_dim=1,
    target_grad=_softmax_loss_target_grad,
    compute_grad_arg=8,
    constants=((2, "weight"), (3, "logit_bias"), (9, "logit_scale"), (10, "margin")),
)
torch.library.register_autograd("balancedtorch::softmax_loss", _sm_backward, setup_context=_sm_setup)

_smp_setup, _smp_backward = _make_autograd(
    torch.ops.balancedtorch.softmax_loss_target_prob.default,
    "softmax_loss_target_prob",
    num_args=4,
    reduction_arg=None,
    broadcast_dim=1,
    target_grad=None,
)
torch.library.register_autograd("balancedtorch::softmax_loss_target_prob", _smp_backward, setup_context=_smp_setup)

_sf_setup, _sf_backward = _make_autograd(
    torch.ops.balancedtorch.sigmoid_focal_loss.default,
    "sigmoid_focal_loss",
    num_args=7,
    reduction_arg=5,
    broadcast_dim=None,
    target_grad=_sigmoid_focal_target_grad,
)
torch.library.register_autograd("balancedtorch::sigmoid_focal_loss", _sf_backward, setup_context=_sf_setup)


def _knn_setup_context(ctx, inputs, output):
    x, _, _, ref, _, _ = inputs
    ctx.self_search = ref is None
    ctx.save_for_backward(x, ref if ref is not None else x, output[1])


def _knn_backward(ctx, grad_d, grad_i):
    # d[n, j] = |x_n - r_{i[n, j]}|^2: d/dx_n = 2 (x_n - r), d/dr = -2 (x_n - r)
    x, r, idx = ctx.saved_tensors
    if grad_d is None:
        return None, None, None, None, None, None
    n, k = idx.shape
    diff = x.unsqueeze(1) - r.index_select(0, idx.reshape(-1)).view(n, k, -1)
    g = 2.0 * grad_d.to(diff.dtype).unsqueeze(2) * diff
    grad_x = g.sum(1)
    grad_r = torch.zeros_like(r).index_add_(0, idx.reshape(-1), g.reshape(n * k, -1), alpha=-1)
    if ctx.self_search:
        return grad_x + grad_r, None, None, None, None, None
    return grad_x, None, None, grad_r, None, None


torch.library.register_autograd("balancedtorch::knn", _knn_backward, setup_context=_knn_setup_context)

torch.library.register_autograd("balancedtorch::region_loss", _region_op._backward, setup_context=_region_op._setup_context)


# --- kernels written in Python: region_loss (on the two C++ passes) --------------------------------------

_lib = torch.library.Library("balancedtorch", "IMPL")
for _key in ("CPU", "CUDA"):
    _lib.impl("region_loss", _region_op.region_loss, _key)


# --- autocast: float32, as F.cross_entropy (see the module docstring) ---------------------------------------


def _autocast_kernel(op, key: str):
    exclude = torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, key))

    def kernel(input, target, *rest):
        if input.dtype in _AUTOCAST_LOW:
            input = input.float()
        if target.is_floating_point() and target.dtype in _AUTOCAST_LOW:
            target = target.to(input.dtype)
        with torch._C._ExcludeDispatchKeyGuard(exclude):
            return op(input, target, *rest)

    return kernel


for _name in ("softmax_loss", "softmax_loss_target_prob", "sigmoid_focal_loss", "region_loss"):
    for _key in _AUTOCAST_KEYS.values():
        _lib.impl(_name, _autocast_kernel(getattr(torch.ops.balancedtorch, _name).default, _key), _key)


# --- seesaw_loss: fake kernel, autograd, autocast (balancedtorch/losses/seesaw.py) --------------------------


@torch.library.register_fake("balancedtorch::seesaw_loss")
def _seesaw_loss_fake(input, target, cum_samples, p, q, eps, ignore_index, reduction, compute_grad):
    torch._check(input.dim() == 2, lambda: f"seesaw_loss: input must have shape (N, C), got {tuple(input.shape)}")
    same_device("seesaw_loss", "input", input, target=target, cum_samples=cum_samples)
    loss = input.new_empty((input.shape[0],) if reduction == _REDUCTION_NONE else ())
    grad = input.new_empty(input.shape) if compute_grad else input.new_empty((0,))
    return loss, grad


_ss_setup, _ss_backward = _make_autograd(
    torch.ops.balancedtorch.seesaw_loss.default,
    "seesaw_loss",
    num_args=9,
    reduction_arg=7,
    broadcast_dim=1,
    target_grad=None,
    constants=((2, "cum_samples"),),
)
torch.library.register_autograd("balancedtorch::seesaw_loss", _ss_backward, setup_context=_ss_setup)

for _key in _AUTOCAST_KEYS.values():
    _lib.impl("seesaw_loss", _autocast_kernel(torch.ops.balancedtorch.seesaw_loss.default, _key), _key)
