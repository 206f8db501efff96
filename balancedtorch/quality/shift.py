"""Sampling bias and shift: slice coverage, label-shift estimation, prediction drift."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import Comm, cross_rank, use_distributed
from .._labels import check_labels, infer_num_classes
from .._validate import UNSET
from ._exact_sums import exact_group_sums, round_ratio
from ._inputs import as_tensor, check_pred_probs

__all__ = ["coverage_report", "CoverageReport", "LabelShiftEstimator", "DriftMonitor"]


# --- coverage -------------------------------------------------------------------


class CoverageReport(dict):
    """What :func:`coverage_report` returns: a dict that prints as one table per attribute.

    ``{attribute: {"values": [V values], "counts": Tensor[V, K] int64,
    "expected": Tensor[V, K] float64, "flags": [dict(value, class, count,
    expected, reason)]}}``; ``print(report)`` (and ``repr``) show the tables,
    with class names as columns and the flagged cells marked.

    Args:
        data (dict): the per-attribute entries above.
        class_names (sequence of str): K names for the table columns.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1] * 5)
        >>> orientation = ["rotated"] * 2 + ["upright"] * 38  # two rotated samples, both class 0
        >>> report = bt.quality.coverage_report(labels, {"orientation": orientation})
        >>> report["orientation"]["values"], report["orientation"]["counts"]      # Tensor[V, K]
        (['rotated', 'upright'], tensor([[ 2,  0],
                [18, 20]]))
        >>> [(f["value"], f["class"], f["reason"]) for f in report.flags]  # every flagged cell
        [('rotated', 0, 'rare'), ('rotated', 1, 'empty')]
    """

    def __init__(self, data: Dict[str, Any], class_names: Sequence[str]):
        super().__init__(data)
        self.class_names = list(class_names)

    @property
    def flags(self) -> list:
        """Every flagged (attribute, value, class) cell, all attributes together."""
        return [flag for entry in self.values() for flag in entry["flags"]]

    def __str__(self) -> str:
        out = []
        for attribute, entry in self.items():
            names = [str(v) for v in entry["values"]]
            width = max([len(attribute)] + [len(n) for n in names])
            cols = max([6] + [len(c) for c in self.class_names])
            out.append(f"{attribute:<{width}} " + "".join(f"{c:>{cols}} " for c in self.class_names))
            marks = {(f["value"], f["class"]): f["reason"][0] for f in entry["flags"]}
            for i, name in enumerate(names):
                cells = [
                    f"{str(int(entry['counts'][i, k])) + marks.get((entry['values'][i], k), ' '):>{cols + 1}}"
                    for k in range(len(self.class_names))
                ]
                out.append(f"{name:<{width}} " + "".join(cells))
            for f in entry["flags"]:
                out.append(
                    f"  ! {attribute}={f['value']} x class {self.class_names[f['class']]}: {f['count']} samples "
                    f"(expected {f['expected']:.1f} if independent) -> {f['reason']}"
                )
            out.append("")
        out.append("flags: e = empty, r = rare (below min_count), u = under-represented (below ratio x expected)")
        return "\n".join(out)

    __repr__ = __str__


def coverage_report(
    labels: Any,
    groups: Mapping[str, Any],
    *,
    min_count: int = 5,
    ratio: float = 0.25,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
) -> CoverageReport:
    """How well each slice (attribute value) of the data covers each class.

    For every attribute (e.g. ``{"orientation": [...], "weather": [...]}``, one
    value per sample) counts the samples of each value x class and flags the
    cells that are **empty**, **rare** (fewer than ``min_count``) or
    **under-represented** (fewer than ``ratio`` x the count expected if the
    attribute and the class were independent, row total x column total / N).

    Args:
        labels (Tensor[N] | array | sequence): integer class labels.
        groups (dict): ``{attribute: per-sample values (N,)}``.
        min_count (int): below it a non-empty cell is flagged rare. Default 5.
        ratio (float): in ``[0, 1]``; below ``ratio`` x expected a cell is
            flagged under-represented. Default 0.25.
        num_classes (int, optional): number of classes K; default
            ``labels.max() + 1``, refused above 2**24 (a stray id such as
            2**40 names itself in a ValueError instead of sizing the tables):
            pass ``num_classes=`` for more classes.
        class_names (sequence of str, optional): K names for the tables.

    Returns:
        :class:`CoverageReport`: a dict ``{attribute: {"values": [...],
        "counts": Tensor[V, K], "expected": Tensor[V, K], "flags": [dict(value,
        class, count, expected, reason)]}}``; ``print(report)`` shows the tables.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1] * 5)
        >>> orientation = ["rotated"] * 2 + ["upright"] * 38
        >>> time_of_day = ["day", "night"] * 20
        >>> print(bt.quality.coverage_report(labels, {"orientation": orientation, "time": time_of_day}))
        orientation      0      1
        rotated          2r     0e
        upright         18     20
          ! orientation=rotated x class 0: 2 samples (expected 1.0 if independent) -> rare
          ! orientation=rotated x class 1: 0 samples (expected 1.0 if independent) -> empty
        <BLANKLINE>
        time       0      1
        day       15      5
        night      5     15
        <BLANKLINE>
        flags: e = empty, r = rare (below min_count), u = under-represented (below ratio x expected)
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty dict {attribute: per-sample values}")
    owner = "coverage_report"
    min_count = _validate.integer(min_count, "min_count", low=0, caller=owner)
    ratio = _validate.real(ratio, "ratio", low=0, high=1, caller=owner)
    y = check_labels(labels, num_classes=num_classes).cpu()
    K = int(num_classes) if num_classes is not None else infer_num_classes(y, caller="coverage_report")
    names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
    if len(names) != K:
        raise ValueError(f"class_names has {len(names)} names for {K} classes")
    report = {}
    for attribute, values in groups.items():
        array = np.asarray(values.cpu() if isinstance(values, Tensor) else values)
        if array.ndim != 1 or len(array) != len(y):
            raise ValueError(f"groups[{attribute!r}] must have one value per sample ({len(y)}), got shape {array.shape}")
        uniques, codes = np.unique(array, return_inverse=True)
        V = len(uniques)
        counts = torch.bincount(torch.as_tensor(codes.reshape(-1)) * K + y, minlength=V * K).view(V, K)
        expected = counts.sum(1, keepdim=True).double() * counts.sum(0, keepdim=True).double() / len(y)
        flags = []
        for v in range(V):
            for k in range(K):
                c, e = int(counts[v, k]), float(expected[v, k])
                reason = None
                if c == 0:
                    reason = "empty"
                elif c < min_count:
                    reason = "rare"
                elif c < ratio * e:
                    reason = "under-represented"
                if reason:
                    value = uniques[v].item() if hasattr(uniques[v], "item") else uniques[v]
                    flags.append({"value": value, "class": k, "count": c, "expected": e, "reason": reason})
        values_list = [u.item() if hasattr(u, "item") else u for u in uniques]
        report[attribute] = {"values": values_list, "counts": counts, "expected": expected, "flags": flags}
    return CoverageReport(report, names)


