"""
What BatchAugment does to a batch
=================================

Oversampling a rare class repeats its images; augmentation makes the repeats
differ. :class:`balancedtorch.augment.BatchAugment` applies torchvision's
crop, flip, affine and colour-jitter chain to a whole batch in one fused
kernel, with random parameters drawn per sample, and ``class_p`` decides per
class how often a sample is augmented at all: always for the rare classes,
seldom for the common ones.
"""

# %%
# A batch of recognisable images
# ------------------------------
# Eight 48x48 RGB pictures drawn from a seed: a coloured letter "F" (it shows
# flips and rotations) and a disc on a tinted background. Images 0-3 belong
# to a rare class (label 1), images 4-7 to a common one (label 0).
import matplotlib.pyplot as plt
import numpy as np
import torch

import balancedtorch as bt

rng = np.random.default_rng(0)
images = np.zeros((8, 48, 48, 3), np.uint8)
for i in range(8):
    img = np.empty((48, 48, 3))
    img[:] = rng.uniform(0.55, 0.95, size=3)  # background tint
    img *= np.linspace(0.8, 1.0, 48)[:, None, None]  # a soft vertical gradient
    ink = rng.uniform(0.0, 0.6, size=3)
    img[10:38, 12:17] = ink  # the F: a stem,
    img[10:15, 12:32] = ink  # a top bar
    img[22:26, 12:27] = ink  # and a middle bar
    yy, xx = np.mgrid[:48, :48]
    img[(yy - 34) ** 2 + (xx - 34) ** 2 < 36] = rng.uniform(0.3, 1.0, size=3)  # a disc
    images[i] = (255 * img).astype(np.uint8)
images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (B, C, H, W) uint8, as a DataLoader gives
labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])

# %%
# Three pipelines
# ---------------
# Every transform is off by default; each argument takes torchvision's
# meaning (``rotation=30``: an angle drawn in [-30, 30] degrees per sample).
# The output is float32 in [0, 1] (add ``mean``/``std`` to normalise in the
# same pass). A ``torch.Generator`` makes the draw reproducible.
geometry = bt.augment.BatchAugment(hflip=0.5, rotation=30, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10)
colour = bt.augment.BatchAugment(brightness=0.4, contrast=0.4, saturation=0.6, hue=0.2)
rare_only = bt.augment.BatchAugment(hflip=0.5, rotation=30, scale=(0.8, 1.2), brightness=0.4, hue=0.2, class_p={1: 1.0, 0: 0.0})
print(geometry)

rows = {
    "original": images.float() / 255,
    "geometry": geometry(images, generator=torch.Generator().manual_seed(0)),
    "colour": colour(images, generator=torch.Generator().manual_seed(1)),
    "class_p: rare always,\ncommon never": rare_only(images, labels=labels, generator=torch.Generator().manual_seed(2)),
}

fig, axes = plt.subplots(len(rows), 8, figsize=(10, 5.6))
for r, (name, batch) in enumerate(rows.items()):
    for c in range(8):
        ax = axes[r, c]
        ax.imshow(batch[c].permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title("rare" if labels[c] == 1 else "common", fontsize=9)
    axes[r, 0].set_ylabel(name, fontsize=9)
fig.tight_layout()

# %%
# In a training loop
# ------------------
# Put the augmentation after the ``DataLoader`` (on the GPU when there is
# one): the loader yields uint8 batches, ``BatchAugment`` converts,
# augments and normalises them in one pass, with the labels deciding
# ``class_p``. For example, with a ``ClassBalancedSampler`` that repeats the
# rare images, every repeat gets its own crop, flip and colours::
#
#     aug = bt.augment.BatchAugment(hflip=0.5, rotation=15, crop=224, brightness=0.3,
#                                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
#                                   class_p={rare: 1.0 for rare in rare_classes}, p=0.3)
#     for images, labels in loader:
#         x = aug(images.cuda(non_blocking=True), labels=labels.cuda())
