"""summary: the summary's prose sections on hand-made rows."""

from __future__ import annotations

import pandas as pd
from results_fixtures import (
    ENV_ID,
    ENVIRONMENT,
    HOST,
    make_rows,
    markdown_section,
    pattern_rows,
    summary,
    table_body,
    table_rows,
    write_rows,
)

from imgbench.results import busy as busy_rule
from imgbench.results import footprint, load, points, series
from imgbench.results.summary import summary_markdown

# --- method descriptions and joined environments -------------------------------------------

DESCRIPTIONS = {"png": "PNG files + labels.csv", "npy": "raw .npy array (baseline)"}


def test_busy_points_are_flagged_in_the_summary(tables):
    rows, _, disk = tables
    loaded = rows.copy()
    second = loaded.index[(loaded["method"] == "png") & (loaded["cutoff"] == 10)][1]
    assert loaded.loc[second, "operation"] == "store"
    loaded.loc[second, "load_1min"] = 9.0
    stats = points.summarise(loaded, busy=busy_rule.DEFAULT_BUSY)
    flagged = stats[stats["busy"]]
    assert flagged[["method", "operation", "cutoff"]].values.tolist() == [["png", "store", 10]]
    text = summary_markdown(
        loaded, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1, busy=busy_rule.DEFAULT_BUSY
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


def test_busy_points_are_left_out_of_verdicts_and_the_format_table(tables, tmp_path):
    base_rows, _, _ = tables
    extra = load.load_rows(write_rows(pattern_rows(), tmp_path / "patterns"))
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
    stats = points.summarise(rows)
    text = summary(rows, stats, footprint.disk_usage_table(rows))
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
    stats = points.summarise(first)
    assert stats["cv"].isna().sum() == 11  # n = 1 everywhere but the NINE point
    text = summary(first, stats, footprint.disk_usage_table(first))
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
    stats2 = points.summarise(with_disk)
    section = markdown_section(summary(with_disk, stats2, disk), "## Bytes from the device")
    assert table_body(section)[0][-1] == "608.0 KiB"


def test_summary_quiet_machine_without_busy_points(tables):
    rows, stats, disk = tables
    quiet = markdown_section(summary(rows, stats, disk), "## Quiet machine")
    assert "No point was measured on a busy machine." in quiet
    assert "highest 1-minute load 0.50 on 4 cores, highest CPU pressure 1.0 %" in quiet
    unrecorded = rows.assign(load_1min=float("nan"), cpu_pressure_pct=float("nan"))
    text = summary(unrecorded, points.summarise(unrecorded), disk)
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


def test_summary_shows_stores_against_memory(tables):
    rows, stats, disk = tables
    # 8 GiB of RAM: no store of this table comes near it, so no section.
    assert "Stores against memory" not in summary(rows, stats, disk)
    # With 600 KiB of RAM the 100-image stores (304 and 400 KiB) are at least half of it.
    small_ram = {ENV_ID: {**ENVIRONMENT, "ram_bytes": 600 * 1024}}
    text = summary_markdown(rows, stats, disk, small_ram, 0.1)
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


def test_descriptions_from_the_rows_reach_the_tables_and_the_summary(tmp_path):
    """The rows carry each method's DESCRIPTION; the statistics and disk tables keep it
    per method and the summary and disk_usage.md say what each method name stands for."""
    rows = [
        {**r, "method_description": DESCRIPTIONS[r["method"]], "variant": variant}
        for r in make_rows()
        for variant in (("default", "level1") if r["method"] == "png" else ("default",))
    ]
    loaded = load.load_rows(write_rows(rows, tmp_path))
    stats = points.summarise(loaded)
    disk = footprint.disk_usage_table(loaded)
    for table in (stats, disk):
        assert dict(zip(table["method"], table["method_description"], strict=True)) == DESCRIPTIONS
    assert series.method_descriptions(stats) == DESCRIPTIONS
    summary = summary_markdown(loaded, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1)
    methods_table = (
        "## Methods\n\n| method | description |\n|---|---|\n"
        "| npy | raw .npy array (baseline) |\n| png | PNG files + labels.csv |\n"
    )
    assert methods_table in summary
    assert methods_table in footprint.disk_usage_markdown(disk)
    assert series.series_label("png:level1", DESCRIPTIONS) == "PNG files + labels.csv [level1]"
    assert series.series_label("npy", DESCRIPTIONS) == "raw .npy array (baseline)"
