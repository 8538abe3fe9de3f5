"""Aggregation with pandas: tidy timings, statistics per point, disk usage, summary.

A point is one setting of every axis (method, variant, image size, operation, cache state
and eviction, read pattern, readahead, readers, cutoff); its statistics are over every
timed operation at that setting (all timed repetitions of all independent stores).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from . import stats as st
from . import vocabulary

POINT_KEYS = [
    "method",
    "variant",
    "image_size",
    "operation",
    "cache",
    "eviction",
    "read_pattern",
    "readahead",
    "readers",
]
GROUP_KEYS = [*POINT_KEYS, "cutoff"]
WHOLE = vocabulary.WHOLE
DEFAULT_BUSY = {"load_per_core": 1.0, "cpu_pressure_pct": 10.0}
PATTERN_ORDER = {name: rank for rank, name in enumerate(vocabulary.PATTERNS)}
SORT_KEYS = [
    "_order",
    "method",
    "variant",
    "image_size",
    "cutoff",
    "cache",
    "eviction",
    "read_pattern",
    "readahead",
    "readers",
    "repeat",
    "inner_repeat",
]
MEDIANS = [
    "write_seconds",
    "flush_seconds",
    "bytes_requested",
    "device_read_bytes",
    "disk_read_bytes",
    "cpu_seconds",
    "latency_p50_us",
    "latency_p95_us",
    "latency_p99_us",
    "latency_max_us",
]
MAXIMA = ["load_1min", "cpu_pressure_pct", "io_pressure_pct", "cpu_count"]


def series_name(method: str, variant: str) -> str:
    """Legend and table name: the method, with its variant unless it is ``default``."""
    return method if variant == "default" else f"{method}:{variant}"


def method_descriptions(frame: pd.DataFrame) -> dict[str, str]:
    """Each method's ``DESCRIPTION``, as the rows carry it into every table (column
    ``method_description``); the method's name where none was recorded."""
    described = {}
    if "method_description" in frame:
        given = frame[frame["method_description"].notna()]
        described = dict(zip(given["method"], given["method_description"], strict=True))
    return {method: str(described.get(method, method)) for method in sorted(set(frame["method"]))}


def series_encodings(frame: pd.DataFrame) -> dict[str, str]:
    """The encoding of each series' images (rows' ``encoding``, see ``encoding.describe``)
    for the methods that keep encoded images, i.e. where some series of the method is not
    raw pixels; nothing for the others, whose images are always raw."""
    if "encoding" not in frame or "series" not in frame:
        return {}
    given = frame[frame["encoding"].notna()]
    encoded = set(given.loc[given["encoding"] != "raw", "method"])
    chosen = given[given["method"].isin(encoded)]
    return dict(zip(chosen["series"], chosen["encoding"].astype(str), strict=True))


def series_label(
    series: str, descriptions: dict[str, str], encodings: dict[str, str] | None = None
) -> str:
    """A series (``method`` or ``method:variant``) by its method's description, the
    variant in brackets and the encoding of its images where the method has several:
    ``image files + labels.csv [jpeg95], jpeg q95``."""
    method, _, variant = series.partition(":")
    name = descriptions.get(method, method)
    label = f"{name} [{variant}]" if variant else name
    encoding = (encodings or {}).get(series)
    return f"{label}, {encoding}" if encoding else label


def methods_markdown(frame: pd.DataFrame) -> str:
    """What each method named in the tables is: its description, and (from tables that
    carry them) each series' encoding and whether it reads back exactly or lossy, with
    the store's PSNR."""
    descriptions = method_descriptions(frame)
    if "series" not in frame or "encoding" not in frame or frame["encoding"].isna().all():
        body = [[method, text] for method, text in descriptions.items()]
        return "## Methods\n\n" + markdown_table(["method", "description"], body)
    body = []
    for series, group in frame.groupby("series", sort=True):
        first = group.iloc[0]
        encoding = first["encoding"] if pd.notna(first["encoding"]) else "n/a"
        if first["lossy"] in (True, "True"):
            fidelity = (
                f"lossy: PSNR {first['psnr_db']:.1f} dB, worst image {first['psnr_min_db']:.1f} dB"
            )
        else:
            fidelity = "exact"
        body.append(
            [series, descriptions.get(first["method"], first["method"]), encoding, fidelity]
        )
    header = ["method", "description", "images stored as", "read back"]
    return "## Methods\n\n" + markdown_table(header, body)


