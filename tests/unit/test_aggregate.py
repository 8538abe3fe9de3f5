"""aggregate: statistics, disk usage, summary and overlap checks on hand-made rows."""

from __future__ import annotations

import json
import logging
import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from imgbench.harness import measure
from imgbench.jobs import scriptlog
from imgbench.results import aggregate, series

REPO = Path(__file__).resolve().parents[2]
HOST = "hostA"
ENV_ID = "0123456789ab"
T0 = 1_700_000_000.0
FACTORS = (1.02, 0.98, 1.0)  # per store: median = base, CV = 2 %
# (method, operation, cache) -> {cutoff: median seconds}
BASE_SECONDS = {
    ("png", "store", "n/a"): {10: 4.0, 100: 40.0},
    ("npy", "store", "n/a"): {10: 2.0, 100: 10.0},
    ("png", "read", "cold"): {10: 3.0, 100: 30.0},
    ("npy", "read", "cold"): {10: 1.5, 100: 6.0},
    ("png", "read", "warm"): {10: 1.0, 100: 10.0},
    ("npy", "read", "warm"): {10: 0.25, 100: 2.0},
}
# The one noisy point: png store of 10 images, 5 s, 3 s, 4 s (median 4, CV 25 %).
NOISY = {("png", "store", "n/a", 10): [5.0, 3.0, 4.0]}
# The one point with three timed repetitions in each of its three stores (n = 9): store
# medians 2.0, 1.99 and 2.01, so median 2.0 and interval 1.99–2.01 (min–max of 3 stores,
# 75 %). The nine timings, sorted 1.85 1.90 1.95 1.99 2.00 2.01 2.05 2.10 2.15, would give
# ranks 2 and 8 (1.90–2.10) at 96.1 % were they independent; they are not.
NINE = {("npy", "read", "warm", 100): [[2.0, 1.85, 2.05], [1.90, 2.10, 1.99], [2.15, 1.95, 2.01]]}
# (method, cutoff) -> bytes on disk per store
DISK = {
    ("png", 10): [40960, 45056, 40960],
    ("npy", 10): [36864, 36864, 36864],
    ("png", 100): [409600, 409600, 413696],
    ("npy", 100): [311296, 311296, 311296],
}
COLD_CACHED = [0.0, 0.02, 0.01]
DEVICE_PER_DISK = {"png": 1.5, "npy": 1.0}  # a cold read's device bytes / bytes on disk
FLUSH_SHARE = 0.25  # of each store's time


def row(**fields) -> dict:
    base = dict.fromkeys(measure.ROW_FIELDS, float("nan"))
    base.update(
        variant="default",
        image_size=32,
        inner_repeat=1,
        eviction="n/a",
        read_pattern="whole",
        readahead="on",
        readers=1,
        batch_size=64,
        seed=0,
        fsync="per_file",
        gc="disabled",
        host=HOST,
        cpu_count=4,
        load_1min=0.5,
        cpu_pressure_pct=1.0,
        io_pressure_pct=20.0,
        store_fs_type="ext4",
        env_id=ENV_ID,
    )
    base.update(fields)
    base["images_per_s"] = base["images_read"] / base["seconds"]
    return base


def timings(key, base) -> list[list[float]]:
    """Seconds of each timed repetition of each store at one point."""
    if key in NINE:
        return NINE[key]
    return [[seconds] for seconds in NOISY.get(key) or [base * f for f in FACTORS]]


def make_rows() -> list[dict]:
    """42 rows: 2 methods x 2 cutoffs x 3 stores x (store, cold read, warm read), one timed
    repetition each but for the NINE point (three each), one after the other in time (a
    one-second gap between measurements)."""
    rows = []
    clock = T0
    for (method, operation, cache), by_cutoff in BASE_SECONDS.items():
        for cutoff, base in by_cutoff.items():
            per_store = timings((method, operation, cache, cutoff), base)
            for repeat, times in enumerate(per_store, start=1):
                disk = DISK[(method, cutoff)][repeat - 1]
                for inner, seconds in enumerate(times, start=1):
                    fields = {
                        "method": method,
                        "operation": operation,
                        "cutoff": cutoff,
                        "repeat": repeat,
                        "inner_repeat": inner,
                        "cache": cache,
                        "images_read": cutoff,
                        "seconds": seconds,
                        "bytes_on_disk": disk,
                        "bytes_apparent": disk - 1000,
                        "n_files": cutoff + 1 if method == "png" else 2,
                        "t_start_unix": clock,
                        "t_end_unix": clock + seconds,
                    }
                    if operation == "store":
                        fields.update(
                            read_pattern="n/a",
                            readahead="n/a",
                            batch_size="",
                            seed="",
                            write_seconds=seconds * (1 - FLUSH_SHARE),
                            flush_seconds=seconds * FLUSH_SHARE,
                        )
                    else:
                        cold = cache == "cold"
                        fields.update(
                            eviction="fadvise" if cold else "none",
                            bytes_requested=cutoff * 3072,
                            device_read_bytes=disk * DEVICE_PER_DISK[method] if cold else 0,
                            cached_fraction=COLD_CACHED[repeat - 1] if cold else 1.0,
                        )
                    rows.append(row(**fields))
                    clock += seconds + 1.0
    return rows


def write_rows(rows, directory: Path) -> list[Path]:
    """One file per row, as the harness writes them (a job's file may hold several)."""
    paths = []
    for index, item in enumerate(rows):
        path = directory / f"row{index:03}.csv"
        formatted = dict(item)
        for key in ("t_start_unix", "t_end_unix"):
            formatted[key] = f"{item[key]:.6f}"
        measure.write_rows([formatted], path)
        paths.append(path)
    return paths


ENVIRONMENT = {
    "env_id": ENV_ID,
    "host": HOST,
    "cpu_model": "Test CPU 9000",
    "cpu_count": 4,
    "ram_bytes": 8 * 1024**3,
    "os": "Linux",
    "kernel": "6.1",
    "store_fs_type": "ext4",
    "store_mount": "/",
    "python": "3.11.0",
    "git_commit": "abc",
}


@pytest.fixture
def tables(tmp_path):
    paths = write_rows(make_rows(), tmp_path / "rows")
    rows = aggregate.load_rows(paths)
    stats = aggregate.summarise(rows)
    disk = aggregate.disk_usage_table(rows)
    return rows, stats, disk


def markdown_section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else len(text)]


def table_body(section: str) -> list[list[str]]:
    """Cells of every body row of the first table in ``section``."""
    lines = []
    for line in section[section.index("\n|") + 1 :].splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def table_rows(section: str) -> dict[str, list[str]]:
    """First-column name -> the other cells of its row (names are unique in the table)."""
    body = table_body(section)
    names = [cells[0] for cells in body]
    assert len(names) == len(set(names)), names
    return {cells[0]: cells[1:] for cells in body}


