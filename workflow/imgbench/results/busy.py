"""Was the machine quiet while a region was timed: the busy rule (others' CPU time over
the region, or load and pressure for rows recorded before it was measured) and timed
regions of this run that overlapped on one host.

A busy point is left out of every verdict (``quiet_and_busy``); its median stays in the
tables, marked.
"""

from __future__ import annotations

import math

import pandas as pd

# foreign_cpu_cores: other processes' CPU time above this share of a core over a timed
# region makes it busy (see ``busy_rows``); load_per_core and cpu_pressure_pct judge rows
# recorded before foreign CPU time was measured.
DEFAULT_BUSY = {"foreign_cpu_cores": 0.25, "load_per_core": 1.0, "cpu_pressure_pct": 10.0}


def busy_thresholds(busy: dict | None) -> dict:
    """The configured thresholds, any left out at their defaults."""
    return {**DEFAULT_BUSY, **(busy or {})}


def numbers(rows: pd.DataFrame, column: str) -> pd.Series:
    """``rows[column]`` as numbers; all NaN where rows lack it (written before it existed)."""
    if column not in rows:
        return pd.Series(float("nan"), index=rows.index, dtype=float)
    return pd.to_numeric(rows[column], errors="coerce")


def foreign_cpu_span(rows: pd.DataFrame) -> pd.Series:
    """Seconds over which each row's foreign CPU time was measured: the span between its two
    samples, else (not recorded) the timed seconds."""
    return numbers(rows, "foreign_cpu_span_seconds").fillna(numbers(rows, "seconds"))


def foreign_cpu_cores(rows: pd.DataFrame) -> pd.Series:
    """Other processes' CPU time per second of each timed region, in cores (0.5: half a
    core's time); NaN where it was not measured."""
    return numbers(rows, "foreign_cpu_seconds") / foreign_cpu_span(rows)


def judged_by_load(rows: pd.DataFrame) -> pd.Series:
    """Rows without foreign CPU time (recorded before it was measured, or on a machine
    without a CPU counter), which ``busy_rows`` judges by load and pressure instead."""
    return numbers(rows, "foreign_cpu_seconds").isna().rename("judged_by_load")


def too_short_to_judge(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """Rows whose region was too short for the foreign CPU check: another process using a
    whole core throughout would not exceed the threshold by more than the resolution."""
    busy = busy_thresholds(busy)
    span = foreign_cpu_span(rows)
    resolution = numbers(rows, "foreign_cpu_resolution_seconds")
    return (span * (1 - busy["foreign_cpu_cores"]) <= resolution).rename("too_short")


def busy_by_load(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """The rule before foreign CPU time was measured: a 1-minute load above
    ``load_per_core`` x the host's cores, or CPU pressure above ``cpu_pressure_pct`` while
    the job ran fewer readers (or client processes per node) than cores (as many as
    cores cause pressure themselves). Both count the job itself and the load is a
    minute's average, so it flags quiet runs and carries the previous job; unrecorded
    (NaN) values are no evidence."""
    busy = busy_thresholds(busy)
    cores = numbers(rows, "cpu_count")
    load = numbers(rows, "load_1min") > busy["load_per_core"] * cores
    readers = numbers(rows, "readers").fillna(1)
    per_node = numbers(rows, "clients").fillna(0) / numbers(rows, "nodes").fillna(1)
    own = pd.concat([readers, per_node], axis=1).max(axis=1) >= cores
    pressure = (numbers(rows, "cpu_pressure_pct") > busy["cpu_pressure_pct"]) & ~own
    return load | pressure


def busy_rows(rows: pd.DataFrame, busy: dict | None = None) -> pd.Series:
    """Whether each timed operation ran on a busy machine: others (every process outside
    the job's process tree, kernel threads included) ran more CPU time than
    ``foreign_cpu_cores`` x the region's seconds, beyond the measurement's resolution:
    ``foreign_cpu_seconds - foreign_cpu_resolution_seconds > foreign_cpu_cores x span``.
    A region shorter than the resolution allows is therefore never flagged
    (``too_short_to_judge``). Rows without foreign CPU time fall back to ``busy_by_load``."""
    busy = busy_thresholds(busy)
    foreign = numbers(rows, "foreign_cpu_seconds")
    beyond = foreign - numbers(rows, "foreign_cpu_resolution_seconds").fillna(0.0)
    by_foreign = beyond > busy["foreign_cpu_cores"] * foreign_cpu_span(rows)
    return by_foreign.where(foreign.notna(), busy_by_load(rows, busy)).astype(bool).rename("busy")


def quiet_and_busy(points: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``points`` measured on a quiet machine, and those measured on a busy one, which no
    verdict uses: their times are others' work as much as the format's."""
    if "busy" not in points:
        return points, points.iloc[:0]
    busy = points["busy"].fillna(False).astype(bool)
    return points[~busy], points[busy]


# --- timed regions of this run that overlapped ---------------------------------------------

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


def _clients_part(row: pd.Series) -> str:
    """`` clients=2x2`` (nodes x per node) for a many-clients read; ``""`` otherwise."""
    clients = pd.to_numeric(row.get("clients"), errors="coerce")
    if pd.isna(clients) or clients <= 0:
        return ""
    nodes = pd.to_numeric(row.get("nodes"), errors="coerce")
    nodes = 1 if pd.isna(nodes) or nodes < 1 else int(nodes)
    return f" clients={nodes}x{int(clients) // nodes}"


def _measurement_label(row: pd.Series) -> str:
    """Every coordinate of one measurement that the rows carry, e.g.
    ``png/default read 32px cutoff=10 repeat=1 inner=2 cold fadvise whole readers=1``
    (and `` clients=2x2`` for a read by client processes)."""
    is_store = row.get("operation") == "store"
    label = "".join(
        template.format(row[name])
        for name, template in _LABEL_PARTS
        if name in row.index
        and not pd.isna(row[name])
        and str(row[name]) not in ("", "n/a", "none")
        and not (is_store and name == "readers")
    )
    return label + _clients_part(row)


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
