"""Fake kernels and autograd of the fused loss operators.

``balancedtorch::softmax_loss`` and ``balancedtorch::sigmoid_focal_loss``
return ``(loss, grad)``: when ``compute_grad`` is set, the forward pass also
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
"""

from __future__ import annotations

import threading
from typing import Optional

import torch
from torch import Tensor

__all__: list = []

_REDUCTION_NONE = 0


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    return False


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
    if reduction == _REDUCTION_NONE:
        loss = input.new_empty((input.shape[0],) + tuple(input.shape[2:]))
    else:
        loss = input.new_empty(())
    grad = input.new_empty(input.shape) if compute_grad else input.new_empty((0,))
    return loss, grad


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
    loss = input.new_empty(input.shape) if reduction == _REDUCTION_NONE else input.new_empty(())
    grad = input.new_empty(input.shape) if compute_grad else input.new_empty((0,))
    return loss, grad


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
    if _is_compiling():
        return op(*args)[0]
    _private_call.active = True
    try:
        loss, _ = op(*args)
    finally:
        _private_call.active = False
    return loss


def _traced(t: Tensor) -> bool:
    """True under torch.compile / AOT tracing (fake or functional tensors)."""
    return _is_compiling() or type(t) is not torch.Tensor


def _make_autograd(op, name: str, num_args: int, reduction_arg: int, broadcast_dim: Optional[int]):
    """setup_context/backward for an op returning (loss, prescaled grad buffer)."""

    def setup_context(ctx, inputs, output):
        _, grad = output
        ctx.mark_non_differentiable(grad)
        # Otherwise autograd would allocate a zero "gradient" for the grad
        # buffer output: a logits-sized fill per backward.
        ctx.set_materialize_grads(False)
        tensors = [a if isinstance(a, Tensor) else None for a in inputs]
        ctx.tensor_slots = [i for i, t in enumerate(tensors) if t is not None]
        ctx.other_args = [None if isinstance(a, Tensor) else a for a in inputs]
        ctx.reduction = inputs[reduction_arg]
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

    def backward(ctx, grad_loss, _grad_of_grad):
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
        # private: the buffer is this node's alone (see call_private), or recomputed here
        private = ctx.private
        if grad is None:
            args = list(ctx.other_args)
            for slot, tensor in zip(ctx.tensor_slots, saved):
                args[slot] = tensor
            args[0] = args[0].detach()
            args[-1] = True
            _, grad = op(*args)
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
        return (grad,) + (None,) * (num_args - 1)

    return setup_context, backward


_sm_setup, _sm_backward = _make_autograd(
    torch.ops.balancedtorch.softmax_loss.default, "softmax_loss", num_args=9, reduction_arg=7, broadcast_dim=1
)
torch.library.register_autograd("balancedtorch::softmax_loss", _sm_backward, setup_context=_sm_setup)

_sf_setup, _sf_backward = _make_autograd(
    torch.ops.balancedtorch.sigmoid_focal_loss.default, "sigmoid_focal_loss", num_args=7, reduction_arg=5, broadcast_dim=None
)
torch.library.register_autograd("balancedtorch::sigmoid_focal_loss", _sf_backward, setup_context=_sf_setup)
