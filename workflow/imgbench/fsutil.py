"""File-system helpers: disk usage like ``du``, fsync, page-cache eviction and residency."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DiskUsage:
    bytes_on_disk: int  # allocated blocks, as ``du`` reports
    bytes_apparent: int  # sum of file sizes, as ``du --apparent-size``
    n_files: int


def store_files(store_dir: Path) -> list[Path]:
    """Every regular file of a store, in a stable order."""
    return sorted(Path(root) / name for root, _, names in os.walk(store_dir) for name in names)


def disk_usage(store_dir: Path) -> DiskUsage:
    allocated = apparent = count = 0
    for path in store_files(store_dir):
        stat = path.stat()
        allocated += stat.st_blocks * 512
        apparent += stat.st_size
        count += 1
    return DiskUsage(allocated, apparent, count)


def fsync_tree(store_dir: Path) -> None:
    """fsync every file of the store, then every directory (so new entries are durable)."""
    for path in store_files(store_dir):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    directories = [Path(root) for root, _, _ in os.walk(store_dir)]
    for directory in [*directories, store_dir.parent]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def evict_tree(store_dir: Path) -> None:
    """Drop the store's pages from the page cache (needs no root).

    Dirty pages cannot be dropped, so each file is fsync'd first. The kernel may ignore the
    advice for pages mapped by another process; ``cached_fraction`` tells what remained.
    """
    for path in store_files(store_dir):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


_libc = None


def _load_libc():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
        _libc = libc
    return _libc


def resident_pages(path: Path) -> tuple[int, int]:
    """(pages in the page cache, pages in the file) via mmap + mincore(2)."""
    size = path.stat().st_size
    page = mmap.PAGESIZE
    n_pages = (size + page - 1) // page
    if size == 0:
        return 0, 0
    libc = _load_libc()
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap failed for {path}")
        try:
            vector = (ctypes.c_ubyte * n_pages)()
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), f"mincore failed for {path}")
            resident = sum(byte & 1 for byte in vector)
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    return resident, n_pages


def cached_fraction(store_dir: Path) -> float:
    """Fraction of the store's pages in the page cache, or NaN where the platform
    cannot tell (no mincore)."""
    resident = total = 0
    try:
        for path in store_files(store_dir):
            file_resident, file_total = resident_pages(path)
            resident += file_resident
            total += file_total
    except (OSError, AttributeError):
        return float("nan")
    return resident / total if total else 0.0


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def filesystem_of(path: Path) -> tuple[str, str]:
    """(filesystem type, mount point) of the mount holding ``path``, from /proc/self/mountinfo."""
    target = Path(path).resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best_mount, best_type = "", "unknown"
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split()
                separator = fields.index("-")
                mount_point = fields[4].replace("\\040", " ")
                fs_type = fields[separator + 1]
                inside = str(target) == mount_point or str(target).startswith(
                    mount_point.rstrip("/") + "/"
                )
                if inside and len(mount_point) >= len(best_mount):
                    best_mount, best_type = mount_point, fs_type
    except (OSError, ValueError, IndexError):
        return "unknown", ""
    return best_type, best_mount