def test_load_rows_is_the_tidy_table(tables):
    rows, _, _ = tables
    assert len(rows) == 42
    assert list(rows.columns) == measure.ROW_FIELDS
    assert (rows["operation"].iloc[:12] == "store").all()
    assert (rows["operation"].iloc[12:] == "read").all()
    stores = rows[rows["operation"] == "store"]
    assert stores["read_pattern"].eq("n/a").all() and stores["readahead"].eq("n/a").all()
    assert stores["cached_fraction"].isna().all()
    assert rows["fsync"].eq("per_file").all()
    nine = rows[(rows["method"] == "npy") & (rows["cache"] == "warm") & (rows["cutoff"] == 100)]
    assert list(zip(nine["repeat"], nine["inner_repeat"], strict=True)) == [
        (r, i) for r in (1, 2, 3) for i in (1, 2, 3)
    ]
    assert list(nine["seconds"]) == [
        s for store in NINE[("npy", "read", "warm", 100)] for s in store
    ]
    with pytest.raises(ValueError, match="no timing rows"):
        aggregate.load_rows([])


def test_stats_per_point(tables):
    rows, stats, _ = tables
    assert len(stats) == 12
    # Recompute every point from the generated values, without pandas.
    generated = {}
    for item in make_rows():
        key = (item["method"], item["operation"], item["cache"], item["cutoff"])
        generated.setdefault(key, []).append(item)
    assert len(generated) == 12
    for point in stats.itertuples():
        items = generated[(point.method, point.operation, point.cache, point.cutoff)]
        seconds = np.array([i["seconds"] for i in items])
        assert point.n == len(items)
        assert point.series == point.method
        by_store = {}
        for i in items:
            by_store.setdefault(i["repeat"], []).append(i["seconds"])
        store_medians = [np.median(times) for times in by_store.values()]
        assert point.median_s == pytest.approx(np.median(store_medians))
        assert point.min_s == pytest.approx(seconds.min())
        assert point.max_s == pytest.approx(seconds.max())
        q25, q75 = np.percentile(seconds, [25, 75])
        assert point.q25_s == pytest.approx(q25)
        assert point.q75_s == pytest.approx(q75)
        assert point.iqr_s == pytest.approx(q75 - q25)
        assert point.mean_s == pytest.approx(seconds.mean())
        assert point.std_s == pytest.approx(seconds.std(ddof=1))
        assert point.cv == pytest.approx(seconds.std(ddof=1) / seconds.mean())
        assert point.median_images_per_s == pytest.approx(
            np.median([point.cutoff / median for median in store_medians])
        )
        assert point.median_bytes_on_disk == np.median([i["bytes_on_disk"] for i in items])
        assert not point.busy and point.max_load_1min == 0.5
        if point.cache == "cold":
            assert point.median_cached_fraction == pytest.approx(0.01)
            assert point.max_cached_fraction == pytest.approx(0.02)
            assert point.eviction == "fadvise"
        elif point.cache == "n/a":
            assert math.isnan(point.median_cached_fraction)
            assert point.median_write_seconds == pytest.approx(0.75 * point.median_s)
            assert point.median_flush_seconds == pytest.approx(0.25 * point.median_s)
            assert math.isnan(point.device_bytes_per_requested)
        # 3 stores: min and max of the store medians, at their true coverage 1 - 2 / 8
        assert (point.ci_low, point.ci_high) == (min(store_medians), max(store_medians))
        assert point.ci_level == 0.75 and point.stores == 3

    by = stats.set_index(["method", "operation", "cache", "cutoff"])
    nine = by.loc[("npy", "read", "warm", 100)]
    assert (nine["n"], nine["stores"], nine["inner_repeats"]) == (9, 3, 3)
    # the stores' min–max at 75 %, never the 96.1 % of ranks 2 and 8 of the nine timings
    assert (nine["median_s"], nine["ci_low"], nine["ci_high"]) == (2.0, 1.99, 2.01)
    assert nine["ci_level"] == 0.75
    assert nine["ci_halfwidth_rel"] == pytest.approx(0.005)
    # images/s: 100 / seconds, each store's median 100 / its median seconds
    assert nine["median_images_per_s"] == pytest.approx(50.0)
    assert nine["ci_images_per_s_low"] == pytest.approx(100 / 2.01)
    assert nine["ci_images_per_s_high"] == pytest.approx(100 / 1.99)
    assert nine["ci_images_per_s_level"] == 0.75
    noisy = by.loc[("png", "store", "n/a", 10)]
    assert noisy["median_s"] == 4.0
    assert noisy["iqr_s"] == pytest.approx(1.0)  # quartiles 3.5 and 4.5
    assert noisy["cv"] == pytest.approx(0.25)
    assert noisy["ci_halfwidth_rel"] == pytest.approx(0.25)  # max(4 - 3, 5 - 4) / 4
    assert by.loc[("png", "store", "n/a", 100), "cv"] == pytest.approx(0.02)
    assert by.loc[("png", "store", "n/a", 100), "ci_halfwidth_rel"] == pytest.approx(0.02)
    # device bytes per requested byte: npy 36,864 / 30,720; png 1.5 x 40,960 / 30,720
    assert by.loc[("npy", "read", "cold", 10), "device_bytes_per_requested"] == 1.2
    assert by.loc[("png", "read", "cold", 10), "device_bytes_per_requested"] == 2.0
    assert by.loc[("png", "read", "warm", 10), "device_bytes_per_requested"] == 0.0


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


def test_busy_rows_without_foreign_cpu_fall_back_to_load_and_pressure():
    # rows recorded before foreign CPU time was measured (no such columns):
    # load 4.5 > 1.0 x 4 cores; pressure 50 % with 1 or 2 readers on 4 cores; not with 4
    # readers on 4 cores (they cause it); unrecorded values are no evidence either way
    assert aggregate.judged_by_load(busy_frame()).all()
    busy = aggregate.busy_rows(busy_frame(), aggregate.DEFAULT_BUSY)
    assert list(busy) == [False, True, False, True, False, True, False]
    relaxed = aggregate.busy_rows(busy_frame(), {"load_per_core": 2.0, "cpu_pressure_pct": 60.0})
    assert not relaxed.any()
    # a threshold left out of the configuration keeps its default
    assert list(aggregate.busy_rows(busy_frame(), {"load_per_core": 2.0})) == [
        *(False, False, False, True, False, True, False)
    ]


def test_busy_points_are_flagged_in_the_summary(tables):
    rows, _, disk = tables
    loaded = rows.copy()
    second = loaded.index[(loaded["method"] == "png") & (loaded["cutoff"] == 10)][1]
    assert loaded.loc[second, "operation"] == "store"
    loaded.loc[second, "load_1min"] = 9.0
    stats = aggregate.summarise(loaded, busy=aggregate.DEFAULT_BUSY)
    flagged = stats[stats["busy"]]
    assert flagged[["method", "operation", "cutoff"]].values.tolist() == [["png", "store", 10]]
    text = aggregate.summary_markdown(
        loaded, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1, busy=aggregate.DEFAULT_BUSY
    )
    quiet = markdown_section(text, "## Quiet machine")
    assert "exceeded 0.25 of a core's time over the region" in quiet
    # these rows carry no foreign CPU time: the former rule judges them, and says so
    assert "42 of 42 timed operations carry no foreign CPU time" in quiet
    assert "above 1 x the host's cores" in quiet and "above 10 %" in quiet
    assert "1 of 12 points were measured on a busy machine and are left out" in quiet
    assert table_body(quiet) == [
        ["png", "32x32", "10", "store", "n/a", "9.00", "4", "1.0 %", "load, pressure"]
    ]
    assert "I/O pressure is recorded (highest 20.0 %) but not used for the flag" in quiet
    # the busy png store is left out of the store verdict and marked in its table
    small = markdown_section(text, "## 10 image(s) of 32x32")
    assert "store: only npy measured (png left out: busy)" in small
    assert table_rows(small)["png"][0] == "4 s (busy)"


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


