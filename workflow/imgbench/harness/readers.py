"""The forked reader pool: N reader processes serve their shares of requests together.

The same code runs for 1 or N readers, so the ratio between reader counts is a speed-up
of one thing. One call of ``read_in_workers`` is one timed repetition:

1. **fork and warm up.** Each reader is forked bound to the job's process (``lifetime``)
   and, before it says it is ready, runs the method's reader once on the job's scratch
   one-image store (open, get, check, close): the first use of each library in a fresh
   process (LMDB's environment, h5py's file, pyarrow's and zarr's machinery) is paid
   there, never in a reader's clock.
2. **prepare.** With every reader ready, the parent brings the machine to the point's
   state (``prepare``: write back, recycle memory, evict or fill the store's pages).
3. **timed pass**, in the parent's ``region`` (``region.IN_READERS``). The parent
   starts the clock and releases every reader at once. Each
   opens the store, serves its requests (each request's latency recorded, the batch
   dropped at once) and closes it; nothing is checked in between. The read's time is the
   **wall time from the release until the last reader finished**: while one reader
   waits for the device the others may use it, but no reader's checking is left out of
   the clock to give the others the device to themselves (with per-reader clocks that
   left the checks out, 2 readers of a device that serves one request at a time showed
   a 1.87x "speed-up").
4. **verification pass**, untimed: each reader serves the same requests again through a
   new reader, checking every batch against the pool (and that it is a fresh array).
   Where the readers leave cores free, each share's requests are split over its reader
   and ``_checker`` processes forked for this pass (``check_parts``), so every request
   is still checked once, in less wall time. The store is not evicted again first: what a
   reader returns does not depend on the cache, and a second cold pass cost as much
   device time as the timed one.

A share is a list of requests, or a buffered shuffle's share of units
(``access.BufferedShuffle``): its reader reads each unit with one request and draws the
minibatches from a seeded shuffle buffer, the same ones in both passes, so the check
pass checks every minibatch the timed pass drew (and that they hold every image of the
share once).

The opening of the store is inside the clock, for every method and reader count (rows:
``open_in_clock``). A reader that fails or dies (a signal, the OOM killer) fails the job
at once with what it said or its exit status; a reader never outlives the job.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from imgbench.harness import access, memory, verification
from imgbench.harness.region import IN_READERS, Region
from imgbench.methods import get_method
from imgbench.system import lifetime, machine, phases

# The check pass compares batches smaller than CHECK_BULK_BELOW_BYTES (single images, a
# few) many at once, up to CHECK_HELD_BYTES of them: a little, so that the memory a job
# records stays what its reads hold (a larger batch is checked on its own, as it came).
CHECK_BULK_BELOW_BYTES = 64 << 10
CHECK_HELD_BYTES = 1 << 20

# How often a reader waiting to be released checks that its parent is still there.
PARENT_CHECK_S = 0.1


class ReaderError(RuntimeError):
    """A reader process failed, died, or did not answer in time."""


@dataclass
class TimedPass:
    """What one reader measured in its timed pass."""

    latencies_ns: np.ndarray
    started_ns: int  # perf_counter_ns (CLOCK_MONOTONIC: one clock for every process)
    finished_ns: int
    cpu_seconds: float
    device_read_bytes: int | None
    peak_rss_bytes: int


@dataclass
class PoolRead:
    """One timed repetition of the pool: the wall time and what the readers measured."""

    released_ns: int
    finished_ns: int
    passes: list[TimedPass]
    prepared: object  # what ``prepare`` returned

    @property
    def elapsed_ns(self) -> int:
        return self.finished_ns - self.released_ns

    @property
    def latencies_ns(self) -> np.ndarray:
        return np.concatenate([one.latencies_ns for one in self.passes])


def serve(reader, requests) -> np.ndarray:
    """Serve ``requests`` through an open reader, dropping each batch at once; each
    request's latency in ns. A buffered shuffle (``access.BufferedShuffle``) serves its
    own: one latency per unit read, its minibatches drawn from its buffer and dropped."""
    latencies = np.empty(len(requests), dtype=np.int64)
    if isinstance(requests, access.BufferedShuffle):
        for batch, _ in requests.serve(reader, latencies):
            del batch
        return latencies
    for position, request in enumerate(requests):
        start = time.perf_counter_ns()
        batch = reader.get(request)
        latencies[position] = time.perf_counter_ns() - start
        del batch
    return latencies


def timed_requests(module, store_dir: Path, requests, readahead: bool) -> np.ndarray:
    """Open a reader, serve ``requests``, close it: the work inside a reader's clock."""
    reader = module.open_reader(store_dir, readahead=readahead)
    try:
        return serve(reader, requests)
    finally:
        reader.close()


