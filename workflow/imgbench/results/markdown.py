"""How the run's markdown pages (``summary.md``, ``disk_usage.md``) write tables and
numbers: a markdown table, seconds, percentages, ratios and lists of names, each ``n/a``
where the value is missing. Bytes are written by ``imgbench.system.units.human_bytes``.

Every section of those pages is a function returning its markdown as one string (``""``
when it has nothing to say); the page joins them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _missing(value) -> bool:
    return value is None or pd.isna(value)


def seconds(value: float | None) -> str:
    return "n/a" if _missing(value) else f"{value:.4g} s"


def percent(value: float | None) -> str:
    return "n/a" if _missing(value) else f"{value:.1%}"


def number(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if _missing(value) else f"{value:{spec}}{unit}"


def ratio(value: float | None, reference: float | None) -> str:
    """``value / reference`` as ``1.23x``; n/a where either is missing or reference is 0."""
    if _missing(value) or _missing(reference) or reference == 0:
        return "n/a"
    return f"{value / reference:.3g}x"


def and_list(names: Iterable[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def series_names(points: pd.DataFrame) -> str:
    """``png``, ``png and npy``, ``hdf5, png and npy``: the series of ``points``."""
    return and_list(dict.fromkeys(points["series"]))