def test_busy_rows_by_foreign_cpu():
    frame = foreign_frame()
    busy = aggregate.busy_rows(frame, aggregate.DEFAULT_BUSY)
    assert list(busy) == [True, False, True, False, False, True, True]
    assert list(aggregate.judged_by_load(frame)) == [False] * 5 + [True, False]
    # 0.009 s over 10 ms: a core throughout would be 0.01 s, within 0.008 s of the
    # threshold's 0.0025 s: too short to tell
    short = aggregate.too_short_to_judge(frame, aggregate.DEFAULT_BUSY)
    assert list(short) == [False, False, True, True, False, False, False]
    cores = aggregate.foreign_cpu_cores(frame)
    assert cores.iloc[0] == pytest.approx(0.6) and cores.iloc[6] == pytest.approx(0.3)
    # the resolution is subtracted: 0.2 s over 1 s is busy at 0.15 of a core, and only
    # by more than 8 ms
    assert aggregate.busy_rows(frame, {"foreign_cpu_cores": 0.15}).iloc[1]
    assert not aggregate.busy_rows(frame, {"foreign_cpu_cores": 0.193}).iloc[1]
    # rows lacking even load and pressure (another tool's frame) are not busy
    assert not aggregate.busy_rows(pd.DataFrame({"seconds": [1.0]})).any()


def test_busy_points_are_left_out_of_verdicts_and_the_format_table(tables, tmp_path):
    base_rows, _, _ = tables
    extra = aggregate.load_rows(write_rows(pattern_rows(), tmp_path / "patterns"))
    rows = pd.concat([base_rows, extra], ignore_index=True)
    rows["foreign_cpu_seconds"] = 0.0
    rows["foreign_cpu_resolution_seconds"] = 0.008
    rows["foreign_cpu_span_seconds"] = rows["seconds"]
    # npy, the fastest, was measured beside another process at its shuffled reads and
    # its cold whole read of 10 images: half a core of others' CPU over one timing each
    shuffled = (rows["method"] == "npy") & (rows["read_pattern"] == "shuffled")
    cold = (rows["method"] == "npy") & (rows["cache"] == "cold") & (rows["cutoff"] == 10)
    for chosen in (shuffled, cold):
        first = rows.index[chosen][0]
        rows.loc[first, "foreign_cpu_seconds"] = 0.5 * rows.loc[first, "seconds"]
    rows["load_1min"] = 9.0  # context only: it no longer decides
    stats = aggregate.summarise(rows)
    text = summary(rows, stats, aggregate.disk_usage_table(rows))
    small = markdown_section(text, "## 10 image(s) of 32x32")
    assert "cold read: only png measured (npy left out: busy)" in small
    assert table_rows(small)["npy"][4] == "1.5 s (busy)"
    section = markdown_section(text, "## Which format for which access pattern")
    # the table shows the largest cutoff: the busy cold read of 10 images is not in it
    assert "\n1 of these " in section
    assert " read points were measured on a busy machine" in section
    body = {cells[0]: cells[1:] for cells in table_body(section)}
    shuffled_cells = body["shuffled, readahead on, 2 reader(s), cold"]
    assert shuffled_cells[0] == "**lmdb** 1.01 s [0.9898, 1.03] (npy left out: busy)"
    assert shuffled_cells[1] == "n/a"  # npy, the baseline, was busy
    quiet = markdown_section(text, "## Quiet machine")
    assert "2 of " in quiet and " points were measured on a busy machine and are left out" in quiet
    assert "Others' CPU time over the" in quiet and "highest 0.50 of a core" in quiet
    assert "carry no foreign CPU time" not in quiet
    assert [cells[-1] for cells in table_body(quiet)] == ["foreign CPU", "foreign CPU"]
    patterns = markdown_section(text, "## Access patterns and parallel readers")
    assert "(npy left out: busy)" in patterns and " (busy) |" in patterns
    assert [cells[4] for cells in table_body(quiet)] == ["0.50 cores", "0.50 cores"]


def test_verdicts_with_every_point_busy_give_none():
    points = pd.DataFrame(
        {
            "series": ["npy", "png"],
            "median_s": [1.0, 2.0],
            "ci_low": [0.9, 1.9],
            "ci_high": [1.1, 2.1],
            "ci_level": [0.75, 0.75],
            "busy": [True, True],
        }
    )
    assert aggregate.time_verdict(points, "store") == (
        "store: no verdict (npy and png measured on a busy machine)"
    )
    assert aggregate._fastest_cell(points) == "no verdict: npy and png measured on a busy machine"
    quiet = points.assign(busy=[False, True])
    assert aggregate.time_verdict(quiet, "store") == "store: only npy measured (png left out: busy)"


def test_disk_usage_table(tables):
    _, _, disk = tables
    assert len(disk) == 4
    table = disk.set_index(["method", "cutoff"])
    for (method, cutoff), values in DISK.items():
        point = table.loc[(method, cutoff)]
        median = int(np.median(values))
        assert point["bytes_on_disk"] == median
        assert (point["min_bytes_on_disk"], point["max_bytes_on_disk"]) == (
            min(values),
            max(values),
        )
        assert point["bytes_apparent"] == median - 1000
        assert point["n_files"] == (cutoff + 1 if method == "png" else 2)
        assert point["bytes_per_image"] == pytest.approx(median / cutoff)
        assert point["raw_bytes_per_image"] == 32 * 32 * 3
        assert point["overhead_vs_raw"] == pytest.approx(median / cutoff / 3072)
    assert table.loc[("png", 10), "human_on_disk"] == "40.0 KiB"
    assert table.loc[("npy", 100), "human_on_disk"] == "304.0 KiB"


def test_disk_usage_markdown(tables):
    _, _, disk = tables
    text = aggregate.disk_usage_markdown(disk)
    section = markdown_section(text, "## 32x32 images")
    assert "| 32x32 method \\ images | 10 | 100 |" in section
    cells = table_rows(section)
    assert cells["npy"] == ["36.0 KiB (36,864 B)", "304.0 KiB (311,296 B)"]
    assert cells["png"] == ["40.0 KiB (40,960 B)", "400.0 KiB (409,600 B)"]
    per_image = table_rows(markdown_section(text, "## Bytes on disk per image"))
    # Largest cutoff: 311,296 B / 100 images = 3,112.96 B, 1.01x the raw 3,072 B.
    assert per_image["npy"] == ["3.0 KiB (1.01x raw)"]
    assert per_image["png"] == ["4.0 KiB (1.33x raw)"]


def summary(rows, stats, disk, threshold=0.1) -> str:
    return aggregate.summary_markdown(rows, stats, disk, {ENV_ID: ENVIRONMENT}, threshold)


