"""Explicit-parameter batched augmentation: ``affine_color`` and the matrices it takes.

Coordinates follow torchvision: ``theta`` (B, 2, 3) maps an output pixel's
centred coordinates ``(x + 0.5 - W_out / 2, y + 0.5 - H_out / 2, 1)`` to the
input's centred coordinates, exactly the inverse matrix
``torchvision.transforms.v2.functional.affine`` builds. Matrices compose with
:func:`compose` (the first argument is the transform applied first to the image).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._constants import INTERPOLATIONS
from .mix import remix_targets  # noqa: F401 (public here: bt.augment.functional.remix_targets)

__all__ = [
    "affine_color",
    "affine_matrix",
    "crop_matrix",
    "flip_matrix",
    "compose",
    "identity_matrix",
    "resolve_mask_fill",
    "remix_targets",
]

_INTERPOLATION = INTERPOLATIONS
_OUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _interp_code(interpolation) -> int:
    name = getattr(interpolation, "value", interpolation)  # torchvision's InterpolationMode
    if name not in _INTERPOLATION:
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    return _INTERPOLATION[name]


def _size(size, H: int, W: int) -> Tuple[int, int]:
    if size is None:
        return H, W
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, numbers.Integral) and s > 0 for s in size)):
        raise ValueError(f"size must be None, a positive int or a (height, width) pair, got {size!r}")
    if size[0] >= _MAX_SIDE or size[1] >= _MAX_SIDE:
        raise ValueError(f"size must be below 2^24 = {_MAX_SIDE} per side (pixel coordinates are float32), got {tuple(size)}")
    return int(size[0]), int(size[1])


# Pixel coordinates are float32, as torchvision's: exact below 2^24 per side.
_MAX_SIDE = 1 << 24


def _check_sides(name: str, H: int, W: int) -> None:
    if H >= _MAX_SIDE or W >= _MAX_SIDE:
        raise ValueError(
            f"{name} height and width must be below 2^24 = {_MAX_SIDE} (pixel coordinates are float32), got H = {H}, W = {W}"
        )


def _channel_vector(values, C: int, name: str, device) -> Optional[Tensor]:
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(C)
    if t.numel() != C:
        raise ValueError(f"{name} must have one value per channel (C={C}), got {t.numel()} values")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t.contiguous()


# The "ignore" label padding gets when no mask_fill is given: the segmentation
# void label of Cityscapes/VOC/ADE20K and torchvision's segmentation reference
# (pad fill=255, cross_entropy(ignore_index=255)); bool masks have no room for
# one and get False.
IGNORE_MASK_FILL = 255

_MASK_RANGES = {
    torch.uint8: (0, 255),
    torch.int32: (-(2**31), 2**31 - 1),
    torch.int64: (-(2**63), 2**63 - 1),
    torch.bool: (0, 1),
}


def _check_mask_fill(mask_fill) -> Optional[int]:
    """``mask_fill`` as given by the user: None or an integer (a bool counts as 0/1), checked early."""
    if mask_fill is None:
        return None
    if isinstance(mask_fill, bool):
        return int(mask_fill)
    if (
        isinstance(mask_fill, Tensor)
        and mask_fill.numel() == 1
        and not mask_fill.is_floating_point()
        and not mask_fill.is_complex()
    ):
        mask_fill = mask_fill.item()
    if not isinstance(mask_fill, numbers.Integral):
        raise ValueError(f"mask_fill must be None or an integer label, got {mask_fill!r}")
    lo, hi = _MASK_RANGES[torch.int64]
    if not lo <= int(mask_fill) <= hi:
        raise ValueError(f"mask_fill must fit in int64, got {mask_fill!r}")
    return int(mask_fill)


def resolve_mask_fill(mask_fill, dtype: torch.dtype) -> int:
    """The label written where a warped mask reads outside the input, for masks of ``dtype``.

    None: 255 (the segmentation "ignore"/void label) for uint8, int32 and int64
    masks, False for bool masks. A value outside ``dtype``'s range raises a
    ValueError (a cast would wrap it: 256 -> 0 would label the padding as
    class 0).
    """
    mask_fill = _check_mask_fill(mask_fill)
    if mask_fill is None:
        return 0 if dtype == torch.bool else IGNORE_MASK_FILL
    lo, hi = _MASK_RANGES[dtype]
    if not lo <= mask_fill <= hi:
        raise ValueError(f"mask_fill = {mask_fill} is outside the range of the masks' dtype {dtype} ({lo} to {hi})")
    return mask_fill


def affine_color(
    images: Tensor,
    theta: Tensor,
    color: Optional[Tensor] = None,
    *,
    crop: Optional[Tensor] = None,
    size: Union[None, int, Tuple[int, int]] = None,
    interpolation: str = "bilinear",
    fill: Optional[float] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    out_dtype: torch.dtype = torch.float32,
    masks: Optional[Tensor] = None,
    mask_fill: Optional[int] = None,
):
    """Warp, colour-jitter and normalise a batch in one pass (CPU and CUDA).

    Per sample b: the affine warp ``theta[b]`` (flip, rotation, zoom, shear,
    translation, resized crop; bilinear or nearest; outside the image reads
    ``fill``), then ``color[b] = (brightness, contrast, saturation, hue)``
    factors in this fixed order with torchvision's definitions (identity:
    ``(1, 1, 1, 0)``; contrast blends with the mean grey of the warped image
    after brightness), then ``(x - mean) / std``.

    Args:
        images (Tensor[B, C, H, W]): uint8 (scaled to [0, 1]), float16,
            bfloat16 or float32; C = 1 or 3; contiguous or channels_last;
            H and W below 2^24 (pixel coordinates are float32, as
            torchvision's), any H * W.
        theta (Tensor[B, 2, 3]): output -> input centred pixel coordinates
            (see :func:`affine_matrix`, :func:`crop_matrix`, :func:`compose`).
        color (Tensor[B, 4], optional): colour factors; saturation and hue
            need C = 3. ``theta`` and ``color`` must be finite (a NaN or inf
            raises a ValueError naming the element).
        crop (Tensor[B, 4], optional): per-sample boxes (top, left, height,
            width) inside the image; the box is resized to ``size`` first
            (torchvision's ``resized_crop``: bilinear, align_corners=False,
            no antialias; nearest: torch's "nearest") and ``theta`` then warps
            that resized crop, as ``resized_crop`` followed by ``affine``.
        size: output (height, width), each below 2^24; default the input's.
        interpolation (str): ``"bilinear"`` (default) or ``"nearest"`` (or
            torchvision's ``InterpolationMode``) for the images; masks are
            always nearest.
        fill (float, optional): outside the image. None (default): bilinear
            taps outside read 0, as torchvision's ``affine(..., fill=None)``; a
            value (in the input's scale, 0-255 for uint8): torchvision's fill
            blend ``m * v + (1 - m) * fill`` (``m`` the in-image weight), as
            ``affine(..., fill=value)`` and the RandomAffine transform.
        mean, std: per-channel normalisation (after scaling to [0, 1]).
        out_dtype: float32, float16 or bfloat16.
        masks (Tensor[B, H, W] or [B, 1, H, W], optional): uint8, int32,
            int64 or bool label masks, warped with the same matrices and
            crops, nearest (labels are never blended).
        mask_fill (int, optional): the label of mask pixels that fall
            outside the input. Default None: 255, the segmentation "ignore"
            (void) label, for uint8/int32/int64 masks, so padding is never
            silently labelled as class 0 (give the loss the same value:
            ``bt.nn.CrossEntropyLoss(ignore_index=255)``, as torchvision's
            segmentation reference; or pass ``mask_fill=-100`` with int64
            masks for torch's default ``ignore_index``); False for bool
            masks. A value outside the masks' dtype (e.g. 256 or -1 for
            uint8) raises a ValueError.

    Returns:
        Tensor[B, C, H_out, W_out] of ``out_dtype`` (the input's memory
        format); with ``masks``, a pair ``(images, masks)`` where the masks
        keep their dtype and shape convention (``[B, H_out, W_out]`` or
        ``[B, 1, H_out, W_out]``).

    Example:
        >>> import torch
        >>> import balancedtorch.augment.functional as AF
        >>> images_uint8 = torch.randint(0, 256, (2, 3, 32, 48), dtype=torch.uint8)
        >>> masks_uint8 = torch.randint(0, 5, (2, 32, 48), dtype=torch.uint8)
        >>> theta = AF.compose(AF.flip_matrix(torch.tensor([True, False]), torch.tensor([False, False])),
        ...                    AF.affine_matrix(torch.tensor([30.0, -10.0]), scale=1.1)).float()
        >>> x, m = AF.affine_color(images_uint8, theta, masks=masks_uint8, mean=(0.5,) * 3, std=(0.25,) * 3)
        >>> x.dtype, m.dtype, bool((m == 255).any())   # m is 255 where the warp padded
        (torch.float32, torch.uint8, True)
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    B, C, H, W = images.shape
    if C not in (1, 3):
        raise ValueError(f"images must have C = 1 or 3 channels, got C = {C}")
    if images.dtype not in (torch.uint8, torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"images must be uint8, float16, bfloat16 or float32, got {images.dtype}")
    _check_sides("images", H, W)
    if not isinstance(theta, Tensor) or tuple(theta.shape) != (B, 2, 3):
        raise ValueError(f"theta must be a tensor of shape (B, 2, 3) = ({B}, 2, 3), got {tuple(getattr(theta, 'shape', ()))}")
    if not theta.is_floating_point():
        raise ValueError(f"theta must be a floating-point tensor, got dtype {theta.dtype}")
    finite = torch.isfinite(theta)
    if not bool(finite.all()):
        i, j, k = (int(v) for v in (~finite).nonzero()[0])
        raise ValueError(f"theta must be finite, got theta[{i}, {j}, {k}] = {theta[i, j, k].item()}")
    if color is not None:
        if not isinstance(color, Tensor) or tuple(color.shape) != (B, 4):
            raise ValueError(f"color must be a tensor of shape (B, 4) = ({B}, 4), got {tuple(getattr(color, 'shape', ()))}")
        color = color.to(device=images.device, dtype=torch.float64 if color.dtype == torch.float64 else torch.float32)
        finite = torch.isfinite(color)
        if not bool(finite.all()):
            i, j = (int(v) for v in (~finite).nonzero()[0])
            raise ValueError(f"color must be finite, got color[{i}, {j}] = {color[i, j].item()}")
        b, c, s, h = color.unbind(1)
        if bool((b < 0).any() | (c < 0).any() | (s < 0).any()):
            raise ValueError("color: brightness, contrast and saturation factors must be >= 0")
        if bool(((h < -0.5) | (h > 0.5)).any()):
            raise ValueError("color: hue factors must be in [-0.5, 0.5]")
        if C == 1 and bool(((s != 1) | (h != 0)).any()):
            raise ValueError("color: saturation and hue need 3 channels, the images have 1")
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be float32, float16 or bfloat16, got {out_dtype}")
    oh, ow = _size(size, H, W)
    if crop is not None:
        if not isinstance(crop, Tensor) or tuple(crop.shape) != (B, 4):
            raise ValueError(f"crop must be a tensor of shape (B, 4) = ({B}, 4), got {tuple(getattr(crop, 'shape', ()))}")
        crop = crop.to(device=images.device, dtype=torch.float32)
        top, left, h, w = crop.unbind(1)
        bad = (crop != crop.round()).any(1) | (top < 0) | (left < 0) | (h < 1) | (w < 1) | (top + h > H) | (left + w > W)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"crop[{i}] = {crop[i].tolist()} must be an integer box (top, left, height, width) inside the {H}x{W} image"
            )
    mean_t = _channel_vector(mean, C, "mean", images.device)
    std_t = _channel_vector(std, C, "std", images.device)
    if std_t is not None and bool((std_t == 0).any()):
        raise ValueError(f"std must not contain zeros, got {std_t.tolist()}")
    if fill is not None and (not isinstance(fill, numbers.Real) or not math.isfinite(fill)):
        raise ValueError(f"fill must be None or a finite number, got {fill!r}")
    interp = _interp_code(interpolation)
    mask_fill = _check_mask_fill(mask_fill)
    if masks is not None:  # checked before any kernel runs
        if not isinstance(masks, Tensor):
            raise TypeError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
        squeeze = masks.dim() == 4
        m = masks.squeeze(1) if squeeze and masks.shape[1] == 1 else masks
        if m.dim() != 3 or m.shape[0] != B or tuple(m.shape[1:]) != (H, W):
            raise ValueError(f"masks must have shape (B, H, W) or (B, 1, H, W) = ({B}, {H}, {W}), got {tuple(masks.shape)}")
        if m.dtype not in _MASK_RANGES:
            raise ValueError(f"masks must be uint8, int32, int64 or bool, got {m.dtype}")
        if masks.device != images.device:
            raise ValueError(f"masks is on {masks.device} but the images are on {images.device}: move masks to {images.device}")
        mask_fill = resolve_mask_fill(mask_fill, m.dtype)
    theta = theta.to(images.device)
    out = torch.ops.balancedtorch.affine_color(
        images, theta, color, crop, mean_t, std_t, oh, ow, interp, None if fill is None else float(fill), out_dtype
    )
    if masks is None:
        return out
    warped = torch.ops.balancedtorch.affine_mask(m.to(images.device), theta, crop, oh, ow, mask_fill)
    return out, warped.unsqueeze(1) if squeeze else warped


def identity_matrix(batch: int, device=None, dtype=torch.float32) -> Tensor:
    """``batch`` identity matrices (B, 2, 3): the warp that changes nothing."""
    return torch.eye(2, 3, device=device, dtype=dtype).expand(batch, 2, 3).clone()


def affine_matrix(angle, translate=(0.0, 0.0), scale=1.0, shear=(0.0, 0.0)) -> Tensor:
    """torchvision's inverse affine matrix (centre of the image), batched.

    ``angle`` degrees (counter-clockwise, as torchvision), ``translate``
    (tx, ty) pixels, ``scale``, ``shear`` (x, y) degrees; each a number or a
    tensor of per-sample values. Returns float64 (B, 2, 3).
    """
    angle = torch.as_tensor(angle, dtype=torch.float64)
    dev = angle.device
    tx, ty = (torch.as_tensor(t, dtype=torch.float64, device=dev) for t in translate)
    scale = torch.as_tensor(scale, dtype=torch.float64, device=dev)
    shx, shy = (torch.as_tensor(s, dtype=torch.float64, device=dev) for s in shear)
    angle, tx, ty, scale, shx, shy = torch.broadcast_tensors(angle, tx, ty, scale, shx, shy)
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shx), torch.deg2rad(shy)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale
    m2 = m0 * (-tx) + m1 * (-ty)
    m5 = m3 * (-tx) + m4 * (-ty)
    return torch.stack([m0, m1, m2, m3, m4, m5], -1).reshape(-1, 2, 3)


def crop_matrix(top, left, height, width, in_size: Tuple[int, int], out_size: Tuple[int, int]) -> Tensor:
    """Crop (top, left, height, width) of an in_size image resized to out_size (torchvision's resized_crop, no antialias)."""
    top, left, height, width = (torch.as_tensor(v, dtype=torch.float64) for v in (top, left, height, width))
    top, left, height, width = torch.broadcast_tensors(top, left, height, width)
    H, W = in_size
    oh, ow = out_size
    sx, sy = width / ow, height / oh
    zero = torch.zeros_like(sx)
    row0 = torch.stack([sx, zero, left + width / 2 - W / 2], -1)
    row1 = torch.stack([zero, sy, top + height / 2 - H / 2], -1)
    return torch.stack([row0, row1], -2).reshape(-1, 2, 3)


def flip_matrix(horizontal, vertical) -> Tensor:
    """Per-sample flips (bool tensors) as matrices."""
    h = torch.as_tensor(horizontal, dtype=torch.bool)
    v = torch.as_tensor(vertical, dtype=torch.bool, device=h.device)
    h, v = torch.broadcast_tensors(h, v)
    one = torch.ones(h.shape, dtype=torch.float64, device=h.device)
    sx = torch.where(h, -one, one)
    sy = torch.where(v, -one, one)
    zero = torch.zeros_like(one)
    return torch.stack([torch.stack([sx, zero, zero], -1), torch.stack([zero, sy, zero], -1)], -2).reshape(-1, 2, 3)


def compose(*thetas: Tensor) -> Tensor:
    """One matrix for a chain of transforms, ``thetas[0]`` applied first to the image.

    Each matrix maps its output to its input, so the chain's matrix is
    ``thetas[0] @ thetas[1] @ ...`` in homogeneous coordinates.
    """
    if not thetas:
        raise ValueError("compose needs at least one matrix")
    out = None
    for t in thetas:
        full = torch.cat(
            [t.double(), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=t.device).expand(t.shape[0], 1, 3)], 1
        )
        out = full if out is None else out @ full
    return out[:, :2, :]
