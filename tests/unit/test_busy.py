"""busy: the busy rule (others' CPU time, else load and pressure) and overlapping timings."""

from __future__ import annotations

import pandas as pd
import pytest
from results_fixtures import HOST

from imgbench.results import busy as busy_rule


def busy_frame() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame(
        {
            "load_1min": [0.5, 4.5, 3.9, 0.1, 0.1, nan, nan],
            "cpu_pressure_pct": [1.0, 0.0, 0.0, 50.0, 50.0, 50.0, nan],
            "readers": [1, 1, 1, 1, 4, 2, 1],
            "cpu_count": [4] * 7,
        }
    )


def foreign_frame() -> pd.DataFrame:
    """Rows with foreign CPU time, against the default 0.25 of a core (resolution 8 ms)."""
    nan = float("nan")
    return pd.DataFrame(
        {
            # busy, quiet, 2 cores' worth over 10 ms, too short to tell, quiet beside a
            # load of 9, NaN: the former rule (load 9), span unrecorded: seconds
            "foreign_cpu_seconds": [0.6, 0.2, 0.02, 0.009, 0.0, nan, 0.3],
            "foreign_cpu_resolution_seconds": [0.008] * 5 + [nan, 0.008],
            "foreign_cpu_span_seconds": [1.0, 1.0, 0.01, 0.01, 1.0, nan, nan],
            "seconds": [0.9, 0.9, 0.009, 0.009, 0.9, 1.0, 1.0],
            "load_1min": [0.1, 9.0, 0.1, 0.1, 9.0, 9.0, 0.1],
            "cpu_pressure_pct": [0.0, 80.0, 0.0, 0.0, 80.0, 0.0, 0.0],
            "readers": [1] * 7,
            "cpu_count": [2] * 7,
        }
    )


def test_busy_rows_without_foreign_cpu_fall_back_to_load_and_pressure():
    # rows recorded before foreign CPU time was measured (no such columns):
    # load 4.5 > 1.0 x 4 cores; pressure 50 % with 1 or 2 readers on 4 cores; not with 4
    # readers on 4 cores (they cause it); unrecorded values are no evidence either way
    assert busy_rule.judged_by_load(busy_frame()).all()
    busy = busy_rule.busy_rows(busy_frame(), busy_rule.DEFAULT_BUSY)
    assert list(busy) == [False, True, False, True, False, True, False]
    relaxed = busy_rule.busy_rows(busy_frame(), {"load_per_core": 2.0, "cpu_pressure_pct": 60.0})
    assert not relaxed.any()
    # a threshold left out of the configuration keeps its default
    assert list(busy_rule.busy_rows(busy_frame(), {"load_per_core": 2.0})) == [
        *(False, False, False, True, False, True, False)
    ]


def test_busy_rows_by_foreign_cpu():
    frame = foreign_frame()
    busy = busy_rule.busy_rows(frame, busy_rule.DEFAULT_BUSY)
    assert list(busy) == [True, False, True, False, False, True, True]
    assert list(busy_rule.judged_by_load(frame)) == [False] * 5 + [True, False]
    # 0.009 s over 10 ms: a core throughout would be 0.01 s, within 0.008 s of the
    # threshold's 0.0025 s: too short to tell
    short = busy_rule.too_short_to_judge(frame, busy_rule.DEFAULT_BUSY)
    assert list(short) == [False, False, True, True, False, False, False]
    cores = busy_rule.foreign_cpu_cores(frame)
    assert cores.iloc[0] == pytest.approx(0.6) and cores.iloc[6] == pytest.approx(0.3)
    # the resolution is subtracted: 0.2 s over 1 s is busy at 0.15 of a core, and only
    # by more than 8 ms
    assert busy_rule.busy_rows(frame, {"foreign_cpu_cores": 0.15}).iloc[1]
    assert not busy_rule.busy_rows(frame, {"foreign_cpu_cores": 0.193}).iloc[1]
    # rows lacking even load and pressure (another tool's frame) are not busy
    assert not busy_rule.busy_rows(pd.DataFrame({"seconds": [1.0]})).any()


def test_overlapping_timings(tables):
    rows, _, _ = tables
    assert busy_rule.overlapping_timings(rows) == []

    frame = pd.DataFrame(
        {
            "method": ["png", "npy", "lmdb", "hdf5"],
            "operation": ["store", "read", "read", "store"],
            "cutoff": [10, 10, 10, 10],
            "repeat": [1, 1, 2, 1],
            "cache": ["n/a", "cold", "warm", "n/a"],
            "host": [HOST, HOST, HOST, "hostB"],
            "t_start_unix": [100.0, 101.0, 103.0, 100.5],
            "t_end_unix": [110.0, 102.0, 104.0, 101.5],
        }
    )
    # png spans both npy and lmdb; hdf5 overlaps png in time but on another host.
    assert busy_rule.overlapping_timings(frame) == [
        ("png store cutoff=10 repeat=1", "npy read cutoff=10 repeat=1 cold"),
        ("png store cutoff=10 repeat=1", "lmdb read cutoff=10 repeat=2 warm"),
    ]
    # with every coordinate present, the labels name them all
    full = frame.assign(
        variant=["default", "default", "article", "gzip"],
        image_size=[256, 256, 256, 256],
        inner_repeat=[1, 2, 1, 1],
        eviction=["n/a", "fadvise", "none", "n/a"],
        read_pattern=["n/a", "shuffled", "whole", "n/a"],
        readahead=["n/a", "off", "on", "n/a"],
        readers=[1, 4, 1, 1],
    )
    assert busy_rule.overlapping_timings(full) == [
        (
            "png/default store 256px cutoff=10 repeat=1 inner=1",
            "npy/default read 256px cutoff=10 repeat=1 inner=2 cold fadvise shuffled "
            "readahead=off readers=4",
        ),
        (
            "png/default store 256px cutoff=10 repeat=1 inner=1",
            "lmdb/article read 256px cutoff=10 repeat=2 inner=1 warm whole readahead=on readers=1",
        ),
    ]
    back_to_back = frame.assign(t_start_unix=[0.0, 1.0, 2.0, 0.0], t_end_unix=[1.0, 2.0, 3.0, 1.0])
    assert busy_rule.overlapping_timings(back_to_back) == []
