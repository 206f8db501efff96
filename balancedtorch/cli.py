"""Command line: ``balancedtorch demo | inspect LABELS | inspect-predictions PREDS | info`` (also ``python -m balancedtorch``)."""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._optional import MissingOptionalDependency


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- inspect: reading

_LIST = 8  # class ids / columns named in one message before "and N more"
_MAX_SPARSE = 100_000  # class ids beyond this and 10x the number of labels are not class ids
_MAX_CLASSES = 10_000_000  # one int64 count each: 80 MB


def _pct(share: float) -> str:
    """A share as a percentage, "<0.1%" rather than a misleading "0.0%" for a class that does occur."""
    return "<0.1%" if 0 < share < 0.0005 else f"{share:.1%}"


def _names_list(items: Sequence[str], limit: int = _LIST) -> str:
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


@dataclass
class _Loaded:
    """What a labels file holds: labels (1-D) or masks (ndim >= 2), plus how it was read."""

    labels: np.ndarray  # int64; for masks the (N, H, W...) or (H, W) array
    names: List[str]  # class names when the file holds names, else []
    masks: bool = False
    notes: List[str] = field(default_factory=list)  # how the file was read (header, chosen column, ...)
    column: Optional[str] = None
    header: Optional[bool] = None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _to_labels(cells: Sequence[str]) -> Tuple[np.ndarray, List[str]]:
    """Integer labels (integral floats such as ``3.0`` included) -> themselves; otherwise names -> sorted names, codes."""
    try:
        return np.array([int(v) for v in cells], dtype=np.int64), []
    except ValueError:
        pass
    try:
        as_float = np.array([float(v) for v in cells])
        if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
            return as_float.astype(np.int64), []
    except ValueError:
        pass
    names = sorted(set(cells))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in cells], dtype=np.int64), names


@dataclass
class _Column:
    index: int
    name: str  # the header cell, or "column j" without a header
    cells: List[str]  # non-empty cells of the body, stripped
    kind: str  # "empty", "float", "int" or "text"
    distinct: int
    rows: int  # body rows (empty cells included)
    example: str = ""  # a non-integer value of a float column

    @property
    def id_like(self) -> bool:
        return self.distinct == len(self.cells) and len(self.cells) > 1

    @property
    def binary(self) -> bool:
        return self.kind == "int" and len(self.cells) == self.rows and set(self.cells) <= {"0", "1"}

    def describe(self) -> str:
        what = {"int": "integers", "text": "names", "float": "non-integer numbers", "empty": "empty"}[self.kind]
        return f"{self.name!r} ({what}, {self.distinct} distinct)" if self.kind != "empty" else f"{self.name!r} (empty)"


def _column(index: int, name: str, body: List[List[str]]) -> _Column:
    raw = [r[index].strip() for r in body]
    cells = [c for c in raw if c != ""]
    if not cells:
        return _Column(index, name, cells, "empty", 0, len(raw))
    kind, example = "text", ""
    if all(_is_number(c) for c in cells):
        values = np.array([float(c) for c in cells])
        bad = ~np.isfinite(values) | (values != np.round(values))
        kind = "float" if bad.any() else "int"
        example = cells[int(np.argmax(bad))] if bad.any() else ""
        if kind == "int":  # "3.0" and "3" are the same class
            cells = [str(int(v)) for v in values]
    return _Column(index, name, cells, kind, len(set(cells)), len(raw), example)


def _detect_header(rows: List[List[str]]) -> Tuple[bool, str]:
    """Whether the first row names the columns.

    pandas' ``read_csv`` (``header="infer"``) always takes the first row as the
    header, which eats the first label of a headerless file; ``csv.Sniffer.has_header``
    compares types and lengths per column, but abstains on name columns whose
    lengths vary ("cat", "horse") and then answers "no header" for ``label\\ncat\\n...``.
    Here, per column: a non-number above numbers means a header (decisive); a
    number above numbers means data; in a column of names, a first cell that
    occurs again below means data, one that never occurs below while the names
    below repeat means a header. Without any evidence (one row, or only
    all-distinct name columns) the first row is a header, as in pandas.
    """
    first, body = rows[0], rows[1:]
    if not body:
        return True, "a single row, taken as the header (as pandas does)"
    header_votes, data_votes, numeric_data = [], [], []
    for j, head in enumerate(first):
        head = head.strip()
        cells = [r[j].strip() for r in body if r[j].strip() != ""]
        if head == "" or not cells:
            continue
        if all(_is_number(c) for c in cells):
            if not _is_number(head):
                return True, f"{head!r} stands above numbers"
            numeric_data.append(head)
        elif head in set(cells):
            data_votes.append(head)
        elif len(set(cells)) < len(cells):
            header_votes.append(head)
    if numeric_data:
        return (
            False,
            f"the first row is data ({_names_list([repr(v) for v in numeric_data], 3)} above numbers of the same column)",
        )
    if data_votes and len(data_votes) >= len(header_votes):
        return False, f"the first row is data ({_names_list([repr(v) for v in data_votes], 3)} occurs again below)"
    if header_votes:
        return True, f"{_names_list([repr(v) for v in header_votes], 3)} never occurs below while the values there repeat"
    return True, "no evidence either way: the first row is taken as the header, as pandas does"


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
    except csv.Error:  # one column, or nothing to tell
        return ","


