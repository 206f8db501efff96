"""bt.metrics.tune_threshold / apply_thresholds (issue 17, section 1).

The optimum is checked against a brute force over every candidate threshold
(every distinct score and inf) in exact rational arithmetic, with the
documented tie rule; apply_thresholds must reproduce the reported value on the
same data (scikit-learn's metric functions on its predictions), and the
threshold and its precision/recall must be a point of scikit-learn's
precision_recall_curve.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    fbeta_score,
    precision_recall_curve,
    precision_score,
    recall_score,
)

import balancedtorch as bt
from balancedtorch.metrics import thresholds as thresholds_module

TARGETS = [0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0]


# ---------------------------------------------------------------------------------------------
# reference: every candidate threshold, exact rationals, the documented tie rule
# ---------------------------------------------------------------------------------------------


def _counts(y, s, t):
    pred = [v >= t for v in s]
    tp = sum(1 for p, l in zip(pred, y) if p and l)
    fp = sum(1 for p, l in zip(pred, y) if p and not l)
    return tp, fp


def _frac(a, b):
    return Fraction(a, b) if b else Fraction(0)


def brute_force(y, s, metric, target=None, beta=None):
    """(value as float, threshold) of the optimum, ties: secondary metric, then the largest threshold."""
    P = sum(y)
    N = len(y) - P
    candidates = [math.inf] + sorted(set(s), reverse=True)
    best_key, best = None, None
    for t in candidates:  # largest first: a later candidate must be strictly better
        tp, fp = _counts(y, s, t)
        tn = N - fp
        precision, recall = _frac(tp, tp + fp), _frac(tp, P)
        if metric == "f1":
            key = (_frac(2 * tp, tp + fp + P),)
        elif metric == "fbeta":  # scikit-learn's formula, in floats
            b2 = beta**2
            den = b2 * P + (tp + fp)
            key = ((1 + b2) * tp / den if den else 0.0,)
        elif metric == "balanced_accuracy":
            rates = ([Fraction(tp, P)] if P else []) + ([Fraction(tn, N)] if N else [])
            key = (sum(rates) / len(rates),)
        elif metric == "recall@precision":
            if not (tp + fp and tp / (tp + fp) >= target) and not (target == 0 and tp + fp == 0):
                continue
            key = (recall, precision)
        else:
            if not (float(recall) >= target if P else target == 0):
                continue
            key = (precision, recall)
        if best_key is None or key > best_key:
            best_key, best = key, t
    if best_key is None:  # recall@precision out of reach
        return 0.0, math.inf
    return float(best_key[0]), best


def sklearn_value(y, pred, metric, beta=None):
    y, pred = np.asarray(y, dtype=int), np.asarray(pred, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if metric == "f1":
            return f1_score(y, pred, zero_division=0)
        if metric == "fbeta":
            return fbeta_score(y, pred, beta=beta, zero_division=0)
        if metric == "balanced_accuracy":
            return balanced_accuracy_score(y, pred)
        if metric == "recall@precision":
            return recall_score(y, pred, zero_division=0)
        return precision_score(y, pred, zero_division=0)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


def _metric_kwargs(metric, target, beta):
    kwargs = {}
    if metric in ("recall@precision", "precision@recall"):
        kwargs["target"] = target
    if metric == "fbeta":
        kwargs["beta"] = beta
    return kwargs


# ---------------------------------------------------------------------------------------------
# binary: the exact optimum, reproduced by apply_thresholds, a point of precision_recall_curve
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n=st.integers(1, 24),
    levels=st.integers(1, 8),
    metric=st.sampled_from(["f1", "fbeta", "balanced_accuracy", "recall@precision", "precision@recall"]),
    target=st.sampled_from(TARGETS),
    beta=st.sampled_from([0.5, 2.0, 3.0]),
)
def test_binary_equals_brute_force_on_tied_scores(data, n, levels, metric, target, beta):
    # few distinct levels: heavy ties, duplicates, single-class labels all occur
    s = data.draw(st.lists(st.integers(0, levels - 1), min_size=n, max_size=n))
    y = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    scores = torch.tensor(s, dtype=torch.float32) / levels - 0.3
    s_float = scores.tolist()
    kwargs = _metric_kwargs(metric, target, beta)
    r = _quiet(bt.metrics.tune_threshold, torch.tensor(y), scores, metric, **kwargs)
    value, threshold = brute_force(y, s_float, metric, target, beta)
    assert r["value"] == value
    assert r["threshold"] == threshold
    assert isinstance(r["threshold"], float) and isinstance(r["value"], float)
    # apply_thresholds on the same data reproduces the value
    pred = bt.metrics.apply_thresholds(scores, r)
    assert pred.dtype == torch.bool and pred.shape == (n,)
    assert pred.tolist() == [v >= threshold for v in s_float]
    assert sklearn_value(y, pred, metric, beta) == pytest.approx(value, rel=1e-12, abs=0)
    if metric in ("f1", "fbeta", "recall@precision", "precision@recall"):
        assert sklearn_value(y, pred, metric, beta) == value  # the same one division
    # precision and recall at the threshold
    tp, fp = _counts(y, s_float, threshold)
    assert r["precision"] == float(_frac(tp, tp + fp))
    assert r["recall"] == float(_frac(tp, sum(y)))


@pytest.mark.parametrize("metric", ["f1", "balanced_accuracy", "recall@precision", "precision@recall"])
def test_binary_random_scores_match_sklearn_curve(metric):
    n = 400
    y = (torch.rand(n) < 0.15).long()
    scores = torch.where(y.bool(), torch.randn(n) + 1.0, torch.randn(n))
    scores[::7] = scores[3]  # a block of ties
    target = 0.6 if "@" in metric else None
    r = bt.metrics.tune_threshold(y, scores, metric, target)
    value, threshold = brute_force(y.tolist(), scores.tolist(), metric, target)
    assert r["value"] == value and r["threshold"] == threshold
    precision, recall, thresholds = precision_recall_curve(y.numpy(), scores.numpy())
    i = int(np.flatnonzero(thresholds == r["threshold"])[0])  # one of the curve's thresholds
    assert r["precision"] == pytest.approx(precision[i], rel=1e-12)
    assert r["recall"] == pytest.approx(recall[i], rel=1e-12)
    if metric == "f1":
        curve_f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
        assert r["value"] == pytest.approx(curve_f1.max(), rel=1e-12)
        assert r["value"] == f1_score(y.numpy(), (scores >= r["threshold"]).numpy())
    if metric == "recall@precision":
        assert r["precision"] >= 0.6
        assert r["value"] == pytest.approx(recall[precision >= 0.6].max(), rel=1e-12)
    if metric == "precision@recall":
        assert r["recall"] >= 0.6
        assert r["value"] == pytest.approx(precision[recall >= 0.6].max(), rel=1e-12)


def test_ties_go_to_the_largest_threshold_and_the_better_secondary_metric():
    # F1 2/3 at threshold 4 (1 of 1 predicted) and at threshold 1 (2 of 4): the largest wins
    r = bt.metrics.tune_threshold([1, 0, 0, 1], [4.0, 3.0, 2.0, 1.0])
    assert r["threshold"] == 4.0 and r["value"] == 2 / 3
    # precision 1 at thresholds 5 (recall 1/3) and 4 (recall 2/3): the higher recall wins
    r = bt.metrics.tune_threshold([1, 1, 0, 1, 0], [5.0, 4.0, 3.0, 2.0, 1.0], "precision@recall", target=0.3)
    assert r["threshold"] == 4.0 and r["value"] == 1.0 and r["recall"] == 2 / 3
    # recall 2/3 at thresholds 4 (precision 1) and 3 (precision 2/3): the higher precision wins
    r = bt.metrics.tune_threshold([1, 1, 0, 1, 0], [5.0, 4.0, 3.0, 2.0, 1.0], "recall@precision", target=0.6)
    assert r["threshold"] == 2.0 and r["value"] == 1.0 and r["precision"] == 0.75
    r = bt.metrics.tune_threshold([1, 1, 0, 1, 0], [5.0, 4.0, 3.0, 2.0, 1.0], "recall@precision", target=0.9)
    assert r["threshold"] == 4.0 and r["value"] == 2 / 3 and r["precision"] == 1.0


def test_unreachable_precision_gives_inf_with_a_warning():
    with pytest.warns(UserWarning, match=r"no threshold reaches precision >= 0.9"):
        r = bt.metrics.tune_threshold([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.1], "recall@precision", target=0.9)
    assert r["threshold"] == math.inf and r["value"] == 0.0 and r["precision"] == 0.0 and r["recall"] == 0.0
    assert not bt.metrics.apply_thresholds(torch.tensor([0.9, 0.8, 0.7, 0.1]), r).any()


def test_single_class_labels_warn_and_pick_the_trivial_threshold():
    scores = torch.rand(12)
    with pytest.warns(UserWarning, match="no positive sample"):
        r = bt.metrics.tune_threshold(torch.zeros(12, dtype=torch.long), scores)
    assert r["threshold"] == math.inf and r["value"] == 0.0
    with pytest.warns(UserWarning, match="no positive sample"):
        r = bt.metrics.tune_threshold(torch.zeros(12, dtype=torch.long), scores, "balanced_accuracy")
    assert r["threshold"] == math.inf and r["value"] == 1.0  # specificity 1: sklearn's balanced_accuracy_score
    with pytest.warns(UserWarning, match="no negative sample"):
        r = bt.metrics.tune_threshold(torch.ones(12, dtype=torch.long), scores)
    assert r["threshold"] == float(scores.min()) and r["value"] == 1.0


def test_logits_integer_and_half_scores():
    y = (torch.rand(300) < 0.2).long()
    logits = torch.randn(300) * 3 + 2 * y
    r_logit = bt.metrics.tune_threshold(y, logits, "balanced_accuracy")
    r_prob = bt.metrics.tune_threshold(y, torch.sigmoid(logits.double()), "balanced_accuracy")
    # the same decision on either scale (sigmoid is monotone; float64 keeps the scores distinct)
    assert r_logit["value"] == r_prob["value"]
    assert torch.equal(logits >= r_logit["threshold"], torch.sigmoid(logits.double()) >= r_prob["threshold"])
    ints = torch.randint(0, 20, (300,))
    r = bt.metrics.tune_threshold(y, ints)
    assert r["value"] == brute_force(y.tolist(), ints.tolist(), "f1")[0]
    half = torch.rand(300).half()
    r = bt.metrics.tune_threshold(y, half)
    assert r["value"] == brute_force(y.tolist(), half.float().tolist(), "f1")[0]
    assert r["value"] == f1_score(y.numpy(), bt.metrics.apply_thresholds(half, r).numpy())


# ---------------------------------------------------------------------------------------------
# one-vs-rest and multi-label: per-class thresholds
# ---------------------------------------------------------------------------------------------


def _per_class_binary(y_pos, scores, metric, **kwargs):
    rows = [_quiet(bt.metrics.tune_threshold, y_pos[:, c], scores[:, c], metric, **kwargs) for c in range(scores.shape[1])]
    return {k: [row[k] for row in rows] for k in ("threshold", "value", "precision", "recall")}


@pytest.mark.parametrize("metric", ["f1", "balanced_accuracy", "recall@precision", "precision@recall", "fbeta"])
def test_one_vs_rest_equals_per_class_binary(metric):
    n, C = 150, 5
    y = torch.randint(0, C - 1, (n,))  # class 4 absent: no positive
    scores = torch.softmax(torch.randn(n, C) * 2, dim=1)
    scores[::5] = scores[1]  # tied rows
    kwargs = _metric_kwargs(metric, 0.5, 2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = bt.metrics.tune_threshold(y, scores, metric, **kwargs)
    assert any("classes [4]: no positive sample" in str(w.message) for w in caught)
    assert r["task"] == "multiclass" and r["threshold"].shape == (C,) and r["value"].dtype == torch.float64
    assert r["threshold"].dtype == scores.dtype
    expected = _per_class_binary(torch.nn.functional.one_hot(y, C), scores, metric, **kwargs)
    for key in expected:
        assert r[key].tolist() == expected[key], key
    assert r["threshold"][4] == math.inf
    # multi-label predictions reproduce each class's value
    pred = bt.metrics.apply_thresholds(scores, r["threshold"], multilabel=True)
    for c in range(C):
        got = sklearn_value((y == c).long(), pred[:, c], metric, beta=2.0)
        assert got == pytest.approx(r["value"][c].item(), rel=1e-12, abs=0)


def test_multilabel_equals_per_label_binary_and_apply_reproduces():
    n, C = 200, 4
    y = (torch.rand(n, C) < torch.tensor([0.05, 0.2, 0.5, 0.9])).long()
    scores = torch.randn(n, C) + y * 1.5
    scores = (scores * 4).round() / 4  # ties
    r = bt.metrics.tune_threshold(y, scores, "f1")
    assert r["task"] == "multilabel"
    expected = _per_class_binary(y, scores, "f1")
    for key in expected:
        assert r[key].tolist() == expected[key], key
    pred = bt.metrics.apply_thresholds(scores, r)  # the task comes from the result
    assert pred.shape == (n, C) and pred.dtype == torch.bool
    for c in range(C):
        assert f1_score(y[:, c].numpy(), pred[:, c].numpy(), zero_division=0) == r["value"][c].item()


def test_class_chunks_give_the_same_answer(monkeypatch):
    n, C = 97, 11
    y = torch.randint(0, C, (n,))
    scores = torch.randn(n, C).round(decimals=1)
    whole = _quiet(bt.metrics.tune_threshold, y, scores, "balanced_accuracy")
    monkeypatch.setattr(thresholds_module, "_CHUNK_ELEMENTS", 3 * (n + 1))  # 3 classes per chunk
    chunked = _quiet(bt.metrics.tune_threshold, y, scores, "balanced_accuracy")
    for key in ("threshold", "value", "precision", "recall"):
        assert torch.equal(whole[key], chunked[key])


def test_multiclass_decision_rule_is_the_widest_margin():
    # dyadic values: the margins are exact
    scores = torch.tensor([[0.5, 0.375, 0.125], [0.25, 0.375, 0.625], [0.5, 0.375, 0.25], [0.125, 0.125, 0.75]])
    thresholds = torch.tensor([0.625, 0.25, 0.5])
    # margins: [-.125, .125, -.375] -> 1; [-.375, .125, .125] -> tie, lowest index 1; [-.125, .125, -.25] -> 1;
    # [-.5, -.125, .25] -> 2
    assert bt.metrics.apply_thresholds(scores, thresholds).tolist() == [1, 1, 1, 2]
    # no class clears its threshold: the one missing it by the least
    missed = bt.metrics.apply_thresholds(torch.tensor([[0.25, 0.125, 0.5]]), torch.tensor([0.75, 0.5, 0.625]))
    assert missed.tolist() == [2]
    # an inf threshold (class absent from validation) is never predicted, unless every class has one
    inf = math.inf
    assert bt.metrics.apply_thresholds(scores, torch.tensor([inf, 0.875, 0.875])).tolist() == [1, 2, 1, 2]
    assert bt.metrics.apply_thresholds(scores, torch.full((3,), inf)).tolist() == scores.argmax(1).tolist()
    # random data: the predicted class has the largest margin
    s, t = torch.randn(500, 6), torch.randn(6)
    pred = bt.metrics.apply_thresholds(s, t)
    margins = s - t
    assert torch.equal(margins.gather(1, pred[:, None])[:, 0], margins.max(1).values)


def test_apply_thresholds_forms():
    s = torch.tensor([0.1, 0.5, 0.5, 0.9])
    assert bt.metrics.apply_thresholds(s, 0.5).tolist() == [False, True, True, True]
    assert bt.metrics.apply_thresholds(s[:, None], 0.5).tolist() == [False, True, True, True]  # (N, 1): binary
    assert bt.metrics.apply_thresholds(s, math.inf).tolist() == [False] * 4
    assert bt.metrics.apply_thresholds(np.array([0.2, 0.7]), np.float32(0.7)).tolist() == [False, True]
    ml = bt.metrics.apply_thresholds([[0.2, 0.7], [0.9, 0.1]], [0.5, 0.05], multilabel=True)
    assert ml.tolist() == [[False, True], [True, True]]
    # one threshold for every label
    same = bt.metrics.apply_thresholds([[0.2, 0.7], [0.9, 0.1]], 0.5, multilabel=True)
    assert same.tolist() == [[False, True], [True, False]]
    # a float32 threshold compared exactly with float64 scores
    s64 = torch.tensor([0.1, 0.2], dtype=torch.float64)
    t32 = torch.tensor(0.2, dtype=torch.float32)  # 0.2000000029... > 0.2 in float64
    assert bt.metrics.apply_thresholds(s64, t32).tolist() == [False, False]


# ---------------------------------------------------------------------------------------------
# inputs: numpy, lists, pandas, bool labels, devices; inputs never modified
# ---------------------------------------------------------------------------------------------


def test_array_likes_and_bool_labels_give_the_same_answer():
    pd = pytest.importorskip("pandas")
    y = torch.rand(120) < 0.3
    s = torch.rand(120, dtype=torch.float64)
    ref = bt.metrics.tune_threshold(y.long(), s, "balanced_accuracy")
    forms = [
        (y, s),
        (y.numpy(), s.numpy()),
        (y.tolist(), s.tolist()),
        (y.long().numpy().astype(np.float32), s.numpy()),  # integral floats are labels
        (pd.Series(y.numpy()), pd.Series(s.numpy())),
        (pd.Series(y.long().numpy()), pd.Series(s.numpy())),
    ]
    for labels, scores in forms:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "non-writable array" warning from pandas' read-only arrays
            r = bt.metrics.tune_threshold(labels, scores, "balanced_accuracy")
            bt.metrics.apply_thresholds(scores, r)
        assert r == ref
    # multi-label from a DataFrame
    Y = (torch.rand(50, 3) < 0.4).numpy()
    S = np.random.rand(50, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = bt.metrics.tune_threshold(pd.DataFrame(Y), pd.DataFrame(S))
        b = bt.metrics.tune_threshold(torch.from_numpy(Y), torch.from_numpy(S))
    assert torch.equal(a["threshold"], b["threshold"]) and torch.equal(a["value"], b["value"])


def test_inputs_are_not_modified():
    y = torch.randint(0, 3, (60,))
    s = torch.randn(60, 3)
    y0, s0 = y.clone(), s.clone()
    r = _quiet(bt.metrics.tune_threshold, y, s, "f1")
    t0 = r["threshold"].clone()
    bt.metrics.apply_thresholds(s, r)
    assert torch.equal(y, y0) and torch.equal(s, s0) and torch.equal(r["threshold"], t0)


def test_device_results_match_cpu(device):
    y = torch.randint(0, 4, (500,))
    s = torch.randn(500, 4).round(decimals=1)
    cpu = _quiet(bt.metrics.tune_threshold, y, s, "balanced_accuracy")
    dev = _quiet(bt.metrics.tune_threshold, y.to(device), s.to(device), "balanced_accuracy")
    assert dev["threshold"].device.type == device.type and dev["value"].device.type == device.type
    for key in ("threshold", "value", "precision", "recall"):
        assert torch.equal(dev[key].cpu(), cpu[key]), key
    assert torch.equal(bt.metrics.apply_thresholds(s.to(device), dev).cpu(), bt.metrics.apply_thresholds(s, cpu))
    # binary on the device: floats, the same as on the CPU
    b_cpu = bt.metrics.tune_threshold(y == 1, s[:, 1], "recall@precision", target=0.4)
    b_dev = bt.metrics.tune_threshold((y == 1).to(device), s[:, 1].to(device), "recall@precision", target=0.4)
    assert b_cpu == b_dev


# ---------------------------------------------------------------------------------------------
# bad input: a clear error naming the argument and the value
# ---------------------------------------------------------------------------------------------


def test_bad_scores():
    y = [0, 1, 1, 0]
    with pytest.raises(ValueError, match=r"scores must be finite .* scores\[2\] = nan"):
        bt.metrics.tune_threshold(y, [0.1, 0.2, float("nan"), 0.3])
    with pytest.raises(ValueError, match=r"scores\[1, 0\] = inf"):
        bt.metrics.tune_threshold([0, 1], torch.tensor([[0.1, 0.9], [math.inf, 0.0]]))
    with pytest.raises(ValueError, match=r"apply_thresholds: scores must be finite .* scores\[0\] = nan"):
        bt.metrics.apply_thresholds([float("nan"), 0.5], 0.5)
    with pytest.raises(TypeError, match="scores must be numeric"):
        bt.metrics.tune_threshold(y, ["a", "b", "c", "d"])
    with pytest.raises(TypeError, match=r"scores must hold real numbers.*torch.bool"):
        bt.metrics.tune_threshold(y, torch.tensor([True, False, True, False]))
    with pytest.raises(ValueError, match="scores is empty"):
        bt.metrics.tune_threshold([], [])
    with pytest.raises(ValueError, match=r"shape \(N,\) .* got shape \(2, 2, 2\)"):
        bt.metrics.tune_threshold([0, 1], torch.rand(2, 2, 2))


@pytest.mark.parametrize("where", ["labels", "scores", "both"])
def test_meta_tensors_are_refused_naming_the_argument(where):
    labels, scores = torch.tensor([0, 1, 1]), torch.tensor([0.2, 0.7, 0.4])
    if where in ("labels", "both"):
        labels = labels.to("meta")
    if where in ("scores", "both"):
        scores = scores.to("meta")
    first = "labels" if where == "both" else where
    with pytest.raises(ValueError, match=rf"^tune_threshold: {first} is on the meta device, which holds no values"):
        bt.metrics.tune_threshold(labels, scores)
    with pytest.raises(ValueError, match=r"^apply_thresholds: scores is on the meta device"):
        bt.metrics.apply_thresholds(torch.rand(3, device="meta"), 0.5)
    with pytest.raises(ValueError, match=r"^apply_thresholds: thresholds is on the meta device"):
        bt.metrics.apply_thresholds(torch.rand(3, 2), torch.rand(2, device="meta"))


@pytest.mark.parametrize(
    "labels, pos_label, shown",
    [
        ([1, 1, 1], 7, r"\[1\]"),
        ([-1, 1, 1], 5, r"\[-1, 1\]"),
        ([0, 0, 0], 2, r"\[0\]"),
        (["a", "a", "a"], "c", r"\['a'\]"),
        (["a", "b", "b"], "c", r"\['a', 'b'\]"),
        (["a", "a", "a"], 1, r"\['a'\]"),
    ],
)
def test_pos_label_not_among_the_labels_raises_however_many_labels(labels, pos_label, shown):
    with pytest.raises(ValueError, match=rf"pos_label={pos_label!r} is not a valid label. It should be one of {shown}"):
        bt.metrics.tune_threshold(np.array(labels), torch.tensor([0.2, 0.7, 0.4]), pos_label=pos_label)


@pytest.mark.parametrize("labels", [[0, 0, 0], [-1, -1, -1]])
def test_pos_label_one_next_to_labels_without_positives_warns(labels):
    with pytest.warns(UserWarning, match="no positive sample"):
        r = bt.metrics.tune_threshold(np.array(labels), torch.tensor([0.2, 0.7, 0.4]), pos_label=1)
    assert r["threshold"] == math.inf and r["value"] == 0.0
    # pos_label=1 among the labels: an ordinary problem
    with pytest.warns(UserWarning, match="no negative sample"):
        r = bt.metrics.tune_threshold(np.array([1, 1, 1]), torch.tensor([0.2, 0.7, 0.4]), pos_label=1)
    assert r["threshold"] == pytest.approx(0.2) and r["value"] == 1.0


def test_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be 0 or 1 for binary scores .* labels\[2\] = 2"):
        bt.metrics.tune_threshold([0, 1, 2, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"labels\[1\] = -1"):
        bt.metrics.tune_threshold(torch.tensor([0, -1]), torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"class indices 0..2 for scores with C=3 columns, got labels\[3\] = 3"):
        bt.metrics.tune_threshold([0, 1, 2, 3], torch.rand(4, 3))
    with pytest.raises(ValueError, match=r"labels must be 0 or 1 for multi-label .* labels\[1, 0\] = 2"):
        bt.metrics.tune_threshold([[0, 1], [2, 0]], torch.rand(2, 2))
    with pytest.raises(ValueError, match=r"labels has shape \(3,\) but scores has shape \(4,\)"):
        bt.metrics.tune_threshold([0, 1, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"labels has shape \(4, 2\) but scores has shape \(4, 3\)"):
        bt.metrics.tune_threshold(torch.zeros(4, 2), torch.rand(4, 3))
    with pytest.raises(ValueError, match="integer class labels"):
        bt.metrics.tune_threshold([0.0, 0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"labels takes value in \{'cat', 'dog'\} and pos_label is not specified"):
        bt.metrics.tune_threshold(["cat", "dog"], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"pos_label='cow' is not a valid label. It should be one of \['cat', 'dog'\]"):
        bt.metrics.tune_threshold(["cat", "dog"], [0.1, 0.2], pos_label="cow")
    with pytest.raises(ValueError, match=r"pos_label is for binary scores"):
        bt.metrics.tune_threshold([0, 1, 2], torch.rand(3, 3), pos_label=1)
    with pytest.raises(ValueError, match=r"3 distinct labels but scores has C=4 columns"):
        bt.metrics.tune_threshold(["a", "b", "c"], torch.rand(3, 4))
    with pytest.raises(TypeError, match=r"bytes"):
        bt.metrics.tune_threshold([b"a", b"b"], [0.1, 0.2], pos_label="a")
    with pytest.raises(TypeError, match=r"pos_label must be"):
        bt.metrics.tune_threshold([0, 1], [0.1, 0.2], pos_label=[1])


@pytest.mark.parametrize("metric, target", [("f1", None), ("recall@precision", 0.6), ("balanced_accuracy", None)])
def test_string_labels_with_pos_label_equal_the_integer_case(metric, target):
    rng = np.random.default_rng(11)
    y = (rng.random(120) < 0.3).astype(int)
    s = np.round(rng.random(120) * 0.5 + 0.4 * y, 2)  # ties
    names = np.array(["benign", "malignant"])[y]
    expected = _quiet(bt.metrics.tune_threshold, y, s, metric, target)
    for labels, pos in (
        (names, "malignant"),
        (names.tolist(), "malignant"),
        (names.astype(object), "malignant"),
        (np.where(y == 1, 7, 3), 7),
        (torch.tensor(np.where(y == 1, -1, 1)), -1),
        (y == 0, False),
    ):
        got = _quiet(bt.metrics.tune_threshold, labels, s, metric, target, pos_label=pos)
        assert {k: got[k] for k in ("threshold", "value", "precision", "recall")} == {
            k: expected[k] for k in ("threshold", "value", "precision", "recall")
        }
    # pos_label picks the class, as in scikit-learn: the other class positive = the 0/1 labels flipped
    flipped = _quiet(bt.metrics.tune_threshold, names, -s, metric, target, pos_label="benign")
    assert flipped == _quiet(bt.metrics.tune_threshold, 1 - y, -s, metric, target)
    # the threshold is one of scikit-learn's precision_recall_curve thresholds for that pos_label
    skm = pytest.importorskip("sklearn.metrics")
    r = _quiet(bt.metrics.tune_threshold, names, s, "f1", pos_label="malignant")
    _, _, thresholds = skm.precision_recall_curve(names, s, pos_label="malignant")
    assert r["threshold"] in thresholds.tolist()


def test_string_labels_name_the_columns_in_sorted_order():
    rng = np.random.default_rng(12)
    codes = rng.integers(0, 3, 90)
    scores = torch.tensor(rng.random((90, 3)))
    names = np.array(["bird", "cat", "dog"])[codes]
    by_index = bt.metrics.tune_threshold(codes, scores)
    by_name = bt.metrics.tune_threshold(names, scores)
    for k in ("threshold", "value", "precision", "recall"):
        torch.testing.assert_close(by_name[k], by_index[k])
    assert by_name["task"] == "multiclass"


def test_bad_metric_target_beta():
    y, s = [0, 1, 1], [0.1, 0.5, 0.7]
    with pytest.raises(ValueError, match=r"metric must be one of .* got 'accuracy'"):
        bt.metrics.tune_threshold(y, s, "accuracy")
    with pytest.raises(ValueError, match=r"metric='recall@precision' needs target="):
        bt.metrics.tune_threshold(y, s, "recall@precision")
    with pytest.raises(ValueError, match=r"target must be a number in \[0, 1\], got 1.5"):
        bt.metrics.tune_threshold(y, s, "precision@recall", target=1.5)
    with pytest.raises(ValueError, match=r"target must be a number in \[0, 1\], got nan"):
        bt.metrics.tune_threshold(y, s, "precision@recall", target=float("nan"))
    with pytest.raises(ValueError, match="target is used by"):
        bt.metrics.tune_threshold(y, s, "f1", target=0.5)
    with pytest.raises(ValueError, match="needs beta="):
        bt.metrics.tune_threshold(y, s, "fbeta")
    with pytest.raises(ValueError, match=r"beta must be a finite number > 0, got 0"):
        bt.metrics.tune_threshold(y, s, "fbeta", beta=0)
    with pytest.raises(TypeError, match=r"target must be a number in \[0, 1\], got '0.5'"):
        bt.metrics.tune_threshold(y, s, "precision@recall", target="0.5")
    with pytest.raises(ValueError, match="beta is used by metric='fbeta' only"):
        bt.metrics.tune_threshold(y, s, "f1", beta=2.0)


def test_bad_thresholds():
    s = torch.rand(5, 3)
    with pytest.raises(ValueError, match=r"thresholds has shape \(2,\) for scores of shape \(5, 3\)"):
        bt.metrics.apply_thresholds(s, [0.5, 0.5])
    with pytest.raises(ValueError, match=r"thresholds must not be NaN, got thresholds\[1\] = nan"):
        bt.metrics.apply_thresholds(s, [0.5, float("nan"), 0.5])
    with pytest.raises(ValueError, match="expected one threshold"):
        bt.metrics.apply_thresholds(torch.rand(5), [0.5, 0.5])
    with pytest.raises(TypeError, match="thresholds must hold real numbers"):
        bt.metrics.apply_thresholds(s, torch.tensor([True, False, True]))
    r = _quiet(bt.metrics.tune_threshold, torch.randint(0, 3, (5,)), s)
    with pytest.raises(ValueError, match="multilabel=True contradicts the thresholds' task 'multiclass'"):
        bt.metrics.apply_thresholds(s, r, multilabel=True)
    with pytest.raises(TypeError, match="multilabel must be True, False or None"):
        bt.metrics.apply_thresholds(s, r, multilabel="yes")
