"""Short reprs: the constructor call, with the arguments that are required or differ from their defaults.

Tensors and arrays are summarised by their size (``<tensor of 10000>``),
never printed; a generator by its kind and device; a function by its name.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = ["call_repr", "changed_args", "short_repr", "Shown"]


class Shown(str):
    """A value already formatted for a repr: printed as is, never equal to a default."""

    def __repr__(self) -> str:
        return str(self)


def short_repr(value: Any) -> str:
    """``repr(value)``, except for values whose repr is long or unreadable.

    Args:
        value: any constructor argument.

    Returns:
        str: ``<tensor of N>`` / ``<tensor of shape (a, b)>`` for tensors
        (``array`` for numpy arrays), ``<torch.Generator>`` (with its device
        when not the CPU), ``<function name>`` for functions, else ``repr``.

    Example:
        >>> import torch
        >>> short_repr(torch.rand(10000))
        '<tensor of 10000>'
    """
    if isinstance(value, (Tensor, np.ndarray)):
        kind = "tensor" if isinstance(value, Tensor) else "array"
        if value.ndim == 1:
            return f"<{kind} of {value.shape[0]}>"
        return f"<{kind} of shape {tuple(value.shape)}>"
    if isinstance(value, torch.Generator):
        device = value.device
        return "<torch.Generator>" if device.type == "cpu" else f"<torch.Generator on {device}>"
    if inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.ismethod(value):
        return f"<function {getattr(value, '__qualname__', getattr(value, '__name__', '?'))}>"
    return repr(value)


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if isinstance(value, (Tensor, np.ndarray, Shown)) or isinstance(default, (Tensor, np.ndarray)):
        return False
    if type(value) is not type(default):  # 1 is not True, 0.0 is not 0
        return False
    try:
        return bool(value == default)
    except Exception:  # pragma: no cover - a value whose == is not a bool
        return False


def changed_args(owner: Any, args: Mapping[str, Any]) -> str:
    """``"name=value, ..."`` for the arguments of ``type(owner).__init__`` that are required or not their default.

    Args:
        owner: the object whose constructor's signature gives the defaults.
        args: the constructor arguments as the object holds them, by name,
            in the order to print (a :class:`Shown` value is printed as is).

    Returns:
        str: the arguments to show, comma-separated (empty when all are defaults).

    Example:
        >>> import torch
        >>> from balancedtorch.data import WeightedRandomSampler
        >>> sampler = WeightedRandomSampler(torch.ones(1000), num_samples=100)
        >>> changed_args(sampler, {"num_samples": 100, "seed": 0})
        'num_samples=100'
    """
    params = inspect.signature(type(owner).__init__).parameters
    parts = []
    for name, value in args.items():
        default = params[name].default
        if default is not inspect.Parameter.empty and _is_default(value, default):
            continue
        parts.append(f"{name}={short_repr(value)}")
    return ", ".join(parts)


def call_repr(owner: Any, args: Mapping[str, Any]) -> str:
    """``ClassName(name=value, ...)`` with :func:`changed_args`.

    Example:
        >>> import torch
        >>> from balancedtorch.data import WeightedRandomSampler
        >>> weights = torch.ones(1000)
        >>> sampler = WeightedRandomSampler(weights, num_samples=100)
        >>> call_repr(sampler, {"weights": weights, "num_samples": 100, "replacement": True})
        'WeightedRandomSampler(weights=<tensor of 1000>, num_samples=100)'
    """
    return f"{type(owner).__name__}({changed_args(owner, args)})"
