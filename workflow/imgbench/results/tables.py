"""The summary's tables of times and throughput, each with its verdicts: the methods, one
table per image size and cutoff (stores and whole-store reads against png and the
baseline), cold against warm reads, access patterns and parallel readers, and which format
for which access pattern. Each returns its markdown (``""`` when there is nothing to show).
"""

from __future__ import annotations

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results.busy import quiet_and_busy
from imgbench.results.markdown import markdown_table, ratio, seconds
from imgbench.results.points import keyed
from imgbench.results.series import (
    BASELINE,
    clients_text,
    is_many_clients,
    method_descriptions,
    store_and_whole_reads,
    whole_store_reads,
)
from imgbench.results.verdicts import (
    disk_verdict,
    fastest_cell,
    is_lossy,
    smallest_cell,
    throughput_verdict,
    time_candidates,
    time_verdict,
)
from imgbench.system.units import human_bytes

PATTERN_ORDER = {name: rank for rank, name in enumerate(vocabulary.PATTERNS)}
# The series each per-cutoff table gives a ratio to: PNG files, the common way to keep
# images, and the baseline.
RATIO_SERIES = ("png", BASELINE)
TIME_KEYS = ["series", "image_size", "cutoff", "operation", "cache", "eviction"]
DISK_POINT_KEYS = ["series", "image_size", "cutoff"]
# The axes of a read; a read by client processes (``clients`` >= 1) is a read of its own.
READ_AXES = ["read_pattern", "readahead", "readers", "nodes", "clients", "cache", "eviction"]
# The order of reads in the tables: by pattern and readahead, the job's own readers (clients
# 0) before reads by client processes, fewer before more.
READ_ORDER = ["readahead", "clients", "nodes", "readers", "cache", "eviction"]


# --- the methods -------------------------------------------------------------------------


def methods_markdown(frame: pd.DataFrame) -> str:
    """What each method named in the tables is: its description, and (from tables that
    carry them) each series' encoding, how its reader reads a batch (``read_path``; n/a
    for rows written before it was recorded) and whether it reads back exactly or lossy,
    with the store's PSNR."""
    descriptions = method_descriptions(frame)
    if "series" not in frame or "encoding" not in frame or frame["encoding"].isna().all():
        body = [[method, text] for method, text in descriptions.items()]
        return "## Methods\n\n" + markdown_table(["method", "description"], body)
    body = []
    for series, group in frame.groupby("series", sort=True):
        first = group.iloc[0]
        encoding = first["encoding"] if pd.notna(first["encoding"]) else "n/a"
        fidelity = lossy_fidelity(first) if first["lossy"] in (True, "True") else "exact"
        read_path = first.get("read_path")
        read_path = read_path if isinstance(read_path, str) and read_path else "n/a"
        description = descriptions.get(first["method"], first["method"])
        body.append([series, description, encoding, read_path, fidelity])
    header = ["method", "description", "images stored as", "random access reads", "read back"]
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


# --- one table per image size and cutoff ---------------------------------------------------


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


def busy_mark(point) -> str:
    """`` (busy)`` after the median of a point measured on a busy machine (a row of the
    statistics as a named tuple, or None)."""
    return " (busy)" if bool(getattr(point, "busy", False)) else ""


def _ratio_cells(value, lines: dict, key: tuple, column: str) -> list[str]:
    """``value`` against each of ``RATIO_SERIES`` at ``key`` (a key of ``lines`` less its
    series): one ratio cell each."""
    return [ratio(value, getattr(lines.get((name, *key)), column, None)) for name in RATIO_SERIES]


def _time_cells(points: dict, key: tuple, with_flush: bool) -> list[str]:
    point = points.get(key)
    value = getattr(point, "median_s", None)
    cells = [seconds(value) + busy_mark(point), *_ratio_cells(value, points, key[1:], "median_s")]
    if with_flush:
        cells.append(seconds(getattr(point, "median_flush_seconds", None)))
    return cells


