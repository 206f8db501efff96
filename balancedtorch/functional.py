"""Fused class-weighted, focal and logit-adjusted losses (functional form).

Each function computes the loss and, when the input requires grad, its
gradient in one pass over the logits (C++/CUDA kernels); results equal
``torch.nn.functional.cross_entropy`` and ``torchvision.ops.sigmoid_focal_loss``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import torch
from torch import Tensor

from ._validate import check_dense, check_int64
from .ops import losses as _losses  # noqa: F401  (registers fake kernels and autograd)

__all__ = ["cross_entropy", "focal_loss", "logit_adjusted_loss", "sigmoid_focal_loss", "logit_adjustment"]

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _reduction_code(reduction: str) -> int:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return _REDUCTIONS[reduction]


def _real(value: Any, name: str, low: float, high: float = math.inf, high_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    above = value > high if high_inclusive else value >= high
    if value < low or above or math.isinf(value):
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value!r}")
    return value


def _alpha(alpha: Any) -> float:
    """Sigmoid focal alpha: <= 1; negative disables the weighting, as in torchvision."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or math.isnan(float(alpha)) or float(alpha) > 1:
        raise ValueError(f"alpha must be a number <= 1 (negative disables it, as torchvision), got {alpha!r}")
    return float(alpha)


def _check_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return check_dense(value, name)


def _check_class_vector(
    vec: Optional[Tensor], name: str, validate_values: bool = True, input: Optional[Tensor] = None
) -> Optional[Tensor]:
    """A per-class vector (weight, pos_weight): 1-D, floating, finite and >= 0.

    With ``input``, the vector must be on the input's device (checked first, before any value is read).
    A meta vector without ``input`` (a module built on the meta device) has no values to check yet.
    """
    if vec is None:
        return None
    vec = _check_tensor(vec, name)
    if input is not None and vec.device != input.device:
        raise ValueError(f"{name} is on {vec.device} but input is on {input.device}: move {name} to {input.device}")
    if vec.is_meta and (input is None or input.is_meta):
        validate_values = False
    if vec.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor with one entry per class, got shape {tuple(vec.shape)}")
    if not vec.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {vec.dtype}")
    if vec.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{name} must not require grad: the fused kernels give no gradient for it")
    if validate_values and not _is_compiling():
        bad = ~torch.isfinite(vec) | (vec < 0)
        if bool(bad.any()):
            idx = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name} must be finite and >= 0, got {name}[{idx}] = {vec[idx].item()}")
    return vec


def _is_compiling() -> bool:
    return _losses._is_compiling()