def test_summary_ratios_to_png_and_npy(tables):
    rows, stats, disk = tables
    text = summary(rows, stats, disk)
    assert "42 timed operations: 3 independent store(s) per point" in text
    assert "each timed up to 3 time(s) in its job; n = 3–9 per point" in text
    small = markdown_section(text, "## 10 image(s) of 32x32")
    assert (
        "fastest store: **npy** (2 s, 75.0% interval 1.96–2.04 s); "
        "fastest cold read: **npy** (1.5 s, 75.0% interval 1.47–1.53 s); "
        "fastest warm read: **npy** (0.25 s, 75.0% interval 0.245–0.255 s); "
        "smallest on disk: **npy** (36.0 KiB; next png, 4.0 KiB or 11.1% more)."
    ) in small
    header = next(line for line in small.splitlines() if line.startswith("| method"))
    assert header.startswith("| method | store | vs png | vs npy | of which flush | cold read |")
    cells = table_rows(small)
    # store, vs png, vs npy, of which flush; cold read ...; warm read ...; on disk ...
    assert cells["npy"] == [
        *("2 s", "0.5x", "1x", "0.5 s"),
        *("1.5 s", "0.5x", "1x"),
        *("0.25 s", "0.25x", "1x"),
        *("36.0 KiB", "0.9x", "1x"),
    ]
    assert cells["png"] == [
        *("4 s", "1x", "2x", "1 s"),
        *("3 s", "1x", "2x"),
        *("1 s", "1x", "4x"),
        *("40.0 KiB", "1x", "1.11x"),
    ]
    large_section = markdown_section(text, "## 100 image(s) of 32x32")
    # n = 9 but 3 stores: the interval is the stores' min–max at 75 %
    assert "fastest warm read: **npy** (2 s, 75.0% interval 1.99–2.01 s)" in large_section
    large = table_rows(large_section)
    assert large["npy"][:10] == [
        *("10 s", "0.25x", "1x", "2.5 s"),
        *("6 s", "0.2x", "1x"),
        *("2 s", "0.2x", "1x"),
    ]
    assert large["png"][:4] == ["40 s", "1x", "4x", "10 s"]

    cold_warm = table_body(markdown_section(text, "## Cold / warm read ratio"))
    assert cold_warm == [
        ["npy", "32x32", "10", "1.5 s", "0.25 s", "6x"],
        ["npy", "32x32", "100", "6 s", "2 s", "3x"],
        ["png", "32x32", "10", "3 s", "1 s", "3x"],
        ["png", "32x32", "100", "30 s", "10 s", "3x"],
    ]
    assert "## Access patterns" not in text  # only whole reads by one reader


def point_rows(seconds: dict, disk: dict) -> list[dict]:
    """Rows of one point (10 images of 32x32): ``seconds[(method, operation, cache)]`` are
    the timings of three stores, ``disk[method]`` their bytes on disk."""
    rows = []
    clock = T0
    for (method, operation, cache), times in seconds.items():
        for repeat, value in enumerate(times, start=1):
            extra = (
                {"read_pattern": "n/a", "readahead": "n/a"}
                if operation == "store"
                else {"eviction": "fadvise" if cache == "cold" else "none"}
            )
            rows.append(
                row(
                    method=method,
                    operation=operation,
                    cache=cache,
                    cutoff=10,
                    repeat=repeat,
                    images_read=10,
                    seconds=value,
                    bytes_on_disk=disk[method][repeat - 1],
                    bytes_apparent=disk[method][repeat - 1],
                    n_files=2,
                    t_start_unix=clock,
                    t_end_unix=clock + value,
                    **extra,
                )
            )
            clock += value + 1
    return rows


def point_summary(tmp_path, seconds, disk) -> str:
    rows = aggregate.load_rows(write_rows(point_rows(seconds, disk), tmp_path))
    text = summary(rows, aggregate.summarise(rows), aggregate.disk_usage_table(rows))
    return markdown_section(text, "## 10 image(s) of 32x32").splitlines()[2]


def test_winner_only_when_intervals_are_clear(tmp_path):
    """Intervals (min-max of three) npy 1.0-1.2 s and png 1.3-1.5 s do not overlap: npy is
    fastest. On disk npy's 36,864 B every time lies below hdf5's 40,960-45,056 B."""
    verdict = point_summary(
        tmp_path,
        {
            ("npy", "store", "n/a"): [1.0, 1.1, 1.2],
            ("png", "store", "n/a"): [1.3, 1.4, 1.5],
            ("hdf5", "store", "n/a"): [3.0, 3.1, 3.2],
        },
        {"npy": [36864] * 3, "png": [49152] * 3, "hdf5": [40960, 45056, 40960]},
    )
    assert verdict == (
        "fastest store: **npy** (1.1 s, 75.0% interval 1–1.2 s); "
        "smallest on disk: **npy** (36.0 KiB; next hdf5, 4.0 KiB or 11.1% more)."
    )


def test_overlapping_intervals_are_a_tie(tmp_path):
    """npy 1.0-1.2 s and png 1.15-1.4 s overlap, hdf5 3.0-3.2 s does not: no clear fastest
    store. Cold reads are clear. Equal bytes on disk (npy, hdf5) are a tie."""
    verdict = point_summary(
        tmp_path,
        {
            ("npy", "store", "n/a"): [1.0, 1.1, 1.2],
            ("png", "store", "n/a"): [1.15, 1.3, 1.4],
            ("hdf5", "store", "n/a"): [3.0, 3.1, 3.2],
            ("npy", "read", "cold"): [1.0, 1.1, 1.2],
            ("png", "read", "cold"): [2.0, 2.1, 2.2],
            ("hdf5", "read", "cold"): [1.25, 1.3, 1.4],
        },
        {"npy": [36864] * 3, "png": [49152] * 3, "hdf5": [36864] * 3},
    )
    assert verdict == (
        "store: no clear difference between npy and png; "
        "fastest cold read: **npy** (1.1 s, 75.0% interval 1–1.2 s); "
        "smallest on disk: hdf5 and npy, the same 36.0 KiB each."
    )


def test_same_bytes_on_disk_are_named_together_never_one_smallest(tmp_path):
    """One image: hdf5, npy and png each take the same 8 KiB (a block or two), lmdb more.
    The sentence names the three as a tie, not one of them (sorted first) as smallest."""
    stores = {(m, "store", "n/a"): [1.0, 1.1, 1.2] for m in ("hdf5", "lmdb", "npy", "png")}
    disk = {"hdf5": [8192] * 3, "npy": [8192] * 3, "png": [8192] * 3, "lmdb": [28672] * 3}
    verdict = point_summary(tmp_path, stores, disk)
    assert "smallest on disk: hdf5, npy and png, the same 8.0 KiB each." in verdict
    assert "**hdf5**" not in verdict


def test_a_clear_smallest_on_disk_gives_its_margin(tmp_path):
    """hdf5 one 4 KiB block below npy, both 5.9 MiB in the table: the sentence says by
    how much, so it does not contradict the rounded table."""
    stores = {(m, "store", "n/a"): [1.0, 1.1, 1.2] for m in ("hdf5", "npy", "png")}
    hdf5 = 6_180_864
    disk = {"hdf5": [hdf5] * 3, "npy": [hdf5 + 4096] * 3, "png": [8_200_000] * 3}
    verdict = point_summary(tmp_path, stores, disk)
    assert "smallest on disk: **hdf5** (5.9 MiB; next npy, 4.0 KiB or 0.1% more)." in verdict


