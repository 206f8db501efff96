"""The advice of ``balancedtorch inspect``: which sampler, loss and augmentation suit the class counts, naming the rare classes."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from ._common import _LIST, _names_list, _pct

__all__ = ["suggest"]


def _class_list(ids: Sequence[int], display: Sequence[str], names: bool) -> str:
    shown = [display[c] for c in ids]
    return ("classes " if len(ids) > 1 else "class ") + _names_list(shown) if not names else _names_list(shown)


def suggest(
    counts: Any,
    names: Optional[Sequence[str]] = None,
    *,
    masks: bool = False,
    ignore_index: Optional[int] = None,
    presence: Optional[Sequence[int]] = None,
    num_images: Optional[int] = None,
) -> List[str]:
    """Sampler / loss / augmentation advice for class counts, naming the rare classes.

    Args:
        counts (array of int, shape (K,)): samples (or pixels) per class; zeros are
            classes never seen and take no part in the imbalance ratio.
        names (sequence of str, optional): class names, default the ids.
        masks (bool): the counts are pixels of segmentation masks. Default False.
        ignore_index (int, optional): the void label of the masks, used in the advice.
        presence (array of int, shape (K,), optional): images containing each class (masks).
        num_images (int, optional): number of masks.

    Returns:
        list of str: one line of advice each.
    """
    counts = np.asarray(counts, dtype=np.int64)
    display = list(names) if names else [str(c) for c in range(len(counts))]
    named = bool(names)
    present = np.flatnonzero(counts > 0)
    total = int(counts.sum())
    unit = "pixels" if masks else "samples"
    lines: List[str] = []
    if present.size == 0:
        return lines
    largest = int(present[np.argmax(counts[present])])
    ratio = counts[largest] / counts[present].min()
    share = counts / max(total, 1)
    # rare: 10x or fewer samples than the largest class, rarest first ("< 1%" alone would call every
    # class of a balanced 200-class problem rare)
    rare = sorted((int(c) for c in present if counts[c] * 10 <= counts[largest]), key=lambda c: (counts[c], c))
    detail = lambda ids: "; ".join(f"{display[c]}: {counts[c]} ({_pct(share[c])})" for c in ids[:_LIST])  # noqa: E731
    if rare:
        tiny = [c for c in rare if share[c] < 0.01]
        small = [c for c in rare if share[c] >= 0.01]
        for ids, what in (
            (tiny, f"< 1% of the {unit}"),
            (small, f"at most 1/10 of the {unit} of the largest class, {display[largest]} ({counts[largest]})"),
        ):
            if ids:
                lines.append(
                    f"rare:    {_class_list(ids, display, named)} {'have' if len(ids) > 1 else 'has'} {what}: {detail(ids)}"
                )
    elif ratio >= 1.5:
        rarest = int(present[np.argmin(counts[present])])
        lines.append(
            f"rarest:  {display[rarest]}: {counts[rarest]} {unit} ({_pct(share[rarest])}), {ratio:.1f}x fewer than {display[largest]}"
        )
    focus = rare or [int(present[np.argmin(counts[present])])]
    class_p = ", ".join(f"{c}: 1.0" for c in focus[:_LIST]) + (", ..." if len(focus) > _LIST else "") + "})"
    if named:  # class_p is keyed by class index: the names' sorted order
        class_p += "  # " + ", ".join(f"{c} = {display[c]}" for c in focus[:_LIST])

    if masks:
        ii = "" if ignore_index is None else f", ignore_index={ignore_index}"
        if ratio < 1.5:
            lines.append(
                f"classes are nearly balanced in pixels: plain cross-entropy is fine{(' (' + ii[2:] + ')') if ii else ''}"
            )
        else:
            # median frequency from the masks is the segmentation habit (Eigen & Fergus / SegNet: it needs the
            # images, counts alone give plain inverse weights); beyond 100x weights explode and wreck the common
            # classes, and effective_number saturates at pixel counts (beta**n ~ 0): sqrt_inverse, clipped
            if ratio <= 100:
                lines.append(
                    f'loss:    bt.nn.CrossEntropyLoss(weight=bt.class_weights(masks=masks, scheme="median_frequency"{ii}){ii})'
                    "  # masks: this file's (N, H, W) masks"
                )
            else:
                lines.append(
                    f'loss:    bt.nn.CrossEntropyLoss(weight=bt.class_weights(counts=pixel_counts, scheme="sqrt_inverse", '
                    f"normalize=None).clamp(max=10){ii})  # pixel_counts: the pixels column; raw weights >= 1, so at "
                    "most 10x apart (plain inverse weights at this ratio wreck the common classes)"
                )
            if ratio > 10:
                lines.append(f"         or bt.nn.FocalLoss(gamma=2, weight=...{ii}) for the hard pixels of the rare classes")
                lines.append(
                    f"         or bt.nn.DiceCELoss(include_background=False, weight=...{ii})  # region overlap: small objects count"
                )
        lines.append(
            f"metrics: bt.metrics.ClassificationMetrics({len(counts)}{ii})  # per-class IoU and recall; pixel accuracy hides rare classes"
        )
        fill = "" if ignore_index is None else f", mask_fill={ignore_index}"
        if ratio > 10:
            lines.append(
                f'augment: bt.augment.BatchAugment(crop=(256, 256), crop_focus="rare", crop_focus_p=0.33{fill})(images, masks)'
                "  # a third of the crops centred on rare-class pixels"
            )
        elif ignore_index is not None:
            lines.append(f"augment: bt.augment.BatchAugment(...{fill})(images, masks)  # padding becomes void, not a class")
        if presence is not None and num_images and num_images > 1:
            presence = np.asarray(presence)
            scarce = [int(c) for c in present if presence[c] * 20 <= num_images]  # in <= 5% of the images
            if scarce:
                occ = "; ".join(f"{display[c]}: {presence[c]} of {num_images}" for c in scarce[:_LIST])
                lines.append(
                    f"images:  {_class_list(scarce, display, named)} {'occur' if len(scarce) > 1 else 'occurs'} in <= 5% of the images ({occ}): "
                    f"oversample the images containing them: bt.data.RepeatFactorSampler(masks, threshold=0.1, "
                    f"num_classes={len(counts)}{ii})  # LVIS repeat factors max(1, sqrt(t / f_c))"
                )
        return lines

    if ratio < 1.5:
        lines.append("classes are nearly balanced: the default sampler and plain cross-entropy are fine")
        return lines
    if ratio <= 10:
        lines.append('sampler: bt.data.ClassBalancedSampler(labels, strategy="sqrt")  # mild imbalance')
        lines.append('loss:    bt.nn.CrossEntropyLoss(weight=bt.class_weights(labels, scheme="sqrt_inverse"))')
    elif ratio <= 100:
        lines.append('sampler: bt.data.ClassBalancedSampler(labels, strategy="sqrt")')
        lines.append("loss:    bt.nn.LogitAdjustedLoss(class_counts, tau=1.0)  # or FocalLoss(gamma=2, weight=...)")
        lines.append(f"augment: bt.augment.BatchAugment(..., p=0.2, class_p={{{class_p}")
    else:
        lines.append(
            'sampler: bt.data.ClassBalancedSampler(labels, strategy="balanced", schedule=30)  # severe: balanced, easing to natural over 30 epochs'
        )
        lines.append('loss:    bt.nn.FocalLoss(gamma=2, weight=bt.class_weights(labels, scheme="effective_number"))')
        lines.append(f"augment: bt.augment.BatchAugment(..., p=0.2, class_p={{{class_p}")
        lines.append(f"data:    bt.resample.SMOTE / FeatureSMOTE for the rarest: {_class_list(focus, display, named)}")
    few = [int(c) for c in present if counts[c] < 10]
    if few:
        lines.append(
            f"note:    {_class_list(few, display, named)} {'have' if len(few) > 1 else 'has'} fewer than 10 samples; "
            "StratifiedBatchSampler keeps every class in every batch"
        )
    return lines
