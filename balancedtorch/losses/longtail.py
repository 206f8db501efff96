"""Long-tailed recognition losses on the fused softmax kernel: LDAM, VS and Balanced Softmax, plus
post-hoc logit adjustment and tau-normalisation.

Each loss is one call of ``balancedtorch::softmax_loss`` (the kernel of
:func:`~balancedtorch.functional.cross_entropy`) on the adjusted logits

    ``s * (input * delta + iota - margin[y] * onehot(y))``

with per-class vectors derived once from the training ``class_counts``:

- LDAM (Cao et al. 2019): ``margin_c = max_m * (n_min / n_c)^(1/4)``, ``delta = 1``, ``iota = 0``;
- VS (Kini et al. 2021): ``delta_c = (n_c / n_max)^gamma``, ``iota_c = tau * log(n_c / N)``, ``s = 1``;
- Balanced Softmax (Ren et al. 2020): ``iota_c = log(n_c / N)`` (the logit adjustment with ``tau=1``).

Value and gradient come from one pass over the logits, with no logits-sized
temporaries (a user's eager version builds three or four).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from .. import _validate
from .._dispatch import _class_view
from ._common import _check_tensor, _real
from .softmax import _ClassWeightedLoss, _softmax_loss, logit_adjustment

__all__ = [
    "ldam_loss",
    "vs_loss",
    "balanced_softmax_loss",
    "posthoc_logit_adjustment",
    "tau_normalize",
    "LDAMLoss",
    "VSLoss",
    "BalancedSoftmaxLoss",
]


# --- per-class vectors -------------------------------------------------------------------------------------


def _positive_counts(class_counts: Any) -> Tensor:
    """``class_counts`` as a float64 (C,) tensor on its own device: 1-D, finite and > 0 (ValueError naming the entry)."""
    counts = _validate.as_tensor(class_counts, "class_counts")
    _validate.refuse_meta(counts, "class_counts", "ldam/vs loss")
    if counts.dtype == torch.bool or counts.is_complex():
        raise ValueError(f"class_counts must be real numbers, got dtype {counts.dtype}")
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    counts = counts.to(torch.float64)
    bad = ~torch.isfinite(counts) | (counts <= 0)
    if bool(bad.any()):  # once, when a module is built (or per call of the functional form)
        idx = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"class_counts must be finite and > 0 (a class without samples has no margin or prior), "
            f"got class_counts[{idx}] = {counts[idx].item()}"
        )
    return counts


def _ldam_margins(class_counts: Any, max_m: float) -> Tensor:
    """``max_m * n_c^(-1/4) / max_k n_k^(-1/4)``: the rarest class gets ``max_m`` (float64, (C,))."""
    counts = _positive_counts(class_counts)
    return max_m * (counts.min() / counts) ** 0.25


def _vs_vectors(class_counts: Any, gamma: float, tau: float) -> tuple:
    """(delta, iota): ``(n_c / n_max)^gamma`` and ``tau * log(n_c / N)`` (float64, (C,) each)."""
    counts = _positive_counts(class_counts)
    log_counts = counts.log()  # log(n_c / N) as a difference of logs: n_c / N can underflow, N overflow
    return (counts / counts.max()) ** gamma, tau * (log_counts - torch.logsumexp(log_counts, 0))


def _ldam_extent(max_m: float, s: float) -> tuple:
    """The largest scaled margin, for the float32 range check of ``_softmax_loss``."""
    return max_m * s, "max_m * s (the largest scaled margin)"


def _vs_extent(iota: Tensor) -> tuple:
    """The largest additive adjustment (``delta`` is at most 1), for the same check."""
    return float(iota.abs().max()), "tau * max |log(n_c / N)| (the largest additive logit adjustment)"


def _on(vec: Tensor, input: Any) -> Tensor:
    return vec.to(input.device) if isinstance(input, Tensor) else vec


def _counts_repr(class_counts: Any) -> tuple:
    counts = class_counts if isinstance(class_counts, Tensor) else torch.as_tensor(class_counts)
    return tuple(counts.detach().cpu().flatten().tolist())


def _shown(counts: tuple) -> str:
    return f"[{', '.join(f'{c:g}' for c in counts)}]" if len(counts) <= 8 else f"[{len(counts)} classes]"


# --- functional forms ------------------------------------------------------------------------------------


def ldam_loss(
    input: Tensor,
    target: Tensor,
    class_counts: Any,
    max_m: float = 0.5,
    s: float = 30.0,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Label-distribution-aware margin loss (Cao et al. 2019), fused.

    ``F.cross_entropy(s * (input - margin[y] * onehot(y)), target, weight, ...)``
    with ``margin_c = max_m * n_c^(-1/4) / max_k n_k^(-1/4)``: the rarest class
    gets the margin ``max_m``, and ``s`` scales the margin and the logits alike,
    as in the authors' code (made for cosine logits of a normalised last
    layer, whence ``s=30``). Train with deferred re-weighting (DRW): see
    :class:`LDAMLoss`.

    Args:
        input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]): logits.
        target (Tensor[N] or Tensor[N, d1, ..., dk]): class indices (a margin
            needs them: probability targets raise a ValueError).
        class_counts (Tensor[C] | sequence): training samples per class, > 0.
        max_m (float): the largest margin, >= 0. Default 0.5.
        s (float): logit scale > 0. Default 30.
        weight (Tensor[C], optional): per-class weights (DRW's second stage).
        ignore_index (int): class index to skip. Default -100.
        reduction (str): ``"none"`` | ``"mean"`` (default; by the summed weights
            of the non-ignored targets, as torch) | ``"sum"``.
        label_smoothing (float): in [0, 1], on the adjusted logits. Default 0.

    Returns:
        Tensor: a scalar, or the per-sample losses for ``reduction="none"``, in
        the input's dtype (float32 under autocast).

    Example:
        >>> import torch, balancedtorch as bt
        >>> logits = torch.randn(8, 3, requires_grad=True)
        >>> loss = bt.functional.ldam_loss(logits, torch.randint(0, 3, (8,)), class_counts=[500, 50, 5])
        >>> loss.backward()
    """
    max_m = _real(max_m, "max_m", 0.0)
    s = _validate.real(s, "s", low=0.0, low_inclusive=False)
    margin = _on(_ldam_margins(class_counts, max_m), input)
    return _softmax_loss(
        input,
        target,
        weight=weight,
        logit_bias=None,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        gamma=0.0,
        validate=True,
        margin=margin,
        scale=s,
        extent=_ldam_extent(max_m, s),
    )


