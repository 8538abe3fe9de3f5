"""How the figures look: line styles and hatches per cache state, markers, one colour per
series, tick labels as plain numbers (or binary bytes), bar positions and saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from imgbench.system.units import human_bytes

# Line style per condition (cache state, with the eviction where cold reads used several).
CACHE_STYLE = {
    "n/a": "-",
    "cold": "-",
    "warm": "--",
    "partly_cached": ":",
    "cold (fadvise)": "-",
    "cold (drop_caches)": "-.",
}
# Hatch of a bar per condition; cold bars are plain.
CACHE_HATCH = {"warm": "//", "partly_cached": "xx", "cold (drop_caches)": ".."}
# Marker per operation in the time figures.
MARKERS = {"store": "o", "read": "s"}
# Markers of the disk-by-size lines, largest first: a series drawn on top of another
# (the same bytes) shows as a smaller marker inside the larger one.
SERIES_MARKERS = (("o", 11), ("s", 8.5), ("D", 6.5), ("^", 5), ("v", 4), ("x", 4), ("+", 4))


def colours(frame: pd.DataFrame) -> dict[str, str]:
    """One colour per series: matplotlib's ten, or tab20's twenty when more series than
    ten would repeat a colour (a format compared with its encodings)."""
    series = sorted(frame["series"].unique())
    if len(series) <= 10:
        return {name: f"C{i}" for i, name in enumerate(series)}
    palette = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
    return {name: palette[i % len(palette)] for i, name in enumerate(series)}


def plain(value: float, unit: str = "") -> str:
    """``200``, ``1,000``, ``0.005``: a tick label without powers of ten."""
    text = f"{value:,.0f}" if abs(value) >= 1 else f"{value:.2g}"
    return text + unit


class PlainLogFormatter(matplotlib.ticker.LogFormatter):
    """Log-axis tick labels as plain numbers (with ``unit``), labelling minor ticks only
    where the axis spans few decades, as matplotlib's own log formatter does."""

    def __init__(self, unit: str = "", **kwargs):
        super().__init__(**kwargs)
        self.unit = unit

    def _num_to_string(self, x, vmin, vmax):
        return plain(x, self.unit)


def plain_log_axis(axis, unit: str = "") -> None:
    """Label a log ``axis`` (``ax.xaxis`` or ``ax.yaxis``) with plain numbers."""
    axis.set_major_formatter(PlainLogFormatter(unit))
    axis.set_minor_formatter(PlainLogFormatter(unit, labelOnlyBase=False))


def bytes_log_axis(axis) -> None:
    """A log2 ``axis`` ticked every factor of 4, labelled in binary units (``4 KiB``)."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=4))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())
    axis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: human_bytes(v, significant=3))
    )


def cutoff_ticks(ax, cutoffs, spacing: float = 0.35) -> None:
    """Ticks of a log x axis at the cutoffs measured, labelled ``1,000``; a label closer
    than ``spacing`` decades to a larger labelled cutoff is left off (the tick stays)."""
    cutoffs = sorted(int(c) for c in cutoffs)
    labels, last = [], None
    for cutoff in reversed(cutoffs):
        close = last is not None and np.log10(last / cutoff) < spacing
        labels.append("" if close else f"{cutoff:,}")
        last = last if close else cutoff
    ax.set_xticks(cutoffs, labels[::-1])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def bar_offsets(count: int) -> tuple[np.ndarray, float]:
    """Offsets from a group's centre and the width of ``count`` side-by-side bars that
    together fill 80 % of one group slot."""
    width = 0.8 / max(count, 1)
    return (np.arange(count) - (count - 1) / 2) * width, width


def save(fig, out_dir: Path, stem: str, formats: list[str], dpi: int) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for every format, then close it."""
    written = []
    for extension in formats:
        path = out_dir / f"{stem}.{extension}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written
