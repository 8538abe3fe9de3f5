"""Zarr v3: the images as one chunked (and by default sharded) array, the labels beside it.

The store directory is a Zarr v3 group (``zarr.json``) holding two arrays: ``images``,
shape (N, H, W, C) uint8 in chunks of ``chunk_images`` whole images, and ``labels``,
shape (N,), one chunk. Any Zarr v3 reader opens it (``zarr.open_group(store_dir)`` or
``zarr.open_array(store_dir / "images")``); nothing beyond the array metadata is needed.

Options:

``chunk_images`` (1)
    images per chunk, the unit zarr reads, decodes and (with compression) compresses.
    One image per chunk makes a random single-image read fetch and decode that image
    only; zarr's per-chunk overhead (tasks on its event loop, a file open per chunk or
    chunk range) then is paid per image in whole reads as well.
``sharding`` (true) and ``shard_images`` (128)
    with sharding (the ``sharding_indexed`` codec) the chunks are packed into shard
    files of ``shard_images`` images each (a multiple of ``chunk_images``), with an index
    of 16 bytes per chunk plus a CRC32C at the end of each: a store of N images is
    ceil(N / shard_images) files. Without sharding every chunk is a file of its own
    (``images/c/<i>/0/0/0``), N / ``chunk_images`` files: the small-file problem of the
    PNG store again, a directory entry, an inode and an open per chunk. 128 images per
    shard: 393 KB of 32x32 CIFAR images (782 files per 100,000 images) and 25 MB of
    256x256 ones; the shard index of 128 one-image chunks is 2,052 bytes, one page, which
    a random read fetches besides its image (256 would make it 4,100 bytes, two pages;
    1,024, 16 KB), and the shard is the writer's buffer (below).
``compression`` (``none``) with ``compression_level`` (null: zstd's default, 3)
    ``zstd``: each chunk compressed with zstd (``zarr.codecs.ZstdCodec``, no checksum;
    the C library comes with numcodecs). Blosc is not offered: its own thread pool would
    add a second layer of threads to zarr's.

Writing (``store``). Zarr writes a chunk, or with sharding a whole shard, as one file (a
temporary ``.partial`` file renamed into place). A write that covers part of a chunk
reads the existing chunk back, merges and rewrites it, and with sharding zarr 3.1 reads
the whole existing shard back for any write into it. The image stream's chunks (the
harness's ``chunk_bytes``) do not line up with shards, so ``store`` writes aligned
pieces only: the whole shards (without sharding: whole chunks) inside each stream chunk
straight from the stream, and the images at the edges gathered in one buffer of
``shard_images`` images (``chunk_images`` without sharding) that is written when full
and at the end (the last shard may be short). Every file is written once. Memory: that
buffer, one stream chunk, and zarr's encoded copies of what one write call covers (with
sharding the chunk encodings and the joined shard, about twice the shards written; one
call covers at most a stream chunk or a shard). Zarr's defaults are kept and recorded
here: ``async.concurrency`` 10 (chunks or shards in flight per call, on zarr's one
event-loop thread), file reads, writes and zstd in ``asyncio.to_thread`` (the loop's
default executor, min(32, CPUs + 4) threads; ``threading.max_workers`` null). Arrays
are created with ``write_empty_chunks`` true, so an all-zero chunk (a black image) is
written too: the layout (a file per chunk, every chunk in its shard) does not depend on
the pixels and no write scans its chunk for emptiness first (zarr's default would skip
such a chunk and read back the fill value 0, the same pixels). A write call raises on
the first file write that fails (a full disk) while its other writes go on in zarr's
threads; ``store`` waits for them (``_settle``) before it raises, so no file lands in a
store the harness is removing.

Reading. ``read`` is ``images[:]``; ``read_batches`` reads ``images[start:stop]`` per
batch (a fresh array each; zarr reads whole shards in one read and a shard's part chunk
by chunk after its index). ``Reader.get`` reads each run of consecutive requested
images (sorted, repeats once) as one slice, all of a request's runs concurrently in one
call into zarr's event loop, and puts them in the requested order; a sequential batch is
one slice. Not ``oindex``: on a sharded array zarr 3.1 turns an orthogonal selection
into per-element coordinate arrays inside each shard (zarr-python issue #3829): a batch
of 64 random 64x64 images grew a reader by 47 MB and took longer than the slices.
Per-image slices called one by one cost a round trip into the event loop each.

Readahead. ``LocalStore`` opens the file for every read itself (a chunk file; with
sharding the shard, once for its index and once per chunk's byte range). With
``readahead=False`` the reader opens the store through a ``LocalStore`` subclass whose
reads advise ``POSIX_FADV_RANDOM`` on each descriptor they open before ``pread`` of the
requested range, so a read fetches its own pages, not a readahead window. The effect is
small: every read is a fresh open of an exact byte range (300 cold single reads of
32x32 images: 2.5 MB from the device sharded with readahead, 2.1 MB without; one-image
chunk files are a page each, the same bytes either way).

Fork. Zarr runs its coroutines on one event-loop thread per process and registers an
``os.register_at_fork`` hook (``zarr.core.sync.reset_resources_after_fork``,
zarr-python #2815) that drops the parent's loop, thread and executor in a forked child,
so a reader forked after the parent used zarr (the harness's warm-up) starts a loop of
its own on first use; the store is opened in the reading process (``open_reader`` runs
after the fork). Without that hook a forked reader would hand its reads to the parent's
loop, whose thread does not exist in the child, and wait forever (tried: it hangs).

The module shares its name with the library: ``import zarr`` inside it is an absolute
import (Python 3), so it loads the library, never this module.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, indexed_chunks
from imgbench.methods._base import OptionError, advise_random, check_lengths, opener, whole_number

DESCRIPTION = "Zarr v3 array (chunked; sharded by default)"
PACKAGES = ("zarr", "numcodecs")
OPTIONS = {
    "chunk_images": 1,
    "sharding": True,
    "shard_images": 128,
    "compression": "none",
    "compression_level": None,
    "read_path": "runs",
}
CHOICES = {
    "chunk_images": whole_number(1, "images"),
    "sharding": (True, False),
    "shard_images": whole_number(1, "images"),
    "compression": ("none", "zstd"),
    "compression_level": (None, *range(1, 23)),
    "read_path": ("runs", "orthogonal"),
}
IMAGES = "images"
# The attribute of the ``images`` array naming the reader's path (``read_path``).
READ_PATH_ATTRIBUTE = "imgbench_read_path"
LABELS = "labels"
ZSTD_DEFAULT_LEVEL = 3
# Per shard: 16 bytes (offset, length) per chunk and the index's CRC32C.
INDEX_BYTES_PER_CHUNK = 16
INDEX_CHECKSUM_BYTES = 4
# zarr.json of the group and of each array (a few hundred bytes to ~1.5 KB each).
METADATA_FILES = 3
METADATA_FILE_BYTES = 8192


def library_versions() -> dict:
    """The zstd C library numcodecs is built with (zarr's zstd codec calls it)."""
    from numcodecs import zstd

    return {
        "zstd_c": f"{zstd.MAJOR_VERSION_NUMBER}.{zstd.MINOR_VERSION_NUMBER}"
        f".{zstd.MICRO_VERSION_NUMBER}"
    }


def check_options(options: dict) -> None:
    """A shard holds whole chunks; a compression level needs compression."""
    chunk_images, shard_images = options["chunk_images"], options["shard_images"]
    if options["sharding"] and shard_images % chunk_images:
        raise OptionError(
            "zarr",
            "shard_images",
            shard_images,
            f"a multiple of chunk_images ({chunk_images}), as a shard holds whole chunks",
            f"set shard_images to e.g. "
            f"{max(1, round(shard_images / chunk_images)) * chunk_images}, or sharding: false",
        )
    if options["compression"] == "none" and options["compression_level"] is not None:
        raise OptionError(
            "zarr",
            "compression_level",
            options["compression_level"],
            "null without compression",
            "set compression: zstd, or remove compression_level",
        )


def _layout(options: dict) -> tuple[int, int | None]:
    """(chunk_images, shard_images or None)."""
    if not options["sharding"]:
        return options["chunk_images"], None
    return options["chunk_images"], options["shard_images"]


def _compression_level(options: dict) -> int:
    if options["compression"] == "none":
        return 0
    level = options["compression_level"]
    return ZSTD_DEFAULT_LEVEL if level is None else level


def _compressors(options: dict):
    from zarr.codecs import ZstdCodec

    level = _compression_level(options)
    return None if options["compression"] == "none" else ZstdCodec(level=level)


def _zstd_bound(nbytes: int) -> int:
    """ZSTD_COMPRESSBOUND: the most zstd makes of ``nbytes`` (incompressible input)."""
    small = ((128 << 10) - nbytes) >> 11 if nbytes < (128 << 10) else 0
    return nbytes + (nbytes >> 8) + small


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: every chunk file (or shard file) whole
    blocks of its chunks, each at zstd's worst case when compressed (zarr stores an edge
    chunk at full chunk size), a shard's index and checksum, the labels chunk and three
    metadata files."""
    chunk_images, shard_images = _layout(options)
    compressed = options["compression"] != "none"
    chunk_bytes = chunk_images * image_bytes
    encoded = _zstd_bound(chunk_bytes) if compressed else chunk_bytes
    n_chunks = -(-n_images // chunk_images)
    if shard_images is None:
        images = n_chunks * blocks(encoded)
    else:
        per_shard = shard_images // chunk_images
        index = per_shard * INDEX_BYTES_PER_CHUNK + INDEX_CHECKSUM_BYTES
        full, rest = divmod(n_chunks, per_shard)
        images = full * blocks(per_shard * encoded + index)
        if rest:
            images += blocks(rest * encoded + index)
    labels = max(n_images, 1)
    labels = blocks(_zstd_bound(labels) if compressed else labels)
    return images + labels + METADATA_FILES * blocks(METADATA_FILE_BYTES)


def _aligned(images, unit: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, block)`` pieces of the stream front to back, each starting at a multiple
    of ``unit`` images and holding a multiple of ``unit`` images, but the last (the end of
    the stream). Whole units inside a stream chunk come straight from it; units that
    straddle two chunks are gathered in one buffer of ``unit`` images, reused (a piece is
    written before the next is asked for)."""
    pending = None
    filled = pending_start = 0
    for start, chunk in indexed_chunks(images):
        position = 0
        if filled:
            take = min(unit - filled, len(chunk))
            pending[filled : filled + take] = chunk[:take]
            filled += take
            position = take
            if filled < unit:
                continue
            yield pending_start, pending
            filled = 0
        whole = (len(chunk) - position) // unit * unit
        if whole:
            yield start + position, chunk[position : position + whole]
            position += whole
        rest = len(chunk) - position
        if rest:
            if pending is None:
                pending = np.empty((unit, *chunk.shape[1:]), dtype=chunk.dtype)
            pending[:rest] = chunk[position:]
            filled = rest
            pending_start = start + position
    if filled:
        yield pending_start, pending[:filled]


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    import zarr
    from zarr.storage import LocalStore

    chunk_images, shard_images = _layout(options)
    compressors = _compressors(options)
    check_lengths(images, labels)
    shape = tuple(int(n) for n in images.shape)
    config = {"write_empty_chunks": True}
    group = zarr.create_group(store=LocalStore(Path(store_dir)), zarr_format=3)
    images_array = group.create_array(
        IMAGES,
        shape=shape,
        dtype=np.dtype(images.dtype),
        chunks=(chunk_images, *shape[1:]),
        shards=None if shard_images is None else (shard_images, *shape[1:]),
        compressors=compressors,
        filters=None,
        fill_value=0,
        config=config,
        attributes={READ_PATH_ATTRIBUTE: options["read_path"]},
    )
    labels = np.ascontiguousarray(labels)
    labels_array = group.create_array(
        LABELS,
        shape=labels.shape,
        dtype=labels.dtype,
        chunks=(max(len(labels), 1),),
        compressors=compressors,
        filters=None,
        fill_value=0,
        config=config,
    )
    try:
        for start, block in _aligned(images, shard_images or chunk_images):
            images_array[start : start + len(block)] = block
        if len(labels):
            labels_array[:] = labels
    except BaseException:
        _settle()
        raise


