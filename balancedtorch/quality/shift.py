"""Sampling bias and shift: slice coverage, label-shift estimation, prediction drift."""

from __future__ import annotations

import numbers
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .._labels import infer_num_classes
from ._inputs import as_tensor, check_labels, check_pred_probs

__all__ = ["coverage_report", "CoverageReport", "LabelShiftEstimator", "DriftMonitor"]


# --- coverage -------------------------------------------------------------------


class CoverageReport(dict):
    """A dict ``{attribute: {"values", "counts", "expected", "flags"}}`` that prints as tables."""

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
        >>> print(bt.quality.coverage_report(labels, {"orientation": orientation, "time": time_of_day}))
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty dict {attribute: per-sample values}")
    if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) or min_count < 0:
        raise ValueError(f"min_count must be an int >= 0, got {min_count!r}")
    if not isinstance(ratio, numbers.Real) or not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
    y = check_labels(labels, num_classes).cpu()
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


def _prediction_matrix(preds: Any, num_classes: int, name: str) -> Tensor:
    """(N, K) float64: one-hot of predicted labels, or the probabilities themselves."""
    t = as_tensor(preds, name)
    if t.dim() == 2:
        if t.shape[1] != num_classes:
            raise ValueError(f"{name} has {t.shape[1]} columns but num_classes={num_classes}")
        return check_pred_probs(t, None, name).double().cpu()
    labels = check_labels(t, num_classes, name).cpu()
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
    probabilities ``(N, K)`` (the soft variant).

    Example:
        >>> est = bt.quality.LabelShiftEstimator(10).fit(val_labels, val_preds)
        >>> shift = est.estimate(test_preds)
        >>> criterion = bt.nn.CrossEntropyLoss(weight=shift["weights"].float())
    """

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.confusion_: Optional[Tensor] = None
        self.source_prior_: Optional[Tensor] = None

    def fit(self, val_labels: Any, val_preds: Any) -> "LabelShiftEstimator":
        y = check_labels(val_labels, self.num_classes, "val_labels").cpu()
        P = _prediction_matrix(val_preds, self.num_classes, "val_preds")
        if P.shape[0] != y.numel():
            raise ValueError(f"val_preds has {P.shape[0]} rows but val_labels has {y.numel()} entries")
        onehot = torch.nn.functional.one_hot(y, self.num_classes).double()
        self.confusion_ = P.T @ onehot / y.numel()  # [prediction, true]
        self.source_prior_ = onehot.mean(0)
        return self

    def estimate(self, target_preds: Any) -> Dict[str, Tensor]:
        """``{"prior": q(y) on the target, "weights": q(y) / p(y)}`` (float64, on the CPU)."""
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


# --- drift ------------------------------------------------------------------------


def _class_counts_of(preds: Any, num_classes: Optional[int], name: str) -> Tensor:
    t = as_tensor(preds, name)
    if t.dim() == 2:
        labels = check_pred_probs(t, None, name).argmax(1)
        num_classes = t.shape[1] if num_classes is None else num_classes
    else:
        labels = check_labels(t, num_classes, name)
    K = int(labels.max()) + 1 if num_classes is None else num_classes
    return torch.bincount(labels.cpu(), minlength=K).double()


class DriftMonitor:
    """Watches a deployed model's predicted-class distribution for shift.

    Built from reference predictions (labels ``(N,)`` or probabilities
    ``(N, K)``, argmax taken) or a reference histogram
    (:meth:`from_histogram`). ``update(preds)`` streams production
    predictions; ``status()`` reports the population stability index (PSI,
    shares floored at ``eps``), the chi-square goodness-of-fit p-value of the
    current counts against the reference shares, per-class share changes, and
    ``drift = psi > psi_threshold or p_value < alpha``. With
    ``torch.distributed`` initialised, counts are summed across ranks.

    Example:
        >>> monitor = bt.quality.DriftMonitor(val_preds)
        >>> monitor.update(model(batch).argmax(1))
        >>> if monitor.status()["drift"]: schedule_retraining()
    """

    def __init__(
        self,
        reference_preds: Any,
        num_classes: Optional[int] = None,
        psi_threshold: float = 0.2,
        alpha: float = 0.01,
        eps: float = 1e-4,
    ) -> None:
        self._init(_class_counts_of(reference_preds, num_classes, "reference_preds"), psi_threshold, alpha, eps)

    @classmethod
    def from_histogram(cls, counts: Any, psi_threshold: float = 0.2, alpha: float = 0.01, eps: float = 1e-4) -> "DriftMonitor":
        """A monitor from reference class counts (or shares) instead of predictions."""
        c = as_tensor(counts, "counts").double().cpu()
        if c.dim() != 1 or c.numel() < 2 or not bool(torch.isfinite(c).all()) or bool((c < 0).any()) or not c.sum() > 0:
            raise ValueError("counts must be a 1-D histogram of >= 2 finite, non-negative entries with a positive sum")
        monitor = cls.__new__(cls)
        monitor._init(c, psi_threshold, alpha, eps)
        return monitor

    def _init(self, reference: Tensor, psi_threshold: float, alpha: float, eps: float) -> None:
        if not (isinstance(psi_threshold, numbers.Real) and psi_threshold > 0):
            raise ValueError(f"psi_threshold must be > 0, got {psi_threshold!r}")
        if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not (isinstance(eps, numbers.Real) and 0 < eps < 1):
            raise ValueError(f"eps must be in (0, 1), got {eps!r}")
        self.reference = reference
        self.num_classes = reference.numel()
        self.psi_threshold, self.alpha, self.eps = float(psi_threshold), float(alpha), float(eps)
        self.reset()

    def reset(self) -> None:
        self.counts = torch.zeros(self.num_classes, dtype=torch.float64)

    def update(self, preds: Any) -> None:
        self.counts += _class_counts_of(preds, self.num_classes, "preds")

    def status(self) -> Dict[str, Any]:
        counts = self.counts.clone()
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts)
        n = float(counts.sum())
        if n == 0:
            raise ValueError("DriftMonitor.status: no predictions yet; call update(preds) first")
        ref_share = self.reference / self.reference.sum()
        cur_share = counts / n
        p, q = ref_share.clamp_min(self.eps), cur_share.clamp_min(self.eps)
        psi = float(((q - p) * torch.log(q / p)).sum())
        expected = ref_share * n
        used = expected > 0
        unseen = bool((counts[~used] > 0).any())
        chi2 = float((((counts - expected) ** 2)[used] / expected[used]).sum())
        dof = int(used.sum()) - 1
        if unseen:
            p_value = 0.0  # a class the reference never produced
        elif dof < 1:
            p_value = 1.0
        else:
            p_value = float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64), torch.tensor(chi2 / 2.0, dtype=torch.float64)))
        return {
            "psi": psi,
            "chi2": chi2,
            "p_value": p_value,
            "share_change": cur_share - ref_share,
            "reference_share": ref_share,
            "current_share": cur_share,
            "num_samples": int(n),
            "drift": psi > self.psi_threshold or p_value < self.alpha,
        }