# --- label shift ----------------------------------------------------------------


_ARGMAX_HINT = ", or the predicted labels logits.argmax(1)"


def _prediction_matrix(preds: Any, num_classes: int, name: str) -> Tensor:
    """(N, K) float64: one-hot of predicted labels, or the probabilities themselves."""
    t = as_tensor(preds, name)
    if t.dim() == 2:
        if t.shape[1] != num_classes:
            raise ValueError(f"{name} has {t.shape[1]} columns but num_classes={num_classes}")
        return check_pred_probs(t, None, name, logits_hint=_ARGMAX_HINT).double().cpu()
    labels = check_labels(t, name, num_classes=num_classes).cpu()
    return torch.nn.functional.one_hot(labels, num_classes).double()


class LabelShiftEstimator:
    """Black-box shift estimation (Lipton, Wang & Smola, ICML 2018).

    Under label shift (p(x | y) fixed, p(y) changed) the distribution of a
    fixed classifier's predictions on the target domain, mu, satisfies
    ``mu = C w`` with ``C[i, j] = p_source(prediction = i, y = j)``. ``fit``
    estimates C on held-out source data; ``estimate`` solves for the
    importance weights ``w = C^-1 mu`` (clipped at 0) and the target prior
    ``q(y) = w * p_source(y)`` (normalised). The weights can feed a loss's
    ``weight=`` or a sampler. Predictions may be labels ``(N,)`` or
    probabilities ``(N, K)`` (the soft variant; logits are refused with a
    hint to apply softmax).

    Args:
        num_classes (int): K, at least 2.

    Attributes:
        confusion_ (Tensor[K, K] float64): joint of (prediction, true label)
            on the source data, set by :meth:`fit`.
        source_prior_ (Tensor[K] float64): class shares of ``val_labels``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> def predict(y):  # a classifier right 80% of the time, else a random class
        ...     right = torch.rand(len(y), generator=g) < 0.8
        ...     return torch.where(right, y, torch.randint(0, 3, (len(y),), generator=g))
        >>> val_labels = torch.randint(0, 3, (3000,), generator=g)        # balanced validation set
        >>> val_preds = predict(val_labels)
        >>> test_labels = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), 3000, replacement=True, generator=g)
        >>> test_preds = predict(test_labels)                             # deployment: labels unknown
        >>> est = bt.quality.LabelShiftEstimator(3).fit(val_labels, val_preds)
        >>> shift = est.estimate(test_preds)
        >>> shift["prior"]  # the deployment prior was 0.6, 0.3, 0.1
        tensor([0.5742, 0.3198, 0.1060], dtype=torch.float64)
        >>> criterion = bt.nn.CrossEntropyLoss(weight=shift["weights"].float())
    """

    def __init__(self, num_classes: int) -> None:
        # label shift needs two classes to shift between
        self.num_classes = _validate.integer(num_classes, "num_classes", low=2, caller=type(self).__name__)
        self.confusion_: Optional[Tensor] = None
        self.source_prior_: Optional[Tensor] = None

    def fit(self, val_labels: Any, val_preds: Any, *, distributed: Optional[bool] = None) -> "LabelShiftEstimator":
        """Estimates the confusion of a fixed classifier on held-out source (validation) data.

        ``confusion_[i, j]`` is the exact sum of the prediction-``i``
        probabilities of the class-``j`` samples, divided by N and rounded
        once to float64: it does not depend on the order of the samples.

        Args:
            val_labels (Tensor[N] | array | sequence): true labels in [0, K).
            val_preds (Tensor[N] | Tensor[N, K] | array): the classifier's
                predicted labels, or its probabilities (rows sum to 1).
            distributed (bool or None): the rows are this rank's share of the
                validation data, sharded across ``torch.distributed`` ranks:
                the per-class sums are all-reduced (exact integer sums, one
                all-reduce of ``K * K`` limbs), so every rank holds the same
                estimator, equal to one fitted on all ranks' rows in one
                process. **Collective**: every rank must call ``fit``; a rank
                may hold 0 rows. None (default): whether a process group of
                world size > 1 is initialised; False: this rank's rows only.

        Returns:
            self (scikit-learn convention), with ``confusion_`` and ``source_prior_`` set.

        Raises:
            ValueError: labels out of range, shapes that disagree, probabilities
                that are not probabilities; across ranks, every rank raises
                when any rank's input is invalid (no rank is left waiting).

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> val_labels = torch.tensor([0, 0, 1, 1, 2, 2])
            >>> val_probs = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
            ...                           [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.3, 0.1, 0.6]])
            >>> est = bt.quality.LabelShiftEstimator(3).fit(val_labels, val_probs)
            >>> est.source_prior_
            tensor([0.3333, 0.3333, 0.3333], dtype=torch.float64)
        """
        comm = Comm() if use_distributed(distributed) else None
        K = self.num_classes
        error, y, P = None, None, None
        try:
            empty = comm is not None and as_tensor(val_preds, "val_preds").shape[:1] == (0,)
            y = check_labels(val_labels, "val_labels", num_classes=K, allow_empty=empty).cpu()
            P = (
                torch.zeros(0, K, dtype=torch.float64)
                if empty and y.numel() == 0
                else _prediction_matrix(val_preds, K, "val_preds")
            )
            if P.shape[0] != y.numel():
                raise ValueError(f"val_preds has {P.shape[0]} rows but val_labels has {y.numel()} entries")
        except (ValueError, TypeError) as err:
            if comm is None:
                raise
            error = err
        if comm is not None:
            comm.agree(error, [], "LabelShiftEstimator.fit")
        groups = (torch.arange(K) * K)[None, :] + y[:, None]  # [prediction, true], flattened
        sums = exact_group_sums(P.flatten(), groups.flatten(), K * K, comm)
        counts = torch.bincount(y, minlength=K)
        if comm is not None:
            counts = comm.all_reduce(counts)
        n = int(counts.sum())
        if n == 0:
            raise ValueError("val_labels is empty on every rank")
        self.confusion_ = torch.tensor([float(round_ratio(v, n, np.float64)) for v in sums], dtype=torch.float64).view(K, K)
        self.source_prior_ = counts.double() / n
        return self

    def estimate(self, target_preds: Any) -> Dict[str, Tensor]:
        """The target domain's class prior and the importance weights, from unlabeled predictions.

        Args:
            target_preds (Tensor[M] | Tensor[M, K] | array): the same
                classifier's predicted labels or probabilities on target data.

        Returns:
            dict: ``prior`` (Tensor[K] float64, q(y) on the target, sums to 1)
            and ``weights`` (Tensor[K] float64, q(y) / p(y); 0 for a class
            absent from ``val_labels``), on the CPU.

        Raises:
            RuntimeError: :meth:`fit` was not called.
            ValueError: the source confusion matrix is singular (a class never
                predicted or never present), or no prior fits.

        Example:
            >>> import torch
            >>> import balancedtorch as bt
            >>> val_labels = torch.tensor([0, 0, 1, 1, 2, 2])
            >>> val_probs = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
            ...                           [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.3, 0.1, 0.6]])
            >>> est = bt.quality.LabelShiftEstimator(3).fit(val_labels, val_probs)
            >>> test_probs = torch.tensor([[0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
            >>> shift = est.estimate(test_probs)
            >>> shift["prior"], shift["weights"]  # weights: deployment prior / validation prior
            (tensor([0.7025, 0.0248, 0.2727], dtype=torch.float64), tensor([2.1074, 0.0744, 0.8182], dtype=torch.float64))
        """
        if self.confusion_ is None:
            raise RuntimeError("LabelShiftEstimator: call fit(val_labels, val_preds) first")
        mu = _prediction_matrix(target_preds, self.num_classes, "target_preds").mean(0)
        C = self.confusion_
        cond = torch.linalg.cond(C)
        if not torch.isfinite(cond) or float(cond) > 1e12:
            raise ValueError(
                f"the confusion matrix of the source predictions is singular (condition number {float(cond):.3g}): "
                "some class is never predicted or never present in val_labels; BBSE cannot invert it"
            )
        w = torch.linalg.solve(C, mu).clamp_min(0)
        prior = w * self.source_prior_
        total = prior.sum()
        if not total > 0:
            raise ValueError("the estimated target prior is zero everywhere; the predictions do not fit a label shift")
        prior = prior / total
        weights = torch.where(self.source_prior_ > 0, prior / self.source_prior_.clamp_min(1e-300), torch.zeros_like(prior))
        return {"prior": prior, "weights": weights}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"


