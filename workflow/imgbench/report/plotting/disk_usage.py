"""Disk usage figures: bytes each store takes per cutoff (grouped bars, a panel per image
size), and bytes per image by image size against the raw pixels."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.report.plotting import grid, style
from imgbench.report.plotting.labels import Labels


def draw_disk_usage(disk, labels: Labels):
    """Grouped bars: one group per cutoff, one bar per method (the article's stacked bars
    drew each method on top of the previous one); one panel per image size. Bytes in
    binary units (KiB, MiB), as the summary gives them."""
    sizes = sorted(int(s) for s in disk["image_size"].unique())
    series_list = sorted(disk["series"].unique())
    cutoffs = sorted(disk["cutoff"].unique())
    colours = style.colours(disk)
    fig, axes = plt.subplots(
        len(sizes), 1, figsize=(9, 1.0 + 4.5 * len(sizes)), sharex=True, squeeze=False
    )
    offsets, width = style.bar_offsets(len(series_list))
    positions = np.arange(len(cutoffs))
    for ax, size in zip(axes[:, 0], sizes, strict=True):
        at_size = disk[disk["image_size"] == size]
        for offset, series in zip(offsets, series_list, strict=True):
            by_cutoff = at_size[at_size["series"] == series].set_index("cutoff")["bytes_on_disk"]
            ax.bar(
                positions + offset,
                [by_cutoff.get(c, np.nan) for c in cutoffs],
                width,
                label=labels(series),
                color=colours[series],
            )
        ax.set_yscale("log", base=2)
        style.bytes_log_axis(ax.yaxis)
        ax.set_ylabel("Disk usage (allocated blocks, log scale)")
        ax.set_title(f"{size}x{size} images" if len(sizes) > 1 else "", fontsize="medium")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[-1, 0].set_xticks(positions, [f"{c:,}" for c in cutoffs])
    axes[-1, 0].set_xlabel("Number of images")
    many = len(series_list) > 6  # beside the axes: inside, so many would cover the bars
    grid.axes_legend(axes[0, 0], beside=many)
    if many:
        fig.set_figwidth(9 + grid.legend_width(axes[0, 0].get_legend_handles_labels()[0]))
    what = f"{sizes[0]}x{sizes[0]} images" if len(sizes) == 1 else "by image size"
    fig.suptitle(f"Disk usage per store, {what}")
    fig.tight_layout()
    return fig


def coinciding(values: dict[str, pd.Series], tolerance: float = 0.01) -> dict[str, str]:
    """For a series whose values lie within ``tolerance`` (relative) of an earlier
    series' at every point (same index), that earlier series."""
    same: dict[str, str] = {}
    names = list(values)
    for index, name in enumerate(names):
        for earlier in names[:index]:
            if earlier in same or not values[name].index.equals(values[earlier].index):
                continue
            if np.allclose(values[name], values[earlier], rtol=tolerance, atol=0):
                same[name] = earlier
                break
    return same


def _same_as_text(mine: pd.Series, theirs: pd.Series, name: str) -> str:
    return f" (same as {name})" if np.array_equal(mine, theirs) else f" (within 1 % of {name})"


def _bytes_bars(ax, largest, size: int, colours, labels: Labels) -> None:
    """One image size: a bar per series, labelled with its bytes and its ratio to the raw
    pixels, which are a line across."""
    rows = largest.sort_values("series", ascending=False)  # the first at the top
    raw = vocabulary.image_bytes(size)
    values = rows["bytes_per_image"].to_numpy(dtype=float)
    positions = np.arange(len(rows))
    ax.barh(positions, values, 0.6, color=[colours[s] for s in rows["series"]])
    for position, value in zip(positions, values, strict=True):
        ax.text(
            value,
            position,
            f" {value:,.0f} B ({value / raw:.2f}x raw)",
            va="center",
            fontsize="small",
        )
    ax.axvline(
        raw,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"raw pixels:\n{size}x{size}x3 = {raw:,} B",
    )
    ax.set_yticks(positions, [labels(s) for s in rows["series"]])
    ax.set_xlim(0, max(values.max(), raw) * 1.4)  # room for the labels
    ax.set_xlabel("Bytes on disk per image (allocated blocks)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.grid(True, axis="x", alpha=0.3)
    grid.axes_legend(ax, beside=True)


def _bytes_lines(ax, largest, colours, labels: Labels) -> None:
    """Several image sizes: a line per series, each with its own marker (largest first),
    and "(same as ...)" in the legend for a line on top of an earlier one."""
    values = {
        series: points.set_index("image_size")["bytes_per_image"].sort_index()
        for series, points in largest.groupby("series", sort=True)
    }
    same = coinciding(values)
    sizes = np.array(sorted(largest["image_size"].unique()))
    ax.plot(
        sizes,
        vocabulary.image_bytes(sizes),
        color="black",
        linestyle=":",
        linewidth=1.5,
        label="raw pixels (HxWx3)",
        zorder=10,  # over any method that stores exactly the raw bytes
    )
    for index, (series, points) in enumerate(values.items()):
        marker, marker_size = style.SERIES_MARKERS[index % len(style.SERIES_MARKERS)]
        label = labels(series)
        if series in same:
            label += _same_as_text(points, values[same[series]], labels(same[series]))
        ax.plot(
            points.index,
            points.to_numpy(),
            marker=marker,
            markersize=marker_size,
            markerfacecolor="none" if series in same else colours[series],
            markeredgewidth=1.5,
            color=colours[series],
            label=label,
            zorder=2 + index,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    style.plain_log_axis(ax.yaxis)
    ax.set_xticks(sizes, [f"{s}x{s}" for s in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("Image size (pixels)")
    ax.set_ylabel("Bytes on disk per image (allocated, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    # beside the axes: inside, so many would cover the lines
    grid.axes_legend(ax, beside=len(values) > 4)


def draw_bytes_per_image(disk, labels: Labels):
    """Bytes on disk per image by image size (the largest cutoff of each), against the
    raw pixels: bars for one size, lines for several."""
    largest = disk.loc[disk.groupby(["series", "image_size"])["cutoff"].idxmax()]
    colours = style.colours(disk)
    cutoffs = sorted(largest["cutoff"].unique())
    stores = f"stores of {cutoffs[0]:,} images" if len(cutoffs) == 1 else "the largest stores"
    sizes = sorted(largest["image_size"].unique())
    if len(sizes) == 1:
        fig, ax = plt.subplots(figsize=(8, max(3.2, 1.2 + 0.55 * largest["series"].nunique())))
        _bytes_bars(ax, largest, int(sizes[0]), colours, labels)
        ax.set_title(f"Disk bytes per image, {sizes[0]}x{sizes[0]} ({stores})")
        return fig
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _bytes_lines(ax, largest, colours, labels)
    ax.set_title(f"Disk bytes per image by image size ({stores})")
    return fig


def disk_usage_figure(stats, disk, *, size, spread, labels: Labels):
    """Disk usage per store, every image size."""
    return draw_disk_usage(disk, labels)


def bytes_per_image_figure(stats, disk, *, size, spread, labels: Labels):
    """Bytes on disk per image by image size."""
    return draw_bytes_per_image(disk, labels)
