"""Read throughput: small multiples, one panel per (pattern, readahead, readers), images
per second vs cutoff, one colour per series, solid cold and dashed warm; with a single
cutoff, bars (warm hatched) instead of lines that would be columns of dots."""

from __future__ import annotations

import matplotlib.patches
import numpy as np
import pandas as pd

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

# Inches: one panel of the throughput figure.
PANEL_SIZE = (4.6, 3.6)


def panel_rows(reads: pd.DataFrame) -> list[tuple[str, str]]:
    """(pattern, readahead) of each row of panels: every pattern measured, in the
    vocabulary's order (unknown ones last), readahead on before off: reads with readahead
    on and off are never drawn in one panel."""
    pairs = set(zip(reads["read_pattern"], reads["readahead"], strict=True))
    return sorted(
        pairs,
        key=lambda p: (vocabulary.pattern_rank(p[0]), p[0], p[1] != vocabulary.READAHEAD_ON),
    )


def _bars(ax, panel, colours, series_list, conditions, labels: Labels) -> None:
    """One cutoff only: a line over cutoffs would be a column of dots, so bars instead,
    one group per method, one bar per condition (cold plain, warm hatched)."""
    offsets, width = style.bar_offsets(len(conditions))
    positions = np.arange(len(series_list))
    for offset, condition in zip(offsets, conditions, strict=True):
        chosen = panel[panel["condition"] == condition]
        by_series = chosen.set_index("series")["median_images_per_s"]
        hatch = style.CACHE_HATCH.get(condition)
        ax.bar(
            positions + offset,
            [by_series.get(series, np.nan) for series in series_list],
            width,
            color=[colours[series] for series in series_list],
            hatch=hatch,
            edgecolor="white" if hatch else None,
        )
    ax.set_xticks(
        positions,
        [labels(s) for s in series_list],
        rotation=30 if len(series_list) <= 6 else 60,
        ha="right",
    )


def _lines(ax, panel, colours) -> None:
    for (series, condition), points in panel.groupby(["series", "condition"], sort=True):
        points = points.sort_values("cutoff")
        ax.plot(
            points["cutoff"],
            points["median_images_per_s"],
            color=colours[series],
            linestyle=style.CACHE_STYLE.get(condition, "-"),
            marker="o",
            markersize=3,
        )


def _legend(conditions, single_cutoff, colours, series_list, labels: Labels) -> list:
    if single_cutoff:  # the methods are named under their bars
        return [
            matplotlib.patches.Patch(
                facecolor="grey",
                hatch=style.CACHE_HATCH.get(c),
                label=f"{c} read",
                edgecolor="white",
            )
            for c in conditions
        ]
    return grid.series_handles(series_list, colours, labels) + grid.condition_handles(conditions)


def _panel_size(single_cutoff: bool, series_list, labels: Labels) -> tuple[float, float]:
    """Inches of one panel; bars carry the methods' names under them: room for the names,
    and for the bars when there are many series."""
    width, height = PANEL_SIZE
    if single_cutoff:
        height += 0.06 * max((len(labels(s)) for s in series_list), default=0)
        width = max(width, 0.42 * len(series_list) + 1.2)
    return width, height


def _never_measured(ax, pattern: str, readers) -> None:
    """The place of a panel never measured by design: no empty axes, a word why."""
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        f"{pattern} reads in one process:\nno {readers_text(readers)}",
        ha="center",
        va="center",
        transform=ax.transAxes,
        alpha=0.7,
    )


def throughput_panels(reads, size, colours, labels: Labels):
    """Small multiples: one panel per (pattern, readahead, readers); images/s vs cutoff,
    one colour per method, solid cold and dashed warm (with a single cutoff: bars, warm
    hatched). Readahead is in the panel titles when both settings were measured, else in
    the figure title. The canvas is as large as its panels and the legend beside them, so
    one panel makes an ordinary figure."""
    reads = with_condition(reads)
    rows = panel_rows(reads)
    name_readahead = reads["readahead"].nunique() > 1
    reader_counts = sorted(reads["readers"].unique())
    series_list = sorted(reads["series"].unique())
    conditions = read_conditions(reads)
    single_cutoff = reads["cutoff"].nunique() == 1
    handles = _legend(conditions, single_cutoff, colours, series_list, labels)
    panel_size = _panel_size(single_cutoff, series_list, labels)
    fig, axes = grid.panel_grid(len(rows), len(reader_counts), panel_size, handles)
    for row, (pattern, readahead) in enumerate(rows):
        for column, readers in enumerate(reader_counts):
            ax = axes[row][column]
            panel = reads[
                (reads["read_pattern"] == pattern)
                & (reads["readahead"] == readahead)
                & (reads["readers"] == readers)
            ]
            if panel.empty and vocabulary.is_one_process(pattern) and readers != 1:
                _never_measured(ax, pattern, readers)
                continue
            what = f"{pattern}, readahead {readahead}" if name_readahead else pattern
            ax.set_title(f"{what}, {readers_text(readers)}", fontsize="medium")
            if column == 0:
                ax.set_ylabel("Images per second")
            if panel.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
            ax.set_yscale("log")
            style.plain_log_axis(ax.yaxis)
            if single_cutoff:
                _bars(ax, panel, colours, series_list, conditions, labels)
                ax.grid(True, axis="y", which="both", alpha=0.3)
                continue
            _lines(ax, panel, colours)
            ax.set_xscale("log")
            style.cutoff_ticks(ax, reads["cutoff"].unique())
            ax.grid(True, which="both", alpha=0.3)
            if row == len(rows) - 1:
                ax.set_xlabel("Images in the store")
    grid.legend_beside(fig, handles)
    where = f", {int(reads['cutoff'].iloc[0]):,} images" if single_cutoff else ""
    fixed = "" if name_readahead else f"; {readahead_text(reads)}"
    grid.title_over_panels(
        fig, f"Read throughput, {size}x{size}{where}\n(median images per second{fixed})"
    )
    return fig


def throughput_figure(stats, disk, *, size, spread, labels: Labels):
    """The throughput figure of one image size: every read of that size by the job's own
    process or readers (reads by client processes have figures of their own,
    ``clients``)."""
    at_size = stats[
        (stats["image_size"] == size) & (stats["operation"] == "read") & ~is_many_clients(stats)
    ]
    return throughput_panels(at_size, size, style.colours(stats), labels)
