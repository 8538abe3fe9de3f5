"""Baseline: the raw pixel array in one ``.npy`` file (the physical limit of plain bytes).

``store`` writes the header ``np.save`` would write, then the pixels chunk by chunk, so
the file is byte for byte ``np.save``'s without an N-sized array in memory.
``read_batches`` parses the header and reads each batch with plain ``readinto`` calls
into a fresh array (no memory map), so only one batch is resident.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, indexed_chunks
from imgbench.methods._base import advise_random_map, check_lengths, opener

DESCRIPTION = "raw .npy array (baseline)"
OPTIONS: dict = {}
PACKAGES: tuple = ()  # numpy only, which every job has


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: two .npy files (128-byte headers)."""
    return blocks(128 + n_images * image_bytes) + blocks(128 + n_images)


def write_header(handle, shape: tuple[int, ...], dtype) -> None:
    """The header ``np.save`` writes for a C-ordered array of ``shape`` and ``dtype``
    (version 1.0, or 2.0 when the header does not fit 1.0, as ``np.save`` does)."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    try:
        np.lib.format.write_array_header_1_0(handle, header)
    except ValueError:
        np.lib.format.write_array_header_2_0(handle, header)


def read_header(handle) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the C-ordered ``.npy`` array whose file ``handle`` is at its
    start; leaves ``handle`` at the first data byte."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    if fortran_order:
        raise ValueError("images.npy is in Fortran order; the store writes C order")
    if dtype.hasobject:
        raise ValueError("images.npy holds Python objects, not pixels")
    return shape, dtype


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    check_lengths(images, labels)
    with open(store_dir / "images.npy", "wb") as handle:
        write_header(handle, images.shape, images.dtype)
        for _start, chunk in indexed_chunks(images):
            if chunk.size:
                handle.write(memoryview(chunk).cast("B"))
    np.save(store_dir / "labels.npy", labels, allow_pickle=False)


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images = np.load(store_dir / "images.npy", allow_pickle=False)
    labels = np.load(store_dir / "labels.npy", allow_pickle=False)
    return images, labels


def _read_exactly(handle, out: np.ndarray) -> None:
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        got = handle.readinto(view[done:])
        if not got:
            raise ValueError(f"images.npy ends {len(view) - done} bytes early")
        done += got


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back: each batch read from the file into a fresh array."""
    labels = np.load(Path(store_dir) / "labels.npy", allow_pickle=False)
    with open(Path(store_dir) / "images.npy", "rb", buffering=0) as handle:
        shape, dtype = read_header(handle)
        count = shape[0] if shape else 0
        if count != len(labels):
            raise ValueError(f"images.npy holds {count} images but labels.npy {len(labels)}")
        for start, stop in batch_bounds(count, batch_images):
            out = np.empty((stop - start, *shape[1:]), dtype=dtype)
            if out.size:
                _read_exactly(handle, out)
            yield out, labels[start:stop].copy()


class Reader:
    """Memory-maps the array; a gather copies only the requested images. Without
    readahead the map is advised ``MADV_RANDOM`` (a fault reads its own page only)."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.images = np.load(Path(store_dir) / "images.npy", mmap_mode="r")
        self.labels = np.load(Path(store_dir) / "labels.npy")
        if not readahead and self.images.size:
            advise_random_map(self.images._mmap)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        return np.array(self.images[indices]), self.labels[indices]

    def close(self) -> None:
        self.images = None


open_reader = opener(Reader)
