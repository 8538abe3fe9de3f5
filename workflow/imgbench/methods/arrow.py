"""Arrow IPC: one ``images.arrow`` file (Feather v2, uncompressed), memory-mapped for reading:
the layout the Hugging Face ``datasets`` cache keeps on disk and memory-maps.

The file is the Arrow IPC *file* format (``pyarrow.ipc.new_file``; ``pyarrow.feather``
and ``pyarrow.ipc.open_file`` read it) with the same two columns as the Parquet store:
``image`` (Arrow ``binary``: each image encoded with ``encoding``, raw pixel bytes by
default, or PNG, JPEG, WebP bytes) and ``label`` (the labels' own integer type). The
schema's key-value metadata ``imgbench`` holds JSON with the count, the image shape and
dtype, the encoding and the labels' dtype. Rows are written in record batches of
``batch_images`` images, 100 by default, the writer batch Hugging Face ``datasets`` uses
for image datasets (the writer holds one batch of encoded images and Arrow's copy of
it; a reader's natural unit of streaming).

Why it is here beside Parquet (docs/read-paths.md): Parquet's unit of reading is a column
chunk of a row group, so one image costs its whole row group, decoded. An IPC file is
the Arrow memory layout itself: memory-mapped, a column is a view of the map and an
image's bytes are found from the offsets buffer without reading anything else. On 2,000
photographs at 256x256, one reader, warm, shuffled batches of 64: 51,723 images/s
against Parquet's 422 (row groups of 1,024 images) to 2,401 (16).

Reading. The reader maps the file with Python's ``mmap`` (so ``readahead=False`` can
advise the map ``MADV_RANDOM``), opens it with ``pyarrow.ipc.open_file`` over a
zero-copy buffer of the map, and copies each requested image's bytes from the map into
the batch (raw) or decodes them (an encoding): one copy, into memory the reader
allocated, never a view of the map. ``Table.take`` is not used: on a table of many
record batches pyarrow concatenates the chunks first (a copy of the whole column per
call: 30 single-image reads/s in the measurement above).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, encoding, indexed_chunks
from imgbench.methods._base import (
    advise_random_map,
    check_lengths,
    opener,
    pillow_codec_versions,
    store_header,
    whole_number,
)
from imgbench.methods._binary import BinaryCells

DESCRIPTION = "Arrow IPC file (memory-mapped, image bytes column)"
PACKAGES = ("pyarrow", "Pillow")
FILE_NAME = "images.arrow"
META_KEY = b"imgbench"
IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
OPTIONS = {**encoding.options("raw"), "batch_images": 100}
CHOICES = {**encoding.CHOICES, "batch_images": whole_number(1, "images")}

# Bounds for disk_bytes: per image its offset (4 bytes) and a label of at most 8 bytes;
# per record batch its message (metadata flatbuffer, buffers padded to 64 bytes); per
# file the schema (twice: stream and footer), the metadata JSON and the magic numbers.
PER_IMAGE_BYTES = 4 + 8
BATCH_BYTES = 4096
FILE_BYTES = 64 << 10


def library_versions() -> dict:
    """The Arrow C++ library under pyarrow and the codec libraries Pillow encodes and
    decodes images with."""
    import pyarrow

    return {"arrow_cpp": pyarrow.cpp_version, **pillow_codec_versions()}


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: each image at its encoding's largest
    size with its offset and label, each record batch's message and padding, the file's
    schema, metadata and footer (the constants above)."""
    batches = -(-n_images // options["batch_images"])
    per_image = encoding.max_encoded_bytes(image_bytes, options) + PER_IMAGE_BYTES
    return blocks(n_images * per_image + batches * BATCH_BYTES + FILE_BYTES)


def _schema(pa, labels_dtype: np.dtype, meta: dict):
    return pa.schema(
        [
            pa.field(IMAGE_COLUMN, pa.binary(), nullable=False),
            pa.field(LABEL_COLUMN, pa.from_numpy_dtype(labels_dtype), nullable=False),
        ],
        metadata={META_KEY: json.dumps(meta).encode()},
    )


def store(store_dir: Path, images, labels: np.ndarray, *, options: dict) -> None:
    import pyarrow as pa

    batch_images = options["batch_images"]
    labels = np.ascontiguousarray(labels)
    check_lengths(images, labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    meta = store_header(images, labels, **encoding.store_fields(options), batch_images=batch_images)
    schema = _schema(pa, labels.dtype, meta)
    label_type = schema.field(LABEL_COLUMN).type
    written = 0
    buffered: list[bytes] = []

    def write_batch(writer) -> None:
        nonlocal written, buffered
        count = len(buffered)
        batch = pa.record_batch(
            [
                pa.array(buffered, type=pa.binary()),
                pa.array(labels[written : written + count], type=label_type),
            ],
            schema=schema,
        )
        buffered = []
        writer.write_batch(batch)
        written += count

    with (
        pa.OSFile(str(store_dir / FILE_NAME), "wb") as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        encode = encoding.encoder(options)
        for _start, chunk in indexed_chunks(images):
            for image in chunk:
                buffered.append(encode(image))
                if len(buffered) == batch_images:
                    write_batch(writer)
        if buffered:
            write_batch(writer)


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    if options["encoding"] == "raw":
        return "each image copied from the memory-mapped file"
    return (
        f"each image's bytes from the memory-mapped file, {options['encoding']} decoded "
        f"with {encoding.codec_name(options)}"
    )


class Reader:
    """The file memory-mapped in this process (after any fork) and opened as an Arrow
    table of views of the map; labels copied out once. ``get`` copies (raw) or decodes
    each requested image into a fresh batch."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        import pyarrow as pa

        path = Path(store_dir) / FILE_NAME
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise ValueError(f"{FILE_NAME} is empty: the store is incomplete")
            self.map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        if not readahead:
            advise_random_map(self.map)
        try:
            table = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(self.map))).read_all()
            raw_meta = (table.schema.metadata or {}).get(META_KEY)
            if raw_meta is None:
                raise ValueError(f"{FILE_NAME} has no {META_KEY.decode()} metadata")
            self.meta = json.loads(raw_meta)
            if table.num_rows != self.meta["count"]:
                raise ValueError(
                    f"{FILE_NAME} holds {table.num_rows} rows, its metadata says "
                    f"{self.meta['count']} images"
                )
            self.cells = BinaryCells(table.column(IMAGE_COLUMN))
            self.labels = np.array(
                table.column(LABEL_COLUMN).to_numpy(), dtype=self.meta["labels_dtype"], copy=True
            )
            self.batch_starts = [0]
            for batch in table.column(IMAGE_COLUMN).chunks:
                self.batch_starts.append(self.batch_starts[-1] + len(batch))
            del table
        except BaseException:
            self.close()
            raise
        self.shape = tuple(self.meta["shape"])
        self.dtype = np.dtype(self.meta["dtype"])
        self.encoding = self.meta["encoding"]
        self.codec = self.meta.get("codec")
        self.image_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.count = self.meta["count"]

    def fill(self, images: np.ndarray, rows) -> None:
        """Copy (raw) or decode the images of ``rows`` into ``images``, in order."""
        if self.encoding == "raw":
            flat = memoryview(images).cast("B")
            size = self.image_bytes
            for position, row in enumerate(rows):
                value = self.cells[row]
                if len(value) != size:
                    raise ValueError(f"image {row} holds {len(value)} bytes, not {size}")
                flat[position * size : (position + 1) * size] = value
        else:
            for position, row in enumerate(rows):
                images[position] = encoding.decode(
                    self.cells[row], self.encoding, self.shape, self.codec
                )

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        outside = indices[(indices < 0) | (indices >= self.count)]
        if len(outside):
            raise IndexError(f"the Arrow store has no image {int(outside[0])} ({self.count})")
        images = np.empty((len(indices), *self.shape), dtype=self.dtype)
        self.fill(images, indices.tolist())
        return images, self.labels[indices]

    def close(self) -> None:
        self.cells = None
        try:
            self.map.close()
        except BufferError:  # a view of the map is still referenced: the GC unmaps it
            pass
        except AttributeError:  # failed before the map was made
            pass


open_reader = opener(Reader)


def read_units(store_dir: Path) -> list[tuple[int, int]]:
    """The store's natural unit of a streaming read: its record batches."""
    reader = Reader(store_dir)
    try:
        starts = reader.batch_starts
    finally:
        reader.close()
    return list(zip(starts[:-1], starts[1:], strict=True))


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back in batches of ``batch_images``, each a fresh array."""
    reader = Reader(store_dir)
    try:
        for start, stop in batch_bounds(reader.count, batch_images):
            images = np.empty((stop - start, *reader.shape), dtype=reader.dtype)
            reader.fill(images, range(start, stop))
            yield images, reader.labels[start:stop].copy()
    finally:
        reader.close()


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole store into one array, image by image from the map."""
    reader = Reader(store_dir)
    try:
        images = np.empty((reader.count, *reader.shape), dtype=reader.dtype)
        reader.fill(images, range(reader.count))
        return images, reader.labels.copy()
    finally:
        reader.close()
