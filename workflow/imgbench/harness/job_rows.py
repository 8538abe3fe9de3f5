"""A job's rows: one per timed repetition, the first cheap one set aside as a warm-up.

A job repeats its timed operation (``inner_repeats`` at most) while it has spent less
than ``inner_budget_s`` in its repetitions, so cheap points get several values per job.
As pyperf does, a cheap job's first full-size repetition is a warm-up whose value is not
kept (its time is in every row as ``warmup_seconds``): the first large array a process
allocates, or the first pass over a store in a process, cost more than the one-image
warm-up can pay (a warm 3 MB npy read took 4.2 ms first, 1.8 ms after; a warm 307 MB
HDF5 read 0.65 s first, 0.07-0.18 s after, all of it CPU time: the first touch of fresh
memory in a virtual machine). A repetition is cheap when it took less than
``inner_budget_s``, so the job can afford another; an expensive one (a 45 s PNG store)
is kept, since the job makes only that one.

``JobRows`` builds each row from the point (``Point``), the source, the timed region
(``Region``) and what the machine preparation recycled; ``experiment.rows`` defines the
fields.
"""

from __future__ import annotations

import math
import time

import numpy as np

from imgbench import methods
from imgbench.data import pool
from imgbench.experiment import vocabulary
from imgbench.experiment.rows import new_row
from imgbench.harness import access, memory
from imgbench.harness.point import Point, Settings
from imgbench.harness.region import Region
from imgbench.methods import encoding
from imgbench.system import fsutil

# A warm read is warm only when the store was (nearly) wholly in the page cache before it.
WARM_CACHED_FRACTION = 0.99

# What a store row says for a read's coordinates.
NOT_A_READ = {
    "cache": vocabulary.NO_CACHE,
    "eviction": "n/a",
    "read_pattern": "n/a",
    "readahead": "n/a",
    "readers": 1,
    "nodes": 1,
    "clients": 0,
    "batch_size": "",
    "shuffle_buffer": "",
    "seed": "",
}


def cache_label(cache: str, cached_fraction: float) -> str:
    """The cache state a read row carries: ``warm`` only when at least
    ``WARM_CACHED_FRACTION`` of the store was cached before the read (a store larger than
    memory cannot be: 53-57 % cached, 96-98 % fetched from the device), else
    ``partly_cached`` (its cached fraction in the row)."""
    if cache == "warm" and cached_fraction < WARM_CACHED_FRACTION:  # NaN: not measured
        return vocabulary.PARTLY_CACHED
    return cache


class Repetitions:
    """The rows of one job's repetitions, the first cheap one set aside as a warm-up."""

    def __init__(self, inner_repeats: int, inner_budget_s: float):
        self.inner_repeats = inner_repeats
        self.inner_budget_s = inner_budget_s
        self.started = time.perf_counter_ns()
        self.rows: list[dict] = []
        self.warmup_seconds = float("nan")

    def more(self) -> bool:
        return keep_going(len(self.rows), self.started, self.inner_repeats, self.inner_budget_s)

    @property
    def next_number(self) -> int:
        return len(self.rows) + 1

    def add(self, row: dict) -> None:
        cheap = row["seconds"] < self.inner_budget_s  # another one fits in the budget
        if not self.rows and math.isnan(self.warmup_seconds) and self.inner_repeats > 1 and cheap:
            self.warmup_seconds = row["seconds"]
            return
        self.rows.append(row)

    def result(self) -> list[dict]:
        for row in self.rows:
            row["warmup_seconds"] = self.warmup_seconds
        return self.rows


def keep_going(done: int, started_ns: int, inner_repeats: int, inner_budget_s: float) -> bool:
    if done >= inner_repeats:
        return False
    return done == 0 or (time.perf_counter_ns() - started_ns) / 1e9 < inner_budget_s


