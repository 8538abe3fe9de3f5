"""File-system helpers: a store's files and disk usage like ``du`` (passes over many files
split over processes), fsync/syncfs, removal, mounts, dropping the kernel's caches and
pre-faulting memory. A store's pages in the page cache (eviction, cache fill, residency)
are ``pagecache``'s."""

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
    return DiskUsage(*in_parts(_files(store_dir, files), _usage_of))


def _usage_of(files: list) -> tuple[int, int, int]:
    allocated = apparent = 0
    for directory, names in by_directory(files):
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in names:
                stat = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
                allocated += stat.st_blocks * 512
                apparent += stat.st_size
        finally:
            os.close(directory_fd)
    return allocated, apparent, len(files)


# A pass over at least this many files (eviction, cache fill, residency) is split over
# forked processes, one per core (at most 4): on a 100,000-file PNG store one process spent
# about 1 s a pass in the interpreter, around 10 us a file.
PARALLEL_WALK_MIN_FILES = 5000


def in_parts(files: list, work) -> tuple:
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


def by_directory(files: list) -> list[tuple[str, list[str]]]:
    """The files grouped by their directory: (directory, names), in the list's order."""
    groups: dict[str, list[str]] = {}
    for path in files:
        directory, _, name = os.fspath(path).rpartition(os.sep)
        groups.setdefault(directory or os.curdir, []).append(name)
    return list(groups.items())


_libc = None


def load_libc():
    """The C library through ctypes (errno kept), with the signatures the helpers use."""
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
        function = getattr(load_libc(), "syncfs", None)
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
