"""Where a measurement was taken: machine, file system, software versions, git commit."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .fsutil import filesystem_of

PACKAGES = ("numpy", "Pillow", "lmdb", "h5py", "pandas", "matplotlib", "snakemake")


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


def _c_library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"lmdb_c": None, "hdf5_c": None}
    try:
        import lmdb

        versions["lmdb_c"] = ".".join(map(str, lmdb.version()))
    except ImportError:
        pass
    try:
        import h5py

        versions["hdf5_c"] = h5py.version.hdf5_version
    except ImportError:
        pass
    return versions


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


def collect(store_path: Path, repo_dir: Path) -> dict:
    """Everything that describes the conditions of a measurement, except its time.

    ``store_path`` is any path on the disk being measured (its file system is recorded).
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
    record.update({name.lower(): _package_version(name) for name in PACKAGES})
    record.update(_c_library_versions())
    return record


def environment_id(record: dict) -> str:
    """Short stable key of a provenance record (rows carry it; environment.json maps it)."""
    stable = {key: value for key, value in record.items() if key != "slurm_job_id"}
    digest = hashlib.sha1(json.dumps(stable, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
