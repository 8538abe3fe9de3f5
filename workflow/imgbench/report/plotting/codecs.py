"""Bytes against read speed of the encoded series (``codec`` other than none): one figure
per image size, at the largest cutoff with two or more encoded series read warm; x the
bytes on disk per image, y the images/s of a warm read by one reader (the shuffled read
where measured, else the whole-store read: ``results.codecs.main_kind``), both on log
axes; one marker per series, coloured by encoding family, shaped by codec, hollow where
lossy; error bars the range of bytes over the stores and the interval of the median
images/s over the stores; a panel per method where several keep encoded images."""

from __future__ import annotations

import math
import textwrap

import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from imgbench.report.plotting import grid, style
from imgbench.report.plotting.labels import Labels
from imgbench.results.codecs import kind_label, main_kind, read_kinds, warm_single_reads
from imgbench.results.load import NO_CODEC, codec_column
from imgbench.results.verdicts import is_lossy

# Inches: one panel.
PANEL_SIZE = (5.2, 4.2)
PANEL_COLUMNS = 3  # panels per row at most
TITLE_CHARACTERS_PER_PANEL = 62  # of a medium-size title over one panel
# Colour per encoding family (the first word of ``encoding``); others grey.
FAMILY_COLOURS = {
    "png": "C0",
    "jpeg": "C1",
    "webp": "C2",
    "qoi": "C3",
    "jpegxl": "C4",
    "avif": "C5",
}
OTHER_COLOUR = "C7"
# Marker and its size per codec; others a plus. Series of two codecs at the same point
# (the same bytes and speed) nest: the smaller marker is drawn inside the larger one.
CODEC_MARKERS = {
    "pillow": ("o", 13),
    "imagecodecs": ("s", 11),
    "opencv": ("^", 11),
    "simplejpeg": ("D", 8),
    "spng": ("v", 9),
}
OTHER_MARKER = ("P", 9)
MARKER_SIZE = 9  # of the legend's colour entries


def family(encoding: str) -> str:
    """``jpeg`` of ``jpeg q95 4:4:4``: the encoding's first word."""
    return str(encoding).split()[0] if str(encoding).strip() else str(encoding)


def detail(encoding: str) -> str:
    """``q95 4:4:4`` of ``jpeg q95 4:4:4``: the encoding's settings, if any."""
    return " ".join(str(encoding).split()[1:])


def codec_points(stats: pd.DataFrame, disk: pd.DataFrame, size: int):
    """The encoded series' points of one image size: (points, kind) with one line per
    series (its warm single-reader read of ``kind``, with ``bytes``, ``bytes_low``,
    ``bytes_high`` per image and ``codec``), at the largest cutoff where two or more
    encoded series have that read and a store on disk; (empty, None) without."""
    stats = stats.assign(codec=codec_column(stats))
    reads = warm_single_reads(stats[(stats["image_size"] == size) & (stats["codec"] != NO_CODEC)])
    kind = main_kind(read_kinds(reads))
    if kind is None:
        return reads.iloc[0:0], None
    reads = reads[(reads["read_pattern"] == kind[0]) & (reads["readahead"] == kind[1])]
    here = disk[disk["image_size"] == size]
    per_image = here.assign(
        bytes=here["bytes_on_disk"] / here["cutoff"],
        bytes_low=here["min_bytes_on_disk"] / here["cutoff"],
        bytes_high=here["max_bytes_on_disk"] / here["cutoff"],
    )[["series", "cutoff", "bytes", "bytes_low", "bytes_high"]]
    joined = reads.merge(per_image, on=["series", "cutoff"], how="inner")
    counts = joined.groupby("cutoff")["series"].nunique()
    counts = counts[counts >= 2]
    if counts.empty:
        return joined.iloc[0:0], kind
    return joined[joined["cutoff"] == counts.index.max()], kind


def _errors(points: pd.DataFrame, median: str, low: str, high: str) -> np.ndarray:
    """Error bars (below, above) from interval columns; 0 where a point has none."""
    below = (points[median] - points[low]).clip(lower=0).fillna(0.0)
    above = (points[high] - points[median]).clip(lower=0).fillna(0.0)
    return np.vstack([below.to_numpy(dtype=float), above.to_numpy(dtype=float)])