# --- drift ------------------------------------------------------------------------

_DRIFT_METHODS = ("both", "psi", "chi2")


def _predicted_labels(preds: Any, num_classes: Optional[int], name: str, reference_classes: bool = False) -> Tensor:
    """1-D int64 predicted labels (argmax of probabilities), checked against ``num_classes``."""
    t = as_tensor(preds, name)
    if t.dim() == 2:
        if num_classes is not None and t.shape[1] != num_classes:
            of = f"the reference has {num_classes} classes" if reference_classes else f"num_classes={num_classes}"
            raise ValueError(f"{name} has {t.shape[1]} columns (classes) but {of}")
        return check_pred_probs(t, None, name, logits_hint=_ARGMAX_HINT).argmax(1).cpu()
    labels = check_labels(t, name).cpu()
    if num_classes is not None:
        high = int(labels.max())
        if high >= num_classes:
            i = int((labels >= num_classes).nonzero()[0, 0])
            if reference_classes:
                raise ValueError(
                    f"{name}[{i}] = {int(labels[i])} is not a class of the reference, which has {num_classes} classes "
                    f"(labels 0..{num_classes - 1}); build the monitor with num_classes= covering every class"
                )
            raise ValueError(f"{name} must be < num_classes={num_classes}, got {name}[{i}] = {int(labels[i])}")
    return labels


