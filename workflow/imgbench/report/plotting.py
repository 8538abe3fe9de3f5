"""Matplotlib figures from the aggregated statistics (medians, with error bars from the
interval of the median over the stores, the min-max range or the interquartile range).

Which figures exist, when a config asks for them and which function here draws each is
the registry ``figures.FIGURES``; ``draw(stem, ...)`` draws one. Reads
that differ in readahead or in how cold was made are drawn apart and labelled, never
merged into one line or bar.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# SVG figures keep their text as text (legends can be searched and selected), not paths.
matplotlib.rcParams["svg.fonttype"] = "none"
import matplotlib.colors  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from imgbench.experiment import vocabulary  # noqa: E402
from imgbench.report import figures  # noqa: E402
from imgbench.results.series import (  # noqa: E402
    method_descriptions,
    series_encodings,
    series_label,
    store_and_whole_reads,
)
from imgbench.system.units import human_bytes  # noqa: E402

# What legends and tick labels call each method: its DESCRIPTION, which the rows carry
# into the statistics and disk tables (column method_description); ``draw`` takes them
# from the tables it draws. A method without one is called by its name.
DESCRIPTIONS: dict[str, str] = {}
# The encoding of each series' images, for methods that keep them in several encodings.
ENCODINGS: dict[str, str] = {}
CACHE_STYLE = {
    "n/a": "-",
    "cold": "-",
    "warm": "--",
    "partly_cached": ":",
    "cold (fadvise)": "-",
    "cold (drop_caches)": "-.",
}
CACHE_HATCH = {"warm": "//", "partly_cached": "xx", "cold (drop_caches)": ".."}
MARKERS = {"store": "o", "read": "s"}
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


def use_descriptions(*frames: pd.DataFrame) -> None:
    """Call the methods of ``frames`` by their descriptions in the figures drawn next."""
    DESCRIPTIONS.clear()
    ENCODINGS.clear()
    for frame in frames:
        for method, text in method_descriptions(frame).items():
            if DESCRIPTIONS.get(method, method) == method:
                DESCRIPTIONS[method] = text
        ENCODINGS.update(series_encodings(frame))


def _label(series: str) -> str:
    """``image files + labels.csv [level1], png``: the method's description, the variant,
    the encoding where the method has several."""
    return series_label(series, DESCRIPTIONS, ENCODINGS)


def _colours(frame: pd.DataFrame) -> dict[str, str]:
    """One colour per series: matplotlib's ten, or tab20's twenty when more series than
    ten would repeat a colour (a format compared with its encodings)."""
    series = sorted(frame["series"].unique())
    if len(series) <= 10:
        return {name: f"C{i}" for i, name in enumerate(series)}
    palette = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
    return {name: palette[i % len(palette)] for i, name in enumerate(series)}


def _spread(points: pd.DataFrame, spread: str) -> np.ndarray:
    low, high, _ = SPREADS[spread]
    return np.vstack([points["median_s"] - points[low], points[high] - points["median_s"]])


def _spread_name(stats: pd.DataFrame, spread: str) -> str:
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


def _with_condition(frame: pd.DataFrame) -> pd.DataFrame:
    """``condition``: the cache state, naming the eviction when cold reads used several
    (``cold (fadvise)``, ``cold (drop_caches)``)."""
    cold = frame["cache"] == "cold"
    condition = frame["cache"].astype(str)
    if frame.loc[cold, "eviction"].nunique() > 1:
        condition = condition.where(~cold, "cold (" + frame["eviction"].astype(str) + ")")
    return frame.assign(condition=condition)


def _conditions(frame: pd.DataFrame, cache: str) -> list[str]:
    return sorted(frame.loc[frame["cache"] == cache, "condition"].unique())


def _readahead_text(reads: pd.DataFrame) -> str:
    return "readahead " + "/".join(sorted(map(str, reads["readahead"].unique())))


def _note(base: pd.DataFrame, spread: str) -> str:
    """What a time figure shows: the median of the store medians, the stores and n, the
    error bars and, where ``base`` has reads, which reads (a figure of stores alone says
    nothing of reads)."""
    n_low, n_high = int(base["n"].min()), int(base["n"].max())
    n_text = f"{n_low}" if n_low == n_high else f"{n_low}-{n_high}"
    note = (
        f"Median of the store medians per point ({int(base['stores'].max())} store(s) x up "
        f"to {int(base['inner_repeats'].max())} timed repetition(s), n = {n_text});\n"
        f"bars: {_spread_name(base, spread)}."
    )
    reads = base[base["operation"] == "read"]
    if len(reads):
        note += f"\nReads: {vocabulary.WHOLE_STORE_TEXT}; {_readahead_text(reads)}."
    return note


def _readers_text(readers) -> str:
    return f"{int(readers)} reader" + ("" if int(readers) == 1 else "s")


def _plain(value: float, unit: str = "") -> str:
    """``200``, ``1,000``, ``0.005``: a tick label without powers of ten."""
    text = f"{value:,.0f}" if abs(value) >= 1 else f"{value:.2g}"
    return text + unit


class _PlainLogFormatter(matplotlib.ticker.LogFormatter):
    """Log-axis tick labels as plain numbers (with ``unit``), labelling minor ticks only
    where the axis spans few decades, as matplotlib's own log formatter does."""

    def __init__(self, unit: str = "", **kwargs):
        super().__init__(**kwargs)
        self.unit = unit

    def _num_to_string(self, x, vmin, vmax):
        return _plain(x, self.unit)


