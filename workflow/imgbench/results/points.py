"""Statistics per point (``timings_stats.csv``).

A point is one setting of every axis (method, variant, image size, operation, cache state
and eviction, read pattern, readahead, readers, nodes and clients, cutoff): a read by the
job's forked readers (``clients`` 0) and one by client processes (``clients`` >= 1, see
``experiment.rows``) are never one point. Its median and the interval of
that median come from its independent units, its stores (one median per store: timings
of one store share its placement on disk, its process and its moment on the machine);
its other statistics (min, max, quartiles, mean, std) describe every timed operation at
that setting (all timed repetitions of all stores).
"""

from __future__ import annotations

import pandas as pd

from imgbench.results import busy as busy_rule
from imgbench.results import stats as st
from imgbench.results.load import with_defaults
from imgbench.results.series import add_series_columns

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
    "nodes",
    "clients",
]
GROUP_KEYS = [*POINT_KEYS, "cutoff"]
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


def _judged(rows: pd.DataFrame, busy: dict | None) -> pd.DataFrame:
    """``rows`` with the busy rule's columns: ``busy``, ``judged_by_load``, others' CPU in
    cores and others' device reads as numbers."""
    return rows.assign(
        busy=busy_rule.busy_rows(rows, busy),
        judged_by_load=busy_rule.judged_by_load(rows),
        foreign_cpu_cores=busy_rule.foreign_cpu_cores(rows),
        foreign_device_read_bytes=busy_rule.numbers(rows, "foreign_device_read_bytes"),
    )


def _time_statistics(rows: pd.DataFrame, grouped) -> pd.DataFrame:
    """Counts, the median time and images/s with their intervals over stores, and the
    distribution of all timings, per point."""
    seconds = grouped["seconds"]
    times = _from_stores(rows, "seconds", "median_s", "ci_")
    speeds = _from_stores(rows, "images_per_s", "median_images_per_s", "ci_images_per_s_")
    per_client = _from_stores(
        rows,
        "images_per_s_per_client",
        "median_images_per_s_per_client",
        "ci_images_per_s_per_client_",
    )
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
    stats = stats.join(per_client)  # empty but for many-clients reads
    by_point = _per_point(_store_medians(rows, "seconds"))
    stats["store_spread_rel"] = (by_point.max() - by_point.min()) / stats["median_s"]
    return stats


def summarise(rows: pd.DataFrame, busy: dict | None = None) -> pd.DataFrame:
    """Per point: n, the median of its store medians with that median's order-statistics
    interval over the stores (``_from_stores``), min, max, quartiles, mean, std, CV of all
    timings; images/s the same way (median and interval over stores); medians of the
    write/flush split and of the device bytes; the highest load and pressure, and whether
    the point was busy (``busy.busy_rows``). A many-clients read also gets the median
    and interval over stores of its images/s per client (empty for every other point)."""
    rows = _judged(with_defaults(rows), busy)
    grouped = rows.groupby(GROUP_KEYS, dropna=False, sort=True)
    stats = _time_statistics(rows, grouped)
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
    add_series_columns(stats, rows)
    return stats


def keyed(frame: pd.DataFrame, keys: list[str]) -> dict:
    """Row (as a named tuple) by the values of ``keys``; the keys must be unique."""
    return {tuple(getattr(r, k) for k in keys): r for r in frame.itertuples()}