def _settle() -> None:
    """Wait until every task left on zarr's event loop has ended. A write call runs up to
    ``async.concurrency`` file writes at once and raises on the first that fails (a full
    disk) while the others go on in their threads; without this wait they would write
    files into the store (and recreate its directories) after ``store`` raised, while the
    harness removes the failed store. Nothing is cancelled: a cancelled task would leave
    its thread writing."""
    import asyncio

    from zarr.core import sync as zarr_sync

    if zarr_sync.loop[0] is None:
        return

    async def others_ended() -> None:
        while True:
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not others:
                return
            await asyncio.gather(*others, return_exceptions=True)

    zarr_sync.sync(others_ended())


def _open(store_dir: Path, readahead: bool = True):
    """The store's ``images`` and ``labels`` arrays, opened read-only in this process."""
    import zarr
    from zarr.storage import LocalStore

    store_class = LocalStore if readahead else _advised_store_class()
    store = store_class(Path(store_dir), read_only=True)
    group = zarr.open_group(store=store, mode="r", zarr_format=3)
    return group[IMAGES], group[LABELS]


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _open(store_dir)
    return images[:], labels[:]


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back: each batch a slice of the array, a fresh array."""
    images, labels_array = _open(store_dir)
    labels = labels_array[:]
    for start, stop in batch_bounds(images.shape[0], batch_images):
        yield images[start:stop], labels[start:stop].copy()


def _read_advised(path: Path, prototype, byte_range):
    """``LocalStore``'s read of ``path`` (whole, or ``byte_range``), on a descriptor
    advised ``POSIX_FADV_RANDOM`` first."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    fd = os.open(path, os.O_RDONLY)
    try:
        advise_random(fd)
        size = os.fstat(fd).st_size
        if byte_range is None:
            start, stop = 0, size
        elif isinstance(byte_range, RangeByteRequest):
            start, stop = byte_range.start, min(byte_range.end, size)
        elif isinstance(byte_range, OffsetByteRequest):
            start, stop = byte_range.offset, size
        elif isinstance(byte_range, SuffixByteRequest):
            start, stop = max(0, size - byte_range.suffix), size
        else:
            raise TypeError(f"Unexpected byte_range, got {byte_range}.")
        parts = []
        while start < stop:
            part = os.pread(fd, stop - start, start)
            if not part:
                break
            parts.append(part)
            start += len(part)
        return prototype.buffer.from_bytes(b"".join(parts))
    finally:
        os.close(fd)


