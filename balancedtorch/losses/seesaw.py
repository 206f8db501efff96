"""Seesaw loss (Wang et al. 2021, "Seesaw Loss for Long-Tailed Instance Segmentation"): functional form and module.

The cross-entropy of logits whose non-target entries are shifted by the log of
two factors: a mitigation factor ``(n_j / n_i)^p`` (where ``n_j < n_i``, from
cumulative class counts) that stops a frequent target class ``i`` from
pushing the logits of rarer classes ``j`` down, and a compensation factor
``(sigma_j / max(sigma_i, eps))^q`` (where it is > 1, on the detached softmax
``sigma``) that restores the penalty on a class the model confuses with the
target. One fused pass over the logits (``balancedtorch::seesaw_loss``,
C++/CUDA kernels) gives the loss and its gradient.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .. import _distributed, _validate
from .._dispatch import call_private
from ._common import _check_tensor, _reduction_code

__all__ = ["seesaw_loss", "SeesawLoss"]


def _options(p: Any, q: Any, eps: Any) -> tuple:
    p = _validate.real(p, "p", low=0.0)
    q = _validate.real(q, "q", low=0.0)
    eps = _validate.real(eps, "eps", low=0.0, low_inclusive=False)
    return p, q, eps


def seesaw_loss(
    input: Tensor,
    target: Tensor,
    cum_samples: Tensor,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    """Seesaw loss of logits ``input`` against class indices ``target`` (fused kernel; stateless).

    For a sample of target class ``i``, each other logit ``z_j`` becomes
    ``z_j + log(M_ij * C_ij)``, then cross-entropy is taken:

    - mitigation ``M_ij = (n_j / n_i)^p`` where ``n_j < n_i``, else 1
      (``n = cum_samples`` read as ``max(n, 1)``, as MMDetection clamps it);
    - compensation ``C_ij = (sigma_j / max(sigma_i, eps))^q`` where that
      ratio is > 1, else 1 (``sigma``: softmax of the detached logits).

    Values and gradients equal MMDetection's ``seesaw_ce_loss`` (the factors
    are constants of the backward pass, as there). Differences from
    MMDetection:

    - the plain classification form: ``C`` logits for classes ``0..C-1``.
      MMDetection's ``SeesawLoss`` module takes ``C + 2`` channels (two
      objectness logits with their own cross-entropy) and a background label
      ``C`` whose samples skip the Seesaw term; to reproduce it, pass the
      foreground rows' first ``C`` logits here and add ``F.cross_entropy`` on
      the objectness channels;
    - no ``label_weights`` / ``avg_factor`` / ``loss_weight``: use
      ``reduction="none"`` and weight or average the per-sample losses;
    - ``ignore_index`` (not in MMDetection) skips samples;
    - the factors are formed in the log domain, so they stay finite where
      MMDetection's powers would under/overflow (a huge ``p``, a zero
      probability).

    Args:
        input (Tensor[N, C]): logits; float16, bfloat16 (accumulated in
            float32), float32 or float64.
        target (Tensor[N]): class indices (int64, int32 or uint8) in
            ``[0, C)``, or ``ignore_index``.
        cum_samples (Tensor[C]): cumulative samples seen per class (finite,
            >= 0; floating or integer), on the input's device. Only read.
        p (float): mitigation exponent >= 0. Default 0.8 (0: no mitigation).
        q (float): compensation exponent >= 0. Default 2 (0: no compensation).
        eps (float): floor (> 0) of the target's probability in the
            compensation ratio. Default 1e-2.
        reduction (str): ``"none"`` | ``"mean"`` (over the non-ignored samples;
            ``nan`` when there is none, as torch) | ``"sum"``.
        ignore_index (int): target value to skip (loss and gradient 0).
            Default -100.

    Returns:
        Tensor: a scalar, or the per-sample losses ``[N]`` for
        ``reduction="none"``; in the input's dtype (float32 for
        float16/bfloat16 logits under ``torch.autocast``, as torch's losses).

    Raises:
        TypeError: a non-tensor, non-number or wrong dtype.
        ValueError: ``p`` or ``q`` < 0, ``eps`` <= 0, bad shapes, a negative
            or non-finite ``cum_samples`` entry, a target outside ``[0, C)``
            (named with its index on the CPU; a device-side assertion on CUDA).

    Example:
        >>> import torch, balancedtorch as bt
        >>> logits = torch.randn(8, 4, requires_grad=True)
        >>> target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 3])
        >>> cum_samples = torch.tensor([1000.0, 100.0, 10.0, 1.0])
        >>> loss = bt.functional.seesaw_loss(logits, target, cum_samples)
        >>> loss.backward()
    """
    input = _check_tensor(input, "input")
    target = _check_tensor(target, "target")
    cum_samples = _check_tensor(cum_samples, "cum_samples")
    p, q, eps = _options(p, q, eps)
    code = _reduction_code(reduction)
    ignore_index = _validate.integer(ignore_index, "ignore_index")
    if cum_samples.requires_grad and torch.is_grad_enabled():
        raise ValueError("cum_samples must not require grad: the Seesaw factors are constants (no gradient flows to it)")
    compute_grad = input.requires_grad and torch.is_grad_enabled()
    return call_private(
        torch.ops.balancedtorch.seesaw_loss, input, target, cum_samples, p, q, eps, ignore_index, code, compute_grad
    )


def _batch_counts(target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """Per-class counts of the batch's targets, ``ignore_index`` excluded, before anything is modified.

    CPU: the validated histogram (a target outside ``[0, C)`` raises a
    ValueError naming its index, and the buffer stays untouched). CUDA: a
    scatter with no host synchronisation, out-of-range targets left out; the
    loss kernel's device-side check then fails the step.
    """
    if target.device.type == "cpu":
        try:
            return torch.ops.balancedtorch.class_counts(target, num_classes, ignore_index)
        except ValueError:  # the op names its own arguments (labels, class_counts): name the loss's
            t = target.long()
            bad = ((t < 0) | (t >= num_classes)) & (t != ignore_index)
            if not bool(bad.any()):
                raise
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"SeesawLoss: target must hold class indices in [0, {num_classes}) or ignore_index={ignore_index}, "
                f"got target[{i}] = {int(t[i])}"
            ) from None
    t = target.long()
    valid = (t != ignore_index) & (t >= 0) & (t < num_classes)
    counts = torch.zeros(num_classes, dtype=torch.long, device=target.device)
    return counts.scatter_add_(0, torch.where(valid, t, torch.zeros_like(t)), valid.long())


class SeesawLoss(nn.Module):
    """Seesaw loss with its running class counts: buffer ``cum_samples`` (float32 ``[C]``), updated in forward.

    Each forward first adds the batch's class counts (targets equal to
    ``ignore_index`` excluded) to ``cum_samples``, then computes
    :func:`balancedtorch.functional.seesaw_loss` with the updated counts, as
    MMDetection's ``SeesawLoss`` does. Under ``torch.distributed`` the batch
    counts are summed over the ranks first (one all-reduce per step), so every
    rank holds the same buffer. The buffer is part of ``state_dict()`` and
    moves with ``.to()``. Plain classification form (``C`` logits, classes
    ``0..C-1``): see the function for MMDetection's objectness channels.

    Args:
        num_classes (int): C >= 1.
        p (float): mitigation exponent >= 0. Default 0.8.
        q (float): compensation exponent >= 0. Default 2.
        eps (float): > 0. Default 1e-2.
        reduction (str): ``"mean"`` (default) | ``"sum"`` | ``"none"``.
        ignore_index (int): target value to skip, neither counted nor in the
            loss. Default -100.
        distributed (bool, optional): sum the batch counts over the ranks.
            Default None: when a process group of world size > 1 runs.

    Example:
        >>> import torch, balancedtorch as bt
        >>> criterion = bt.nn.SeesawLoss(num_classes=4)
        >>> logits = torch.randn(8, 4, requires_grad=True)
        >>> criterion(logits, torch.tensor([0, 0, 0, 0, 1, 1, 2, 3])).backward()
        >>> criterion.cum_samples
        tensor([4., 2., 1., 1.])
    """

    cum_samples: Tensor

    def __init__(
        self,
        num_classes: int,
        p: float = 0.8,
        q: float = 2.0,
        eps: float = 1e-2,
        reduction: str = "mean",
        ignore_index: int = -100,
        distributed: Optional[bool] = None,
    ) -> None:
        super().__init__()
        self.num_classes = _validate.num_classes(num_classes)
        self.p, self.q, self.eps = _options(p, q, eps)
        _reduction_code(reduction)
        self.reduction = reduction
        self.ignore_index = _validate.integer(ignore_index, "ignore_index")
        if distributed is not None:
            _validate.flag(distributed, "distributed")
        self.distributed = distributed
        self.register_buffer("cum_samples", torch.zeros(self.num_classes, dtype=torch.float32))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Add the batch's class counts to ``cum_samples``, then the Seesaw loss with the updated counts.

        The loss reads a snapshot of the updated counts, so later updates
        (a next forward before this backward) never change this loss's
        gradient.

        Args:
            input (Tensor[N, C]): logits, C = ``num_classes``; float16,
                bfloat16 (accumulated in float32), float32 or float64.
            target (Tensor[N]): class indices (int64, int32 or uint8) in
                ``[0, C)`` or ``ignore_index``; anything else raises a
                ValueError before the buffer is touched (CPU; on CUDA a
                device-side assertion of the loss kernel).

        Returns:
            Tensor: a scalar (``"mean"``, ``"sum"``) or the per-sample losses
            ``[N]`` (``"none"``), in the input's dtype (float32 under
            ``torch.autocast``).

        Example:
            >>> import torch, balancedtorch as bt
            >>> criterion = bt.nn.SeesawLoss(num_classes=3, reduction="none")
            >>> criterion(torch.zeros(2, 3), torch.tensor([0, 2])).shape
            torch.Size([2])
        """
        input = _check_tensor(input, "input")
        target = _check_tensor(target, "target")
        _validate.refuse_meta(input, "input", "SeesawLoss")
        _validate.refuse_meta(target, "target", "SeesawLoss")
        if input.dim() != 2 or input.shape[1] != self.num_classes:
            raise ValueError(f"input must have shape (N, num_classes={self.num_classes}), got {tuple(input.shape)}")
        if target.dim() != 1 or target.shape[0] != input.shape[0]:
            raise ValueError(f"target must have shape (N,) = ({input.shape[0]},), got {tuple(target.shape)}")
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"target must hold class indices (int64, int32 or uint8), got dtype {target.dtype}")
        counts = _batch_counts(target, self.num_classes, self.ignore_index)
        if _distributed.use_distributed(self.distributed):
            _distributed.all_reduce_(counts)
        with torch.no_grad():
            self.cum_samples.add_(counts.to(device=self.cum_samples.device, dtype=self.cum_samples.dtype))
        snapshot = self.cum_samples.clone()
        if snapshot.device != input.device:
            snapshot = snapshot.to(input.device)
        return seesaw_loss(input, target, snapshot, self.p, self.q, self.eps, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        parts = [f"num_classes={self.num_classes}", f"p={self.p}", f"q={self.q}", f"eps={self.eps}"]
        parts.append(f"reduction={self.reduction!r}")
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        return ", ".join(parts)