def test_one_store_names_no_winner(tmp_path):
    """One store each: no interval, so the medians may lie apart by chance; the summary
    names the best median without calling it fastest, and says why there is no verdict."""
    verdict = point_summary(
        tmp_path,
        {("npy", "store", "n/a"): [1.0], ("png", "store", "n/a"): [1.3]},
        {"npy": [36864], "png": [49152]},
    )
    assert verdict.startswith(
        "store: best median npy, but every series had one store (no interval), so no verdict; "
    )
    assert "fastest" not in verdict


def test_one_store_has_no_interval_however_many_timings():
    """npy: one store timed five times, 1.00–1.04 s; png: three stores at 2.0–2.2 s. The
    five timings share one store's placement on disk: no interval and no verdict, said as
    such (an unknown interval overlaps every other, which alone would read "no clear
    difference")."""
    rows = [warm_read(store=1, inner=i + 1, seconds=1.0 + 0.01 * i) for i in range(5)]
    rows += [
        {**warm_read(store=s + 1, inner=1, seconds=2.0 + 0.1 * s), "method": "png"}
        for s in range(3)
    ]
    stats = aggregate.summarise(pd.DataFrame(rows))
    npy = stats.set_index("method").loc["npy"]
    assert (npy["n"], npy["stores"], npy["median_s"]) == (5, 1, 1.02)
    ends = ["ci_low", "ci_high", "ci_level", "ci_images_per_s_low", "ci_images_per_s_level"]
    assert npy[ends].isna().all() and math.isnan(npy["ci_halfwidth_rel"])
    assert aggregate.time_verdict(stats, "warm read") == (
        "warm read: best median npy, but npy had one store (no interval), so no verdict"
    )
    assert aggregate._fastest_cell(stats) == (
        "no clear winner: npy and png (best median npy 1.02 s; npy: one store, no interval)"
    )


def test_one_method_is_no_winner(tmp_path):
    verdict = point_summary(
        tmp_path, {("npy", "store", "n/a"): [1.0, 1.1, 1.2]}, {"npy": [36864] * 3}
    )
    assert verdict == "store: only npy measured; on disk: only npy measured."


def test_summary_interval_check(tables):
    rows, stats, disk = tables
    text = summary(rows, stats, disk)
    check = markdown_section(text, "## Interval check")
    assert "## Interval check (95 % interval of the median within ±10 %)" in check
    assert "3 stores 75 %" in check and "one store gives no interval" in check
    # 3 stores everywhere: min–max at 75 %, even for the n = 9 point
    assert "0 of 12 points have a 95 % interval within ±10 % of the median." in check
    assert "11 more have an interval within ±10 % that covers with less than 95 %." in check
    assert "1 point(s) reach further" in check
    assert table_rows(check) == {
        "png": [
            *("32x32", "10", "store", "3", "3"),
            *("4 s", "3–5 s", "75.0%", "±25.0%"),
        ]
    }
    assert "12 point(s) have no 95 % interval: too few stores" in check
    assert "- 12 point(s): min–max of 3 store medians, 75.0%" in check
    assert "widen" not in check and "timings, 75" not in check
    relaxed = markdown_section(summary(rows, stats, disk, 0.3), "## Interval check")
    assert "0 of 12 points have a 95 % interval within ±30 % of the median." in relaxed
    assert "12 more have an interval within ±30 %" in relaxed
    assert "reach further" not in relaxed


def test_summary_single_store_has_no_95_percent_interval(tables):
    rows, _, _ = tables
    first = rows[rows["repeat"] == 1].reset_index(drop=True)
    stats = aggregate.summarise(first)
    assert stats["cv"].isna().sum() == 11  # n = 1 everywhere but the NINE point
    text = summary(first, stats, aggregate.disk_usage_table(first))
    check = markdown_section(text, "## Interval check")
    assert "0 of 12 points have a 95 % interval" in check
    # one store everywhere, the NINE point's three timings included: no interval at all,
    # so none listed as reaching further, and no coverage of 0 %
    assert stats["ci_level"].isna().all()
    assert "- 12 point(s): one store, so no interval and no verdict" in check
    assert "reach further" not in check and "more have an interval" not in check
    assert "0.0%" not in check and "point(s): min–max" not in check


def test_summary_device_bytes_and_what_cold_meant(tables):
    rows, stats, disk = tables
    text = summary(rows, stats, disk)
    section = markdown_section(text, "## Bytes from the device")
    assert (
        "What cold meant: the store's pages were evicted before the clock with fadvise "
        "(12 timed reads); cold reads started with at most 2.0% of the store in the page "
        "cache (median 1.0%)."
    ) in section
    assert "Warm reads started with at least 100.0% of the store in the page cache." in section
    assert "### 32x32, 100 images" in section
    # npy: 311,296 B from the device for 307,200 B of pixels (its whole file);
    # png: 1.5 x 409,600 B on disk = 614,400 B, twice the pixels
    assert table_body(section) == [
        ["npy", "whole", "on", "1", "304.0 KiB", "300.0 KiB", "1.01x", "1x"],
        ["png", "whole", "on", "1", "600.0 KiB", "300.0 KiB", "2x", "1.5x"],
    ]
    assert "block device" not in section  # no /proc/diskstats figure recorded

    with_disk = rows.assign(disk_read_bytes=rows["device_read_bytes"] * 2)
    stats2 = aggregate.summarise(with_disk)
    section = markdown_section(summary(with_disk, stats2, disk), "## Bytes from the device")
    assert table_body(section)[0][-1] == "608.0 KiB"


def test_summary_quiet_machine_without_busy_points(tables):
    rows, stats, disk = tables
    quiet = markdown_section(summary(rows, stats, disk), "## Quiet machine")
    assert "No point was measured on a busy machine." in quiet
    assert "highest 1-minute load 0.50 on 4 cores, highest CPU pressure 1.0 %" in quiet
    unrecorded = rows.assign(load_1min=float("nan"), cpu_pressure_pct=float("nan"))
    text = summary(unrecorded, aggregate.summarise(unrecorded), disk)
    assert "No load average or pressure was recorded" in markdown_section(text, "## Quiet")


def test_summary_hygiene_and_environment(tables):
    rows, stats, disk = tables
    text = summary(rows, stats, disk)
    hygiene = markdown_section(text, "## Measurement hygiene")
    assert "No two timed operations overlapped on the same host." in hygiene
    assert (
        "Stores made durable with (fsync): per_file (12 timed stores). Median share of store "
        "time: writing 75.0%, flushing 25.0%."
    ) in hygiene
    environment = markdown_section(text, "## Environment")
    assert f"`{ENV_ID}`: {HOST}, Test CPU 9000 (4 cores), 8.0 GiB RAM, Linux 6.1" in environment

    shifted = rows.copy()
    second = shifted.index[1]
    shifted.loc[second, "t_start_unix"] = shifted.loc[0, "t_end_unix"] - 0.5
    clashed = summary(shifted, stats, disk)
    assert "**1 timed operations overlapped on the same host**" in clashed


