"""provenance: the record of where a measurement was taken, and its stable id."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from ci import unavailable

from imgbench.experiment import rows as row_model
from imgbench.harness import provenance
from imgbench.system import fsutil, machine

REPO = Path(__file__).resolve().parents[2]

NEW_KEYS = {
    "store_device",
    "read_ahead_kb",
    "store_mount_options",
    "virtualization",
    "container",
    "dmi_sys_vendor",
    "dmi_product_name",
    "transparent_hugepage",
    "cpu_governor",
    "kernel_has_psi",
    "dirty_ratio",
    "dirty_background_ratio",
}


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return provenance.collect(tmp_path_factory.getbasetemp(), REPO)


def test_collect_has_the_storage_and_kernel_keys(record, tmp_path_factory):
    assert set(record) >= NEW_KEYS
    assert record["store_device"] == machine.block_device(tmp_path_factory.getbasetemp())
    assert isinstance(record["kernel_has_psi"], bool)
    assert record["kernel_has_psi"] == machine.kernel_has_psi()
    for key in ("read_ahead_kb", "dirty_ratio", "dirty_background_ratio"):
        assert record[key] is None or (isinstance(record[key], int) and record[key] >= 0)
    for key in ("virtualization", "container", "transparent_hugepage", "cpu_governor"):
        assert record[key] is None or (isinstance(record[key], str) and record[key])
    json.dumps(record)  # rows and environment.json carry it


def test_collect_reads_this_linux_machine(record):
    if not Path("/proc/self/mountinfo").exists():
        unavailable("not Linux")
    options = record["store_mount_options"].split(",")
    assert options[0] in ("rw", "ro") and len(options) == len(set(options))
    if record["store_device"] is not None:
        disk = Path("/sys/class/block") / record["store_device"]
        if not (disk / "queue").exists():
            disk = disk.resolve().parent
        expected = int((disk / "queue" / "read_ahead_kb").read_text())
        assert record["read_ahead_kb"] == expected
    assert record["dirty_ratio"] == int(Path("/proc/sys/vm/dirty_ratio").read_text())
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists():
        assert f"[{record['transparent_hugepage']}]" in thp.read_text()


def test_environment_id_is_stable_across_collections(record, tmp_path_factory, monkeypatch):
    # Only the checkout may change between two collections (someone editing it meanwhile).
    monkeypatch.setattr(provenance, "git_commit", lambda repo_dir: record["git_commit"])
    again = provenance.collect(tmp_path_factory.getbasetemp(), REPO)
    assert again == record
    assert row_model.environment_id(again) == row_model.environment_id(record)
    changed = {**record, "read_ahead_kb": (record["read_ahead_kb"] or 0) + 4}
    assert row_model.environment_id(changed) != row_model.environment_id(record)
    # The Slurm job does not change the environment.
    assert row_model.environment_id({**record, "slurm_job_id": "42"}) == row_model.environment_id(
        record
    )


def test_a_job_without_a_method_records_the_core_packages_only(record):
    for name in provenance.CORE_PACKAGES:
        assert record[name.lower()] == metadata.version(name), name
    assert record["methods"] == {}
    for key in ("pillow", "lmdb", "h5py", "lmdb_c", "hdf5_c", "zlib"):
        assert key not in record, key


def test_a_method_job_records_its_packages_and_c_libraries(record, tmp_path_factory, monkeypatch):
    """A store or read job records the versions of what its own method runs on, from the
    method's PACKAGES and library_versions(); the env_id stays the machine's, so the jobs of
    every method on it share one environment record."""
    import h5py

    monkeypatch.setattr(provenance, "git_commit", lambda repo_dir: record["git_commit"])
    base = tmp_path_factory.getbasetemp()
    hdf5 = provenance.collect(base, REPO, "hdf5")
    assert hdf5["methods"] == {
        "hdf5": {"h5py": metadata.version("h5py"), "hdf5_c": h5py.version.hdf5_version}
    }
    assert {k: v for k, v in hdf5.items() if k != "methods"} == {
        k: v for k, v in record.items() if k != "methods"
    }
    npy = provenance.collect(base, REPO, "npy")
    assert npy["methods"] == {"npy": {}}
    png = provenance.collect(base, REPO, "png")
    # its packages and libraries, and its codec's (Pillow's, the default for PNG files)
    versions = png["methods"]["png"]
    assert {"pillow", "zlib", "codec"} <= set(versions) and versions["codec"] == "pillow"
    assert all(k.startswith("pillow.") for k in set(versions) - {"pillow", "zlib", "codec"})
    assert versions["pillow"] == metadata.version("Pillow") and versions["pillow.zlib"]
    ids = {row_model.environment_id(r) for r in (record, hdf5, npy, png)}
    assert len(ids) == 1


def test_missing_sysfs_and_procfs_files_give_none(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(provenance, "SYS_ROOT", empty)
    monkeypatch.setattr(provenance, "PROC_ROOT", empty)
    monkeypatch.setattr(provenance, "CONTAINER_MARKERS", {"docker": empty / ".dockerenv"})
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    monkeypatch.setattr(machine, "PRESSURE_ROOT", empty)
    monkeypatch.setattr(machine, "SYS_DEV_BLOCK", empty)
    monkeypatch.setattr(fsutil, "MOUNTINFO_PATH", empty / "mountinfo")
    record = provenance.collect(tmp_path, REPO)
    assert record["kernel_has_psi"] is False
    assert {key: record[key] for key in NEW_KEYS - {"kernel_has_psi"}} == dict.fromkeys(
        NEW_KEYS - {"kernel_has_psi"}
    )
    assert (record["store_fs_type"], record["store_mount"]) == ("unknown", "")


def fake_sys(root: Path) -> None:
    """A /sys with a whole disk vda, a disk sda with partition sda1, THP and a governor."""
    devices = root / "devices" / "pci0"
    (devices / "vda" / "queue").mkdir(parents=True)
    (devices / "vda" / "queue" / "read_ahead_kb").write_text("8192\n")
    (devices / "sda" / "queue").mkdir(parents=True)
    (devices / "sda" / "queue" / "read_ahead_kb").write_text("128\n")
    (devices / "sda" / "sda1").mkdir()
    (devices / "sda" / "sda1" / "partition").write_text("1\n")
    (root / "class" / "block").mkdir(parents=True)
    for name, target in (("vda", devices / "vda"), ("sda1", devices / "sda" / "sda1")):
        (root / "class" / "block" / name).symlink_to(target)
    thp = root / "kernel" / "mm" / "transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always [madvise] never\n")
    cpufreq = root / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    cpufreq.mkdir(parents=True)
    (cpufreq / "scaling_governor").write_text("performance\n")


def test_sysfs_readers_parse_a_fake_sys(tmp_path, monkeypatch):
    fake_sys(tmp_path)
    monkeypatch.setattr(provenance, "SYS_ROOT", tmp_path)
    assert provenance._read_ahead_kb("vda") == 8192
    assert provenance._read_ahead_kb("sda1") == 128  # the partition's parent disk
    assert provenance._read_ahead_kb("nvme0n1") is None
    assert provenance._read_ahead_kb(None) is None
    monkeypatch.setattr(machine, "block_device", lambda path: "sda1")
    record = provenance.storage_and_kernel(tmp_path)
    assert record["store_device"] == "sda1"
    assert record["read_ahead_kb"] == 128
    assert record["transparent_hugepage"] == "madvise"
    assert record["cpu_governor"] == "performance"


def test_mount_options_join_mount_and_super_options_once(tmp_path, monkeypatch):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,errors=remount-ro\n"
    )
    monkeypatch.setattr(fsutil, "MOUNTINFO_PATH", mountinfo)
    assert provenance._mount_options(tmp_path) == "rw,relatime,discard,errors=remount-ro"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu vme hypervisor sse", "vm (unknown hypervisor)"), ("fpu vme sse", "none")],
)
def test_virtualization_falls_back_to_the_hypervisor_flag(tmp_path, monkeypatch, flags, expected):
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(provenance, "PROC_ROOT", tmp_path)
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert provenance._virtualization() == expected


def test_virtualization_uses_systemd_detect_virt_when_present(tmp_path, monkeypatch):
    script = tmp_path / "systemd-detect-virt"
    script.write_text('#!/bin/sh\n[ "$1" = --vm ] && echo kvm && exit 0\necho none; exit 1\n')
    script.chmod(0o755)
    monkeypatch.setattr(provenance.shutil, "which", lambda name: str(script))
    assert provenance._virtualization() == "kvm"
    assert provenance._container() == "none"  # printed with exit status 1


def test_container_falls_back_to_marker_files(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    marker = tmp_path / ".containerenv"
    monkeypatch.setattr(provenance, "CONTAINER_MARKERS", {"podman": marker})
    assert provenance._container() is None
    marker.write_text("")
    assert provenance._container() == "podman"
