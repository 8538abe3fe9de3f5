"""Byte counts for people: one formatter, binary units (KiB, MiB, GiB, TiB), used by the
summary, the figures' ticks and the sentences of errors."""

from __future__ import annotations

import math

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(count: float | None, *, significant: int | None = None) -> str:
    """``5.9 MiB``: one decimal (``significant`` digits instead, e.g. 3 for tick labels:
    ``4 KiB``, ``16.5 MiB``); whole bytes as ``512 B``; ``n/a`` for a missing count."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return "n/a"
    for unit in UNITS:
        if abs(count) < 1024 or unit == UNITS[-1]:
            if significant is not None:
                return f"{count:.{significant}g} {unit}"
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
