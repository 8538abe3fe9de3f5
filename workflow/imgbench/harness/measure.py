"""The timing loop: one store, or one read of one store, measured in this process.

Inside the clock (``time.perf_counter_ns``) is only the named storage operation; imports,
warm-up, machine preparation, verification and bookkeeping are outside it. A job is a
short composition of named steps, each in its own module:

* what is measured: a ``point.Point`` (method, variant, options, repeat, flush strategy;
  for a read its cache state, eviction, pattern, readers, readahead, batch, shuffle
  buffer, seed) and
  how: ``point.Settings`` (inner repetitions and their budget, PSNR floors), on a source
  (``source``: the pool in memory, tiled to the cutoff);
* **prepare the machine** (``prepare``): the warm-up once per job (then the heap is
  frozen), then before every timed repetition dirty pages written back, memory recycled
  before a point's first repetition, and for a read the store evicted (cold) or its pages
  filled (warm); a read job runs every read of its store this way (``run_reads``);
* **time** one repetition in a ``region.Region``, which owns the clock, the CPU time, the
  bytes read from the storage device, the others' CPU time, the load and pressure: a
  store (write, then flush) here, a read by ``timed_reads`` (``whole_array``, ``whole``,
  or forked readers for every request pattern);
* **verify** what was read, after the clock stopped (``verification``);
* **build the rows**, one per kept repetition (``job_rows``).

A store's time is split into ``write_seconds`` (encode and write into the page cache,
including the library's own close or commit) and ``flush_seconds`` (making it durable by
the ``fsync`` strategy: ``per_file`` fsyncs every file and directory, ``syncfs`` flushes
the file system once, ``none`` does nothing); ``seconds`` is their sum. A store is
written from the source's chunks; nothing N-sized is ever built, so a store may be larger
than memory. Every batch must be a fresh array (``freshness``): a view of a
memory-mapped store is refused.

Every row records the bytes read from the storage device during the timed region
(``device_read_bytes``: ``read_bytes`` of ``/proc/self/io``, summed over the reader
processes; ``disk_read_bytes``: the store's block device in ``/proc/diskstats``, which
also counts other processes), the CPU time of the processes that did the work, the load
average and pressure stall information at the end of the timed region, and the eviction
used. The garbage collector is collected and disabled during the timed region, as
``timeit`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgbench.data import pool
from imgbench.experiment import vocabulary
from imgbench.experiment.rows import ROW_FIELDS, write_environment, write_rows
from imgbench.harness import access, clients, memory, prepare, region, timed_reads
from imgbench.harness.client import ClientTask
from imgbench.harness.job_rows import JobRows
from imgbench.harness.point import Point, Settings
from imgbench.harness.source import as_source, load_source, source_seconds
from imgbench.harness.verification import VerificationError, store_psnr
from imgbench.methods import get_method, resolve_options
from imgbench.system import fsutil, machine, phases

__all__ = [
    "ROW_FIELDS",
    "Point",
    "Settings",
    "VerificationError",
    "load_source",
    "run_read",
    "run_reads",
    "run_store",
    "write_environment",
    "write_rows",
]

DEFAULT_SETTINGS = Settings()

# --- a store -------------------------------------------------------------------------------


def run_store(
    point: Point,
    source,
    store_dir: Path,
    *,
    env: dict,
    settings: Settings = DEFAULT_SETTINGS,
    memory_watch: memory.AnonWatch | None = None,
    after_repetition: Callable[[int, region.Region], None] = lambda number, timed: None,
) -> list[dict]:
    """Write a fresh store of ``source`` (a ``pool.TiledImages``, written chunk by chunk,
    or a pair of arrays: images and labels) ``settings.inner_repeats`` times at most, each
    timed (write, then flush); the last one stays in ``store_dir`` for the reads. One row
    per kept repetition. The point's ``options`` are resolved here once; the warm-up and
    every timed store get the complete dict.

    A lossy store is read back once after the timed stores, untimed, and its PSNR against
    the source is recorded in every row (``with_fidelity``). A lossless store is checked
    exactly by every read instead. ``after_repetition(number, region)`` after each timed
    store (progress), outside the clock."""
    module = get_method(point.method)
    options = resolve_options(module, point.options)
    floor_db = settings.floor_db(options)
    source = as_source(source)
    store_dir = Path(store_dir)
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    device = machine.block_device(store_dir.parent)
    prepare.warm_up(
        module,
        source,
        prepare.scratch_beside(store_dir, "warmup"),
        options=options,
        flush=point.fsync,
        readahead=vocabulary.READAHEAD_ON,
        floor_db=floor_db,
    )
    producing = source_seconds(source)
    rows = JobRows(env, point, settings, module, options, source, memory_watch)
    with prepare.frozen_heap():
        rows = _store_repetitions(
            rows, module, store_dir, source, options, point, device, producing, after_repetition
        )
    if floor_db is None:
        return rows.result()
    return with_fidelity(rows.result(), module, store_dir, source, settings)


def _store_repetitions(
    rows, module, store_dir, source, options, point, device, producing, after_repetition
) -> JobRows:
    """The timed stores of ``run_store``, each on a fresh store."""
    recycle = True  # before the job's first store only (``prepare``)
    number = 0
    while rows.more():
        prefaulted = prepare.fresh_store(store_dir, source, recycle=recycle)
        recycle = False
        timed = time_store(module, store_dir, source, options, point.fsync, device)
        with phases.phase("store listing"):
            usage = fsutil.disk_usage(store_dir)
        rows.add_store(timed, prefaulted, usage, producing)
        number += 1
        after_repetition(number, timed)
    return rows


def time_store(
    module, store_dir: Path, source: pool.TiledImages, options: dict, fsync: str, device
) -> region.Region:
    """One timed store: write (``marks_ns[0]``), then flush (``marks_ns[1]``)."""
    _, timed = region.timed(
        [
            lambda: module.store(store_dir, source, source.labels, options=options),
            lambda: fsutil.flush(store_dir, fsync),
        ],
        device,
    )
    return timed


def with_fidelity(
    rows: list[dict], module, store_dir: Path, source: pool.TiledImages, settings: Settings
) -> list[dict]:
    """A lossy store's rows with its PSNR against the source (``psnr_db`` over all pixels,
    ``psnr_min_db`` of the worst image, ``psnr_p01_db`` the 1st percentile of the
    images'), from one untimed epoch; a store below ``store_psnr_floor_db``, or an image
    below ``image_psnr_floor_db``, fails the job (``verification.store_psnr``)."""
    with phases.phase("verify"):
        fidelity = store_psnr(
            module, store_dir, source, settings.store_psnr_floor_db, settings.image_psnr_floor_db
        )
    for row in rows:
        row.update(
            psnr_db=round(fidelity.store_db, 3),
            psnr_min_db=round(fidelity.worst_db, 3),
            psnr_p01_db=round(fidelity.low_percentile_db, 3),
        )
    return rows


# --- a read --------------------------------------------------------------------------------


def run_read(
    point: Point,
    source,
    store_dir: Path,
    *,
    env: dict,
    settings: Settings = DEFAULT_SETTINGS,
    memory_watch: memory.AnonWatch | None = None,
) -> list[dict]:
    """Time reads of a store in the point's cache state and pattern, checking each one
    after its clock stopped (exactly, or for a lossy store every image against
    ``image_psnr_floor_db``); one row per kept repetition. ``source``: what the store
    holds (as for ``run_store``)."""
    return run_reads(
        [point], source, store_dir, env=env, settings=settings, memory_watch=memory_watch
    )


def run_reads(
    points: list[Point],
    source,
    store_dir: Path,
    *,
    env: dict,
    settings: Settings = DEFAULT_SETTINGS,
    memory_watch: memory.AnonWatch | None = None,
    after_point: Callable[[Point, list[dict]], None] = lambda point, rows: None,
    pool_files: tuple[Path, Path] | None = None,
) -> list[dict]:
    """``run_read`` for each of ``points`` (reads of one store: one method, variant and
    options) in turn, in one process: the warm-up, the store's file list and its usage
    once, then every point's repetitions, each from its own prepared state (written back,
    memory recycled, evicted or filled), with its own budget, and the job's memory peaks
    reset before each point, so each point's rows hold its own. ``after_point(point,
    rows)`` after each (progress). A many-clients point (``point.clients``) starts its
    clients once (``clients.ClientGroup``), which map the pool from ``pool_files`` (the
    images' and labels' ``.npy``) to check what they read."""
    if not points:
        return []
    for point in points:
        point.check_read()
    first = points[0]
    if any(
        (p.method, p.variant, p.options) != (first.method, first.variant, first.options)
        for p in points
    ):
        raise ValueError("run_reads reads one store: every point's method, variant and options")
    module = get_method(first.method)
    options = resolve_options(module, first.options)  # for the warm-up's one-image store
    floor_db = settings.floor_db(options)
    source = as_source(source)
    store_dir = Path(store_dir)
    listing = StoreListing.of(store_dir)  # a read job never changes the store
    warm = prepare.warmed_up(
        module,
        source,
        prepare.scratch_beside(store_dir, "warmup"),
        options=options,
        flush=first.fsync,
        readahead=sorted({point.readahead for point in points}),
        floor_db=floor_db,
    )
    every = []
    with warm as scratch, prepare.frozen_heap():
        for point in points:
            with phases.phase("plan"):
                read = ReadOfStore.plan(point, module, source, store_dir, floor_db, listing)
            memory.reset_peaks(memory_watch)
            rows = JobRows(env, point, settings, module, options, source, memory_watch)
            with read.clients_started(scratch, pool_files):
                while rows.more():
                    latencies, timed = read.time_once(scratch)
                    state = read.preparation
                    rows.add_read(
                        timed,
                        state.prefaulted,
                        read.usage,
                        state.cached_fraction,
                        read.images,
                        latencies,
                    )
            every += rows.result()
            after_point(point, rows.result())
    return every


@dataclass(frozen=True)
class StoreListing:
    """A store's files (sorted) and their disk usage, listed once per job."""

    files: list[str]  # paths (``fsutil.store_paths``)
    usage: fsutil.DiskUsage

    @classmethod
    def of(cls, store_dir: Path) -> StoreListing:
        with phases.phase("store listing"):
            files = fsutil.store_paths(store_dir)
            return cls(files, fsutil.disk_usage(store_dir, files))