def test_overlapping_timings(tables):
    rows, _, _ = tables
    assert aggregate.overlapping_timings(rows) == []

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
    assert aggregate.overlapping_timings(frame) == [
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
    assert aggregate.overlapping_timings(full) == [
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
    assert aggregate.overlapping_timings(back_to_back) == []


# pattern, readahead, readers, images read, {method: seconds factor}
PATTERNS = (
    ("shuffled", "on", 2, 100, {"png": 4.0, "npy": 1.0, "lmdb": 1.01}),
    ("random_single", "off", 1, 50, {"png": 4.0, "npy": 1.0}),
)


def pattern_rows() -> list[dict]:
    """Cold shuffled reads by two readers (npy and lmdb within each other's intervals) and
    random single-image reads with readahead off, of the 100-image stores."""
    rows = []
    clock = T0
    for pattern, readahead, readers, images_read, factors in PATTERNS:
        for method, factor in factors.items():
            for repeat, scale in enumerate(FACTORS, start=1):
                seconds = factor * scale
                latency = (
                    {}
                    if pattern == "shuffled"
                    else {
                        "latency_p50_us": 10.0 * factor * scale,
                        "latency_p95_us": 20.0 * factor * scale,
                        "latency_p99_us": 40.0 * factor * scale,
                        "latency_max_us": 80.0 * factor * scale,
                    }
                )
                rows.append(
                    row(
                        method=method,
                        operation="read",
                        cutoff=100,
                        repeat=repeat,
                        cache="cold",
                        eviction="fadvise",
                        read_pattern=pattern,
                        readahead=readahead,
                        readers=readers,
                        images_read=images_read,
                        bytes_requested=images_read * 3072,
                        device_read_bytes=images_read * 4096,
                        seconds=seconds,
                        bytes_on_disk=1,
                        bytes_apparent=1,
                        n_files=1,
                        cached_fraction=0.0,
                        t_start_unix=clock,
                        t_end_unix=clock + seconds,
                        **latency,
                    )
                )
                clock += seconds + 1
    return rows


def test_summary_access_patterns(tables, tmp_path):
    base_rows, _, _ = tables
    extra = aggregate.load_rows(write_rows(pattern_rows(), tmp_path / "patterns"))
    rows = pd.concat([base_rows, extra], ignore_index=True)
    stats = aggregate.summarise(rows)
    text = summary(rows, stats, aggregate.disk_usage_table(rows))
    section = markdown_section(text, "## Access patterns and parallel readers")
    # readahead varies, so every column names it; eviction does not, so it is said once
    assert "Every column: cold reads evicted with fadvise." in section
    header = next(line for line in section.splitlines() if line.startswith("| method"))
    keys = [cell.strip() for cell in header.strip("|").split(" | ")][1:]
    assert keys == [
        "whole, readahead on, 1 reader(s), cold",
        "whole, readahead on, 1 reader(s), warm",
        "shuffled, readahead on, 2 reader(s), cold",
        "random_single, readahead off, 1 reader(s), cold",
    ]
    throughput = table_rows(section.split("Fastest:")[0])
    npy = dict(zip(keys, throughput["npy"], strict=True))
    png = dict(zip(keys, throughput["png"], strict=True))
    lmdb = dict(zip(keys, throughput["lmdb"], strict=True))
    assert npy["shuffled, readahead on, 2 reader(s), cold"] == "100"  # 100 images in 1 s
    assert png["shuffled, readahead on, 2 reader(s), cold"] == "25"
    assert lmdb["shuffled, readahead on, 2 reader(s), cold"] == "99"
    assert lmdb["whole, readahead on, 1 reader(s), cold"] == ""  # not measured
    assert npy["random_single, readahead off, 1 reader(s), cold"] == "50"
    assert npy["whole, readahead on, 1 reader(s), cold"] == f"{100 / 6.0:,.0f}"
    fastest = section.split("Fastest:")[1]
    # npy 0.98-1.02 s and lmdb 0.99-1.03 s: images/s intervals overlap
    assert "- shuffled, readahead on, 2 reader(s), cold: no clear difference between npy " in (
        fastest
    )
    assert "between npy and lmdb\n" in fastest
    assert "- random_single, readahead off, 1 reader(s), cold: **npy** (50 images/s" in (fastest)
    # n = 9 in 3 stores: 100 / 2.01 .. 100 / 1.99 images/s at 75 %
    assert (
        "- whole, readahead on, 1 reader(s), warm: **npy** (50 images/s, 75.0% interval 50–50)"
    ) in fastest
    latency = table_rows(section.split("Random single-image latency")[1])
    assert latency["npy"] == ["off", "1", "cold", "10.0", "20.0", "40.0"]
    assert latency["png"] == ["off", "1", "cold", "40.0", "80.0", "160.0"]
    # Patterns other than whole stay out of the article-style tables.
    small = table_rows(markdown_section(text, "## 100 image(s) of 32x32"))
    assert small["npy"][4] == "6 s"
    device = table_body(markdown_section(text, "## Bytes from the device"))
    assert ["npy", "random_single", "off", "1", "200.0 KiB", "150.0 KiB", "1.33x", ""] in device


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (3 * 1024**4, "3.0 TiB"),
        (float("nan"), "n/a"),
    ],
)
def test_human_bytes(count, text):
    assert aggregate.human_bytes(count) == text


def test_series_name():
    assert series.series_name("png", "default") == "png"
    assert series.series_name("png", "level1") == "png:level1"


def test_baseline_is_stores_and_whole_reads_with_readahead_on():
    stats = pd.DataFrame(
        {
            "operation": ["store", "read", "read", "read", "read"],
            "read_pattern": ["n/a", "whole", "whole", "sequential", "shuffled"],
            "readahead": ["n/a", "on", "off", "on", "on"],
            "readers": [1, 1, 1, 1, 1],
        }
    )
    assert list(series.store_and_whole_reads(stats).index) == [0, 1]
    only_off = stats.assign(readahead=["n/a", "off", "off", "on", "on"])
    assert list(series.store_and_whole_reads(only_off).index) == [0, 1, 2]


