"""Parquet: one ``images.parquet`` file, the Hugging Face datasets layout (a column of
encoded image bytes beside a label column), written and read with pyarrow.

The file has two non-null columns, ``image`` (Arrow ``binary``, Parquet ``BYTE_ARRAY``:
each image encoded with ``encoding``, PNG by default; with ``raw`` its pixel bytes) and
``label`` (the labels' own integer type, uint8 in this benchmark, which Parquet keeps as
INT32 annotated UINT_8; Hugging Face's ``ClassLabel`` uses int64, a reader's cast costs
nothing). The schema's key-value metadata ``imgbench`` holds JSON with the count, the
image shape and dtype, the encoding and the labels' dtype, so ``pyarrow.parquet.read_table``
or any Parquet reader loads the file as an ordinary table and this module's readers need
no options.

Row groups. pyarrow splits each ``write_table`` call into row groups of at most
``row_group_size`` rows, but never merges one call's rows with the next call's: chunks of
the image stream written as they come would make row groups that follow the chunking
(chunks of 7 with groups of 5 make groups of 5, 2, 5, 2, ...). So ``store`` encodes image
by image into a buffer and writes one row group whenever it holds ``row_group_images``
images (and the rest at the end): every row group has exactly ``row_group_images`` rows
but the last, whatever the stream's chunks, and at most one row group of encoded bytes
is held (plus Arrow's copy of it while it is written).

Column options (measured on crops of scikit-image photos, pyarrow 26):

- no dictionary encoding for ``image``: pyarrow's default tries a dictionary on every
  column, hashing every blob until the dictionary page outgrows its 1 MiB limit and falls
  back to plain; on 4,096 unique 64x64 PNGs that made the write 10x slower (509 vs 50
  ms). Worse, on a benchmark stream that tiles a small pool (``pool.TiledImages``) the
  dictionary collapses the repeats: 20,000 raw 32x32 images tiled from 100 stored in 6.4
  instead of 61 MB, a size no real data set would have. ``label`` keeps its dictionary
  (a few distinct values: 4 bits a row instead of plain INT32's 4 bytes).
- statistics for ``label`` only: min/max of ``image`` are blobs copied into every page
  header and every row group's footer entry when they fit pyarrow's 4 KiB statistics
  limit, i.e. for images of up to 4 KiB (CIFAR's 3,072 raw bytes): 20,000 raw 32x32
  images had a 127 KB footer with them and 3.5 KB without, and 250 KB more page headers.
  Min/max of image bytes filter nothing.

Options: the encoding's (``encoding`` ``raw | png | jpeg | webp``, ``quality``,
``lossless``, ``compress_level``; see ``imgbench.methods.encoding``), ``row_group_images`` (the
images per row group, a whole number of at least 1; 100 by default) and ``compression``
(``none | snappy | zstd``, pyarrow's codecs at their default levels, applied per page on
top of the image encoding).

Random access costs a row group: Parquet's unit of reading is a column chunk, so
``Reader.get`` reads the whole ``image`` chunk of every row group holding a requested
image (``row_group_images`` images' bytes for a single image) and keeps the last one read,
so a minibatch of neighbours reads its row group once. That is the format's real price of
a random single-image read, and what the benchmark shows for it.

The default of 100 images per row group is Hugging Face ``datasets``' row group for image
datasets (``PARQUET_ROW_GROUP_SIZE_FOR_IMAGE_DATASETS``), chosen by measurement over
pyarrow's own default (row groups of up to 1 Mi rows) and the 1,024 used before
(docs/read-paths.md): on 2,000 photographs at 256x256, one reader, a random single image
read 14 images/s warm with 1,024 per group, 240 with 100 and 1,513 with 16; the whole
read of 20,000 CIFAR images (32x32) took 21.4 ms with 1,024, 52.7 with 100 and 201 with
16 (pyarrow's cost per row group read). 100 keeps a single image below 20 MB at 256x256
and the whole read of small images within 3x the largest groups'.
Random access to Parquet stays a row group per image; an Arrow IPC file (method
``arrow``) is what random access should use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import blocks, encoding, indexed_chunks
from imgbench.methods._base import (
    advise_random,
    check_lengths,
    opener,
    pillow_codec_versions,
    store_header,
    whole_number,
)
from imgbench.methods._binary import BinaryCells

DESCRIPTION = "Parquet (one file, image bytes column)"
PACKAGES = ("pyarrow", "Pillow")
FILE_NAME = "images.parquet"
META_KEY = b"imgbench"
IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
OPTIONS = {**encoding.options("png"), "row_group_images": 100, "compression": "none"}
CHOICES = {
    **encoding.CHOICES,
    "row_group_images": whole_number(1, "images"),
    "compression": ("none", "snappy", "zstd"),
}
# The option's names to pyarrow's codec names.
CODECS = {"none": "NONE", "snappy": "SNAPPY", "zstd": "ZSTD"}

# Bounds for disk_bytes: a BYTE_ARRAY value's 4-byte length prefix; a label at most 8
# bytes plain (int64); a page header (with statistics off), one per image at worst since
# every page holds at least one value; a compressed page at most 1/256 plus 128 bytes
# above its input (zstd's own bound is n + n/256 + 64 at most; snappy's formal bound is
# looser, n/6, but its compressor stores incompressible input as literals with a few
# bytes of tag per 64 KiB fragment: noise checked in the tests); per row group its footer
# entries and the labels' dictionary page; per file the schemas (Parquet's and Arrow's),
# the metadata JSON and the magic numbers.
VALUE_PREFIX_BYTES = 4
LABEL_BYTES = 8
PAGE_HEADER_BYTES = 64
CODEC_PAGE_BYTES = 128
ROW_GROUP_BYTES = 4096
FILE_BYTES = 64 << 10


def library_versions() -> dict:
    """The Arrow C++ library under pyarrow (its own Parquet writer and reader, with the
    codecs built in) and the codec libraries Pillow encodes and decodes images with."""
    import pyarrow

    return {"arrow_cpp": pyarrow.cpp_version, **pillow_codec_versions()}


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: each image at its encoding's largest
    size (``encoding.max_encoded_bytes``) with its length prefix, a label, a page header
    and, when compressed, the codec's overhead; each row group's footer entries and label
    dictionary; the file's schemas and metadata (the constants above)."""
    groups = -(-n_images // options["row_group_images"])
    value = encoding.max_encoded_bytes(image_bytes, options) + VALUE_PREFIX_BYTES
    if options["compression"] != "none":
        value += value // 256 + CODEC_PAGE_BYTES
    per_image = value + LABEL_BYTES + PAGE_HEADER_BYTES
    return blocks(n_images * per_image + groups * ROW_GROUP_BYTES + FILE_BYTES)


def _schema(pa, labels_dtype: np.dtype, meta: dict):
    return pa.schema(
        [
            pa.field(IMAGE_COLUMN, pa.binary(), nullable=False),
            pa.field(LABEL_COLUMN, pa.from_numpy_dtype(labels_dtype), nullable=False),
        ],
        metadata={META_KEY: json.dumps(meta).encode()},
    )


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    group_images = options["row_group_images"]
    labels = np.ascontiguousarray(labels)
    check_lengths(images, labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    meta = store_header(
        images, labels, **encoding.store_fields(options), row_group_images=group_images
    )
    schema = _schema(pa, labels.dtype, meta)
    label_type = schema.field(LABEL_COLUMN).type
    written = 0
    buffered: list[bytes] = []

    def write_group(writer) -> None:
        nonlocal written, buffered
        count = len(buffered)
        group = pa.table(
            [
                pa.array(buffered, type=pa.binary()),
                pa.array(labels[written : written + count], type=label_type),
            ],
            schema=schema,
        )
        buffered = []  # the encoded bytes go before the next group is encoded
        writer.write_table(group, row_group_size=count)
        written += count

    with pq.ParquetWriter(
        store_dir / FILE_NAME,
        schema,
        compression=CODECS[options["compression"]],
        use_dictionary=[LABEL_COLUMN],
        write_statistics=[LABEL_COLUMN],
    ) as writer:
        encode = encoding.encoder(options)
        for _start, chunk in indexed_chunks(images):
            for image in chunk:
                buffered.append(encode(image))
                if len(buffered) == group_images:
                    write_group(writer)
        if buffered:
            write_group(writer)


class _Store:
    """The open file (a plain Python file, opened in this process, so readers work after
    a fork; ``readahead=False`` advises its descriptor ``POSIX_FADV_RANDOM`` and pyarrow
    reads through it), its ``ParquetFile`` and the recorded metadata."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        import pyarrow.parquet as pq

        # Kept open for the store's life (closed in ``close``), not a with block.
        self.handle = open(Path(store_dir) / FILE_NAME, "rb", buffering=0)  # noqa: SIM115
        try:
            if not readahead:
                advise_random(self.handle.fileno())
            # pre_buffer (pyarrow's default) coalesces and buffers the column chunks of
            # the row groups ahead of iter_batches: an epoch of 20,000 images of 64x64
            # held 178 MB more than one of 2,000; without it the epoch holds a row group.
            self.file = pq.ParquetFile(self.handle, pre_buffer=False)
            metadata = self.file.metadata
            raw_meta = (metadata.metadata or {}).get(META_KEY)
            if raw_meta is None:
                raise ValueError(f"{FILE_NAME} has no {META_KEY.decode()} metadata")
            self.meta = json.loads(raw_meta)
            if metadata.num_rows != self.meta["count"]:
                raise ValueError(
                    f"{FILE_NAME} holds {metadata.num_rows} rows, its metadata says "
                    f"{self.meta['count']} images"
                )
        except BaseException:
            self.handle.close()
            raise
        self.shape = tuple(self.meta["shape"])
        self.dtype = np.dtype(self.meta["dtype"])
        self.encoding = self.meta["encoding"]
        self.codec = self.meta.get("codec")
        self.image_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        # Row group g holds images starts[g] .. starts[g + 1] - 1.
        self.starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])

    def empty(self, count: int) -> np.ndarray:
        return np.empty((count, *self.shape), dtype=self.dtype)

    def labels(self, table) -> np.ndarray:
        """The label column of ``table`` as a fresh array of the recorded dtype."""
        column = table.column(LABEL_COLUMN)
        return np.array(column.to_numpy(), dtype=self.meta["labels_dtype"], copy=True)

    def all_labels(self) -> np.ndarray:
        return self.labels(self.file.read(columns=[LABEL_COLUMN]))

    def decode(self, data) -> np.ndarray:
        return encoding.decode(data, self.encoding, self.shape, self.codec)

    def decode_into(self, out: np.ndarray, column) -> None:
        """Every value of ``column`` decoded into ``out`` (as many images). Raw images of
        the right length are copied in one piece per Arrow array, the rest one by one."""
        cells = BinaryCells(column)
        if len(cells) != len(out):
            raise ValueError(f"{len(cells)} values for {len(out)} images")
        for index, (first, offsets, data) in enumerate(cells.parts):
            stop = cells.parts[index + 1][0] if index + 1 < len(cells.parts) else len(cells)
            count = stop - first
            lengths = np.diff(offsets)
            if self.encoding == "raw" and np.all(lengths == self.image_bytes):
                pixels = np.frombuffer(
                    data, dtype=self.dtype, count=count * self.image_bytes, offset=int(offsets[0])
                )
                out[first:stop] = pixels.reshape(count, *self.shape)
            else:
                for row in range(count):
                    out[first + row] = self.decode(data[offsets[row] : offsets[row + 1]])

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.handle.close()


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole store into one array, row group by row group (one group's bytes held)."""
    store = _Store(store_dir)
    try:
        images = store.empty(store.meta["count"])
        for group in range(len(store.starts) - 1):
            start, stop = store.starts[group], store.starts[group + 1]
            table = store.file.read_row_group(group, columns=[IMAGE_COLUMN])
            store.decode_into(images[start:stop], table.column(IMAGE_COLUMN))
            del table
        return images, store.all_labels()
    finally:
        store.close()


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back: ``ParquetFile.iter_batches`` of ``batch_images`` rows
    (pyarrow joins rows across row groups into full batches; it holds a row group's
    column chunks and a batch), each decoded into a fresh array."""
    batch_images = int(batch_images)
    if batch_images < 1:
        raise ValueError(f"batch_images must be at least 1, not {batch_images}")
    store = _Store(store_dir)
    try:
        position = 0
        for batch in store.file.iter_batches(
            batch_size=batch_images, columns=[IMAGE_COLUMN, LABEL_COLUMN]
        ):
            images = store.empty(batch.num_rows)
            store.decode_into(images, batch.column(IMAGE_COLUMN))
            position += batch.num_rows
            yield images, store.labels(batch)
        if position != store.meta["count"]:
            raise ValueError(f"{FILE_NAME} gave {position} images, expected {store.meta['count']}")
    finally:
        store.close()


def read_units(store_dir: Path) -> list[tuple[int, int]]:
    """The store's natural unit of a streaming read: its row groups, from the footer."""
    store = _Store(store_dir)
    try:
        starts = store.starts.tolist()
    finally:
        store.close()
    return list(zip(starts[:-1], starts[1:], strict=True))


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    decoded = (
        "copied"
        if options["encoding"] == "raw"
        else f"{options['encoding']} decoded with {encoding.codec_name(options)}"
    )
    return (
        f"read_row_group of each row group holding a requested image "
        f"({options['row_group_images']} images), {decoded}"
    )


class Reader:
    """Random access by row groups. The file is opened here, in the reading process, and
    kept open; the labels are read once. ``get`` finds each requested image's row group
    from the footer's row counts, reads the ``image`` column chunk of each row group it
    needs once (``read_row_group``; the one read last is kept for the next ``get``, so
    the minibatches of a sequential pass read each group once) and decodes the images in
    the requested order.

    A single image costs a whole row group's read: ``row_group_images`` encoded images
    (and ``compression`` undone on all of them). That is the format's price of random
    access, not an artefact of this reader. Without readahead the file descriptor pyarrow
    reads through is advised ``POSIX_FADV_RANDOM``."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.store = _Store(store_dir, readahead=readahead)
        try:
            self.labels = self.store.all_labels()
        except BaseException:
            self.store.close()
            raise
        self.count = self.store.meta["count"]
        self.cached_group = -1
        self.cached_cells = None

    def _cells(self, group: int) -> BinaryCells:
        if group != self.cached_group:
            self.cached_group, self.cached_cells = -1, None  # one row group held at a time
            table = self.store.file.read_row_group(group, columns=[IMAGE_COLUMN])
            self.cached_cells = BinaryCells(table.column(IMAGE_COLUMN))
            self.cached_group = group
        return self.cached_cells

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        outside = indices[(indices < 0) | (indices >= self.count)]
        if len(outside):
            raise IndexError(f"the Parquet store has no image {int(outside[0])} ({self.count})")
        images = self.store.empty(len(indices))
        groups = np.searchsorted(self.store.starts, indices, side="right") - 1
        needed = np.unique(groups).tolist()
        if self.cached_group in needed:  # the group already read first: one read fewer
            needed.remove(self.cached_group)
            needed.insert(0, self.cached_group)
        for group in needed:
            cells = self._cells(group)
            start = int(self.store.starts[group])
            for position in np.flatnonzero(groups == group).tolist():
                images[position] = self.store.decode(cells[int(indices[position]) - start])
        return images, self.labels[indices]

    def close(self) -> None:
        self.cached_group, self.cached_cells = -1, None
        self.store.close()


open_reader = opener(Reader)
