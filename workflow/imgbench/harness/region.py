"""The timed region: one clock, and what happened on this process and the machine while it ran.

Every timed operation of a job (a store, a whole read, a read by forked readers) runs
inside one ``Region``, used as a context manager around the timed work::

    with Region(device) as region:
        region.run([write, flush])

Entering samples the machine right before the clock starts, in this order: the garbage
collector collected (and disabled while this process does the work, as ``timeit`` does),
the bytes this process fetched from storage (``/proc/self/io``), the store's block device
(``/proc/diskstats``, which counts everyone), this process's CPU time, the window of
foreign CPU (``machine.cpu_sample``: the machine's and the job's process tree's CPU time),
the wall-clock start. Leaving samples again right after the clock stopped, in the mirror
order, then notes the load average and pressure stall information (context: slow
averages, read last). A region left by an exception only restores the collector.

Where the timed work runs decides what the region counts itself (``work``):

* ``HERE`` (a store, the whole-array read): this process's CPU time over the region;
  the clock runs over ``run(steps)``, steps back to back, each step's end marked;
* ``IN_LAPS`` (the whole read, which checks each batch between its laps): the clock
  and this process's CPU time run only during ``lap(work)``;
* ``IN_READERS`` (forked readers): the clock runs from ``start_clock`` (the release) to
  the last reader's own finish (``stop_clock``); CPU time and bytes fetched are the
  readers' (``count_readers``); this process only waits, so its collector stays on.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from imgbench.system import machine, phases

HERE = "here"
IN_LAPS = "in_laps"
IN_READERS = "in_readers"
WORK_PLACES = (HERE, IN_LAPS, IN_READERS)


def _delta(after, before) -> float:
    return float("nan") if after is None or before is None else float(after - before)


@dataclass
class Region:
    """One timed region (see the module): its clock and what happened meanwhile on this
    process and on the machine. ``device``: the store's block device (None: not known)."""

    device: str | None = None
    work: str = HERE
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
    readers_peak_rss_bytes: int = 0  # the highest resident set a reader process reported
    client_fields: dict = field(default_factory=dict)  # a many-clients read's (``clients``)
    marks_ns: dict = field(default_factory=dict)  # ``run``: step i ended marks_ns[i] in
    _gc_was_enabled: bool = False
    _io_before: Any = None
    _disk_before: Any = None
    _cpu_before: float = 0.0
    _window_before: Any = None
    _window_before_ns: int = 0
    _clock_start_ns: int = 0
    _lap_cpu: float = 0.0

    def __post_init__(self) -> None:
        if self.work not in WORK_PLACES:
            raise ValueError(f"work must be one of {', '.join(WORK_PLACES)}, not {self.work!r}")

    @property
    def end_unix(self) -> float:
        return self.start_unix + self.elapsed_ns / 1e9

    @property
    def _here(self) -> bool:
        return self.work != IN_READERS

    def __enter__(self) -> Region:
        gc.collect()
        if self._here:
            self._gc_was_enabled = gc.isenabled()
            gc.disable()
            self._io_before = machine.io_read_bytes()
        self._disk_before = machine.disk_read_bytes(self.device)
        if self.work == HERE:
            self._cpu_before = machine.cpu_seconds()
        self._open_cpu_window()
        self.start_unix = time.time()
        phases.push(phases.TIMED)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        phases.pop()
        try:
            if exc_type is None:
                self._close_cpu_window()
                if self.work == HERE:
                    self.cpu_seconds = machine.cpu_seconds() - self._cpu_before
                elif self.work == IN_LAPS:
                    self.cpu_seconds = self._lap_cpu
                if self._here:
                    self.device_read_bytes = _delta(machine.io_read_bytes(), self._io_before)
                disk_after = machine.disk_read_bytes(self.device)
                self.disk_read_bytes = _delta(disk_after, self._disk_before)
                self._note_machine()
        finally:
            if self._gc_was_enabled:
                gc.enable()

    # --- the clock ---------------------------------------------------------------------

    def run(self, steps: list[Callable[[], Any]]) -> list:
        """Run ``steps`` back to back under one clock; their results. ``marks_ns[i]``:
        time from the start to the end of step ``i``."""
        results = []
        start = time.perf_counter_ns()
        for index, step in enumerate(steps):
            results.append(step())
            self.marks_ns[index] = time.perf_counter_ns() - start
        self.elapsed_ns = self.marks_ns[len(steps) - 1]
        return results

    def lap(self, work: Callable, *args) -> Any:
        """``work(*args)`` with the clock and this process's CPU time running (``IN_LAPS``);
        what happens between laps is outside both."""
        cpu_before = machine.cpu_seconds()
        start = time.perf_counter_ns()
        result = work(*args)
        self.elapsed_ns += time.perf_counter_ns() - start
        self._lap_cpu += machine.cpu_seconds() - cpu_before
        return result

    def start_clock(self) -> int:
        """Start the clock now (``IN_READERS``: at the readers' release); its reading."""
        self._clock_start_ns = time.perf_counter_ns()
        return self._clock_start_ns

    def stop_clock(self, at_ns: int) -> int:
        """Stop the clock at ``at_ns`` (``perf_counter_ns``, one clock for every process:
        the last reader's own finish, not when this process noticed); the elapsed ns."""
        self.elapsed_ns = at_ns - self._clock_start_ns
        return self.elapsed_ns

    def count_readers(self, cpu_seconds: Iterable[float], device_bytes: Iterable, peaks) -> None:
        """What the reader processes measured in their timed passes: CPU time and bytes
        fetched from storage (NaN if any reader could not count them), peak resident set."""
        device_bytes = list(device_bytes)
        self.cpu_seconds = sum(cpu_seconds)
        self.device_read_bytes = float("nan") if None in device_bytes else float(sum(device_bytes))
        self.readers_peak_rss_bytes = max(self.readers_peak_rss_bytes, *peaks)

    # --- the machine around the clock --------------------------------------------------

    def _open_cpu_window(self) -> None:
        """Sample the machine's and the job's CPU time right before the clock starts."""
        self._window_before = machine.cpu_sample()
        self._window_before_ns = time.perf_counter_ns()

    def _close_cpu_window(self) -> None:
        """Sample again right after the clock stopped: what others ran meanwhile."""
        span_ns = time.perf_counter_ns() - self._window_before_ns
        after = machine.cpu_sample()
        foreign, resolution = machine.foreign_cpu(self._window_before, after)
        self.foreign_cpu_seconds = foreign
        self.foreign_cpu_resolution_seconds = resolution
        self.foreign_cpu_span_seconds = span_ns / 1e9

    def _note_machine(self) -> None:
        """Load and pressure, sampled right at the end of the timed region."""
        self.load_1min = machine.load_average_1min()
        self.cpu_pressure_pct = machine.pressure_some_avg10("cpu")
        self.io_pressure_pct = machine.pressure_some_avg10("io")


def timed(steps: list[Callable[[], Any]], device: str | None = None) -> tuple[list, Region]:
    """Run ``steps`` back to back inside one region (``HERE``); their results and the
    region."""
    with Region(device) as region:
        results = region.run(steps)
    return results, region
