"""Aggregation with pandas: tidy timings, statistics over repeats, disk usage, summary."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

POINT_KEYS = ["method", "variant", "image_size", "operation", "cache", "read_pattern", "readers"]
GROUP_KEYS = [*POINT_KEYS, "cutoff"]
BASELINE = {"read_pattern": "sequential", "readers": 1}


def series_name(method: str, variant: str) -> str:
    """Legend and table name: the method, with its variant unless it is ``default``."""
    return method if variant == "default" else f"{method}:{variant}"


def _fill_axes(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows from before the variant/size/pattern axes existed read as their defaults."""
    defaults = {
        "variant": "default",
        "image_size": 32,
        "read_pattern": "sequential",
        "readers": 1,
        "images_read": rows.get("cutoff", 0),
    }
    for column, value in defaults.items():
        if column not in rows:
            rows[column] = value
    rows.loc[rows["operation"] == "store", "read_pattern"] = "n/a"
    return rows


def load_rows(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate one-row CSVs into the tidy table (one row per measurement)."""
    frames = [pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    if not frames:
        raise ValueError("no timing rows to aggregate")
    rows = _fill_axes(pd.concat(frames, ignore_index=True))
    rows["_order"] = rows["operation"].map({"store": 0, "read": 1})
    rows = rows.sort_values(
        [
            "_order",
            "method",
            "variant",
            "image_size",
            "cutoff",
            "cache",
            "read_pattern",
            "readers",
            "repeat",
        ]
    )
    return rows.drop(columns="_order").reset_index(drop=True)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Median, min, max, quartiles, IQR and coefficient of variation per point."""
    rows = _fill_axes(rows.copy())
    grouped = rows.groupby(GROUP_KEYS, dropna=False, sort=True)
    seconds = grouped["seconds"]
    stats = pd.DataFrame(
        {
            "n": seconds.count(),
            "median_s": seconds.median(),
            "min_s": seconds.min(),
            "max_s": seconds.max(),
            "q25_s": seconds.quantile(0.25),
            "q75_s": seconds.quantile(0.75),
            "mean_s": seconds.mean(),
            "std_s": seconds.std(ddof=1),
            "median_images_per_s": grouped["images_per_s"].median(),
            "median_bytes_on_disk": grouped["bytes_on_disk"].median(),
            "median_cached_fraction": grouped["cached_fraction"].median(),
        }
    )
    for column in ("latency_p50_us", "latency_p95_us", "latency_p99_us", "latency_max_us"):
        if column in rows:
            stats[f"median_{column}"] = grouped[column].median()
    stats["iqr_s"] = stats["q75_s"] - stats["q25_s"]
    stats["cv"] = stats["std_s"] / stats["mean_s"]
    stats = stats.reset_index()
    stats["series"] = [
        series_name(m, v) for m, v in zip(stats["method"], stats["variant"], strict=True)
    ]
    return stats


def disk_usage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Bytes each store takes per method, variant, image size and cutoff (median)."""
    rows = _fill_axes(rows.copy())
    stores = rows[rows["operation"] == "store"]
    table = (
        stores.groupby(["method", "variant", "image_size", "cutoff"], sort=True)
        .agg(
            bytes_on_disk=("bytes_on_disk", "median"),
            bytes_apparent=("bytes_apparent", "median"),
            n_files=("n_files", "median"),
        )
        .reset_index()
    )
    table["bytes_per_image"] = table["bytes_on_disk"] / table["cutoff"]
    table["raw_bytes_per_image"] = table["image_size"] ** 2 * 3
    table["overhead_vs_raw"] = table["bytes_per_image"] / table["raw_bytes_per_image"]
    table["human_on_disk"] = table["bytes_on_disk"].map(human_bytes)
    for column in ("bytes_on_disk", "bytes_apparent", "n_files"):
        table[column] = table[column].round().astype("int64")
    table["series"] = [
        series_name(m, v) for m, v in zip(table["method"], table["variant"], strict=True)
    ]
    return table


def human_bytes(count: float) -> str:
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _bytes_cell(count: int) -> str:
    return f"{human_bytes(count)} ({count:,} B)"


def disk_usage_markdown(table: pd.DataFrame) -> str:
    out = ["# Disk usage per store (allocated blocks, like `du`; median over repeats)\n"]
    for size, by_size in table.groupby("image_size", sort=True):
        cutoffs = sorted(by_size["cutoff"].unique())
        body = []
        for series, group in by_size.groupby("series", sort=True):
            by_cutoff = group.set_index("cutoff")["bytes_on_disk"]
            body.append(
                [series]
                + [_bytes_cell(by_cutoff[c]) if c in by_cutoff.index else "" for c in cutoffs]
            )
        header = [f"{size}x{size} method \\ images"] + [f"{c:,}" for c in cutoffs]
        out.append(f"\n## {size}x{size} images\n\n" + markdown_table(header, body))
    out.append("\n" + bytes_per_image_markdown(table))
    return "".join(out)


def bytes_per_image_markdown(table: pd.DataFrame) -> str:
    """Bytes on disk per image by image size, at each size's largest cutoff."""
    out = ["## Bytes on disk per image (largest cutoff of each size)\n\n"]
    largest = table.loc[table.groupby(["series", "image_size"])["cutoff"].idxmax()]
    sizes = sorted(table["image_size"].unique())
    body = []
    for series, group in largest.groupby("series", sort=True):
        per_size = group.set_index("image_size")
        body.append(
            [series]
            + [
                f"{human_bytes(per_size.at[s, 'bytes_per_image'])} "
                f"({per_size.at[s, 'overhead_vs_raw']:.2f}x raw)"
                if s in per_size.index
                else ""
                for s in sizes
            ]
        )
    out.append(markdown_table(["method"] + [f"{s}x{s}" for s in sizes], body))
    return "".join(out)


_LABEL_PARTS = (
    ("method", "{}"),
    ("variant", "/{}"),
    ("operation", " {}"),
    ("image_size", " {}px"),
    ("cutoff", " cutoff={}"),
    ("repeat", " repeat={}"),
    ("cache", " {}"),
    ("read_pattern", " {}"),
    ("readers", " readers={}"),
)


def _measurement_label(row: pd.Series) -> str:
    """Every coordinate of one measurement that the rows carry, e.g.
    ``png/default read 32px cutoff=10 repeat=1 cold sequential readers=1``."""
    is_store = row.get("operation") == "store"
    return "".join(
        template.format(row[name])
        for name, template in _LABEL_PARTS
        if name in row.index
        and not pd.isna(row[name])
        and str(row[name]) not in ("", "n/a")
        and not (is_store and name == "readers")
    )


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


def _fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.4g} s"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or pd.isna(reference) or reference == 0:
        return "n/a"
    if pd.isna(value):
        return "n/a"
    return f"{value / reference:.3g}x"


