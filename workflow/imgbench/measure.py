"""The timing harness: one store, or one read of one store, measured in this process.

Only the storage operation sits inside the timed region (``time.perf_counter_ns``): loading
the source images, eviction, disk-usage walks and the correctness check are outside it.
The garbage collector is collected and then disabled during the timed region, as
``timeit`` does, so a collection triggered by earlier allocations cannot land in one
method's figure; every row records that choice in ``gc``.

Reads follow a pattern (``access``): ``sequential`` with one reader is the article's whole
store read (the method's ``read``); other patterns and several readers go through the
method's random-access reader. With ``readers > 1`` the worker processes are forked and
waiting before the clock starts; each opens the store itself after the fork, reads its
share, and checks it after its own timed part; the time is the wall time from releasing
the workers until the last one is done.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import access, fsutil, provenance
from .methods import get_method

CACHE_STATES = ("cold", "warm")
ROW_FIELDS = [
    "method",
    "variant",
    "image_size",
    "operation",
    "cutoff",
    "repeat",
    "cache",
    "read_pattern",
    "readers",
    "batch_size",
    "seed",
    "images_read",
    "fsync",
    "seconds",
    "images_per_s",
    "latency_p50_us",
    "latency_p95_us",
    "latency_p99_us",
    "latency_max_us",
    "bytes_on_disk",
    "bytes_apparent",
    "n_files",
    "cached_fraction",
    "gc",
    "host",
    "store_fs_type",
    "env_id",
    "t_start_unix",
    "t_end_unix",
]


class VerificationError(RuntimeError):
    """A store read back something other than what was stored."""


def load_source(images_path: Path, labels_path: Path, cutoff: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``cutoff`` images and labels, fully in memory (no lazy mapping)."""
    images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    labels = np.load(labels_path, mmap_mode="r", allow_pickle=False)
    if cutoff > len(images):
        raise ValueError(
            f"cutoff {cutoff} is larger than the {len(images)} images in {images_path}; "
            "lower the cutoff or raise n_images in config.yaml"
        )
    return np.array(images[:cutoff]), np.array(labels[:cutoff])


def timed(operation: Callable[[], Any]) -> tuple[Any, int, float, float]:
    """Run ``operation`` with the GC collected and disabled; (result, ns, start, end unix)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start_unix = time.time()
        start = time.perf_counter_ns()
        result = operation()
        elapsed = time.perf_counter_ns() - start
        end_unix = time.time()
    finally:
        if was_enabled:
            gc.enable()
    return result, elapsed, start_unix, end_unix


def _row(env: dict, elapsed_ns: int, usage: fsutil.DiskUsage, **fields) -> dict:
    seconds = elapsed_ns / 1e9
    row = dict.fromkeys(ROW_FIELDS, float("nan"))
    row.update(fields)
    row.update(
        seconds=seconds,
        images_per_s=row["images_read"] / seconds if seconds > 0 else float("inf"),
        bytes_on_disk=usage.bytes_on_disk,
        bytes_apparent=usage.bytes_apparent,
        n_files=usage.n_files,
        gc="disabled",
        host=env["host"],
        store_fs_type=env["store_fs_type"],
        env_id=provenance.environment_id(env),
    )
    row["t_start_unix"] = f"{row['t_start_unix']:.6f}"
    row["t_end_unix"] = f"{row['t_end_unix']:.6f}"
    return row


def run_store(
    method: str,
    images: np.ndarray,
    labels: np.ndarray,
    store_dir: Path,
    *,
    fsync: bool,
    repeat: int,
    env: dict,
    variant: str = "default",
    options: dict | None = None,
) -> dict:
    """Write a fresh store and time it; the directory must not hold an older store."""
    module = get_method(method)
    store_dir = Path(store_dir)
    fsutil.remove_tree(store_dir)  # never append to an older store
    store_dir.mkdir(parents=True)

    def operation():
        module.store(store_dir, images, labels, fsync=fsync, options=options)
        if fsync:
            fsutil.fsync_tree(store_dir)

    _, elapsed, start, end = timed(operation)
    return _row(
        env,
        elapsed,
        fsutil.disk_usage(store_dir),
        method=method,
        variant=variant,
        image_size=int(images.shape[1]),
        operation="store",
        cutoff=len(images),
        repeat=repeat,
        cache="n/a",
        read_pattern="n/a",
        readers=1,
        batch_size="",
        seed="",
        images_read=len(images),
        fsync=fsync,
        t_start_unix=start,
        t_end_unix=end,
    )


def verify(
    method: str, got: tuple[np.ndarray, np.ndarray], images: np.ndarray, labels: np.ndarray
) -> None:
    got_images, got_labels = got
    problems = []
    if got_images.shape != images.shape or got_images.dtype != images.dtype:
        problems.append(
            f"images {got_images.dtype}{got_images.shape}, expected {images.dtype}{images.shape}"
        )
    elif not np.array_equal(got_images, images):
        differs = (got_images != images).reshape(len(images), -1).any(axis=1)
        problems.append(f"image {int(np.flatnonzero(differs)[0])} differs from the source")
    if got_labels.shape != labels.shape or not np.array_equal(got_labels, labels):
        problems.append(f"labels differ (got shape {got_labels.shape}, expected {labels.shape})")
    if problems:
        raise VerificationError(f"{method} store read back wrong data: " + "; ".join(problems))


def _read_requests(module, store_dir: Path, requests: list) -> tuple[list, np.ndarray]:
    """Open a reader, serve every request (one gathered batch each), close; returns the
    batches and each request's latency in ns."""
    latencies = np.empty(len(requests), dtype=np.int64)
    batches = []
    reader = module.open_reader(store_dir)
    try:
        for position, request in enumerate(requests):
            start = time.perf_counter_ns()
            batches.append(reader.get(request))
            latencies[position] = time.perf_counter_ns() - start
    finally:
        reader.close()
    return batches, latencies