def vs_loss(
    input: Tensor,
    target: Tensor,
    class_counts: Any,
    gamma: float = 0.3,
    tau: float = 1.0,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Vector-scaling loss (Kini et al. 2021), fused.

    ``F.cross_entropy(input * delta + iota, target, weight, ...)`` (class
    dimension 1) with ``delta_c = (n_c / n_max)^gamma`` (the authors divide by
    ``(n_max / n_c)^gamma``: the same) and ``iota_c = tau * log(n_c / N)``.
    ``gamma=0`` is the logit-adjusted loss; ``tau=0`` pure multiplicative scaling.

    Args:
        input (Tensor[N, C, *] or Tensor[C]): logits.
        target (Tensor[N, *] or Tensor[N, C, *]): class indices, or probabilities of the input's shape.
        class_counts (Tensor[C] | sequence): training samples per class, > 0.
        gamma (float): >= 0. Default 0.3. tau (float): >= 0. Default 1.
        weight, ignore_index, reduction, label_smoothing: as :func:`ldam_loss`.

    Returns:
        Tensor: as :func:`ldam_loss`.

    Example:
        >>> import torch, balancedtorch as bt
        >>> logits = torch.randn(8, 3, requires_grad=True)
        >>> bt.functional.vs_loss(logits, torch.randint(0, 3, (8,)), [500, 50, 5], gamma=0.2, tau=1.5).backward()
    """
    gamma = _real(gamma, "gamma", 0.0)
    tau = _real(tau, "tau", 0.0)
    delta, iota = _vs_vectors(class_counts, gamma, tau)
    return _softmax_loss(
        input,
        target,
        weight=weight,
        logit_bias=_on(iota, input),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        gamma=0.0,
        validate=True,
        logit_scale=_on(delta, input),
        extent=_vs_extent(iota),
    )


def balanced_softmax_loss(
    input: Tensor,
    target: Tensor,
    class_counts: Any,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Balanced Softmax (Ren et al. 2020): cross-entropy on ``input + log n_c``, fused.

    Equal to :func:`logit_adjusted_loss` with ``tau=1`` (``log n_c`` and
    ``log(n_c / N)`` differ by a constant, which softmax ignores), zero counts
    included (taken as half a sample, see :func:`logit_adjustment`).

    Args:
        input, target, weight, ignore_index, reduction, label_smoothing: as :func:`vs_loss`.
        class_counts (Tensor[C] | sequence): training samples per class, >= 0, not all zero.

    Returns:
        Tensor: as :func:`ldam_loss`.

    Example:
        >>> import torch, balancedtorch as bt
        >>> logits, target = torch.randn(8, 3), torch.randint(0, 3, (8,))
        >>> a = bt.functional.balanced_softmax_loss(logits, target, [500, 50, 5])
        >>> b = bt.functional.logit_adjusted_loss(logits, target, [500, 50, 5], tau=1.0)
        >>> torch.equal(a, b)
        True
    """
    return _softmax_loss(
        input,
        target,
        weight=weight,
        logit_bias=_on(logit_adjustment(class_counts, 1.0), input),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        gamma=0.0,
        validate=True,
    )


def posthoc_logit_adjustment(logits: Tensor, class_counts: Any, tau: float = 1.0) -> Tensor:
    """``logits - tau * log(prior)``: post-hoc logit adjustment (Menon et al. 2021) of a model trained with plain CE.

    Apply at inference to the logits of a model trained on long-tailed data;
    the argmax then targets the balanced error. ``prior = n / n.sum()`` with
    zero counts taken as half a sample (see :func:`logit_adjustment`).

    Args:
        logits (Tensor[N, C, *] or Tensor[C]): class dimension 1 (0 for 1-D).
        class_counts (Tensor[C] | sequence): training samples per class, >= 0, not all zero.
        tau (float): >= 0. Default 1.

    Returns:
        Tensor: the adjusted logits, the input's shape and dtype (a new tensor;
        differentiable in ``logits``).

    Example:
        >>> import torch, balancedtorch as bt
        >>> bt.functional.posthoc_logit_adjustment(torch.zeros(1, 3), [90, 10, 0])
        tensor([[0.1103, 2.3076, 5.3033]])
    """
    logits = _check_tensor(logits, "logits")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating tensor, got dtype {logits.dtype}")
    adj = logit_adjustment(class_counts, tau).to(logits.device)
    class_dim = 0 if logits.dim() == 1 else 1
    if logits.dim() == 0 or logits.shape[class_dim] != adj.numel():
        raise ValueError(
            f"logits must have {adj.numel()} classes (one per class_counts entry) along dimension {class_dim}, "
            f"got shape {tuple(logits.shape)}"
        )
    adj = adj.to(logits.dtype)
    return logits - (adj if logits.dim() == 1 else _class_view(adj, logits))


def tau_normalize(weight: Tensor, tau: float = 1.0) -> Tensor:
    """``weight / ||row||^tau``: tau-normalised classifier (Kang et al. 2020, "decoupling").

    Each row (one class's weight vector; any trailing dimensions are one
    vector) is divided by its L2 norm to the power ``tau``: ``tau=1`` gives
    unit rows, ``tau=0`` leaves them. A zero row stays zero. Apply to the last
    layer of a model trained with plain CE, at inference, and pick ``tau`` on
    validation data.

    Classifier re-training (cRT), the other decoupled recipe: freeze the
    backbone, re-initialise the last layer and train it alone for a few
    epochs on class-balanced batches::

        for p in model.parameters():
            p.requires_grad_(False)
        model.fc.reset_parameters()
        model.fc.requires_grad_(True)
        sampler = bt.data.ClassBalancedSampler(train_labels)   # p_c equal for every class
        loader = DataLoader(train_set, batch_size=128, sampler=sampler)
        opt = torch.optim.SGD(model.fc.parameters(), lr=0.1, momentum=0.9)
        # ... a few epochs of plain cross-entropy on loader

    Args:
        weight (Tensor[C, D] or Tensor[C, ...]): classifier weight, floating.
        tau (float): >= 0. Default 1.

    Returns:
        Tensor: the weight's shape and dtype (a new tensor, differentiable).

    Example:
        >>> import torch, balancedtorch as bt
        >>> fc = torch.nn.Linear(4, 3)
        >>> with torch.no_grad():
        ...     _ = fc.weight.copy_(bt.nn.tau_normalize(fc.weight, tau=1.0))
        >>> torch.allclose(fc.weight.norm(dim=1), torch.ones(3))
        True
    """
    weight = _check_tensor(weight, "weight")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating tensor, got dtype {weight.dtype}")
    if weight.dim() < 2:
        raise ValueError(f"weight must have shape (C, D) (a classifier's weight, one row per class), got {tuple(weight.shape)}")
    tau = _real(tau, "tau", 0.0)
    if tau == 0.0:
        return weight.clone()
    # Each row through its largest magnitude p: w / ||w||^tau = (w / p) * p^(1 - tau) / ||w / p||^tau (p a
    # constant of the gradient, as any would be), in float32 at least. The plain form squares the entries:
    # 1e30 (float32) or 6e4 (float16) overflow and the row came back 0; 1e-30 underflow and it came back unchanged.
    acc = torch.promote_types(weight.dtype, torch.float32)
    flat = weight.flatten(1).to(acc)
    peak = flat.detach().abs().amax(dim=1) if flat.shape[1] > 0 else flat.new_zeros(flat.shape[0])
    zero = peak == 0  # a zero row stays zero (NaN and inf rows give NaN)
    peak = torch.where(zero, torch.ones_like(peak), peak)
    length = (flat / peak.unsqueeze(1)).norm(dim=1)  # in [1, sqrt(D)]
    length = torch.where(zero, torch.ones_like(length), length)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    # p^(1 - tau) / length^tau in the log domain, in float64: for a large tau each power alone overflows
    # (inf / inf) where their ratio is 0 or inf
    factor = (peak.double().log() * (1.0 - tau) - length.double().log() * tau).exp().to(acc)
    return (weight.to(acc) / peak.view(shape) * factor.view(shape)).to(weight.dtype)


# --- modules ----------------------------------------------------------------------------------------------


class _LongTailLoss(_ClassWeightedLoss):
    def __init__(self, class_counts, num_classes: int, weight, ignore_index, reduction, label_smoothing) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = _real(label_smoothing, "label_smoothing", 0.0, 1.0)
        self.class_counts = _counts_repr(class_counts)  # for repr only; the derived buffers are the state
        if self.weight is not None and self.weight.numel() != num_classes:
            raise ValueError(f"weight has {self.weight.numel()} entries but class_counts has {num_classes}")

    def _extra_tail(self) -> str:
        extra = self._extra()
        return extra + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class LDAMLoss(_LongTailLoss):
    """LDAM loss (Cao et al. 2019): cross-entropy on ``s * (z - margin[y] onehot(y))``, fused.

    ``margin_c = max_m * n_c^(-1/4) / max_k n_k^(-1/4)`` (the rarest class
    gets ``max_m``), held in the buffer ``margin``. See
    :func:`balancedtorch.functional.ldam_loss`.

    Deferred re-weighting (DRW), the schedule of the paper: train unweighted,
    then switch ``weight`` to class-balanced weights for the last stage
    (epoch 160 of 200 on CIFAR), e.g. the effective-number weights with
    ``beta=0.9999``; assigning ``criterion.weight`` replaces the buffer.

    Args:
        class_counts (Tensor[C] | sequence): training samples per class, > 0.
        max_m (float): the largest margin, >= 0. Default 0.5.
        s (float): logit scale > 0. Default 30.
        weight (Tensor[C], optional): per-class weights. ignore_index (int):
            default -100. reduction (str): ``"mean"`` (default) | ``"sum"`` |
            ``"none"``. label_smoothing (float): in [0, 1], default 0.

    Example:
        >>> import torch, balancedtorch as bt
        >>> counts = [500, 50, 5]
        >>> criterion = bt.nn.LDAMLoss(counts, max_m=0.5, s=30.0)
        >>> for epoch in range(4):
        ...     if epoch == 3:  # DRW: re-weight the last stage
        ...         criterion.weight = bt.class_weights(counts=counts, scheme="effective_number", beta=0.9999)
        ...     logits = torch.randn(8, 3, requires_grad=True)
        ...     criterion(logits, torch.randint(0, 3, (8,))).backward()
        >>> criterion
        LDAMLoss(class_counts=[500, 50, 5], max_m=0.5, s=30.0, reduction='mean', weight=[3 classes])
    """

    def __init__(
        self,
        class_counts: Any,
        max_m: float = 0.5,
        s: float = 30.0,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        max_m = _real(max_m, "max_m", 0.0)
        s = _validate.real(s, "s", low=0.0, low_inclusive=False)
        margin = _ldam_margins(class_counts, max_m)
        super().__init__(class_counts, margin.numel(), weight, ignore_index, reduction, label_smoothing)
        self.max_m, self.s = max_m, s
        self._extent = _ldam_extent(max_m, s)
        self.register_buffer("margin", margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The LDAM loss of logits ``input`` against class indices ``target`` (one fused pass, gradient included).

        Args:
            input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]):
                logits, class dimension 1; float16/bfloat16 (accumulated in
                float32), float32 or float64; NCHW or channels-last.
            target (Tensor[N] or Tensor[N, d1, ..., dk] or Tensor[]): class
                indices (int64, int32 or uint8; ``ignore_index`` is skipped).

        Returns:
            Tensor: a scalar (``"mean"``, ``"sum"``) or the per-sample losses
            ``[N, d1, ..., dk]`` (``"none"``), in the input's dtype (float32
            under ``torch.autocast``).

        Example:
            >>> import torch, balancedtorch as bt
            >>> criterion = bt.nn.LDAMLoss([500, 50, 5], ignore_index=255)
            >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
            >>> criterion(logits, torch.randint(0, 3, (2, 8, 8))).backward()
        """
        return _softmax_loss(
            input,
            target,
            weight=self.weight,
            logit_bias=None,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            gamma=0.0,
            validate=False,
            margin=self.margin,
            scale=self.s,
            extent=self._extent,
        )

    def extra_repr(self) -> str:
        return f"class_counts={_shown(self.class_counts)}, max_m={self.max_m}, s={self.s}, " + self._extra_tail()


class VSLoss(_LongTailLoss):
    """Vector-scaling loss (Kini et al. 2021): cross-entropy on ``z * delta + iota``, fused.

    ``delta_c = (n_c / n_max)^gamma`` and ``iota_c = tau * log(n_c / N)``,
    held in the buffers ``logit_scale`` and ``logit_bias``. See
    :func:`balancedtorch.functional.vs_loss`.

    Args:
        class_counts (Tensor[C] | sequence): training samples per class, > 0.
        gamma (float): >= 0. Default 0.3. tau (float): >= 0. Default 1.
        weight, ignore_index, reduction, label_smoothing: as :class:`LDAMLoss`.

    Example:
        >>> import torch, balancedtorch as bt
        >>> criterion = bt.nn.VSLoss([500, 50, 5], gamma=0.2, tau=1.5)
        >>> criterion(torch.randn(8, 3), torch.randint(0, 3, (8,))).shape
        torch.Size([])
    """

    def __init__(
        self,
        class_counts: Any,
        gamma: float = 0.3,
        tau: float = 1.0,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        gamma = _real(gamma, "gamma", 0.0)
        tau = _real(tau, "tau", 0.0)
        delta, iota = _vs_vectors(class_counts, gamma, tau)
        super().__init__(class_counts, delta.numel(), weight, ignore_index, reduction, label_smoothing)
        self.gamma, self.tau = gamma, tau
        self._extent = _vs_extent(iota)
        self.register_buffer("logit_scale", delta)
        self.register_buffer("logit_bias", iota)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The VS loss of logits ``input`` against ``target`` (one fused pass, gradient included).

        Args:
            input (Tensor[N, C] or Tensor[N, C, d1, ..., dk] or Tensor[C]):
                logits, class dimension 1; float16/bfloat16 (accumulated in
                float32), float32 or float64; NCHW or channels-last.
            target (Tensor[N] or Tensor[N, d1, ..., dk] or Tensor[]): class
                indices (``ignore_index`` is skipped), or class probabilities
                of the input's shape.

        Returns:
            Tensor: a scalar (``"mean"``, ``"sum"``) or the per-sample losses
            ``[N, d1, ..., dk]`` (``"none"``), in the input's dtype (float32
            under ``torch.autocast``).

        Example:
            >>> import torch, balancedtorch as bt
            >>> criterion = bt.nn.VSLoss([500, 50, 5], gamma=0.2)
            >>> logits = torch.randn(8, 3, requires_grad=True)
            >>> criterion(logits, torch.softmax(torch.randn(8, 3), 1)).backward()
        """
        return _softmax_loss(
            input,
            target,
            weight=self.weight,
            logit_bias=self.logit_bias,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            gamma=0.0,
            validate=False,
            logit_scale=self.logit_scale,
            extent=self._extent,
        )

    def extra_repr(self) -> str:
        return f"class_counts={_shown(self.class_counts)}, gamma={self.gamma}, tau={self.tau}, " + self._extra_tail()


