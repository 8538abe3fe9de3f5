"""Matplotlib figures from the aggregated statistics (median with spread over repeats)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

LABELS = {"png": "PNG files", "lmdb": "LMDB", "hdf5": "HDF5", "npy": "npy (baseline)"}
CACHE_STYLE = {"n/a": "-", "cold": "-", "warm": "--"}
MARKERS = {"store": "o", "read": "s"}


def _label(method: str) -> str:
    return LABELS.get(method, method)


def _spread(points: pd.DataFrame, spread: str) -> np.ndarray:
    low, high = ("min_s", "max_s") if spread == "range" else ("q25_s", "q75_s")
    return np.vstack([points["median_s"] - points[low], points[high] - points["median_s"]])


def _save(fig, out_dir: Path, stem: str, formats: list[str], dpi: int) -> list[Path]:
    written = []
    for extension in formats:
        path = out_dir / f"{stem}.{extension}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def _time_figure(
    stats: pd.DataFrame,
    selections: list[tuple[str, str]],
    title: str,
    log: bool,
    spread: str,
    repeats_note: str,
):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = {m: f"C{i}" for i, m in enumerate(sorted(stats["method"].unique()))}
    for method in sorted(stats["method"].unique()):
        for operation, cache in selections:
            points = stats[
                (stats["method"] == method)
                & (stats["operation"] == operation)
                & (stats["cache"] == cache)
            ].sort_values("cutoff")
            if points.empty:
                continue
            what = operation if cache == "n/a" else f"{operation}, {cache}"
            ax.errorbar(
                points["cutoff"],
                points["median_s"],
                yerr=_spread(points, spread),
                color=colours[method],
                linestyle=CACHE_STYLE.get(cache, "-"),
                marker=MARKERS.get(operation, "o"),
                markersize=4,
                capsize=3,
                label=f"{_label(method)} ({what})",
            )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Time (seconds)")
    ax.set_title(f"{title}{' (log-log)' if log else ''}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.text(0.01, 0.01, repeats_note, fontsize="x-small", alpha=0.7)
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
    spread_name = "min-max" if spread == "range" else "interquartile range"
    note = f"Median over {int(stats['n'].max())} repeat(s); bars: {spread_name}."
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
    for stem, (selections, title) in figures.items():
        for log in (False, True):
            fig = _time_figure(stats, selections, title, log, spread, note)
            written += _save(fig, out_dir, f"{stem}_{'loglog' if log else 'linear'}", formats, dpi)
    written += _save(_throughput_figure(stats, caches), out_dir, "throughput", formats, dpi)
    written += _save(_disk_figure(disk), out_dir, "disk_usage", formats, dpi)
    return written


def _throughput_figure(stats: pd.DataFrame, caches: list[str]):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = {m: f"C{i}" for i, m in enumerate(sorted(stats["method"].unique()))}
    for method in sorted(stats["method"].unique()):
        for operation, cache in [("store", "n/a")] + [("read", c) for c in caches]:
            points = stats[
                (stats["method"] == method)
                & (stats["operation"] == operation)
                & (stats["cache"] == cache)
            ].sort_values("cutoff")
            if points.empty:
                continue
            what = operation if cache == "n/a" else f"{operation}, {cache}"
            ax.plot(
                points["cutoff"],
                points["median_images_per_s"],
                color=colours[method],
                linestyle=CACHE_STYLE.get(cache, "-"),
                marker=MARKERS.get(operation, "o"),
                markersize=4,
                label=f"{_label(method)} ({what})",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Throughput (images per second)")
    ax.set_title("Throughput (median over repeats, log-log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _disk_figure(disk: pd.DataFrame):
    """Grouped bars: one group per cutoff, one bar per method (the article's stacked bars
    drew each method on top of the previous one)."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    methods = sorted(disk["method"].unique())
    cutoffs = sorted(disk["cutoff"].unique())
    width = 0.8 / len(methods)
    positions = np.arange(len(cutoffs))
    for index, method in enumerate(methods):
        by_cutoff = disk[disk["method"] == method].set_index("cutoff")["bytes_on_disk"]
        heights = [by_cutoff.get(c, np.nan) / 1e6 for c in cutoffs]
        ax.bar(
            positions + (index - (len(methods) - 1) / 2) * width,
            heights,
            width,
            label=_label(method),
            color=f"C{index}",
        )
    ax.set_xticks(positions, [f"{c:,}" for c in cutoffs])
    ax.set_yscale("log")
    ax.set_xlabel("Number of images")
    ax.set_ylabel("Disk usage (MB, allocated blocks, log scale)")
    ax.set_title("Disk usage per store")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig
