"""Fused region losses for segmentation: Dice, generalised Dice, Tversky, DiceCE, DiceFocal.

Same options and meanings as MONAI 1.x (``monai.losses``) with ``softmax=True,
to_onehot_y=True`` (class-index targets) or ``sigmoid=True`` (multi-label
targets). The intended differences from MONAI are listed in :class:`DiceLoss`
(they hold for every class here).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .. import _region_losses as F

__all__ = ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "DiceCELoss", "DiceFocalLoss"]

Weight = Union[None, float, Sequence[float], Tensor]


class _RegionLoss(nn.Module):
    _fn = None
    _weighted = True

    def __init__(self, **kwargs) -> None:
        super().__init__()
        # validate the options now (a dummy call would need shapes): names and values
        F._choice(kwargs.get("activation", "softmax"), "activation", F._ACTIVATIONS)
        if "reduction" in kwargs:
            table = F._REDUCTIONS if type(self) is not DiceCELoss else {k: v for k, v in F._REDUCTIONS.items() if k != "none"}
            F._choice(kwargs["reduction"], "reduction", table)
        for name in ("soft_label", "include_background", "squared_pred", "jaccard", "batch", "sync"):
            if name in kwargs:
                F._flag(kwargs[name], name)
        if "ignore_index" in kwargs:
            F._index(kwargs["ignore_index"], "ignore_index")
        if kwargs.get("focal_activation") is not None:
            F._choice(kwargs["focal_activation"], "focal_activation", F._FOCAL_ACTIVATIONS)
        if "w_type" in kwargs:
            F._choice(kwargs["w_type"], "w_type", F._W_TYPES)
        for name in ("smooth_nr", "smooth_dr", "beta", "lambda_dice", "lambda_ce", "lambda_focal", "label_smoothing"):
            if name in kwargs:
                F._number(kwargs[name], name)
        if "alpha" in kwargs:
            if type(self) is DiceFocalLoss:
                F._focal_alpha(kwargs["alpha"])
            else:
                F._number(kwargs["alpha"], "alpha")
        if "gamma" in kwargs:
            F._number(kwargs["gamma"], "gamma", strict=type(self) is TverskyLoss)
        if kwargs.get("sync") and not kwargs.get("batch"):
            raise ValueError("sync=True needs batch=True (the per-class sums over the whole batch are what is all-reduced)")
        weight = kwargs.pop("weight", None)
        F._check_weight(weight)
        if weight is not None and not isinstance(weight, Tensor):
            # a number is kept as a 0-d tensor: the same weight for every class, as the functional form
            weight = torch.as_tensor(weight, dtype=torch.float32)
        self.register_buffer("weight", weight)
        self.options = kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        kwargs = dict(self.options)
        if self._weighted:
            kwargs["weight"] = self.weight
        return self._fn(input, target, **kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


class DiceLoss(_RegionLoss):
    """Soft Dice loss on logits, fused (one pass for the sums, one for the gradient).

    Per (sample, class) - or per class over the batch with ``batch=True`` - and over the valid pixels,
    with p = softmax (or sigmoid) of the logits and t the target:
    ``loss = 1 - (2 * sum(p t) + smooth_nr) / (sum(p) + sum(t) + smooth_dr)`` (squares of p and t with
    ``squared_pred``; ``jaccard`` uses ``2 * (sum p + sum t - sum p t)`` below), times ``weight[c]``,
    then averaged (or summed) over samples and classes.

    Args:
        activation: "softmax" (multi-class; class-index or probability targets), "sigmoid" (multi-label) or
            "none" (the input already holds probabilities: MONAI without ``softmax``/``sigmoid``/``other_act``;
            class-index or probability targets).
        include_background: False leaves class 0 out of the Dice part.
        squared_pred, jaccard, smooth_nr, smooth_dr, batch: MONAI's meanings.
        weight: per-class weights, shape (C,) with the background, or a number (the same for every class).
            A single remaining Dice class (C = 1, or C = 2 without the background) is not weighted (MONAI).
        ignore_index: class-index target value whose pixels are left out of every sum.
        reduction: "mean" | "sum" | "none" (``(N, C')``, ``(1, C')`` with ``batch``).
        sync: with ``batch=True``, all-reduce the sums over ``torch.distributed`` ranks; the loss is then
            the loss of the whole global batch, and DDP's gradient averaging gives its exact gradient.
        soft_label: MONAI's (>= 1.4) soft-label formulation: ``I = sum(|p| + |t| - |p - t|) / 2``,
            ``P = sum |p|``, ``T = sum |t|`` (equal to the default for hard targets; with ``squared_pred``
            both are the same). Default False (``I = sum p t``).

    Shape:
        input ``(N, C, d1, ...)`` logits; target ``(N, d1, ...)`` integer class indices or ``(N, C, d1, ...)``.

    Differences from MONAI (intended; the same for every region loss here):

    * ``activation`` ("softmax", "sigmoid" or "none") replaces MONAI's ``softmax`` /
      ``sigmoid`` / ``other_act`` / ``to_onehot_y`` (no ``other_act``): inputs are
      logits ("none": probabilities); an integer target ``(N, d1, ...)`` (or ``(N, 1, d1, ...)``) is class indices,
      a floating ``(N, C, ...)`` target is probabilities / one-hot (softmax) or
      multi-label (sigmoid). No one-hot tensor is ever built.
    * ``ignore_index`` (class-index targets only): those pixels are left out of
      every sum (Dice part and CE part), as MONAI 1.6's DiceLoss/TverskyLoss
      ``ignore_index`` does; MONAI's GeneralizedDice/DiceCE/DiceFocal have none.
    * ``weight`` always has one entry per class, background included (C), also
      with ``include_background=False``, where entry 0 only weights the CE/focal
      part (MONAI's DiceLoss wants C - 1 entries then; its DiceCELoss takes C).
    * ``reduction="none"`` returns ``(N, C')`` (``(1, C')`` with ``batch=True``;
      ``(N,)`` / ``(1,)`` for the generalised Dice) without MONAI's trailing
      singleton dimensions. DiceCE accepts "mean" and "sum" (as MONAI);
      DiceFocal's "none" has MONAI's shape ``(N, C', d1, ...)``.
    * A probability target that requires grad gets the gradient of this loss
      (the generalised Dice's also through its weights): equal to MONAI's
      autograd for the Dice, generalised Dice, Tversky and CE parts. The sigmoid
      focal part is torchvision's form, ``(p (1 - t) + (1 - p) t) ** gamma``,
      which equals MONAI's ``sigmoid(-x (2t - 1)) ** gamma`` in value at
      t in {0, 1} only, so its derivative in t (and, for soft targets, its
      value) differs from MONAI's unless ``gamma=0``.
    * DiceCE with ``activation="sigmoid"`` is Dice + ``BCEWithLogitsLoss(pos_weight=weight)`` for any C;
      MONAI's DiceCELoss takes BCE for one channel only and otherwise applies a
      softmax cross-entropy to the multi-label masks.
    * DiceFocal with ``activation="softmax"`` uses the softmax focal loss of
      :class:`balancedtorch.nn.FocalLoss` (weighted mean over pixels, with
      ``ignore_index`` and ``label_smoothing``); MONAI's DiceFocalLoss uses a
      sigmoid focal loss even with ``softmax=True``. With ``sigmoid`` (or "none") both agree;
      for soft targets the focal modulating term is torchvision's
      ``(p (1 - t) + (1 - p) t)^gamma`` (MONAI: ``sigmoid(-x (2t - 1))^gamma``, equal at t in {0, 1}).
    * ``smooth_dr=0`` with a zero denominator (an empty class) raises ValueError
      instead of returning nan.

    As MONAI's: a target whose shape does not fit the input raises an error that
    is both a ValueError and an AssertionError; a one-channel input with
    ``activation="softmax"`` (read as probabilities then) or
    ``include_background=False`` (the channel is kept) warns and goes on; a
    softmax cross-entropy or focal part of one class is refused.
    * ``sync=True`` (with ``batch=True``) all-reduces the sums across
      ``torch.distributed`` ranks (nnU-Net's ``ddp`` batch dice).

    Example:
        >>> loss = DiceLoss(include_background=False)(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """

    def __init__(
        self,
        activation: str = "softmax",
        include_background: bool = True,
        squared_pred: bool = False,
        jaccard: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Weight = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        sync: bool = False,
        soft_label: bool = False,
    ) -> None:
        super().__init__(
            activation=activation,
            include_background=include_background,
            squared_pred=squared_pred,
            jaccard=jaccard,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            sync=sync,
            soft_label=soft_label,
        )

    _fn = staticmethod(F.dice_loss)


class GeneralizedDiceLoss(_RegionLoss):
    """Generalised Dice loss (Sudre et al. 2017), fused; MONAI's ``GeneralizedDiceLoss`` semantics.

    Class weights ``w = 1 / sum(t)^2`` ("square"), ``1 / sum(t)`` ("simple") or 1 ("uniform"); an empty
    class's infinite weight is replaced by the largest finite one (per sample, or over the batch), as
    MONAI. ``loss = 1 - (2 sum_c w I + smooth_nr) / (sum_c w (P + T) + smooth_dr)`` per sample (per batch
    with ``batch=True``). ``reduction="none"`` gives ``(N,)`` (``(1,)`` with ``batch``). Other options and
    differences as :class:`DiceLoss`.
    """

    def __init__(
        self,
        w_type: str = "square",
        activation: str = "softmax",
        include_background: bool = True,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        ignore_index: int = -100,
        reduction: str = "mean",
        sync: bool = False,
        soft_label: bool = False,
    ) -> None:
        super().__init__(
            w_type=w_type,
            activation=activation,
            include_background=include_background,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            ignore_index=ignore_index,
            reduction=reduction,
            sync=sync,
            soft_label=soft_label,
        )

    _fn = staticmethod(F.generalized_dice_loss)
    _weighted = False


class TverskyLoss(_RegionLoss):
    """(Focal) Tversky loss, fused; MONAI's ``TverskyLoss`` plus ``gamma``, ``weight`` and ``ignore_index``.

    ``TI = (I + smooth_nr) / (I + alpha (P - I) + beta (T - I) + smooth_dr)`` (alpha weighs false
    positives, beta false negatives) and ``loss = max(0, 1 - TI) ** gamma * weight[c]`` per (sample, class);
    ``gamma = 1`` is MONAI's Tversky loss, Abraham & Khan's focal Tversky with their gamma = 4/3 is
    ``gamma = 0.75``. Other options and differences as :class:`DiceLoss`.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        activation: str = "softmax",
        include_background: bool = True,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Weight = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        sync: bool = False,
        soft_label: bool = False,
    ) -> None:
        super().__init__(
            alpha=alpha,
            beta=beta,
            gamma=gamma,
            activation=activation,
            include_background=include_background,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            sync=sync,
            soft_label=soft_label,
        )

    _fn = staticmethod(F.tversky_loss)


class DiceCELoss(_RegionLoss):
    """``lambda_dice * Dice + lambda_ce * cross-entropy`` in one fused kernel; MONAI's ``DiceCELoss``.

    The CE part is :class:`balancedtorch.nn.CrossEntropyLoss` (softmax: ``weight``, ``ignore_index``,
    ``label_smoothing``, torch's weighted mean) or, with ``activation="sigmoid"``, ``BCEWithLogitsLoss``
    with ``pos_weight=weight`` (as MONAI). The Dice part uses ``weight`` without the background when
    ``include_background=False`` (as MONAI). ``reduction``: "mean" or "sum". With ``activation="none"``
    the Dice part reads the input as probabilities and the CE part as logits (MONAI without an
    activation; C >= 2). Other options as :class:`DiceLoss`.
    """

    def __init__(
        self,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        activation: str = "softmax",
        include_background: bool = True,
        squared_pred: bool = False,
        jaccard: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Weight = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        sync: bool = False,
    ) -> None:
        super().__init__(
            lambda_dice=lambda_dice,
            lambda_ce=lambda_ce,
            activation=activation,
            include_background=include_background,
            squared_pred=squared_pred,
            jaccard=jaccard,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            sync=sync,
        )

    _fn = staticmethod(F.dice_ce_loss)


class DiceFocalLoss(_RegionLoss):
    """``lambda_dice * Dice + lambda_focal * focal`` in one fused kernel.

    Softmax: the focal part is :class:`balancedtorch.nn.FocalLoss` (``gamma``, ``weight``, ``ignore_index``,
    ``label_smoothing``). Sigmoid, or "none" (the Dice part reads probabilities, the focal part logits):
    MONAI's ``DiceFocalLoss`` exactly (sigmoid focal loss with MONAI's ``alpha``, times ``weight[c]``,
    background left out with ``include_background=False``; "mean" over elements, "sum" of the means over
    the pixels of each (sample, class), "none" MONAI's ``(N, C', d1, ...)``: the Dice terms broadcast
    over the pixels plus the focal map). ``reduction``: "mean", "sum" or "none" (not with softmax).

    ``focal_activation="sigmoid"`` with ``activation="softmax"`` is MONAI's ``DiceFocalLoss(softmax=True)``
    exactly: a softmax Dice part plus MONAI's *sigmoid* focal part of the same logits (one-hot targets,
    ``alpha``, every ``reduction``); the focal part then runs as a second pass. ``None`` (default) follows
    ``activation``.

    Example:
        >>> loss = DiceFocalLoss(activation="sigmoid", alpha=0.25)(torch.randn(2, 3, 8, 8), (torch.rand(2, 3, 8, 8) < 0.2).float())
    """

    def __init__(
        self,
        gamma: float = 2.0,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        activation: str = "softmax",
        include_background: bool = True,
        squared_pred: bool = False,
        jaccard: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Weight = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        sync: bool = False,
        alpha: Optional[float] = None,
        focal_activation: Optional[str] = None,
    ) -> None:
        super().__init__(
            gamma=gamma,
            lambda_dice=lambda_dice,
            lambda_focal=lambda_focal,
            activation=activation,
            include_background=include_background,
            squared_pred=squared_pred,
            jaccard=jaccard,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            sync=sync,
            alpha=alpha,
            focal_activation=focal_activation,
        )

    _fn = staticmethod(F.dice_focal_loss)
