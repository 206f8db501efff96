"""Checks the fake (meta) kernels share with the real ones.

A call that mixes devices (e.g. one meta tensor among CPU ones) dispatches to
the fake kernel, which would otherwise return uninitialised memory as a result:
the fakes refuse it with the message (and the ValueError) of the real kernels'
device checks (csrc/device_check.h).
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor

__all__ = ["check_same_device"]


def check_same_device(op: str, anchor_name: str, anchor: Tensor, **others: Optional[Tensor]) -> None:
    """Raise ValueError when a tensor in ``others`` is not on ``anchor``'s device (None entries are skipped)."""
    for name, t in others.items():
        if t is not None and t.device != anchor.device:
            raise ValueError(f"{op}: {name} is on {t.device} but {anchor_name} is on {anchor.device}")