class BalancedSoftmaxLoss(_LongTailLoss):
    """Balanced Softmax (Ren et al. 2020): cross-entropy on ``z + log n_c``, fused.

    Equal to ``LogitAdjustedLoss(class_counts, tau=1.0, ...)`` in value and
    gradient (zero counts taken as half a sample, as there). The adjustment is
    held in the buffer ``logit_bias``. See
    :func:`balancedtorch.functional.balanced_softmax_loss`.

    Args:
        class_counts (Tensor[C] | sequence): training samples per class, >= 0, not all zero.
        weight, ignore_index, reduction, label_smoothing: as :class:`LDAMLoss`.

    Example:
        >>> import torch, balancedtorch as bt
        >>> criterion = bt.nn.BalancedSoftmaxLoss([500, 50, 5], label_smoothing=0.1)
        >>> criterion(torch.randn(8, 3), torch.randint(0, 3, (8,))).shape
        torch.Size([])
    """

    def __init__(
        self,
        class_counts: Any,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        bias = logit_adjustment(class_counts, 1.0)
        super().__init__(class_counts, bias.numel(), weight, ignore_index, reduction, label_smoothing)
        self.register_buffer("logit_bias", bias)

    def extra_repr(self) -> str:
        return f"class_counts={_shown(self.class_counts)}, " + self._extra_tail()
