"""Preparing the machine: before every timed repetition, outside the clock, the job brings
the machine to the same state.

1. **warm-up** (once per job, ``warmed_up``): the method's libraries are imported and its
   whole code path is exercised on a one-image store in a scratch directory beside the
   measured store (store, flush, whole read, reader open/get/close), then the scratch is
   removed, so no figure pays for loading a plugin or a library's first use;
2. **dirty pages written back** (``os.sync``), so no earlier job's writeback lands in the
   timed region;
3. **memory recycled** (``prepare_machine``), before the first repetition of each point
   (a store job's stores; each read of a read job): a scratch file as large as the page
   cache the operation will fill (the store, for a store or a cold read, at most
   ``RECYCLE_MAX_BYTES``; none for a warm read) is written beside the store and deleted,
   and as much anonymous memory as the operation holds at once (a chunk or two of at most
   the store's images, a request's batch, or the whole store for ``whole_array``) is
   touched and freed (``fsutil.prefault``). The operation then fills pages just freed,
   whatever ran before: on a 2-core VM, 92 MB written into page cache that had never held
   a file took 0.14-0.20 s, into pages a deleted file had just freed 0.02-0.03 s
   (pre-faulting anonymous memory alone did not close that gap). A later repetition of
   the point starts from the pages its predecessor just freed (the previous store
   removed, the store read before evicted, the same memory held and freed), so it is
   not recycled again; its row records 0 bytes recycled (``prefault_bytes``);
4. for a **cold** read, the store is evicted (``evict``): ``fadvise`` drops its data pages
   (no root; inodes, dentries and directory blocks stay cached), ``drop_caches`` drops
   the page cache, dentries and inodes of the whole machine (root only). For a **warm**
   read every file of the store not wholly in the page cache (``cachestat``, or
   ``mincore`` on older kernels) is read once untimed (its bytes, not decoded:
   ``fill_cache``). The store's residency (``cached_fraction`` in the rows) is measured in
   the same pass over its files, each file opened once.

``fresh_store`` does 2-3 before a timed store (an empty store directory first);
``ReadPreparation`` does 2-4 before a timed read.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgbench.data import pool
from imgbench.experiment import vocabulary
from imgbench.harness import readers, space, verification
from imgbench.system import fsutil, machine, pagecache, phases

# The page cache a recycle step frees before a timed operation, at most: enough to
# decide where the operation's first pages come from; beyond it a store far larger than
# memory evicts pages as it goes in any case.
RECYCLE_MAX_BYTES = 2 << 30

# What a read returns at once beyond its images (labels, the library's buffers).
RETURNED_SLACK_BYTES = 16 << 20


def scratch_beside(store_dir: Path, purpose: str) -> Path:
    """A scratch directory beside the store, private to this process."""
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
    ``floor_db``: see ``verification.verify``."""
    phases.push("warm-up")
    fsutil.remove_tree(scratch)
    scratch.mkdir(parents=True)
    try:
        one = pool.tile(source.batch(0, 1), source.labels[:1], 1)
        module.store(scratch, one, one.labels, options=options)
        fsutil.flush(scratch, flush)
        verification.verify(module.__name__, module.read(scratch), one, floor_db=floor_db)
        for images, labels in module.read_batches(scratch, 1):
            verification.verify(module.__name__, (images, labels), one, floor_db=floor_db)
        for each in [readahead] if isinstance(readahead, str) else readahead:
            readers.checked_requests(
                module,
                scratch,
                [np.array([0])],
                each == "on",
                verification.request_check(module.__name__, one, floor_db),
            )
        pagecache.cached_fraction(scratch)
        machine.io_read_bytes()
        machine.pressure_some_avg10("cpu")
        phases.pop()
        yield scratch
    finally:
        with phases.phase("warm-up"):
            fsutil.remove_tree(scratch)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Within the block, the objects the job holds at its start (modules, the pool, what
    the warm-up made) are out of the garbage collector's reach (``gc.freeze``), so the
    collection before each timed region (``region.Region``) scans only what the job made
    since: 7-10 ms a collection in a job that imported numpy, Pillow and a format library,
    0.1 ms after the freeze (about 2,000 regions in the default run)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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


def fill_cache(store_dir: Path, files: list[str | Path] | None = None) -> float:
    """Make a store warm: read the bytes of every file not wholly in the page cache
    already (no decoding, so the cost does not depend on the format); the fraction of
    the store then cached (``pagecache.fill_tree_measured``)."""
    return pagecache.fill_tree_measured(store_dir, files)


def prepare_machine(directory: Path, page_cache_bytes: int, anonymous_bytes: int = 0) -> int:
    """Write back dirty pages, then recycle as much page cache and anonymous memory as the
    operation will fill; returns the bytes recycled."""
    with phases.phase("write back"):
        os.sync()
    with phases.phase("recycle memory"):
        recycled = recycle_page_cache(directory, int(page_cache_bytes))
        return recycled + fsutil.prefault(int(anonymous_bytes))