def _baseline(stats: pd.DataFrame) -> pd.DataFrame:
    """Stores, and reads of the article's kind: whole store, front to back, one reader."""
    reads = (stats["read_pattern"] == "sequential") & (stats["readers"] == 1)
    return stats[(stats["operation"] == "store") | reads]


COLUMNS = [("store", "n/a", "store"), ("read", "cold", "cold read"), ("read", "warm", "warm read")]


def _point_tables(stats, disk, out) -> None:
    base = _baseline(stats)
    medians = base.set_index(["series", "image_size", "operation", "cache", "cutoff"])["median_s"]
    disk_by = disk.set_index(["series", "image_size", "cutoff"])["bytes_on_disk"]
    for size in sorted(base["image_size"].unique()):
        for cutoff in sorted(base.loc[base["image_size"] == size, "cutoff"].unique()):
            out.append(f"\n## {cutoff:,} image(s) of {size}x{size}\n\n")
            here = base[(base["image_size"] == size) & (base["cutoff"] == cutoff)]
            winners = []
            for operation, cache, title in COLUMNS:
                point = here[(here["operation"] == operation) & (here["cache"] == cache)]
                if len(point):
                    best = point.loc[point["median_s"].idxmin()]
                    winners.append(
                        f"fastest {title}: **{best['series']}** ({_fmt_seconds(best['median_s'])})"
                    )
            sizes = disk[(disk["cutoff"] == cutoff) & (disk["image_size"] == size)]
            if len(sizes):
                smallest = sizes.loc[sizes["bytes_on_disk"].idxmin()]
                winners.append(
                    f"smallest on disk: **{smallest['series']}** "
                    f"({human_bytes(smallest['bytes_on_disk'])})"
                )
            out.append("; ".join(winners) + ".\n\n")
            header = ["method"]
            for _, _, title in COLUMNS:
                header += [title, "vs png", "vs npy"]
            header += ["on disk", "vs png", "vs npy"]
            body = []
            for series in sorted(here["series"].unique()):
                cells = [series]
                for operation, cache, _ in COLUMNS:
                    value = medians.get((series, size, operation, cache, cutoff))
                    cells += [
                        _fmt_seconds(value),
                        _ratio(value, medians.get(("png", size, operation, cache, cutoff))),
                        _ratio(value, medians.get(("npy", size, operation, cache, cutoff))),
                    ]
                on_disk = disk_by.get((series, size, cutoff))
                cells += [
                    human_bytes(on_disk) if on_disk is not None else "n/a",
                    _ratio(on_disk, disk_by.get(("png", size, cutoff))),
                    _ratio(on_disk, disk_by.get(("npy", size, cutoff))),
                ]
                body.append(cells)
            out.append(markdown_table(header, body))


