"""One label validator (balancedtorch._labels) behind every entry point.

ClassificationMetrics, FeatureSMOTE, class_weights, labels_of and
ClassBalancedSampler accept integral floats and refuse one-hot, fractional,
boolean and out-of-range labels with the same messages; check_labels and
check_probabilities say what they found and what to pass.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import balancedtorch as bt
from balancedtorch._labels import check_labels, check_probabilities


def test_metrics_labels_through_shared_validator(device):
    K = 4
    logits = torch.randn(50, K, device=device)
    target = torch.randint(0, K, (50,), device=device)
    a, b = bt.metrics.ClassificationMetrics(K), bt.metrics.ClassificationMetrics(K)
    a.update(logits, target)
    b.update(logits, target.double())  # integral floats: the same rule as everywhere
    assert torch.equal(a.confmat, b.confmat)
    m = bt.metrics.ClassificationMetrics(K)
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: target looks like one-hot .*argmax\(1\)"):
        m.update(logits, F.one_hot(target, K))
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: target looks like one-hot"):
        m.update(logits.argmax(1), F.one_hot(target, K).float())
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: preds_or_logits looks like one-hot"):
        m.update(F.one_hot(target, K), target)
    with pytest.raises(
        ValueError, match=r"ClassificationMetrics\.update: target must be >= 0 and < num_classes=4, got target\[3\] = 9"
    ):
        m.update(logits[:5], torch.tensor([0, 1, 2, 9, 0], device=device))
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: target holds non-numeric labels: strings"):
        m.update(torch.tensor([0, 1]), ["cat", "dog"])
    assert int(m.confmat.sum()) == 0  # nothing counted by the refused updates
    # segmentation targets (N, H, W) and a negative ignore_index still work
    seg = bt.metrics.ClassificationMetrics(K, ignore_index=-1)
    masks = torch.randint(-1, K, (2, 4, K), device=device)
    seg.update(torch.randn(2, K, 4, K, device=device), masks)
    assert int(seg.confmat.sum()) == int((masks != -1).sum())
    with pytest.raises(
        ValueError, match=r"target must be >= 0 and < num_classes=4 \(or equal ignore_index=-1\), got target\[1\] = -5"
    ):
        seg.update(torch.tensor([0, 1, 2], device=device), torch.tensor([0, -5, -1], device=device))


def test_feature_smote_labels_through_shared_validator():
    feats = torch.randn(40, 6)
    y = torch.cat([torch.zeros(30, dtype=torch.long), torch.ones(8, dtype=torch.long), torch.full((2,), 2)])
    smote = bt.resample.FeatureSMOTE(k_neighbors=1)
    f1, y1 = smote(feats, y, generator=torch.Generator().manual_seed(3))
    f2, y2 = smote(feats, y.float(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(f1, f2) and torch.equal(y1, y2.long()) and y2.dtype == torch.float32
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must hold integer class labels.*labels\[0\] = 0.5"):
        smote(feats, y.float() + 0.5)
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels looks like one-hot .*argmax\(1\)"):
        smote(feats, F.one_hot(y, 3))
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must be >= 0 and < num_classes=2, got labels\[38\] = 2"):
        bt.resample.FeatureSMOTE(k_neighbors=1, num_classes=2)(feats, y)
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must be >= 0, got labels\[1\] = -3"):
        smote(feats[:3], torch.tensor([0, -3, 1]))
    with pytest.raises(ValueError, match="FeatureSMOTE: labels must hold integers, got dtype torch.bool"):
        smote.eval()(feats[:2], torch.tensor([True, False]))


@pytest.mark.parametrize(
    "call",
    [
        lambda y: bt.class_weights(labels=y),
        lambda y: bt.data.labels_of(y),
        lambda y: bt.data.ClassBalancedSampler(y),
        lambda y: bt.metrics.ClassificationMetrics(3).update(torch.zeros(len(y), dtype=torch.long), y),
        lambda y: bt.resample.FeatureSMOTE(k_neighbors=1)(torch.randn(len(y), 4), y),
    ],
    ids=["class_weights", "labels_of", "ClassBalancedSampler", "ClassificationMetrics", "FeatureSMOTE"],
)
def test_one_rule_set_for_float_labels(call):
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    call(y.double())  # integral floats are labels everywhere
    with pytest.raises(ValueError, match=r"must hold integer class labels.*\[2\] = 2.5"):
        call(torch.tensor([0.0, 1.0, 2.5, 1.0, 0.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="must hold integers, got dtype torch.bool"):
        call(y > 0)


def test_check_labels_messages():
    with pytest.raises(ValueError, match=r"demo: y looks like one-hot targets of shape \(5, 3\).*y\.argmax\(1\)"):
        check_labels(np.eye(3)[[0, 1, 2, 1, 0]], "y", caller="demo")
    with pytest.raises(
        ValueError, match=r"demo: y holds non-numeric labels: strings \(e\.g\. 'a'\).*numpy\.unique\(y, return_inverse=True\)"
    ):
        check_labels(["a", "b"], "y", caller="demo")
    with pytest.raises(ValueError, match=r"demo: y must be 1-D, got shape \(2, 3\)"):
        check_labels(torch.tensor([[0, 5, 2], [1, 1, 3]]), "y", caller="demo")
    assert torch.equal(check_labels(torch.tensor([[0, 5], [1, 3]]), "y", any_shape=True), torch.tensor([0, 5, 1, 3]))


def test_check_probabilities_names_logits():
    logits = torch.randn(10, 4) * 3
    with pytest.raises(
        ValueError, match=r"demo: pred_probs must hold probabilities.*look like logits; pass torch\.softmax\(logits, dim=1\)"
    ):
        check_probabilities(logits, caller="demo")
    with pytest.raises(ValueError, match=r"sums to .* not 1.*look like logits"):
        check_probabilities(torch.sigmoid(logits), caller="demo")
    probs = torch.softmax(logits, dim=1)
    assert check_probabilities(probs, caller="demo") is probs
    with pytest.raises(ValueError, match="must hold floating probabilities"):
        check_probabilities(torch.ones(3, 2, dtype=torch.long))
