"""Image files plus a CSV of labels, as in the article: one ``{i}.png`` per image.

The files are PNG by default (the article's); option ``encoding`` makes them JPEG
(``{i}.jpg``), WebP (``{i}.webp``) or raw pixel bytes (``{i}.raw``, one file per image
without any codec: what the small files alone cost), QOI, JPEG XL or AVIF, written and read
by option ``codec``'s library, through ``imgbench.methods.encoding``. The store records
its encoding, codec and image shape in ``format.json``. ``store`` encodes the
images chunk by chunk; ``read_batches`` decodes the files of one batch at a time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, encoding, indexed_chunks
from imgbench.methods._base import advise_random, check_lengths, opener, pillow_codec_versions

DESCRIPTION = "image files + labels.csv"
PACKAGES = ("Pillow",)
LABELS_FILE = "labels.csv"
FORMAT_FILE = "format.json"
# PNG at Pillow's default zlib level 6, which is also what the article used.
OPTIONS = encoding.options("png")
CHOICES = dict(encoding.CHOICES)


def library_versions() -> dict:
    """zlib, which does the deflate of Pillow's PNG encoder and decoder."""
    return pillow_codec_versions("zlib")


def _image_path(store_dir: Path, index: int, extension: str = "png") -> Path:
    return store_dir / f"{index}.{extension}"


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: one file per image no larger than
    ``encoding.max_encoded_bytes`` (PNG: its pixels stored uncompressed), each rounded up
    to whole blocks, plus the labels CSV (at most 16 bytes a line) and ``format.json``."""
    per_image = blocks(encoding.max_encoded_bytes(image_bytes, options))
    return n_images * per_image + blocks(16 * (n_images + 1)) + blocks(1)


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    check_lengths(images, labels)
    extension = encoding.EXTENSIONS[options["encoding"]]
    encode = encoding.encoder(options)
    for start, chunk in indexed_chunks(images):
        for index, image in enumerate(chunk, start=start):
            _image_path(store_dir, index, extension).write_bytes(encode(image))
    image_format = {**encoding.store_fields(options), "shape": list(images.shape[1:])}
    (store_dir / FORMAT_FILE).write_text(json.dumps(image_format))
    with open(store_dir / LABELS_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label"])
        writer.writerows(zip(range(len(labels)), labels.tolist(), strict=True))


def _read_labels(store_dir: Path) -> np.ndarray:
    with open(store_dir / LABELS_FILE, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return np.array([int(row[1]) for row in reader], dtype=np.uint8)


def _read_format(store_dir: Path) -> tuple[str, tuple[int, ...], str | None]:
    """The store's encoding, image shape and codec (``None`` for a store written before
    codecs were recorded: Pillow's)."""
    image_format = json.loads((store_dir / FORMAT_FILE).read_text())
    return image_format["encoding"], tuple(image_format["shape"]), image_format.get("codec")


def _read_file(path: Path, readahead: bool) -> bytes:
    """A file's bytes; without readahead the file is advised ``POSIX_FADV_RANDOM`` first."""
    with open(path, "rb", buffering=0) as handle:
        if not readahead:
            advise_random(handle.fileno())
        return handle.readall()


def _read_images(store_dir: Path, indices, readahead: bool = True, image_format=None) -> np.ndarray:
    """The images at ``indices``, each file read whole and decoded into one fresh array."""
    name, shape, codec = image_format or _read_format(store_dir)
    extension = encoding.EXTENSIONS[name]
    indices = list(indices)
    images = np.empty((len(indices), *shape), dtype=np.uint8)
    for position, index in enumerate(indices):
        data = _read_file(_image_path(store_dir, index, extension), readahead)
        images[position] = encoding.decode(data, name, shape, codec)
    return images


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    labels = _read_labels(store_dir)
    return _read_images(store_dir, range(len(labels))), labels


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back: the files of each batch decoded into a fresh array."""
    store_dir = Path(store_dir)
    labels = _read_labels(store_dir)
    image_format = _read_format(store_dir)
    for start, stop in batch_bounds(len(labels), batch_images):
        images = _read_images(store_dir, range(start, stop), image_format=image_format)
        yield images, labels[start:stop].copy()


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    if options["encoding"] == "raw":
        return "one file read per image"
    decoder = encoding.codec_name(options)
    return f"one file read per image, {options['encoding']} decoded with {decoder}"


class Reader:
    """Opens each image file on request; without readahead each file is advised
    ``POSIX_FADV_RANDOM`` before it is read."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.store_dir = Path(store_dir)
        self.readahead = readahead
        self.labels = _read_labels(self.store_dir)
        self.image_format = _read_format(self.store_dir)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        images = _read_images(
            self.store_dir, indices.tolist(), self.readahead, image_format=self.image_format
        )
        return images, self.labels[indices]

    def close(self) -> None:
        pass


open_reader = opener(Reader)
