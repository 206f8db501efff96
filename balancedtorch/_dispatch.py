"""Small helpers every fused-loss module and the op registrations share: layouts, tracing, private calls, autocast.

Nothing here registers anything (that is :mod:`balancedtorch._meta`); these are
the facts both the Python wrappers and the fake/autograd registrations need:
the gradient layout the kernels write (channels-last kept), whether a call is
being traced by ``torch.compile``, the dtype a loss computes in under
autocast, and the
"private call" flag that lets backward scale a gradient buffer nobody else
holds in place (see :func:`call_private`).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

import torch
from torch import Tensor

__all__: list = []


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


def _acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _class_view(vec: Tensor, like: Tensor) -> Tensor:
    """A per-class vector (C,) shaped to broadcast along dim 1 of (N, C, d1, ...)."""
    return vec.view((1, -1) + (1,) * (like.dim() - 2))


def refuse_bad_values(bad: Tensor, message: Callable[[Optional[int]], str]) -> None:
    """ValueError(message(first flagged flat index)) when ``bad`` has a True entry; on a GPU, a device-side check.

    On the CPU reading the flag costs nothing. On a GPU it would synchronise
    the host with the device on every call of a per-step path (a loss's
    weight, its denominators): there the check runs on the device
    (``torch._assert_async``; ``message(None)`` names what failed) and a
    failure stops the stream, as torch's own CUDA index checks do.
    """
    if bad.device.type == "cuda":
        torch._assert_async(torch.logical_not(bad.any()), message(None))
        return
    if bool(bad.any()):
        raise ValueError(message(int(bad.reshape(-1).nonzero()[0, 0])))


def _grad_like(input: Tensor) -> Tensor:
    """The kernels' gradient layout: channels-last logits keep it, anything else is made contiguous."""
    return torch.empty_like(input) if _class_last(input) else input.new_empty(input.shape)


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


# Autocast: float32, as F.cross_entropy (see balancedtorch._meta for the registration)
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
