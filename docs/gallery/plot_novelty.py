"""
Novelty scores of a slice the training set lacks
================================================

A training set can lack a whole slice of what the deployed model will see
(horizontal traffic lights, a dialect, a new product). Such inputs are
far from everything the model was trained on.
:class:`balancedtorch.quality.NoveltyDetector` scores an input by the
distance to its k-th nearest training sample in a feature space (Sun et al.,
2022, "deep nearest neighbours"), sets its cut on held-out data so that 95%
of ordinary inputs pass, and flags the rest. Here the training digits lack
every "7"; the detector is asked about new digits, 7s included.
"""

# %%
# Training data without a slice
# -----------------------------
# The features are the 64 pixels of scikit-learn's 8x8 digits; with a
# trained network use its penultimate-layer embeddings instead (the
# detector L2-normalises them by default, as the paper does).
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

import balancedtorch as bt

digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
x, y = x[order], y[order]

unseen = y == 7
seen_x = x[~unseen]
train_x, val_x, test_x = seen_x[:900], seen_x[900:1200], seen_x[1200:]
new_x = x[unseen]  # the slice the training set lacks
print(f"train {len(train_x)} (no 7s), validation {len(val_x)}, test: {len(test_x)} seen digits + {len(new_x)} 7s")

# %%
# Fit, set the cut, score
# -----------------------
# ``fit`` keeps the training features as the bank (``fit`` returns the
# detector, scikit-learn style); ``threshold`` cuts at the score that 95% of
# the held-out in-distribution inputs stay under; ``score`` and ``predict``
# work on any new inputs.
detector = bt.quality.NoveltyDetector(k=5).fit(train_x.flatten(1))
cut = detector.threshold(val_x.flatten(1), tpr=0.95)
seen_scores = detector.score(test_x.flatten(1))
new_scores = detector.score(new_x.flatten(1))
print(
    f"cut {cut:.3f}: flagged {detector.predict(test_x.flatten(1)).float().mean():.1%} of the seen digits, "
    f"{detector.predict(new_x.flatten(1)).float().mean():.1%} of the 7s"
)

# %%
# The scores of the two groups
# ----------------------------
bins = np.linspace(0, float(new_scores.max()) * 1.05, 40)
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.hist(seen_scores.numpy(), bins, alpha=0.6, label="test digits of seen classes")
ax.hist(new_scores.numpy(), bins, alpha=0.6, label="7s (absent from training)")
ax.axvline(cut, color="k", linestyle="--", label="cut at tpr = 0.95")
ax.set_xlabel("novelty score: distance to the 5th nearest training digit")
ax.set_ylabel("inputs")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Where the novel inputs are
# --------------------------
# On a stream of production inputs, ``report`` gives the share flagged, per
# slice when you pass per-sample attributes, and the most novel inputs;
# :func:`balancedtorch.quality.plot_novel` draws those (a ``Figure`` that
# ``plt.figure`` hands to pyplot).
stream = torch.cat([test_x, new_x])
digit = torch.cat([y[~unseen][1200:], y[unseen]])
report = detector.report(stream.flatten(1), groups={"digit": digit})
print(f"flagged {report['share']:.1%} of the stream; per digit:")
print({d: round(share, 2) for d, share in report["per_group"]["digit"].items()})

plt.figure(bt.quality.plot_novel(stream, detector.score(stream.flatten(1)), n=16))
