"""Finding mislabeled samples: confident learning (as cleanlab) and the simple mistake ranking.

The public functions. ``find_label_issues`` runs four stages, each in one place:

1. validate the arguments (``_validate._check_find_args``);
2. agree across ranks, so that every rank raises or none does (``_validate._agree_across_ranks``);
3. compute: the confident joint and the pruning (``_confident_joint._find_single``,
   ``_find_multilabel``), the ranking of the flagged rows (``_rank_single``; the
   scores in ``_scores.py``);
4. convert to the caller's type (:func:`_as_callers_type`).

``rank_mistakes`` and ``mistakes_per_class`` validate and agree in one step
(``_validate._check_mistake_inputs``), then count.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from .._distributed import Comm, use_distributed
from ._arguments import _UNSET, _agree_across_ranks, _check_find_args, _check_mistake_inputs, _check_name_strings, _fingerprint
from ._confident_joint import (  # noqa: F401  (the private names: their old home, imported by tests and tools)
    FILTERS,
    PRUNING_FILTERS,
    _confident_joint,
    _confident_thresholds,
    _find_multilabel,
    _find_single,
    _prune_counts,
    _prune_counts_to_remove,
    _rank_single,
    _ranking_thresholds,
    _round_keeping_total,
)
from ._inputs import check_labels_and_probs
from ._results import MistakesPerClass, RankedMistakes
from ._scores import RANKINGS, _check_rank_by_kwargs, _numpy_probs, _scores_np, _thresholds_of  # noqa: F401

__all__ = ["find_label_issues", "rank_mistakes", "mistakes_per_class", "label_quality_scores"]


def label_quality_scores(labels: Any, pred_probs: Any, method: str = "self_confidence", *, adjust_pred_probs: bool = False):
    """Per-sample label quality in [0, 1] (low = likely mislabeled), as ``cleanlab.rank.get_label_quality_scores``.

    ``self_confidence``: p[y]; ``normalized_margin``: (p[y] - max_{k != y} p[k] + 1) / 2;
    ``confidence_weighted_entropy``: log(1 + H/p[y]) / max(H/p[y], 1e-6) with H
    the entropy normalised by log K and p[y] clipped at 1e-6. The same values,
    bit for bit, and dtypes as cleanlab: the first two in the input's dtype,
    ``confidence_weighted_entropy`` in float64.

    Args:
        labels (Tensor[N] | array): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum to 1;
            for logits pass ``logits.softmax(dim=1)``).
        method (str): ``"self_confidence"`` (default), ``"normalized_margin"`` or
            ``"confidence_weighted_entropy"``.
        adjust_pred_probs (bool): subtract each class's mean self-confidence and
            renormalise first (accounts for class imbalance; default False).

    Returns:
        scores[N]: numpy in, numpy out; a tensor (on ``pred_probs``'s device) otherwise.
        bfloat16 input is scored in float32 (numpy has no bfloat16).

    Example:
        >>> import numpy as np
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.randint(0, 3, (300,), generator=g)
        >>> pred_probs = (3.0 * torch.nn.functional.one_hot(y, 3) + torch.randn(300, 3, generator=g)).softmax(1)
        >>> labels = y.clone()
        >>> labels[:10] = (labels[:10] + 1) % 3  # the first 10 labels are wrong
        >>> scores = bt.quality.label_quality_scores(labels.numpy(), pred_probs.numpy(), "normalized_margin")
        >>> worst = np.argsort(scores)[:10]  # numpy in, numpy out
        >>> sorted(worst.tolist())
        [0, 1, 2, 3, 4, 6, 7, 8, 9, 79]
    """
    _validate.choice(method, "method", RANKINGS)
    adjust = _check_rank_by_kwargs({"adjust_pred_probs": adjust_pred_probs}, method)
    y, p = check_labels_and_probs(labels, pred_probs)
    scores = _scores_np(y.cpu().numpy(), _numpy_probs(p), method, adjust)
    if isinstance(pred_probs, Tensor):
        return torch.from_numpy(np.ascontiguousarray(scores)).to(p.device)
    return scores


# --------------------------------------------------------------------------- confident joint


def find_label_issues(
    labels: Any,
    pred_probs: Any,
    *,
    filter_by: str = "prune_by_noise_rate",
    return_indices_ranked_by: Optional[str] = None,
    rank_by_kwargs: Optional[Dict[str, Any]] = None,
    frac_noise: float = 1.0,
    num_to_remove_per_class: Optional[Sequence[int]] = None,
    min_examples_per_class: int = 1,
    confident_joint: Optional[Any] = None,
    n_jobs: Optional[int] = None,
    verbose: bool = False,
    multi_label: bool = False,
    low_memory: bool = False,
    rank_by: Any = _UNSET,
    distributed: Optional[bool] = None,
):
    """Samples whose given label is likely wrong, by confident learning (Northcutt et al. 2021).

    ``cleanlab.filter.find_label_issues``'s signature, defaults and results:
    the calibrated confident joint, then pruning, in torch on the device of
    ``pred_probs``. With the same arguments it flags the same samples and, with
    ``return_indices_ranked_by``, returns them in the same order (the same
    label-quality scores, bit for bit, sorted by numpy as cleanlab sorts them).

    Args:
        labels (Tensor[N] | array | list): given labels in [0, K). With
            ``multi_label=True``: a list of per-sample class lists (cleanlab's
            format, e.g. ``[[0, 2], [], [1]]``) or a multi-hot ``(N, K)`` array (or DataFrame).
        pred_probs (Tensor[N, K] | array): out-of-sample predicted probabilities
            (rows sum to 1; with ``multi_label=True`` each column is one class's
            own probability), e.g. from cross-validation. Logits are refused
            with a ValueError that suggests ``logits.softmax(dim=1)``
            (``logits.sigmoid()`` with ``multi_label=True``).
        filter_by (str): ``"prune_by_noise_rate"`` (default), ``"prune_by_class"``,
            ``"both"``, ``"confident_learning"``, ``"predicted_neq_given"``,
            ``"low_normalized_margin"`` or ``"low_self_confidence"`` (the latter
            two: the lowest-scoring samples, as many as the confident joint's
            off-diagonal counts).
        return_indices_ranked_by (str or None): None (default): return a boolean
            mask; ``"self_confidence"``, ``"normalized_margin"`` or
            ``"confidence_weighted_entropy"``: return the flagged indices, most
            likely issue (lowest label-quality score) first.
        rank_by_kwargs (dict or None): ``{"adjust_pred_probs": True}`` ranks by
            scores of class-threshold-adjusted probabilities (cleanlab's option).
        frac_noise (float): in (0, 1]; return only this fraction of the estimated
            issues (pruning filters only).
        num_to_remove_per_class (int, sequence of K ints or None): flag this many
            samples per given class (exactly with ``"prune_by_class"``; within
            rounding with the other pruning filters).
        min_examples_per_class (int): classes are never pruned below this size (default 1).
        confident_joint (array[K, K] or None): a precomputed confident joint
            (rows: given label), e.g. from ``cleanlab.count.compute_confident_joint``;
            used by the pruning filters. With ``multi_label=True``: shape ``(K, 2, 2)``.
        n_jobs (int or None): accepted for cleanlab compatibility; no effect
            (the work runs in torch's own threads).
        verbose (bool): accepted for cleanlab compatibility; no effect.
        multi_label (bool): each sample may have several labels: one-vs-rest per
            class as cleanlab, flagged when flagged for any class (default False).
        low_memory (bool): accepted with ``multi_label=False`` (memory is already
            O(N·K)); cleanlab's approximate batched multi-label estimate is not
            implemented, so ``multi_label=True`` with ``low_memory=True`` raises.
        rank_by: deprecated alias of ``return_indices_ranked_by``.
        distributed (bool or None): ``labels`` and ``pred_probs`` are this
            rank's share of the data, sharded across ``torch.distributed``
            ranks (the global order is rank 0's rows, then rank 1's, ...).
            Class counts and the confident joint are all-reduced; the
            per-class thresholds are cleanlab's numpy means over every
            rank's self-confidences (one scalar per row all-gathered, never
            ``pred_probs``), so they are cleanlab's bit for bit; the
            pruning and ``low_*`` filters pick each class's or cell's ``n``
            samples across ranks from an all-gather of every rank's ``n``
            best candidates (one scalar each; where exactly tied values
            straddle a cut, of that column's scalars, so that the tie is
            decided as numpy's argsort decides it in one process). Every rank gets the answer
            for its own rows: the mask of its rows, or with
            ``return_indices_ranked_by`` indices into its own rows, in the
            global ranked order restricted to that rank. Concatenated in rank
            order, the masks equal the single-process mask on the
            concatenated data, exactly; the indices, shifted by each rank's
            offset, are the single-process ranking split by rank.
            **Collective**: every rank calls it with the same options and
            number of classes (a rank may hold 0 rows, as an ``(0, K)``
            array); invalid input on one rank raises there, and a ValueError
            naming that rank on the others (no rank is left waiting).
            ``rank_by_kwargs={"adjust_pred_probs": True}`` with
            ``multi_label=True`` is refused across ranks. None (default): distributed when a process
            group of world size > 1 is initialised (under ``torchrun``, pass
            False when every rank holds the whole data set); False: this
            rank's rows alone.

    Differences from cleanlab: labels with a
    single class are answered (cleanlab raises); with ``multi_label=True`` and a ``low_*`` filter the flagged samples
    are ranked by their own scores (cleanlab pairs scores and indices in
    different orders); ``multi_label=True`` also takes a multi-hot array.

    Returns:
        bool mask [N], or int64 indices [num_issues] when ``return_indices_ranked_by``
        is given: numpy in, numpy out; a tensor on ``pred_probs``'s device otherwise.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.randint(0, 3, (300,), generator=g)
        >>> pred_probs = (3.0 * torch.nn.functional.one_hot(y, 3) + torch.randn(300, 3, generator=g)).softmax(1)
        >>> labels = y.clone()
        >>> labels[:10] = (labels[:10] + 1) % 3  # the first 10 labels are wrong
        >>> mask = bt.quality.find_label_issues(labels, pred_probs)
        >>> issues = bt.quality.find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence")
        >>> print(f"{mask.sum()} suspicious labels, worst first: {issues.tolist()}")
        7 suspicious labels, worst first: [4, 8, 0, 3, 7, 6, 79]
    """
    comm = Comm() if use_distributed(distributed) else None
    # 1. validate: under torch.distributed an invalid input is held until every rank has been heard
    c = _check_find_args(
        labels,
        pred_probs,
        comm,
        filter_by=filter_by,
        return_indices_ranked_by=return_indices_ranked_by,
        rank_by_kwargs=rank_by_kwargs,
        frac_noise=frac_noise,
        num_to_remove_per_class=num_to_remove_per_class,
        min_examples_per_class=min_examples_per_class,
        confident_joint=confident_joint,
        n_jobs=n_jobs,
        verbose=verbose,
        multi_label=multi_label,
        low_memory=low_memory,
        rank_by=rank_by,
    )
    # 2. agree across ranks: one all-gather before any data-dependent collective; every rank raises, or none does
    if comm is not None:
        _agree_across_ranks(
            comm,
            c.error,
            c.K,
            c.dtype,
            c.num_rows,
            (
                filter_by,
                c.method,
                c.adjust,
                float(frac_noise),
                min_examples_per_class,
                multi_label,
                None if c.num_to_remove is None else c.num_to_remove.tolist(),
                _fingerprint(confident_joint),
            ),
        )
    # 3. compute (called from here, so that the warnings of the stages point at the caller)
    if multi_label:
        mask, ranked = _find_multilabel(
            c.y_one,
            c.p,
            filter_by,
            c.method,
            c.adjust,
            frac_noise,
            c.num_to_remove,
            min_examples_per_class,
            confident_joint,
            comm,
        )
    else:
        mask = _find_single(c.y, c.p, filter_by, frac_noise, c.num_to_remove, min_examples_per_class, c.joint, comm)
        ranked = None if c.method is None else _rank_single(mask, c.y, c.p, c.method, c.adjust, comm)
    # 4. convert to the caller's type
    return _as_callers_type(pred_probs, c.p, mask, ranked)


def _as_callers_type(pred_probs: Any, p: Tensor, mask: Any, ranked: Optional[np.ndarray]):
    """The answer in the caller's type: tensors on ``pred_probs``'s device for a tensor, numpy otherwise."""
    if isinstance(pred_probs, Tensor):
        if ranked is not None:
            return torch.from_numpy(ranked.astype(np.int64)).to(p.device)
        return mask if isinstance(mask, Tensor) else torch.from_numpy(mask).to(p.device)
    if ranked is not None:
        return ranked.astype(np.int64)
    return mask.cpu().numpy() if isinstance(mask, Tensor) else mask


def rank_mistakes(
    labels: Any, pred_probs: Any, class_names: Optional[Sequence[str]] = None, *, distributed: Optional[bool] = None
) -> RankedMistakes:
    """Every sample whose predicted class differs from its label, most confident mistake first.

    The mistakes to look at first: a confident model that disagrees with the
    given label often points at a wrong label (or a hard, ambiguous sample).

    Args:
        labels (Tensor[N] | array | sequence): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum
            to 1; for logits pass ``logits.softmax(dim=1)``), ideally
            out-of-sample.
        class_names (sequence of K str, optional): names shown instead of
            class ids when the result is printed (default None: ids).
        distributed (bool or None): the rows are this rank's share of data
            sharded across ``torch.distributed`` ranks (global order: rank
            0's rows, then rank 1's, ...). The result holds this rank's
            mistakes in the global order (one all-gather of a confidence per
            mistake), ``index`` into this rank's rows, and one more column,
            ``global_rank`` (int64, the position in the single-process
            ranking of all ranks' mistakes), so that the ranks' tables merge
            by it. **Collective**: every rank must call it (0 rows allowed).
            None (default): distributed when a process group of world size
            > 1 is initialised; False: this rank's rows alone.

    Returns:
        :class:`RankedMistakes`: a dict of equal-length tensors on
        ``pred_probs``'s device (a tensor on the CPU for numpy input):
        ``index`` (int64), ``target`` (int64, the given label), ``prediction``
        (int64, the argmax) and ``confidence`` (``pred_probs``'s dtype, the
        probability of the prediction), sorted by confidence, highest first
        (ties by index). ``print()`` shows it as a table (first
        ``max_rows=20`` rows), ``rows()`` gives Python tuples, ``to_pandas()``
        a DataFrame.

    Raises:
        ValueError: labels out of range, shapes that disagree, ``pred_probs``
            that are not probabilities (logits are named as such),
            ``class_names`` without one name per class; across ranks, on
            every rank when any rank's input is invalid or the ranks' numbers
            of classes differ.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 2, 1, 2])
        >>> pred_probs = torch.tensor([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.91, 0.05, 0.04],
        ...                            [0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]],
        ...                           dtype=torch.float64)
        >>> m = bt.quality.rank_mistakes(labels, pred_probs, class_names=["red", "yellow", "green"])
        >>> print(m)                      # index, target → prediction, confidence
        3 mistakes in 8 samples, most confident first
        index  target → prediction  confidence
            3  yellow → red             0.9100
            5   green → yellow          0.7000
            1     red → yellow          0.6000
        >>> for r in m.rows()[:2]:
        ...     print(f"sample {r.index}: labelled {r.target}, predicted {r.prediction} ({r.confidence:.0%})")
        sample 3: labelled yellow, predicted red (91%)
        sample 5: labelled green, predicted yellow (70%)
    """
    class_names = _check_name_strings(class_names, "rank_mistakes")
    comm = Comm() if use_distributed(distributed) else None
    y, p, names = _check_mistake_inputs(labels, pred_probs, class_names, comm, "rank_mistakes")
    confidence, prediction = p.max(1)
    wrong = torch.nonzero(prediction != y).flatten()
    if comm is None:
        order = torch.argsort(-confidence[wrong].double(), stable=True)
        idx = wrong[order]
        columns = {"index": idx, "target": y[idx], "prediction": prediction[idx], "confidence": confidence[idx]}
        return RankedMistakes(columns, names, y.numel())
    # all ranks' mistakes in rank order are in global index order: a stable sort of all of their
    # confidences (one scalar per mistake) orders them as one process would; keep this rank's
    parts = comm.all_gather_rows(confidence[wrong].double().cpu())
    start = sum(part.shape[0] for part in parts[: comm.rank])
    order = torch.argsort(-torch.cat(parts), stable=True)
    position = torch.nonzero((order >= start) & (order < start + wrong.numel())).flatten()
    idx = wrong[(order[position] - start).to(wrong.device)]
    columns = {
        "index": idx,
        "target": y[idx],
        "prediction": prediction[idx],
        "confidence": confidence[idx],
        "global_rank": position.to(idx.device),
    }
    return RankedMistakes(columns, names, y.numel())


def mistakes_per_class(
    labels: Any, pred_probs: Any, class_names: Optional[Sequence[str]] = None, *, distributed: Optional[bool] = None
) -> MistakesPerClass:
    """Per class: how many of its samples are mispredicted, and as what; worst class first.

    Args:
        labels (Tensor[N] | array | sequence): given labels in [0, K).
        pred_probs (Tensor[N, K] | array): predicted probabilities (rows sum
            to 1; for logits pass ``logits.softmax(dim=1)``).
        class_names (sequence of K str, optional): names shown instead of
            class ids when the result is printed (default None: ids).
        distributed (bool or None): the rows are this rank's share of data
            sharded across ``torch.distributed`` ranks: the (K, K) confusion
            counts are all-reduced and every rank gets the same table, that
            of all ranks' rows (``num_samples`` counts them all).
            **Collective**: every rank must call it (0 rows allowed). None
            (default): distributed when a process group of world size > 1 is
            initialised; False: this rank's rows alone.

    Returns:
        :class:`MistakesPerClass`: a dict, on the CPU, with ``class``
        (Tensor[K] int64, classes ordered by mistake rate, highest first; ties
        by count then class), ``count`` (Tensor[K] int64, mistakes),
        ``support`` (Tensor[K] int64, samples), ``rate`` (Tensor[K] float64,
        count / support, 0 for absent classes), and ``confused_with``: for
        each class, a list of ``(predicted_class, count)`` pairs, most
        frequent first. ``print()`` shows it as a table (first
        ``max_rows=20`` classes), ``rows()`` gives Python tuples,
        ``to_pandas()`` a DataFrame.

    Raises:
        ValueError: as :func:`rank_mistakes`.

    Example:
        >>> import torch
        >>> import balancedtorch as bt
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 2, 1, 2])
        >>> pred_probs = torch.tensor([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.91, 0.05, 0.04],
        ...                            [0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]],
        ...                           dtype=torch.float64)
        >>> per = bt.quality.mistakes_per_class(labels, pred_probs, class_names=["red", "yellow", "green"])
        >>> print(per)                    # class, mistakes, support, rate, confused with
        3 of 8 samples mispredicted, classes by mistake rate
        class   mistakes  support    rate  confused with
        green          1        2  50.00%  yellow 1
        red            1        3  33.33%  yellow 1
        yellow         1        3  33.33%  red 1
        >>> per["class"][:3]              # the classes, worst first
        tensor([2, 0, 1])
    """
    comm = Comm() if use_distributed(distributed) else None
    class_names = _check_name_strings(class_names, "mistakes_per_class")
    y, p, names = _check_mistake_inputs(labels, pred_probs, class_names, comm, "mistakes_per_class")
    K = p.shape[1]
    prediction = p.argmax(1)
    confusion = torch.bincount(y * K + prediction, minlength=K * K).view(K, K).cpu()
    num_samples = y.numel()
    if comm is not None:
        confusion = comm.all_reduce(confusion)  # integer counts: exact
        num_samples = int(confusion.sum())
    support = confusion.sum(1)
    count = support - confusion.diagonal()
    rate = torch.where(support > 0, count.double() / support.clamp_min(1), torch.zeros(K, dtype=torch.float64))
    classes = sorted(range(K), key=lambda c: (-float(rate[c]), -int(count[c]), c))
    confused = []
    for c in classes:
        row = confusion[c].clone()
        row[c] = 0
        pairs = [(int(j), int(row[j])) for j in torch.argsort(-row, stable=True).tolist() if row[j] > 0]
        confused.append(pairs)
    order = torch.tensor(classes)
    columns = {"class": order, "count": count[order], "support": support[order], "rate": rate[order], "confused_with": confused}
    return MistakesPerClass(columns, names, num_samples)
