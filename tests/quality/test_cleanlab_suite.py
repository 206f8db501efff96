"""bt.quality against cleanlab: ``filter.find_label_issues`` and ``rank.get_label_quality_scores``.

cleanlab does not ship its tests. These test the behaviours its test files
(tests/test_filter_count.py, tests/test_rank.py,
tests/test_multilabel_classification.py) check, on data of our own: each test
asserts the behaviour and, where cleanlab gives an answer, that ours is the same
array (flag for flag, rank for rank, score for score with the same dtype) on
the same inputs, with the installed cleanlab. Seeded sweeps then compare every
filter and ranking on many random cases: float32 and float64, exact ties, tiny
and absent classes, multi-label.

Not covered, and why:
- ``low_memory=True`` with ``multi_label=True``: cleanlab's experimental batched
  approximation (``find_label_issues_batched``); we raise a ValueError instead of
  returning other samples than the exact algorithm.
- The order of ``return_indices_ranked_by`` with ``multi_label=True`` and a
  ``low_*`` filter: cleanlab pairs the scores of the flagged rows (index order)
  with the flagged indices in score order, a mismatch; we return the same samples
  ranked by their own scores (checked below: same set, sorted scores).
- Labels with a single class (cleanlab: "must contain at least 2 classes"): we
  accept them and answer (nothing is an error there).
- ``verbose`` printing and ``n_jobs`` multiprocessing: accepted with no effect
  (no result depends on them in cleanlab either).
- Tests of other functions in the same files (``count.estimate_latent``,
  ``estimate_noise_matrices``, ``get_label_quality_ensemble_scores``,
  ``get_knn_distance_ood_scores``, sparse ``X``): not part of this API.
  ``find_label_issues_using_argmax_confusion_matrix`` is covered through our
  ``confident_joint`` argument, which is all that function does.
"""

import warnings

import numpy as np
import pytest
import torch

import balancedtorch as bt

cleanlab_filter = pytest.importorskip("cleanlab.filter")
cleanlab_rank = pytest.importorskip("cleanlab.rank")
cleanlab_count = pytest.importorskip("cleanlab.count")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402

FILTERS = [
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
]
PRUNING = ["prune_by_noise_rate", "prune_by_class", "both"]
RANKS = ["self_confidence", "normalized_margin", "confidence_weighted_entropy"]


