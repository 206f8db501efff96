"""The softmax family of fused losses: cross-entropy, focal and logit-adjusted (functional forms and modules).

Each function computes the loss and, when the input requires grad, its
gradient in one pass over the logits (``balancedtorch::softmax_loss``, C++/CUDA
kernels); results equal ``torch.nn.functional.cross_entropy`` (and its focal
and logit-adjusted forms). The modules are drop-ins for
``torch.nn.CrossEntropyLoss`` and friends.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import _validate
from .._dispatch import _acc_dtype, _class_view, autocast_dtype, call_private
from ._common import _REDUCTIONS, _check_class_vector, _check_tensor, _real, _reduction_code

__all__ = [
    "cross_entropy",
    "focal_loss",
    "logit_adjusted_loss",
    "logit_adjustment",
    "CrossEntropyLoss",
    "FocalLoss",
    "LogitAdjustedLoss",
]

_REDUCTION_NONE, _REDUCTION_SUM = _REDUCTIONS["none"], _REDUCTIONS["sum"]


# --- functional forms ------------------------------------------------------------------------------------


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


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
    logit_scale: Optional[Tensor] = None,
    margin: Optional[Tensor] = None,
    scale: float = 1.0,
    extent: Optional[Tuple[float, str]] = None,
) -> Tensor:
    """The one call of ``balancedtorch::softmax_loss`` behind every softmax-family loss.

    ``logit_scale``, ``logit_bias``, ``margin`` (C,) and ``scale`` form the
    kernel's adjusted logits ``scale * (input * logit_scale + logit_bias -
    margin[y] * onehot(y))`` (see csrc/loss/softmax_loss.h); they are checked
    by their callers (the kernel checks shapes, dtypes, devices and values too).
    ``extent``: (the largest magnitude of a scaled per-class term, the words
    that name it), refused past float32 for logits accumulated in float32.
    """
    input = _check_tensor(input, "input")
    target = _check_tensor(target, "target")
    code = _reduction_code(reduction)
    label_smoothing = _real(label_smoothing, "label_smoothing", 0.0, 1.0)
    gamma = _real(gamma, "gamma", 0.0)
    ignore_index = _validate.integer(ignore_index, "ignore_index")
    weight = _check_class_vector(weight, "weight", validate, input)
    unbatched = input.dim() == 1
    if unbatched:  # (C,) with a () class index or (C,) probabilities, as torch
        input = input.unsqueeze(0)
        target = target.unsqueeze(0)
    if target.is_floating_point() and input.is_floating_point():
        # the dtype the kernel computes in: float32 for half logits under autocast, as torch
        target = target.to(autocast_dtype(input))
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    # (no generator here: torch 2.4's dynamo cannot trace next(generator, default))
    derived = logit_bias if logit_bias is not None else logit_scale if logit_scale is not None else margin
    if derived is not None and derived.shape[0] != input.shape[1]:
        # the vectors come from class_counts: name that, not the kernel's argument
        raise ValueError(f"input has {input.shape[1]} classes (dimension 1) but class_counts has {derived.shape[0]} entries")
    if margin is not None and target.is_floating_point():
        raise ValueError(
            "target: a margin loss (LDAM) needs class-index targets (the margin is taken at each sample's class), "
            f"got probability targets of dtype {target.dtype}"
        )
    if input.is_floating_point() and input.dtype != torch.float64:
        # the kernel takes the scale and the per-class terms in its float32 accumulation dtype: past its range
        # they would be inf (an infinite or NaN loss); name the argument, not the cast
        for value, what in ((scale, "s (the logit scale)"),) + (() if extent is None else (extent,)):
            if value > _FLOAT32_MAX:
                raise ValueError(
                    f"{what} must be at most {_FLOAT32_MAX:.6g} for {input.dtype} logits (accumulated in float32), got {value:g}"
                )
    adjusted = logit_scale is not None or margin is not None or scale != 1.0  # (no tensor ==: dynamo)
    extra = (logit_scale, margin, scale) if adjusted else ()  # the plain call as it always was
    loss = call_private(
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
        *extra,
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
        >>> import torch
        >>> import balancedtorch as bt
        >>> logits, target = torch.randn(8, 3, requires_grad=True), torch.randint(0, 3, (8,))
        >>> loss = bt.functional.cross_entropy(logits, target, weight=torch.tensor([1.8, 33.3, 2.4]))
        >>> loss.backward()
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor([1.8, 33.3, 2.4])))
        True
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
        input (Tensor[N, C] or Tensor[N, C, d1, ..., dk]): logits.
        target (Tensor[N] or Tensor[N, d1, ..., dk]): class indices, or probabilities with the input's shape.
        gamma (float): focusing parameter >= 0 (default 2).

    Other arguments as :func:`cross_entropy`.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> logits, target = torch.randn(8, 3), torch.randint(0, 3, (8,))
        >>> loss = bt.functional.focal_loss(logits, target, gamma=2.0)
        >>> torch.allclose(bt.functional.focal_loss(logits, target, gamma=0.0),
        ...                torch.nn.functional.cross_entropy(logits, target))  # gamma=0 is cross-entropy
        True
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
        >>> import torch
        >>> import balancedtorch as bt
        >>> bt.functional.logit_adjustment([90, 10, 0])   # log([90, 10, 0.5] / 100.5)
        tensor([-0.1103, -2.3076, -5.3033], dtype=torch.float64)
    """
    tau = _real(tau, "tau", 0.0)
    counts = _validate.as_tensor(class_counts, "class_counts")  # a list in float64, not torch's float32
    _validate.refuse_meta(counts, "class_counts", "logit_adjustment")
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
    log_counts = counts.log()  # log(n / N) as a difference of logs: n / N underflows for counts 1e600 apart
    return tau * (log_counts - torch.logsumexp(log_counts, 0))


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
        >>> import torch
        >>> import balancedtorch as bt
        >>> logits = torch.randn(8, 3, requires_grad=True)
        >>> loss = bt.functional.logit_adjusted_loss(logits, torch.randint(0, 3, (8,)), class_counts=[5000, 300, 0],
        ...                                          label_smoothing=0.1)
        >>> loss.backward()
        >>> logits.grad.shape
        torch.Size([8, 3])
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


