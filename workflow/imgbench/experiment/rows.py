"""The data model of a measurement: one CSV row per timed operation.

A store or read job writes one file of rows, one row per timed repetition inside the job
(``inner_repeat``); ``repeat`` numbers the independent stores of a point. Empty cells are
values that do not apply (a store has no cache state) or could not be read on this
machine (no pressure stall information).

Streaming: ``pool_images`` distinct images are tiled to ``cutoff`` (image i is pool[i mod
pool_images]); stores are written and whole stores read in chunks of ``chunk_images``.
``source_seconds`` is what producing the store's chunks from the in-memory pool costs
(one untimed pass; the timed store pays it too). ``peak_rss_bytes`` is the job's
resident-memory high-water mark so far (``ru_maxrss`` of the job process and of its
reader processes, whichever is larger): it counts pages of memory-mapped store files
(LMDB, npy readers) as well as the job's own memory; ``peak_anon_bytes`` is the job's
own memory alone, sampled (see ``memory``). ``method_description`` is the method
module's ``DESCRIPTION``, carried into the statistics and disk tables, which name the
method by it in legends and the summary; ``read_path`` is how the method's reader reads
a batch of that store (the method's ``read_path(options)``; the summary's methods table
names it per series). ``encoding`` is how the store keeps its images
(``raw``, ``png``, ``jpeg q95 4:4:4``, ``webp lossless``, ``qoi``, ``jpegxl q90 e7``,
``avif q80``; see ``encoding``) and ``codec`` the library that wrote and reads them
(``pillow``, ``imagecodecs``, ``opencv``, ``simplejpeg``, ``spng``; ``none`` for raw
pixels and methods without an encoding; its versions are in the provenance); a ``lossy``
store is checked by fidelity instead of exactly (each image read against the config's
``image_psnr_floor_db``, the store once against ``store_psnr_floor_db``), and its store
rows carry its PSNR against the source (``psnr_db`` over all pixels, the floor's measure;
``psnr_min_db`` of its worst image; ``psnr_p01_db`` the 1st percentile of its images').

Many clients (``clients``): a read by ``clients`` client processes on ``nodes`` nodes
(each its own process with one reader, opening the store itself and reading its share of
the requests, all released together) records the wall time from the common start until
the last client finished, ``images_per_s`` in total and ``images_per_s_per_client``
(``images_per_s / clients``), the clients' distinct host names (``client_hosts``,
``;``-separated), how they were started (``client_launch``: ``local`` processes of the
job's machine, or ``srun`` over the nodes of a Slurm allocation), and each client's own
timed pass (``client_seconds``) and bytes it fetched from its device
(``client_device_read_bytes``), in client order, ``;``-separated. Every other row has
``nodes`` 1 and ``clients`` 0 (the job's own process and its forked ``readers``), and
these columns empty.

``open_in_clock`` says whether opening the store is inside the clock: it is for every
method, pattern and reader count (a reader's open, requests and close; a whole read's
open). A read's ``cache`` is ``cold``, ``warm``, or ``partly_cached`` where a warm read
found less than 99 % of the store cached (``cached_fraction``; a store larger than
memory), which is never called warm.

What others did during the timed region (``machine``): ``foreign_cpu_seconds`` is the
CPU time every other process and kernel thread ran, the machine's busy CPU time less the
CPU time of the job's process tree (the job, its readers, their threads) between two
samples taken ``foreign_cpu_span_seconds`` apart around the clock;
``foreign_cpu_resolution_seconds`` bounds its error (scheduler ticks, the counters'
rounding, the time a sample takes), so a region much shorter than that cannot tell a quiet
machine from a busy one. ``foreign_device_read_bytes`` is ``disk_read_bytes`` less
``device_read_bytes``: bytes others read from the store's block device meanwhile. The load
average and pressure stall information (``load_1min``, ``cpu_pressure_pct``,
``io_pressure_pct``, sampled at the end of the region) are context: they count the job too.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path

from imgbench.system.atomic import write_text

ROW_FIELDS = [
    "method",
    "variant",
    "method_description",
    "read_path",
    "encoding",
    "codec",
    "lossy",
    "psnr_db",
    "psnr_min_db",
    "psnr_p01_db",
    "image_size",
    "operation",
    "cutoff",
    "repeat",
    "inner_repeat",
    "rigor",
    "cache",
    "eviction",
    "read_pattern",
    "readahead",
    "readers",
    "nodes",
    "clients",
    "batch_size",
    "shuffle_buffer",
    "chunk_images",
    "pool_images",
    "seed",
    "images_read",
    "bytes_requested",
    "fsync",
    "seconds",
    "write_seconds",
    "flush_seconds",
    "warmup_seconds",
    "images_per_s",
    "images_per_s_per_client",
    "latency_p50_us",
    "latency_p95_us",
    "latency_p99_us",
    "latency_max_us",
    "device_read_bytes",
    "disk_read_bytes",
    "foreign_device_read_bytes",
    "cpu_seconds",
    "foreign_cpu_seconds",
    "foreign_cpu_resolution_seconds",
    "foreign_cpu_span_seconds",
    "load_1min",
    "cpu_pressure_pct",
    "io_pressure_pct",
    "prefault_bytes",
    "source_seconds",
    "peak_rss_bytes",
    "peak_anon_bytes",
    "bytes_on_disk",
    "bytes_apparent",
    "n_files",
    "cached_fraction",
    "open_in_clock",
    "gc",
    "host",
    "client_hosts",
    "client_launch",
    "client_seconds",
    "client_device_read_bytes",
    "cpu_count",
    "store_fs_type",
    "env_id",
    "t_start_unix",
    "t_end_unix",
]


def new_row(env: dict, **fields) -> dict:
    """A row with every field: the given ones, the host's, and NaN for the rest."""
    row = dict.fromkeys(ROW_FIELDS, float("nan"))
    row.update(
        gc="disabled",
        host=env["host"],
        cpu_count=env.get("cpu_count"),
        store_fs_type=env["store_fs_type"],
        env_id=environment_id(env),
    )
    unknown = sorted(set(fields) - set(ROW_FIELDS))
    if unknown:
        raise KeyError(f"not row fields: {', '.join(unknown)}")
    row.update(fields)
    seconds = row["seconds"]
    row["images_per_s"] = row["images_read"] / seconds if seconds > 0 else float("inf")
    clients = row["clients"]
    if isinstance(clients, int) and clients > 0:
        row["images_per_s_per_client"] = row["images_per_s"] / clients
    for stamp in ("t_start_unix", "t_end_unix"):
        if isinstance(row[stamp], float) and not math.isnan(row[stamp]):
            row[stamp] = f"{row[stamp]:.6f}"
    return row


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def write_rows(rows: list[dict], path: Path) -> None:
    """All rows of one job in one CSV, written atomically (never half a file)."""
    lines = []

    class _Sink:
        def write(self, text):
            lines.append(text)

    writer = csv.DictWriter(_Sink(), fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in ROW_FIELDS})
    write_text("".join(lines), path)


def write_environment(env: dict, path: Path) -> None:
    record = {"env_id": environment_id(env), "recorded_at": now_iso(), **env}
    write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", path)


def environment_id(record: dict) -> str:
    """Short stable key of a provenance record (rows carry it; environment.json maps it):
    the same for the jobs of every method on one machine, software and settings."""
    per_job = ("slurm_job_id", "methods", "job")
    stable = {key: value for key, value in record.items() if key not in per_job}
    digest = hashlib.sha1(json.dumps(stable, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
