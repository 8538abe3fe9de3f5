"""A job's memory: its exact resident high-water mark, and its sampled anonymous memory.

``peak_rss_bytes`` is what the kernel, Snakemake's ``benchmark:`` (``max_rss``) and a
cluster's accounting report: every page the job's processes had mapped and resident,
including pages of store files read through a memory map (LMDB; the npy reader). Those
pages are page cache the kernel drops whenever memory is short, so a job reading a 20 GB
LMDB store shows an RSS near 20 GB without ever needing it.

``peak_anon_bytes`` is the memory the job itself holds (the image pool, chunks, library
buffers): ``RssAnon`` of the job process plus what each of its reader processes added
since it was first seen, sampled by a watcher process every ``interval_s`` (a separate
process, so the timed code shares no lock with it; it dies with the job's process, see
``lifetime``). A reader forked from the job shares the job's pages (the pool) until it
writes them, so counting its whole ``RssAnon`` would count the pool once per reader; a
reader's memory is therefore its ``RssAnon`` less its first sample (taken within
``interval_s`` of its start). A peak shorter than the interval can be missed.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from pathlib import Path

from imgbench.system import lifetime, machine

PROC = Path("/proc")


def own_peak_rss_bytes() -> int:
    """This process's resident-memory high-water mark (``ru_maxrss``, KiB to bytes)."""
    return 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_own_peak_rss() -> bool:
    """Start this process's resident-memory high-water mark again from its resident set
    now (``5`` into ``/proc/self/clear_refs``, Linux 4.0+; ``ru_maxrss`` follows it);
    False where the kernel does not allow it."""
    try:
        with open(PROC / "self" / "clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def reset_peaks(watch: AnonWatch | None) -> None:
    """Before the next point of a job: this process's resident high-water mark and the
    anonymous-memory watch start again from now, so a point's rows hold its own peaks,
    not an earlier point's."""
    reset_own_peak_rss()
    if watch is not None:
        watch.reset()


def peak_rss_bytes(readers_peak: int = 0) -> int:
    """The job's resident-memory high-water mark so far: this process's, or its reader
    processes' (``readers_peak``, reported by each reader), whichever is larger. Not
    ``RUSAGE_CHILDREN``, which also holds every helper command the job ran (``git``,
    ``pip``)."""
    return max(own_peak_rss_bytes(), int(readers_peak))


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def anon_bytes(pid: int, skip: int | None = None, first_seen: dict | None = None) -> int:
    """``RssAnon`` of ``pid`` plus, for each descendant (all but ``skip``), what it added
    since its first sample (kept in ``first_seen``, by pid), in bytes."""
    first_seen = {} if first_seen is None else first_seen
    total = _status_kib(pid, "RssAnon")
    pending = machine.child_pids(pid)
    while pending:
        current = pending.pop()
        if current == skip:
            continue
        now = _status_kib(current, "RssAnon")
        total += max(0, now - first_seen.setdefault(current, now))
        pending.extend(machine.child_pids(current))
    return 1024 * total


def _watch(pid: int, peak, stop, interval_s: float) -> None:
    """Sample until told to stop, or until ``pid`` (the parent) is gone: a job killed by
    SIGKILL never sets ``stop`` (the kernel also kills this process then; see
    ``lifetime``)."""
    me, first_seen = os.getpid(), {}
    while lifetime.parent_alive(pid):
        current = anon_bytes(pid, skip=me, first_seen=first_seen)
        if current > peak.value:
            peak.value = current
        if stop.wait(interval_s):
            return


class AnonWatch:
    """Samples the anonymous memory of this process and its children in a forked watcher
    process; ``peak()`` is the highest sum seen so far. Use as a context manager."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        context = multiprocessing.get_context("fork")
        self._peak = context.Value("q", 0, lock=False)
        self._first_seen: dict[int, int] = {}
        self._stop = context.Event()
        self._process = lifetime.process(
            context,
            _watch,
            (os.getpid(), self._peak, self._stop, interval_s),
            daemon=True,
        )

    def __enter__(self) -> AnonWatch:
        self._process.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def peak(self) -> int:
        """The highest anonymous memory seen so far, with one fresh sample taken now."""
        current = anon_bytes(os.getpid(), skip=self._process.pid, first_seen=self._first_seen)
        if current > self._peak.value:
            self._peak.value = current
        return int(self._peak.value)

    def reset(self) -> None:
        """Forget the peak so far: from now on ``peak()`` is the highest seen after this."""
        self._peak.value = anon_bytes(
            os.getpid(), skip=self._process.pid, first_seen=self._first_seen
        )

    def close(self) -> None:
        if self._process.is_alive():
            self._stop.set()
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
