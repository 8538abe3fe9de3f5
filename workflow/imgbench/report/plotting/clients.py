"""Throughput against the number of client processes (reads by many clients, ``clients``
>= 1): one figure per image size, read pattern and cache state, at the largest cutoff
with such reads; two panels, images/s of all clients and images/s per client, one line
per series (readahead off dashed where both were measured), the client configurations
(nodes x per node) along x in order of clients, error bars the interval of the median
over the stores."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.report.plotting import grid, style
from imgbench.report.plotting.labels import Labels, with_condition
from imgbench.results.series import is_many_clients

# Inches: one panel of the figure.
PANEL_SIZE = (4.8, 3.8)
# (column of the median, prefix of its interval's columns, y-axis label, panel title)
PANELS = (
    ("median_images_per_s", "ci_images_per_s_", "images/s, all clients", "All clients together"),
    (
        "median_images_per_s_per_client",
        "ci_images_per_s_per_client_",
        "images/s per client",
        "Each client",
    ),
)
READAHEAD_STYLE = {vocabulary.READAHEAD_ON: "-", vocabulary.READAHEAD_OFF: "--"}


def client_points(stats: pd.DataFrame, size: int, pattern: str, cache: str) -> pd.DataFrame:
    """The many-clients reads of one image size, pattern and cache state (a warm read that
    found the store partly cached among the warm ones), at the largest cutoff that has
    them (nothing when there are none)."""
    caches = {cache, vocabulary.PARTLY_CACHED} if cache == vocabulary.WARM else {cache}
    reads = stats[
        (stats["operation"] == "read")
        & is_many_clients(stats)
        & (stats["image_size"] == size)
        & (stats["read_pattern"] == pattern)
        & stats["cache"].isin(caches)
    ]
    return reads[reads["cutoff"] == reads["cutoff"].max()] if len(reads) else reads


def configurations(points: pd.DataFrame) -> list[tuple[int, int]]:
    """The (clients, nodes) measured, fewest clients first, then fewest nodes."""
    pairs = points[["clients", "nodes"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted((int(clients), int(nodes)) for clients, nodes in pairs)


def tick_label(config: tuple[int, int]) -> str:
    """``4\\n(2x2)``: the clients, and nodes x per node under them."""
    clients, nodes = config
    return f"{clients}\n({nodes}x{clients // nodes})"


def _bars(points: pd.DataFrame, median: str, prefix: str) -> np.ndarray:
    """Error bars (below, above) from the interval columns; 0 where a point has none."""
    low = (points[median] - points[f"{prefix}low"]).clip(lower=0).fillna(0.0)
    high = (points[f"{prefix}high"] - points[median]).clip(lower=0).fillna(0.0)
    return np.vstack([low.to_numpy(), high.to_numpy()])


def _line_keys(points: pd.DataFrame) -> list[tuple]:
    keys = points[["series", "readahead", "condition"]].drop_duplicates()
    return sorted(keys.itertuples(index=False, name=None))


# A panel's images/s go on a log axis when its fastest line is this many times its slowest.
LOG_ABOVE_SPAN = 20


def _panel(ax, points, configs, colours, median, prefix, shown) -> None:
    position = {config: index for index, config in enumerate(configs)}
    several = len(_line_keys(points)) > 1
    for series, readahead, condition in _line_keys(points):
        line = points[
            (points["series"] == series)
            & (points["readahead"] == readahead)
            & (points["condition"] == condition)
        ]
        pairs = zip(line["clients"], line["nodes"], strict=True)
        line = line.assign(_x=[position[(int(c), int(n))] for c, n in pairs]).sort_values("_x")
        # Lines of several series share a position: nudge them apart so bars stay visible.
        offset = 0.0
        if several:
            index = _line_keys(points).index((series, readahead, condition))
            offset = (index - (len(_line_keys(points)) - 1) / 2) * 0.04
        ax.errorbar(
            line["_x"] + offset,
            line[median],
            yerr=_bars(line, median, prefix),
            color=colours[series],
            linestyle=READAHEAD_STYLE.get(readahead, ":") if "readahead" in shown else "-",
            marker="o",
            markersize=4,
            capsize=3,
        )
    ax.set_xticks(range(len(configs)), [tick_label(config) for config in configs])
    ax.set_xlim(-0.5, len(configs) - 0.5)
    values = pd.to_numeric(points[median], errors="coerce")
    values = values[values > 0]
    if len(values) and values.max() > LOG_ABOVE_SPAN * values.min():
        ax.set_yscale("log")  # methods 100x apart: a linear axis flattens the slow ones
    else:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: style.plain(v) if v else "0"))
    ax.grid(True, axis="y", alpha=0.3)


def _handles(points, colours, labels: Labels, shown: set[str]) -> list:
    handles = grid.series_handles(sorted(points["series"].unique()), colours, labels)
    if "readahead" in shown:
        handles += [
            plt.Line2D([], [], color="grey", linestyle=READAHEAD_STYLE[r], label=f"readahead {r}")
            for r in vocabulary.READAHEAD
            if r in set(points["readahead"])
        ]
    return handles


def _interval_note(points: pd.DataFrame) -> str:
    levels = pd.to_numeric(points["ci_images_per_s_level"], errors="coerce").dropna()
    if levels.empty:
        return "no error bars: one store per point"
    return f"error bars: interval of the median over the stores, at least {levels.min():.0%}"


def clients_panels(points: pd.DataFrame, size: int, pattern: str, cache: str, colours, labels):
    """The two panels of one (size, pattern, cache): all clients' and per-client
    images/s against the client configurations."""
    points = with_condition(points)
    shown = {"readahead"} if points["readahead"].nunique() > 1 else set()
    handles = _handles(points, colours, labels, shown)
    # The two panels measure different things: each its own y range (no shared axes).
    width, height = PANEL_SIZE
    fig, axes = plt.subplots(
        1,
        len(PANELS),
        figsize=(width * len(PANELS) + grid.legend_width(handles), height + grid.TITLE_HEIGHT),
        squeeze=False,
        layout="constrained",
    )
    configs = configurations(points)
    for ax, (median, prefix, ylabel, title) in zip(axes[0], PANELS, strict=True):
        _panel(ax, points, configs, colours, median, prefix, shown)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("clients (nodes x per node)")
        ax.set_title(title, fontsize="medium")
    grid.legend_beside(fig, handles)
    cold = points.loc[points["cache"] == vocabulary.COLD, "eviction"]
    cache_text = f"cold ({', '.join(sorted(cold.unique()))})" if len(cold) else cache
    if (points["cache"] == vocabulary.PARTLY_CACHED).any():
        cache_text += " (some only partly cached)"
    fixed = "" if shown else f"; readahead {points['readahead'].iloc[0]}"
    grid.title_over_panels(
        fig,
        f"Many clients: {pattern}, {cache_text}, {size}x{size}, "
        f"{int(points['cutoff'].iloc[0]):,} images\n(median images per second{fixed}; "
        f"{_interval_note(points)})",
        fontsize="medium",
    )
    return fig


def _not_measured(size: int, pattern: str, cache: str):
    """The figure's file when the run has no many-clients reads of this kind."""
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        f"Many clients, {pattern}, {cache}, {size}x{size}:\nnot measured",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    return fig


def clients_figure(stats, disk, *, size, spread, labels: Labels, pattern: str, cache: str):
    """Throughput against clients of one image size, pattern and cache state."""
    points = client_points(stats, size, pattern, cache)
    if points.empty:
        return _not_measured(size, pattern, cache)
    return clients_panels(points, size, pattern, cache, style.colours(stats), labels)