def checked_requests(module, store_dir: Path, requests, readahead: bool, check) -> None:
    """Open a reader, serve ``requests`` and ``check(batch, request)`` each (small batches
    through ``check.many`` where it has it, up to ``CHECK_HELD_BYTES`` at a time), close. A
    buffered shuffle's minibatches are each checked against the indices they hold, and
    together they must hold every image of its units exactly once."""
    reader = module.open_reader(store_dir, readahead=readahead)
    try:
        if isinstance(requests, access.BufferedShuffle):
            drawn = []
            for batch, indices in requests.serve(reader):
                check(batch, indices)
                drawn.append(indices)
            verification.check_epoch(module.__name__, drawn, list(requests))
        elif hasattr(check, "many"):
            held, held_bytes = [], 0
            for request in requests:
                batch = reader.get(request)
                size = getattr(batch[0], "nbytes", 0)
                if size >= CHECK_BULK_BELOW_BYTES:  # a batch of many images: at once
                    check(batch, request)
                    continue
                held.append((batch, request))
                held_bytes += size
                if held_bytes >= CHECK_HELD_BYTES:
                    check.many(held)
                    held, held_bytes = [], 0
            check.many(held)
        else:
            for request in requests:
                check(reader.get(request), request)
    finally:
        reader.close()


def _wait_for(event, parent: int) -> None:
    """Wait for ``event``; end this process if the parent is gone meanwhile."""
    while not event.wait(PARENT_CHECK_S):
        if not lifetime.parent_alive(parent):
            os._exit(1)


