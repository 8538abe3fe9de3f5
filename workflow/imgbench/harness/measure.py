"""The timing loop: one store, or one read of one store, measured in this process.

Inside the clock (``time.perf_counter_ns``) is only the named storage operation. Before
every timed repetition, outside the clock, the job brings the machine to the same state:

1. **warm-up** (once per job): the method's libraries are imported and its whole code
   path is exercised on a one-image store in a scratch directory beside the measured
   store (store, flush, whole read, reader open/get/close), then the scratch is removed,
   so no figure pays for loading a plugin or a library's first use;
2. **dirty pages written back** (``os.sync``), so no earlier job's writeback lands in the
   timed region;
3. **memory recycled**: a scratch file as large as the page cache the operation will fill
   (the store, for a store or a cold read, at most ``RECYCLE_MAX_BYTES``; none for a warm
   read) is written beside the store and deleted, and as much anonymous memory as the
   operation holds at once (a chunk or two, a request's batch, or the whole store for
   ``whole_array``) is touched and freed (``fsutil.prefault``). The operation then fills pages
   just freed, whatever ran before: on a 2-core VM, 92 MB written into page cache that had
   never held a file took 0.14-0.20 s, into pages a deleted file had just freed 0.02-0.03 s
   (pre-faulting anonymous memory alone did not close that gap);
4. for a **cold** read, the store is evicted: ``fadvise`` drops its data pages (no root;
   inodes, dentries and directory blocks stay cached), ``drop_caches`` drops the page
   cache, dentries and inodes of the whole machine (root only). For a **warm** read every
   file of the store not wholly in the page cache (``cachestat``, or ``mincore`` on older
   kernels) is read once untimed (its bytes, not decoded).

A store's time is split into ``write_seconds`` (encode and write into the page cache,
including the library's own close or commit) and ``flush_seconds`` (making it durable by
the ``fsync`` strategy: ``per_file`` fsyncs every file and directory, ``syncfs`` flushes the
file system once, ``none`` does nothing); ``seconds`` is their sum.

The images come from a ``pool.TiledImages``: the pool in memory, tiled to the cutoff. A
store is written from its chunks; nothing N-sized is ever built, so a store may be
larger than memory. Reads follow a pattern (``access``). ``whole`` is an epoch through
the method's ``read_batches`` in this process: the clock runs only while the method
produces a chunk, and each chunk is checked against the pool between chunks and dropped.
``whole_array`` is the article's read: the method's ``read`` returns the whole store as
one array. Every other pattern goes through the method's reader in forked reader
processes (``readers``), the same code for 1 or N readers: each warms up on the scratch
store, the machine is prepared, all are released at once, and the read's time is the
wall time from the release until the last reader finished, with no check inside it;
every request is checked afterwards in an untimed pass. Every batch must be a fresh
array (``freshness``): a view of a memory-mapped store is refused.

Every row records the bytes read from the storage device during the timed region
(``device_read_bytes``: ``read_bytes`` of ``/proc/self/io``, summed over the reader
processes; ``disk_read_bytes``: the store's block device in ``/proc/diskstats``, which
also counts other processes), the CPU time of the processes that did the work, the load
average and pressure stall information at the end of the timed region, and the eviction
used. The garbage collector is collected and disabled during the timed region, as
``timeit`` does.

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
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.data import pool
from imgbench.experiment import vocabulary
from imgbench.experiment.rows import ROW_FIELDS, new_row, write_environment, write_rows
from imgbench.harness import access, freshness, memory, readers, space
from imgbench.methods import encoding, get_method, resolve_options
from imgbench.system import fsutil, machine

__all__ = [
    "ROW_FIELDS",
    "write_rows",
    "write_environment",
    "run_store",
    "run_read",
    "VerificationError",
]

CACHE_STATES = vocabulary.CACHE_STATES
EVICTIONS = ("fadvise", "drop_caches")
READAHEAD = vocabulary.READAHEAD
LEGACY_FSYNC = {True: "per_file", False: "none"}


class VerificationError(RuntimeError):
    """A store read back something other than what was stored."""


def load_source(
    images_path: Path, labels_path: Path, cutoff: int, chunk_images: int | None = None
) -> pool.TiledImages:
    """The pool in memory (no lazy mapping), tiled to ``cutoff`` images in chunks of
    ``chunk_images``: never an N-sized copy."""
    return pool.load(images_path, labels_path, cutoff, chunk_images)


def as_source(images, labels=None) -> pool.TiledImages:
    """A ``TiledImages`` as it is, or arrays of images and labels as a one-chunk source."""
    if isinstance(images, pool.TiledImages):
        return images
    return pool.tile(images, labels, len(images), max(1, len(images)))


def source_seconds(source: pool.TiledImages) -> float:
    """What producing every chunk of ``source`` costs (views of the pool), measured once
    outside the clock: the timed store pays it."""
    start = time.perf_counter_ns()
    for chunk in source.iter_chunks():
        chunk.ravel()[::4096].sum()  # touch each chunk's pages, as a writer would
    return (time.perf_counter_ns() - start) / 1e9


def flush_strategy(fsync) -> str:
    """The flush strategy named by a config value (``true``/``false`` keep working)."""
    strategy = LEGACY_FSYNC.get(fsync, fsync) if isinstance(fsync, bool) else fsync
    if strategy not in fsutil.FLUSH_STRATEGIES:
        raise ValueError(
            f"fsync must be one of {', '.join(fsutil.FLUSH_STRATEGIES)} (or true/false), "
            f"not {fsync!r}"
        )
    return strategy


@dataclass
class Region:
    """What happened during one timed region, on this process and on the machine."""

    elapsed_ns: int = 0
    start_unix: float = 0.0
    device_read_bytes: float = float("nan")
    disk_read_bytes: float = float("nan")
    cpu_seconds: float = float("nan")
    load_1min: float = float("nan")
    cpu_pressure_pct: float = float("nan")
    io_pressure_pct: float = float("nan")
    foreign_cpu_seconds: float = float("nan")
    foreign_cpu_resolution_seconds: float = float("nan")
    foreign_cpu_span_seconds: float = float("nan")
    marks_ns: dict = field(default_factory=dict)
    _cpu_before: Any = None
    _cpu_before_ns: int = 0

    def open_cpu_window(self) -> None:
        """Sample the machine's and the job's CPU time right before the clock starts."""
        self._cpu_before = machine.cpu_sample()
        self._cpu_before_ns = time.perf_counter_ns()

    def close_cpu_window(self) -> None:
        """Sample again right after the clock stopped: what others ran meanwhile."""
        span_ns = time.perf_counter_ns() - self._cpu_before_ns
        after = machine.cpu_sample()
        foreign, resolution = machine.foreign_cpu(self._cpu_before, after)
        self.foreign_cpu_seconds = foreign
        self.foreign_cpu_resolution_seconds = resolution
        self.foreign_cpu_span_seconds = span_ns / 1e9

    @property
    def end_unix(self) -> float:
        return self.start_unix + self.elapsed_ns / 1e9

    def note_machine(self) -> None:
        """Load and pressure, sampled right at the end of the timed region."""
        self.load_1min = machine.load_average_1min()
        self.cpu_pressure_pct = machine.pressure_some_avg10("cpu")
        self.io_pressure_pct = machine.pressure_some_avg10("io")


def _delta(after, before) -> float:
    return float("nan") if after is None or before is None else float(after - before)


def timed(steps: list[Callable[[], Any]], device: str | None = None) -> tuple[list, Region]:
    """Run ``steps`` back to back inside one timed region with the GC disabled; returns
    their results and the region (``marks_ns[i]``: time from the start to the end of step
    ``i``)."""
    region = Region()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    results = []
    try:
        io_before = machine.io_read_bytes()
        disk_before = machine.disk_read_bytes(device)
        cpu_before = machine.cpu_seconds()
        region.open_cpu_window()
        region.start_unix = time.time()
        start = time.perf_counter_ns()
        for index, step in enumerate(steps):
            results.append(step())
            region.marks_ns[index] = time.perf_counter_ns() - start
        region.elapsed_ns = region.marks_ns[len(steps) - 1]
        region.close_cpu_window()
        region.cpu_seconds = machine.cpu_seconds() - cpu_before
        region.device_read_bytes = _delta(machine.io_read_bytes(), io_before)
        region.disk_read_bytes = _delta(machine.disk_read_bytes(device), disk_before)
        region.note_machine()
    finally:
        if was_enabled:
            gc.enable()
    return results, region


def evict(store_dir: Path, eviction: str, files: list[Path] | None = None) -> None:
    """Make the store cold: its data pages (``fadvise``) or the whole page cache with
    dentries and inodes (``drop_caches``, root only)."""
    if eviction == "fadvise":
        fsutil.evict_tree(store_dir, files)
    elif eviction == "drop_caches":
        fsutil.drop_caches()
    else:
        raise ValueError(f"cold must be one of {', '.join(EVICTIONS)}, not {eviction!r}")


def _scratch(store_dir: Path, purpose: str) -> Path:
    return store_dir.with_name(f"{store_dir.name}.{purpose}-{os.getpid()}")


@contextmanager
def warmed_up(
    module,
    source: pool.TiledImages,
    scratch: Path,
    *,
    options,
    flush,
    readahead,
    floor_db: float | None = None,
) -> Iterator[Path]:
    """Exercise the method's whole code path once on a one-image store in ``scratch``,
    with the job's resolved ``options``: imports (a method imports its format library in
    the functions that use it), plugin loading and a library's first-use costs are paid
    here, outside every timed region. The scratch store stays until the block ends, so
    each forked reader warms up on it too (``readers``); then it is removed.
    ``floor_db``: see ``verify``."""
    fsutil.remove_tree(scratch)
    scratch.mkdir(parents=True)
    try:
        one = pool.tile(source.batch(0, 1), source.labels[:1], 1)
        module.store(scratch, one, one.labels, options=options)
        fsutil.flush(scratch, flush)
        verify(module.__name__, module.read(scratch), one, floor_db=floor_db)
        for images, labels in module.read_batches(scratch, 1):
            verify(module.__name__, (images, labels), one, floor_db=floor_db)
        readers.checked_requests(
            module,
            scratch,
            [np.array([0])],
            readahead == "on",
            request_check(module.__name__, one, floor_db),
        )
        fsutil.cached_fraction(scratch)
        machine.io_read_bytes()
        machine.pressure_some_avg10("cpu")
        yield scratch
    finally:
        fsutil.remove_tree(scratch)


def warm_up(module, source, scratch: Path, **kwargs) -> None:
    """``warmed_up`` with nothing kept: the scratch store is removed at once."""
    with warmed_up(module, source, scratch, **kwargs):
        pass


_ZEROS = np.zeros(8 << 20, dtype=np.uint8)


def recycle_page_cache(directory: Path, nbytes: int) -> int:
    """Write ``nbytes`` into a scratch file in ``directory`` and delete it before it is
    written back: the page cache then holds that many just-freed pages. Capped at half of
    the available memory and at the free space less a margin; returns the bytes written."""
    available = fsutil.memory_available_bytes()
    if available is not None:
        nbytes = min(nbytes, available // 2)
    # never fill the disk: file systems reserve blocks for written data even before
    # writeback (ext4's delayed allocation, tmpfs)
    nbytes = min(nbytes, max(0, space.free_bytes(directory) - 2 * space.MARGIN_BYTES))
    path = Path(directory) / f".recycle-{os.getpid()}"
    written = 0
    try:
        with open(path, "wb") as handle:
            while written < nbytes:
                chunk = min(nbytes - written, len(_ZEROS))
                handle.write(_ZEROS[:chunk].data)
                written += chunk
    finally:
        path.unlink(missing_ok=True)
    return written


def fill_cache(store_dir: Path, files: list[Path] | None = None) -> None:
    """Make a store warm: read the bytes of every file not wholly in the page cache
    already (no decoding, so the cost does not depend on the format)."""
    buffer = bytearray(1 << 20)
    for path in fsutil.store_files(store_dir) if files is None else files:
        resident, total = fsutil.resident_pages(path)
        if resident >= total:
            continue
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


def prepare_machine(directory: Path, page_cache_bytes: int, anonymous_bytes: int = 0) -> int:
    """Write back dirty pages, then recycle as much page cache and anonymous memory as the
    operation will fill; returns the bytes recycled."""
    os.sync()
    recycled = recycle_page_cache(directory, int(page_cache_bytes))
    return recycled + fsutil.prefault(int(anonymous_bytes))


# The page cache a recycle step frees before a timed operation, at most: enough to
# decide where the operation's first pages come from; beyond it a store far larger than
# memory evicts pages as it goes in any case.
RECYCLE_MAX_BYTES = 2 << 30


def _common(
    source: pool.TiledImages,
    method: str,
    module,
    variant: str,
    options: dict,
    repeat: int,
    repetitions,
) -> dict:
    """The coordinates every row of a job shares, the method's ``DESCRIPTION`` (what
    legends and tables name it by) and the encoding of its images."""
    return {
        "image_size": int(source.shape[1]),
        "cutoff": len(source),
        "method": method,
        "method_description": module.DESCRIPTION,
        "encoding": encoding.describe(options),
        "lossy": encoding.is_lossy(options),
        "variant": variant,
        "repeat": repeat,
        "inner_repeat": repetitions.next_number,
        "pool_images": source.pool_size,
        "chunk_images": source.chunk_images,
    }


class _Repetitions:
    """The rows of one job's repetitions, the first cheap one set aside as a warm-up."""

    def __init__(self, inner_repeats: int, inner_budget_s: float):
        self.inner_repeats = inner_repeats
        self.inner_budget_s = inner_budget_s
        self.started = time.perf_counter_ns()
        self.rows: list[dict] = []
        self.warmup_seconds = float("nan")

    def more(self) -> bool:
        return _keep_going(len(self.rows), self.started, self.inner_repeats, self.inner_budget_s)

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


