"""Loss modules: drop-in for ``torch.nn.CrossEntropyLoss`` and friends, on fused kernels."""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn

from .. import functional as F

__all__ = ["CrossEntropyLoss", "FocalLoss", "SigmoidFocalLoss", "LogitAdjustedLoss"]


class _ClassWeightedLoss(nn.Module):
    def __init__(self, weight: Optional[Tensor], ignore_index: int, reduction: str) -> None:
        super().__init__()
        F._reduction_code(reduction)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        # Checked once here, so forward needs no host synchronisation.
        self.register_buffer("weight", F._check_class_vector(weight, "weight"))
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
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
    the kernel. See :func:`balancedtorch.functional.logit_adjusted_loss`.

    Example:
        >>> criterion = bt.nn.LogitAdjustedLoss(class_counts=bt.ops.class_counts(train_labels, 10), tau=1.0)
    """

    def __init__(
        self,
        class_counts: Any,
        tau: float = 1.0,
        gamma: float = 0.0,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.tau = F._real(tau, "tau", 0.0)
        self.gamma = F._real(gamma, "gamma", 0.0)
        self.register_buffer("logit_bias", F.logit_adjustment(class_counts, self.tau))
        if self.weight is not None and self.weight.numel() != self.logit_bias.numel():
            raise ValueError(
                f"weight has {self.weight.numel()} entries but class_counts has {self.logit_bias.numel()}"
            )

    def extra_repr(self) -> str:
        return f"classes={self.logit_bias.numel()}, tau={self.tau}, gamma={self.gamma}, " + self._extra()


class SigmoidFocalLoss(nn.Module):
    """Sigmoid focal loss, equal to ``torchvision.ops.sigmoid_focal_loss``, plus ``pos_weight``.

    See :func:`balancedtorch.functional.sigmoid_focal_loss`.

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