def _point_table(here, columns, points, disk_by, size, cutoff) -> str:
    against = [f"vs {name}" for name in RATIO_SERIES]
    header = ["method"]
    for (operation, _, _), title in columns:
        header += [title, *against] + (["of which flush"] if operation == "store" else [])
    header += ["on disk", *against]
    body = []
    for series in sorted(here["series"].unique()):
        cells = [series]
        for (operation, cache, eviction), _ in columns:
            key = (series, size, cutoff, operation, cache, eviction)
            cells += _time_cells(points, key, operation == "store")
        on_disk = getattr(disk_by.get((series, size, cutoff)), "bytes_on_disk", None)
        cells.append(human_bytes(on_disk) if on_disk is not None else "n/a")
        cells += _ratio_cells(on_disk, disk_by, (size, cutoff), "bytes_on_disk")
        body.append(cells)
    return markdown_table(header, body)


def _cutoff_verdicts(here: pd.DataFrame, columns: list, sizes: pd.DataFrame) -> str:
    """The verdict of every timed column and of the bytes on disk, as one sentence."""
    verdicts = []
    for (operation, cache, eviction), title in columns:
        point = here[
            (here["operation"] == operation)
            & (here["cache"] == cache)
            & (here["eviction"] == eviction)
        ]
        if len(point):
            verdicts.append(time_verdict(point, title))
    if len(sizes):
        verdicts.append(disk_verdict(sizes))
    return "; ".join(verdicts) + ".\n\n"


def point_tables_markdown(stats: pd.DataFrame, disk: pd.DataFrame) -> str:
    """Per image size and cutoff: the verdicts, then stores and whole-store reads by one
    reader, each against png and the baseline, with the bytes on disk."""
    base = store_and_whole_reads(stats)
    columns = _columns(base)
    points = keyed(base, TIME_KEYS)
    disk_by = keyed(disk, DISK_POINT_KEYS)
    parts = []
    for size in sorted(base["image_size"].unique()):
        for cutoff in sorted(base.loc[base["image_size"] == size, "cutoff"].unique()):
            parts.append(f"\n## {cutoff:,} image(s) of {size}x{size}\n\n")
            here = base[(base["image_size"] == size) & (base["cutoff"] == cutoff)]
            sizes = disk[(disk["cutoff"] == cutoff) & (disk["image_size"] == size)]
            parts.append(_cutoff_verdicts(here, columns, sizes))
            parts.append(_point_table(here, columns, points, disk_by, size, cutoff))
    return "".join(parts)


# --- cold against warm -------------------------------------------------------------------


def cold_warm_markdown(stats: pd.DataFrame) -> str:
    """The cold / warm ratio of each whole-store read by one reader."""
    reads = store_and_whole_reads(stats)
    reads = reads[reads["operation"] == "read"]
    cold = reads[reads["cache"] == "cold"].sort_values(
        ["series", "image_size", "cutoff", "eviction"]
    )
    warm = keyed(reads[reads["cache"] == "warm"], DISK_POINT_KEYS)
    title = "\n## Cold / warm read ratio (whole store, one reader)\n\n"
    if cold.empty or not warm:
        return title + "Not measured (read_cache lacks cold or warm).\n"
    several = cold["eviction"].nunique() > 1
    body = []
    for r in cold.itertuples():
        warm_s = getattr(warm.get((r.series, r.image_size, r.cutoff)), "median_s", None)
        body.append(
            [r.series, f"{r.image_size}x{r.image_size}", f"{r.cutoff:,}"]
            + ([r.eviction] if several else [])
            + [seconds(r.median_s), seconds(warm_s), ratio(r.median_s, warm_s)]
        )
    header = ["method", "size", "images"] + (["eviction"] if several else [])
    return title + markdown_table(header + ["cold", "warm", "cold/warm"], body)


# --- reads by pattern, readahead, readers and cache ----------------------------------------


def readers_or_clients(key) -> str:
    """``2 reader(s)``, or ``2x2 clients`` for a read by client processes (a dict or a
    row of the statistics)."""
    values = key if isinstance(key, dict) else key._asdict()
    clients = values.get("clients", 0)
    if pd.notna(clients) and clients > 0:
        return clients_text(values.get("nodes", 1), clients)
    return f"{values['readers']} reader(s)"