def _keep_going(done: int, started_ns: int, inner_repeats: int, inner_budget_s: float) -> bool:
    if done >= inner_repeats:
        return False
    return done == 0 or (time.perf_counter_ns() - started_ns) / 1e9 < inner_budget_s


def run_store(
    method: str,
    images,
    labels,
    store_dir: Path,
    *,
    fsync="syncfs",
    repeat: int,
    env: dict,
    variant: str = "default",
    options: dict | None = None,
    inner_repeats: int = 1,
    inner_budget_s: float = 0.0,
    memory_watch: memory.AnonWatch | None = None,
    store_psnr_floor_db: float = encoding.STORE_PSNR_FLOOR_DB,
    image_psnr_floor_db: float = encoding.IMAGE_PSNR_FLOOR_DB,
) -> list[dict]:
    """Write a fresh store ``inner_repeats`` times at most (each timed: write, then flush);
    the last one stays in ``store_dir`` for the reads. One row per repetition.

    ``images`` is a ``pool.TiledImages`` (written chunk by chunk) or an array (written in
    one piece, with ``labels``). ``options`` are the variant's (``None``: the defaults),
    resolved here once; the warm-up and every timed store get the complete dict.

    A lossy store (``encoding.is_lossy``) is read back once after the timed stores,
    untimed, and its PSNR against the source is recorded in every row (``psnr_db`` over
    all pixels, ``psnr_min_db`` of the worst image, ``psnr_p01_db`` the 1st percentile of
    the images'); a store below ``store_psnr_floor_db``, or an image below
    ``image_psnr_floor_db``, fails the job. A lossless store is checked exactly by every
    read instead."""
    module = get_method(method)
    options = resolve_options(module, options)
    floor_db = image_psnr_floor_db if encoding.is_lossy(options) else None
    source = as_source(images, labels)
    strategy = flush_strategy(fsync)
    store_dir = Path(store_dir)
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    device = machine.block_device(store_dir.parent)
    warm_up(
        module,
        source,
        _scratch(store_dir, "warmup"),
        options=options,
        flush=strategy,
        readahead="on",
        floor_db=floor_db,
    )
    producing = source_seconds(source)
    # The page cache of the store: 1.5x the pixels covers LMDB's pages and PNG's worst case.
    need = min(int(1.5 * source.nbytes) + (16 << 20), RECYCLE_MAX_BYTES)
    repetitions = _Repetitions(inner_repeats, inner_budget_s)
    while repetitions.more():
        fsutil.remove_tree(store_dir)  # never append to an older store
        store_dir.mkdir(parents=True)
        prefaulted = prepare_machine(
            store_dir.parent, need, 2 * source.chunk_images * source.image_bytes
        )
        _, region = timed(
            [
                lambda: module.store(store_dir, source, source.labels, options=options),
                lambda: fsutil.flush(store_dir, strategy),
            ],
            device,
        )
        usage = fsutil.disk_usage(store_dir)
        repetitions.add(
            new_row(
                env,
                **_common(source, method, module, variant, options, repeat, repetitions),
                operation="store",
                cache="n/a",
                eviction="n/a",
                read_pattern="n/a",
                readahead="n/a",
                readers=1,
                batch_size="",
                seed="",
                images_read=len(source),
                bytes_requested=source.nbytes,
                fsync=strategy,
                seconds=region.elapsed_ns / 1e9,
                write_seconds=region.marks_ns[0] / 1e9,
                flush_seconds=(region.marks_ns[1] - region.marks_ns[0]) / 1e9,
                source_seconds=producing,
                **_region_fields(region, prefaulted, usage, memory_watch),
            )
        )
    rows = repetitions.result()
    if floor_db is not None:
        fidelity = store_psnr(module, store_dir, source, store_psnr_floor_db, floor_db)
        for row in rows:
            row.update(
                psnr_db=round(fidelity.store_db, 3),
                psnr_min_db=round(fidelity.worst_db, 3),
                psnr_p01_db=round(fidelity.low_percentile_db, 3),
            )
    return rows


