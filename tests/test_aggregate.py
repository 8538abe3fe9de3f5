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

from imgbench import aggregate, measure, scriptlog

REPO = Path(__file__).resolve().parents[1]
HOST = "hostA"
ENV_ID = "0123456789ab"
T0 = 1_700_000_000.0
FACTORS = (1.02, 0.98, 1.0)  # per repeat: median = base, CV = 2 %
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
# (method, cutoff) -> bytes on disk per repeat
DISK = {
    ("png", 10): [40960, 45056, 40960],
    ("npy", 10): [36864, 36864, 36864],
    ("png", 100): [409600, 409600, 413696],
    ("npy", 100): [311296, 311296, 311296],
}
COLD_CACHED = [0.0, 0.02, 0.01]


def row(**fields) -> dict:
    base = dict.fromkeys(measure.ROW_FIELDS, float("nan"))
    base.update(
        variant="default",
        image_size=32,
        read_pattern="sequential",
        readers=1,
        batch_size=64,
        seed=0,
        fsync=True,
        gc="disabled",
        host=HOST,
        store_fs_type="ext4",
        env_id=ENV_ID,
    )
    base.update(fields)
    base["images_per_s"] = base["images_read"] / base["seconds"]
    return base


def make_rows() -> list[dict]:
    """36 rows: 2 methods x 2 cutoffs x 3 repeats x (store, cold read, warm read), one
    after the other in time (a one-second gap between measurements)."""
    rows = []
    clock = T0
    for (method, operation, cache), by_cutoff in BASE_SECONDS.items():
        for cutoff, base in by_cutoff.items():
            times = NOISY.get((method, operation, cache, cutoff)) or [base * f for f in FACTORS]
            for repeat, seconds in enumerate(times, start=1):
                disk = DISK[(method, cutoff)][repeat - 1]
                fields = {
                    "method": method,
                    "operation": operation,
                    "cutoff": cutoff,
                    "repeat": repeat,
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
                    fields.update(read_pattern="n/a", batch_size="", seed="")
                else:
                    fields["cached_fraction"] = COLD_CACHED[repeat - 1] if cache == "cold" else 1.0
                rows.append(row(**fields))
                clock += seconds + 1.0
    return rows


def write_rows(rows, directory: Path) -> list[Path]:
    paths = []
    for index, item in enumerate(rows):
        path = directory / f"row{index:03}.csv"
        formatted = dict(item)
        for key in ("t_start_unix", "t_end_unix"):
            formatted[key] = f"{item[key]:.6f}"
        measure.write_row(formatted, path)
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
    assert len(rows) == 36
    assert list(rows.columns) == measure.ROW_FIELDS
    assert (rows["operation"].iloc[:12] == "store").all()
    assert (rows["operation"].iloc[12:] == "read").all()
    stores = rows[rows["operation"] == "store"]
    assert stores["read_pattern"].eq("n/a").all()
    assert stores["cached_fraction"].isna().all()
    assert rows["fsync"].astype(bool).all()


def test_load_rows_fills_axes_of_older_rows(tmp_path):
    old = pd.DataFrame(
        [
            {"method": "npy", "operation": "store", "cutoff": 10, "repeat": 1, "cache": "n/a"},
            {"method": "npy", "operation": "read", "cutoff": 10, "repeat": 1, "cache": "cold"},
        ]
    )
    old.to_csv(tmp_path / "old.csv", index=False)
    rows = aggregate.load_rows([tmp_path / "old.csv"])
    assert rows["variant"].eq("default").all()
    assert rows["image_size"].eq(32).all()
    assert rows["readers"].eq(1).all()
    assert rows["images_read"].eq(10).all()
    assert dict(zip(rows["operation"], rows["read_pattern"], strict=True)) == {
        "store": "n/a",
        "read": "sequential",
    }
    with pytest.raises(ValueError, match="no timing rows"):
        aggregate.load_rows([])


def test_stats_per_point(tables):
    rows, stats, _ = tables
    assert len(stats) == 12
    assert (stats["n"] == 3).all()
    # Recompute every point from the generated values, without pandas.
    generated = {}
    for item in make_rows():
        key = (item["method"], item["operation"], item["cache"], item["cutoff"])
        generated.setdefault(key, []).append(item)
    assert len(generated) == 12
    for point in stats.itertuples():
        items = generated[(point.method, point.operation, point.cache, point.cutoff)]
        seconds = np.array([i["seconds"] for i in items])
        assert point.series == point.method
        assert point.median_s == pytest.approx(np.median(seconds))
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
            np.median([i["images_read"] / i["seconds"] for i in items])
        )
        assert point.median_bytes_on_disk == np.median([i["bytes_on_disk"] for i in items])
        if point.cache == "cold":
            assert point.median_cached_fraction == pytest.approx(0.01)
        elif point.cache == "n/a":
            assert math.isnan(point.median_cached_fraction)
    noisy = stats[(stats["method"] == "png") & (stats["operation"] == "store")]
    noisy = noisy.set_index("cutoff")
    assert noisy.at[10, "median_s"] == 4.0
    assert noisy.at[10, "iqr_s"] == pytest.approx(1.0)  # quartiles 3.5 and 4.5
    assert noisy.at[10, "cv"] == pytest.approx(0.25)
    assert noisy.at[100, "cv"] == pytest.approx(0.02)


