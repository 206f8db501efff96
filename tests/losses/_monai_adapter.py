"""A thin adapter that gives balancedtorch's region losses MONAI's constructor and call conventions.

Used by tests/losses/test_monai_suite.py, which runs MONAI's own loss tests with their
``from monai.losses import DiceLoss`` (etc.) swapped for these classes. Only the
conventions are translated; every number comes from balancedtorch:

* ``sigmoid`` / ``softmax`` / neither -> ``activation="sigmoid" | "softmax" | "none"``
  (``other_act`` raises NotImplementedError: balancedtorch has no arbitrary activation);
* MONAI's target layouts -> ours: ``to_onehot_y=True`` with a ``(N, 1, ...)`` target
  -> class indices (softmax / "none"; one-hot for sigmoid, which takes multi-label
  masks); a target of the input's shape -> a floating dense target;
* ``weight`` without the background (MONAI's DiceLoss / DiceFocalLoss take C - 1
  entries with ``include_background=False``) -> C entries, entry 0 unused;
* ``reduction="none"`` of the Dice / generalised Dice losses -> MONAI's broadcast
  shape ``(N, C', 1, ...)`` (ours: ``(N, C')`` / ``(N,)``, a documented difference).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

import balancedtorch as bt

__all__ = ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "DiceCELoss", "DiceFocalLoss"]


class _Adapter(torch.nn.Module):
    _ours: type = None
    _weight_without_background = False  # MONAI's class takes C - 1 weights with include_background=False
    _none_broadcast = False  # MONAI's "none" keeps singleton spatial dimensions

    def __init__(
        self,
        include_background=True,
        to_onehot_y=False,
        sigmoid=False,
        softmax=False,
        other_act=None,
        weight=None,
        reduction="mean",
        **options,
    ):
        super().__init__()
        if other_act is not None:
            raise NotImplementedError("other_act: balancedtorch's region losses take activation='softmax'|'sigmoid'|'none'")
        if sigmoid and softmax:
            raise ValueError("Incompatible values: sigmoid=True and softmax=True (MONAI's check)")
        self.activation = "sigmoid" if sigmoid else ("softmax" if softmax else "none")
        self.to_onehot_y = to_onehot_y
        self.include_background = include_background
        self.reduction = reduction
        self.monai_weight = weight
        self.options = options
        if not isinstance(reduction, str):
            raise ValueError(f"reduction must be a string, got {reduction!r}")
        # built once now, without the weight (its layout needs C), so that bad options raise here as in MONAI
        self._ours(activation=self.activation, include_background=include_background, reduction=reduction, **options)

    def _build(self, C: int):
        weight = self.monai_weight
        if weight is not None and not isinstance(weight, (int, float)):
            weight = torch.as_tensor(weight, dtype=torch.float32)
            if weight.dim() == 0:
                weight = float(weight)
            elif self._weight_without_background and not self.include_background and weight.numel() == C - 1:
                weight = torch.cat([weight.new_zeros(1), weight])
        options = dict(self.options)
        if weight is not None or self._ours is not bt.nn.GeneralizedDiceLoss:
            options["weight"] = weight
        return self._ours(
            activation=self.activation, include_background=self.include_background, reduction=self.reduction, **options
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        C = input.shape[1]
        if self.to_onehot_y and C == 1:  # the adapter's own option: MONAI's warning
            warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=2)
        if self.to_onehot_y and C > 1 and target.dim() == input.dim() and target.shape[1] == 1:
            index = target[:, 0].long()
            target = index if self.activation != "sigmoid" else F.one_hot(index, C).movedim(-1, 1).to(input.dtype)
        elif target.shape == input.shape and not target.is_floating_point():
            target = target.to(input.dtype)
        loss = self._build(C).to(input.device)(input, target)
        if self.reduction == "none" and self._none_broadcast:
            loss = loss.reshape(tuple(loss.shape) + (1,) * (input.dim() - loss.dim()))
        return loss


class DiceLoss(_Adapter):
    _ours = bt.nn.DiceLoss
    _weight_without_background = True
    _none_broadcast = True


class GeneralizedDiceLoss(_Adapter):
    _ours = bt.nn.GeneralizedDiceLoss
    _none_broadcast = True

    def forward(self, input, target):
        loss = super().forward(input, target)
        if self.reduction == "none":  # MONAI: (N, 1, 1, ...)
            loss = loss.reshape((loss.shape[0], 1) + (1,) * (input.dim() - 2))
        return loss


class TverskyLoss(_Adapter):
    _ours = bt.nn.TverskyLoss


class DiceCELoss(_Adapter):
    _ours = bt.nn.DiceCELoss


class DiceFocalLoss(_Adapter):
    _ours = bt.nn.DiceFocalLoss
    _weight_without_background = True

    def __init__(self, *args, softmax=False, **options):
        if softmax:  # MONAI's focal part is a sigmoid focal loss whatever the Dice part's activation
            options["focal_activation"] = "sigmoid"
        super().__init__(*args, softmax=softmax, **options)
