"""What every part of the command line shares: its user-facing error and the wording of numbers and lists."""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["CLIError"]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


_LIST = 8  # class ids / columns named in one message before "and N more"
_MAX_SPARSE = 100_000  # class ids beyond this and 10x the number of labels are not class ids
_MAX_CLASSES = 10_000_000  # one int64 count each: 80 MB


def _pct(share: float) -> str:
    """A share as a percentage, "<0.1%" rather than a misleading "0.0%" for a class that does occur."""
    return "<0.1%" if 0 < share < 0.0005 else f"{share:.1%}"


def _names_list(items: Sequence[str], limit: int = _LIST) -> str:
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_MAX_DETAIL = 300


def _one_line(exc: BaseException) -> str:
    """An exception's message as one clean line: terminal escape codes and control characters removed, the first
    sentences kept whole (torch.load's messages span many lines and colour some words)."""
    text = _ANSI.sub("", str(exc))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) <= _MAX_DETAIL:
        return text
    cut = text.rfind(". ", 0, _MAX_DETAIL)
    return text[: cut + 1] if cut > 0 else text[:_MAX_DETAIL].rsplit(" ", 1)[0] + " …"