def store_psnr(
    module,
    store_dir: Path,
    source: pool.TiledImages,
    store_floor_db: float,
    image_floor_db: float,
) -> encoding.Fidelity:
    """The fidelity of a lossy store against its source (``encoding.Fidelity``: PSNR over
    all pixels, of the worst image, the 1st percentile of the images'), from one untimed
    epoch. A store below ``store_floor_db``, or an image below ``image_floor_db``, is a
    ``VerificationError`` that names the config key to change."""
    fidelity = encoding.Fidelity()
    for images, labels in module.read_batches(store_dir, source.chunk_images):
        position = fidelity.images
        fidelity.add(source.take(np.arange(position, position + len(images))), images)
        verify(module.__name__, (images, labels), source, start=position, floor_db=0.0)
    name = module.__name__.rsplit(".", 1)[-1]
    if fidelity.images != len(source):
        raise VerificationError(
            f"{name} store read back wrong data: {fidelity.images} images, expected {len(source)}"
        )
    if fidelity.store_db < store_floor_db:
        raise VerificationError(
            f"the lossy {name} store is {fidelity.store_db:.1f} dB PSNR from its source over "
            f"all its pixels (worst image {fidelity.worst_db:.1f} dB), below "
            f"store_psnr_floor_db {store_floor_db:g}; raise the variant's quality (for "
            'JPEG, or use subsampling "4:4:4") or lower store_psnr_floor_db in the config'
        )
    if fidelity.worst_db < image_floor_db:
        raise VerificationError(
            f"the lossy {name} store's image {fidelity.worst_image()} is "
            f"{fidelity.worst_db:.1f} dB PSNR from its source, below image_psnr_floor_db "
            f"{image_floor_db:g}, where only a wrong or corrupt image falls; check the "
            "method's store and read, or lower image_psnr_floor_db if the encoding is that "
            "coarse"
        )
    return fidelity


