"""machine: load, pressure stall information, I/O and CPU counters, the block device of a path."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from ci import unavailable

from imgbench import fsutil, machine

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
    fsutil.evict_tree(directory)
    assert fsutil.cached_fraction(directory) < 0.05
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
