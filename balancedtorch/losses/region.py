"""Fused region losses for segmentation: Dice, generalised Dice, Tversky, DiceCE, DiceFocal (functional forms and modules).

Each function makes one pass over the logits for the per-(sample, class) sums
and, when the logits require grad, one more that writes the gradient of the
whole loss: no one-hot tensor, no stored softmax. Options and meanings are
MONAI 1.x's (``monai.losses.DiceLoss`` and friends with ``softmax=True,
to_onehot_y=True`` or ``sigmoid=True``); the differences are listed in
:class:`balancedtorch.nn.DiceLoss`.

Over 700 lines on purpose: the five losses share one argument path (``_run``)
and their modules carry MONAI's option documentation, so the family stays one
file (functional forms first, modules after); the op's Python kernel and
backward are in :mod:`balancedtorch.losses._region_op`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .. import _validate
from .._constants import ACTIVATIONS, REDUCTIONS, W_TYPES
from .._dispatch import _acc_dtype, _is_compiling, call_private, refuse_bad_values
from .._validate import UNSET, ShapeMismatchError, check_dense, renamed
from . import _region_op as _ops

__all__ = [
    "dice_loss",
    "generalized_dice_loss",
    "tversky_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "DiceLoss",
    "GeneralizedDiceLoss",
    "TverskyLoss",
    "DiceCELoss",
    "DiceFocalLoss",
]

_ACTIVATIONS = ACTIVATIONS

_REDUCTIONS = REDUCTIONS

_W_TYPES = W_TYPES

_FOCAL_ACTIVATIONS = {k: ACTIVATIONS[k] for k in ("softmax", "sigmoid")}

Weight = Union[None, float, Sequence[float], Tensor]


def _choice(value: Any, name: str, table: dict) -> int:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{name} must be one of {sorted(table)}, got {value!r}")
    return table[value]


def _number(value: Any, name: str, low: float = 0.0, strict: bool = False) -> float:
    """A finite real option >= low (> low with ``strict``): TypeError for a non-number, ValueError otherwise."""
    return _validate.real(value, name, low=low, low_inclusive=not strict)


def _flag(value: Any, name: str) -> bool:
    """A bool option: True/False (numpy's bool too); anything else, 0/1 and strings included, is a TypeError."""
    return bool(_validate.flag(value, name))


def _index(value: Any, name: str) -> int:
    """An integer label option (ignore_index) that fits the kernels' int64: TypeError for a non-integer."""
    return _validate.integer(value, name)


def _focal_alpha(alpha: Any) -> float:
    """MONAI's focal alpha: None (no weighting) or a number in [0, 1]; -1 for the kernels' "none"."""
    if alpha is None:
        return -1.0
    value = _number(alpha, "alpha")
    if value > 1.0:
        raise ValueError(f"alpha must be None or a number in [0, 1] (MONAI's focal alpha), got {alpha!r}")
    return value


def _check_weight(weight: Weight) -> None:
    """Construction-time check of a module's weight: a number, a sequence or a tensor, finite and >= 0."""
    if weight is None:
        return
    if isinstance(weight, bool) or not isinstance(weight, (numbers.Real, Tensor)):
        try:
            weight = torch.as_tensor(weight, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"weight must be None, a number, a sequence or a tensor, got {type(weight).__name__}") from exc
    if isinstance(weight, numbers.Real):
        _number(weight, "weight")
        return
    if weight.dim() > 1:
        raise ValueError(f"weight must be a number or have one entry per class, shape (C,), got shape {tuple(weight.shape)}")
    if weight.is_meta:
        return
    w = weight.detach().double()
    bad = ~torch.isfinite(w) | (w < 0)
    if bool(bad.any()):
        i = int(bad.reshape(-1).nonzero()[0, 0])
        raise ValueError(f"weight must be finite and >= 0, got weight[{i}] = {w.reshape(-1)[i].item()}")


def _weight(weight: Weight, input: Tensor, include_background: bool) -> Optional[Tensor]:
    """One weight per class (C,), float, finite, >= 0; a number (or a 0-d tensor) is used for every class.

    A tensor weight must be on the input's device or the CPU (then moved), checked before any value is read.
    """
    if weight is None:
        return None
    C = input.shape[1]
    if isinstance(weight, Tensor) and weight.device != input.device and weight.device.type != "cpu":
        raise ValueError(f"weight is on {weight.device} but input is on {input.device}: move weight to {input.device}")
    if isinstance(weight, numbers.Real) and not isinstance(weight, bool):
        weight = torch.full((C,), float(weight))
    elif isinstance(weight, Tensor) and weight.dim() == 0:
        weight = weight.reshape(1).expand(C)
    elif not isinstance(weight, Tensor):
        try:
            weight = torch.as_tensor(weight, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"weight must be None, a number, a sequence or a tensor, got {type(weight).__name__}") from exc
    if weight.dim() != 1 or weight.shape[0] != C:
        raise ValueError(
            f"weight must have one entry per class, shape ({C},) (background included), got shape {tuple(weight.shape)}"
        )
    if not weight.is_floating_point():
        weight = weight.double()
    if not _is_compiling():
        refuse_bad_values(
            ~torch.isfinite(weight) | (weight < 0),
            lambda i: (
                f"weight must be finite and >= 0, got weight[{i}] = {weight[i].item()}"
                if i is not None
                else "weight must be finite and >= 0 (device-side check)"
            ),
        )
    return weight.to(device=input.device, dtype=_acc_dtype(input))


def _target(input: Tensor, target: Tensor, activation: int) -> Tensor:
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"input and target must be tensors, got {type(input).__name__} and {type(target).__name__}")
    check_dense(input, "input")
    check_dense(target, "target")
    if target.device != input.device:
        raise ValueError(f"target is on {target.device} but input is on {input.device}: move target to {input.device}")
    if not input.is_floating_point():
        raise TypeError(f"input must hold floating logits, got dtype {input.dtype}")
    if input.dim() < 2:
        raise ValueError(f"input must have shape (N, C, d1, ...), got {tuple(input.shape)}")
    if target.dtype == torch.bool or (activation == _ops.SIGMOID and not target.is_floating_point()):
        return target.to(input.dtype)  # multi-label masks
    if target.is_floating_point():
        if target.shape != input.shape:
            raise ShapeMismatchError(
                f"target of probabilities must have the input's shape {tuple(input.shape)}, got {tuple(target.shape)}"
            )
        return target.to(input.dtype)
    if target.dim() == input.dim() and target.dim() >= 2 and target.shape[1] == 1 and input.shape[1] != 1:
        target = target.squeeze(1)  # MONAI's (N, 1, d1, ...) class indices
    if target.shape[:1] + target.shape[1:] != input.shape[:1] + input.shape[2:]:
        raise ShapeMismatchError(
            f"target of class indices must have shape {(input.shape[0],) + tuple(input.shape[2:])} for input of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    return target


def _one_channel(act: int, include_background: bool, ce_kind: int, sigmoid_focal: bool, input: Tensor) -> tuple:
    """MONAI's reading of a one-channel input: a softmax and leaving out the background are skipped, with a warning.

    The softmax of one channel is 1 everywhere, and without the background
    nothing would remain. MONAI warns and goes on without them (the input is
    then read as probabilities), so do we, where the loss has that form: a
    softmax cross-entropy or focal part of one class is 0, so DiceCE and the
    softmax focal part of DiceFocal still refuse it.
    """
    if act == _ops.SOFTMAX:
        if ce_kind == _ops.CE_CROSS_ENTROPY or (ce_kind == _ops.CE_FOCAL and not sigmoid_focal):
            part = "cross-entropy" if ce_kind == _ops.CE_CROSS_ENTROPY else "focal"
            raise ValueError(
                f"activation='softmax' needs at least 2 classes for the softmax {part} part, got input of shape "
                f"{tuple(input.shape)} (one channel: use activation='sigmoid')"
            )
        warnings.warn(
            "single channel prediction: activation='softmax' ignored, the input is read as probabilities "
            "(as MONAI's softmax=True); use activation='sigmoid' for one-channel logits",
            stacklevel=4,
        )
        act = _ops.NONE
    if not include_background:
        warnings.warn(
            "single channel prediction: include_background=False ignored, the only channel is kept (as MONAI)",
            stacklevel=4,
        )
        include_background = True
    return act, include_background


def _distributed_option(owner: str, distributed: Any, sync: Any) -> dict:
    """``distributed`` (and the name to show in messages), or its deprecated name ``sync`` (one release)."""
    if sync is UNSET:
        return {"distributed": distributed, "distributed_name": "distributed"}
    value = renamed(owner, "distributed", distributed, "sync", sync, False, stacklevel=4)
    return {"distributed": value, "distributed_name": "sync"}


def _run(
    input: Tensor,
    target: Tensor,
    *,
    kind: int,
    activation: str,
    include_background: bool,
    squared_pred: bool = False,
    jaccard: bool = False,
    smooth_nr: float,
    smooth_dr: float,
    batch: bool,
    weight: Weight = None,
    ignore_index: int = -100,
    reduction: str,
    w_type: str = "square",
    alpha: float = 0.5,
    beta: float = 0.5,
    tversky_gamma: float = 1.0,
    ce_kind: int = _ops.CE_NONE,
    ce_gamma: float = 0.0,
    label_smoothing: float = 0.0,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    distributed: Any = False,
    distributed_name: str = "distributed",
    soft_label: bool = False,
    focal_alpha: Any = None,
    focal_activation: Optional[str] = None,
) -> Tensor:
    act = _choice(activation, "activation", _ACTIVATIONS)
    sigmoid_focal_on_softmax = False
    if ce_kind == _ops.CE_FOCAL and focal_activation is not None:
        f_act = _choice(focal_activation, "focal_activation", _FOCAL_ACTIVATIONS)
        if f_act == _ops.SOFTMAX and act != _ops.SOFTMAX:
            raise ValueError(
                f"focal_activation='softmax' needs activation='softmax' (a sigmoid or probability Dice part takes "
                f"MONAI's sigmoid focal part), got activation={activation!r}"
            )
        sigmoid_focal_on_softmax = act == _ops.SOFTMAX and f_act == _ops.SIGMOID
    reductions = _REDUCTIONS if ce_kind != _ops.CE_CROSS_ENTROPY else {k: v for k, v in _REDUCTIONS.items() if k != "none"}
    red = _choice(reduction, "reduction", reductions)
    wt = _choice(w_type, "w_type", _W_TYPES)
    smooth_nr = _number(smooth_nr, "smooth_nr")
    smooth_dr = _number(smooth_dr, "smooth_dr")
    alpha = _number(alpha, "alpha")
    beta = _number(beta, "beta")
    tversky_gamma = _number(tversky_gamma, "gamma", strict=True)
    ce_gamma = _number(ce_gamma, "gamma")
    label_smoothing = _number(label_smoothing, "label_smoothing")
    soft_label = _flag(soft_label, "soft_label")
    f_alpha = _focal_alpha(focal_alpha)
    if label_smoothing > 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    # MONAI's sigmoid focal loss
    monai_focal = ce_kind == _ops.CE_FOCAL and (act != _ops.SOFTMAX or sigmoid_focal_on_softmax)
    if label_smoothing > 0.0 and (act == _ops.SIGMOID or monai_focal):
        raise ValueError(
            f"label_smoothing applies to a softmax cross-entropy part only, got {label_smoothing!r} with "
            f"activation={activation!r}"
        )
    if f_alpha >= 0.0 and not monai_focal:
        raise ValueError(
            f"alpha={focal_alpha!r} is MONAI's sigmoid focal alpha: it needs activation='sigmoid' or 'none' "
            f"(the softmax focal part takes per-class weight instead), got activation={activation!r}"
        )
    if ce_kind == _ops.CE_FOCAL and red == _ops.R_NONE and not monai_focal:
        raise ValueError(
            "reduction='none' of DiceFocalLoss needs activation='sigmoid' or 'none' (MONAI's elementwise sigmoid focal "
            f"part); the softmax focal part has no per-class map, got activation={activation!r}"
        )
    lambda_dice = _number(lambda_dice, "lambda_dice")
    lambda_ce = _number(lambda_ce, "lambda_focal" if ce_kind == _ops.CE_FOCAL else "lambda_ce")
    ignore_index = _index(ignore_index, "ignore_index")
    include_background = _flag(include_background, "include_background")
    squared_pred = _flag(squared_pred, "squared_pred")
    jaccard = _flag(jaccard, "jaccard")
    batch = _flag(batch, "batch")
    sync = _flag(distributed, distributed_name)  # the op's argument keeps its name: sync
    if sync and not batch:
        raise ValueError(
            f"{distributed_name}=True needs batch=True (the per-class sums over the whole batch are what is all-reduced)"
        )
    if isinstance(input, Tensor) and input.dim() >= 2 and input.shape[1] == 1:
        act, include_background = _one_channel(act, include_background, ce_kind, sigmoid_focal_on_softmax, input)
        if act == _ops.NONE:
            sigmoid_focal_on_softmax = False
    target = _target(input, target, act)
    if act == _ops.NONE and ce_kind == _ops.CE_CROSS_ENTROPY and input.shape[1] < 2:
        raise ValueError(
            f"activation='none' takes a softmax cross-entropy part, which needs at least 2 classes, got input of shape "
            f"{tuple(input.shape)}"
        )
    w = _weight(weight, input, include_background)
    per_class = (
        weight is not None and not isinstance(weight, numbers.Real) and not (isinstance(weight, Tensor) and weight.dim() == 0)
    )
    if monai_focal and per_class and input.shape[1] - (0 if include_background else 1) == 1:
        raise ValueError(
            "weight: a per-class weight is not supported when one channel remains for the sigmoid focal part "
            "(MONAI's FocalLoss refuses it too); pass a number to scale the loss"
        )
    if ce_kind == _ops.CE_FOCAL and red == _ops.R_NONE:  # MONAI's sigmoid focal map, whatever the Dice activation
        return _dice_focal_map(
            input,
            target,
            w,
            act,
            include_background,
            squared_pred,
            jaccard,
            smooth_nr,
            smooth_dr,
            batch,
            ignore_index,
            ce_gamma,
            lambda_dice,
            lambda_ce,
            sync,
            soft_label,
            f_alpha,
        )
    if sigmoid_focal_on_softmax:
        return _softmax_dice_sigmoid_focal(
            input,
            target,
            w,
            include_background,
            squared_pred,
            jaccard,
            smooth_nr,
            smooth_dr,
            batch,
            ignore_index,
            red,
            ce_gamma,
            lambda_dice,
            lambda_ce,
            sync,
            f_alpha,
        )
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    return call_private(
        torch.ops.balancedtorch.region_loss,
        input,
        target,
        w,
        kind,
        act,
        bool(include_background),
        bool(squared_pred),
        bool(jaccard),
        smooth_nr,
        smooth_dr,
        bool(batch),
        int(ignore_index),
        red,
        wt,
        alpha,
        beta,
        tversky_gamma,
        ce_kind,
        ce_gamma,
        label_smoothing,
        lambda_dice,
        lambda_ce,
        bool(sync),
        compute_grad,
        soft_label,
        f_alpha,
    )


def _focal_map(
    input: Tensor, target: Tensor, w: Optional[Tensor], include_background: bool, ignore_index: int, gamma: float, f_alpha: float
) -> tuple[Tensor, Optional[Tensor]]:
    """MONAI's elementwise sigmoid focal part ``(N, C', d1, ...)`` and the valid-pixel mask (or None).

    The fused sigmoid focal loss (``balancedtorch::sigmoid_focal_loss``) of the input taken as logits,
    times ``weight[c]``, without the background when ``include_background=False``; class-index targets are
    one-hot, their ignored pixels 0.
    """
    C = input.shape[1]
    valid = None
    if target.is_floating_point():
        dense = target
    else:
        valid = target != ignore_index
        # the range of the indices was checked by the Dice part's kernel, called first on the same target
        idx = torch.where(valid, target, torch.zeros_like(target)).long()
        dense = torch.nn.functional.one_hot(idx, C).movedim(-1, 1).to(input.dtype)
    focal = _sigmoid_focal(input, dense, f_alpha, gamma)
    view = (1, C) + (1,) * (input.dim() - 2)
    if w is not None:
        focal = focal * w.to(focal.dtype).view(view)
    if valid is not None:
        focal = focal * valid.unsqueeze(1).to(focal.dtype)
    if not include_background:
        focal = focal[:, 1:]
    return focal, valid


def _dice_focal_map(
    input,
    target,
    w,
    act,
    include_background,
    squared_pred,
    jaccard,
    smooth_nr,
    smooth_dr,
    batch,
    ignore_index,
    gamma,
    lambda_dice,
    lambda_focal,
    sync,
    soft_label,
    f_alpha,
) -> Tensor:
    """DiceFocal with reduction="none", MONAI's shape: Dice (N, C') broadcast over the pixels plus the focal map."""
    dice = call_private(
        torch.ops.balancedtorch.region_loss,
        input,
        target,
        w,
        _ops.DICE,
        act,
        bool(include_background),
        bool(squared_pred),
        bool(jaccard),
        smooth_nr,
        smooth_dr,
        bool(batch),
        int(ignore_index),
        _ops.R_NONE,
        _ops.W_SQUARE,
        0.5,
        0.5,
        1.0,
        _ops.CE_NONE,
        0.0,
        0.0,
        lambda_dice,
        1.0,
        bool(sync),
        input.requires_grad and torch.is_grad_enabled(),
        soft_label,
        -1.0,
    )
    focal, _ = _focal_map(input, target, w, include_background, ignore_index, gamma, f_alpha)
    dice = dice.reshape(dice.shape + (1,) * (input.dim() - 2))
    return dice + lambda_focal * focal


def _softmax_dice_sigmoid_focal(
    input,
    target,
    w,
    include_background,
    squared_pred,
    jaccard,
    smooth_nr,
    smooth_dr,
    batch,
    ignore_index,
    red,
    gamma,
    lambda_dice,
    lambda_focal,
    sync,
    f_alpha,
) -> Tensor:
    """MONAI's ``DiceFocalLoss(softmax=True)``, "mean" or "sum": a softmax Dice part plus a *sigmoid* focal part.

    The Dice part is the fused kernel; the focal part is MONAI's FocalLoss reduction of :func:`_focal_map`:
    "mean" over the (valid) elements, "sum" of the per-(sample, class) means over the pixels ("none" is
    :func:`_dice_focal_map`).
    """
    dice = call_private(
        torch.ops.balancedtorch.region_loss,
        input,
        target,
        w,
        _ops.DICE,
        _ops.SOFTMAX,
        bool(include_background),
        bool(squared_pred),
        bool(jaccard),
        smooth_nr,
        smooth_dr,
        bool(batch),
        int(ignore_index),
        red,
        _ops.W_SQUARE,
        0.5,
        0.5,
        1.0,
        _ops.CE_NONE,
        0.0,
        0.0,
        lambda_dice,
        1.0,
        bool(sync),
        input.requires_grad and torch.is_grad_enabled(),
        False,
        -1.0,
    )
    focal, valid = _focal_map(input, target, w, include_background, ignore_index, gamma, f_alpha)
    if valid is None:
        focal = focal.flatten(2).mean(2).sum() if red == _ops.R_SUM else focal.mean()
    else:
        count = valid.flatten(1).sum(1).to(focal.dtype)  # valid pixels per sample
        if red == _ops.R_SUM:
            focal = (focal.flatten(2).sum(2) / count.clamp(min=1).unsqueeze(1)).sum()
        else:
            focal = focal.sum() / (count.sum() * focal.shape[1]).clamp(min=1)
    return dice + lambda_focal * focal


def _sigmoid_focal(input: Tensor, target: Tensor, alpha: float, gamma: float) -> Tensor:
    from .sigmoid import _sigmoid_focal_loss

    return _sigmoid_focal_loss(input, target, alpha=alpha, gamma=gamma, reduction="none", pos_weight=None, validate=False)


def dice_loss(
    input: Tensor,
    target: Tensor,
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
    distributed: bool = False,
    soft_label: bool = False,
    *,
    sync: Any = UNSET,
) -> Tensor:
    """Soft Dice (or Jaccard) loss on logits; see :class:`balancedtorch.nn.DiceLoss`.

    Args:
        input: logits ``Tensor[N, C, d1, ...]`` (float16, bfloat16, float32, float64; channels-last read in place),
            or probabilities with ``activation="none"``.
        target: class indices ``Tensor[N, d1, ...]`` (or ``[N, 1, d1, ...]``) of any integer dtype, or
            probabilities/one-hot ``Tensor[N, C, d1, ...]``; with ``activation="sigmoid"`` multi-label ``[N, C, ...]``.

    Returns:
        The loss: a scalar, or ``Tensor[N, C']`` (``[1, C']`` with ``batch=True``) for ``reduction="none"``,
        ``C' = C - 1`` without the background.

    Example:
        >>> import torch
        >>> loss = dice_loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
        >>> target = torch.randint(0, 3, (2, 8, 8))
        >>> perfect = 30.0 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()  # logits
        >>> round(float(dice_loss(perfect, target)), 4)  # a perfect prediction: Dice 1, loss 0
        0.0
    """
    return _run(
        input,
        target,
        kind=_ops.DICE,
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
        **_distributed_option("dice_loss", distributed, sync),
        soft_label=soft_label,
    )


def generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    w_type: str = "square",
    activation: str = "softmax",
    include_background: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    ignore_index: int = -100,
    reduction: str = "mean",
    distributed: bool = False,
    soft_label: bool = False,
    *,
    sync: Any = UNSET,
) -> Tensor:
    """Generalised Dice loss (Sudre et al. 2017); see :class:`balancedtorch.nn.GeneralizedDiceLoss`.

    Returns a scalar, or ``Tensor[N]`` (``[1]`` with ``batch=True``) for ``reduction="none"``.
    """
    return _run(
        input,
        target,
        kind=_ops.GENERALIZED_DICE,
        activation=activation,
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        ignore_index=ignore_index,
        reduction=reduction,
        w_type=w_type,
        **_distributed_option("generalized_dice_loss", distributed, sync),
        soft_label=soft_label,
    )


