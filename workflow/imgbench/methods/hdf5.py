"""HDF5: one file with an ``images`` and a ``labels`` dataset, read as whole arrays.

Options: ``chunks`` (``none``: contiguous, the fastest layout for whole-array reads and
the article's; ``image``: one chunk per image, for random access and compression) and
``compression`` (``none``, ``gzip``, ``lzf``; compression needs chunks, so it implies
per-image chunks) with ``compression_opts`` (gzip level), and ``read_path`` (how the
random-access reader reads a batch: ``hyperslabs``, one read per image, the default, or
``selection``, h5py's fancy selection of the whole batch; see ``Reader``), recorded on
the ``images`` dataset.

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
# The attribute of the ``images`` dataset naming the reader's path (``read_path``); a
# store written before it existed is read as it was then (``selection``).
READ_PATH_ATTRIBUTE = "imgbench_read_path"
OPTIONS = {
    "chunks": "none",
    "compression": "none",
    "compression_opts": None,
    "read_path": "hyperslabs",
}
CHOICES = {
    "chunks": ("none", "image"),
    "read_path": ("hyperslabs", "selection"),
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
        images_ds.attrs[READ_PATH_ATTRIBUTE] = options["read_path"]
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


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    if options["read_path"] == "selection":
        return "h5py fancy selection of the batch (images[sorted indices])"
    if options["chunks"] == "image" and options["compression"] == "none":
        return "read_direct_chunk of each image's chunk"
    return "one H5Dread of a one-image hyperslab per image"


class Reader:
    """h5py opened in this process (after any fork); labels read once. Without readahead
    the file descriptor of HDF5's own (sec2) driver is advised ``POSIX_FADV_RANDOM``.

    A single image is ``images[i]`` on either path: h5py reads a plain index through its
    compiled fast reader (``h5py._selector``) into a new array, which beat the hyperslab
    read below in the harness (256x256, warm: 32,681 against 18,915 single images/s).
    A batch follows the store's ``read_path`` (recorded on the ``images`` dataset):

    ``hyperslabs`` (the default)
        one ``H5Dread`` per image, in file order, of a one-image hyperslab into its row of
        the batch (h5py's low-level ``DatasetID.read`` with one reused file and memory
        space), through HDF5's filters when the chunks have any; a dataset of unfiltered
        one-image chunks is read with ``read_direct_chunk`` instead, each chunk's bytes
        straight into its row (the chunk is the image, nothing to undo).
    ``selection``
        what h5py's documentation shows: one fancy selection of the batch's sorted, unique
        indices (``images[unique]``), then the requested order restored. HDF5 reads a
        selection of many pieces slowly: on 2,000 photographs at 256x256, shuffled
        batches of 64, warm, 1,173 images/s against 30,220 per image (docs/read-paths.md).
    """

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        import h5py

        self.handle = h5py.File(Path(store_dir) / FILE_NAME, "r")
        if not readahead:
            advise_random(self.handle.id.get_vfd_handle())
        self.images = self.handle["images"]
        self.labels = self.handle["labels"][()]
        self.read_path = str(self.images.attrs.get(READ_PATH_ATTRIBUTE, "selection"))
        shape = self.images.shape
        self.count = shape[0]
        self.image_shape = (1, *shape[1:])
        self.origin = (0,) * (len(shape) - 1)
        self.file_space = self.images.id.get_space()
        self.memory_space = h5py.h5s.create_simple(self.image_shape)
        plist = self.images.id.get_create_plist()
        self.direct_chunks = self.images.chunks == self.image_shape and plist.get_nfilters() == 0

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        if len(indices) == 1:  # h5py's own fast path of a plain index (it checks the range)
            return self.images[int(indices[0])][None], self.labels[indices]
        indices = indices.astype(np.int64, copy=False).reshape(-1)
        if len(indices) and (indices.min() < -self.count or indices.max() >= self.count):
            raise IndexError(f"indices out of range for {self.count} images")
        indices = np.where(indices < 0, indices + self.count, indices)
        if self.read_path == "selection":
            return self._selection(indices), self.labels[indices]
        images = np.empty((len(indices), *self.image_shape[1:]), dtype=self.images.dtype)
        dataset = self.images.id
        for position in np.argsort(indices, kind="stable").tolist():
            start = (int(indices[position]), *self.origin)
            if self.direct_chunks:
                dataset.read_direct_chunk(start, out=images[position].reshape(-1))
            else:
                self.file_space.select_hyperslab(start, self.image_shape)
                dataset.read(self.memory_space, self.file_space, images[position : position + 1])
        return images, self.labels[indices]

    def _selection(self, indices: np.ndarray) -> np.ndarray:
        # h5py point selections must be increasing: read sorted, then restore the order.
        order = np.argsort(indices, kind="stable")
        unique, inverse = np.unique(indices[order], return_inverse=True)
        block = self.images[unique]
        gathered = np.empty((len(indices), *block.shape[1:]), dtype=block.dtype)
        gathered[order] = block[inverse]
        return gathered

    def close(self) -> None:
        self.handle.close()


open_reader = opener(Reader)