def find(labels, pred_probs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bt.quality.find_label_issues(labels, pred_probs, **kw)


def reference(labels, pred_probs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cleanlab_filter.find_label_issues(labels, pred_probs, n_jobs=1, **kw)


def same(ours, ref):
    assert isinstance(ours, np.ndarray) and ours.dtype == ref.dtype, (type(ours), getattr(ours, "dtype", None), ref.dtype)
    np.testing.assert_array_equal(ours, ref)


def make_data(sizes=(90, 45, 35), noise=0.15, seed=7):
    """Three overlapping 2-D classes, a share ``noise`` of labels moved to another class, out-of-fold pred_probs."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.5, 1.0], [1.5, 5.0]])
    spread = [np.array([[2.0, 0.6], [0.6, 1.2]]), np.array([[1.5, -0.4], [-0.4, 2.5]]), np.array([[3.0, 0.0], [0.0, 1.5]])]
    X = np.vstack([rng.multivariate_normal(c, v, size=n) for c, v, n in zip(centres, spread, sizes)])
    true = np.repeat(np.arange(3), sizes)
    labels = true.copy()
    moved = rng.random(len(true)) < noise
    labels[moved] = (true[moved] + rng.integers(1, 3, moved.sum())) % 3
    folds = max(2, min(3, int(np.bincount(labels, minlength=3).min())))
    pred_probs = cross_val_predict(LogisticRegression(), X, labels, cv=folds, method="predict_proba")
    return {"labels": labels, "true_labels": true, "pred_probs": pred_probs}


DATA = make_data()

# a hand-made case: class 1 has a mislabelled sample (row 2: the model is sure of class 2), class 0 an
# uncertain one (row 1), and the rest agree with their labels
PRED_PROBS_ = np.array(
    [
        [0.85, 0.10, 0.05],
        [0.50, 0.30, 0.20],
        [0.05, 0.10, 0.85],
        [0.15, 0.75, 0.10],
        [0.20, 0.70, 0.10],
        [0.10, 0.80, 0.10],
        [0.15, 0.70, 0.15],
        [0.05, 0.90, 0.05],
        [0.10, 0.75, 0.15],
        [0.05, 0.15, 0.80],
    ]
)
LABELS_ = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 2])


def random_case(seed, dtype=np.float64, ties=False, absent=False, tiny=False):
    rng = np.random.default_rng(seed)
    N = int(rng.integers(30, 700))
    K = int(rng.integers(2, 9))
    logits = rng.normal(size=(N, K)) * rng.uniform(0.5, 4)
    if ties:  # coarse logits: many rows (and margins) exactly equal
        logits = np.round(logits)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    p = p.astype(dtype)
    p /= p.sum(1, keepdims=True)
    y = np.where(rng.random(N) < 0.7, p.argmax(1), rng.integers(0, K, N))
    if absent and K > 2:
        y[y == K - 1] = 0
    if tiny:
        y[rng.choice(N, 2, replace=False)] = K - 1
        y[(y == K - 1)] = 0
        y[:2] = K - 1  # class K-1 has exactly two samples
    return y, p


# --------------------------------------------------------------------------- test_filter_count.py


@pytest.mark.parametrize("remove", [5, [5, 5, 5], np.array([2, 7, 4])])
def test_exact_prune_count(remove):
    s = DATA["labels"]
    ours = find(s, DATA["pred_probs"], num_to_remove_per_class=remove, filter_by="prune_by_class")
    same(ours, reference(s, DATA["pred_probs"], num_to_remove_per_class=remove, filter_by="prune_by_class"))
    np.testing.assert_array_equal(np.bincount(s[ours], minlength=3), np.broadcast_to(remove, (3,)))


@pytest.mark.parametrize("n_jobs", [None, 1, 2])
def test_pruning_both(n_jobs):
    s, p = DATA["labels"], DATA["pred_probs"]
    by = {f: find(s, p, num_to_remove_per_class=5, filter_by=f, n_jobs=n_jobs) for f in PRUNING}
    for f in PRUNING:
        same(by[f], reference(s, p, num_to_remove_per_class=5, filter_by=f))
    np.testing.assert_array_equal(by["both"], by["prune_by_class"] & by["prune_by_noise_rate"])


@pytest.mark.parametrize("filter_by", FILTERS)
def test_prune_on_small_data(filter_by):
    data = make_data(sizes=(3, 3, 3))
    ours = find(data["labels"], data["pred_probs"], filter_by=filter_by)
    same(ours, reference(data["labels"], data["pred_probs"], filter_by=filter_by))
    if filter_by in PRUNING:  # classes no larger than min_examples_per_class are never pruned
        kw = dict(filter_by=filter_by, min_examples_per_class=int(np.bincount(data["labels"]).max()))
        ours = find(data["labels"], data["pred_probs"], **kw)
        same(ours, reference(data["labels"], data["pred_probs"], **kw))
        assert not ours.any()
        with pytest.warns(UserWarning, match="too few examples"):
            bt.quality.find_label_issues(data["labels"], data["pred_probs"], **kw)


def test_pruning_order_method():
    results = [find(DATA["labels"], DATA["pred_probs"], return_indices_ranked_by=m) for m in RANKS]
    assert len(results[0]) == len(results[1]) == len(results[2]) > 0
    assert sorted(results[0]) == sorted(results[1]) == sorted(results[2])
    for m, r in zip(RANKS, results):
        same(r, reference(DATA["labels"], DATA["pred_probs"], return_indices_ranked_by=m))


@pytest.mark.parametrize("multi_label", [True, False])
@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both", "confident_learning"])
def test_find_label_issues_multi_label(multi_label, filter_by):
    s_ml = [[int(z), int(DATA["true_labels"][i])] for i, z in enumerate(DATA["labels"])]
    labels = s_ml if multi_label else DATA["labels"]
    ours = find(labels, DATA["pred_probs"], filter_by=filter_by, multi_label=multi_label)
    same(ours, reference(labels, DATA["pred_probs"], filter_by=filter_by, multi_label=multi_label))
    acc = np.mean((DATA["labels"] != DATA["true_labels"]) == ours)
    assert acc > 0.85


def test_predicted_neq_given_filter():
    pred_probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.2, 0.3, 0.5], [0.25, 0.15, 0.6], [0.3, 0.6, 0.1]])
    s = np.array([0, 1, 2, 1, 2])  # rows 1, 3 and 4: the most probable class is not the given one
    np.testing.assert_array_equal(find(s, pred_probs, filter_by="predicted_neq_given"), [False, True, False, True, True])
    expected = np.array([False, False, True, False, False, False, False, False, False, False])
    np.testing.assert_array_equal(find(LABELS_, PRED_PROBS_, filter_by="predicted_neq_given"), expected)


@pytest.mark.parametrize("calibrate", [True, False])
@pytest.mark.parametrize("filter_by", PRUNING)
def test_find_label_issues_using_argmax_confusion_matrix(calibrate, filter_by):
    cj = confusion_matrix(np.argmax(PRED_PROBS_, axis=1), LABELS_).T
    if calibrate:
        cj = cleanlab_count.calibrate_confident_joint(cj, LABELS_)
    ours = find(LABELS_, PRED_PROBS_, confident_joint=cj, filter_by=filter_by)
    np.testing.assert_array_equal(ours, [False, False, True, False, False, False, False, False, False, False])
    same(
        ours,
        cleanlab_filter.find_label_issues_using_argmax_confusion_matrix(
            LABELS_, PRED_PROBS_, calibrate=calibrate, filter_by=filter_by
        ),
    )


def test_find_label_issue_filters_match_origin_functions():
    neq = find(LABELS_, PRED_PROBS_, filter_by="predicted_neq_given")
    np.testing.assert_array_equal(find(LABELS_, PRED_PROBS_, filter_by="confident_learning", verbose=True), neq)
    with pytest.raises(ValueError, match="num_to_remove_per_class works with filter_by in"):
        bt.quality.find_label_issues(LABELS_, PRED_PROBS_, filter_by="predicted_neq_given", num_to_remove_per_class=[1] * 3)


def test_num_label_issues():
    cj = cleanlab_count.compute_confident_joint(DATA["labels"], DATA["pred_probs"])
    cj = cj + np.eye(3, dtype=cj.dtype) * 3 + 1  # a user's joint, not the one we would compute
    ours = find(DATA["labels"], DATA["pred_probs"], confident_joint=cj)
    same(ours, reference(DATA["labels"], DATA["pred_probs"], confident_joint=cj))
    for f in ("low_self_confidence", "low_normalized_margin"):
        mask = find(DATA["labels"], DATA["pred_probs"], filter_by=f)
        assert mask.sum() == cleanlab_count.num_label_issues(DATA["labels"], DATA["pred_probs"])
        same(mask, reference(DATA["labels"], DATA["pred_probs"], filter_by=f))


def test_missing_classes():
    labels = np.array([0, 0, 1, 1])  # class 2 is never given
    pred_probs = np.array([[0.2, 0.65, 0.15], [0.75, 0.15, 0.1], [0.6, 0.3, 0.1], [0.15, 0.7, 0.15]])
    for f in FILTERS:
        same(find(labels, pred_probs, filter_by=f), reference(labels, pred_probs, filter_by=f))
    # rows 0 and 2: the model is confident of the other present class
    np.testing.assert_array_equal(find(labels, pred_probs), [True, False, True, False])


def test_removing_class_consistent_results():
    """Adding a column of zeros (an absent class) changes nothing, as cleanlab checks."""
    s, p = DATA["labels"], DATA["pred_probs"]
    wider = np.hstack([p, np.zeros((len(s), 1))])
    for f in FILTERS:
        np.testing.assert_array_equal(find(s, wider, filter_by=f), find(s, p, filter_by=f))
        same(find(s, wider, filter_by=f), reference(s, wider, filter_by=f))


@pytest.mark.parametrize("frac_noise", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("min_examples_per_class", [0, 1, 10, 60])
def test_frac_noise_and_min_examples(frac_noise, min_examples_per_class):
    s, p = DATA["labels"], DATA["pred_probs"]
    for f in PRUNING:
        kw = dict(filter_by=f, frac_noise=frac_noise, min_examples_per_class=min_examples_per_class)
        same(find(s, p, **kw), reference(s, p, **kw))
    fewer = find(s, p, frac_noise=frac_noise).sum()
    assert fewer <= find(s, p).sum()


def test_confident_learning_ignores_confident_joint_with_a_warning():
    cj = np.full((3, 3), 7)
    with pytest.warns(UserWarning, match="confident_joint is ignored"):
        ours = bt.quality.find_label_issues(
            DATA["labels"], DATA["pred_probs"], filter_by="confident_learning", confident_joint=cj
        )
    np.testing.assert_array_equal(ours, find(DATA["labels"], DATA["pred_probs"], filter_by="confident_learning"))


# --------------------------------------------------------------------------- test_rank.py


@pytest.mark.parametrize("method", RANKS)
@pytest.mark.parametrize("adjust_pred_probs", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_order_label_issues_using_scoring_func_ranking(method, adjust_pred_probs, dtype):
    labels, p = DATA["labels"], DATA["pred_probs"].astype(dtype)
    if adjust_pred_probs and method == "confidence_weighted_entropy":
        with pytest.raises(ValueError, match="adjust_pred_probs is not supported"):
            bt.quality.label_quality_scores(labels, p, method, adjust_pred_probs=True)
        with pytest.raises(ValueError, match="adjust_pred_probs is not supported"):
            bt.quality.find_label_issues(labels, p, return_indices_ranked_by=method, rank_by_kwargs={"adjust_pred_probs": True})
        return
    scores = bt.quality.label_quality_scores(labels, p, method, adjust_pred_probs=adjust_pred_probs)
    ref = cleanlab_rank.get_label_quality_scores(labels, p, method=method, adjust_pred_probs=adjust_pred_probs)
    same(scores, ref)  # bit for bit, and cleanlab's dtype (float64 for confidence_weighted_entropy)
    assert ((scores >= 0) & (scores <= 1)).all()
    mask = DATA["labels"] != DATA["true_labels"]
    kw = dict(return_indices_ranked_by=method, rank_by_kwargs={"adjust_pred_probs": adjust_pred_probs})
    ranked = find(labels, p, **kw)
    same(ranked, reference(labels, p, **kw))
    flagged = find(labels, p)
    assert sorted(ranked) == np.flatnonzero(flagged).tolist()
    assert (np.diff(scores[ranked]) >= 0).all()
    # cleanlab's own check: order_label_issues sorts the mask's indices by these scores
    order = cleanlab_rank.order_label_issues(
        mask, labels, p, rank_by=method, rank_by_kwargs={"adjust_pred_probs": adjust_pred_probs}
    )
    np.testing.assert_array_equal(np.flatnonzero(mask)[np.argsort(scores[mask])], order)


def test_scores_flag_the_errors():
    for method in RANKS:
        scores = bt.quality.label_quality_scores(DATA["labels"], DATA["pred_probs"], method)
        errors = np.flatnonzero(DATA["labels"] != DATA["true_labels"])
        assert np.argmin(scores) in errors and np.argmax(scores) not in errors


def test_bad_rank_by_parameter_error():
    with pytest.raises(ValueError, match="return_indices_ranked_by must be one of"):
        bt.quality.find_label_issues(DATA["labels"], DATA["pred_probs"], return_indices_ranked_by="not_a_real_method")
    with pytest.raises(ValueError, match="method must be one of"):
        bt.quality.label_quality_scores(DATA["labels"], DATA["pred_probs"], "not_a_real_method")
    with pytest.raises(ValueError, match="rank_by_kwargs accepts only 'adjust_pred_probs'"):
        bt.quality.find_label_issues(
            DATA["labels"], DATA["pred_probs"], return_indices_ranked_by="self_confidence", rank_by_kwargs={"T": 2}
        )


# --------------------------------------------------------------------------- sweeps against cleanlab


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["plain", "ties", "absent", "tiny", "ties+absent"])
def test_sweep_equals_cleanlab(dtype, kind):
    for seed in range(6):
        y, p = random_case(seed, dtype, ties="ties" in kind, absent="absent" in kind, tiny=kind == "tiny")
        for f in FILTERS:
            same(find(y, p, filter_by=f), reference(y, p, filter_by=f))
            for r in RANKS:
                same(
                    find(y, p, filter_by=f, return_indices_ranked_by=r), reference(y, p, filter_by=f, return_indices_ranked_by=r)
                )
        for r in RANKS:
            same(bt.quality.label_quality_scores(y, p, r), cleanlab_rank.get_label_quality_scores(y, p, method=r))


@pytest.mark.parametrize("seed", range(8))
def test_sweep_options_equal_cleanlab(seed):
    y, p = random_case(100 + seed, np.float32 if seed % 2 else np.float64, ties=seed % 3 == 0)
    K = p.shape[1]
    rng = np.random.default_rng(seed)
    remove = rng.integers(0, 6, K)
    cj = cleanlab_count.compute_confident_joint(y, p) + rng.integers(0, 3, (K, K))
    for f in PRUNING:
        same(
            find(y, p, filter_by=f, num_to_remove_per_class=remove), reference(y, p, filter_by=f, num_to_remove_per_class=remove)
        )
        same(find(y, p, filter_by=f, confident_joint=cj), reference(y, p, filter_by=f, confident_joint=cj))
        for r in RANKS[:2]:
            kw = dict(filter_by=f, return_indices_ranked_by=r, rank_by_kwargs={"adjust_pred_probs": True})
            same(find(y, p, **kw), reference(y, p, **kw))


def random_multilabel(seed, N=None, K=None):
    rng = np.random.default_rng(seed)
    N = N or int(rng.integers(40, 400))
    K = K or int(rng.integers(2, 6))
    p = rng.uniform(size=(N, K))
    if seed % 2:
        p = np.round(p, 1)  # ties
    labels = [[int(c) for c in np.flatnonzero((p[i] > 0.5) ^ (rng.random(K) < 0.1))] for i in range(N)]
    return labels, p


@pytest.mark.parametrize("seed", range(6))
def test_multilabel_sweep_equals_cleanlab(seed):
    labels, p = random_multilabel(seed)
    K = p.shape[1]
    hot = np.zeros(p.shape, dtype=np.int64)
    for i, row in enumerate(labels):
        hot[i, row] = 1
    for f in FILTERS:
        for r in [None] + RANKS:
            ours = find(labels, p, filter_by=f, multi_label=True, return_indices_ranked_by=r)
            ref = reference(labels, p, filter_by=f, multi_label=True, return_indices_ranked_by=r)
            if r is not None and f.startswith("low_"):
                assert sorted(ours) == sorted(ref)  # same samples; see the module docstring for the order
            else:
                same(ours, ref)
            np.testing.assert_array_equal(find(hot, p, filter_by=f, multi_label=True, return_indices_ranked_by=r), ours)
    cj = cleanlab_count.compute_confident_joint(labels, p, multi_label=True)
    remove = np.random.default_rng(seed).integers(0, 4, K)
    for f in PRUNING:
        same(
            find(labels, p, filter_by=f, multi_label=True, confident_joint=cj),
            reference(labels, p, filter_by=f, multi_label=True, confident_joint=cj),
        )
        same(
            find(labels, p, filter_by=f, multi_label=True, num_to_remove_per_class=remove),
            reference(labels, p, filter_by=f, multi_label=True, num_to_remove_per_class=remove),
        )


def test_multilabel_low_filters_rank_by_their_scores():
    labels, p = random_multilabel(3, N=300, K=4)
    ranked = find(labels, p, filter_by="low_self_confidence", multi_label=True, return_indices_ranked_by="normalized_margin")
    hot = np.zeros(p.shape, dtype=np.int64)
    for i, row in enumerate(labels):
        hot[i, row] = 1
    from cleanlab.internal import multilabel_scorer as ml

    rows = np.sort(ranked)
    scorer = ml.MultilabelScorer(base_scorer=ml.ClassLabelScorer.NORMALIZED_MARGIN)
    scores = dict(zip(rows.tolist(), ml.get_label_quality_scores(hot[rows], p[rows], method=scorer).tolist()))
    assert len(ranked) > 0 and all(scores[a] <= scores[b] for a, b in zip(ranked[:-1], ranked[1:]))


# --------------------------------------------------------------------------- regressions and our API


def test_absent_class_threshold_compared_in_float64():
    """float32 pred_probs with an absent class: cleanlab's thresholds are float64, so is its comparison."""
    p = np.array(
        [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.65, 0.25, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1],
         [0.3, 0.6, 0.1], [0.25, 0.65, 0.1], [0, 0, 0]],
        dtype=np.float32,
    )  # fmt: skip
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    bound = np.float64(np.mean(p[:4, 0])) - 1e-6
    v = np.float32(bound)
    if np.float64(v) >= bound:
        v = np.nextafter(v, np.float32(-1))
    assert np.float32(np.mean(p[:4, 0])) - np.float32(1e-6) <= v  # confident in float32 arithmetic, not in float64
    p[8] = [v, np.float32(1) - v - np.float32(0.01), np.float32(0.01)]
    for f in FILTERS:
        same(find(y, p, filter_by=f), reference(y, p, filter_by=f))
    assert not find(y, p, filter_by="confident_learning")[8]


def test_ties_at_the_cut_decided_as_cleanlab():
    """Identical rows straddling the prune cut: cleanlab keeps the ones numpy's argsort puts first."""
    rng = np.random.default_rng(0)
    rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.45, 0.45, 0.1]])
    p = rows[rng.integers(0, 4, 600)]
    y = np.where(rng.random(600) < 0.75, p.argmax(1), rng.integers(0, 3, 600))
    for f in FILTERS:
        same(find(y, p, filter_by=f), reference(y, p, filter_by=f))
        for r in RANKS:
            same(find(y, p, filter_by=f, return_indices_ranked_by=r), reference(y, p, filter_by=f, return_indices_ranked_by=r))


