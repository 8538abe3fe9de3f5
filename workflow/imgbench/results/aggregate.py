"""Aggregation with pandas: tidy timings, statistics per point, disk usage, summary.

A point is one setting of every axis (method, variant, image size, operation, cache state
and eviction, read pattern, readahead, readers, cutoff). Its median and the interval of
that median come from its independent units, its stores (one median per store: timings
of one store share its placement on disk, its process and its moment on the machine);
its other statistics (min, max, quartiles, mean, std) describe every timed operation at
that setting (all timed repetitions of all stores).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results import stats as st
from imgbench.results.series import (
    BASELINE,
    method_descriptions,
    series_name,
    store_and_whole_reads,
    whole_store_reads,
)
from imgbench.system.units import human_bytes

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
# foreign_cpu_cores: other processes' CPU time above this share of a core over a timed
# region makes it busy (see ``busy_rows``); load_per_core and cpu_pressure_pct judge rows
# recorded before foreign CPU time was measured.
DEFAULT_BUSY = {"foreign_cpu_cores": 0.25, "load_per_core": 1.0, "cpu_pressure_pct": 10.0}
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
MAXIMA = [
    "load_1min",
    "cpu_pressure_pct",
    "io_pressure_pct",
    "cpu_count",
    "foreign_cpu_cores",
    "foreign_device_read_bytes",
]


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
        fidelity = lossy_fidelity(first) if first["lossy"] in (True, "True") else "exact"
        body.append(
            [series, descriptions.get(first["method"], first["method"]), encoding, fidelity]
        )
    header = ["method", "description", "images stored as", "read back"]
    return "## Methods\n\n" + markdown_table(header, body)


def lossy_fidelity(series: pd.Series) -> str:
    """A lossy series' PSNR against its source: over the whole store (what
    ``store_psnr_floor_db`` holds), the 1st percentile of its images' (where recorded)
    and its worst image's."""
    text = f"lossy: PSNR {series['psnr_db']:.1f} dB"
    low = series.get("psnr_p01_db")
    if low is not None and pd.notna(low):
        text += f", 1st percentile {low:.1f} dB"
    return text + f", worst image {series['psnr_min_db']:.1f} dB"


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


def _numbers(rows: pd.DataFrame, column: str) -> pd.Series:
    """``rows[column]`` as numbers; all NaN where rows lack it (written before it existed)."""
    if column not in rows:
        return pd.Series(float("nan"), index=rows.index, dtype=float)
    return pd.to_numeric(rows[column], errors="coerce")


def foreign_cpu_span(rows: pd.DataFrame) -> pd.Series:
    """Seconds over which each row's foreign CPU time was measured: the span between its two
    samples, else (not recorded) the timed seconds."""
    return _numbers(rows, "foreign_cpu_span_seconds").fillna(_numbers(rows, "seconds"))


def foreign_cpu_cores(rows: pd.DataFrame) -> pd.Series:
    """Other processes' CPU time per second of each timed region, in cores (0.5: half a
    core's time); NaN where it was not measured."""
    return _numbers(rows, "foreign_cpu_seconds") / foreign_cpu_span(rows)


def judged_by_load(rows: pd.DataFrame) -> pd.Series:
    """Rows without foreign CPU time (recorded before it was measured, or on a machine
    without a CPU counter), which ``busy_rows`` judges by load and pressure instead."""
    return _numbers(rows, "foreign_cpu_seconds").isna().rename("judged_by_load")