def evict(store_dir: Path, eviction: str, files: list[str | Path] | None = None) -> None:
    """Make the store cold: its data pages (``fadvise``) or the whole page cache with
    dentries and inodes (``drop_caches``, root only)."""
    if eviction == vocabulary.FADVISE:
        with phases.phase("evict"):
            pagecache.evict_tree(store_dir, files)
    elif eviction == vocabulary.DROP_CACHES:
        with phases.phase("evict"):
            fsutil.drop_caches()
    else:
        raise ValueError(f"cold must be one of {', '.join(vocabulary.EVICTIONS)}, not {eviction!r}")


def fresh_store(store_dir: Path, source: pool.TiledImages, recycle: bool = True) -> int:
    """Before a timed store: an empty store directory (never append to an older store),
    dirty pages written back, and with ``recycle`` (the job's first store) the page cache
    the store will fill and the chunks it holds recycled; returns the bytes recycled. A
    later store of the job starts from the pages its predecessor's removal just freed."""
    with phases.phase("remove previous store"):
        fsutil.remove_tree(store_dir)
        store_dir.mkdir(parents=True)
    if not recycle:
        with phases.phase("write back"):
            os.sync()
        return 0
    # The page cache of the store: 1.5x the pixels covers LMDB's pages and PNG's worst case.
    need = min(int(1.5 * source.nbytes) + (16 << 20), RECYCLE_MAX_BYTES)
    return prepare_machine(store_dir.parent, need, 2 * source.held_chunk_bytes)


def returned_bytes(pattern: str, source: pool.TiledImages, requests) -> int:
    """What a read returns at once: the whole store into one array, a chunk or two of an
    epoch, a request's batch per reader, or a buffered shuffle's buffer, unit and
    minibatch (``access.BufferedShuffle.images_held``), and ``RETURNED_SLACK_BYTES``."""
    if pattern == vocabulary.WHOLE_ARRAY:
        returned = source.nbytes
    elif pattern == vocabulary.WHOLE:
        returned = 2 * source.held_chunk_bytes
    elif pattern == vocabulary.BUFFERED_SHUFFLE:
        returned = requests.images_held * source.image_bytes
    else:
        returned = max(len(r) for r in requests) * source.image_bytes
    return returned + RETURNED_SLACK_BYTES


@dataclass
class ReadPreparation:
    """Brings the machine to a read point's state right before each timed read
    (``before_read``). ``files``: the store's (a read job never changes the store)."""

    store_dir: Path
    files: list[str]  # the store's paths (``fsutil.store_paths``)
    cache: str
    eviction: str
    page_cache_bytes: int  # what the read fills: the store for a cold read, none warm
    anonymous_bytes: int  # what the read returns at once (``returned_bytes``)
    prefaulted: int = 0  # bytes recycled before the last read
    cached_fraction: float = float("nan")  # of the store, right before the last read
    recycled: bool = False  # memory recycled before this point's first read

    @classmethod
    def of(cls, store_dir, files, usage: fsutil.DiskUsage, cache, eviction, anonymous_bytes):
        """A cold read fills as much page cache as the store takes; a warm one none."""
        cold = cache == vocabulary.COLD
        page_cache = min(usage.bytes_on_disk, RECYCLE_MAX_BYTES) if cold else 0
        return cls(store_dir, files, cache, eviction, page_cache, anonymous_bytes)

    @property
    def cold(self) -> bool:
        return self.cache == vocabulary.COLD

    def before_read(self) -> None:
        """The machine brought to the point's state right before the timed region: dirty
        pages written back; before the point's first read, memory recycled (step 3); the
        store evicted (cold) or filled (warm), its residency measured in the same pass
        over its files. A cold read by ``fadvise`` evicts first: the page cache it freed
        counts towards the recycling, which then frees only the rest of what the read
        will fill (nothing when the store was cached, as after the warm reads)."""
        with phases.phase("write back"):
            os.sync()
        if self.cold and self.eviction == vocabulary.FADVISE:
            with phases.phase("evict"):
                eviction = pagecache.evict_tree_measured(self.store_dir, self.files)
            self.cached_fraction = eviction.cached_fraction
            freed = 0 if math.isnan(eviction.freed_bytes) else int(eviction.freed_bytes)
            self.prefaulted = self._recycle(max(0, self.page_cache_bytes - freed))
            return
        self.prefaulted = self._recycle(self.page_cache_bytes)
        if self.cold:
            evict(self.store_dir, self.eviction, self.files)
            with phases.phase("residency"):
                self.cached_fraction = pagecache.cached_fraction(self.store_dir, self.files)
            with phases.phase("evict"):
                fsutil.drop_caches()  # the residency walk above brought inodes back
        else:
            with phases.phase("fill cache"):
                self.cached_fraction = pagecache.fill_tree_measured(self.store_dir, self.files)

    def _recycle(self, page_cache_bytes: int) -> int:
        """Before the point's first read only: ``page_cache_bytes`` of page cache and the
        read's anonymous memory recycled (dirty pages were just written back); the bytes
        recycled."""
        if self.recycled:
            return 0
        self.recycled = True
        with phases.phase("recycle memory"):
            recycled = recycle_page_cache(self.store_dir.parent, int(page_cache_bytes))
            return recycled + fsutil.prefault(int(self.anonymous_bytes))