def _one_hot_group(columns: List[_Column]) -> List[_Column]:
    """Two or more 0/1 columns with exactly one 1 in every row: a one-hot encoding."""
    binary = [c for c in columns if c.binary]
    if len(binary) < 2:
        return []
    sums = np.sum([np.array(c.cells, dtype=np.int64) for c in binary], axis=0)
    return binary if np.all(sums == 1) else []


def _refusal(col: _Column, one_hot: List[_Column]) -> Optional[Tuple[str, str]]:
    """Why a column cannot be a label column, short and in full (None when it can)."""
    if col.kind == "empty":
        return "empty", f"column {col.name!r} has no values"
    if col.kind == "float":
        return f"non-integer numbers, e.g. {col.example}", (
            f"column {col.name!r} holds non-integer numbers (e.g. {col.example}): a score, feature or "
            "regression target, not class labels; bin it into classes first or choose another --column"
        )
    if any(col is c for c in one_hot):
        names = [c.name for c in one_hot]
        return "one-hot", (
            f"column {col.name!r} is one of {len(one_hot)} one-hot columns ({_names_list(names)}: exactly one 1 "
            "per row); inspect reads one column of class ids or names: decode them first, e.g. "
            f"df[{names!r}].idxmax(axis=1) in pandas or labels.argmax(1) on the array"
        )
    if col.id_like:
        return "ID-like: one distinct value per row", (
            f"column {col.name!r} is ID-like: one distinct value per row ({col.distinct} rows), so every "
            "'class' would have one sample; choose the column that holds the class labels with --column"
        )
    return None


def _refuse_binary(text: str, path: str) -> None:
    """Text input only: a NUL byte (or another control character) would otherwise be read as part of a label."""
    bad = next((i for i, ch in enumerate(text) if ch == "\x00" or (ord(ch) < 32 and ch not in "\t\n\r\x0b\x0c")), None)
    if bad is not None:
        raise CLIError(
            f"{path}: not a text file (control character {text[bad]!r} at character {bad}); labels must be text "
            f"(.csv/.tsv or one label per line), or a .npy/.pt array"
        )


def _read_csv(path: str, column: Optional[str], header: str = "auto") -> _Loaded:
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    _refuse_binary(text, path)
    if not text.strip():
        raise CLIError(f"{path}: the file is empty")
    delimiter = _sniff_delimiter(text)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        raise CLIError(f"{path}: the file is empty")
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    first = [c.strip() for c in rows[0]]
    if header == "auto":
        has_header, why = _detect_header(rows)
        if column is not None and column in first and not has_header and not column.lstrip("-").isdigit():
            has_header, why = True, f"--column {column!r} names a cell of the first row"
        how = "header row" if has_header else "no header row"
        notes = [f"{how}: {why} (--header yes/no to override)"]
    else:
        has_header, notes = header == "yes", []
    body = rows[1:] if has_header else rows
    names = [h if h else f"column {j}" for j, h in enumerate(first)] if has_header else [f"column {j}" for j in range(width)]
    columns = [_column(j, names[j], body) for j in range(width)]
    one_hot = _one_hot_group(columns)
    if not body:
        raise CLIError(f"{path}: no labels found (only a header row: {', '.join(first)})")

    if column is not None:
        if has_header and column in first:
            col = columns[first.index(column)]
        elif column.lstrip("-").isdigit():
            j = int(column)
            if not -width <= j < width:
                raise CLIError(
                    f"{path}: column index {j} out of range: the file has {width} column(s) ({', '.join(repr(n) for n in names)})"
                )
            col = columns[j]
        else:
            raise CLIError(
                f"{path}: no column named {column!r} (columns: {', '.join(names)})"
                + ("" if has_header else "; the first row was read as data: pass --header yes if it names the columns")
            )
        why = _refusal(col, one_hot)
        if why:
            raise CLIError(f"{path}: {why[1]}")
    elif width == 1:
        col = columns[0]
        why = _refusal(col, one_hot)
        if why:
            raise CLIError(f"{path}: {why[1]}")
    else:
        candidates, skipped = [], []
        for c in columns:
            why = _refusal(c, one_hot)
            short = why[0] if why else None
            if why is None and c.distinct == 1:
                short = "constant"
            elif why is None and c.distinct > len(c.cells) / 2:  # auto-pick only columns whose classes repeat
                short = f"mostly distinct: {c.distinct} values in {len(c.cells)} rows"
            if short is None:
                candidates.append(c)
            else:
                skipped.append(f"{c.name!r} ({short})")
        if len(candidates) > 1:
            raise CLIError(
                f"{path}: several columns could be the label: {', '.join(c.describe() for c in candidates)}; "
                "pass --column NAME or --column INDEX" + (f" (not labels: {', '.join(skipped)})" if skipped else "")
            )
        if not candidates:
            if one_hot and len(one_hot) == sum(c.kind != "empty" for c in columns):
                raise CLIError(f"{path}: {_refusal(one_hot[0], one_hot)[1]}")
            raise CLIError(
                f"{path}: no column looks like class labels: {', '.join(skipped)}; "
                "pass --column NAME or --column INDEX to read one anyway"
            )
        col = candidates[0]
        notes.append(
            f"label column {col.name!r}: the only one that can hold class labels"
            + (f" (not labels: {', '.join(skipped)})" if skipped else "")
        )
    if not col.cells:
        raise CLIError(f"{path}: no labels found in column {col.name!r}")
    missing = col.rows - len(col.cells)
    if missing:
        notes.append(f"{missing} row(s) with an empty {col.name!r} cell skipped")
    labels, label_names = _to_labels(col.cells)
    return _Loaded(labels, label_names, notes=notes, column=col.name, header=has_header)


