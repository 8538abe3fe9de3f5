"""Where a job's wall time goes: a ledger of named phases, each timed exclusively.

A job script calls ``begin()`` on its first line: the time from the process's start (the
interpreter and Snakemake's script preamble, read from ``/proc/self/stat``) is recorded as
``PROCESS_START``, and the time until ``now_in`` names the next phase is ``IMPORTS``. The
harness wraps its steps in ``phase(name)``; time inside a nested phase counts for the inner
phase only, so the phases add up to the job's wall time (``summary``). Time outside every
named phase counts for the job's base phase (``now_in``). The timed operations are the phase
``TIMED``; everything else is what a run spends beside its measurements.

The ledger is per process: a forked child (the scripts' guard runs the job in one) carries
it on; readers forked by the job keep their own, unread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

PROCESS_START = "process start"
IMPORTS = "imports"
TIMED = "timed"
OTHER = "other"

_totals: dict[str, float] = {}
_stack: list[list] = []  # [name, ns since which the phase has been running]
_began: dict[str, float] = {}


def process_age_s() -> float | None:
    """Seconds since this process was started (by exec or fork), from the kernel's
    start time in clock ticks since boot; None where /proc is missing."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, up - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def begin() -> None:
    """Start the ledger: the process's age so far is ``PROCESS_START``; ``IMPORTS`` runs."""
    _totals.clear()
    _stack.clear()
    age = process_age_s()
    if age is not None:
        _totals[PROCESS_START] = age
    _began.update(ns=time.perf_counter_ns(), unix=time.time() - (age or 0.0))
    _stack.append([IMPORTS, time.perf_counter_ns()])


def _charge(now: int) -> None:
    if _stack:
        name, since = _stack[-1]
        _totals[name] = _totals.get(name, 0.0) + (now - since) / 1e9
        _stack[-1][1] = now


def now_in(name: str) -> None:
    """From now on, time outside every named phase counts for ``name``."""
    if not _stack:
        begin()
    _charge(time.perf_counter_ns())
    _stack[0][0] = name


def push(name: str) -> None:
    """Count the time from now for ``name`` until ``pop`` (``phase`` as two calls, for a
    class's ``__enter__`` and ``__exit__``)."""
    if _stack:
        _charge(time.perf_counter_ns())
        _stack.append([name, time.perf_counter_ns()])


def pop() -> None:
    """End the innermost phase ``push`` started; the one around it runs again."""
    if len(_stack) > 1:
        _charge(time.perf_counter_ns())
        _stack.pop()
        _stack[-1][1] = time.perf_counter_ns()


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the block's time for ``name`` (and not for the phase around it)."""
    push(name)
    try:
        yield
    finally:
        pop()


def summary() -> dict:
    """The ledger so far: seconds per phase (largest first), the job's wall time from its
    process's start, and its start and end as Unix times (for the gaps between jobs)."""
    if not _stack:
        return {}
    _charge(time.perf_counter_ns())
    seconds = dict(sorted(_totals.items(), key=lambda item: -item[1]))
    return {
        "phases_s": {name: round(value, 4) for name, value in seconds.items()},
        "wall_s": round(sum(seconds.values()), 4),
        "started_unix": round(_began["unix"], 3),
        "finished_unix": round(time.time(), 3),
    }


def line(ledger: dict | None = None) -> str:
    """The ledger (``summary()``, taken now unless given) as one log line: each phase's
    seconds, largest first."""
    ledger = summary() if ledger is None else ledger
    parts = ", ".join(f"{name} {value:.3f} s" for name, value in ledger["phases_s"].items())
    return f"job phases ({ledger['wall_s']:.3f} s): {parts}"
