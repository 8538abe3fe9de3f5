"""Where a measurement was taken: machine, file system, software versions, git commit.

A record (``collect``) has the same keys in every job: the machine and its settings, the
store's file system, Python, the project's core packages (``CORE_PACKAGES``, keyed by
their names in lower case, None when not installed), the git commit, and ``methods``: for
a store or read job, ``{method: versions}`` with the versions of what that method runs on
(its ``PACKAGES``, keyed like the core ones, and its ``library_versions()``, e.g.
``{"h5py": "3.16.0", "hdf5_c": "1.14.6"}``); ``{}`` for any other job. The ``env_id``
(``environment_id``) hashes everything but ``methods`` and the Slurm job id, so the jobs of
all methods on one machine share one id, and ``results.load.load_environments`` joins their
``methods`` into one record per id (results/environment.json).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from imgbench.methods import codecs, encoding, get_method, resolve_options
from imgbench.system import machine
from imgbench.system.fsutil import filesystem_of, mount_entry

# Recorded for every job; a method's own packages come from its module (PACKAGES).
CORE_PACKAGES = ("numpy", "pandas", "matplotlib", "snakemake")
SYS_ROOT = Path("/sys")
PROC_ROOT = Path("/proc")
CONTAINER_MARKERS = {"docker": Path("/.dockerenv"), "podman": Path("/run/.containerenv")}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def method_versions(method: str, options: dict | None = None) -> dict[str, str | None]:
    """Versions of what ``method`` runs on: each of its ``PACKAGES`` (keyed by the name in
    lower case; None when not installed), its ``library_versions()`` (this imports the
    method's format library: for the jobs that run the method only) and, for a store of
    encoded images (the job's ``options``, resolved here, name a codec), the codec, its
    package and the codec libraries under it (``codecs.versions``)."""
    module = get_method(method)
    versions = {name.lower(): _package_version(name) for name in module.PACKAGES}
    library_versions = getattr(module, "library_versions", None)
    if library_versions is not None:
        versions.update(library_versions())
    versions.update(codecs.versions(encoding.codec_of(resolve_options(module, options))))
    return versions


def _read_text(path: Path) -> str | None:
    """Stripped content of a small sysfs/procfs file; None when missing or unreadable."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _read_ahead_kb(device: str | None) -> int | None:
    """Read-ahead window of the disk holding ``device``; a partition ("sda1") has none of its
    own, so its parent disk's (/sys/class/block/sda1/.. = sda) is used."""
    if device is None:
        return None
    node = SYS_ROOT / "class" / "block" / device
    value = _read_int(node / "queue" / "read_ahead_kb")
    if value is None and (node / "partition").exists():
        value = _read_int(node.resolve().parent / "queue" / "read_ahead_kb")
    return value


def _mount_options(path: Path) -> str | None:
    """Options of the mount holding ``path``: per-mount ones then per-superblock ones, each
    once ("rw,relatime,discard")."""
    entry = mount_entry(path)
    if entry is None:
        return None
    options = [*entry.mount_options.split(","), *entry.super_options.split(",")]
    return ",".join(dict.fromkeys(option for option in options if option))


def _detect_virt(kind: str) -> str | None:
    """``systemd-detect-virt --vm`` or ``--container`` ("kvm", "docker", "none"); None when
    the command is missing or says nothing."""
    command = shutil.which("systemd-detect-virt")
    if command is None:
        return None
    try:
        result = subprocess.run(
            [command, f"--{kind}"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None  # exits 1 after printing "none"


def _virtualization() -> str | None:
    """Hypervisor under this kernel ("kvm", "microsoft", "none"), from systemd-detect-virt or
    else the cpuinfo ``hypervisor`` flag ("vm (unknown hypervisor)" / "none")."""
    detected = _detect_virt("vm")
    if detected is not None:
        return detected
    try:
        with open(PROC_ROOT / "cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "vm (unknown hypervisor)" if "hypervisor" in flags else "none"
    except OSError:
        pass
    return None


def _container() -> str | None:
    """Container runtime around this process ("docker", "podman", "none"); None if unknown."""
    detected = _detect_virt("container")
    if detected is not None:
        return detected
    for runtime, marker in CONTAINER_MARKERS.items():
        if marker.exists():
            return runtime
    return None


def _bracketed_choice(path: Path) -> str | None:
    """The selected value of a sysfs choice file: "madvise" from "always [madvise] never"."""
    text = _read_text(path)
    if text is None or "[" not in text:
        return text or None
    return text.split("[", 1)[1].split("]", 1)[0]


def storage_and_kernel(store_path: Path) -> dict:
    """Settings that change how reads and writes of ``store_path`` behave: its block device
    and read-ahead, mount options, virtualization, THP, CPU governor, PSI, dirty ratios."""
    device = machine.block_device(store_path)
    vm = PROC_ROOT / "sys" / "vm"
    dmi = SYS_ROOT / "class" / "dmi" / "id"
    return {
        "store_device": device,
        "read_ahead_kb": _read_ahead_kb(device),
        "store_mount_options": _mount_options(store_path),
        "virtualization": _virtualization(),
        "container": _container(),
        "dmi_sys_vendor": _read_text(dmi / "sys_vendor"),
        "dmi_product_name": _read_text(dmi / "product_name"),
        "transparent_hugepage": _bracketed_choice(
            SYS_ROOT / "kernel" / "mm" / "transparent_hugepage" / "enabled"
        ),
        "cpu_governor": _read_text(
            SYS_ROOT / "devices" / "system" / "cpu" / "cpu0" / "cpufreq" / "scaling_governor"
        ),
        "kernel_has_psi": machine.kernel_has_psi(),
        "dirty_ratio": _read_int(vm / "dirty_ratio"),
        "dirty_background_ratio": _read_int(vm / "dirty_background_ratio"),
    }


def git_commit(repo_dir: Path) -> str | None:
    """Commit of the workflow checkout, with ``-dirty`` when it has local changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def collect(
    store_path: Path, repo_dir: Path, method: str | None = None, options: dict | None = None
) -> dict:
    """Everything that describes the conditions of a measurement, except its time.

    ``store_path`` is any path on the disk being measured (its file system is recorded);
    ``method`` is the storage method the job runs, whose versions go under ``methods``
    (with its codec's, from the job's resolved ``options``).
    """
    fs_type, mount = filesystem_of(store_path)
    uname = platform.uname()
    record = {
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": _ram_bytes(),
        "os": uname.system,
        "kernel": uname.release,
        "machine": uname.machine,
        "store_fs_type": fs_type,
        "store_mount": mount,
        "python": sys.version.split()[0],
        "git_commit": git_commit(repo_dir),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        # Often FALSE on Lustre/NFS without lock support; it changes what HDF5 does.
        "hdf5_use_file_locking": os.environ.get("HDF5_USE_FILE_LOCKING"),
    }
    record.update(storage_and_kernel(store_path))
    record.update({name.lower(): _package_version(name) for name in CORE_PACKAGES})
    record["methods"] = {} if method is None else {method: method_versions(method, options)}
    return record