def test_output_types_follow_the_input(device):
    y, p = random_case(5)
    mask = find(y, p)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == y.shape
    ranked = find(y.tolist(), p, return_indices_ranked_by="self_confidence")
    assert isinstance(ranked, np.ndarray) and ranked.dtype == np.int64
    yt, pt = torch.tensor(y, device=device), torch.tensor(p, device=device)
    mask_t = find(yt, pt)
    ranked_t = find(yt, pt, return_indices_ranked_by="normalized_margin")
    assert mask_t.dtype == torch.bool and mask_t.device.type == torch.device(device).type
    assert ranked_t.dtype == torch.int64 and ranked_t.device.type == torch.device(device).type
    np.testing.assert_array_equal(mask_t.cpu().numpy(), reference(y, p))
    np.testing.assert_array_equal(ranked_t.cpu().numpy(), reference(y, p, return_indices_ranked_by="normalized_margin"))
    scores = bt.quality.label_quality_scores(yt, pt, "confidence_weighted_entropy")
    assert scores.dtype == torch.float64 and scores.device.type == torch.device(device).type


def test_signature_and_aliases():
    import inspect

    params = inspect.signature(bt.quality.find_label_issues).parameters
    ours = {n: v.default for n, v in params.items() if v.kind == v.KEYWORD_ONLY}
    theirs = {
        n: v.default
        for n, v in inspect.signature(cleanlab_filter.find_label_issues).parameters.items()
        if v.kind == v.KEYWORD_ONLY
    }
    for name, default in theirs.items():
        assert name in ours and ours[name] == default, name
    assert ours["low_memory"] is False
    y, p = random_case(9)
    np.testing.assert_array_equal(
        find(y, p, rank_by="normalized_margin"), find(y, p, return_indices_ranked_by="normalized_margin")
    )
    np.testing.assert_array_equal(find(y, p, rank_by=None), find(y, p))
    with pytest.raises(ValueError, match="disagree"):
        bt.quality.find_label_issues(y, p, rank_by="self_confidence", return_indices_ranked_by="normalized_margin")
    with pytest.raises(TypeError):
        bt.quality.find_label_issues(y, p, "prune_by_class")  # keyword-only, as cleanlab


