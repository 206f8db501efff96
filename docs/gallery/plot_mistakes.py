"""
Finding mislabeled samples: the mistakes grid
=============================================

Real labels are noisy: about 3% of the test labels of ten famous benchmarks
are wrong (Northcutt et al., 2021). The quickest way to find them is to train,
predict every sample out of sample, and look first at the samples where the
model is most confident that the given label is wrong.
:func:`balancedtorch.quality.rank_mistakes` sorts those,
:func:`balancedtorch.quality.plot_mistakes` draws them, and
:func:`balancedtorch.quality.find_label_issues` (cleanlab's confident
learning, cleanlab's signature) flags the likely label errors. Here 4% of the
labels of scikit-learn's digits are flipped on purpose, so we can check what
is found.
"""

# %%
# Digits with 4% wrong labels
# ---------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

import balancedtorch as bt

digits = load_digits()
images, true_labels = digits.images / 16.0, digits.target
rng = np.random.default_rng(0)
flipped = rng.choice(len(true_labels), size=int(0.04 * len(true_labels)), replace=False)
labels = true_labels.copy()
labels[flipped] = (labels[flipped] + rng.integers(1, 10, size=len(flipped))) % 10  # a different digit
print(f"{len(flipped)} of {len(labels)} labels flipped")

# %%
# Out-of-sample predicted probabilities
# -------------------------------------
# Every sample is predicted by a model that did not train on it (5-fold
# cross-validation): a model scoring its own training samples would have
# memorised their wrong labels. Any classifier works; a logistic regression
# on the 64 pixels is enough here.
pred_probs = cross_val_predict(LogisticRegression(max_iter=300), digits.data / 16.0, labels, cv=5, method="predict_proba")

# %%
# The most confident mistakes
# ---------------------------
# ``rank_mistakes`` returns every mispredicted sample, most confident first,
# as a table (``print``, ``rows()``, ``to_pandas()``).
ranked = bt.quality.rank_mistakes(labels, pred_probs)
print(ranked)
top = ranked["index"][:32].numpy()
print(f"of the 32 most confident mistakes, {np.isin(top, flipped).sum()} are flipped labels")

# %%
# ``plot_mistakes`` draws them, titled ``given label → prediction
# (confidence)``. It returns a matplotlib ``Figure`` that pyplot does not
# track; ``plt.figure(fig)`` (matplotlib 3.11 or later) hands it to pyplot for
# display. The top of the list is where the wrong labels are: each tile
# shows one digit labelled as another, with the model confidently naming the
# digit you see.
fig = bt.quality.plot_mistakes(images, labels, pred_probs, n=24)
plt.figure(fig)

# %%
# Flagging the label errors
# -------------------------
# ``find_label_issues`` returns a boolean mask (or, with
# ``return_indices_ranked_by=``, indices ranked by a label-quality score).
# Compared with the flips we made:
issues = bt.quality.find_label_issues(labels, pred_probs)
found = np.isin(np.flatnonzero(issues), flipped)
print(
    f"flagged {int(issues.sum())}: {found.sum()} flipped labels found (precision {found.mean():.2f}, "
    f"recall {found.sum() / len(flipped):.2f})"
)

# %%
# Which classes to look at first
# ------------------------------
# ``mistakes_per_class`` counts, per given label, how many samples the model
# disagrees with, and what it predicts instead.
per_class = bt.quality.mistakes_per_class(labels, pred_probs)
print(per_class)

fig, ax = plt.subplots(figsize=(6, 3))
ax.bar([str(int(c)) for c in per_class["class"]], per_class["rate"].numpy(), color="tab:red")
ax.set_xlabel("given label (worst first)")
ax.set_ylabel("share mispredicted")
fig.tight_layout()
