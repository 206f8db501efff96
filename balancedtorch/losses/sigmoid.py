"""Sigmoid focal loss, fused (functional form and module): torchvision's ``sigmoid_focal_loss`` plus ``pos_weight``.

``balancedtorch::sigmoid_focal_loss`` computes the loss and its gradient in one
pass over the logits (C++/CUDA kernels).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .._dispatch import _acc_dtype, _class_view, autocast_dtype, call_private
from ._common import _REDUCTIONS, _alpha, _check_class_vector, _check_tensor, _real, _reduction_code

__all__ = ["sigmoid_focal_loss", "SigmoidFocalLoss"]

_REDUCTION_NONE, _REDUCTION_SUM = _REDUCTIONS["none"], _REDUCTIONS["sum"]


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
    target = target.to(autocast_dtype(input))
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    loss = call_private(
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
        >>> import torch
        >>> import balancedtorch as bt
        >>> logits = torch.randn(8, 5)
        >>> multi_hot = torch.rand(8, 5) < 0.2                               # multi-label targets
        >>> loss = bt.functional.sigmoid_focal_loss(logits, multi_hot.float(), reduction="mean")
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
        >>> dense = torch.randn(2, 3, 64, 64, requires_grad=True)           # (N, C, H, W)
        >>> masks = (torch.rand(2, 3, 64, 64) < 0.1).float()
        >>> bt.functional.sigmoid_focal_loss(dense, masks, pos_weight=torch.tensor([1.0, 5.0, 20.0])).shape
        torch.Size([2, 3, 64, 64])
    """
    input = _one_of(input, inputs, "input", "inputs")
    target = _one_of(target, targets, "target", "targets")
    return _sigmoid_focal_loss(input, target, alpha=alpha, gamma=gamma, reduction=reduction, pos_weight=pos_weight, validate=True)


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


class SigmoidFocalLoss(nn.Module):
    """Sigmoid focal loss, equal to ``torchvision.ops.sigmoid_focal_loss``, plus ``pos_weight``.

    ``pos_weight`` (C,) weights the positive term per class along the class
    dimension 1: the last dimension of ``(N, C)`` logits (as
    ``BCEWithLogitsLoss``), the channel dimension of dense ``(N, C, H, W)``
    or ``(N, C, d1, ..., dk)`` logits (as ``BCEWithLogitsLoss`` with
    ``pos_weight.view(1, C, 1, 1)``). See
    :func:`balancedtorch.functional.sigmoid_focal_loss`.

    Args:
        alpha (float): <= 1, default 0.25 (negative disables the weighting).
        gamma (float): >= 0, default 2. reduction (str): ``"mean"`` (default)
        | ``"sum"`` | ``"none"``. pos_weight (Tensor[C], optional): finite, >= 0.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> logits, multi_hot = torch.randn(8, 5), torch.rand(8, 5) < 0.2
        >>> criterion = bt.nn.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
        >>> loss = criterion(logits, multi_hot.float())
        >>> ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, multi_hot.float(), reduction="none")
        >>> p_t = torch.where(multi_hot, logits.sigmoid(), 1 - logits.sigmoid())
        >>> a_t = torch.where(multi_hot, 0.25, 0.75)
        >>> torch.allclose(loss, (a_t * (1 - p_t) ** 2 * ref).mean())  # torchvision's definition
        True
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        reduction: str = "mean",
        pos_weight: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        _reduction_code(reduction)
        self.gamma = _real(gamma, "gamma", 0.0)
        self.alpha = _alpha(alpha)
        self.reduction = reduction
        self.register_buffer("pos_weight", _check_class_vector(pos_weight, "pos_weight"))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The sigmoid focal loss of logits ``input`` against ``target`` (one fused pass).

        Args:
            input (Tensor[N, C] or Tensor[N, C, d1, ..., dk]): logits (any
                shape without ``pos_weight``); float16/bfloat16 (accumulated
                in float32), float32 or float64; contiguous or channels-last.
            target (Tensor): targets in [0, 1] (multi-hot or soft) of the
                input's shape; cast to the input's dtype.

        Returns:
            Tensor: a scalar (``"mean"`` over all elements, ``"sum"``) or the
            elementwise losses of the input's shape and memory format
            (``"none"``); in the input's dtype (float32 under autocast).

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> criterion = bt.nn.SigmoidFocalLoss(pos_weight=torch.tensor([1.0, 5.0, 20.0]))
            >>> logits = torch.randn(2, 3, 64, 64, requires_grad=True)   # (N, C, H, W), class dim 1
            >>> criterion(logits, (torch.rand(2, 3, 64, 64) < 0.1).float()).backward()
            >>> logits.grad.shape
            torch.Size([2, 3, 64, 64])
        """
        return _sigmoid_focal_loss(
            input,
            target,
            alpha=self.alpha,
            gamma=self.gamma,
            reduction=self.reduction,
            pos_weight=self.pos_weight,
            validate=False,
        )

    def extra_repr(self) -> str:
        extra = f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
        return extra + (f", pos_weight=[{self.pos_weight.numel()} classes]" if self.pos_weight is not None else "")
