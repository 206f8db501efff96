"""Reading the command line's inputs: labels and masks (CSV/TSV sniffed, .npy, .pt, one label per line), predictions and images (.pt, .npz, .npy).

``read_labels`` / ``_load`` for ``inspect``; ``read_predictions`` and
``_read_images`` for ``inspect-predictions``. Every unreadable or
ill-shaped file is a :class:`CLIError` of one line.
"""

from __future__ import annotations

import csv
import importlib
import io
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._common import CLIError, _names_list, _one_line

__all__ = ["read_labels", "read_predictions"]


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


_LABEL_KEYS = ("labels", "targets", "y")
_PROB_KEYS = ("pred_probs", "probs", "probabilities")
_IMAGE_KEYS = ("images", "x", "inputs")


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
