"""
Precision-recall, ROC and a tuned decision threshold
====================================================

When positives are rare (fraud, defects, a disease), the default rule
"positive when the probability exceeds 0.5" is rarely the one you want, and
ROC curves look flattering because true negatives are plentiful. The
precision-recall curve shows what each threshold costs, and
:func:`balancedtorch.metrics.tune_threshold` picks the threshold that meets a
goal on validation data: the best F1, or the most recall at a precision you
can afford. The curves and scores are scikit-learn's, computed by
``bt.metrics`` on tensors (any device).
"""

# %%
# A rare-event problem
# --------------------
# 3% positives in a synthetic tabular data set, split into train, validation
# (for the threshold) and test (to check it), and a small logistic model.
import matplotlib.pyplot as plt
import torch
from sklearn.datasets import make_classification
from torch import nn

import balancedtorch as bt

# a model this small trains fastest on one CPU thread (no thread start-up or contention)
torch.set_num_threads(1)
x, y = make_classification(
    n_samples=6000, n_features=20, n_informative=6, weights=[0.97], class_sep=0.8, flip_y=0.01, random_state=0
)
x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
x_train, y_train = x[:3000], y[:3000]
x_val, y_val = x[3000:4500], y[3000:4500]
x_test, y_test = x[4500:], y[4500:]
print(f"positives: train {int(y_train.sum())}, validation {int(y_val.sum())}, test {int(y_test.sum())}")

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 1))
optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = bt.nn.SigmoidFocalLoss(alpha=0.75, gamma=2.0)  # torchvision's focal loss, fused
for _ in range(200):
    loss = loss_fn(model(x_train).squeeze(1), y_train.float())
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()

with torch.no_grad():
    p_val = torch.sigmoid(model(x_val).squeeze(1))
    p_test = torch.sigmoid(model(x_test).squeeze(1))

# %%
# The curves of the test set
# --------------------------
# ``ClassificationMetrics(..., curves=True)`` keeps the scores it is given
# and adds average precision and ROC AUC (equal to scikit-learn's) to
# ``compute()``, and the plot methods. With two classes and one score per
# sample it is a binary task: the curves are those of class 1.
metrics = bt.metrics.ClassificationMetrics(2, class_names=["normal", "rare"], curves=True)
metrics.update(p_test, y_test)
r = metrics.compute()
print(f"test: average precision {r['average_precision']:.3f}, ROC AUC {r['roc_auc']:.3f}")
plt.figure(metrics.plot_roc_curves())

# %%
# The ROC curve looks respectable, but with 97% negatives even a small
# false-positive rate means many false alarms. The precision-recall curve is
# the honest view of a rare class: past a recall of about a half, most alarms
# are false. (``plt.figure(fig)`` hands the returned figure to pyplot.)
plt.figure(metrics.plot_pr_curves())

# %%
# Thresholds tuned on validation data
# -----------------------------------
# Each goal gives its own threshold (a sample is positive when
# ``score >= threshold``, scikit-learn's rule). We tune on the validation
# scores, then apply the thresholds to the test scores with
# :func:`balancedtorch.metrics.apply_thresholds`.
goals = {
    "default 0.5": {"threshold": 0.5},
    "best F1": bt.metrics.tune_threshold(y_val, p_val, metric="f1"),
    "recall at precision >= 0.8": bt.metrics.tune_threshold(y_val, p_val, metric="recall@precision", target=0.8),
    "precision at recall >= 0.9": bt.metrics.tune_threshold(y_val, p_val, metric="precision@recall", target=0.9),
}

precision, recall, _ = bt.metrics.precision_recall_curve(y_test, p_test)
fig, ax = plt.subplots(figsize=(6, 4.5))
ax.step(recall.numpy(), precision.numpy(), where="post", color="grey", label="test precision-recall curve")
for (name, tuned), marker in zip(goals.items(), "osD^"):
    pred = bt.metrics.apply_thresholds(p_test, tuned["threshold"])
    tp = int((pred & (y_test == 1)).sum())
    p, rc = tp / max(int(pred.sum()), 1), tp / int(y_test.sum())
    print(f"{name:<28} threshold {tuned['threshold']:.3f}: test precision {p:.2f}, recall {rc:.2f}")
    ax.plot(rc, p, marker, markersize=9, label=f"{name} (t = {tuned['threshold']:.2f})")
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_title("operating points on the test set, thresholds from validation")
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()

# %%
# The same functions take ``(N, C)`` scores and class labels: one threshold
# per class, one-vs-rest (``tune_threshold(y, logits)["threshold"]`` is a
# ``Tensor[C]``), and ``apply_thresholds`` then picks one class per sample.
