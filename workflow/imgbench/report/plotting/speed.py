"""Speed against the baseline: each series' median time at the largest cutoff as a
multiple of the baseline's (``series.BASELINE``, raw pixels in one npy file), for the
store and the whole-store reads, each bar labelled with its multiple."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from imgbench.experiment import vocabulary
from imgbench.report.plotting import grid, style
from imgbench.report.plotting.labels import (
    Labels,
    read_conditions,
    readahead_text,
    with_condition,
)
from imgbench.results.series import BASELINE, store_and_whole_reads


def ratio_text(ratio: float) -> str:
    """``1.23x``, ``45x``: a bar's multiple of the baseline (nothing where missing)."""
    if not np.isfinite(ratio):
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def _kinds(base) -> list[tuple[str, str, str]]:
    """(operation, condition, legend text) of every bar group member ``base`` holds: the
    store, then the reads cold before warm."""
    kinds = [("store", vocabulary.NO_CACHE, "store")] + [
        ("read", condition, f"{condition} read") for condition in read_conditions(base)
    ]
    return [k for k in kinds if ((base["operation"] == k[0]) & (base["condition"] == k[1])).any()]


def draw_speed_vs_baseline(stats, size, labels: Labels):
    """Bars of each series' median time over the baseline's at the largest cutoff of
    ``stats`` (one image size), a group per series, a bar per operation and condition."""
    base = with_condition(store_and_whole_reads(stats))
    base = base[base["cutoff"] == base["cutoff"].max()]
    kinds = _kinds(base)
    series_list = [s for s in sorted(base["series"].unique()) if s != BASELINE]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    offsets, width = style.bar_offsets(len(kinds))
    positions = np.arange(len(series_list))
    for offset, (operation, condition, title) in zip(offsets, kinds, strict=True):
        chosen = base[(base["operation"] == operation) & (base["condition"] == condition)]
        by_series = chosen.set_index("series")["median_s"]
        reference = by_series.get(BASELINE, np.nan)
        ratios = [by_series.get(s, np.nan) / reference for s in series_list]
        bars = ax.bar(positions + offset, ratios, width, label=title)
        ax.bar_label(bars, labels=[ratio_text(r) for r in ratios], fontsize="x-small")
    ax.axhline(1.0, color="black", linewidth=0.8, label=f"{labels(BASELINE)} = 1x")
    ax.set_xticks(positions, [labels(s) for s in series_list], rotation=20, ha="right")
    ax.set_yscale("log")
    style.plain_log_axis(ax.yaxis, "x")
    ax.set_ylabel(f"Median time relative to {BASELINE} (log scale; 1x = raw bytes)")
    reads = base[base["operation"] == "read"]
    what = f"\nreads: {vocabulary.WHOLE_STORE_TEXT} ({readahead_text(reads)})" if len(reads) else ""
    ax.set_title(
        f"Cost over the raw-bytes baseline, {size}x{size}, {int(base['cutoff'].max()):,} images"
        + what,
        fontsize="medium",
    )
    ax.margins(y=0.1)  # room for the labels over the tallest bars
    ax.grid(True, axis="y", which="both", alpha=0.3)
    grid.axes_legend(ax, beside=False)
    return fig


def speed_vs_baseline_figure(stats, disk, *, size, spread, labels: Labels):
    """The speed-vs-baseline figure of one image size."""
    return draw_speed_vs_baseline(stats[stats["image_size"] == size], size, labels)