@functools.cache
def _advised_store_class():
    """A ``LocalStore`` whose reads advise each file they open of random access."""
    import asyncio

    from zarr.core.buffer.core import default_buffer_prototype
    from zarr.storage import LocalStore

    missing = (FileNotFoundError, IsADirectoryError, NotADirectoryError)

    class RandomAccessLocalStore(LocalStore):
        async def get(self, key, prototype=None, byte_range=None):
            if prototype is None:
                prototype = default_buffer_prototype()
            if not self._is_open:
                await self._open()
            try:
                return await asyncio.to_thread(
                    _read_advised, self.root / key, prototype, byte_range
                )
            except missing:
                return None

        def get_sync(self, key, *, prototype=None, byte_range=None):
            if prototype is None:
                prototype = default_buffer_prototype()
            self._ensure_open_sync()
            try:
                return _read_advised(self.root / key, prototype, byte_range)
            except missing:
                return None

        async def get_partial_values(self, prototype, key_ranges):
            return await asyncio.gather(
                *(self.get(key, prototype, byte_range) for key, byte_range in key_ranges)
            )

    return RandomAccessLocalStore


def read_units(store_dir: Path) -> list[tuple[int, int]] | None:
    """The store's natural unit of a streaming read: its shards (``shard_images`` images
    each, read with one file read), or its chunks when they hold several images; None
    (the harness's blocks) for an unsharded array of one-image chunks."""
    images, _ = _open(Path(store_dir))
    count = images.shape[0]
    unit = images.shards[0] if images.shards is not None else images.chunks[0]
    if unit <= 1:
        return None
    return [(start, min(start + unit, count)) for start in range(0, count, unit)]