def _softmax_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Optional[Tensor],
    logit_bias: Optional[Tensor],
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    gamma: float,
    validate: bool,
) -> Tensor:
    input = _check_tensor(input, "input")
    target = _check_tensor(target, "target")
    code = _reduction_code(reduction)
    label_smoothing = _real(label_smoothing, "label_smoothing", 0.0, 1.0)
    gamma = _real(gamma, "gamma", 0.0)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    ignore_index = check_int64(ignore_index, "ignore_index")
    weight = _check_class_vector(weight, "weight", validate, input)
    unbatched = input.dim() == 1
    if unbatched:  # (C,) with a () class index or (C,) probabilities, as torch
        input = input.unsqueeze(0)
        target = target.unsqueeze(0)
    if target.is_floating_point() and input.is_floating_point():
        # the dtype the kernel computes in: float32 for half logits under autocast, as torch
        target = target.to(_losses.autocast_dtype(input))
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss = _losses.call_private(
        torch.ops.balancedtorch.softmax_loss,
        input,
        target,
        weight,
        logit_bias,
        ignore_index,
        label_smoothing,
        gamma,
        code,
        compute_grad,
    )
    if unbatched and code == 0:
        loss = loss.squeeze(0)
    return loss


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy, equal to ``torch.nn.functional.cross_entropy`` (fused kernel).

    Args:
        input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]): logits;
            float16, bfloat16 (accumulated in float32), float32 or float64.
        target (Tensor[N] or Tensor[N, d1, ..., dk]): class indices (int64,
            int32 or uint8), or probabilities with the input's shape.
        weight (Tensor[C], optional): per-class weights, e.g. from
            :func:`balancedtorch.class_weights`.
        ignore_index (int): class-index target to skip. Default -100.
        reduction (str): ``"none"`` | ``"mean"`` | ``"sum"``. ``"mean"`` divides
            by the summed weights of the non-ignored targets (by the number of
            samples for probability targets), as torch does.
        label_smoothing (float): in [0, 1]. Default 0.

    Returns:
        Tensor: a scalar, or the per-sample losses ``[N, d1, ..., dk]`` for
        ``reduction="none"``; in the input's dtype (float32 for float16/bfloat16
        logits under ``torch.autocast``, as torch). ``"mean"`` over targets
        whose weights sum to zero (all ignored, or zero-weight classes only) is
        ``nan``, as torch, with or without label smoothing. Probability
        targets that require grad get torch's gradient.

    Example:
        >>> logits = torch.randn(8, 3, requires_grad=True)
        >>> loss = bt.functional.cross_entropy(logits, torch.randint(0, 3, (8,)), weight=torch.tensor([1.8, 33.3, 2.4]))
        >>> loss.backward()
    """
    return focal_loss(input, target, 0.0, weight, ignore_index, reduction, label_smoothing)


def focal_loss(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax focal loss (Lin et al. 2017): ``-w[y] * (1 - p_y)^gamma * log p_y``.

    ``"mean"`` divides by the summed ``w[y]`` of the non-ignored targets, so
    ``gamma=0`` is exactly :func:`cross_entropy`. With label smoothing or
    probability targets ``q`` the loss is ``sum_c q_c w_c (1 - p_c)^gamma (-log p_c)``.

    Args:
        input (Tensor[N, C, *]): logits. target (Tensor[N, *] or Tensor[N, C, *]):
            class indices or probabilities. gamma (float): focusing parameter
            >= 0 (default 2). Other arguments as :func:`cross_entropy`.

    Example:
        >>> loss = bt.functional.focal_loss(logits, target, gamma=2.0)
    """
    return _softmax_loss(
        input,
        target,
        weight=weight,
        logit_bias=None,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        gamma=gamma,
        validate=True,
    )


# A class with no samples gets the prior of half a sample (rather than
# log(0) = -inf, which would make its logit unreachable and its loss infinite).
ZERO_COUNT_FLOOR = 0.5


def logit_adjustment(class_counts: Any, tau: float = 1.0) -> Tensor:
    """``tau * log(prior)`` per class, the additive logit adjustment of Menon et al. (2021).

    ``prior = n / n.sum()`` where ``n`` is ``class_counts`` with every zero
    count replaced by 0.5: a class absent from the training counts gets the
    prior of half a sample (``log(0)`` would be ``-inf``: that class's loss
    infinite and its gradient NaN). Positive counts, fractional ones
    included, are used as given.

    Args:
        class_counts (Tensor[C] | sequence): samples per class, finite and
            >= 0, not all zero (negative or NaN counts raise a ValueError).
        tau (float): temperature >= 0. Default 1 (Balanced Softmax).

    Returns:
        Tensor[C]: float64 (the kernels read it in their accumulation dtype),
        on the counts' device.

    Example:
        >>> bt.functional.logit_adjustment([90, 10, 0])   # log([90, 10, 0.5] / 100.5)
        tensor([-0.1103, -2.3076, -5.3033], dtype=torch.float64)
    """
    tau = _real(tau, "tau", 0.0)
    counts = class_counts if isinstance(class_counts, Tensor) else torch.as_tensor(class_counts)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    if counts.dtype == torch.bool or counts.is_complex():
        raise ValueError(f"class_counts must be real numbers, got dtype {counts.dtype}")
    counts = counts.detach().to(torch.float64)
    bad = ~torch.isfinite(counts) | (counts < 0)
    if bool(bad.any()):
        idx = int(bad.nonzero()[0, 0])
        raise ValueError(f"class_counts must be finite and >= 0, got class_counts[{idx}] = {counts[idx].item()}")
    if not bool((counts > 0).any()):
        raise ValueError(f"class_counts are all zero: there is no prior to adjust by, got {counts.tolist()}")
    counts = torch.where(counts == 0, torch.full_like(counts, ZERO_COUNT_FLOOR), counts)
    return tau * torch.log(counts / counts.sum())


