"""Loss modules on the fused kernels (drop-in for ``torch.nn`` losses)."""

from .losses import CrossEntropyLoss, FocalLoss, LogitAdjustedLoss, SigmoidFocalLoss
from .ohem import OhemCrossEntropyLoss

__all__ = ["CrossEntropyLoss", "FocalLoss", "LogitAdjustedLoss", "SigmoidFocalLoss"]
__all__ += ["OhemCrossEntropyLoss"]