def _from_array(arr: Any, path: str) -> _Loaded:
    """A numpy array of labels (1-D) or masks (ndim >= 2: (H, W), (N, H, W), (N, 1, H, W), ...)."""
    arr = np.asarray(arr)
    if arr.size == 0:
        raise CLIError(f"{path}: no labels found (empty array)")
    if arr.ndim == 0:
        raise CLIError(f"{path}: holds a single number, not an array of labels")
    if arr.dtype.kind in "US":
        if arr.ndim != 1:
            raise CLIError(f"{path}: an array of strings needs one dimension, got shape {tuple(arr.shape)}")
        cells = [str(v).strip() for v in arr.tolist()]
        cells = [c for c in cells if c]
        if not cells:
            raise CLIError(f"{path}: no labels found (only empty strings)")
        labels, names = _to_labels(cells)
        return _Loaded(labels, names)
    if arr.dtype.kind not in "biuf":
        raise CLIError(f"{path}: labels must be integers, integral floats or strings, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            raise CLIError(f"{path}: holds non-finite values ({int((~finite).sum())} of {arr.size})")
        frac = arr != np.round(arr)
        if frac.any():
            what = "probabilities or scores" if arr.ndim == 2 else "scores or features"
            raise CLIError(
                f"{path}: holds non-integer values (e.g. {arr.reshape(-1)[int(np.argmax(frac.reshape(-1)))]:g}), "
                f"{what} rather than class labels; take the argmax over the class dimension first"
            )
    arr = arr.astype(np.int64)
    if arr.ndim == 2 and arr.shape[1] >= 2 and ((arr == 0) | (arr == 1)).all() and (arr.sum(1) == 1).all():
        raise CLIError(
            f"{path}: a one-hot array of shape {tuple(arr.shape)} (exactly one 1 per row); "
            "inspect reads class ids: pass labels.argmax(1)"
        )
    if arr.ndim == 1:
        return _Loaded(arr, [])
    shape = "x".join(map(str, arr.shape))
    layout = "one (H, W) mask" if arr.ndim == 2 else f"{arr.shape[0]} masks ({' x '.join(map(str, arr.shape[1:]))} each)"
    return _Loaded(
        arr, [], masks=True, notes=[f"shape {shape}: {layout}; integer arrays with ndim >= 2 are read as segmentation masks"]
    )


def _load(path: str, column: Optional[str] = None, header: str = "auto") -> _Loaded:
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(
            f"{path}: is a directory, not a labels file (for segmentation masks, save them as one "
            ".npy or .pt array of shape (N, H, W))"
        )
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".csv", ".tsv"):
            return _read_csv(path, column, header)
        if ext == ".npy":
            return _from_array(_read_mapping(path, "labels"), path)
        if ext in (".pt", ".pth"):
            import torch

            obj = _read_mapping(path, "labels")  # torch.load's multi-line errors become one line
            if isinstance(obj, dict):
                key = next((k for k in ("labels", "targets", "masks") if k in obj), None)
                if key is None:
                    raise CLIError(f"{path}: a dict without 'labels', 'targets' or 'masks' (keys: {_names_list(map(str, obj))})")
                obj = obj[key]
            if isinstance(obj, torch.Tensor):
                obj = obj.cpu().numpy()
            elif isinstance(obj, (list, tuple)) and obj and all(isinstance(v, torch.Tensor) for v in obj):
                obj = np.stack([v.cpu().numpy() for v in obj])
            return _from_array(obj, path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        _refuse_binary(text, path)
        cells = [v.strip() for v in text.splitlines()]
        cells = [c for c in cells if c]
        if not cells:
            raise CLIError(f"{path}: no labels found (empty input)")
        labels, names = _to_labels(cells)
        return _Loaded(labels, names)
    except CLIError:
        raise
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file (use .csv, .npy, .pt or one label per line)") from None
    except Exception as exc:  # unreadable file of the right extension: one line, no traceback
        raise CLIError(f"{path}: cannot read labels ({type(exc).__name__}: {_one_line(exc)})") from None


def read_labels(path: str, column: Optional[str] = None) -> Tuple[np.ndarray, List[str]]:
    """Labels from .csv, .npy, .pt or a text file with one label per line (masks flattened to pixels)."""
    loaded = _load(path, column)
    return loaded.labels.reshape(-1), loaded.names


# ----------------------------------------------------------------------------- inspect: numbers and advice


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


def inspect_labels(
    path: str,
    column: Optional[str] = None,
    out=print,
    *,
    ignore_index: Optional[int] = None,
    num_classes: Optional[int] = None,
    max_rows: int = 30,
    header: str = "auto",
) -> Dict[str, Any]:
    """Print class counts, shares, imbalance ratio, class weights and advice for a labels or masks file.

    Args:
        path (str): .csv/.tsv (a header row is detected; see ``--column``), .npy or .pt
            (1-D labels, or integer masks with ndim >= 2: pixels are counted), or
            text with one label per line.
        column (str, optional): CSV column name or index. Default: the only
            column that can hold labels (several candidates -> CLIError).
        out (callable): receives each output line. Default ``print``.
        ignore_index (int, optional): a label excluded from the counts (void pixels), reported apart.
        num_classes (int, optional): the number of classes; classes never seen get count-0 rows.
        max_rows (int): table rows shown, 0 for all. Default 30.
        header (str): ``"auto"`` (default), ``"yes"`` or ``"no"``: whether a CSV's first row is a header.

    Returns:
        dict: ``counts``, ``names``, ``imbalance_ratio``, ``weights`` (None for
        classes never seen), ``ignored``, ``absent``, ``masks`` and, for masks,
        ``images`` and ``images_with_class``.
    """
    import torch

    from .weights import SCHEMES, class_weights

    if num_classes is not None and num_classes < 1:
        raise CLIError(f"--num-classes must be >= 1, got {num_classes}")
    if max_rows < 0:
        raise CLIError(f"--max-rows must be >= 0 (0 shows every class), got {max_rows}")
    if header not in ("auto", "yes", "no"):
        raise CLIError(f"--header must be auto, yes or no, got {header!r}")
    loaded = _load(path, column, header)
    names = loaded.names
    if names and (ignore_index is not None or num_classes is not None):
        flag = "--ignore-index" if ignore_index is not None else "--num-classes"
        raise CLIError(f"{path}: {flag} needs integer labels, but the labels are names ({_names_list(names)})")
    flat = loaded.labels.reshape(-1)
    keep = np.ones(flat.shape, dtype=bool) if ignore_index is None else flat != ignore_index
    ignored = int(flat.size - keep.sum())
    kept = flat[keep]
    unit = "pixels" if loaded.masks else "labels"
    if kept.size == 0:
        raise CLIError(f"{path}: all {flat.size} {unit} equal --ignore-index {ignore_index}: nothing to count")
    low = int(kept.min())
    if low < 0:
        what = "pixels" if loaded.masks else "samples"
        hint = f" (pass --ignore-index {low} if it marks void / unlabelled {what})" if ignore_index is None else ""
        raise CLIError(f"{path}: labels must be >= 0 integers or class names, found {low}{hint}")
    high = int(kept.max())
    if num_classes is not None and high >= num_classes:
        over = np.unique(kept[kept >= num_classes])
        hint = f" (pass --ignore-index {high} if it marks void {unit})" if ignore_index is None and over.size == 1 else ""
        raise CLIError(
            f"{path}: label {high} >= --num-classes {num_classes} (labels out of range: "
            f"{_names_list([str(v) for v in over.tolist()])}){hint}"
        )
    if num_classes is None and not names and high >= max(_MAX_SPARSE, 10 * kept.size):
        raise CLIError(
            f"{path}: label {high} among {kept.size} {unit}: class ids must be 0..K-1 (is this an ID column? "
            "pass --num-classes if there really are that many classes)"
        )
    k = num_classes if num_classes is not None else (len(names) if names else high + 1)
    if k > _MAX_CLASSES:
        raise CLIError(f"{path}: {k} classes is more than inspect tabulates ({_MAX_CLASSES})")
    counts = np.bincount(kept, minlength=k)
    present = counts > 0
    total = int(counts.sum())
    display = names if names else [str(c) for c in range(k)]
    ratio = float(counts.max() / counts[present].min())

    presence = None
    num_images = None
    if loaded.masks:
        images = loaded.labels.reshape(1, -1) if loaded.labels.ndim == 2 else loaded.labels.reshape(loaded.labels.shape[0], -1)
        num_images = images.shape[0]
        presence = np.zeros(k, dtype=np.int64)
        for img in images:
            img = img if ignore_index is None else img[img != ignore_index]
            presence += np.bincount(img, minlength=k) > 0

    weights: Dict[str, List[Optional[float]]] = {}
    present_counts = torch.from_numpy(counts[present])
    for scheme in SCHEMES:
        w = class_weights(counts=present_counts, scheme=scheme, normalize=None).tolist()
        full: List[Optional[float]] = [None] * k
        for c, v in zip(np.flatnonzero(present).tolist(), w):
            full[c] = v
        weights[scheme] = full

    if loaded.masks:
        out(
            f"{path}: {num_images} mask(s), {total} counted pixels, {int(present.sum())} classes, "
            f"imbalance ratio {ratio:.1f} (largest / smallest, in pixels)"
        )
    else:
        out(f"{path}: {total} labels, {int(present.sum())} classes, imbalance ratio {ratio:.1f} (largest / smallest)")
    for note in loaded.notes:
        out(f"  {note}")
    if ignore_index is not None:
        what = "ignored pixels" if loaded.masks else "ignored labels"
        out(f"{what}: {ignored} ({ignored / flat.size:.1%} of all) equal to --ignore-index {ignore_index}, not counted")
    elif loaded.masks and high == 255 and (counts[:255] > 0).any() and int(np.flatnonzero(counts[:255])[-1]) < 128:
        top = int(np.flatnonzero(counts[:255])[-1])
        out(
            f"note: 255 occurs ({counts[255]} pixels) far above the other classes (0..{top}): if it marks void / "
            "unlabelled pixels, pass --ignore-index 255 (it is counted as a class here)"
        )

    count_head = "pixels" if loaded.masks else "count"
    cw = max(9, len(str(int(counts.max()))) + 2)
    head = f"{'class':<16}{count_head:>{cw}}{'share':>9}" + (f"{'images':>9}" if loaded.masks else "")
    out(head + "".join(f"{s:>18}" for s in SCHEMES))
    rows = list(range(k)) if num_classes is not None else np.flatnonzero(present).tolist()
    shown = rows if max_rows == 0 else rows[:max_rows]
    for c in shown:
        cells = "".join(
            f"{'-':>18}"
            if weights[s][c] is None
            else (f"{weights[s][c]:>18.1f}" if s == "inverse" else f"{weights[s][c]:>18.3f}")
            for s in SCHEMES
        )
        img = f"{presence[c]:>9}" if presence is not None else ""
        out(f"{display[c][:15]:<16}{counts[c]:>{cw}}{_pct(counts[c] / total):>9}{img}{cells}")
    if len(shown) < len(rows):
        out(f"… {len(rows) - len(shown)} more classes (--max-rows 0 shows all)")
    absent = np.flatnonzero(~present).tolist()
    if absent:
        ids = _names_list([str(c) for c in absent])
        if num_classes is not None:
            out(
                f"never seen: {len(absent)} of the {num_classes} classes have count 0: {ids} "
                "(no class weight; a weighted loss or sampler needs a count for them, or drop them)"
            )
        else:
            out(
                f"never seen: {len(absent)} class id(s) between 0 and {high} do not occur: {ids} "
                "(pass --num-classes if the model has more classes)"
            )
    out("(class weights unnormalised: inverse = N / n_c; pass normalize='mean' for weights averaging 1)")
    out("suggested:")
    for line in suggest(
        counts, names or None, masks=loaded.masks, ignore_index=ignore_index, presence=presence, num_images=num_images
    ):
        out(f"  {line}")
    result: Dict[str, Any] = {
        "counts": counts.tolist(),
        "names": display,
        "imbalance_ratio": ratio,
        "weights": weights,
        "ignored": ignored,
        "absent": absent,
        "masks": loaded.masks,
        "column": loaded.column,
        "header": loaded.header,
    }
    if presence is not None:
        result["images"] = num_images
        result["images_with_class"] = presence.tolist()
    return result


# ----------------------------------------------------------------------------- inspect-predictions

_LABEL_KEYS = ("labels", "targets", "y")
_PROB_KEYS = ("pred_probs", "probs", "probabilities")
_IMAGE_KEYS = ("images", "x", "inputs")
_SHOWN_MISTAKES = 20  # "the 20 most confident mistakes"
_SHOWN_CLASSES = 10  # classes in the per-class table: with the rest, one screen
_SHOWN_ISSUES = 20


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_MAX_DETAIL = 300


def _one_line(exc: BaseException) -> str:
    """An exception's message as one clean line: terminal escape codes and control characters removed, the first
    sentences kept whole (torch.load's messages span many lines and colour some words)."""
    text = _ANSI.sub("", str(exc))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) <= _MAX_DETAIL:
        return text
    cut = text.rfind(". ", 0, _MAX_DETAIL)
    return text[: cut + 1] if cut > 0 else text[:_MAX_DETAIL].rsplit(" ", 1)[0] + " …"


