"""
Crops centred on a rare class (crop_focus)
==========================================

A segmentation network trained on random crops rarely sees the rare class
when it covers a few pixels of a large image: here traffic lights, whose lit
lamps are outnumbered 800:1 by the background. ``crop_focus`` of
:class:`balancedtorch.augment.BatchAugment` moves a share of the crops
(``crop_focus_p``) so that they are centred on a pixel of a rare class
present in the mask (nnU-Net's foreground oversampling), in the same fused
pass as the rest of the augmentation, masks warped alongside.
"""

# %%
# Street scenes with tiny traffic lights
# --------------------------------------
# ``balancedtorch.demo_seg.make_scenes`` draws 64x128 street scenes from a
# seed; the mask marks the lit lamp of each traffic light (1 red, 2 yellow,
# 3 green), everything else is background (0).
import matplotlib.pyplot as plt
import numpy as np
import torch

import balancedtorch as bt
from balancedtorch.demo_seg import make_scenes

images, masks = make_scenes(256, seed=0)
counts = torch.bincount(masks.flatten().long(), minlength=4)
print(f"background : traffic-light pixels = {int(counts[0]) / int(counts[1:].sum()):.0f} : 1")

# %%
# Random crops vs focused crops
# -----------------------------
# Both pipelines cut 16x32 crops (a sixteenth of the scene, nothing resized:
# ``crop_scale`` and ``crop_ratio`` fix the box). The second centres every
# crop (``crop_focus_p=1.0``) on a pixel of a traffic-light class when its
# mask holds one; ``crop_focus="rare"`` would pick the rare classes of the
# batch by itself.
box = dict(crop=(16, 32), crop_scale=(1 / 16, 1 / 16), crop_ratio=(2.0, 2.0))
random_crops = bt.augment.BatchAugment(**box)
focused_crops = bt.augment.BatchAugment(**box, crop_focus={1: 1.0, 2: 1.0, 3: 1.0}, crop_focus_p=1.0)

has_light = (masks > 0).flatten(1).any(1)
show = has_light.nonzero().squeeze(1)[:6]
x_random, m_random = random_crops(images[show], masks=masks[show], generator=torch.Generator().manual_seed(0))
x_focus, m_focus = focused_crops(images[show], masks=masks[show], generator=torch.Generator().manual_seed(0))


def with_lights(image, mask):
    """The crop with its traffic-light pixels outlined in white."""
    picture = image.permute(1, 2, 0).clamp(0, 1).numpy().copy()
    light = (mask > 0).float()[None, None]
    ring = (torch.nn.functional.max_pool2d(light, 3, stride=1, padding=1) - light)[0, 0].numpy() > 0
    picture[ring] = 1.0
    return picture


fig, axes = plt.subplots(3, 6, figsize=(12, 3.6))
for c, i in enumerate(show.tolist()):
    axes[0, c].imshow(with_lights(images[i], masks[i]))
    axes[1, c].imshow(with_lights(x_random[c], m_random[c]))
    axes[2, c].imshow(with_lights(x_focus[c], m_focus[c]))
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
for r, name in enumerate(["scene", "random crop", "crop_focus"]):
    axes[r, 0].set_ylabel(name, fontsize=9)
fig.tight_layout()

# %%
# How often a crop holds a traffic light
# --------------------------------------
# Over all 256 scenes (a quarter of which hold no light), for a few values of
# ``crop_focus_p``: the share of crops with at least one traffic-light pixel,
# and the share of traffic-light pixels among all cropped pixels.
shares, pixel_shares = [], []
ps = [0.0, 0.33, 0.66, 1.0]
for p in ps:
    aug = bt.augment.BatchAugment(**box, crop_focus={1: 1.0, 2: 1.0, 3: 1.0}, crop_focus_p=p) if p else random_crops
    _, m = aug(images, masks=masks, generator=torch.Generator().manual_seed(1))
    shares.append(float(((m > 0) & (m < 255)).flatten(1).any(1).float().mean()))
    pixel_shares.append(float(((m > 0) & (m < 255)).float().mean()))
    print(f"crop_focus_p={p:.2f}: {shares[-1]:.0%} of crops hold a light, light pixels {pixel_shares[-1]:.3%}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
ax1.bar(np.arange(len(ps)), shares, color="tab:green")
ax1.set_ylabel("crops holding a light")
ax2.bar(np.arange(len(ps)), [100 * s for s in pixel_shares], color="tab:red")
ax2.set_ylabel("traffic-light pixels (%)")
for ax in (ax1, ax2):
    ax.set_xticks(range(len(ps)), [f"{p:.2f}" for p in ps])
    ax.set_xlabel("crop_focus_p")
fig.tight_layout()