def _chi2_homogeneity(reference: Tensor, current: Tensor):
    """Chi-square test of homogeneity of the 2 x K table [reference; current].

    Columns empty in both rows are dropped (df = K' - 1 over the remaining
    K' columns); no continuity correction. Equals
    ``scipy.stats.chi2_contingency(table, correction=False)`` on the table
    without its empty columns. Broadcasts over leading dimensions
    (``(..., K)`` counts in, ``(...)`` statistic, p-value and df out), both
    rows must have a positive total.
    """
    ref, cur = reference.double(), current.double()
    col = ref + cur
    n_ref = ref.sum(-1, keepdim=True)
    n_cur = cur.sum(-1, keepdim=True)
    n = n_ref + n_cur
    used = col > 0
    e_ref = n_ref * col / n
    e_cur = n_cur * col / n
    one = torch.ones_like(col)
    terms = (ref - e_ref) ** 2 / torch.where(used, e_ref, one) + (cur - e_cur) ** 2 / torch.where(used, e_cur, one)
    chi2 = torch.where(used, terms, torch.zeros_like(terms)).sum(-1)
    dof = used.sum(-1) - 1
    p_value = torch.where(
        dof >= 1,
        torch.special.gammaincc(dof.clamp_min(1).double() / 2, chi2 / 2),
        torch.ones_like(chi2),
    )
    return chi2, p_value, dof


