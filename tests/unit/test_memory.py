"""memory: a job's resident high-water mark and its sampled anonymous memory; and the
bound the streaming harness keeps: a job's memory follows the pool and the chunk size,
not the cutoff."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imgbench.harness import memory
from imgbench.methods import available_methods

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def test_anon_watch_sees_memory_this_process_holds():
    with memory.AnonWatch(interval_s=0.01) as watch:
        before = watch.peak()
        block = np.ones(200 * MIB, dtype=np.uint8)  # written, so resident
        time.sleep(0.1)
        during = watch.peak()
        del block
        time.sleep(0.05)
        after = watch.peak()
    assert during - before >= 190 * MIB
    assert after == during  # a peak, not the current value


def _hold_in_child(megabytes: int, started, ready, release) -> None:
    started.set()
    time.sleep(0.1)  # let the watcher take its first sample of this reader
    block = np.ones(megabytes * MIB, dtype=np.uint8)
    ready.set()
    release.wait(10)
    del block


@pytest.mark.parametrize("shared_mb", [0, 120])
def test_anon_watch_counts_what_readers_add_not_what_they_share(shared_mb):
    """A reader forked after the job holds 120 MB shares those pages: they count once;
    the 150 MB the reader allocates itself count too."""
    context = multiprocessing.get_context("fork")
    with memory.AnonWatch(interval_s=0.01) as watch:
        shared = np.ones(shared_mb * MIB, dtype=np.uint8)
        time.sleep(0.05)
        before = watch.peak()
        started, ready, release = context.Event(), context.Event(), context.Event()
        child = context.Process(target=_hold_in_child, args=(150, started, ready, release))
        child.start()
        assert started.wait(10) and ready.wait(10)
        time.sleep(0.1)
        during = watch.peak()
        release.set()
        child.join()
        del shared
    assert 140 * MIB <= during - before <= 175 * MIB, (before, during)


def test_peak_rss_is_at_least_what_was_touched():
    block = np.ones(64 * MIB, dtype=np.uint8)
    assert memory.peak_rss_bytes() >= block.nbytes
    del block


PROBE = """
import json, sys
from pathlib import Path
sys.path.insert(0, {workflow!r})
import numpy as np
from imgbench import methods
from imgbench.data import pool
from imgbench.harness import measure, memory, provenance

method, count, store = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
# A Parquet writer holds a row group: one of a chunk's images, so the bound below holds.
options = {{"row_group_images": 32}} if method == "parquet" else None
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(20, 64, 64, 3), dtype=np.uint8)
labels = rng.integers(0, 10, size=20, dtype=np.uint8)
with memory.AnonWatch(interval_s=0.005) as watch:
    source = pool.tile(images, labels, count, 32)
    env = provenance.collect(store.parent, Path({repo!r}))
    # The format library's fixed footprint (its import, its allocator's arenas: pyarrow's
    # is about 90 MB) does not grow with the store: a throwaway store of the pool, written
    # and read once, puts it in the base.
    scratch = store.with_name(store.name + "-library")
    scratch.mkdir(parents=True)
    methods.store(method, scratch, images, labels, options)
    for _ in methods.get_method(method).read_batches(scratch, 64):
        pass
    base = watch.peak()
    point = measure.Point(method, options=options, fsync="none")
    rows = measure.run_store(point, source, store, env=env, memory_watch=watch)
    for pattern in ("whole", "shuffled"):
        point = measure.Point(method, options=options, fsync="none", cache="warm",
                              pattern=pattern, batch_size=64)
        rows += measure.run_read(point, source, store, env=env, memory_watch=watch)
print(json.dumps({{"base": base, "anon": max(r["peak_anon_bytes"] for r in rows),
                  "rss": max(r["peak_rss_bytes"] for r in rows)}}))
"""


def probe(method: str, count: int, store: Path) -> dict:
    script = PROBE.format(workflow=str(REPO / "workflow"), repo=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", script, method, str(count), str(store)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", available_methods())
def test_job_memory_follows_pool_and_chunks_not_the_cutoff(method, tmp_path):
    """A store, a whole-store read and a shuffled epoch through a forked reader (one
    process with its reader here) of 2,000 and of 20,000 images of 64x64 (24.6 and 246
    MB) from a pool of 20 images in chunks of 32 (393 KB) and batches of 64: the job's
    own memory stays within what the pool and a few chunks explain, at both sizes."""
    image_bytes = 64 * 64 * 3
    small = probe(method, 2_000, tmp_path / "small")
    large = probe(method, 20_000, tmp_path / "large")
    chunk = 32 * image_bytes
    # pool, the chunk being written and a library copy of it, a batch read and its check,
    # labels (one byte per image), the harness's prefault of what a read returns (two
    # chunks and 16 MiB, touched on purpose before each timed read) and allocator slack
    # (24 MiB: a parquet job's own memory was 33.6 MiB above its base on this VM and 36.6
    # MiB in one CI run, against a bound of 36.0 with 16 MiB of slack)
    prefault = 2 * chunk + 16 * MIB  # the largest of the store's, the epoch's, a batch's
    bound = 20 * image_bytes + 8 * chunk + 20_000 + prefault + 24 * MIB
    for measured in (small, large):
        assert measured["anon"] - measured["base"] <= bound, (measured, bound)
    # tenfold more images (221 MB more store) move the job's own memory by under a chunk's
    # worth of slack, not by the store
    assert large["anon"] - small["anon"] <= prefault + 8 * chunk + 8 * MIB, (small, large)
    # npy's reader memory-maps the array (a shuffled epoch maps every page), LMDB too
    if method in ("hdf5", "png"):  # no memory map: the resident set is bounded too
        assert large["rss"] - small["rss"] <= prefault + 8 * chunk + 16 * MIB, (small, large)