def test_n_jobs_verbose_low_memory(capsys):
    y, p = random_case(4)
    base = find(y, p)
    for kw in ({"n_jobs": 1}, {"n_jobs": 4}, {"verbose": True}, {"low_memory": True}):
        np.testing.assert_array_equal(find(y, p, **kw), base)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="n_jobs must be an int >= 1 or None"):
        bt.quality.find_label_issues(y, p, n_jobs=0)
    with pytest.raises(ValueError, match="low_memory=True with multi_label=True"):
        bt.quality.find_label_issues([[0], [1]], np.array([[0.9, 0.2], [0.1, 0.7]]), multi_label=True, low_memory=True)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_to_remove_per_class": [1, 2]}, ValueError, "num_to_remove_per_class must be 3 non-negative integers"),
        ({"num_to_remove_per_class": [1, -2, 0]}, ValueError, "num_to_remove_per_class must be 3"),
        ({"confident_joint": np.ones((2, 2))}, ValueError, r"confident_joint must be a numeric array of shape \(3, 3\)"),
        ({"confident_joint": -np.ones((3, 3))}, ValueError, "confident_joint must hold finite counts >= 0"),
        ({"filter_by": "low_self_confidence", "num_to_remove_per_class": [1, 1, 1]}, ValueError, "num_to_remove_per_class works"),
        ({"rank_by_kwargs": [1]}, TypeError, "rank_by_kwargs must be a dict"),
        ({"multi_label": 1}, TypeError, "multi_label must be True or False"),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        bt.quality.find_label_issues(LABELS_, PRED_PROBS_, **kwargs)


