"""fsutil: disk usage like du, file listing, fsync, page-cache eviction and residency."""

from __future__ import annotations

import errno
import math
import mmap
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ci import unavailable

from imgbench.system import fsutil, pagecache


def make_tree(root: Path) -> list[Path]:
    """A small nested tree of files of assorted sizes; returns the files."""
    files = {
        "a.bin": 1,
        "b.bin": 5000,
        "sub/c.bin": 12345,
        "sub/deeper/d.bin": 0,
        "sub/deeper/e.bin": 70000,
    }
    paths = []
    for name, size in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def test_store_files_lists_every_regular_file_sorted(tmp_path):
    files = make_tree(tmp_path)
    listed = fsutil.store_files(tmp_path)
    assert listed == sorted(files)
    assert all(path.is_file() for path in listed)


def test_disk_usage_counts_allocated_blocks_like_du(tmp_path):
    files = make_tree(tmp_path)
    usage = fsutil.disk_usage(tmp_path)
    assert usage.n_files == len(files)
    assert usage.bytes_apparent == sum(path.stat().st_size for path in files)
    assert usage.bytes_on_disk == sum(path.stat().st_blocks * 512 for path in files)


def test_disk_usage_of_one_byte_file_is_whole_blocks(tmp_path):
    (tmp_path / "one").write_bytes(b"x")
    usage = fsutil.disk_usage(tmp_path)
    assert usage.bytes_apparent == 1
    assert usage.n_files == 1
    blocks = (tmp_path / "one").stat().st_blocks * 512
    assert usage.bytes_on_disk == blocks
    if blocks == 0:
        unavailable("this file system stores tiny files inline (no data block allocated)")
    # Allocation is in whole blocks of 512-byte sectors, never the file's 1 byte.
    assert usage.bytes_on_disk % 512 == 0
    assert usage.bytes_on_disk > usage.bytes_apparent