def _cold_warm(stats, out) -> None:
    base = _baseline(stats)
    reads = base[base["operation"] == "read"]
    pivot = reads.pivot_table(
        index=["series", "image_size", "cutoff"], columns="cache", values="median_s"
    )
    out.append("\n## Cold / warm read ratio (whole store, one reader)\n\n")
    if not {"cold", "warm"} <= set(pivot.columns):
        out.append("Not measured (read_cache lacks cold or warm).\n")
        return
    body = [
        [
            series,
            f"{size}x{size}",
            f"{cutoff:,}",
            _fmt_seconds(row["cold"]),
            _fmt_seconds(row["warm"]),
            _ratio(row["cold"], row["warm"]),
        ]
        for (series, size, cutoff), row in pivot.iterrows()
    ]
    out.append(markdown_table(["method", "size", "images", "cold", "warm", "cold/warm"], body))


def _patterns(stats, out) -> None:
    reads = stats[stats["operation"] == "read"]
    if set(reads["read_pattern"]) <= {"sequential"} and set(reads["readers"]) <= {1}:
        return
    out.append("\n## Access patterns and parallel readers (largest cutoff of each size)\n\n")
    out.append("Throughput in images per second (median; higher is better).\n\n")
    for size in sorted(reads["image_size"].unique()):
        here = reads[reads["image_size"] == size]
        here = here[here["cutoff"] == here["cutoff"].max()]
        keys = sorted(
            {
                (p, r, c)
                for p, r, c in zip(
                    here["read_pattern"], here["readers"], here["cache"], strict=True
                )
            }
        )
        header = ["method"] + [f"{p}, {r} reader(s), {c}" for p, r, c in keys]
        body = []
        for series in sorted(here["series"].unique()):
            cells = [series]
            for pattern, readers, cache in keys:
                match = here[
                    (here["series"] == series)
                    & (here["read_pattern"] == pattern)
                    & (here["readers"] == readers)
                    & (here["cache"] == cache)
                ]
                cells.append(f"{match['median_images_per_s'].iloc[0]:,.0f}" if len(match) else "")
            body.append(cells)
        out.append(f"### {size}x{size}, {int(here['cutoff'].max()):,} images\n\n")
        out.append(markdown_table(header, body))
        winners = []
        for pattern, readers, cache in keys:
            match = here[
                (here["read_pattern"] == pattern)
                & (here["readers"] == readers)
                & (here["cache"] == cache)
            ]
            best = match.loc[match["median_images_per_s"].idxmax()]
            winners.append(
                f"- {pattern}, {readers} reader(s), {cache}: **{best['series']}** "
                f"({best['median_images_per_s']:,.0f} images/s)\n"
            )
        out.append("\nFastest:\n\n" + "".join(winners))
        single = here[here["read_pattern"] == "random_single"]
        if len(single) and "median_latency_p50_us" in single:
            out.append("\nRandom single-image latency (microseconds, median over repeats):\n\n")
            out.append(
                markdown_table(
                    ["method", "readers", "cache", "p50", "p95", "p99"],
                    [
                        [
                            r.series,
                            r.readers,
                            r.cache,
                            f"{r.median_latency_p50_us:.1f}",
                            f"{r.median_latency_p95_us:.1f}",
                            f"{r.median_latency_p99_us:.1f}",
                        ]
                        for r in single.itertuples()
                    ],
                )
            )


