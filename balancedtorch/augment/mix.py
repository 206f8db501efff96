"""MixUp and CutMix with torchvision.transforms.v2's semantics, and Remix's rebalanced labels (Chou et al. 2020).

Both mix each sample of a batch with the one before it (the batch rolled by
one: sample ``i`` with sample ``i - 1``, the first with the last), with one
``lam ~ Beta(alpha, alpha)`` per batch: MixUp blends the images,
``lam * x_i + (1 - lam) * x_{i-1}``; CutMix pastes a box of ``x_{i-1}``
into ``x_i`` and corrects ``lam`` to the share of the image ``x_i`` keeps.
The labels become one-hot vectors mixed with the same ``lam``. Given the same
random numbers, both equal torchvision's transforms bit for bit (the tests
compare them after ``torch.manual_seed``).

``remix=True`` keeps the images and changes only the labels (Remix): when
one sample of a pair is from a class at least ``kappa`` times as frequent as
the other's, and its share of the mixed image is below ``tau``, the label is
entirely the rarer class (:func:`remix_targets`).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .. import _validate
from .._dispatch import refuse_bad_values

__all__ = ["MixUp", "CutMix", "remix_targets"]


# ---------------------------------------------------------------- argument checks


def _check_class_counts(class_counts: Any, caller: str) -> Tensor:
    """Per-class training counts as a float64 CPU tensor (C,): finite and > 0 (a ratio of counts is taken)."""
    counts = _validate.as_tensor(class_counts, "class_counts")
    _validate.refuse_meta(counts, "class_counts", caller)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(
            f"{caller}: class_counts must be a non-empty 1-D sequence (one count per class), got shape {tuple(counts.shape)}"
        )
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"{caller}: class_counts must hold real numbers, got dtype {counts.dtype}")
    counts = counts.to("cpu", torch.float64)
    bad = ~torch.isfinite(counts) | (counts <= 0)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{caller}: class_counts must be finite and > 0 (Remix compares the counts of a pair's classes), "
            f"got class_counts[{i}] = {counts[i].item():g}"
        )
    return counts


def _check_remix_args(kappa: Any, tau: Any, caller: str) -> Tuple[float, float]:
    kappa = _validate.real(kappa, "kappa", low=1, caller=caller)
    tau = _validate.real(tau, "tau", low=0, high=1, caller=caller)
    return kappa, tau


def _resolve_num_classes(num_classes: Any, counts: Optional[Tensor], caller: str) -> Optional[int]:
    num_classes = _validate.num_classes(num_classes, optional=True, caller=caller)
    if counts is not None:
        if num_classes is not None and num_classes != counts.numel():
            raise ValueError(f"{caller}: class_counts has {counts.numel()} entries but num_classes is {num_classes}")
        num_classes = counts.numel()
    return num_classes


def _check_index_labels(labels: Any, name: str, num_classes: int, caller: str) -> Tensor:
    """1-D integer class indices in [0, num_classes), checked on the device (no host sync on a GPU)."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{caller}: {name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{caller}: {name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{caller}: {name} must be 1-D class indices of shape (N,), got shape {tuple(labels.shape)}")
    _validate.refuse_meta(labels, name, caller)
    refuse_bad_values(
        (labels < 0) | (labels >= num_classes),
        lambda i: (
            f"{caller}: {name} must be class indices in [0, {num_classes})"
            + ("" if i is None else f", got {name}[{i}] = {int(labels[i])}")
        ),
    )
    return labels.long()


class _CountsOnDevice:
    """The class counts, copied once to each device they are used on (a per-batch copy would wait for the GPU)."""

    def __init__(self, counts: Tensor) -> None:
        self.counts = counts
        self._copies: Dict[torch.device, Tensor] = {}

    def on(self, device: torch.device) -> Tensor:
        if device.type == "cpu":
            return self.counts
        if device not in self._copies:
            self._copies[device] = self.counts.to(device)
        return self._copies[device]


