"""A store's pages in the page cache: evicting them (``fadvise``), filling the cache with
them and measuring their residency (``cachestat``, or ``mincore`` on older kernels), each
in one pass over the store's files, split over processes for a long list
(``fsutil.in_parts``)."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from imgbench.system import fsutil


def _paths(store_dir: Path, files: list | None) -> list:
    return fsutil.store_paths(store_dir) if files is None else files


def evict_tree(store_dir: Path, files: list[str | Path] | None = None) -> None:
    """Drop the store's pages from the page cache (needs no root).

    Dirty pages cannot be dropped, so the store's file system is written back first (one
    ``syncfs``; an fsync per file cost 80 us a file on a 100,000-file store). The kernel may
    ignore the advice for pages mapped by another process; ``cached_fraction`` tells what
    remained (``evict_tree_measured``, which this is, without its answer).
    """
    evict_tree_measured(store_dir, files)


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")
    ]


# cachestat(2), Linux 6.5+: the number is the same on every architecture (unified table).
_CACHESTAT_SYSCALL = 451
# Built once: a call per file of a 100,000-file store (one process, one thread at a time).
_WHOLE_FILE = _CachestatRange(0, 0)  # len 0: to the end of the file
_WHOLE_FILE_REF = ctypes.byref(_WHOLE_FILE)
_CACHESTAT_RESULT = _Cachestat()
_CACHESTAT_RESULT_REF = ctypes.byref(_CACHESTAT_RESULT)
_cachestat_works: bool | None = None
_LOW_BIT = bytes(value & 1 for value in range(256))
# What a cache fill reads a file into (its bytes are not used).
_FILL_BUFFER = bytearray(1 << 20)


def _cachestat_pages(fd: int) -> int | None:
    """Pages of the open file in the page cache by cachestat(2), or None where the kernel
    (before 6.5) or the platform has no cachestat."""
    global _cachestat_works
    if _cachestat_works is False:
        return None
    try:
        libc = fsutil.load_libc()
    except OSError:
        _cachestat_works = False
        return None
    stat = _CACHESTAT_RESULT
    if libc.syscall(_CACHESTAT_SYSCALL, fd, _WHOLE_FILE_REF, _CACHESTAT_RESULT_REF, 0) != 0:
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM) and _cachestat_works is None:
            _cachestat_works = False  # no such syscall, or a seccomp filter forbids it
            return None
        raise OSError(code, f"cachestat failed: {os.strerror(code)}")
    _cachestat_works = True
    return int(stat.nr_cache)


def _mincore_pages(fd: int, size: int, path) -> int:
    libc = fsutil.load_libc()
    n_pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), f"mmap failed for {path}")
    try:
        vector = (ctypes.c_ubyte * n_pages)()
        if libc.mincore(address, size, vector) != 0:
            raise OSError(ctypes.get_errno(), f"mincore failed for {path}")
        return bytes(vector).translate(_LOW_BIT).count(1)  # bit 0: resident
    finally:
        libc.munmap(address, size)


def resident_pages(path: Path) -> tuple[int, int]:
    """(pages in the page cache, pages in the file): cachestat(2) where the kernel has it
    (no mapping; 6 us a file against 60 us), else mmap + mincore(2)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _resident_pages_of(fd, path)
    finally:
        os.close(fd)