def tversky_loss(
    input: Tensor,
    target: Tensor,
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
    distributed: bool = False,
    soft_label: bool = False,
    *,
    sync: Any = UNSET,
) -> Tensor:
    """(Focal) Tversky loss; see :class:`balancedtorch.nn.TverskyLoss`. Shapes as :func:`dice_loss`."""
    return _run(
        input,
        target,
        kind=_ops.TVERSKY,
        activation=activation,
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        alpha=alpha,
        beta=beta,
        tversky_gamma=gamma,
        **_distributed_option("tversky_loss", distributed, sync),
        soft_label=soft_label,
    )


def dice_ce_loss(
    input: Tensor,
    target: Tensor,
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
    distributed: bool = False,
    *,
    sync: Any = UNSET,
) -> Tensor:
    """``lambda_dice * dice_loss + lambda_ce * cross_entropy``, fused; see :class:`balancedtorch.nn.DiceCELoss`.

    Returns a scalar (``reduction`` is "mean" or "sum").
    """
    return _run(
        input,
        target,
        kind=_ops.DICE,
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
        ce_kind=_ops.CE_CROSS_ENTROPY,
        label_smoothing=label_smoothing,
        lambda_dice=lambda_dice,
        lambda_ce=lambda_ce,
        **_distributed_option("dice_ce_loss", distributed, sync),
    )


