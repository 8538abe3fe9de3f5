"""region: one timed region owns the clock and the machine's samples around it, in the same
order for a store, a whole read and the readers; nothing but the named work is in the clock."""

from __future__ import annotations

import gc
import time

import pytest

from imgbench.harness import region
from imgbench.system import machine


def busy_cpu(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


@pytest.fixture
def samples(monkeypatch):
    """Every machine sample the region takes, in order (the real value is returned)."""
    log = []
    for name in (
        "io_read_bytes",
        "disk_read_bytes",
        "cpu_seconds",
        "cpu_sample",
        "load_average_1min",
        "pressure_some_avg10",
    ):
        real = getattr(machine, name)

        def sample(*args, _real=real, _name=name):
            log.append(_name)
            return _real(*args)

        monkeypatch.setattr(machine, name, sample)
    return log


BEFORE = ["io_read_bytes", "disk_read_bytes", "cpu_seconds", "cpu_sample"]
AFTER = [
    "cpu_sample",
    "cpu_seconds",
    "io_read_bytes",
    "disk_read_bytes",
    "load_average_1min",
    "pressure_some_avg10",
    "pressure_some_avg10",
]


def test_a_store_region_samples_around_its_steps_in_order(samples):
    def step():
        samples.append("step")

    with region.Region("vda") as timed:
        timed.run([step, step])
    assert samples == [*BEFORE, "step", "step", *AFTER]
    assert timed.elapsed_ns == timed.marks_ns[1] >= timed.marks_ns[0]


def test_a_whole_read_counts_cpu_only_in_its_laps(samples):
    """The clock and this process's CPU time run only in the laps; the checks between
    them are outside both but inside the window of others' CPU time."""
    with region.Region(work=region.IN_LAPS) as timed:
        timed.lap(busy_cpu, 0.05)
        busy_cpu(0.3)  # a check between laps
        timed.lap(busy_cpu, 0.05)
    without_cpu = [name for name in BEFORE if name != "cpu_seconds"]
    laps = ["cpu_seconds", "cpu_seconds"] * 2
    assert samples == [*without_cpu, *laps, *[n for n in AFTER if n != "cpu_seconds"]]
    assert 0.1 <= timed.elapsed_ns / 1e9 < 0.3
    assert 0.09 <= timed.cpu_seconds < 0.25
    assert timed.foreign_cpu_span_seconds >= 0.4


def test_a_readers_region_leaves_cpu_and_device_bytes_to_the_readers(samples):
    """The parent only waits: its own CPU time and bytes are not the read's, and its
    collector stays on; the clock stops at the last reader's own finish."""
    with region.Region("vda", work=region.IN_READERS) as timed:
        assert gc.isenabled()
        started = timed.start_clock()
    timed.stop_clock(started + 5_000_000)
    timed.count_readers([0.25, 0.5], [4096, 8192], [10, 30])
    assert samples == [
        "disk_read_bytes",
        "cpu_sample",
        "cpu_sample",
        "disk_read_bytes",
        "load_average_1min",
        "pressure_some_avg10",
        "pressure_some_avg10",
    ]
    assert timed.elapsed_ns == 5_000_000
    assert timed.cpu_seconds == 0.75 and timed.device_read_bytes == 12288
    assert timed.readers_peak_rss_bytes == 30
    timed.count_readers([0.1], [None], [20])
    assert timed.device_read_bytes != timed.device_read_bytes  # a reader could not count
    assert timed.readers_peak_rss_bytes == 30


def test_a_region_left_by_an_exception_only_restores_the_collector(samples):
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="disk on fire"), region.Region() as timed:
        assert not gc.isenabled()
        raise RuntimeError("disk on fire")
    assert gc.isenabled()
    assert samples == BEFORE  # nothing sampled after a failed operation
    assert timed.cpu_seconds != timed.cpu_seconds


def test_an_unknown_place_of_work_is_refused():
    with pytest.raises(ValueError, match="work must be one of here, in_laps, in_readers"):
        region.Region(work="elsewhere")