def test_bad_multilabel_labels():
    p = np.array([[0.9, 0.2], [0.1, 0.7]])
    with pytest.raises(ValueError, match=r"labels\[1\] must hold class indices in \[0, 2\), got 2"):
        bt.quality.find_label_issues([[0], [2]], p, multi_label=True)
    with pytest.raises(TypeError, match=r"labels\[0\] must be a list of class indices"):
        bt.quality.find_label_issues([0, 1], p, multi_label=True)
    with pytest.raises(ValueError, match="multi-hot"):
        bt.quality.find_label_issues(np.array([[0, 2], [1, 0]]), p, multi_label=True)


def test_inputs_not_modified():
    y, p = random_case(2, np.float32)
    cj = cleanlab_count.compute_confident_joint(y, p)
    y0, p0, cj0 = y.copy(), p.copy(), cj.copy()
    for f in FILTERS:
        find(y, p, filter_by=f, return_indices_ranked_by="normalized_margin", rank_by_kwargs={"adjust_pred_probs": True})
    find(y, p, confident_joint=cj, num_to_remove_per_class=2)
    assert np.array_equal(y, y0) and np.array_equal(p, p0) and np.array_equal(cj, cj0)


# --------------------------------------------------------------------------- count arithmetic, property-based

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    given = None