class JobRows(Repetitions):
    """The rows of one job measuring ``point`` on ``source``: its repetitions (started
    now: the budget counts from here), each row with the job's coordinates."""

    def __init__(
        self,
        env: dict,
        point: Point,
        settings: Settings,
        module,
        options: dict,
        source: pool.TiledImages,
        memory_watch: memory.AnonWatch | None = None,
    ):
        super().__init__(settings.inner_repeats, settings.inner_budget_s)
        self.env, self.point, self.module, self.options = env, point, module, options
        self.rigor = settings.rigor
        self.source, self.memory_watch = source, memory_watch
        self.readers_peak_rss_bytes = 0  # the highest any reader process of the job reported

    def coordinates(self) -> dict:
        """The coordinates every row of a job shares, the method's ``DESCRIPTION`` (what
        legends and tables name it by) and the encoding of its images."""
        return {
            "image_size": int(self.source.shape[1]),
            "cutoff": len(self.source),
            "method": self.point.method,
            "method_description": self.module.DESCRIPTION,
            "read_path": methods.read_path_of(self.module, self.options),
            "encoding": encoding.describe(self.options),
            "codec": encoding.codec_of(self.options),
            "lossy": encoding.is_lossy(self.options),
            "variant": self.point.variant,
            "repeat": self.point.repeat,
            "inner_repeat": self.next_number,
            "rigor": self.rigor or float("nan"),
            "pool_images": self.source.pool_size,
            "chunk_images": self.source.chunk_images,
            "fsync": self.point.fsync,
        }

    def measured(self, region: Region, prefaulted: int, usage: fsutil.DiskUsage) -> dict:
        """What the timed region, the machine's preparation and the store measured."""
        self.readers_peak_rss_bytes = max(
            self.readers_peak_rss_bytes, region.readers_peak_rss_bytes
        )
        watch = self.memory_watch
        return {
            "seconds": region.elapsed_ns / 1e9,
            "device_read_bytes": region.device_read_bytes,
            "disk_read_bytes": region.disk_read_bytes,
            "foreign_device_read_bytes": region.disk_read_bytes - region.device_read_bytes,
            "cpu_seconds": region.cpu_seconds,
            "foreign_cpu_seconds": region.foreign_cpu_seconds,
            "foreign_cpu_resolution_seconds": region.foreign_cpu_resolution_seconds,
            "foreign_cpu_span_seconds": region.foreign_cpu_span_seconds,
            "load_1min": region.load_1min,
            "cpu_pressure_pct": region.cpu_pressure_pct,
            "io_pressure_pct": region.io_pressure_pct,
            "prefault_bytes": prefaulted,
            "bytes_on_disk": usage.bytes_on_disk,
            "bytes_apparent": usage.bytes_apparent,
            "n_files": usage.n_files,
            "t_start_unix": region.start_unix,
            "t_end_unix": region.end_unix,
            "peak_rss_bytes": memory.peak_rss_bytes(self.readers_peak_rss_bytes),
            "peak_anon_bytes": float("nan") if watch is None else watch.peak(),
            **region.client_fields,
        }

    def add_store(
        self, region: Region, prefaulted: int, usage: fsutil.DiskUsage, source_seconds: float
    ) -> None:
        """The row of one timed store: its time split into writing and flushing."""
        write_ns, flushed_ns = region.marks_ns[0], region.marks_ns[1]
        self.add(
            new_row(
                self.env,
                **self.coordinates(),
                operation="store",
                **NOT_A_READ,
                images_read=len(self.source),
                bytes_requested=self.source.nbytes,
                write_seconds=write_ns / 1e9,
                flush_seconds=(flushed_ns - write_ns) / 1e9,
                source_seconds=source_seconds,
                **self.measured(region, prefaulted, usage),
            )
        )

    def pattern_parameters(self) -> dict:
        """``batch_size``, ``shuffle_buffer`` and ``seed`` of a read: each recorded only
        where the point's pattern uses it (``vocabulary.uses``), else empty."""
        point = self.point
        return {
            name: getattr(point, name) if vocabulary.uses(point.pattern, name) else ""
            for name in ("batch_size", "shuffle_buffer", "seed")
        }

    def add_read(
        self,
        region: Region,
        prefaulted: int,
        usage: fsutil.DiskUsage,
        cached_fraction: float,
        images_read: int,
        latencies_ns: np.ndarray,
    ) -> None:
        """The row of one timed read, with its requests' latency percentiles."""
        point = self.point
        self.add(
            new_row(
                self.env,
                **self.coordinates(),
                operation="read",
                cache=cache_label(point.cache, cached_fraction),
                eviction=point.eviction_used,
                read_pattern=point.pattern,
                readahead=point.readahead,
                readers=point.readers,
                nodes=point.nodes,
                clients=point.clients,
                **self.pattern_parameters(),
                images_read=images_read,
                bytes_requested=images_read * self.source.image_bytes,
                cached_fraction=cached_fraction,
                open_in_clock=True,
                **self.measured(region, prefaulted, usage),
                **access.latency_percentiles(latencies_ns),
            )
        )