def too_short_to_judge(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """Rows whose region was too short for the foreign CPU check: another process using a
    whole core throughout would not exceed the threshold by more than the resolution."""
    busy = busy_thresholds(busy)
    span = foreign_cpu_span(rows)
    resolution = _numbers(rows, "foreign_cpu_resolution_seconds")
    return (span * (1 - busy["foreign_cpu_cores"]) <= resolution).rename("too_short")


def busy_by_load(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """The rule before foreign CPU time was measured: a 1-minute load above
    ``load_per_core`` x the host's cores, or CPU pressure above ``cpu_pressure_pct`` while
    the job ran fewer readers than cores (as many readers as cores cause pressure
    themselves). Both count the job itself and the load is a minute's average, so it flags
    quiet runs and carries the previous job; unrecorded (NaN) values are no evidence."""
    busy = busy_thresholds(busy)
    cores = _numbers(rows, "cpu_count")
    load = _numbers(rows, "load_1min") > busy["load_per_core"] * cores
    own = _numbers(rows, "readers").fillna(1) >= cores
    pressure = (_numbers(rows, "cpu_pressure_pct") > busy["cpu_pressure_pct"]) & ~own
    return load | pressure


def busy_rows(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """Whether each timed operation ran on a busy machine: others (every process outside
    the job's process tree, kernel threads included) ran more CPU time than
    ``foreign_cpu_cores`` x the region's seconds, beyond the measurement's resolution:
    ``foreign_cpu_seconds - foreign_cpu_resolution_seconds > foreign_cpu_cores x span``.
    A region shorter than the resolution allows is therefore never flagged
    (``too_short_to_judge``). Rows without foreign CPU time fall back to ``busy_by_load``."""
    busy = busy_thresholds(busy)
    foreign = _numbers(rows, "foreign_cpu_seconds")
    beyond = foreign - _numbers(rows, "foreign_cpu_resolution_seconds").fillna(0.0)
    by_foreign = beyond > busy["foreign_cpu_cores"] * foreign_cpu_span(rows)
    return by_foreign.where(foreign.notna(), busy_by_load(rows, busy)).astype(bool).rename("busy")


def _store_medians(rows: pd.DataFrame, column: str) -> pd.Series:
    """The median of ``column`` over each store's timings, indexed by point and store."""
    return rows.groupby([*GROUP_KEYS, "repeat"], dropna=False, sort=True)[column].median()


def _per_point(store_medians: pd.Series):
    """``store_medians`` grouped by point (every level of the index but ``repeat``)."""
    return store_medians.groupby(level=list(range(len(GROUP_KEYS))), dropna=False, sort=True)


def _from_stores(rows: pd.DataFrame, column: str, median: str, prefix: str) -> pd.DataFrame:
    """Per point, from its independent units only, its stores (one median each): the
    median of the store medians (``median``) and the order-statistics interval of that
    median (``{prefix}low``, ``{prefix}high``), with its coverage ``{prefix}level``.

    Timings of one store share its placement on disk, its process and its moment on the
    machine, so they are not independent and add no coverage: 2 stores give their min–max
    at 50 %, 3 at 75 %, 4 at 87.5 %, 5 at 93.75 %, 6 or more the narrowest pair of ranks
    reaching 95 % (min–max of 6 at 96.9 %). One store gives no interval (NaN). The median
    of store medians always lies inside that interval (the median of all timings need
    not: with 9 stores it can fall outside ranks 2 to 8)."""
    by_point = _per_point(_store_medians(rows, column))
    intervals = by_point.apply(lambda medians: tuple(st.median_interval(medians)))
    ends = [f"{prefix}low", f"{prefix}high", f"{prefix}level"]
    frame = pd.DataFrame(intervals.tolist(), index=intervals.index, columns=ends)
    frame.insert(0, median, by_point.median())
    return frame


def summarise(rows: pd.DataFrame, busy: dict | None = None) -> pd.DataFrame:
    """Per point: n, the median of its store medians with that median's order-statistics
    interval over the stores (``_from_stores``), min, max, quartiles, mean, std, CV of all
    timings; images/s the same way (median and interval over stores); medians of the
    write/flush split and of the device bytes; the highest load and pressure, and whether
    the point was busy."""
    rows = rows.assign(
        busy=busy_rows(rows, busy),
        judged_by_load=judged_by_load(rows),
        foreign_cpu_cores=foreign_cpu_cores(rows),
        foreign_device_read_bytes=_numbers(rows, "foreign_device_read_bytes"),
    )
    grouped = rows.groupby(GROUP_KEYS, dropna=False, sort=True)
    seconds = grouped["seconds"]
    times = _from_stores(rows, "seconds", "median_s", "ci_")
    speeds = _from_stores(rows, "images_per_s", "median_images_per_s", "ci_images_per_s_")
    stats = pd.DataFrame(
        {
            "n": seconds.count(),
            "stores": grouped["repeat"].nunique(),
            "inner_repeats": grouped["inner_repeat"].max(),
            "median_s": times["median_s"],
            "min_s": seconds.min(),
            "max_s": seconds.max(),
            "q25_s": seconds.quantile(0.25),
            "q75_s": seconds.quantile(0.75),
            "mean_s": seconds.mean(),
            "std_s": seconds.std(ddof=1),
            "median_images_per_s": speeds["median_images_per_s"],
            "median_bytes_on_disk": grouped["bytes_on_disk"].median(),
            "median_cached_fraction": grouped["cached_fraction"].median(),
            "max_cached_fraction": grouped["cached_fraction"].max(),
        }
    )
    stats = stats.join(times.drop(columns="median_s"))
    stats = stats.join(speeds.drop(columns="median_images_per_s"))
    by_point = _per_point(_store_medians(rows, "seconds"))
    stats["store_spread_rel"] = (by_point.max() - by_point.min()) / stats["median_s"]
    for column in MEDIANS:
        stats[f"median_{column}"] = grouped[column].median()
    for column in MAXIMA:
        stats[f"max_{column}"] = grouped[column].max()
    stats["busy"] = grouped["busy"].any()
    stats["judged_by_load"] = grouped["judged_by_load"].any()
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
    """The rows' ``encoding``, ``lossy``, the median store PSNR and the lowest worst-image
    and 1st-percentile PSNR per (method, variant), as columns of ``table`` (empty for
    rows written before they existed)."""
    keys = ["method", "variant"]
    columns = {
        "encoding": "first",
        "lossy": "first",
        "psnr_db": "median",
        "psnr_min_db": "min",
        "psnr_p01_db": "min",
    }
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
    than two series, nor while a series has no interval (one store: its one median may
    lie clear of the others by chance, however many timings it has); the text says so
    rather than calling it no clear difference."""
    if not others:
        return f"{title}: only {verdict.best.name} measured"
    lone = [c for c in [verdict.best, *others] if not st.has_interval(c)]
    if lone:
        who = "every series" if len(lone) == len(others) + 1 else _names(lone)
        return (
            f"{title}: best median {verdict.best.name}, but {who} had one store "
            "(no interval), so no verdict"
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


def quiet_and_busy(points: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``points`` measured on a quiet machine, and those measured on a busy one, which no
    verdict uses: their times are others' work as much as the format's."""
    if "busy" not in points:
        return points, points.iloc[:0]
    busy = points["busy"].fillna(False).astype(bool)
    return points[~busy], points[busy]


def _series_names(points: pd.DataFrame) -> str:
    """``png``, ``png and npy``, ``hdf5, png and npy``: the series of ``points``."""
    names = list(dict.fromkeys(points["series"]))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _left_out(busy: pd.DataFrame) -> str:
    """`` (png left out: busy)`` after a verdict; ``""`` when no point was left out."""
    return f" ({_series_names(busy)} left out: busy)" if len(busy) else ""


def _no_quiet_verdict(title: str, busy: pd.DataFrame) -> str:
    return f"{title}: no verdict ({_series_names(busy)} measured on a busy machine)"


def time_verdict(points: pd.DataFrame, title: str) -> str:
    """The fastest series among ``points`` (one per series), or the tie, among the points
    measured on a quiet machine; busy ones are named as left out."""
    quiet, busy = quiet_and_busy(points)
    if quiet.empty:
        return _no_quiet_verdict(title, busy)
    candidates = _time_candidates(quiet)
    verdict = st.separate(candidates)
    others = _others(verdict, candidates)
    return _verdict_text(verdict, title, "fastest", _describe_time, others) + _left_out(busy)


def throughput_verdict(points: pd.DataFrame, title: str) -> str:
    """The series with the most images/s among ``points``, or the tie, among the points
    measured on a quiet machine; busy ones are named as left out."""
    quiet, busy = quiet_and_busy(points)
    if quiet.empty:
        return _no_quiet_verdict(title, busy)
    candidates = _throughput_candidates(quiet)
    verdict = st.separate(candidates, higher_is_better=True)
    others = _others(verdict, candidates)
    return _verdict_text(verdict, title, "", _describe_throughput, others) + _left_out(busy)


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


def _busy_mark(point) -> str:
    """`` (busy)`` after the median of a point measured on a busy machine (a row of the
    statistics as a named tuple, or None)."""
    return " (busy)" if bool(getattr(point, "busy", False)) else ""


def _time_cells(points: dict, key: tuple, with_flush: bool) -> list[str]:
    rest = key[1:]
    value = getattr(points.get(key), "median_s", None)
    cells = [
        _fmt_seconds(value) + _busy_mark(points.get(key)),
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
    base = store_and_whole_reads(stats)
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
    reads = store_and_whole_reads(stats)
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


def _throughput_cell(match: pd.DataFrame) -> str:
    """The median images/s of the one point in ``match``, marked where busy; empty if none."""
    if match.empty:
        return ""
    first = next(match.itertuples())
    return f"{first.median_images_per_s:,.0f}{_busy_mark(first)}"


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
                cells.append(_throughput_cell(match))
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


BASELINE_SERIES = BASELINE


def _vs_baseline(value: float, baseline_value: float | None, unit: str) -> str:
    if baseline_value is None or pd.isna(baseline_value) or baseline_value == 0:
        return "n/a"
    return f"{value / baseline_value:.3g}x npy's {unit}"


def _fastest_cell(points: pd.DataFrame) -> str:
    """``_fastest_among`` the points measured on a quiet machine, the busy ones named as
    left out."""
    quiet, busy = quiet_and_busy(points)
    if quiet.empty:
        return f"no verdict: {_series_names(busy)} measured on a busy machine"
    return _fastest_among(quiet) + _left_out(busy)


def _fastest_among(points: pd.DataFrame) -> str:
    """The fastest series among ``points`` with its median and interval, or the tie: the
    best of the series with an interval and those whose interval overlaps its, and every
    series without an interval (one store), which nothing can rule out."""
    candidates = _time_candidates(points)
    verdict = st.separate(candidates)
    best = verdict.best
    if len(candidates) == 1:
        return f"only {best.name} measured"
    if verdict.clear:
        return f"**{best.name}** {_fmt_seconds(best.value)} [{best.low:.4g}, {best.high:.4g}]"
    lone = [c for c in candidates if not st.has_interval(c)]
    known = [c for c in candidates if st.has_interval(c)]
    among = st.separate(known) if known else None
    contenders = [*lone, among.best, *among.tied] if among else lone
    tied = sorted(contenders, key=lambda c: c.value)
    if len(tied) > 4:
        named = ", ".join(c.name for c in tied[:4]) + f" and {len(tied) - 4} more"
    else:
        named = _names(tied)
    why = _lone_note(lone, candidates)
    return f"no clear winner: {named} (best median {best.name} {_fmt_seconds(best.value)}{why})"


def _lone_note(lone: list[st.Candidate], candidates: list[st.Candidate]) -> str:
    """Why a tie takes in the series without an interval (one store): ``""`` if none."""
    if not lone:
        return ""
    if len(lone) == len(candidates):
        return "; one store each: no interval"
    who = _names(lone) if len(lone) <= 4 else f"{len(lone)} series"
    return f"; {who}: one store, no interval"


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


def _busy_reads_note(reads: pd.DataFrame) -> str:
    """How many of the read points the table shows (each size's largest cutoff) the
    fastest column leaves out as busy (see Quiet machine)."""
    largest = reads.groupby("image_size")["cutoff"].transform("max")
    shown = reads[reads["cutoff"] == largest]
    _, busy = quiet_and_busy(shown)
    if busy.empty:
        return ""
    return (
        f"\n{len(busy)} of these {len(shown)} read points were measured on a busy machine "
        "(see Quiet machine): they are left out of the fastest and named in their row.\n"
    )


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
        _busy_reads_note(reads),
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
            quiet, _ = quiet_and_busy(points)
            best = min(_time_candidates(quiet), key=lambda c: c.value, default=None)
            base = quiet.loc[quiet["series"] == BASELINE_SERIES, "median_s"]
            on_disk = sized[sized["series"].isin(points["series"])]
            base_disk = sized.loc[sized["series"] == BASELINE_SERIES, "bytes_on_disk"]
            exact = on_disk[~_is_lossy(on_disk)] if (~_is_lossy(on_disk)).any() else on_disk
            smallest = exact["bytes_on_disk"].min() if len(exact) else None
            body.append(
                [
                    _read_label(key, shown),
                    _fastest_cell(points),
                    _vs_baseline(best.value, base.iloc[0] if len(base) else None, "time")
                    if best is not None
                    else "n/a",
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


INTERVAL_RULE = (
    "A point's median is the median of its store medians, and its interval comes from its "
    "independent units alone, its stores: the timings of one store share its placement on "
    "disk, its process and its moment on the machine, so more timings inside a store add "
    "no coverage. The interval is distribution-free, from order statistics of the s store "
    "medians: those at ranks j and s+1-j, the narrowest such pair covering the median a "
    "new store would give with at least 95 %. Below 6 stores no pair reaches 95 %: the "
    "interval is the min–max of the store medians, with its true coverage (2 stores 50 %, "
    "3 stores 75 %, 4 stores 87.5 %, 5 stores 93.8 %); one store gives no interval and "
    "no verdict.\n\n"
)


def _interval_check(stats, threshold: float, out) -> None:
    reach = f"±{threshold * 100:g} %"
    out.append(f"\n## Interval check (95 % interval of the median within {reach})\n\n")
    out.append(INTERVAL_RULE)
    full = stats["ci_level"] >= st.LEVEL
    narrow = stats["ci_halfwidth_rel"] <= threshold  # False where there is no interval
    out.append(
        f"{int((full & narrow).sum())} of {len(stats)} points have a 95 % interval within "
        f"{reach} of the median.\n"
    )
    lower = narrow & ~full
    if lower.any():
        out.append(
            f"{int(lower.sum())} more have an interval within {reach} that covers with "
            "less than 95 %.\n"
        )
    _wide_intervals(stats[stats["ci_level"].notna() & ~narrow], out)
    _below_full_coverage(stats[~full], out)


def _wide_intervals(wide, out) -> None:
    if wide.empty:
        return
    out.append(f"\n{len(wide)} point(s) reach further; read their medians with care:\n\n")
    out.append(
        markdown_table(
            [*POINT_HEADER, "stores", "n", "median", "interval", "coverage", "reach"],
            [
                _point_cells(r)
                + [
                    r.stores,
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


def _below_full_coverage(few, out) -> None:
    """How many points lack a 95 % interval, by their number of stores."""
    if few.empty:
        return
    out.append(
        f"\n{len(few)} point(s) have no 95 % interval: too few stores (raise repeats so a "
        "point has at least 6; more timings inside a job do not help):\n\n"
    )
    lone = few[few["ci_level"].isna()]
    if len(lone):
        out.append(f"- {len(lone)} point(s): one store, so no interval and no verdict\n")
    known = few[few["ci_level"].notna()]
    for (stores, level), group in known.groupby(["stores", "ci_level"], sort=True):
        out.append(f"- {len(group)} point(s): min–max of {stores} store medians, {level:.1%}\n")


def _all_missing(frame: pd.DataFrame, column: str) -> bool:
    return bool(frame[column].isna().all())


BUSY_RULE = (
    "A timed operation counts as busy when others ran on the machine meanwhile: the CPU "
    "time of everything outside the job's own process tree (the job, its reader processes "
    "and their threads are its own; other jobs, other users, daemons and kernel threads "
    "are not) exceeded {cores:g} of a core's time over the region by more than the "
    "measurement's resolution (in timings.csv: `foreign_cpu_seconds` less "
    "`foreign_cpu_resolution_seconds` above {cores:g} x `foreign_cpu_span_seconds`). A "
    "point is busy when any of its timed operations was. Busy points are left out of every "
    "verdict and of the fastest in the format table, which name them; the tables keep "
    "their medians, marked (busy).\n\n"
)


def _load_rule_note(rows, busy: dict, out) -> None:
    """The former rule, for rows recorded before foreign CPU time was measured."""
    by_load = judged_by_load(rows)
    if not by_load.any():
        return
    old = rows[by_load]
    out.append(
        f"{int(by_load.sum())} of {len(rows)} timed operations carry no foreign CPU time "
        "(recorded before it was measured): they are judged by the former rule, a 1-minute "
        f"load average above {busy['load_per_core']:g} x the host's cores or CPU pressure "
        f"(PSI some avg10) above {busy['cpu_pressure_pct']:g} % while the job ran fewer "
        "readers than cores. Both count the job's own processes, and the load is a "
        "minute's average that carries the previous job, so that rule also flags quiet "
        "runs.\n"
    )
    if _all_missing(old, "load_1min") and _all_missing(old, "cpu_pressure_pct"):
        out.append("No load average or pressure was recorded for them: they could not be judged.\n")
    elif _all_missing(old, "cpu_pressure_pct"):
        out.append("CPU pressure was not recorded for them (no PSI): only the load was checked.\n")


def _foreign_cpu_note(rows, busy: dict, out) -> None:
    """What others ran over the judged regions, and how many were too short to judge."""
    judged = rows[~judged_by_load(rows)]
    if judged.empty:
        return
    cores = foreign_cpu_cores(judged)
    resolution = _numbers(judged, "foreign_cpu_resolution_seconds") * 1e3
    out.append(
        f"\nOthers' CPU time over the {len(judged)} judged timed operations: median "
        f"{_fmt_number(cores.median(), '.2f')}, highest {_fmt_number(cores.max(), '.2f')} "
        f"of a core; resolution {_fmt_number(resolution.min(), '.1f')}–"
        f"{_fmt_number(resolution.max(), '.1f')} ms per region.\n"
    )
    short = too_short_to_judge(judged, busy)
    if short.any():
        out.append(
            f"{int(short.sum())} of them were too short to judge (even another process "
            "running a whole core throughout would not exceed the threshold by more than "
            "the resolution): they count as quiet.\n"
        )


def _busy_points_table(flagged) -> str:
    return markdown_table(
        [*POINT_HEADER, "max foreign CPU", "max load", "cores", "max CPU pressure", "judged by"],
        [
            _point_cells(r)
            + [
                _fmt_number(r.max_foreign_cpu_cores, ".2f", " cores"),
                _fmt_number(r.max_load_1min, ".2f"),
                _fmt_number(r.max_cpu_count, ".0f"),
                _fmt_number(r.max_cpu_pressure_pct, ".1f", " %"),
                "load, pressure" if r.judged_by_load else "foreign CPU",
            ]
            for r in flagged.itertuples()
        ],
    )


def _context_note(rows, out) -> None:
    """Load and pressure, recorded as context; others' reads from the store's device."""
    out.append(
        "\nLoad and pressure are recorded as context but no longer decide where foreign CPU "
        "time was measured (they count the job itself): highest 1-minute load "
        f"{_fmt_number(rows['load_1min'].max(), '.2f')} on "
        f"{_fmt_number(rows['cpu_count'].max(), '.0f')} cores, highest CPU pressure "
        f"{_fmt_number(rows['cpu_pressure_pct'].max(), '.1f', ' %')}. I/O pressure is "
        f"recorded (highest {_fmt_number(rows['io_pressure_pct'].max(), '.1f', ' %')}) but "
        "not used for the flag: our own cold reads cause it.\n"
    )
    foreign_bytes = _numbers(rows, "foreign_device_read_bytes")
    if foreign_bytes.notna().any():
        out.append(
            "Others read at most "
            f"{human_bytes(max(0.0, foreign_bytes.max()))} from the store's block device "
            "during a timed region (its reads less the job's own).\n"
        )


def _quiet_machine(stats, rows, busy: dict, out) -> None:
    out.append("\n## Quiet machine\n\n")
    out.append(BUSY_RULE.format(cores=busy["foreign_cpu_cores"]))
    _load_rule_note(rows, busy, out)
    _foreign_cpu_note(rows, busy, out)
    flagged = stats[stats["busy"]]
    if flagged.empty:
        out.append("\nNo point was measured on a busy machine.\n")
    else:
        out.append(
            f"\n{len(flagged)} of {len(stats)} points were measured on a busy machine and are "
            "left out of the verdicts and the format table:\n\n"
        )
        out.append(_busy_points_table(flagged))
    _context_note(rows, out)


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
        "A point's median is the median of its store medians, and carries a distribution-free "
        "interval from order statistics of those store medians, the independent units (95 % "
        "with 6 or more stores, else their min–max with its true coverage, as written: 75 % "
        "for 3 stores; one store gives none). A method is named fastest only when its "
        "interval lies clear of every other's; otherwise the summary says there is no clear "
        "difference, or no verdict where a series had one store. Tables per cutoff show "
        "stores and whole-store reads by one reader (the article's experiment).\n"
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
