"""
What to label next
==================

Labelling is the expensive step, and random picks from an imbalanced pool
are mostly more of the common classes. :func:`balancedtorch.quality.select_for_labeling`
picks a labelling budget by a strategy: ``"kcenter"`` covers the feature
space (Sener & Savarese, 2018), ``"novelty"`` goes farthest from what is
labelled, ``"margin"`` / ``"entropy"`` ask where the model hesitates and
``"balanced"`` spreads the budget over the predicted classes. Here the
labelled set has never seen a small cluster of the pool: which strategies
find it?
"""

# %%
# A pool with a cluster nobody has labelled
# -----------------------------------------
# Two large classes and, off to the side, 40 points of a rare one; 20
# labelled points, all from the two large classes.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import balancedtorch as bt

rng = np.random.default_rng(0)
pool = np.concatenate(
    [
        rng.normal([0.0, 0.0], 1.0, size=(1500, 2)),
        rng.normal([3.5, 0.5], 0.8, size=(600, 2)),
        rng.normal([-3.5, 5.5], 0.35, size=(40, 2)),  # the rare cluster
    ]
).astype(np.float32)
pool_class = np.repeat([0, 1, 2], [1500, 600, 40])
labelled = rng.choice(2100, size=20, replace=False)  # from the two large classes only
model = LogisticRegression().fit(pool[labelled], pool_class[labelled])
pred_probs = model.predict_proba(pool)  # the current model on the pool

# %%
# Spend a budget of 30 labels three ways
# --------------------------------------
# ``select_for_labeling`` returns pool indices, most informative first.
budget = 30
picks = {
    "random": torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[:budget],
    "kcenter": bt.quality.select_for_labeling(pool, budget, strategy="kcenter", labeled_features=pool[labelled]),
    "margin": bt.quality.select_for_labeling(pool, budget, strategy="margin", pred_probs=pred_probs),
}
for name, idx in picks.items():
    print(f"{name:<8} picks per class: {np.bincount(pool_class[idx.numpy()], minlength=3).tolist()}")

fig, axes = plt.subplots(1, 3, figsize=(11, 3.8), sharex=True, sharey=True)
for ax, (name, idx) in zip(axes, picks.items()):
    ax.scatter(*pool.T, s=3, c=np.array(["#bbbbbb", "#8fb7e0", "#f2a65a"])[pool_class])
    ax.scatter(*pool[labelled].T, s=30, marker="s", c="k", label="labelled")
    ax.scatter(*pool[idx.numpy()].T, s=40, marker="x", c="tab:red", label="picked")
    found = int((pool_class[idx.numpy()] == 2).sum())
    ax.set_title(f"{name}: {found} of {budget} in the rare cluster", fontsize=10)
axes[0].legend(fontsize=8, loc="lower left")
fig.tight_layout()

# %%
# ``kcenter`` reaches the unlabelled cluster because it looks at the
# features: a few labels there are enough to reveal a new class, and the rest
# of the budget keeps covering the pool. ``margin`` asks about the boundary
# the model already knows; it, ``"entropy"`` and ``"balanced"`` (the same
# question split evenly over the predicted classes, so that a rare predicted
# class is not crowded out) are the tools once every class has labels.
# ``"novelty"`` (the :class:`~balancedtorch.quality.NoveltyDetector` score
# against the labelled rows) L2-normalises the features, as suits network
# embeddings, so it is not shown on these raw 2-D coordinates. In practice the
# features are a model's embeddings, and the rounds repeat: label, retrain,
# select again.