def _verify_batches(method, batches, requests, images, labels) -> None:
    if not requests:
        return
    order = np.concatenate(requests)
    got = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    verify(method, got, images[order], labels[order])


def _worker(method, store_dir, share, images, labels, barrier, results) -> None:
    """One reader process: wait for the start, read its share, note when reading ended
    (``perf_counter_ns`` is the system-wide monotonic clock, comparable across processes),
    then check what it read, outside the timed part, and report."""
    try:
        module = get_method(method)
        barrier.wait()
        gc.disable()
        batches, latencies = _read_requests(module, store_dir, share)
        read_end = time.perf_counter_ns()
        gc.enable()
        _verify_batches(method, batches, share, images, labels)
        results.put((read_end, latencies, None))
    except BaseException as error:  # reported to the parent, which fails the job
        barrier.abort()  # a reader that fails before the start releases everyone waiting
        results.put((None, None, f"{type(error).__name__}: {error}"))


def _collect(workers, results, *, poll_s: float = 1.0) -> list:
    """One outcome per worker; a worker that died without reporting (a crash in a C
    library, the OOM killer) fails the job at once instead of leaving the parent waiting."""
    outcomes = []
    while len(outcomes) < len(workers):
        try:
            outcomes.append(results.get(timeout=poll_s))
        except queue.Empty as empty:
            # a worker that exited cleanly has put its outcome already; one that exited
            # with a signal or an error code never will
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead and results.empty():
                codes = ", ".join(f"pid {w.pid} exit code {w.exitcode}" for w in dead)
                raise VerificationError(
                    f"a reader process died without reporting ({codes}); a negative code "
                    "is the signal that killed it (-9: out of memory, -11: segfault)"
                ) from empty
    return outcomes


def _read_parallel(
    method, store_dir, shares, images, labels, *, start_timeout_s: float = 600.0
) -> tuple[np.ndarray, int, float, float]:
    """Fork one reader per share, release them together, and time from the release to
    the end of the slowest reader's reads (each reader's own check is not timed)."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(shares) + 1)
    results = context.Queue()
    workers = [
        context.Process(
            target=_worker, args=(method, store_dir, share, images, labels, barrier, results)
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    try:
        gc.collect()
        start_unix = time.time()
        start = time.perf_counter_ns()
        try:
            barrier.wait(timeout=start_timeout_s)
        except threading.BrokenBarrierError:
            outcomes = _collect(workers, results)  # raises if a worker died before the start
            errors = [error for _, _, error in outcomes if error and "BrokenBarrier" not in error]
            raise VerificationError(
                f"{method} readers did not all start: "
                + (errors[0] if errors else f"not within {start_timeout_s:.0f} s")
            ) from None
        outcomes = _collect(workers, results)
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    errors = [error for _, _, error in outcomes if error]
    if errors:
        raise VerificationError(f"{method} reader failed: {errors[0]}")
    elapsed = max(read_end for read_end, _, _ in outcomes) - start
    latencies = np.concatenate([lat for _, lat, _ in outcomes])
    return latencies, elapsed, start_unix, start_unix + elapsed / 1e9


def run_read(
    method: str,
    store_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    cache: str,
    fsync: bool,
    repeat: int,
    env: dict,
    variant: str = "default",
    pattern: str = "sequential",
    readers: int = 1,
    batch_size: int = 64,
    random_reads: int = 1000,
    seed: int = 0,
) -> dict:
    """Time one read of a store in the given cache state and pattern, then check it."""
    if cache not in CACHE_STATES:
        raise ValueError(f"cache must be one of {CACHE_STATES}, not {cache!r}")
    module = get_method(method)
    store_dir = Path(store_dir)
    whole = pattern == "sequential" and readers == 1
    requests = access.requests(
        pattern, len(images), batch_size=batch_size, reads=random_reads, seed=seed
    )
    if cache == "cold":
        fsutil.evict_tree(store_dir)
    elif whole:
        module.read(store_dir)  # untimed first read fills the page cache
    else:
        _read_requests(module, store_dir, requests)
    cached = fsutil.cached_fraction(store_dir)

    latencies = np.empty(0)
    if whole:
        result, elapsed, start, end = timed(lambda: module.read(store_dir))
        verify(method, result, images, labels)
    elif readers == 1:
        (batches, latencies), elapsed, start, end = timed(
            lambda: _read_requests(module, store_dir, requests)
        )
        _verify_batches(method, batches, requests, images, labels)
    else:
        shares = access.split(requests, readers)
        latencies, elapsed, start, end = _read_parallel(method, store_dir, shares, images, labels)

    images_read = int(sum(len(request) for request in requests))
    return _row(
        env,
        elapsed,
        fsutil.disk_usage(store_dir),
        method=method,
        variant=variant,
        image_size=int(images.shape[1]),
        operation="read",
        cutoff=len(images),
        repeat=repeat,
        cache=cache,
        read_pattern=pattern,
        readers=readers,
        batch_size=batch_size if pattern != "random_single" else 1,
        seed=seed,
        images_read=images_read,
        fsync=fsync,
        cached_fraction=cached,
        t_start_unix=start,
        t_end_unix=end,
        **access.latency_percentiles(latencies),
    )


def write_row(row: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerow(
            {
                key: "" if isinstance(value, float) and math.isnan(value) else value
                for key, value in row.items()
            }
        )
    tmp.replace(path)


def write_environment(env: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"env_id": provenance.environment_id(env), "recorded_at": provenance.now_iso(), **env}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