def _resident_pages_of(fd: int, path) -> tuple[int, int]:
    """``resident_pages`` of a file already open as ``fd``."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, 0
    n_pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    resident = _cachestat_pages(fd)
    if resident is None:
        resident = _mincore_pages(fd, size, path)
    return min(resident, n_pages), n_pages


# What a residency walk does to each file between counting its cached pages.
_MEASURE, _EVICT, _FILL = "measure", "evict", "fill"


def _residency_walk(files: list, action: str = _MEASURE) -> tuple[int, int, int, int]:
    """Open each file once (relative to its directory's descriptor: no path walk per
    file), do ``action`` to it and count its pages in the page cache after: (resident,
    total, before, known: 1 or 0). ``before`` is the pages cached before an eviction.

    ``_EVICT`` drops its pages (``fadvise``); ``_FILL`` reads the bytes of a file not
    wholly cached (a cached one is counted once, not twice); ``_MEASURE`` only counts.
    The cachestat(2) call is made inline: on a 100,000-file store a pass cost 8.7 us a
    file through the general helpers, 5.4 us so (one process)."""
    if _cachestat_works is None and files:
        resident_pages(files[0])  # decides whether cachestat works here
    if _cachestat_works is not True:
        return _residency_walk_portable(files, action)
    syscall, number = fsutil.load_libc().syscall, _CACHESTAT_SYSCALL
    whole, result, result_ref = _WHOLE_FILE_REF, _CACHESTAT_RESULT, _CACHESTAT_RESULT_REF
    page = mmap.PAGESIZE
    open_, close, fstat = os.open, os.close, os.fstat
    fadvise, dontneed = os.posix_fadvise, os.POSIX_FADV_DONTNEED
    resident = total = before = 0
    for directory, names in fsutil.by_directory(files):
        directory_fd = open_(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in names:
                fd = open_(name, os.O_RDONLY, dir_fd=directory_fd)
                try:
                    pages = (fstat(fd).st_size + page - 1) // page
                    if syscall(number, fd, whole, result_ref, 0) != 0:
                        raise OSError(ctypes.get_errno(), f"cachestat failed for {name}")
                    cached = result.nr_cache
                    if action == _EVICT:
                        before += cached
                        fadvise(fd, 0, 0, dontneed)
                    elif action == _FILL and cached < pages:
                        while os.readv(fd, [_FILL_BUFFER]):
                            pass
                    else:
                        resident += min(cached, pages)
                        total += pages
                        continue
                    if syscall(number, fd, whole, result_ref, 0) != 0:
                        raise OSError(ctypes.get_errno(), f"cachestat failed for {name}")
                    resident += min(result.nr_cache, pages)
                    total += pages
                finally:
                    close(fd)
        finally:
            close(directory_fd)
    return resident, total, before, 1


def _residency_walk_portable(files: list, action: str) -> tuple[int, int, int, int]:
    """``_residency_walk`` where cachestat is missing: mincore(2) per file, or no count
    (known 0) where neither works."""
    resident = total = before = 0
    known = 1
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            if action == _EVICT:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            elif action == _FILL:
                while os.readv(fd, [_FILL_BUFFER]):
                    pass
            if known:
                try:
                    file_resident, file_total = _resident_pages_of(fd, path)
                except (OSError, AttributeError):
                    known = 0
                    continue
                resident += file_resident
                total += file_total
        finally:
            os.close(fd)
    return resident, total, before, known


def _fraction(resident: int, total: int, known: int) -> float:
    if not known:
        return float("nan")
    return resident / total if total else 0.0


@dataclass(frozen=True)
class Eviction:
    """What ``evict_tree_measured`` found: the fraction of the store still cached after
    it, and the bytes of page cache it freed (NaN where the platform cannot tell)."""

    cached_fraction: float
    freed_bytes: float


def evict_tree_measured(store_dir: Path, files: list[str | Path] | None = None) -> Eviction:
    """``evict_tree`` and ``cached_fraction`` in one pass over the files (each opened once;
    a long list split over processes, ``fsutil.in_parts``): the fraction of the store's pages
    still in the page cache after each file's eviction, and the bytes the eviction freed
    (each file's cached pages before its eviction less after)."""
    fsutil.syncfs(Path(store_dir))
    resident, total, before, known = fsutil.in_parts(
        _paths(store_dir, files), lambda part: _residency_walk(part, _EVICT)
    )
    fraction = _fraction(resident, total, known)
    if not known or _cachestat_works is False:
        return Eviction(fraction, float("nan"))
    return Eviction(fraction, float(max(0, before - resident) * mmap.PAGESIZE))


def fill_tree_measured(store_dir: Path, files: list[str | Path] | None = None) -> float:
    """Make a store warm and measure it in one pass: every file not wholly in the page
    cache is read once (its bytes, not decoded); the fraction of the store's pages in the
    page cache after each file's turn (a long list split over processes, ``fsutil.in_parts``)."""
    resident, total, _, known = fsutil.in_parts(
        _paths(store_dir, files), lambda part: _residency_walk(part, _FILL)
    )
    return _fraction(resident, total, known)


def cached_fraction(store_dir: Path, files: list[str | Path] | None = None) -> float:
    """Fraction of the store's pages in the page cache, or NaN where the platform
    cannot tell (neither cachestat nor mincore)."""
    try:
        resident, total, _, known = fsutil.in_parts(_paths(store_dir, files), _residency_walk)
    except (OSError, AttributeError):
        return float("nan")
    return _fraction(resident, total, known)