def _plain_log_axis(axis, unit: str = "") -> None:
    """Label a log ``axis`` (``ax.xaxis`` or ``ax.yaxis``) with plain numbers."""
    axis.set_major_formatter(_PlainLogFormatter(unit))
    axis.set_minor_formatter(_PlainLogFormatter(unit, labelOnlyBase=False))


def _cutoff_ticks(ax, cutoffs, spacing: float = 0.35) -> None:
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


def _save(fig, out_dir: Path, stem: str, formats: list[str], dpi: int) -> list[Path]:
    written = []
    for extension in formats:
        path = out_dir / f"{stem}.{extension}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def _time_figure(stats, selections, title, log, spread, note, colours):
    """Median time vs cutoff per series and (operation, cache), with error bars. Labels
    name the operation only when the figure has several (the title names a single one)."""
    stats = _with_condition(stats)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    several_operations = len({operation for operation, _ in selections}) > 1
    for series in sorted(stats["series"].unique()):
        for operation, cache in selections:
            for condition in _conditions(stats, cache):
                points = stats[
                    (stats["series"] == series)
                    & (stats["operation"] == operation)
                    & (stats["condition"] == condition)
                ].sort_values("cutoff")
                if points.empty:
                    continue
                parts = [operation] if several_operations else []
                parts += [] if cache == vocabulary.NO_CACHE else [condition]
                what = f" ({', '.join(parts)})" if parts else ""
                ax.errorbar(
                    points["cutoff"],
                    points["median_s"],
                    yerr=_spread(points, spread),
                    color=colours[series],
                    linestyle=CACHE_STYLE.get(condition, "-"),
                    marker=MARKERS.get(operation, "o"),
                    markersize=4,
                    capsize=3,
                    label=f"{_label(series)}{what}",
                )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        if len(stats):
            _cutoff_ticks(ax, stats["cutoff"].unique())
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Time (seconds)")
    ax.set_title(f"{title}{' (log-log)' if log else ''}")
    ax.grid(True, which="both", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if len(handles) > 6:  # beside the axes: inside, so many would cover lines
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif handles:
        ax.legend(fontsize="small")
    else:
        message = "not measured (read_patterns has no whole)"
        ax.text(0.5, 0.5, message, ha="center", transform=ax.transAxes)
    fig.text(0.01, -0.01, note, fontsize="x-small", alpha=0.7, va="top")
    return fig


def _bar_offsets(count: int) -> tuple[np.ndarray, float]:
    """Offsets from a group's centre and the width of ``count`` side-by-side bars that
    together fill 80 % of one group slot."""
    width = 0.8 / max(count, 1)
    return (np.arange(count) - (count - 1) / 2) * width, width


def _throughput_bars(ax, panel, colours, series_list, conditions) -> None:
    """One cutoff only: a line over cutoffs would be a column of dots, so bars instead,
    one group per method, one bar per condition (cold plain, warm hatched)."""
    offsets, width = _bar_offsets(len(conditions))
    positions = np.arange(len(series_list))
    for offset, condition in zip(offsets, conditions, strict=True):
        chosen = panel[panel["condition"] == condition]
        by_series = chosen.set_index("series")["median_images_per_s"]
        hatch = CACHE_HATCH.get(condition)
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
        [_label(s) for s in series_list],
        rotation=30 if len(series_list) <= 6 else 60,
        ha="right",
    )