def dice_focal_loss(
    input: Tensor,
    target: Tensor,
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
    distributed: bool = False,
    alpha: Optional[float] = None,
    focal_activation: Optional[str] = None,
    *,
    sync: Any = UNSET,
) -> Tensor:
    """``lambda_dice * dice_loss + lambda_focal * focal_loss``, fused; see :class:`balancedtorch.nn.DiceFocalLoss`.

    Returns a scalar, or for ``reduction="none"`` (sigmoid / "none" activation) MONAI's
    ``Tensor[N, C', d1, ...]``: the Dice terms broadcast over the pixels plus the focal map.
    """
    return _run(
        input,
        target,
        kind=_ops.DICE,
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
        ce_kind=_ops.CE_FOCAL,
        ce_gamma=_number(gamma, "gamma"),
        label_smoothing=label_smoothing,
        lambda_dice=lambda_dice,
        lambda_ce=lambda_focal,
        **_distributed_option("dice_focal_loss", distributed, sync),
        focal_alpha=alpha,
        focal_activation=focal_activation,
    )


# --- modules ----------------------------------------------------------------------------------------------


class _RegionLoss(nn.Module):
    _fn = None
    _weighted = True

    def __init__(self, **kwargs) -> None:
        super().__init__()
        # validate the options now (a dummy call would need shapes): names and values
        _choice(kwargs.get("activation", "softmax"), "activation", _ACTIVATIONS)
        if "reduction" in kwargs:
            table = _REDUCTIONS if type(self) is not DiceCELoss else {k: v for k, v in _REDUCTIONS.items() if k != "none"}
            _choice(kwargs["reduction"], "reduction", table)
        for name in ("soft_label", "include_background", "squared_pred", "jaccard", "batch", "distributed"):
            if name in kwargs:
                _flag(kwargs[name], name)
        if "ignore_index" in kwargs:
            _index(kwargs["ignore_index"], "ignore_index")
        if kwargs.get("focal_activation") is not None:
            _choice(kwargs["focal_activation"], "focal_activation", _FOCAL_ACTIVATIONS)
        if "w_type" in kwargs:
            _choice(kwargs["w_type"], "w_type", _W_TYPES)
        for name in ("smooth_nr", "smooth_dr", "beta", "lambda_dice", "lambda_ce", "lambda_focal", "label_smoothing"):
            if name in kwargs:
                _number(kwargs[name], name)
        if "alpha" in kwargs:
            if type(self) is DiceFocalLoss:
                _focal_alpha(kwargs["alpha"])
            else:
                _number(kwargs["alpha"], "alpha")
        if "gamma" in kwargs:
            _number(kwargs["gamma"], "gamma", strict=type(self) is TverskyLoss)
        if kwargs.get("distributed") and not kwargs.get("batch"):
            raise ValueError(
                "distributed=True (formerly sync=True) needs batch=True (the per-class sums over the whole batch are "
                "what is all-reduced)"
            )
        weight = kwargs.pop("weight", None)
        _check_weight(weight)
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
        distributed: with ``batch=True``, all-reduce the sums over ``torch.distributed`` ranks; the loss is then
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
    * ``distributed=True`` (with ``batch=True``; formerly ``sync=True``, a deprecated alias for one release) all-reduces the sums across
      ``torch.distributed`` ranks (nnU-Net's ``ddp`` batch dice).

    As MONAI's: a target whose shape does not fit the input raises an error that
    is both a ValueError and an AssertionError; a one-channel input with
    ``activation="softmax"`` (read as probabilities then) or
    ``include_background=False`` (the channel is kept) warns and goes on; a
    softmax cross-entropy or focal part of one class is refused.

    Example:
        >>> import torch
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss = DiceLoss(include_background=False)(logits, torch.randint(0, 3, (2, 8, 8)))
        >>> loss.backward()
        >>> loss.shape, logits.grad.shape
        (torch.Size([]), torch.Size([2, 3, 8, 8]))
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
        distributed: bool = False,
        soft_label: bool = False,
        *,
        sync: Any = UNSET,
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
            distributed=renamed(type(self).__name__, "distributed", distributed, "sync", sync, False),
            soft_label=soft_label,
        )

    _fn = staticmethod(dice_loss)


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
        distributed: bool = False,
        soft_label: bool = False,
        *,
        sync: Any = UNSET,
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
            distributed=renamed(type(self).__name__, "distributed", distributed, "sync", sync, False),
            soft_label=soft_label,
        )

    _fn = staticmethod(generalized_dice_loss)
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
        distributed: bool = False,
        soft_label: bool = False,
        *,
        sync: Any = UNSET,
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
            distributed=renamed(type(self).__name__, "distributed", distributed, "sync", sync, False),
            soft_label=soft_label,
        )

    _fn = staticmethod(tversky_loss)


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
        distributed: bool = False,
        *,
        sync: Any = UNSET,
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
            distributed=renamed(type(self).__name__, "distributed", distributed, "sync", sync, False),
        )

    _fn = staticmethod(dice_ce_loss)


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
        >>> import torch
        >>> criterion = DiceFocalLoss(activation="sigmoid", alpha=0.25)  # multi-label masks
        >>> loss = criterion(torch.randn(2, 3, 8, 8), (torch.rand(2, 3, 8, 8) < 0.2).float())
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
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
        distributed: bool = False,
        alpha: Optional[float] = None,
        focal_activation: Optional[str] = None,
        *,
        sync: Any = UNSET,
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
            distributed=renamed(type(self).__name__, "distributed", distributed, "sync", sync, False),
            alpha=alpha,
            focal_activation=focal_activation,
        )

    _fn = staticmethod(dice_focal_loss)