class DriftMonitor:
    """Watches a deployed model's predicted-class distribution for shift.

    Built from reference predictions (labels ``(N,)`` or probabilities
    ``(N, K)``, argmax taken) or a reference histogram
    (:meth:`from_histogram`). ``update(preds)`` streams production
    predictions; ``status()`` compares the production class counts with the
    reference's and reports:

    * ``psi``: the population stability index (shares floored at ``eps``);
    * ``chi2``, ``p_value``, ``dof``: a chi-square test of homogeneity on the
      2 x K contingency table (reference counts vs production counts; classes
      absent from both dropped, ``dof`` = classes left - 1; the p-value equals
      ``scipy.stats.chi2_contingency(table, correction=False)``). It is a
      two-sample test: the reference is a sample too, and its own sampling
      error is accounted for, so with production data from the reference's
      distribution the test flags drift at rate ``alpha`` however many
      predictions are streamed (a goodness-of-fit test against the reference
      shares taken as exact flags most unchanged streams once production
      outnumbers the reference). Like every chi-square test it is
      approximate when a class expects fewer than ~5 reference samples;
    * ``drift``: by ``method``: ``"both"`` (default) ``psi > psi_threshold or
      p_value < alpha``; ``"psi"``: ``psi > psi_threshold`` only; ``"chi2"``:
      ``p_value < alpha`` only.

    With ``window`` only the latest ``window`` production predictions count
    (a ring buffer of labels, oldest dropped; ``update`` costs O(batch + K)
    whatever the window), so a late shift is not diluted by everything seen
    before. Without it every prediction since the last ``reset()`` counts.

    Distributed (``torch.distributed`` initialised, world size > 1):
    ``status()`` is the one collective (one all-reduce of the K counts): call
    it on **every** rank, each gets the same result; ``status(distributed=False)``
    compares this rank's own counts and never communicates. ``update`` and
    ``reset`` are local. The reference must be the same on every rank; the
    window is per rank (the reduced status covers each rank's latest
    ``window`` predictions).

    Args:
        reference_preds: labels ``(N,)`` or probabilities ``(N, K)`` of the
            model on reference (validation) data.
        window (int, optional): number of latest production predictions
            compared (per rank); None (default): all since ``reset()``.
        num_classes (int, optional): K; default: the columns of
            probabilities, or the largest reference label + 1.
        psi_threshold (float): PSI above which drift is flagged (default 0.2).
        alpha (float): significance level of the chi-square test (default 0.01).
        eps (float): floor of the shares in the PSI (default 1e-4).
        method (str): ``"both"`` (default), ``"psi"`` or ``"chi2"``: which
            statistic flags ``drift``.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> def predict(y):  # a classifier right 80% of the time, else a random class
        ...     right = torch.rand(len(y), generator=g) < 0.8
        ...     return torch.where(right, y, torch.randint(0, 3, (len(y),), generator=g))
        >>> val_labels = torch.randint(0, 3, (3000,), generator=g)        # balanced validation set
        >>> val_preds = predict(val_labels)
        >>> test_labels = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), 3000, replacement=True, generator=g)
        >>> test_preds = predict(test_labels)                             # deployment: labels unknown
        >>> monitor = bt.quality.DriftMonitor(val_preds, window=1_000)
        >>> for batch in test_preds.split(500):  # model(batch).argmax(1) in production
        ...     monitor.update(batch)
        >>> status = monitor.status()
        >>> status["drift"], round(status["psi"], 2), status["current_share"]
        (True, 0.31, tensor([0.5360, 0.3320, 0.1320], dtype=torch.float64))
    """

    def __init__(
        self,
        reference_preds: Any,
        window: Optional[int] = None,
        *,
        num_classes: Optional[int] = None,
        psi_threshold: float = 0.2,
        alpha: float = 0.01,
        eps: float = 1e-4,
        method: str = "both",
    ) -> None:
        num_classes = _validate.integer(num_classes, "num_classes", low=2, optional=True, caller=type(self).__name__)
        labels = _predicted_labels(reference_preds, num_classes, "reference_preds")
        if num_classes is None:
            t = as_tensor(reference_preds, "reference_preds")
            num_classes = t.shape[1] if t.dim() == 2 else infer_num_classes(labels, "reference_preds", caller="DriftMonitor")
        reference = torch.bincount(labels, minlength=int(num_classes)).double()
        self._init(reference, True, window, psi_threshold, alpha, eps, method)

    @classmethod
    def from_histogram(
        cls,
        counts: Any,
        psi_threshold: float = 0.2,
        alpha: float = 0.01,
        eps: float = 1e-4,
        *,
        window: Optional[int] = None,
        reference_size: Optional[int] = None,
        method: str = "both",
    ) -> "DriftMonitor":
        """A monitor from a reference histogram instead of predictions.

        Args:
            counts (Tensor[K] or array): per-class reference counts (whole
                numbers), or shares.
            reference_size (int, optional): the number of predictions the
                histogram summarises; the histogram is rescaled to it. The
                chi-square test needs a sample size, so shares (any
                non-integer entry) require it unless ``method="psi"``; counts
                carry their own (their sum), and a share is never taken for a
                count.
            psi_threshold, alpha, eps, window, method: as for :class:`DriftMonitor`.

        Example:
            >>> DriftMonitor.from_histogram([560, 30, 410])                         # counts
            DriftMonitor(num_classes=3, reference_size=1000, window=None, method='both', samples=0)
            >>> DriftMonitor.from_histogram([0.56, 0.03, 0.41], reference_size=1000)  # shares
            DriftMonitor(num_classes=3, reference_size=1000, window=None, method='both', samples=0)
        """
        c = as_tensor(counts, "counts").double().cpu()
        if c.dim() != 1 or c.numel() < 2 or not bool(torch.isfinite(c).all()) or bool((c < 0).any()) or not c.sum() > 0:
            raise ValueError("counts must be a 1-D histogram of >= 2 finite, non-negative entries with a positive sum")
        if reference_size is not None:
            _validate.integer(reference_size, "reference_size", low=1, optional=True, caller=cls.__name__)
            c = c / c.sum() * int(reference_size)
            sized = True
        else:
            sized = bool((c == c.round()).all())
        if not sized and method != "psi":
            raise ValueError(
                f"counts holds shares (non-integer entries, e.g. {float(c[c != c.round()][0])!r}) and no "
                "reference_size: the chi-square test needs the number of reference predictions; pass "
                "reference_size=, or whole-number counts, or method='psi'"
            )
        monitor = cls.__new__(cls)
        monitor._init(c, sized, window, psi_threshold, alpha, eps, method)
        return monitor

    def _init(self, reference: Tensor, sized: bool, window, psi_threshold, alpha, eps, method) -> None:
        owner = type(self).__name__
        method = _validate.choice(method, "method", _DRIFT_METHODS, caller=owner)
        window = _validate.integer(window, "window", low=1, optional=True, caller=owner)
        psi_threshold = _validate.real(psi_threshold, "psi_threshold", low=0, low_inclusive=False, finite=False, caller=owner)
        alpha = _validate.real(alpha, "alpha", low=0, high=1, low_inclusive=False, high_inclusive=False, caller=owner)
        eps = _validate.real(eps, "eps", low=0, high=1, low_inclusive=False, high_inclusive=False, caller=owner)
        self.reference = reference  # counts (float64; shares x reference_size when built from shares)
        self.reference_size = int(round(float(reference.sum()))) if sized else None
        self.num_classes = reference.numel()
        self.window = None if window is None else int(window)
        self.method = method
        self.psi_threshold, self.alpha, self.eps = float(psi_threshold), float(alpha), float(eps)
        self.reset()

    def reset(self) -> None:
        """Forget every production prediction (local; not collective)."""
        self.counts = torch.zeros(self.num_classes, dtype=torch.float64)
        if self.window is not None:
            self._ring = torch.empty(self.window, dtype=torch.int16 if self.num_classes < 2**15 else torch.int32)
            self._head = 0  # next slot to write
            self._filled = 0

    def update(self, preds: Any) -> None:
        """Add production predictions: labels ``(N,)`` or probabilities ``(N, K)`` (argmax taken).

        Local (not collective). Raises ``ValueError`` when ``preds`` has
        another number of classes than the reference (columns != K, or a
        label >= K).
        """
        shape = tuple(getattr(preds, "shape", ()))
        if len(shape) in (1, 2) and shape[0] == 0:
            return  # an empty batch (streaming): nothing to count
        labels = _predicted_labels(preds, self.num_classes, "preds", reference_classes=True)
        K = self.num_classes
        if self.window is None:
            self.counts += torch.bincount(labels, minlength=K).double()
            return
        W, m = self.window, labels.numel()
        if m >= W:  # the batch alone fills the window
            tail = labels[m - W :]
            self._ring.copy_(tail)
            self._head, self._filled = 0, W
            self.counts = torch.bincount(tail, minlength=K).double()
            return
        slots = (self._head + torch.arange(m)) % W
        # the ring fills in order from slot 0, so the slots written beyond its
        # free space are exactly those holding the oldest labels
        evicted = max(0, self._filled + m - W)
        if evicted:
            old = self._ring[slots[m - evicted :]].long()
            self.counts -= torch.bincount(old, minlength=K).double()
        self._ring[slots] = labels.to(self._ring.dtype)
        self.counts += torch.bincount(labels, minlength=K).double()
        self._head = (self._head + m) % W
        self._filled = min(W, self._filled + m)

    def status(self, distributed: Optional[bool] = None, *, sync: Any = UNSET) -> Dict[str, Any]:
        """Compare the production counts with the reference.

        **Collective** under ``torch.distributed`` (world size > 1) unless
        ``distributed=False``: every rank must call it (one all-reduce of the
        counts); ``distributed=False``, or no process group: this rank's
        counts only, nothing communicated. ``sync=`` is the deprecated name of
        ``distributed`` (``sync=True`` is ``None``).

        Returns:
            dict: ``psi``; ``chi2``, ``p_value`` and ``dof`` of the test of
            homogeneity (None for a shares-only reference, ``method="psi"``);
            ``share_change``, ``reference_share``, ``current_share``
            (Tensor[K] float64); ``num_samples`` (production predictions
            compared), ``reference_size`` (None for shares), ``method`` and
            ``drift`` (bool).
        """
        cross = cross_rank("DriftMonitor.status", distributed, sync)
        counts = self.counts.clone()
        if cross:
            counts = Comm().all_reduce(counts)  # on the device the backend needs (NCCL: the current GPU)
        n = float(counts.sum())
        if n == 0:
            raise ValueError("DriftMonitor.status: no predictions yet; call update(preds) first")
        ref_share = self.reference / self.reference.sum()
        cur_share = counts / n
        p, q = ref_share.clamp_min(self.eps), cur_share.clamp_min(self.eps)
        psi = float(((q - p) * torch.log(q / p)).sum())
        chi2 = p_value = dof = None
        if self.reference_size is not None:
            chi2_t, p_t, dof_t = _chi2_homogeneity(self.reference, counts)
            chi2, p_value, dof = float(chi2_t), float(p_t), int(dof_t)
        if self.method == "psi":
            drift = psi > self.psi_threshold
        elif self.method == "chi2":
            drift = p_value < self.alpha
        else:
            drift = psi > self.psi_threshold or p_value < self.alpha
        return {
            "psi": psi,
            "chi2": chi2,
            "p_value": p_value,
            "dof": dof,
            "share_change": cur_share - ref_share,
            "reference_share": ref_share,
            "current_share": cur_share,
            "num_samples": int(n),
            "reference_size": self.reference_size,
            "method": self.method,
            "drift": bool(drift),
        }

    def __repr__(self) -> str:
        # the reference predictions are data: shown by what they set (num_classes, reference_size)
        options = "".join(
            f", {name}={value!r}"
            for name, value, default in (
                ("psi_threshold", self.psi_threshold, 0.2),
                ("alpha", self.alpha, 0.01),
                ("eps", self.eps, 1e-4),
            )
            if value != default
        )
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, reference_size={self.reference_size}, "
            f"window={self.window}, method={self.method!r}{options}, samples={int(self.counts.sum())})"
        )
