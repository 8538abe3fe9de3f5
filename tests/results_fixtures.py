"""Hand-made rows of a run and readers of the markdown they become, shared by the unit
tests of ``imgbench.results`` (load, busy, points, footprint, verdicts, tables,
summary, series and the aggregate script)."""

from __future__ import annotations

from pathlib import Path

from imgbench.harness import measure
from imgbench.results import footprint, load, points
from imgbench.results.summary import summary_markdown

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


def made_tables(tmp_path):
    """Rows, statistics and disk usage of ``make_rows``, as the aggregate step makes them."""
    paths = write_rows(make_rows(), tmp_path / "rows")
    rows = load.load_rows(paths)
    stats = points.summarise(rows)
    disk = footprint.disk_usage_table(rows)
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


def summary(rows, stats, disk, threshold=0.1) -> str:
    return summary_markdown(rows, stats, disk, {ENV_ID: ENVIRONMENT}, threshold)


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