def _darker(colour: str) -> tuple[float, float, float]:
    red, green, blue = matplotlib.colors.to_rgb(colour)
    return (red * 0.55, green * 0.55, blue * 0.55)


def _annotation(point, shared: bool) -> str:
    """The text beside a marker: the encoding's settings (``q80``, ``lossless``), and
    the series where another of the panel has the same encoding and codec."""
    text = detail(point.encoding)
    if shared:
        text = f"{text}, {point.series}" if text else point.series
    return text


def _panel(ax, points: pd.DataFrame) -> None:
    shared = points.duplicated(["encoding", "codec"], keep=False)
    for point in points.itertuples():
        one = points[points["series"] == point.series]
        colour = FAMILY_COLOURS.get(family(point.encoding), OTHER_COLOUR)
        lossy = bool(is_lossy(one).any())
        marker, size = CODEC_MARKERS.get(point.codec, OTHER_MARKER)
        ax.errorbar(
            one["bytes"],
            one["median_images_per_s"],
            xerr=_errors(one, "bytes", "bytes_low", "bytes_high"),
            yerr=_errors(one, "median_images_per_s", "ci_images_per_s_low", "ci_images_per_s_high"),
            color=colour,
            marker=marker,
            markersize=size,
            # lossless filled with a darker rim (a smaller marker inside stays visible),
            # lossy hollow
            markerfacecolor="white" if lossy else colour,
            markeredgecolor=colour if lossy else _darker(colour),
            markeredgewidth=1.5 if lossy else 1.0,
            linestyle="none",
            capsize=3,
            elinewidth=1,
            zorder=3 + 20 / size,  # smaller markers over larger ones
        )
    # The settings beside the markers: each text once, by the topmost of its points (the
    # codecs of one encoding often lie together).
    texts = [_annotation(p, bool(s)) for p, s in zip(points.itertuples(), shared, strict=True)]
    placed = set()
    for text, point in sorted(
        zip(texts, points.itertuples(), strict=True), key=lambda t: -t[1].median_images_per_s
    ):
        if not text or text in placed:
            continue
        placed.add(text)
        ax.annotate(
            text,
            (point.bytes, point.median_images_per_s),
            xytext=(8, 5),
            textcoords="offset points",
            fontsize="x-small",
            color=FAMILY_COLOURS.get(family(point.encoding), OTHER_COLOUR),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.25)


def _widen(ax, values: pd.Series, lows: pd.Series, highs: pd.Series, axis: str) -> None:
    """Log limits a quarter decade beyond the points' bars (so markers and their text
    stay inside a panel whose points lie close together), ticked by ``_log_ticks``."""
    low = pd.concat([values, lows]).dropna()
    high = pd.concat([values, highs]).dropna()
    low, high = low[low > 0].min(), high[high > 0].max()
    if not (math.isfinite(low) and math.isfinite(high)):
        return
    limits = (low / 10**0.25, high * 10**0.4)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(*limits)
    _log_ticks(ax.xaxis if axis == "x" else ax.yaxis, limits, " B" if axis == "x" else "")


