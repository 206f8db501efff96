"""Fake kernels and autograd of the fused loss operators.

``balancedtorch::softmax_loss`` and ``balancedtorch::sigmoid_focal_loss``
return ``(loss, grad)`` (``softmax_loss_target_prob``, OHEM's cross-entropy,
``(loss, grad, p_target)``): when ``compute_grad`` is set, the forward pass also
writes d(loss)/d(input), already scaled for the reduction, into a buffer of
its own. Backward then only multiplies that buffer by ``grad_output`` and
hands it over. A second backward through a retained graph recomputes the
buffer from the saved input.

The buffer is also the op's second output, so whoever called the op may hold
it; an op's output is never modified afterwards. Only a call made through
:func:`call_private` (the wrappers in ``balancedtorch.functional``, which drop
the buffer at once) lets backward scale it in place, or hand it over untouched
when ``grad_output`` is exactly 1 on the CPU: nobody else can see it then. A
direct call of ``torch.ops.balancedtorch.*`` gets ``grad * grad_output`` in a
fresh tensor, and its returned buffer stays as the kernel wrote it.

Probability targets that require grad get torch's gradient, computed in
backward from the saved logits (the kernels write d(loss)/d(input) only).

Under ``torch.autocast`` both ops run in float32, as ``F.cross_entropy`` (on
autocast's float32 list): an Autocast kernel casts float16/bfloat16 logits and
probability targets to float32 and calls the op with autocast off. It is
registered with ``torch.library.Library.impl`` on the AutocastCPU/AutocastCUDA
keys: torch 2.4 has that (``torch.library.register_autocast``, which torch 2.4
lacks, does the same underneath), so one code path serves torch 2.4 to today,
eager and compiled, direct op calls included, with no C++ Autocast kernel to
build. Only float16/bfloat16 tensors are cast (float64 logits stay float64,
as autocast leaves float64 alone), and ``weight``/``logit_bias`` are left as
they are: the kernels read them in their accumulation dtype anyway.
"""

from __future__ import annotations

import threading
from typing import Optional

import torch
from torch import Tensor

from ._fake import check_same_device

__all__: list = []

_REDUCTION_NONE = 0


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    return False


def _class_last(input: Tensor) -> bool:
    """softmax_loss_layout's class_last_format: channels-last logits are read in place."""
    if input.is_contiguous():
        return False
    if input.dim() == 4:
        return input.is_contiguous(memory_format=torch.channels_last)
    if input.dim() == 5:
        return input.is_contiguous(memory_format=torch.channels_last_3d)
    return False


def suggest_memory_format(t: Tensor) -> torch.memory_format:
    """``Tensor::suggest_memory_format()`` of the C++ side (for fake kernels)."""
    suggest = getattr(getattr(torch, "_prims_common", None), "suggest_memory_format", None)
    if suggest is not None:
        return suggest(t)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):  # pragma: no cover (old torch)
        return torch.channels_last
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):  # pragma: no cover
        return torch.channels_last_3d
    return torch.contiguous_format


def _elementwise_format(input: Tensor) -> torch.memory_format:
    """sigmoid_focal_output_format: the input's memory format (channels-last in, channels-last out)."""
    return torch.contiguous_format if input.is_contiguous() else suggest_memory_format(input)


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
):
    torch._check(input.dim() >= 2, lambda: f"softmax_loss: input must have shape (N, C, ...), got {tuple(input.shape)}")
    check_same_device("softmax_loss", "input", input, target=target, weight=weight, logit_bias=logit_bias)
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
    check_same_device("sigmoid_focal_loss", "input", input, target=target, pos_weight=pos_weight)
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


_REDUCTION_SUM = 2


def _acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _class_view(vec: Tensor, like: Tensor) -> Tensor:
    """A per-class vector (C,) shaped to broadcast along dim 1 of (N, C, d1, ...)."""
    return vec.view((1, -1) + (1,) * (like.dim() - 2))