# ---------------------------------------------------------------- labels


def _mix_index_targets(target_a: Tensor, target_b: Tensor, weight_a: Union[float, Tensor], num_classes: int) -> Tensor:
    """``(1 - w) * one_hot(b) + w * one_hot(a)`` in float32, rounded as torchvision's label mixing.

    torchvision computes ``one_hot(b) * f32(1 - lam) + one_hot(a) * f32(lam)``:
    each product is exact (a 0 or the scalar), so the only rounding is the sum
    where ``a == b``; the two scatters below make the same sum, without the
    two (N, C) one-hot temporaries and deterministically on every device.
    """
    n = target_a.shape[0]
    out = torch.zeros((n, num_classes), dtype=torch.float32, device=target_a.device)
    if isinstance(weight_a, Tensor):
        w_a = weight_a.to(torch.float32).view(n, 1)
        w_b = (1.0 - weight_a.to(torch.float64)).to(torch.float32).view(n, 1)  # 1 - lam in float64, as Python's float
    else:
        w_a = torch.full((n, 1), weight_a, dtype=torch.float32, device=target_a.device)
        w_b = torch.full((n, 1), 1.0 - weight_a, dtype=torch.float32, device=target_a.device)
    b, a = target_b.view(n, 1), target_a.view(n, 1)
    out.scatter_(1, b, w_b)
    out.scatter_(1, a, out.gather(1, a) + w_a)
    return out


def _remix_weight(lam: Tensor, n_a: Tensor, n_b: Tensor, kappa: float, tau: float) -> Tensor:
    """Remix's label share of sample a, per pair, in float64 (the paper's three cases, in its order).

    ``n_a / n_b >= kappa`` (a's class is the majority) and ``lam < tau`` (a's
    share of the image is small): 0, the label is b's. ``n_a / n_b <= 1 /
    kappa`` and ``1 - lam < tau``: 1, the label is a's. Otherwise ``lam``.
    """
    ratio = n_a / n_b
    return torch.where(
        (ratio >= kappa) & (lam < tau),
        torch.zeros_like(lam),
        torch.where((ratio <= 1.0 / kappa) & ((1.0 - lam) < tau), torch.ones_like(lam), lam),
    )


