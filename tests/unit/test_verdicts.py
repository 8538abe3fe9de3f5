"""verdicts: a winner only when intervals are clear, ties, one store, busy points left out."""

from __future__ import annotations

import math

import pandas as pd
from results_fixtures import markdown_section, point_rows, summary, write_rows

from imgbench.results import footprint, load, points, verdicts


def point_summary(tmp_path, seconds, disk) -> str:
    rows = load.load_rows(write_rows(point_rows(seconds, disk), tmp_path))
    text = summary(rows, points.summarise(rows), footprint.disk_usage_table(rows))
    return markdown_section(text, "## 10 image(s) of 32x32").splitlines()[2]


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
    assert verdicts.time_verdict(points, "store") == (
        "store: no verdict (npy and png measured on a busy machine)"
    )
    assert verdicts.fastest_cell(points) == "no verdict: npy and png measured on a busy machine"
    quiet = points.assign(busy=[False, True])
    assert verdicts.time_verdict(quiet, "store") == "store: only npy measured (png left out: busy)"


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


def test_one_method_is_no_winner(tmp_path):
    verdict = point_summary(
        tmp_path, {("npy", "store", "n/a"): [1.0, 1.1, 1.2]}, {"npy": [36864] * 3}
    )
    assert verdict == "store: only npy measured; on disk: only npy measured."


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
    assert verdicts.smallest_cell(disk) == ("**png** 2.0 KiB/image (lossy: png:jpeg95 410 B/image)")
    assert verdicts.smallest_cell(disk[disk["series"] != "png:jpeg95"]) == ("**png** 2.0 KiB/image")


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
    cell = verdicts.fastest_cell(points)
    assert cell.startswith("no clear winner: hdf5, ")
    named = cell.split(": ", 1)[1].split(" (")[0]
    # hdf5 and npy (no interval) cannot be ruled out; png is clear of lmdb, the best
    # series with an interval, so it is out although hdf5's unknown interval "overlaps" it
    assert named == "hdf5, lmdb, npy, wds and 1 more"
    assert cell.endswith("(best median hdf5 1 s; hdf5 and npy: one store, no interval)")
