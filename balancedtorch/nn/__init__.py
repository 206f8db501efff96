"""Loss modules on the fused kernels (drop-in for ``torch.nn`` losses)."""

from .losses import CrossEntropyLoss, FocalLoss, LogitAdjustedLoss, SigmoidFocalLoss
from .ohem import OhemCrossEntropyLoss
from .region_losses import DiceCELoss, DiceFocalLoss, DiceLoss, GeneralizedDiceLoss, TverskyLoss

__all__ = ["CrossEntropyLoss", "FocalLoss", "LogitAdjustedLoss", "SigmoidFocalLoss"]
__all__ += ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "DiceCELoss", "DiceFocalLoss", "OhemCrossEntropyLoss"]
