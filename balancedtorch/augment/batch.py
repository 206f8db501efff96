"""BatchAugment: per-sample random flip / affine / resized crop / colour jitter in one fused kernel."""

from __future__ import annotations

import math
import numbers
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .. import _validate
from .._labels import check_labels
from ._focus import check_crop_focus, focus_classes, focus_pixels
from .functional import _MASK_RANGES, _check_mask_fill, affine_color, affine_matrix, compose, flip_matrix, resolve_mask_fill

__all__ = ["BatchAugment"]

Range = Tuple[float, float]


def _is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _finite(value, name: str) -> float:
    """A single number, which must be finite (NaN or inf would reach the kernels as NaN pixels)."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _pair(value, name: str) -> Range:
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_num(v) for v in value)):
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    if not all(math.isfinite(v) for v in value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ValueError(f"{name} range must have min <= max, got {value!r}")
    return lo, hi


def _symmetric(value, name: str) -> Optional[Range]:
    """Degrees-like: d -> (-d, d); a pair as is; None when it cannot change anything."""
    if _is_num(value):
        if _finite(value, name) < 0:
            raise ValueError(f"{name} must be >= 0 when a single number, got {value}")
        r = (-float(value), float(value))
    else:
        r = _pair(value, name)
    return None if r == (0.0, 0.0) else r


def _jitter(value, name: str) -> Optional[Range]:
    """ColorJitter's brightness/contrast/saturation: b -> (max(0, 1 - b), 1 + b); None when off."""
    if _is_num(value):
        if _finite(value, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        r = (max(0.0, 1.0 - float(value)), 1.0 + float(value))
    else:
        r = _pair(value, name)
        if r[0] < 0:
            raise ValueError(f"{name} values must be >= 0, got {value!r}")
    return None if r == (1.0, 1.0) else r


def _hue(value) -> Optional[Range]:
    r = _symmetric(value, "hue")
    if r is not None and not (-0.5 <= r[0] and r[1] <= 0.5):
        raise ValueError(f"hue must be in [-0.5, 0.5], got {value!r}")
    return r


def _channel_values(values, name: str) -> Tuple[float, ...]:
    if _is_num(values):
        values = (values,)
    try:
        out = tuple(float(v) for v in (values.flatten().tolist() if isinstance(values, Tensor) else values))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers (one per channel), got {values!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {values!r}")
    return out


def _focus_place(pos: Tensor, size: Tensor, out: int, full: int) -> Tuple[Tensor, Tensor]:
    """(fits, start): whether a start in ``[0, full - size]`` puts ``pos`` on a read, and the best such start."""
    u = torch.arange(out, device=pos.device, dtype=torch.float32)
    step = size.float() / float(out)  # float32 division, then a float32 product: the kernels' arithmetic
    read = torch.minimum(torch.floor(u.view(1, -1) * step.view(-1, 1)), (size.float() - 1).view(-1, 1)).double()
    start = pos.view(-1, 1) - read
    fits = (start >= 0) & (start <= (full - size).view(-1, 1))
    cost = torch.where(fits, (u - out // 2).abs().double().view(1, -1), torch.full_like(start, math.inf))
    best = cost.argmin(1, keepdim=True)  # the first of equal costs: the smaller u
    return fits.any(1), start.gather(1, best).squeeze(1)


def _focus_start(pos: Tensor, size: Tensor, out: int, full: int) -> Tuple[Tensor, Tensor]:
    """Where a box of ``size`` pixels (per sample) starts, and its size, so that pixel ``pos`` is one its resize reads.

    A box of ``size`` pixels resized to ``out`` reads box pixel ``min(floor(u *
    (size / out)), size - 1)`` for output pixel ``u`` (torch's "nearest",
    float32, as the kernels compute it: the masks always, the images with
    ``interpolation="nearest"``). Shrunk (``size > out``), only every
    ``size / out``-th pixel is read, so the box centre may fall between two
    reads. Of the starts in ``[0, full - size]`` that put ``pos`` on a read,
    the one whose ``u`` is closest to the centre ``out // 2`` is taken (the
    smaller ``u`` on ties), and the size is kept. If none does (a pixel in the
    last ``ceil(size / out) - 1`` rows/columns of the image, or a box too
    close to the image size to move between two reads), the size (this
    dimension of this sample only) is reduced to the first of ``s1 = min(size,
    out * (full - pos))``, ``min(s1, full + 1 - ceil(s1 / out))`` and
    ``min(size, out)`` for which a start fits (checked with the same float32
    reads; the last reads every box pixel, so one always fits) and placed by
    the same rule. Hence, for any ``0 <= pos < full`` and ``1 <= size <=
    full``, the returned box lies inside ``[0, full)`` and its resize reads
    ``pos``. All candidates are computed at once (no host sync).

    Returns:
        (start, size), float64 tensors of ``pos``'s shape.
    """
    s1 = torch.minimum(size, out * (full - pos))
    s2 = torch.minimum(s1, full + 1 - torch.ceil(s1 / out))
    s3 = torch.clamp_max(size, float(out))
    sizes = torch.stack([size, s1, s2, s3])  # (4, B): each candidate checked with the kernels' reads
    fits, starts = _focus_place(pos.repeat(4), sizes.reshape(-1), out, full)
    fits, starts = fits.view(4, -1), starts.view(4, -1)
    # min(size, out) reads every box pixel, so it fits by construction; should float32 ever say otherwise,
    # the box centred on the pixel (clamped) still holds it
    centred = torch.minimum((pos - torch.floor(s3 / 2)).clamp_min(0), full - s3)
    starts[3] = torch.where(fits[3], starts[3], centred)
    fits[3] = True
    first = fits.long().argmax(0, keepdim=True)  # the first (largest) candidate that fits
    return starts.gather(0, first).squeeze(0), sizes.gather(0, first).squeeze(0)


class BatchAugment(nn.Module):
    """Per-sample random augmentation of a batch, fused into one kernel (CPU and CUDA).

    The chain, per sample: RandomResizedCrop (``crop``) -> RandomHorizontalFlip
    (``hflip``) -> RandomVerticalFlip (``vflip``) -> RandomAffine (``rotation``,
    ``translate``, ``scale``, ``shear``) -> ColorJitter in the fixed order
    brightness, contrast, saturation, hue -> Normalize (``mean``, ``std``).
    Parameters are drawn per sample with torchvision's meanings and ranges:
    ``rotation`` d -> U(-d, d) degrees or a (min, max) pair; ``translate``
    (fx, fy) -> round(U(-fx W, fx W)) pixels; ``scale`` (min, max) or a number
    s -> (1 - s, 1 + s); ``shear`` s -> x-shear U(-s, s), a pair -> x-shear
    range, four numbers -> x and y ranges; ``brightness``/``contrast``/
    ``saturation`` b -> U(max(0, 1 - b), 1 + b) or a pair; ``hue`` h ->
    U(-h, h) within [-0.5, 0.5]; ``crop`` an output size (int or (h, w)) with
    torchvision's RandomResizedCrop sampling (``crop_scale``, ``crop_ratio``,
    10 tries then a centre crop; the crop is resized first and the flips and
    affine act on the resized crop, as in torchvision's pipeline, with no
    antialias). Every transform is off by default.

    ``p`` is the probability that a sample is augmented at all; ``class_p``
    ({class: probability}) overrides it per class of ``labels``, so rare
    classes can be augmented more and common ones less or never. A label that
    is not a key of ``class_p`` (a class left out, -1 for an unlabelled
    sample, any id at all) uses ``p``; ``labels`` are integers (any dtype,
    any value) of shape (B,). Every range and number must be finite (NaN
    or inf raises a ValueError naming the argument). Samples that
    are not augmented are only converted (resized to the crop size when
    ``crop`` is set) and normalised. ``same_on_batch`` draws one parameter set
    for the whole batch. Deterministic given ``generator`` (on the images'
    device).

    Segmentation masks passed to ``forward`` are warped with the same
    matrices and crops (nearest). Pixels that fall outside the image read
    ``fill`` in the images (default 0, in the input's scale: 0-255 for uint8;
    None: bilinear taps outside read 0, as torchvision's ``fill=None``) and
    ``mask_fill`` in the masks. ``mask_fill=None`` (default) writes the
    segmentation "ignore" (void) label 255 into uint8, int32 and int64 masks,
    so padding is never silently labelled as class 0: give the loss the same
    value (``bt.nn.CrossEntropyLoss(ignore_index=255)``, as torchvision's
    segmentation reference), or pass ``mask_fill=-100`` with int64 masks to
    match torch's default ``ignore_index``. Bool masks have no room for an
    ignore label and get False. A ``mask_fill`` outside the masks' dtype
    (256 or -1 for uint8) raises a ValueError naming it. ``crop_scale`` and
    ``crop_ratio`` are RandomResizedCrop's ``scale`` and ``ratio`` (used
    with ``crop``).

    ``crop_focus`` centres crops on rare pixels (nnU-Net's foreground
    oversampling, Cityscapes' class-uniform sampling): each augmented sample
    is focused with probability ``crop_focus_p`` (default 0.33), and then its
    crop box (drawn as usual: only its position changes, except in the edge
    case below; it stays inside the image: crops never pad, as
    RandomResizedCrop) is moved so that a pixel of a focus
    class present in its mask is one the resize to ``crop`` reads, at the
    output pixel nearest the centre (``crop // 2``) that allows. A box shrunk
    by the resize reads only every ``box / crop``-th pixel (torch's nearest,
    which masks always use), so the box centre may fall between two reads;
    the placement avoids that. Where no position of the drawn box inside the
    image reads the pixel (a pixel in the last ``ceil(box / crop) - 1`` rows
    or columns of the image, or a box too close to the image size to move
    between two reads), that sample's box is made smaller in that dimension
    only, to the largest of a few candidate sizes that reads it (at most
    ``crop * (H - row)`` rows, resp. ``crop * (W - col)`` columns; at worst
    ``crop`` pixels, which reads every box pixel), and placed by the same
    rule. Guarantee: with ``crop`` and no rotation, translation, zoom or
    shear, every focused sample's output mask holds the focused pixel (hence
    its class), for any image and box size, pixels on every edge and corner
    included, for both ``interpolation`` settings (masks are always resized
    with nearest; with ``"nearest"`` the image pixel is read at the same
    output pixel) and with flips. A rotation, translation, zoom or shear after
    the crop may still move the pixel out. Without ``crop``, the translation is set so that
    the pixel lands on the output's centre pixel (``H // 2``, ``W // 2``)
    under the sample's own flips, rotation, zoom and shear; this translation
    replaces the drawn one and is not bounded by ``translate`` (padding gets
    ``fill``/``mask_fill``). The class is drawn among the focus classes
    present in the sample's mask: for a dict ``{class: weight}`` with
    probability proportional to the weights (relative, >= 0, any class of
    the masks' dtype except the fill label); for ``"rare"`` the focus classes
    are the labels 0-255 present in the batch except the fill label and the
    batch's most frequent label (the background; the smallest label on
    ties), each weighted by 1 / (its pixels in the whole batch); for bool
    masks, False and True (so the rarer of the two). The pixel is
    uniform among that class's pixels in the sample. A focused sample without
    any focus class keeps its random crop; non-augmented samples (``p``,
    ``class_p``) are never focused. With ``same_on_batch`` the focus draws
    are shared too, but each sample is centred on a pixel of its own mask.
    Without ``crop`` the output's centre pixel holds the focused pixel under
    any flips, rotation, zoom and shear (its class is in every focused
    output). Needs ``masks``; one kernel pass counts the classes, a second
    finds the pixel, with no loop over samples (CPU and CUDA agree).

    Args:
        hflip, vflip (float): flip probabilities. rotation, translate,
            scale, shear, crop, brightness, contrast, saturation, hue: see
            above. mean, std (sequence of C floats, optional): Normalize
            after scaling to [0, 1]. out_dtype: float32 (default), float16
            or bfloat16. interpolation: "bilinear" (default) or "nearest".
            p (float): probability of augmenting a sample (default 1).
            same_on_batch (bool): one parameter set for the batch.
            class_p (dict, optional): {class: probability}, overrides ``p``.
            crop_focus (dict or "rare", optional): see above. crop_focus_p
            (float): probability of focusing a sample (default 0.33).
            crop_scale, crop_ratio: (min, max), keyword-only. fill (float,
            optional), mask_fill (int, optional): keyword-only, see above.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> images_uint8 = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=g)
        >>> labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])       # class 1 is rare
        >>> aug = bt.augment.BatchAugment(hflip=0.5, rotation=30, translate=(0.1, 0.1), scale=(0.8, 1.2),
        ...                               shear=10, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
        ...                               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        ...                               class_p={1: 1.0, 0: 0.2})
        >>> x = aug(images_uint8, labels=labels, generator=g)     # on a GPU: images_uint8.cuda(), labels.cuda()
        >>> x.shape, x.dtype                                      # normalised float32
        (torch.Size([8, 3, 64, 64]), torch.float32)
        >>> masks_uint8 = torch.randint(0, 8, (8, 64, 64), dtype=torch.uint8, generator=g)
        >>> seg = bt.augment.BatchAugment(hflip=0.5, rotation=15, crop=32)
        >>> x, m = seg(images_uint8, masks=masks_uint8, generator=g)   # m: 255 where the warp padded
        >>> loss = bt.nn.CrossEntropyLoss(ignore_index=255)(torch.randn(8, 8, 32, 32), m.long())
        >>> focus = bt.augment.BatchAugment(hflip=0.5, crop=32, crop_scale=(0.25, 1.0), crop_focus={6: 1.0, 7: 1.0})
        >>> x, m = focus(images_uint8, masks=masks_uint8, generator=g)  # ~1/3 of crops centred on class 6 or 7
        >>> x.shape, m.shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 32, 32]))
    """

    def __init__(
        self,
        hflip: float = 0.0,
        vflip: float = 0.0,
        rotation=0.0,
        translate=(0.0, 0.0),
        scale=(1.0, 1.0),
        shear=0.0,
        crop=None,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        out_dtype: torch.dtype = torch.float32,
        interpolation: str = "bilinear",
        p: float = 1.0,
        same_on_batch: bool = False,
        class_p: Optional[Dict[int, float]] = None,
        crop_focus: Union[None, str, Dict[int, float]] = None,
        crop_focus_p: float = 0.33,
        *,
        crop_scale: Range = (0.08, 1.0),
        crop_ratio: Range = (3.0 / 4.0, 4.0 / 3.0),
        fill: Optional[float] = 0.0,
        mask_fill: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.hflip = _validate.real(hflip, "hflip", low=0, high=1)
        self.vflip = _validate.real(vflip, "vflip", low=0, high=1)
        self.rotation = _symmetric(rotation, "rotation")
        if _is_num(translate):
            translate = (translate, translate)
        tx, ty = _pair(translate, "translate")
        if not (0 <= tx <= 1 and 0 <= ty <= 1):
            raise ValueError(f"translate values must be in [0, 1], got {translate!r}")
        self.translate = (tx, ty)
        if _is_num(scale):
            if not 0 <= scale < 1:
                raise ValueError(f"scale as a single number s means (1 - s, 1 + s) and must be in [0, 1), got {scale}")
            scale = (1 - scale, 1 + scale)
        self.scale = _pair(scale, "scale")
        if self.scale[0] <= 0:
            raise ValueError(f"scale values must be > 0, got {scale!r}")
        if _is_num(shear) or (isinstance(shear, (tuple, list)) and len(shear) == 2):
            self.shear = (_symmetric(shear, "shear"), None)
        elif isinstance(shear, (tuple, list)) and len(shear) == 4:
            self.shear = (_symmetric(tuple(shear[:2]), "shear"), _symmetric(tuple(shear[2:]), "shear"))
        else:
            raise ValueError(f"shear must be a number, a (min, max) pair or four numbers, got {shear!r}")
        if crop is not None:
            if isinstance(crop, numbers.Integral) and not isinstance(crop, bool):
                crop = (int(crop), int(crop))
            if not (
                isinstance(crop, (tuple, list))
                and len(crop) == 2
                and all(isinstance(c, numbers.Integral) and c > 0 for c in crop)
            ):
                raise ValueError(f"crop must be None, a positive int or an (h, w) pair, got {crop!r}")
            crop = (int(crop[0]), int(crop[1]))
        self.crop = crop
        self.crop_scale = _pair(crop_scale, "crop_scale")
        self.crop_ratio = _pair(crop_ratio, "crop_ratio")
        if self.crop_scale[0] <= 0 or self.crop_ratio[0] <= 0:
            raise ValueError("crop_scale and crop_ratio must be positive")
        self.brightness = _jitter(brightness, "brightness")
        self.contrast = _jitter(contrast, "contrast")
        self.saturation = _jitter(saturation, "saturation")
        self.hue = _hue(hue)
        self.mean = None if mean is None else _channel_values(mean, "mean")
        self.std = None if std is None else _channel_values(std, "std")
        if self.std is not None and any(s == 0 for s in self.std):
            raise ValueError(f"std must not contain zeros, got {std!r}")
        if out_dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"out_dtype must be float32, float16 or bfloat16, got {out_dtype}")
        self.out_dtype = out_dtype
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.interpolation = interpolation
        self.p = _validate.real(p, "p", low=0, high=1)
        self.same_on_batch = bool(same_on_batch)
        if class_p is not None:
            if not isinstance(class_p, dict):
                raise ValueError(f"class_p must be a dict {{class: probability}}, got {class_p!r}")
            for c, q in class_p.items():
                _validate.integer(c, "class_p key", low=0)  # a class index
                _validate.real(q, f"class_p[{c}]", low=0, high=1)
            class_p = {int(c): float(q) for c, q in class_p.items()}  # a copy: later edits bypass no check
        self.class_p = class_p
        self.crop_focus = check_crop_focus(crop_focus)
        self.crop_focus_p = _validate.real(crop_focus_p, "crop_focus_p", low=0, high=1)
        if fill is not None and not _is_num(fill):
            raise ValueError(f"fill must be None or a number, got {fill!r}")
        self.fill = None if fill is None else _finite(fill, "fill")
        # None: the "ignore" label for the masks' dtype, resolved per call
        # (255, False for bool); a value is checked against the dtype per call
        self.mask_fill = _check_mask_fill(mask_fill)

    def _label_p(self, labels: Tensor) -> Tensor:
        """Per-sample probability: ``class_p[label]`` where listed, ``p`` for any other label.

        A sorted-key lookup, so memory does not grow with the label values.
        """
        keys = torch.tensor(sorted(self.class_p), dtype=torch.long, device=labels.device)
        values = torch.tensor([self.class_p[k] for k in keys.tolist()], dtype=torch.float64, device=labels.device)
        pos = torch.searchsorted(keys, labels).clamp_(max=keys.numel() - 1)
        listed = keys[pos] == labels
        return torch.where(listed, values[pos], torch.full_like(values[pos], self.p))

    # (attribute, value when the argument is left at its default)
    _REPR_DEFAULTS = (
        ("hflip", 0.0),
        ("vflip", 0.0),
        ("rotation", None),
        ("translate", (0.0, 0.0)),
        ("scale", (1.0, 1.0)),
        ("shear", (None, None)),
        ("crop", None),
        ("brightness", None),
        ("contrast", None),
        ("saturation", None),
        ("hue", None),
        ("mean", None),
        ("std", None),
        ("out_dtype", torch.float32),
        ("interpolation", "bilinear"),
        ("p", 1.0),
        ("same_on_batch", False),
        ("class_p", None),
        ("crop_focus", None),
        ("crop_focus_p", 0.33),
        ("crop_scale", (0.08, 1.0)),
        ("crop_ratio", (3.0 / 4.0, 4.0 / 3.0)),
        ("fill", 0.0),
        ("mask_fill", None),
    )

    def extra_repr(self) -> str:
        """Every argument that differs from its default, as the module holds it (ranges as (min, max))."""
        parts = []
        for name, default in self._REPR_DEFAULTS:
            value = getattr(self, name)
            if value == default:
                continue
            if name == "shear":  # (x range, y range or None) -> the 2 or 4 numbers of the argument
                x, y = value
                value = (x or (0.0, 0.0)) + (() if y is None else y)
            parts.append(f"{name}={value!r}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ parameters
    def _uniform(self, r: Optional[Range], n: int, gen, device, default: float) -> Tensor:
        if r is None:
            return torch.full((n,), default, dtype=torch.float64, device=device)
        u = torch.rand(n, generator=gen, device=device, dtype=torch.float64)
        return r[0] + (r[1] - r[0]) * u

    def _crop_boxes(self, n: int, H: int, W: int, gen, device) -> Tuple[Tensor, ...]:
        """torchvision RandomResizedCrop.get_params, vectorised over samples (first valid of 10 tries)."""
        area = H * W
        tries = 10
        target = area * self._uniform(self.crop_scale, n * tries, gen, device, 1.0).view(n, tries)
        lo, hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        aspect = torch.exp(self._uniform((lo, hi), n * tries, gen, device, 0.0)).view(n, tries)
        w = torch.round(torch.sqrt(target * aspect))
        h = torch.round(torch.sqrt(target / aspect))
        ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
        u_top = torch.rand((n, tries), generator=gen, device=device, dtype=torch.float64)
        u_left = torch.rand((n, tries), generator=gen, device=device, dtype=torch.float64)
        top = torch.floor(u_top * (H - h + 1)).clamp_min(0)
        left = torch.floor(u_left * (W - w + 1)).clamp_min(0)
        first = torch.where(ok.any(1), ok.double().argmax(1), torch.full((n,), -1, device=device, dtype=torch.long))
        # fallback: the centre crop at the closest allowed aspect ratio
        ratio = W / H
        if ratio < self.crop_ratio[0]:
            fw, fh = W, int(round(W / self.crop_ratio[0]))
        elif ratio > self.crop_ratio[1]:
            fh, fw = H, int(round(H * self.crop_ratio[1]))
        else:
            fw, fh = W, H
        pick = first.clamp_min(0).unsqueeze(1)
        valid = first >= 0
        sel = lambda t, fb: torch.where(
            valid, t.gather(1, pick).squeeze(1), torch.full((n,), float(fb), dtype=torch.float64, device=device)
        )  # noqa: E731
        return sel(top, (H - fh) // 2), sel(left, (W - fw) // 2), sel(h, fh), sel(w, fw)

    def sample_params(
        self,
        images: Tensor,
        labels: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
        masks: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """The per-sample parameters ``forward`` would use (for inspection and tests).

        Returns a dict: ``theta`` (B, 2, 3) float32, ``crop`` (B, 4) float32
        boxes (top, left, height, width) or None (a ``crop_focus`` box may
        be smaller than drawn, see the class docstring), ``color`` (B, 4) or None,
        ``applied`` (B,) bool, and ``focus`` (B, 2) int64, the (row, col) of
        the pixel each ``crop_focus`` sample is centred on, -1 for the others
        (None without ``crop_focus``). ``masks`` are needed with ``crop_focus``.
        """
        B, C, H, W = images.shape
        device = images.device
        n = 1 if self.same_on_batch else B
        gen = generator
        oh, ow = self.crop if self.crop is not None else (H, W)
        parts = []
        boxes = None
        if self.crop is not None:
            boxes = torch.stack(self._crop_boxes(n, H, W, gen, device), 1)
        if self.hflip > 0 or self.vflip > 0:
            hf = torch.rand(n, generator=gen, device=device) < self.hflip
            vf = torch.rand(n, generator=gen, device=device) < self.vflip
            parts.append(flip_matrix(hf, vf))
        affine = (
            self.rotation is not None or self.translate != (0.0, 0.0) or self.scale != (1.0, 1.0) or self.shear != (None, None)
        )
        if affine:
            angle = self._uniform(self.rotation, n, gen, device, 0.0)
            max_dx, max_dy = self.translate[0] * ow, self.translate[1] * oh
            tx = torch.round(self._uniform((-max_dx, max_dx), n, gen, device, 0.0))
            ty = torch.round(self._uniform((-max_dy, max_dy), n, gen, device, 0.0))
            sc = self._uniform(self.scale if self.scale != (1.0, 1.0) else None, n, gen, device, 1.0)
            shx = self._uniform(self.shear[0], n, gen, device, 0.0)
            shy = self._uniform(self.shear[1], n, gen, device, 0.0)
            parts.append(affine_matrix(angle, (tx, ty), sc, (shx, shy)))
        identity = torch.eye(2, 3, dtype=torch.float64, device=device).expand(n, 2, 3)
        theta = compose(*parts).to(device) if parts else identity.clone()
        colour = None
        if any(r is not None for r in (self.brightness, self.contrast, self.saturation, self.hue)):
            if C == 1 and (self.saturation is not None or self.hue is not None):
                raise ValueError("BatchAugment: saturation and hue need 3-channel images, got C = 1")
            colour = torch.stack(
                [
                    self._uniform(self.brightness, n, gen, device, 1.0),
                    self._uniform(self.contrast, n, gen, device, 1.0),
                    self._uniform(self.saturation, n, gen, device, 1.0),
                    self._uniform(self.hue, n, gen, device, 0.0),
                ],
                1,
            )
        # which samples are augmented at all
        if self.class_p is not None:
            if labels is None:
                raise ValueError("BatchAugment: class_p needs the batch's labels (call aug(images, labels=labels))")
            if isinstance(labels, Tensor) and labels.device.type == "meta" and device.type != "meta":
                raise ValueError(
                    f"BatchAugment: labels is on {labels.device} but the images are on {device}: meta tensors hold no values"
                )
            labels = check_labels(labels, caller="BatchAugment", allow_negative=True, allow_empty=True, device=device)
            if labels.shape != (B,):
                raise ValueError(f"BatchAugment: labels must have shape ({B},), got {tuple(labels.shape)}")
            prob = self._label_p(labels)
            applied = torch.rand(B, generator=gen, device=device, dtype=torch.float64) < prob
        else:
            applied = torch.rand(n, generator=gen, device=device, dtype=torch.float64) < self.p
        if n == 1:
            theta = theta.expand(B, 2, 3)
            boxes = None if boxes is None else boxes.expand(B, 4)
            colour = None if colour is None else colour.expand(B, 4)
            applied = applied.expand(B)
        theta = torch.where(applied.view(B, 1, 1), theta, identity[:1].expand(B, 2, 3))
        if boxes is not None:  # not augmented: the whole image resized to the crop size
            whole = torch.tensor([0.0, 0.0, float(H), float(W)], dtype=torch.float64, device=device)
            boxes = torch.where(applied.view(B, 1), boxes, whole)
        focus = None
        if self.crop_focus is not None:  # drawn last: every other parameter stays as drawn without it
            focus, theta, boxes = self._focus(masks, applied, theta, boxes, n, B, H, W, gen, device)
        if boxes is not None:
            boxes = boxes.float().contiguous()
        if colour is not None:
            neutral = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64, device=device)
            colour = torch.where(applied.view(B, 1), colour, neutral)
        return {
            "theta": theta.float().contiguous(),
            "crop": boxes,
            "color": None if colour is None else colour.contiguous(),
            "applied": applied,
            "focus": focus,
        }

    def _focus(self, masks, applied, theta, boxes, n, B, H, W, gen, device):
        """Re-centre the crop box (or, without a crop, the translation) of the focused samples on their pixel."""
        if masks is None:
            raise ValueError("BatchAugment: crop_focus needs the batch's masks (call aug(images, masks=masks))")
        if not isinstance(masks, Tensor):
            raise TypeError(f"BatchAugment: masks must be a torch.Tensor, got {type(masks).__name__}")
        m = masks.squeeze(1) if masks.dim() == 4 and masks.shape[1] == 1 else masks
        if m.dim() != 3 or m.shape[0] != B or tuple(m.shape[1:]) != (H, W):
            raise ValueError(f"masks must have shape (B, H, W) or (B, 1, H, W) = ({B}, {H}, {W}), got {tuple(masks.shape)}")
        if m.dtype not in _MASK_RANGES:
            raise ValueError(f"masks must be uint8, int32, int64 or bool, got {m.dtype}")
        if m.device.type == "meta" and device.type != "meta":
            raise ValueError(
                f"BatchAugment: masks is on {m.device} but the images are on {device}: meta tensors hold no values to focus on"
            )
        classes, weights = focus_classes(self.crop_focus, m.dtype, resolve_mask_fill(self.mask_fill, m.dtype), device)
        coin = torch.rand(n, generator=gen, device=device, dtype=torch.float64)
        u = torch.rand((n, 2), generator=gen, device=device, dtype=torch.float64)
        if n == 1:  # same_on_batch: one draw, applied to each sample's own mask
            coin, u = coin.expand(B), u.expand(B, 2).contiguous()
        active = applied & (coin < self.crop_focus_p)
        if self.crop_focus_p > 0:
            index, _ = focus_pixels(m.to(device), classes, weights, u, active)
        else:  # nothing to focus: skip the counting pass
            index = torch.full((B,), -1, dtype=torch.long, device=device)
        focused = index >= 0
        row = index.div(W, rounding_mode="floor").double()
        col = index.remainder(W).double()
        if boxes is not None:
            # the drawn box size, moved so that the pixel is one the resize samples (see _focus_start)
            top, left, h, w = boxes.unbind(1)
            oh, ow = self.crop
            ftop, fh = _focus_start(row, h, oh, H)
            fleft, fw = _focus_start(col, w, ow, W)
            boxes = torch.where(focused.view(B, 1), torch.stack([ftop, fleft, fh, fw], 1), boxes)
        else:
            # the translation that puts the pixel's centre on the centre pixel (H // 2, W // 2) of
            # the output, with the sample's own rotation/zoom/shear/flips: theta maps that output
            # pixel's centred coordinates c onto the pixel's, so the last column is p - A c
            c = torch.tensor([W // 2 + 0.5 - W / 2, H // 2 + 0.5 - H / 2], dtype=torch.float64, device=device)
            p = torch.stack([col + 0.5 - W / 2, row + 0.5 - H / 2], 1)
            shift = p - theta[:, :, :2] @ c
            theta = torch.cat([theta[:, :, :2], torch.where(focused.view(B, 1), shift, theta[:, :, 2]).unsqueeze(2)], 2)
        focus = torch.where(focused.view(B, 1), torch.stack([row, col], 1).long(), torch.full_like(index, -1).view(B, 1))
        return focus, theta, boxes

    def forward(
        self,
        images: Tensor,
        masks: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ):
        """Augment a batch: draw per-sample parameters, then one fused warp + colour + normalise pass.

        Args:
            images (Tensor[B, C, H, W]): C = 1 or 3; uint8 (scaled to
                [0, 1]), float16, bfloat16 or float32 in [0, 1]; contiguous or
                channels-last; CPU or CUDA. Not modified.
            masks (Tensor[B, H, W] or Tensor[B, 1, H, W], optional): uint8,
                int32, int64 or bool label masks of the images' H and W,
                warped with the same parameters (nearest); padding gets
                ``mask_fill`` (default: 255, the ignore label; False for bool).
            labels (Tensor[B], optional): per-sample integer class labels,
                needed when ``class_p`` is set (ignored otherwise).
                ``masks`` are needed when ``crop_focus`` is set.
            generator (torch.Generator, optional): on the images' device; the
                same seed gives the same output on that device.

        Returns:
            Tensor[B, C, H_out, W_out] of ``out_dtype`` (``H_out, W_out`` the
            ``crop`` size, else ``H, W``), in the images' memory format; with
            ``masks``, the pair ``(images, masks)``, the masks of shape
            ``[B, H_out, W_out]`` (or ``[B, 1, H_out, W_out]``) and their dtype.

        Raises:
            ValueError: wrong shapes or dtypes, ``labels`` missing with
                ``class_p``, ``masks`` missing with ``crop_focus`` or a
                ``crop_focus`` class outside the masks' dtype or equal to
                the fill label, a generator on another device,
                ``mask_fill`` outside the masks' dtype.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> aug = bt.augment.BatchAugment(hflip=0.5, rotation=20, crop=224, mean=(0.5,) * 3, std=(0.25,) * 3)
            >>> images = torch.randint(0, 256, (8, 3, 256, 320), dtype=torch.uint8)
            >>> masks = torch.randint(0, 19, (8, 256, 320), dtype=torch.uint8)
            >>> x, m = aug(images, masks=masks, generator=torch.Generator().manual_seed(0))
            >>> x.shape, x.dtype, m.shape, m.dtype
            (torch.Size([8, 3, 224, 224]), torch.float32, torch.Size([8, 224, 224]), torch.uint8)
        """
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise ValueError(
                f"BatchAugment: images must be a tensor of shape (B, C, H, W), got {tuple(getattr(images, 'shape', ()))}"
            )
        if images.shape[1] not in (1, 3):
            raise ValueError(f"BatchAugment: images must have C = 1 or 3 channels, got C = {images.shape[1]}")
        if images.shape[2] == 0 or images.shape[3] == 0:
            raise ValueError(f"BatchAugment: images must have H, W >= 1, got shape {tuple(images.shape)}")
        if generator is not None and generator.device.type != images.device.type:
            raise ValueError(f"BatchAugment: generator is on {generator.device} but the images are on {images.device}")
        if self.crop_focus is not None and masks is None:
            raise ValueError("BatchAugment: crop_focus needs the batch's masks (call aug(images, masks=masks))")
        if isinstance(masks, Tensor) and masks.device != images.device:  # before crop_focus reads them
            raise ValueError(
                f"BatchAugment: masks is on {masks.device} but the images are on {images.device}: move masks to {images.device}"
            )
        params = self.sample_params(images, labels, generator, masks=masks)
        return affine_color(
            images,
            params["theta"],
            params["color"],
            crop=params["crop"],
            size=self.crop,
            interpolation=self.interpolation,
            fill=self.fill,
            mean=self.mean,
            std=self.std,
            out_dtype=self.out_dtype,
            masks=masks,
            mask_fill=self.mask_fill,
        )