def read_label(key: dict, shown: set[str]) -> str:
    """``shuffled, readahead off, 2 reader(s), cold (fadvise)`` (``shuffled, 2x2 clients,
    cold`` for a read by client processes); readahead and eviction only when they vary
    (``shown``)."""
    parts = [str(key["read_pattern"])]
    if "readahead" in shown:
        parts.append(f"readahead {key['readahead']}")
    parts.append(readers_or_clients(key))
    cache = str(key["cache"])
    if "eviction" in shown and cache == "cold":
        cache += f" ({key['eviction']})"
    parts.append(cache)
    return ", ".join(parts)


def _fixed_note(reads: pd.DataFrame, shown: set[str], what: str) -> str:
    """What every ``what`` (column, read) shares, for the axes the labels leave out."""
    notes = []
    if "readahead" not in shown:
        notes.append(f"readahead {', '.join(sorted(map(str, reads['readahead'].unique())))}")
    cold = reads.loc[reads["cache"] == "cold", "eviction"]
    if "eviction" not in shown and len(cold):
        notes.append(f"cold reads evicted with {', '.join(sorted(cold.unique()))}")
    return f"Every {what}: {'; '.join(notes)}.\n\n" if notes else ""


def _read_keys(here: pd.DataFrame) -> list[dict]:
    keys = here[READ_AXES].drop_duplicates()
    keys = keys.assign(_p=keys["read_pattern"].map(PATTERN_ORDER).fillna(len(PATTERN_ORDER)))
    keys = keys.sort_values(["_p", "read_pattern", *READ_ORDER]).drop(columns="_p")
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


def _largest_cutoff(reads: pd.DataFrame, size: int) -> pd.DataFrame:
    """The reads of image size ``size`` at its largest cutoff."""
    here = reads[reads["image_size"] == size]
    return here[here["cutoff"] == here["cutoff"].max()]


