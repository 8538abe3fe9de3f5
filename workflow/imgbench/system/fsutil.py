"""File-system helpers: disk usage like ``du``, fsync/syncfs, page-cache eviction and
residency, dropping the kernel's caches and pre-faulting memory."""

from __future__ import annotations

import ast
import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

FLUSH_STRATEGIES = ("per_file", "syncfs", "none")
DROP_CACHES_PATH = Path("/proc/sys/vm/drop_caches")
MEMINFO_PATH = Path("/proc/meminfo")
MOUNTINFO_PATH = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class DiskUsage:
    bytes_on_disk: int  # allocated blocks, as ``du`` reports
    bytes_apparent: int  # sum of file sizes, as ``du --apparent-size``
    n_files: int


def store_files(store_dir: Path) -> list[Path]:
    """Every regular file of a store, in a stable order (sorted by path)."""
    return [Path(path) for path in store_paths(store_dir)]


def store_paths(store_dir: Path) -> list[str]:
    """``store_files`` as strings, which is what the passes over a store take: on a
    100,000-file PNG store the scandir walk and the sort took 0.08 s, making ``Path``
    objects of the strings 0.3 s more (``os.walk`` with sorted ``Path`` objects: 2.2 s)."""
    found: list[str] = []
    pending = [os.fspath(store_dir)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    found.append(entry.path)
    found.sort()
    return found


def _files(store_dir: Path, files: list | None) -> list:
    return store_paths(store_dir) if files is None else files


def disk_usage(store_dir: Path, files: list | None = None) -> DiskUsage:
    """Allocated bytes, apparent bytes and number of the store's files (a long list
    stat'ed in parts over the cores, ``_in_parts``)."""
    return DiskUsage(*_in_parts(_files(store_dir, files), _usage_of))


def _usage_of(files: list) -> tuple[int, int, int]:
    allocated = apparent = 0
    for directory, names in _by_directory(files):
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in names:
                stat = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
                allocated += stat.st_blocks * 512
                apparent += stat.st_size
        finally:
            os.close(directory_fd)
    return allocated, apparent, len(files)


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


def evict_tree(store_dir: Path, files: list[str | Path] | None = None) -> None:
    """Drop the store's pages from the page cache (needs no root).

    Dirty pages cannot be dropped, so the store's file system is written back first (one
    ``syncfs``; an fsync per file cost 80 us a file on a 100,000-file store). The kernel may
    ignore the advice for pages mapped by another process; ``cached_fraction`` tells what
    remained (``evict_tree_measured``, which this is, without its answer).
    """
    evict_tree_measured(store_dir, files)


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
        libc.syscall.restype = ctypes.c_long
        _libc = libc
    return _libc


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
        libc = _load_libc()
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
    libc = _load_libc()
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


# A pass over at least this many files (eviction, cache fill, residency) is split over
# forked processes, one per core (at most 4): on a 100,000-file PNG store one process spent
# about 1 s a pass in the interpreter, around 10 us a file.
PARALLEL_WALK_MIN_FILES = 5000


def _in_parts(files: list, work) -> tuple:
    """``work(part)`` (a tuple of numbers) summed over parts of ``files``: in forked
    processes (bound to this one, see ``lifetime``) for a long list on a machine with
    several cores, else in this process. A part that fails raises ``OSError`` here."""
    parts = min(os.cpu_count() or 1, 4) if len(files) >= PARALLEL_WALK_MIN_FILES else 1
    if parts == 1:
        return work(files)
    from imgbench.system import lifetime

    children = []
    for index in range(1, parts):
        read_end, write_end = os.pipe()
        pid = lifetime.fork()
        if pid == 0:  # pragma: no cover (runs in the child; its answer is checked)
            os.close(read_end)
            try:
                answer = repr(tuple(work(files[index::parts])))
                code = 0
            except BaseException as error:  # noqa: BLE001 (reported to the parent)
                answer, code = f"error {type(error).__name__}: {error}", 1
            os.write(write_end, answer.encode())
            os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    totals = list(work(files[0::parts]))
    failures = []
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read().decode()
        os.waitpid(pid, 0)
        if not answer or answer.startswith("error "):
            failures.append(answer[6:] or f"process {pid} ended without an answer")
            continue
        for position, value in enumerate(ast.literal_eval(answer)):
            totals[position] += value
    if failures:
        raise OSError(f"a pass over the store's files failed: {failures[0]}")
    return tuple(totals)


def _by_directory(files: list) -> list[tuple[str, list[str]]]:
    """The files grouped by their directory: (directory, names), in the list's order."""
    groups: dict[str, list[str]] = {}
    for path in files:
        directory, _, name = os.fspath(path).rpartition(os.sep)
        groups.setdefault(directory or os.curdir, []).append(name)
    return list(groups.items())


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
    syscall, number = _load_libc().syscall, _CACHESTAT_SYSCALL
    whole, result, result_ref = _WHOLE_FILE_REF, _CACHESTAT_RESULT, _CACHESTAT_RESULT_REF
    page = mmap.PAGESIZE
    open_, close, fstat = os.open, os.close, os.fstat
    fadvise, dontneed = os.posix_fadvise, os.POSIX_FADV_DONTNEED
    resident = total = before = 0
    for directory, names in _by_directory(files):
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
    a long list split over processes, ``_in_parts``): the fraction of the store's pages
    still in the page cache after each file's eviction, and the bytes the eviction freed
    (each file's cached pages before its eviction less after)."""
    syncfs(Path(store_dir))
    resident, total, before, known = _in_parts(
        _files(store_dir, files), lambda part: _residency_walk(part, _EVICT)
    )
    fraction = _fraction(resident, total, known)
    if not known or _cachestat_works is False:
        return Eviction(fraction, float("nan"))
    return Eviction(fraction, float(max(0, before - resident) * mmap.PAGESIZE))


def fill_tree_measured(store_dir: Path, files: list[str | Path] | None = None) -> float:
    """Make a store warm and measure it in one pass: every file not wholly in the page
    cache is read once (its bytes, not decoded); the fraction of the store's pages in the
    page cache after each file's turn (a long list split over processes, ``_in_parts``)."""
    resident, total, _, known = _in_parts(
        _files(store_dir, files), lambda part: _residency_walk(part, _FILL)
    )
    return _fraction(resident, total, known)


def cached_fraction(store_dir: Path, files: list[str | Path] | None = None) -> float:
    """Fraction of the store's pages in the page cache, or NaN where the platform
    cannot tell (neither cachestat nor mincore)."""
    try:
        resident, total, _, known = _in_parts(_files(store_dir, files), _residency_walk)
    except (OSError, AttributeError):
        return float("nan")
    return _fraction(resident, total, known)


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (absolute)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system of ``path`` (or of
    its nearest existing ancestor)."""
    stat = os.statvfs(existing_parent(path))
    return stat.f_bavail * stat.f_frsize


# A directory of at least this many files has them unlinked by several threads.
PARALLEL_UNLINK_MIN_FILES = 1000
UNLINK_THREADS = 4


def remove_tree(path: Path) -> None:
    """Remove a file or a directory tree. The files of a large directory are unlinked by
    ``UNLINK_THREADS`` threads first, each a contiguous run of them in inode order: a
    100,000-file PNG store on ext4 took 7-10 s to remove with one thread (``rm -rf`` or
    ``shutil.rmtree``), 3.8-4.1 s with four taking every fourth file, 3.4 s so."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        _unlink_large_directories(path)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _unlink_large_directories(root: Path) -> None:
    """Unlink the files (not directories) of every directory under ``root`` that holds at
    least ``PARALLEL_UNLINK_MIN_FILES``, in ``UNLINK_THREADS`` threads, each a contiguous
    run of the files sorted by inode number (neighbouring inodes share their table blocks)."""
    pending = [os.fspath(root)]
    while pending:
        files = []
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    files.append((entry.inode(), entry.path))
        if len(files) < PARALLEL_UNLINK_MIN_FILES:
            continue
        files.sort()
        paths = [name for _, name in files]
        size = -(-len(paths) // UNLINK_THREADS)
        runs = [paths[start : start + size] for start in range(0, len(paths), size)]
        with ThreadPoolExecutor(UNLINK_THREADS) as pool:
            list(pool.map(_unlink_all, runs))


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo (see proc(5))."""

    mount_point: str
    major: int
    minor: int
    fs_type: str
    source: str
    mount_options: str  # per-mount options, e.g. "rw,relatime"
    super_options: str  # per-superblock options, e.g. "rw,discard"


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _parse_mountinfo_line(line: str) -> MountEntry:
    fields = line.split()
    separator = fields.index("-")
    major, minor = fields[2].split(":")
    return MountEntry(
        mount_point=_unescape(fields[4]),
        major=int(major),
        minor=int(minor),
        fs_type=fields[separator + 1],
        source=_unescape(fields[separator + 2]) if len(fields) > separator + 2 else "",
        mount_options=fields[5],
        super_options=fields[separator + 3] if len(fields) > separator + 3 else "",
    )


def mount_entry(path: Path) -> MountEntry | None:
    """The mount holding ``path`` (or its nearest existing parent): the longest mount point
    containing it, the last one listed when mounts are stacked. None when mountinfo is
    missing or unreadable (not Linux)."""
    target = existing_parent(Path(path).resolve())
    best: MountEntry | None = None
    try:
        with open(MOUNTINFO_PATH) as handle:
            for line in handle:
                entry = _parse_mountinfo_line(line)
                mount_point = entry.mount_point
                inside = str(target) == mount_point or str(target).startswith(
                    mount_point.rstrip("/") + "/"
                )
                if inside and (best is None or len(mount_point) >= len(best.mount_point)):
                    best = entry
    except (OSError, ValueError, IndexError):
        return None
    return best


def filesystem_of(path: Path) -> tuple[str, str]:
    """(filesystem type, mount point) of the mount holding ``path``, from /proc/self/mountinfo;
    ("unknown", "") when that cannot be read."""
    entry = mount_entry(path)
    if entry is None:
        return "unknown", ""
    return entry.fs_type, entry.mount_point


def syncfs(path: Path) -> None:
    """Write back every dirty page of the whole file system holding ``path`` with syncfs(2),
    on an fd of ``path`` (a file or a directory). Where libc has no syncfs (not Linux) it
    falls back to ``os.sync()``, which flushes every file system. Raises OSError (with errno)
    when ``path`` cannot be opened or syncfs fails."""
    fd = os.open(path, os.O_RDONLY)
    try:
        function = getattr(_load_libc(), "syncfs", None)
        if function is None:
            os.sync()
            return
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}", str(path))
    finally:
        os.close(fd)


def flush(store_dir: Path, strategy: str) -> None:
    """Make a freshly written store durable: "per_file" fsyncs each file and directory
    (``fsync_tree``), "syncfs" flushes the whole file system once, "none" does nothing."""
    if strategy == "per_file":
        fsync_tree(Path(store_dir))
    elif strategy == "syncfs":
        syncfs(Path(store_dir))
    elif strategy != "none":
        raise ValueError(f"unknown flush strategy {strategy!r}; expected one of {FLUSH_STRATEGIES}")


class DropCachesError(PermissionError):
    """The kernel's caches cannot be dropped here; the message says why and what to set."""


def _drop_caches_problem(error: OSError) -> str:
    """One sentence: what stopped drop_caches, the config key and the fix."""
    path = DROP_CACHES_PATH
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM):
        return (
            f"cold: drop_caches needs root to write {path} ({reason}); "
            "run as root or set cold: fadvise"
        )
    if error.errno == errno.EROFS:
        return (
            f"cold: drop_caches cannot write {path} because it is mounted read-only here "
            "(a container?); run as root on the host or set cold: fadvise"
        )
    if error.errno == errno.ENOENT:
        return (
            f"cold: drop_caches needs {path}, which this system does not have (not Linux?); "
            "set cold: fadvise"
        )
    return (
        f"cold: drop_caches could not write {path} ({reason}); "
        "run as root outside a container or set cold: fadvise"
    )


def can_drop_caches() -> bool:
    """Whether this process may write the drop_caches file (an access(2) check, no write)."""
    return os.access(DROP_CACHES_PATH, os.W_OK)


def drop_caches() -> None:
    """Write back dirty pages (``os.sync``), then drop the clean page cache, dentries and
    inodes of every file system (writes "3" to /proc/sys/vm/drop_caches; needs root).

    Raises DropCachesError when that file cannot be written (not root, read-only /proc/sys
    in a container, not Linux); the file is never created.
    """
    os.sync()
    try:
        fd = os.open(DROP_CACHES_PATH, os.O_WRONLY)
        try:
            os.write(fd, b"3")
        finally:
            os.close(fd)
    except OSError as error:
        # The cause keeps errno; the message stays one sentence.
        raise DropCachesError(_drop_caches_problem(error)) from error


def memory_available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo: the kernel's estimate of memory that can be given to a
    new workload without swapping (free plus reclaimable cache). None when unknown."""
    try:
        with open(MEMINFO_PATH) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    value, *unit = line.split(":", 1)[1].split()
                    return int(value) * (1024 if unit == ["kB"] else 1)
    except (OSError, ValueError):
        return None
    return None


def prefault(nbytes: int) -> int:
    """Touch ``nbytes`` of fresh anonymous memory, then give it back, so the kernel's free
    lists hold pages the (virtual) machine has just backed and the next job starts from a
    memory state independent of the previous one.

    Maps a private anonymous region of ``nbytes`` rounded up to whole pages (pre-populated by
    the kernel where MAP_POPULATE exists, which is faster than one fault per page), writes one
    byte per page, unmaps it. Capped at half of MemAvailable when that is known. Returns the bytes
    touched (a multiple of the page size); 0 for ``nbytes <= 0``.
    """
    import numpy as np

    page = mmap.PAGESIZE
    if nbytes <= 0:
        return 0
    size = -(-nbytes // page) * page
    available = memory_available_bytes()
    if available is not None:
        size = min(size, available // 2 // page * page)
    if size <= 0:
        return 0
    region = mmap.mmap(
        -1,
        size,
        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0),
        prot=mmap.PROT_READ | mmap.PROT_WRITE,
    )
    try:
        view = np.frombuffer(region, dtype=np.uint8)
        view[::page] = 1
        del view  # the mmap cannot close while a view exports its buffer
    finally:
        region.close()
    return size
