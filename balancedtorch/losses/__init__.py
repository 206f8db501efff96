"""The fused loss kernels, one module per family, each with its functional form and its module.

- :mod:`~balancedtorch.losses.softmax`: cross-entropy, focal and logit-adjusted losses
  (``balancedtorch::softmax_loss``);
- :mod:`~balancedtorch.losses.sigmoid`: the sigmoid focal loss (``balancedtorch::sigmoid_focal_loss``);
- :mod:`~balancedtorch.losses.region`: Dice, generalised Dice, Tversky, DiceCE and DiceFocal
  (``balancedtorch::region_loss``, whose Python kernel is :mod:`~balancedtorch.losses._region_op`);
- :mod:`~balancedtorch.losses.longtail`: LDAM, VS and Balanced Softmax on the same kernel (its
  per-class logit scale, bias and margin), post-hoc logit adjustment and tau-normalisation;
- :mod:`~balancedtorch.losses.ohem`: OHEM cross-entropy (``softmax_loss_target_prob`` + ``ohem_prob_weights``).

``balancedtorch.functional`` and ``balancedtorch.nn`` re-export these under the
torch-style names; fake kernels, autograd and autocast are registered in
:mod:`balancedtorch._meta`.
"""

from .longtail import (
    BalancedSoftmaxLoss,
    LDAMLoss,
    VSLoss,
    balanced_softmax_loss,
    ldam_loss,
    posthoc_logit_adjustment,
    tau_normalize,
    vs_loss,
)
from .ohem import OhemCrossEntropyLoss, ohem_cross_entropy
from .region import (
    DiceCELoss,
    DiceFocalLoss,
    DiceLoss,
    GeneralizedDiceLoss,
    TverskyLoss,
    dice_ce_loss,
    dice_focal_loss,
    dice_loss,
    generalized_dice_loss,
    tversky_loss,
)
from .seesaw import SeesawLoss, seesaw_loss
from .sigmoid import SigmoidFocalLoss, sigmoid_focal_loss
from .softmax import (
    CrossEntropyLoss,
    FocalLoss,
    LogitAdjustedLoss,
    cross_entropy,
    focal_loss,
    logit_adjusted_loss,
    logit_adjustment,
)

__all__ = [
    "cross_entropy",
    "focal_loss",
    "logit_adjusted_loss",
    "logit_adjustment",
    "sigmoid_focal_loss",
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
    "tau_normalize",
    "CrossEntropyLoss",
    "FocalLoss",
    "LogitAdjustedLoss",
    "SigmoidFocalLoss",
    "OhemCrossEntropyLoss",
    "DiceLoss",
    "GeneralizedDiceLoss",
    "TverskyLoss",
    "DiceCELoss",
    "DiceFocalLoss",
    "LDAMLoss",
    "VSLoss",
    "BalancedSoftmaxLoss",
]

__all__ += ["seesaw_loss", "SeesawLoss"]