def _latency_table(single: pd.DataFrame, shown: set[str]) -> str:
    extra = [a for a in ("readahead", "eviction") if a in shown]
    clients = bool(is_many_clients(single).any())
    return markdown_table(
        ["method", *extra, "readers", *(["clients"] if clients else []), "cache"]
        + ["p50", "p95", "p99"],
        [
            [r.series, *(getattr(r, a) for a in extra), r.readers]
            + ([clients_text(r.nodes, r.clients) if r.clients > 0 else ""] if clients else [])
            + [r.cache]
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
    return f"{first.median_images_per_s:,.0f}{busy_mark(first)}"


def _patterns_of_size(here: pd.DataFrame, size: int) -> str:
    """One image size's reads: images/s by series and read, the verdicts, and the latency
    of random single-image reads."""
    shown = _shown_axes(here)
    keys = _read_keys(here)
    labels = [read_label(key, shown) for key in keys]
    body = []
    for series in sorted(here["series"].unique()):
        mine = here[here["series"] == series]
        body.append([series, *(_throughput_cell(_select(mine, key)) for key in keys)])
    parts = [f"### {size}x{size}, {int(here['cutoff'].max()):,} images\n\n"]
    parts.append(_fixed_note(here, shown, "column"))
    parts.append(markdown_table(["method", *labels], body))
    verdicts = [
        f"- {throughput_verdict(_select(here, key), label)}\n"
        for key, label in zip(keys, labels, strict=True)
    ]
    parts.append("\nFastest:\n\n" + "".join(verdicts))
    single = here[here["read_pattern"] == vocabulary.RANDOM_SINGLE]
    if len(single):
        parts.append("\nRandom single-image latency (microseconds, median over timed runs):\n\n")
        parts.append(_latency_table(single, shown))
    return "".join(parts)


def patterns_markdown(stats: pd.DataFrame) -> str:
    """Throughput of every read at each size's largest cutoff, unless the per-cutoff tables
    already show every read."""
    reads = stats[stats["operation"] == "read"]
    if whole_store_reads(reads).all():  # the per-cutoff tables show them all
        return ""
    parts = [
        "\n## Access patterns and parallel readers (largest cutoff of each size)\n\n",
        "Throughput in images per second (median; higher is better). A method is named "
        "fastest only when its interval lies clear of every other's.\n\n",
    ]
    for size in sorted(reads["image_size"].unique()):
        parts.append(_patterns_of_size(_largest_cutoff(reads, size), size))
    return "".join(parts)


# --- which format for which access pattern -------------------------------------------------


def _vs_baseline(value: float, baseline_value: float | None, unit: str) -> str:
    if baseline_value is None or pd.isna(baseline_value) or baseline_value == 0:
        return "n/a"
    return f"{value / baseline_value:.3g}x {BASELINE}'s {unit}"


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


def _format_choice_row(points: pd.DataFrame, sized: pd.DataFrame, label: str) -> list[str]:
    """One read of the format-choice table: the fastest and the smallest, each against the
    baseline. ``points``: the read's points, one per series; ``sized``: the disk usage at
    its image size and cutoff."""
    quiet, _ = quiet_and_busy(points)
    best = min(time_candidates(quiet), key=lambda c: c.value, default=None)
    base = quiet.loc[quiet["series"] == BASELINE, "median_s"]
    on_disk = sized[sized["series"].isin(points["series"])]
    base_disk = sized.loc[sized["series"] == BASELINE, "bytes_on_disk"]
    exact = on_disk[~is_lossy(on_disk)] if (~is_lossy(on_disk)).any() else on_disk
    smallest = exact["bytes_on_disk"].min() if len(exact) else None
    return [
        label,
        fastest_cell(points),
        _vs_baseline(best.value, base.iloc[0] if len(base) else None, "time")
        if best is not None
        else "n/a",
        smallest_cell(on_disk) if len(on_disk) else "n/a",
        _vs_baseline(smallest, base_disk.iloc[0] if len(base_disk) else None, "bytes")
        if smallest is not None
        else "n/a",
    ]


def _format_choice_of_size(here: pd.DataFrame, disk: pd.DataFrame, size: int) -> str:
    cutoff = here["cutoff"].max()
    sized = disk[(disk["image_size"] == size) & (disk["cutoff"] == cutoff)]
    shown = _shown_axes(here)
    body = [
        _format_choice_row(_select(here, key), sized, read_label(key, shown))
        for key in _read_keys(here)
    ]
    header = ["read", "fastest (median [interval])", f"vs {BASELINE}", "smallest on disk"]
    return (
        f"\n### {size}x{size}, {int(cutoff):,} images\n\n"
        + _fixed_note(here, shown, "read")
        + markdown_table([*header, f"vs {BASELINE}"], body)
    )


# Under the format table where a shuffle was measured: the two shuffles are different
# reads (their rows and verdicts are apart), and a format's users take one of them.
SHUFFLES_NOTE = (
    f"\nA training loop over a sharded or streaming store (wds, parquet) would read it with "
    f"{vocabulary.BUFFERED_SHUFFLE} (shards or row groups in a random order through a "
    f"shuffle buffer), one over an indexed store (npy, hdf5, lmdb, zarr, arrow, png files) "
    f"can use "
    f"the exact {vocabulary.SHUFFLED} order; compare each format in the shuffle its users "
    "would run.\n"
)


def format_choice_markdown(stats: pd.DataFrame, disk: pd.DataFrame) -> str:
    """Which format for which access pattern: for each read (pattern, cache state,
    readers, readahead) at each size's largest cutoff, the fastest series by time with its
    interval (or the tie), and the smallest on disk among the series measured there,
    each against the baseline (raw pixels); where a shuffle was measured, which shuffle
    a training loop over each kind of store would use (``SHUFFLES_NOTE``)."""
    reads = stats[stats["operation"] == "read"]
    if reads.empty:
        return ""
    parts = [
        "\n## Which format for which access pattern (largest cutoff of each size)\n\n",
        "Fastest: the series whose interval of the median time lies clear of every "
        "other's, with its median and interval in seconds (else the series that tie). "
        "Smallest: bytes on disk per image (allocated blocks) of the series that read back "
        f"exactly, and a smaller lossy one where there is one. Each against the raw {BASELINE} "
        "baseline at the same point.\n",
        _busy_reads_note(reads),
    ]
    for size in sorted(reads["image_size"].unique()):
        parts.append(_format_choice_of_size(_largest_cutoff(reads, size), disk, size))
    if reads["read_pattern"].isin([vocabulary.SHUFFLED, vocabulary.BUFFERED_SHUFFLE]).any():
        parts.append(SHUFFLES_NOTE)
    return "".join(parts)