def _region_fields(
    region: Region, prefaulted: int, usage: fsutil.DiskUsage, watch: memory.AnonWatch | None
) -> dict:
    return {
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
        "peak_rss_bytes": memory.peak_rss_bytes(_READERS_PEAK_RSS[0]),
        "peak_anon_bytes": float("nan") if watch is None else watch.peak(),
    }


def require_fresh(method: str, *arrays) -> None:
    """Refuse images or labels that are not fresh arrays (``freshness``), in one sentence
    naming the method and the rule."""
    for array in arrays:
        backing = freshness.problem(array)
        if backing is not None:
            name = method.rsplit(".", 1)[-1]
            raise VerificationError(
                f"the {name} method returned {backing}: a batch must be a fresh array (the "
                "contract of read, read_batches and reader.get), because a view is read "
                "only when someone touches it, after the clock stopped; copy it in the "
                "method (e.g. np.array(view) or np.frombuffer(bytes(...)))"
            )


def verify(
    method: str,
    got: tuple[np.ndarray, np.ndarray],
    source,
    labels=None,
    *,
    start: int = 0,
    indices=None,
    floor_db: float | None = None,
) -> None:
    """Check images and labels read back against the source: images ``start``.. of it, or
    the images at ``indices``. ``source`` is a ``pool.TiledImages`` (compared piece by
    piece with the pool) or an array of the expected images with ``labels``.

    ``floor_db`` is ``None`` for a lossless store: every pixel must be equal. For a lossy
    one (JPEG, lossy WebP) it is the config's ``image_psnr_floor_db``: every image must
    keep that PSNR against its source image, which a faithful encoding does by far and
    an image from the wrong index (about 10 dB against a photo) or a corrupt one does
    not; labels are always exact. (The store's own floor is checked once, in
    ``store_psnr``.)"""
    got_images, got_labels = got
    require_fresh(method, got_images, got_labels)
    if not isinstance(source, pool.TiledImages):
        source = as_source(source, labels)
    if indices is not None:
        indices = np.asarray(indices)
        count = len(indices)
        expected_labels = source.labels[indices]
    else:
        count = len(got_images)
        expected_labels = source.labels[start : start + count]
    expected_shape = (count, *source.shape[1:])
    problems = []
    if indices is None and start + count > len(source):
        problems.append(f"{start + count} images, the store holds {len(source)}")
    elif got_images.shape != expected_shape or got_images.dtype != source.dtype:
        problems.append(
            f"images {got_images.dtype}{got_images.shape}, expected {source.dtype}{expected_shape}"
        )
    elif floor_db is not None:
        positions = indices if indices is not None else np.arange(start, start + count)
        psnr = encoding.psnr_per_image_db(source.take(positions), got_images)
        below = np.flatnonzero(psnr < floor_db)
        if len(below):
            worst = int(below[np.argmin(psnr[below])])
            problems.append(
                f"image {int(positions[worst])} is {psnr[worst]:.1f} dB PSNR from the source, "
                f"below image_psnr_floor_db {floor_db:g} (a wrong or corrupt image; lower "
                "image_psnr_floor_db only if the encoding is really that coarse)"
            )
    elif indices is not None:
        expected = source.take(indices)
        if not np.array_equal(got_images, expected):
            differs = (got_images != expected).reshape(count, -1).any(axis=1)
            position = int(np.flatnonzero(differs)[0])
            problems.append(f"image {int(indices[position])} differs from the source")
    else:
        first = source.matches(start, got_images)
        if first is not None:
            problems.append(f"image {first} differs from the source")
    if got_labels.shape != expected_labels.shape or not np.array_equal(got_labels, expected_labels):
        problems.append(
            f"labels differ (got shape {got_labels.shape}, expected {expected_labels.shape})"
        )
    if problems:
        name = method.rsplit(".", 1)[-1]
        raise VerificationError(f"{name} store read back wrong data: " + "; ".join(problems))


