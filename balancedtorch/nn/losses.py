"""Loss modules: drop-in for ``torch.nn.CrossEntropyLoss`` and friends, on fused kernels."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .. import functional as F
from .._validate import check_int64

__all__ = ["CrossEntropyLoss", "FocalLoss", "SigmoidFocalLoss", "LogitAdjustedLoss"]


class _ClassWeightedLoss(nn.Module):
    def __init__(self, weight: Optional[Tensor], ignore_index: int, reduction: str) -> None:
        super().__init__()
        F._reduction_code(reduction)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        # Checked once here, so forward needs no host synchronisation.
        self.register_buffer("weight", F._check_class_vector(weight, "weight"))
        self.ignore_index = check_int64(ignore_index, "ignore_index")
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of logits ``input`` against ``target`` (one fused pass; gradient in the same pass).

        Args:
            input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]):
                logits, class dimension 1; float16/bfloat16 (accumulated in
                float32), float32 or float64; NCHW or channels-last.
            target (Tensor[N] or Tensor[N, d1, ..., dk] or Tensor[]): class
                indices (int64, int32 or uint8; ``ignore_index`` is skipped,
                any other value outside [0, C) raises a ValueError), or class
                probabilities of the input's shape.

        Returns:
            Tensor: a scalar (``"mean"``, ``"sum"``) or the per-sample losses
            ``[N, d1, ..., dk]`` (``"none"``), in the input's dtype (float32
            for float16/bfloat16 logits under ``torch.autocast``, as torch).

        Example:
            >>> criterion = bt.nn.FocalLoss(gamma=2.0, weight=torch.tensor([1.8, 33.3, 2.4]), ignore_index=255)
            >>> logits = torch.randn(4, 3, 32, 32, requires_grad=True)           # (N, C, H, W)
            >>> masks = torch.randint(0, 3, (4, 32, 32))
            >>> criterion(logits, masks).backward()
        """
        return F._softmax_loss(
            input,
            target,
            weight=self.weight,
            logit_bias=getattr(self, "logit_bias", None),
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=getattr(self, "label_smoothing", 0.0),
            gamma=getattr(self, "gamma", 0.0),
            validate=False,  # weight was checked once, in __init__
        )

    def _extra(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.weight is not None:
            parts.append(f"weight=[{self.weight.numel()} classes]")
        return ", ".join(parts)


class CrossEntropyLoss(_ClassWeightedLoss):
    """Drop-in for ``torch.nn.CrossEntropyLoss`` (same arguments and numbers), fused.

    Shapes: input ``(N, C)``, ``(N, C, d1, ..., dk)`` or ``(C,)``; target class
    indices ``(N, d1, ..., dk)`` (int64, int32 or uint8) or probabilities of
    the input's shape. See :func:`balancedtorch.functional.cross_entropy`.

    Args:
        weight (Tensor[C], optional): per-class weights, finite and >= 0.
        ignore_index (int): class-index target to skip. Default -100.
        reduction (str): ``"mean"`` (default; divides by the summed weights
            of the non-ignored targets, as torch) | ``"sum"`` | ``"none"``.
        label_smoothing (float): in [0, 1]. Default 0.

    Example:
        >>> criterion = bt.nn.CrossEntropyLoss(weight=bt.class_weights(labels=train_labels))
        >>> loss = criterion(model(x), y)
    """

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = F._real(label_smoothing, "label_smoothing", 0.0, 1.0)

    def extra_repr(self) -> str:
        extra = self._extra()
        return extra + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class FocalLoss(_ClassWeightedLoss):
    """Softmax focal loss ``-w[y] (1 - p_y)^gamma log p_y``; ``gamma=0`` is ``CrossEntropyLoss``.

    See :func:`balancedtorch.functional.focal_loss`.

    Args:
        gamma (float): focusing parameter >= 0. Default 2. Other arguments
            as :class:`CrossEntropyLoss`.

    Example:
        >>> criterion = bt.nn.FocalLoss(gamma=2.0, weight=bt.class_weights(counts=[56, 3, 41]))
    """

    def __init__(
        self,
        gamma: float = 2.0,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.gamma = F._real(gamma, "gamma", 0.0)
        self.label_smoothing = F._real(label_smoothing, "label_smoothing", 0.0, 1.0)

    def extra_repr(self) -> str:
        extra = f"gamma={self.gamma}, " + self._extra()
        return extra + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class LogitAdjustedLoss(_ClassWeightedLoss):
    """Logit-adjusted (focal) cross-entropy (Menon et al. 2021); ``tau=1`` is Balanced Softmax.

    ``tau * log(prior)`` from ``class_counts`` is added to the logits inside
    the kernel; with ``gamma=0`` the loss equals
    ``torch.nn.CrossEntropyLoss(weight, ignore_index=..., reduction=...,
    label_smoothing=...)`` applied to ``input + tau * log(prior)`` (class
    dimension 1). A class with a zero count gets the prior of half a sample
    (``log(0)`` would be ``-inf``); negative or NaN counts raise a ValueError.
    See :func:`balancedtorch.functional.logit_adjusted_loss`.

    Args:
        class_counts (Tensor[C] | sequence): training samples per class (>= 0,
            not all zero). tau (float): >= 0, default 1. gamma (float): focal
            term >= 0, default 0. weight (Tensor[C], optional): per-class
            weights. ignore_index (int): default -100. reduction (str):
            ``"mean"`` (default) | ``"sum"`` | ``"none"``. label_smoothing
            (float): in [0, 1], default 0.

    Example:
        >>> criterion = bt.nn.LogitAdjustedLoss(class_counts=bt.ops.class_counts(train_labels, 10), tau=1.0,
        ...                                     label_smoothing=0.1)
    """

    def __init__(
        self,
        class_counts: Any,
        tau: float = 1.0,
        gamma: float = 0.0,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.tau = F._real(tau, "tau", 0.0)
        self.gamma = F._real(gamma, "gamma", 0.0)
        self.label_smoothing = F._real(label_smoothing, "label_smoothing", 0.0, 1.0)
        self.register_buffer("logit_bias", F.logit_adjustment(class_counts, self.tau))
        # the counts as given, for repr only (not part of the state: logit_bias is)
        counts = class_counts if isinstance(class_counts, Tensor) else torch.as_tensor(class_counts)
        self.class_counts = tuple(counts.detach().cpu().flatten().tolist())
        if self.weight is not None and self.weight.numel() != self.logit_bias.numel():
            raise ValueError(f"weight has {self.weight.numel()} entries but class_counts has {self.logit_bias.numel()}")

    def extra_repr(self) -> str:
        counts = self.class_counts
        shown = f"[{', '.join(f'{c:g}' for c in counts)}]" if len(counts) <= 8 else f"[{len(counts)} classes]"
        extra = f"class_counts={shown}, tau={self.tau}, gamma={self.gamma}, " + self._extra()
        return extra + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


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
        >>> criterion = bt.nn.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
        >>> loss = criterion(logits, multi_hot.float())
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        reduction: str = "mean",
        pos_weight: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        F._reduction_code(reduction)
        self.gamma = F._real(gamma, "gamma", 0.0)
        self.alpha = F._alpha(alpha)
        self.reduction = reduction
        self.register_buffer("pos_weight", F._check_class_vector(pos_weight, "pos_weight"))

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
            >>> criterion = bt.nn.SigmoidFocalLoss(pos_weight=torch.tensor([1.0, 5.0, 20.0]))
            >>> logits = torch.randn(2, 3, 64, 64, requires_grad=True)   # (N, C, H, W), class dim 1
            >>> criterion(logits, (torch.rand(2, 3, 64, 64) < 0.1).float()).backward()
        """
        return F._sigmoid_focal_loss(
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
