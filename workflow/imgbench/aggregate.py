"""Aggregation with pandas: tidy timings, statistics over repeats, disk usage, summary."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

GROUP_KEYS = ["method", "operation", "cache", "cutoff"]


def load_rows(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate one-row CSVs into the tidy table (one row per measurement)."""
    frames = [pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    if not frames:
        raise ValueError("no timing rows to aggregate")
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.sort_values(
        ["operation", "method", "cutoff", "cache", "repeat"],
        key=lambda column: column.map(_operation_order) if column.name == "operation" else column,
    )
    return rows.reset_index(drop=True)


def _operation_order(value):
    return {"store": 0, "read": 1}.get(value, 2)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Median, min, max, quartiles, IQR and coefficient of variation per point."""
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
    stats["iqr_s"] = stats["q75_s"] - stats["q25_s"]
    stats["cv"] = stats["std_s"] / stats["mean_s"]
    return stats.reset_index()


def disk_usage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Bytes each method's store takes per cutoff (median over repeats)."""
    stores = rows[rows["operation"] == "store"]
    table = (
        stores.groupby(["method", "cutoff"], sort=True)
        .agg(
            bytes_on_disk=("bytes_on_disk", "median"),
            bytes_apparent=("bytes_apparent", "median"),
            n_files=("n_files", "median"),
        )
        .reset_index()
    )
    table["bytes_per_image"] = table["bytes_on_disk"] / table["cutoff"]
    table["human_on_disk"] = table["bytes_on_disk"].map(human_bytes)
    for column in ("bytes_on_disk", "bytes_apparent", "n_files"):
        table[column] = table[column].round().astype("int64")
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
    cutoffs = sorted(table["cutoff"].unique())
    body = []
    for method, group in table.groupby("method", sort=True):
        by_cutoff = group.set_index("cutoff")
        body.append(
            [method]
            + [
                _bytes_cell(by_cutoff.at[c, "bytes_on_disk"]) if c in by_cutoff.index else ""
                for c in cutoffs
            ]
        )
    header = ["method \\ images"] + [f"{c:,}" for c in cutoffs]
    return (
        "# Disk usage per store (allocated blocks, like `du`; median over repeats)\n\n"
        + markdown_table(header, body)
    )


def overlapping_timings(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of measurements whose timed intervals overlapped on the same host."""
    clashes = []
    labelled = rows.assign(
        label=rows["method"]
        + " "
        + rows["operation"]
        + " cutoff="
        + rows["cutoff"].astype(str)
        + " repeat="
        + rows["repeat"].astype(str)
        + " "
        + rows["cache"].astype(str)
    )
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


def _fmt_seconds(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.4g} s"


def _ratio(value: float, reference: float | None) -> str:
    if reference is None or pd.isna(reference) or reference == 0 or pd.isna(value):
        return "n/a"
    return f"{value / reference:.3g}x"


def summary_markdown(
    rows: pd.DataFrame,
    stats: pd.DataFrame,
    disk: pd.DataFrame,
    environments: dict,
    cv_threshold: float,
) -> str:
    """The short report: winners per cutoff, ratios to png and npy, noise and overlap checks."""
    out = ["# Image storage benchmark: summary\n"]
    out.append(
        f"{len(rows)} measurements; medians over {int(rows['repeat'].nunique())} repeat(s). "
        "Times in seconds (lower is better); ratios are a method's median divided by "
        "the png or npy median at the same point.\n"
    )
    columns = [
        ("store", "n/a", "store"),
        ("read", "cold", "cold read"),
        ("read", "warm", "warm read"),
    ]
    medians = stats.set_index(["method", "operation", "cache", "cutoff"])["median_s"]
    disk_by = disk.set_index(["method", "cutoff"])["bytes_on_disk"]
    methods = sorted(stats["method"].unique())
    for cutoff in sorted(stats["cutoff"].unique()):
        out.append(f"\n## {cutoff:,} image(s)\n")
        winners = []
        for operation, cache, title in columns:
            point = stats[
                (stats["operation"] == operation)
                & (stats["cache"] == cache)
                & (stats["cutoff"] == cutoff)
            ]
            if len(point):
                best = point.loc[point["median_s"].idxmin()]
                winners.append(
                    f"fastest {title}: **{best['method']}** ({_fmt_seconds(best['median_s'])})"
                )
        sizes = disk[disk["cutoff"] == cutoff]
        if len(sizes):
            smallest = sizes.loc[sizes["bytes_on_disk"].idxmin()]
            winners.append(
                f"smallest on disk: **{smallest['method']}** "
                f"({human_bytes(smallest['bytes_on_disk'])})"
            )
        out.append("; ".join(winners) + ".\n\n")
        header = ["method"]
        for _, _, title in columns:
            header += [title, "vs png", "vs npy"]
        header += ["on disk", "vs png", "vs npy"]
        body = []
        for method in methods:
            cells = [method]
            for operation, cache, _ in columns:
                value = medians.get((method, operation, cache, cutoff))
                png = medians.get(("png", operation, cache, cutoff))
                npy = medians.get(("npy", operation, cache, cutoff))
                cells += [
                    _fmt_seconds(value) if value is not None else "n/a",
                    _ratio(value, png),
                    _ratio(value, npy),
                ]
            size = disk_by.get((method, cutoff))
            cells += [
                human_bytes(size) if size is not None else "n/a",
                _ratio(size, disk_by.get(("png", cutoff))),
                _ratio(size, disk_by.get(("npy", cutoff))),
            ]
            body.append(cells)
        out.append(markdown_table(header, body))

    out.append("\n## Cold / warm read ratio\n\n")
    cold_warm = []
    for method in methods:
        for cutoff in sorted(stats["cutoff"].unique()):
            cold = medians.get((method, "read", "cold", cutoff))
            warm = medians.get((method, "read", "warm", cutoff))
            if cold is not None and warm is not None:
                cold_warm.append(
                    [
                        method,
                        f"{cutoff:,}",
                        _fmt_seconds(cold),
                        _fmt_seconds(warm),
                        _ratio(cold, warm),
                    ]
                )
    if cold_warm:
        out.append(markdown_table(["method", "images", "cold", "warm", "cold/warm"], cold_warm))
    else:
        out.append("Not measured (read_cache lacks cold or warm).\n")

    out.append(f"\n## Noise check (coefficient of variation above {cv_threshold:.0%})\n\n")
    noisy = stats[stats["cv"] > cv_threshold]
    if stats["n"].max() < 2:
        out.append("Only one repeat per point: the CV cannot be computed; set repeats >= 3.\n")
    elif noisy.empty:
        out.append("No point is noisier than the threshold.\n")
    else:
        out.append(
            markdown_table(
                ["method", "operation", "cache", "images", "CV", "median", "min", "max"],
                [
                    [
                        r.method,
                        r.operation,
                        r.cache,
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
            f"**{len(clashes)} timed operations overlapped on the same host**; the "
            "figures may be distorted (run with the default profile, or "
            "`--resources timing_slot=1`):\n\n"
        )
        out += [f"- {first} / {second}\n" for first, second in clashes[:20]]
    else:
        out.append("No two timed operations overlapped on the same host.\n")
    fsync_values = sorted({str(value) for value in rows.loc[rows["operation"] == "store", "fsync"]})
    out.append(f"Stores fsync'd: {', '.join(fsync_values)}. GC disabled during timed regions.\n")
    cold = rows[(rows["operation"] == "read") & (rows["cache"] == "cold")]
    if not cold.empty:
        out.append(
            f"Cold reads started with at most {cold['cached_fraction'].max():.1%} "
            "of the store in the page cache (median "
            f"{cold['cached_fraction'].median():.1%}).\n"
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
