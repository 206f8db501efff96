"""Readable results of the mistake tools: dicts of tensors that print as tables."""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .. import _validate
from .._optional import install_hint

__all__ = ["RankedMistakes", "MistakesPerClass", "DEFAULT_MAX_ROWS"]

#: Rows printed by ``str()`` before the table is cut with "… N more".
DEFAULT_MAX_ROWS = 20
#: ``(predicted class, count)`` pairs printed per class by :class:`MistakesPerClass`.
CONFUSED_SHOWN = 3

_DEFAULT = object()

Mistake = namedtuple("Mistake", ["index", "target", "prediction", "confidence"])
Mistake.__doc__ = """One mispredicted sample: ``target`` and ``prediction`` are class names when given, else ids."""
ClassMistakes = namedtuple("ClassMistakes", ["label", "count", "support", "rate", "confused_with"])
ClassMistakes.__doc__ = (
    """One class's mistakes: ``label`` (and the classes in ``confused_with``) are names when given, else ids."""
)


def check_class_names(class_names: Any, num_classes: int) -> Optional[List[str]]:
    """``class_names`` as a list of ``num_classes`` strings (None stays None)."""
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes, Mapping)) or not hasattr(class_names, "__iter__"):
        raise TypeError(
            f"class_names must be a sequence of {num_classes} names (one per class, in class order), "
            f"got {type(class_names).__name__}"
        )
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names has {len(names)} name{'' if len(names) == 1 else 's'} but pred_probs has {num_classes} classes (columns): "
            f"pass one name per class, in class order"
        )
    return names


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str, seps: Optional[Sequence[str]] = None) -> List[str]:
    """Lines of an aligned table; ``align`` holds one '<' or '>' per column, ``seps`` the gaps (two spaces)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    seps = list(seps) if seps is not None else ["  "] * (len(header) - 1)
    lines = []
    for cells in [header, *rows]:
        padded = [f"{cell:{a}{w}}" for cell, a, w in zip(cells, align, widths)]
        line = padded[0] + "".join(sep + cell for sep, cell in zip(seps, padded[1:]))
        lines.append(line.rstrip())
    return lines


class _MistakeTable(dict):
    """A dict of equal-length columns, with names for the class ids and a table for ``str()``."""

    _noun = "rows"

    def __init__(
        self, data: Dict[str, Any], class_names: Optional[List[str]], num_samples: int, max_rows: Any = DEFAULT_MAX_ROWS
    ):
        super().__init__(data)
        self.class_names = class_names
        self.num_samples = int(num_samples)
        self.max_rows = max_rows

    @property
    def max_rows(self) -> Optional[int]:
        """Rows that ``str()`` shows before "… N more" (default 20; None: every row)."""
        return self._max_rows

    @max_rows.setter
    def max_rows(self, value: Any) -> None:
        self._max_rows = _validate.integer(value, "max_rows", low=1, optional=True)  # None: no limit

    @property
    def num_rows(self) -> int:
        """Rows of the table (``len(r)`` is the number of keys, as for any Mapping)."""
        return len(next(iter(self.values())))

    def _name(self, c: int) -> Any:
        return self.class_names[c] if self.class_names is not None else c

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        names = ""
        if self.class_names is not None:
            shown = self.class_names if len(self.class_names) <= 6 else [*self.class_names[:5], "…"]
            names = f", class_names=[{', '.join(n if n == '…' else repr(n) for n in shown)}]"
        return (
            f"{type(self).__name__}({self.num_rows} {self._noun} of {self.num_samples} samples, "
            f"keys={list(self.keys())!r}{names}; print() it for the table)"
        )

    def _cut(self, max_rows: Any) -> Optional[int]:
        return self._max_rows if max_rows is _DEFAULT else _validate.integer(max_rows, "max_rows", low=1, optional=True)

    def _more(self, shown: int) -> List[str]:
        hidden = self.num_rows - shown
        return [f"… {hidden} more {self._noun}"] if hidden > 0 else []

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (pandas is optional: ImportError if it is missing)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                f"{type(self).__name__}.to_pandas() needs pandas: {install_hint('pandas')}; without it, read the "
                f"columns as tensors: r[{next(iter(self))!r}], or rows as tuples: r.rows()"
            ) from err
        return pd.DataFrame(self._columns())


class RankedMistakes(_MistakeTable):
    """Mispredicted samples, most confident mistake first: what :func:`rank_mistakes` returns.

    A ``dict`` (so a ``Mapping``: ``r["index"]``, ``keys()``, ``items()``,
    ``dict(r)`` work as before) of four equal-length tensors on the device of
    ``pred_probs``: ``index`` (int64), ``target`` (int64, the given label),
    ``prediction`` (int64, the argmax) and ``confidence`` (``pred_probs``'s
    dtype, the probability of the prediction). ``len(r)`` is the number of
    keys (4), as for any Mapping; the number of mistakes is ``r.num_rows``
    (``len(r["index"])``). Across ranks (``rank_mistakes(...,
    distributed=True)``) a fifth column, ``global_rank`` (int64), gives each
    row's position in the ranking of all ranks' mistakes.

    ``print(r)`` shows an aligned table (class names when ``class_names`` was
    given, else class ids), cut after ``r.max_rows`` rows (default 20) with
    "… N more mistakes"; ``r.to_string(max_rows=None)`` gives every row.
    ``r.rows()`` gives plain Python tuples, ``r.to_pandas()`` a DataFrame.

    Attributes:
        class_names (list of str or None): the class names, in class order.
        num_samples (int): samples checked (N).
        max_rows (int or None): rows shown by ``str()``; settable.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 2, 1, 2])
        >>> pred_probs = torch.tensor([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.91, 0.05, 0.04],
        ...                            [0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]],
        ...                           dtype=torch.float64)
        >>> m = bt.quality.rank_mistakes(labels, pred_probs, class_names=["red", "yellow", "green"])
        >>> print(m)
        3 mistakes in 8 samples, most confident first
        index  target → prediction  confidence
            3  yellow → red             0.9100
            5   green → yellow          0.7000
            1     red → yellow          0.6000
    """

    _noun = "mistakes"

    def rows(self) -> List[Mistake]:
        """Every row as a ``Mistake(index, target, prediction, confidence)`` namedtuple of Python values.

        ``target`` and ``prediction`` are class names when ``class_names`` was
        given, else int ids; ``index`` is an int, ``confidence`` a float.
        """
        return self._rows(None)

    def _rows(self, limit: Optional[int]) -> List[Mistake]:
        cut = slice(None, limit)
        index, target, prediction, confidence = (self[k][cut].tolist() for k in ("index", "target", "prediction", "confidence"))
        return [Mistake(i, self._name(t), self._name(p), c) for i, t, p, c in zip(index, target, prediction, confidence)]

    def to_string(self, max_rows: Any = _DEFAULT) -> str:
        """The table; ``max_rows`` (int, or None for every row) overrides ``self.max_rows``."""
        limit = self._cut(max_rows)
        n = self.num_rows
        if n == 0:
            return f"no mistakes: every prediction equals its label ({self.num_samples} samples)"
        rows = self._rows(limit)
        cells = [(str(r.index), str(r.target), "→", str(r.prediction), f"{r.confidence:.4f}") for r in rows]
        title = f"{n} {'mistake' if n == 1 else 'mistakes'} in {self.num_samples} samples, most confident first"
        # "target → prediction": the arrow column is joined with single spaces
        table = _table(("index", "target", "→", "prediction", "confidence"), cells, ">><<>", ("  ", " ", " ", "  "))
        return "\n".join([title, *table, *self._more(len(rows))])

    def _columns(self) -> Dict[str, Any]:
        columns = {k: self[k].cpu().numpy() for k in ("index", "target", "prediction", "confidence", "global_rank") if k in self}
        if self.class_names is not None:
            columns["target_name"] = [self.class_names[t] for t in columns["target"]]
            columns["prediction_name"] = [self.class_names[p] for p in columns["prediction"]]
        return columns


class MistakesPerClass(_MistakeTable):
    """Per class, how many of its samples are mispredicted and as what: what :func:`mistakes_per_class` returns.

    A ``dict`` (so a ``Mapping``: ``r["rate"]``, ``keys()``, ``dict(r)`` work
    as before) with one row per class, worst first: ``class`` (Tensor[K]
    int64), ``count`` (Tensor[K] int64, mistakes), ``support`` (Tensor[K]
    int64, samples), ``rate`` (Tensor[K] float64, count / support, 0 for an
    absent class) and ``confused_with`` (a list of K lists of
    ``(predicted class id, count)`` pairs, most frequent first); all on the
    CPU. ``len(r)`` is the number of keys (5), as for any Mapping; the number
    of classes is ``r.num_rows``.

    ``print(r)`` shows an aligned table (class names when ``class_names`` was
    given), cut after ``r.max_rows`` rows (default 20) with "… N more
    classes"; each class lists its 3 most frequent wrong predictions.

    Attributes:
        class_names (list of str or None): the class names, in class order.
        num_samples (int): samples checked (N).
        max_rows (int or None): rows shown by ``str()``; settable.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 2, 1, 2])
        >>> pred_probs = torch.tensor([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.91, 0.05, 0.04],
        ...                            [0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]],
        ...                           dtype=torch.float64)
        >>> per = bt.quality.mistakes_per_class(labels, pred_probs, class_names=["red", "yellow", "green"])
        >>> print(per)
        3 of 8 samples mispredicted, classes by mistake rate
        class   mistakes  support    rate  confused with
        green          1        2  50.00%  yellow 1
        red            1        3  33.33%  yellow 1
        yellow         1        3  33.33%  red 1
    """

    _noun = "classes"

    def rows(self) -> List[ClassMistakes]:
        """Every row as a ``ClassMistakes(label, count, support, rate, confused_with)`` namedtuple of Python values.

        ``label`` and the classes of the ``(class, count)`` pairs in
        ``confused_with`` are names when ``class_names`` was given, else int ids.
        """
        return self._rows(None)

    def _rows(self, limit: Optional[int]) -> List[ClassMistakes]:
        cut = slice(None, limit)
        classes, count, support, rate = (self[k][cut].tolist() for k in ("class", "count", "support", "rate"))
        confused = self["confused_with"][cut]
        return [
            ClassMistakes(self._name(c), n, s, r, [(self._name(j), m) for j, m in pairs])
            for c, n, s, r, pairs in zip(classes, count, support, rate, confused)
        ]

    def to_string(self, max_rows: Any = _DEFAULT) -> str:
        """The table; ``max_rows`` (int, or None for every row) overrides ``self.max_rows``."""
        limit = self._cut(max_rows)
        rows = self._rows(limit)
        cells = []
        for r in rows:
            confused = ", ".join(f"{j} {m}" for j, m in r.confused_with[:CONFUSED_SHOWN])
            if len(r.confused_with) > CONFUSED_SHOWN:
                confused += ", …"
            rate = f"{100 * r.rate:.2f}%" if r.support else "-"
            cells.append((str(r.label), str(r.count), str(r.support), rate, confused))
        wrong = int(self["count"].sum())
        title = f"{wrong} of {self.num_samples} samples mispredicted, classes by mistake rate"
        table = _table(("class", "mistakes", "support", "rate", "confused with"), cells, "<>>><")
        return "\n".join([title, *table, *self._more(len(rows))])

    def _columns(self) -> Dict[str, Any]:
        columns: Dict[str, Any] = {"class": self["class"].numpy()}
        if self.class_names is not None:
            columns["name"] = [self.class_names[c] for c in columns["class"]]
        columns.update({k: self[k].numpy() for k in ("count", "support", "rate")})
        columns["confused_with"] = list(self["confused_with"])
        return columns