def test_disk_usage_table(tables):
    _, _, disk = tables
    assert len(disk) == 4
    table = disk.set_index(["method", "cutoff"])
    for (method, cutoff), values in DISK.items():
        point = table.loc[(method, cutoff)]
        median = int(np.median(values))
        assert point["bytes_on_disk"] == median
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


def test_summary_ratios_to_png_and_npy(tables):
    rows, stats, disk = tables
    text = aggregate.summary_markdown(rows, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1)
    assert "36 measurements; medians over 3 repeat(s)" in text
    small = markdown_section(text, "## 10 image(s) of 32x32")
    assert (
        "fastest store: **npy** (2 s); fastest cold read: **npy** (1.5 s); "
        "fastest warm read: **npy** (0.25 s); smallest on disk: **npy** (36.0 KiB)."
    ) in small
    cells = table_rows(small)
    # store, vs png, vs npy; cold read ...; warm read ...; on disk ...
    assert cells["npy"] == [
        *("2 s", "0.5x", "1x"),
        *("1.5 s", "0.5x", "1x"),
        *("0.25 s", "0.25x", "1x"),
        *("36.0 KiB", "0.9x", "1x"),
    ]
    assert cells["png"] == [
        *("4 s", "1x", "2x"),
        *("3 s", "1x", "2x"),
        *("1 s", "1x", "4x"),
        *("40.0 KiB", "1x", "1.11x"),
    ]
    large = table_rows(markdown_section(text, "## 100 image(s) of 32x32"))
    assert large["npy"][:9] == [
        *("10 s", "0.25x", "1x"),
        *("6 s", "0.2x", "1x"),
        *("2 s", "0.2x", "1x"),
    ]
    assert large["png"][:3] == ["40 s", "1x", "4x"]

    cold_warm = table_body(markdown_section(text, "## Cold / warm read ratio"))
    assert cold_warm == [
        ["npy", "32x32", "10", "1.5 s", "0.25 s", "6x"],
        ["npy", "32x32", "100", "6 s", "2 s", "3x"],
        ["png", "32x32", "10", "3 s", "1 s", "3x"],
        ["png", "32x32", "100", "30 s", "10 s", "3x"],
    ]
    assert "## Access patterns" not in text  # only sequential, one reader


def test_summary_flags_noisy_points(tables):
    rows, stats, disk = tables
    text = aggregate.summary_markdown(rows, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1)
    noise = markdown_section(text, "## Noise check (coefficient of variation above 10%)")
    assert "1 of 12 points are flagged" in noise
    flagged = table_rows(noise)
    assert list(flagged) == ["png"]
    assert flagged["png"] == [
        *("32", "store", "n/a", "n/a", "1", "10"),
        *("25.0%", "4 s", "3 s", "5 s"),
    ]
    relaxed = aggregate.summary_markdown(rows, stats, disk, {ENV_ID: ENVIRONMENT}, 0.3)
    assert "No point is noisier than the threshold." in relaxed
    assert "points are flagged" not in relaxed


def test_summary_single_repeat_cannot_compute_cv(tables):
    rows, _, _ = tables
    first = rows[rows["repeat"] == 1].reset_index(drop=True)
    stats = aggregate.summarise(first)
    assert stats["cv"].isna().all()
    text = aggregate.summary_markdown(
        first, stats, aggregate.disk_usage_table(first), {ENV_ID: ENVIRONMENT}, 0.1
    )
    assert "Only one repeat per point" in text


