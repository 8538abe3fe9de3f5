"""Time figures: the median time to store and to read the whole store back vs the number
of images, one line per series and (operation, cache condition), with error bars set by
``plot.spread`` and a note under the axes saying what the points and bars are."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.report.plotting import grid, style
from imgbench.report.plotting.labels import (
    Labels,
    conditions,
    readahead_text,
    with_condition,
)
from imgbench.results.series import store_and_whole_reads

# plot.spread -> (low column, high column, what the error bars are)
SPREADS = {
    "ci": (
        "ci_low",
        "ci_high",
        "interval of the median (order statistics of the store medians)",
    ),
    "range": ("min_s", "max_s", "min-max over the timed runs"),
    "iqr": ("q25_s", "q75_s", "interquartile range"),
}
LEVEL = 0.95
TITLES = {
    "store": "Time to store images",
    "read": "Time to read images back",
    "store_and_read": "Store and read time",
}


def spread_bars(points: pd.DataFrame, spread: str) -> np.ndarray:
    """The error bars of ``points``: distances below and above each median."""
    low, high, _ = SPREADS[spread]
    return np.vstack([points["median_s"] - points[low], points[high] - points["median_s"]])


def spread_name(stats: pd.DataFrame, spread: str) -> str:
    """What the error bars are; for ``ci``, also their coverage and where there are none."""
    if spread == "ci":
        return _interval_name(stats)
    if int(stats["n"].max()) <= 1:
        return "none: one timing per point, so no spread (raise repeats and inner_repeats)"
    return SPREADS[spread][2]


def _interval_name(stats: pd.DataFrame) -> str:
    """The interval bars: their lowest coverage where fewer than 6 stores gave only the
    min-max of the store medians, and whether points of one store have none."""
    levels = stats["ci_level"].dropna()
    if levels.empty:
        return "none: one store per point, so no interval (raise repeats)"
    name = SPREADS["ci"][2]
    if levels.min() < LEVEL:
        name += (
            "; 95 % where 6 or more stores allow it, else min-max of the store medians, "
            f"covering the median with as little as {levels.min():.1%}"
        )
    if len(levels) < len(stats):
        name += "; none where a point had one store"
    return name


def note(base: pd.DataFrame, spread: str) -> str:
    """What a time figure shows: the median of the store medians, the stores and n, the
    error bars and, where ``base`` has reads, which reads (a figure of stores alone says
    nothing of reads)."""
    n_low, n_high = int(base["n"].min()), int(base["n"].max())
    n_text = f"{n_low}" if n_low == n_high else f"{n_low}-{n_high}"
    text = (
        f"Median of the store medians per point ({int(base['stores'].max())} store(s) x up "
        f"to {int(base['inner_repeats'].max())} timed repetition(s), n = {n_text});\n"
        f"bars: {spread_name(base, spread)}."
    )
    reads = base[base["operation"] == "read"]
    if len(reads):
        text += f"\nReads: {vocabulary.WHOLE_STORE_TEXT}; {readahead_text(reads)}."
    return text


def _line_label(series, operation, condition, cache, several_operations, labels) -> str:
    """The series, with the operation where the figure has several (the title names a
    single one) and the cache condition of a read."""
    parts = [operation] if several_operations else []
    parts += [] if cache == vocabulary.NO_CACHE else [condition]
    what = f" ({', '.join(parts)})" if parts else ""
    return f"{labels(series)}{what}"


def draw_time(stats, selections, *, title, log, spread, note_text, colours, labels: Labels):
    """Median time vs cutoff per series and (operation, cache), with error bars. Labels
    name the operation only when the figure has several (the title names a single one)."""
    stats = with_condition(stats)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    several_operations = len({operation for operation, _ in selections}) > 1
    for series in sorted(stats["series"].unique()):
        for operation, cache in selections:
            for condition in conditions(stats, cache):
                points = stats[
                    (stats["series"] == series)
                    & (stats["operation"] == operation)
                    & (stats["condition"] == condition)
                ].sort_values("cutoff")
                if points.empty:
                    continue
                ax.errorbar(
                    points["cutoff"],
                    points["median_s"],
                    yerr=spread_bars(points, spread),
                    color=colours[series],
                    linestyle=style.CACHE_STYLE.get(condition, "-"),
                    marker=style.MARKERS.get(operation, "o"),
                    markersize=4,
                    capsize=3,
                    label=_line_label(
                        series, operation, condition, cache, several_operations, labels
                    ),
                )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        if len(stats):
            style.cutoff_ticks(ax, stats["cutoff"].unique())
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Time (seconds)")
    ax.set_title(f"{title}{' (log-log)' if log else ''}")
    ax.grid(True, which="both", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        grid.axes_legend(ax, beside=len(handles) > 6)
    else:
        message = "not measured (read_patterns has no whole)"
        ax.text(0.5, 0.5, message, ha="center", transform=ax.transAxes)
    fig.text(0.01, -0.01, note_text, fontsize="x-small", alpha=0.7, va="top")
    return fig


def _caches(stats: pd.DataFrame) -> list[str]:
    return [c for c in vocabulary.ROW_CACHE_STATES if c in set(stats["cache"])]


def time_figure(stats, disk, *, size, spread, labels: Labels, what: str, log: bool):
    """Store and/or whole-store read time (``what``: store, read or store_and_read) vs
    cutoff at one image size, on linear or log-log axes."""
    at_size = stats[stats["image_size"] == size]
    base = store_and_whole_reads(at_size)
    selections = ([("store", vocabulary.NO_CACHE)] if what != "read" else []) + (
        [("read", c) for c in _caches(stats)] if what != "store" else []
    )
    if what == "store":
        base = base[base["operation"] == "store"]
    return draw_time(
        base,
        selections,
        title=f"{TITLES[what]}, {size}x{size}",
        log=log,
        spread=spread,
        note_text=note(base, spread),
        colours=style.colours(stats),
        labels=labels,
    )