def _runs(unique: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive values of the sorted ``unique``."""
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [len(unique)]))
    return [(int(unique[a]), int(unique[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    if options["read_path"] == "orthogonal":
        return "oindex of the batch (zarr-python)"
    return "a slice per run of consecutive images, the runs concurrently (zarr-python)"


class Reader:
    """The arrays opened in this process (after any fork); labels read once. ``get``
    reads each run of consecutive requested images as one slice, all runs at once in
    one call into zarr's event loop (at most ``async.concurrency`` slices in flight),
    then puts them in the requested order (see the module docstring: not ``oindex``)."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.images, labels = _open(store_dir, readahead)
        self.labels = labels[:]
        self.read_path = str(self.images.attrs.get(READ_PATH_ATTRIBUTE, "runs"))

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        from zarr.core.sync import sync

        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        count = self.images.shape[0]
        if len(indices) and (indices.min() < -count or indices.max() >= count):
            raise IndexError(f"indices out of range for {count} images")
        indices = np.where(indices < 0, indices + count, indices)
        unique, inverse = np.unique(indices, return_inverse=True)
        if not len(unique):
            empty = np.empty((0, *self.images.shape[1:]), dtype=self.images.dtype)
            return empty, self.labels[:0].copy()
        if self.read_path == "orthogonal":
            gathered = self.images.oindex[unique]
        else:
            # A request of one run as one synchronous slice instead was no faster warm and
            # slower cold (200 single 256x256 images: 725 -> 596 images/s; docs/read-paths.md).
            pieces = sync(self._read_runs(_runs(unique)))
            gathered = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        if len(gathered) != len(indices) or not np.array_equal(unique, indices):
            gathered = gathered[inverse.reshape(-1)]
        return gathered, self.labels[indices]

    async def _read_runs(self, runs: list[tuple[int, int]]) -> list[np.ndarray]:
        import asyncio

        import zarr

        array = self.images.async_array
        limit = asyncio.Semaphore(zarr.config.get("async.concurrency"))

        async def read_run(start: int, stop: int) -> np.ndarray:
            async with limit:
                return await array.getitem(slice(start, stop))

        return list(await asyncio.gather(*(read_run(*run) for run in runs)))

    def close(self) -> None:
        self.images = None


open_reader = opener(Reader)
