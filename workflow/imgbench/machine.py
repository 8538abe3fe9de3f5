"""State of the machine around a timed region (in the spirit of pyperf): load, pressure stall
information, bytes fetched from storage, CPU time, and the block device under a path.

Every reader degrades to NaN or None where the platform lacks its source; none raises.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .fsutil import mount_entry

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
