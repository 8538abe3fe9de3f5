"""The three timed reads of a store, each one ``Region``, each checked outside its clock.

* ``read_whole_array`` (``whole_array``, the article's read): the method's ``read``
  returns the whole store as one array, checked after the clock stopped;
* ``read_epoch`` (``whole``): an epoch through the method's ``read_batches`` in this
  process; the clock runs only while the method produces a chunk, and each chunk is
  checked against the pool between chunks and dropped, so memory stays a chunk or two;
* ``read_in_workers`` (every request pattern): the method's reader in forked reader
  processes (``readers``), the same code for 1 or N readers; the time is the wall time
  from their release until the last reader finished, with no check inside it; every
  request is checked afterwards in an untimed pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgbench.data import pool
from imgbench.harness import readers, region, verification
from imgbench.harness.source import as_source
from imgbench.system import phases

# The end of an epoch (``next``'s default: a method's batch is never this object).
_END = object()


def read_whole_array(
    module, store_dir: Path, source: pool.TiledImages, device: str | None, floor_db=None
) -> region.Region:
    """Time the method's ``read`` of the whole store into one array; check it after."""
    (result,), timed = region.timed([lambda: module.read(store_dir)], device)
    with phases.phase("verify"):
        verification.verify_whole(module.__name__, result, source, floor_db)
        del result
    return timed


def read_epoch(
    module,
    store_dir: Path,
    source: pool.TiledImages,
    device: str | None = None,
    floor_db: float | None = None,
) -> region.Region:
    """Time one epoch over the store through the method's ``read_batches``, in chunks of
    ``source.chunk_images``. The clock runs only while the method produces a batch: each
    batch is checked against the pool between batches, outside the clock, and dropped, so
    memory stays a chunk or two whatever the store's size."""
    position = 0
    # the CPU window spans the checks between batches too
    with region.Region(device, work=region.IN_LAPS) as timed:
        batches = module.read_batches(store_dir, source.chunk_images)
        while (batch := timed.lap(next, batches, _END)) is not _END:
            with phases.phase("verify"):
                verification.verify(
                    module.__name__, batch, source, start=position, floor_db=floor_db
                )
                position += len(batch[0])
                del batch
    verification.check_count(module.__name__, position, len(source))
    return timed


def read_in_workers(
    method: str,
    store_dir: Path,
    shares: list,
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
) -> tuple[np.ndarray, region.Region]:
    """One timed repetition of the forked readers (``readers.read_in_workers``): each
    warmed up on ``scratch``, the machine ``prepare``d, all released at once; the read's
    time is the wall time from the release until the last reader finished, with no check
    inside it; every request is checked afterwards in an untimed pass (``before_check``
    first: the cold point's eviction). Returns every request's latency and the region
    (``IN_READERS``: CPU time and bytes fetched are the readers')."""
    source = as_source(source, labels)
    timed = region.Region(device, work=region.IN_READERS)
    try:
        pool_read = readers.read_in_workers(
            method,
            store_dir,
            shares,
            verification.request_check(method, source, floor_db),
            readahead=readahead,
            region=timed,
            scratch=scratch,
            prepare=prepare,
            before_check=before_check,
            timeout_s=timeout_s,
        )
    except readers.ReaderError as error:
        raise verification.VerificationError(str(error)) from None
    passes = pool_read.passes
    timed.count_readers(
        (one.cpu_seconds for one in passes),
        (one.device_read_bytes for one in passes),
        (one.peak_rss_bytes for one in passes),
    )
    return pool_read.latencies_ns, timed