def _softmax_loss_target_grad(args, grad_loss: Tensor) -> Tensor:
    """d(loss)/d(probability target), as autograd gives it for torch's cross_entropy (and the focal form).

    loss_n = sum_c ((1 - eps) q_nc + eps / C) w_c (1 - p_nc)^gamma (-log p_nc), so
    d loss_n / d q_nc = (1 - eps) w_c (1 - p_nc)^gamma (-log p_nc); "mean" divides
    by the number of samples N * d1 * ... as torch does for probability targets.
    """
    input, target, weight, bias, _, label_smoothing, gamma, reduction = args[:8]
    logit_scale, _, scale = (list(args[9:12]) + [None, None, 1.0][len(args[9:12]) :])[:3]  # margin: class indices only
    acc = _acc_dtype(input)
    z = input.detach().to(acc)
    if logit_scale is not None:
        z = z * _class_view(logit_scale.to(acc), z)
    if bias is not None:
        z = z + _class_view(bias.to(acc), z)
    if scale != 1.0:
        z = z * scale
    log_p = torch.log_softmax(z, dim=1)
    coef = -log_p
    if gamma != 0.0:
        coef = coef * (-torch.expm1(log_p)).pow(gamma)
    if weight is not None:
        coef = coef * _class_view(weight.to(acc), z)
    coef = coef * (1.0 - label_smoothing)
    if reduction == _REDUCTION_NONE:
        coef = coef * grad_loss.to(acc).unsqueeze(1)
    else:
        coef = coef * grad_loss.to(acc)
        if reduction != _REDUCTION_SUM:
            coef = coef / (z.numel() // z.shape[1] if z.numel() else 1)
    return coef.to(target.dtype)


# --- modules ----------------------------------------------------------------------------------------------


class _ClassWeightedLoss(nn.Module):
    def __init__(self, weight: Optional[Tensor], ignore_index: int, reduction: str) -> None:
        super().__init__()
        _reduction_code(reduction)
        ignore_index = _validate.integer(ignore_index, "ignore_index")
        # Checked once here, so forward needs no host synchronisation.
        self.register_buffer("weight", _check_class_vector(weight, "weight"))
        self.ignore_index = ignore_index
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
            >>> import torch
            >>> import balancedtorch as bt
            >>> criterion = bt.nn.FocalLoss(gamma=2.0, weight=torch.tensor([1.8, 33.3, 2.4]), ignore_index=255)
            >>> logits = torch.randn(4, 3, 32, 32, requires_grad=True)           # (N, C, H, W)
            >>> masks = torch.randint(0, 3, (4, 32, 32))
            >>> criterion(logits, masks).backward()
            >>> logits.grad.shape
            torch.Size([4, 3, 32, 32])
        """
        return _softmax_loss(
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
        >>> import torch
        >>> import balancedtorch as bt
        >>> train_labels = torch.tensor([0] * 56 + [1] * 3 + [2] * 41)
        >>> weight = bt.class_weights(labels=train_labels)
        >>> criterion = bt.nn.CrossEntropyLoss(weight=weight)
        >>> logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))   # model(x), y
        >>> loss = criterion(logits, y)
        >>> torch.allclose(loss, torch.nn.CrossEntropyLoss(weight=weight)(logits, y))  # torch's numbers
        True
    """

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = _real(label_smoothing, "label_smoothing", 0.0, 1.0)

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
        >>> import torch
        >>> import balancedtorch as bt
        >>> criterion = bt.nn.FocalLoss(gamma=2.0, weight=bt.class_weights(counts=[56, 3, 41]))
        >>> criterion(torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([0, 1]))  # easy, hard sample
        tensor(0.4634)
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
        self.gamma = _real(gamma, "gamma", 0.0)
        self.label_smoothing = _real(label_smoothing, "label_smoothing", 0.0, 1.0)

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
        >>> import torch
        >>> import balancedtorch as bt
        >>> train_labels = torch.randint(0, 10, (1000,)) ** 2 // 10  # long-tailed over 10 classes
        >>> criterion = bt.nn.LogitAdjustedLoss(class_counts=bt.ops.class_counts(train_labels, 10), tau=1.0,
        ...                                     label_smoothing=0.1)
        >>> logits, y = torch.randn(8, 10, requires_grad=True), torch.randint(0, 10, (8,))
        >>> criterion(logits, y).backward()
        >>> logits.grad.shape
        torch.Size([8, 10])
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
        self.tau = _real(tau, "tau", 0.0)
        self.gamma = _real(gamma, "gamma", 0.0)
        self.label_smoothing = _real(label_smoothing, "label_smoothing", 0.0, 1.0)
        self.register_buffer("logit_bias", logit_adjustment(class_counts, self.tau))
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