if given is not None:
    from balancedtorch.quality import label_issues as _li

    # adversarial rows of counts: halves (round-half-even), exact ties in the remainders, huge and tiny values
    _COUNT = st.one_of(
        st.floats(0, 1e6, allow_nan=False),
        st.sampled_from([0.0, 0.5, 1.5, 2.5, 1e-9, 0.49999999999999994, 7.0, 1e15]),
        st.integers(0, 50).map(lambda k: k / 4),
    )

    @settings(max_examples=400, deadline=None)
    @given(hnp.arrays(np.float64, st.integers(1, 12), elements=_COUNT))
    def test_rounding_keeps_the_total_as_cleanlab(row):
        from cleanlab.internal.util import round_preserving_sum

        ours = _li._round_keeping_total(row.copy())
        np.testing.assert_array_equal(ours, round_preserving_sum(row.copy()))
        assert ours.sum() == np.round(row.sum()) and np.all(np.abs(ours - row) < 1 + 1e-9)

    @settings(max_examples=300, deadline=None)
    @given(
        hnp.arrays(np.int64, st.integers(2, 7).map(lambda k: (k, k)), elements=st.integers(0, 60)),
        st.integers(0, 40),
        st.sampled_from([0.0, 0.2, 1 / 3, 0.5, 0.9, 1.0]),
    )
    def test_prune_counts_as_cleanlab(joint, min_per_class, frac_noise):
        ours = _li._prune_counts(joint, min_per_class, frac_noise)
        theirs = cleanlab_filter._keep_at_least_n_per_class(joint.T, min_per_class, frac_noise=frac_noise)
        np.testing.assert_array_equal(ours, theirs)
        assert (ours >= 0).all() and ours.dtype.kind == "i"
