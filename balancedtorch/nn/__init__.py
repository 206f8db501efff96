"""Loss modules, in the style of ``torch.nn``: drop-ins for ``torch.nn.CrossEntropyLoss`` and friends.

A namespace: each loss family lives in :mod:`balancedtorch.losses` (functional
form and module side by side); this package re-exports the modules under
their public names.
"""

from ..losses.longtail import BalancedSoftmaxLoss, LDAMLoss, VSLoss, tau_normalize
from ..losses.ohem import OhemCrossEntropyLoss
from ..losses.region import DiceCELoss, DiceFocalLoss, DiceLoss, GeneralizedDiceLoss, TverskyLoss
from ..losses.seesaw import SeesawLoss
from ..losses.sigmoid import SigmoidFocalLoss
from ..losses.softmax import CrossEntropyLoss, FocalLoss, LogitAdjustedLoss

__all__ = ["CrossEntropyLoss", "FocalLoss", "LogitAdjustedLoss", "SigmoidFocalLoss"]
__all__ += ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "DiceCELoss", "DiceFocalLoss", "OhemCrossEntropyLoss"]
__all__ += ["LDAMLoss", "VSLoss", "BalancedSoftmaxLoss", "tau_normalize", "SeesawLoss"]
