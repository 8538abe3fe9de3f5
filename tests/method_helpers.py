"""What the method tests share (not a test module; ``tests/`` is on the pythonpath): data
sets, storing into a fresh directory, reading back through each path, comparing, and
recording the random-access advice a reader gives."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from ci import unavailable
from skimage import data as photos

from imgbench import methods
from imgbench.methods import get_method

MIB = 1 << 20
# The environment a store or read row records, for tests that call the harness.
ENV = {"host": "testhost", "store_fs_type": "testfs"}


def random_set(count: int, height: int = 32, width: int | None = None, seed: int = 0):
    """Noise images (incompressible: every encoding's and codec's worst case) and labels
    0-9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, height, width or height, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    return images, labels


# The scikit-image colour photographs (shipped with it, no download) the crops come from,
# in the order crops cycle through them.
PHOTOGRAPHS = ("astronaut", "chelsea", "coffee")


def photo_crops(count: int, size: int, rng, *, to_edges: bool = False) -> np.ndarray:
    """``count`` crops (count, size, size, 3) uint8 of the ``PHOTOGRAPHS`` in turn, each at
    a place drawn from the numpy Generator ``rng`` (its top, then its left): images with
    the structure real ones have, not noise. ``to_edges``: a crop may also touch the
    photograph's bottom or right edge (the places' range is one wider)."""
    sources = [getattr(photos, name)() for name in PHOTOGRAPHS]
    reach = 1 if to_edges else 0
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    for index in range(count):
        photo = sources[index % len(sources)]
        top = rng.integers(0, photo.shape[0] - size + reach)
        left = rng.integers(0, photo.shape[1] - size + reach)
        images[index] = photo[top : top + size, left : left + size, :3]
    return images


def photo_set(count: int, size: int = 32, seed: int = 0, label_values: int = 256):
    """``photo_crops`` (reaching the edges) from generator ``seed``, and labels below
    ``label_values`` drawn from it after them."""
    rng = np.random.default_rng(seed)
    images = photo_crops(count, size, rng, to_edges=True)
    labels = rng.integers(0, label_values, size=count).astype(np.uint8)
    return images, labels


def store_fresh(method: str, store_dir: Path, images, labels, options=None) -> Path:
    """A new store of ``method`` with a variant's ``options`` (None: the defaults) in the
    new directory ``store_dir``."""
    store_dir.mkdir(parents=True)
    methods.store(method, store_dir, images, labels, options)
    return store_dir


def assert_same(got, images, labels) -> None:
    """``got`` (images, labels) equals ``images`` and ``labels``: dtypes, shapes, values."""
    got_images, got_labels = got
    assert got_images.dtype == images.dtype == np.uint8
    assert got_images.shape == images.shape
    np.testing.assert_array_equal(got_images, images)
    assert got_labels.dtype == labels.dtype
    assert got_labels.shape == labels.shape
    np.testing.assert_array_equal(got_labels, labels)


def reader_get(method: str, store_dir: Path, indices, *, readahead=True):
    """``reader.get(indices)`` of a reader opened and closed for it."""
    reader = get_method(method).open_reader(store_dir, readahead=readahead)
    try:
        return reader.get(indices)
    finally:
        reader.close()


def epoch(method: str, store_dir: Path, batch_images: int) -> list:
    """The batches of one ``read_batches`` epoch."""
    return list(get_method(method).read_batches(store_dir, batch_images))


def joined(batches: list, like: np.ndarray):
    """The images and labels of ``batches`` in one array each (empty like ``like``)."""
    if not batches:
        return np.empty((0, *like.shape[1:]), np.uint8), np.empty(0, np.uint8)
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def record_fadvise(monkeypatch) -> list[tuple[str, int, int]]:
    """Every ``os.posix_fadvise`` from now on, as ``(path, fd, advice)``, still done."""
    advised = []
    real_fadvise = os.posix_fadvise

    def recording_fadvise(fd, offset, length, advice):
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), fd, advice))
        return real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording_fadvise)
    return advised


def advised_random(advised: list[tuple[str, int, int]]) -> list[str]:
    """The paths of ``record_fadvise``'s list advised ``POSIX_FADV_RANDOM``, in order."""
    return [path for path, _fd, advice in advised if advice == os.POSIX_FADV_RANDOM]


def mapping_flags(path: Path) -> list[list[str]]:
    """VmFlags of every mapping of ``path`` in this process (``rr``: MADV_RANDOM)."""
    target = str(Path(path).resolve())
    flags, inside = [], False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
            inside = len(fields) >= 6 and " ".join(fields[5:]) == target
        elif inside and line.startswith("VmFlags:"):
            flags.append(fields[1:])
    return flags


def open_files_under(directory: Path) -> list[str]:
    """The files under ``directory`` this process holds open."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory.resolve())):
            found.append(target)
    return found


def assert_packages(module, packages: tuple, libraries: list[str]) -> None:
    """``module`` declares ``packages`` and its ``library_versions()`` names exactly
    ``libraries``, each with a version of dotted numbers."""
    assert packages == module.PACKAGES
    versions = module.library_versions()
    assert list(versions) == libraries
    assert all(re.fullmatch(r"\d+(\.\d+)+", v) for v in versions.values()), versions


def mapped_get(method: str, store_dir: Path, file_name: str, indices, *, readahead: bool):
    """``reader.get(indices)`` and the VmFlags of the reader's maps of ``file_name`` while
    it is open (``rr``: advised ``MADV_RANDOM``)."""
    if not Path("/proc/self/smaps").exists():
        unavailable("no /proc/self/smaps (not Linux)")
    reader = get_method(method).open_reader(store_dir, readahead=readahead)
    try:
        got = reader.get(indices)
        flags = mapping_flags(store_dir / file_name)
    finally:
        reader.close()
    assert flags, f"{file_name} is not mapped by the reader"
    return got, flags


def advised_get(method: str, store_dir: Path, indices, monkeypatch, *, readahead: bool):
    """``reader.get(indices)`` of a reader opened for it, and the names of the files it
    advised ``POSIX_FADV_RANDOM`` meanwhile, one per advice."""
    advised = record_fadvise(monkeypatch)
    got = reader_get(method, store_dir, indices, readahead=readahead)
    return got, [Path(name).name for name in advised_random(advised)]


def request_orders(count: int) -> list:
    """Requests of a reader in every order, for a store of ``count`` (at least 37) images:
    repeats, descending, a single image, everything backwards, a permutation."""
    return [
        [30, 2, 2, 17, 0, 36, 2],
        np.array([36, 35, 34, 0], dtype=np.int64),
        [5],
        list(range(count))[::-1],
        np.random.default_rng(0).permutation(count),
    ]
