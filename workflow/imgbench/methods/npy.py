"""Baseline: the raw pixel array in one ``.npy`` file (the physical limit of plain bytes).

``store`` writes the header ``np.save`` would write, then the pixels chunk by chunk, so
the file is byte for byte ``np.save``'s without an N-sized array in memory.
``read_batches`` parses the header and reads each batch with plain ``readinto`` calls
into a fresh array (no memory map), so only one batch is resident.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, indexed_chunks
from imgbench.methods._base import advise_random, advise_random_map, check_lengths, opener

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


# Images of at least this many bytes are read with one ``pread`` each in every request;
# smaller ones are gathered from the memory map when a request holds several. Measured
# with docs/read-paths/probe.py, one reader, shuffled batches of 64, images/s: at 256x256
# (192 KiB) warm, pread 40,434 against the map's 21,779, cold no clear difference; at
# 128x128 (48 KiB) warm no clear difference, cold the map faster (its read-around brings
# in neighbours the same epoch reads later); at 32x32 the map 2.3x faster warm and 5.4x
# cold. A single image is read with ``pread`` at every size: in the default run (32x32,
# 100,000 images) 220,212 single images/s warm against the map's 171,818, and cold with
# readahead on 14,205 against 4,478 (the map's readahead fetched the whole store).
PREAD_MIN_IMAGE_BYTES = 128 << 10


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    return (
        f"pread of each image for single images and images of {PREAD_MIN_IMAGE_BYTES >> 10} "
        "KiB or more, else a gather from the memory map"
    )


class Reader:
    """Two ways into ``images.npy``, both opened here: a memory map (``np.load`` with
    ``mmap_mode``) for gathers of small images, and a file descriptor for ``os.preadv``
    of each image straight into the batch (a single image, or images of at least
    ``PREAD_MIN_IMAGE_BYTES``), in file order. A gather from the map page-faults each
    image's pages in (the kernel maps up to 16 pages around a fault and reads a window
    around a missing page); ``pread`` costs one system call per image and copies it
    once. Without readahead the map is advised ``MADV_RANDOM`` and the descriptor
    ``POSIX_FADV_RANDOM`` (a read fetches its own pages only)."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        path = Path(store_dir) / "images.npy"
        self.images = np.load(path, mmap_mode="r")
        self.labels = np.load(Path(store_dir) / "labels.npy")
        self.image_bytes = int(self.images[0].nbytes) if len(self.images) else 0
        self.data_offset = int(self.images.offset)
        self.fd = os.open(path, os.O_RDONLY)
        if not readahead:
            advise_random(self.fd)
            if self.images.size:
                advise_random_map(self.images._mmap)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        if len(indices) == 1:  # the lean path of a single image: one pread
            return self._one(int(indices[0]))[None], self.labels[indices]
        if self.image_bytes < PREAD_MIN_IMAGE_BYTES:
            return np.array(self.images[indices]), self.labels[indices]
        count = len(self.images)
        if len(indices) and (indices.min() < -count or indices.max() >= count):
            raise IndexError(f"indices out of range for {count} images")
        images = np.empty((len(indices), *self.images.shape[1:]), dtype=self.images.dtype)
        rows = images.reshape(len(indices), -1).view(np.uint8)
        for position in np.argsort(indices, kind="stable").tolist():
            index = int(indices[position]) % count
            offset = self.data_offset + index * self.image_bytes
            if os.preadv(self.fd, [rows[position]], offset) != self.image_bytes:
                raise ValueError(f"images.npy ends inside image {index}")
        return images, self.labels[indices]

    def _one(self, index: int) -> np.ndarray:
        count = len(self.images)
        if not -count <= index < count:
            raise IndexError(f"indices out of range for {count} images")
        index %= count
        image = np.empty(self.images.shape[1:], dtype=self.images.dtype)
        if os.preadv(self.fd, [image], self.data_offset + index * self.image_bytes) != image.nbytes:
            raise ValueError(f"images.npy ends inside image {index}")
        return image

    def close(self) -> None:
        self.images = None
        os.close(self.fd)


open_reader = opener(Reader)