# numpy's own reconstructors of arrays and scalars (no code of the file's choosing runs): what a .pt needs to hold
# numpy strings, e.g. class names saved as numpy.array(["cat", "dog"]) or a list of numpy.str_
_NUMPY_GLOBALS = {
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.str_",
    "numpy.bytes_",
} | {
    f"numpy.dtypes.{n}"
    for n in (
        "StrDType",
        "BytesDType",
        "Int64DType",
        "Int32DType",
        "Float32DType",
        "Float64DType",
        "UInt8DType",
        "BoolDType",
        "Int16DType",
        "Int8DType",
        "Float16DType",
    )
}


def _torch_load(path: str) -> Any:
    """torch.load with weights_only=True; a file that also holds numpy arrays/strings is read with numpy's
    reconstructors allowed (and nothing else)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # e.g. a pickle protocol warning before the error: keep one line
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as first:
            unsafe = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
            safe = getattr(torch.serialization, "safe_globals", None)
            if unsafe is None or safe is None:  # pragma: no cover (torch < 2.5)
                raise first
            try:
                needed = unsafe(path)
            except Exception:
                raise first from None
            if not needed or not set(needed) <= _NUMPY_GLOBALS:
                raise first
            objects = []
            # dtype classes are built without a global of their own (get_unsafe_globals_in_checkpoint omits them)
            for name in set(needed) | {n for n in _NUMPY_GLOBALS if n.startswith("numpy.dtypes.")}:
                module, _, attr = name.rpartition(".")
                try:
                    objects.append(getattr(importlib.import_module(module), attr))
                except (ImportError, AttributeError):
                    if name in needed:
                        raise first from None
            with safe(objects):
                return torch.load(path, map_location="cpu", weights_only=True)


def _read_mapping(path: str, what: str) -> Any:
    """A .pt object (dict or tensor) or a .npz archive (as a dict) or a .npy array."""
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".pt", ".pth"):
            return _torch_load(path)
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
    except Exception as exc:  # unreadable file of the right extension: one line, no traceback
        raise CLIError(f"{path}: cannot read {what} ({type(exc).__name__}: {_one_line(exc)})") from None
    raise CLIError(f"{path}: {what} must be a .pt dict or a .npz archive, got extension {ext or '(none)'!r}")


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _pick(obj: Dict[str, Any], keys: Sequence[str]) -> Optional[str]:
    return next((k for k in keys if k in obj), None)


def read_predictions(path: str) -> Tuple[np.ndarray, np.ndarray, Optional[List[str]], List[str]]:
    """labels (N,), pred_probs (N, K), class names (or None) and notes from a .pt dict or .npz archive.

    Keys: ``labels`` (or ``targets``), ``pred_probs`` (or ``probs``,
    ``probabilities``; ``logits`` are softmaxed, and said so), optional
    ``class_names``.
    """
    obj = _read_mapping(path, "predictions")
    if not isinstance(obj, dict):
        raise CLIError(f"{path}: expected a dict with 'labels' and 'pred_probs', got {type(obj).__name__}")
    notes = []
    lkey = _pick(obj, _LABEL_KEYS)
    pkey = _pick(obj, _PROB_KEYS)
    if lkey is None or (pkey is None and "logits" not in obj):
        raise CLIError(f"{path}: needs 'labels' and 'pred_probs' (keys: {_names_list(map(str, obj))})")
    labels = _numpy(obj[lkey])
    if pkey is not None:
        probs = _numpy(obj[pkey])
        if str(getattr(obj[pkey], "dtype", "")) == "torch.bfloat16" and probs.ndim == 2:
            # numpy has no bfloat16: the values travel as float32, where bfloat16's rounding (up to 2**-8
            # per row sum) would fail the 1e-3 row-sum check of float32; rows that sum to 1 within it are renormalised
            sums = probs.astype(np.float64).sum(1, keepdims=True)
            if probs.size and np.all(np.abs(sums - 1) <= 2.0**-7) and np.all(probs >= 0):
                probs = (probs / sums).astype(np.float32)
                notes.append("bfloat16 pred_probs renormalised to sum to 1")
    else:
        logits = _numpy(obj["logits"]).astype(np.float64)
        if logits.ndim != 2 or not np.isfinite(logits).all():
            raise CLIError(f"{path}: 'logits' must be a finite (N, K) array, got shape {logits.shape}")
        e = np.exp(logits - logits.max(1, keepdims=True))
        probs = e / e.sum(1, keepdims=True)
        notes.append("pred_probs = softmax(logits)")
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        labels = labels.astype(np.int64)
    names = None
    if "class_names" in obj:
        raw = obj["class_names"]
        names = [str(v) for v in (raw.tolist() if hasattr(raw, "tolist") else raw)]
    return labels, probs, names, notes


def _read_images(path: str) -> Any:
    obj = _read_mapping(path, "images")
    if isinstance(obj, dict):
        key = _pick(obj, _IMAGE_KEYS)
        if key is None:
            raise CLIError(f"{path}: a dict without 'images' (keys: {_names_list(map(str, obj))})")
        obj = obj[key]
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if not hasattr(obj, "shape"):
        raise CLIError(f"{path}: expected a (N, C, H, W) tensor or array of images, got {type(obj).__name__}")
    return obj


def _check_out_folder(out: str) -> None:
    """--out must be a folder we can create or write into: checked before any output."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise CLIError(f"--out {out}: cannot create the folder for the grids: a file of that name exists")
        if not os.access(out, os.W_OK | os.X_OK):
            raise CLIError(f"--out {out}: cannot write the grids: the folder is not writable")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"--out {out}: cannot create the folder: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: cannot create the folder: {parent} is not writable")