def verify_whole(
    method: str, got: tuple[np.ndarray, np.ndarray], source, floor_db: float | None = None
) -> None:
    """A whole store read back into one array: every image, no more."""
    if len(got[0]) != len(source):
        name = method.rsplit(".", 1)[-1]
        raise VerificationError(
            f"{name} store read back wrong data: {len(got[0])} images, expected {len(source)}"
        )
    verify(method, got, source, floor_db=floor_db)


def read_epoch(
    module,
    store_dir: Path,
    source: pool.TiledImages,
    device: str | None = None,
    floor_db: float | None = None,
) -> Region:
    """Time one epoch over the store through the method's ``read_batches``, in chunks of
    ``source.chunk_images``. The clock runs only while the method produces a batch: each
    batch is checked against the pool between batches, outside the clock, and dropped, so
    memory stays a chunk or two whatever the store's size."""
    region = Region()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    position = 0
    try:
        io_before = machine.io_read_bytes()
        disk_before = machine.disk_read_bytes(device)
        region.open_cpu_window()
        region.start_unix = time.time()
        batches = module.read_batches(store_dir, source.chunk_images)
        cpu = 0.0
        while True:
            cpu_before = machine.cpu_seconds()
            start = time.perf_counter_ns()
            try:
                batch = next(batches)
            except StopIteration:
                region.elapsed_ns += time.perf_counter_ns() - start
                cpu += machine.cpu_seconds() - cpu_before
                break
            region.elapsed_ns += time.perf_counter_ns() - start
            cpu += machine.cpu_seconds() - cpu_before
            verify(module.__name__, batch, source, start=position, floor_db=floor_db)
            position += len(batch[0])
            del batch
        region.close_cpu_window()  # the window spans the checks between batches too
        region.cpu_seconds = cpu
        region.device_read_bytes = _delta(machine.io_read_bytes(), io_before)
        region.disk_read_bytes = _delta(machine.disk_read_bytes(device), disk_before)
        region.note_machine()
    finally:
        if was_enabled:
            gc.enable()
    if position != len(source):
        name = module.__name__.rsplit(".", 1)[-1]
        raise VerificationError(
            f"{name} store read back wrong data: {position} images, expected {len(source)}"
        )
    region.marks_ns[0] = region.elapsed_ns
    return region