def test_aggregate_script_writes_every_output(tmp_path, monkeypatch):
    """The Snakemake script, run with a stand-in ``snakemake`` object."""
    rows = write_rows(make_rows(), tmp_path / "rows")
    env_path = tmp_path / "envs" / "env.json"
    env_path.parent.mkdir()
    env_path.write_text(json.dumps(ENVIRONMENT))
    out = tmp_path / "results"
    outputs = {
        "timings": out / "timings.csv",
        "stats": out / "timings_stats.csv",
        "disk_csv": out / "disk_usage.csv",
        "disk_md": out / "disk_usage.md",
        "memory": out / "job_memory.csv",
        "summary": out / "summary.md",
        "environment": out / "environment.json",
    }
    benchmark = (
        tmp_path / "benchmarks" / "store" / "npy" / "default" / "32px" / "100" / "repeat1.tsv"
    )
    benchmark.parent.mkdir(parents=True)
    benchmark.write_text("s\th:m:s\tmax_rss\tmax_vms\n1.5\t0:00:01\t123.4\t500.0\n")
    smk = SimpleNamespace(
        input=SimpleNamespace(
            rows=[str(p) for p in rows], envs=[str(env_path)], benchmarks=[str(benchmark)]
        ),
        output=SimpleNamespace(**{k: str(v) for k, v in outputs.items()}),
        log=[str(tmp_path / "aggregate.log")],
        params=SimpleNamespace(interval_threshold=0.1, busy={"load_per_core": 0.1}),
    )
    monkeypatch.setattr(scriptlog, "setup", lambda _path: logging.getLogger("test_aggregate"))
    runpy.run_path(
        str(REPO / "workflow" / "scripts" / "aggregate.py"), init_globals={"snakemake": smk}
    )
    timings = pd.read_csv(outputs["timings"], keep_default_na=False, na_values=[""])
    assert len(timings) == 42 and list(timings.columns) == measure.ROW_FIELDS
    stats = pd.read_csv(outputs["stats"], keep_default_na=False, na_values=[""])
    assert len(stats) == 12 and sorted(set(stats["n"])) == [3, 9]
    assert set(stats["cache"]) == {"n/a", "cold", "warm"}  # "n/a" is a value, not missing
    assert {"ci_low", "ci_high", "ci_level", "ci_halfwidth_rel", "busy"} <= set(stats.columns)
    # load 0.5 > 0.1 x 4 cores: every point busy under this stricter threshold
    assert stats["busy"].all()
    disk = pd.read_csv(outputs["disk_csv"])
    assert sorted(disk["bytes_on_disk"]) == [36864, 40960, 311296, 409600]
    assert "| npy | 36.0 KiB (36,864 B)" in outputs["disk_md"].read_text()
    memory = pd.read_csv(outputs["memory"])
    sampled = memory.set_index(["method", "operation", "cutoff"])["snakemake_max_rss_mb"]
    assert sampled[("npy", "store", 100)] == 123.4
    assert sampled.drop(("npy", "store", 100)).isna().all()
    text = outputs["summary"].read_text()
    assert "0 of 12 points have a 95 % interval within ±10 % of the median." in text
    assert "12 of 12 points were measured on a busy machine" in text
    assert "above 0.1 x the host's cores or CPU pressure (PSI some avg10) above 10 %" in text
    assert json.loads(outputs["environment"].read_text()) == {ENV_ID: ENVIRONMENT}
    assert not list(out.glob("*.part"))


def warm_read(store: int, inner: int, seconds: float) -> dict:
    """One timed warm read of 10 images (npy) from store ``store``."""
    return row(
        method="npy",
        operation="read",
        cache="warm",
        cutoff=10,
        images_read=10,
        repeat=store,
        inner_repeat=inner,
        seconds=seconds,
    )


def test_interval_comes_from_the_store_medians_alone():
    """20 timings of one store at 1.0 s and one of another store at 5.0 s. The order
    statistics of the 21 timings (ranks 6 and 16) would give 1.0–1.0 at 97 %, hiding the
    second store; the stores are the independent units: median of the two store medians
    3.0, interval their min–max 1.0–5.0 at 50 %."""
    rows = [warm_read(store=1, inner=i + 1, seconds=1.0) for i in range(20)]
    rows.append(warm_read(store=2, inner=1, seconds=5.0))
    (point,) = aggregate.summarise(pd.DataFrame(rows)).itertuples()
    assert (point.n, point.stores, point.median_s) == (21, 2, 3.0)
    assert (point.ci_low, point.ci_high) == (1.0, 5.0)
    assert point.ci_level == 0.5  # min–max of 2 store medians: 1 - 2 / 4
    assert point.store_spread_rel == pytest.approx(4.0 / 3.0)
    # images/s the same way: store medians 10 and 2 images/s
    assert point.median_images_per_s == 6.0
    assert (point.ci_images_per_s_low, point.ci_images_per_s_high) == (2.0, 10.0)
    assert point.ci_images_per_s_level == 0.5


def test_no_column_says_widened(tables):
    _, stats, _ = tables
    assert not [column for column in stats.columns if "widen" in column]


def test_six_stores_give_a_95_percent_interval_of_their_medians():
    """Six stores of four timings each; store medians 1.0 … 1.5. For 6 store medians the
    95 % ranks are 1 and 6 (coverage 1 - 2 / 64), so 1.0–1.5, whatever the 24 timings
    (ranks 7 and 18 of them would give 1.1–1.4)."""
    rows = [
        warm_read(store=store + 1, inner=i + 1, seconds=1.0 + 0.1 * store)
        for store in range(6)
        for i in range(4)
    ]
    (point,) = aggregate.summarise(pd.DataFrame(rows)).itertuples()
    assert (point.ci_low, point.ci_high) == (1.0, pytest.approx(1.5))
    assert point.median_s == pytest.approx(1.25)
    assert point.ci_level == pytest.approx(1 - 2 / 64)


def test_summary_shows_stores_against_memory(tables):
    rows, stats, disk = tables
    # 8 GiB of RAM: no store of this table comes near it, so no section.
    assert "Stores against memory" not in summary(rows, stats, disk)
    # With 600 KiB of RAM the 100-image stores (304 and 400 KiB) are at least half of it.
    small_ram = {ENV_ID: {**ENVIRONMENT, "ram_bytes": 600 * 1024}}
    text = aggregate.summary_markdown(rows, stats, disk, small_ram, 0.1)
    section = markdown_section(text, "## Stores against memory (whole-store reads)")
    assert "this machine's memory (600.0 KiB)" in section
    lines = [
        line
        for line in section.splitlines()
        if line.startswith("| npy") or line.startswith("| png")
    ]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert {(c[0], c[2], c[5]) for c in cells} == {
        ("npy", "100", "cold"),
        ("npy", "100", "warm"),
        ("png", "100", "cold"),
        ("png", "100", "warm"),
    }
    npy_cold = next(c for c in cells if c[0] == "npy" and c[5] == "cold")
    assert npy_cold[3] == "304.0 KiB" and npy_cold[4] == f"{311296 / (600 * 1024):.2f}"
    assert npy_cold[6] == "1.0%"  # the median cached share before the cold reads


# --- method descriptions and joined environments -------------------------------------------

DESCRIPTIONS = {"png": "PNG files + labels.csv", "npy": "raw .npy array (baseline)"}


def test_descriptions_from_the_rows_reach_the_tables_and_the_summary(tmp_path):
    """The rows carry each method's DESCRIPTION; the statistics and disk tables keep it
    per method and the summary and disk_usage.md say what each method name stands for."""
    rows = [
        {**r, "method_description": DESCRIPTIONS[r["method"]], "variant": variant}
        for r in make_rows()
        for variant in (("default", "level1") if r["method"] == "png" else ("default",))
    ]
    loaded = aggregate.load_rows(write_rows(rows, tmp_path))
    stats = aggregate.summarise(loaded)
    disk = aggregate.disk_usage_table(loaded)
    for table in (stats, disk):
        assert dict(zip(table["method"], table["method_description"], strict=True)) == DESCRIPTIONS
    assert series.method_descriptions(stats) == DESCRIPTIONS
    summary = aggregate.summary_markdown(loaded, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1)
    methods_table = (
        "## Methods\n\n| method | description |\n|---|---|\n"
        "| npy | raw .npy array (baseline) |\n| png | PNG files + labels.csv |\n"
    )
    assert methods_table in summary
    assert methods_table in aggregate.disk_usage_markdown(disk)
    assert series.series_label("png:level1", DESCRIPTIONS) == "PNG files + labels.csv [level1]"
    assert series.series_label("npy", DESCRIPTIONS) == "raw .npy array (baseline)"