def _panel_rows(reads: pd.DataFrame) -> list[tuple[str, str]]:
    """(pattern, readahead) of each row of panels: every pattern measured, in the
    vocabulary's order (unknown ones last), readahead on before off: reads with readahead
    on and off are never drawn in one panel."""
    pairs = set(zip(reads["read_pattern"], reads["readahead"], strict=True))
    return sorted(
        pairs,
        key=lambda p: (vocabulary.pattern_rank(p[0]), p[0], p[1] != vocabulary.READAHEAD_ON),
    )


def _throughput_lines(ax, panel, colours) -> None:
    for (series, condition), points in panel.groupby(["series", "condition"], sort=True):
        points = points.sort_values("cutoff")
        ax.plot(
            points["cutoff"],
            points["median_images_per_s"],
            color=colours[series],
            linestyle=CACHE_STYLE.get(condition, "-"),
            marker="o",
            markersize=3,
        )


def _throughput_legend(conditions, single_cutoff, colours, series_list) -> list:
    if single_cutoff:  # the methods are named under their bars
        return [
            matplotlib.patches.Patch(
                facecolor="grey", hatch=CACHE_HATCH.get(c), label=f"{c} read", edgecolor="white"
            )
            for c in conditions
        ]
    handles = [
        plt.Line2D([], [], color=colours[s], marker="o", label=_label(s)) for s in series_list
    ]
    return handles + [
        plt.Line2D([], [], color="grey", linestyle=CACHE_STYLE.get(c, "-"), label=f"{c} read")
        for c in conditions
    ]


# Inches: one panel of the throughput figure, and the figure's title above the panels.
PANEL_SIZE = (4.6, 3.6)
LATENCY_PANEL_SIZE = (5.0, 4.5)
TITLE_HEIGHT = 0.9


def _legend_width(handles) -> float:
    """Inches a legend of ``handles`` (fontsize small) takes beside the panels."""
    return 0.9 + 0.075 * max((len(h.get_label()) for h in handles), default=0)


def _legend_beside(fig, handles) -> None:
    """The figure's legend right of its panels, at the top; the title (left-aligned over
    the panels) cannot run into it."""
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")