def request_check(method: str, source, floor_db: float | None = None):
    """``check(batch, request)`` for the readers: the batch must be the images at
    ``request`` (see ``verify``)."""

    def check(batch, request) -> None:
        verify(method, batch, source, indices=request, floor_db=floor_db)

    return check


# The highest resident set any reader process of this job reported.
_READERS_PEAK_RSS = [0]


def read_in_workers(
    method: str,
    store_dir: Path,
    shares: list[list],
    source,
    labels=None,
    *,
    readahead: bool,
    device: str | None = None,
    timeout_s: float = 600.0,
    floor_db: float | None = None,
    scratch: Path | None = None,
    prepare: Callable[[], object] = lambda: None,
    before_check: Callable[[], None] = lambda: None,
) -> tuple[np.ndarray, Region]:
    """One timed repetition of the forked readers (``readers.read_in_workers``): each
    warmed up on ``scratch``, the machine ``prepare``d, all released at once; the read's
    time is the wall time from the release until the last reader finished, with no check
    inside it; every request is checked afterwards in an untimed pass (``before_check``
    first: the cold point's eviction). Returns every request's latency and the region."""
    source = as_source(source, labels)
    region = Region()
    disk_before = []

    def on_release():
        disk_before.append(machine.disk_read_bytes(device))
        region.open_cpu_window()
        region.start_unix = time.time()

    def on_finish():
        region.close_cpu_window()
        region.note_machine()
        region.disk_read_bytes = _delta(machine.disk_read_bytes(device), disk_before[0])

    try:
        pool_read = readers.read_in_workers(
            method,
            store_dir,
            shares,
            request_check(method, source, floor_db),
            readahead=readahead,
            scratch=scratch,
            prepare=prepare,
            before_check=before_check,
            on_release=on_release,
            on_finish=on_finish,
            timeout_s=timeout_s,
        )
    except readers.ReaderError as error:
        raise VerificationError(str(error)) from None
    region.elapsed_ns = pool_read.elapsed_ns
    region.marks_ns[0] = region.elapsed_ns
    region.cpu_seconds = sum(one.cpu_seconds for one in pool_read.passes)
    _READERS_PEAK_RSS[0] = max(_READERS_PEAK_RSS[0], *(p.peak_rss_bytes for p in pool_read.passes))
    device_bytes = [one.device_read_bytes for one in pool_read.passes]
    region.device_read_bytes = float("nan") if None in device_bytes else float(sum(device_bytes))
    return pool_read.latencies_ns, region