def test_disk_usage_agrees_with_du_per_file(tmp_path):
    if shutil.which("du") is None:
        unavailable("du is not installed")
    files = make_tree(tmp_path)
    du = subprocess.run(
        ["du", "-B1", *map(str, files)], capture_output=True, text=True, check=True
    ).stdout
    du_total = sum(int(line.split()[0]) for line in du.splitlines())
    du_apparent = subprocess.run(
        ["du", "-B1", "--apparent-size", *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    apparent_total = sum(int(line.split()[0]) for line in du_apparent.splitlines())
    usage = fsutil.disk_usage(tmp_path)
    assert usage.bytes_on_disk == du_total
    assert usage.bytes_apparent == apparent_total


def test_sparse_file_apparent_size_exceeds_allocation(tmp_path):
    path = tmp_path / "sparse"
    with open(path, "wb") as handle:
        handle.seek(8 * 1024 * 1024 - 1)
        handle.write(b"\0")
    usage = fsutil.disk_usage(tmp_path)
    assert usage.bytes_apparent == 8 * 1024 * 1024
    assert usage.bytes_on_disk == path.stat().st_blocks * 512
    if usage.bytes_on_disk >= usage.bytes_apparent:
        unavailable("this file system does not support sparse files")
    assert usage.bytes_on_disk < 1024 * 1024


def test_disk_usage_of_empty_directory(tmp_path):
    usage = fsutil.disk_usage(tmp_path)
    assert (usage.bytes_on_disk, usage.bytes_apparent, usage.n_files) == (0, 0, 0)


def test_fsync_tree_syncs_every_file_and_directory(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    files = make_tree(store)
    contents = {path: path.read_bytes() for path in files}
    synced = []
    real_fsync = os.fsync

    def counting_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    fsutil.fsync_tree(store)
    directories = {str(store), str(store / "sub"), str(store / "sub" / "deeper"), str(tmp_path)}
    assert set(synced) == {str(path) for path in files} | directories
    assert {path: path.read_bytes() for path in files} == contents


def test_filesystem_of_tmp_path(tmp_path):
    fs_type, mount = fsutil.filesystem_of(tmp_path)
    assert fs_type and fs_type != "unknown"
    resolved = str(tmp_path.resolve())
    assert mount == "/" or resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
    # A path that does not exist yet is on the mount of its nearest existing parent.
    assert fsutil.filesystem_of(tmp_path / "not" / "yet") == (fs_type, mount)


def test_filesystem_of_proc_is_procfs():
    assert fsutil.filesystem_of(Path("/proc/self")) == ("proc", "/proc")


def test_resident_pages_of_empty_file(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert pagecache.resident_pages(tmp_path / "empty") == (0, 0)
    assert pagecache.cached_fraction(tmp_path) == 0.0


def test_eviction_drops_the_store_from_the_page_cache(tmp_path):
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    size = 4 * 1024 * 1024
    (store / "big.bin").write_bytes(os.urandom(size))
    (store / "sub" / "small.bin").write_bytes(os.urandom(20000))
    fsutil.fsync_tree(store)
    for path in fsutil.store_files(store):
        path.read_bytes()  # now in the page cache

    before = pagecache.cached_fraction(store)
    if math.isnan(before):
        unavailable("this platform cannot report page-cache residency (no mincore)")
    resident, total = pagecache.resident_pages(store / "big.bin")
    assert total == -(-size // os.sysconf("SC_PAGE_SIZE"))
    assert resident <= total
    assert before > 0.9

    pagecache.evict_tree(store)
    after = pagecache.cached_fraction(store)
    assert after < 0.05
    # Eviction drops pages, not data.
    assert (store / "big.bin").stat().st_size == size

    (store / "big.bin").read_bytes()
    assert pagecache.cached_fraction(store) > after


def test_evict_and_fill_measure_residency_in_the_same_pass(tmp_path):
    """``evict_tree_measured`` and ``fill_tree_measured`` return what ``cached_fraction``
    reports after them, from one pass over the files."""
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    (store / "big.bin").write_bytes(os.urandom(2 << 20))
    (store / "sub" / "small.bin").write_bytes(os.urandom(30000))
    (store / "empty.bin").write_bytes(b"")
    fsutil.fsync_tree(store)
    if math.isnan(pagecache.cached_fraction(store)):
        unavailable("this platform cannot report page-cache residency (no mincore)")
    for path in fsutil.store_files(store):
        path.read_bytes()  # all of it cached
    cached = sum(pagecache.resident_pages(path)[0] for path in fsutil.store_files(store))
    eviction = pagecache.evict_tree_measured(store)
    assert eviction.cached_fraction < 0.05
    assert eviction.cached_fraction == pytest.approx(pagecache.cached_fraction(store), abs=0.02)
    # it freed what was cached, less what stayed
    assert eviction.freed_bytes == pytest.approx(cached * mmap.PAGESIZE, rel=0.05)
    assert pagecache.evict_tree_measured(store).freed_bytes == 0  # nothing left to free
    filled = pagecache.fill_tree_measured(store)
    assert filled == 1.0 == pagecache.cached_fraction(store)
    # a file list limits both to those files
    files = [store / "big.bin"]
    assert pagecache.evict_tree_measured(store, files).cached_fraction < 0.05
    assert pagecache.resident_pages(store / "sub" / "small.bin")[0] > 0  # untouched


def test_remove_tree_unlinks_a_large_directory_in_threads(tmp_path, monkeypatch):
    """A directory of at least ``PARALLEL_UNLINK_MIN_FILES`` has its files unlinked by the
    thread pool first; small ones, nested ones and links all go, nothing outside."""
    monkeypatch.setattr(fsutil, "PARALLEL_UNLINK_MIN_FILES", 50)
    tree = tmp_path / "store"
    (tree / "nested").mkdir(parents=True)
    for index in range(120):
        (tree / f"{index}.png").write_bytes(b"x")
    for index in range(60):
        (tree / "nested" / f"{index}.png").write_bytes(b"y")
    (tree / "few").mkdir()
    (tree / "few" / "one").write_bytes(b"z")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept").write_bytes(b"keep me")
    (tree / "link").symlink_to(outside, target_is_directory=True)
    runs = []
    real = fsutil._unlink_all

    def unlink_run(paths):
        runs.append([os.lstat(path).st_ino for path in paths])
        real(paths)

    monkeypatch.setattr(fsutil, "_unlink_all", unlink_run)
    fsutil.remove_tree(tree)
    assert not tree.exists()
    assert (outside / "kept").read_bytes() == b"keep me"
    # the top directory (120 files and the link) and the nested one (60), in 4 runs each
    assert sorted(len(run) for run in runs) == sorted([31, 31, 31, 28, 15, 15, 15, 15])
    # each run is a contiguous stretch of its directory's files in inode order
    for run in runs:
        assert run == sorted(run)
    top = sorted((run for run in runs if len(run) > 15), key=min)
    assert all(a[-1] < b[0] for a, b in zip(top, top[1:], strict=False))


def test_remove_tree_removes_directories_files_and_links(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    make_tree(tree)
    fsutil.remove_tree(tree)
    assert not tree.exists()

    single = tmp_path / "file"
    single.write_bytes(b"abc")
    fsutil.remove_tree(single)
    assert not single.exists()

    target = tmp_path / "target"
    target.mkdir()
    (target / "kept").write_bytes(b"keep me")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    fsutil.remove_tree(link)
    assert not link.is_symlink() and not link.exists()
    assert (target / "kept").read_bytes() == b"keep me"

    fsutil.remove_tree(tmp_path / "never-existed")  # no error
    assert not (tmp_path / "never-existed").exists()


def test_mount_entry_decodes_octal_escapes_and_picks_the_deepest_mount(tmp_path, monkeypatch):
    mount_point = tmp_path.resolve() / "data disk"
    (mount_point / "store").mkdir(parents=True)
    escaped = str(mount_point).replace(" ", "\\040")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
        f"40 27 8:17 / {escaped} rw,noatime shared:1 - xfs /dev/sdb1 rw,attr2\n"
        "41 27 0:50 / /elsewhere rw - tmpfs tmpfs rw\n"
    )
    monkeypatch.setattr(fsutil, "MOUNTINFO_PATH", mountinfo)
    entry = fsutil.mount_entry(mount_point / "store" / "not-yet")
    assert entry == fsutil.MountEntry(
        str(mount_point), 8, 17, "xfs", "/dev/sdb1", "rw,noatime", "rw,attr2"
    )
    assert fsutil.filesystem_of(mount_point / "store") == ("xfs", str(mount_point))
    assert fsutil.filesystem_of(tmp_path) == ("ext4", "/")


def test_mount_entry_is_none_without_mountinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "MOUNTINFO_PATH", tmp_path / "missing")
    assert fsutil.mount_entry(tmp_path) is None
    assert fsutil.filesystem_of(tmp_path) == ("unknown", "")


def _device_sectors_written(device: str) -> int:
    with open("/proc/diskstats") as handle:
        for line in handle:
            fields = line.split()
            if fields[2] == device:
                return int(fields[9])
    raise LookupError(device)


def test_syncfs_writes_back_the_file_system_of_a_path(tmp_path):
    from imgbench.system import machine

    assert fsutil.syncfs(tmp_path) is None  # a directory
    size = 4 * 1024 * 1024
    (tmp_path / "dirty.bin").write_bytes(os.urandom(size))
    device = machine.block_device(tmp_path)
    if device is None:
        fsutil.syncfs(tmp_path / "dirty.bin")  # a file
        unavailable("tmp_path has no block device whose writes could be counted")
    before = _device_sectors_written(device)
    fsutil.syncfs(tmp_path / "dirty.bin")  # a file
    # The dirty pages went to the disk (other writers can only add to the count).
    assert (_device_sectors_written(device) - before) * 512 >= size


def test_syncfs_of_a_missing_path_raises_oserror(tmp_path):
    with pytest.raises(OSError) as caught:
        fsutil.syncfs(tmp_path / "missing")
    assert caught.value.errno == errno.ENOENT


def test_syncfs_falls_back_to_sync_without_libc_syncfs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fsutil, "load_libc", lambda: object())
    monkeypatch.setattr(fsutil.os, "sync", lambda: calls.append("sync"))
    fsutil.syncfs(tmp_path)
    assert calls == ["sync"]


def test_flush_runs_every_strategy_on_a_store(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    files = make_tree(store)
    contents = {path: path.read_bytes() for path in files}
    for strategy in fsutil.FLUSH_STRATEGIES:
        assert fsutil.flush(store, strategy) is None
    assert {path: path.read_bytes() for path in files} == contents


def test_flush_dispatches_on_the_strategy(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fsutil, "fsync_tree", lambda path: calls.append(("per_file", path)))
    monkeypatch.setattr(fsutil, "syncfs", lambda path: calls.append(("syncfs", path)))
    for strategy in fsutil.FLUSH_STRATEGIES:
        fsutil.flush(tmp_path, strategy)
    assert calls == [("per_file", tmp_path), ("syncfs", tmp_path)]


def test_flush_rejects_an_unknown_strategy(tmp_path):
    with pytest.raises(ValueError, match="per_file"):
        fsutil.flush(tmp_path, "fsync")


def _require_root_unless_ci():
    """On CI (CI=true) the test must run, so a non-root runner fails instead of skipping."""
    if os.geteuid() != 0:
        unavailable("dropping the kernel's caches needs root")


def test_drop_caches_evicts_a_file_just_written_and_read(tmp_path):
    _require_root_unless_ci()
    store = tmp_path / "store"
    store.mkdir()
    (store / "data.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    fsutil.fsync_tree(store)
    (store / "data.bin").read_bytes()
    assert pagecache.cached_fraction(store) > 0.9
    assert fsutil.can_drop_caches()

    fsutil.drop_caches()

    resident, total = pagecache.resident_pages(store / "data.bin")
    assert resident < total
    assert pagecache.cached_fraction(store) < 0.05


def test_drop_caches_without_the_file_names_cold_and_fadvise(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "drop_caches"
    monkeypatch.setattr(fsutil, "DROP_CACHES_PATH", missing)
    assert not fsutil.can_drop_caches()
    with pytest.raises(fsutil.DropCachesError) as caught:
        fsutil.drop_caches()
    message = str(caught.value)
    assert isinstance(caught.value, PermissionError)
    assert message.startswith("cold:") and "fadvise" in message and str(missing) in message
    assert "\n" not in message
    assert caught.value.__cause__.errno == errno.ENOENT

    # The file is opened without O_CREAT: a writable directory gains nothing.
    missing.parent.mkdir()
    with pytest.raises(fsutil.DropCachesError):
        fsutil.drop_caches()
    assert not missing.exists()


def test_drop_caches_when_not_root_says_to_run_as_root_or_use_fadvise(tmp_path, monkeypatch):
    target = tmp_path / "drop_caches"
    target.write_text("")
    monkeypatch.setattr(fsutil, "DROP_CACHES_PATH", target)
    real_open = os.open

    def denied(path, flags, *args):
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(fsutil.os, "open", denied)
    with pytest.raises(fsutil.DropCachesError) as caught:
        fsutil.drop_caches()
    message = str(caught.value)
    assert "root" in message and "cold: fadvise" in message and "Permission denied" in message
    assert target.read_text() == ""


def test_drop_caches_on_a_read_only_file_system_names_the_problem(tmp_path, monkeypatch):
    target = tmp_path / "drop_caches"
    monkeypatch.setattr(fsutil, "DROP_CACHES_PATH", target)
    real_open = os.open

    def read_only(path, flags, *args):
        if Path(path) == target:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(fsutil.os, "open", read_only)
    with pytest.raises(fsutil.DropCachesError, match="read-only.*cold: fadvise"):
        fsutil.drop_caches()


def test_can_drop_caches_checks_write_access(tmp_path, monkeypatch):
    target = tmp_path / "drop_caches"
    target.write_text("")
    monkeypatch.setattr(fsutil, "DROP_CACHES_PATH", target)
    assert fsutil.can_drop_caches()
    monkeypatch.setattr(fsutil, "DROP_CACHES_PATH", tmp_path / "missing")
    assert not fsutil.can_drop_caches()


def test_memory_available_bytes_parses_meminfo(tmp_path, monkeypatch):
    assert fsutil.memory_available_bytes() > 0
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  2000 kB\nMemFree:  100 kB\nMemAvailable:  1234 kB\n")
    monkeypatch.setattr(fsutil, "MEMINFO_PATH", meminfo)
    assert fsutil.memory_available_bytes() == 1234 * 1024
    meminfo.write_text("MemTotal:  2000 kB\n")  # kernels before 3.14
    assert fsutil.memory_available_bytes() is None
    monkeypatch.setattr(fsutil, "MEMINFO_PATH", tmp_path / "missing")
    assert fsutil.memory_available_bytes() is None


def _peak_resident_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise LookupError("VmHWM")


def test_prefault_touches_the_requested_bytes():
    page = mmap.PAGESIZE
    try:
        peak = _peak_resident_bytes()
    except (OSError, LookupError):
        unavailable("no /proc/self/status VmHWM to see the touched pages")
    # More than this process ever held, so the new peak can only come from prefault.
    request = -(-(peak + 64 * 1024 * 1024) // page) * page
    available = fsutil.memory_available_bytes()
    if available is not None and request > available // 2:
        unavailable("not enough free memory for the test")
    assert fsutil.prefault(request) == request
    assert _peak_resident_bytes() >= request


def test_prefault_rounds_to_pages_and_caps_at_half_the_available_memory(monkeypatch):
    page = mmap.PAGESIZE
    assert fsutil.prefault(0) == 0
    assert fsutil.prefault(-5) == 0
    assert fsutil.prefault(1) == page
    assert fsutil.prefault(3 * page + 1) == 4 * page

    monkeypatch.setattr(fsutil, "memory_available_bytes", lambda: 2 * 8 * 1024 * 1024 + 123)
    assert fsutil.prefault(64 * 1024 * 1024) == 8 * 1024 * 1024
    assert fsutil.prefault(page) == page  # below the cap: untouched
    monkeypatch.setattr(fsutil, "memory_available_bytes", lambda: None)
    assert fsutil.prefault(16 * page) == 16 * page


def test_cachestat_and_mincore_count_the_same_resident_pages(tmp_path):
    """Half a file in the page cache: both residency sources report the same pages."""
    path = tmp_path / "half.bin"
    page = os.sysconf("SC_PAGE_SIZE")
    path.write_bytes(os.urandom(64 * page))
    fsutil.fsync_tree(tmp_path)
    pagecache.evict_tree(tmp_path)
    with open(path, "rb") as handle:
        handle.read(16 * page)  # readahead may bring in more; both must see the same
    fd = os.open(path, os.O_RDONLY)
    try:
        by_cachestat = pagecache._cachestat_pages(fd)
        if by_cachestat is None:
            unavailable("this kernel has no cachestat(2) (Linux 6.5+)")
        by_mincore = pagecache._mincore_pages(fd, 64 * page, path)
    finally:
        os.close(fd)
    assert by_cachestat == by_mincore
    assert 16 <= by_cachestat <= 64  # at least what was read
    assert pagecache.resident_pages(path) == (by_cachestat, 64)


def test_residency_walk_opens_files_relative_to_their_directories(tmp_path, monkeypatch):
    """The walk groups files by directory (one descriptor each) and also takes paths
    relative to the working directory; a fill reads an evicted file back."""
    (tmp_path / "sub").mkdir()
    for name in ("a.bin", "b.bin", "sub/c.bin"):
        (tmp_path / name).write_bytes(os.urandom(3 * mmap.PAGESIZE))
    monkeypatch.chdir(tmp_path)
    files = [Path("a.bin"), tmp_path / "sub" / "c.bin", Path("b.bin")]
    assert fsutil.by_directory(files) == [
        (os.curdir, ["a.bin", "b.bin"]),
        (os.fspath(tmp_path / "sub"), ["c.bin"]),
    ]
    eviction = pagecache.evict_tree_measured(tmp_path, files)
    if math.isnan(eviction.cached_fraction):
        unavailable("neither cachestat nor mincore works here")
    assert pagecache.fill_tree_measured(tmp_path, files) == 1.0
    assert pagecache.cached_fraction(tmp_path, files) == 1.0