def logit_adjusted_loss(
    input: Tensor,
    target: Tensor,
    class_counts: Any,
    tau: float = 1.0,
    gamma: float = 0.0,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Logit-adjusted softmax loss (Menon et al. 2021): ``tau * log(prior)`` is
    added to the logits inside the kernel before the (focal) cross-entropy.

    With ``gamma=0`` the result equals
    ``F.cross_entropy(input + tau * log(prior), target, weight, ignore_index=...,
    reduction=..., label_smoothing=...)`` (``log(prior)`` along the class
    dimension 1), in value and gradient. ``tau=1`` is Balanced Softmax. At
    inference use the raw logits (the adjustment only shapes training).

    Args:
        input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]): logits
            (float16/bfloat16 accumulated in float32, float32, float64).
        target (Tensor[N] or Tensor[N, d1, ..., dk]): class indices, or
            probabilities of the input's shape.
        class_counts (Tensor[C] | sequence): training samples per class; a
            zero count is taken as half a sample (see :func:`logit_adjustment`).
        tau (float): temperature >= 0. Default 1.
        gamma (float): focal term >= 0. Default 0 (cross-entropy).
        weight (Tensor[C], optional): per-class weights.
        ignore_index (int): class index to skip. Default -100.
        reduction (str): ``"none"`` | ``"mean"`` (default) | ``"sum"``, as
            :func:`cross_entropy`.
        label_smoothing (float): in [0, 1], torch's label smoothing applied to
            the adjusted logits. Default 0.

    Returns:
        Tensor: a scalar, or the per-sample losses ``[N, d1, ..., dk]`` for
        ``reduction="none"``, in the input's dtype (float32 under autocast).

    Example:
        >>> logits = torch.randn(8, 3, requires_grad=True)
        >>> loss = bt.functional.logit_adjusted_loss(logits, torch.randint(0, 3, (8,)), class_counts=[5000, 300, 0],
        ...                                          label_smoothing=0.1)
        >>> loss.backward()
    """
    bias = logit_adjustment(class_counts, tau)
    if isinstance(input, Tensor):
        bias = bias.to(input.device)
    return _softmax_loss(
        input,
        target,
        weight=weight,
        logit_bias=bias,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        gamma=gamma,
        validate=True,
    )


def _sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float,
    gamma: float,
    reduction: str,
    pos_weight: Optional[Tensor],
    validate: bool,
) -> Tensor:
    input = _check_tensor(input, "input")
    target = _check_tensor(target, "target")
    code = _reduction_code(reduction)
    alpha = _alpha(alpha)
    gamma = _real(gamma, "gamma", 0.0)
    pos_weight = _check_class_vector(pos_weight, "pos_weight", validate, input)
    if not input.is_floating_point():
        raise ValueError(f"input must be a floating tensor, got dtype {input.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"target must have the input's shape {tuple(input.shape)}, got {tuple(target.shape)}")
    if (
        pos_weight is not None
        and input.dim() >= 3
        and pos_weight.numel() != input.shape[1]
        and pos_weight.numel() == input.shape[-1]
    ):
        raise ValueError(
            f"pos_weight must have shape (C,) = ({input.shape[1]},) (the input's class dimension 1, as (N, C, H, W) "
            f"logits), got {tuple(pos_weight.shape)}; for class-last (N, ..., C) logits pass "
            "input.movedim(-1, 1) and target.movedim(-1, 1)"
        )
    target = target.to(_losses.autocast_dtype(input))
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss = _losses.call_private(
        torch.ops.balancedtorch.sigmoid_focal_loss, input, target, pos_weight, float(alpha), gamma, code, compute_grad
    )
    return loss


def _one_of(value: Any, alias: Any, name: str, alias_name: str) -> Any:
    """An argument given positionally/as ``name`` or by torchvision's keyword ``alias_name``."""
    if value is not None and alias is not None:
        raise TypeError(f"sigmoid_focal_loss: got both {name} and {alias_name} (the same argument); pass one")
    if value is None and alias is None:
        raise TypeError(f"sigmoid_focal_loss: missing the argument {name} (or {alias_name}, as torchvision names it)")
    return value if value is not None else alias