def test_rows_without_a_description_name_the_method(tables):
    _, stats, disk = tables[:3]
    assert series.method_descriptions(stats) == {"npy": "npy", "png": "png"}
    assert series.method_descriptions(disk.drop(columns="method_description")) == {
        "npy": "npy",
        "png": "png",
    }
    assert series.series_label("zarr:fast", {}) == "zarr [fast]"


def test_environment_json_joins_the_methods_of_one_environment(tmp_path):
    """Each job records its own method's versions; the jobs of one machine share an env_id
    and environment.json holds one record with every method's versions, under ``methods``
    and at the top level; a version reported two ways is kept as both."""
    jobs = [
        ("hdf5", {"h5py": "3.16.0", "hdf5_c": "1.14.6"}),
        ("hdf5", {"h5py": "3.16.0", "hdf5_c": "1.14.6"}),
        ("lmdb", {"lmdb": "3.0.0", "lmdb_c": "0.9.33"}),
        ("npy", {}),
        ("png", {"pillow": "13.0.0", "zlib": "1.3.1"}),
        ("png", {"pillow": "13.0.1", "zlib": "1.3.1"}),
    ]
    paths = []
    for index, (method, versions) in enumerate(jobs):
        path = tmp_path / f"job{index}.env.json"
        path.write_text(json.dumps({**ENVIRONMENT, "methods": {method: versions}}))
        paths.append(path)
    old = tmp_path / "old.env.json"  # written before the methods reported versions
    old_record = {**ENVIRONMENT, "env_id": "fedcba987654", "lmdb_c": "0.9.31"}
    old.write_text(json.dumps(old_record))
    environments = aggregate.load_environments([*paths, old])
    assert environments["fedcba987654"] == old_record
    joined = environments[ENV_ID]
    assert joined["methods"] == {
        "hdf5": {"h5py": "3.16.0", "hdf5_c": "1.14.6"},
        "lmdb": {"lmdb": "3.0.0", "lmdb_c": "0.9.33"},
        "npy": {},
        "png": {"pillow": ["13.0.0", "13.0.1"], "zlib": "1.3.1"},
    }
    assert {k: joined[k] for k in ENVIRONMENT} == ENVIRONMENT
    assert (joined["h5py"], joined["hdf5_c"], joined["lmdb_c"]) == ("3.16.0", "1.14.6", "0.9.33")
    assert joined["pillow"] == ["13.0.0", "13.0.1"]


def test_summary_says_which_format_for_which_access_pattern(tables, tmp_path):
    base_rows, _, _ = tables
    extra = aggregate.load_rows(write_rows(pattern_rows(), tmp_path / "patterns"))
    rows = pd.concat([base_rows, extra], ignore_index=True)
    stats = aggregate.summarise(rows)
    text = summary(rows, stats, aggregate.disk_usage_table(rows))
    section = markdown_section(text, "## Which format for which access pattern")
    assert "Every read: cold reads evicted with fadvise." in section
    body = {cells[0]: cells[1:] for cells in table_body(section)}
    # npy 0.98-1.02 s and lmdb 0.99-1.03 s overlap: no winner is named
    shuffled = body["shuffled, readahead on, 2 reader(s), cold"]
    assert shuffled[0] == "no clear winner: npy and lmdb (best median npy 1 s)"
    # npy alone clear of png at random single reads, with its interval and the baseline
    single = body["random_single, readahead off, 1 reader(s), cold"]
    assert single[:2] == ["**npy** 1 s [0.98, 1.02]", "1x npy's time"]
    # smallest on disk among the series measured at that read, against npy
    assert single[2:] == ["**npy** 3.0 KiB/image", "1x npy's bytes"]


def test_methods_table_names_each_series_encoding_and_fidelity():
    frame = pd.DataFrame(
        {
            "method": ["png", "png", "npy"],
            "variant": ["default", "jpeg95", "default"],
            "series": ["png", "png:jpeg95", "npy"],
            "method_description": ["image files + labels.csv"] * 2 + ["raw .npy array"],
            "encoding": ["png", "jpeg q95 4:4:4", "raw"],
            "lossy": [False, True, False],
            "psnr_db": [float("nan"), 41.23, float("nan")],
            "psnr_min_db": [float("nan"), 37.06, float("nan")],
            "psnr_p01_db": [float("nan"), 38.44, float("nan")],
        }
    )
    body = {cells[0]: cells[1:] for cells in table_body(aggregate.methods_markdown(frame))}
    assert body["png"] == ["image files + labels.csv", "png", "exact"]
    assert body["png:jpeg95"] == [
        "image files + labels.csv",
        "jpeg q95 4:4:4",
        "lossy: PSNR 41.2 dB, 1st percentile 38.4 dB, worst image 37.1 dB",
    ]
    assert body["npy"] == ["raw .npy array", "raw", "exact"]
    # Rows written before the 1st percentile was recorded: the store's and the worst.
    older = aggregate.methods_markdown(frame.drop(columns="psnr_p01_db"))
    assert "| lossy: PSNR 41.2 dB, worst image 37.1 dB |" in older
    labels = series.series_encodings(frame)
    assert labels == {"png": "png", "png:jpeg95": "jpeg q95 4:4:4"}  # npy: raw, unnamed
    assert (
        series.series_label("png:jpeg95", {"png": "image files + labels.csv"}, labels)
        == "image files + labels.csv [jpeg95], jpeg q95 4:4:4"
    )


def test_smallest_on_disk_is_lossless_with_a_smaller_lossy_one_named_after_it():
    disk = pd.DataFrame(
        {
            "series": ["npy", "png", "png:jpeg95"],
            "cutoff": [10, 10, 10],
            "bytes_on_disk": [30720, 20480, 4096],
            "min_bytes_on_disk": [30720, 20480, 4096],
            "max_bytes_on_disk": [30720, 20480, 4096],
            "lossy": [False, False, True],
        }
    )
    assert aggregate._smallest_cell(disk) == (
        "**png** 2.0 KiB/image (lossy: png:jpeg95 410 B/image)"
    )
    assert aggregate._smallest_cell(disk[disk["series"] != "png:jpeg95"]) == (
        "**png** 2.0 KiB/image"
    )


def test_fastest_cell_names_each_tied_series_once():
    def point(series, median, low, high, level):
        return {
            "series": series,
            "median_s": median,
            "ci_low": low,
            "ci_high": high,
            "ci_level": level,
        }

    points = pd.DataFrame(
        [
            point("hdf5", 1.0, math.nan, math.nan, math.nan),  # one store: no interval
            point("npy", 1.1, math.nan, math.nan, math.nan),
            point("lmdb", 1.05, 0.9, 1.2, 0.75),
            point("png", 9.0, 8.0, 10.0, 0.75),
            point("zarr", 1.2, 1.0, 1.3, 0.75),
            point("wds", 1.15, 1.0, 1.3, 0.75),
        ]
    )
    cell = aggregate._fastest_cell(points)
    assert cell.startswith("no clear winner: hdf5, ")
    named = cell.split(": ", 1)[1].split(" (")[0]
    # hdf5 and npy (no interval) cannot be ruled out; png is clear of lmdb, the best
    # series with an interval, so it is out although hdf5's unknown interval "overlaps" it
    assert named == "hdf5, lmdb, npy, wds and 1 more"
    assert cell.endswith("(best median hdf5 1 s; hdf5 and npy: one store, no interval)")