# A warm read is warm only when the store was (nearly) wholly in the page cache before it.
WARM_CACHED_FRACTION = 0.99


def cache_label(cache: str, cached_fraction: float) -> str:
    """The cache state a read row carries: ``warm`` only when at least
    ``WARM_CACHED_FRACTION`` of the store was cached before the read (a store larger than
    memory cannot be: 53-57 % cached, 96-98 % fetched from the device), else
    ``partly_cached`` (its cached fraction in the row)."""
    if cache == "warm" and cached_fraction < WARM_CACHED_FRACTION:  # NaN: not measured
        return vocabulary.PARTLY_CACHED
    return cache


def run_read(
    method: str,
    store_dir: Path,
    images,
    labels=None,
    *,
    cache: str,
    repeat: int,
    env: dict,
    eviction: str = "fadvise",
    variant: str = "default",
    options: dict | None = None,
    pattern: str = "whole",
    readahead: str = "on",
    readers: int = 1,
    batch_size: int = 64,
    random_reads: int = 1000,
    seed: int = 0,
    fsync="syncfs",
    inner_repeats: int = 1,
    inner_budget_s: float = 0.0,
    memory_watch: memory.AnonWatch | None = None,
    image_psnr_floor_db: float = encoding.IMAGE_PSNR_FLOOR_DB,
) -> list[dict]:
    """Time reads of a store in the given cache state and pattern, checking each one
    after its clock stopped (exactly, or for a lossy store every image against
    ``image_psnr_floor_db``); one row per timed repetition."""
    if cache not in CACHE_STATES:
        raise ValueError(f"cache must be one of {CACHE_STATES}, not {cache!r}")
    if readahead not in READAHEAD:
        raise ValueError(f"readahead must be one of {READAHEAD}, not {readahead!r}")
    if cache == "cold" and eviction not in EVICTIONS:
        raise ValueError(f"cold must be one of {', '.join(EVICTIONS)}, not {eviction!r}")
    one_process = vocabulary.is_one_process(pattern)
    if one_process and (readers != 1 or readahead != vocabulary.READAHEAD_ON):
        raise ValueError(f"the {pattern} read runs in one process with readahead on")
    module = get_method(method)
    options = resolve_options(module, options)  # for the warm-up's one-image store
    floor_db = image_psnr_floor_db if encoding.is_lossy(options) else None
    source = as_source(images, labels)
    store_dir = Path(store_dir)
    requests = (
        []
        if one_process
        else access.requests(
            pattern, len(source), batch_size=batch_size, reads=random_reads, seed=seed
        )
    )
    images_read = len(source) if one_process else int(sum(len(r) for r in requests))
    device = machine.block_device(store_dir)
    files = fsutil.store_files(store_dir)  # a read job never changes the store
    usage = fsutil.disk_usage(store_dir, files)
    # What the read returns at once: the whole store into one array, a chunk or two of an
    # epoch, or a request's batch per reader.
    if pattern == access.WHOLE_ARRAY:
        returned_bytes = source.nbytes
    elif pattern == access.WHOLE:
        returned_bytes = 2 * source.chunk_images * source.image_bytes
    else:
        returned_bytes = max(len(r) for r in requests) * source.image_bytes
    returned_bytes += 16 << 20
    # A cold read fills as much page cache as the store takes; a warm one fills none.
    page_cache_bytes = min(usage.bytes_on_disk, RECYCLE_MAX_BYTES) if cache == "cold" else 0
    state: dict = {}

    def prepare() -> None:
        """The machine brought to the point's state right before the timed region."""
        state["prefaulted"] = prepare_machine(store_dir.parent, page_cache_bytes, returned_bytes)
        if cache == "cold":
            evict(store_dir, eviction, files)
        else:
            fill_cache(store_dir, files)
        state["cached"] = fsutil.cached_fraction(store_dir, files)
        if cache == "cold" and eviction == "drop_caches":
            fsutil.drop_caches()  # the residency walk above brought inodes back

    def evict_again() -> None:
        if cache == "cold":
            evict(store_dir, eviction, files)

    warm = warmed_up(
        module,
        source,
        _scratch(store_dir, "warmup"),
        options=options,
        flush=flush_strategy(fsync),
        readahead=readahead,
        floor_db=floor_db,
    )
    repetitions = _Repetitions(inner_repeats, inner_budget_s)
    with warm as scratch:
        while repetitions.more():
            latencies = np.empty(0)
            if pattern == access.WHOLE_ARRAY:
                prepare()
                (result,), region = timed([lambda: module.read(store_dir)], device)
                verify_whole(method, result, source, floor_db)
                del result
            elif pattern == access.WHOLE:
                prepare()
                region = read_epoch(module, store_dir, source, device, floor_db)
            else:
                latencies, region = read_in_workers(
                    method,
                    store_dir,
                    access.split(requests, readers),
                    source,
                    readahead=readahead == "on",
                    device=device,
                    floor_db=floor_db,
                    scratch=scratch,
                    prepare=prepare,
                    before_check=evict_again,
                )
            repetitions.add(
                new_row(
                    env,
                    **_common(source, method, module, variant, options, repeat, repetitions),
                    operation="read",
                    cache=cache_label(cache, state["cached"]),
                    eviction=eviction if cache == "cold" else "none",
                    read_pattern=pattern,
                    readahead=readahead,
                    readers=readers,
                    batch_size=batch_size if vocabulary.uses(pattern, "batch_size") else "",
                    seed=seed if vocabulary.uses(pattern, "seed") else "",
                    images_read=images_read,
                    bytes_requested=images_read * source.image_bytes,
                    fsync=flush_strategy(fsync),
                    seconds=region.elapsed_ns / 1e9,
                    cached_fraction=state["cached"],
                    open_in_clock=True,
                    **_region_fields(region, state["prefaulted"], usage, memory_watch),
                    **access.latency_percentiles(latencies),
                )
            )
    return repetitions.result()
