"""
Confusion matrices: plain training vs balanced training
=======================================================

A classifier trained on long-tailed data learns to ignore the rare classes:
overall accuracy looks fine while the rare classes are never predicted. The
confusion matrix shows it at once. Here the same small network is trained
three times on a long-tailed version of scikit-learn's handwritten digits
(class sizes from 100 down to 2): with plain shuffling and cross-entropy, with
:class:`balancedtorch.data.ClassBalancedSampler`, and with class-weighted
cross-entropy (:func:`balancedtorch.class_weights` and
:class:`balancedtorch.nn.CrossEntropyLoss`). Each is scored on a balanced
test set with :class:`balancedtorch.metrics.ClassificationMetrics`.
"""

# %%
# A long-tailed training set
# --------------------------
# Digit ``c`` keeps ``100 * 50 ** (-c / 9)`` training images (100, 65, 42, ...,
# 2); the test set holds 40 images of every digit, so each class counts the
# same in the test metrics.
import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import balancedtorch as bt

# a model this small trains fastest on one CPU thread (no thread start-up or contention)
torch.set_num_threads(1)
torch.manual_seed(0)
digits = load_digits()
x_all = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y_all = torch.tensor(digits.target)

g = torch.Generator().manual_seed(0)
train_idx, test_idx = [], []
for c in range(10):
    idx = (y_all == c).nonzero().squeeze(1)
    idx = idx[torch.randperm(len(idx), generator=g)]
    test_idx.append(idx[:40])
    train_idx.append(idx[40 : 40 + round(100 * 50 ** (-c / 9))])
train_idx, test_idx = torch.cat(train_idx), torch.cat(test_idx)
x_train, y_train = x_all[train_idx], y_all[train_idx]
x_test, y_test = x_all[test_idx], y_all[test_idx]
print("training images per digit:", torch.bincount(y_train).tolist())

# %%
# One training loop, three recipes
# --------------------------------
# The samplers of ``bt.data`` plug into an ordinary ``DataLoader``; the losses
# of ``bt.nn`` are drop-in replacements for ``torch.nn``'s.
train_set = TensorDataset(x_train, y_train)


def train(sampler=None, loss_fn=None, steps=300, batch_size=32):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=sampler is None,
        generator=torch.Generator().manual_seed(0) if sampler is None else None,
    )
    step, epoch = 0, 0
    while step < steps:
        if sampler is not None:
            sampler.set_epoch(epoch)  # a new draw every epoch
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    # score on the balanced test set
    metrics = bt.metrics.ClassificationMetrics(10, class_names=[str(c) for c in range(10)])
    with torch.no_grad():
        metrics.update(model(x_test), y_test)
    return metrics


plain = train()
# (b) every class drawn equally often (rare images repeat within an epoch)
sampled = train(sampler=bt.data.ClassBalancedSampler(y_train, class_shares="balanced", seed=0))
# (c) the natural stream, but each class's loss weighted by its inverse frequency
weight = bt.class_weights(labels=y_train, scheme="inverse")
weighted = train(loss_fn=bt.nn.CrossEntropyLoss(weight=weight))

for name, m in [("plain", plain), ("ClassBalancedSampler", sampled), ("weighted CE", weighted)]:
    r = m.compute()
    print(
        f"{name:<22} accuracy {r['accuracy']:.3f}  balanced accuracy {r['balanced_accuracy']:.3f}  macro F1 {r['macro_f1']:.3f}"
    )

# %%
# The confusion matrices
# ----------------------
# ``plot_confusion_matrix`` returns a matplotlib ``Figure`` that pyplot does not
# track (it can go straight to ``SummaryWriter.add_figure``, or to a file with
# ``path=``); ``plt.figure(fig)`` (matplotlib 3.11 or later) hands it to pyplot
# so that ``plt.show()`` (and this gallery) displays it.
# Rows are the true digits, normalised to 1: the diagonal is each digit's
# recall. The plain model's rare digits (bottom rows) leak into the frequent
# ones (left columns).
plt.figure(plain.plot_confusion_matrix(normalize="true")).suptitle("plain: shuffle + cross-entropy")

# %%
# Drawing every class equally often moves that mass back onto the diagonal.
plt.figure(sampled.plot_confusion_matrix(normalize="true")).suptitle("ClassBalancedSampler")

# %%
# Per-class recall of the three recipes
# -------------------------------------
# ``compute()`` returns every per-class metric as a tensor; ``report()`` prints
# scikit-learn's ``classification_report`` table.
print(sampled.report())

fig, ax = plt.subplots(figsize=(7, 3.2))
for i, (name, m) in enumerate([("plain", plain), ("ClassBalancedSampler", sampled), ("weighted CE", weighted)]):
    ax.bar(torch.arange(10).numpy() + (i - 1) * 0.27, m.compute()["recall"].numpy(), 0.27, label=name)
ax.set_xticks(range(10), [f"{c}\n({n})" for c, n in enumerate(torch.bincount(y_train).tolist())])
ax.set_xlabel("digit (training images)")
ax.set_ylabel("test recall")
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()