def _throughput_figure(reads, size, colours):
    """Small multiples: one panel per (pattern, readahead, readers); images/s vs cutoff,
    one colour per method, solid cold and dashed warm (with a single cutoff: bars, warm
    hatched). Readahead is in the panel titles when both settings were measured, else in
    the figure title. The canvas is as large as its panels and the legend beside them, so
    one panel makes an ordinary figure."""
    reads = _with_condition(reads)
    panel_rows = _panel_rows(reads)
    name_readahead = reads["readahead"].nunique() > 1
    reader_counts = sorted(reads["readers"].unique())
    series_list = sorted(reads["series"].unique())
    conditions = [c for cache in vocabulary.ROW_CACHE_STATES for c in _conditions(reads, cache)]
    single_cutoff = reads["cutoff"].nunique() == 1
    handles = _throughput_legend(conditions, single_cutoff, colours, series_list)
    width, height = PANEL_SIZE
    if single_cutoff:
        # Bars carry the methods' names under them: room for the names, and for the bars
        # when there are many series.
        height += 0.06 * max((len(_label(s)) for s in series_list), default=0)
        width = max(width, 0.42 * len(series_list) + 1.2)
    fig, axes = plt.subplots(
        len(panel_rows),
        len(reader_counts),
        figsize=(
            width * len(reader_counts) + _legend_width(handles),
            height * len(panel_rows) + TITLE_HEIGHT,
        ),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for row, (pattern, readahead) in enumerate(panel_rows):
        for column, readers in enumerate(reader_counts):
            ax = axes[row][column]
            panel = reads[
                (reads["read_pattern"] == pattern)
                & (reads["readahead"] == readahead)
                & (reads["readers"] == readers)
            ]
            if panel.empty and vocabulary.is_one_process(pattern) and readers != 1:
                # Never measured by design: no empty axes, a word why.
                ax.axis("off")
                ax.text(
                    0.5,
                    0.5,
                    f"{pattern} reads in one process:\nno {_readers_text(readers)}",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    alpha=0.7,
                )
                continue
            what = f"{pattern}, readahead {readahead}" if name_readahead else pattern
            ax.set_title(f"{what}, {_readers_text(readers)}", fontsize="medium")
            if column == 0:
                ax.set_ylabel("Images per second")
            if panel.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
            ax.set_yscale("log")
            _plain_log_axis(ax.yaxis)
            if single_cutoff:
                _throughput_bars(ax, panel, colours, series_list, conditions)
                ax.grid(True, axis="y", which="both", alpha=0.3)
                continue
            _throughput_lines(ax, panel, colours)
            ax.set_xscale("log")
            _cutoff_ticks(ax, reads["cutoff"].unique())
            ax.grid(True, which="both", alpha=0.3)
            if row == len(panel_rows) - 1:
                ax.set_xlabel("Images in the store")
    _legend_beside(fig, handles)
    where = f", {int(reads['cutoff'].iloc[0]):,} images" if single_cutoff else ""
    fixed = "" if name_readahead else f"; {_readahead_text(reads)}"
    fig.suptitle(
        f"Read throughput, {size}x{size}{where}\n(median images per second{fixed})",
        x=0.02,
        ha="left",
    )
    return fig


def _tail(percentiles) -> np.ndarray:
    """Height of each percentile on a tail scale, -log10 of the share of reads above it:
    p50 0.3, p90 1, p99 2, so the tail is not squeezed against the top."""
    return -np.log10(1 - np.asarray(percentiles, dtype=float) / 100)


def _latency_figure(single, size, colours):
    """Percentiles of single-image read latency (a coarse CDF on a tail scale): one panel
    per reader count, one colour per method, solid cold and dashed warm, readahead off
    hollow. The legend names each once; readahead, when fixed, is in the title."""
    single = _with_condition(single)
    single = single[single["cutoff"] == single["cutoff"].max()]
    reader_counts = sorted(single["readers"].unique())
    series_list = sorted(single["series"].unique())
    conditions = [c for cache in vocabulary.ROW_CACHE_STATES for c in _conditions(single, cache)]
    several_readahead = single["readahead"].nunique() > 1
    handles = [
        plt.Line2D([], [], color=colours[s], marker="o", label=_label(s)) for s in series_list
    ]
    handles += [
        plt.Line2D([], [], color="grey", linestyle=CACHE_STYLE.get(c, "-"), label=f"{c} read")
        for c in conditions
    ]
    if several_readahead:
        handles += [
            plt.Line2D(
                [], [], color="grey", marker="o", linestyle="", label="readahead on (filled)"
            ),
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
    width, height = LATENCY_PANEL_SIZE
    fig, axes = plt.subplots(
        1,
        len(reader_counts),
        figsize=(
            width * len(reader_counts) + _legend_width(handles),
            height + TITLE_HEIGHT,
        ),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    percentiles = [50, 95, 99]
    for ax, readers in zip(axes[0], reader_counts, strict=True):
        for row in single[single["readers"] == readers].itertuples():
            values = [getattr(row, f"median_latency_p{p}_us") for p in percentiles]
            ax.plot(
                values,
                _tail(percentiles),
                color=colours[row.series],
                linestyle=CACHE_STYLE.get(row.condition, "-"),
                marker="o",
                markerfacecolor="none" if row.readahead == "off" else colours[row.series],
            )
        ax.set_title(_readers_text(readers), fontsize="medium")
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
        ax.set_yticks(_tail(percentiles), [f"p{p}" for p in percentiles])
        ax.set_xlabel("Latency of one read (microseconds)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("Percentile of reads (tail scale)")
    _legend_beside(fig, handles)
    fixed = "" if several_readahead else f"; {_readahead_text(single)}"
    fig.suptitle(
        f"Random single-image read latency, {size}x{size}, {int(single['cutoff'].max()):,} "
        f"images\n(median over timed runs of each percentile{fixed})",
        fontsize="medium",
        x=0.02,
        ha="left",
    )
    return fig


def _speed_vs_npy_figure(stats, size):
    """Each method's median time as a multiple of the npy baseline, largest cutoff, each
    bar labelled with its multiple."""
    base = _with_condition(store_and_whole_reads(stats))
    base = base[base["cutoff"] == base["cutoff"].max()]
    kinds = [("store", "n/a", "store")] + [
        ("read", condition, f"{condition} read")
        for cache in vocabulary.ROW_CACHE_STATES
        for condition in _conditions(base, cache)
    ]
    kinds = [k for k in kinds if ((base["operation"] == k[0]) & (base["condition"] == k[1])).any()]
    series_list = [s for s in sorted(base["series"].unique()) if s != "npy"]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    offsets, width = _bar_offsets(len(kinds))
    positions = np.arange(len(series_list))
    for offset, (operation, condition, title) in zip(offsets, kinds, strict=True):
        chosen = base[(base["operation"] == operation) & (base["condition"] == condition)]
        by_series = chosen.set_index("series")["median_s"]
        reference = by_series.get("npy", np.nan)
        ratios = [by_series.get(s, np.nan) / reference for s in series_list]
        bars = ax.bar(positions + offset, ratios, width, label=title)
        ax.bar_label(bars, labels=[_ratio_text(r) for r in ratios], fontsize="x-small")
    ax.axhline(1.0, color="black", linewidth=0.8, label=f"{_label('npy')} = 1x")
    ax.set_xticks(positions, [_label(s) for s in series_list], rotation=20, ha="right")
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis, "x")
    ax.set_ylabel("Median time relative to npy (log scale; 1x = raw bytes)")
    reads = base[base["operation"] == "read"]
    what = (
        f"\nreads: {vocabulary.WHOLE_STORE_TEXT} ({_readahead_text(reads)})" if len(reads) else ""
    )
    ax.set_title(
        f"Cost over the raw-bytes baseline, {size}x{size}, {int(base['cutoff'].max()):,} images"
        + what,
        fontsize="medium",
    )
    ax.margins(y=0.1)  # room for the labels over the tallest bars
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _ratio_text(ratio: float) -> str:
    if not np.isfinite(ratio):
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def _disk_figure(disk):
    """Grouped bars: one group per cutoff, one bar per method (the article's stacked bars
    drew each method on top of the previous one); one panel per image size. Bytes in
    binary units (KiB, MiB), as the summary gives them."""
    sizes = sorted(int(s) for s in disk["image_size"].unique())
    series_list = sorted(disk["series"].unique())
    cutoffs = sorted(disk["cutoff"].unique())
    colours = _colours(disk)
    fig, axes = plt.subplots(
        len(sizes), 1, figsize=(9, 1.0 + 4.5 * len(sizes)), sharex=True, squeeze=False
    )
    offsets, width = _bar_offsets(len(series_list))
    positions = np.arange(len(cutoffs))
    for ax, size in zip(axes[:, 0], sizes, strict=True):
        at_size = disk[disk["image_size"] == size]
        for offset, series in zip(offsets, series_list, strict=True):
            by_cutoff = at_size[at_size["series"] == series].set_index("cutoff")["bytes_on_disk"]
            ax.bar(
                positions + offset,
                [by_cutoff.get(c, np.nan) for c in cutoffs],
                width,
                label=_label(series),
                color=colours[series],
            )
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=4))
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: human_bytes(v, significant=3))
        )
        ax.set_ylabel("Disk usage (allocated blocks, log scale)")
        ax.set_title(f"{size}x{size} images" if len(sizes) > 1 else "", fontsize="medium")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[-1, 0].set_xticks(positions, [f"{c:,}" for c in cutoffs])
    axes[-1, 0].set_xlabel("Number of images")
    if len(series_list) > 6:  # beside the axes: inside, so many would cover the bars
        axes[0, 0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.set_figwidth(9 + _legend_width(axes[0, 0].get_legend_handles_labels()[0]))
    else:
        axes[0, 0].legend(fontsize="small")
    what = f"{sizes[0]}x{sizes[0]} images" if len(sizes) == 1 else "by image size"
    fig.suptitle(f"Disk usage per store, {what}")
    fig.tight_layout()
    return fig


# Markers of the disk-by-size lines, largest first: a series drawn on top of another
# (the same bytes) shows as a smaller marker inside the larger one.
SERIES_MARKERS = (("o", 11), ("s", 8.5), ("D", 6.5), ("^", 5), ("v", 4), ("x", 4), ("+", 4))


def _coinciding(values: dict[str, pd.Series], tolerance: float = 0.01) -> dict[str, str]:
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


def _disk_bars(ax, largest, size: int, colours) -> None:
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
    ax.set_yticks(positions, [_label(s) for s in rows["series"]])
    ax.set_xlim(0, max(values.max(), raw) * 1.4)  # room for the labels
    ax.set_xlabel("Bytes on disk per image (allocated blocks)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _disk_lines(ax, largest, colours) -> None:
    """Several image sizes: a line per series, each with its own marker (largest first),
    and "(same as ...)" in the legend for a line on top of an earlier one."""
    values = {
        series: points.set_index("image_size")["bytes_per_image"].sort_index()
        for series, points in largest.groupby("series", sort=True)
    }
    same = _coinciding(values)
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
        marker, marker_size = SERIES_MARKERS[index % len(SERIES_MARKERS)]
        label = _label(series)
        if series in same:
            label += _same_as_text(points, values[same[series]], _label(same[series]))
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
    _plain_log_axis(ax.yaxis)
    ax.set_xticks(sizes, [f"{s}x{s}" for s in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("Image size (pixels)")
    ax.set_ylabel("Bytes on disk per image (allocated, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    if len(values) > 4:  # beside the axes: inside, so many would cover the lines
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize="small")


def _disk_by_size_figure(disk):
    """Bytes on disk per image by image size (the largest cutoff of each), against the
    raw pixels: bars for one size, lines for several."""
    largest = disk.loc[disk.groupby(["series", "image_size"])["cutoff"].idxmax()]
    colours = _colours(disk)
    cutoffs = sorted(largest["cutoff"].unique())
    stores = f"stores of {cutoffs[0]:,} images" if len(cutoffs) == 1 else "the largest stores"
    sizes = sorted(largest["image_size"].unique())
    if len(sizes) == 1:
        fig, ax = plt.subplots(figsize=(8, max(3.2, 1.2 + 0.55 * largest["series"].nunique())))
        _disk_bars(ax, largest, int(sizes[0]), colours)
        ax.set_title(f"Disk bytes per image, {sizes[0]}x{sizes[0]} ({stores})")
        return fig
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _disk_lines(ax, largest, colours)
    ax.set_title(f"Disk bytes per image by image size ({stores})")
    return fig


def _caches(stats: pd.DataFrame) -> list[str]:
    return [c for c in vocabulary.ROW_CACHE_STATES if c in set(stats["cache"])]


_TIME_TITLES = {
    "store": "Time to store images",
    "read": "Time to read images back",
    "store_and_read": "Store and read time",
}


def time_figure(stats, disk, size, spread, *, what, log):
    """Store and/or whole-store read time vs cutoff at one image size."""
    at_size = stats[stats["image_size"] == size]
    base = store_and_whole_reads(at_size)
    selections = ([("store", "n/a")] if what != "read" else []) + (
        [("read", c) for c in _caches(stats)] if what != "store" else []
    )
    if what == "store":
        base = base[base["operation"] == "store"]
    return _time_figure(
        base,
        selections,
        f"{_TIME_TITLES[what]}, {size}x{size}",
        log,
        spread,
        _note(base, spread),
        _colours(stats),
    )


def throughput_figure(stats, disk, size, spread):
    at_size = stats[(stats["image_size"] == size) & (stats["operation"] == "read")]
    return _throughput_figure(at_size, size, _colours(stats))


def speed_vs_npy_figure(stats, disk, size, spread):
    return _speed_vs_npy_figure(stats[stats["image_size"] == size], size)


def latency_figure(stats, disk, size, spread):
    at_size = stats[stats["image_size"] == size]
    single = at_size[
        (at_size["operation"] == "read") & (at_size["read_pattern"] == vocabulary.RANDOM_SINGLE)
    ]
    return _latency_figure(single, size, _colours(stats))


def disk_figure(stats, disk, size, spread):
    return _disk_figure(disk)


def disk_by_size_figure(stats, disk, size, spread):
    return _disk_by_size_figure(disk)


def draw(stem: str, stats: pd.DataFrame, disk: pd.DataFrame, *, spread: str):
    """The matplotlib figure the registry (``figures.FIGURES``) names ``stem``."""
    figure, size = figures.find(stem)
    use_descriptions(stats, disk)
    return globals()[figure.draw](stats, disk, size, spread, **figure.options)


def plot_all(
    stats: pd.DataFrame,
    disk: pd.DataFrame,
    out_dir: Path,
    *,
    stems: list[str],
    formats: list[str],
    dpi: int,
    spread: str,
) -> list[Path]:
    """Draw the figures ``stems`` (``figures.stems(config)``) into ``out_dir``, in every
    format; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in stems:
        written += _save(draw(stem, stats, disk, spread=spread), out_dir, stem, formats, dpi)
    return written