def _softmax_loss_target_grad(args, grad_loss: Tensor) -> Tensor:
    """d(loss)/d(probability target), as autograd gives it for torch's cross_entropy (and the focal form).

    loss_n = sum_c ((1 - eps) q_nc + eps / C) w_c (1 - p_nc)^gamma (-log p_nc), so
    d loss_n / d q_nc = (1 - eps) w_c (1 - p_nc)^gamma (-log p_nc); "mean" divides
    by the number of samples N * d1 * ... as torch does for probability targets.
    """
    input, target, weight, bias, _, label_smoothing, gamma, reduction = args[:8]
    acc = _acc_dtype(input)
    z = input.detach().to(acc)
    if bias is not None:
        z = z + _class_view(bias.to(acc), z)
    log_p = torch.log_softmax(z, dim=1)
    coef = -log_p
    if gamma != 0.0:
        coef = coef * (-torch.expm1(log_p)).pow(gamma)
    if weight is not None:
        coef = coef * _class_view(weight.to(acc), z)
    coef = coef * (1.0 - label_smoothing)
    if reduction == _REDUCTION_NONE:
        coef = coef * grad_loss.to(acc).unsqueeze(1)
    else:
        coef = coef * grad_loss.to(acc)
        if reduction != _REDUCTION_SUM:
            coef = coef / (z.numel() // z.shape[1] if z.numel() else 1)
    return coef.to(target.dtype)


def _sigmoid_focal_target_grad(args, grad_loss: Tensor) -> Tensor:
    """d(loss)/d(target) of torchvision's sigmoid focal loss (with BCE's pos_weight), as autograd gives it."""
    input, target, pos_weight, alpha, gamma, reduction = args[:6]
    acc = _acc_dtype(input)
    x = input.detach().to(acc)
    t = target.detach().to(acc)
    pw = None
    if pos_weight is not None:  # along the class dimension 1 (dim 0 of a 1-D input), as the kernels
        pw = _class_view(pos_weight.to(acc), x) if x.dim() >= 2 else pos_weight.to(acc)
    p = torch.sigmoid(x)
    log_p = torch.nn.functional.logsigmoid(x)
    log_1mp = torch.nn.functional.logsigmoid(-x)
    ce = -((t * pw if pw is not None else t) * log_p + (1 - t) * log_1mp)
    dce = log_1mp - (log_p * pw if pw is not None else log_p)
    if gamma != 0.0:
        m = 1 - (p * t + (1 - p) * (1 - t))
        mod = m.pow(gamma)
        loss = ce * mod
        dloss = dce * mod + ce * (gamma * m.pow(gamma - 1) * (1 - 2 * p))
    else:
        loss, dloss = ce, dce
    if alpha >= 0:
        dloss = (alpha * t + (1 - alpha) * (1 - t)) * dloss + (2 * alpha - 1) * loss
    dloss = dloss * grad_loss.to(acc)
    if reduction not in (_REDUCTION_NONE, _REDUCTION_SUM):
        dloss = dloss / max(1, x.numel())
    return dloss.to(target.dtype)


class _PrivateCall(threading.local):
    active = False


_private_call = _PrivateCall()


def call_private(op, *args):
    """``op(*args)[0]``: the loss of a fused loss op whose gradient buffer nobody else sees.

    The buffer output is dropped here, before the caller gets anything back,
    so backward may scale it in place. setup_context runs inside the op call,
    on this thread, and records the flag; under graph capture backward is
    functional anyway and the flag is not touched.
    """
    return call_private_outputs(op, *args)[0]


def call_private_outputs(op, *args) -> tuple:
    """Every output of ``op(*args)`` but the gradient buffer (output 1), which nobody else sees (see call_private)."""
    if _is_compiling():
        out = op(*args)
        return (out[0],) + tuple(out[2:])
    _private_call.active = True
    try:
        out = op(*args)
    finally:
        _private_call.active = False
    return (out[0],) + tuple(out[2:])


def _traced(t: Tensor) -> bool:
    """True under torch.compile / AOT tracing (fake or functional tensors)."""
    return _is_compiling() or type(t) is not torch.Tensor


def _make_autograd(op, name: str, num_args: int, reduction_arg: Optional[int], broadcast_dim: Optional[int], target_grad):
    """setup_context/backward for an op returning (loss, prescaled grad buffer, *constants).

    ``reduction_arg`` None: the op always reduces with "none"; ``target_grad``
    None: the op's target is never differentiable (class indices).
    """

    def setup_context(ctx, inputs, output):
        grad = output[1]
        ctx.mark_non_differentiable(*output[1:])
        # Otherwise autograd would allocate a zero "gradient" for the grad
        # buffer output: a logits-sized fill per backward.
        ctx.set_materialize_grads(False)
        tensors = [a if isinstance(a, Tensor) else None for a in inputs]
        ctx.tensor_slots = [i for i, t in enumerate(tensors) if t is not None]
        ctx.other_args = [None if isinstance(a, Tensor) else a for a in inputs]
        ctx.reduction = _REDUCTION_NONE if reduction_arg is None else inputs[reduction_arg]
        has_buffer = bool(inputs[-1]) and grad.numel() == inputs[0].numel()
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
            args[-1] = True
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
    num_args=9,
    reduction_arg=7,
    broadcast_dim=1,
    target_grad=_softmax_loss_target_grad,
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


# Autocast: float32, as F.cross_entropy (see the module docstring for why this
# registration and not torch.library.register_autocast).
_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}
_AUTOCAST_LOW = (torch.float16, torch.bfloat16)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # pragma: no cover (torch 2.4 without the device argument)
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def autocast_dtype(t: Tensor) -> torch.dtype:
    """The dtype the loss kernels compute in for logits t: float32 for float16/bfloat16 under autocast."""
    if t.dtype in _AUTOCAST_LOW and t.device.type in _AUTOCAST_KEYS and _autocast_enabled(t.device.type):
        return torch.float32
    return t.dtype


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


_autocast_lib = torch.library.Library("balancedtorch", "IMPL")
for _name in ("softmax_loss", "softmax_loss_target_prob", "sigmoid_focal_loss"):
    for _key in _AUTOCAST_KEYS.values():
        _autocast_lib.impl(_name, _autocast_kernel(getattr(torch.ops.balancedtorch, _name).default, _key), _key)
