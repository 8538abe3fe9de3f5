"""HDF5: one file with an ``images`` and a ``labels`` dataset, read as whole arrays.

Options: ``chunks`` (``none``: contiguous, the fastest layout for whole-array reads and
the article's; ``image``: one chunk per image, for random access and compression) and
``compression`` (``none``, ``gzip``, ``lzf``; compression needs chunks, so it implies
per-image chunks) with ``compression_opts`` (gzip level).

``store`` creates the ``images`` dataset from the stream's shape and writes it chunk by
chunk; ``read_batches`` reads each batch with ``read_direct`` into a fresh array.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, indexed_chunks
from imgbench.methods._base import advise_random, check_lengths, opener

DESCRIPTION = "HDF5 (one file, images + labels datasets)"
PACKAGES = ("h5py",)
FILE_NAME = "images.h5"
OPTIONS = {"chunks": "none", "compression": "none", "compression_opts": None}
CHOICES = {
    "chunks": ("none", "image"),
    "compression": ("none", "gzip", "lzf"),
    "compression_opts": (None, *range(10)),
}


def library_versions() -> dict:
    import h5py

    return {"hdf5_c": h5py.version.hdf5_version}


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: the pixels and labels uncompressed (a
    filter that fails to compress leaves chunks as they are), plus 1 MiB of metadata and
    chunk index."""
    return blocks(n_images * (image_bytes + 1) + (1 << 20))


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    import h5py

    check_lengths(images, labels)
    layout = {}
    if options["chunks"] == "image" or options["compression"] != "none":
        layout["chunks"] = (1, *images.shape[1:])
    if options["compression"] != "none":
        layout["compression"] = options["compression"]
        if options["compression_opts"] is not None:
            layout["compression_opts"] = options["compression_opts"]
    # Native uint8 (the article's STD_U8BE is the same bytes for one-byte integers).
    # HDF5 has no fsync of its own (H5Fflush stops at the OS); the harness flushes.
    with h5py.File(store_dir / FILE_NAME, "w", libver="latest") as handle:
        images_ds = handle.create_dataset(
            "images", shape=tuple(images.shape), dtype=images.dtype, **layout
        )
        for start, chunk in indexed_chunks(images):
            if chunk.size:
                images_ds.write_direct(chunk, dest_sel=np.s_[start : start + len(chunk)])
        handle.create_dataset("labels", data=labels)


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(store_dir / FILE_NAME, "r") as handle:
        images_ds = handle["images"]
        images = np.empty(images_ds.shape, dtype=images_ds.dtype)
        if images.size:
            images_ds.read_direct(images)
        labels = handle["labels"][()]
    return images, labels


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back: ``read_direct`` of each batch into a fresh array."""
    import h5py

    with h5py.File(Path(store_dir) / FILE_NAME, "r") as handle:
        images_ds = handle["images"]
        labels = handle["labels"][()]
        for start, stop in batch_bounds(images_ds.shape[0], batch_images):
            out = np.empty((stop - start, *images_ds.shape[1:]), dtype=images_ds.dtype)
            if out.size:
                images_ds.read_direct(out, source_sel=np.s_[start:stop])
            yield out, labels[start:stop].copy()


class Reader:
    """h5py opened in this process (after any fork); labels read once. Without readahead
    the file descriptor of HDF5's own (sec2) driver is advised ``POSIX_FADV_RANDOM``."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        import h5py

        self.handle = h5py.File(Path(store_dir) / FILE_NAME, "r")
        if not readahead:
            advise_random(self.handle.id.get_vfd_handle())
        self.images = self.handle["images"]
        self.labels = self.handle["labels"][()]

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        if len(indices) == 1:
            return self.images[int(indices[0])][None], self.labels[indices]
        # h5py point selections must be increasing: read sorted, then restore the order.
        order = np.argsort(indices, kind="stable")
        sorted_indices = indices[order]
        unique, inverse = np.unique(sorted_indices, return_inverse=True)
        block = self.images[unique]
        gathered = np.empty((len(indices), *block.shape[1:]), dtype=block.dtype)
        gathered[order] = block[inverse]
        return gathered, self.labels[indices]

    def close(self) -> None:
        self.handle.close()


open_reader = opener(Reader)
