"""Matplotlib figures from the aggregated statistics (medians, with error bars from the
95 % interval of the median, the min-max range or the interquartile range).

Figure names come from ``plan.plot_stems`` so the workflow knows them in advance. Reads
that differ in readahead or in how cold was made are drawn apart and labelled, never
merged into one line or bar.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .aggregate import baseline  # noqa: E402

LABELS = {"png": "PNG files", "lmdb": "LMDB", "hdf5": "HDF5", "npy": "npy (baseline)"}
CACHE_STYLE = {
    "n/a": "-",
    "cold": "-",
    "warm": "--",
    "cold (fadvise)": "-",
    "cold (drop_caches)": "-.",
}
CACHE_HATCH = {"warm": "//", "cold (drop_caches)": ".."}
MARKERS = {"store": "o", "read": "s"}
PATTERN_STYLE = {
    "whole": "-",
    "whole_array": (0, (5, 1, 1, 1)),
    "sequential": "-.",
    "shuffled": "--",
    "random_single": ":",
}
# plot.spread -> (low column, high column, what the error bars are)
SPREADS = {
    "ci": (
        "ci_low",
        "ci_high",
        "interval of the median (order statistics over timings and over stores)",
    ),
    "range": ("min_s", "max_s", "min-max over the timed runs"),
    "iqr": ("q25_s", "q75_s", "interquartile range"),
}
LEVEL = 0.95


def _label(series: str) -> str:
    method, _, variant = series.partition(":")
    name = LABELS.get(method, method)
    return f"{name} [{variant}]" if variant else name


def _colours(frame: pd.DataFrame) -> dict[str, str]:
    return {series: f"C{i % 10}" for i, series in enumerate(sorted(frame["series"].unique()))}


def _spread(points: pd.DataFrame, spread: str) -> np.ndarray:
    low, high, _ = SPREADS[spread]
    return np.vstack([points["median_s"] - points[low], points[high] - points["median_s"]])


def _spread_name(stats: pd.DataFrame, spread: str) -> str:
    """What the error bars are; for ``ci``, also where too few runs gave only min-max."""
    name = SPREADS[spread][2]
    if int(stats["n"].max()) <= 1:
        return "none: one timing per point, so no spread (raise repeats and inner_repeats)"
    lowest = stats.loc[stats["n"] > 1, "ci_level"].min()
    if spread == "ci" and lowest < LEVEL:
        name += (
            f"; 95 % where 6 or more values allow it, else min-max, covering the median "
            f"with as little as {lowest:.1%}"
        )
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
    """What the time figures show: n, the error bars, and which reads."""
    n_low, n_high = int(base["n"].min()), int(base["n"].max())
    n_text = f"{n_low}" if n_low == n_high else f"{n_low}-{n_high}"
    reads = base[base["operation"] == "read"]
    what = f"; {_readahead_text(reads)}" if len(reads) else ""
    return (
        f"Median of n = {n_text} timed runs per point ({int(base['stores'].max())} store(s) "
        f"x up to {int(base['inner_repeats'].max())} timed repetition(s));\n"
        f"bars: {_spread_name(base, spread)}.\n"
        f"Reads: the whole store, streamed in chunks by one reader{what}."
    )


def _save(fig, out_dir: Path, stem: str, formats: list[str], dpi: int) -> list[Path]:
    written = []
    for extension in formats:
        path = out_dir / f"{stem}.{extension}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def _time_figure(stats, selections, title, log, spread, note, colours):
    """Median time vs cutoff per series and (operation, cache), with error bars."""
    stats = _with_condition(stats)
    fig, ax = plt.subplots(figsize=(8, 5.5))
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
                what = operation if cache == "n/a" else f"{operation}, {condition}"
                ax.errorbar(
                    points["cutoff"],
                    points["median_s"],
                    yerr=_spread(points, spread),
                    color=colours[series],
                    linestyle=CACHE_STYLE.get(condition, "-"),
                    marker=MARKERS.get(operation, "o"),
                    markersize=4,
                    capsize=3,
                    label=f"{_label(series)} ({what})",
                )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Time (seconds)")
    ax.set_title(f"{title}{' (log-log)' if log else ''}")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
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
    ax.set_xticks(positions, [_label(s) for s in series_list], rotation=30, ha="right")


def _panel_rows(reads: pd.DataFrame) -> list[tuple[str, str]]:
    """(pattern, readahead) of each row of panels, in PATTERN_STYLE order, readahead on
    before off: reads with readahead on and off are never drawn in one panel."""
    pairs = set(zip(reads["read_pattern"], reads["readahead"], strict=True))
    order = list(PATTERN_STYLE)
    return sorted(
        pairs,
        key=lambda p: (order.index(p[0]) if p[0] in order else len(order), p[0], p[1] != "on"),
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
    if single_cutoff:
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


def _throughput_figure(reads, size, colours):
    """Small multiples: one panel per (pattern, readahead, readers); images/s vs cutoff,
    one colour per method, solid cold and dashed warm (with a single cutoff: bars, warm
    hatched). Readahead is in the panel titles when both settings were measured, else in
    the figure title."""
    reads = _with_condition(reads)
    panel_rows = _panel_rows(reads)
    name_readahead = reads["readahead"].nunique() > 1
    reader_counts = sorted(reads["readers"].unique())
    series_list = sorted(reads["series"].unique())
    conditions = [c for cache in ("cold", "warm") for c in _conditions(reads, cache)]
    single_cutoff = reads["cutoff"].nunique() == 1
    fig, axes = plt.subplots(
        len(panel_rows),
        len(reader_counts),
        figsize=(
            4.2 * len(reader_counts) + 2.5,
            (4.2 if single_cutoff else 3.4) * len(panel_rows),
        ),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for row, (pattern, readahead) in enumerate(panel_rows):
        for column, readers in enumerate(reader_counts):
            ax = axes[row][column]
            panel = reads[
                (reads["read_pattern"] == pattern)
                & (reads["readahead"] == readahead)
                & (reads["readers"] == readers)
            ]
            what = f"{pattern}, readahead {readahead}" if name_readahead else pattern
            ax.set_title(f"{what}, {readers} reader(s)", fontsize="medium")
            if column == 0:
                ax.set_ylabel("Images per second")
            if panel.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
            if single_cutoff:
                _throughput_bars(ax, panel, colours, series_list, conditions)
                ax.set_yscale("log")
                ax.grid(True, axis="y", which="both", alpha=0.3)
                continue
            _throughput_lines(ax, panel, colours)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            if row == len(panel_rows) - 1:
                ax.set_xlabel("Images in the store")
    handles = _throughput_legend(conditions, single_cutoff, colours, series_list)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    where = f", {int(reads['cutoff'].iloc[0]):,} images" if single_cutoff else ""
    fixed = "" if name_readahead else f", {_readahead_text(reads)}"
    fig.suptitle(
        f"Read throughput by access pattern and readers, {size}x{size}{where} (median{fixed})"
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the suptitle
    return fig


def _latency_figure(single, size, colours):
    """Percentiles of single-image read latency (a coarse CDF), per method, readers, cache
    and readahead (off: hollow markers)."""
    single = _with_condition(single)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    single = single[single["cutoff"] == single["cutoff"].max()]
    percentiles = [50, 95, 99]
    for row in single.itertuples():
        values = [getattr(row, f"median_latency_p{p}_us") for p in percentiles]
        ax.plot(
            values,
            percentiles,
            color=colours[row.series],
            linestyle=CACHE_STYLE.get(row.condition, "-"),
            marker="o",
            markerfacecolor="none" if row.readahead == "off" else colours[row.series],
            label=(
                f"{_label(row.series)}, {row.readers} reader(s), {row.condition}, "
                f"readahead {row.readahead}"
            ),
        )
    ax.set_xscale("log")
    ax.set_xlabel("Latency of one random single-image read (microseconds)")
    ax.set_ylabel("Percentile of reads (%)")
    ax.set_title(
        f"Random single-image read latency, {size}x{size}, {int(single['cutoff'].max()):,} images"
        "\n(median over timed runs of each percentile)",
        fontsize="medium",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _speed_vs_npy_figure(stats, size):
    """Each method's median time as a multiple of the npy baseline, largest cutoff."""
    base = _with_condition(baseline(stats))
    base = base[base["cutoff"] == base["cutoff"].max()]
    kinds = [("store", "n/a", "store")] + [
        ("read", condition, f"{condition} read")
        for cache in ("cold", "warm")
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
        ax.bar(positions + offset, ratios, width, label=title)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(positions, [_label(s) for s in series_list], rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("Median time relative to npy (x, log scale; 1 = raw bytes)")
    reads = base[base["operation"] == "read"]
    what = f" ({_readahead_text(reads)})" if len(reads) else ""
    ax.set_title(
        f"Cost over the raw-bytes baseline, {size}x{size}, {int(base['cutoff'].max()):,} images"
        f"\nreads: the whole store by one reader{what}",
        fontsize="medium",
    )
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _disk_figure(disk):
    """Grouped bars: one group per cutoff, one bar per method (the article's stacked bars
    drew each method on top of the previous one). Smallest image size only."""
    size = int(disk["image_size"].min())
    disk = disk[disk["image_size"] == size]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    series_list = sorted(disk["series"].unique())
    cutoffs = sorted(disk["cutoff"].unique())
    offsets, width = _bar_offsets(len(series_list))
    positions = np.arange(len(cutoffs))
    colours = _colours(disk)
    for offset, series in zip(offsets, series_list, strict=True):
        by_cutoff = disk[disk["series"] == series].set_index("cutoff")["bytes_on_disk"]
        heights = [by_cutoff.get(c, np.nan) / 1e6 for c in cutoffs]
        ax.bar(
            positions + offset,
            heights,
            width,
            label=_label(series),
            color=colours[series],
        )
    ax.set_xticks(positions, [f"{c:,}" for c in cutoffs])
    ax.set_yscale("log")
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Disk usage (MB, allocated blocks, log scale)")
    ax.set_title(f"Disk usage per store, {size}x{size} images")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _disk_by_size_figure(disk):
    """Bytes on disk per image vs image size (largest cutoff of each size), with raw bytes."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    largest = disk.loc[disk.groupby(["series", "image_size"])["cutoff"].idxmax()]
    colours = _colours(disk)
    for series, points in largest.groupby("series", sort=True):
        points = points.sort_values("image_size")
        ax.plot(
            points["image_size"],
            points["bytes_per_image"],
            marker="o",
            color=colours[series],
            label=_label(series),
        )
    sizes = np.array(sorted(disk["image_size"].unique()))
    ax.plot(sizes, sizes**2 * 3, color="black", linestyle=":", label="raw pixels (HxWx3)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{s}x{s}" for s in sizes])
    ax.set_xlabel("Image size (pixels)")
    ax.set_ylabel("Bytes on disk per image (allocated, log scale)")
    ax.set_title("Disk bytes per image by image size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_all(
    stats: pd.DataFrame,
    disk: pd.DataFrame,
    out_dir: Path,
    *,
    formats: list[str],
    dpi: int,
    spread: str,
) -> list[Path]:
    """Write every figure into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    caches = [c for c in ("cold", "warm") if c in set(stats["cache"])]
    figures = {
        "store_time": ([("store", "n/a")], "Time to store images"),
        "read_time": ([("read", c) for c in caches], "Time to read images back"),
        "store_and_read_time": (
            [("store", "n/a")] + [("read", c) for c in caches],
            "Store and read time",
        ),
    }
    written = []
    for size in sorted(stats["image_size"].unique()):
        at_size = stats[stats["image_size"] == size]
        colours = _colours(stats)
        base = baseline(at_size)
        note = _note(base, spread)
        for stem, (selections, title) in figures.items():
            for log in (False, True):
                fig = _time_figure(
                    base, selections, f"{title}, {size}x{size}", log, spread, note, colours
                )
                scale = "loglog" if log else "linear"
                written += _save(fig, out_dir, f"{stem}_{scale}_{size}px", formats, dpi)
        reads = at_size[at_size["operation"] == "read"]
        written += _save(
            _throughput_figure(reads, size, colours), out_dir, f"throughput_{size}px", formats, dpi
        )
        if "npy" in set(at_size["method"]):
            written += _save(
                _speed_vs_npy_figure(at_size, size), out_dir, f"speed_vs_npy_{size}px", formats, dpi
            )
        single = reads[reads["read_pattern"] == "random_single"]
        if len(single):
            written += _save(
                _latency_figure(single, size, colours),
                out_dir,
                f"latency_random_single_{size}px",
                formats,
                dpi,
            )
    written += _save(_disk_figure(disk), out_dir, "disk_usage", formats, dpi)
    written += _save(_disk_by_size_figure(disk), out_dir, "disk_per_image_by_size", formats, dpi)
    return written
