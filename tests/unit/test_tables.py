"""tables: the summary's per-cutoff tables, access patterns, the format choice and the methods."""

from __future__ import annotations

import pandas as pd
from results_fixtures import (
    markdown_section,
    pattern_rows,
    summary,
    table_body,
    table_rows,
    write_rows,
)

from imgbench.results import footprint, load, points, series
from imgbench.results.tables import methods_markdown


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


def test_summary_access_patterns(tables, tmp_path):
    base_rows, _, _ = tables
    extra = load.load_rows(write_rows(pattern_rows(), tmp_path / "patterns"))
    rows = pd.concat([base_rows, extra], ignore_index=True)
    stats = points.summarise(rows)
    text = summary(rows, stats, footprint.disk_usage_table(rows))
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


def test_summary_says_which_format_for_which_access_pattern(tables, tmp_path):
    base_rows, _, _ = tables
    extra = load.load_rows(write_rows(pattern_rows(), tmp_path / "patterns"))
    rows = pd.concat([base_rows, extra], ignore_index=True)
    stats = points.summarise(rows)
    text = summary(rows, stats, footprint.disk_usage_table(rows))
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


def buffered_rows() -> list[dict]:
    """The shuffled reads again as buffered_shuffle reads, where lmdb takes half npy's
    time (so the two shuffles have different winners), timed after them."""
    rows = []
    for one in pattern_rows():
        if one["read_pattern"] != "shuffled":
            continue
        factor = 0.5 if one["method"] == "lmdb" else 1.0
        seconds = one["seconds"] * factor
        start = one["t_start_unix"] + 10_000
        rows.append(
            {
                **one,
                "read_pattern": "buffered_shuffle",
                "shuffle_buffer": 1000,
                "seconds": seconds,
                "images_per_s": one["images_read"] / seconds,
                "t_start_unix": start,
                "t_end_unix": start + seconds,
            }
        )
    return rows


def test_exact_and_buffered_shuffles_are_separate_reads_of_the_format_table(tables, tmp_path):
    base_rows, _, _ = tables
    extra = load.load_rows(write_rows(pattern_rows() + buffered_rows(), tmp_path / "shuffles"))
    rows = pd.concat([base_rows, extra], ignore_index=True)
    stats = points.summarise(rows)
    text = summary(rows, stats, footprint.disk_usage_table(rows))
    section = markdown_section(text, "## Which format for which access pattern")
    reads = [cells[0] for cells in table_body(section)]
    exact, buffered = (
        f"{pattern}, readahead on, 2 reader(s), cold"
        for pattern in ("shuffled", "buffered_shuffle")
    )
    assert reads.index(buffered) == reads.index(exact) + 1  # the vocabulary's order
    body = {cells[0]: cells[1:] for cells in table_body(section)}
    assert body[exact][0] == "no clear winner: npy and lmdb (best median npy 1 s)"
    assert body[buffered][0] == "**lmdb** 0.505 s [0.4949, 0.5151]"
    note = section.split(table_body_end(section))[-1]
    assert (
        "over a sharded or streaming store (wds, parquet) would read it with buffered_shuffle"
        in (note)
    )
    assert (
        "an indexed store (npy, hdf5, lmdb, zarr, arrow, png files) can use the exact shuffled"
        in note
    )
    throughput = markdown_section(text, "## Access patterns and parallel readers")
    assert f"- {exact}: no clear difference between npy " in throughput
    assert f"- {buffered}: **lmdb** (198 images/s" in throughput


def table_body_end(section: str) -> str:
    """The last line of the last table of ``section``."""
    return [line for line in section.splitlines() if line.startswith("|")][-1]


def test_the_shuffle_note_needs_a_shuffle(tables):
    rows, stats, disk = tables  # whole reads only
    section = markdown_section(summary(rows, stats, disk), "## Which format for which access")
    assert "| whole, 1 reader(s), cold |" in section
    assert "training loop" not in section


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
            "read_path": ["one file read per image", "one file, jpeg", float("nan")],
        }
    )
    body = {cells[0]: cells[1:] for cells in table_body(methods_markdown(frame))}
    assert body["png"] == [
        "image files + labels.csv",
        "png",
        "one file read per image",
        "exact",
    ]
    assert body["png:jpeg95"] == [
        "image files + labels.csv",
        "jpeg q95 4:4:4",
        "one file, jpeg",
        "lossy: PSNR 41.2 dB, 1st percentile 38.4 dB, worst image 37.1 dB",
    ]
    # rows written before the read path was recorded say n/a
    assert body["npy"] == ["raw .npy array", "raw", "n/a", "exact"]
    # Rows written before the 1st percentile was recorded: the store's and the worst.
    older = methods_markdown(frame.drop(columns="psnr_p01_db"))
    assert "| lossy: PSNR 41.2 dB, worst image 37.1 dB |" in older
    labels = series.series_encodings(frame)
    assert labels == {"png": "png", "png:jpeg95": "jpeg q95 4:4:4"}  # npy: raw, unnamed
    assert (
        series.series_label("png:jpeg95", {"png": "image files + labels.csv"}, labels)
        == "image files + labels.csv [jpeg95], jpeg q95 4:4:4"
    )