def inspect_predictions(path: str, images: Optional[str] = None, out: Optional[str] = None, n: int = 32) -> Dict[str, Any]:
    """Print the mistakes of a classifier, the estimated label-noise rate and the label issues, in one screen.

    With ``images``, write ``mistakes.png`` (the ``n`` most confident
    mistakes) and ``label_issues.png`` (the ``n`` most likely label issues)
    into ``out``. Returns the numbers as a dict.
    """
    from .quality import find_label_issues, mistakes_per_class, plot_mistakes, rank_mistakes
    from .quality.gallery import _check_count, _estimated_noise_rate, _grid

    labels, probs, names, notes = read_predictions(path)
    try:
        ranked = rank_mistakes(labels, probs, names)
        per = mistakes_per_class(labels, probs, names)
        rate = _estimated_noise_rate(labels, probs)
        issues = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path}: {exc}") from None
    issues = np.asarray(issues).reshape(-1).astype(np.int64)
    N, K = probs.shape
    wrong = ranked.num_rows
    imgs = None
    if images is not None:  # every input checked before anything is printed or created
        out = "inspect_out" if out is None else out
        _check_out_folder(out)
        imgs = _read_images(images)
        try:
            _check_count(imgs, N, "labels")
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{images}: {exc}") from None
    print(
        f"{path}: {N} samples, {K} classes; {wrong} mispredicted ({_pct(wrong / N)})" + (f"; {'; '.join(notes)}" if notes else "")
    )
    print(f"estimated label-noise rate: {_pct(rate)} (off-diagonal of the calibrated confident joint)")
    shown = ", ".join(map(str, issues[:_SHOWN_ISSUES].tolist())) + (
        f" … {len(issues) - _SHOWN_ISSUES} more" if len(issues) > _SHOWN_ISSUES else ""
    )
    print(
        f"label issues found: {len(issues)} ({_pct(len(issues) / N)}; find_label_issues, most likely first)"
        + (f": {shown}" if len(issues) else "")
    )
    print()
    print(per.to_string(max_rows=_SHOWN_CLASSES))
    print()
    print(ranked.to_string(max_rows=_SHOWN_MISTAKES))
    result: Dict[str, Any] = {
        "samples": int(N),
        "classes": int(K),
        "mistakes": int(wrong),
        "noise_rate": rate,
        "label_issues": issues.tolist(),
        "top_mistakes": ranked["index"][:_SHOWN_MISTAKES].tolist(),
    }
    if images is not None:
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:  # e.g. --out names a file, or a folder we may not write
            raise CLIError(f"--out {out}: cannot create the folder for the grids ({exc.strerror or exc})") from None
        try:
            files = [os.path.join(out, "mistakes.png"), os.path.join(out, "label_issues.png")]
            plot_mistakes(imgs, labels, probs, class_names=names, n=n, path=files[0])
            label_of = (lambda c: names[c]) if names is not None else (lambda c: c)
            pick = issues[:n].tolist()
            titles = [
                f"{label_of(int(labels[i]))} → {label_of(int(probs[i].argmax()))} ({float(probs[i].max()):.2f})" for i in pick
            ]
            _grid(imgs, pick, titles, f"{len(pick)} most likely of {len(issues)} label issues (given → predicted)", files[1])
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{images}: {exc}") from None
        except OSError as exc:  # the folder exists but a PNG cannot be written there
            raise CLIError(f"--out {out}: cannot write the grids ({exc})") from None
        print()
        print(f"grids written: {', '.join(files)}")
        result["files"] = files
    return result


