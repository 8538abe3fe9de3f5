"""Matplotlib figures from the aggregated statistics (medians, with error bars from the
interval of the median over the stores, the min-max range or the interquartile range).

Which figures exist, when a config asks for them and which drawing each uses is the
registry ``figures.FIGURES``; its ``draw`` names a function of ``DRAWERS`` here, one per
figure family module: ``times`` (store and read time), ``speed`` (against the baseline),
``throughput``, ``latency``, ``clients`` (reads by many client processes), ``codecs``
(bytes against read speed of the encoded series) and ``disk_usage``. They share ``style``
(colours, line styles, ticks), ``labels`` (what series and conditions are called) and
``grid`` (panels and legends). Every drawing function takes the statistics and disk
tables, the image size (None for a figure per run), ``plot.spread`` and the ``Labels`` of
the run, and returns a figure. Reads that differ in readahead or in how cold was made are
drawn apart and labelled, never merged into one line or bar.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# SVG figures keep their text as text (legends can be searched and selected), not paths.
matplotlib.rcParams["svg.fonttype"] = "none"

import pandas as pd  # noqa: E402

from imgbench.report import figures  # noqa: E402
from imgbench.report.plotting import (  # noqa: E402
    clients,
    codecs,
    disk_usage,
    latency,
    speed,
    style,
    throughput,
    times,
)
from imgbench.report.plotting.labels import Labels  # noqa: E402

# figures.Figure.draw -> the function that draws that figure.
DRAWERS: dict[str, Callable] = {
    "time": times.time_figure,
    "throughput": throughput.throughput_figure,
    "speed_vs_baseline": speed.speed_vs_baseline_figure,
    "latency": latency.latency_figure,
    "disk_usage": disk_usage.disk_usage_figure,
    "bytes_per_image": disk_usage.bytes_per_image_figure,
    "clients": clients.clients_figure,
    "codecs": codecs.codecs_figure,
}


def draw(stem: str, stats: pd.DataFrame, disk: pd.DataFrame, *, spread: str):
    """The matplotlib figure the registry (``figures.FIGURES``) names ``stem``, its series
    called by the descriptions the tables carry."""
    figure, size = figures.find(stem)
    return DRAWERS[figure.draw](
        stats,
        disk,
        size=size,
        spread=spread,
        labels=Labels.of_tables(stats, disk),
        **figure.options,
    )


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
        fig = draw(stem, stats, disk, spread=spread)
        written += style.save(fig, out_dir, stem, formats, dpi)
    return written
