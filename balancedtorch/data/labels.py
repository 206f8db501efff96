"""``labels_of``: the class labels of a dataset, without loading its samples."""

from __future__ import annotations

import warnings
from typing import Any, Callable, List, Optional, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset, Subset, TensorDataset

from .._labels import check_labels
from .._validate import refuse_meta

__all__ = ["labels_of", "as_labels"]

_LABEL_ATTRIBUTES = ("targets", "labels", "target", "label", "y")


_COLUMN_HINT = (
    "; or tell labels_of where integer labels are: labels_of(dataset, column=lambda ds: ...) "
    "returning one class index 0..C-1 per sample"
)


def _to_long(values: Any, where: str) -> Tensor:
    """check_labels, with what labels_of found and what to pass instead when it is not one integer per sample."""
    refuse_meta(values, where, "labels_of")
    try:
        return check_labels(
            values,
            where,
            caller="labels_of",
            allow_negative=True,
            allow_empty=True,
            device="cpu",
            shape_hint="; one label per sample: one-hot or multi-label targets need argmax or a column= callable",
        )
    except ValueError as exc:
        message = str(exc)
        if "non-numeric" in message or "one-hot" in message or "multi-hot" in message:
            raise ValueError(message + _COLUMN_HINT) from None
        raise


def _gather(raw: List[Any], where: str) -> Any:
    """Per-sample labels as one array: scalars as they are, tensors/arrays stacked (one-hot rows -> (N, C))."""
    if raw and all(isinstance(v, (Tensor, np.ndarray)) for v in raw):
        parts = [torch.as_tensor(v) for v in raw]
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) > 1:
            raise ValueError(
                f"labels_of: {where} have different shapes {sorted(shapes)[:3]}; expected one class index per sample"
            )
        return torch.stack(parts)
    return raw


def _sample_label(sample: Any, index: int) -> Any:
    if isinstance(sample, dict):
        for key in ("label", "labels", "target", "targets", "y"):
            if key in sample:
                return sample[key]
        raise ValueError(f"labels_of: sample {index} is a dict without a 'label'/'target' key")
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return sample[1]
    raise ValueError(f"labels_of: cannot find the label in sample {index} of type {type(sample).__name__}")


def labels_of(dataset: Any, column: Optional[Union[str, Callable[[Any], Any]]] = None) -> Tensor:
    """The class label of every sample of ``dataset``, as an int64 tensor.

    Looked up, in this order, without touching the samples where possible:

    * ``column``: a callable ``column(dataset) -> labels``, or the name of a
      Hugging Face ``datasets.Dataset`` column / of an attribute;
    * ``Subset`` and ``ConcatDataset``: recursively, with their index mapping;
    * ``TensorDataset``: its last tensor;
    * a Hugging Face dataset's ``"label"`` / ``"labels"`` column;
    * a ``.targets`` / ``.labels`` attribute (torchvision's ImageFolder,
      DatasetFolder, CIFAR, MNIST, SVHN, ...);
    * otherwise every sample is loaded once (``dataset[i][1]`` or the
      ``"label"`` key of a dict), with a progress bar (closed however reading
      ends) and a warning.

    Labels must be one class index per sample (integral floats accepted).
    String labels and one-hot or multi-hot targets raise a ``ValueError``
    that says what was found and what to pass instead (``argmax(1)``, a
    mapping of class names to integers, or ``column=``).

    Args:
        dataset: a map-style dataset, or already a sequence/array/tensor of labels.
        column (str or callable, optional): where the labels are.

    Returns:
        Tensor[len(dataset)]: int64 labels.

    Example:
        >>> import balancedtorch as bt
        >>> import torch
        >>> from torch.utils.data import ConcatDataset, Subset, TensorDataset
        >>> dataset = TensorDataset(torch.randn(4, 2), torch.tensor([1, 0, 1, 2]))
        >>> bt.data.labels_of(ConcatDataset([dataset, Subset(dataset, [3])]))  # no sample is loaded
        tensor([1, 0, 1, 2, 2])

        ``bt.data.labels_of(torchvision.datasets.ImageFolder(root))`` reads ``.targets`` the same way.
    """
    if callable(column):
        return _to_long(column(dataset), "column(dataset)")
    if column is not None and not isinstance(column, str):
        raise TypeError(f"labels_of: column must be a str (a column or attribute name) or a callable, got {column!r}")
    if isinstance(dataset, (Tensor, np.ndarray, list, tuple)):
        return _to_long(dataset, "labels")
    if isinstance(dataset, Subset):
        indices = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return labels_of(dataset.dataset, column)[indices]
    if isinstance(dataset, ConcatDataset):
        parts = [labels_of(d, column) for d in dataset.datasets]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    if isinstance(dataset, TensorDataset) and column is None:
        return _to_long(dataset.tensors[-1], "the last tensor of the TensorDataset")
    column_names = getattr(dataset, "column_names", None)
    if isinstance(column_names, (list, tuple)):  # Hugging Face datasets.Dataset
        name = column or next((c for c in ("label", "labels") if c in column_names), None)
        if name is None or name not in column_names:
            raise ValueError(f"labels_of: no label column {name!r} among {column_names}; pass column=")
        return _to_long(dataset[name], f"column {name!r}")
    for name in ([column] if column else []) + list(_LABEL_ATTRIBUTES):
        values = getattr(dataset, name, None)
        if values is not None and not callable(values):
            labels = _to_long(values, f".{name}")
            if hasattr(dataset, "__len__") and len(labels) != len(dataset):
                raise ValueError(f"labels_of: .{name} has {len(labels)} entries but the dataset has {len(dataset)}")
            return labels
    if column:
        raise ValueError(f"labels_of: {type(dataset).__name__} has no attribute or column {column!r}")
    if not (isinstance(dataset, Dataset) or hasattr(dataset, "__getitem__")) or not hasattr(dataset, "__len__"):
        raise TypeError(f"labels_of: expected a map-style dataset or a sequence of labels, got {type(dataset).__name__}")
    warnings.warn(
        f"labels_of: {type(dataset).__name__} exposes no labels (.targets, .labels, a label column); "
        "loading every sample once to read them. Pass column= or set .targets to skip this.",
        stacklevel=2,
    )
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dev dependency
        tqdm = None
    raw: List[Any] = []
    bar = tqdm(total=len(dataset), desc="reading labels", unit="sample") if tqdm is not None else None
    try:  # the bar is closed however reading ends (a bad sample raises half-way)
        for i in range(len(dataset)):
            raw.append(_sample_label(dataset[i], i))
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return _to_long(_gather(raw, "the samples' labels"), "the samples' labels")


def as_labels(
    labels_or_dataset: Any, name: str = "labels", *, num_classes: Optional[int] = None, caller: Optional[str] = None
) -> Tensor:
    """Labels given directly (tensor, array, list) or via a dataset (:func:`labels_of`), validated.

    What the samplers do with their ``labels`` argument.

    Args:
        labels_or_dataset: a tensor/array/sequence of labels or a dataset.
        name (str): the argument name used in messages. Default ``"labels"``.
        num_classes (int, optional): labels must then be < ``num_classes``.
        caller (str, optional): a prefix for the messages.

    Returns:
        Tensor[N] int64 on the CPU: non-empty, >= 0 and, with
        ``num_classes``, < ``num_classes``.

    Example:
        >>> import torch
        >>> as_labels(torch.utils.data.TensorDataset(torch.randn(3, 2), torch.tensor([1, 0, 1])))
        tensor([1, 0, 1])
    """
    return check_labels(labels_of(labels_or_dataset), name, caller=caller, num_classes=num_classes)
