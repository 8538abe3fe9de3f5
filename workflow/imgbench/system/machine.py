"""State of the machine around a timed region (in the spirit of pyperf): load, pressure stall
information, bytes fetched from storage, CPU time, and the block device under a path.

Every reader degrades to NaN or None where the platform lacks its source; none raises.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from imgbench.system.fsutil import mount_entry

PRESSURE_ROOT = Path("/proc/pressure")
PRESSURE_RESOURCES = ("cpu", "io", "memory", "irq")
PROC_SELF_IO = Path("/proc/self/io")
DISKSTATS_PATH = Path("/proc/diskstats")
SYS_DEV_BLOCK = Path("/sys/dev/block")
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size


def load_average_1min() -> float:
    """1-minute load average of the whole machine (runnable plus uninterruptible tasks);
    NaN where the platform has none."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


def pressure_some_avg10(resource: str) -> float:
    """Percentage of the last 10 s in which at least one task stalled waiting for
    ``resource`` ("cpu", "io", "memory"): the ``some avg10`` of /proc/pressure/<resource>.
    NaN when the kernel has no pressure stall information (PSI)."""
    if resource not in PRESSURE_RESOURCES:
        raise ValueError(f"unknown PSI resource {resource!r}; expected one of {PRESSURE_RESOURCES}")
    try:
        with open(PRESSURE_ROOT / resource) as handle:
            for line in handle:
                kind, *pairs = line.split()
                if kind == "some":
                    values = dict(pair.split("=", 1) for pair in pairs)
                    return float(values["avg10"])
    except (OSError, ValueError, KeyError):
        pass
    return float("nan")


def kernel_has_psi() -> bool:
    """Whether /proc/pressure can be read (Linux >= 4.20 built with PSI and not booted psi=0)."""
    return not math.isnan(pressure_some_avg10("cpu"))


def io_read_bytes() -> int | None:
    """Bytes this process (all its threads) caused to be fetched from the storage layer:
    ``read_bytes`` of /proc/self/io; page-cache hits do not count. None when missing."""
    try:
        with open(PROC_SELF_IO) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key == "read_bytes":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def cpu_seconds() -> float:
    """User plus system CPU time consumed so far by this process (all its threads)."""
    try:
        import resource
    except ImportError:  # Windows
        return time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def block_device(path: Path) -> str | None:
    """Kernel name of the block device holding ``path`` ("vda", "sda1", "nvme0n1p2", "dm-0"):
    the mount's major:minor in /proc/self/mountinfo looked up in /sys/dev/block. None for
    file systems without one (tmpfs, overlay, NFS, btrfs subvolumes: major 0) or when unknown.
    """
    entry = mount_entry(path)
    if entry is None or entry.major == 0:
        return None
    link = SYS_DEV_BLOCK / f"{entry.major}:{entry.minor}"
    try:
        return Path(os.readlink(link)).name
    except OSError:
        return None


def disk_read_bytes(device: str | None) -> int | None:
    """Bytes read from ``device`` by everyone since boot: sectors read (field 6 of
    /proc/diskstats) times 512. None when the device is None or not listed."""
    if device is None:
        return None
    try:
        with open(DISKSTATS_PATH) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 5 and fields[2] == device:
                    return int(fields[5]) * SECTOR_BYTES
    except (OSError, ValueError):
        pass
    return None


def _minus(later: int | None, earlier: int | None) -> int | None:
    return None if later is None or earlier is None else later - earlier


@dataclass(frozen=True)
class Sample:
    """Counters read at one instant; ``later.since(earlier)`` gives their differences."""

    time: float  # time.perf_counter(), seconds
    cpu_seconds: float  # this process, user + system
    io_read_bytes: int | None  # this process, fetched from storage
    disk_read_bytes: int | None  # the device, everyone

    @classmethod
    def take(cls, device: str | None = None) -> Sample:
        """Read the counters now; ``device`` as returned by ``block_device``."""
        return cls(
            time=time.perf_counter(),
            cpu_seconds=cpu_seconds(),
            io_read_bytes=io_read_bytes(),
            disk_read_bytes=disk_read_bytes(device),
        )

    def since(self, earlier: Sample) -> Sample:
        """Differences from ``earlier`` to this sample (None where either side is None)."""
        return Sample(
            time=self.time - earlier.time,
            cpu_seconds=self.cpu_seconds - earlier.cpu_seconds,
            io_read_bytes=_minus(self.io_read_bytes, earlier.io_read_bytes),
            disk_read_bytes=_minus(self.disk_read_bytes, earlier.disk_read_bytes),
        )


# --- CPU time of the machine and of the job's own processes ---------------------------------
#
# Foreign CPU time over a region is the machine's busy time minus the job's own: what every
# other process (and kernel thread) ran meanwhile. The machine's busy time comes from the
# most precise source this kernel offers (``machine_cpu_source``); the job's own from the
# kernel's per-process run-time clocks, exact to the nanosecond. Both are charged by the
# scheduler at every tick and context switch, so a task running on a CPU at the instant of
# a sample may have up to one kernel tick not charged yet: that, the tick sampling of the
# coarser sources and the time a sample takes to read are the resolution of the difference.

