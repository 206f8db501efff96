"""
Near-duplicates and train/test leakage
======================================

Scraped and merged data sets hold the same picture several times (resized,
re-encoded, slightly brightened). Duplicates over-weight what they show, and
a test image that is a near-copy of a training image makes the test score a
memory test. :func:`balancedtorch.quality.find_duplicates` groups the rows
within a distance of each other, :func:`balancedtorch.quality.find_leakage`
lists the test rows with a training row that close; both search exactly, on
the kNN kernel of :func:`balancedtorch.ops.knn`, in bounded memory.
"""

# %%
# A data set with planted copies
# ------------------------------
# scikit-learn's digits, split in two, then: 40 training images copied back
# into the training set with a little noise and a brightness change, and 25
# test images replaced by such near-copies of training images.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

import balancedtorch as bt

digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32) / 16.0
order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
train, test = x[order[:1200]].clone(), x[order[1200:]].clone()

g = torch.Generator().manual_seed(1)


def near_copy(images):
    brightness = 1 + 0.1 * (torch.rand(len(images), 1, 1, generator=g) - 0.5)
    return (images * brightness + 0.02 * torch.randn(images.shape, generator=g)).clamp(0, 1)


copied = torch.randperm(len(train), generator=g)[:40]
train = torch.cat([train, near_copy(train[copied])])
leaked_from = torch.randperm(1200, generator=g)[:25]
leaked_to = torch.randperm(len(test), generator=g)[:25]
test[leaked_to] = near_copy(train[leaked_from])
print(f"train {len(train)} images ({len(copied)} planted copies), test {len(test)} ({len(leaked_to)} leaked)")

# %%
# Choosing the threshold
# ----------------------
# The distance of each test image to its nearest training image (one
# ``bt.ops.knn`` call) shows two populations: genuine neighbours, and near
# copies close to zero. The threshold goes in the gap.
features_train, features_test = train.flatten(1), test.flatten(1)
squared, _ = bt.ops.knn(features_test, k=1, ref=features_train)  # squared Euclidean distances
distance = squared[:, 0].sqrt()
threshold = 0.4

fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.hist(distance.numpy(), bins=60, color="tab:blue")
ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold}")
ax.set_xlabel("distance of a test image to its nearest training image")
ax.set_ylabel("test images")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()

# %%
# Duplicates inside the training set, leaks into the test set
# -----------------------------------------------------------
groups = bt.quality.find_duplicates(features_train, threshold)
print(f"{len(groups)} groups of near-duplicates in the training set, e.g. {[grp.tolist() for grp in groups[:4]]}")
planted = {frozenset((int(c), 1200 + i)) for i, c in enumerate(copied)}
found = [grp for grp in groups if frozenset(grp.tolist()) in planted]
print(f"planted pairs found: {len(found)} of {len(planted)}")
# the rest were near-duplicates in the data before we planted any
print("other groups:", [grp.tolist() for grp in groups if frozenset(grp.tolist()) not in planted])

test_idx, train_idx, dist = bt.quality.find_leakage(features_train, features_test, threshold)
print(f"{len(test_idx)} leaking test images; planted: {np.isin(test_idx.numpy(), leaked_to.numpy()).sum()} of {len(leaked_to)}")

# %%
# Looking at them
# ---------------
# Each pair: a leaking test image and the training image it copies.
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for c in range(min(8, len(test_idx))):
    axes[0, c].imshow(test[test_idx[c]], cmap="gray", vmin=0, vmax=1)
    axes[1, c].imshow(train[train_idx[c]], cmap="gray", vmin=0, vmax=1)
    axes[0, c].set_title(f"d = {dist[c]:.2f}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("test")
axes[1, 0].set_ylabel("train")
fig.tight_layout()

# %%
# Drop the leaking test rows (or move them to training), and keep one row of
# each duplicate group::
#
#     keep_test = torch.ones(len(test), dtype=torch.bool)
#     keep_test[test_idx] = False
#     drop_train = torch.cat([g[1:] for g in groups])
