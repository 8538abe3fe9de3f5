"""The registry of figures: one entry per figure, read by the plan (which files the plot
jobs make), the plotting (how each is drawn) and the report (category and caption).

A new figure is one ``Figure`` here, the function that draws it in a family module of
``plotting`` (named in ``plotting.DRAWERS`` by ``draw``), its caption in
``workflow/report/figures/`` and its test. Per-size figures are written once per image
size, as ``<name>_<size>px``; the others once per run. This module imports nothing heavy:
the Snakemake process reads it to know the figures in advance.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from imgbench.experiment import vocabulary


def _always(config: dict) -> bool:
    return True


def _has_reads(config: dict) -> bool:
    return bool(config["read_patterns"]) and bool(config["read_cache"])


def _has_whole_reads(config: dict) -> bool:
    return vocabulary.WHOLE in config["read_patterns"] and bool(config["read_cache"])


def _has_baseline(config: dict) -> bool:
    """The baseline and something to compare with it."""
    return vocabulary.BASELINE in config["methods"] and len(config["methods"]) > 1


def _has_random_single(config: dict) -> bool:
    return vocabulary.RANDOM_SINGLE in config["read_patterns"] and any(
        cutoff >= config["random_reads"] for cutoff in config["cutoffs"]
    )


# The encoding of each method's images when a variant names none (its ``OPTIONS``;
# tests/unit/test_codecs_figure.py checks these against the methods, which this registry
# does not import: the plot jobs' code, and so what reruns them, would take in every
# method module and its format library); a method not named keeps no encoded images.
DEFAULT_ENCODINGS = {"png": "png", "wds": "png", "parquet": "png", "lmdb": "raw", "arrow": "raw"}
RAW = "raw"


def encoded_variants(config: dict) -> list[tuple[str, str]]:
    """The (method, variant) pairs of ``config`` whose images are encoded: an
    ``encoding`` other than raw (given, or the method's default), or, for a method whose
    default is not known here, a ``codec`` option."""
    found = []
    for method in config["methods"]:
        named = (config.get("variants") or {}).get(method) or {"default": {}}
        for variant, options in named.items():
            options = options or {}
            encoding = options.get("encoding") or DEFAULT_ENCODINGS.get(method)
            if encoding is None and options.get("codec"):
                encoding = "given by its codec"
            if encoding not in (None, RAW):
                found.append((method, variant))
    return found


def _compares_codecs(config: dict) -> bool:
    """Two or more encoded series (``encoded_variants``), read warm."""
    warm = vocabulary.WARM in config["read_cache"] and bool(config["read_patterns"])
    return warm and len(encoded_variants(config)) >= 2


def _many_clients(pattern: str, cache: str) -> Callable[[dict], bool]:
    """Whether a config measures ``pattern`` in ``cache`` by client processes: it names
    clients (``{nodes, per_node}``), the pattern and the cache state, and for a pattern
    of ``random_reads`` single reads a store large enough for them."""

    def applies(config: dict) -> bool:
        clients = [c for c in config.get("clients") or [] if c["nodes"] * c["per_node"] >= 1]
        if not clients or pattern not in config["read_patterns"]:
            return False
        if cache not in config["read_cache"]:
            return False
        if vocabulary.uses(pattern, "random_reads"):
            return any(cutoff >= config["random_reads"] for cutoff in config["cutoffs"])
        return True

    return applies


@dataclass(frozen=True)
class Figure:
    """One figure: its file name, where the report files it, the file of its caption
    (reStructuredText in ``workflow/report/``), when a config asks for it and which
    drawing of ``plotting.DRAWERS`` draws it (with ``options``)."""

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
    """Store, read and store-and-read time, each on linear and on log-log axes (the two
    share a caption)."""
    kinds = {
        "store_time": ("store", _always),
        "read_time": ("read", _has_whole_reads),
        "store_and_read_time": ("store_and_read", _has_whole_reads),
    }
    return [
        Figure(
            name=f"{name}_{scale}",
            category="Time",
            caption=f"figures/{name}.rst",
            draw="time",
            applies=applies,
            options={"what": what, "log": scale == "loglog"},
        )
        for name, (what, applies) in kinds.items()
        for scale in ("linear", "loglog")
    ]


def _clients_figures() -> list[Figure]:
    """Throughput against clients: one figure per request pattern and cache state (and
    image size), drawn only where the config measures reads by client processes."""
    return [
        Figure(
            name=f"clients_{pattern}_{cache}",
            category="Many clients",
            caption="figures/clients.rst",
            draw="clients",
            applies=_many_clients(pattern, cache),
            options={"pattern": pattern, "cache": cache},
        )
        for pattern in vocabulary.REQUEST_PATTERNS
        for cache in vocabulary.CACHE_STATES
    ]


FIGURES: tuple[Figure, ...] = (
    *_time_figures(),
    Figure(
        name="throughput",
        category="Throughput",
        caption="figures/throughput.rst",
        draw="throughput",
        applies=_has_reads,
    ),
    Figure(
        name="speed_vs_npy",
        category="Time",
        caption="figures/speed_vs_npy.rst",
        draw="speed_vs_baseline",
        applies=_has_baseline,
    ),
    Figure(
        name="latency_random_single",
        category="Latency",
        caption="figures/latency_random_single.rst",
        draw="latency",
        applies=_has_random_single,
    ),
    Figure(
        name="disk_usage",
        category="Disk usage",
        caption="figures/disk_usage.rst",
        draw="disk_usage",
        per_size=False,
    ),
    Figure(
        name="disk_per_image_by_size",
        category="Disk usage",
        caption="figures/disk_per_image_by_size.rst",
        draw="bytes_per_image",
        per_size=False,
    ),
    *_clients_figures(),
    Figure(
        name="codecs",
        category="Codecs",
        caption="figures/codecs.rst",
        draw="codecs",
        applies=_compares_codecs,
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
    """Rule callable: one field (``category``, ``caption``: its file...) of the figure a
    plot job draws, for ``report()`` and ``params``."""

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