PROC = Path("/proc")
PROC_STAT = Path("/proc/stat")
CPUACCT_USAGE = Path("/sys/fs/cgroup/cpuacct/cpuacct.usage")
CGROUP2_CPU_STAT = (Path("/sys/fs/cgroup/cpu.stat"), Path("/sys/fs/cgroup/unified/cpu.stat"))
KERNEL_CONFIGS = (Path("/proc/config.gz"), Path("/boot"))
BUSY_FIELDS = slice(0, 3), slice(5, 8)  # user nice system, irq softirq steal: not idle, iowait
SLOWEST_TICK_NS = 10_000_000  # CONFIG_HZ is at least 100 on every common architecture
CPUCLOCK_SCHED = 2  # the kernel's process clock of scheduler run time (posix-cpu-timers)
MACHINE_SHARE = 0.9  # a source counting less since boot than /proc/stat is not the machine's


def _read_text(path: Path) -> str | None:
    """A small /proc or /sys file in one system call (no buffered file object)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(descriptor, 65536).decode()
    except OSError:
        return None
    finally:
        os.close(descriptor)


def user_tick_ns() -> int:
    """Nanoseconds per clock tick of /proc counters (``USER_HZ``, 100 on Linux: 10 ms)."""
    try:
        return 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return SLOWEST_TICK_NS


def _proc_config() -> str | None:
    try:
        return gzip.decompress(KERNEL_CONFIGS[0].read_bytes()).decode()
    except (OSError, EOFError, ValueError):
        return None


@functools.cache
def kernel_tick_ns() -> int:
    """Nanoseconds per scheduler tick (1 / ``CONFIG_HZ``) from the kernel's configuration
    (/proc/config.gz or /boot/config-<release>); 10 ms, the slowest common tick, when the
    configuration cannot be read."""
    for text in (_proc_config(), _read_text(KERNEL_CONFIGS[1] / f"config-{os.uname().release}")):
        found = re.search(r"^CONFIG_HZ=(\d+)$", text or "", re.MULTILINE)
        if found:
            return 1_000_000_000 // int(found.group(1))
    return SLOWEST_TICK_NS


def proc_stat_busy_ns() -> int | None:
    """Busy time of all CPUs since boot from the ``cpu`` line of /proc/stat: user, nice,
    system, irq, softirq and steal (not idle, not iowait), ticks to ns. Tick-sampled by the
    kernel and shown in whole ``USER_HZ`` ticks (10 ms), each field rounded down."""
    text = _read_text(PROC_STAT)
    if text is None or not text.startswith("cpu "):
        return None
    fields = [int(value) for value in text.split("\n", 1)[0].split()[1:9]]
    ticks = sum(sum(fields[part]) for part in BUSY_FIELDS)
    return ticks * user_tick_ns()


def cpuacct_usage_ns() -> int | None:
    """Run time of every task since boot, exact to the ns, from a cgroup v1 ``cpuacct``
    hierarchy's root (``cpuacct.usage``); None without one. The scheduler charges it with
    each task's run time, so it leaves out steal time (and interrupt time, where the kernel
    accounts that apart: ``CONFIG_IRQ_TIME_ACCOUNTING``)."""
    text = _read_text(CPUACCT_USAGE)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def cgroup2_usage_ns() -> int | None:
    """``usage_usec`` of the cgroup v2 root's cpu.stat, to ns: at the root the kernel sums
    the same tick-sampled fields as /proc/stat (user, nice, system, irq, softirq, steal) but
    in microseconds, without rounding each to 10 ms; None without one."""
    for path in CGROUP2_CPU_STAT:
        text = _read_text(path)
        if text is None:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * 1000
    return None


class MachineClock(NamedTuple):
    """A counter of the whole machine's busy CPU time and the resolution of a difference
    of two readings of it, taken together with the job's own run-time clocks."""

    name: str
    read: Callable[[], int | None]
    resolution_ns: int


def _counts_the_machine(value: int | None, reference: int | None) -> bool:
    """Whether a cgroup's count since boot is the machine's (the hierarchy's root seen
    from the root namespace) rather than a container's share of it."""
    return value is not None and reference is not None and value >= MACHINE_SHARE * reference


@functools.cache
def machine_cpu_source() -> MachineClock | None:
    """The most precise counter of the machine's busy CPU time here:

    - ``cpuacct``: exact run time of every task. A task running at a sample may have up to
      a kernel tick not yet charged, in the machine's count and its own process's alike, so
      only other tasks' uncharged time is an error: one tick per CPU.
    - ``cgroup2``: tick-sampled at each CPU's tick, shown in µs: a tick per CPU at each
      end for the sampling and one per CPU for the job's own uncharged time.
    - ``proc_stat``: the same ticks, plus each of the six fields rounded down to a 10 ms
      ``USER_HZ`` tick.

    A cgroup counter is used only where it counts (nearly) as much as /proc/stat since
    boot: inside a container it counts the container only. None without /proc/stat."""
    reference = proc_stat_busy_ns()
    if reference is None:
        return None
    cpus, tick = os.cpu_count() or 1, kernel_tick_ns()
    if _counts_the_machine(cpuacct_usage_ns(), reference):
        return MachineClock("cpuacct", cpuacct_usage_ns, cpus * tick)
    if _counts_the_machine(cgroup2_usage_ns(), reference):
        return MachineClock("cgroup2", cgroup2_usage_ns, 2 * cpus * tick)
    rounding = 6 * user_tick_ns()
    return MachineClock("proc_stat", proc_stat_busy_ns, 2 * cpus * tick + rounding)


