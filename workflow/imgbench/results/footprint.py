"""What the stores and jobs take: bytes on disk per store (``disk_usage.csv``, and the
page ``disk_usage.md``), bytes per image, and the peak memory of each job
(``job_memory.csv``), with their sections of the summary.
"""

from __future__ import annotations

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results.markdown import markdown_table
from imgbench.results.series import add_series_columns, series_name
from imgbench.results.tables import methods_markdown
from imgbench.system.units import human_bytes

DISK_KEYS = ["method", "variant", "image_size", "cutoff"]
MEMORY_KEYS = ["method", "variant", "image_size", "cutoff", "operation"]
# The memory table's one unit (in its title), so that its cells compare at a glance.
MIB = 2**20


def disk_usage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Bytes each store takes per method, variant, image size and cutoff (median, min and
    max over the stores' timed operations)."""
    stores = rows[rows["operation"] == "store"]
    table = (
        stores.groupby(DISK_KEYS, sort=True)
        .agg(
            bytes_on_disk=("bytes_on_disk", "median"),
            min_bytes_on_disk=("bytes_on_disk", "min"),
            max_bytes_on_disk=("bytes_on_disk", "max"),
            bytes_apparent=("bytes_apparent", "median"),
            n_files=("n_files", "median"),
        )
        .reset_index()
    )
    table["bytes_per_image"] = table["bytes_on_disk"] / table["cutoff"]
    table["raw_bytes_per_image"] = vocabulary.image_bytes(table["image_size"])
    table["overhead_vs_raw"] = table["bytes_per_image"] / table["raw_bytes_per_image"]
    table["human_on_disk"] = table["bytes_on_disk"].map(human_bytes)
    for column in (
        "bytes_on_disk",
        "min_bytes_on_disk",
        "max_bytes_on_disk",
        "bytes_apparent",
        "n_files",
    ):
        table[column] = table[column].round().astype("int64")
    add_series_columns(table, rows)
    return table


def _bytes_cell(count: int) -> str:
    return f"{human_bytes(count)} ({count:,} B)"


def disk_usage_markdown(table: pd.DataFrame) -> str:
    """The page ``disk_usage.md``: the methods, bytes per store by image size and cutoff,
    and bytes per image."""
    parts = ["# Disk usage per store (allocated blocks, like `du`; median over repeats)\n"]
    parts.append("\n" + methods_markdown(table))
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
        parts.append(f"\n## {size}x{size} images\n\n" + markdown_table(header, body))
    parts.append("\n" + bytes_per_image_markdown(table))
    return "".join(parts)


def bytes_per_image_markdown(table: pd.DataFrame) -> str:
    """Bytes on disk per image by image size, at each size's largest cutoff."""
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
    return "## Bytes on disk per image (largest cutoff of each size)\n\n" + markdown_table(
        ["method"] + [f"{s}x{s}" for s in sizes], body
    )


def memory_table(rows: pd.DataFrame, benchmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Peak memory per point and operation: the highest ``peak_rss_bytes`` of its jobs
    (exact high-water marks, mapped store pages included), with the pool and chunk sizes
    that bound it and, where given, the highest ``max_rss`` Snakemake sampled."""
    table = (
        rows.groupby(MEMORY_KEYS, sort=True)
        .agg(
            peak_rss_bytes=("peak_rss_bytes", "max"),
            peak_anon_bytes=("peak_anon_bytes", "max"),
            pool_images=("pool_images", "max"),
            chunk_images=("chunk_images", "max"),
            bytes_requested=("bytes_requested", "max"),
        )
        .reset_index()
    )
    if benchmarks is not None and len(benchmarks):
        sampled = benchmarks.groupby(MEMORY_KEYS)["max_rss_mb"].max().rename("snakemake_max_rss_mb")
        table = table.join(sampled, on=MEMORY_KEYS)
    return table


def _memory_cell(by_cutoff: pd.DataFrame, cutoff: int) -> str:
    if cutoff not in by_cutoff.index or pd.isna(by_cutoff.at[cutoff, "peak_rss_bytes"]):
        return ""
    cell = f"{by_cutoff.at[cutoff, 'peak_rss_bytes'] / MIB:,.0f}"
    anon = by_cutoff.at[cutoff, "peak_anon_bytes"]
    return cell if pd.isna(anon) else f"{cell} ({anon / MIB:,.0f})"


MEMORY_NOTE = (
    "Each cell: the highest resident set (`ru_maxrss`) of any store or read job of the "
    "point, and in brackets the highest anonymous memory (`RssAnon` of the job and its "
    "readers, sampled every 20 ms). The resident set also counts pages of "
    "memory-mapped store files a job touched (LMDB reads, npy readers), page cache "
    "the kernel drops whenever memory is short; the anonymous memory is what the job "
    "holds itself (the image pool, chunks, library buffers).\n\n"
)


def _memory_size_markdown(size: int, here: pd.DataFrame) -> str:
    """One image size's memory: the pool and chunk sizes, methods by cutoff."""
    cutoffs = sorted(here["cutoff"].unique())
    pool_images, chunk_images = here["pool_images"].max(), here["chunk_images"].max()
    if pd.notna(pool_images) and pd.notna(chunk_images):
        title = (
            f"**{size}x{size}** (pool of {int(pool_images):,} distinct images, chunks of "
            f"{int(chunk_images):,}):\n\n"
        )
    else:
        title = f"**{size}x{size}**:\n\n"
    body = []
    for (method, variant, operation), series in here.groupby(
        ["method", "variant", "operation"], sort=True
    ):
        by_cutoff = series.set_index("cutoff")
        cells = [_memory_cell(by_cutoff, c) for c in cutoffs]
        body.append([series_name(method, variant), operation, *cells])
    return title + markdown_table(["method", "job", *[f"{c:,}" for c in cutoffs]], body) + "\n"


def memory_markdown(memory: pd.DataFrame) -> str:
    """Peak resident memory of the jobs per image size: methods by cutoff, so a reader
    sees whether memory grows with the store."""
    parts = ["## Peak memory per job (MiB)\n\n", MEMORY_NOTE]
    parts += [_memory_size_markdown(size, here) for size, here in memory.groupby("image_size")]
    return "".join(parts)