# ----------------------------------------------------------------------------- entry point


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="balancedtorch", description="Training on imbalanced and imperfect data with PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train a small CNN twice: plain vs the balanced stack (digits or traffic lights)")
    d.add_argument(
        "--task",
        choices=("classification", "segmentation"),
        default="classification",
        help="classification: long-tailed digits (default); segmentation: traffic lights at 800:1",
    )
    d.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs per run (classification; default 40)")
    d.add_argument("--steps", type=int, default=None, help="training steps per run (segmentation; default 600)")
    d.add_argument("--seed", type=int, default=0, help="seed of the split, the models and the sampling (default 0)")
    d.add_argument("--seeds", type=int, default=1, help="run seeds seed..seed+N-1 and print mean +- std (default 1)")
    d.add_argument("--out", default=None, help="folder for the PNGs (default demo_out; segmentation: demo_seg_out)")
    d.add_argument("--no-feature-smote", action="store_true", help="leave FeatureSMOTE out of the balanced stack")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    i = sub.add_parser("inspect", help="class counts, shares, imbalance ratio and class weights of a labels or masks file")
    i.add_argument(
        "labels",
        help="a .csv/.tsv (see --column), .npy or .pt (1-D labels, or integer masks with ndim >= 2) "
        "or a text file with one label per line",
    )
    i.add_argument("--column", default=None, help="CSV column name or index (default: the only column that can hold labels)")
    i.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV's first row names the columns (default auto: detected, and said so)",
    )
    i.add_argument(
        "--ignore-index",
        type=int,
        default=None,
        metavar="N",
        help="a label left out of the counts and reported apart, e.g. 255 for void mask pixels",
    )
    i.add_argument(
        "--num-classes",
        type=int,
        default=None,
        metavar="K",
        help="the number of classes: classes never seen get a row with count 0",
    )
    i.add_argument("--max-rows", type=int, default=30, metavar="N", help="table rows shown (default 30; 0 shows all)")
    i.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    q = sub.add_parser(
        "inspect-predictions",
        help="mistakes per class, the most confident mistakes, the estimated label-noise "
        "rate and the label issues of a classifier's predictions",
    )
    q.add_argument(
        "preds",
        help="a .pt dict or .npz archive with 'labels' (N,) and 'pred_probs' (N, K) "
        "('logits' are softmaxed; optional 'class_names')",
    )
    q.add_argument(
        "--images",
        default=None,
        help="a .pt/.npz/.npy file of the N images ((N, C, H, W), uint8 or float; a .pt "
        "dict or .npz holds them under 'images'): write the grids",
    )
    q.add_argument("--out", default=None, help="folder for the grids with --images (default inspect_out)")
    q.add_argument("-n", type=int, default=32, help="tiles per grid (default 32)")
    q.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    sub.add_parser("info", help="build information (torch versions, CUDA, CPU capability)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted, 141 closed pipe)."""
    args = _build_parser().parse_args(argv)
    try:
        status = _run(args)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not in the interpreter's exit flush
        return status
    except BrokenPipeError:
        # The reader (e.g. `| head`) has gone: as the Python docs recommend, point stdout at devnull so
        # the exit flush cannot raise again, and stop quietly with the status of a process ended by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "info":
            from . import build_info

            for key, value in build_info().items():
                print(f"{key:<18}{value}")
            return 0
        if args.command == "inspect":
            result = inspect_labels(
                args.labels,
                args.column,
                ignore_index=args.ignore_index,
                num_classes=args.num_classes,
                max_rows=args.max_rows,
                header=args.header,
            )
            if args.json:
                print(json.dumps(result))
            return 0
        if args.command == "inspect-predictions":
            if args.out is not None and args.images is None:
                raise CLIError("--out names the folder for the grids: pass --images too")
            if args.n < 1:
                raise CLIError(f"-n must be >= 1, got {args.n}")
            result = inspect_predictions(args.preds, args.images, args.out, args.n)
            if args.json:
                print(json.dumps(result))
            return 0
        if args.command == "demo" and args.task == "segmentation":
            from .demo_seg import run_segmentation_demos

            run_segmentation_demos(args, CLIError)
            return 0
        if args.command == "demo":
            if args.steps is not None:
                raise CLIError("--steps applies to --task segmentation; the classification demo takes --epochs")
            args.epochs = 40 if args.epochs is None else args.epochs
            args.out = "demo_out" if args.out is None else args.out
            if args.epochs < 1 or args.seeds < 1:
                raise CLIError("--epochs and --seeds must be >= 1")
            from .demo import run_demo

            results = []
            for s in range(args.seed, args.seed + args.seeds):
                out = args.out if args.seeds == 1 else os.path.join(args.out, f"seed{s}")
                results.append(
                    run_demo(
                        args.device, args.epochs, s, out, feature_smote=not args.no_feature_smote, progress=not args.no_progress
                    )
                )
                print()
            if args.seeds > 1:
                print(f"mean +- std over seeds {args.seed}..{args.seed + args.seeds - 1}:")
                for key in ("accuracy", "balanced_accuracy", "macro_f1"):
                    a = np.array([r["plain"][key] for r in results])
                    b = np.array([r["balanced"][key] for r in results])
                    print(
                        f"  {key:<18} (a) {a.mean():.3f} +- {a.std():.3f}   (b) {b.mean():.3f} +- {b.std():.3f}   gain {np.mean(b - a):+.3f}"
                    )
                nov = {
                    key: np.array([r["novelty"][key] for r in results])
                    for key in ("auroc", "flag_rate_unseen", "flag_rate_ordinary")
                }
                print(
                    f"  novelty AUROC      (b) {nov['auroc'].mean():.3f} +- {nov['auroc'].std():.3f}   flagged: rotated "
                    f"{nov['flag_rate_unseen'].mean():.0%} +- {nov['flag_rate_unseen'].std():.0%}, ordinary test "
                    f"{nov['flag_rate_ordinary'].mean():.0%} +- {nov['flag_rate_ordinary'].std():.0%}"
                )
            return 0
    except (CLIError, MissingOptionalDependency) as exc:
        print(f"balancedtorch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