def summary_markdown(
    rows: pd.DataFrame,
    stats: pd.DataFrame,
    disk: pd.DataFrame,
    environments: dict,
    cv_threshold: float,
) -> str:
    """The short report: winners per point, ratios to png and npy, patterns, noise, overlap."""
    out = ["# Image storage benchmark: summary\n\n"]
    out.append(
        f"{len(rows)} measurements; medians over {int(rows['repeat'].nunique())} repeat(s). "
        "Times in seconds (lower is better); ratios are a method's median divided by "
        "the png or npy median at the same point. Tables per cutoff show stores and "
        "whole-store reads by one reader (the article's experiment).\n"
    )
    _point_tables(stats, disk, out)
    _cold_warm(stats, out)
    _patterns(stats, out)
    if disk["image_size"].nunique() > 1 or disk["variant"].nunique() > 1:
        out.append("\n" + bytes_per_image_markdown(disk))

    out.append(f"\n## Noise check (coefficient of variation above {cv_threshold:.0%})\n\n")
    noisy = stats[stats["cv"] > cv_threshold]
    if stats["n"].max() < 2:
        out.append("Only one repeat per point: the CV cannot be computed; set repeats >= 3.\n")
    elif noisy.empty:
        out.append("No point is noisier than the threshold.\n")
    else:
        out.append(
            f"{len(noisy)} of {len(stats)} points are flagged; read their medians with care.\n\n"
        )
        out.append(
            markdown_table(
                [
                    "method",
                    "size",
                    "operation",
                    "cache",
                    "pattern",
                    "readers",
                    "images",
                    "CV",
                    "median",
                    "min",
                    "max",
                ],
                [
                    [
                        r.series,
                        r.image_size,
                        r.operation,
                        r.cache,
                        r.read_pattern,
                        r.readers,
                        f"{r.cutoff:,}",
                        f"{r.cv:.1%}",
                        _fmt_seconds(r.median_s),
                        _fmt_seconds(r.min_s),
                        _fmt_seconds(r.max_s),
                    ]
                    for r in noisy.itertuples()
                ],
            )
        )

    out.append("\n## Measurement hygiene\n\n")
    clashes = overlapping_timings(rows)
    if clashes:
        out.append(
            f"**{len(clashes)} timed operations overlapped on the same host**; the figures "
            "may be distorted (run with the default profile, or `--resources timing_slot=1`):\n\n"
        )
        out += [f"- {first} / {second}\n" for first, second in clashes[:20]]
    else:
        out.append("No two timed operations overlapped on the same host.\n")
    stores = rows[rows["operation"] == "store"]
    fsync_values = sorted({str(value) for value in stores["fsync"]})
    out.append(f"Stores fsync'd: {', '.join(fsync_values)}. GC disabled during timed regions.\n")
    cold = rows[(rows["operation"] == "read") & (rows["cache"] == "cold")]
    if not cold.empty:
        out.append(
            f"Cold reads started with at most {cold['cached_fraction'].max():.1%} of the store "
            f"in the page cache (median {cold['cached_fraction'].median():.1%}).\n"
        )

    out.append("\n## Environment\n\n")
    for env_id, record in sorted(environments.items()):
        out.append(
            f"- `{env_id}`: {record.get('host')}, {record.get('cpu_model')} "
            f"({record.get('cpu_count')} cores), "
            f"{human_bytes(record.get('ram_bytes') or float('nan'))} RAM, "
            f"{record.get('os')} {record.get('kernel')}, store on {record.get('store_fs_type')} "
            f"at {record.get('store_mount')}, Python {record.get('python')}, "
            f"commit {record.get('git_commit')}\n"
        )
    return "".join(out)


def load_environments(paths: Iterable[Path]) -> dict[str, dict]:
    """Distinct provenance records keyed by env_id."""
    environments: dict[str, dict] = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        environments.setdefault(record["env_id"], record)
    return environments
