"""The registry of figures: one entry per figure, read by the plan (which files the plot
jobs make), the plotting (how each is drawn) and the report (category and caption).

A new figure is one ``Figure`` here, with the function that draws it in ``plotting``
(named by ``draw``) and its test. Per-size figures are written once per image size, as
``<name>_<size>px``; the others once per run. This module imports nothing heavy: the
Snakemake process reads it to know the figures in advance.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# Parts of captions shared by several figures (reStructuredText, rendered in the report).
_POINTS = (
    "Each point is the median of the store medians of one (method, cutoff): each point "
    "has ``repeats`` stores, and every store job repeats its operation (``inner_repeats``) "
    "and gives the median of its timings. "
)
_BARS = (
    "Error bars are set by ``plot.spread``: ``ci``, the interval of the median from order "
    "statistics of the stores' medians, the independent units (95 % with 6 or more stores, "
    "else their min-max, 75 % for 3; none for a point of one store; the note under the "
    "figure says which); ``range``, min-max of the timings; "
    "``iqr``, the interquartile range. Where two intervals overlap, the figure does not "
    "show that one is faster. "
)
_CACHE = (
    "**Cold**: before each timed read the store's pages were dropped from the page cache "
    "(``cold: fadvise``) or all caches were (``cold: drop_caches``), so the read comes from "
    "the device. **Warm**: the store was read once, untimed, just before, so it is in the "
    "page cache. "
)
_STORE = (
    "A store is the time to write the images and labels (``write_seconds``) plus the flush "
    "that makes them durable (``flush_seconds``, ``fsync``). "
)
_WHOLE = (
    "The read is the whole store, front to back, streamed in chunks of ``chunk_bytes`` by "
    "one reader through the method's own code (pattern ``whole``). "
)


def _always(config: dict) -> bool:
    return True


def _has_reads(config: dict) -> bool:
    return bool(config["read_patterns"]) and bool(config["read_cache"])


def _has_whole_reads(config: dict) -> bool:
    return "whole" in config["read_patterns"] and bool(config["read_cache"])


def _has_npy(config: dict) -> bool:
    return "npy" in config["methods"] and len(config["methods"]) > 1


def _has_random_single(config: dict) -> bool:
    return "random_single" in config["read_patterns"] and any(
        cutoff >= config["random_reads"] for cutoff in config["cutoffs"]
    )


@dataclass(frozen=True)
class Figure:
    """One figure: its file name, where the report files it, what its caption says, when
    a config asks for it and which ``plotting`` function draws it (with ``options``)."""

    name: str
    category: str
    caption: str
    draw: str
    per_size: bool = True
    applies: Callable[[dict], bool] = _always
    options: dict = field(default_factory=dict)

    def stems(self, config: dict) -> list[str]:
        if not self.applies(config):
            return []
        if not self.per_size:
            return [self.name]
        return [f"{self.name}_{size}px" for size in config["image_sizes"]]


def _time_figures() -> list[Figure]:
    kinds = {
        "store_time": ("store", _always, "Time to store N images. " + _STORE),
        "read_time": (
            "read",
            _has_whole_reads,
            "Time to read a store of N images back. " + _WHOLE + _CACHE,
        ),
        "store_and_read_time": (
            "store_and_read",
            _has_whole_reads,
            "Store and whole-store read times in one figure. " + _STORE + _WHOLE + _CACHE,
        ),
    }
    figures = []
    for name, (what, applies, text) in kinds.items():
        for scale, scale_text in (
            ("linear", "Linear axes. "),
            ("loglog", "Log-log axes: equal slopes mean equal scaling with N. "),
        ):
            figures.append(
                Figure(
                    name=f"{name}_{scale}",
                    category="Time",
                    caption=text + _POINTS + _BARS + scale_text,
                    draw="time_figure",
                    applies=applies,
                    options={"what": what, "log": scale == "loglog"},
                )
            )
    return figures


FIGURES: tuple[Figure, ...] = (
    *_time_figures(),
    Figure(
        name="throughput",
        category="Throughput",
        caption=(
            "Images read per second (median), one panel per access pattern (and readahead "
            "setting) and number of reader processes, one colour per method; solid lines (or "
            "plain bars) are cold reads, dashed lines (hatched bars) warm ones. Patterns: "
            "``whole`` streams the store; ``whole_array`` reads it into one array; "
            "``sequential`` and ``shuffled`` are epochs in minibatches of ``batch_size`` "
            "through the method's reader; ``random_single`` reads ``random_reads`` single "
            "images at random positions. " + _CACHE
        ),
        draw="throughput_figure",
        applies=_has_reads,
    ),
    Figure(
        name="speed_vs_npy",
        category="Time",
        caption=(
            "Each method's median time at the largest cutoff as a multiple of the raw npy "
            "baseline's (1 = as fast as raw bytes), for the store and the whole-store reads. "
            + _WHOLE
            + _CACHE
        ),
        draw="speed_vs_npy_figure",
        applies=_has_npy,
    ),
    Figure(
        name="latency_random_single",
        category="Latency",
        caption=(
            "Latency of single-image reads at random positions (``random_single``) in the "
            "largest store: the 50th, 95th and 99th percentiles (median over the timed runs), "
            "on a tail scale (p99 as far above p90 as p90 above p0), one panel per number of "
            "reader processes. Hollow markers: readahead off (the reader tells the kernel its "
            "access is random). " + _CACHE
        ),
        draw="latency_figure",
        applies=_has_random_single,
    ),
    Figure(
        name="disk_usage",
        category="Disk usage",
        caption=(
            "Bytes each store takes on disk (allocated blocks, like ``du``) per number of "
            "images, one bar per method, one panel per image size; log scale."
        ),
        draw="disk_figure",
        per_size=False,
    ),
    Figure(
        name="disk_per_image_by_size",
        category="Disk usage",
        caption=(
            "Bytes on disk per image at the largest cutoff of each image size, against the "
            "raw pixels (height x width x 3 bytes): a bar per method with the raw bytes as a "
            "line across for one image size, a line per method for several (a method on "
            "another's line says so in the legend). More than raw is the format's overhead, "
            "less is compression."
        ),
        draw="disk_by_size_figure",
        per_size=False,
    ),
)

_STEM = re.compile(r"^(?P<name>.+?)(?:_(?P<size>\d+)px)?$")


def stems(config: dict) -> list[str]:
    """Every figure file stem a run of ``config`` makes, in registry order."""
    return [stem for figure in FIGURES for stem in figure.stems(config)]


def find(stem: str) -> tuple[Figure, int | None]:
    """The figure a file stem names, and its image size (None for a figure per run)."""
    match = _STEM.match(stem)
    name, size = match["name"], match["size"]
    for figure in FIGURES:
        if figure.name == name and figure.per_size == (size is not None):
            return figure, None if size is None else int(size)
    raise ValueError(f"no figure is named {stem!r}; figures: {[f.name for f in FIGURES]}")


class ReportField:
    """Rule callable: one field (``category``, ``caption``...) of the figure a plot job
    draws, for ``report()`` and ``params``."""

    def __init__(self, field_name: str):
        self.field_name = field_name

    def __call__(self, wildcards, **_) -> str:
        figure, size = find(wildcards.figure)
        if self.field_name == "subcategory":
            return "all sizes" if size is None else f"{size}x{size}"
        return getattr(figure, self.field_name)


def report_labels(wildcards, **_) -> dict[str, str]:
    """Rule callable: the columns that name a figure in the report's table of files."""
    figure, size = find(wildcards.figure)
    return {
        "figure": figure.name.replace("_", " "),
        "image size": "all sizes" if size is None else f"{size}x{size}",
    }