def test_summary_hygiene_and_environment(tables):
    rows, stats, disk = tables
    text = aggregate.summary_markdown(rows, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1)
    hygiene = markdown_section(text, "## Measurement hygiene")
    assert "No two timed operations overlapped on the same host." in hygiene
    assert "Stores fsync'd: True." in hygiene
    assert "at most 2.0% of the store in the page cache (median 1.0%)" in hygiene
    environment = markdown_section(text, "## Environment")
    assert f"`{ENV_ID}`: {HOST}, Test CPU 9000 (4 cores), 8.0 GiB RAM, Linux 6.1" in environment

    shifted = rows.copy()
    second = shifted.index[1]
    shifted.loc[second, "t_start_unix"] = shifted.loc[0, "t_end_unix"] - 0.5
    clashed = aggregate.summary_markdown(shifted, stats, disk, {ENV_ID: ENVIRONMENT}, 0.1)
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
        read_pattern=["n/a", "shuffled", "sequential", "n/a"],
        readers=[1, 4, 1, 1],
    )
    assert aggregate.overlapping_timings(full) == [
        (
            "png/default store 256px cutoff=10 repeat=1",
            "npy/default read 256px cutoff=10 repeat=1 cold shuffled readers=4",
        ),
        (
            "png/default store 256px cutoff=10 repeat=1",
            "lmdb/article read 256px cutoff=10 repeat=2 warm sequential readers=1",
        ),
    ]
    back_to_back = frame.assign(t_start_unix=[0.0, 1.0, 2.0, 0.0], t_end_unix=[1.0, 2.0, 3.0, 1.0])
    assert aggregate.overlapping_timings(back_to_back) == []


def pattern_rows() -> list[dict]:
    """Shuffled and random-single reads with one and two readers, for the patterns section."""
    rows = []
    clock = T0
    for method, factor in (("png", 4.0), ("npy", 1.0)):
        for pattern, readers, images_read in (("shuffled", 2, 100), ("random_single", 1, 50)):
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
                        read_pattern=pattern,
                        readers=readers,
                        images_read=images_read,
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
    text = aggregate.summary_markdown(
        rows, stats, aggregate.disk_usage_table(rows), {ENV_ID: ENVIRONMENT}, 0.1
    )
    section = markdown_section(text, "## Access patterns and parallel readers")
    header = next(line for line in section.splitlines() if line.startswith("| method"))
    assert "shuffled, 2 reader(s), cold" in header
    assert "random_single, 1 reader(s), cold" in header
    throughput = table_rows(section.split("Fastest:")[0])
    keys = [cell.strip() for cell in header.strip("|").split(" | ")][1:]
    npy = dict(zip(keys, throughput["npy"], strict=True))
    png = dict(zip(keys, throughput["png"], strict=True))
    assert npy["shuffled, 2 reader(s), cold"] == "100"  # 100 images in 1 s (median)
    assert png["shuffled, 2 reader(s), cold"] == "25"
    assert npy["random_single, 1 reader(s), cold"] == "50"
    assert npy["sequential, 1 reader(s), cold"] == f"{100 / 6.0:,.0f}"
    assert "- shuffled, 2 reader(s), cold: **npy** (100 images/s)" in section
    latency = table_rows(section.split("Random single-image latency")[1])
    assert latency["npy"] == ["1", "cold", "10.0", "20.0", "40.0"]
    assert latency["png"] == ["1", "cold", "40.0", "80.0", "160.0"]
    # Patterns other than sequential stay out of the article-style tables.
    small = table_rows(markdown_section(text, "## 100 image(s) of 32x32"))
    assert small["npy"][3] == "6 s"


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
    assert aggregate.series_name("png", "default") == "png"
    assert aggregate.series_name("png", "level1") == "png:level1"


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
        "summary": out / "summary.md",
        "environment": out / "environment.json",
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(rows=[str(p) for p in rows], envs=[str(env_path)]),
        output=SimpleNamespace(**{k: str(v) for k, v in outputs.items()}),
        log=[str(tmp_path / "aggregate.log")],
        params=SimpleNamespace(cv_threshold=0.1),
    )
    monkeypatch.setattr(scriptlog, "setup", lambda _path: logging.getLogger("test_aggregate"))
    runpy.run_path(
        str(REPO / "workflow" / "scripts" / "aggregate.py"), init_globals={"snakemake": smk}
    )
    timings = pd.read_csv(outputs["timings"], keep_default_na=False, na_values=[""])
    assert len(timings) == 36 and list(timings.columns) == measure.ROW_FIELDS
    stats = pd.read_csv(outputs["stats"], keep_default_na=False, na_values=[""])
    assert len(stats) == 12 and (stats["n"] == 3).all()
    assert set(stats["cache"]) == {"n/a", "cold", "warm"}  # "n/a" is a value, not missing
    disk = pd.read_csv(outputs["disk_csv"])
    assert sorted(disk["bytes_on_disk"]) == [36864, 40960, 311296, 409600]
    assert "| npy | 36.0 KiB (36,864 B)" in outputs["disk_md"].read_text()
    assert "1 of 12 points are flagged" in outputs["summary"].read_text()
    assert json.loads(outputs["environment"].read_text()) == {ENV_ID: ENVIRONMENT}
    assert not list(out.glob("*.part"))
