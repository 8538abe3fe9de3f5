"""fsutil: disk usage like du, file listing, fsync, page-cache eviction and residency."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imgbench import fsutil


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
        pytest.skip("this file system stores tiny files inline (no data block allocated)")
    # Allocation is in whole blocks of 512-byte sectors, never the file's 1 byte.
    assert usage.bytes_on_disk % 512 == 0
    assert usage.bytes_on_disk > usage.bytes_apparent


@pytest.mark.skipif(shutil.which("du") is None, reason="du is not installed")
def test_disk_usage_agrees_with_du_per_file(tmp_path):
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
        pytest.skip("this file system does not support sparse files")
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
    assert fsutil.resident_pages(tmp_path / "empty") == (0, 0)
    assert fsutil.cached_fraction(tmp_path) == 0.0


def test_eviction_drops_the_store_from_the_page_cache(tmp_path):
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    size = 4 * 1024 * 1024
    (store / "big.bin").write_bytes(os.urandom(size))
    (store / "sub" / "small.bin").write_bytes(os.urandom(20000))
    fsutil.fsync_tree(store)
    for path in fsutil.store_files(store):
        path.read_bytes()  # now in the page cache

    before = fsutil.cached_fraction(store)
    if math.isnan(before):
        pytest.skip("this platform cannot report page-cache residency (no mincore)")
    resident, total = fsutil.resident_pages(store / "big.bin")
    assert total == -(-size // os.sysconf("SC_PAGE_SIZE"))
    assert resident <= total
    assert before > 0.9

    fsutil.evict_tree(store)
    after = fsutil.cached_fraction(store)
    assert after < 0.05
    # Eviction drops pages, not data.
    assert (store / "big.bin").stat().st_size == size

    (store / "big.bin").read_bytes()
    assert fsutil.cached_fraction(store) > after


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