def _threads(pid: int) -> list[str]:
    try:
        return os.listdir(PROC / str(pid) / "task")
    except OSError:
        return []


def child_pids(pid: int) -> list[int]:
    """The live (or not yet reaped) children of every thread of process ``pid``."""
    children = []
    for tid in _threads(pid):
        text = _read_text(PROC / str(pid) / "task" / tid / "children")
        if text:
            children.extend(int(child) for child in text.split())
    return children


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants, parents before children."""
    tree, index = [root_pid], 0
    while index < len(tree):
        tree.extend(child_pids(tree[index]))
        index += 1
    return tree


def process_cpu_ns(pid: int) -> int | None:
    """Run time of process ``pid`` so far, exact to the ns: every thread, those that have
    exited included (the kernel's process CPU clock, readable for any process); a running
    thread on another CPU may lack up to one kernel tick. None once it has been reaped."""
    try:
        return time.clock_gettime_ns((~pid << 3) | CPUCLOCK_SCHED)
    except (OSError, AttributeError):  # AttributeError: no clock_gettime (Windows)
        return None


def reaped_children_ns() -> int:
    """CPU time of this process's children it has reaped (``RUSAGE_CHILDREN``, to the µs):
    where a reader's time goes once it has exited and been waited for; 0 on Windows."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((usage.ru_utime + usage.ru_stime) * 1e9)


def own_cpu_ns(root_pid: int | None = None) -> tuple[int, int]:
    """CPU time so far of ``root_pid`` (default this process) and its descendants, every
    thread, in ns, and the number of processes counted. For this process, children it has
    reaped count too (read after the tree: a child reaped in between counts twice, which
    can only lower the foreign time); children reaped by a descendant are not counted."""
    root_pid = os.getpid() if root_pid is None else root_pid
    tree = process_tree(root_pid)
    times = [process_cpu_ns(pid) for pid in tree]
    total = sum(ns for ns in times if ns is not None)
    if root_pid == os.getpid():
        total += reaped_children_ns()
    return total, len(tree)


class CpuSample(NamedTuple):
    """CPU time counters read at one instant (``cpu_sample``); two give ``foreign_cpu``,
    over ``(after.wall_ns - before.wall_ns) / 1e9`` seconds."""

    machine_ns: int | None  # busy time of all CPUs so far, everyone's; None: no source
    own_ns: int  # CPU time so far of the job's process tree
    source: str  # the machine counter (``machine_cpu_source``), "" without one
    resolution_ns: int  # error bound of a difference of two samples, from the counters
    read_ns: int  # wall time the sample took (a skew between the machine and own reads)
    wall_ns: int  # time.perf_counter_ns() halfway through the sample
    cpus: int
    processes: int  # processes in the tree


def cpu_sample(root_pid: int | None = None) -> CpuSample:
    """The machine's busy CPU time and the CPU time of ``root_pid`` (default this process)
    with all its descendants. Reads /proc and /sys only: no child is signalled or waited
    for. The machine is read before and after the tree, and the mean is kept."""
    source = machine_cpu_source()
    started = time.perf_counter_ns()
    first = source.read() if source else None
    own_ns, processes = own_cpu_ns(root_pid)
    second = source.read() if source else None
    read_ns = time.perf_counter_ns() - started
    machine_ns = None if first is None or second is None else (first + second) // 2
    return CpuSample(
        machine_ns=machine_ns,
        own_ns=own_ns,
        source=source.name if source else "",
        resolution_ns=source.resolution_ns if source else 0,
        read_ns=read_ns,
        wall_ns=started + read_ns // 2,
        cpus=os.cpu_count() or 1,
        processes=processes,
    )


def foreign_cpu(before: CpuSample, after: CpuSample) -> tuple[float, float]:
    """CPU seconds others ran between two samples (the machine's busy time less the job's
    own) and the bound of its error in seconds: the counters' resolution plus, for each
    sample, every CPU running for as long as the sample took to read (the machine and the
    job are not read at the same instant). NaN, NaN without a machine counter or when the
    samples come from different counters. Can be slightly negative (within the bound)."""
    if before.machine_ns is None or after.machine_ns is None or before.source != after.source:
        return float("nan"), float("nan")
    machine = after.machine_ns - before.machine_ns
    own = after.own_ns - before.own_ns
    skew = after.cpus * (before.read_ns + after.read_ns) // 2
    resolution = max(before.resolution_ns, after.resolution_ns) + skew
    return (machine - own) / 1e9, resolution / 1e9