def check_parts(shares: list) -> int:
    """Into how many parts each share's checks are split: one per core the readers leave
    free (at most 4 processes in all), for shares that are request lists; a buffered
    shuffle's share is checked whole by its reader."""
    if not shares or any(isinstance(share, access.BufferedShuffle) for share in shares):
        return 1
    cores = min(os.cpu_count() or 1, 4)
    smallest = min(len(share) for share in shares)
    return max(1, min(cores // len(shares), smallest))


def _reader(parent, method, store_dir, scratch, share, readahead, check, go, recheck, out, parts=1):
    """One reader process: warm up, say ready, wait; the timed pass; the checks (of its
    first part of ``parts``: ``_checker`` processes check the others)."""
    try:
        module = get_method(method)
        if scratch is not None:
            checked_requests(module, scratch, [np.array([0])], readahead, check)
        out.send(("ready", None))
        _wait_for(go, parent)
        started = time.perf_counter_ns()
        gc.disable()
        io_before, cpu_before = machine.io_read_bytes(), time.process_time()
        latencies = timed_requests(module, store_dir, share, readahead)
        finished = time.perf_counter_ns()
        cpu = time.process_time() - cpu_before
        io_after = machine.io_read_bytes()
        gc.enable()
        device = None if io_before is None or io_after is None else io_after - io_before
        peak = memory.own_peak_rss_bytes()
        out.send(("timed", TimedPass(latencies, started, finished, cpu, device, peak)))
        _wait_for(recheck, parent)
        checked_requests(
            module, store_dir, share[0::parts] if parts > 1 else share, readahead, check
        )
        out.send(("checked", None))
    except BaseException as error:  # reported to the parent, which fails the job
        out.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        out.close()


def _checker(method, store_dir, requests, readahead, check, out):
    """A process forked for the untimed check pass only: it checks ``requests`` (a part
    of a reader's share) through a reader of its own, as the reader does its part."""
    try:
        checked_requests(get_method(method), store_dir, requests, readahead, check)
        out.send(("checked", None))
    except BaseException as error:  # reported to the parent, which fails the job
        out.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        out.close()


def _gather(method: str, workers, receivers, stage: str, timeout_s: float) -> list:
    """One ``stage`` message from every reader, in reader order; a reader that reports an
    error, dies without a word, or is silent for ``timeout_s`` fails the read."""
    got: dict[int, object] = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < len(workers):
        pending = [i for i in range(len(workers)) if i not in got]
        waiting = [receivers[i] for i in pending] + [workers[i].sentinel for i in pending]
        ready = wait(waiting, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise ReaderError(
                f"{method} readers did not all {stage} within {timeout_s:.0f} s "
                f"({len(got)} of {len(workers)} did)"
            )
        for i in pending:
            if receivers[i].poll():
                try:
                    kind, payload = receivers[i].recv()
                except EOFError:
                    kind, payload = "died", None
            elif workers[i].sentinel in ready:
                kind, payload = "died", None
            else:
                continue
            if kind == "error":
                raise ReaderError(f"{method} reader failed: {payload}")
            if kind == "died":
                workers[i].join(timeout=5)
                raise ReaderError(
                    f"a {method} reader process died without reporting (pid "
                    f"{workers[i].pid}, exit code {workers[i].exitcode}); a negative code is "
                    "the signal that killed it (-9: out of memory, -11: segfault)"
                )
            assert kind == stage, f"reader sent {kind!r} while the pool waited for {stage!r}"
            got[i] = payload
    return [got[i] for i in range(len(workers))]


def read_in_workers(
    method: str,
    store_dir: Path,
    shares: list,
    check: Callable,
    *,
    readahead: bool,
    region: Region | None = None,
    scratch: Path | None = None,
    prepare: Callable[[], object] = lambda: None,
    before_check: Callable[[], None] = lambda: None,
    timeout_s: float = 600.0,
) -> PoolRead:
    """Fork one reader per share, warm each up on ``scratch``, ``prepare()`` the machine,
    release them together inside ``region`` (``IN_READERS``: it samples the machine right
    before the release and right after the last reader reported) and time until the last
    one finished; then ``before_check()`` and let every reader check its share again,
    untimed. ``check(batch, request)`` raises on wrong data."""
    region = Region(work=IN_READERS) if region is None else region
    context = multiprocessing.get_context("fork")
    go, recheck = context.Event(), context.Event()
    pipes = [context.Pipe(duplex=False) for _ in shares]
    parts = check_parts(shares)
    workers = [
        lifetime.process(
            context,
            _reader,
            (os.getpid(), method, store_dir, scratch, share, readahead, check, go, recheck, send),
            kwargs={"parts": parts},
        )
        for share, (_, send) in zip(shares, pipes, strict=True)
    ]
    receivers = [receive for receive, _ in pipes]
    try:
        with phases.phase("readers start"):
            for worker in workers:
                worker.start()
            for _, send in pipes:
                send.close()  # the parent's copy: a dead reader's pipe then reads EOF
            _gather(method, workers, receivers, "ready", timeout_s)
        prepared = prepare()
        with region:
            released = region.start_clock()
            go.set()
            passes = _gather(method, workers, receivers, "timed", timeout_s)
        finished = max(one.finished_ns for one in passes)  # the last reader's own finish
        region.stop_clock(finished)
        with phases.phase("verify"):
            before_check()
            recheck.set()
            helpers, helper_receivers = _start_checkers(
                context, method, store_dir, shares, parts, readahead, check
            )
            workers += helpers
            receivers += helper_receivers
            _gather(method, workers, receivers, "checked", timeout_s)
    except BaseException:
        for worker in workers:  # the others may wait for a release that never comes
            if worker.is_alive():
                worker.kill()
        raise
    finally:
        phases.push("readers end")
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
        for receive in receivers:
            receive.close()
        phases.pop()
    return PoolRead(released, finished, passes, prepared)


def _start_checkers(context, method, store_dir, shares, parts, readahead, check):
    """Fork the ``_checker`` processes of the check pass: for each share, one per part
    after the reader's own; their processes and the ends of their pipes."""
    helpers, receivers = [], []
    for share in shares:
        for part in range(1, parts):
            receive, send = context.Pipe(duplex=False)
            helper = lifetime.process(
                context, _checker, (method, store_dir, share[part::parts], readahead, check, send)
            )
            helper.start()
            send.close()
            helpers.append(helper)
            receivers.append(receive)
    return helpers, receivers
