"""Latency of random single-image reads: the p50, p95 and p99 (median over the timed
runs) on a tail scale, a coarse CDF, one panel per reader count."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from imgbench.experiment import vocabulary
from imgbench.report.plotting import grid, style
from imgbench.report.plotting.labels import (
    Labels,
    read_conditions,
    readahead_text,
    readers_text,
    with_condition,
)
from imgbench.results.series import is_many_clients

# Inches: one panel of the latency figure.
PANEL_SIZE = (5.0, 4.5)
PERCENTILES = (50, 95, 99)


def tail(percentiles) -> np.ndarray:
    """Height of each percentile on a tail scale, -log10 of the share of reads above it:
    p50 0.3, p90 1, p99 2, so the tail is not squeezed against the top."""
    return -np.log10(1 - np.asarray(percentiles, dtype=float) / 100)


def _readahead_handles() -> list:
    """Legend entries of the marker fill: readahead on filled, off hollow."""
    return [
        plt.Line2D([], [], color="grey", marker="o", linestyle="", label="readahead on (filled)"),
        plt.Line2D(
            [],
            [],
            color="grey",
            marker="o",
            markerfacecolor="none",
            linestyle="",
            label="readahead off (hollow)",
        ),
    ]


def _panel(ax, reads, readers, colours) -> None:
    """One reader count: a line per (series, condition, readahead) through its
    percentiles."""
    percentiles = list(PERCENTILES)
    for row in reads.itertuples():
        values = [getattr(row, f"median_latency_p{p}_us") for p in percentiles]
        hollow = row.readahead == vocabulary.READAHEAD_OFF
        ax.plot(
            values,
            tail(percentiles),
            color=colours[row.series],
            linestyle=style.CACHE_STYLE.get(row.condition, "-"),
            marker="o",
            markerfacecolor="none" if hollow else colours[row.series],
        )
    ax.set_title(readers_text(readers), fontsize="medium")
    ax.set_xscale("log")
    style.plain_log_axis(ax.xaxis)
    ax.set_yticks(tail(percentiles), [f"p{p}" for p in percentiles])
    ax.set_xlabel("Latency of one read (microseconds)")
    ax.grid(True, which="both", alpha=0.3)


def latency_panels(single, size, colours, labels: Labels):
    """Percentiles of single-image read latency at the largest cutoff: one panel per
    reader count, one colour per method, solid cold and dashed warm, readahead off
    hollow. The legend names each once; readahead, when fixed, is in the title."""
    single = with_condition(single)
    single = single[single["cutoff"] == single["cutoff"].max()]
    reader_counts = sorted(single["readers"].unique())
    several_readahead = single["readahead"].nunique() > 1
    handles = grid.series_handles(sorted(single["series"].unique()), colours, labels)
    handles += grid.condition_handles(read_conditions(single))
    if several_readahead:
        handles += _readahead_handles()
    fig, axes = grid.panel_grid(1, len(reader_counts), PANEL_SIZE, handles)
    for ax, readers in zip(axes[0], reader_counts, strict=True):
        _panel(ax, single[single["readers"] == readers], readers, colours)
    axes[0][0].set_ylabel("Percentile of reads (tail scale)")
    grid.legend_beside(fig, handles)
    fixed = "" if several_readahead else f"; {readahead_text(single)}"
    grid.title_over_panels(
        fig,
        f"Random single-image read latency, {size}x{size}, {int(single['cutoff'].max()):,} "
        f"images\n(median over timed runs of each percentile{fixed})",
        fontsize="medium",
    )
    return fig


def latency_figure(stats, disk, *, size, spread, labels: Labels):
    """The latency figure of one image size: its random single-image reads by the job's
    own readers (not those by client processes)."""
    at_size = stats[(stats["image_size"] == size) & ~is_many_clients(stats)]
    single = at_size[
        (at_size["operation"] == "read") & (at_size["read_pattern"] == vocabulary.RANDOM_SINGLE)
    ]
    return latency_panels(single, size, style.colours(stats), labels)