def load_rows(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate the rows' CSVs into the tidy table (one row per timed operation)."""
    frames = [pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    if not frames:
        raise ValueError("no timing rows to aggregate")
    rows = pd.concat(frames, ignore_index=True)
    rows["_order"] = rows["operation"].map({"store": 0, "read": 1})
    rows = rows.sort_values(SORT_KEYS)
    return rows.drop(columns="_order").reset_index(drop=True)


def busy_thresholds(busy: dict | None) -> dict:
    """The configured thresholds, any left out at their defaults."""
    return {**DEFAULT_BUSY, **(busy or {})}


def busy_rows(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """Whether each timed operation ran on a busy machine: a 1-minute load above
    ``load_per_core`` x the host's cores, or CPU pressure above ``cpu_pressure_pct`` while
    the job ran fewer readers than cores (as many readers as cores cause pressure
    themselves). Unrecorded (NaN) load or pressure is not evidence of a busy machine."""
    busy = busy_thresholds(busy)
    load = rows["load_1min"] > busy["load_per_core"] * rows["cpu_count"]
    own = rows["readers"].fillna(1) >= rows["cpu_count"]
    pressure = (rows["cpu_pressure_pct"] > busy["cpu_pressure_pct"]) & ~own
    return (load | pressure).rename("busy")


def _intervals(rows: pd.DataFrame, column: str, prefix: str) -> pd.DataFrame:
    """Per point, the interval of the median of ``column``, at least as wide as each of:

    - the order-statistics interval of all its timings (as if all were independent);
    - the order-statistics interval of its stores' own medians (the stores are the
      independent units: timings of one store share its layout on disk, its process and
      its moment on the machine; in one default run a store's median lay outside the
      pooled interval for about half the points). With 3 stores that is their min–max,
      which covers the median of store medians with 75 %; 6 reach 95 %.

    ``{prefix}level`` is the coverage of the interval that set the width (the lower of the
    two where both did); ``{prefix}widened`` says the stores' interval widened it."""
    pooled = rows.groupby(GROUP_KEYS, dropna=False, sort=True)[column].apply(
        lambda values: tuple(st.median_interval(values))
    )
    frame = pd.DataFrame(pooled.tolist(), index=pooled.index, columns=["low", "high", "level"])
    per_store = rows.groupby([*GROUP_KEYS, "repeat"], dropna=False, sort=True)[column].median()
    by_point = per_store.groupby(level=list(range(len(GROUP_KEYS))), dropna=False)
    stores = by_point.apply(lambda values: tuple(st.median_interval(values)))
    stores = pd.DataFrame(stores.tolist(), index=stores.index, columns=["low", "high", "level"])
    stores = stores.reindex(frame.index)
    multi = by_point.size().reindex(frame.index) > 1
    lower = multi & (stores["low"] < frame["low"])
    higher = multi & (stores["high"] > frame["high"])
    widened = lower | higher
    frame[f"{prefix}low"] = frame["low"].where(~lower, stores["low"])
    frame[f"{prefix}high"] = frame["high"].where(~higher, stores["high"])
    frame[f"{prefix}level"] = frame["level"].where(~widened, stores["level"])
    frame[f"{prefix}widened"] = widened
    return frame[[f"{prefix}low", f"{prefix}high", f"{prefix}level", f"{prefix}widened"]]


def summarise(rows: pd.DataFrame, busy: dict | None = None) -> pd.DataFrame:
    """Per point: n, median with its 95 % order-statistics interval, min, max, quartiles,
    mean, std, CV; medians of images/s (with interval), of the write/flush split and of
    the device bytes; the highest load and pressure, and whether the point was busy."""
    rows = rows.assign(busy=busy_rows(rows, busy))
    grouped = rows.groupby(GROUP_KEYS, dropna=False, sort=True)
    seconds = grouped["seconds"]
    stats = pd.DataFrame(
        {
            "n": seconds.count(),
            "stores": grouped["repeat"].nunique(),
            "inner_repeats": grouped["inner_repeat"].max(),
            "median_s": seconds.median(),
            "min_s": seconds.min(),
            "max_s": seconds.max(),
            "q25_s": seconds.quantile(0.25),
            "q75_s": seconds.quantile(0.75),
            "mean_s": seconds.mean(),
            "std_s": seconds.std(ddof=1),
            "median_images_per_s": grouped["images_per_s"].median(),
            "median_bytes_on_disk": grouped["bytes_on_disk"].median(),
            "median_cached_fraction": grouped["cached_fraction"].median(),
            "max_cached_fraction": grouped["cached_fraction"].max(),
        }
    )
    stats = stats.join(_intervals(rows, "seconds", "ci_"))
    stats = stats.join(_intervals(rows, "images_per_s", "ci_images_per_s_"))
    store_medians = rows.groupby([*GROUP_KEYS, "repeat"], dropna=False, sort=True)["seconds"]
    by_point = store_medians.median().groupby(level=list(range(len(GROUP_KEYS))), dropna=False)
    stats["store_spread_rel"] = (by_point.max() - by_point.min()) / stats["median_s"]
    for column in MEDIANS:
        stats[f"median_{column}"] = grouped[column].median()
    for column in MAXIMA:
        stats[f"max_{column}"] = grouped[column].max()
    stats["busy"] = grouped["busy"].any()
    stats["iqr_s"] = stats["q75_s"] - stats["q25_s"]
    stats["cv"] = stats["std_s"] / stats["mean_s"]
    below, above = stats["median_s"] - stats["ci_low"], stats["ci_high"] - stats["median_s"]
    stats["ci_halfwidth_rel"] = pd.concat([below, above], axis=1).max(axis=1) / stats["median_s"]
    requested = stats["median_bytes_requested"].where(stats["median_bytes_requested"] > 0)
    stats["device_bytes_per_requested"] = stats["median_device_read_bytes"] / requested
    stats = stats.reset_index()
    stats["series"] = [
        series_name(m, v) for m, v in zip(stats["method"], stats["variant"], strict=True)
    ]
    stats["method_description"] = stats["method"].map(method_descriptions(rows))
    _encodings_of(stats, rows)
    return stats


def _encodings_of(table: pd.DataFrame, rows: pd.DataFrame) -> None:
    """The rows' ``encoding``, ``lossy`` and the median store PSNR per (method, variant),
    as columns of ``table`` (empty for rows written before encodings existed)."""
    keys = ["method", "variant"]
    columns = {"encoding": "first", "lossy": "first", "psnr_db": "median", "psnr_min_db": "min"}
    present = {c: how for c, how in columns.items() if c in rows}
    by_series = rows.groupby(keys, sort=False).agg(present) if present else None
    for column in columns:
        if by_series is not None and column in by_series:
            looked_up = [
                by_series[column].get((m, v))
                for m, v in zip(table["method"], table["variant"], strict=True)
            ]
            table[column] = looked_up
        else:
            table[column] = float("nan")


def whole_store_reads(frame: pd.DataFrame) -> pd.Series:
    """Which rows of ``frame`` (rows or statistics) are the whole-store read of
    ``vocabulary.WHOLE_STORE_READ``: only those with ``WHOLE_STORE_READAHEAD`` where it
    was measured with several readahead settings."""
    whole = frame["operation"] == "read"
    for column, value in vocabulary.WHOLE_STORE_READ.items():
        whole &= frame[column] == value
    preferred = frame["readahead"] == vocabulary.WHOLE_STORE_READAHEAD
    if (whole & preferred).any():
        whole &= preferred
    return whole


def baseline(stats: pd.DataFrame) -> pd.DataFrame:
    """Stores, and the whole-store read (``vocabulary.WHOLE_STORE_READ``): the rows of the
    per-cutoff tables, the time figures and the speed-vs-npy figure."""
    return stats[(stats["operation"] == "store") | whole_store_reads(stats)]


def disk_usage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Bytes each store takes per method, variant, image size and cutoff (median, min and
    max over the stores' timed operations)."""
    stores = rows[rows["operation"] == "store"]
    table = (
        stores.groupby(["method", "variant", "image_size", "cutoff"], sort=True)
        .agg(
            bytes_on_disk=("bytes_on_disk", "median"),
            min_bytes_on_disk=("bytes_on_disk", "min"),
            max_bytes_on_disk=("bytes_on_disk", "max"),
            bytes_apparent=("bytes_apparent", "median"),
            n_files=("n_files", "median"),
        )
        .reset_index()
    )
    table["bytes_per_image"] = table["bytes_on_disk"] / table["cutoff"]
    table["raw_bytes_per_image"] = vocabulary.image_bytes(table["image_size"])
    table["overhead_vs_raw"] = table["bytes_per_image"] / table["raw_bytes_per_image"]
    table["human_on_disk"] = table["bytes_on_disk"].map(human_bytes)
    for column in (
        "bytes_on_disk",
        "min_bytes_on_disk",
        "max_bytes_on_disk",
        "bytes_apparent",
        "n_files",
    ):
        table[column] = table[column].round().astype("int64")
    table["series"] = [
        series_name(m, v) for m, v in zip(table["method"], table["variant"], strict=True)
    ]
    table["method_description"] = table["method"].map(method_descriptions(rows))
    _encodings_of(table, rows)
    return table


def human_bytes(count: float) -> str:
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _bytes_cell(count: int) -> str:
    return f"{human_bytes(count)} ({count:,} B)"


def disk_usage_markdown(table: pd.DataFrame) -> str:
    out = ["# Disk usage per store (allocated blocks, like `du`; median over repeats)\n"]
    out.append("\n" + methods_markdown(table))
    for size, by_size in table.groupby("image_size", sort=True):
        cutoffs = sorted(by_size["cutoff"].unique())
        body = []
        for series, group in by_size.groupby("series", sort=True):
            by_cutoff = group.set_index("cutoff")["bytes_on_disk"]
            body.append(
                [series]
                + [_bytes_cell(by_cutoff[c]) if c in by_cutoff.index else "" for c in cutoffs]
            )
        header = [f"{size}x{size} method \\ images"] + [f"{c:,}" for c in cutoffs]
        out.append(f"\n## {size}x{size} images\n\n" + markdown_table(header, body))
    out.append("\n" + bytes_per_image_markdown(table))
    return "".join(out)


def bytes_per_image_markdown(table: pd.DataFrame) -> str:
    """Bytes on disk per image by image size, at each size's largest cutoff."""
    out = ["## Bytes on disk per image (largest cutoff of each size)\n\n"]
    largest = table.loc[table.groupby(["series", "image_size"])["cutoff"].idxmax()]
    sizes = sorted(table["image_size"].unique())
    body = []
    for series, group in largest.groupby("series", sort=True):
        per_size = group.set_index("image_size")
        body.append(
            [series]
            + [
                f"{human_bytes(per_size.at[s, 'bytes_per_image'])} "
                f"({per_size.at[s, 'overhead_vs_raw']:.2f}x raw)"
                if s in per_size.index
                else ""
                for s in sizes
            ]
        )
    out.append(markdown_table(["method"] + [f"{s}x{s}" for s in sizes], body))
    return "".join(out)


_LABEL_PARTS = (
    ("method", "{}"),
    ("variant", "/{}"),
    ("operation", " {}"),
    ("image_size", " {}px"),
    ("cutoff", " cutoff={}"),
    ("repeat", " repeat={}"),
    ("inner_repeat", " inner={}"),
    ("cache", " {}"),
    ("eviction", " {}"),
    ("read_pattern", " {}"),
    ("readahead", " readahead={}"),
    ("readers", " readers={}"),
)


def _measurement_label(row: pd.Series) -> str:
    """Every coordinate of one measurement that the rows carry, e.g.
    ``png/default read 32px cutoff=10 repeat=1 inner=2 cold fadvise whole readers=1``."""
    is_store = row.get("operation") == "store"
    return "".join(
        template.format(row[name])
        for name, template in _LABEL_PARTS
        if name in row.index
        and not pd.isna(row[name])
        and str(row[name]) not in ("", "n/a", "none")
        and not (is_store and name == "readers")
    )


def overlapping_timings(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of measurements whose timed intervals overlapped on the same host."""
    clashes = []
    labels = rows.apply(_measurement_label, axis=1) if len(rows) else pd.Series(dtype=str)
    labelled = rows.assign(label=labels)
    for _, group in labelled.groupby("host"):
        ordered = group.sort_values("t_start_unix")
        latest_end, latest_label = -math.inf, None
        for start, end, label in zip(
            ordered["t_start_unix"], ordered["t_end_unix"], ordered["label"], strict=True
        ):
            if start < latest_end:
                clashes.append((latest_label, label))
            if end > latest_end:
                latest_end, latest_label = end, label
    return clashes


def _fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.4g} s"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


def _fmt_number(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:{spec}}{unit}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or pd.isna(reference) or reference == 0:
        return "n/a"
    if pd.isna(value):
        return "n/a"
    return f"{value / reference:.3g}x"


def _names(candidates) -> str:
    """``A and B``, ``A, B and C``."""
    names = [c.name for c in candidates]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _verdict_text(
    verdict: st.Verdict, title: str, word: str, describe: Callable, others: list[st.Candidate]
) -> str:
    """``fastest store: **npy** (...)`` for a clear winner (``word`` may be empty), else
    ``store: no clear difference between npy and png``. No winner is named among fewer
    than two series, nor from a single timing (an interval of coverage 0, a point), which
    may lie clear of the others by chance."""
    if not others:
        return f"{title}: only {verdict.best.name} measured"
    single = [c for c in [verdict.best, *others] if c.level == 0]
    if verdict.clear and single:
        return (
            f"{title}: best median {verdict.best.name}, but {_names(single)} had one "
            "timing (no interval), so no clear winner"
        )
    if verdict.clear:
        lead = f"{word} {title}" if word else title
        return f"{lead}: **{verdict.best.name}** ({describe(verdict.best)})"
    return f"{title}: no clear difference between {_names([verdict.best, *verdict.tied])}"


def _others(verdict: st.Verdict, candidates: list[st.Candidate]) -> list[st.Candidate]:
    return [c for c in candidates if c is not verdict.best]


def _time_candidates(points: pd.DataFrame) -> list[st.Candidate]:
    return [
        st.Candidate(r.series, r.median_s, r.ci_low, r.ci_high, r.ci_level)
        for r in points.itertuples()
    ]


def _describe_time(c: st.Candidate) -> str:
    return f"{_fmt_seconds(c.value)}, {c.level:.1%} interval {c.low:.4g}–{c.high:.4g} s"


def _throughput_candidates(points: pd.DataFrame) -> list[st.Candidate]:
    return [
        st.Candidate(
            r.series,
            r.median_images_per_s,
            r.ci_images_per_s_low,
            r.ci_images_per_s_high,
            r.ci_images_per_s_level,
        )
        for r in points.itertuples()
    ]


def _describe_throughput(c: st.Candidate) -> str:
    return f"{c.value:,.0f} images/s, {c.level:.1%} interval {c.low:,.0f}–{c.high:,.0f}"


def _disk_candidates(disk: pd.DataFrame) -> list[st.Candidate]:
    return [
        st.Candidate(r.series, r.bytes_on_disk, r.min_bytes_on_disk, r.max_bytes_on_disk)
        for r in disk.itertuples()
    ]


def _describe_disk(c: st.Candidate) -> str:
    if c.low == c.high:
        return human_bytes(c.value)
    return f"{human_bytes(c.value)}, {human_bytes(c.low)}–{human_bytes(c.high)} over stores"


def time_verdict(points: pd.DataFrame, title: str) -> str:
    """The fastest series among ``points`` (one per series), or the tie."""
    candidates = _time_candidates(points)
    verdict = st.separate(candidates)
    return _verdict_text(verdict, title, "fastest", _describe_time, _others(verdict, candidates))


def throughput_verdict(points: pd.DataFrame, title: str) -> str:
    """The series with the most images/s among ``points``, or the tie."""
    candidates = _throughput_candidates(points)
    verdict = st.separate(candidates, higher_is_better=True)
    return _verdict_text(verdict, title, "", _describe_throughput, _others(verdict, candidates))


def disk_verdict(disk: pd.DataFrame) -> str:
    """Smallest on disk. Series whose stores all took the same bytes as the smallest are
    named together; overlapping bytes (min..max over stores) are no clear difference; a
    clear smallest is given with its margin over the next, since bytes on disk are exact
    counts and a table rounding both to ``5.9 MiB`` would hide it."""
    candidates = _disk_candidates(disk)
    verdict = st.separate(candidates)
    best, others = verdict.best, _others(verdict, candidates)
    if not others:
        return f"on disk: only {best.name} measured"
    if verdict.tied and all(c.low == c.high == best.value for c in verdict.tied + (best,)):
        return (
            f"smallest on disk: {_names([best, *verdict.tied])}, "
            f"the same {human_bytes(best.value)} each"
        )
    if verdict.tied:
        return f"on disk: no clear difference between {_names([best, *verdict.tied])}"
    runner_up = min(others, key=lambda c: c.value)
    more = runner_up.value - best.value
    return (
        f"smallest on disk: **{best.name}** ({_describe_disk(best)}; next {runner_up.name}, "
        f"{human_bytes(more)} or {more / best.value:.1%} more)"
    )


def _columns(base: pd.DataFrame) -> list[tuple[tuple[str, str, str], str]]:
    """The timed columns of the per-cutoff tables, ``((operation, cache, eviction), title)``:
    store, cold read, warm read; a cold read names its eviction when several were used."""
    columns = []
    for operation, cache, title in (
        ("store", "n/a", "store"),
        ("read", "cold", "cold read"),
        ("read", "warm", "warm read"),
    ):
        here = base[(base["operation"] == operation) & (base["cache"] == cache)]
        evictions = sorted(here["eviction"].unique())
        for eviction in evictions:
            named = f"{title} ({eviction})" if len(evictions) > 1 else title
            columns.append(((operation, cache, eviction), named))
    return columns


def _keyed(frame: pd.DataFrame, keys: list[str]) -> dict:
    """Row (as a named tuple) by the values of ``keys``; the keys must be unique."""
    return {tuple(getattr(r, k) for k in keys): r for r in frame.itertuples()}


TIME_KEYS = ["series", "image_size", "cutoff", "operation", "cache", "eviction"]


def _time_cells(points: dict, key: tuple, with_flush: bool) -> list[str]:
    rest = key[1:]
    value = getattr(points.get(key), "median_s", None)
    cells = [
        _fmt_seconds(value),
        _ratio(value, getattr(points.get(("png", *rest)), "median_s", None)),
        _ratio(value, getattr(points.get(("npy", *rest)), "median_s", None)),
    ]
    if with_flush:
        cells.append(_fmt_seconds(getattr(points.get(key), "median_flush_seconds", None)))
    return cells


def _point_table(here, columns, points, disk_by, size, cutoff) -> str:
    header = ["method"]
    for (operation, _, _), title in columns:
        header += [title, "vs png", "vs npy"] + (["of which flush"] if operation == "store" else [])
    header += ["on disk", "vs png", "vs npy"]
    body = []
    for series in sorted(here["series"].unique()):
        cells = [series]
        for (operation, cache, eviction), _ in columns:
            key = (series, size, cutoff, operation, cache, eviction)
            cells += _time_cells(points, key, operation == "store")
        on_disk = getattr(disk_by.get((series, size, cutoff)), "bytes_on_disk", None)
        cells += [
            human_bytes(on_disk) if on_disk is not None else "n/a",
            _ratio(on_disk, getattr(disk_by.get(("png", size, cutoff)), "bytes_on_disk", None)),
            _ratio(on_disk, getattr(disk_by.get(("npy", size, cutoff)), "bytes_on_disk", None)),
        ]
        body.append(cells)
    return markdown_table(header, body)


def _point_tables(stats, disk, out) -> None:
    base = baseline(stats)
    columns = _columns(base)
    points = _keyed(base, TIME_KEYS)
    disk_by = _keyed(disk, ["series", "image_size", "cutoff"])
    for size in sorted(base["image_size"].unique()):
        for cutoff in sorted(base.loc[base["image_size"] == size, "cutoff"].unique()):
            out.append(f"\n## {cutoff:,} image(s) of {size}x{size}\n\n")
            here = base[(base["image_size"] == size) & (base["cutoff"] == cutoff)]
            verdicts = []
            for (operation, cache, eviction), title in columns:
                point = here[
                    (here["operation"] == operation)
                    & (here["cache"] == cache)
                    & (here["eviction"] == eviction)
                ]
                if len(point):
                    verdicts.append(time_verdict(point, title))
            sizes = disk[(disk["cutoff"] == cutoff) & (disk["image_size"] == size)]
            if len(sizes):
                verdicts.append(disk_verdict(sizes))
            out.append("; ".join(verdicts) + ".\n\n")
            out.append(_point_table(here, columns, points, disk_by, size, cutoff))


def _cold_warm(stats, out) -> None:
    reads = baseline(stats)
    reads = reads[reads["operation"] == "read"]
    cold = reads[reads["cache"] == "cold"].sort_values(
        ["series", "image_size", "cutoff", "eviction"]
    )
    warm = _keyed(reads[reads["cache"] == "warm"], ["series", "image_size", "cutoff"])
    out.append("\n## Cold / warm read ratio (whole store, one reader)\n\n")
    if cold.empty or not warm:
        out.append("Not measured (read_cache lacks cold or warm).\n")
        return
    several = cold["eviction"].nunique() > 1
    body = []
    for r in cold.itertuples():
        warm_s = getattr(warm.get((r.series, r.image_size, r.cutoff)), "median_s", None)
        body.append(
            [r.series, f"{r.image_size}x{r.image_size}", f"{r.cutoff:,}"]
            + ([r.eviction] if several else [])
            + [_fmt_seconds(r.median_s), _fmt_seconds(warm_s), _ratio(r.median_s, warm_s)]
        )
    header = ["method", "size", "images"] + (["eviction"] if several else [])
    out.append(markdown_table(header + ["cold", "warm", "cold/warm"], body))


READ_AXES = ["read_pattern", "readahead", "readers", "cache", "eviction"]


def _read_label(key: dict, shown: set[str]) -> str:
    """``shuffled, readahead off, 2 reader(s), cold (fadvise)``; readahead and eviction
    only when they vary (``shown``)."""
    parts = [str(key["read_pattern"])]
    if "readahead" in shown:
        parts.append(f"readahead {key['readahead']}")
    parts.append(f"{key['readers']} reader(s)")
    cache = str(key["cache"])
    if "eviction" in shown and cache == "cold":
        cache += f" ({key['eviction']})"
    parts.append(cache)
    return ", ".join(parts)


def _fixed_note(reads: pd.DataFrame, shown: set[str]) -> str:
    """What every column shares, for the axes the column labels leave out."""
    notes = []
    if "readahead" not in shown:
        notes.append(f"readahead {', '.join(sorted(map(str, reads['readahead'].unique())))}")
    cold = reads.loc[reads["cache"] == "cold", "eviction"]
    if "eviction" not in shown and len(cold):
        notes.append(f"cold reads evicted with {', '.join(sorted(cold.unique()))}")
    return f"Every column: {'; '.join(notes)}.\n\n" if notes else ""


def _read_keys(here: pd.DataFrame) -> list[dict]:
    keys = here[READ_AXES].drop_duplicates()
    keys = keys.assign(_p=keys["read_pattern"].map(PATTERN_ORDER).fillna(len(PATTERN_ORDER)))
    keys = keys.sort_values(["_p", *READ_AXES]).drop(columns="_p")
    return keys.to_dict("records")


def _select(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in key.items():
        mask &= frame[column] == value
    return frame[mask]


def _shown_axes(reads: pd.DataFrame) -> set[str]:
    shown = set()
    if reads["readahead"].nunique() > 1:
        shown.add("readahead")
    if reads.loc[reads["cache"] == "cold", "eviction"].nunique() > 1:
        shown.add("eviction")
    return shown


def _latency_table(single: pd.DataFrame, shown: set[str]) -> str:
    extra = [a for a in ("readahead", "eviction") if a in shown]
    return markdown_table(
        ["method", *extra, "readers", "cache", "p50", "p95", "p99"],
        [
            [r.series, *(getattr(r, a) for a in extra), r.readers, r.cache]
            + [
                f"{r.median_latency_p50_us:.1f}",
                f"{r.median_latency_p95_us:.1f}",
                f"{r.median_latency_p99_us:.1f}",
            ]
            for r in single.itertuples()
        ],
    )


def _patterns(stats, out) -> None:
    reads = stats[stats["operation"] == "read"]
    if whole_store_reads(reads).all():  # the per-cutoff tables show them all
        return
    out.append("\n## Access patterns and parallel readers (largest cutoff of each size)\n\n")
    out.append(
        "Throughput in images per second (median; higher is better). A method is named "
        "fastest only when its interval lies clear of every other's.\n\n"
    )
    for size in sorted(reads["image_size"].unique()):
        here = reads[reads["image_size"] == size]
        here = here[here["cutoff"] == here["cutoff"].max()]
        shown = _shown_axes(here)
        keys = _read_keys(here)
        labels = [_read_label(key, shown) for key in keys]
        body = []
        for series in sorted(here["series"].unique()):
            mine = here[here["series"] == series]
            cells = [series]
            for key in keys:
                match = _select(mine, key)
                cells.append(f"{match['median_images_per_s'].iloc[0]:,.0f}" if len(match) else "")
            body.append(cells)
        out.append(f"### {size}x{size}, {int(here['cutoff'].max()):,} images\n\n")
        out.append(_fixed_note(here, shown))
        out.append(markdown_table(["method", *labels], body))
        verdicts = [
            f"- {throughput_verdict(_select(here, key), label)}\n"
            for key, label in zip(keys, labels, strict=True)
        ]
        out.append("\nFastest:\n\n" + "".join(verdicts))
        single = here[here["read_pattern"] == vocabulary.RANDOM_SINGLE]
        if len(single):
            out.append("\nRandom single-image latency (microseconds, median over timed runs):\n\n")
            out.append(_latency_table(single, shown))


BASELINE_SERIES = "npy"


def _vs_baseline(value: float, baseline_value: float | None, unit: str) -> str:
    if baseline_value is None or pd.isna(baseline_value) or baseline_value == 0:
        return "n/a"
    return f"{value / baseline_value:.3g}x npy's {unit}"


def _fastest_cell(points: pd.DataFrame) -> str:
    """The fastest series among ``points`` with its median and interval, or the tie."""
    candidates = _time_candidates(points)
    verdict = st.separate(candidates)
    best = verdict.best
    single = [c for c in candidates if c.level == 0]
    if len(candidates) == 1:
        return f"only {best.name} measured"
    if verdict.clear and not single:
        return f"**{best.name}** {_fmt_seconds(best.value)} [{best.low:.4g}, {best.high:.4g}]"
    tied = list({c.name: c for c in [best, *verdict.tied, *single]}.values())
    if len(tied) > 4:
        named = ", ".join(c.name for c in tied[:4]) + f" and {len(tied) - 4} more"
    else:
        named = _names(tied)
    return f"no clear winner: {named} (best median {best.name} {_fmt_seconds(best.value)})"


def _is_lossy(frame: pd.DataFrame) -> pd.Series:
    if "lossy" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["lossy"].isin([True, "True"])


def _smallest_cell(disk: pd.DataFrame) -> str:
    """The smallest lossless series (a lossy one is no answer to "how do I store my
    images" unless the reader accepts the loss), and a smaller lossy one after it."""
    lossy = _is_lossy(disk)
    exact = disk[~lossy] if (~lossy).any() else disk
    candidates = _disk_candidates(exact)
    verdict = st.separate(candidates)
    names = [verdict.best, *verdict.tied]
    text = f"**{_names(names)}**" if len(names) < len(candidates) else _names(names)
    text += f" {human_bytes(verdict.best.value / disk['cutoff'].iloc[0])}/image"
    smaller = disk[lossy & (disk["bytes_on_disk"] < verdict.best.value)]
    if len(smaller) and (~lossy).any():
        least = smaller.loc[smaller["bytes_on_disk"].idxmin()]
        per_image = human_bytes(least["bytes_on_disk"] / least["cutoff"])
        text += f" (lossy: {least['series']} {per_image}/image)"
    return text


def format_choice_markdown(stats: pd.DataFrame, disk: pd.DataFrame) -> str:
    """Which format for which access pattern: for each read (pattern, cache state,
    readers, readahead) at each size's largest cutoff, the fastest series by time with its
    interval (or the tie), and the smallest on disk among the series measured there,
    each against the raw npy baseline."""
    reads = stats[stats["operation"] == "read"]
    if reads.empty:
        return ""
    out = [
        "\n## Which format for which access pattern (largest cutoff of each size)\n\n",
        "Fastest: the series whose interval of the median time lies clear of every "
        "other's, with its median and interval in seconds (else the series that tie). "
        "Smallest: bytes on disk per image (allocated blocks) of the series that read back "
        "exactly, and a smaller lossy one where there is one. Each against the raw npy "
        "baseline at the same point.\n",
    ]
    for size in sorted(reads["image_size"].unique()):
        here = reads[reads["image_size"] == size]
        cutoff = here["cutoff"].max()
        here = here[here["cutoff"] == cutoff]
        sized = disk[(disk["image_size"] == size) & (disk["cutoff"] == cutoff)]
        shown = _shown_axes(here)
        body = []
        for key in _read_keys(here):
            points = _select(here, key)
            fastest = _time_candidates(points)
            best = min(fastest, key=lambda c: c.value)
            base = points.loc[points["series"] == BASELINE_SERIES, "median_s"]
            on_disk = sized[sized["series"].isin(points["series"])]
            base_disk = sized.loc[sized["series"] == BASELINE_SERIES, "bytes_on_disk"]
            exact = on_disk[~_is_lossy(on_disk)] if (~_is_lossy(on_disk)).any() else on_disk
            smallest = exact["bytes_on_disk"].min() if len(exact) else None
            body.append(
                [
                    _read_label(key, shown),
                    _fastest_cell(points),
                    _vs_baseline(best.value, base.iloc[0] if len(base) else None, "time"),
                    _smallest_cell(on_disk) if len(on_disk) else "n/a",
                    _vs_baseline(smallest, base_disk.iloc[0] if len(base_disk) else None, "bytes")
                    if smallest is not None
                    else "n/a",
                ]
            )
        out.append(f"\n### {size}x{size}, {int(cutoff):,} images\n\n")
        out.append(_fixed_note(here, shown).replace("Every column", "Every read"))
        header = ["read", "fastest (median [interval])", "vs npy", "smallest on disk", "vs npy"]
        out.append(markdown_table(header, body))
    return "".join(out)


def _point_name(r) -> str:
    """``store`` or ``cold read (fadvise), shuffled, readahead off, 2 reader(s)``."""
    if r.operation == "store":
        return "store"
    cache = f"{r.cache} read" + (f" ({r.eviction})" if r.cache == "cold" else "")
    return f"{cache}, {r.read_pattern}, readahead {r.readahead}, {r.readers} reader(s)"


def _point_cells(r) -> list[str]:
    return [r.series, f"{r.image_size}x{r.image_size}", f"{r.cutoff:,}", _point_name(r)]


POINT_HEADER = ["method", "size", "images", "point"]


def _interval_check(stats, threshold: float, out) -> None:
    out.append(
        f"\n## Interval check (95 % interval of the median within ±{threshold * 100:g} %)\n\n"
        "Intervals are distribution-free, from order statistics: the sorted timings at ranks "
        "j and n+1-j, the narrowest such pair that covers the median with at least 95 %. "
        "Below n = 6 no pair reaches 95 %: the interval is min–max, with its true coverage. "
        "Each interval is then widened, where needed, to the same interval of the point's "
        "store medians (the stores are the independent units: with 3 stores their min–max, "
        "covering with 75 %; 6 stores reach 95 %), and then carries that coverage "
        "(`ci_widened` in timings_stats.csv).\n\n"
    )
    full = stats["ci_level"] >= st.LEVEL
    narrow = stats["ci_halfwidth_rel"] <= threshold
    out.append(
        f"{int((full & narrow).sum())} of {len(stats)} points have a 95 % interval within "
        f"±{threshold * 100:g} % of the median.\n"
    )
    wide = stats[~narrow]
    if len(wide):
        out.append(f"\n{len(wide)} point(s) reach further; read their medians with care:\n\n")
        out.append(
            markdown_table(
                [*POINT_HEADER, "n", "median", "interval", "coverage", "reach"],
                [
                    _point_cells(r)
                    + [
                        r.n,
                        _fmt_seconds(r.median_s),
                        f"{r.ci_low:.4g}–{r.ci_high:.4g} s",
                        f"{r.ci_level:.1%}",
                        f"±{r.ci_halfwidth_rel:.1%}",
                    ]
                    for r in wide.itertuples()
                ],
            )
        )
    widened = stats[stats["ci_widened"]]
    if len(widened):
        out.append(
            f"\n{len(widened)} of these {len(stats)} intervals were widened to the interval "
            "of their store medians: a store's own median lay outside the interval of all "
            "timings, so between fresh stores the median moves more than within one (raise "
            "repeats for more stores; more repetitions inside a job do not help).\n"
        )
    few = stats[~full]
    if len(few):
        out.append(
            f"\n{len(few)} point(s) have an interval covering the median with less than "
            "95 % (min–max of too few values: raise inner_repeats so a job's timings number "
            "at least 6, and repeats so a point has at least 6 stores):\n\n"
        )
        single = few[few["n"] <= 1]
        if len(single):
            out.append(f"- {len(single)} point(s): one timing each, so no interval at all\n")
        several = few[few["n"] > 1]
        for (widened, level), group in several.groupby(["ci_widened", "ci_level"], sort=True):
            unit = "stores" if widened else "timings"
            out.append(f"- {len(group)} point(s): min–max of their {unit}, {level:.1%}\n")


def _all_missing(frame: pd.DataFrame, column: str) -> bool:
    return bool(frame[column].isna().all())


def _quiet_machine(stats, rows, busy: dict, out) -> None:
    out.append("\n## Quiet machine\n\n")
    out.append(
        "A timed operation counts as busy when the 1-minute load average exceeded "
        f"{busy['load_per_core']:g} x the host's cores, or CPU pressure (PSI some avg10) "
        f"exceeded {busy['cpu_pressure_pct']:g} % while the job ran fewer readers than cores "
        "(as many readers as cores cause pressure themselves); a point is busy when any of "
        "its timed operations was.\n\n"
    )
    if _all_missing(rows, "load_1min") and _all_missing(rows, "cpu_pressure_pct"):
        out.append("No load average or pressure was recorded: the check could not run.\n")
    elif _all_missing(rows, "cpu_pressure_pct"):
        out.append("CPU pressure was not recorded (no PSI): only the load average was checked.\n")
    flagged = stats[stats["busy"]]
    if flagged.empty:
        out.append(
            "No point was measured on a busy machine (highest load "
            f"{_fmt_number(rows['load_1min'].max(), '.2f')}, highest CPU pressure "
            f"{_fmt_number(rows['cpu_pressure_pct'].max(), '.1f', ' %')}).\n"
        )
    else:
        out.append(f"{len(flagged)} of {len(stats)} points were measured on a busy machine:\n\n")
        out.append(
            markdown_table(
                [*POINT_HEADER, "max load", "cores", "max CPU pressure"],
                [
                    _point_cells(r)
                    + [
                        _fmt_number(r.max_load_1min, ".2f"),
                        _fmt_number(r.max_cpu_count, ".0f"),
                        _fmt_number(r.max_cpu_pressure_pct, ".1f", " %"),
                    ]
                    for r in flagged.itertuples()
                ],
            )
        )
    out.append(
        "\nI/O pressure is recorded (highest "
        f"{_fmt_number(rows['io_pressure_pct'].max(), '.1f', ' %')}) but not "
        "used for the flag: our own cold reads cause it.\n"
    )


def _what_cold_meant(rows, out) -> None:
    reads = rows[rows["operation"] == "read"]
    cold = reads[reads["cache"] == "cold"]
    counts = cold["eviction"].value_counts().sort_index()
    modes = ", ".join(f"{mode} ({count} timed reads)" for mode, count in counts.items())
    out.append(
        f"What cold meant: the store's pages were evicted before the clock with {modes}; "
        f"cold reads started with at most {_fmt_pct(cold['cached_fraction'].max())} of the "
        f"store in the page cache (median {_fmt_pct(cold['cached_fraction'].median())}).\n"
    )
    warm = reads[reads["cache"] == "warm"]
    if len(warm):
        out.append(
            "Warm reads started with at least "
            f"{_fmt_pct(warm['cached_fraction'].min())} of the store in the page cache.\n"
        )


def _device_bytes(stats, rows, out) -> None:
    cold = stats[(stats["operation"] == "read") & (stats["cache"] == "cold")]
    if cold.empty:
        return
    out.append("\n## Bytes from the device (cold reads, largest cutoff of each size)\n\n")
    _what_cold_meant(rows, out)
    out.append(
        "\nDevice: bytes the reader processes read from the storage device in the timed "
        "region (/proc/self/io, summed over readers); requested: the pixel bytes the read "
        "asked for. Medians over timed runs. Above 1x the device delivered more than was "
        "asked for (readahead, metadata, page granularity).\n"
    )
    whole_device = not _all_missing(cold, "median_disk_read_bytes")
    for size in sorted(cold["image_size"].unique()):
        here = cold[cold["image_size"] == size]
        here = here[here["cutoff"] == here["cutoff"].max()]
        several = here["eviction"].nunique() > 1
        header = ["method", "pattern", "readahead", "readers"] + (["eviction"] if several else [])
        header += ["device", "requested", "device / requested", "device / on disk (whole)"]
        header += ["block device (all)"] if whole_device else []
        here = here.assign(_p=here["read_pattern"].map(PATTERN_ORDER))
        body = []
        for r in here.sort_values(["series", "_p", "readahead", "readers"]).itertuples():
            on_disk = r.median_bytes_on_disk if r.read_pattern == WHOLE else None
            body.append(
                [r.series, r.read_pattern, r.readahead, r.readers]
                + ([r.eviction] if several else [])
                + [
                    human_bytes(r.median_device_read_bytes),
                    human_bytes(r.median_bytes_requested),
                    _ratio(r.median_device_read_bytes, r.median_bytes_requested),
                    _ratio(r.median_device_read_bytes, on_disk) if on_disk else "",
                ]
                + ([human_bytes(r.median_disk_read_bytes)] if whole_device else [])
            )
        out.append(f"\n### {size}x{size}, {int(here['cutoff'].max()):,} images\n\n")
        out.append(markdown_table(header, body))


def _ram_bytes(environments: dict) -> float | None:
    sizes = [e.get("ram_bytes") for e in environments.values() if e.get("ram_bytes")]
    return float(min(sizes)) if sizes else None


def _store_vs_memory(stats, disk, environments, out) -> None:
    """Whole-store reads of stores at least half the machine's memory: how much of the
    store was cached before the read and how much came from the device."""
    ram = _ram_bytes(environments)
    reads = stats[(stats["operation"] == "read") & (stats["read_pattern"] == WHOLE)]
    if ram is None or reads.empty:
        return
    on_disk = _keyed(disk, ["series", "image_size", "cutoff"])
    body = []
    for r in reads.sort_values(["image_size", "cutoff", "series", "cache"]).itertuples():
        store = on_disk.get((r.series, r.image_size, r.cutoff))
        if store is None or store.bytes_on_disk < ram / 2:
            continue
        body.append(
            [
                r.series,
                f"{r.image_size}x{r.image_size}",
                f"{r.cutoff:,}",
                human_bytes(store.bytes_on_disk),
                f"{store.bytes_on_disk / ram:.2f}",
                r.cache,
                _fmt_pct(r.median_cached_fraction),
                human_bytes(r.median_device_read_bytes),
                _fmt_seconds(r.median_s),
                f"{r.median_images_per_s:,.0f}",
            ]
        )
    if not body:
        return
    out.append("\n## Stores against memory (whole-store reads)\n\n")
    out.append(
        f"Stores of at least half this machine's memory ({human_bytes(ram)}). A warm read "
        "of a store larger than the page cache can keep finds only part of it cached (the "
        "share before the read is given) and reads the rest from the device; a cold read "
        "of such a store comes from the device whatever the eviction.\n\n"
    )
    header = ["method", "size", "images", "on disk", "store / RAM", "cache", "cached before"]
    out.append(markdown_table(header + ["from device", "time", "images/s"], body))


def _hygiene(rows, out) -> None:
    out.append("\n## Measurement hygiene\n\n")
    clashes = overlapping_timings(rows)
    if clashes:
        out.append(
            f"**{len(clashes)} timed operations overlapped on the same host**; the figures "
            "may be distorted (run with the default profile, or `--resources timing_slot=1`):\n\n"
        )
        out += [f"- {first} / {second}\n" for first, second in clashes[:20]]
        out.append("\n")
    else:
        out.append("No two timed operations overlapped on the same host.\n")
    stores = rows[rows["operation"] == "store"]
    if len(stores):
        counts = stores["fsync"].astype(str).value_counts().sort_index()
        strategies = ", ".join(f"{name} ({count} timed stores)" for name, count in counts.items())
        write_share = (stores["write_seconds"] / stores["seconds"]).median()
        flush_share = (stores["flush_seconds"] / stores["seconds"]).median()
        out.append(
            f"Stores made durable with (fsync): {strategies}. Median share of store time: "
            f"writing {_fmt_pct(write_share)}, flushing {_fmt_pct(flush_share)}.\n"
        )
    out.append("GC disabled during timed regions.\n")


def _environment(environments, out) -> None:
    out.append("\n## Environment\n\n")
    for env_id, record in sorted(environments.items()):
        out.append(
            f"- `{env_id}`: {record.get('host')}, {record.get('cpu_model')} "
            f"({record.get('cpu_count')} cores), "
            f"{human_bytes(record.get('ram_bytes') or float('nan'))} RAM, "
            f"{record.get('os')} {record.get('kernel')}, store on {record.get('store_fs_type')} "
            f"at {record.get('store_mount')}, Python {record.get('python')}, "
            f"commit {record.get('git_commit')}\n"
        )


def _introduction(rows, stats) -> str:
    n_low, n_high = int(stats["n"].min()), int(stats["n"].max())
    n_text = f"{n_low}" if n_low == n_high else f"{n_low}–{n_high}"
    return (
        f"{len(rows)} timed operations: {int(rows['repeat'].nunique())} independent "
        f"store(s) per point, each timed up to {int(rows['inner_repeat'].max())} time(s) in "
        f"its job; n = {n_text} per point. Times are medians in seconds (lower is better); "
        "ratios are a method's median divided by the png or npy median at the same point. "
        "Each median carries a distribution-free interval from order statistics (95 % where "
        "n >= 6, else min–max with its true coverage, as written). A method is named fastest "
        "only when its interval lies clear of every other's; otherwise the summary says there "
        "is no clear difference. Tables per cutoff show stores and whole-store reads by one "
        "reader (the article's experiment).\n"
    )


def summary_markdown(
    rows: pd.DataFrame,
    stats: pd.DataFrame,
    disk: pd.DataFrame,
    environments: dict,
    interval_threshold: float,
    busy: dict | None = None,
    memory: pd.DataFrame | None = None,
) -> str:
    """The short report: winners or ties per point, ratios to png and npy, patterns, device
    bytes, memory, interval check, quiet-machine check, hygiene, environment."""
    out = ["# Image storage benchmark: summary\n\n", _introduction(rows, stats)]
    out.append("\n" + methods_markdown(stats))
    out.append(format_choice_markdown(stats, disk))
    _point_tables(stats, disk, out)
    _cold_warm(stats, out)
    _patterns(stats, out)
    _device_bytes(stats, rows, out)
    _store_vs_memory(stats, disk, environments, out)
    if memory is not None and len(memory):
        out.append("\n" + memory_markdown(memory))
    if disk["image_size"].nunique() > 1 or disk["variant"].nunique() > 1:
        out.append("\n" + bytes_per_image_markdown(disk))
    _interval_check(stats, interval_threshold, out)
    _quiet_machine(stats, rows, busy_thresholds(busy), out)
    _hygiene(rows, out)
    _environment(environments, out)
    return "".join(out)


def _join(record: dict, key: str, value) -> None:
    """Set ``record[key]`` to ``value``, or to the list of the distinct values when jobs
    of one environment reported it differently."""
    if key not in record:
        record[key] = value
        return
    values = record[key] if isinstance(record[key], list) else [record[key]]
    if value not in values:
        record[key] = [*values, value]


def load_environments(paths: Iterable[Path]) -> dict[str, dict]:
    """Distinct provenance records keyed by env_id, each joining what its jobs reported
    of their methods (``provenance``): ``methods`` maps every method run there to the
    versions of its packages and C libraries, which also stand at the top level under
    their own keys (``pillow``, ``zlib``, ``lmdb``, ``lmdb_c``, ``h5py``, ``hdf5_c``...).
    A version jobs of one environment reported differently is the list of the values."""
    environments: dict[str, dict] = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        if "methods" not in record:  # written before methods reported their versions
            environments.setdefault(record["env_id"], record)
            continue
        joined = environments.setdefault(record["env_id"], {**record, "methods": {}})
        for method, versions in record["methods"].items():
            mine = joined["methods"].setdefault(method, {})
            for key, value in versions.items():
                _join(mine, key, value)
                _join(joined, key, value)
    return environments


# --- memory -----------------------------------------------------------------------------

_BENCHMARK_NAME = re.compile(
    r"(?P<operation>store|read)/(?P<method>[^/]+)/(?P<variant>[^/]+)/(?P<image_size>\d+)px/"
    r"(?P<cutoff>\d+)/repeat(?P<repeat>\d+)"
    rf"(?:_(?P<cache>{'|'.join(vocabulary.CACHE_STATES)})_(?P<read_pattern>.+)"
    rf"_(?P<readers>\d+)readers_ra-(?P<readahead>{'|'.join(vocabulary.READAHEAD)}))?"
    r"\.tsv$"
)
MEMORY_KEYS = ["method", "variant", "image_size", "cutoff", "operation"]


def load_benchmarks(paths: Iterable[Path]) -> pd.DataFrame:
    """Snakemake's benchmark files of the store and read jobs (``max_rss`` in MB, sampled
    by Snakemake), one row per job, with the job's coordinates from its path."""
    records = []
    for path in paths:
        match = _BENCHMARK_NAME.search(Path(path).as_posix())
        if match is None:
            raise ValueError(f"{path} is not a store or read benchmark file of this workflow")
        frame = pd.read_csv(path, sep="\t")
        record = {k: v for k, v in match.groupdict().items() if v is not None}
        for key in ("image_size", "cutoff", "repeat", "readers"):
            if key in record:
                record[key] = int(record[key])
        record["max_rss_mb"] = pd.to_numeric(frame["max_rss"], errors="coerce").max()
        record["job_seconds"] = pd.to_numeric(frame["s"], errors="coerce").max()
        records.append(record)
    return pd.DataFrame.from_records(records)


def memory_table(rows: pd.DataFrame, benchmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Peak memory per point and operation: the highest ``peak_rss_bytes`` of its jobs
    (exact high-water marks, mapped store pages included), with the pool and chunk sizes
    that bound it and, where given, the highest ``max_rss`` Snakemake sampled."""
    table = (
        rows.groupby(MEMORY_KEYS, sort=True)
        .agg(
            peak_rss_bytes=("peak_rss_bytes", "max"),
            peak_anon_bytes=("peak_anon_bytes", "max"),
            pool_images=("pool_images", "max"),
            chunk_images=("chunk_images", "max"),
            bytes_requested=("bytes_requested", "max"),
        )
        .reset_index()
    )
    if benchmarks is not None and len(benchmarks):
        sampled = benchmarks.groupby(MEMORY_KEYS)["max_rss_mb"].max().rename("snakemake_max_rss_mb")
        table = table.join(sampled, on=MEMORY_KEYS)
    return table


def _memory_cell(by_cutoff: pd.DataFrame, cutoff: int) -> str:
    if cutoff not in by_cutoff.index or pd.isna(by_cutoff.at[cutoff, "peak_rss_bytes"]):
        return ""
    cell = f"{by_cutoff.at[cutoff, 'peak_rss_bytes'] / 2**20:,.0f}"
    anon = by_cutoff.at[cutoff, "peak_anon_bytes"]
    return cell if pd.isna(anon) else f"{cell} ({anon / 2**20:,.0f})"


def memory_markdown(memory: pd.DataFrame) -> str:
    """Peak resident memory of the jobs per image size: methods by cutoff, so a reader
    sees whether memory grows with the store."""
    out = ["## Peak memory per job (MiB)\n\n"]
    out.append(
        "Each cell: the highest resident set (`ru_maxrss`) of any store or read job of the "
        "point, and in brackets the highest anonymous memory (`RssAnon` of the job and its "
        "readers, sampled every 20 ms). The resident set also counts pages of "
        "memory-mapped store files a job touched (LMDB reads, npy readers), page cache "
        "the kernel drops whenever memory is short; the anonymous memory is what the job "
        "holds itself (the image pool, chunks, library buffers).\n\n"
    )
    for size, here in memory.groupby("image_size"):
        cutoffs = sorted(here["cutoff"].unique())
        pool_images, chunk_images = here["pool_images"].max(), here["chunk_images"].max()
        if pd.notna(pool_images) and pd.notna(chunk_images):
            out.append(
                f"**{size}x{size}** (pool of {int(pool_images):,} distinct images, chunks of "
                f"{int(chunk_images):,}):\n\n"
            )
        else:
            out.append(f"**{size}x{size}**:\n\n")
        body = []
        for (method, variant, operation), series in here.groupby(
            ["method", "variant", "operation"], sort=True
        ):
            by_cutoff = series.set_index("cutoff")
            cells = [_memory_cell(by_cutoff, c) for c in cutoffs]
            body.append([series_name(method, variant), operation, *cells])
        out.append(markdown_table(["method", "job", *[f"{c:,}" for c in cutoffs]], body))
        out.append("\n")
    return "".join(out)
