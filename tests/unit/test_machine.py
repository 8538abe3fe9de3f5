"""machine: load, pressure stall information, I/O and CPU counters, the block device of a path."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ci import unavailable
from processes import start_stranger

from imgbench.system import fsutil, machine, pagecache

PRESSURE_SAMPLE = (
    "some avg10=12.34 avg60=5.60 avg300=1.00 total=123456\n"
    "full avg10=7.50 avg60=2.00 avg300=0.50 total=65432\n"
)


def diskstats_names() -> set[str]:
    with open("/proc/diskstats") as handle:
        return {line.split()[2] for line in handle}


def test_load_average_is_a_non_negative_float_or_nan():
    load = machine.load_average_1min()
    assert isinstance(load, float)
    assert math.isnan(load) or load >= 0


def test_load_average_is_nan_without_getloadavg(monkeypatch):
    def unavailable():
        raise OSError("no load average")

    monkeypatch.setattr(machine.os, "getloadavg", unavailable)
    assert math.isnan(machine.load_average_1min())


def test_pressure_parses_the_some_line(tmp_path, monkeypatch):
    (tmp_path / "io").write_text(PRESSURE_SAMPLE)
    (tmp_path / "cpu").write_text(PRESSURE_SAMPLE.replace("12.34", "0.00"))
    monkeypatch.setattr(machine, "PRESSURE_ROOT", tmp_path)
    assert machine.pressure_some_avg10("io") == 12.34
    assert machine.pressure_some_avg10("cpu") == 0.0
    assert machine.kernel_has_psi()


def test_pressure_is_nan_without_psi(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "PRESSURE_ROOT", tmp_path / "missing")
    for resource in ("cpu", "io", "memory"):
        assert math.isnan(machine.pressure_some_avg10(resource))
    assert machine.kernel_has_psi() is False
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "io").write_text("some avg10=\n")
    monkeypatch.setattr(machine, "PRESSURE_ROOT", tmp_path / "garbled")
    assert math.isnan(machine.pressure_some_avg10("io"))


def test_pressure_rejects_an_unknown_resource():
    with pytest.raises(ValueError, match="memory"):
        machine.pressure_some_avg10("disk")


def test_pressure_of_this_kernel_is_a_percentage_or_nan():
    for resource in ("cpu", "io", "memory"):
        value = machine.pressure_some_avg10(resource)
        assert math.isnan(value) or 0 <= value <= 100
    assert machine.kernel_has_psi() == os.path.exists("/proc/pressure/cpu")


def test_cpu_seconds_grows_with_work():
    before = machine.cpu_seconds()
    assert sum(range(3_000_000)) > 0  # tens of milliseconds of CPU
    assert machine.cpu_seconds() > before


def evicted_file(directory: Path, size: int) -> Path:
    """A file of ``size`` random bytes, written back and dropped from the page cache."""
    path = directory / "evicted.bin"
    path.write_bytes(os.urandom(size))
    pagecache.evict_tree(directory)
    assert pagecache.cached_fraction(directory) < 0.05
    return path


def test_io_read_bytes_counts_a_read_from_storage(tmp_path):
    if machine.io_read_bytes() is None:
        unavailable("no /proc/self/io on this platform")
    size = 8 * 1024 * 1024
    path = evicted_file(tmp_path, size)
    before = machine.io_read_bytes()
    assert len(path.read_bytes()) == size
    assert machine.io_read_bytes() - before >= size // 2
    # Now cached: reading again fetches (almost) nothing from storage.
    before = machine.io_read_bytes()
    path.read_bytes()
    assert machine.io_read_bytes() - before < size // 2


def test_io_read_bytes_is_none_when_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "PROC_SELF_IO", tmp_path / "missing")
    assert machine.io_read_bytes() is None


def test_block_device_of_tmp_path_is_listed_in_diskstats(tmp_path):
    entry = fsutil.mount_entry(tmp_path)
    if entry is None or entry.major == 0:
        unavailable(f"tmp_path is on {entry.fs_type if entry else 'an unknown'} file system")
    device = machine.block_device(tmp_path)
    assert device in diskstats_names()
    read = machine.disk_read_bytes(device)
    assert isinstance(read, int) and read >= 0 and read % 512 == 0


def test_disk_read_bytes_counts_a_read_of_an_evicted_file(tmp_path):
    device = machine.block_device(tmp_path)
    if device is None:
        unavailable("tmp_path has no block device")
    size = 8 * 1024 * 1024
    path = evicted_file(tmp_path, size)
    before = machine.Sample.take(device)
    path.read_bytes()
    delta = machine.Sample.take(device).since(before)
    # Other processes can only add to the device's count.
    assert delta.disk_read_bytes >= size // 2
    assert delta.io_read_bytes is None or delta.io_read_bytes >= size // 2
    assert delta.time > 0 and delta.cpu_seconds >= 0


def test_block_device_is_none_for_tmpfs_like_mounts():
    # /proc is a pseudo file system: major 0, no block device.
    assert machine.block_device(Path("/proc/self")) is None


def fake_machine(tmp_path: Path, monkeypatch, major_minor: str, name: str) -> Path:
    """A mount at tmp_path/mnt with device ``major_minor`` linked in a fake /sys/dev/block."""
    mount_point = tmp_path.resolve() / "mnt"
    mount_point.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        f"40 27 {major_minor} / {mount_point} rw - ext4 /dev/{name} rw\n"
    )
    dev_block = tmp_path / "dev-block"
    dev_block.mkdir()
    (tmp_path / "devices" / "sda" / name).mkdir(parents=True)
    (dev_block / major_minor).symlink_to(tmp_path / "devices" / "sda" / name)
    monkeypatch.setattr(fsutil, "MOUNTINFO_PATH", mountinfo)
    monkeypatch.setattr(machine, "SYS_DEV_BLOCK", dev_block)
    return mount_point


def test_block_device_follows_mountinfo_to_sys_dev_block(tmp_path, monkeypatch):
    mount_point = fake_machine(tmp_path, monkeypatch, "8:1", "sda1")
    assert machine.block_device(mount_point / "store") == "sda1"


def test_block_device_is_none_for_major_zero_or_unknown(tmp_path, monkeypatch):
    mount_point = fake_machine(tmp_path, monkeypatch, "0:45", "overlay")
    assert machine.block_device(mount_point) is None
    monkeypatch.setattr(fsutil, "MOUNTINFO_PATH", tmp_path / "missing")
    assert machine.block_device(mount_point) is None


def test_block_device_is_none_when_sys_dev_block_lacks_it(tmp_path, monkeypatch):
    mount_point = fake_machine(tmp_path, monkeypatch, "8:1", "sda1")
    monkeypatch.setattr(machine, "SYS_DEV_BLOCK", tmp_path / "missing")
    assert machine.block_device(mount_point) is None


def test_disk_read_bytes_parses_sectors_read(tmp_path, monkeypatch):
    diskstats = tmp_path / "diskstats"
    diskstats.write_text(
        "   8       0 sda 100 5 2000 40 7 8 900 10 0 50 60\n"
        "   8       1 sda1 90 5 1800 30 7 8 900 10 0 40 50\n"
    )
    monkeypatch.setattr(machine, "DISKSTATS_PATH", diskstats)
    assert machine.disk_read_bytes("sda") == 2000 * 512
    assert machine.disk_read_bytes("sda1") == 1800 * 512
    assert machine.disk_read_bytes("sdb") is None
    assert machine.disk_read_bytes(None) is None
    monkeypatch.setattr(machine, "DISKSTATS_PATH", tmp_path / "missing")
    assert machine.disk_read_bytes("sda") is None


def test_sample_since_subtracts_and_keeps_unknowns_unknown():
    earlier = machine.Sample(time=10.0, cpu_seconds=1.0, io_read_bytes=None, disk_read_bytes=100)
    later = machine.Sample(time=12.5, cpu_seconds=1.75, io_read_bytes=4096, disk_read_bytes=612)
    assert later.since(earlier) == machine.Sample(2.5, 0.75, None, 512)
    assert machine.Sample.take(None).disk_read_bytes is None


# --- foreign CPU time ----------------------------------------------------------------------


def spin(seconds: float) -> None:
    """Burn ``seconds`` of this thread's CPU time."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def machine_counter() -> machine.MachineClock:
    source = machine.machine_cpu_source()
    if source is None:
        unavailable("no /proc/stat: no machine-wide CPU counter")
    return source


def stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_forked_child_spinning_is_own_cpu_not_foreign():
    machine_counter()
    context = multiprocessing.get_context("fork")
    go, done = context.Event(), context.Event()
    child = context.Process(target=lambda: (go.wait(), spin(0.3), done.set(), time.sleep(30)))
    child.start()
    try:
        before = machine.cpu_sample()
        assert before.processes >= 2  # this process and the child
        go.set()
        assert done.wait(timeout=30)
        child_ns = machine.process_cpu_ns(child.pid)
        after = machine.cpu_sample()
    finally:
        child.kill()
        child.join()
    own = (after.own_ns - before.own_ns) / 1e9
    assert own >= 0.3 * 0.95  # the child's 0.3 s (its clock's) and our own waiting
    assert child_ns is not None and child_ns >= 0.3e9 * 0.95
    foreign, resolution = machine.foreign_cpu(before, after)
    assert resolution > 0 and foreign >= -resolution


def test_a_child_that_exits_and_is_reaped_in_the_region_stays_own():
    machine_counter()
    context = multiprocessing.get_context("fork")
    go = context.Event()
    child = context.Process(target=lambda: (go.wait(), spin(0.3)))
    child.start()
    before = machine.cpu_sample()
    go.set()
    child.join()  # exited and reaped: its time moves to this process's RUSAGE_CHILDREN
    after = machine.cpu_sample()
    assert after.processes == before.processes - 1
    assert (after.own_ns - before.own_ns) / 1e9 >= 0.3 * 0.95