def _log_ticks(axis, limits: tuple[float, float], unit: str) -> None:
    """Labelled ticks at 1, 2 and 5 of each power of ten over up to two decades (1 and 3
    up to four, else the powers alone), as plain numbers with ``unit``; unlabelled ticks
    between."""
    decades = math.log10(limits[1] / limits[0])
    subs = (1.0, 2.0, 5.0) if decades <= 2 else (1.0, 3.0) if decades <= 4 else (1.0,)
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: style.plain(v, unit)))
    axis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=np.arange(2, 10)))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _handles(points: pd.DataFrame) -> list:
    """The legend: a header and an entry per encoding family (colour), per codec (shape)
    and per fill (lossless filled, lossy hollow)."""
    header = lambda text: plt.Line2D([], [], linestyle="none", label=text)  # noqa: E731
    families = sorted({family(e) for e in points["encoding"]}, key=_family_rank)
    handles = [header("encoding (colour)")]
    handles += [
        plt.Line2D(
            [],
            [],
            color=FAMILY_COLOURS.get(f, OTHER_COLOUR),
            marker="o",
            linestyle="none",
            markersize=MARKER_SIZE,
            label=f"  {f}",
        )
        for f in families
    ]
    handles.append(header("codec (shape)"))
    handles += [
        plt.Line2D(
            [],
            [],
            color="dimgrey",
            marker=CODEC_MARKERS.get(c, OTHER_MARKER)[0],
            linestyle="none",
            markersize=MARKER_SIZE,
            label=f"  {c}",
        )
        for c in sorted(points["codec"].unique(), key=_codec_rank)
    ]
    lossy = is_lossy(points)
    handles.append(header("fill"))
    kinds = [("lossless", False)] if (~lossy).any() else []
    kinds += [("lossy", True)] if lossy.any() else []
    handles += [
        plt.Line2D(
            [],
            [],
            color="dimgrey",
            marker="o",
            markerfacecolor="white" if hollow else "dimgrey",
            markeredgewidth=1.5,
            linestyle="none",
            markersize=MARKER_SIZE,
            label=f"  {text}",
        )
        for text, hollow in kinds
    ]
    return handles


def _family_rank(name: str) -> tuple[int, str]:
    order = list(FAMILY_COLOURS)
    return (order.index(name) if name in order else len(order), name)


def _codec_rank(name: str) -> tuple[int, str]:
    order = list(CODEC_MARKERS)
    return (order.index(name) if name in order else len(order), name)


def _interval_note(points: pd.DataFrame) -> str:
    levels = pd.to_numeric(points["ci_images_per_s_level"], errors="coerce").dropna()
    if levels.empty:
        return "one store: no error bars on images/s"
    return (
        f"error bars: bytes over the stores, images/s the interval of the median over the "
        f"stores (at least {levels.min():.0%})"
    )


def codecs_panels(points: pd.DataFrame, size: int, kind: tuple[str, str], labels: Labels):
    """A panel per method of ``points`` (``codec_points``): bytes per image against the
    warm read's images/s."""
    methods = sorted(points["method"].unique())
    columns = min(len(methods), PANEL_COLUMNS)
    rows = math.ceil(len(methods) / columns)
    handles = _handles(points)
    fig, axes = grid.panel_grid(rows, columns, PANEL_SIZE, handles)
    read = kind_label(kind, [kind])
    for index, method in enumerate(methods):
        ax = axes[index // columns][index % columns]
        _panel(ax, points[points["method"] == method].sort_values(["encoding", "codec"]))
        ax.set_title(labels.descriptions.get(method, method), fontsize="medium")
        if index % columns == 0:
            ax.set_ylabel(f"images/s, warm {read} read, 1 reader")
        if index // columns == rows - 1 or index + columns >= len(methods):
            ax.set_xlabel("bytes on disk per image")
    for index in range(len(methods), rows * columns):
        axes[index // columns][index % columns].axis("off")
    _widen(axes[0][0], points["bytes"], points["bytes_low"], points["bytes_high"], "x")
    _widen(
        axes[0][0],
        points["median_images_per_s"],
        points["ci_images_per_s_low"],
        points["ci_images_per_s_high"],
        "y",
    )
    grid.legend_beside(fig, handles)
    # wrapped to the panels' width: the legend beside them reaches up to the title
    width = TITLE_CHARACTERS_PER_PANEL * columns
    title = (
        f"Codecs, {size}x{size}, {int(points['cutoff'].iloc[0]):,} images: bytes per image "
        f"against warm {read} read speed, 1 reader (median; up and left is better)"
    )
    grid.title_over_panels(
        fig,
        textwrap.fill(title, width) + "\n" + textwrap.fill(_interval_note(points), width),
        fontsize="medium",
    )
    return fig


def _not_measured(size: int):
    """The figure's file when the run has fewer than two encoded series read warm."""
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        f"Codecs, {size}x{size}:\nfewer than two encoded series read warm by one reader",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    return fig


def codecs_figure(stats, disk, *, size, spread, labels: Labels):
    """Bytes per image against warm read images/s of the encoded series of one size."""
    points, kind = codec_points(stats, disk, size)
    if points.empty:
        return _not_measured(size)
    return codecs_panels(points, size, kind, labels)
