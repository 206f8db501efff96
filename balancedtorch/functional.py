"""Functional forms of the fused losses, in the style of ``torch.nn.functional``.

A namespace: each loss family lives in :mod:`balancedtorch.losses` (functional
form and module side by side); this module re-exports the functions under
their public names.
"""

from .losses.longtail import balanced_softmax_loss, ldam_loss, posthoc_logit_adjustment, vs_loss
from .losses.ohem import ohem_cross_entropy
from .losses.region import dice_ce_loss, dice_focal_loss, dice_loss, generalized_dice_loss, tversky_loss
from .losses.seesaw import seesaw_loss
from .losses.sigmoid import sigmoid_focal_loss
from .losses.softmax import cross_entropy, focal_loss, logit_adjusted_loss, logit_adjustment

__all__ = [
    "cross_entropy",
    "focal_loss",
    "logit_adjusted_loss",
    "sigmoid_focal_loss",
    "logit_adjustment",
    "ohem_cross_entropy",
    "dice_loss",
    "generalized_dice_loss",
    "tversky_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "ldam_loss",
    "vs_loss",
    "balanced_softmax_loss",
    "posthoc_logit_adjustment",
]

__all__ += ["seesaw_loss"]
