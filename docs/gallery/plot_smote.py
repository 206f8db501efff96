"""
SMOTE in 2-D, beside imbalanced-learn's
=======================================

SMOTE (Chawla et al., 2002) oversamples a minority class with synthetic
points drawn on the segments between a minority sample and one of its
``k_neighbors`` nearest minority neighbours. :class:`balancedtorch.resample.SMOTE`
is a drop-in for ``imblearn.over_sampling.SMOTE``: the same arguments
(``sampling_strategy``, ``k_neighbors``, ``random_state``), the same
``fit_resample(X, y)``, numpy in and numpy out (tensors in, tensors out,
on any device), with the neighbour search in a chunked exact kNN kernel.
The random streams differ, so the synthetic points are not the same points,
but they are drawn by the same rule, as the plot shows.
"""

# %%
# An imbalanced 2-D problem
# -------------------------
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_classification

import balancedtorch as bt

X, y = make_classification(
    n_samples=300, n_features=2, n_redundant=0, n_clusters_per_class=1, weights=[0.9], class_sep=1.2, random_state=3
)
print("class counts before:", np.bincount(y))

# %%
# Resample with both libraries
# ----------------------------
# Both append the synthetic samples after the original ones, so the new
# points are the rows past ``len(X)``.
X_bt, y_bt = bt.resample.SMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
print("class counts after (balancedtorch):", np.bincount(y_bt))

try:
    from imblearn.over_sampling import SMOTE as ImblearnSMOTE
except ImportError:  # imbalanced-learn is optional: show balancedtorch's points alone
    ImblearnSMOTE = None
    results = {"balancedtorch": (X_bt, y_bt)}
else:
    X_im, y_im = ImblearnSMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
    print("class counts after (imbalanced-learn):", np.bincount(y_im))
    results = {"balancedtorch": (X_bt, y_bt), "imbalanced-learn": (X_im, y_im)}

# %%
# The points
# ----------
fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.4), sharex=True, sharey=True, squeeze=False)
for ax, (name, (X_res, _)) in zip(axes[0], results.items()):
    new = X_res[len(X) :]
    ax.scatter(*X[y == 0].T, s=8, c="lightgrey", label="majority")
    ax.scatter(*X[y == 1].T, s=22, c="tab:blue", edgecolor="k", linewidth=0.4, label="minority", zorder=3)
    ax.scatter(*new.T, s=10, c="tab:orange", marker="x", label="synthetic")
    ax.set_title(f"{name}: {len(new)} synthetic points")
    ax.legend(fontsize=8, loc="best")
fig.tight_layout()

# %%
# Same rule, checked
# ------------------
# Every synthetic point lies on a segment from a minority sample to one of its
# five nearest minority neighbours. :func:`balancedtorch.ops.knn` finds those
# neighbours (exact, chunked), and the distance of each synthetic point to
# the nearest such segment is zero up to rounding for both libraries.
minority = torch.tensor(X[y == 1])
_, nbr = bt.ops.knn(minority, k=5)  # searching x itself, each point's own index is left out
start = minority[:, None, :].expand(-1, 5, -1).reshape(-1, 2)
end = minority[nbr].reshape(-1, 2)


def distance_to_segments(points):
    p = torch.as_tensor(points)[:, None, :]
    d = end - start
    t = (((p - start) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    return (p - (start + t[..., None] * d)).norm(dim=-1).min(1).values


for name, (X_res, _) in results.items():
    print(
        f"{name}: largest distance of a synthetic point to a SMOTE segment {float(distance_to_segments(X_res[len(X) :]).max()):.1e}"
    )

# %%
# The same estimator takes tensors and keeps them where they are (a CUDA
# tensor is resampled on the GPU)::
#
#     X_res, y_res = bt.resample.SMOTE(random_state=0).fit_resample(torch.as_tensor(X), torch.as_tensor(y))