class ReadOfStore:
    """One read point planned on one store: its requests, the store's files and usage, the
    machine's preparation; ``time_once`` times one repetition."""

    def __init__(
        self,
        point: Point,
        module,
        source,
        store_dir: Path,
        floor_db,
        requests,
        listing: StoreListing | None = None,
    ):
        self.point, self.module, self.source = point, module, source
        self.store_dir, self.floor_db, self.requests = store_dir, floor_db, requests
        self.clients: clients.ClientGroup | None = None
        one_process = vocabulary.is_one_process(point.pattern)
        self.images = len(source) if one_process else int(sum(len(r) for r in requests))
        self.device = machine.block_device(store_dir)
        listing = StoreListing.of(store_dir) if listing is None else listing
        self.files, self.usage = listing.files, listing.usage
        self.preparation = prepare.ReadPreparation.of(
            store_dir,
            self.files,
            self.usage,
            point.cache,
            point.eviction,
            prepare.returned_bytes(point.pattern, source, requests),
        )

    @classmethod
    def plan(
        cls,
        point: Point,
        module,
        source,
        store_dir: Path,
        floor_db,
        listing: StoreListing | None = None,
    ) -> ReadOfStore:
        """The point's requests (none for a one-process read; a buffered shuffle's over
        the store's units, ``access.read_units``), then the rest."""
        requests = []
        if not vocabulary.is_one_process(point.pattern):
            units = None
            if point.pattern == vocabulary.BUFFERED_SHUFFLE:
                units = access.read_units(module, store_dir, len(source), point.batch_size)
            requests = access.requests(
                point.pattern,
                len(source),
                batch_size=point.batch_size,
                reads=point.random_reads,
                seed=point.seed,
                shuffle_buffer=point.shuffle_buffer,
                units=units,
            )
        return cls(point, module, source, store_dir, floor_db, requests, listing)

    def clients_started(self, scratch: Path, pool_files: tuple[Path, Path] | None):
        """A many-clients point's clients, started for its repetitions and ended after
        them (``clients.ClientGroup``); nothing for any other point."""
        if not self.point.clients:
            return nullcontext()
        return self._clients(scratch, pool_files)

    @contextmanager
    def _clients(self, scratch: Path, pool_files: tuple[Path, Path] | None):
        point = self.point
        if pool_files is None:
            raise ValueError("a many-clients read needs the pool's files (pool_files)")
        task = ClientTask(
            method=point.method,
            store_dir=self.store_dir,
            scratch=scratch,
            share=None,
            readahead=point.readahead == vocabulary.READAHEAD_ON,
            images_path=Path(pool_files[0]),
            labels_path=Path(pool_files[1]),
            cutoff=len(self.source),
            chunk_images=self.source.chunk_images,
            floor_db=self.floor_db,
            visible=self.store_dir,
            token="",
            coordinator_host="",
            cache=point.cache,
            eviction=point.eviction,
        )
        shares = access.client_shares(point.pattern, self.requests, point.clients, point.batch_size)
        with clients.ClientGroup(task, shares, point.nodes, point.per_node) as group:
            self.clients = group
            try:
                yield group
            finally:
                self.clients = None

    def time_once(self, scratch: Path):
        """The machine prepared, one timed read, checked; every request's latency (none
        for a one-process read) and the region."""
        point, module, source = self.point, self.module, self.source
        if self.clients is not None:
            timed = clients.new_region(self.device)
            read = self.clients.read_once(timed, self.preparation.before_read)
            if not np.isnan(read.cached_fraction):
                fraction = self.preparation.cached_fraction
                self.preparation.cached_fraction = min(fraction, read.cached_fraction)
            return read.latencies_ns, timed
        if point.pattern == vocabulary.WHOLE_ARRAY:
            self.preparation.before_read()
            timed = timed_reads.read_whole_array(
                module, self.store_dir, source, self.device, self.floor_db
            )
            return np.empty(0), timed
        if point.pattern == vocabulary.WHOLE:
            self.preparation.before_read()
            timed = timed_reads.read_epoch(
                module, self.store_dir, source, self.device, self.floor_db
            )
            return np.empty(0), timed
        return timed_reads.read_in_workers(
            point.method,
            self.store_dir,
            access.split(self.requests, point.readers),
            source,
            readahead=point.readahead == vocabulary.READAHEAD_ON,
            device=self.device,
            floor_db=self.floor_db,
            scratch=scratch,
            prepare=self.preparation.before_read,
        )