def sigmoid_focal_loss(
    input: Optional[Tensor] = None,
    target: Optional[Tensor] = None,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
    pos_weight: Optional[Tensor] = None,
    *,
    inputs: Optional[Tensor] = None,
    targets: Optional[Tensor] = None,
) -> Tensor:
    """Sigmoid focal loss, equal to ``torchvision.ops.sigmoid_focal_loss`` (fused kernel).

    ``loss = alpha_t * (1 - p_t)^gamma * BCE(input, target)`` elementwise, with
    ``alpha_t = alpha * y + (1 - alpha) * (1 - y)`` (``alpha < 0`` disables it)
    and BCE-with-logits' ``pos_weight`` on the positive term. A drop-in for
    torchvision's function: the default reduction is ``"none"`` as there, and
    its keyword names ``inputs=`` / ``targets=`` are accepted
    (:class:`balancedtorch.nn.SigmoidFocalLoss` keeps ``reduction="mean"``).

    Args:
        input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]): logits
            (float16, bfloat16, float32, float64), contiguous or
            channels-last; any shape when no ``pos_weight`` is given; also
            accepted as ``inputs=``.
        target (Tensor): targets in [0, 1] of the input's shape; also
            accepted as ``targets=``. Differentiable when it requires grad.
        alpha (float): default 0.25. gamma (float): >= 0, default 2.
        reduction (str): ``"none"`` (default, elementwise losses of the input's
            shape) | ``"mean"`` (over all elements) | ``"sum"``.
        pos_weight (Tensor[C], optional): weight of the positive term per
            class, as ``BCEWithLogitsLoss(pos_weight=...)``. The class
            dimension is dim 1, as for the softmax losses: for ``(N, C)``
            logits that is the last dimension (exactly torch's broadcast);
            for dense ``(N, C, H, W)`` (or ``(N, C, d1, ..., dk)``) logits it
            is the channel dimension, i.e. torch's
            ``BCEWithLogitsLoss(pos_weight=pos_weight.view(1, C, 1, 1))`` (a
            plain ``(C,)`` pos_weight in torch would broadcast over W). For
            class-last ``(N, ..., C)`` logits pass ``input.movedim(-1, 1)``.

    Returns:
        Tensor: the input's shape for ``"none"``, else a scalar; in the input's
        dtype (float32 for float16/bfloat16 logits under ``torch.autocast``).

    Example:
        >>> loss = bt.functional.sigmoid_focal_loss(logits, multi_hot.float(), reduction="mean")
        >>> dense = torch.randn(2, 3, 64, 64, requires_grad=True)           # (N, C, H, W)
        >>> masks = (torch.rand(2, 3, 64, 64) < 0.1).float()
        >>> bt.functional.sigmoid_focal_loss(dense, masks, pos_weight=torch.tensor([1.0, 5.0, 20.0])).shape
        torch.Size([2, 3, 64, 64])
    """
    input = _one_of(input, inputs, "input", "inputs")
    target = _one_of(target, targets, "target", "targets")
    return _sigmoid_focal_loss(input, target, alpha=alpha, gamma=gamma, reduction=reduction, pos_weight=pos_weight, validate=True)


from ._ohem import ohem_cross_entropy  # noqa: E402  (OHEM cross-entropy; imports this module's helpers)

__all__ += ["ohem_cross_entropy"]

from ._region_losses import dice_ce_loss, dice_focal_loss, dice_loss, generalized_dice_loss, tversky_loss  # noqa: E402

__all__ += ["dice_loss", "generalized_dice_loss", "tversky_loss", "dice_ce_loss", "dice_focal_loss"]