def remix_targets(
    target_a: Tensor,
    target_b: Tensor,
    lam: Union[float, Tensor],
    class_counts: Any,
    kappa: float = 3.0,
    tau: float = 0.5,
    num_classes: Optional[int] = None,
) -> Tensor:
    """Remix's soft targets of mixed pairs (Chou et al. 2020, "Remix: Rebalanced Mixup").

    For each pair, whose mixed input is ``lam * x_a + (1 - lam) * x_b``, the
    target is ``lam_y * one_hot(a) + (1 - lam_y) * one_hot(b)`` where, with
    ``n_a``, ``n_b`` the training counts of the two classes:

    - ``lam_y = 0`` (all b) if ``n_a / n_b >= kappa`` and ``lam < tau``;
    - ``lam_y = 1`` (all a) if ``n_a / n_b <= 1 / kappa`` and ``1 - lam < tau``;
    - ``lam_y = lam`` (MixUp's label) otherwise.

    So when the pair's classes differ by a factor ``kappa`` or more and the
    majority sample is less than ``tau`` of the mix, the label is the
    minority's. The cases are checked in this order, with the comparisons
    written above (``>=``, ``<=``, strict ``<``), in float64. The paper
    recommends ``kappa=3``, ``tau=0.5``. Where ``lam_y = lam`` the result
    equals MixUp's label mixing bit for bit.

    Args:
        target_a (Tensor[N]): class indices of the samples weighted by ``lam``
            (any integer dtype).
        target_b (Tensor[N]): class indices of their partners, same shape and
            device.
        lam (float or Tensor[N] or Tensor[]): each pair's share of sample a
            in the mixed input, in [0, 1] (CutMix: the area share a keeps).
        class_counts (Tensor[C] or sequence): training samples per class,
            finite and > 0.
        kappa (float): imbalance ratio from which a pair is rebalanced, >= 1.
            Default 3.
        tau (float): the majority sample's share below which the label goes
            to the minority, in [0, 1]. Default 0.5.
        num_classes (int, optional): C; must equal ``len(class_counts)``.

    Returns:
        Tensor[N, C]: float32 soft targets on the targets' device (each row
        sums to 1), for :class:`bt.nn.CrossEntropyLoss` and the other losses
        that take probability targets.

    Raises:
        TypeError: non-integer targets, non-number arguments.
        ValueError: shapes that differ, targets out of ``[0, C)``, ``lam``
            outside [0, 1], ``kappa < 1``, ``tau`` outside [0, 1],
            ``class_counts`` empty, not 1-D, non-finite or <= 0, a
            ``num_classes`` other than ``len(class_counts)``.

    Example:
        >>> import balancedtorch as bt, torch
        >>> counts = [500, 50, 5]
        >>> a, b = torch.tensor([0, 2, 1]), torch.tensor([2, 0, 1])
        >>> bt.augment.functional.remix_targets(a, b, 0.3, counts)  # lam = 0.3 is sample a's share
        tensor([[0.0000, 0.0000, 1.0000],
                [0.7000, 0.0000, 0.3000],
                [0.0000, 1.0000, 0.0000]])

        Row 0: the majority sample (class 0) is 30% of the mix, under
        ``tau``: the label is the minority's. Row 1: the majority is 70%,
        not under ``tau``: MixUp's label. Row 2: one class.
    """
    caller = "remix_targets"
    counts = _check_class_counts(class_counts, caller)
    kappa, tau = _check_remix_args(kappa, tau, caller)
    num_classes = _resolve_num_classes(num_classes, counts, caller)
    a = _check_index_labels(target_a, "target_a", num_classes, caller)
    b = _check_index_labels(target_b, "target_b", num_classes, caller)
    if a.shape != b.shape:
        raise ValueError(f"{caller}: target_a and target_b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    _validate.same_device(caller, "target_a", a, target_b=b)
    n = a.shape[0]
    if isinstance(lam, Tensor):
        if not lam.is_floating_point():
            raise TypeError(f"{caller}: lam must be a float or a floating tensor, got dtype {lam.dtype}")
        if lam.dim() > 1 or (lam.dim() == 1 and lam.shape[0] != n):
            raise ValueError(f"{caller}: lam must be a number or a tensor of shape () or ({n},), got shape {tuple(lam.shape)}")
        _validate.refuse_meta(lam, "lam", caller)
        lam64 = lam.detach().to(a.device, torch.float64).expand(n)
        refuse_bad_values(
            ~((lam64 >= 0) & (lam64 <= 1)),  # NaN too
            lambda i: f"{caller}: lam must be in [0, 1]" + ("" if i is None else f", got lam[{i}] = {lam64[i].item()}"),
        )
    else:
        lam64 = torch.full((n,), _validate.real(lam, "lam", low=0, high=1, caller=caller), dtype=torch.float64, device=a.device)
    table = counts.to(a.device)
    return _mix_index_targets(a, b, _remix_weight(lam64, table[a], table[b], kappa, tau), num_classes)


# ---------------------------------------------------------------- the transforms


class _MixBase(nn.Module):
    """What MixUp and CutMix share: arguments, checks, the Beta draw and the labels."""

    _name = ""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: Optional[int] = None,
        class_counts: Any = None,
        remix: bool = False,
        kappa: float = 3.0,
        tau: float = 0.5,
    ) -> None:
        super().__init__()
        caller = self._name
        # high: lam is drawn from a float32 Beta(alpha, alpha), as torchvision's
        self.alpha = _validate.real(
            alpha, "alpha", low=0, low_inclusive=False, high=float(torch.finfo(torch.float32).max), caller=caller
        )
        self.remix = _validate.flag(remix, "remix", caller=caller)
        self.kappa, self.tau = _check_remix_args(kappa, tau, caller)
        counts = None if class_counts is None else _check_class_counts(class_counts, caller)
        if self.remix and counts is None:
            raise ValueError(f"{caller}: remix=True needs class_counts (the training samples per class)")
        self.num_classes = _resolve_num_classes(num_classes, counts, caller)
        self.class_counts = None if counts is None else tuple(counts.tolist())
        self._counts = None if counts is None else _CountsOnDevice(counts)

    def extra_repr(self) -> str:
        parts = [f"alpha={self.alpha:g}"]
        if self.num_classes is not None and self.class_counts is None:
            parts.append(f"num_classes={self.num_classes}")
        if self.class_counts is not None:
            c = self.class_counts
            parts.append(
                f"class_counts=[{', '.join(f'{v:g}' for v in c)}]" if len(c) <= 8 else f"class_counts=[{len(c)} classes]"
            )
        if self.remix:
            parts.append(f"remix=True, kappa={self.kappa:g}, tau={self.tau:g}")
        return ", ".join(parts)

    # -------------------------------------------------------------- randomness
    def _check_generator(self, generator: Any) -> None:
        if generator is None:
            return
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{self._name}: generator must be a torch.Generator or None, got {type(generator).__name__}")
        if generator.device.type != "cpu":
            raise ValueError(
                f"{self._name}: generator must be a CPU generator (lam and the box are a few numbers per batch, drawn "
                f"on the host so that a GPU batch never waits), got one on {generator.device}"
            )

    def _draw_lam(self, generator: Optional[torch.Generator]) -> float:
        """``lam ~ Beta(alpha, alpha)``: the draw torchvision's ``Beta(tensor([alpha]), tensor([alpha])).sample(())``
        makes (a float32 Dirichlet sample of (alpha, alpha), first component), from ``generator`` or torch's global
        CPU generator."""
        concentration = torch.full((1, 2), self.alpha, dtype=torch.float32)
        return float(torch._sample_dirichlet(concentration, generator=generator)[0, 0])

    # -------------------------------------------------------------- checks
    def _check_batch(self, images: Any, labels: Any) -> Tensor:
        """The labels, checked with the images before anything is drawn (a refused call leaves the RNG as it was)."""
        name = self._name
        if not isinstance(images, Tensor):
            raise TypeError(f"{name}: images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() != 4:
            raise ValueError(
                f"{name}: images must be a batch of shape (B, C, H, W), got shape {tuple(images.shape)}"
                + (" (one image: add the batch dimension, and mix whole batches)" if images.dim() == 3 else "")
            )
        if not (images.is_floating_point() or images.dtype == torch.uint8):
            raise TypeError(f"{name}: images must be uint8 or floating point, got dtype {images.dtype}")
        _validate.refuse_meta(images, "images", name)
        if not isinstance(labels, Tensor):
            raise TypeError(f"{name}: labels must be a torch.Tensor, got {type(labels).__name__}")
        _validate.same_device(name, "images", images, labels=labels)
        if labels.dim() not in (1, 2):
            raise ValueError(
                f"{name}: labels must be class indices of shape (B,) or probabilities of shape (B, num_classes), "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{name}: images hold {images.shape[0]} samples but labels {labels.shape[0]}")
        if labels.dim() == 2:
            if self.remix:
                raise ValueError(
                    f"{name}: remix=True needs class indices of shape (B,), got labels of shape {tuple(labels.shape)}"
                )
            if self.num_classes is not None and labels.shape[1] != self.num_classes:
                raise ValueError(f"{name}: labels have {labels.shape[1]} columns but num_classes is {self.num_classes}")
            return labels
        if self.num_classes is None:
            raise ValueError(f"{name}: num_classes (or class_counts) must be given when labels are class indices of shape (B,)")
        return _check_index_labels(labels, "labels", self.num_classes, name)

    def _targets(self, labels: Tensor, lam: float) -> Tensor:
        """The mixed labels: one-hot (float32) then mixed with ``lam``, or Remix's rebalanced ones."""
        if labels.dim() == 2:  # probabilities: mixed as given (torchvision's arithmetic)
            soft = labels if labels.is_floating_point() else labels.float()
            return soft.roll(1, 0).mul_(1.0 - lam).add_(soft.mul(lam))
        a = labels  # checked by _check_batch: int64 class indices
        b = a.roll(1, 0)
        if not self.remix:
            return _mix_index_targets(a, b, lam, self.num_classes)
        counts = self._counts.on(a.device)
        lam64 = torch.full(a.shape, lam, dtype=torch.float64, device=a.device)
        return _mix_index_targets(a, b, _remix_weight(lam64, counts[a], counts[b], self.kappa, self.tau), self.num_classes)

    _FORWARD_DOC = """Mix a batch: returns ``(mixed images, soft targets)``.

        Args:
            images (Tensor[B, C, H, W]): uint8 or floating point, contiguous or
                channels-last, CPU or CUDA. Not modified.
            labels (Tensor[B] or Tensor[B, num_classes]): integer class indices
                (in ``[0, num_classes)``; checked on the device, without a host
                sync on a GPU), or probabilities (not with ``remix``), on the
                images' device. Not modified.
            generator (torch.Generator, optional): a CPU generator for ``lam``
                (and the box); None uses torch's global CPU generator, as
                torchvision does.

        Returns:
            (Tensor[B, C, H, W], Tensor[B, num_classes]): the mixed images in
            the input's dtype and memory format, and float32 targets (a
            floating probability input keeps its dtype).

        Raises:
            TypeError: images or labels not tensors or of a wrong dtype, a
                generator that is not a torch.Generator.
            ValueError: images not (B, C, H, W), labels of another length or
                device, labels out of range, ``num_classes`` missing for class
                indices, probabilities with ``remix``, a CUDA generator.
        """


class MixUp(_MixBase):
    """MixUp (Zhang et al. 2018) of a batch, as ``torchvision.transforms.v2.MixUp``, with optional Remix labels.

    Each sample is blended with the one before it in the batch (the batch
    rolled by one; shuffle the batch, as torchvision requires):
    ``x_i' = lam * x_i + (1 - lam) * x_{i-1}``, one ``lam ~ Beta(alpha,
    alpha)`` per batch, and the labels become ``lam * one_hot(y_i) + (1 - lam)
    * one_hot(y_{i-1})``. Given the same ``lam`` (after ``torch.manual_seed``,
    or the same seed in ``generator``), images and targets equal
    torchvision's bit for bit. With ``remix=True`` the labels follow Remix
    (Chou et al. 2020; see :func:`bt.augment.functional.remix_targets`): a
    pair whose class counts differ by ``kappa`` or more, with the majority
    sample under ``tau`` of the blend, gets the minority's label.

    Differences from torchvision: uint8 images are accepted (blended in
    float32, rounded back to uint8; torchvision raises), labels are checked
    on the device, ``num_classes`` can come from ``class_counts``, and only
    plain tensors are taken (no tv_tensors or ``labels_getter``).

    Args:
        alpha (float): Beta(alpha, alpha) concentration, > 0. Default 1.
        num_classes (int, optional): classes of the one-hot targets; needed
            for class-index labels unless ``class_counts`` gives it.
        class_counts (Tensor[C] or sequence, optional): training samples per
            class (finite, > 0); needed with ``remix``.
        remix (bool): Remix's rebalanced labels. Default False.
        kappa (float): Remix's imbalance ratio, >= 1. Default 3.
        tau (float): Remix's share threshold, in [0, 1]. Default 0.5.

    Example:
        >>> import balancedtorch as bt, torch
        >>> mix = bt.augment.MixUp(alpha=1.0, class_counts=[500, 50, 5], remix=True)
        >>> images, labels = torch.rand(8, 3, 32, 32), torch.tensor([0, 0, 1, 2, 0, 1, 0, 0])
        >>> x, target = mix(images, labels, generator=torch.Generator().manual_seed(0))
        >>> x.shape, target.shape, bool(torch.allclose(target.sum(1), torch.ones(8)))
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 3]), True)
        >>> loss = bt.nn.CrossEntropyLoss()(torch.randn(8, 3), target)  # probability targets
    """

    _name = "MixUp"

    def sample_params(self, images: Tensor, generator: Optional[torch.Generator] = None) -> Dict[str, float]:
        """The random parameters ``forward`` would draw: ``{"lam": float}`` (for inspection and tests).

        Example:
            >>> import balancedtorch as bt, torch
            >>> 0.0 <= bt.augment.MixUp().sample_params(torch.rand(2, 3, 4, 4))["lam"] <= 1.0
            True
        """
        self._check_generator(generator)
        return {"lam": self._draw_lam(generator)}

    def forward(self, images: Tensor, labels: Tensor, generator: Optional[torch.Generator] = None):
        labels = self._check_batch(images, labels)
        self._check_generator(generator)
        lam = self._draw_lam(generator)
        return _blend(images, lam), self._targets(labels, lam)

    forward.__doc__ = (
        _MixBase._FORWARD_DOC
        + """
        Example:
            >>> import balancedtorch as bt, torch
            >>> x, target = bt.augment.MixUp(num_classes=10)(torch.rand(4, 3, 8, 8), torch.tensor([1, 2, 3, 4]))
            >>> target.shape
            torch.Size([4, 10])
        """
    )


class CutMix(_MixBase):
    """CutMix (Yun et al. 2019) of a batch, as ``torchvision.transforms.v2.CutMix``, with optional Remix labels.

    One ``lam ~ Beta(alpha, alpha)`` per batch sets a box of half-sides
    ``int(0.5 * sqrt(1 - lam) * W)`` and ``int(0.5 * sqrt(1 - lam) * H)``
    around a uniform random pixel (clipped to the image); inside it each
    sample gets the pixels of the one before it in the batch (the batch
    rolled by one). ``lam`` is then corrected to the share of the image the
    sample keeps, ``1 - box area / (H * W)``, and the labels become ``lam *
    one_hot(y_i) + (1 - lam) * one_hot(y_{i-1})``. Given the same random
    numbers (``torch.manual_seed``, or the same seed in ``generator``),
    images and targets equal torchvision's bit for bit. With ``remix=True``
    the labels follow Remix with the corrected ``lam`` (see
    :func:`bt.augment.functional.remix_targets`).

    Differences from torchvision: labels are checked on the device,
    ``num_classes`` can come from ``class_counts``, and only plain tensors
    are taken (no tv_tensors or ``labels_getter``).

    Args:
        alpha (float): Beta(alpha, alpha) concentration, > 0. Default 1.
        num_classes (int, optional): classes of the one-hot targets; needed
            for class-index labels unless ``class_counts`` gives it.
        class_counts (Tensor[C] or sequence, optional): training samples per
            class (finite, > 0); needed with ``remix``.
        remix (bool): Remix's rebalanced labels. Default False.
        kappa (float): Remix's imbalance ratio, >= 1. Default 3.
        tau (float): Remix's share threshold, in [0, 1]. Default 0.5.

    Example:
        >>> import balancedtorch as bt, torch
        >>> cut = bt.augment.CutMix(num_classes=10)
        >>> images, labels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([1, 2, 3, 4])
        >>> x, target = cut(images, labels, generator=torch.Generator().manual_seed(0))
        >>> x.dtype, target.shape
        (torch.uint8, torch.Size([4, 10]))
    """

    _name = "CutMix"

    def sample_params(self, images: Tensor, generator: Optional[torch.Generator] = None) -> Dict[str, Any]:
        """The random parameters ``forward`` would draw (for inspection and tests).

        Returns:
            dict: ``lam`` (the Beta draw), ``box`` ``(x1, y1, x2, y2)``
            (columns ``x1:x2`` and rows ``y1:y2`` are pasted), and
            ``lam_adjusted``, the share of the image each sample keeps.

        Example:
            >>> import balancedtorch as bt, torch
            >>> p = bt.augment.CutMix().sample_params(torch.rand(2, 3, 32, 32), torch.Generator().manual_seed(0))
            >>> sorted(p)
            ['box', 'lam', 'lam_adjusted']
        """
        self._check_generator(generator)
        if not isinstance(images, Tensor) or images.dim() < 2:
            raise ValueError(f"{self._name}: images must be a tensor (..., H, W), got {getattr(images, 'shape', images)!r}")
        H, W = images.shape[-2], images.shape[-1]
        lam = self._draw_lam(generator)
        cx = int(torch.randint(W, (1,), generator=generator))  # column first, then row: torchvision's order
        cy = int(torch.randint(H, (1,), generator=generator))
        half = 0.5 * math.sqrt(1.0 - lam)
        half_w, half_h = int(half * W), int(half * H)
        x1, y1 = max(cx - half_w, 0), max(cy - half_h, 0)
        x2, y2 = min(cx + half_w, W), min(cy + half_h, H)
        return {"lam": lam, "box": (x1, y1, x2, y2), "lam_adjusted": 1.0 - (x2 - x1) * (y2 - y1) / (W * H)}

    def forward(self, images: Tensor, labels: Tensor, generator: Optional[torch.Generator] = None):
        labels = self._check_batch(images, labels)
        self._check_generator(generator)
        if images.shape[2] == 0 or images.shape[3] == 0:
            raise ValueError(f"{self._name}: images must have H, W >= 1, got shape {tuple(images.shape)}")
        p = self.sample_params(images, generator)
        return _paste(images, p["box"]), self._targets(labels, p["lam_adjusted"])

    forward.__doc__ = (
        _MixBase._FORWARD_DOC
        + """
        Example:
            >>> import balancedtorch as bt, torch
            >>> x, target = bt.augment.CutMix(num_classes=10)(torch.rand(4, 3, 8, 8), torch.tensor([1, 2, 3, 4]))
            >>> target.shape
            torch.Size([4, 10])
        """
    )


# ---------------------------------------------------------------- image arithmetic


def _blend(images: Tensor, lam: float) -> Tensor:
    """``lam * x_i + (1 - lam) * x_{i-1}``, rounded as torchvision's ``x.roll(1, 0) * (1 - lam) + x * lam``.

    The partner's product is written straight into the output (no rolled
    copy of the batch); the products and the sum round as torchvision's.
    uint8 images are blended in float32 and rounded back.
    """
    x = images.float() if images.dtype == torch.uint8 else images
    if x.requires_grad and torch.is_grad_enabled():  # out= refuses autograd: the same arithmetic, differentiable
        return x.roll(1, 0) * (1.0 - lam) + x * lam
    out = torch.empty_like(x)
    if x.shape[0] > 0:
        torch.mul(x[:-1], 1.0 - lam, out=out[1:])
        torch.mul(x[-1:], 1.0 - lam, out=out[:1])
        out.add_(x.mul(lam))
    if images.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _paste(images: Tensor, box: Tuple[int, int, int, int]) -> Tensor:
    """Each sample with the box ``[y1:y2, x1:x2]`` of the sample before it (the batch rolled by one)."""
    x1, y1, x2, y2 = box
    out = images.clone()
    if images.shape[0] > 0:
        out[1:, :, y1:y2, x1:x2] = images[:-1, :, y1:y2, x1:x2]
        out[:1, :, y1:y2, x1:x2] = images[-1:, :, y1:y2, x1:x2]
    return out