def test_threads_that_end_in_the_region_stay_own():
    machine_counter()
    before = machine.cpu_sample()
    workers = [threading.Thread(target=spin, args=(0.15,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    after = machine.cpu_sample()
    assert (after.own_ns - before.own_ns) / 1e9 >= 2 * 0.15 * 0.95


def test_a_while_true_process_of_someone_else_is_foreign():
    """Other work on the machine only adds to the foreign time; the test asserts the
    competitor is in it, not that nothing else ran."""
    machine_counter()
    stranger = start_stranger()
    try:
        time.sleep(0.05)
        assert stranger not in machine.process_tree(os.getpid())
        stranger_before = machine.process_cpu_ns(stranger)
        before = machine.cpu_sample()
        time.sleep(0.5)
        after = machine.cpu_sample()
        stranger_after = machine.process_cpu_ns(stranger)
    finally:
        stop(stranger)
    span = (after.wall_ns - before.wall_ns) / 1e9
    foreign, resolution = machine.foreign_cpu(before, after)
    stranger_s = (stranger_after - stranger_before) / 1e9
    assert stranger_s > 0.2 * span  # it ran, even on a loaded machine
    assert foreign >= stranger_s - resolution
    # on a machine with at least two cores the competitor alone is most of a core
    assert foreign - resolution > 0.4 * span


def test_a_while_true_child_of_the_job_is_own():
    machine_counter()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.05)
        child_before = machine.process_cpu_ns(child.pid)
        before = machine.cpu_sample()
        time.sleep(0.3)
        after = machine.cpu_sample()
        child_after = machine.process_cpu_ns(child.pid)
    finally:
        child.kill()
        child.wait()
    own = after.own_ns - before.own_ns
    tick = machine.kernel_tick_ns()
    assert own >= child_after - child_before - 2 * tick


def test_process_tree_follows_grandchildren():
    grandchild = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            tree = machine.process_tree(os.getpid())
            if len(tree) >= 3:
                break
            time.sleep(0.01)
        assert tree[0] == os.getpid() and grandchild.pid in tree and len(tree) >= 3
    finally:
        for pid in reversed(machine.process_tree(grandchild.pid)):
            stop(pid)
        grandchild.wait()


def test_process_cpu_ns_of_a_reaped_process_is_none():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert machine.process_cpu_ns(child.pid) is None


def test_cpu_sample_is_cheap():
    machine_counter()
    machine.cpu_sample()
    started = time.perf_counter()
    for _ in range(20):
        machine.cpu_sample()
    # ~50 us alone, ~130 us with three readers on a 2-core VM; generous for a loaded one
    assert (time.perf_counter() - started) / 20 < 0.02


def sample(machine_ns, own_ns, *, source="cpuacct", resolution_ns=8_000_000, read_ns=100_000):
    return machine.CpuSample(
        machine_ns=machine_ns,
        own_ns=own_ns,
        source=source,
        resolution_ns=resolution_ns,
        read_ns=read_ns,
        wall_ns=0,
        cpus=2,
        processes=3,
    )


def test_foreign_cpu_is_machine_less_own_with_its_resolution():
    before, after = sample(10_000_000_000, 0), sample(11_500_000_000, 1_000_000_000)
    foreign, resolution = machine.foreign_cpu(before, after)
    assert foreign == pytest.approx(0.5)
    # 8 ms of the counters plus both CPUs for half of each sample's 100 us read
    assert resolution == pytest.approx(0.008 + 2 * 0.0001)
    assert all(math.isnan(v) for v in machine.foreign_cpu(sample(None, 0), sample(5, 1)))
    mixed = machine.foreign_cpu(sample(1, 0), sample(5, 1, source="proc_stat"))
    assert all(math.isnan(v) for v in mixed)


PROC_STAT_SAMPLE = (
    "cpu  5231 7 1764 38020 152 3 18 12 0 0\ncpu0 891 0 548 21121 8 0 3 4 0 0\nintr 110148 0 0\n"
)


def test_proc_stat_busy_ns_sums_all_but_idle_and_iowait(tmp_path, monkeypatch):
    (tmp_path / "stat").write_text(PROC_STAT_SAMPLE)
    monkeypatch.setattr(machine, "PROC_STAT", tmp_path / "stat")
    monkeypatch.setattr(machine, "user_tick_ns", lambda: 10_000_000)
    # user 5231 + nice 7 + system 1764 + irq 3 + softirq 18 + steal 12 (not idle, iowait)
    assert machine.proc_stat_busy_ns() == (5231 + 7 + 1764 + 3 + 18 + 12) * 10_000_000
    monkeypatch.setattr(machine, "PROC_STAT", tmp_path / "missing")
    assert machine.proc_stat_busy_ns() is None


def test_cgroup_counters_parse_and_degrade(tmp_path, monkeypatch):
    (tmp_path / "cpuacct.usage").write_text("108331317386\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 290788488\nuser_usec 226041643\n")
    monkeypatch.setattr(machine, "CPUACCT_USAGE", tmp_path / "cpuacct.usage")
    monkeypatch.setattr(machine, "CGROUP2_CPU_STAT", (tmp_path / "none", tmp_path / "cpu.stat"))
    assert machine.cpuacct_usage_ns() == 108331317386
    assert machine.cgroup2_usage_ns() == 290788488000
    monkeypatch.setattr(machine, "CPUACCT_USAGE", tmp_path / "missing")
    monkeypatch.setattr(machine, "CGROUP2_CPU_STAT", (tmp_path / "none",))
    assert machine.cpuacct_usage_ns() is None and machine.cgroup2_usage_ns() is None


@pytest.mark.parametrize(
    ("cpuacct", "cgroup2", "expected"),
    [
        (95, 100, "cpuacct"),  # the root of a v1 hierarchy: nearly all of /proc/stat
        (40, 99, "cgroup2"),  # a container's cpuacct, the v2 root
        (40, None, "proc_stat"),  # a container's counters only
        (None, None, "proc_stat"),
    ],
)
def test_the_machine_counter_is_the_most_precise_that_counts_the_machine(
    cpuacct, cgroup2, expected, monkeypatch
):
    monkeypatch.setattr(machine, "proc_stat_busy_ns", lambda: 100)
    monkeypatch.setattr(machine, "cpuacct_usage_ns", lambda: cpuacct)
    monkeypatch.setattr(machine, "cgroup2_usage_ns", lambda: cgroup2)
    monkeypatch.setattr(machine, "kernel_tick_ns", lambda: 4_000_000)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    machine.machine_cpu_source.cache_clear()
    try:
        source = machine.machine_cpu_source()
    finally:
        machine.machine_cpu_source.cache_clear()
    assert source.name == expected
    # a tick per CPU for the exact counter; ticks at both ends for the sampled ones, and
    # /proc/stat's six fields each rounded down to 10 ms
    rounding = 6 * machine.user_tick_ns()
    resolution = {"cpuacct": 8_000_000, "cgroup2": 16_000_000, "proc_stat": 16_000_000 + rounding}
    assert source.resolution_ns == resolution[expected]


def test_kernel_tick_from_the_kernel_configuration(tmp_path, monkeypatch):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / f"config-{os.uname().release}").write_text("CONFIG_HZ_250=y\nCONFIG_HZ=250\n")
    monkeypatch.setattr(machine, "KERNEL_CONFIGS", (tmp_path / "config.gz", boot))
    machine.kernel_tick_ns.cache_clear()
    try:
        assert machine.kernel_tick_ns() == 4_000_000
        (boot / f"config-{os.uname().release}").unlink()
        machine.kernel_tick_ns.cache_clear()
        assert machine.kernel_tick_ns() == machine.SLOWEST_TICK_NS
    finally:
        machine.kernel_tick_ns.cache_clear()
